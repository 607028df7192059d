'use strict';

// The Zapier app: "Reschedule a Booking", two searches, two REST-hook triggers (docs/zapier.md).

const zapier = require('zapier-platform-core');

const authentication = require('./authentication');
const reschedule = require('./creates/reschedule');
const bookingHistory = require('./searches/booking_history');
const findReschedule = require('./searches/find_reschedule');
const choices = require('./triggers/choices');
const outcomes = require('./triggers/outcomes');
const { addApiKey } = require('./lib/relay');
const { version } = require('./package.json');

module.exports = {
  version,
  platformVersion: zapier.version,
  authentication,
  beforeRequest: [addApiKey],
  triggers: {
    [outcomes.succeeded.key]: outcomes.succeeded,
    [outcomes.failed.key]: outcomes.failed,
    [choices.providers.key]: choices.providers,
    [choices.accounts.key]: choices.accounts,
  },
  searches: {
    [findReschedule.key]: findReschedule,
    [bookingHistory.key]: bookingHistory,
  },
  creates: {
    [reschedule.key]: reschedule,
  },
};
