// Request limits and timeouts on a proxy port, over raw sockets: oversized
// heads (431), oversized bodies (413), malformed requests (400 + close),
// slowloris protection, idle keep-alive timeout. The server must keep
// serving after each of them.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { RawConn, jsonOf, now } from './lib/http.mjs';
import { freePort, startServer } from './lib/server.mjs';
import { reply, startUpstream } from './lib/upstream.mjs';

const HEADER_TIMEOUT_MS = 1000;
const IDLE_MS = 300;
const MAX_BODY = 1000;

let srv;
let up;
let limited; // proxy with max_body_bytes = MAX_BODY
let idle; // proxy with idle_timeout_ms = IDLE_MS

before(async () => {
  srv = await startServer({ args: ['--header-timeout-ms', String(HEADER_TIMEOUT_MS)] });
  up = await startUpstream(reply.echo());
  limited = await srv.createProxy({ name: 'limited', provider: 'openai', upstream_url: up.url, port: await freePort() });
  await srv.putConfig(limited.id, { limits: { max_body_bytes: MAX_BODY } });
  idle = await srv.createProxy({ name: 'idle', provider: 'openai', upstream_url: up.url, port: await freePort(), config: { limits: { idle_timeout_ms: IDLE_MS } } });
});
after(async () => {
  await up?.close();
  await srv?.stop();
});

let seq = 0;
const uniq = (name) => `/l/${name}/${++seq}`;
const seen = (path) => up.requests.some((r) => r.url === path);

/** Opens a connection to port, writes text (ignoring write errors once the peer closed), reads one response. */
async function send(port, text, { timeoutMs = 5000 } = {}) {
  const c = await RawConn.open(port);
  await c.write(text);
  try {
    const r = await c.readResponse({ timeoutMs });
    return { r, c };
  } catch (e) {
    c.destroy();
    throw e;
  }
}

async function assertStillServing() {
  const path = uniq('alive');
  const { r, c } = await send(limited.port, `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
  c.destroy();
  assert.equal(r.status, 200, 'the proxy stopped serving');
  assert.equal(jsonOf(r.body).url, path);
}

function assertErrorBody(r) {
  const j = jsonOf(r.body);
  assert.equal(typeof j.error?.message, 'string', `error body: ${r.body}`);
}

describe('431: request line and headers over 64 KiB', () => {
  test('one 70 KiB header', async () => {
    const path = uniq('431-one');
    const { r, c } = await send(limited.port, `GET ${path} HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(70 * 1024)}\r\n\r\n`);
    c.destroy();
    assert.equal(r.status, 431);
    assertErrorBody(r);
    assert.ok(!seen(path), 'an oversized request reached the upstream');
  });

  test('many headers adding up to more than 64 KiB', async () => {
    const path = uniq('431-many');
    let h = '';
    for (let i = 0; i < 100; i++) h += `X-H${i}: ${'b'.repeat(700)}\r\n`;
    const { r, c } = await send(limited.port, `GET ${path} HTTP/1.1\r\nHost: x\r\n${h}\r\n`);
    c.destroy();
    assert.equal(r.status, 431);
    assert.ok(!seen(path));
  });

  test('a 70 KiB request line', async () => {
    const path = uniq('431-url') + '?q=' + 'c'.repeat(70 * 1024);
    const { r, c } = await send(limited.port, `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
    c.destroy();
    assert.equal(r.status, 431);
  });

  test('60 KiB of headers is still accepted and forwarded intact', async () => {
    const path = uniq('below-431');
    const value = 'd'.repeat(60 * 1024);
    const { r, c } = await send(limited.port, `GET ${path} HTTP/1.1\r\nHost: x\r\nX-Big: ${value}\r\n\r\n`);
    c.destroy();
    assert.equal(r.status, 200);
    const rec = up.requests.find((x) => x.url === path);
    assert.equal(rec.headers['x-big'], value);
  });

  test('still serving', assertStillServing);
});

