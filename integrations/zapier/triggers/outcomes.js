'use strict';

// "Reschedule Succeeded" / "Reschedule Failed": REST hooks on the relay's event subscriptions.
// Subscribing stores the subscription's id and `whsec_` secret (bundle.subscribeData); each event
// is verified with the Standard Webhooks library before it triggers the Zap.

const { Webhook } = require('standardwebhooks');

const { OUTPUT_FIELDS, SAMPLE, withId } = require('../lib/records');
const { relayRequest } = require('../lib/relay');

// Samples and the polling fallback: this many recent outcomes.
const LIST_LIMIT = 25;

// Zapier hands a hook's headers over with an `Http-` prefix; Standard Webhooks wants them bare.
const webhookHeaders = (headers) =>
  Object.fromEntries(
    Object.entries(headers || {}).map(([name, value]) => [name.toLowerCase().replace(/^http-/, ''), value]),
  );

// The event's JSON when its signature is this subscription's, else null.
const verifiedEvent = (bundle) => {
  const secret = bundle.subscribeData && bundle.subscribeData.secret;
  const raw = bundle.rawRequest;
  if (!secret || !raw || typeof raw.content !== 'string') return null;
  try {
    return new Webhook(secret).verify(raw.content, webhookHeaders(raw.headers));
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
  webhookHeaders,
};
