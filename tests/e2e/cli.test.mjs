// The command line, the health check, admin authentication and the
// providers list.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { httpRequest, jsonOf } from './lib/http.mjs';
import { BIN, VERSION, freePort, runCli, startServer, tempDir, sanitizerReports } from './lib/server.mjs';

const noSanitizer = (r, what) => assert.deepEqual(sanitizerReports(r.stderr), [], `${what}: sanitizer report:\n${r.stderr}`);

describe('command line', () => {
  test('binary exists', () => {
    assert.ok(fs.existsSync(BIN), `no binary at ${BIN}; build it with make BUILD=asan all or set RUBBERDUCK_BIN`);
  });

  test('version prints "rubberduck <VERSION>" and exits 0', async () => {
    const r = await runCli(['version']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), `rubberduck ${VERSION}`);
    noSanitizer(r, 'version');
  });

  test('--help exits 0 and lists the commands', async () => {
    const r = await runCli(['--help']);
    assert.equal(r.code, 0, r.stderr);
    const out = r.stdout + r.stderr;
    assert.match(out, /serve/);
    assert.match(out, /version/);
    noSanitizer(r, '--help');
  });

  test('help serve exits 0 and documents every serve flag', async () => {
    const r = await runCli(['help', 'serve']);
    assert.equal(r.code, 0, r.stderr);
    const out = r.stdout + r.stderr;
    for (const flag of ['--listen', '--data-dir', '--workers', '--demo']) assert.ok(out.includes(flag), `help serve lacks ${flag}:\n${out}`);
    noSanitizer(r, 'help serve');
  });

  test('an unknown flag prints usage on stderr and exits 2', async () => {
    const r = await runCli(['serve', '--no-such-flag']);
    assert.equal(r.code, 2, `exit code ${r.code}; stderr: ${r.stderr}`);
    assert.match(r.stderr, /usage/i);
    noSanitizer(r, 'bad flag');
  });

  test('a bad flag value (--workers abc) exits 2 with usage', async () => {
    const dir = tempDir();
    const r = await runCli(['serve', '--workers', 'abc', '--data-dir', dir, '--listen', `127.0.0.1:${await freePort()}`]);
    assert.equal(r.code, 2, `exit code ${r.code}; stderr: ${r.stderr}`);
    assert.match(r.stderr, /usage/i);
    noSanitizer(r, '--workers abc');
  });

  test('an unknown command exits 2 with usage', async () => {
    const r = await runCli(['frobnicate']);
    assert.equal(r.code, 2, `exit code ${r.code}; stderr: ${r.stderr}`);
    assert.match(r.stderr, /usage/i);
  });
});

describe('server basics', () => {
  let srv;
  before(async () => {
    srv = await startServer();
  });
  after(async () => {
    await srv?.stop();
  });

  test('startup prints the admin API address', () => {
    assert.ok(srv.stderrText().includes(`admin API on ${srv.adminUrl}`), srv.stderrText());
  });

  test('GET /healthz needs no auth and has the documented shape', async () => {
    const r = await httpRequest(`${srv.adminUrl}/healthz`);
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /application\/json/);
    const j = jsonOf(r.body);
    assert.equal(j.status, 'ok');
    assert.equal(j.version, VERSION);
    assert.equal(j.database, 'ok');
    assert.equal(j.proxies_running, 0);
  });

  test('healthz counts running proxies', async () => {
    const p = await srv.createProxy({ name: 'hz', provider: 'openai', upstream_url: 'emulator', port: await freePort() });
    assert.equal(p.status, 'running');
    let j = (await srv.api('GET', '/healthz', undefined, { auth: null })).json;
    assert.equal(j.proxies_running, 1);
    const s = await srv.api('POST', `/api/v1/proxies/${p.id}/stop`);
    assert.equal(s.status, 200, s.text);
    j = (await srv.api('GET', '/healthz', undefined, { auth: null })).json;
    assert.equal(j.proxies_running, 0);
    assert.equal((await srv.api('DELETE', `/api/v1/proxies/${p.id}`)).status, 204);
  });

  for (const [label, auth] of [
    ['no token', null],
    ['a wrong token', 'wrong-token'],
    ['the token with one character changed', 'test-tokeN'],
  ]) {
    test(`/api/v1 routes answer 401 with ${label}`, async () => {
      for (const [method, p, body] of [
        ['GET', '/api/v1/proxies'],
        ['POST', '/api/v1/proxies', { name: 'x', provider: 'openai' }],
        ['GET', '/api/v1/providers'],
        ['GET', '/api/v1/proxies/1'],
        ['DELETE', '/api/v1/proxies/1'],
      ]) {
        const r = await srv.api(method, p, body, { auth });
        assert.equal(r.status, 401, `${method} ${p}: ${r.status} ${r.text}`);
        assert.equal(r.json?.error?.code, 'unauthorized', `${method} ${p}: ${r.text}`);
        assert.equal(typeof r.json.error.message, 'string');
      }
      // nothing was created by the unauthenticated POST
      const list = await srv.api('GET', '/api/v1/proxies');
      assert.equal(list.status, 200);
      assert.equal(list.json.proxies.filter((p) => p.name === 'x').length, 0);
    });
  }

  test('a Basic or malformed Authorization header is 401', async () => {
    for (const h of ['Basic dGVzdC10b2tlbg==', 'Bearer', 'Bearer  test-token x', 'test-token']) {
      const r = await srv.api('GET', '/api/v1/proxies', undefined, { auth: null, headers: { authorization: h } });
      assert.equal(r.status, 401, `Authorization: ${h} -> ${r.status}`);
    }
  });

  test('GET /api/v1/providers lists openai and deepseek with their default upstreams', async () => {
    const r = await srv.api('GET', '/api/v1/providers');
    assert.equal(r.status, 200, r.text);
    assert.ok(Array.isArray(r.json.providers));
    const by = Object.fromEntries(r.json.providers.map((p) => [p.name, p]));
    assert.equal(by.openai?.default_upstream, 'https://api.openai.com');
    assert.equal(by.deepseek?.default_upstream, 'https://api.deepseek.com');
  });

  test('an unknown API route is 404 in the API error format', async () => {
    const r = await srv.api('GET', '/api/v1/nope');
    assert.equal(r.status, 404);
    assert.equal(r.json?.error?.code, 'not_found');
  });
});