describe('413: body over limits.max_body_bytes', () => {
  test('Content-Length over the limit', async () => {
    const path = uniq('413-cl');
    const body = 'e'.repeat(MAX_BODY + 1);
    const { r, c } = await send(limited.port, `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    c.destroy();
    assert.equal(r.status, 413);
    assertErrorBody(r);
    assert.ok(!seen(path), 'a request announcing an oversized body reached the upstream');
  });

  test('a body exactly at the limit is forwarded', async () => {
    const path = uniq('413-edge');
    const body = 'f'.repeat(MAX_BODY);
    const { r, c } = await send(limited.port, `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    c.destroy();
    assert.equal(r.status, 200);
    assert.equal(Buffer.from(jsonOf(r.body).body_b64, 'base64').toString(), body);
  });

  test('a chunked body that grows over the limit', async () => {
    const path = uniq('413-chunked');
    const chunk = 'g'.repeat(400);
    let text = `POST ${path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n`;
    for (let i = 0; i < 4; i++) text += `${chunk.length.toString(16)}\r\n${chunk}\r\n`;
    text += '0\r\n\r\n';
    const { r, c } = await send(limited.port, text);
    c.destroy();
    assert.equal(r.status, 413);
    const rec = up.requests.find((x) => x.url === path);
    assert.ok(!rec || !rec.body || rec.body.length < 1600, 'the upstream received the whole oversized body');
  });

  test('Expect: 100-continue with an oversized Content-Length gets 413', async () => {
    const path = uniq('413-expect');
    const c = await RawConn.open(limited.port);
    try {
      await c.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: ${MAX_BODY * 10}\r\nExpect: 100-continue\r\n\r\n`);
      let r = await c.readResponse();
      if (r.status === 100) r = await c.readResponse();
      assert.equal(r.status, 413);
      assert.ok(!seen(path));
    } finally {
      c.destroy();
    }
  });

  test('the default limit (32 MiB) lets a 2 MiB body through on another proxy', async () => {
    const path = uniq('big-ok');
    const body = Buffer.alloc(2 * 1024 * 1024, 0x68);
    const { r, c } = await send(idle.port, Buffer.concat([Buffer.from(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n`), body]), { timeoutMs: 15000 });
    c.destroy();
    assert.equal(r.status, 200);
    assert.equal(up.requests.find((x) => x.url === path).body.length, body.length);
  });

  test('still serving', assertStillServing);
});

