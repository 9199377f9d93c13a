// Failure simulation, timeouts and error injection (timeout_config,
// error_injection, seed): the official SDKs meet the provider's own errors
// and react as in production (retry a 429 after Retry-After, raise APIError
// with the native message, time out on a hang); outcomes are reproducible by
// seed with 1 and 2 workers; config changes apply to the next request.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { BedrockRuntimeClient, ConverseCommand, ServiceUnavailableException, ThrottlingException } from '@aws-sdk/client-bedrock-runtime';
import { NodeHttp2Handler, NodeHttpHandler } from '@smithy/node-http-handler';
import { ApiError, GoogleGenAI } from '@google/genai';
import { httpRequest, jsonOf, now, waitFor } from './lib/http.mjs';
import { freePort, startServer } from './lib/server.mjs';
import { reply, startUpstream } from './lib/upstream.mjs';

const CHAT = {
  id: 'chatcmpl-1', object: 'chat.completion', created: 1, model: 'gpt-4o-mini',
  choices: [{ index: 0, message: { role: 'assistant', content: 'quack' }, finish_reason: 'stop' }],
  usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 },
};
const MESSAGE = {
  id: 'msg_1', type: 'message', role: 'assistant', model: 'claude-haiku-4-5', content: [{ type: 'text', text: 'quack' }],
  stop_reason: 'end_turn', stop_sequence: null, usage: { input_tokens: 3, output_tokens: 1 },
};
const chatBody = (extra = {}) => JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], ...extra });
const INTERNAL = 'The server had an error while processing your request.';

let srv, up, oai, ant, oaiBase, antBase;
before(async () => {
  srv = await startServer({ workers: 2, cacheOff: true });
  up = await startUpstream(reply.json(CHAT));
  up.route('/v1/messages', reply.json(MESSAGE));
  oai = await srv.createProxy({ name: 'oai', provider: 'openai', upstream_url: up.url, port: await freePort() });
  ant = await srv.createProxy({ name: 'ant', provider: 'anthropic', upstream_url: up.url, port: await freePort() });
  oaiBase = `http://127.0.0.1:${oai.port}`;
  antBase = `http://127.0.0.1:${ant.port}`;
});
after(async () => {
  await up?.close();
  await srv?.stop(); // asserts exit 0 and no sanitizer (leak) report
});

