'use strict';

// "Reschedule a booking": POST /v1/reschedules, with an Idempotency-Key derived from the bundle.

const { idempotencyKey } = require('../lib/idempotency');
const { OUTPUT_FIELDS, SAMPLE, withId } = require('../lib/records');
const { relayRequest } = require('../lib/relay');

const KEY = 'reschedule';

// The Zap's time zone: bundle.meta.timezone (newer), else the deprecated zap.user.timezone.
const zapTimezone = (bundle) => {
  const meta = bundle.meta || {};
  return meta.timezone || (meta.zap && meta.zap.user && meta.zap.user.timezone) || undefined;
};

// The relay's request body: only the fields the user filled in (the relay validates them all).
const requestBody = (bundle) => {
  const input = bundle.inputData;
  const body = {
    provider: input.provider,
    account: input.account,
    booking_id: input.booking_id,
    timezone: input.timezone || zapTimezone(bundle),
    reason: input.reason,
    notes: input.notes,
  };
  if (input.start) {
    body.start = input.start;
  } else {
    body.date = input.date;
    body.time = input.time;
  }
  if (input.dry_run === true || input.dry_run === 'true') body.dry_run = true;
  return Object.fromEntries(Object.entries(body).filter(([, v]) => v !== undefined && v !== null && v !== ''));
};

const perform = async (z, bundle) => {
  const body = requestBody(bundle);
  const answer = await relayRequest(z, bundle, {
    method: 'POST',
    path: '/v1/reschedules',
    body,
    headers: { 'Content-Type': 'application/json', 'Idempotency-Key': idempotencyKey(bundle, KEY, body) },
  });
  return withId(answer);
};

module.exports = {
  key: KEY,
  noun: 'Reschedule',
  display: {
    label: 'Reschedule a Booking',
    description: 'Moves an existing booking to a new time at its scheduling provider (iClosed, NovaCal, Cal.com, Acuity).',
  },
  operation: {
    perform,
    inputFields: [
      {
        key: 'provider',
        label: 'Provider',
        required: true,
        dynamic: 'provider_choices.id.name',
        altersDynamicFields: true,
        helpText: 'The scheduling provider that holds the booking.',
      },
      {
        key: 'account',
        label: 'Account',
        required: false,
        dynamic: 'account_choices.id.name',
        dependsOn: ['provider'],
        helpText: "The provider account; leave empty for the source's `default` account.",
      },
      { key: 'booking_id', label: 'Booking ID', required: true, type: 'string', helpText: "The provider's id of the booking to move." },
      {
        key: 'start',
        label: 'New start',
        required: false,
        type: 'datetime',
        helpText: 'The new start time. Leave empty to give **New date** and **New time** instead.',
      },
      { key: 'date', label: 'New date', required: false, type: 'string', helpText: 'YYYY-MM-DD, with **New time** (instead of **New start**).' },
      { key: 'time', label: 'New time', required: false, type: 'string', helpText: 'HH:MM or H:MM AM/PM, with **New date**.' },
      {
        key: 'timezone',
        label: 'Time zone',
        required: false,
        type: 'string',
        helpText: "An IANA time zone such as `America/New_York`. Leave empty for the Zap's time zone.",
      },
      { key: 'reason', label: 'Reason', required: false, type: 'text' },
      { key: 'notes', label: 'Notes', required: false, type: 'text' },
      {
        key: 'dry_run',
        label: 'Dry run',
        required: false,
        type: 'boolean',
        default: 'false',
        helpText: 'Yes: check the request and show what would be sent to the provider; nothing is moved.',
      },
      {
        key: 'trigger_item_id',
        label: 'Trigger item ID',
        required: false,
        type: 'string',
        helpText:
          "Optional: map the trigger's unique id (e.g. Typeform's Response ID). With it, two trigger items that ask for the same move are both sent; a replay of one never is.",
      },
    ],
    outputFields: OUTPUT_FIELDS,
    sample: { ...SAMPLE, replayed: false },
  },
};
