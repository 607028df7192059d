/* globals describe, it, expect, afterEach */
'use strict';

const crypto = require('crypto');
const zapier = require('zapier-platform-core');

const App = require('../index');
const { authData, clearFaults, fault, futureStart, movesOf, sandbox } = require('./stack');

const appTester = zapier.createAppTester(App);
const reschedule = App.creates.reschedule.operation.perform;
const booking = () => sandbox('novacal').bookings[0];

// A bundle as Zapier sends it for one run of the step, in a Zap of its own.
const bundleFor = (inputData, meta = {}) => ({
  authData: authData(),
  inputData: { provider: 'novacal', booking_id: booking(), ...inputData },
  meta: { zap: { id: `test-${crypto.randomUUID()}` }, timezone: 'Europe/Berlin', ...meta },
});

const failureOf = (promise) => promise.then(() => null, (error) => error);

afterEach(() => clearFaults('novacal'));

describe('Reschedule a Booking', () => {
  it('moves the booking once when the same bundle runs twice (autoreplay, re-run)', async () => {
    const bundle = bundleFor({ start: futureStart(400) });
    const before = (await movesOf('novacal', booking())).length;
    const first = await appTester(reschedule, bundle);
    expect(first.status).toBe('succeeded');
    expect(first.replayed).toBe(false);
    expect(first.id).toBe(first.reschedule_id);
    const again = await appTester(reschedule, JSON.parse(JSON.stringify(bundle)));
    expect(again.replayed).toBe(true);
    expect(again.reschedule_id).toBe(first.reschedule_id);
    expect((await movesOf('novacal', booking())).length).toBe(before + 1);
  });

  it('sends a new move for another trigger item or another Zap', async () => {
    const bundle = bundleFor({ start: futureStart(401), trigger_item_id: 'response-1' });
    const first = await appTester(reschedule, bundle);
    const otherItem = await appTester(reschedule, {
      ...bundle,
      inputData: { ...bundle.inputData, trigger_item_id: 'response-2' },
    });
    const otherZap = await appTester(reschedule, { ...bundle, meta: { ...bundle.meta, zap: { id: 'another-zap' } } });
    const ids = new Set([first.reschedule_id, otherItem.reschedule_id, otherZap.reschedule_id]);
    expect(ids.size).toBe(3);
    expect([first.replayed, otherItem.replayed, otherZap.replayed]).toEqual([false, false, false]);
  });

  it("reads a wall-clock start in the Zap's time zone when no time zone is given", async () => {
    const start = futureStart(402);
    const moved = await appTester(reschedule, bundleFor({ start }, { timezone: 'America/Chicago' }));
    expect(moved.timezone).toBe('America/Chicago');
    expect(moved.start.slice(0, 19)).toBe(start);
  });

  it('takes a date and a time, in the chosen time zone', async () => {
    const [date, time] = futureStart(403).split('T');
    const moved = await appTester(reschedule, bundleFor({ date, time: time.slice(0, 5), timezone: 'Asia/Tokyo' }));
    expect(moved.timezone).toBe('Asia/Tokyo');
    expect(moved.start).toBe(`${date}T${time}+09:00`);
  });

  it('moves nothing on a dry run', async () => {
    const before = (await movesOf('novacal', booking())).length;
    const answer = await appTester(reschedule, bundleFor({ start: futureStart(404), dry_run: true }));
    expect(answer.dry_run).toBe(true);
    expect((await movesOf('novacal', booking())).length).toBe(before);
  });
});

describe("Reschedule a Booking: the relay's refusals as Zapier errors", () => {
  it('halts on an invalid field, naming it by its label', async () => {
    const error = await failureOf(appTester(reschedule, bundleFor({ start: 'next blue moon' })));
    expect(error.name).toBe('HaltedError');
    expect(error.message).toContain('New start:');
    expect(error.message).toContain('validation_failed');
  });

  it('halts when the provider has no such booking', async () => {
    const error = await failureOf(
      appTester(reschedule, bundleFor({ booking_id: crypto.randomUUID(), start: futureStart(405) })),
    );
    expect(error.name).toBe('HaltedError');
    expect(error.message).toContain('booking_not_found');
  });

  it('halts when the source may not use the provider', async () => {
    const bundle = bundleFor({ start: futureStart(406) });
    bundle.authData = authData('website-demo');
    bundle.inputData.provider = 'iclosed';
    bundle.inputData.booking_id = sandbox('iclosed').bookings[0];
    const error = await failureOf(appTester(reschedule, bundle));
    expect(error.name).toBe('HaltedError');
    expect(error.message).toContain('provider_not_allowed');
  });

  it("throttles on 429 with the relay's delay", async () => {
    await fault('novacal', { status: 429, retry_after: 60, times: 5 });
    const error = await failureOf(appTester(reschedule, bundleFor({ start: futureStart(407) })));
    expect(error.name).toBe('ThrottledError');
    const { message, delay } = JSON.parse(error.message);
    expect(delay).toBe(60);
    expect(message).toMatch(/rate/i);
  });

  it('fails with an ordinary error on a 5xx, so autoreplay tries again', async () => {
    await fault('novacal', { status: 500, times: 5 });
    const error = await failureOf(appTester(reschedule, bundleFor({ start: futureStart(408) })));
    expect(error.name).toBe('AppError');
    const body = JSON.parse(error.message);
    expect(body.status).toBe(502);
    expect(body.code).toBe('provider_error');
  });

  it('fails with an ordinary error when the provider is unavailable (503)', async () => {
    await fault('novacal', { status: 503, times: 5 });
    const error = await failureOf(appTester(reschedule, bundleFor({ start: futureStart(409) })));
    expect(error.name).toBe('AppError');
    expect(JSON.parse(error.message).status).toBe(503);
  });
});
