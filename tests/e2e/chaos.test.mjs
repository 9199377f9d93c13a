// Chaos: while traffic flows (plain and streamed, through the native client,
// libcurl and the emulator), clients hang up at random moments, the
// configuration is swapped, proxies are stopped, restarted and moved. The
// server must keep answering every request it accepts with a well-formed
// response or a clean cut, and exit 0 with no sanitizer report.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, test } from 'node:test';
import { freePort, startServer } from './lib/server.mjs';
import { prng, reply, startUpstream } from './lib/upstream.mjs';

let srv, up;
before(async () => {
  srv = await startServer();
  const sse = reply.sse(['a', 'b', 'c', 'd'].map((x) => `data: ${x}`), { intervalMs: 15 });
  const json = reply.json({ ok: true });
  // Half plain JSON, half SSE with a few events, decided by the path.
  up = await startUpstream((req, res, rec) => (req.url.includes('stream') ? sse : json)(req, res, rec));
});
after(async () => {
  await up?.close();
  await srv?.stop();
});

function request(port, path, abortAfterMs) {
  return new Promise((resolve) => {
    const body = JSON.stringify({ model: 'gpt-4o-mini', stream: path.includes('stream'), messages: [{ role: 'user', content: path }] });
    const req = http.request({ host: '127.0.0.1', port, path, method: 'POST', agent: false,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.on('data', () => {});
      res.on('end', () => resolve({ status: res.statusCode }));
      res.on('error', () => resolve({ cut: true }));
      res.on('aborted', () => resolve({ cut: true }));
    });
    req.on('error', () => resolve({ failed: true }));
    if (abortAfterMs !== null) setTimeout(() => req.destroy(), abortAfterMs);
    req.end(body);
  });
}

test('random aborts, config swaps, stops, restarts and moves under load', { timeout: 60000 }, async () => {
  const rnd = prng(1234);
  const r = () => rnd(1)[0] / 256;
  const proxies = [];
  for (const [name, upstream_url, config] of [
    ['chaos-h1', up.url, {}],
    ['chaos-curl', up.url, { upstream: { client: 'curl' } }],
    ['chaos-emu', 'emulator', { emulator: { tokens_per_second: 400 } }],
  ]) proxies.push(await srv.createProxy({ name, provider: 'openai', upstream_url, port: await freePort(), config }));

  const deadline = Date.now() + 6000;
  const counts = { ok: 0, cut: 0, failed: 0, other: 0 };
  const traffic = async () => {
    while (Date.now() < deadline) {
      const p = proxies[Math.floor(r() * proxies.length)];
      const cur = (await srv.api('GET', `/api/v1/proxies/${p.id}`)).json;
      const path = r() < 0.5 ? '/v1/chat/completions?stream' : '/v1/chat/completions';
      const res = await request(cur.port, path, r() < 0.3 ? Math.floor(r() * 60) : null);
      if (res.status === 200) counts.ok++;
      else if (res.cut) counts.cut++;
      else if (res.failed) counts.failed++;
      else counts.other++;
    }
  };
  const control = async () => {
    while (Date.now() < deadline) {
      const p = proxies[Math.floor(r() * proxies.length)];
      const x = r();
      if (x < 0.3) {
        const cfg = (await srv.api('GET', `/api/v1/proxies/${p.id}/config`)).json;
        cfg.limits = { idle_timeout_ms: 1000 + Math.floor(r() * 5000) };
        assert.equal((await srv.api('PUT', `/api/v1/proxies/${p.id}/config`, cfg)).status, 200);
      } else if (x < 0.55) {
        const mode = r() < 0.5 ? 'force' : 'graceful';
        assert.equal((await srv.api('POST', `/api/v1/proxies/${p.id}/stop?mode=${mode}&timeout_s=1`)).status, 200);
        assert.equal((await srv.api('POST', `/api/v1/proxies/${p.id}/start`)).status, 200);
      } else if (x < 0.7) {
        const patched = await srv.api('PATCH', `/api/v1/proxies/${p.id}`, { port: await freePort() });
        assert.equal(patched.status, 200, patched.text);
      }
      await new Promise((res) => setTimeout(res, 50 + r() * 150));
    }
  };
  await Promise.all([traffic(), traffic(), traffic(), traffic(), traffic(), traffic(), control()]);
  if (process.env.RD_E2E_VERBOSE) console.error(`chaos: ${JSON.stringify(counts)}`);
  assert.equal(counts.other, 0, `only 200s, cuts and refused connections are expected: ${JSON.stringify(counts)}`);
  assert.ok(counts.ok > 50, `too few successful requests: ${JSON.stringify(counts)}`);

  // Afterwards every proxy still serves.
  for (const p of proxies) {
    const cur = (await srv.api('GET', `/api/v1/proxies/${p.id}`)).json;
    assert.equal(cur.status, 'running');
    const res = await request(cur.port, '/v1/chat/completions', null);
    assert.equal(res.status, 200, `${p.name} after the chaos`);
  }
});
