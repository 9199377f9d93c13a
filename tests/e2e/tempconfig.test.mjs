// Temporary configurations: PUT/PATCH .../config?ttl_s=N applies a document
// for N seconds, then the proxy reverts to its permanent one by itself.
// The fault made visible here is a response delay (X-Response-Delay-Ms).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { httpRequest, now, waitFor } from './lib/http.mjs';
import { freePort, startServer } from './lib/server.mjs';

const CHAT = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
const DELAY = (ms) => ({ response_delay: { min_ms: ms, max_ms: ms } });

let srv;
before(async () => {
  srv = await startServer({ workers: 2 });
});
after(async () => {
  await srv?.stop(); // also: a revert still pending at shutdown leaks nothing (ASan)
});

async function proxy(name, config = {}, server = srv) {
  const port = await freePort();
  const p = await server.createProxy({ name, provider: 'openai', upstream_url: 'emulator', port, config });
  return { ...p, base: `http://127.0.0.1:${port}` };
}

/** The delay the proxy applied to one request (null: none). */
async function delayOf(p) {
  const r = await httpRequest(`${p.base}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: CHAT,
  });
  assert.equal(r.status, 200);
  const v = r.headers['x-response-delay-ms'];
  return v === undefined ? null : Number(v);
}

const cfgUrl = (p, q = '') => `/api/v1/proxies/${p.id}/config${q}`;

describe('temporary configuration', () => {
  test('ttl_s=1: requests see the fault, then the proxy reverts by itself', async () => {
    const p = await proxy('tc-revert', { seed: 5 });
    assert.equal(await delayOf(p), null);
    const t0 = Date.now();
    const r = await srv.api('PUT', cfgUrl(p, '?ttl_s=1'), DELAY(40));
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.response_delay, { min_ms: 40, max_ms: 40 });
    const until = Date.parse(r.json.temporary_until);
    assert.ok(until >= t0 + 900 && until <= Date.now() + 1100, `temporary_until ${r.json.temporary_until}`);
    assert.match(r.json.temporary_until, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    assert.equal(await delayOf(p), 40);
    const g = await srv.api('GET', cfgUrl(p));
    assert.equal(g.json.temporary_until, r.json.temporary_until);
    assert.equal(g.json.seed, undefined, 'the temporary document replaces the permanent one');
    const whole = await srv.api('GET', `/api/v1/proxies/${p.id}`);
    assert.equal(whole.json.temporary_until, r.json.temporary_until);
    assert.deepEqual(whole.json.config, { seed: 5 }, 'the proxy object shows the permanent document');
    // By itself, about a second later, and requests see it at once.
    await waitFor(async () => (await srv.api('GET', cfgUrl(p))).json.temporary_until === undefined, 4000, 'the revert');
    const reverted = Date.now() - t0;
    assert.ok(reverted >= 950, `reverted after ${reverted} ms`);
    assert.equal(await delayOf(p), null);
    assert.deepEqual((await srv.api('GET', cfgUrl(p))).json, { seed: 5 });
    assert.equal((await srv.api('GET', `/api/v1/proxies/${p.id}`)).json.temporary_until, null);
  });

  test('a second temporary PUT replaces the first: its document, its deadline, still reverting to the permanent one', async () => {
    const p = await proxy('tc-replace', DELAY(10));
    await srv.api('PUT', cfgUrl(p, '?ttl_s=1'), DELAY(30));
    const r = await srv.api('PUT', cfgUrl(p, '?ttl_s=2'), DELAY(60));
    assert.equal(r.status, 200);
    assert.equal(await delayOf(p), 60);
    await new Promise((res) => setTimeout(res, 1300)); // past the first deadline
    assert.equal(await delayOf(p), 60, 'the first timer reverted the second configuration');
    await waitFor(async () => (await delayOf(p)) === 10, 3000, 'the revert to the permanent 10 ms');
    assert.equal((await srv.api('GET', cfgUrl(p))).json.temporary_until, undefined);
  });

  test('a PUT without ttl_s ends the temporary configuration and becomes permanent', async () => {
    const p = await proxy('tc-end', {});
    await srv.api('PUT', cfgUrl(p, '?ttl_s=1'), DELAY(30));
    const r = await srv.api('PUT', cfgUrl(p), DELAY(20));
    assert.equal(r.status, 200);
    assert.equal(r.json.temporary_until, undefined);
    assert.equal(await delayOf(p), 20);
    await new Promise((res) => setTimeout(res, 1300)); // the old deadline passes: nothing reverts
    assert.equal(await delayOf(p), 20);
    assert.deepEqual((await srv.api('GET', `/api/v1/proxies/${p.id}`)).json.config, DELAY(20));
    // The GET document, temporary_until included, can be sent back as is.
    await srv.api('PUT', cfgUrl(p, '?ttl_s=60'), DELAY(35));
    const g = await srv.api('GET', cfgUrl(p));
    assert.ok(g.json.temporary_until);
    const back = await srv.api('PUT', cfgUrl(p), g.json);
    assert.equal(back.status, 200, back.text);
    assert.deepEqual(back.json, DELAY(35));
    assert.equal(await delayOf(p), 35);
    // A config in PATCH /api/v1/proxies/{id} is permanent too; other fields keep the temporary one.
    await srv.api('PUT', cfgUrl(p, '?ttl_s=60'), DELAY(55));
    let r2 = await srv.api('PATCH', `/api/v1/proxies/${p.id}`, { description: 'x' });
    assert.ok(r2.json.temporary_until);
    assert.equal(await delayOf(p), 55);
    r2 = await srv.api('PATCH', `/api/v1/proxies/${p.id}`, { config: DELAY(15) });
    assert.equal(r2.status, 200);
    assert.equal(r2.json.temporary_until, null);
    assert.equal(await delayOf(p), 15);
  });

  test('ttl_s must be an integer from 1 to 86400 (400 naming ttl_s); a bad document with ttl_s is 400 too', async () => {
    const p = await proxy('tc-bad', {});
    for (const q of ['0', '86401', '-1', 'abc', '1.5', '', '99999999999999999999', '0000000000000000000000000000005x', '5%20']) {
      for (const method of ['PUT', 'PATCH']) {
        const r = await srv.api(method, cfgUrl(p, `?ttl_s=${q}`), DELAY(10));
        assert.equal(r.status, 400, `${method} ttl_s=${q}: ${r.text}`);
        assert.equal(r.json.error.field, 'ttl_s');
      }
    }
    const ok = await srv.api('PUT', cfgUrl(p, '?ttl_s=86400'), DELAY(10));
    assert.equal(ok.status, 200);
    const bad = await srv.api('PUT', cfgUrl(p, '?ttl_s=5'), { response_delay: { min_ms: 9, max_ms: 1 } });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.field, 'response_delay.max_ms');
    assert.equal(await delayOf(p), 10, 'a refused document changes nothing');
  });

  test('PATCH merges top-level blocks: with ttl_s into the running document, without into the permanent one', async () => {
    const p = await proxy('tc-patch', { seed: 9, emulator: { tokens_per_second: 0 } });
    let r = await srv.api('PATCH', cfgUrl(p, '?ttl_s=60'), DELAY(25));
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.seed, 9);
    assert.deepEqual(r.json.emulator, { tokens_per_second: 0 });
    assert.deepEqual(r.json.response_delay, { min_ms: 25, max_ms: 25 });
    assert.ok(r.json.temporary_until);
    assert.equal(await delayOf(p), 25);
    // A second temporary PATCH stacks on the running one; null removes a block.
    r = await srv.api('PATCH', cfgUrl(p, '?ttl_s=60'), { seed: 10, emulator: null });
    assert.equal(r.json.seed, 10);
    assert.equal(r.json.emulator, undefined);
    assert.deepEqual(r.json.response_delay, { min_ms: 25, max_ms: 25 });
    assert.equal(await delayOf(p), 25);
    // Without ttl_s: merged into the permanent document, the temporary one ends.
    r = await srv.api('PATCH', cfgUrl(p), { limits: { idle_timeout_ms: 30000 } });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { seed: 9, emulator: { tokens_per_second: 0 }, limits: { idle_timeout_ms: 30000 } });
    assert.equal(await delayOf(p), null);
    // A block that does not validate: 400 naming it, nothing changes.
    r = await srv.api('PATCH', cfgUrl(p), { response_delay: { min_ms: 'x' } });
    assert.equal(r.status, 400);
    assert.equal(r.json.error.field, 'response_delay.min_ms');
    r = await srv.api('PATCH', cfgUrl(p), [1]);
    assert.equal(r.status, 400);
    assert.deepEqual((await srv.api('GET', cfgUrl(p))).json.limits, { idle_timeout_ms: 30000 });
  });

  test('a stop ends it (a restart runs the permanent configuration); a stopped proxy refuses one (409); delete with one pending', async () => {
    const p = await proxy('tc-stop', DELAY(5));
    await srv.api('PUT', cfgUrl(p, '?ttl_s=600'), DELAY(50));
    assert.equal(await delayOf(p), 50);
    assert.equal((await srv.api('POST', `/api/v1/proxies/${p.id}/stop`)).status, 200);
    assert.equal((await srv.api('GET', cfgUrl(p))).json.temporary_until, undefined);
    const refused = await srv.api('PUT', cfgUrl(p, '?ttl_s=60'), DELAY(70));
    assert.equal(refused.status, 409);
    assert.equal(refused.json.error.code, 'not_running');
    assert.equal((await srv.api('POST', `/api/v1/proxies/${p.id}/start`)).status, 200);
    assert.equal(await delayOf(p), 5);
    // A move (new port) keeps it: the proxy did not stop.
    await srv.api('PUT', cfgUrl(p, '?ttl_s=600'), DELAY(45));
    const port = await freePort();
    assert.equal((await srv.api('PATCH', `/api/v1/proxies/${p.id}`, { port })).status, 200);
    assert.equal(await delayOf({ base: `http://127.0.0.1:${port}` }), 45);
    assert.equal((await srv.api('DELETE', `/api/v1/proxies/${p.id}`)).status, 204);
  });

  test('requests in flight during the revert keep their configuration; the next ones get the permanent one', async () => {
    const p = await proxy('tc-inflight', {});
    await srv.api('PUT', cfgUrl(p, '?ttl_s=1'), DELAY(1500));
    const t0 = now();
    const slow = delayOf(p); // started under the temporary configuration
    await waitFor(async () => (await srv.api('GET', cfgUrl(p))).json.temporary_until === undefined, 4000, 'the revert');
    assert.equal(await delayOf(p), null);
    assert.equal(await slow, 1500);
    assert.ok(now() - t0 >= 1490);
  });

  test('not persisted: a server restart runs the permanent configuration; shutdown with a revert pending is clean', async () => {
    const s = await startServer({ workers: 1 });
    const port = await freePort();
    const p = await s.createProxy({ name: 'tc-restart', provider: 'openai', upstream_url: 'emulator', port, config: DELAY(3) });
    const r = await s.api('PUT', `/api/v1/proxies/${p.id}/config?ttl_s=3600`, DELAY(40));
    assert.equal(r.status, 200);
    const base = `http://127.0.0.1:${port}`;
    assert.equal(await delayOf({ base }), 40);
    await s.stop(); // asserts exit code 0 and no sanitizer report (leaks included)
    const s2 = await startServer({ workers: 1, dataDir: s.dataDir });
    try {
      await waitFor(async () => (await s2.api('GET', `/api/v1/proxies/${p.id}`)).json.status === 'running', 5000, 'restore');
      assert.equal((await s2.api('GET', `/api/v1/proxies/${p.id}/config`)).json.temporary_until, undefined);
      assert.equal(await delayOf({ base }), 3);
    } finally {
      await s2.stop();
    }
  });
});
