// Forwarding through a proxy to a test upstream: bodies, methods, query
// strings, headers both ways, streaming one event at a time, client
// disconnects, upstream failures (502/504) and backpressure.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import { RawConn, assertOpenAIError, httpRequest, jsonOf, now, parseResponse, readSlowly, waitFor, withTimeout } from './lib/http.mjs';
import { freePort, startServer } from './lib/server.mjs';
import { prng, reply, startRawUpstream, startUpstream } from './lib/upstream.mjs';

let srv;
let up;
let proxy; // proxy whose upstream_url is the test upstream
let base; // http://127.0.0.1:<proxy port>

before(async () => {
  srv = await startServer();
  up = await startUpstream();
  proxy = await srv.createProxy({ name: 'to-test-upstream', provider: 'openai', upstream_url: up.url, port: await freePort() });
  assert.equal(proxy.status, 'running');
  base = `http://127.0.0.1:${proxy.port}`;
});
after(async () => {
  await up?.close();
  await srv?.stop();
});

const uniq = (() => {
  let n = 0;
  return (name) => `/t/${name}/${++n}`;
})();

/** Sends text on a new raw connection and reads one response. */
async function rawExchange(port, text, opts) {
  const c = await RawConn.open(port);
  try {
    await c.write(text);
    return await c.readResponse(opts);
  } finally {
    c.destroy();
  }
}

/** Handler that answers with the request body as is. */
const echoBody = () => (req, res, rec) =>
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': rec.body.length });
    res.end(rec.body);
  });

describe('request and response bodies', () => {
  for (const [label, make] of [
    ['JSON with unicode and escapes', () => Buffer.from(JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'héllo 🦆 \u0000 \u2028 "q" \\ ' + crypto.randomBytes(64).toString('hex') }] }))],
    ['every byte value', () => Buffer.concat([Buffer.from(Array.from({ length: 256 }, (_, i) => i)), crypto.randomBytes(200000)])],
    ['3 MiB of random bytes', () => crypto.randomBytes(3 * 1024 * 1024)],
    ['an empty body', () => Buffer.alloc(0)],
  ]) {
    test(`${label}: forwarded byte for byte, and echoed back byte for byte`, async () => {
      up.handle(echoBody());
      const body = make();
      const path = uniq('bytes');
      const r = await httpRequest(base + path, {
        method: 'POST',
        headers: { 'content-type': 'application/octet-stream', 'content-length': body.length },
        body,
        timeoutMs: 20000,
      });
      const rec = await up.waitRequest((x) => x.url === path && x.body);
      assert.equal(rec.body.length, body.length, 'length at the upstream');
      assert.ok(rec.body.equals(body), 'body at the upstream differs');
      assert.equal(r.status, 200);
      assert.equal(r.body.length, body.length, 'length at the client');
      assert.ok(r.body.equals(body), 'body at the client differs');
    });
  }
});

describe('methods, paths and query strings', () => {
  for (const method of ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS']) {
    test(`${method} passes through`, async () => {
      up.handle((req, res, rec) =>
        req.on('end', () => {
          const out = Buffer.from(JSON.stringify({ method: req.method, body: rec.body.toString() }));
          res.writeHead(200, { 'x-echo-method': req.method, 'content-type': 'application/json', 'content-length': out.length });
          res.end(req.method === 'HEAD' ? undefined : out);
        }),
      );
      const path = uniq(method.toLowerCase());
      const hasBody = ['POST', 'PUT', 'PATCH', 'DELETE'].includes(method);
      const r = await httpRequest(base + path, {
        method,
        // explicit length: node sends DELETE bodies without framing otherwise
        headers: hasBody ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(`{"m":"${method}"}`) } : {},
        body: hasBody ? `{"m":"${method}"}` : undefined,
      });
      const rec = await up.waitRequest((x) => x.url === path);
      assert.equal(rec.method, method);
      assert.equal(r.status, 200);
      assert.equal(r.headers['x-echo-method'], method);
      if (method === 'HEAD') {
        assert.equal(r.body.length, 0);
        assert.ok(Number(r.headers['content-length']) > 0, 'HEAD: the upstream Content-Length must pass through');
      } else {
        assert.equal(jsonOf(r.body).method, method);
        if (hasBody) assert.equal(jsonOf(r.body).body, `{"m":"${method}"}`);
      }
    });
  }

  test('path and query string arrive exactly as sent', async () => {
    up.handle(reply.json({ ok: true }));
    const target = '/v1/models/foo%3Abar/x%2Fy/%F0%9F%A6%86?a=1&b=two%20words&c=%E2%9C%93&empty=&flag&arr[]=1&arr[]=2&a=dup';
    const r = await httpRequest(base + target);
    assert.equal(r.status, 200);
    const rec = await up.waitRequest((x) => x.url.startsWith('/v1/models/foo'));
    assert.equal(rec.url, target);
  });

  test('upstream_url with a path prefix is prepended', async () => {
    const port = await freePort();
    await srv.createProxy({ name: 'with-prefix', provider: 'openai', upstream_url: `${up.url}/prefix/base`, port });
    up.handle(reply.json({ ok: true }));
    const r = await httpRequest(`http://127.0.0.1:${port}/v1/chat/completions?x=1&y=%20`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
    assert.equal(r.status, 200);
    const rec = await up.waitRequest((x) => x.url.includes('/prefix/base'));
    assert.equal(rec.url, '/prefix/base/v1/chat/completions?x=1&y=%20');
  });
});

