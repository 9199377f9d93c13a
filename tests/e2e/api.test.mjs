// The management API: proxy CRUD, validation, port handling, configuration
// documents applied live, and state restored across a restart.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { RawConn, httpRequest, jsonOf, tryConnect, waitFor } from './lib/http.mjs';
import { freePort, startServer, tempDir } from './lib/server.mjs';

const RFC3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/;
const chatBody = (content) => JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }] });

async function emulatorModels(port) {
  const r = await httpRequest(`http://127.0.0.1:${port}/v1/models`, { headers: { authorization: 'Bearer sk-test' } });
  assert.equal(r.status, 200, `GET /v1/models on :${port} -> ${r.status}`);
  return jsonOf(r.body);
}

/** Holds a port with a plain listener from this (node) process. */
async function holdPort(port) {
  const s = net.createServer((c) => c.destroy());
  await new Promise((resolve, reject) => {
    s.once('error', reject);
    s.listen(port, '127.0.0.1', resolve);
  });
  return s;
}

describe('management API', () => {
  let srv;
  before(async () => {
    srv = await startServer();
  });
  after(async () => {
    await srv?.stop();
  });

  const list = async () => {
    const r = await srv.api('GET', '/api/v1/proxies');
    assert.equal(r.status, 200, r.text);
    assert.ok(Array.isArray(r.json.proxies));
    return r.json.proxies;
  };

  test('create returns 201 with every field, and the proxy serves at once', async () => {
    const port = await freePort();
    const body = {
      name: 'full',
      provider: 'openai',
      port,
      upstream_url: 'emulator',
      description: 'all fields',
      tags: ['a', 'b'],
      model: 'gpt-4o-mini',
      config: { limits: { max_body_bytes: 100000 } },
    };
    const r = await srv.api('POST', '/api/v1/proxies', body);
    assert.equal(r.status, 201, r.text);
    const p = r.json;
    assert.ok(Number.isInteger(p.id), `id ${p.id}`);
    assert.equal(p.name, 'full');
    assert.equal(p.provider, 'openai');
    assert.equal(p.port, port);
    assert.equal(p.bind, '127.0.0.1');
    assert.equal(p.upstream_url, 'emulator');
    assert.equal(p.status, 'running');
    assert.equal(p.url, `http://127.0.0.1:${port}`);
    assert.equal(p.description, 'all fields');
    assert.deepEqual(p.tags, ['a', 'b']);
    assert.equal(p.model, 'gpt-4o-mini');
    assert.equal(p.config?.limits?.max_body_bytes, 100000);
    assert.match(p.created_at, RFC3339);
    assert.ok(Math.abs(Date.parse(p.created_at) - Date.now()) < 120000, `created_at ${p.created_at} is not now`);
    assert.equal(p.last_error, null);
    await emulatorModels(port);

    const g = await srv.api('GET', `/api/v1/proxies/${p.id}`);
    assert.equal(g.status, 200);
    assert.deepEqual(g.json, p);
    assert.ok((await list()).some((x) => x.id === p.id && x.name === 'full'));
  });

  test('minimal create: defaults for bind, upstream_url, tags, config', async () => {
    const port = await freePort();
    const p = await srv.createProxy({ name: 'minimal', provider: 'deepseek', port, start: false });
    assert.equal(p.provider, 'deepseek');
    assert.equal(p.bind, '127.0.0.1');
    assert.equal(p.upstream_url, null);
    assert.deepEqual(p.tags, []);
    assert.deepEqual(p.config, {});
    assert.equal(p.status, 'stopped');
    assert.equal(await tryConnect(port), 'ECONNREFUSED', 'a proxy created with start:false must not listen');
    const s = await srv.api('POST', `/api/v1/proxies/${p.id}/start`);
    assert.equal(s.status, 200, s.text);
    assert.equal(s.json.status, 'running');
    assert.equal(await tryConnect(port), 'connected');
    assert.equal((await srv.api('DELETE', `/api/v1/proxies/${p.id}`)).status, 204);
  });

  test('GET of a missing proxy is 404 not_found', async () => {
    for (const [m, p] of [
      ['GET', '/api/v1/proxies/999999'],
      ['PATCH', '/api/v1/proxies/999999'],
      ['DELETE', '/api/v1/proxies/999999'],
      ['POST', '/api/v1/proxies/999999/start'],
      ['POST', '/api/v1/proxies/999999/stop'],
      ['GET', '/api/v1/proxies/999999/config'],
    ]) {
      const r = await srv.api(m, p, m === 'PATCH' ? { name: 'zz' } : undefined);
      assert.equal(r.status, 404, `${m} ${p} -> ${r.status} ${r.text}`);
      assert.equal(r.json?.error?.code, 'not_found');
    }
  });

  test('PATCH updates name, description and tags', async () => {
    const p = await srv.createProxy({ name: 'patchme', provider: 'openai', upstream_url: 'emulator', start: false });
    const r = await srv.api('PATCH', `/api/v1/proxies/${p.id}`, { name: 'patched', description: 'new desc', tags: ['x'] });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.name, 'patched');
    assert.equal(r.json.description, 'new desc');
    assert.deepEqual(r.json.tags, ['x']);
    assert.equal(r.json.port, p.port);
    const g = (await srv.api('GET', `/api/v1/proxies/${p.id}`)).json;
    assert.equal(g.name, 'patched');
    assert.equal(g.description, 'new desc');
    assert.deepEqual(g.tags, ['x']);
    assert.equal(g.created_at, p.created_at);
  });

  test('PATCH with a new port moves the listener (the old port is closed when PATCH answers)', async () => {
    let port = await freePort();
    const p = await srv.createProxy({ name: 'mover', provider: 'openai', upstream_url: 'emulator', port });
    await emulatorModels(port);
    for (let i = 0; i < 5; i++) {
      const newPort = await freePort();
      const r = await srv.api('PATCH', `/api/v1/proxies/${p.id}`, { port: newPort });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.port, newPort);
      assert.equal(r.json.status, 'running');
      assert.equal(r.json.url, `http://127.0.0.1:${newPort}`);
      assert.equal(await tryConnect(port), 'ECONNREFUSED', `move ${i}: the old port still accepts connections after PATCH answered`);
      await emulatorModels(newPort);
      port = newPort;
    }
  });

  test('DELETE answers 204, closes the port, and the proxy is gone', async () => {
    const port = await freePort();
    const p = await srv.createProxy({ name: 'doomed', provider: 'openai', upstream_url: 'emulator', port });
    await emulatorModels(port);
    const d = await srv.api('DELETE', `/api/v1/proxies/${p.id}`);
    assert.equal(d.status, 204);
    assert.equal(d.body.length, 0);
    assert.equal(await tryConnect(port), 'ECONNREFUSED');
    assert.equal((await srv.api('GET', `/api/v1/proxies/${p.id}`)).status, 404);
    assert.ok(!(await list()).some((x) => x.id === p.id));
  });

  test('a duplicate name is 409 and nothing is created', async () => {
    await srv.createProxy({ name: 'dup', provider: 'openai', upstream_url: 'emulator', start: false });
    const before = (await list()).length;
    const r = await srv.api('POST', '/api/v1/proxies', { name: 'dup', provider: 'openai', start: false });
    assert.equal(r.status, 409, r.text);
    assert.equal(typeof r.json?.error?.code, 'string');
    assert.equal((await list()).length, before);
  });

  test('a port held by another proxy is 409 on create and on PATCH; nothing changes', async () => {
    const port = await freePort();
    const a = await srv.createProxy({ name: 'owner', provider: 'openai', upstream_url: 'emulator', port });
    const b = await srv.createProxy({ name: 'other', provider: 'openai', upstream_url: 'emulator', port: await freePort() });
    const before = await list();
    const r = await srv.api('POST', '/api/v1/proxies', { name: 'squatter', provider: 'openai', port });
    assert.equal(r.status, 409, r.text);
    assert.equal(typeof r.json?.error?.message, 'string');
    const after1 = await list();
    assert.equal(after1.length, before.length);
    assert.ok(!after1.some((x) => x.name === 'squatter'));
    // also when the other proxy is stopped: the port stays assigned to it
    assert.equal((await srv.api('POST', `/api/v1/proxies/${a.id}/stop`)).status, 200);
    const r2 = await srv.api('POST', '/api/v1/proxies', { name: 'squatter', provider: 'openai', port });
    assert.equal(r2.status, 409, r2.text);
    const pr = await srv.api('PATCH', `/api/v1/proxies/${b.id}`, { port, name: 'renamed-by-failed-patch' });
    assert.equal(pr.status, 409, pr.text);
    const bNow = (await srv.api('GET', `/api/v1/proxies/${b.id}`)).json;
    assert.equal(bNow.port, b.port);
    assert.equal(bNow.name, 'other', 'a rejected PATCH must not change anything');
    assert.equal(bNow.status, 'running');
    await emulatorModels(b.port);
  });

  for (const bad of [0, 70000, -1, 65536, 'abc', 80.5]) {
    test(`port ${JSON.stringify(bad)} is 400 with field "port"`, async () => {
      const before = (await list()).length;
      const r = await srv.api('POST', '/api/v1/proxies', { name: `badport-${String(bad)}`, provider: 'openai', port: bad });
      assert.equal(r.status, 400, r.text);
      assert.equal(r.json?.error?.field, 'port');
      assert.equal(typeof r.json.error.message, 'string');
      assert.equal((await list()).length, before);
    });
  }

  test('bad JSON is 400 bad_json', async () => {
    for (const body of ['{"name": "x", ', 'not json', '', '[1,2]']) {
      const r = await srv.api('POST', '/api/v1/proxies', body, { headers: { 'content-type': 'application/json' } });
      assert.equal(r.status, 400, `${JSON.stringify(body)} -> ${r.status} ${r.text}`);
      if (body === '{"name": "x", ' || body === 'not json') assert.equal(r.json?.error?.code, 'bad_json');
    }
  });

  test('missing or mistyped fields are 400 naming the field', async () => {
    const before = (await list()).length;
    const cases = [
      [{ provider: 'openai' }, 'name'],
      [{ name: 'np' }, 'provider'],
      [{ name: 42, provider: 'openai' }, 'name'],
      [{ name: 'unk', provider: 'no-such-provider' }, 'provider'],
      [{ name: 'tg', provider: 'openai', tags: 'notalist' }, 'tags'],
      [{ name: 'ub', provider: 'openai', upstream_url: 'ftp://example.com' }, 'upstream_url'],
      // credentials in the URL would be stored and shown by the API
      [{ name: 'uc', provider: 'openai', upstream_url: 'https://user:secret@example.com/v1' }, 'upstream_url'],
      [{ name: 'cf', provider: 'openai', config: { no_such_block: {} } }, 'no_such_block'],
    ];
    for (const [body, field] of cases) {
      const r = await srv.api('POST', '/api/v1/proxies', body);
      assert.equal(r.status, 400, `${JSON.stringify(body)} -> ${r.status} ${r.text}`);
      assert.equal(r.json?.error?.field, field, `${JSON.stringify(body)} -> ${r.text}`);
    }
    assert.equal((await list()).length, before, 'a rejected create must not create anything');
  });

  test('port auto-assignment starts at 8001 and skips ports in use', async () => {
    const a = await srv.createProxy({ name: 'auto1', provider: 'openai', upstream_url: 'emulator' });
    const b = await srv.createProxy({ name: 'auto2', provider: 'openai', upstream_url: 'emulator' });
    for (const p of [a, b]) {
      assert.ok(Number.isInteger(p.port) && p.port >= 8001, `auto port ${p.port}`);
      assert.equal(p.status, 'running', `auto-assigned port ${p.port} must be bindable: ${p.last_error}`);
      await emulatorModels(p.port);
    }
    assert.notEqual(a.port, b.port);
  });

  test('a port held by another process: 201 with status "error", start answers 409, and start works once freed', async () => {
    const port = await freePort();
    const blocker = await holdPort(port);
    let p;
    try {
      const r = await srv.api('POST', '/api/v1/proxies', { name: 'blocked', provider: 'openai', upstream_url: 'emulator', port });
      assert.equal(r.status, 201, r.text);
      p = r.json;
      assert.equal(p.status, 'error');
      assert.match(String(p.last_error), /in use|EADDRINUSE/i);
      const g = (await srv.api('GET', `/api/v1/proxies/${p.id}`)).json;
      assert.equal(g.status, 'error');
      assert.equal(g.last_error, p.last_error);
      const s = await srv.api('POST', `/api/v1/proxies/${p.id}/start`);
      assert.equal(s.status, 409, s.text);
      assert.match(String(s.json?.error?.message), /in use|EADDRINUSE/i);
      const hz = (await srv.api('GET', '/healthz', undefined, { auth: null })).json;
      const running = (await list()).filter((x) => x.status === 'running').length;
      assert.equal(hz.proxies_running, running, 'healthz must not count a proxy in error');
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
    const s2 = await srv.api('POST', `/api/v1/proxies/${p.id}/start`);
    assert.equal(s2.status, 200, s2.text);
    assert.equal(s2.json.status, 'running');
    assert.equal(s2.json.last_error, null);
    await emulatorModels(port);
  });

  test('concurrent creates with one name: exactly one wins, the rest get 409', async () => {
    const before = (await list()).length;
    const results = await Promise.all(
      Array.from({ length: 8 }, () => srv.api('POST', '/api/v1/proxies', { name: 'race-name', provider: 'openai', upstream_url: 'emulator', start: false })),
    );
    const codes = results.map((r) => r.status).sort();
    assert.deepEqual(codes, [201, 409, 409, 409, 409, 409, 409, 409], codes.join(','));
    assert.equal((await list()).length, before + 1);
  });

  test('concurrent creates on one port: exactly one wins, the rest get 409', async () => {
    const port = await freePort();
    const before = (await list()).length;
    const results = await Promise.all(
      Array.from({ length: 6 }, (_, i) => srv.api('POST', '/api/v1/proxies', { name: `race-port-${i}`, provider: 'openai', upstream_url: 'emulator', port })),
    );
    const codes = results.map((r) => r.status).sort();
    assert.deepEqual(codes, [201, 409, 409, 409, 409, 409], codes.join(','));
    const winner = results.find((r) => r.status === 201).json;
    assert.equal(winner.status, 'running');
    assert.equal((await list()).length, before + 1);
    await emulatorModels(port);
  });

  test('PATCH upstream_url switches the upstream for the next request', async () => {
    const port = await freePort();
    const p = await srv.createProxy({ name: 'switcher', provider: 'openai', upstream_url: `http://127.0.0.1:${await freePort()}`, port });
    const bad = await httpRequest(`http://127.0.0.1:${port}/v1/models`);
    assert.equal(bad.status, 502, 'a closed upstream port must give 502');
    const r = await srv.api('PATCH', `/api/v1/proxies/${p.id}`, { upstream_url: 'emulator' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.upstream_url, 'emulator');
    await emulatorModels(port);
  });

  test('PATCH bind moves the listener to the new address (the old one is closed when PATCH answers)', async () => {
    const port = await freePort();
    const p = await srv.createProxy({ name: 'rebind', provider: 'openai', upstream_url: 'emulator', port });
    let old = '127.0.0.1';
    for (const addr of ['127.0.0.2', '127.0.0.3', '127.0.0.1', '127.0.0.2']) {
      const r = await srv.api('PATCH', `/api/v1/proxies/${p.id}`, { bind: addr });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.bind, addr);
      assert.equal(r.json.status, 'running');
      assert.equal(await tryConnect(port, old), 'ECONNREFUSED', `${old} -> ${addr}: still listening on ${old} after PATCH answered`);
      const m = await httpRequest(`http://${addr}:${port}/v1/models`);
      assert.equal(m.status, 200);
      old = addr;
    }
    const bad = await srv.api('PATCH', `/api/v1/proxies/${p.id}`, { bind: 'not an address' });
    assert.equal(bad.status, 400, bad.text);
    assert.equal(bad.json?.error?.field, 'bind');
  });

  test('create, use and delete many proxies in a row (no leaks, no stale listeners)', async () => {
    const before = (await list()).length;
    for (let i = 0; i < 15; i++) {
      const port = await freePort();
      const p = await srv.createProxy({ name: `churn-${i}`, provider: i % 2 ? 'deepseek' : 'openai', upstream_url: 'emulator', port });
      assert.equal(p.status, 'running', `churn ${i}: ${p.last_error}`);
      const r = await httpRequest(`http://127.0.0.1:${port}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: chatBody(`churn ${i}`),
      });
      assert.equal(r.status, 200);
      assert.equal((await srv.api('DELETE', `/api/v1/proxies/${p.id}`)).status, 204);
      assert.equal(await tryConnect(port), 'ECONNREFUSED', `churn ${i}: port ${port} still open after DELETE`);
    }
    assert.equal((await list()).length, before);
  });

  test('stop and start are idempotent-safe and reflected in GET', async () => {
    const port = await freePort();
    const p = await srv.createProxy({ name: 'toggler', provider: 'openai', upstream_url: 'emulator', port });
    const s = await srv.api('POST', `/api/v1/proxies/${p.id}/stop`);
    assert.equal(s.status, 200, s.text);
    assert.equal(s.json.status, 'stopped');
    assert.equal(await tryConnect(port), 'ECONNREFUSED');
    const s2 = await srv.api('POST', `/api/v1/proxies/${p.id}/stop`);
    assert.ok([200, 409].includes(s2.status), `second stop -> ${s2.status}`);
    assert.equal((await srv.api('GET', `/api/v1/proxies/${p.id}`)).json.status, 'stopped');
    const st = await srv.api('POST', `/api/v1/proxies/${p.id}/start`);
    assert.equal(st.status, 200, st.text);
    await emulatorModels(port);
    const bad = await srv.api('POST', `/api/v1/proxies/${p.id}/stop?mode=sideways`);
    assert.equal(bad.status, 400, bad.text);
    assert.equal((await srv.api('GET', `/api/v1/proxies/${p.id}`)).json.status, 'running');
  });
});

describe('configuration documents', () => {
  let srv;
  let p;
  before(async () => {
    srv = await startServer();
    p = await srv.createProxy({ name: 'cfg', provider: 'openai', upstream_url: 'emulator', port: await freePort() });
  });
  after(async () => {
    await srv?.stop();
  });

  const getConfig = async () => {
    const r = await srv.api('GET', `/api/v1/proxies/${p.id}/config`);
    assert.equal(r.status, 200, r.text);
    return r.json;
  };

  test('PUT then GET returns the document', async () => {
    const doc = {
      limits: { max_body_bytes: 500000, connect_timeout_ms: 2000, upstream_timeout_ms: 30000, idle_timeout_ms: 5000 },
      emulator: { tokens_per_second: 0, seed: 7 },
    };
    const put = await srv.api('PUT', `/api/v1/proxies/${p.id}/config`, doc);
    assert.equal(put.status, 200, put.text);
    const got = await getConfig();
    assert.deepEqual(got.limits, doc.limits);
    assert.deepEqual(got.emulator, doc.emulator);
    assert.deepEqual((await srv.api('GET', `/api/v1/proxies/${p.id}`)).json.config.limits, doc.limits);
  });

  test('an unknown top-level key is 400 naming it, and the stored document is unchanged', async () => {
    const before = await getConfig();
    const r = await srv.api('PUT', `/api/v1/proxies/${p.id}/config`, { limits: { max_body_bytes: 1 }, frobnicator: { on: true } });
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json?.error?.field, 'frobnicator');
    assert.match(r.json.error.message, /frobnicator/);
    assert.deepEqual(await getConfig(), before);
  });

  test('a wrong type or range is 400 with the field', async () => {
    const before = await getConfig();
    for (const [doc, re] of [
      [{ limits: { max_body_bytes: 'big' } }, /max_body_bytes/],
      [{ limits: { idle_timeout_ms: -5 } }, /idle_timeout_ms/],
      [{ limits: 'no' }, /limits/],
      [{ emulator: { tokens_per_second: 'fast' } }, /tokens_per_second/],
    ]) {
      const r = await srv.api('PUT', `/api/v1/proxies/${p.id}/config`, doc);
      assert.equal(r.status, 400, `${JSON.stringify(doc)} -> ${r.status} ${r.text}`);
      assert.match(String(r.json?.error?.field), re, `${JSON.stringify(doc)} -> ${r.text}`);
    }
    const nonObject = await srv.api('PUT', `/api/v1/proxies/${p.id}/config`, '[1]');
    assert.equal(nonObject.status, 400);
    const badJson = await srv.api('PUT', `/api/v1/proxies/${p.id}/config`, '{"limits":');
    assert.equal(badJson.status, 400);
    assert.equal(badJson.json?.error?.code, 'bad_json');
    assert.deepEqual(await getConfig(), before);
  });

  test('middleware_pipeline: unknown names, a list without provider_forwarding or with a request stage after it are 400', async () => {
    const before = await getConfig();
    for (const [list, field, re] of [
      [['provider_forwarding', 'telepathy'], 'middleware_pipeline[1]', /telepathy|one of/],
      [['authentication', 'caching'], 'middleware_pipeline', /provider_forwarding/],
      [['provider_forwarding', 'rate_limiting'], 'middleware_pipeline[1]', /must come before/],
    ]) {
      const r = await srv.api('PUT', `/api/v1/proxies/${p.id}/config`, { middleware_pipeline: list });
      assert.equal(r.status, 400, `${JSON.stringify(list)} -> ${r.status} ${r.text}`);
      assert.equal(r.json?.error?.field, field, r.text);
      assert.match(r.json.error.message, re, r.text);
    }
    assert.deepEqual(await getConfig(), before);
    // a list that drops stages still answers through the upstream stage
    const ok = await srv.api('PUT', `/api/v1/proxies/${p.id}/config`, { middleware_pipeline: ['provider_forwarding', 'logging'] });
    assert.equal(ok.status, 200, ok.text);
    const models = await httpRequest(`http://127.0.0.1:${p.port}/v1/models`);
    assert.equal(models.status, 200, models.text);
    const restore = await srv.api('PUT', `/api/v1/proxies/${p.id}/config`, before);
    assert.equal(restore.status, 200, restore.text);
  });

  test('the blocks of the product description are accepted as written there, and round-trip', async () => {
    // examples copied from the product description
    const doc = {
      timeout_config: { enabled: true, delay_ms: 5000, timeout_rate: 0.1, hang_rate: 0.02 },
      error_injection: { '400_rate': 0.05, '401_rate': 0.02, '429_rate': 0.15, '500_rate': 0.03, '503_rate': 0.01 },
      rate_limiting: {
        requests_per_minute: 60,
        burst_allowance: 10,
        rate_limit_response: { status_code: 429, headers: { 'Retry-After': '60', 'X-RateLimit-Remaining': '0' } },
      },
      ip_filtering: { mode: 'allowlist', allowed_ips: ['192.168.1.0/24', '10.0.0.0/8', '172.16.0.0/12'], blocked_ips: ['192.168.1.100', '10.0.0.50'] },
      cache_ttl: {
        default: 3600,
        by_model: { 'gpt-4': 7200, 'claude-3-sonnet': 3600, 'gpt-3.5-turbo': 1800 },
        by_request_type: { completion: 3600, chat: 1800, embedding: 86400 },
      },
      memory_limits: { cache_max_size: '1GB', cache_max_entries: 10000, log_buffer_size: '100MB', response_buffer_size: '10MB' },
    };
    // on a stopped proxy of its own: later issues give these blocks behaviour
    const q = await srv.createProxy({ name: 'cfg-blocks', provider: 'openai', upstream_url: 'emulator', start: false });
    for (const [key, value] of Object.entries(doc)) {
      const put = await srv.api('PUT', `/api/v1/proxies/${q.id}/config`, { [key]: value });
      assert.equal(put.status, 200, `block ${key}: ${put.status} ${put.text}`);
    }
    const put = await srv.api('PUT', `/api/v1/proxies/${q.id}/config`, doc);
    assert.equal(put.status, 200, put.text);
    const got = (await srv.api('GET', `/api/v1/proxies/${q.id}/config`)).json;
    for (const key of Object.keys(doc)) assert.deepEqual(got[key], doc[key], `block ${key} did not round-trip`);
  });

  test('limits.max_body_bytes applies to the next request on an open connection, without a restart', async () => {
    await srv.putConfig(p.id, { limits: { max_body_bytes: 100000 } });
    const conn = await RawConn.open(p.port);
    try {
      const body = chatBody('x'.repeat(2000));
      const req = `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
      await conn.write(req);
      const r1 = await conn.readResponse();
      assert.equal(r1.status, 200, r1.body.toString());
      await srv.putConfig(p.id, { limits: { max_body_bytes: 1000 } });
      await conn.write(req);
      const r2 = await conn.readResponse();
      assert.equal(r2.status, 413, `after lowering max_body_bytes on a live connection: ${r2.status}`);
    } finally {
      conn.destroy();
    }
    // a new connection sees it too, and raising it again restores service
    const r3 = await httpRequest(`http://127.0.0.1:${p.port}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: chatBody('y'.repeat(2000)),
    });
    assert.equal(r3.status, 413);
    await srv.putConfig(p.id, { limits: { max_body_bytes: 100000 } });
    const r4 = await httpRequest(`http://127.0.0.1:${p.port}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: chatBody('y'.repeat(2000)),
    });
    assert.equal(r4.status, 200);
  });

  test('the config given at create time is in force', async () => {
    const port = await freePort();
    await srv.createProxy({ name: 'small-limit', provider: 'openai', upstream_url: 'emulator', port, config: { limits: { max_body_bytes: 500 } } });
    const r = await httpRequest(`http://127.0.0.1:${port}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: chatBody('z'.repeat(1000)),
    });
    assert.equal(r.status, 413);
  });
});