describe('environment and data directory', () => {
  test('RUBBERDUCK_LISTEN and RUBBERDUCK_DATA_DIR replace the flags', async () => {
    const dir = tempDir();
    const srv = await startServer({ listenViaEnv: true, dataDirViaEnv: true, env: { RUBBERDUCK_DATA_DIR: dir } });
    try {
      assert.ok(!srv.args.includes('--listen') && !srv.args.includes('--data-dir'));
      const r = await httpRequest(`${srv.adminUrl}/healthz`);
      assert.equal(r.status, 200);
      const files = fs.readdirSync(dir);
      assert.ok(files.some((f) => /\.(db|sqlite3?)$/.test(f)), `no database file in RUBBERDUCK_DATA_DIR: ${files}`);
    } finally {
      await srv.stop();
    }
  });

  test('DATABASE_URL=sqlite:///path puts the database at that path', async () => {
    const dir = tempDir();
    const dbPath = path.join(dir, 'custom-name.db');
    const srv = await startServer({ env: { DATABASE_URL: `sqlite://${dbPath}` } });
    try {
      await srv.createProxy({ name: 'in-custom-db', provider: 'openai', upstream_url: 'emulator', start: false });
      assert.ok(fs.existsSync(dbPath), `no database at ${dbPath}`);
      const head = fs.readFileSync(dbPath).subarray(0, 16).toString('latin1');
      assert.equal(head, 'SQLite format 3\0');
    } finally {
      await srv.stop();
    }
  });

  test('without RUBBERDUCK_ADMIN_TOKEN a token is generated into <data-dir>/admin.token (0600) and kept', async () => {
    const dir = tempDir();
    const srv = await startServer({ dataDir: dir, token: null });
    let token;
    try {
      const file = path.join(dir, 'admin.token');
      assert.ok(fs.existsSync(file), 'admin.token not created');
      assert.equal(fs.statSync(file).mode & 0o777, 0o600, 'admin.token must be mode 0600');
      token = fs.readFileSync(file, 'utf8').trim();
      assert.ok(token.length >= 16, `token too short: ${JSON.stringify(token)}`);
      assert.ok(srv.stderrText().includes(file), `the token path is not printed:\n${srv.stderrText()}`);
      assert.equal((await srv.api('GET', '/api/v1/proxies', undefined, { auth: token })).status, 200);
      assert.equal((await srv.api('GET', '/api/v1/proxies', undefined, { auth: 'test-token' })).status, 401);
    } finally {
      await srv.stop();
    }
    const again = await startServer({ dataDir: dir, token: null });
    try {
      assert.equal(fs.readFileSync(path.join(dir, 'admin.token'), 'utf8').trim(), token, 'token changed across restarts');
      assert.equal((await again.api('GET', '/api/v1/proxies', undefined, { auth: token })).status, 200);
    } finally {
      await again.stop();
    }
  });

  test('SIGINT stops the server with exit code 0', async () => {
    const srv = await startServer();
    await srv.stop({ signal: 'SIGINT' });
  });

  test('--workers 1 serves proxies', async () => {
    const srv = await startServer({ workers: 1 });
    try {
      const port = await freePort();
      await srv.createProxy({ name: 'w1', provider: 'openai', upstream_url: 'emulator', port });
      const r = await httpRequest(`http://127.0.0.1:${port}/v1/models`, { headers: { authorization: 'Bearer sk-x' } });
      assert.equal(r.status, 200);
      assert.ok(Array.isArray(jsonOf(r.body).data));
    } finally {
      await srv.stop();
    }
  });

  test('--demo creates the demo proxy once; without it nothing is created', async () => {
    const dir = tempDir();
    const plain = await startServer({ dataDir: dir });
    try {
      assert.deepEqual((await plain.api('GET', '/api/v1/proxies')).json.proxies, []);
    } finally {
      await plain.stop();
    }
    for (let i = 0; i < 2; i++) {
      const srv = await startServer({ dataDir: dir, args: ['--demo'] });
      try {
        const list = (await srv.api('GET', '/api/v1/proxies')).json.proxies;
        assert.equal(list.length, 1, JSON.stringify(list));
        const d = list[0];
        assert.equal(d.name, 'demo');
        assert.equal(d.provider, 'openai');
        assert.equal(d.upstream_url, 'emulator');
        assert.equal(d.port, 8001);
        if (d.status === 'running') {
          const r = await httpRequest('http://127.0.0.1:8001/v1/chat/completions', {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }),
          });
          assert.equal(r.status, 200);
          assert.equal(jsonOf(r.body).object, 'chat.completion');
        } else {
          // port 8001 is taken on this machine by something else: the API must say so
          assert.equal(d.status, 'error');
          assert.match(String(d.last_error), /in use|EADDRINUSE/i);
        }
      } finally {
        await srv.stop();
      }
    }
  });
});
