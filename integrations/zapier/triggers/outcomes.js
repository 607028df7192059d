'use strict';

// "Reschedule Succeeded" / "Reschedule Failed": REST hooks on the relay's event subscriptions.
// Subscribing stores the subscription's id and `whsec_` secret (bundle.subscribeData); each event
// is verified with the Standard Webhooks library before it triggers the Zap.

const crypto = require('crypto');

const { Webhook } = require('standardwebhooks');

const { OUTPUT_FIELDS, SAMPLE, withId } = require('../lib/records');
const { relayRequest } = require('../lib/relay');

// Samples and the polling fallback: this many recent outcomes.
const LIST_LIMIT = 25;

// How old an event's signature may be. The relay signs each attempt afresh, so only Zapier's own
// queueing delays an event; the library's 5 minutes could drop one Zapier processed late.
const MAX_EVENT_AGE_SECONDS = 3600;

// Zapier hands a hook's headers over with an `Http-` prefix; Standard Webhooks names them bare.
const webhookHeaders = (headers) =>
  Object.fromEntries(
    Object.entries(headers || {}).map(([name, value]) => [name.toLowerCase().replace(/^http-/, ''), value]),
  );

const sameText = (a, b) => {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && crypto.timingSafeEqual(left, right);
};

// The event's JSON when one of its signatures is this subscription's over the exact body, else null.
// The signature is the library's own (Webhook.sign); only the age limit is ours.
const verifiedEvent = (bundle) => {
  const secret = bundle.subscribeData && bundle.subscribeData.secret;
  const raw = bundle.rawRequest;
  if (!secret || !raw || typeof raw.content !== 'string') return null;
  const headers = webhookHeaders(raw.headers);
  const id = headers['webhook-id'];
  const seconds = Number(headers['webhook-timestamp']);
  const signatures = String(headers['webhook-signature'] || '').split(' ');
  if (!id || !Number.isInteger(seconds) || Math.abs(Date.now() / 1000 - seconds) > MAX_EVENT_AGE_SECONDS) {
    return null;
  }
  const expected = new Webhook(secret).sign(id, new Date(seconds * 1000), raw.content);
  if (!signatures.some((signature) => sameText(signature, expected))) return null;
  try {
    return JSON.parse(raw.content);
  } catch (e) {
    return null;
  }
};

const outcomeTrigger = (status, label, description) => {
  const eventType = `reschedule.${status}`;
  return {
    key: `reschedule_${status}`,
    noun: 'Reschedule',
    display: { label, description },
    operation: {
      type: 'hook',
      performSubscribe: (z, bundle) =>
        relayRequest(z, bundle, {
          method: 'POST',
          path: '/v1/subscriptions',
          body: { url: bundle.targetUrl, events: [eventType] },
          headers: { 'Content-Type': 'application/json' },
        }),
      performUnsubscribe: (z, bundle) =>
        relayRequest(z, bundle, {
          method: 'DELETE',
          path: `/v1/subscriptions/${encodeURIComponent(bundle.subscribeData.id)}`,
          notFound: {}, // already gone (a 410 from Zapier unsubscribed it)
        }),
      perform: (z, bundle) => {
        const event = verifiedEvent(bundle);
        if (!event || event.type !== eventType || !event.data) {
          z.console.log('ignored a request that is not a signed event of this trigger');
          return [];
        }
        return [withId(event.data)];
      },
      performList: async (z, bundle) => {
        const page = await relayRequest(z, bundle, {
          path: '/v1/reschedules',
          params: { status, limit: String(LIST_LIMIT) },
        });
        return page.reschedules.map(withId);
      },
      outputFields: OUTPUT_FIELDS,
      sample: { ...SAMPLE, status },
    },
  };
};

module.exports = {
  succeeded: outcomeTrigger(
    'succeeded',
    'Reschedule Succeeded',
    'Triggers when the provider moved a booking (sync or queued requests).',
  ),
  failed: outcomeTrigger(
    'failed',
    'Reschedule Failed',
    'Triggers when a reschedule finally failed (refused by the provider, or given up).',
  ),
  MAX_EVENT_AGE_SECONDS,
  webhookHeaders,
};
