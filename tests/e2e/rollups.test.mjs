// Metric roll-ups: requests through the official OpenAI SDK (plain, a cache
// hit, simulated 503s) show in GET /api/v1/metrics/summary and /series;
// hostile query parameters are 400s; after a restart on the same data
// directory the summary, the usage totals and the failure summary are all
// still there, and new requests add to them without counting twice.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import { freePort, startServer, tempDir } from './lib/server.mjs';

const close = (a, b) => Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(b));

describe('metric roll-ups', () => {
  const dataDir = tempDir();
  let srv;
  let ok; // proxy answering from the emulator, with its cache
  let bad; // proxy whose every request gets a simulated 503
  let okClient;
  let inputTokens = 0;
  before(async () => {
    srv = await startServer({ workers: 2, dataDir });
    ok = await srv.createProxy({ name: 'ru-ok', provider: 'openai', upstream_url: 'emulator', port: await freePort(),
      config: { cache: { enabled: true } } });
    bad = await srv.createProxy({ name: 'ru-bad', provider: 'openai', upstream_url: 'emulator', port: await freePort(),
      config: { cache: { enabled: false }, error_injection: { '503_rate': 1 } } });
    okClient = new OpenAI({ baseURL: `http://127.0.0.1:${ok.port}/v1`, apiKey: 'sk-rollup-test', maxRetries: 0 });
    const badClient = new OpenAI({ baseURL: `http://127.0.0.1:${bad.port}/v1`, apiKey: 'sk-rollup-test', maxRetries: 0 });
    for (let i = 0; i < 3; i++) {
      const r = await okClient.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: `roll ${i}` }] });
      inputTokens += r.usage.prompt_tokens;
    }
    // the same prompt again: a cache hit, which bills nothing
    await okClient.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'roll 0' }] });
    for (let i = 0; i < 3; i++) {
      await assert.rejects(
        badClient.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: `fail ${i}` }] }),
        (e) => e.status === 503,
      );
    }
  });
  after(async () => {
    await srv?.stop();
  });

  const summary = async (q = '') => {
    const r = await srv.api('GET', `/api/v1/metrics/summary${q}`);
    assert.equal(r.status, 200, r.text);
    return r.json;
  };

  function checkSummary(s) {
    assert.equal(s.window, '24h');
    assert.equal(s.requests, 7);
    assert.ok(Math.abs(s.requests_per_minute - 7 / 1440) < 1e-6, String(s.requests_per_minute));
    assert.deepEqual({ hits: s.cache.hits, misses: s.cache.misses }, { hits: 1, misses: 3 });
    assert.ok(close(s.cache.hit_rate, 0.25));
    assert.equal(s.errors.simulated, 3);
    assert.equal(s.errors.upstream, 0);
    assert.equal(s.errors.total, 3);
    assert.ok(close(s.errors.rate, 0.4286), String(s.errors.rate));
    assert.equal(s.tokens.input, inputTokens, 'the hit adds no tokens');
    assert.ok(s.cost_usd > 0);
    assert.ok(s.latency_ms.p50 > 0 && s.latency_ms.p50 <= s.latency_ms.p95 && s.latency_ms.p95 <= s.latency_ms.p99);
    assert.equal(s.proxies.total, 2);
    assert.equal(s.proxies.running, 2);
    assert.equal(s.proxies.stopped, 0);
    assert.ok(Number.isInteger(s.in_flight) && s.in_flight >= 0);
  }

  test('the summary counts requests, the hit, the simulated errors, tokens and latency', async () => {
    checkSummary(await summary());
    const one = await summary(`?proxy_id=${bad.id}&window=1h`);
    assert.equal(one.proxy_id, bad.id);
    assert.equal(one.window, '1h');
    assert.equal(one.requests, 3);
    assert.equal(one.errors.simulated, 3);
    assert.ok(close(one.errors.simulated_rate, 1));
    assert.equal(one.cache.hit_rate, null, 'no lookups: no rate');
    const none = await summary('?proxy_id=999999');
    assert.equal(none.requests, 0);
    assert.equal(none.latency_ms.p50, null);
  });

  test('series: one point per bucket of the window, the requests in them', async () => {
    for (const [w, res, n] of [['1h', 60, 60], ['24h', 900, 96], ['7d', 3600, 168]]) {
      const r = await srv.api('GET', `/api/v1/metrics/series?window=${w}`);
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.resolution_s, res);
      assert.equal(r.json.points.length, n);
      const times = r.json.points.map((p) => Date.parse(p.t));
      for (let i = 1; i < n; i++) assert.equal(times[i] - times[i - 1], res * 1000);
      assert.equal(r.json.points.reduce((a, p) => a + p.requests, 0), 7, w);
      assert.equal(r.json.points.reduce((a, p) => a + p.errors_simulated, 0), 3, w);
      const busy = r.json.points.filter((p) => p.requests > 0);
      assert.ok(busy.every((p) => p.p50_ms > 0 && p.p99_ms >= p.p50_ms));
      assert.ok(r.json.points.filter((p) => p.requests === 0).every((p) => p.p50_ms === null));
    }
    const mine = await srv.api('GET', `/api/v1/metrics/series?window=1h&proxy_id=${ok.id}`);
    assert.equal(mine.json.points.reduce((a, p) => a + p.cache_hits, 0), 1);
    assert.equal(mine.json.points.reduce((a, p) => a + p.requests, 0), 4);
  });

  test('unknown or hostile parameters are 400s in the API error format; no token is 401', async () => {
    const cases = [
      ['window=2h', 'window'], ['window=1h&window=7d', 'window'], ['window=' + 'x'.repeat(5000), undefined],
      ['proxy_id=abc', 'proxy_id'], ['proxy_id=0', 'proxy_id'], ['proxy_id=-1', 'proxy_id'],
      ['proxy_id=99999999999999999999', 'proxy_id'], ['proxy_id=1%00', 'proxy_id'], ['proxy_id=1&proxy_id=2', 'proxy_id'],
      ['limit=5', undefined], ['window', 'window'], ['%3Cscript%3E=1', undefined],
    ];
    for (const path of ['summary', 'series']) {
      for (const [q, field] of cases) {
        const r = await srv.api('GET', `/api/v1/metrics/${path}?${q}`);
        assert.equal(r.status, 400, `${path}?${q.slice(0, 40)}`);
        assert.equal(r.json.error.code, 'invalid_field');
        if (field) assert.equal(r.json.error.field, field);
        assert.ok(!r.text.includes('<script>') && !r.text.includes('xxxxxxxx'));
      }
      const r = await srv.api('GET', `/api/v1/metrics/${path}`, undefined, { auth: null });
      assert.equal(r.status, 401);
    }
  });

  test('after a restart on the same data directory the totals are all still there', async () => {
    const usageBefore = (await srv.api('GET', `/api/v1/proxies/${ok.id}/usage`)).json;
    const failBefore = (await srv.api('GET', `/api/v1/proxies/${bad.id}/failures`)).json;
    assert.equal(usageBefore.totals.requests, 3, 'the hit is not billed');
    assert.equal(failBefore.failures.error_injection, 3);
    await srv.stop();
    srv = await startServer({ workers: 2, dataDir });

    checkSummary(await summary());
    const usage = (await srv.api('GET', `/api/v1/proxies/${ok.id}/usage`)).json;
    assert.deepEqual(usage.totals, usageBefore.totals);
    assert.deepEqual(usage.models, usageBefore.models);
    assert.ok(Date.parse(usage.since) <= Date.parse(usageBefore.since));
    const fails = (await srv.api('GET', `/api/v1/proxies/${bad.id}/failures`)).json;
    assert.deepEqual(fails.failures, failBefore.failures);

    // one more request: added once, to the earlier run's totals
    okClient = new OpenAI({ baseURL: `http://127.0.0.1:${ok.port}/v1`, apiKey: 'sk-rollup-test', maxRetries: 0 });
    const r = await okClient.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'after restart' }] });
    const after = (await srv.api('GET', `/api/v1/proxies/${ok.id}/usage`)).json;
    assert.equal(after.totals.requests, 4);
    assert.equal(after.totals.input_tokens, usageBefore.totals.input_tokens + r.usage.prompt_tokens);
    assert.equal(after.models.length, 1, 'one model, merged with the earlier run\'s');
    assert.equal((await summary()).requests, 8);
  });
});