describe('request headers', () => {
  test('end-to-end headers arrive unchanged (API keys included)', async () => {
    up.handle(reply.json({ ok: true }));
    const path = uniq('headers');
    const r = await httpRequest(base + path, {
      method: 'POST',
      headers: [
        'Authorization', 'Bearer sk-live-secret-123',
        'X-Api-Key', 'xak-456',
        'api-key', 'azure-789',
        'Anthropic-Version', '2023-06-01',
        'User-Agent', 'OpenAI/JS 6.49.0',
        'Accept', 'text/event-stream',
        'Content-Type', 'application/json',
        'X-Custom', 'Value  with   spaces',
        'X-Multi', 'a',
        'X-Multi', 'b',
        'X-Stainless-Retry-Count', '0',
      ],
      body: '{}',
    });
    assert.equal(r.status, 200);
    const rec = await up.waitRequest((x) => x.url === path);
    const h = rec.headers;
    assert.equal(h.authorization, 'Bearer sk-live-secret-123');
    assert.equal(h['x-api-key'], 'xak-456');
    assert.equal(h['api-key'], 'azure-789');
    assert.equal(h['anthropic-version'], '2023-06-01');
    assert.equal(h['user-agent'], 'OpenAI/JS 6.49.0', 'the client User-Agent must not be replaced');
    assert.equal(h.accept, 'text/event-stream');
    assert.equal(h['content-type'], 'application/json');
    assert.equal(h['x-custom'], 'Value  with   spaces');
    assert.equal(h['x-multi'], 'a, b');
    assert.equal(h['x-stainless-retry-count'], '0');
  });

  test('Host is the upstream\'s; X-Forwarded-For and X-Forwarded-Proto are set', async () => {
    up.handle(reply.json({ ok: true }));
    const p1 = uniq('xff');
    await httpRequest(base + p1, { headers: { host: 'client-side.example' } });
    const r1 = await up.waitRequest((x) => x.url === p1);
    assert.equal(r1.headers.host, `127.0.0.1:${up.port}`);
    assert.equal(r1.rawHeaders.filter((_, i) => i % 2 === 0 && r1.rawHeaders[i].toLowerCase() === 'host').length, 1, 'exactly one Host');
    assert.equal(r1.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(r1.headers['x-forwarded-proto'], 'http');

    const p2 = uniq('xff');
    await httpRequest(base + p2, { headers: { 'x-forwarded-for': '203.0.113.7' } });
    const r2 = await up.waitRequest((x) => x.url === p2);
    assert.equal(r2.headers['x-forwarded-for'], '203.0.113.7, 127.0.0.1');

    const p3 = uniq('xff');
    await httpRequest(base + p3, { headers: ['X-Forwarded-For', '198.51.100.1', 'X-Forwarded-For', '198.51.100.2, 10.0.0.1'] });
    const r3 = await up.waitRequest((x) => x.url === p3);
    assert.equal(r3.headers['x-forwarded-for'], '198.51.100.1, 198.51.100.2, 10.0.0.1, 127.0.0.1');
  });

  test('hop-by-hop request headers are not forwarded; end-to-end ones are', async () => {
    up.handle(reply.json({ ok: true }));
    const path = uniq('hop');
    const r = await rawExchange(
      proxy.port,
      `GET ${path} HTTP/1.1\r\n` +
        'Host: client.example\r\n' +
        'Connection: keep-alive\r\n' +
        'Keep-Alive: timeout=99, max=99\r\n' +
        'TE: trailers\r\n' +
        'Trailer: X-Some-Trailer\r\n' +
        'Upgrade: rd-test/1\r\n' +
        'Proxy-Authorization: Basic Zm9vOmJhcg==\r\n' +
        'Proxy-Connection: keep-alive\r\n' +
        'X-End-To-End: kept\r\n' +
        '\r\n',
    );
    assert.equal(r.status, 200);
    const rec = await up.waitRequest((x) => x.url === path);
    const h = rec.headers;
    for (const name of ['keep-alive', 'te', 'trailer', 'upgrade', 'proxy-authorization', 'proxy-connection']) {
      assert.equal(h[name], undefined, `${name} must not be forwarded (got ${JSON.stringify(h[name])})`);
    }
    assert.equal(h['x-end-to-end'], 'kept');
  });

  test('headers named in Connection are hop-by-hop too (RFC 9110 §7.6.1)', async () => {
    up.handle(reply.json({ ok: true }));
    const path = uniq('hop-named');
    const r = await rawExchange(
      proxy.port,
      `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Hop-Named\r\nX-Hop-Named: secret\r\nX-Kept: yes\r\n\r\n`,
    );
    assert.equal(r.status, 200);
    const rec = await up.waitRequest((x) => x.url === path);
    assert.equal(rec.headers['x-hop-named'], undefined, 'a header listed in Connection was forwarded');
    assert.ok(!/x-hop-named/i.test(rec.headers.connection ?? ''), `Connection forwarded: ${rec.headers.connection}`);
    assert.equal(rec.headers['x-kept'], 'yes');
  });
});

describe('request framing', () => {
  test('a chunked request body is forwarded with the right content', async () => {
    up.handle(echoBody());
    const path = uniq('chunked');
    const c = await RawConn.open(proxy.port);
    try {
      await c.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n`);
      const pieces = [Buffer.from('hello'), Buffer.from(' world'), crypto.randomBytes(70000), Buffer.from('!')];
      for (const [i, p] of pieces.entries()) {
        const ext = i === 1 ? ';name=value' : '';
        await c.write(Buffer.concat([Buffer.from(p.length.toString(16).toUpperCase() + ext + '\r\n'), p, Buffer.from('\r\n')]));
      }
      await c.write('0\r\n\r\n');
      const r = await c.readResponse();
      const expected = Buffer.concat(pieces);
      assert.equal(r.status, 200);
      const rec = await up.waitRequest((x) => x.url === path && x.body);
      assert.ok(rec.body.equals(expected), `upstream got ${rec.body.length} bytes, expected ${expected.length}`);
      assert.ok(r.body.equals(expected));
    } finally {
      c.destroy();
    }
  });

  test('Expect: 100-continue gets "100 Continue" before the body is sent', async () => {
    up.handle(echoBody());
    const path = uniq('expect');
    const body = Buffer.from(JSON.stringify({ hello: 'after continue' }));
    const c = await RawConn.open(proxy.port);
    try {
      await c.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nExpect: 100-continue\r\n\r\n`);
      const interim = await c.readResponse({ timeoutMs: 5000 });
      assert.equal(interim.status, 100, `expected 100 Continue first, got ${interim.status}`);
      assert.equal(interim.version, '1.1');
      await c.write(body);
      const r = await c.readResponse();
      assert.equal(r.status, 200);
      assert.ok(r.body.equals(body));
      const rec = await up.waitRequest((x) => x.url === path && x.body);
      assert.ok(rec.body.equals(body));
    } finally {
      c.destroy();
    }
  });

  test('keep-alive: two requests on one connection are both answered', async () => {
    up.handle(reply.echo());
    const c = await RawConn.open(proxy.port);
    try {
      const paths = [uniq('ka'), uniq('ka')];
      for (const p of paths) {
        await c.write(`GET ${p} HTTP/1.1\r\nHost: x\r\n\r\n`);
        const r = await c.readResponse();
        assert.equal(r.status, 200);
        assert.equal(jsonOf(r.body).url, p);
        assert.ok(!c.ended, 'the proxy closed a keep-alive connection');
      }
    } finally {
      c.destroy();
    }
  });

  test('pipelined requests are answered in order', async () => {
    up.handle(reply.echo());
    const c = await RawConn.open(proxy.port);
    try {
      const paths = [uniq('pipe'), uniq('pipe'), uniq('pipe')];
      await c.write(paths.map((p) => `GET ${p} HTTP/1.1\r\nHost: x\r\n\r\n`).join(''));
      for (const p of paths) {
        const r = await c.readResponse();
        assert.equal(r.status, 200);
        assert.equal(jsonOf(r.body).url, p);
      }
    } finally {
      c.destroy();
    }
  });

  test('requests on one client connection reuse one upstream connection', async () => {
    up.handle(reply.json({ ok: true }));
    const c = await RawConn.open(proxy.port);
    try {
      const paths = [uniq('pool'), uniq('pool'), uniq('pool')];
      for (const p of paths) {
        await c.write(`GET ${p} HTTP/1.1\r\nHost: x\r\n\r\n`);
        assert.equal((await c.readResponse()).status, 200);
      }
      const recs = await Promise.all(paths.map((p) => up.waitRequest((x) => x.url === p)));
      assert.equal(new Set(recs.map((r) => r.conn)).size, 1, `upstream connections used: ${recs.map((r) => r.conn)}`);
    } finally {
      c.destroy();
    }
  });
});

