// HTTP/2 from clients: cleartext HTTP/2 with prior knowledge (what the
// Bedrock JS SDK's default handler sends to an http:// endpoint) on every
// proxy port, driven with Node's own http2 client (the openai SDK cannot
// speak HTTP/2) against an emulator proxy and against proxies in front of a
// test upstream; raw sockets for the protocol edges (GOAWAY frames, invalid
// frames, a header block cut short).
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http2 from 'node:http2';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { httpRequest, jsonOf, now, waitFor } from './lib/http.mjs';
import { freePort, startServer } from './lib/server.mjs';
import { reply, startUpstream } from './lib/upstream.mjs';

const HEADER_TIMEOUT_MS = 800;
const IDLE_MS = 400;
const MAX_BODY = 1000;
const PREFACE = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';

let srv;
let up;
let emu; // emulator proxy
let fwd; // proxy in front of the test upstream
let limited; // max_body_bytes = MAX_BODY
let idle; // idle_timeout_ms = IDLE_MS

before(async () => {
  srv = await startServer({ args: ['--header-timeout-ms', String(HEADER_TIMEOUT_MS)] });
  up = await startUpstream(reply.echo());
  emu = await srv.createProxy({
    name: 'emu', provider: 'openai', upstream_url: 'emulator', port: await freePort(),
    config: { emulator: { tokens_per_second: 200 } },
  });
  fwd = await srv.createProxy({ name: 'fwd', provider: 'openai', upstream_url: up.url, port: await freePort() });
  limited = await srv.createProxy({
    name: 'limited', provider: 'openai', upstream_url: up.url, port: await freePort(),
    config: { limits: { max_body_bytes: MAX_BODY } },
  });
  idle = await srv.createProxy({
    name: 'idle', provider: 'openai', upstream_url: up.url, port: await freePort(),
    config: { limits: { idle_timeout_ms: IDLE_MS } },
  });
});
after(async () => {
  await up?.close();
  await srv?.stop(); // asserts a clean exit without sanitizer reports
});

function connect(port, options = {}) {
  const s = http2.connect(`http://127.0.0.1:${port}`, options);
  s.on('error', () => {}); // asserted through the events each test waits for
  return s;
}

/** One request on session: {status, headers, body (Buffer), stream}. */
function request(session, headers, body, { timeoutMs = 10000 } = {}) {
  return new Promise((resolve, reject) => {
    const st = session.request(headers, { endStream: body === undefined });
    const chunks = [];
    let resHeaders = null;
    const timer = setTimeout(() => {
      st.close(http2.constants.NGHTTP2_CANCEL);
      reject(new Error(`no complete response within ${timeoutMs} ms`));
    }, timeoutMs);
    st.on('response', (h) => (resHeaders = h));
    st.on('data', (c) => chunks.push(c));
    st.on('end', () => {
      clearTimeout(timer);
      resolve({ status: resHeaders?.[':status'], headers: resHeaders, body: Buffer.concat(chunks), stream: st });
    });
    st.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    if (body !== undefined) st.end(body);
  });
}

const post = (path, obj, extra = {}) => [{ ':method': 'POST', ':path': path, 'content-type': 'application/json', ...extra }, JSON.stringify(obj)];
const chat = (extra = {}) => ({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hello over HTTP/2' }], ...extra });

function closed(session, timeoutMs = 5000) {
  if (session.closed || session.destroyed) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('session not closed in time')), timeoutMs);
    session.once('close', () => {
      clearTimeout(t);
      resolve();
    });
  });
}

/** Raw TCP client speaking frames: collects the frames the server sends. */
async function rawH2(port) {
  const sock = net.connect(port, '127.0.0.1');
  await new Promise((r, j) => sock.once('connect', r).once('error', j));
  let buf = Buffer.alloc(0);
  const frames = [];
  let ended = false;
  sock.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 9) {
      const len = buf.readUIntBE(0, 3);
      if (buf.length < 9 + len) break;
      frames.push({ type: buf[3], flags: buf[4], stream: buf.readUInt32BE(5) & 0x7fffffff, payload: buf.subarray(9, 9 + len) });
      buf = buf.subarray(9 + len);
    }
  });
  sock.on('error', () => {});
  sock.on('close', () => (ended = true));
  return {
    sock,
    frames,
    isClosed: () => ended,
    frame: (type, flags, stream, payload = Buffer.alloc(0)) => {
      const h = Buffer.alloc(9);
      h.writeUIntBE(payload.length, 0, 3);
      h[3] = type;
      h[4] = flags;
      h.writeUInt32BE(stream, 5);
      return Buffer.concat([h, payload]);
    },
    goaway: () => {
      const g = frames.find((f) => f.type === 7);
      return g && { last: g.payload.readUInt32BE(0) & 0x7fffffff, code: g.payload.readUInt32BE(4) };
    },
  };
}

