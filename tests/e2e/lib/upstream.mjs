// A test upstream that stands in for the LLM provider: it records every
// request it gets (method, url, headers, raw headers, body, which connection
// it came on, whether the client went away before the answer was finished)
// and answers with whatever the current test asks for.
import { EventEmitter } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { now, waitFor } from './http.mjs';

/**
 * Starts the upstream on 127.0.0.1:0. handler(req, res, rec) answers; the
 * default is reply.json({ok:true}). Use up.handle(fn) to change it, or
 * up.route(pathPrefix, fn) for path-specific answers.
 */
export async function startUpstream(handler = reply.json({ ok: true })) {
  const ev = new EventEmitter();
  const requests = [];
  const routes = [];
  let current = handler;
  let connSeq = 0;
  const sockets = new Set();
  const server = http.createServer({ maxHeaderSize: 1 << 20, keepAliveTimeout: 30000 }, (req, res) => {
    const rec = {
      seq: requests.length,
      method: req.method,
      url: req.url,
      headers: req.headers,
      rawHeaders: req.rawHeaders,
      httpVersion: req.httpVersion,
      conn: req.socket.rdConnId,
      body: null,
      receivedAt: now(), // headers received
      bodyDoneAt: null,
      sent: [], // times at which the handler wrote events (reply.sse)
      bytesFlushed: 0,
      finished: false,
      closedEarly: false, // client went away before res.end() was flushed
      closedAt: null,
    };
    requests.push(rec);
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      rec.body = Buffer.concat(chunks);
      rec.bodyDoneAt = now();
      ev.emit('change');
    });
    res.on('finish', () => {
      rec.finished = true;
      ev.emit('change');
    });
    res.on('close', () => {
      if (!rec.finished && !res.writableFinished) rec.closedEarly = true;
      rec.closedAt = now();
      ev.emit('change');
    });
    ev.emit('change');
    const route = routes.find((r) => req.url.startsWith(r.prefix));
    const fn = route ? route.fn : current;
    try {
      fn(req, res, rec);
    } catch (e) {
      res.destroy(e);
    }
  });
  server.on('connection', (s) => {
    s.rdConnId = ++connSeq;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    requests,
    connections: () => connSeq,
    handle(fn) {
      current = fn;
    },
    route(prefix, fn) {
      routes.unshift({ prefix, fn });
    },
    clear() {
      requests.length = 0;
    },
    /** Resolves the first recorded request matching pred (waits for it). */
    waitRequest(pred = () => true, timeoutMs = 5000) {
      return waitForEvent(ev, () => requests.find(pred), timeoutMs, 'a request at the test upstream');
    },
    /** Resolves when pred(rec) becomes true for rec. */
    waitRec(rec, pred, timeoutMs = 5000, what = 'upstream request state') {
      return waitForEvent(ev, () => pred(rec) && rec, timeoutMs, what);
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

function waitForEvent(ev, check, timeoutMs, what) {
  return new Promise((resolve, reject) => {
    const on = () => {
      const v = check();
      if (v) {
        cleanup();
        resolve(v);
      }
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
    }, timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      ev.off('change', on);
    };
    ev.on('change', on);
    on();
  });
}

/** Runs fn once the whole request body has been read. */
function afterBody(req, fn) {
  if (req.readableEnded) fn();
  else req.on('end', fn);
}

/** Handler factories. */
export const reply = {
  /** JSON body; headers may be an object or a raw [name, value, ...] array. */
  json(obj, { status = 200, headers = {}, delayMs = 0 } = {}) {
    return (req, res) =>
      afterBody(req, () => {
        const send = () => {
          const body = Buffer.from(JSON.stringify(obj));
          const h = Array.isArray(headers)
            ? [...headers, 'Content-Type', 'application/json', 'Content-Length', String(body.length)]
            : { 'content-type': 'application/json', 'content-length': body.length, ...headers };
          res.writeHead(status, h);
          res.end(body);
        };
        if (delayMs) setTimeout(send, delayMs);
        else send();
      });
  },

  /** Exact status, headers and body bytes (body may be null for no body). */
  raw(status, headers, body) {
    return (req, res) =>
      afterBody(req, () => {
        res.writeHead(status, headers);
        res.end(body ?? undefined);
      });
  },

  /** Echoes what arrived: method, url, headers, body (base64). */
  echo({ status = 200 } = {}) {
    return (req, res, rec) =>
      afterBody(req, () => {
        const body = Buffer.from(
          JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body_b64: rec.body?.toString('base64') ?? '' }),
        );
        res.writeHead(status, { 'content-type': 'application/json', 'content-length': body.length });
        res.end(req.method === 'HEAD' ? undefined : body);
      });
  },

  /**
   * Server-sent events: events is an array of strings (each the text of one
   * event without the trailing blank line) or a function i -> string|null
   * (null ends the stream). intervalMs between events; rec.sent[i] is the time
   * event i was written. forever: keep sending until the client goes away.
   */
  sse(events, { intervalMs = 0, headers = {}, firstDelayMs = 0 } = {}) {
    return (req, res, rec) =>
      afterBody(req, () => {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', ...headers });
        res.flushHeaders();
        let i = 0;
        const next = () => {
          if (res.destroyed || rec.closedEarly) return;
          const ev = typeof events === 'function' ? events(i) : i < events.length ? events[i] : null;
          if (ev === null) {
            res.end();
            return;
          }
          rec.sent[i] = now();
          res.write(ev + '\n\n');
          i++;
          setTimeout(next, intervalMs);
        };
        setTimeout(next, firstDelayMs);
      });
  },

  /** Never answers (the request stays open until the client goes away). */
  hang() {
    return () => {};
  },

  /** Closes the connection abruptly before sending anything. */
  destroyBeforeHeaders() {
    return (req) => afterBody(req, () => req.socket.destroy());
  },

  /** Sends headers announcing contentLength bytes, sends `partial` bytes, then destroys the socket. */
  destroyMidBody({ contentLength = 1000, partial = 10 } = {}) {
    return (req, res) =>
      afterBody(req, () => {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': contentLength });
        res.write(Buffer.alloc(partial, 0x61), () => setTimeout(() => req.socket.destroy(), 50));
      });
  },

  /**
   * A large body written as fast as the connection takes it: size bytes of
   * data from gen(offset, n); rec.bytesFlushed counts bytes accepted by the
   * kernel-side socket (write callbacks). chunkSize per write.
   */
  big(size, gen, { chunkSize = 64 * 1024, contentLength = true } = {}) {
    return (req, res, rec) =>
      afterBody(req, () => {
        const h = { 'content-type': 'application/octet-stream' };
        if (contentLength) h['content-length'] = size;
        res.writeHead(200, h);
        let off = 0;
        const pump = () => {
          while (off < size) {
            const n = Math.min(chunkSize, size - off);
            const chunk = gen(off, n);
            off += n;
            const ok = res.write(chunk, () => {
              rec.bytesFlushed += n;
            });
            if (!ok) {
              res.once('drain', pump);
              return;
            }
          }
          res.end();
        };
        pump();
      });
  },
};

/**
 * A raw TCP "upstream" for answers no HTTP library would send. onRequest(sock,
 * headBytes) is called once the request head (up to the blank line) arrived.
 */
export async function startRawUpstream(onRequest) {
  const seen = [];
  const sockets = new Set();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    let buf = Buffer.alloc(0);
    let fired = false;
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (!fired && buf.includes('\r\n\r\n')) {
        fired = true;
        seen.push(buf.toString('latin1'));
        onRequest(sock, buf);
      }
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    seen,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Deterministic pseudo-random bytes (xorshift32), so big bodies can be checked. */
export function prng(seed) {
  let x = seed >>> 0 || 1;
  return (n) => {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) {
      x ^= x << 13;
      x >>>= 0;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
      b[i] = x & 0xff;
    }
    return b;
  };
}

export { waitFor };