describe('response passthrough', () => {
  test('status, custom headers (repeated ones too) and body come back unchanged', async () => {
    const body = Buffer.from('{"id":"chatcmpl-1","object":"chat.completion","x":"ünïcödé"}');
    up.handle(
      reply.raw(
        201,
        [
          'Content-Type', 'application/json; charset=utf-8',
          'Content-Length', String(body.length),
          'X-Request-Id', 'req_abc123',
          'OpenAI-Processing-Ms', '42',
          'Set-Cookie', 'a=1; Path=/',
          'Set-Cookie', 'b=2; Path=/; HttpOnly',
          'X-Resp-Custom', 'v1',
        ],
        body,
      ),
    );
    const r = await httpRequest(base + uniq('resp'));
    assert.equal(r.status, 201);
    assert.equal(r.headers['content-type'], 'application/json; charset=utf-8');
    assert.equal(r.headers['x-request-id'], 'req_abc123');
    assert.equal(r.headers['openai-processing-ms'], '42');
    assert.deepEqual(r.headers['set-cookie'], ['a=1; Path=/', 'b=2; Path=/; HttpOnly']);
    assert.equal(r.headers['x-resp-custom'], 'v1');
    assert.ok(r.body.equals(body));
  });

  for (const status of [202, 400, 401, 404, 409, 429, 500, 503]) {
    test(`upstream status ${status} passes through with its body`, async () => {
      const body = Buffer.from(JSON.stringify({ error: { message: `status ${status}`, type: 'test', param: null, code: String(status) } }));
      up.handle(reply.raw(status, { 'content-type': 'application/json', 'content-length': body.length, 'retry-after': '7' }, body));
      const r = await httpRequest(base + uniq(`status-${status}`));
      assert.equal(r.status, status);
      assert.equal(r.headers['retry-after'], '7');
      assert.ok(r.body.equals(body), r.body.toString());
    });
  }

  test('204 passes through with no body', async () => {
    up.handle(reply.raw(204, { 'x-was': 'nocontent' }, null));
    const c = await RawConn.open(proxy.port);
    try {
      await c.write(`DELETE ${uniq('204')} HTTP/1.1\r\nHost: x\r\n\r\n`);
      const r = await c.readResponse();
      assert.equal(r.status, 204);
      assert.equal(r.headers['x-was'][0], 'nocontent');
      assert.equal(r.headers['transfer-encoding'], undefined, '204 must not carry Transfer-Encoding');
      // the connection stays usable: nothing stray follows the 204
      up.handle(reply.json({ ok: 1 }));
      await c.write(`GET ${uniq('after-204')} HTTP/1.1\r\nHost: x\r\n\r\n`);
      const r2 = await c.readResponse();
      assert.equal(r2.status, 200);
    } finally {
      c.destroy();
    }
  });

  test('a chunked (length-less) upstream response arrives complete', async () => {
    const parts = [crypto.randomBytes(1000), crypto.randomBytes(50000), crypto.randomBytes(3)];
    up.handle((req, res) =>
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        for (const p of parts) res.write(p);
        res.end();
      }),
    );
    const r = await httpRequest(base + uniq('chunked-resp'));
    assert.equal(r.status, 200);
    assert.ok(r.body.equals(Buffer.concat(parts)));
  });

  test('hop-by-hop response headers are removed', async () => {
    // a raw upstream: node's HTTP server refuses some of these combinations
    const raw = await startRawUpstream((sock) =>
      sock.write(
        'HTTP/1.1 200 OK\r\n' +
          'Content-Type: text/plain\r\n' +
          'Content-Length: 2\r\n' +
          'Connection: keep-alive\r\n' +
          'Keep-Alive: timeout=77, max=77\r\n' +
          'Upgrade: rd-test/1\r\n' +
          'Proxy-Authenticate: Basic realm="upstream"\r\n' +
          'Proxy-Connection: keep-alive\r\n' +
          'Trailer: X-Some-Trailer\r\n' +
          'X-Resp-Kept: kept\r\n' +
          '\r\nok',
      ),
    );
    try {
      const port = await freePort();
      await srv.createProxy({ name: 'resp-hop', provider: 'openai', upstream_url: raw.url, port });
      const r = await rawExchange(port, `GET ${uniq('resp-hop')} HTTP/1.1\r\nHost: x\r\n\r\n`);
      assert.equal(r.status, 200);
      assert.equal(r.body.toString(), 'ok');
      for (const name of ['upgrade', 'proxy-authenticate', 'proxy-connection', 'trailer']) {
        assert.equal(r.headers[name], undefined, `${name} must not be forwarded: ${r.headerLines.join(' | ')}`);
      }
      assert.ok(!(r.headers['keep-alive'] || []).includes('timeout=77, max=77'), 'the upstream Keep-Alive was forwarded');
      assert.ok((r.headers.connection || []).length <= 1, 'at most one Connection header');
      assert.deepEqual(r.headers['x-resp-kept'], ['kept']);
    } finally {
      await raw.close();
    }
  });

  test('response headers named in Connection are removed (RFC 9110 §7.6.1)', async () => {
    up.handle(reply.raw(200, ['Content-Length', '2', 'Connection', 'keep-alive, X-Resp-Hop', 'X-Resp-Hop', 'secret', 'X-Resp-Kept', 'kept'], 'ok'));
    const r = await rawExchange(proxy.port, `GET ${uniq('resp-hop-named')} HTTP/1.1\r\nHost: x\r\n\r\n`);
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-resp-hop'], undefined, r.headerLines.join(' | '));
    assert.deepEqual(r.headers['x-resp-kept'], ['kept']);
  });
});