const chat = (base = oaiBase, { headers = {}, body = chatBody(), timeoutMs = 10000 } = {}) =>
  httpRequest(`${base}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body, timeoutMs });

/** The OpenAI SDK with a fetch that records each attempt's status and time. */
function openaiCounting(port, opts = {}) {
  const attempts = [];
  const client = new OpenAI({
    baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'sk-test', maxRetries: 0, timeout: 10000, ...opts,
    fetch: async (url, init) => {
      const r = await fetch(url, init);
      attempts.push({ status: r.status, at: now(), headers: r.headers });
      return r;
    },
  });
  return { client, attempts };
}

const usageRequests = async (id) => (await srv.api('GET', `/api/v1/proxies/${id}/usage`)).json.totals.requests;

/**
 * A seed whose first outcomes under cfg(seed) are `want` (statuses), found by
 * probing: request numbers start again from 1 whenever the configuration is
 * replaced, so after the last PUT the same outcomes follow again.
 */
async function seedFor(proxy, cfg, want, send) {
  for (let seed = 1; seed <= 200; seed++) {
    await srv.putConfig(proxy.id, cfg(seed));
    const got = [];
    for (let i = 0; i < want.length; i++) got.push((await send()).status);
    if (got.every((s, i) => s === want[i])) {
      await srv.putConfig(proxy.id, cfg(seed));
      return seed;
    }
  }
  throw new Error(`no seed in 1..200 gives ${want}`);
}

describe('error injection through the SDKs', () => {
  test('the OpenAI SDK retries an injected 429 after its Retry-After and succeeds; the upstream sees one request', async () => {
    const cfg = (seed) => ({ seed, error_injection: { '429_rate': 0.5, retry_after_s: 1 } });
    await seedFor(oai, cfg, [429, 429, 200], () => chat());
    up.clear();
    const { client, attempts } = openaiCounting(oai.port, { maxRetries: 3 });
    const t0 = now();
    const r = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(r.choices[0].message.content, 'quack');
    assert.deepEqual(attempts.map((a) => a.status), [429, 429, 200]);
    // Retry-After: 1 honoured between attempts (the SDK's own backoff is shorter)
    assert.ok(attempts[1].at - attempts[0].at >= 900, `retry after ${attempts[1].at - attempts[0].at} ms`);
    assert.ok(attempts[2].at - attempts[1].at >= 900);
    assert.ok(now() - t0 < 5000);
    const h = attempts[0].headers;
    assert.equal(h.get('retry-after'), '1');
    assert.equal(h.get('x-ratelimit-limit-requests'), '60');
    assert.equal(h.get('x-ratelimit-remaining-requests'), '0');
    assert.equal(h.get('x-ratelimit-reset-requests'), '1s');
    assert.equal(h.get('x-rubberduck-failure'), 'error_injection');
    assert.match(h.get('x-request-id'), /^req_[0-9a-f]{16}$/);
    assert.equal(up.requests.length, 1, 'injected errors never reach the upstream');
  });

  test('the Anthropic SDK retries an injected 429 too; the 429 carries anthropic-ratelimit-*', async () => {
    const send = () => httpRequest(`${antBase}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'claude-haiku-4-5', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] }) });
    const cfg = (seed) => ({ seed, error_injection: { '429_rate': 0.5 } });
    const seed = await seedFor(ant, cfg, [429, 200], send);
    // look at the 429 itself first (a fresh PUT starts the sequence again)
    const first = await send();
    assert.equal(first.status, 429);
    const e = jsonOf(first.body);
    assert.equal(e.type, 'error');
    assert.equal(e.error.type, 'rate_limit_error');
    assert.equal(e.request_id, first.headers['request-id']);
    assert.equal(first.headers['retry-after'], '1');
    assert.equal(first.headers['anthropic-ratelimit-requests-limit'], '60');
    assert.equal(first.headers['anthropic-ratelimit-requests-remaining'], '0');
    const reset = Date.parse(first.headers['anthropic-ratelimit-requests-reset']);
    assert.ok(Math.abs(reset - (Date.now() + 1000)) < 2500, first.headers['anthropic-ratelimit-requests-reset']);
    await srv.putConfig(ant.id, cfg(seed));
    up.clear();
    let n = 0;
    const client = new Anthropic({ baseURL: antBase, apiKey: 'sk-ant', maxRetries: 2, timeout: 10000,
      fetch: async (url, init) => { n++; return fetch(url, init); } });
    const msg = await client.messages.create({ model: 'claude-haiku-4-5', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(msg.content[0].text, 'quack');
    assert.equal(n, 2);
    assert.equal(up.requests.length, 1);
  });

  test('the OpenAI and Anthropic SDKs raise a 500 as their APIError with the native message', async () => {
    await srv.putConfig(oai.id, { error_injection: { '500_rate': 1 } });
    await srv.putConfig(ant.id, { error_injection: { '500_rate': 1, '529_rate': 0 } });
    up.clear();
    const ai = new OpenAI({ baseURL: `${oaiBase}/v1`, apiKey: 'sk-test', maxRetries: 0 });
    await assert.rejects(ai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }), (e) => {
      assert.ok(e instanceof OpenAI.InternalServerError, e.constructor.name);
      assert.ok(e instanceof OpenAI.APIError);
      assert.equal(e.status, 500);
      assert.equal(e.error.message, INTERNAL);
      assert.equal(e.error.type, 'server_error');
      assert.equal(e.error.param, null);
      assert.match(e.message, /^500 The server had an error/);
      assert.match(e.requestID, /^req_/);
      return true;
    });
    const an = new Anthropic({ baseURL: antBase, apiKey: 'sk-ant', maxRetries: 0 });
    await assert.rejects(an.messages.create({ model: 'claude-haiku-4-5', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] }), (e) => {
      assert.ok(e instanceof Anthropic.InternalServerError, e.constructor.name);
      assert.equal(e.status, 500);
      assert.equal(e.error.type, 'error');
      assert.equal(e.error.error.type, 'api_error');
      assert.equal(e.error.error.message, INTERNAL);
      assert.match(e.requestID, /^req_/);
      return true;
    });
    // Anthropic's 529 is its overloaded_error
    await srv.putConfig(ant.id, { error_injection: { '529_rate': 1 } });
    await assert.rejects(an.messages.create({ model: 'claude-haiku-4-5', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] }), (e) => {
      assert.equal(e.status, 529);
      assert.equal(e.error.error.type, 'overloaded_error');
      return true;
    });
    assert.equal(up.requests.length, 0);
  });

  test('every status 400..599 is answered natively; 503 carries Retry-After, other statuses none', async () => {
    for (const [status, type, code] of [[400, 'invalid_request_error', null], [401, 'invalid_request_error', 'invalid_api_key'],
      [503, 'server_error', 'service_unavailable'], [418, 'invalid_request_error', null], [599, 'server_error', null]]) {
      await srv.putConfig(oai.id, { error_injection: { [`${status}_rate`]: 1, retry_after_s: 4 } });
      const r = await chat();
      assert.equal(r.status, status);
      const e = jsonOf(r.body).error;
      assert.equal(e.type, type);
      assert.equal(e.code, code);
      assert.equal(r.headers['retry-after'], status === 503 ? '4' : undefined, `${status}`);
      assert.equal(r.headers['x-ratelimit-limit-requests'], undefined);
    }
  });

  test('a config PUT changes the outcome of the next request; reveal:false hides the failure type', async () => {
    await srv.putConfig(oai.id, { error_injection: { '500_rate': 1 } });
    assert.equal((await chat()).status, 500);
    await srv.putConfig(oai.id, {});
    assert.equal((await chat()).status, 200);
    await srv.putConfig(oai.id, { error_injection: { '503_rate': 1 }, failure: { reveal: false } });
    const r = await chat();
    assert.equal(r.status, 503);
    assert.equal(r.headers['x-rubberduck-failure'], undefined);
    await srv.putConfig(oai.id, { error_injection: { enabled: false, '500_rate': 1 } });
    assert.equal((await chat()).status, 200);
    // an unknown status key is a 400 naming the field; rates above 1 in all name the block
    const bad = await srv.api('PUT', `/api/v1/proxies/${oai.id}/config`, { error_injection: { '600_rate': 0.1 } });
    assert.equal(bad.status, 400);
    assert.match(bad.text, /error_injection\.600_rate/);
    const sum = await srv.api('PUT', `/api/v1/proxies/${oai.id}/config`, { error_injection: { '500_rate': 0.6, '429_rate': 0.5 } });
    assert.equal(sum.status, 400);
    assert.match(sum.text, /error_injection/);
    assert.match(sum.text, /add up to at most 1/);
    assert.equal((await chat()).status, 200, 'a refused document changes nothing');
  });
});

