/* globals describe, it, expect */
'use strict';

// The REST-hook triggers end to end: subscribe, a move, the signed event at the hook URL (the
// stack's callback sink stands in for hooks.zapier.com), the trigger's perform, unsubscribe.

const crypto = require('crypto');
const { Webhook } = require('standardwebhooks');
const zapier = require('zapier-platform-core');

const App = require('../index');
const { authData, deliveriesAt, futureStart, sandbox, sinkUrl, waitFor } = require('./stack');

const appTester = zapier.createAppTester(App);
const succeeded = App.triggers.reschedule_succeeded.operation;
const failed = App.triggers.reschedule_failed.operation;

// The worker polls, sends, and the sink answers: an event arrives within a few seconds.
const ARRIVAL_SECONDS = 20;
// Long enough for an event that should not come to have come.
const QUIET_SECONDS = 6;

const move = (days) =>
  appTester(App.creates.reschedule.operation.perform, {
    authData: authData(),
    inputData: { provider: 'novacal', booking_id: sandbox('novacal').bookings[0], start: futureStart(days), timezone: 'UTC' },
    meta: { zap: { id: `test-${crypto.randomUUID()}` } },
  });

// How Zapier hands the hook to perform: the parsed body, and the raw request (headers prefixed Http-).
const hookBundle = (delivery, subscribeData) => ({
  authData: authData(),
  subscribeData,
  cleanedRequest: JSON.parse(delivery.body),
  rawRequest: {
    method: 'POST',
    content: delivery.body,
    headers: Object.fromEntries(
      Object.entries(delivery.headers).map(([name, value]) => [
        `Http-${name.replace(/(^|-)(\w)/g, (m) => m.toUpperCase())}`,
        value,
      ]),
    ),
  },
});

describe('Reschedule Succeeded (REST hook)', () => {
  it('subscribes, receives one signed event per move, triggers, and unsubscribes', async () => {
    const hookPath = `/hooks/zap-${crypto.randomUUID()}`;
    const targetUrl = `${sinkUrl()}${hookPath}`;
    const subscribeData = await appTester(succeeded.performSubscribe, { authData: authData(), targetUrl });
    expect(subscribeData.id).toMatch(/^sub_/);
    expect(subscribeData.secret).toMatch(/^whsec_/);
    expect(subscribeData.events).toEqual(['reschedule.succeeded']);

    const moved = await move(430);
    const [delivery] = await waitFor(async () => {
      const found = await deliveriesAt(hookPath);
      return found.length ? found : null;
    }, ARRIVAL_SECONDS);
    // Signed with the subscription's secret (the Standard Webhooks reference library verifies it).
    const event = new Webhook(subscribeData.secret).verify(delivery.body, delivery.headers);
    expect(event.type).toBe('reschedule.succeeded');
    expect(event.data.reschedule_id).toBe(moved.reschedule_id);

    const items = await appTester(succeeded.perform, hookBundle(delivery, subscribeData));
    expect(items).toHaveLength(1);
    expect(items[0]).toMatchObject({ id: moved.reschedule_id, status: 'succeeded' });
    // The other trigger ignores it; so does this one when the body was altered on the way.
    expect(await appTester(failed.perform, hookBundle(delivery, subscribeData))).toEqual([]);
    const altered = { ...delivery, body: delivery.body.replace('succeeded', 'failed') };
    expect(await appTester(failed.perform, hookBundle(altered, subscribeData))).toEqual([]);
    const forged = hookBundle(delivery, { ...subscribeData, secret: `whsec_${crypto.randomBytes(32).toString('base64')}` });
    expect(await appTester(succeeded.perform, forged)).toEqual([]);

    await appTester(succeeded.performUnsubscribe, { authData: authData(), subscribeData, targetUrl });
    // Unsubscribing twice is fine (Zapier may retry it).
    await appTester(succeeded.performUnsubscribe, { authData: authData(), subscribeData, targetUrl });
    await move(431);
    await new Promise((resolve) => setTimeout(resolve, QUIET_SECONDS * 1000));
    expect(await deliveriesAt(hookPath)).toHaveLength(1);
  });

  it('lists recent outcomes for samples and polling', async () => {
    const moved = await move(432);
    const listed = await appTester(succeeded.performList, { authData: authData(), meta: { isLoadingSample: true } });
    expect(listed[0]).toMatchObject({ id: moved.reschedule_id, status: 'succeeded' });
    expect(listed.every((r) => r.status === 'succeeded')).toBe(true);
    const failures = await appTester(failed.performList, { authData: authData() });
    expect(failures.every((r) => r.status === 'failed')).toBe(true);
  });
});

describe('Reschedule Succeeded: which requests trigger', () => {
  const { MAX_EVENT_AGE_SECONDS } = require('../triggers/outcomes');
  const secret = `whsec_${Buffer.from('sandbox-zapier-test-secret-0001').toString('base64')}`;
  const body = JSON.stringify({ type: 'reschedule.succeeded', data: { reschedule_id: 'r-late', status: 'succeeded' } });

  // A request as the relay signs it, `ageSeconds` ago.
  const signedAgo = (ageSeconds) => {
    const when = new Date((Math.floor(Date.now() / 1000) - ageSeconds) * 1000);
    const headers = {
      'webhook-id': 'msg_r-late.sub_x',
      'webhook-timestamp': String(Math.floor(when.getTime() / 1000)),
      'webhook-signature': new Webhook(secret).sign('msg_r-late.sub_x', when, body),
    };
    return hookBundle({ body, headers }, { id: 'sub_x', secret });
  };

  it('takes an event Zapier processed late, within the age limit', async () => {
    const items = await appTester(succeeded.perform, signedAgo(10 * 60));
    expect(items.map((i) => i.id)).toEqual(['r-late']);
  });

  it('ignores an event signed longer ago than the limit, or without its headers', async () => {
    expect(await appTester(succeeded.perform, signedAgo(MAX_EVENT_AGE_SECONDS + 60))).toEqual([]);
    const unsigned = signedAgo(0);
    unsigned.rawRequest.headers = {};
    expect(await appTester(succeeded.perform, unsigned)).toEqual([]);
    const noRaw = signedAgo(0);
    delete noRaw.rawRequest;
    expect(await appTester(succeeded.perform, noRaw)).toEqual([]);
  });
});
