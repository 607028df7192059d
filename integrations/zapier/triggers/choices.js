'use strict';

// Hidden triggers behind the provider and account dropdowns: both read GET /v1/me.

const { relayRequest } = require('../lib/relay');

const me = (z, bundle) => relayRequest(z, bundle, { path: '/v1/me' });

const providers = {
  key: 'provider_choices',
  noun: 'Provider',
  display: { label: 'Providers', description: 'The providers this connection may use.', hidden: true },
  operation: {
    perform: async (z, bundle) =>
      (await me(z, bundle)).providers.map((p) => ({ id: p.provider, name: p.display_name })),
    sample: { id: 'iclosed', name: 'iClosed' },
  },
};

const accounts = {
  key: 'account_choices',
  noun: 'Account',
  display: { label: 'Accounts', description: "The chosen provider's accounts.", hidden: true },
  operation: {
    perform: async (z, bundle) => {
      const chosen = bundle.inputData.provider;
      return (await me(z, bundle)).providers
        .filter((p) => !chosen || p.provider === chosen)
        .flatMap((p) => p.accounts.map((account) => ({ id: account, name: `${account} (${p.display_name})` })));
    },
    sample: { id: 'default', name: 'default (iClosed)' },
  },
};

module.exports = { providers, accounts };
