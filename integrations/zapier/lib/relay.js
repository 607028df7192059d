'use strict';

// Talking to the relay: its URL, one request helper, and how its RFC 9457 problems become Zapier's
// error kinds (docs/zapier.md, "Errors").

// A problem without Retry-After that still asks to wait (409 in_progress / queued): this long.
const DEFAULT_RETRY_SECONDS = 60;

// The relay's request fields -> the labels a Zap's user sees, so a halted run names the field.
const FIELD_LABELS = {
  provider: 'Provider',
  account: 'Account',
  booking_id: 'Booking ID',
  start: 'New start',
  date: 'New date',
  time: 'New time',
  timezone: 'Time zone',
  reason: 'Reason',
  notes: 'Notes',
  dry_run: 'Dry run',
  limit: 'Limit',
  status: 'Status',
  url: 'Webhook URL',
  events: 'Events',
};

const baseUrl = (bundle) => String(bundle.authData.api_url || '').replace(/\/+$/, '');

const retryAfterSeconds = (response, problem) => {
  const fromBody = Number(problem && problem.retry_after);
  if (Number.isFinite(fromBody) && fromBody > 0) return Math.ceil(fromBody);
  const fromHeader = Number(response.getHeader('retry-after'));
  if (Number.isFinite(fromHeader) && fromHeader > 0) return Math.ceil(fromHeader);
  return DEFAULT_RETRY_SECONDS;
};

const problemOf = (response) => {
  try {
    const parsed = JSON.parse(response.content || 'null');
    return parsed && typeof parsed === 'object' ? parsed : {};
  } catch (e) {
    return {};
  }
};

// "Booking ID: The provider has no booking ..." for each field at fault, else the problem's detail.
const messageOf = (response, problem) => {
  const errors = Array.isArray(problem.errors) ? problem.errors : [];
  const fields = errors.map((e) => `${FIELD_LABELS[e.field] || e.field}: ${e.message}`);
  const detail = problem.detail || problem.title || `The relay answered HTTP ${response.status}.`;
  return fields.length ? `${detail} ${fields.join('; ')}` : detail;
};

// Statuses that mean "this request, as it is, will never succeed": the run halts (no autoreplay).
const HALTING = new Set([400, 403, 404, 409, 410, 413, 415, 422]);

const errorFor = (z, response) => {
  const problem = problemOf(response);
  const message = messageOf(response, problem);
  const code = problem.code || `http_${response.status}`;
  if (response.status === 429) {
    return new z.errors.ThrottledError(message, retryAfterSeconds(response, problem));
  }
  if (response.status === 409 && problem.retry_after) {
    // in_progress / queued: the same request is under way; try again after it.
    return new z.errors.ThrottledError(message, retryAfterSeconds(response, problem));
  }
  if (response.status === 401) {
    return new z.errors.Error(`${message} Check the connection's API key.`, code, 401);
  }
  if (HALTING.has(response.status)) {
    return new z.errors.HaltedError(`${message} (${code})`);
  }
  // 5xx and anything unexpected: an ordinary error, so Zapier's autoreplay tries the step again.
  return new z.errors.Error(message, code, response.status);
};

// One call to the relay; a non-2xx answer is thrown as the Zapier error it maps to
// (`notFound`, when given, is the answer to a 404).
const relayRequest = async (z, bundle, options) => {
  const response = await z.request({
    method: options.method || 'GET',
    url: `${baseUrl(bundle)}${options.path}`,
    params: options.params,
    body: options.body,
    headers: { Accept: 'application/json', ...(options.headers || {}) },
    skipThrowForStatus: true,
    // Our own mapping gives 429 its message and the relay's delay.
    throwForThrottlingEarly: false,
  });
  if (response.status >= 200 && response.status < 300) {
    return response.status === 204 ? {} : response.data;
  }
  if (response.status === 404 && 'notFound' in options) {
    // A search that finds nothing, or a subscription already gone: an answer, not an error.
    return options.notFound;
  }
  throw errorFor(z, response);
};

// The API key on every request (custom auth); nothing else is added to a request.
const addApiKey = (request, z, bundle) => {
  if (bundle.authData && bundle.authData.api_key) {
    request.headers = { ...(request.headers || {}), Authorization: `Bearer ${bundle.authData.api_key}` };
  }
  return request;
};

module.exports = {
  DEFAULT_RETRY_SECONDS,
  FIELD_LABELS,
  addApiKey,
  baseUrl,
  errorFor,
  relayRequest,
};
