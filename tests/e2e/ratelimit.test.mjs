// The rate_limit stage end to end (docs/failure-simulation.md, "Rate
// limiting"): exactly the ceiling admitted in a window with 1 and with 2
// workers, then the provider's native 429 with an exact Retry-After and
// X-RateLimit-* on every response; per-address and per-header windows;
// token limits on max_tokens and on the usage of finished requests; a
// runtime configuration change applying to the next request while windows
// survive a change that leaves the limits alone; the configured status,
// headers and body; and the OpenAI and Anthropic SDKs meeting the 429 the
// way they meet the real one.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { assertOpenAIError, now, waitFor } from './lib/http.mjs';
import { freePort, startServer } from './lib/server.mjs';
import { startUpstream } from './lib/upstream.mjs';

const CHAT = '/v1/chat/completions';
const chat = (extra = {}) => ({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'quack' }], ...extra });

/** POST on a fresh connection (optionally from localAddress): {status, headers, text, json}. */
function post(port, path, body, { headers = {}, localAddress, signal } = {}) {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const req = http.request(
      {
        host: '127.0.0.1', port, path, method: 'POST', agent: false, localAddress, signal,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data), ...headers },
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          let json = null;
          try {
            json = JSON.parse(text);
          } catch {
            /* not JSON */
          }
          resolve({ status: res.statusCode, headers: res.headers, text, json });
        });
      },
    );
    req.setTimeout(15000, () => req.destroy(new Error(`POST ${path} timed out`)));
    req.on('error', reject);
    req.end(data);
  });
}

const int = (r, name) => {
  assert.ok(r.headers[name] !== undefined, `missing ${name} in ${JSON.stringify(r.headers)}`);
  assert.match(r.headers[name], /^\d+$/, `${name}: ${r.headers[name]}`);
  return Number(r.headers[name]);
};

async function proxyOf(srv, name, config, { provider = 'openai', upstream_url = 'emulator' } = {}) {
  return srv.createProxy({ name, provider, upstream_url, port: await freePort(), config });
}

// "Exactly the configured count in a window, with 1 and with 2 workers":
// 20 concurrent requests on fresh connections (the kernel spreads them over
// the workers' listeners) against a ceiling of 7.
for (const workers of [1, 2]) {
  describe(`the ceiling with ${workers} worker(s)`, () => {
    let srv;
    before(async () => {
      srv = await startServer({ workers });
    });
    after(async () => {
      await srv?.stop();
    });

    test('sliding_window: exactly requests_per_minute + burst_allowance, then OpenAI 429s', async () => {
      const p = await proxyOf(srv, 'ceiling', { rate_limiting: { requests_per_minute: 5, burst_allowance: 2 } });
      const rs = await Promise.all(Array.from({ length: 20 }, () => post(p.port, CHAT, chat())));
      const ok = rs.filter((r) => r.status === 200);
      const limited = rs.filter((r) => r.status === 429);
      assert.equal(ok.length, 7, `statuses: ${rs.map((r) => r.status)}`);
      assert.equal(limited.length, 13);
      // one window whatever the worker: the admitted saw 6, 5, ..., 0 remaining
      assert.deepEqual(ok.map((r) => int(r, 'x-ratelimit-remaining')).sort(), [0, 1, 2, 3, 4, 5, 6]);
      for (const r of rs) {
        assert.equal(int(r, 'x-ratelimit-limit'), 7);
        const reset = int(r, 'x-ratelimit-reset');
        assert.ok(reset >= 59 && reset <= 60, `reset ${reset}`);
      }
      for (const r of limited) {
        const e = assertOpenAIError(assert, r.json, '429 body');
        assert.equal(e.code, 'rate_limit_exceeded');
        assert.match(e.message, /Rate limit reached for requests per minute: limit 7/);
        assert.equal(int(r, 'x-ratelimit-remaining'), 0);
        // the admissions all happened within this second: 59 or 60 s to wait
        const ra = int(r, 'retry-after');
        assert.ok(ra >= 59 && ra <= 60, `retry-after ${ra}`);
        assert.equal(r.headers['x-rubberduck-failure'], 'rate_limited');
        assert.ok(r.headers['x-request-id']);
      }
      if (workers === 2) {
        // request ids start with their worker's prefix: both took requests
        const prefixes = new Set(rs.map((r) => r.headers['x-request-id'].slice(4, 12)));
        assert.equal(prefixes.size, 2, `request ids ${rs.map((r) => r.headers['x-request-id'])}`);
      }
    });

    test('token_bucket with no burst: exactly requests_per_minute at once, then limited', async () => {
      const p = await proxyOf(srv, 'bucket', {
        rate_limiting: { requests_per_minute: 4, burst_allowance: 0, algorithm: 'token_bucket' },
      });
      const rs = await Promise.all(Array.from({ length: 10 }, () => post(p.port, CHAT, chat())));
      assert.equal(rs.filter((r) => r.status === 200).length, 4, `statuses: ${rs.map((r) => r.status)}`);
      for (const r of rs.filter((x) => x.status === 429)) {
        // one unit every 15 s
        const ra = int(r, 'retry-after');
        assert.ok(ra >= 14 && ra <= 15, `retry-after ${ra}`);
      }
    });
  });
}

