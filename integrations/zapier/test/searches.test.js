/* globals describe, it, expect, beforeAll */
'use strict';

const crypto = require('crypto');
const zapier = require('zapier-platform-core');

const App = require('../index');
const { OTHER_SOURCE, authData, futureStart, sandbox } = require('./stack');

const appTester = zapier.createAppTester(App);
const booking = () => sandbox('novacal').bookings[0];

let moved;

beforeAll(async () => {
  moved = await appTester(App.creates.reschedule.operation.perform, {
    authData: authData(),
    inputData: { provider: 'novacal', booking_id: booking(), start: futureStart(420), timezone: 'UTC' },
    meta: { zap: { id: `test-${crypto.randomUUID()}` } },
  });
});

describe('Find a Reschedule', () => {
  const find = App.searches.find_reschedule.operation.perform;

  it('finds a reschedule by its id', async () => {
    const found = await appTester(find, { authData: authData(), inputData: { reschedule_id: moved.reschedule_id } });
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({ id: moved.reschedule_id, status: 'succeeded', booking_id: booking() });
  });

  it("finds nothing for an unknown id, or another source's", async () => {
    const unknown = await appTester(find, { authData: authData(), inputData: { reschedule_id: 'r_doesnotexist' } });
    expect(unknown).toEqual([]);
    const theirs = await appTester(find, {
      authData: authData(OTHER_SOURCE),
      inputData: { reschedule_id: moved.reschedule_id },
    });
    expect(theirs).toEqual([]);
  });
});

describe("Find a Booking's History", () => {
  it("lists the booking's reschedules, newest first", async () => {
    const history = await appTester(App.searches.booking_history.operation.perform, {
      authData: authData(),
      inputData: { provider: 'novacal', booking_id: booking(), limit: 5 },
    });
    expect(history.length).toBeGreaterThan(0);
    expect(history.length).toBeLessThanOrEqual(5);
    expect(history[0].id).toBe(moved.reschedule_id);
    const times = history.map((r) => r.attempted_at);
    expect([...times].sort().reverse()).toEqual(times);
  });
});
