// The engine seams seen from outside: compression (the upstream is asked for
// identity, whatever the client accepts), errors without internal details
// but with a request id that finds the log line, errors the server answers
// itself going through the proxy layer, the request object's view of a
// request (model, usage, stream end) in the debug log, and a large response
// followed by a pipelined request.
import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import { RawConn, assertOpenAIError, httpRequest, jsonOf, now } from './lib/http.mjs';
import { freePort, startServer } from './lib/server.mjs';
import { reply, startUpstream } from './lib/upstream.mjs';

let srv;
let up;
let proxy;
let base;

before(async () => {
  srv = await startServer({ args: ['--log-level', 'debug'] });
  up = await startUpstream();
  proxy = await srv.createProxy({ name: 'engine', provider: 'openai', upstream_url: up.url, port: await freePort() });
  base = `http://127.0.0.1:${proxy.port}`;
});
after(async () => {
  await up?.close();
  await srv?.stop();
});

let n = 0;
const uniq = (name) => `/v1/${name}/${++n}`;

describe('compression', () => {
  test('Accept-Encoding: gzip, br from the client: the upstream is asked for identity, the client gets a plain body', async () => {
    const path = uniq('ae');
    up.route(path, reply.json({ hello: 'world' }));
    const r = await httpRequest(base + path, { headers: { 'accept-encoding': 'gzip, br' } });
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-encoding'], undefined);
    assert.deepEqual(jsonOf(r.body), { hello: 'world' });
    const rec = up.requests.find((x) => x.url === path);
    assert.equal(rec.headers['accept-encoding'], 'identity');
  });

  test('a stream stays unbuffered with Accept-Encoding: gzip, br', async () => {
    const path = uniq('ae-sse');
    up.route(path, reply.sse(['data: {"n":1}', 'data: {"n":2}', 'data: [DONE]'], { intervalMs: 300 }));
    const c = await RawConn.open(proxy.port);
    try {
      const t0 = now();
      await c.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip, br\r\nContent-Length: 2\r\n\r\n{}`);
      await c.until(() => c.buf.includes('"n":1'), 5000, 'the first event');
      const first = now() - t0;
      assert.ok(!c.buf.includes('"n":2'), 'the second event came with the first: buffered');
      assert.ok(first < 280, `first event after ${first} ms`);
      await c.until(() => c.buf.includes('[DONE]'), 5000, 'the end of the stream');
      assert.ok(!/content-encoding/i.test(c.buf.toString('latin1')));
    } finally {
      c.destroy();
    }
  });

  test('an upstream that compresses anyway: the encoded body and its Content-Encoding reach the client intact', async () => {
    const path = uniq('gz');
    const plain = Buffer.from(JSON.stringify({ text: 'x'.repeat(5000) }));
    const gz = zlib.gzipSync(plain);
    up.route(path, reply.raw(200, { 'content-type': 'application/json', 'content-encoding': 'gzip', 'content-length': gz.length }, gz));
    const r = await httpRequest(base + path, { headers: { 'accept-encoding': 'gzip' } });
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-encoding'], 'gzip');
    assert.deepEqual(zlib.gunzipSync(r.body), plain);
  });

  test('the openai SDK (which accepts gzip) gets its answer', async () => {
    up.route('/v1/chat/completions', reply.json({ id: 'c1', object: 'chat.completion', created: 1, model: 'gpt-4o-mini', choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }], usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 } }));
    const ai = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'sk-test', maxRetries: 0 });
    const res = await ai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] });
    assert.equal(res.choices[0].message.content, 'hi');
    const rec = up.requests.filter((x) => x.url === '/v1/chat/completions').at(-1);
    assert.equal(rec.headers['accept-encoding'], 'identity');
  });
});

describe('errors', () => {
  test('a 502 says nothing about the upstream, and its request id finds the detailed log line', async () => {
    const closed = await freePort();
    const p = await srv.createProxy({ name: 'to-closed', provider: 'openai', upstream_url: `http://127.0.0.1:${closed}`, port: await freePort() });
    const r = await httpRequest(`http://127.0.0.1:${p.port}/v1/chat/completions`, { method: 'POST', body: '{}' });
    assert.equal(r.status, 502);
    const err = assertOpenAIError(assert, r.body);
    assert.doesNotMatch(err.message, new RegExp(`${closed}|127\\.0\\.0\\.1|refused|connect`, 'i'));
    const id = r.headers['x-request-id'];
    assert.match(id, /^req_[0-9a-f]{16}$/);
    await srv.waitForStderr(new RegExp(`(refused|connect).* req=${id}`, 'i'));
  });

  test('errors the server answers itself (400, 413, 431) carry the provider\'s request id: they went through the proxy layer', async () => {
    const p = await srv.createProxy({ name: 'limits', provider: 'openai', upstream_url: up.url, port: await freePort(), config: { limits: { max_body_bytes: 1000 } } });
    const cases = [
      ['400', 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n'],
      ['413', `POST /v1/chat/completions HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n`],
      ['431', `GET / HTTP/1.1\r\nHost: a\r\nX-Big: ${'a'.repeat(70000)}\r\n\r\n`],
    ];
    for (const [status, text] of cases) {
      const c = await RawConn.open(p.port);
      try {
        await c.write(text);
        const r = await c.readResponse();
        assert.equal(String(r.status), status);
        assertOpenAIError(assert, r.body);
        const id = (r.headers['x-request-id'] ?? [])[0];
        assert.match(id ?? '', /^req_[0-9a-f]{16}$/, `${status} without a request id`);
        await srv.waitForStderr(new RegExp(`-> ${status} .* req=${id}`));
      } finally {
        c.destroy();
      }
    }
  });
});

describe('the request object', () => {
  test('model, usage and the end of the stream are read from a streamed answer (emulator), shown in the debug log', async () => {
    const p = await srv.createProxy({ name: 'emu', provider: 'openai', upstream_url: 'emulator', port: await freePort() });
    const ai = new OpenAI({ baseURL: `http://127.0.0.1:${p.port}/v1`, apiKey: 'sk-test', maxRetries: 0 });
    const stream = await ai.chat.completions.create({
      model: 'gpt-4o-mini', stream: true, stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'Say hello' }],
    });
    let usage = null;
    for await (const chunk of stream) if (chunk.usage) usage = chunk.usage;
    assert.ok(usage && usage.prompt_tokens > 0 && usage.completion_tokens > 0);
    await srv.waitForStderr(new RegExp(`msg="POST /v1/chat/completions model=gpt-4o-mini -> 200 .*tokens ${usage.prompt_tokens}/${usage.completion_tokens}" proxy=emu req=req_[0-9a-f]+`));
  });

  test('usage from a non-streamed body in several chunks, and a stream cut before [DONE] is marked', async () => {
    const body = JSON.stringify({ id: 'x', object: 'chat.completion', model: 'gpt-4o', choices: [], pad: 'p'.repeat(200000), usage: { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 } });
    up.route('/v1/chat/completions', reply.raw(200, { 'content-type': 'application/json' }, body)); // chunked: several reads
    const r = await httpRequest(`${base}/v1/chat/completions`, { method: 'POST', body: '{"model":"gpt-4o","messages":[]}' });
    assert.equal(r.status, 200);
    await srv.waitForStderr(/msg="POST \/v1\/chat\/completions model=gpt-4o -> 200 .*tokens 11\/7" proxy=engine req=req_[0-9a-f]+/);
    up.route('/v1/completions', reply.sse(['data: {"choices":[]}']));
    const s = await httpRequest(`${base}/v1/completions`, { method: 'POST', body: '{"model":"gpt-3.5-turbo-instruct","stream":true}' });
    assert.equal(s.status, 200);
    await srv.waitForStderr(/POST \/v1\/completions model=gpt-3\.5-turbo-instruct -> 200 .*\(stream not ended\)/);
  });
});

describe('combinations', () => {
  test('a large response the client reads late, followed by a pipelined request: both answered in order', async () => {
    const size = 8 * 1024 * 1024;
    up.route('/v1/big', reply.big(size, (off, len) => Buffer.alloc(len, 0x61)));
    up.route('/v1/small', reply.json({ small: true }));
    const c = await RawConn.open(proxy.port);
    try {
      c.sock.pause(); // let the proxy queue output
      await c.write('GET /v1/big HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/small HTTP/1.1\r\nHost: x\r\n\r\n');
      await new Promise((r) => setTimeout(r, 500));
      c.sock.resume();
      const r1 = await c.readResponse({ timeoutMs: 20000 });
      assert.equal(r1.status, 200);
      assert.equal(r1.body.length, size);
      const r2 = await c.readResponse({ timeoutMs: 5000 });
      assert.equal(r2.status, 200);
      assert.deepEqual(jsonOf(r2.body), { small: true });
    } finally {
      c.destroy();
    }
  });
});