describe('Bedrock and Gemini SDKs get their native errors', () => {
  let br, gem;
  before(async () => {
    br = await srv.createProxy({ name: 'br', provider: 'bedrock', upstream_url: 'emulator', port: await freePort(),
      config: { error_injection: { '429_rate': 1 } } });
    gem = await srv.createProxy({ name: 'gem', provider: 'gemini', upstream_url: 'emulator', port: await freePort(),
      config: { error_injection: { '429_rate': 1 } } });
  });
  // h1: NodeHttpHandler (HTTP/1.1); otherwise the SDK's default handler (HTTP/2, prior knowledge)
  const converse = (port, h1 = true) => {
    const c = new BedrockRuntimeClient({ region: 'us-west-2', endpoint: `http://127.0.0.1:${port}`, maxAttempts: 1,
      credentials: { accessKeyId: 'AKIDCLIENT', secretAccessKey: 'secret' }, ...(h1 ? { requestHandler: new NodeHttpHandler() } : {}) });
    return c.send(new ConverseCommand({ modelId: 'amazon.nova-pro-v1:0', messages: [{ role: 'user', content: [{ text: 'hi' }] }] }))
      .finally(() => c.destroy());
  };

  test('Bedrock: ThrottlingException for 429, ServiceUnavailableException for 503', async () => {
    for (const h1 of [true, false]) {
      await assert.rejects(converse(br.port, h1), (e) => {
        assert.ok(e instanceof ThrottlingException, `${e.name}: ${e.message}`);
        assert.equal(e.$metadata.httpStatusCode, 429);
        assert.match(e.$metadata.requestId, /^req_/);
        assert.match(e.message, /Rate limit reached/);
        return true;
      });
    }
    await srv.putConfig(br.id, { error_injection: { '503_rate': 1 } });
    await assert.rejects(converse(br.port), (e) => e instanceof ServiceUnavailableException && e.$metadata.httpStatusCode === 503);
    await srv.putConfig(br.id, {});
    const ok = await converse(br.port);
    assert.ok(ok.output.message.content[0].text.length > 0);
  });

  test('Bedrock over HTTP/2: the SDK\'s requestTimeout ends a hang; the stream is released, the connection serves on', async () => {
    await srv.putConfig(br.id, { timeout_config: { hang_rate: 1 } });
    const before = await usageRequests(br.id);
    const handler = new NodeHttp2Handler({ requestTimeout: 500 });
    const c = new BedrockRuntimeClient({ region: 'us-west-2', endpoint: `http://127.0.0.1:${br.port}`, maxAttempts: 1,
      credentials: { accessKeyId: 'AKIDCLIENT', secretAccessKey: 'secret' }, requestHandler: handler });
    const say = { modelId: 'amazon.nova-pro-v1:0', messages: [{ role: 'user', content: [{ text: 'hi' }] }] };
    try {
      const t0 = now();
      await assert.rejects(c.send(new ConverseCommand(say)), (e) => e.name === 'TimeoutError' || /timed? ?out/i.test(e.message));
      assert.ok(now() - t0 >= 480);
      await waitFor(async () => (await usageRequests(br.id)) === before + 1, 3000, 'the hung h2 stream released');
      await srv.putConfig(br.id, {});
      const ok = await c.send(new ConverseCommand(say));
      assert.ok(ok.output.message.content[0].text.length > 0);
    } finally {
      c.destroy();
    }
  });

  test('Gemini: ApiError with Google\'s status and the RetryInfo delay', async () => {
    const ai = new GoogleGenAI({ apiKey: 'AIzaSy-test', httpOptions: { baseUrl: `http://127.0.0.1:${gem.port}` } });
    const e = await ai.models.generateContent({ model: 'gemini-2.0-flash', contents: 'hi' }).catch((x) => x);
    assert.ok(e instanceof ApiError, String(e));
    assert.equal(e.status, 429);
    assert.match(e.message, /RESOURCE_EXHAUSTED/);
    const raw = await httpRequest(`http://127.0.0.1:${gem.port}/v1beta/models/gemini-2.0-flash:generateContent`, {
      method: 'POST', headers: { 'content-type': 'application/json', 'x-goog-api-key': 'k' }, body: JSON.stringify({ contents: [{ parts: [{ text: 'hi' }] }] }) });
    const err = jsonOf(raw.body).error;
    assert.equal(err.code, 429);
    assert.equal(err.status, 'RESOURCE_EXHAUSTED');
    assert.equal(err.details[0].retryDelay, '1s');
    await srv.putConfig(gem.id, { error_injection: { '500_rate': 1 } });
    const e5 = await ai.models.generateContent({ model: 'gemini-2.0-flash', contents: 'hi' }).catch((x) => x);
    assert.ok(e5 instanceof ApiError && e5.status === 500 && /INTERNAL/.test(e5.message), String(e5));
  });
});

