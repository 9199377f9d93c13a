// Failure-simulation stages together (issue 7): each stage has its own suite;
// these are the cases where two of them meet on one request or one client.
// - a scenario entry and an X-Rubberduck-Fault header asking for a stream
//   fault, carried out by the stream_faults stage (no stream_faults block);
// - ip_filter refusing before rate_limit counts, rate_limit's 429s feeding
//   the retry audit of GET /api/v1/proxies/{id}/failures;
// - the OpenAI SDK retrying a rate-limited request early is counted as an
//   early retry, a client that waits is counted as honouring it.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import http from 'node:http';
import OpenAI from 'openai';
import { freePort, startServer } from './lib/server.mjs';

const CHAT = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] };
let srv;
let proxy;
let port;

before(async () => {
  srv = await startServer({ workers: 2 });
  port = await freePort();
  proxy = await srv.createProxy({ name: 'combos', provider: 'openai', upstream_url: 'emulator', port });
});
after(async () => {
  await srv?.stop();
});

const url = () => `http://127.0.0.1:${port}/v1/chat/completions`;

/** POSTs body from localAddress (default 127.0.0.1): {status, headers, text, cut} (cut: the body ended in an error). */
function post(body, headers = {}, localAddress = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const req = http.request(
      { host: '127.0.0.1', port, path: '/v1/chat/completions', method: 'POST', agent: false, localAddress,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data), ...headers } },
      (res) => {
        let text = '';
        let cut = false;
        res.setEncoding('utf8');
        res.on('data', (c) => (text += c));
        res.on('error', () => (cut = true));
        res.on('aborted', () => (cut = true));
        res.on('close', () => resolve({ status: res.statusCode, headers: { get: (n) => res.headers[n] ?? null }, text, cut }));
      },
    );
    req.setTimeout(10000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(data);
  });
}

const failures = async () => (await srv.api('GET', `/api/v1/proxies/${proxy.id}/failures`)).json;

test('a scenario stream fault and an override stream fault are carried out without a stream_faults block', async () => {
  await srv.putConfig(proxy.id, {
    failure: { request_overrides: true },
    scenario: [{ match: { header: { 'x-test-case': 'cut' } }, respond: { stream_fault: 'cut', after_events: 2 } }],
  });
  const cut = await post({ ...CHAT, stream: true }, { 'x-test-case': 'cut' });
  assert.equal(cut.status, 200);
  assert.equal(cut.headers.get('x-rubberduck-failure'), 'stream_cut');
  const events = cut.text.split('\n\n').filter((e) => e.startsWith('data: '));
  assert.equal(events.length, 2, cut.text);
  assert.ok(!cut.text.includes('[DONE]'));

  const err = await post({ ...CHAT, stream: true }, { 'x-rubberduck-fault': 'error_after=1' });
  assert.equal(err.headers.get('x-rubberduck-failure'), 'stream_error');
  const evs = err.text.split('\n\n').filter((e) => e.startsWith('data: '));
  assert.equal(evs.length, 2, err.text);
  assert.ok(JSON.parse(evs[1].slice(6)).error.message);

  const plain = await post({ ...CHAT, stream: true });
  assert.equal(plain.headers.get('x-rubberduck-failure'), null);
  assert.ok(plain.text.includes('data: [DONE]'));
});

test('ip_filter refuses before rate_limit counts; rate-limited 429s feed the retry audit', async () => {
  await srv.putConfig(proxy.id, {
    ip_filtering: { mode: 'allowlist', allowed_ips: ['127.0.0.1'] },
    rate_limiting: { requests_per_minute: 2, key: 'ip' },
  });
  const before = await failures();
  // A refused client does not use the allowed client's window.
  for (let i = 0; i < 3; i++) assert.equal((await post(CHAT, {}, '127.0.0.2')).status, 403);
  assert.equal((await post(CHAT)).status, 200);
  assert.equal((await post(CHAT)).status, 200);
  const limited = await post(CHAT);
  assert.equal(limited.status, 429);
  assert.ok(Number(limited.headers.get('retry-after')) >= 1);
  assert.equal(JSON.parse(limited.text).error.type, 'requests');
  // The same client at once: an early retry.
  assert.equal((await post(CHAT)).status, 429);
  const f = await failures();
  assert.equal(f.failures.ip_blocked - before.failures.ip_blocked, 3);
  assert.equal(f.failures.rate_limited - before.failures.rate_limited, 2);
  assert.equal(f.retry_audit.advertised - before.retry_audit.advertised, 2);
  assert.equal(f.retry_audit.early_retries - before.retry_audit.early_retries, 1);
});

test('the OpenAI SDK retrying an injected 429 honours Retry-After, as the audit shows', async () => {
  await srv.putConfig(proxy.id, {
    failure: { request_overrides: true },
    scenario: [{ match: { nth: 1 }, respond: { status: 429, retry_after_s: 1 } }],
  });
  const before = await failures();
  const client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'sk-combo', maxRetries: 2 });
  const t0 = Date.now();
  const r = await client.chat.completions.create(CHAT);
  assert.ok(r.choices[0].message.content.length > 0);
  assert.ok(Date.now() - t0 >= 900, 'the SDK waited for Retry-After');
  const f = await failures();
  assert.equal(f.retry_audit.advertised - before.retry_audit.advertised, 1);
  assert.equal(f.retry_audit.honoured - before.retry_audit.honoured, 1);
  assert.equal(f.retry_audit.early_retries - before.retry_audit.early_retries, 0);
});
