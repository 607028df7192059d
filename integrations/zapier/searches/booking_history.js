'use strict';

// "Find a Booking's History": GET /v1/bookings/{provider}/{booking_id}/reschedules, newest first.

const { OUTPUT_FIELDS, SAMPLE, withId } = require('../lib/records');
const { relayRequest } = require('../lib/relay');

// The relay's own bound for one page.
const MAX_LIMIT = 100;

const perform = async (z, bundle) => {
  const { provider, booking_id: bookingId, limit } = bundle.inputData;
  const page = await relayRequest(z, bundle, {
    path: `/v1/bookings/${encodeURIComponent(provider)}/${encodeURIComponent(String(bookingId))}/reschedules`,
    params: limit ? { limit: String(Math.min(Number(limit), MAX_LIMIT)) } : undefined,
  });
  return page.reschedules.map(withId);
};

module.exports = {
  key: 'booking_history',
  noun: 'Booking History',
  display: {
    label: "Find a Booking's History",
    description: "Finds this connection's reschedules of one booking, newest first.",
  },
  operation: {
    perform,
    inputFields: [
      { key: 'provider', label: 'Provider', required: true, dynamic: 'provider_choices.id.name' },
      { key: 'booking_id', label: 'Booking ID', required: true, type: 'string' },
      { key: 'limit', label: 'Limit', required: false, type: 'integer', helpText: `1 to ${MAX_LIMIT}; default 20.` },
    ],
    outputFields: OUTPUT_FIELDS,
    sample: SAMPLE,
  },
};
