'use strict';

const { relayRequest } = require('./lib/relay');

// GET /v1/me: the source this key belongs to (its name labels the connection) and what it may move.
const test = (z, bundle) => relayRequest(z, bundle, { path: '/v1/me' });

module.exports = {
  type: 'custom',
  fields: [
    {
      key: 'api_url',
      label: 'Relay URL',
      required: true,
      type: 'string',
      helpText:
        "Your relay's API address, e.g. `https://abc123.execute-api.eu-west-1.amazonaws.com` (the `ApiUrl` output of `sam deploy`).",
    },
    {
      key: 'api_key',
      label: 'API key',
      required: true,
      type: 'password',
      helpText: "The API key of your relay source (the operator creates it with `relayctl sources add`).",
    },
  ],
  test,
  // The answer of `test` is bundle.inputData here.
  connectionLabel: '{{bundle.inputData.name}}',
};
