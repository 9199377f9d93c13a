// Stopping proxies (graceful and force) and the server (SIGTERM, drain
// deadline, second signal) while requests are in flight.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { RawConn, httpRequest, jsonOf, now, tryConnect, waitFor, withTimeout } from './lib/http.mjs';
import { TOKEN, freePort, startServer } from './lib/server.mjs';
import { reply, startUpstream } from './lib/upstream.mjs';

const SLOW_MS = 1000;

/** Starts a request and tracks it: {promise, done(), settledAt}. */
function inflight(url, opts = {}) {
  const t = { settled: false, settledAt: null };
  t.promise = httpRequest(url, { timeoutMs: 20000, ...opts }).then(
    (r) => {
      t.settled = true;
      t.settledAt = now();
      return r;
    },
    (e) => {
      t.settled = true;
      t.settledAt = now();
      throw e;
    },
  );
  t.promise.catch(() => {}); // observed by the test later
  return t;
}

/** Waits until new connections to port are refused. */
const waitRefused = (port, timeoutMs, what) => waitFor(async () => (await tryConnect(port, '127.0.0.1', 500)) === 'ECONNREFUSED', timeoutMs, what, 10);

describe('stopping a proxy', () => {
  let srv;
  let up;
  before(async () => {
    srv = await startServer();
    up = await startUpstream();
    up.route('/quick', reply.json({ quick: true }));
    up.route('/slow', reply.json({ done: true }, { delayMs: SLOW_MS }));
    up.route('/hang', reply.hang());
  });
  after(async () => {
    await up?.close();
    await srv?.stop();
  });

  const newProxy = async (name) => srv.createProxy({ name, provider: 'openai', upstream_url: up.url, port: await freePort() });

  test('graceful: the in-flight request completes, new connections are refused, idle ones closed, stop answers after', async () => {
    const p = await newProxy('graceful');
    // an idle keep-alive connection must not hold the stop up
    const idleConn = await RawConn.open(p.port);
    await idleConn.write('GET /quick/1 HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.equal((await idleConn.readResponse()).status, 200);

    const req = inflight(`http://127.0.0.1:${p.port}/slow/1`, { method: 'POST', body: '{}' });
    const rec = await up.waitRequest((x) => x.url === '/slow/1');
    let stopAt = null;
    const stop = srv.api('POST', `/api/v1/proxies/${p.id}/stop?mode=graceful&timeout_s=10`, undefined, { timeoutMs: 20000 }).then((r) => {
      stopAt = now();
      return r;
    });
    await waitRefused(p.port, SLOW_MS * 0.8, 'the stopping proxy to refuse new connections');
    assert.ok(!req.settled, 'the in-flight request ended before new connections were refused: cannot tell');
    assert.equal(stopAt, null, 'the graceful stop answered while a request was still in flight');
    await idleConn.waitClosed(3000);
    idleConn.destroy();

    const r = await req.promise;
    assert.equal(r.status, 200);
    assert.deepEqual(jsonOf(r.body), { done: true });
    assert.ok(rec.finished && !rec.closedEarly);
    const s = await stop;
    assert.equal(s.status, 200, s.text);
    assert.equal(s.json.status, 'stopped');
    assert.ok(stopAt >= req.settledAt - 50, 'stop answered before the in-flight request finished');
    assert.ok(stopAt - req.settledAt < 3000, `stop answered ${(stopAt - req.settledAt).toFixed(0)} ms after the last request finished`);
    assert.equal(await tryConnect(p.port), 'ECONNREFUSED');
    assert.equal((await srv.api('GET', `/api/v1/proxies/${p.id}`)).json.status, 'stopped');
  });

  test('graceful with timeout_s: a request that outlives it is cut at the deadline', async () => {
    const p = await newProxy('graceful-deadline');
    const req = inflight(`http://127.0.0.1:${p.port}/hang/1`);
    const rec = await up.waitRequest((x) => x.url === '/hang/1');
    const t0 = now();
    const s = await srv.api('POST', `/api/v1/proxies/${p.id}/stop?mode=graceful&timeout_s=1`, undefined, { timeoutMs: 20000 });
    const took = now() - t0;
    assert.equal(s.status, 200, s.text);
    assert.equal(s.json.status, 'stopped');
    assert.ok(took >= 800 && took < 4000, `graceful stop with timeout_s=1 took ${took.toFixed(0)} ms`);
    await assert.rejects(req.promise, (e) => !/timed out/.test(e.message), 'the client must see its connection cut');
    await up.waitRec(rec, (x) => x.closedEarly, 5000, 'the upstream request to be aborted');
  });

  test('force: in-flight requests are cut and stop answers at once', async () => {
    const p = await newProxy('forced');
    const req = inflight(`http://127.0.0.1:${p.port}/hang/2`, { method: 'POST', body: '{"x":1}' });
    const rec = await up.waitRequest((x) => x.url === '/hang/2');
    const t0 = now();
    const s = await srv.api('POST', `/api/v1/proxies/${p.id}/stop?mode=force`);
    const took = now() - t0;
    assert.equal(s.status, 200, s.text);
    assert.equal(s.json.status, 'stopped');
    assert.ok(took < 1500, `force stop took ${took.toFixed(0)} ms`);
    await assert.rejects(req.promise, (e) => !/timed out/.test(e.message), 'the in-flight request must be cut');
    assert.ok(req.settledAt - t0 < 2000, 'the in-flight request was not cut at once');
    await up.waitRec(rec, (x) => x.closedEarly, 5000, 'the upstream request to be aborted');
    assert.equal(await tryConnect(p.port), 'ECONNREFUSED');
  });

  test('DELETE while a stream is flowing: 204, the port closes, nothing crashes', async () => {
    const p = await newProxy('deleted-mid-stream');
    up.route('/stream', reply.sse(Array.from({ length: 6 }, (_, i) => `data: {"i":${i}}`), { intervalMs: 150 }));
    const c = await RawConn.open(p.port);
    try {
      await c.write('GET /stream/1 HTTP/1.1\r\nHost: x\r\n\r\n');
      await c.waitForText('data: {"i":0}', 5000);
      const t0 = now();
      const d = await srv.api('DELETE', `/api/v1/proxies/${p.id}`, undefined, { timeoutMs: 40000 });
      assert.equal(d.status, 204, d.text);
      assert.ok(now() - t0 < 5000, `DELETE took ${(now() - t0).toFixed(0)} ms`);
      assert.equal(await tryConnect(p.port), 'ECONNREFUSED');
      await c.waitClosed(5000);
      assert.equal((await srv.api('GET', `/api/v1/proxies/${p.id}`)).status, 404);
    } finally {
      c.destroy();
    }
  });

  test('many stop calls at once on a draining proxy all get their answer', async () => {
    const p = await newProxy('many-stops');
    const req = inflight(`http://127.0.0.1:${p.port}/slow/many`, { method: 'POST', body: '{}' });
    await up.waitRequest((x) => x.url === '/slow/many');
    const calls = [];
    for (let i = 0; i < 12; i++) {
      const mode = i === 11 ? 'force' : 'graceful';
      calls.push(srv.api('POST', `/api/v1/proxies/${p.id}/stop?mode=${mode}&timeout_s=10`, undefined, { timeoutMs: 20000 }));
    }
    const answers = await Promise.all(calls);
    for (const r of answers) {
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.status, 'stopped');
    }
    await assert.rejects(req.promise, (e) => !/timed out/.test(e.message), 'the force stop must cut the in-flight request');
  });

  test('a stopped proxy starts again and serves', async () => {
    const p = await newProxy('restartable');
    assert.equal((await srv.api('POST', `/api/v1/proxies/${p.id}/stop?mode=force`)).status, 200);
    const s = await srv.api('POST', `/api/v1/proxies/${p.id}/start`);
    assert.equal(s.status, 200, s.text);
    assert.equal(s.json.status, 'running');
    const r = await httpRequest(`http://127.0.0.1:${p.port}/quick/again`);
    assert.equal(r.status, 200);
  });
});