describe('h2c against the OpenAI emulator', () => {
  test('non-stream chat completion', async () => {
    const s = connect(emu.port);
    try {
      const r = await request(s, ...post('/v1/chat/completions', chat()));
      assert.equal(r.status, 200);
      assert.match(r.headers['content-type'], /application\/json/);
      assert.equal(Number(r.headers['content-length']), r.body.length);
      const j = jsonOf(r.body);
      assert.equal(j.object, 'chat.completion');
      assert.equal(j.choices[0].message.role, 'assistant');
      assert.ok(j.choices[0].message.content.length > 0);
      assert.equal(j.usage.total_tokens, j.usage.prompt_tokens + j.usage.completion_tokens);
    } finally {
      s.close();
    }
  });

  test('streaming chat: events arrive one by one, in order, ending with [DONE]', async () => {
    const s = connect(emu.port);
    try {
      const [h, b] = post('/v1/chat/completions', chat({ stream: true, stream_options: { include_usage: true } }));
      const st = s.request(h);
      st.end(b);
      let status;
      st.on('response', (h) => (status = h[':status']));
      const arrivals = []; // [time, event text]
      let pending = '';
      st.setEncoding('utf8');
      for await (const chunk of st) {
        pending += chunk;
        let i;
        while ((i = pending.indexOf('\n\n')) >= 0) {
          arrivals.push([now(), pending.slice(0, i)]);
          pending = pending.slice(i + 2);
        }
      }
      assert.equal(status, 200);
      assert.equal(pending, '');
      assert.ok(arrivals.length >= 5, `only ${arrivals.length} events`);
      assert.equal(arrivals.at(-1)[1], 'data: [DONE]');
      const chunks = arrivals.slice(0, -1).map(([, e]) => JSON.parse(e.replace(/^data: /, '')));
      assert.equal(chunks[0].choices[0].delta.role, 'assistant');
      assert.ok(chunks.some((c) => c.usage && c.usage.completion_tokens > 0), 'usage chunk');
      const text = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
      assert.ok(text.length > 0);
      // Paced at 200 tokens/s: the content events are spread over time, not one burst.
      const contentTimes = arrivals.filter(([, e]) => e.includes('"content":"') && !e.includes('"content":""')).map(([t]) => t);
      assert.ok(contentTimes.length >= 3);
      assert.ok(contentTimes.at(-1) - contentTimes[0] >= 20, `events not paced: ${contentTimes.at(-1) - contentTimes[0]} ms`);
    } finally {
      s.close();
    }
  });

  test('the emulator answers an unknown path with 404 in OpenAI format over h2', async () => {
    const s = connect(emu.port);
    try {
      const r = await request(s, { ':method': 'GET', ':path': '/v1/nope' });
      assert.equal(r.status, 404);
      assert.equal(typeof jsonOf(r.body).error.message, 'string');
    } finally {
      s.close();
    }
  });

  test('HTTP/1.1 still works on the same port (GET and a POST, whose first byte is the preface\'s)', async () => {
    const g = await httpRequest(`http://127.0.0.1:${emu.port}/v1/models`);
    assert.equal(g.status, 200);
    assert.equal(jsonOf(g.body).object, 'list');
    const p = await httpRequest(`http://127.0.0.1:${emu.port}/v1/chat/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(chat()),
    });
    assert.equal(p.status, 200);
    assert.equal(jsonOf(p.body).object, 'chat.completion');
  });
});

describe('h2c in front of a test upstream', () => {
  test('many concurrent streams on one connection', async () => {
    up.route('/h2/slow/', (req, res, rec) => setTimeout(() => reply.echo()(req, res, rec), 300));
    const s = connect(fwd.port);
    try {
      const N = 40;
      const t0 = now();
      const rs = await Promise.all(
        Array.from({ length: N }, (_, i) => request(s, ...post(`/h2/slow/${i}?q=${i}`, { i }))),
      );
      const elapsed = now() - t0;
      rs.forEach((r, i) => {
        assert.equal(r.status, 200);
        const j = jsonOf(r.body);
        assert.equal(j.url, `/h2/slow/${i}?q=${i}`);
        assert.equal(Buffer.from(j.body_b64, 'base64').toString(), JSON.stringify({ i }));
      });
      // Sequential would take N x 300 ms: the streams ran concurrently.
      assert.ok(elapsed < 3000, `took ${elapsed} ms`);
    } finally {
      s.close();
    }
  });

  test('method, path, query, headers and body forwarded byte-exact (3 MiB binary body too)', async () => {
    const s = connect(fwd.port);
    try {
      const big = crypto.randomBytes(3 * 1024 * 1024 + 17);
      const r = await request(s, {
        ':method': 'PUT', ':path': '/h2/echo/x%20y?a=1&b=%2F2', 'content-type': 'application/octet-stream',
        'x-custom': 'Value 1', cookie: 'a=1', 'x-forwarded-for': '10.1.2.3',
      }, big);
      assert.equal(r.status, 200);
      const j = jsonOf(r.body);
      assert.equal(j.method, 'PUT');
      assert.equal(j.url, '/h2/echo/x%20y?a=1&b=%2F2');
      assert.equal(j.headers['x-custom'], 'Value 1');
      assert.equal(j.headers.cookie, 'a=1');
      assert.equal(j.headers['x-forwarded-for'], '10.1.2.3, 127.0.0.1');
      assert.ok(Buffer.from(j.body_b64, 'base64').equals(big), 'body differs');
      const rec = up.requests.find((x) => x.url === '/h2/echo/x%20y?a=1&b=%2F2');
      assert.equal(Number(rec.headers['content-length']), big.length);
      assert.equal(rec.httpVersion, '1.1');
    } finally {
      s.close();
    }
  });

  test('response headers: lower-case, hop-by-hop dropped, content-length kept', async () => {
    up.route('/h2/hdrs', reply.raw(201, { 'X-Mixed-Case': 'yes', 'Keep-Alive': 'timeout=5', Connection: 'keep-alive', 'Content-Length': '2' }, 'ok'));
    const s = connect(fwd.port);
    try {
      const r = await request(s, { ':method': 'GET', ':path': '/h2/hdrs' });
      assert.equal(r.status, 201);
      assert.equal(r.headers['x-mixed-case'], 'yes');
      assert.equal(r.headers['keep-alive'], undefined);
      assert.equal(r.headers.connection, undefined);
      assert.equal(r.headers['content-length'], '2');
      assert.equal(r.body.toString(), 'ok');
    } finally {
      s.close();
    }
  });

  test('a slow reader on one stream pauses its upstream; another stream completes promptly', async () => {
    const SIZE = 48 * 1024 * 1024;
    const fill = Buffer.alloc(64 * 1024, 0x61);
    up.route('/h2/big', reply.big(SIZE, (off, n) => fill.subarray(0, n), { contentLength: false }));
    up.route('/h2/fast', reply.json({ fast: true }));
    const s = connect(fwd.port);
    try {
      const slow = s.request({ ':method': 'GET', ':path': '/h2/big' });
      let got = 0;
      const firstData = new Promise((r) => slow.once('data', (c) => {
        got += c.length;
        slow.pause(); // stop reading: node stops granting this stream window
        r();
      }));
      await firstData;
      const rec = await up.waitRequest((x) => x.url === '/h2/big');
      // The upstream stops: its writes are no longer taken once the proxy pauses it.
      let last = -1;
      await waitFor(async () => {
        const cur = rec.bytesFlushed;
        const stable = cur === last;
        last = cur;
        await new Promise((r) => setTimeout(r, 150));
        return stable;
      }, 8000, 'the upstream to stall');
      assert.ok(rec.bytesFlushed < SIZE / 2, `upstream sent ${rec.bytesFlushed} of ${SIZE} bytes to a paused reader`);
      assert.ok(!rec.finished);
      const t0 = now();
      const r = await request(s, { ':method': 'GET', ':path': '/h2/fast' });
      assert.equal(r.status, 200);
      assert.deepEqual(jsonOf(r.body), { fast: true });
      assert.ok(now() - t0 < 1000, `the other stream took ${now() - t0} ms`);
      // Reading again resumes the upstream through to the end.
      slow.on('data', (c) => (got += c.length));
      const ended = new Promise((r) => slow.once('end', r));
      slow.resume();
      await ended;
      assert.equal(got, SIZE);
    } finally {
      s.close();
    }
  });

  test('client RST_STREAM mid-stream aborts the upstream request; the connection keeps serving', async () => {
    up.route('/h2/forever', reply.sse((i) => `data: {"i":${i}}`, { intervalMs: 30 }));
    const s = connect(fwd.port);
    try {
      const st = s.request({ ':method': 'POST', ':path': '/h2/forever', 'content-type': 'application/json' });
      st.end('{}');
      let events = 0;
      await new Promise((r) => st.on('data', (c) => {
        events += (c.toString().match(/\n\n/g) || []).length;
        if (events >= 2) r();
      }));
      const rec = up.requests.find((x) => x.url === '/h2/forever');
      st.close(http2.constants.NGHTTP2_CANCEL);
      await up.waitRec(rec, (x) => x.closedEarly, 5000, 'the upstream request to be aborted');
      const r = await request(s, { ':method': 'GET', ':path': '/h2/after-reset' });
      assert.equal(r.status, 200);
    } finally {
      s.close();
    }
  });

  test('body over limits.max_body_bytes: 413 in OpenAI\'s error format, with and without content-length', async () => {
    const s = connect(limited.port);
    try {
      const body = JSON.stringify({ model: 'x', pad: 'p'.repeat(MAX_BODY * 5) });
      for (const [path, extra] of [['/v1/chat/completions?cl', { 'content-length': String(body.length) }], ['/v1/chat/completions?nocl', {}]]) {
        const r = await request(s, { ':method': 'POST', ':path': path, 'content-type': 'application/json', ...extra }, body);
        assert.equal(r.status, 413, path);
        const j = jsonOf(r.body);
        assert.equal(typeof j.error.message, 'string');
        assert.equal(j.error.type, 'invalid_request_error');
        assert.ok(!up.requests.some((x) => x.url === path), 'the oversized request reached the upstream');
      }
      const ok = await request(s, { ':method': 'POST', ':path': '/h2/limited-ok' }, 'f'.repeat(MAX_BODY));
      assert.equal(ok.status, 200, 'the connection still serves');
      assert.equal(Buffer.from(jsonOf(ok.body).body_b64, 'base64').length, MAX_BODY);
    } finally {
      s.close();
    }
  });

  test('oversized request headers get 431 and the connection keeps serving', async () => {
    // Node refuses to send a block over 64 KiB unless told otherwise.
    const s = connect(fwd.port, { maxSendHeaderBlockLength: 256 * 1024 });
    try {
      const r = await request(s, { ':method': 'GET', ':path': '/h2/big-head', 'x-big': 'a'.repeat(70 * 1024) });
      assert.equal(r.status, 431);
      assert.equal(typeof jsonOf(r.body).error.message, 'string');
      assert.ok(!up.requests.some((x) => x.url === '/h2/big-head'));
      const ok = await request(s, { ':method': 'GET', ':path': '/h2/after-431' });
      assert.equal(ok.status, 200);
    } finally {
      s.close();
    }
  });

  test('connection-specific headers are rejected (RST_STREAM PROTOCOL_ERROR), never forwarded', async () => {
    const c = await rawH2(fwd.port);
    try {
      // HPACK: :method GET (idx 2), :scheme http (6), :path / (4), :authority literal,
      // then "connection: close" as a literal without indexing.
      const lit = (name, value) => Buffer.concat([Buffer.from([0x00, name.length]), Buffer.from(name), Buffer.from([value.length]), Buffer.from(value)]);
      const block = Buffer.concat([Buffer.from([0x82, 0x86, 0x84]), lit(':authority', 'x'), lit('connection', 'close')]);
      c.sock.write(Buffer.concat([Buffer.from(PREFACE), c.frame(4, 0, 0), c.frame(1, 0x5, 1, block)]));
      await waitFor(() => c.frames.some((f) => f.type === 3 && f.stream === 1), 5000, 'RST_STREAM');
      const rst = c.frames.find((f) => f.type === 3 && f.stream === 1);
      assert.equal(rst.payload.readUInt32BE(0), 1); // PROTOCOL_ERROR
      assert.ok(!c.frames.some((f) => f.type === 1 && f.stream === 1), 'a response was sent');
    } finally {
      c.sock.destroy();
    }
  });
});

describe('h2c timeouts, GOAWAY and stopping', () => {
  test(`an idle connection gets GOAWAY (NO_ERROR) after limits.idle_timeout_ms (${IDLE_MS} ms) and is closed`, async () => {
    const s = connect(idle.port);
    const goaway = new Promise((r) => s.once('goaway', (code, last) => r({ code, last, at: now() })));
    const r = await request(s, { ':method': 'GET', ':path': '/h2/idle' });
    assert.equal(r.status, 200);
    const t0 = now();
    const g = await goaway;
    assert.equal(g.code, 0);
    assert.equal(g.last, 1);
    assert.ok(g.at - t0 >= IDLE_MS - 50, `GOAWAY after ${g.at - t0} ms`);
    await closed(s);
  });

  test(`a connection without a request gets GOAWAY after --header-timeout-ms (${HEADER_TIMEOUT_MS} ms)`, async () => {
    const c = await rawH2(fwd.port);
    try {
      const t0 = now();
      c.sock.write(Buffer.concat([Buffer.from(PREFACE), c.frame(4, 0, 0)]));
      await waitFor(() => c.isClosed(), 5000, 'the connection to close');
      assert.ok(now() - t0 >= HEADER_TIMEOUT_MS - 50);
      assert.deepEqual(c.goaway(), { last: 0, code: 0 });
    } finally {
      c.sock.destroy();
    }
  });

  test('a header block cut short (HEADERS without END_HEADERS) ends in GOAWAY after the header timeout', async () => {
    const c = await rawH2(fwd.port);
    try {
      const t0 = now();
      c.sock.write(Buffer.concat([Buffer.from(PREFACE), c.frame(4, 0, 0), c.frame(1, 0x1, 1, Buffer.from([0x82]))]));
      await waitFor(() => c.isClosed(), 5000, 'the connection to close');
      assert.ok(now() - t0 >= HEADER_TIMEOUT_MS - 50);
      assert.deepEqual(c.goaway(), { last: 0, code: 0 }); // stream 1 was not processed
    } finally {
      c.sock.destroy();
    }
  });

  test('invalid frames end in GOAWAY with an error code, and the server keeps serving', async () => {
    const cases = [
      Buffer.from('this is not a frame at all, just bytes after the preface....'),
      Buffer.concat([Buffer.from([0, 0, 0, 0, 0x1, 0, 0, 0, 0])]), // DATA on stream 0
    ];
    for (const junk of cases) {
      const c = await rawH2(fwd.port);
      try {
        c.sock.write(Buffer.concat([Buffer.from(PREFACE), junk]));
        await waitFor(() => c.isClosed(), 5000, 'the connection to close');
        const g = c.goaway();
        assert.ok(g, 'no GOAWAY');
        assert.notEqual(g.code, 0);
      } finally {
        c.sock.destroy();
      }
    }
    const s = connect(fwd.port);
    try {
      assert.equal((await request(s, { ':method': 'GET', ':path': '/h2/after-junk' })).status, 200);
    } finally {
      s.close();
    }
  });

  test('stopping the proxy: GOAWAY, streams in flight finish, then the connection closes', async () => {
    const p = await srv.createProxy({ name: 'stopper', provider: 'openai', upstream_url: up.url, port: await freePort() });
    up.route('/h2/inflight/', (req, res, rec) => setTimeout(() => reply.echo()(req, res, rec), 700));
    const s = connect(p.port);
    const goaway = new Promise((r) => s.once('goaway', (code, last) => r({ code, last })));
    const inflight = [1, 2, 3].map((i) => request(s, { ':method': 'GET', ':path': `/h2/inflight/${i}` }));
    await waitFor(() => up.requests.filter((x) => x.url.startsWith('/h2/inflight/')).length === 3, 5000, 'the requests upstream');
    const stop = srv.api('POST', `/api/v1/proxies/${p.id}/stop?mode=graceful&timeout_s=10`, undefined, { timeoutMs: 20000 });
    const g = await goaway;
    assert.equal(g.code, 0);
    assert.equal(g.last, 5); // streams 1, 3 and 5 were processed
    const rs = await Promise.all(inflight);
    for (const r of rs) assert.equal(r.status, 200);
    await closed(s);
    assert.equal((await stop).status, 200);
  });
});