describe('streaming', () => {
  const N = 5;
  const GAP = 250;

  test('SSE events reach the client one by one, at the upstream\'s pace', async () => {
    up.handle(reply.sse(Array.from({ length: N }, (_, i) => `event: tick\ndata: {"i":${i}}`), { intervalMs: GAP }));
    const path = uniq('sse');
    const recv = [];
    const texts = [];
    const status = await new Promise((resolve, reject) => {
      const req = http.request(base + path, { method: 'POST', agent: false, headers: { 'content-type': 'application/json' } }, (res) => {
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (d) => {
          buf += d;
          let k;
          while ((k = buf.indexOf('\n\n')) >= 0) {
            texts.push(buf.slice(0, k));
            recv.push(now());
            buf = buf.slice(k + 2);
          }
        });
        res.on('end', () => resolve({ code: res.statusCode, type: res.headers['content-type'], length: res.headers['content-length'] }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.setTimeout(15000, () => req.destroy(new Error('timeout')));
      req.end('{"stream":true}');
    });
    assert.equal(status.code, 200);
    assert.match(String(status.type), /^text\/event-stream/);
    assert.equal(status.length, undefined, 'a stream must not get a Content-Length');
    const rec = await up.waitRequest((x) => x.url === path);
    assert.deepEqual(texts, Array.from({ length: N }, (_, i) => `event: tick\ndata: {"i":${i}}`));
    for (let i = 0; i < N - 1; i++) {
      assert.ok(
        recv[i] < rec.sent[i + 1],
        `event ${i} reached the client ${(recv[i] - rec.sent[i]).toFixed(1)} ms after it was sent, after the upstream sent event ${i + 1} (${GAP} ms later): the proxy buffers`,
      );
    }
  });

  test('through the openai SDK: chat chunks arrive one by one', async () => {
    const chunk = (i, content, finish = null) =>
      'data: ' + JSON.stringify({ id: 'chatcmpl-x', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o-mini', choices: [{ index: 0, delta: i === 0 ? { role: 'assistant', content } : { content }, finish_reason: finish }] });
    const events = [...Array.from({ length: N }, (_, i) => chunk(i, `tok${i} `, i === N - 1 ? 'stop' : null)), 'data: [DONE]'];
    up.handle(reply.sse(events, { intervalMs: GAP }));
    const ai = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'sk-test', maxRetries: 0, timeout: 15000 });
    const stream = await ai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], stream: true });
    const recv = [];
    let text = '';
    for await (const ch of stream) {
      recv.push(now());
      text += ch.choices[0].delta.content ?? '';
    }
    assert.equal(text, Array.from({ length: N }, (_, i) => `tok${i} `).join(''));
    const rec = up.requests.filter((x) => x.url === '/v1/chat/completions').at(-1);
    assert.ok(rec, 'the SDK request did not reach the upstream');
    assert.equal(rec.headers.authorization, 'Bearer sk-test');
    assert.equal(jsonOf(rec.body).stream, true);
    assert.equal(recv.length, N);
    for (let i = 0; i < N - 1; i++) {
      assert.ok(recv[i] < rec.sent[i + 1], `chunk ${i} was delivered after the upstream sent chunk ${i + 1}: the proxy buffers`);
    }
  });

  test('a client that disconnects mid-stream aborts the upstream request', async () => {
    up.handle(reply.sse((i) => `data: {"i":${i}}`, { intervalMs: 100 }));
    const path = uniq('disconnect');
    const c = await RawConn.open(proxy.port);
    await c.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n`);
    await c.waitForText('data: {"i":1}', 5000);
    const rec = await up.waitRequest((x) => x.url === path);
    const t0 = now();
    c.destroy();
    await up.waitRec(rec, (r) => r.closedEarly, 5000, 'the upstream to see its request closed');
    assert.ok(rec.closedAt - t0 < 5000);
  });

  test('a client that stops reading is closed after limits.idle_timeout_ms and the upstream request aborted', async () => {
    const port = await freePort();
    const p = await srv.createProxy({ name: 'send-timeout', provider: 'openai', upstream_url: up.url, port, config: { limits: { idle_timeout_ms: 400 } } });
    const SIZE = 64 * 1024 * 1024;
    up.handle(reply.big(SIZE, (off, n) => Buffer.alloc(n, 0x61)));
    const path = uniq('stalled');
    const sock = net.connect({ port: p.port, host: '127.0.0.1' });
    sock.on('error', () => {});
    await new Promise((resolve) => sock.once('connect', resolve));
    sock.pause(); // never reads: the proxy's output backs up
    sock.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
    const rec = await up.waitRequest((x) => x.url === path);
    await up.waitRec(rec, (r) => r.closedEarly, 10000, 'the upstream to see its request aborted');
    assert.ok(!rec.finished, 'the upstream must not have been able to send everything');
    sock.destroy();
  });

  test('a client that disconnects before the upstream answers aborts the upstream request', async () => {
    up.handle(reply.hang());
    const path = uniq('disconnect-early');
    const c = await RawConn.open(proxy.port);
    await c.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}`);
    const rec = await up.waitRequest((x) => x.url === path && x.body);
    c.destroy();
    await up.waitRec(rec, (r) => r.closedEarly, 5000, 'the upstream to see its request closed');
  });

  test('an HTTP/1.0 client gets a length-less stream close-delimited and complete', async () => {
    const events = Array.from({ length: 3 }, (_, i) => `data: {"old":${i}}`);
    up.handle(reply.sse(events, { intervalMs: 20 }));
    const c = await RawConn.open(proxy.port);
    try {
      await c.write(`GET ${uniq('http10')} HTTP/1.0\r\n\r\n`);
      await c.waitClosed(10000);
      const r = parseResponse(c.buf, false, true);
      assert.equal(r.status, 200);
      assert.equal(r.headers['transfer-encoding'], undefined, 'HTTP/1.0 clients do not understand chunked');
      assert.equal(r.body.toString(), events.map((e) => e + '\n\n').join(''));
    } finally {
      c.destroy();
    }
  });

  test('one large SSE event (256 KiB) arrives intact', async () => {
    const big = 'data: ' + JSON.stringify({ blob: crypto.randomBytes(128 * 1024).toString('hex') });
    up.handle(reply.sse([big, 'data: [DONE]']));
    const r = await httpRequest(base + uniq('big-event'));
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), big + '\n\n' + 'data: [DONE]\n\n');
  });

  test('an upstream that dies mid-stream makes the client see a cut stream, not a clean end', async () => {
    up.handle((req, res) =>
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write('data: {"i":0}\n\n', () => setTimeout(() => req.socket.destroy(), 50));
      }),
    );
    await assert.rejects(
      () => httpRequest(base + uniq('sse-cut'), { timeoutMs: 10000 }),
      (e) => !/timed out/.test(e.message),
      'a stream cut upstream must not be ended cleanly towards the client',
    );
    // and through the SDK: an error, not a silently short answer
    up.handle((req, res) =>
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        const ch = { id: 'c', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta: { role: 'assistant', content: 'part' }, finish_reason: null }] };
        res.write(`data: ${JSON.stringify(ch)}\n\n`, () => setTimeout(() => req.socket.destroy(), 50));
      }),
    );
    const ai = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'sk-test', maxRetries: 0, timeout: 10000 });
    const stream = await ai.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'x' }], stream: true });
    await assert.rejects(async () => {
      for await (const _ of stream) {
        /* drain */
      }
    }, 'the SDK must raise when the stream is cut');
  });

  test('a slow reader gets a big response intact, and the proxy pauses the upstream instead of buffering it all', async () => {
    const SIZE = 96 * 1024 * 1024;
    const data = prng(7)(SIZE);
    const digest = crypto.createHash('sha256').update(data).digest('hex');
    up.handle(reply.big(SIZE, (off, n) => data.subarray(off, off + n)));
    const path = uniq('big');
    let rec = null;
    up.waitRequest((x) => x.url === path, 10000).then((x) => (rec = x));
    const r = await readSlowly(proxy.port, path, () => ({ sent: rec?.bytesFlushed ?? 0, finished: rec?.finished ?? false }), { size: SIZE });
    assert.ok(rec && r.stalledAt > 0, 'the upstream request was not observed sending');
    assert.match(r.head, /^HTTP\/1\.1 200 /);
    assert.match(r.head, new RegExp(`\r\ncontent-length: ${SIZE}(\r|$)`, 'i'), `the upstream Content-Length must pass through:\n${r.head}`);
    if (process.env.RD_E2E_VERBOSE) console.error(`backpressure: upstream stalled after ${(r.stalledAt / 1048576).toFixed(1)} MiB`);
    assert.ok(!r.finishedWhilePaused && r.stalledAt < SIZE * 0.67, `with the client not reading, the upstream could still send ${(r.stalledAt / 1048576).toFixed(1)} MiB of ${SIZE / 1048576} MiB (finished=${r.finishedWhilePaused}): no backpressure`);
    assert.equal(r.response.status, 200);
    assert.equal(r.response.body.length, SIZE);
    assert.equal(crypto.createHash('sha256').update(r.response.body).digest('hex'), digest, 'body corrupted');
  });
});