describe('timeouts and hangs', () => {
  test('a simulated timeout waits delay_ms, then the provider\'s 504; a stream gets it before its head', async () => {
    await srv.putConfig(oai.id, { timeout_config: { enabled: true, delay_ms: 400, timeout_rate: 1 } });
    up.clear();
    let t0 = now();
    const r = await chat();
    const took = now() - t0;
    assert.equal(r.status, 504);
    assert.ok(took >= 390 && took < 1500, `504 after ${took} ms`);
    const e = jsonOf(r.body).error;
    assert.equal(e.type, 'server_error');
    assert.equal(e.code, 'gateway_timeout');
    assert.equal(r.headers['x-rubberduck-failure'], 'timeout');
    // the SDK's stream: the 504 comes as the status of the response, nothing streamed before it
    const ai = new OpenAI({ baseURL: `${oaiBase}/v1`, apiKey: 'sk-test', maxRetries: 0 });
    t0 = now();
    await assert.rejects(ai.chat.completions.create({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'hi' }] }),
      (x) => x instanceof OpenAI.APIError && x.status === 504);
    assert.ok(now() - t0 >= 390);
    const s = await chat(oaiBase, { body: chatBody({ stream: true }) });
    assert.equal(s.status, 504);
    assert.match(s.headers['content-type'], /^application\/json/);
    assert.equal(up.requests.length, 0, 'a timed-out request never reaches the upstream');
  });

  test('with no rates, delay_ms delays every request; an injected error after the delay has one failure type', async () => {
    await srv.putConfig(oai.id, { timeout_config: { delay_ms: 300 } });
    for (let i = 0; i < 2; i++) {
      const t0 = now();
      const r = await chat();
      assert.equal(r.status, 200);
      assert.ok(now() - t0 >= 290);
      assert.equal(r.headers['x-rubberduck-failure'], 'delayed');
    }
    await srv.putConfig(oai.id, { timeout_config: { delay_ms: 300 }, error_injection: { '500_rate': 1 } });
    const t0 = now();
    const r = await chat();
    assert.equal(r.status, 500);
    assert.ok(now() - t0 >= 290);
    assert.equal(r.headers['x-rubberduck-failure'], 'error_injection');
    // a client that leaves during the delay: released, nothing sent upstream
    up.clear();
    await srv.putConfig(oai.id, { timeout_config: { delay_ms: 400 } });
    const before = await usageRequests(oai.id);
    // the whole request is written before the client leaves, so a loaded
    // machine cannot turn it into a connection closed before any request
    await new Promise((resolve, reject) => {
      const body = chatBody();
      const sock = net.connect(oai.port, '127.0.0.1', () => {
        sock.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
          () => setTimeout(() => { sock.destroy(); resolve(); }, 100));
      });
      sock.on('error', reject);
    });
    await waitFor(async () => (await usageRequests(oai.id)) === before + 1, 5000, 'the abandoned request released');
    await new Promise((res) => setTimeout(res, 500));
    assert.equal(up.requests.length, 0);
  });

  test('the SDKs time out on a hang with their own timeout; the request is freed and the proxy stays healthy', async () => {
    await srv.putConfig(oai.id, { timeout_config: { hang_rate: 1 } });
    await srv.putConfig(ant.id, { timeout_config: { hang_rate: 1 } });
    up.clear();
    const before = await usageRequests(oai.id);
    const ai = new OpenAI({ baseURL: `${oaiBase}/v1`, apiKey: 'sk-test', maxRetries: 0, timeout: 500 });
    let t0 = now();
    await assert.rejects(ai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }),
      (e) => e instanceof OpenAI.APIConnectionTimeoutError);
    assert.ok(now() - t0 >= 480 && now() - t0 < 3000);
    const an = new Anthropic({ baseURL: antBase, apiKey: 'sk-ant', maxRetries: 0, timeout: 500 });
    t0 = now();
    await assert.rejects(an.messages.create({ model: 'claude-haiku-4-5', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] }),
      (e) => e instanceof Anthropic.APIConnectionTimeoutError);
    assert.ok(now() - t0 >= 480);
    // the abandoned request was released (counted when released)
    await waitFor(async () => (await usageRequests(oai.id)) === before + 1, 3000, 'the hung request released');
    assert.equal(up.requests.length, 0, 'a hang makes no upstream call');
    // the proxy still serves: the next configuration answers at once
    await srv.putConfig(oai.id, {});
    assert.equal((await chat()).status, 200);
    await srv.putConfig(ant.id, {});
  });

  test('a configuration change while a request hangs: the hang stays on its configuration, new requests get the new one', async () => {
    await srv.putConfig(oai.id, { timeout_config: { hang_rate: 1 } });
    const before = await usageRequests(oai.id);
    const ctl = new AbortController();
    const hung = httpRequest(`${oaiBase}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' },
      body: chatBody(), signal: ctl.signal, timeoutMs: 20000 }).then(() => 'answered', () => 'cut');
    await new Promise((res) => setTimeout(res, 200));
    await srv.putConfig(oai.id, { error_injection: { '503_rate': 1 } });
    assert.equal((await chat()).status, 503);
    await srv.putConfig(oai.id, {});
    assert.equal((await chat()).status, 200);
    assert.equal(await usageRequests(oai.id), before + 2, 'the hung request is still held');
    ctl.abort();
    assert.equal(await hung, 'cut');
    await waitFor(async () => (await usageRequests(oai.id)) === before + 3, 3000, 'the hung request released');
  });

  test('many hanging requests cost no CPU; a forced stop frees them, a restart serves again', async () => {
    const p = await srv.createProxy({ name: 'hang', provider: 'openai', upstream_url: up.url, port: await freePort(),
      config: { timeout_config: { hang_rate: 1 } } });
    const base = `http://127.0.0.1:${p.port}`;
    const N = 200;
    const ends = [];
    for (let i = 0; i < N; i++) ends.push(chat(base, { timeoutMs: 20000 }).then((r) => ({ status: r.status }), (e) => ({ err: e.code || e.message })));
    // all are accepted and held
    await new Promise((res) => setTimeout(res, 500));
    const cpu0 = serverCpu();
    await new Promise((res) => setTimeout(res, 1000));
    const cpu1 = serverCpu();
    if (cpu0 !== null && cpu1 !== null) assert.ok(cpu1 - cpu0 < 0.2, `server used ${cpu1 - cpu0} s of CPU in 1 s with ${N} hangs`);
    const t0 = now();
    const stop = await srv.api('POST', `/api/v1/proxies/${p.id}/stop?mode=force`);
    assert.equal(stop.status, 200, stop.text);
    const results = await Promise.all(ends);
    assert.ok(now() - t0 < 5000);
    assert.ok(results.every((r) => r.err), `every held request is cut: ${JSON.stringify(results.slice(0, 3))}`);
    assert.equal((await srv.api('POST', `/api/v1/proxies/${p.id}/start`)).status, 200);
    // a graceful stop waits for its drain timeout, then cuts the hangs
    const held = [];
    for (let i = 0; i < 5; i++) held.push(chat(base, { timeoutMs: 20000 }).then(() => 'answered', () => 'cut'));
    await new Promise((res) => setTimeout(res, 300));
    const t1 = now();
    assert.equal((await srv.api('POST', `/api/v1/proxies/${p.id}/stop?mode=graceful&timeout_s=1`)).status, 200);
    assert.deepEqual(await Promise.all(held), ['cut', 'cut', 'cut', 'cut', 'cut']);
    const drained = now() - t1;
    assert.ok(drained >= 900 && drained < 5000, `cut after ${drained} ms`);
    assert.equal((await srv.api('POST', `/api/v1/proxies/${p.id}/start`)).status, 200);
    await srv.putConfig(p.id, {});
    assert.equal((await chat(base)).status, 200);
    assert.equal((await srv.api('DELETE', `/api/v1/proxies/${p.id}`)).status, 204);
  });
});

