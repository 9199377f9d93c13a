// Scenarios and per-request triggers (issue 7, item 8): the configuration's
// "scenario" list scripts outcomes (nth, model, path, method, header), and
// with failure.request_overrides an X-Rubberduck-Fault request header asks
// for one; the official SDKs meet the provider's own errors. X-Rubberduck-*
// request headers never reach the upstream.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { BedrockRuntimeClient, ConverseCommand } from '@aws-sdk/client-bedrock-runtime';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { ApiError, GoogleGenAI } from '@google/genai';
import { httpRequest, jsonOf, now } from './lib/http.mjs';
import { freePort, startServer } from './lib/server.mjs';
import { reply, startUpstream } from './lib/upstream.mjs';

const COMPLETION = {
  id: 'chatcmpl-1',
  object: 'chat.completion',
  created: 1,
  model: 'gpt-4o',
  choices: [{ index: 0, message: { role: 'assistant', content: 'quack' }, finish_reason: 'stop' }],
  usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
};
const chat = (model = 'gpt-4o') => ({ model, messages: [{ role: 'user', content: 'hi' }] });

let srv;
let up;
before(async () => {
  srv = await startServer({ workers: 2, args: ['--log-level', 'debug'], cacheOff: true });
  up = await startUpstream(reply.json(COMPLETION));
});
after(async () => {
  await up?.close();
  await srv?.stop();
});

/** An openai proxy in front of the test upstream with config; returns {id, base}. */
async function openaiProxy(name, config) {
  const port = await freePort();
  const p = await srv.createProxy({ name, provider: 'openai', upstream_url: up.url, port, config });
  return { id: p.id, base: `http://127.0.0.1:${port}`, port };
}

/** The OpenAI SDK with a fetch that records every attempt's status and headers. */
function openai(base, opts = {}) {
  const attempts = [];
  const ai = new OpenAI({
    baseURL: `${base}/v1`,
    apiKey: 'sk-test',
    maxRetries: 0,
    timeout: 10000,
    fetch: async (url, init) => {
      const r = await fetch(url, init);
      attempts.push({ status: r.status, at: now(), failure: r.headers.get('x-rubberduck-failure'), retryAfter: r.headers.get('retry-after') });
      return r;
    },
    ...opts,
  });
  return { ai, attempts };
}

const post = (base, path, body, headers = {}, timeoutMs = 10000) =>
  httpRequest(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
    timeoutMs,
  });