/** One admin API request as raw bytes (so two can be written in the same tick). */
function rawApi(method, p, body) {
  const payload = body === undefined ? '' : JSON.stringify(body);
  return (
    `${method} ${p} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\n` +
    `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(payload)}\r\n\r\n${payload}`
  );
}

describe('concurrent lifecycle calls', () => {
  let srv;
  let up;
  before(async () => {
    srv = await startServer();
    up = await startUpstream();
    up.route('/slow', reply.json({ done: true }, { delayMs: SLOW_MS }));
    up.route('/hang', reply.hang());
  });
  after(async () => {
    await up?.close();
    await srv?.stop();
  });

  const newProxy = async (name) => srv.createProxy({ name, provider: 'openai', upstream_url: up.url, port: await freePort() });
  const getProxy = async (id) => (await srv.api('GET', `/api/v1/proxies/${id}`)).json;

  test('a stop sent while a move is in progress wins: stopped, and nothing listens on either port', async () => {
    const p = await newProxy('stop-during-move');
    let port = p.port;
    // The move takes one round trip to the workers; both calls are written in
    // the same tick on two connections so the stop usually lands inside it.
    // Whatever the interleaving, the outcome asked for is the same.
    for (let i = 0; i < 10; i++) {
      const newPort = await freePort();
      const a = await RawConn.open(srv.adminPort);
      const b = await RawConn.open(srv.adminPort);
      try {
        const wa = a.write(rawApi('PATCH', `/api/v1/proxies/${p.id}`, { port: newPort }));
        const wb = b.write(rawApi('POST', `/api/v1/proxies/${p.id}/stop?mode=graceful&timeout_s=10`));
        await Promise.all([wa, wb]);
        const [ra, rb] = await Promise.all([a.readResponse(), b.readResponse()]);
        assert.equal(ra.status, 200, `round ${i}: PATCH ${ra.body}`);
        assert.equal(jsonOf(ra.body).port, newPort);
        assert.equal(rb.status, 200, `round ${i}: stop ${rb.body}`);
        assert.equal(jsonOf(rb.body).status, 'stopped', `round ${i}: the stop call answered ${rb.body}`);
        assert.equal((await getProxy(p.id)).status, 'stopped', `round ${i}`);
        assert.equal(await tryConnect(port), 'ECONNREFUSED', `round ${i}: the old port ${port} still listens`);
        assert.equal(await tryConnect(newPort), 'ECONNREFUSED', `round ${i}: the new port ${newPort} listens after the stop`);
      } finally {
        a.destroy();
        b.destroy();
      }
      const s = await srv.api('POST', `/api/v1/proxies/${p.id}/start`);
      assert.equal(s.status, 200, s.text);
      assert.equal(s.json.status, 'running');
      port = newPort;
    }
  });

  test('graceful stop with timeout_s=0 cuts in-flight requests now and answers at once', async () => {
    const p = await newProxy('timeout-zero');
    const req = inflight(`http://127.0.0.1:${p.port}/hang/zero`);
    const rec = await up.waitRequest((x) => x.url === '/hang/zero');
    const t0 = now();
    const s = await srv.api('POST', `/api/v1/proxies/${p.id}/stop?mode=graceful&timeout_s=0`, undefined, { timeoutMs: 5000 });
    assert.equal(s.status, 200, s.text);
    assert.equal(s.json.status, 'stopped');
    assert.ok(now() - t0 < 2000, `stop with timeout_s=0 took ${(now() - t0).toFixed(0)} ms`);
    await assert.rejects(withTimeout(req.promise, 3000, 'the in-flight request to be cut'), (e) => !/timed out/.test(e.message));
    await up.waitRec(rec, (x) => x.closedEarly, 5000, 'the upstream request to be aborted');
  });

  for (const how of ['force stop', 'DELETE']) {
    test(`${how} after a move also cuts the requests still draining on the old port, promptly`, async () => {
      const p = await newProxy(`cut-after-move-${how === 'DELETE' ? 'delete' : 'force'}`);
      const path = `/hang/after-move-${how === 'DELETE' ? 'delete' : 'force'}`;
      const req = inflight(`http://127.0.0.1:${p.port}${path}`);
      const rec = await up.waitRequest((x) => x.url === path);
      const newPort = await freePort();
      const m = await srv.api('PATCH', `/api/v1/proxies/${p.id}`, { port: newPort });
      assert.equal(m.status, 200, m.text);
      assert.equal(m.json.status, 'running');
      assert.equal(await tryConnect(p.port), 'ECONNREFUSED');
      assert.ok(!req.settled, 'the request on the old port must still be draining');
      const t0 = now();
      const r =
        how === 'DELETE'
          ? await srv.api('DELETE', `/api/v1/proxies/${p.id}`, undefined, { timeoutMs: 5000 })
          : await srv.api('POST', `/api/v1/proxies/${p.id}/stop?mode=force`, undefined, { timeoutMs: 5000 });
      const took = now() - t0;
      assert.equal(r.status, how === 'DELETE' ? 204 : 200, r.text);
      if (how !== 'DELETE') assert.equal(r.json.status, 'stopped');
      assert.ok(took < 2000, `${how} took ${took.toFixed(0)} ms`);
      await assert.rejects(withTimeout(req.promise, 3000, 'the request on the old port to be cut'), (e) => !/timed out/.test(e.message));
      assert.ok(req.settledAt - t0 < 2500, `the request on the old port was cut ${(req.settledAt - t0).toFixed(0)} ms after the ${how}`);
      await up.waitRec(rec, (x) => x.closedEarly, 5000, 'the upstream request to be aborted');
      assert.equal(await tryConnect(newPort), 'ECONNREFUSED');
    });
  }

  test('a graceful stop after a move waits for the request still running on the old port', async () => {
    const p = await newProxy('graceful-after-move');
    const req = inflight(`http://127.0.0.1:${p.port}/slow/after-move`, { method: 'POST', body: '{}' });
    await up.waitRequest((x) => x.url === '/slow/after-move');
    const newPort = await freePort();
    assert.equal((await srv.api('PATCH', `/api/v1/proxies/${p.id}`, { port: newPort })).status, 200);
    let stopAt = null;
    const stop = srv.api('POST', `/api/v1/proxies/${p.id}/stop?mode=graceful&timeout_s=10`, undefined, { timeoutMs: 20000 }).then((r) => {
      stopAt = now();
      return r;
    });
    const r = await req.promise;
    assert.equal(r.status, 200);
    const s = await stop;
    assert.equal(s.status, 200, s.text);
    assert.equal(s.json.status, 'stopped');
    assert.ok(stopAt >= req.settledAt - 50, 'the stop answered while a request on the old port was still in flight');
  });

  test('a start sent during a graceful stop runs after it: stop answers stopped, start answers running', async () => {
    const p = await newProxy('start-during-stop');
    const req = inflight(`http://127.0.0.1:${p.port}/slow/start-during-stop`, { method: 'POST', body: '{}' });
    await up.waitRequest((x) => x.url === '/slow/start-during-stop');
    const stop = srv.api('POST', `/api/v1/proxies/${p.id}/stop?mode=graceful&timeout_s=10`, undefined, { timeoutMs: 20000 });
    await waitRefused(p.port, SLOW_MS * 0.8, 'the stopping proxy to refuse new connections');
    assert.equal((await getProxy(p.id)).status, 'stopping');
    const start = srv.api('POST', `/api/v1/proxies/${p.id}/start`, undefined, { timeoutMs: 20000 });
    const [s, st, r] = await Promise.all([stop, start, req.promise]);
    assert.equal(r.status, 200, 'the in-flight request must finish');
    assert.equal(s.status, 200, s.text);
    assert.equal(s.json.status, 'stopped');
    assert.equal(st.status, 200, st.text);
    assert.equal(st.json.status, 'running');
    assert.equal((await getProxy(p.id)).status, 'running');
    assert.equal((await httpRequest(`http://127.0.0.1:${p.port}/slow/after-restart`, { method: 'POST', body: '{}' })).status, 200);
  });
});

