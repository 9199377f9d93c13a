// Credentials never leak. For every provider GET /api/v1/providers lists, a
// proxy on the emulator, and on a test upstream and on a closed port one per
// upstream client (native, libcurl), get requests (HTTP/1.1 and HTTP/2)
// carrying a distinct fake secret in every credential slot (every auth header
// any provider reads, the provider's secret query parameters, the
// configuration's aws block), on good routes and on failing ones (401 from
// the upstream, an unknown route, 413, the upstream down). Then no secret may
// appear in the server's output at --log-level trace, in the database files
// (with -wal and -shm) or in any API response, while every request secret
// did reach the test upstream unchanged: pass-through is required.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http2 from 'node:http2';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { httpRequest } from './lib/http.mjs';
import { freePort, startServer } from './lib/server.mjs';
import { reply, startUpstream } from './lib/upstream.mjs';

const RUN = crypto.randomBytes(6).toString('hex');
const secrets = new Map(); // secret -> where it was used, for the messages
function secret(where) {
  const s = `rdsecret${RUN}x${secrets.size}x${where.replace(/[^A-Za-z0-9]/g, '')}`;
  secrets.set(s, where);
  return s;
}

// Every auth header any provider reads: each provider gets all of them.
const HEADER_SLOTS = ['authorization', 'x-api-key', 'api-key', 'x-goog-api-key', 'openai-organization', 'openai-project', 'x-goog-user-project'];

const MAX_BODY = 4096; // limits.max_body_bytes of every proxy here: the 413 case

// A request the provider's table knows, per dialect: method, path and body.
function goodRequest(p) {
  const chat = { messages: [{ role: 'user', content: 'hello' }] };
  switch (p.name) {
    case 'anthropic':
      return { path: '/v1/messages', body: { model: 'claude-sonnet-4-5', max_tokens: 16, ...chat } };
    case 'azure_openai':
      return { path: '/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21', body: chat };
    case 'gemini':
      return { path: '/v1beta/models/gemini-2.0-flash:generateContent', body: { contents: [{ role: 'user', parts: [{ text: 'hello' }] }] } };
    case 'vertex_ai':
      return {
        path: '/v1beta1/projects/duck/locations/us-central1/publishers/google/models/gemini-2.0-flash:generateContent',
        body: { contents: [{ role: 'user', parts: [{ text: 'hello' }] }] },
      };
    case 'bedrock':
      return { path: '/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse', body: { messages: [{ role: 'user', content: [{ text: 'hello' }] }] } };
    default:
      if (p.dialect !== 'openai') throw new Error(`no test request for provider ${p.name} (dialect ${p.dialect}): add one`);
      return { path: `${p.sdk_base_path}/chat/completions`, body: { model: 'test-model', ...chat } };
  }
}

// The request's credentials: a fresh secret in every header slot and in
// each of the provider's secret query parameters.
function credentials(p, label) {
  const headers = {};
  for (const h of HEADER_SLOTS) headers[h] = h === 'authorization' ? `Bearer ${secret(`${p.name} ${label} ${h}`)}` : secret(`${p.name} ${label} ${h}`);
  const query = (p.secret_query_params ?? []).map((q) => `${q}=${secret(`${p.name} ${label} ?${q}`)}`);
  return { headers, query };
}

function withQuery(target, query) {
  if (query.length === 0) return target;
  return target + (target.includes('?') ? '&' : '?') + query.join('&');
}