describe('400: malformed requests close the connection', () => {
  const cases = [
    ['a garbled HTTP version', 'GET / HTTX/1.1\r\nHost: x\r\n\r\n'],
    ['a request line with extra words', 'GET / HTTP/1.1 please\r\nHost: x\r\n\r\n'],
    ['header without a colon', 'GET / HTTP/1.1\r\nHost: x\r\nThis is not a header\r\n\r\n'],
    ['invalid Content-Length', 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n'],
    ['Content-Length and Transfer-Encoding together', 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n'],
    ['two different Content-Lengths', 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!'],
    ['Transfer-Encoding without chunked last', 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nxx'],
    ['a bad chunk size', 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n'],
    ['a NUL in the request target', 'GET /a\0b HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['a TLS ClientHello', Buffer.from('16030100a5010000a10303', 'hex')],
  ];
  for (const [label, text] of cases) {
    test(label, async () => {
      const before = up.requests.length;
      const c = await RawConn.open(limited.port);
      try {
        await c.write(text);
        const r = await c.readResponse();
        assert.equal(r.status, 400, `${label}: got ${r.status}`);
        await c.waitClosed(3000);
        assert.equal(up.requests.length, before, 'a malformed request reached the upstream');
      } finally {
        c.destroy();
      }
    });
  }

  test('an unknown method is refused (400 or 501) and the connection closed', async () => {
    const before = up.requests.length;
    const c = await RawConn.open(limited.port);
    try {
      await c.write('HELLO THERE\r\n\r\n');
      const r = await c.readResponse();
      assert.ok([400, 501].includes(r.status), `got ${r.status}`);
      await c.waitClosed(3000);
      assert.equal(up.requests.length, before);
    } finally {
      c.destroy();
    }
  });

  test('still serving', assertStillServing);
});

describe('timeouts', () => {
  test(`slowloris: headers trickling in are cut after --header-timeout-ms (${HEADER_TIMEOUT_MS} ms), with a 408`, async () => {
    const c = await RawConn.open(limited.port);
    const t0 = now();
    try {
      await c.write('GET /slow HTTP/1.1\r\nHost: x\r\n');
      let i = 0;
      const trickle = setInterval(() => {
        if (c.ended) return clearInterval(trickle);
        c.write(`X-Slow-${i++}: y\r\n`);
      }, 100);
      try {
        await c.waitClosed(HEADER_TIMEOUT_MS + 3000);
      } finally {
        clearInterval(trickle);
      }
      const took = c.endedAt - t0;
      assert.ok(took >= HEADER_TIMEOUT_MS * 0.8, `closed after ${took.toFixed(0)} ms: sooner than the header timeout`);
      assert.ok(took < HEADER_TIMEOUT_MS + 2000, `closed after ${took.toFixed(0)} ms`);
      assert.match(c.all.toString('latin1'), /^HTTP\/1\.1 408 /, 'a connection that sent part of a request gets 408 before the close');
    } finally {
      c.destroy();
    }
  });

  test('a connection that sends nothing is closed after the header timeout', async () => {
    const c = await RawConn.open(limited.port);
    const t0 = now();
    try {
      await c.waitClosed(HEADER_TIMEOUT_MS + 3000);
      const took = c.endedAt - t0;
      assert.ok(took >= HEADER_TIMEOUT_MS * 0.8 && took < HEADER_TIMEOUT_MS + 2000, `closed after ${took.toFixed(0)} ms`);
    } finally {
      c.destroy();
    }
  });

  test(`an idle keep-alive connection is closed after limits.idle_timeout_ms (${IDLE_MS} ms)`, async () => {
    const c = await RawConn.open(idle.port);
    try {
      await c.write(`GET ${uniq('idle')} HTTP/1.1\r\nHost: x\r\n\r\n`);
      const r = await c.readResponse();
      const t0 = now();
      assert.equal(r.status, 200);
      await c.waitClosed(3000);
      const took = c.endedAt - t0;
      assert.ok(took >= IDLE_MS * 0.7, `closed ${took.toFixed(0)} ms after the response: keep-alive not honoured`);
      assert.ok(took < IDLE_MS + 600, `closed ${took.toFixed(0)} ms after the response, idle timeout is ${IDLE_MS} ms`);
    } finally {
      c.destroy();
    }
  });

  test('with the default idle timeout a keep-alive connection outlives the header timeout', async () => {
    const c = await RawConn.open(limited.port);
    try {
      await c.write(`GET ${uniq('ka1')} HTTP/1.1\r\nHost: x\r\n\r\n`);
      assert.equal((await c.readResponse()).status, 200);
      const until = now() + HEADER_TIMEOUT_MS + 500;
      await assert.rejects(c.waitClosed(until - now()), /timed out/, 'the idle connection was closed before its idle timeout');
      const path = uniq('ka2');
      await c.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
      const r = await c.readResponse();
      assert.equal(r.status, 200);
      assert.equal(jsonOf(r.body).url, path);
    } finally {
      c.destroy();
    }
  });

  test('a body that trickles in for longer than the header timeout is not cut', async () => {
    const path = uniq('slow-body');
    const parts = Array.from({ length: 8 }, (_, i) => `part${i};`);
    const body = parts.join('');
    const c = await RawConn.open(idle.port);
    try {
      await c.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n`);
      const t0 = now();
      for (const p of parts) {
        await c.write(p);
        await new Promise((r) => setTimeout(r, (HEADER_TIMEOUT_MS * 1.5) / parts.length));
      }
      assert.ok(now() - t0 > HEADER_TIMEOUT_MS, 'the body did not take longer than the header timeout');
      const r = await c.readResponse();
      assert.equal(r.status, 200);
      assert.equal(Buffer.from(jsonOf(r.body).body_b64, 'base64').toString(), body);
    } finally {
      c.destroy();
    }
  });

  test('still serving', assertStillServing);
});

describe('admin API limits', () => {
  test('an oversized admin request is refused and the API keeps working', async () => {
    const port = Number(new URL(srv.adminUrl).port);
    const big = JSON.stringify({ name: 'x'.repeat(40 * 1024 * 1024), provider: 'openai' });
    const c = await RawConn.open(port);
    try {
      await c.write(`POST /api/v1/proxies HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${srv.token}\r\nContent-Type: application/json\r\nContent-Length: ${big.length}\r\n\r\n`);
      c.write(big);
      const r = await c.readResponse({ timeoutMs: 15000 });
      assert.ok([400, 413].includes(r.status), `a 40 MiB admin request got ${r.status}`);
    } finally {
      c.destroy();
    }
    const list = await srv.api('GET', '/api/v1/proxies');
    assert.equal(list.status, 200);
    assert.equal(list.json.proxies.length, 2);
  });
});