describe('stopping the server', () => {
  let up;
  before(async () => {
    up = await startUpstream();
    up.route('/slow', reply.json({ done: true }, { delayMs: SLOW_MS }));
    up.route('/hang', reply.hang());
  });
  after(async () => {
    await up?.close();
  });

  async function serverWithProxy(opts) {
    const srv = await startServer(opts);
    const p = await srv.createProxy({ name: 'p', provider: 'openai', upstream_url: up.url, port: await freePort() });
    let exitAt = null;
    srv.exited.then(() => (exitAt = now()));
    return { srv, p, exitAt: () => exitAt };
  }

  test('SIGTERM: the in-flight request completes, then the process exits 0', async () => {
    const { srv, p, exitAt } = await serverWithProxy();
    const path = '/slow/sigterm';
    const req = inflight(`http://127.0.0.1:${p.port}${path}`);
    await up.waitRequest((x) => x.url === path);
    const stopped = srv.stop({ signal: 'SIGTERM', expectCode: 0 });
    await waitRefused(p.port, SLOW_MS * 0.8, 'the proxy port to refuse connections after SIGTERM');
    assert.ok(!req.settled);
    const r = await req.promise;
    assert.equal(r.status, 200);
    assert.deepEqual(jsonOf(r.body), { done: true });
    await stopped;
    assert.ok(exitAt() >= req.settledAt - 50, 'exited before the in-flight request finished');
  });

  test('SIGTERM with --drain-timeout-ms: a hanging request is cut at the deadline, exit 0', async () => {
    const { srv, p } = await serverWithProxy({ args: ['--drain-timeout-ms', '500'] });
    const path = '/hang/drain';
    const req = inflight(`http://127.0.0.1:${p.port}${path}`);
    const rec = await up.waitRequest((x) => x.url === path);
    const t0 = now();
    await srv.stop({ signal: 'SIGTERM', expectCode: 0, timeoutMs: 10000 });
    const took = now() - t0;
    assert.ok(took >= 400 && took < 5000, `exit ${took.toFixed(0)} ms after SIGTERM with a 500 ms drain timeout`);
    await assert.rejects(req.promise, (e) => !/timed out/.test(e.message));
    await up.waitRec(rec, (x) => x.closedEarly, 5000, 'the upstream request to be closed');
  });

  test('a second SIGTERM forces the exit (code 1) and cuts in-flight requests', async () => {
    const { srv, p } = await serverWithProxy();
    const path = '/hang/second-signal';
    const req = inflight(`http://127.0.0.1:${p.port}${path}`);
    await up.waitRequest((x) => x.url === path);
    srv.kill('SIGTERM');
    // the first signal was handled once the listener is gone
    await waitRefused(p.port, 5000, 'the proxy port to close after the first SIGTERM');
    assert.ok(!srv.hasExited(), 'the server exited although a request was in flight and the drain timeout is 30 s');
    const t0 = now();
    // a forced exit may skip freeing memory, so only memory errors and UB count here, not leaks
    await srv.stop({ signal: 'SIGTERM', expectCode: 1, timeoutMs: 5000, markers: ['AddressSanitizer', 'runtime error:'] });
    assert.ok(now() - t0 < 3000, 'the second signal did not force a prompt exit');
    await assert.rejects(req.promise, (e) => !/timed out/.test(e.message));
  });

  test('SIGTERM with only idle keep-alive connections exits promptly', async () => {
    const { srv, p } = await serverWithProxy();
    up.route('/idle', reply.json({ ok: true }));
    const c = await RawConn.open(p.port);
    await c.write('GET /idle/1 HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.equal((await c.readResponse()).status, 200);
    const t0 = now();
    await srv.stop({ signal: 'SIGTERM', expectCode: 0, timeoutMs: 10000 });
    assert.ok(now() - t0 < 3000, `exit took ${(now() - t0).toFixed(0)} ms with one idle connection`);
    await c.waitClosed(2000);
    c.destroy();
  });
});