describe('secrets never leak (every provider, every credential slot)', () => {
  let srv;
  let up;
  let providers;
  const proxies = []; // {p, kind: 'emulator'|'upstream'|'down', port, id}
  const responses = []; // every answer a client got: {what, status, headers, body}
  const atUpstream = []; // {what, target, headers} sent to upstream proxies, to check pass-through

  before(async () => {
    srv = await startServer({ args: ['--log-level', 'trace'] });
    up = await startUpstream((req, res) => {
      // The upstream answers by a test header; it never echoes what it got.
      const want = req.headers['x-test-reply'];
      if (want === '401') return reply.json({ error: { message: 'Invalid credentials', type: 'invalid_request_error', code: 'invalid_api_key' } }, { status: 401 })(req, res);
      if (want === '404') return reply.json({ error: { message: 'Not found' } }, { status: 404 })(req, res);
      return reply.json({ ok: true })(req, res);
    });
    const r = await srv.api('GET', '/api/v1/providers');
    assert.equal(r.status, 200);
    providers = r.json.providers;
    for (const name of ['openai', 'deepseek', 'anthropic', 'azure_openai', 'gemini', 'vertex_ai', 'groq', 'mistral', 'together', 'openrouter', 'xai', 'ollama', 'openai_compatible']) {
      assert.ok(providers.some((p) => p.name === name), `provider ${name} is listed`);
    }
    const closed = await freePort();
    for (const p of providers) {
      // Both upstream clients: the native one ("auto") and libcurl.
      for (const kind of ['emulator', 'upstream', 'down', 'upstream-curl', 'down-curl']) {
        const upstream_url = kind === 'emulator' ? 'emulator' : kind.startsWith('upstream') ? up.url : `http://127.0.0.1:${closed}`;
        if (kind === 'emulator' && !p.emulator) continue;
        const port = await freePort();
        const config = {
          limits: { max_body_bytes: MAX_BODY, connect_timeout_ms: 2000 },
          ...(kind === 'emulator' ? {} : { upstream: { client: kind.endsWith('curl') ? 'curl' : 'auto' } }),
          // write-only secrets of the configuration document
          aws: { access_key_id: 'AKIDRUBBERDUCKTEST', secret_access_key: secret(`${p.name} ${kind} aws.secret_access_key`), session_token: secret(`${p.name} ${kind} aws.session_token`), region: 'us-east-1' },
        };
        const created = await srv.createProxy({ name: `sec-${p.name}-${kind}`, provider: p.name, upstream_url, port, config });
        assert.equal(created.status, 'running', `${p.name} ${kind}: ${JSON.stringify(created)}`);
        responses.push({ what: `POST /api/v1/proxies (${p.name} ${kind})`, status: 201, headers: {}, body: JSON.stringify(created) });
        proxies.push({ p, kind, port, id: created.id });
      }
    }
  });

  after(async () => {
    await up?.close();
    if (srv && !srv.stopped) await srv.stop();
  });

  let seq = 0;
  async function send(px, label, { target, body, headers = {} }) {
    const cred = credentials(px.p, label);
    const url = withQuery(target, cred.query);
    const n = String(++seq); // finds the request at the upstream
    const h = { ...cred.headers, 'content-type': 'application/json', 'x-test-seq': n, ...headers };
    const r = await httpRequest(`http://127.0.0.1:${px.port}${url}`, { method: 'POST', headers: h, body, timeoutMs: 15000 });
    const what = `${px.p.name} ${px.kind} ${label}: POST ${target}`;
    responses.push({ what, status: r.status, headers: r.headers, body: r.body.toString('latin1') });
    if (px.kind.startsWith('upstream') && r.status !== 413) atUpstream.push({ what, url, seq: n, headers: cred.headers });
    return r;
  }

  // The same over HTTP/2 (cleartext, prior knowledge): another front end.
  async function sendH2(px, label, { target, body }) {
    const cred = credentials(px.p, label);
    const url = withQuery(target, cred.query);
    const n = String(++seq);
    const session = http2.connect(`http://127.0.0.1:${px.port}`);
    session.on('error', () => {});
    try {
      const r = await new Promise((resolve, reject) => {
        const st = session.request({ ':method': 'POST', ':path': url, ...cred.headers, 'content-type': 'application/json', 'x-test-seq': n });
        const chunks = [];
        let head = {};
        const timer = setTimeout(() => reject(new Error(`${px.p.name}: no HTTP/2 answer in time`)), 15000);
        st.on('response', (h) => (head = h));
        st.on('data', (c) => chunks.push(c));
        st.on('end', () => {
          clearTimeout(timer);
          resolve({ status: head[':status'], headers: head, body: Buffer.concat(chunks) });
        });
        st.on('error', (e) => {
          clearTimeout(timer);
          reject(e);
        });
        st.end(body);
      });
      const what = `${px.p.name} ${px.kind} ${label} (HTTP/2): POST ${target}`;
      responses.push({ what, status: r.status, headers: r.headers, body: r.body.toString('latin1') });
      if (px.kind.startsWith('upstream')) atUpstream.push({ what, url, seq: n, headers: cred.headers });
      return r;
    } finally {
      session.close();
    }
  }

  test('requests with secrets in every slot, on good and failing routes', async () => {
    for (const px of proxies) {
      const good = goodRequest(px.p);
      const body = JSON.stringify(good.body);
      const ok = await send(px, 'good', { target: good.path, body });
      const unknown = await send(px, 'unknown-route', { target: `${px.p.sdk_base_path}/rubberduck-no-such-route`, body, headers: { 'x-test-reply': '404' } });
      const big = await send(px, 'too-big', { target: good.path, body: JSON.stringify({ ...good.body, pad: 'x'.repeat(MAX_BODY) }) });
      assert.equal(big.status, 413, `${px.p.name} ${px.kind}: a body over max_body_bytes`);
      const h2 = await sendH2(px, 'good-h2', { target: good.path, body });
      assert.equal(h2.status, px.kind.startsWith('down') ? 502 : 200, `${px.p.name} ${px.kind} over HTTP/2: ${h2.body}`);
      if (px.kind.startsWith('down')) {
        assert.equal(ok.status, 502, `${px.p.name}: upstream down`);
        assert.equal(unknown.status, 502);
        continue;
      }
      if (px.kind === 'emulator') {
        assert.equal(ok.status, 200, `${px.p.name} emulator: ${ok.body}`);
        assert.equal(unknown.status, 404, `${px.p.name} emulator: an unknown route`);
        continue;
      }
      assert.equal(ok.status, 200, `${px.p.name} upstream: ${ok.body}`);
      assert.equal(unknown.status, 404);
      const denied = await send(px, 'upstream-401', { target: good.path, body, headers: { 'x-test-reply': '401' } });
      assert.equal(denied.status, 401, `${px.p.name}: the upstream's 401 is relayed`);
    }
    // A wrong admin token is refused without being echoed.
    const bad = secret('admin token');
    const denied = await srv.api('GET', '/api/v1/proxies', undefined, { auth: bad });
    assert.equal(denied.status, 401);
    responses.push({ what: 'admin API with a wrong token', status: denied.status, headers: denied.headers, body: denied.text });
  });

  test('the request secrets reached the test upstream unchanged', async () => {
    assert.ok(atUpstream.length >= 8 * providers.length, 'requests went to the test upstream');
    for (const sent of atUpstream) {
      const rec = await up.waitRequest((x) => x.headers['x-test-seq'] === sent.seq, 5000).catch(() => null);
      assert.ok(rec, `${sent.what}: the upstream got the request`);
      assert.equal(rec.url, sent.url, `${sent.what}: path and query (with its secrets) intact`);
      for (const [h, v] of Object.entries(sent.headers)) assert.equal(rec.headers[h], v, `${sent.what}: ${h} at the upstream`);
    }
  });

  test('no secret in any API response', async () => {
    const paths = ['/healthz', '/api/v1/providers', '/api/v1/proxies'];
    for (const px of proxies) paths.push(`/api/v1/proxies/${px.id}`, `/api/v1/proxies/${px.id}/config`, `/api/v1/proxies/${px.id}/usage`);
    for (const p of paths) {
      const r = await srv.api('GET', p);
      assert.equal(r.status, 200, `GET ${p}`);
      responses.push({ what: `GET ${p}`, status: r.status, headers: r.headers, body: r.text });
    }
    // The aws secrets are shown as the placeholder; a document sent back
    // with it keeps them (and the answer shows the placeholder again).
    const px = proxies[0];
    const cfg = await srv.api('GET', `/api/v1/proxies/${px.id}/config`);
    assert.equal(cfg.json.aws.secret_access_key, '********');
    assert.equal(cfg.json.aws.session_token, '********');
    assert.equal(cfg.json.aws.access_key_id, 'AKIDRUBBERDUCKTEST');
    const put = await srv.api('PUT', `/api/v1/proxies/${px.id}/config`, cfg.json);
    assert.equal(put.status, 200, put.text);
    responses.push({ what: 'PUT config with the placeholders', status: put.status, headers: put.headers, body: put.text });
    const patched = await srv.api('PATCH', `/api/v1/proxies/${px.id}`, { description: 'patched' });
    assert.equal(patched.status, 200, patched.text);
    responses.push({ what: 'PATCH proxy', status: patched.status, headers: patched.headers, body: patched.text });
    for (const r of responses) {
      const text = JSON.stringify(r.headers) + '\n' + r.body;
      for (const [s, where] of secrets) assert.ok(!text.includes(s), `${r.what} (${r.status}) shows the secret of ${where}:\n${r.body.slice(0, 400)}`);
    }
  });

  test('no secret in the server output or the database files', async () => {
    // a stopped server has flushed everything it will write
    await srv.stop();
    const log = srv.stderrText() + srv.stdoutText();
    assert.match(log, / level=trace /, 'the server logged at trace level');
    for (const [s, where] of secrets) {
      const lines = log.split('\n').filter((l) => l.includes(s));
      assert.equal(lines.length, 0, `the secret of ${where} is in the server output:\n${lines.slice(0, 5).join('\n')}`);
    }
    const walk = (d) => fs.readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(d, e.name)) : [path.join(d, e.name)]));
    const files = walk(srv.dataDir);
    assert.ok(files.some((f) => f.endsWith('.db')), `a database in ${srv.dataDir}: ${files.join(', ')}`);
    for (const f of files) {
      const bytes = fs.readFileSync(f);
      for (const [s, where] of secrets) assert.ok(!bytes.includes(s), `the secret of ${where} is stored in ${path.basename(f)}`);
    }
  });
});