describe('the openai SDK against the test upstream', () => {
  const ai = () => new OpenAI({ baseURL: `${base}/v1`, apiKey: 'sk-sdk-key', maxRetries: 0, timeout: 10000 });
  const lastAt = (p) => up.requests.filter((x) => x.url === p).at(-1);

  test('chat completion: the upstream gets the SDK request, the SDK gets the upstream answer', async () => {
    const answer = {
      id: 'chatcmpl-up', object: 'chat.completion', created: 1, model: 'gpt-4o-mini',
      choices: [{ index: 0, message: { role: 'assistant', content: 'from the test upstream' }, finish_reason: 'stop' }],
      usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 },
    };
    up.handle(reply.json(answer, { headers: { 'x-request-id': 'req_up_1' } }));
    const { data, response } = await ai()
      .chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], temperature: 0.5 })
      .withResponse();
    assert.deepEqual(data, answer);
    assert.equal(response.headers.get('x-request-id'), 'req_up_1');
    const rec = lastAt('/v1/chat/completions');
    assert.equal(rec.method, 'POST');
    assert.equal(rec.headers.authorization, 'Bearer sk-sdk-key');
    assert.match(rec.headers['user-agent'], /^OpenAI\/JS /);
    assert.deepEqual(jsonOf(rec.body), { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], temperature: 0.5 });
  });

  test('embeddings: the SDK asks for base64 and decodes the upstream answer', async () => {
    const floats = new Float32Array([0.25, -1.5, 3]);
    up.handle(reply.json({
      object: 'list', model: 'text-embedding-3-small',
      data: [{ object: 'embedding', index: 0, embedding: Buffer.from(floats.buffer).toString('base64') }],
      usage: { prompt_tokens: 2, total_tokens: 2 },
    }));
    const r = await ai().embeddings.create({ model: 'text-embedding-3-small', input: 'x' });
    assert.deepEqual(r.data[0].embedding, [0.25, -1.5, 3]);
    assert.equal(jsonOf(lastAt('/v1/embeddings').body).encoding_format, 'base64');
  });

  test('models list and retrieve; an upstream 404 is the SDK\'s NotFoundError', async () => {
    // later routes take precedence: the most specific last
    up.route('/v1/models', reply.json({ object: 'list', data: [{ id: 'up-model', object: 'model', created: 1, owned_by: 'test' }] }));
    up.route('/v1/models/', reply.json({ id: 'up-model', object: 'model', created: 1, owned_by: 'test' }));
    up.route('/v1/models/missing', reply.json({ error: { message: 'The model does not exist', type: 'invalid_request_error', param: null, code: 'model_not_found' } }, { status: 404 }));
    const ids = [];
    for await (const m of ai().models.list()) ids.push(m.id);
    assert.deepEqual(ids, ['up-model']);
    assert.equal((await ai().models.retrieve('up-model')).owned_by, 'test');
    await assert.rejects(() => ai().models.retrieve('missing'), (e) => e instanceof OpenAI.NotFoundError && e.code === 'model_not_found');
  });

  test('responses: non-stream', async () => {
    up.handle(reply.json({
      id: 'resp_1', object: 'response', created_at: 1, status: 'completed', model: 'gpt-4o-mini',
      output: [{ type: 'message', id: 'msg_1', role: 'assistant', status: 'completed', content: [{ type: 'output_text', text: 'upstream says hi', annotations: [] }] }],
      usage: { input_tokens: 1, output_tokens: 3, total_tokens: 4 },
    }));
    const r = await ai().responses.create({ model: 'gpt-4o-mini', input: 'hello' });
    assert.equal(r.output_text, 'upstream says hi');
    assert.equal(jsonOf(lastAt('/v1/responses').body).input, 'hello');
  });
});

