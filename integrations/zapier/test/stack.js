'use strict';

// The local stack these tests run against: `RELAY_STACK` (the JSON of `.local/stack.json`, set by
// tests/integration/test_zapier_app.py), else the `.local/stack.json` of a running `make run`.

const fs = require('fs');
const path = require('path');

const STACK_FILE = path.resolve(__dirname, '..', '..', '..', '.local', 'stack.json');
// The demo sources (local/seed.py): the Zapier app's (iClosed and NovaCal, event subscriptions on),
// and another with NovaCal only.
const SOURCE = 'zapier-app-demo';
const OTHER_SOURCE = 'website-demo';

const loadStack = () => {
  const raw = process.env.RELAY_STACK || (fs.existsSync(STACK_FILE) && fs.readFileSync(STACK_FILE, 'utf8'));
  if (!raw) {
    throw new Error('No local stack: run `make run` first, or the tests through pytest (make test).');
  }
  return JSON.parse(raw);
};

const stack = loadStack();

const authData = (source = SOURCE) => ({ api_url: stack.api_url, api_key: stack.sources[source].api_key });

const sandbox = (provider) => stack.providers[provider];

const json = async (url, options = {}) => {
  const response = await fetch(url, options);
  if (!response.ok) throw new Error(`${options.method || 'GET'} ${url}: HTTP ${response.status}`);
  return response.status === 204 ? null : response.json();
};

// The provider calls the sandbox received that change `bookingId` (not reads).
const movesOf = async (provider, bookingId) => {
  const calls = await json(`${sandbox(provider).url}/_sandbox/calls`);
  return calls.filter((call) => call.method !== 'GET' && JSON.stringify(call).includes(String(bookingId)));
};

const fault = (provider, spec) =>
  json(`${sandbox(provider).url}/_sandbox/faults`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(spec),
  });

const clearFaults = (provider) => json(`${sandbox(provider).url}/_sandbox/faults`, { method: 'DELETE' });

const sinkUrl = () => stack.callback_sink.url;

const deliveriesAt = async (hookPath) =>
  (await json(`${sinkUrl()}/_sink/deliveries`)).filter((d) => d.path === hookPath);

const waitFor = async (check, seconds) => {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const found = await check();
    if (found || Date.now() > deadline) return found;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
};

// A new start no earlier run used: `days` ahead at a random minute, as wall time (no offset).
const futureStart = (days) => {
  const day = new Date(Date.now() + days * 86400 * 1000).toISOString().slice(0, 10);
  const minutes = 8 * 60 + Math.floor(Math.random() * 8 * 60);
  const hh = String(Math.floor(minutes / 60)).padStart(2, '0');
  const mm = String(minutes % 60).padStart(2, '0');
  return `${day}T${hh}:${mm}:00`;
};

module.exports = {
  OTHER_SOURCE,
  SOURCE,
  authData,
  clearFaults,
  deliveriesAt,
  fault,
  futureStart,
  movesOf,
  sandbox,
  sinkUrl,
  stack,
  waitFor,
};