// Sealed secrets survive a restart with the same secrets.key, and a proxy
// whose secrets do not open with the key is refused, saying why.
describe('stored secrets across restarts', () => {
  test('same key: kept; replaced key: the proxy is in error until the secrets are sent again', async () => {
    let srv = await startServer();
    const dataDir = srv.dataDir;
    const s1 = secret('restart aws.secret_access_key');
    const port = await freePort();
    let p;
    try {
      p = await srv.createProxy({ name: 'restart-aws', provider: 'openai', upstream_url: 'emulator', port, config: { aws: { access_key_id: 'AKIDR', secret_access_key: s1, region: 'eu-west-1' } } });
      const key = fs.readFileSync(path.join(dataDir, 'secrets.key'), 'utf8');
      assert.match(key, /^[0-9a-f]{64}\n$/);
      assert.equal(fs.statSync(path.join(dataDir, 'secrets.key')).mode & 0o777, 0o600);
    } finally {
      await srv.stop();
    }
    srv = await startServer({ dataDir });
    try {
      const got = await srv.api('GET', `/api/v1/proxies/${p.id}`);
      assert.equal(got.json.status, 'running', JSON.stringify(got.json));
      assert.equal(got.json.config.aws.secret_access_key, '********');
    } finally {
      await srv.stop();
    }
    fs.writeFileSync(path.join(dataDir, 'secrets.key'), `${crypto.randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
    srv = await startServer({ dataDir });
    try {
      const got = await srv.api('GET', `/api/v1/proxies/${p.id}`);
      assert.equal(got.json.status, 'error', JSON.stringify(got.json));
      assert.match(got.json.last_error, /secrets cannot be opened/);
      // sending the placeholder back cannot keep what no longer opens
      const cfg = await srv.api('GET', `/api/v1/proxies/${p.id}/config`);
      const bad = await srv.api('PUT', `/api/v1/proxies/${p.id}/config`, cfg.json);
      assert.equal(bad.status, 400, bad.text);
      assert.equal(bad.json.error.field, 'aws.secret_access_key');
      const s2 = secret('restart new aws.secret_access_key');
      const fixed = await srv.api('PUT', `/api/v1/proxies/${p.id}/config`, { aws: { access_key_id: 'AKIDR', secret_access_key: s2 } });
      assert.equal(fixed.status, 200, fixed.text);
      const start = await srv.api('POST', `/api/v1/proxies/${p.id}/start`);
      assert.ok([200, 202].includes(start.status), start.text);
      const again = await srv.api('GET', `/api/v1/proxies/${p.id}`);
      assert.equal(again.json.status, 'running', JSON.stringify(again.json));
    } finally {
      await srv.stop();
    }
    const db = fs.readFileSync(path.join(dataDir, 'rubberduck.db'));
    for (const [s, where] of secrets) assert.ok(!db.includes(s), `the secret of ${where} is stored in clear`);
  });
});

// The -wal and -shm files exist only while the server runs: read them then.
describe('secrets never reach the live database files', () => {
  let srv;
  let up;
  before(async () => {
    srv = await startServer();
    up = await startUpstream(reply.json({ ok: true }));
  });
  after(async () => {
    await up?.close();
    await srv?.stop();
  });

  test('database, -wal and -shm while running', async () => {
    const aws = secret('live aws.secret_access_key');
    const tok = secret('live aws.session_token');
    const key = secret('live x-goog-api-key');
    const q = secret('live ?key');
    const port = await freePort();
    await srv.createProxy({ name: 'live-gemini', provider: 'gemini', upstream_url: up.url, port, config: { aws: { access_key_id: 'AKIDLIVE', secret_access_key: aws, session_token: tok } } });
    const r = await httpRequest(`http://127.0.0.1:${port}/v1beta/models/gemini-2.0-flash:generateContent?key=${q}`, {
      method: 'POST', headers: { 'x-goog-api-key': key, 'content-type': 'application/json' }, body: '{"contents":[]}',
    });
    assert.equal(r.status, 200);
    const files = fs.readdirSync(srv.dataDir).filter((f) => /\.db(-wal|-shm)?$/.test(f));
    assert.ok(files.some((f) => f.endsWith('.db')), files.join(', '));
    for (const f of files) {
      const bytes = fs.readFileSync(path.join(srv.dataDir, f));
      for (const s of [aws, tok, key, q]) assert.ok(!bytes.includes(s), `the secret of ${secrets.get(s)} is in ${f}`);
    }
  });
});
