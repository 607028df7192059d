'use strict';

// "Find a Reschedule": GET /v1/reschedules/{id}; an id this source does not have is "not found".

const { OUTPUT_FIELDS, SAMPLE, withId } = require('../lib/records');
const { relayRequest } = require('../lib/relay');

const perform = async (z, bundle) => {
  const id = String(bundle.inputData.reschedule_id || '').trim();
  const record = await relayRequest(z, bundle, { path: `/v1/reschedules/${encodeURIComponent(id)}`, notFound: null });
  return record ? [withId(record)] : [];
};

module.exports = {
  key: 'find_reschedule',
  noun: 'Reschedule',
  display: { label: 'Find a Reschedule', description: 'Finds one reschedule by its id: what was asked and what happened.' },
  operation: {
    perform,
    inputFields: [{ key: 'reschedule_id', label: 'Reschedule ID', required: true, type: 'string' }],
    outputFields: OUTPUT_FIELDS,
    sample: SAMPLE,
  },
};
