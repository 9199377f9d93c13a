// The request log (issue 9, items 1 and 2): requests made through the
// official SDKs become rows of request_logs with the fields the proxy knew
// (tokens and cost for a priced model, the upstream's request id, the cache
// result, the failure type, the delay applied, the prompt hash), never the
// prompt or the key; a proxy with "logging": {"enabled": false} writes
// nothing; SIGTERM writes what was still queued. The database is read with
// the sqlite3 CLI (a test dependency, scripts/install-deps.sh).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { freePort, startServer } from './lib/server.mjs';
import { startUpstream } from './lib/upstream.mjs';
import { waitFor } from './lib/http.mjs';
import { llmUpstream, uniqueTag } from './lib/cachekit.mjs';

const OPENAI_KEY = `sk-logkey-${uniqueTag('secret')}`;
const ANTHROPIC_KEY = `sk-ant-logkey-${uniqueTag('secret')}`;

function dbPath(srv) {
  return path.join(srv.dataDir, 'rubberduck.db');
}

/** Rows of a query as objects (sqlite3 -json; [] for none). */
function query(srv, sql) {
  const out = execFileSync('sqlite3', ['-json', '-cmd', '.timeout 5000', dbPath(srv), sql], { encoding: 'utf8', timeout: 10000 });
  return out.trim() ? JSON.parse(out) : [];
}

const rowsOf = (srv, proxyId) => query(srv, `SELECT * FROM request_logs WHERE proxy_id = ${Number(proxyId)} ORDER BY seq`);

/** Waits until the proxy has n rows (the writer is asynchronous), returns them. */
async function waitRows(srv, proxyId, n) {
  let rows = [];
  await waitFor(() => (rows = rowsOf(srv, proxyId)).length >= n, 10000, `${n} log rows of proxy ${proxyId}`, 50);
  return rows;
}

