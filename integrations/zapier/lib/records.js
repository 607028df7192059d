'use strict';

// How a reschedule record (GET /v1/reschedules/{id}, events, the create's answer) shows in a Zap.

const OUTPUT_FIELDS = [
  { key: 'id', label: 'ID' },
  { key: 'reschedule_id', label: 'Reschedule ID' },
  { key: 'status', label: 'Status' },
  { key: 'provider', label: 'Provider' },
  { key: 'account', label: 'Account' },
  { key: 'booking_id', label: 'Booking ID' },
  { key: 'new_booking_id', label: 'New booking ID (Cal.com)' },
  { key: 'start', label: 'New start', type: 'datetime' },
  { key: 'end', label: 'New end', type: 'datetime' },
  { key: 'timezone', label: 'Time zone' },
  { key: 'attempted_at', label: 'Attempted at', type: 'datetime' },
  { key: 'reason', label: 'Reason code' },
  { key: 'detail', label: 'Detail' },
  { key: 'http_status', label: 'HTTP status', type: 'integer' },
  { key: 'replayed', label: 'Replayed (stored answer to a repeat)', type: 'boolean' },
  { key: 'dry_run', label: 'Dry run', type: 'boolean' },
];

const SAMPLE = {
  id: 'r_0f3c8a5e2b7d4c1e9a6f',
  reschedule_id: 'r_0f3c8a5e2b7d4c1e9a6f',
  status: 'succeeded',
  provider: 'iclosed',
  account: 'default',
  booking_id: '1001',
  start: '2027-01-15T10:00:00-05:00',
  end: '2027-01-15T10:30:00-05:00',
  timezone: 'America/New_York',
  attempted_at: '2027-01-10T14:03:22.512+00:00',
};

// `id` is what Zapier deduplicates triggers on: the reschedule's id.
const withId = (record) => ({ id: record.reschedule_id, ...record });

module.exports = { OUTPUT_FIELDS, SAMPLE, withId };