/** CPU seconds (user + system) the server process has used, from /proc. */
function serverCpu() {
  try {
    const f = fs.readFileSync(`/proc/${srv.pid}/stat`, 'utf8');
    const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (100 Hz)
  } catch {
    return null;
  }
}

describe('reproducibility (seed)', () => {
  const N = 1000;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  after(() => agent.destroy());
  /** N sequential requests: the statuses, in order. fresh: a new connection each (spread over the workers). */
  async function run(port, fresh) {
    const out = [];
    const body = chatBody();
    for (let i = 0; i < N; i++) {
      out.push(await new Promise((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port, path: '/v1/chat/completions', method: 'POST', agent: fresh ? false : agent,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode));
        });
        req.on('error', reject);
        req.end(body);
      }));
    }
    return out;
  }
  const SEED = 424242;
  const cfg = (seed) => ({ seed, error_injection: { '500_rate': 0.1 } });

  test(`${N} requests at a 10 % 500-rate: within 5 sigma, the same sequence again and with 1 worker`, { timeout: 60000 }, async () => {
    await srv.putConfig(oai.id, cfg(SEED));
    const a = await run(oai.port, false);
    const fails = a.filter((s) => s === 500).length;
    assert.ok(a.every((s) => s === 200 || s === 500));
    const sigma = Math.sqrt(N * 0.1 * 0.9);
    assert.ok(Math.abs(fails - N * 0.1) <= 5 * sigma, `${fails} of ${N} failed`);
    // same seed, configuration replaced (numbering starts again), new connections over both workers
    await srv.putConfig(oai.id, cfg(SEED));
    const b = await run(oai.port, true);
    assert.deepEqual(b, a);
    // another seed: another sequence
    await srv.putConfig(oai.id, cfg(SEED + 1));
    const c = await run(oai.port, false);
    assert.notDeepEqual(c, a);
    // a server with one worker, same seed: the same sequence
    const one = await startServer({ workers: 1 });
    try {
      const p = await one.createProxy({ name: 'one', provider: 'openai', upstream_url: up.url, port: await freePort(), config: cfg(SEED) });
      const d = await run(p.port, true);
      assert.deepEqual(d, a);
    } finally {
      await one.stop();
    }
    await srv.putConfig(oai.id, {});
  });
});