describe('roll-ups read their writes', () => {
  let srv;
  before(async () => {
    srv = await startServer({ workers: 2 });
  });
  after(async () => {
    await srv?.stop();
  });

  test('a request is in the summary, the usage and the failures as soon as its answer is', async () => {
    // Each answer (a plain one, a stream, a simulated 503) is counted before
    // its last bytes leave: what is read right after it has it.
    const ok = await srv.createProxy({ name: 'ryw-ok', provider: 'openai', upstream_url: 'emulator', port: await freePort(),
      config: { cache: { enabled: false } } });
    const bad = await srv.createProxy({ name: 'ryw-bad', provider: 'openai', upstream_url: 'emulator', port: await freePort(),
      config: { cache: { enabled: false }, error_injection: { '503_rate': 1 } } });
    const okClient = new OpenAI({ baseURL: `http://127.0.0.1:${ok.port}/v1`, apiKey: 'sk-ryw', maxRetries: 0 });
    const badClient = new OpenAI({ baseURL: `http://127.0.0.1:${bad.port}/v1`, apiKey: 'sk-ryw', maxRetries: 0 });
    const requests = async () => (await srv.api('GET', '/api/v1/metrics/summary')).json.requests;
    let n = 0;
    for (let i = 0; i < 20; i++) {
      await okClient.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: `ryw ${i}` }] });
      assert.equal(await requests(), ++n, `plain ${i}`);
      assert.equal((await srv.api('GET', `/api/v1/proxies/${ok.id}/usage`)).json.totals.requests, 2 * i + 1, `usage ${i}`);
      const st = await okClient.chat.completions.create({ model: 'gpt-4o-mini', stream: true,
        stream_options: { include_usage: true }, messages: [{ role: 'user', content: `ryw stream ${i}` }] });
      for await (const _ of st);
      assert.equal(await requests(), ++n, `stream ${i}`);
      await assert.rejects(badClient.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: `ryw ${i}` }] }),
        (e) => e.status === 503);
      assert.equal(await requests(), ++n, `503 ${i}`);
      assert.equal((await srv.api('GET', `/api/v1/proxies/${bad.id}/failures`)).json.failures.error_injection, i + 1);
    }
  });
});