describe('scenario list', () => {
  test('fail twice, then succeed: nth [1, 2] 503; the OpenAI SDK retries (honouring Retry-After) and gets the 3rd', async () => {
    const p = await openaiProxy('scn-twice', { scenario: [{ match: { nth: [1, 2] }, respond: { status: 503 } }] });
    up.clear();
    const { ai, attempts } = openai(p.base, { maxRetries: 2 });
    const t0 = now();
    const res = await ai.chat.completions.create(chat());
    const elapsed = now() - t0;
    assert.equal(res.choices[0].message.content, 'quack');
    assert.deepEqual(attempts.map((a) => a.status), [503, 503, 200]);
    assert.deepEqual(attempts.map((a) => a.failure), ['scenario', 'scenario', null]);
    assert.deepEqual(attempts.map((a) => a.retryAfter), ['1', '1', null]);
    // Retry-After: 1 was honoured twice
    assert.ok(elapsed >= 1900, `retried after ${elapsed.toFixed(0)} ms, before Retry-After`);
    assert.equal(up.requests.length, 1, 'only the 3rd attempt reaches the upstream');
    // the list is spent: the next request goes through at once
    const again = openai(p.base);
    await again.ai.chat.completions.create(chat());
    assert.deepEqual(again.attempts.map((a) => a.status), [200]);
  });

  test('the 503 is OpenAI\'s own error: the SDK surfaces it with the native message and a custom one', async () => {
    const p = await openaiProxy('scn-native', {
      scenario: [
        { match: { model: 'custom' }, respond: { status: 429, message: 'Slow down, duck.', retry_after_s: 7 } },
        { match: { nth: 1 }, respond: { status: 503 } },
      ],
    });
    const { ai } = openai(p.base);
    await assert.rejects(ai.chat.completions.create(chat()), (e) => {
      assert.ok(e instanceof OpenAI.InternalServerError);
      assert.equal(e.status, 503);
      assert.equal(e.error.type, 'server_error');
      assert.equal(e.error.code, 'service_unavailable');
      assert.match(e.message, /overloaded/);
      return true;
    });
    await assert.rejects(ai.chat.completions.create(chat('custom')), (e) => {
      assert.ok(e instanceof OpenAI.RateLimitError);
      assert.equal(e.error.message, 'Slow down, duck.');
      assert.equal(e.headers.get('retry-after'), '7');
      assert.equal(e.headers.get('x-rubberduck-failure'), 'scenario');
      return true;
    });
  });

  test('the Anthropic SDK gets an Anthropic-format 529 overloaded_error', async () => {
    const port = await freePort();
    await srv.createProxy({
      name: 'scn-anthropic',
      provider: 'anthropic',
      upstream_url: 'emulator',
      port,
      config: { scenario: [{ match: { path: '/v1/messages', method: 'POST' }, respond: { status: 529 } }] },
    });
    const ai = new Anthropic({ baseURL: `http://127.0.0.1:${port}`, apiKey: 'sk-ant-test', maxRetries: 0, timeout: 10000 });
    await assert.rejects(
      ai.messages.create({ model: 'claude-haiku-4-5', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }),
      (e) => {
        assert.ok(e instanceof Anthropic.APIError, String(e));
        assert.equal(e.status, 529);
        assert.equal(e.error.type, 'error');
        assert.equal(e.error.error.type, 'overloaded_error');
        assert.equal(e.error.error.message, 'Overloaded');
        assert.match(e.requestID ?? '', /^req_/);
        return true;
      },
    );
    // the emulator's other routes are untouched (path and method both match)
    const models = await httpRequest(`http://127.0.0.1:${port}/v1/models`);
    assert.equal(models.status, 200);
  });

  test('the Anthropic SDK retries a scripted 529 (nth 1) and gets the 2nd attempt', async () => {
    const port = await freePort();
    await srv.createProxy({
      name: 'scn-anthropic-retry',
      provider: 'anthropic',
      upstream_url: 'emulator',
      port,
      config: { scenario: [{ match: { nth: 1 }, respond: { status: 529 } }] },
    });
    const statuses = [];
    const ai = new Anthropic({
      baseURL: `http://127.0.0.1:${port}`,
      apiKey: 'sk-ant-test',
      maxRetries: 1,
      timeout: 10000,
      fetch: async (url, init) => {
        const r = await fetch(url, init);
        statuses.push(r.status);
        return r;
      },
    });
    const msg = await ai.messages.create({ model: 'claude-haiku-4-5', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(msg.type, 'message');
    assert.deepEqual(statuses, [529, 200]);
  });

  test('Bedrock and Gemini SDKs get their native errors', async () => {
    const brPort = await freePort();
    await srv.createProxy({
      name: 'scn-bedrock',
      provider: 'bedrock',
      upstream_url: 'emulator',
      port: brPort,
      config: { scenario: [{ match: { path: '*/converse' }, respond: { status: 429 } }] },
    });
    const br = new BedrockRuntimeClient({
      region: 'us-west-2',
      endpoint: `http://127.0.0.1:${brPort}`,
      credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'secret' },
      maxAttempts: 1,
      requestHandler: new NodeHttpHandler(),
    });
    await assert.rejects(
      br.send(new ConverseCommand({ modelId: 'anthropic.claude-3-haiku-20240307-v1:0', messages: [{ role: 'user', content: [{ text: 'hi' }] }] })),
      (e) => {
        assert.equal(e.name, 'ThrottlingException');
        assert.equal(e.$metadata.httpStatusCode, 429);
        return true;
      },
    );
    const gPort = await freePort();
    await srv.createProxy({
      name: 'scn-gemini',
      provider: 'gemini',
      upstream_url: 'emulator',
      port: gPort,
      config: { scenario: [{ match: { model: 'gemini-*' }, respond: { status: 503, message: 'The model is overloaded.' } }] },
    });
    const g = new GoogleGenAI({ apiKey: 'AIzaSy-test', httpOptions: { baseUrl: `http://127.0.0.1:${gPort}` } });
    await assert.rejects(g.models.generateContent({ model: 'gemini-2.0-flash', contents: 'hi' }), (e) => {
      assert.ok(e instanceof ApiError, String(e));
      assert.equal(e.status, 503);
      assert.match(e.message, /UNAVAILABLE/);
      assert.match(e.message, /The model is overloaded\./);
      return true;
    });
  });

  test('a delay scenario: measured, then the upstream answers; with a status, the error comes after the delay', async () => {
    const p = await openaiProxy('scn-delay', {
      scenario: [
        { match: { model: 'slow' }, respond: { delay_ms: 600 } },
        { match: { model: 'slow-fail' }, respond: { delay_ms: 400, status: 500 } },
      ],
    });
    up.clear();
    let t0 = now();
    let r = await post(p.base, '/v1/chat/completions', chat('fast'));
    const fast = now() - t0;
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-rubberduck-failure'], undefined);
    t0 = now();
    r = await post(p.base, '/v1/chat/completions', chat('slow'));
    const slow = now() - t0;
    assert.equal(r.status, 200);
    assert.equal(jsonOf(r.body).choices[0].message.content, 'quack');
    assert.equal(r.headers['x-rubberduck-failure'], 'scenario');
    assert.ok(slow >= 600, `delayed ${slow.toFixed(0)} ms`);
    assert.ok(slow < 600 + 1500, `delayed ${slow.toFixed(0)} ms`);
    assert.ok(fast < 400, `an unmatched request took ${fast.toFixed(0)} ms`);
    t0 = now();
    r = await post(p.base, '/v1/chat/completions', chat('slow-fail'));
    assert.ok(now() - t0 >= 400);
    assert.equal(r.status, 500);
    assert.equal(jsonOf(r.body).error.type, 'server_error');
    assert.equal(r.headers['x-rubberduck-failure'], 'scenario');
    assert.equal(up.requests.length, 2, 'the failed request never reached the upstream');
  });

  test('a delayed request whose client leaves, and a configuration change during a delay', async () => {
    const p = await openaiProxy('scn-delay-change', { scenario: [{ respond: { delay_ms: 700 } }] });
    up.clear();
    // the client gives up during the delay: no upstream call follows
    const ac = new AbortController();
    const gone = post(p.base, '/v1/chat/completions', chat()).catch((e) => e);
    const abandoned = httpRequest(`${p.base}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(chat()),
      signal: ac.signal,
    }).catch((e) => e);
    setTimeout(() => ac.abort(), 100);
    await abandoned;
    // the configuration is replaced while the other request waits: it keeps its delay
    await srv.putConfig(p.id, {});
    const t0 = now();
    const quick = await post(p.base, '/v1/chat/completions', chat());
    assert.equal(quick.status, 200);
    assert.ok(now() - t0 < 500, 'the new configuration has no delay');
    const waited = await gone;
    assert.equal(waited.status, 200);
    assert.equal(waited.headers['x-rubberduck-failure'], 'scenario');
    await new Promise((r) => setTimeout(r, 800));
    assert.equal(up.requests.length, 2, 'the abandoned request must not reach the upstream');
  });

  test('a hang: the OpenAI SDK times out by its own setting; no upstream call', async () => {
    const p = await openaiProxy('scn-hang', { scenario: [{ match: { model: 'hang-*' }, respond: { hang: true } }] });
    up.clear();
    const { ai } = openai(p.base, { timeout: 500 });
    const t0 = now();
    await assert.rejects(ai.chat.completions.create(chat('hang-please')), (e) => {
      assert.ok(e instanceof OpenAI.APIConnectionTimeoutError, String(e));
      return true;
    });
    const took = now() - t0;
    assert.ok(took >= 450 && took < 3000, `timed out after ${took.toFixed(0)} ms`);
    assert.equal(up.requests.length, 0);
    // other models pass
    const res = await ai.chat.completions.create(chat('gpt-4o'));
    assert.equal(res.choices[0].message.content, 'quack');
  });

  test('path, model, method and header conditions; first match wins', async () => {
    const p = await openaiProxy('scn-match', {
      scenario: [
        { match: { header: { 'X-Test-Case': 'boom' } }, respond: { status: 500, message: 'boom' } },
        { match: { model: 'gpt-4o-mini*', path: '/v1/chat/*' }, respond: { status: 429 } },
        { match: { path: '/v1/embeddings' }, respond: { status: 400, message: 'no embeddings today' } },
        { match: { method: 'GET', path: '/v1/models' }, respond: { status: 404 } },
        { match: { path: '/v1/chat/*' }, respond: { status: 418 } },
      ],
    });
    const status = async (path, body, headers) => (await post(p.base, path, body, headers)).status;
    assert.equal(await status('/v1/chat/completions', chat('gpt-4o-mini-2024-07-18')), 429);
    assert.equal(await status('/v1/chat/completions', chat('gpt-4o')), 418);
    assert.equal(await status('/v1/completions', chat('gpt-4o-mini')), 200);
    const emb = await post(p.base, '/v1/embeddings', { model: 'text-embedding-3-small', input: 'x' });
    assert.equal(emb.status, 400);
    assert.equal(jsonOf(emb.body).error.message, 'no embeddings today');
    assert.equal((await httpRequest(`${p.base}/v1/models`)).status, 404);
    // header names case-insensitive; the first entry wins over the later ones
    assert.equal(await status('/v1/chat/completions', chat('gpt-4o-mini'), { 'x-test-case': 'boom' }), 500);
    assert.equal(await status('/v1/chat/completions', chat('gpt-4o-mini'), { 'x-test-case': 'Boom' }), 429);
  });

  test('failure.reveal false: the scripted error carries nothing that tells it from the provider\'s', async () => {
    const p = await openaiProxy('scn-hidden', { failure: { reveal: false }, scenario: [{ respond: { status: 503 } }] });
    const r = await post(p.base, '/v1/chat/completions', chat());
    assert.equal(r.status, 503);
    assert.equal(r.headers['retry-after'], '1');
    assert.equal(r.headers['x-rubberduck-failure'], undefined);
    assert.deepEqual(Object.keys(r.headers).filter((h) => /rubberduck/i.test(h)), []);
  });

  test('a configuration PUT starts nth again', async () => {
    const doc = { scenario: [{ match: { nth: [1] }, respond: { status: 503 } }] };
    const p = await openaiProxy('scn-reset', doc);
    const s = async () => (await post(p.base, '/v1/chat/completions', chat())).status;
    assert.deepEqual([await s(), await s(), await s()], [503, 200, 200]);
    await srv.putConfig(p.id, doc);
    assert.deepEqual([await s(), await s()], [503, 200]);
    // the debug log names the entry that decided
    await srv.waitForStderr(/msg="scenario\[0\]: status 503[^"]*" proxy=scn-reset req=req_[0-9a-f]+/);
  });

  test('with 2 workers, nth counts the proxy\'s requests, not a worker\'s', async () => {
    const p = await openaiProxy('scn-workers', { scenario: [{ match: { nth: [3, 6] }, respond: { status: 503 } }] });
    // concurrent requests on separate connections are spread over the workers
    const statuses = await Promise.all(Array.from({ length: 10 }, () => post(p.base, '/v1/chat/completions', chat()).then((r) => r.status)));
    assert.equal(statuses.filter((x) => x === 503).length, 2, String(statuses));
    assert.equal(statuses.filter((x) => x === 200).length, 8, String(statuses));
  });

  test('invalid scenario lists are refused naming the field', async () => {
    const p = await openaiProxy('scn-invalid', {});
    const cases = [
      [{ scenario: [{ respond: { status: 503 } }, { respond: { status: 200 } }] }, 'scenario[1].respond.status'],
      [{ scenario: [{ match: { nth: 0 }, respond: { status: 503 } }] }, 'scenario[0].match.nth'],
      [{ scenario: [{ respond: { hang: true, status: 503 } }] }, 'scenario[0].respond.hang'],
      [{ scenario: [{ respond: {} }] }, 'scenario[0].respond'],
    ];
    for (const [doc, field] of cases) {
      const r = await srv.api('PUT', `/api/v1/proxies/${p.id}/config`, doc);
      assert.equal(r.status, 400, JSON.stringify(doc));
      assert.match(r.text, new RegExp(field.replace(/[[\].]/g, '\\$&')), r.text);
    }
  });
});

describe('X-Rubberduck-Fault request overrides', () => {
  test('on: status, delay, hang and a malformed value (400 in the provider\'s format)', async () => {
    const p = await openaiProxy('ovr-on', { failure: { request_overrides: true } });
    up.clear();
    let r = await post(p.base, '/v1/chat/completions', chat(), { 'X-Rubberduck-Fault': 'status=503' });
    assert.equal(r.status, 503);
    assert.equal(r.headers['retry-after'], '1');
    assert.equal(r.headers['x-rubberduck-failure'], 'scenario');
    assert.equal(jsonOf(r.body).error.code, 'service_unavailable');
    r = await post(p.base, '/v1/chat/completions', chat(), { 'x-rubberduck-fault': 'status=429, retry_after_s=3' });
    assert.equal(r.status, 429);
    assert.equal(r.headers['retry-after'], '3');
    let t0 = now();
    r = await post(p.base, '/v1/chat/completions', chat(), { 'X-Rubberduck-Fault': 'delay_ms=500' });
    assert.equal(r.status, 200);
    assert.ok(now() - t0 >= 500);
    assert.equal(up.requests.length, 1);
    // the SDK's own timeout against a hang
    const { ai } = openai(p.base, { timeout: 400, defaultHeaders: { 'X-Rubberduck-Fault': 'hang' } });
    t0 = now();
    await assert.rejects(ai.chat.completions.create(chat()), OpenAI.APIConnectionTimeoutError);
    assert.ok(now() - t0 >= 350);
    // hostile values: a 400 naming the problem, nothing forwarded
    for (const [value, re] of [
      ['status=abc', /status must be an HTTP status from 400 to 599/],
      ['explode', /unknown item "explode"/],
      ['hang,status=503', /hang cannot be combined/],
      ['status=503,status=500', /status is given twice \(|given twice/],
      ['', /names no fault/],
    ]) {
      r = await post(p.base, '/v1/chat/completions', chat(), { 'X-Rubberduck-Fault': value });
      assert.equal(r.status, 400, value);
      const body = jsonOf(r.body);
      assert.equal(body.error.type, 'invalid_request_error');
      assert.match(body.error.message, /^Invalid X-Rubberduck-Fault header/);
      assert.match(body.error.message, re);
      assert.equal(r.headers['x-rubberduck-failure'], undefined);
    }
    assert.equal(up.requests.length, 1);
    // without the header, nothing happens
    r = await post(p.base, '/v1/chat/completions', chat());
    assert.equal(r.status, 200);
    assert.equal(up.requests.length, 2);
    for (const rec of up.requests) assert.equal(rec.headers['x-rubberduck-fault'], undefined);
  });

  test('the Anthropic SDK asks for its own failure with the header', async () => {
    const port = await freePort();
    await srv.createProxy({ name: 'ovr-anthropic', provider: 'anthropic', upstream_url: 'emulator', port, config: { failure: { request_overrides: true } } });
    const ai = new Anthropic({
      baseURL: `http://127.0.0.1:${port}`,
      apiKey: 'sk-ant-test',
      maxRetries: 0,
      timeout: 10000,
      defaultHeaders: { 'X-Rubberduck-Fault': 'status=529' },
    });
    await assert.rejects(ai.messages.create({ model: 'claude-haiku-4-5', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }), (e) => {
      assert.equal(e.status, 529);
      assert.equal(e.error.error.type, 'overloaded_error');
      return true;
    });
    const bad = await post(`http://127.0.0.1:${port}`, '/v1/messages', { model: 'claude-haiku-4-5', max_tokens: 1, messages: [] }, {
      'X-Rubberduck-Fault': 'delay_ms=-1',
    });
    assert.equal(bad.status, 400);
    const body = jsonOf(bad.body);
    assert.equal(body.type, 'error');
    assert.equal(body.error.type, 'invalid_request_error');
    assert.match(body.error.message, /delay_ms must be milliseconds/);
  });

  test('the override wins over a scenario, which still counts the request', async () => {
    const p = await openaiProxy('ovr-vs-scn', {
      failure: { request_overrides: true },
      scenario: [{ match: { nth: [2] }, respond: { status: 500 } }],
    });
    let r = await post(p.base, '/v1/chat/completions', chat(), { 'X-Rubberduck-Fault': 'status=502' });
    assert.equal(r.status, 502);
    r = await post(p.base, '/v1/chat/completions', chat());
    assert.equal(r.status, 500, 'the 1st request (overridden) was counted');
    r = await post(p.base, '/v1/chat/completions', chat());
    assert.equal(r.status, 200);
  });

  test('off (the default): the header is ignored, and never forwarded', async () => {
    const p = await openaiProxy('ovr-off', {});
    up.clear();
    const r = await post(p.base, '/v1/chat/completions', chat(), { 'X-Rubberduck-Fault': 'status=503' });
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-rubberduck-failure'], undefined);
    assert.equal(up.requests.length, 1);
    assert.equal(up.requests[0].headers['x-rubberduck-fault'], undefined);
  });
});