describe('rate limiting on a two-worker server', () => {
  let srv, up;
  before(async () => {
    srv = await startServer({ workers: 2, cacheOff: true });
    up = await startUpstream();
  });
  after(async () => {
    await up?.close();
    await srv?.stop();
  });

  test('key "ip": 127.0.0.1 and 127.0.0.2 have windows of their own', async () => {
    const p = await proxyOf(srv, 'per-ip', { rate_limiting: { requests_per_minute: 2, key: 'ip' } });
    const from = (localAddress) => post(p.port, CHAT, chat(), { localAddress });
    assert.equal((await from('127.0.0.1')).status, 200);
    assert.equal((await from('127.0.0.1')).status, 200);
    assert.equal((await from('127.0.0.1')).status, 429);
    const other = await from('127.0.0.2');
    assert.equal(other.status, 200);
    assert.equal(int(other, 'x-ratelimit-remaining'), 1);
    assert.equal((await from('127.0.0.2')).status, 200);
    assert.equal((await from('127.0.0.2')).status, 429);
  });

  test('key "header:x-api-key": one window per key value, and one for requests without it', async () => {
    const p = await proxyOf(srv, 'per-key', { rate_limiting: { requests_per_minute: 1, key: 'header:x-api-key' } });
    const withKey = (k) => post(p.port, CHAT, chat(), { headers: k === null ? {} : { 'x-api-key': k } });
    assert.equal((await withKey('sk-alpha')).status, 200);
    assert.equal((await withKey('sk-alpha')).status, 429);
    assert.equal((await withKey('sk-beta')).status, 200);
    assert.equal((await withKey(null)).status, 200);
    assert.equal((await withKey(null)).status, 429);
    assert.equal((await withKey('sk-beta')).status, 429);
  });

  test('an Anthropic proxy refuses in Anthropic\'s format; the SDK raises RateLimitError', async () => {
    const p = await proxyOf(srv, 'anthropic-rl', { rate_limiting: { requests_per_minute: 1 } }, { provider: 'anthropic' });
    const body = { model: 'claude-haiku-4-5', max_tokens: 32, messages: [{ role: 'user', content: 'quack' }] };
    const first = await post(p.port, '/v1/messages', body);
    assert.equal(first.status, 200, first.text);
    assert.equal(int(first, 'x-ratelimit-remaining'), 0);
    const r = await post(p.port, '/v1/messages', body);
    assert.equal(r.status, 429);
    assert.equal(r.json.type, 'error');
    assert.equal(r.json.error.type, 'rate_limit_error');
    assert.match(r.json.error.message, /Rate limit reached/);
    assert.ok(r.headers['request-id']);
    assert.ok(int(r, 'retry-after') >= 59);
    const client = new Anthropic({ baseURL: `http://127.0.0.1:${p.port}`, apiKey: 'sk-ant-test', maxRetries: 0 });
    await assert.rejects(client.messages.create(body), (e) => {
      assert.ok(e instanceof Anthropic.RateLimitError, `got ${e?.constructor?.name}: ${e?.message}`);
      assert.equal(e.status, 429);
      assert.equal(e.error?.error?.type, 'rate_limit_error');
      const limit = typeof e.headers?.get === 'function' ? e.headers.get('x-ratelimit-limit') : e.headers?.['x-ratelimit-limit'];
      assert.equal(limit, '1');
      return true;
    });
  });

  test('configured status, headers and body', async () => {
    const p = await proxyOf(srv, 'custom', {
      rate_limiting: {
        requests_per_minute: 1,
        rate_limit_response: { status_code: 503, headers: { 'X-Custom': 'yes' }, body: { error: 'busy', retry: true } },
      },
    });
    assert.equal((await post(p.port, CHAT, chat())).status, 200);
    const r = await post(p.port, CHAT, chat());
    assert.equal(r.status, 503);
    assert.equal(r.text, '{"error":"busy","retry":true}');
    assert.equal(r.headers['content-type'], 'application/json');
    assert.equal(r.headers['x-custom'], 'yes');
    assert.ok(int(r, 'retry-after') >= 59, 'the computed Retry-After stays unless configured');
    assert.equal(int(r, 'x-ratelimit-limit'), 1);
    // a pinned Retry-After (the product description's example) replaces the computed one
    await srv.putConfig(p.id, {
      rate_limiting: { requests_per_minute: 1, rate_limit_response: { status_code: 429, headers: { 'Retry-After': '5' } } },
    });
    const pinned = await post(p.port, CHAT, chat());
    assert.equal(pinned.status, 429, 'the unchanged limits kept the window');
    assert.equal(pinned.headers['retry-after'], '5');
    assertOpenAIError(assert, pinned.json);
  });

  test('runtime changes apply to the next request; unchanged limits keep their windows', async () => {
    const p = await proxyOf(srv, 'runtime', { rate_limiting: { requests_per_minute: 1 } });
    assert.equal((await post(p.port, CHAT, chat())).status, 200);
    assert.equal((await post(p.port, CHAT, chat())).status, 429);
    // another block changes: the limit still holds (a PUT does not reset anyone's window)
    await srv.putConfig(p.id, { rate_limiting: { requests_per_minute: 1, key: 'proxy' }, emulator: { seed: 42 } });
    assert.equal((await post(p.port, CHAT, chat())).status, 429);
    // the limits change: fresh windows, from the next request on
    await srv.putConfig(p.id, { rate_limiting: { requests_per_minute: 3 } });
    const r = await post(p.port, CHAT, chat());
    assert.equal(r.status, 200);
    assert.equal(int(r, 'x-ratelimit-limit'), 3);
    assert.equal(int(r, 'x-ratelimit-remaining'), 2);
    // disabled: no limit, no headers
    await srv.putConfig(p.id, { rate_limiting: { enabled: false, requests_per_minute: 1 } });
    for (let i = 0; i < 3; i++) {
      const x = await post(p.port, CHAT, chat());
      assert.equal(x.status, 200);
      assert.equal(x.headers['x-ratelimit-limit'], undefined);
    }
    // an invalid block is refused naming the field; the running one stays
    const bad = await srv.api('PUT', `/api/v1/proxies/${p.id}/config`, {
      rate_limiting: { requests_per_minute: 999999, burst_allowance: 5 },
    });
    assert.equal(bad.status, 400);
    assert.match(bad.text, /rate_limiting\.burst_allowance/);
  });

  test('tokens_per_minute: max_tokens reserved while in flight, usage charged at the end, refund on disconnect', async () => {
    // The upstream holds each answer until the test releases it, with the usage it is told.
    const held = [];
    up.handle((req, res) => {
      req.resume();
      res.on('close', () => (res.rdClosed = true));
      req.on('end', () => held.push(res));
    });
    const answer = (res, total) => {
      const body = JSON.stringify({
        id: 'c', object: 'chat.completion', model: 'gpt-4o-mini',
        choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }],
        usage: { prompt_tokens: total - 10, completion_tokens: 10, total_tokens: total },
      });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    };
    // The same body every time: with the cache on, C would be answered from A's stored answer.
    const nocache = { cache: { enabled: false } };
    const p = await proxyOf(srv, 'tokens', { ...nocache, rate_limiting: { requests_per_minute: 100, tokens_per_minute: 1000 } },
      { upstream_url: up.url });
    const seen = up.requests.length;
    // A reserves 600 and waits at the upstream
    const a = post(p.port, CHAT, chat({ max_tokens: 600 }));
    await waitFor(() => held.length === 1, 5000, 'A at the upstream');
    // B asks for 600 more: 400 left, 200 short at 1000 per minute -> 12 s
    const b = await post(p.port, CHAT, chat({ max_completion_tokens: 600 }));
    assert.equal(b.status, 429, b.text);
    assert.equal(int(b, 'retry-after'), 12);
    assert.equal(int(b, 'x-ratelimit-limit-tokens'), 1000);
    assert.ok(int(b, 'x-ratelimit-remaining-tokens') <= 401);
    assertOpenAIError(assert, b.json);
    assert.match(b.json.error.message, /tokens per minute/);
    assert.equal(up.requests.length, seen + 1, 'a limited request never reaches the upstream');
    // a configuration change while A runs leaves the limits alone: A's charge lands in the same bucket
    await srv.putConfig(p.id, { ...nocache, rate_limiting: { requests_per_minute: 100, tokens_per_minute: 1000 }, emulator: { seed: 1 } });
    // A finishes having used 100: 500 come back
    answer(held.shift(), 100);
    const ra = await a;
    assert.equal(ra.status, 200);
    assert.equal(int(ra, 'x-ratelimit-remaining-tokens'), 400); // at its admission
    const c = post(p.port, CHAT, chat({ max_tokens: 600 }));
    await waitFor(() => held.length === 1, 5000, 'C at the upstream');
    // C holds 600 of the ~900 left; D's 600 do not fit
    assert.equal((await post(p.port, CHAT, chat({ max_tokens: 600 }))).status, 429);
    // usage beyond the reservation counts too: C used 800 (reserved 600)
    answer(held.shift(), 800);
    assert.equal((await c).status, 200);
    const d = await post(p.port, CHAT, chat({ max_tokens: 150 }));
    assert.equal(d.status, 429, `about 100 left: ${d.headers['x-ratelimit-remaining-tokens']}`);
    // a client that goes away before the answer gets its reservation back
    await srv.putConfig(p.id, { ...nocache, rate_limiting: { requests_per_minute: 100, tokens_per_minute: 1000, key: 'ip' } });
    const ctl = new AbortController();
    const e = post(p.port, CHAT, chat({ max_tokens: 900 }), { signal: ctl.signal });
    await waitFor(() => held.length === 1, 5000, 'E at the upstream');
    assert.equal((await post(p.port, CHAT, chat({ max_tokens: 900 }))).status, 429);
    ctl.abort();
    await assert.rejects(e);
    await waitFor(() => held[0].rdClosed, 5000, 'the proxy to drop E upstream');
    held.shift();
    const f = post(p.port, CHAT, chat({ max_tokens: 900 }));
    await waitFor(() => held.length === 1, 5000, 'F at the upstream');
    answer(held.shift(), 50);
    assert.equal((await f).status, 200);
    // a cap above the whole bucket is refused at once, without Retry-After
    const big = await post(p.port, CHAT, chat({ max_tokens: 1001 }));
    assert.equal(big.status, 429);
    assert.equal(big.headers['retry-after'], undefined);
    assert.match(big.json.error.message, /Request too large/);
  });

  test('the OpenAI SDK retries the 429 after Retry-After and succeeds', async () => {
    // a bucket of 20 refilled at one request every 3 s
    const p = await proxyOf(srv, 'sdk-retry', {
      rate_limiting: { requests_per_minute: 20, algorithm: 'token_bucket' },
    });
    const burn = await Promise.all(Array.from({ length: 20 }, () => post(p.port, CHAT, chat())));
    assert.equal(burn.filter((r) => r.status === 200).length, 20);
    const attempts = [];
    const countingFetch = async (url, init) => {
      const at = now();
      const res = await fetch(url, init);
      attempts.push({ at, status: res.status, retryAfter: res.headers.get('retry-after') });
      return res;
    };
    const ai = new OpenAI({ baseURL: `http://127.0.0.1:${p.port}/v1`, apiKey: 'sk-test', maxRetries: 2, timeout: 15000, fetch: countingFetch });
    const out = await ai.chat.completions.create(chat());
    assert.equal(out.object, 'chat.completion');
    assert.equal(attempts.length, 2, JSON.stringify(attempts));
    assert.equal(attempts[0].status, 429);
    assert.equal(attempts[1].status, 200);
    const waitS = Number(attempts[0].retryAfter);
    assert.ok(waitS >= 1 && waitS <= 3, `retry-after ${waitS}`);
    // the SDK waited what the proxy advertised, and that was enough
    assert.ok(attempts[1].at - attempts[0].at >= waitS * 1000 - 50, `waited ${attempts[1].at - attempts[0].at} ms`);
    // with retries off the SDK surfaces the native error
    const strict = new OpenAI({ baseURL: `http://127.0.0.1:${p.port}/v1`, apiKey: 'sk-test', maxRetries: 0 });
    await assert.rejects(strict.chat.completions.create(chat()), (e) => {
      assert.ok(e instanceof OpenAI.RateLimitError, `got ${e?.constructor?.name}`);
      assert.equal(e.code, 'rate_limit_exceeded');
      return true;
    });
  });
});
