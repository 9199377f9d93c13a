// GET /health (liveness) and GET /health/detailed (database, providers,
// disk_space, memory): the providers check only opens a TCP connection to
// each upstream (no byte sent), caches the result for 60 s, and turns the
// answer into a 503 when an upstream is unreachable; RUBBERDUCK_METRICS_TOKEN
// guards the detailed view.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { httpRequest, jsonOf, waitFor } from './lib/http.mjs';
import { freePort, startServer } from './lib/server.mjs';

const RFC3339_MS_Z = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

/** A raw TCP listener that counts connections and the bytes they carried. */
async function rawUpstream() {
  const u = { connections: 0, bytes: 0, closed: 0 };
  u.server = net.createServer((c) => {
    u.connections++;
    c.on('data', (d) => (u.bytes += d.length));
    c.on('close', () => u.closed++);
    c.on('error', () => {});
  });
  await new Promise((resolve, reject) => {
    u.server.once('error', reject);
    u.server.listen(0, '127.0.0.1', resolve);
  });
  u.port = u.server.address().port;
  return u;
}

/** A loopback port nobody listens on (bound, then released). */
async function closedPort() {
  const s = net.createServer();
  await new Promise((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = s.address().port;
  await new Promise((resolve) => s.close(resolve));
  return port;
}

/* A loopback listener that never completes a handshake: listen(0), never
 * accept, backlog filled, so further SYNs are dropped and a connect hangs
 * (node always accepts, hence python3). Returns {port, child} or null. */
const HAS_PYTHON = spawnSync('python3', ['-c', 'pass']).status === 0;
async function blackhole() {
  const script = `
import socket, time, sys
s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(0)
port = s.getsockname()[1]
fill = []
for i in range(4):
    c = socket.socket(); c.setblocking(False)
    try: c.connect(('127.0.0.1', port))
    except BlockingIOError: pass
    fill.append(c)
time.sleep(0.3)
print(port); sys.stdout.flush()
time.sleep(60)
`;
  const child = spawn('python3', ['-c', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise((resolve, reject) => {
    child.stdout.once('data', (d) => resolve(Number(String(d).trim())));
    child.once('exit', () => reject(new Error('blackhole exited')));
  });
  return { port, child };
}

async function detailed(srv, auth) {
  const headers = auth ? { authorization: `Bearer ${auth}` } : {};
  const r = await httpRequest(`${srv.adminUrl}/health/detailed`, { headers });
  return { status: r.status, json: r.status === 401 ? jsonOf(r.body) : jsonOf(r.body), text: r.body.toString() };
}

function assertCheckShape(c, name) {
  assert.ok(c, `check ${name} present`);
  assert.ok(['ok', 'fail'].includes(c.status), `${name}.status ${c.status}`);
  assert.equal(typeof c.latency_ms, 'number', `${name}.latency_ms`);
  assert.ok('detail' in c, `${name}.detail`);
}

describe('health', () => {
  let up;
  before(async () => {
    up = await rawUpstream();
  });
  after(async () => {
    up.server.close();
  });

  test('/health: liveness without a token, RFC 3339 timestamp', async () => {
    const srv = await startServer();
    try {
      const r = await httpRequest(`${srv.adminUrl}/health`);
      assert.equal(r.status, 200);
      const j = jsonOf(r.body);
      assert.equal(j.status, 'healthy');
      assert.match(j.timestamp, RFC3339_MS_Z);
      assert.ok(Math.abs(Date.parse(j.timestamp) - Date.now()) < 60000);
      assert.deepEqual(Object.keys(j).sort(), ['status', 'timestamp']);
    } finally {
      await srv.stop();
    }
  });

  test('/health/detailed: healthy with a listening upstream, connection only, cached for the next call', async () => {
    const srv = await startServer();
    try {
      const base = up.connections;
      // two proxies on the same upstream share one probe
      for (const name of ['h1', 'h2'])
        await srv.createProxy({ name, provider: 'openai', port: await freePort(), start: false,
                                upstream_url: `http://127.0.0.1:${up.port}/v1` });
      await srv.createProxy({ name: 'emu', provider: 'openai', port: await freePort(), start: false, upstream_url: 'emulator' });
      // a name through getaddrinfo (localhost may give ::1 first, where nothing listens: the next address is tried)
      await srv.createProxy({ name: 'byname', provider: 'openai', port: await freePort(), start: false,
                              upstream_url: `http://localhost:${up.port}` });
      const r = await detailed(srv);
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.status, 'healthy');
      assert.match(r.json.timestamp, RFC3339_MS_Z);
      assert.deepEqual(Object.keys(r.json.checks).sort(), ['database', 'disk_space', 'memory', 'providers']);
      for (const [k, c] of Object.entries(r.json.checks)) {
        assertCheckShape(c, k);
        assert.equal(c.status, 'ok', `${k}: ${JSON.stringify(c)}`);
      }
      const key = `127.0.0.1:${up.port}`;
      assert.deepEqual(Object.keys(r.json.checks.providers.detail).sort(), [key, `localhost:${up.port}`]);
      assert.equal(r.json.checks.providers.detail[key].status, 'ok');
      assert.equal(r.json.checks.providers.detail[`localhost:${up.port}`].status, 'ok');
      assert.equal(r.json.checks.providers.detail[key].cached, false);
      assert.ok(r.json.checks.memory.detail.rss_bytes > 0);
      assert.ok(r.json.checks.disk_space.detail.free_bytes > 0);
      assert.ok(!r.text.includes(srv.token) && !r.text.includes('/v1'), 'only host:port of the upstream, no token');
      await waitFor(() => up.closed - 0 >= up.connections, 3000, 'probe connection closed');
      assert.equal(up.connections - base, 2, 'one TCP connection per upstream host:port');
      assert.equal(up.bytes, 0, 'no byte (no HTTP request) reached the upstream');

      const again = await detailed(srv);
      assert.equal(again.status, 200, again.text);
      assert.equal(again.json.checks.providers.detail[key].cached, true);
      await new Promise((res) => setTimeout(res, 200));
      assert.equal(up.connections - base, 2, 'the second call within 60 s did not reconnect');
    } finally {
      await srv.stop();
    }
  });

  test('/health/detailed: 503 when an upstream port is closed, detail names host:port', async () => {
    const srv = await startServer();
    try {
      const port = await closedPort();
      await srv.createProxy({ name: 'dead', provider: 'openai', port: await freePort(), start: false,
                              upstream_url: `http://127.0.0.1:${port}/v1` });
      const r = await detailed(srv);
      assert.equal(r.status, 503, r.text);
      assert.equal(r.json.status, 'unhealthy');
      const prov = r.json.checks.providers;
      assertCheckShape(prov, 'providers');
      assert.equal(prov.status, 'fail');
      const key = `127.0.0.1:${port}`;
      assert.equal(prov.detail[key].status, 'fail');
      assert.match(prov.detail[key].detail, new RegExp(key.replace(/\./g, '\\.')));
      assert.equal(r.json.checks.database.status, 'ok');
      assert.ok(!r.text.includes(srv.token) && !r.text.includes('/v1'), 'only host:port of the upstream, no token');
      // a bracketed IPv6 literal keeps its brackets in the key (nothing listens on ::1 there)
      await srv.createProxy({ name: 'v6', provider: 'openai', port: await freePort(), start: false,
                              upstream_url: `https://[::1]:${port}/v1` });
      const v6 = await detailed(srv);
      assert.equal(v6.status, 503, v6.text);
      assert.equal(v6.json.checks.providers.detail[`[::1]:${port}`].status, 'fail');
      assert.equal(v6.json.checks.providers.detail[key].cached, true);
      // no port: the scheme's (a loopback 443: only the key is asserted)
      await srv.createProxy({ name: 'dflt', provider: 'openai', port: await freePort(), start: false,
                              upstream_url: 'https://127.0.0.1/v1' });
      const dflt = await detailed(srv);
      assert.ok('127.0.0.1:443' in dflt.json.checks.providers.detail, dflt.text);
      // the failure is cached too
      const again = await detailed(srv);
      assert.equal(again.status, 503);
      assert.equal(again.json.checks.providers.detail[key].cached, true);
    } finally {
      await srv.stop();
    }
  });

  test('RUBBERDUCK_METRICS_TOKEN guards /health/detailed, not /health', async () => {
    const srv = await startServer({ env: { RUBBERDUCK_METRICS_TOKEN: 'metrics-secret' } });
    try {
      const h = await httpRequest(`${srv.adminUrl}/health`);
      assert.equal(h.status, 200);
      assert.equal((await detailed(srv)).status, 401);
      assert.equal((await detailed(srv, 'wrong')).status, 401);
      const m = await detailed(srv, 'metrics-secret');
      assert.equal(m.status, 200, m.text);
      assert.equal(m.json.status, 'healthy');
      assert.equal((await detailed(srv, srv.token)).status, 200);
      // and 503 passes through the token check too
      await srv.createProxy({ name: 'dead', provider: 'openai', port: await freePort(), start: false,
                              upstream_url: `http://127.0.0.1:${await closedPort()}` });
      assert.equal((await detailed(srv, 'metrics-secret')).status, 503);
      assert.equal((await detailed(srv, srv.token)).status, 503);
    } finally {
      await srv.stop();
    }
  });

  test('a client that leaves while a probe is pending does not crash the server', async () => {
    const srv = await startServer();
    // The request and the close arrive together: the handler starts its
    // probe (DNS on the threadpool) and then hears the client has gone, so
    // the probe reports to an aborted exchange (ASan watches the lifetime).
    try {
      await srv.createProxy({ name: 'p', provider: 'openai', port: await freePort(), start: false,
                              upstream_url: `http://127.0.0.1:${up.port}` });
      await new Promise((resolve) => {
        const c = net.connect(srv.adminPort, '127.0.0.1', () => {
          c.write('GET /health/detailed HTTP/1.1\r\nHost: x\r\n\r\n');
          c.destroy();
          resolve();
        });
      });
      await new Promise((res) => setTimeout(res, 300));
      const r = await detailed(srv);
      assert.equal(r.status, 200, r.text);
    } finally {
      await srv.stop();
    }
  });

  test('an upstream that never completes the handshake fails after the 2 s timeout; a stop during a probe is clean', { skip: !HAS_PYTHON && 'python3 missing' }, async () => {
    const bh = await blackhole();
    const srv = await startServer();
    try {
      await srv.createProxy({ name: 'bh', provider: 'openai', port: await freePort(), start: false,
                              upstream_url: `http://127.0.0.1:${bh.port}` });
      const t0 = Date.now();
      const r = await detailed(srv);
      const took = Date.now() - t0;
      assert.equal(r.status, 503, r.text);
      const d = r.json.checks.providers.detail[`127.0.0.1:${bh.port}`];
      assert.equal(d.status, 'fail');
      assert.match(d.detail, /within 2000 ms/);
      assert.ok(took >= 1900 && took < 5000, `answered after ${took} ms`);
      // a second blackholed upstream: SIGTERM while its probe is pending
      await srv.createProxy({ name: 'bh2', provider: 'openai', port: await freePort(), start: false,
                              upstream_url: `http://localhost:${bh.port}` });
      const pending = httpRequest(`${srv.adminUrl}/health/detailed`).catch((e) => e);
      await new Promise((res) => setTimeout(res, 300));
      await srv.stop(); // exit 0, no sanitizer report
      const res = await pending;
      assert.ok(res instanceof Error || res.status === 503, `pending exchange: ${res.status ?? res}`);
    } finally {
      await srv.stop();
      bh.child.kill('SIGKILL');
    }
  });

  test('/health/detailed: 503 once the database file is replaced under the server (a directory in its place)', async () => {
    const srv = await startServer();
    const db = path.join(srv.dataDir, 'rubberduck.db');
    try {
      let r = await srv.api('GET', '/health/detailed');
      assert.equal(r.json.checks.database.status, 'ok', r.text);
      // root writes through permissions, so break the file in a way root can't
      // write through: the database path is now a directory.
      fs.renameSync(db, `${db}.moved`);
      fs.mkdirSync(db);
      r = await srv.api('GET', '/health/detailed');
      assert.equal(r.status, 503, r.text);
      assert.equal(r.json.status, 'unhealthy');
      assert.equal(r.json.checks.database.status, 'fail');
      assert.equal(typeof r.json.checks.database.latency_ms, 'number');
      // /health stays a liveness probe: it never touches the database
      r = await srv.api('GET', '/health');
      assert.equal(r.status, 200);
      await srv.waitForStderr(/database file was removed or replaced/);
    } finally {
      await srv.stop();
      fs.rmSync(db, { recursive: true, force: true });
    }
  });
});
