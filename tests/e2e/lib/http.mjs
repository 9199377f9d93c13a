// HTTP helpers for the end-to-end tests: a one-shot request (fresh
// connection each time, so no pooled socket hides a closed listener), a raw
// socket client that writes exact bytes and parses exact responses, and
// polling/waiting utilities that always have a deadline.
import http from 'node:http';
import net from 'node:net';
import { performance } from 'node:perf_hooks';

export const now = () => performance.now();

/**
 * One request on a new connection. Resolves {status, headers, rawHeaders,
 * body: Buffer}; rejects on connection errors or after timeoutMs.
 * opts: method, headers (object or raw array), body (string|Buffer),
 * timeoutMs, onResponse(res) (called with the live response; then body is
 * not collected by this helper unless collect is true).
 */
export function httpRequest(url, { method = 'GET', headers = {}, body, timeoutMs = 10000, signal } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false, maxHeaderSize: 1 << 20, signal }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode, headers: res.headers, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks) });
      });
      res.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      res.on('aborted', () => {
        clearTimeout(timer);
        reject(Object.assign(new Error('response aborted'), { partial: Buffer.concat(chunks), status: res.statusCode }));
      });
    });
    const timer = setTimeout(() => {
      req.destroy(new Error(`${method} ${url} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    req.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    if (body !== undefined) req.end(body);
    else req.end();
  });
}

/** Polls fn (sync or async, truthy = done) every intervalMs until timeoutMs. */
export async function waitFor(fn, timeoutMs = 5000, what = 'condition', intervalMs = 20) {
  const deadline = now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Races p against a deadline. */
export function withTimeout(p, ms, what = 'operation') {
  let timer;
  return Promise.race([
    p,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** 'connected' or the error code of a TCP connect to 127.0.0.1:port (e.g. 'ECONNREFUSED'). */
export function tryConnect(port, host = '127.0.0.1', timeoutMs = 3000) {
  return new Promise((resolve) => {
    const s = net.connect({ port, host });
    const timer = setTimeout(() => {
      s.destroy();
      resolve('timeout');
    }, timeoutMs);
    s.on('connect', () => {
      clearTimeout(timer);
      s.destroy();
      resolve('connected');
    });
    s.on('error', (e) => {
      clearTimeout(timer);
      resolve(e.code || e.message);
    });
  });
}

/**
 * A raw TCP client: write exact bytes, read exact HTTP responses.
 * Everything received is kept in `buf`; readResponse() consumes one response.
 */
export class RawConn {
  static async open(port, host = '127.0.0.1', timeoutMs = 5000) {
    const c = new RawConn();
    await c.connect(port, host, timeoutMs);
    return c;
  }

  constructor() {
    this.buf = Buffer.alloc(0);
    this.all = Buffer.alloc(0);
    this.ended = false; // peer closed (FIN or RST)
    this.endedAt = null;
    this.error = null;
    this.waiters = new Set();
  }

  connect(port, host, timeoutMs) {
    return new Promise((resolve, reject) => {
      const s = net.connect({ port, host });
      this.sock = s;
      const timer = setTimeout(() => {
        s.destroy();
        reject(new Error(`connect to ${host}:${port} timed out`));
      }, timeoutMs);
      s.once('connect', () => {
        clearTimeout(timer);
        resolve();
      });
      s.on('data', (d) => {
        this.buf = Buffer.concat([this.buf, d]);
        this.all = Buffer.concat([this.all, d]);
        this.notify();
      });
      const onEnd = () => {
        if (!this.ended) {
          this.ended = true;
          this.endedAt = now();
        }
        this.notify();
      };
      s.on('end', onEnd);
      s.on('close', onEnd);
      s.on('error', (e) => {
        clearTimeout(timer);
        if (!this.error) this.error = e;
        if (s.connecting) reject(e);
        onEnd();
      });
    });
  }

  notify() {
    for (const w of [...this.waiters]) w();
  }

  /** Writes bytes; write errors (peer already closed) are recorded, not thrown. */
  write(data) {
    return new Promise((resolve) => {
      if (this.sock.destroyed) return resolve(false);
      this.sock.write(data, (err) => {
        if (err && !this.error) this.error = err;
        resolve(!err);
      });
    });
  }

  /** Half-closes our side (FIN). */
  end() {
    this.sock.end();
  }

  destroy() {
    this.sock.destroy();
  }

  /** Resolves when pred() is truthy; rejects after timeoutMs. */
  until(pred, timeoutMs, what) {
    return new Promise((resolve, reject) => {
      const check = () => {
        let v;
        try {
          v = pred();
        } catch (e) {
          done();
          return reject(e);
        }
        if (v) {
          done();
          resolve(v);
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; received so far: ${JSON.stringify(this.buf.toString('latin1').slice(0, 400))}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }

  /** Waits until the peer closes the connection; resolves the close time. */
  waitClosed(timeoutMs = 5000) {
    return this.until(() => this.ended && this.endedAt, timeoutMs, 'the connection to close');
  }

  /** Waits until `text` appears in the unconsumed input. */
  waitForText(text, timeoutMs = 5000) {
    return this.until(() => this.buf.includes(text), timeoutMs, JSON.stringify(text));
  }

  /**
   * Reads one response. opts.head: response to HEAD (no body). If the peer
   * closes before a complete response, rejects (error.partial holds the bytes).
   */
  readResponse({ timeoutMs = 10000, head = false } = {}) {
    return this.until(
      () => {
        const r = parseResponse(this.buf, head, this.ended);
        if (r === null) {
          if (this.ended) {
            const e = new Error(`connection closed before a complete response; got ${JSON.stringify(this.buf.toString('latin1').slice(0, 300))}`);
            e.partial = this.buf;
            throw e;
          }
          return null;
        }
        this.buf = this.buf.subarray(r.consumed);
        return r;
      },
      timeoutMs,
      'a complete HTTP response',
    );
  }
}

/**
 * Parses one HTTP/1.x response at the start of buf. Returns null when more
 * bytes are needed, else {status, reason, version, headers (lower-case name ->
 * array of values), headerLines, body, consumed, chunked}.
 */
export function parseResponse(buf, head = false, eof = false) {
  const idx = buf.indexOf('\r\n\r\n');
  if (idx < 0) return null;
  const lines = buf.subarray(0, idx).toString('latin1').split('\r\n');
  const m = /^HTTP\/(\d\.\d) (\d{3})(?: (.*))?$/.exec(lines[0]);
  if (!m) throw new Error(`bad status line ${JSON.stringify(lines[0])}`);
  const status = Number(m[2]);
  const headers = {};
  for (const l of lines.slice(1)) {
    const c = l.indexOf(':');
    const name = l.slice(0, c).trim().toLowerCase();
    (headers[name] ||= []).push(l.slice(c + 1).trim());
  }
  let pos = idx + 4;
  const base = { status, reason: m[3] || '', version: m[1], headers, headerLines: lines.slice(1) };
  if (head || status === 204 || status === 304 || (status >= 100 && status < 200)) {
    return { ...base, body: Buffer.alloc(0), consumed: pos, chunked: false };
  }
  const te = (headers['transfer-encoding'] || []).join(',').toLowerCase();
  if (te.includes('chunked')) {
    const parts = [];
    for (;;) {
      const e = buf.indexOf('\r\n', pos);
      if (e < 0) return null;
      const size = parseInt(buf.subarray(pos, e).toString('latin1').split(';')[0], 16);
      if (Number.isNaN(size)) throw new Error('bad chunk size');
      pos = e + 2;
      if (size === 0) {
        // trailers until an empty line
        const t = buf.indexOf('\r\n\r\n', pos - 2);
        if (t < 0) return null;
        pos = t + 4;
        break;
      }
      if (buf.length < pos + size + 2) return null;
      parts.push(buf.subarray(pos, pos + size));
      pos += size + 2;
    }
    return { ...base, body: Buffer.concat(parts), consumed: pos, chunked: true };
  }
  if (headers['content-length']) {
    const len = Number(headers['content-length'][0]);
    if (buf.length < pos + len) return null;
    return { ...base, body: buf.subarray(pos, pos + len), consumed: pos + len, chunked: false };
  }
  // close-delimited
  if (!eof) return null;
  return { ...base, body: buf.subarray(pos), consumed: buf.length, chunked: false };
}

/** Parses a JSON body, with the text in the error message if it is not JSON. */
export function jsonOf(bodyBuf) {
  const text = Buffer.isBuffer(bodyBuf) ? bodyBuf.toString('utf8') : String(bodyBuf);
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`not JSON: ${JSON.stringify(text.slice(0, 300))}`);
  }
}

/** Asserts that an error body is in OpenAI's format; returns error object. */
export function assertOpenAIError(assert, body, what = 'error body') {
  const j = typeof body === 'object' && !Buffer.isBuffer(body) ? body : jsonOf(body);
  assert.ok(j && typeof j.error === 'object' && j.error !== null, `${what}: expected {"error":{...}}, got ${JSON.stringify(j)}`);
  assert.equal(typeof j.error.message, 'string', `${what}: error.message must be a string`);
  assert.ok(j.error.message.length > 0, `${what}: error.message must not be empty`);
  assert.equal(typeof j.error.type, 'string', `${what}: error.type must be a string`);
  assert.ok('param' in j.error, `${what}: error.param must be present (null allowed)`);
  assert.ok('code' in j.error, `${what}: error.code must be present (null allowed)`);
  return j.error;
}

/**
 * Backpressure check shared by the plain and the TLS suites: sends
 * `GET path` on a raw socket, stops reading once the response head is in,
 * waits until the upstream stops making progress (progress() returns
 * {sent, finished}), then reads the rest. Returns {stalledAt, finishedWhilePaused,
 * head, response} with the parsed response (parseResponse).
 */
export async function readSlowly(port, path, progress, { size, stallMs = 700 } = {}) {
  const sock = net.connect({ port, host: '127.0.0.1' });
  const chunks = [];
  let got = 0;
  let ended = false;
  sock.on('data', (d) => {
    chunks.push(d);
    got += d.length;
  });
  sock.on('end', () => (ended = true));
  sock.on('error', () => (ended = true));
  await new Promise((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  try {
    sock.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
    await waitFor(() => Buffer.concat(chunks).includes('\r\n\r\n'), 5000, 'the response head');
    sock.pause();
    const all0 = Buffer.concat(chunks);
    const head = all0.subarray(0, all0.indexOf('\r\n\r\n')).toString('latin1');
    let last = -1;
    let stableSince = now();
    await waitFor(
      () => {
        const p = progress();
        if (p.finished) return true;
        if (p.sent !== last) {
          last = p.sent;
          stableSince = now();
          return false;
        }
        return now() - stableSince > stallMs;
      },
      20000,
      'the upstream to stall or finish',
      50,
    );
    const { sent: stalledAt, finished: finishedWhilePaused } = progress();
    sock.resume();
    await waitFor(() => got >= head.length + 4 + size || ended, 60000, 'the whole body at the client', 50);
    return { stalledAt, finishedWhilePaused, head, response: parseResponse(Buffer.concat(chunks), false, ended) };
  } finally {
    sock.destroy();
  }
}