describe('secrets', () => {
  test('API keys sent through the proxy are not logged or stored, even at --log-level trace', async () => {
    // Earlier tests sent these through the shared server, at the default level.
    const earlier = ['sk-live-secret-123', 'xak-456', 'azure-789', 'sk-sdk-key'];
    const sharedLog = srv.stderrText() + srv.stdoutText();
    for (const k of earlier) assert.ok(!sharedLog.includes(k), `${k} appears in the server output`);

    // A server of its own at the most verbose level, where everything that is
    // ever dumped is dumped, and one known key in every header providers use.
    const key = `sk-trace-${crypto.randomBytes(12).toString('hex')}`;
    const traced = await startServer({ args: ['--log-level', 'trace'] });
    try {
      const closed = await freePort();
      // Both upstream clients, whatever RUBBERDUCK_E2E_UPSTREAM_CLIENT says.
      const client = (c) => ({ upstream: { client: c } });
      const proxies = [
        { name: 'secrets-native', provider: 'openai', upstream_url: up.url, port: await freePort(), config: client('auto') },
        { name: 'secrets-curl', provider: 'openai', upstream_url: up.url, port: await freePort(), config: client('curl') },
        { name: 'secrets-502', provider: 'openai', upstream_url: `http://127.0.0.1:${closed}`, port: await freePort(), config: client('auto') },
      ];
      for (const p of proxies) assert.equal((await traced.createProxy(p)).status, 'running');
      up.handle(reply.json({ ok: true }));
      const headers = {
        authorization: `Bearer ${key}-authorization`,
        'x-api-key': `${key}-x-api-key`,
        'api-key': `${key}-api-key`,
        'x-goog-api-key': `${key}-x-goog-api-key`,
        'content-type': 'application/json',
      };
      for (const p of proxies) {
        const target = uniq('secrets');
        const r = await httpRequest(`http://127.0.0.1:${p.port}${target}`, { method: 'POST', headers, body: '{}' });
        assert.equal(r.status, p.name === 'secrets-502' ? 502 : 200, `${p.name}: ${r.body}`);
        if (r.status === 200) {
          // the keys did go through, untouched
          const rec = await up.waitRequest((x) => x.url === target);
          for (const [h, v] of Object.entries(headers)) assert.equal(rec.headers[h], v, `${p.name}: ${h} at the upstream`);
        }
      }
      const ai = new OpenAI({ baseURL: `http://127.0.0.1:${proxies[0].port}/v1`, apiKey: `${key}-sdk`, maxRetries: 0, timeout: 10000 });
      const before = up.requests.length;
      for await (const m of ai.models.list()) assert.ok(m.id);
      const sdkRec = up.requests.slice(before).find((x) => x.url === '/v1/models');
      assert.equal(sdkRec?.headers.authorization, `Bearer ${key}-sdk`);
      // a wrong admin token is refused without being echoed or logged
      const denied = await traced.api('GET', '/api/v1/proxies', undefined, { auth: `${key}-admin` });
      assert.equal(denied.status, 401);
      assert.ok(!denied.text.includes(key), 'the admin API echoes the token it refused');
    } finally {
      await traced.stop();
    }
    const log = traced.stderrText() + traced.stdoutText();
    assert.match(log, / level=trace /, 'the server did not log at trace level');
    assert.ok(!log.includes(key), `an API key appears in the server output:\n${log.split('\n').filter((l) => l.includes(key)).join('\n')}`);
    const walk = (d) => fs.readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(d, e.name)) : [path.join(d, e.name)]));
    const files = walk(traced.dataDir);
    assert.ok(files.some((f) => f.endsWith('.db')), `no database in ${traced.dataDir}`);
    for (const f of files) {
      assert.ok(!fs.readFileSync(f).includes(key), `an API key is stored in ${f}`);
    }
    for (const f of walk(srv.dataDir)) {
      for (const k of earlier) assert.ok(!fs.readFileSync(f).includes(k), `${k} is stored in ${f}`);
    }
  });
});