describe('X-Rubberduck-* request headers', () => {
  for (const client of ['auto', 'curl']) {
    test(`never reach the upstream (${client} client), with overrides on and off`, async () => {
      for (const overrides of [false, true]) {
        const p = await openaiProxy(`hdr-${client}-${overrides}`, { upstream: { client }, failure: { request_overrides: overrides } });
        up.clear();
        const r = await httpRequest(`${p.base}/v1/chat/completions`, {
          method: 'POST',
          headers: [
            'Content-Type', 'application/json',
            'X-Custom', 'kept',
            'X-Rubberduck-Trace', 'secret-1',
            'x-rubberduck-', 'secret-2',
            'X-RUBBERDUCK-Whatever', 'secret-3',
            'X-Rubberduckling', 'kept-too',
          ],
          body: JSON.stringify(chat()),
        });
        assert.equal(r.status, 200);
        const rec = up.requests[0];
        assert.equal(rec.headers['x-custom'], 'kept');
        assert.equal(rec.headers['x-rubberduckling'], 'kept-too');
        const leaked = rec.rawHeaders.filter((h, i) => i % 2 === 0 && /^x-rubberduck-/i.test(h));
        assert.deepEqual(leaked, [], `forwarded: ${leaked}`);
        assert.ok(!rec.rawHeaders.some((h) => /secret-/.test(h)));
      }
    });
  }
});