describe('restart', () => {
  test('a restart with the same data dir restores running proxies and keeps stopped ones stopped', async () => {
    const dir = tempDir();
    const first = await startServer({ dataDir: dir });
    const upPort = await freePort();
    const downPort = await freePort();
    let up;
    let down;
    try {
      up = await first.createProxy({ name: 'keeps-running', provider: 'openai', upstream_url: 'emulator', port: upPort, tags: ['t1'], config: { emulator: { seed: 3 } } });
      down = await first.createProxy({ name: 'stays-stopped', provider: 'deepseek', upstream_url: 'emulator', port: downPort });
      assert.equal((await first.api('POST', `/api/v1/proxies/${down.id}/stop`)).status, 200);
      await emulatorModels(upPort);
    } finally {
      await first.stop();
    }
    assert.equal(await tryConnect(upPort), 'ECONNREFUSED', 'proxy ports must close when the server exits');

    const second = await startServer({ dataDir: dir });
    try {
      const list = (await second.api('GET', '/api/v1/proxies')).json.proxies;
      const byName = Object.fromEntries(list.map((x) => [x.name, x]));
      assert.equal(list.length, 2);
      assert.equal(byName['keeps-running'].status, 'running');
      assert.equal(byName['keeps-running'].id, up.id);
      assert.equal(byName['keeps-running'].port, upPort);
      assert.deepEqual(byName['keeps-running'].tags, ['t1']);
      assert.equal(byName['keeps-running'].config?.emulator?.seed, 3);
      assert.equal(byName['keeps-running'].created_at, up.created_at);
      assert.equal(byName['stays-stopped'].status, 'stopped');
      await emulatorModels(upPort);
      assert.equal(await tryConnect(downPort), 'ECONNREFUSED');
      const hz = (await second.api('GET', '/healthz', undefined, { auth: null })).json;
      assert.equal(hz.proxies_running, 1);
      // ids keep increasing: a new proxy does not reuse an id
      const n = await second.createProxy({ name: 'new-after-restart', provider: 'openai', start: false });
      assert.ok(n.id > Math.max(up.id, down.id));
    } finally {
      await second.stop();
    }
  });

  test('the server survives a killed predecessor (SIGKILL) and restores its proxies', async () => {
    const dir = tempDir();
    const first = await startServer({ dataDir: dir });
    const port = await freePort();
    await first.createProxy({ name: 'survivor', provider: 'openai', upstream_url: 'emulator', port });
    first.kill('SIGKILL');
    await first.exited;
    await waitFor(async () => (await tryConnect(port)) === 'ECONNREFUSED', 5000, 'the killed server port to close');
    const second = await startServer({ dataDir: dir });
    try {
      const list = (await second.api('GET', '/api/v1/proxies')).json.proxies;
      assert.equal(list.length, 1);
      assert.equal(list[0].status, 'running');
      await emulatorModels(port);
    } finally {
      await second.stop();
    }
  });
});