describe('request log', () => {
  let srv;
  let up;
  const answered = new Map(); // upstream call n -> request-id it sent
  before(async () => {
    srv = await startServer({ workers: 2 });
    up = await startUpstream();
    const h = llmUpstream({
      // Anthropic names its id request-id; the others x-request-id (set by llmUpstream).
      headers: (n, body, rec) => (rec.url.split('?')[0].endsWith('/messages') ? { 'request-id': `anth_up${n}` } : {}),
    });
    up.handle((...a) => h(...a));
  });
  after(async () => {
    await up?.close();
    await srv?.stop();
  });

  async function proxy(name, provider, config) {
    const port = await freePort();
    // The response cache keeps answers (which the test upstream makes from
    // the prompt) in the database when it persists: not here, so the grep
    // below looks at what the request log leaves.
    const cache = { persist: false, ...(config?.cache ?? {}) };
    const body = { name, provider, upstream_url: up.url, port, config: { ...(config ?? {}), cache } };
    const p = await srv.createProxy(body);
    return { id: p.id, port, base: `http://127.0.0.1:${port}` };
  }

  test('OpenAI SDK: plain, identical (a hit), different, streamed, failed and delayed calls', async () => {
    const p = await proxy('log-openai', 'openai');
    const ai = new OpenAI({ baseURL: `${p.base}/v1`, apiKey: OPENAI_KEY, maxRetries: 0 });
    const promptA = uniqueTag('PROMPT-TEXT-alpha');
    const promptB = uniqueTag('PROMPT-TEXT-beta');
    const promptS = uniqueTag('PROMPT-TEXT-stream');
    const a1 = await ai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: promptA }] }).withResponse();
    const a2 = await ai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: promptA }] }).withResponse();
    assert.equal(a1.response.headers.get('x-cache'), 'MISS');
    assert.equal(a2.response.headers.get('x-cache'), 'HIT');
    await ai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: promptB }] });
    const stream = await ai.chat.completions.create({
      model: 'gpt-4o-mini', messages: [{ role: 'user', content: promptS }], stream: true, stream_options: { include_usage: true },
    });
    let text = '';
    for await (const ch of stream) text += ch.choices[0]?.delta?.content ?? '';
    assert.match(text, /answer \d+ to/);

    const rows = await waitRows(srv, p.id, 4);
    assert.equal(rows.length, 4);
    // Rows of two workers need not be in request order: find each by what it is.
    const upN = (r) => Number(r.upstream_request_id.replace('req_up', ''));
    const r2 = rows.find((r) => r.cache === 3);
    const r4 = rows.find((r) => r.stream === 1);
    const [r1, r3] = rows.filter((r) => r !== r2 && r !== r4).sort((x, y) => upN(x) - upN(y));
    assert.ok(r1 && r2 && r3 && r4);
    assert.equal(new Set(rows.map((r) => r.seq)).size, 4);
    for (const r of rows) {
      assert.match(r.request_id, /^req_[0-9a-f]{16}$/);
      assert.equal(r.method, 'POST');
      assert.equal(r.path, '/v1/chat/completions');
      assert.equal(r.provider, 'openai');
      assert.equal(r.model, 'gpt-4o-mini');
      assert.equal(r.status_code, 200);
      assert.equal(r.client_ip, '127.0.0.1');
      assert.ok(r.node_id.length > 0);
      assert.match(r.prompt_hash, /^[0-9a-f]{64}$/);
      assert.match(r.trace_id, /^([0-9a-f]{32})?$/); // set once tracing is on
      assert.ok(r.timestamp > 1.7e12 && r.timestamp <= Date.now());
      assert.ok(r.latency_ms >= 0);
    }
    // the miss went upstream: its status, its id, its tokens priced
    assert.equal(r1.cache, 2 /* miss */);
    assert.equal(r1.upstream_status, 200);
    assert.match(r1.upstream_request_id, /^req_up\d+$/);
    assert.equal(r1.input_tokens, a1.data.usage.prompt_tokens);
    assert.equal(r1.output_tokens, a1.data.usage.completion_tokens);
    assert.ok(r1.cost_usd > 0, `cost ${r1.cost_usd}`);
    assert.ok(r1.upstream_latency_ms >= 0 && r1.ttfb_ms >= 0);
    assert.equal(r1.stream, 0);
    // the hit: no upstream, no upstream id, the same prompt hash
    assert.equal(r2.cache, 3 /* hit */);
    assert.equal(r2.upstream_status, 0);
    assert.equal(r2.upstream_request_id, '');
    assert.equal(r2.upstream_latency_ms, null);
    assert.equal(r2.prompt_hash, r1.prompt_hash);
    // a different prompt, a different hash and upstream id
    assert.notEqual(r3.prompt_hash, r1.prompt_hash);
    assert.notEqual(r3.upstream_request_id, r1.upstream_request_id);
    // the stream
    assert.equal(r4.stream, 1);
    assert.equal(r4.upstream_status, 200);
    assert.match(r4.upstream_request_id, /^req_up\d+$/);
    assert.ok(r4.response_bytes > 0);
    assert.ok(r4.output_tokens > 0);
    assert.notEqual(r4.prompt_hash, r1.prompt_hash);
  });

  test('the prompt hash groups identical prompts across API keys and proxies with the cache off', async () => {
    const p = await proxy('log-nocache', 'openai', { cache: { enabled: false } });
    const prompt = uniqueTag('PROMPT-TEXT-shared');
    for (const key of [OPENAI_KEY, `${OPENAI_KEY}-other`]) {
      const ai = new OpenAI({ baseURL: `${p.base}/v1`, apiKey: key, maxRetries: 0 });
      await ai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: prompt }] });
    }
    const ai = new OpenAI({ baseURL: `${p.base}/v1`, apiKey: OPENAI_KEY, maxRetries: 0 });
    await ai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: `${prompt}!` }] });
    const rows = await waitRows(srv, p.id, 3);
    assert.ok(rows.every((r) => r.cache === 0 /* none: no cache on this proxy */));
    assert.match(rows[0].prompt_hash, /^[0-9a-f]{64}$/);
    // two rows (the two keys) share a hash, the third prompt has its own
    const counts = {};
    for (const r of rows) counts[r.prompt_hash] = (counts[r.prompt_hash] ?? 0) + 1;
    assert.deepEqual(Object.values(counts).sort(), [1, 2]);
    // the same prompt through a proxy with the cache on (keys scoped by credential; the
    // prompt hash reuses the body the cache key canonicalized): the same hash
    const on = await proxy('log-cacheon-hash', 'openai');
    const aion = new OpenAI({ baseURL: `${on.base}/v1`, apiKey: `${OPENAI_KEY}-third`, maxRetries: 0 });
    await aion.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: prompt }] });
    const [onRow] = await waitRows(srv, on.id, 1);
    assert.equal(onRow.cache, 2 /* miss */);
    assert.equal(counts[onRow.prompt_hash], 2, 'a cache-on proxy hashed the same prompt differently');
  });

  test('Anthropic SDK: the upstream id from request-id, plain and streamed', async () => {
    const p = await proxy('log-anthropic', 'anthropic');
    const ant = new Anthropic({ baseURL: p.base, apiKey: ANTHROPIC_KEY, maxRetries: 0 });
    const m = await ant.messages.create({ model: 'claude-3-5-haiku-20241022', max_tokens: 50, messages: [{ role: 'user', content: uniqueTag('PROMPT-TEXT-anth') }] });
    const s = ant.messages.stream({ model: 'claude-3-5-haiku-20241022', max_tokens: 50, messages: [{ role: 'user', content: uniqueTag('PROMPT-TEXT-anths') }] });
    await s.finalMessage();
    const rows = await waitRows(srv, p.id, 2);
    const plain = rows.find((r) => r.stream === 0);
    const streamed = rows.find((r) => r.stream === 1);
    assert.ok(plain && streamed);
    assert.equal(plain.provider, 'anthropic');
    assert.equal(plain.path, '/v1/messages');
    assert.match(plain.upstream_request_id, /^anth_up\d+$/);
    assert.equal(plain.input_tokens, m.usage.input_tokens);
    assert.equal(plain.output_tokens, m.usage.output_tokens);
    assert.ok(plain.cost_usd > 0);
    assert.match(streamed.upstream_request_id, /^anth_up\d+$/);
    assert.notEqual(streamed.upstream_request_id, plain.upstream_request_id);
    assert.ok(streamed.output_tokens > 0);
  });

  test('simulated failures and delays: failure type, status, no upstream', async () => {
    const p = await proxy('log-fail', 'openai', { error_injection: { '503_rate': 1 } });
    const ai = new OpenAI({ baseURL: `${p.base}/v1`, apiKey: OPENAI_KEY, maxRetries: 0 });
    await assert.rejects(ai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'fail me' }] }), (e) => e.status === 503);
    const d = await proxy('log-delay', 'openai', { response_delay: { min_ms: 40, max_ms: 40 }, cache: { enabled: false } });
    const ad = new OpenAI({ baseURL: `${d.base}/v1`, apiKey: OPENAI_KEY, maxRetries: 0 });
    await ad.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'delay me' }] });
    const [f] = await waitRows(srv, p.id, 1);
    assert.equal(f.status_code, 503);
    assert.equal(f.upstream_status, 0);
    assert.equal(f.failure_type, 'error_injection');
    assert.equal(f.upstream_request_id, '');
    assert.equal(f.cost_usd, null);
    const [g] = await waitRows(srv, d.id, 1);
    assert.equal(g.status_code, 200);
    assert.equal(g.failure_type, 'delayed');
    assert.equal(g.response_delay_ms, 40);
    assert.ok(g.latency_ms >= 40);
  });

  test('"logging": {"enabled": false} and a pipeline without "logging" write nothing', async () => {
    const off = await proxy('log-off', 'openai', { logging: { enabled: false } });
    const left = await proxy('log-left-out', 'openai', { middleware_pipeline: ['caching', 'provider_forwarding'] });
    const on = await proxy('log-on', 'openai', { cache: { enabled: false } });
    for (const p of [off, left, on]) {
      const ai = new OpenAI({ baseURL: `${p.base}/v1`, apiKey: OPENAI_KEY, maxRetries: 0 });
      await ai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello' }] });
    }
    // The others' records were queued before this one's request was sent.
    await waitRows(srv, on.id, 1);
    const r = await srv.api('GET', '/api/v1/proxies');
    assert.equal(r.status, 200);
    assert.equal(rowsOf(srv, off.id).length, 0);
    assert.equal(rowsOf(srv, left.id).length, 0);
  });

  test('no prompt text and no API key anywhere in the database files', async () => {
    await srv.stop(); // the files as they are left, WAL included
    const files = ['rubberduck.db', 'rubberduck.db-wal', 'rubberduck.db-shm']
      .map((f) => path.join(srv.dataDir, f))
      .filter((f) => fs.existsSync(f));
    assert.ok(files.length >= 1);
    const total = query(srv, 'SELECT count(*) AS n FROM request_logs')[0].n;
    assert.ok(total >= 10, `rows ${total}`);
    for (const f of files) {
      const bytes = fs.readFileSync(f);
      for (const needle of ['PROMPT-TEXT', OPENAI_KEY, ANTHROPIC_KEY, 'logkey', 'fail me', 'delay me']) {
        assert.equal(bytes.indexOf(Buffer.from(needle)), -1, `${needle} found in ${path.basename(f)}`);
      }
    }
  });
});

describe('request log at shutdown', () => {
  test('SIGTERM right after the answers: every queued record is written', async () => {
    const srv = await startServer({ workers: 2 });
    try {
      const port = await freePort();
      const p = await srv.createProxy({ name: 'log-flush', provider: 'openai', upstream_url: 'emulator', port });
      const ai = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: OPENAI_KEY, maxRetries: 0 });
      const N = 60;
      await Promise.all(
        Array.from({ length: N }, (_, i) => ai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: `flush ${i}` }] })),
      );
      await srv.stop(); // at once: no wait for the writer's tick
      const rows = rowsOf(srv, p.id);
      assert.equal(rows.length, N);
      assert.equal(new Set(rows.map((r) => r.request_id)).size, N);
      assert.ok(rows.every((r) => r.status_code === 200 && r.upstream_request_id === ''));
    } finally {
      await srv.stop();
    }
  });
});