describe('upstream failures', () => {
  test('502 when the upstream port is closed', async () => {
    const closed = await freePort();
    const port = await freePort();
    await srv.createProxy({ name: 'to-closed-port', provider: 'openai', upstream_url: `http://127.0.0.1:${closed}`, port });
    const r = await httpRequest(`http://127.0.0.1:${port}/v1/chat/completions`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
    assert.equal(r.status, 502);
    assert.match(String(r.headers['content-type']), /application\/json/);
    assertOpenAIError(assert, r.body, '502 body');
    // the SDK sees an APIError with status 502
    const ai = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'sk-test', maxRetries: 0 });
    await assert.rejects(
      () => ai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }),
      (e) => e instanceof OpenAI.APIError && e.status === 502,
    );
  });

  test('502 when the upstream closes the connection before answering', async () => {
    up.handle(reply.destroyBeforeHeaders());
    const r = await httpRequest(base + uniq('reset'), { method: 'POST', body: '{}' });
    assert.equal(r.status, 502);
    assertOpenAIError(assert, r.body, '502 body');
  });

  for (const [label, garbage] of [
    ['a bad status line', 'HTTP/1.1 banana\r\n\r\n'],
    ['non-HTTP bytes', 'SSH-2.0-OpenSSH_9.2\r\n\r\n'],
    ['a broken header block', 'HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\nhello'],
  ]) {
    test(`502 when the upstream answers ${label}`, async () => {
      const raw = await startRawUpstream((sock) => sock.end(garbage));
      try {
        const port = await freePort();
        await srv.createProxy({ name: `garbage-${label.replace(/\W+/g, '-')}`, provider: 'openai', upstream_url: raw.url, port });
        const r = await httpRequest(`http://127.0.0.1:${port}/v1/chat/completions`, { method: 'POST', body: '{}' });
        assert.equal(r.status, 502, r.body.toString());
        assertOpenAIError(assert, r.body, '502 body');
        assert.ok(raw.seen.length >= 1, 'the raw upstream never got the request');
      } finally {
        await raw.close();
      }
    });
  }

  test('an upstream that dies mid-body gives the client a truncated response, not a complete one', async () => {
    up.handle(reply.destroyMidBody({ contentLength: 100000, partial: 1000 }));
    await assert.rejects(() => httpRequest(base + uniq('midbody'), { timeoutMs: 10000 }), (e) => !/timed out/.test(e.message));
    // still serving
    up.handle(reply.json({ fine: true }));
    const r = await httpRequest(base + uniq('after-midbody'));
    assert.equal(r.status, 200);
  });

  test('504 when the upstream does not answer within limits.upstream_timeout_ms', async () => {
    const port = await freePort();
    const p = await srv.createProxy({
      name: 'short-timeout',
      provider: 'openai',
      upstream_url: up.url,
      port,
      config: { limits: { upstream_timeout_ms: 300 } },
    });
    assert.equal(p.status, 'running');
    up.handle(reply.hang());
    const path = uniq('hang');
    const t0 = now();
    const r = await httpRequest(`http://127.0.0.1:${port}${path}`, { method: 'POST', body: '{}', timeoutMs: 10000 });
    const took = now() - t0;
    assert.equal(r.status, 504);
    assertOpenAIError(assert, r.body, '504 body');
    assert.ok(took >= 250 && took < 5000, `504 after ${took.toFixed(0)} ms with a 300 ms timeout`);
    const rec = await up.waitRequest((x) => x.url === path);
    await up.waitRec(rec, (x) => x.closedEarly, 5000, 'the timed-out upstream request to be closed');
  });

  test('in-flight requests keep the configuration they started with', async () => {
    const port = await freePort();
    const p = await srv.createProxy({ name: 'snapshot', provider: 'openai', upstream_url: up.url, port, config: { limits: { upstream_timeout_ms: 400 } } });
    up.route('/snap/hang', reply.hang());
    up.route('/snap/slow', reply.json({ slow: 'but fine' }, { delayMs: 900 }));
    // started with a 400 ms timeout: still times out although the timeout is raised meanwhile
    const t0 = now();
    const first = httpRequest(`http://127.0.0.1:${port}/snap/hang/1`, { timeoutMs: 10000 });
    await up.waitRequest((x) => x.url === '/snap/hang/1');
    await srv.putConfig(p.id, { limits: { upstream_timeout_ms: 60000 } });
    const r1 = await first;
    assert.equal(r1.status, 504, 'the in-flight request lost the timeout it started with');
    assert.ok(now() - t0 < 3000);
    // started with a 60 s timeout: not cut when the timeout is lowered meanwhile
    const second = httpRequest(`http://127.0.0.1:${port}/snap/slow/1`, { timeoutMs: 10000 });
    await up.waitRequest((x) => x.url === '/snap/slow/1');
    await srv.putConfig(p.id, { limits: { upstream_timeout_ms: 200 } });
    const r2 = await second;
    assert.equal(r2.status, 200, 'an in-flight request was cut by a configuration change');
    assert.deepEqual(jsonOf(r2.body), { slow: 'but fine' });
    // and the next request uses the new 200 ms timeout
    const r3 = await httpRequest(`http://127.0.0.1:${port}/snap/slow/2`, { timeoutMs: 10000 });
    assert.equal(r3.status, 504);
  });

  test('100 concurrent requests through one proxy all get their own answer', async () => {
    up.handle(echoBody());
    const results = await Promise.all(
      Array.from({ length: 100 }, async (_, i) => {
        const body = Buffer.from(`{"n":${i},"pad":"${'p'.repeat(i * 37)}"}`);
        const r = await httpRequest(base + uniq('conc'), { method: 'POST', body, headers: { 'content-length': body.length }, timeoutMs: 20000 });
        return r.status === 200 && r.body.equals(body);
      }),
    );
    assert.equal(results.filter(Boolean).length, 100);
  });

  test('the proxy keeps serving after all of the failures above', async () => {
    up.handle(reply.json({ still: 'alive' }));
    const r = await withTimeout(httpRequest(base + uniq('alive')), 10000, 'a request after failures');
    assert.equal(r.status, 200);
    assert.deepEqual(jsonOf(r.body), { still: 'alive' });
    const hz = await srv.api('GET', '/healthz', undefined, { auth: null });
    assert.equal(hz.status, 200);
  });
});
