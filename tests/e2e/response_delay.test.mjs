// response_delay: a seeded uniform delay before the response head, reported
// in X-Response-Delay-Ms and counted as "delayed" in GET .../failures; for
// plain answers and streams, with a client that leaves during the delay,
// and with the stage dropped by middleware_pipeline.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import { httpRequest, now, waitFor } from './lib/http.mjs';
import { freePort, startServer } from './lib/server.mjs';
import { reply, startUpstream } from './lib/upstream.mjs';

const CHAT = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });

let srv;
let up;
before(async () => {
  srv = await startServer({ workers: 2 });
  up = await startUpstream();
});
after(async () => {
  await up?.close();
  await srv?.stop();
});

async function emulatorProxy(name, config) {
  const port = await freePort();
  const p = await srv.createProxy({ name, provider: 'openai', upstream_url: 'emulator', port, config });
  return { ...p, base: `http://127.0.0.1:${port}` };
}

async function timedChat(base, headers = {}) {
  const t0 = now();
  const r = await httpRequest(`${base}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: CHAT,
  });
  return { ...r, ms: now() - t0 };
}

async function failures(id) {
  const r = await srv.api('GET', `/api/v1/proxies/${id}/failures`);
  assert.equal(r.status, 200);
  return r.json;
}

describe('response_delay', () => {
  test('every response waits a uniform delay in [min_ms, max_ms], reported in X-Response-Delay-Ms; the seed repeats it', async () => {
    const cfg = { seed: 42, response_delay: { enabled: true, min_ms: 100, max_ms: 250 } };
    const p = await emulatorProxy('rd-bounds', cfg);
    const seen = [];
    for (let i = 0; i < 6; i++) {
      const r = await timedChat(p.base);
      assert.equal(r.status, 200);
      const ms = Number(r.headers['x-response-delay-ms']);
      assert.ok(Number.isInteger(ms) && ms >= 100 && ms <= 250, `delay ${r.headers['x-response-delay-ms']}`);
      assert.ok(r.ms >= ms - 2, `answered after ${r.ms} ms, announced ${ms}`);
      assert.ok(r.ms < ms + 600, `answered after ${r.ms} ms, announced ${ms}`);
      assert.equal(r.headers['x-rubberduck-failure'], 'delayed');
      seen.push(ms);
    }
    assert.ok(new Set(seen).size > 1, `six draws all equal: ${seen}`);
    // The same seed under a new configuration numbers requests from 1 again:
    // the same delays in the same order.
    await srv.putConfig(p.id, cfg);
    const again = [];
    for (let i = 0; i < 6; i++) again.push(Number((await timedChat(p.base)).headers['x-response-delay-ms']));
    assert.deepEqual(again, seen);
    const f = await failures(p.id);
    assert.equal(f.proxy_id, p.id);
    assert.equal(f.failures.delayed, 12);
    for (const [type, n] of Object.entries(f.failures)) if (type !== 'delayed') assert.equal(n, 0, type);
    assert.deepEqual(Object.keys(f.failures).sort(), ['delayed', 'error_injection', 'hang', 'ip_blocked', 'rate_limited',
      'scenario', 'stream_cut', 'stream_duplicate', 'stream_error', 'stream_malformed', 'stream_stall', 'timeout']);
    assert.equal(f.retry_audit.retries_total, 0);
    assert.equal(f.retry_audit.early_retries, 0);
    assert.equal(f.retry_audit.honoured, 0);
  });

  test('a stream: the head and the first event wait for the delay, the events then flow', async () => {
    const p = await emulatorProxy('rd-stream', { response_delay: { min_ms: 300, max_ms: 300 } });
    const ai = new OpenAI({ baseURL: `${p.base}/v1`, apiKey: 'sk-x', maxRetries: 0 });
    const t0 = now();
    const { data: stream, response } = await ai.chat.completions
      .create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'stream please' }], stream: true })
      .withResponse();
    const head = now() - t0;
    assert.equal(response.headers.get('x-response-delay-ms'), '300');
    assert.ok(head >= 298, `head after ${head} ms`);
    let text = '';
    for await (const ch of stream) text += ch.choices[0]?.delta?.content ?? '';
    assert.ok(text.length > 0);
    assert.ok(now() - t0 < 3000);
  });

  test('a client that leaves during the delay: no upstream call, counted, the proxy serves on', async () => {
    const port = await freePort();
    const p = await srv.createProxy({ name: 'rd-gone', provider: 'openai', upstream_url: up.url, port,
      config: { response_delay: { min_ms: 800, max_ms: 800 } } });
    up.handle(reply.json({ id: 'c', object: 'chat.completion', choices: [] }));
    const before = up.requests.length;
    await new Promise((resolve) => {
      const req = http.request(`http://127.0.0.1:${port}/v1/chat/completions`,
        { method: 'POST', agent: false, headers: { 'content-type': 'application/json' } });
      req.on('error', () => resolve());
      req.end(CHAT);
      setTimeout(() => { req.destroy(); resolve(); }, 150);
    });
    await new Promise((r) => setTimeout(r, 1000)); // past the delay: nothing may go upstream
    assert.equal(up.requests.length, before, 'the abandoned request went upstream');
    await waitFor(async () => (await failures(p.id)).failures.delayed === 1, 3000, 'the delayed count');
    const r = await timedChat(`http://127.0.0.1:${port}`);
    assert.equal(r.status, 200);
    assert.ok(r.ms >= 798);
    assert.equal(up.requests.length, before + 1);
    assert.equal((await failures(p.id)).failures.delayed, 2);
  });

  test('cache_only: a miss is not delayed, a cache hit is (the delay hides how fast hits are)', async () => {
    const p = await emulatorProxy('rd-cache-only', { response_delay: { cache_only: true, min_ms: 600, max_ms: 600 } });
    const miss = await timedChat(p.base, { 'x-test': 'cache-only' });
    assert.equal(miss.status, 200);
    assert.equal(miss.headers['x-cache'], 'MISS');
    assert.equal(miss.headers['x-response-delay-ms'], undefined);
    assert.ok(miss.ms < 500, `miss took ${miss.ms} ms`);
    const hit = await timedChat(p.base);
    assert.equal(hit.status, 200);
    assert.equal(hit.headers['x-cache'], 'HIT');
    assert.equal(hit.headers['x-response-delay-ms'], '600');
    assert.ok(hit.ms >= 598, `hit took ${hit.ms} ms`);
    assert.deepEqual(hit.body, miss.body);
    assert.equal((await failures(p.id)).failures.delayed, 1);
    /* bypassing the cache is not a hit: not delayed */
    const by = await timedChat(p.base, { 'x-rubberduck-cache': 'bypass' });
    assert.equal(by.headers['x-cache'], 'BYPASS');
    assert.ok(by.ms < 500, `bypass took ${by.ms} ms`);
  });

  test('not delayed: enabled false, response_processing dropped, min 0 max 0', async () => {
    const cases = [
      { response_delay: { enabled: false, min_ms: 2000, max_ms: 2000 } },
      { response_delay: { min_ms: 2000, max_ms: 2000 },
        middleware_pipeline: ['rate_limiting', 'failure_simulation', 'provider_forwarding'] },
    ];
    const p = await emulatorProxy('rd-off', {});
    for (const c of cases) {
      await srv.putConfig(p.id, c);
      const r = await timedChat(p.base);
      assert.equal(r.status, 200);
      assert.equal(r.headers['x-response-delay-ms'], undefined, JSON.stringify(c));
      assert.ok(r.ms < 1500, `${JSON.stringify(c)}: ${r.ms} ms`);
    }
    await srv.putConfig(p.id, { response_delay: { min_ms: 0, max_ms: 0 } });
    const r = await timedChat(p.base);
    assert.equal(r.headers['x-response-delay-ms'], '0');
    assert.equal(r.headers['x-rubberduck-failure'], undefined);
    assert.equal((await failures(p.id)).failures.delayed, 0);
  });

  test('failure.reveal false: delayed all the same, but no header tells it', async () => {
    const p = await emulatorProxy('rd-hide', { failure: { reveal: false }, response_delay: { min_ms: 300, max_ms: 300 } });
    const r = await timedChat(p.base);
    assert.ok(r.ms >= 298, `${r.ms} ms`);
    assert.equal(r.headers['x-response-delay-ms'], undefined);
    assert.equal(r.headers['x-rubberduck-failure'], undefined);
    assert.equal((await failures(p.id)).failures.delayed, 1);
  });

  test('min_ms above max_ms, or out of range: 400 naming the field', async () => {
    const p = await emulatorProxy('rd-bad', {});
    for (const [doc, field] of [
      [{ response_delay: { min_ms: 300, max_ms: 100 } }, 'response_delay.max_ms'],
      [{ response_delay: { min_ms: -1 } }, 'response_delay.min_ms'],
      [{ response_delay: { max_ms: 600001 } }, 'response_delay.max_ms'],
      [{ response_delay: { jitter: 1 } }, 'response_delay.jitter'],
    ]) {
      const r = await srv.api('PUT', `/api/v1/proxies/${p.id}/config`, doc);
      assert.equal(r.status, 400, JSON.stringify(doc));
      assert.equal(r.json.error.field, field, r.text);
    }
  });

  test('GET .../failures of an unknown proxy is 404', async () => {
    const r = await srv.api('GET', '/api/v1/proxies/999999/failures');
    assert.equal(r.status, 404);
  });
});
