/* globals describe, it, expect */
'use strict';

const zapier = require('zapier-platform-core');

const App = require('../index');
const { OTHER_SOURCE, SOURCE, authData } = require('./stack');

const appTester = zapier.createAppTester(App);

describe('authentication (GET /v1/me)', () => {
  it('answers the source the key belongs to, which labels the connection', async () => {
    const me = await appTester(App.authentication.test, { authData: authData() });
    expect(me.name).toBe(SOURCE);
    expect(me.kind).toBe('api_key');
    expect(me.providers.map((p) => p.provider)).toEqual(expect.arrayContaining(['iclosed', 'novacal']));
    expect(JSON.stringify(me)).not.toContain(authData().api_key);
    expect(App.authentication.connectionLabel).toBe('{{bundle.inputData.name}}');
  });

  it('tells another source apart by its key', async () => {
    const me = await appTester(App.authentication.test, { authData: authData(OTHER_SOURCE) });
    expect(me.name).toBe(OTHER_SOURCE);
    expect(me.providers.map((p) => p.provider)).toEqual(['novacal']);
  });

  it('fails with a message about the key when the key is wrong', async () => {
    const bundle = { authData: { ...authData(), api_key: 'sandbox-key-not-registered-0000' } };
    const error = await appTester(App.authentication.test, bundle).catch((e) => e);
    expect(error).toBeInstanceOf(Error);
    expect(error.name).toBe('AppError');
    const body = JSON.parse(error.message);
    expect(body.status).toBe(401);
    expect(body.message).toContain('API key');
  });

  it('fills the provider and account dropdowns from /v1/me', async () => {
    const providers = await appTester(App.triggers.provider_choices.operation.perform, { authData: authData() });
    expect(providers).toEqual(expect.arrayContaining([{ id: 'novacal', name: 'NovaCal' }]));
    const accounts = await appTester(App.triggers.account_choices.operation.perform, {
      authData: authData(),
      inputData: { provider: 'novacal' },
    });
    expect(accounts.map((a) => a.id)).toEqual(expect.arrayContaining(['default']));
    const onlyIclosed = await appTester(App.triggers.account_choices.operation.perform, {
      authData: authData(),
      inputData: { provider: 'iclosed' },
    });
    expect(onlyIclosed).toEqual([{ id: 'default', name: 'default (iClosed)' }]);
  });
});
