'use strict';

// The Idempotency-Key of a "Reschedule a booking" step, derived from the bundle, so that Zapier's
// autoreplay, a manual re-run, or a retried task never moves a booking twice.
//
// Zapier gives an integration the Zap's id (`bundle.meta.zap.id`) but neither the step's id nor the
// triggering item's id. A replay of a step re-sends the same input, so the key is a hash of: the
// Zap, this action, the optional "Trigger item ID" the user maps (e.g. Typeform's Response ID),
// and the step's own fields (which tell two steps of one Zap apart). Same Zap + same item + same
// fields: same key. The relay keeps a key for its idempotency TTL (an hour by default).

const crypto = require('crypto');

// Keys are at most 255 visible ASCII characters (docs/api.md); this stays well below.
const HASH_CHARACTERS = 48;

// Sorted keys, so the same fields always hash the same.
const canonical = (value) => {
  if (Array.isArray(value)) return value.map(canonical);
  if (value && typeof value === 'object') {
    return Object.keys(value)
      .sort()
      .reduce((out, key) => ({ ...out, [key]: canonical(value[key]) }), {});
  }
  return value;
};

const zapIdOf = (bundle) => {
  const zap = bundle.meta && bundle.meta.zap;
  return zap && zap.id !== undefined && zap.id !== null ? String(zap.id) : 'editor';
};

const idempotencyKey = (bundle, actionKey, fields) => {
  const zapId = zapIdOf(bundle);
  const item = bundle.inputData.trigger_item_id ? String(bundle.inputData.trigger_item_id) : '';
  const material = JSON.stringify([zapId, actionKey, item, canonical(fields)]);
  const digest = crypto.createHash('sha256').update(material).digest('hex').slice(0, HASH_CHARACTERS);
  return `zapier-${zapId.replace(/[^A-Za-z0-9_-]/g, '').slice(0, 40)}-${digest}`;
};

module.exports = { idempotencyKey };
