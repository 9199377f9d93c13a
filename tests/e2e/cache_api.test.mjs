// The cache API (issue 8, items 8 and 10): statistics, the paged entries
// list, invalidation by key, pattern, proxy and everything, and cassette
// export and import (API and `rubberduck cassette`). Entries get into a
// cache here through import (hand-written cassette lines), so every check
// on what the API shows is a check against what the test put in.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import { runCli, sanitizerReports, startServer, tempDir } from './lib/server.mjs';

const RFC3339_MS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const hexKey = (seed) => crypto.createHash('sha256').update(String(seed)).digest('hex');
const iso = (ms) => new Date(ms).toISOString();

/** One cassette line for an OpenAI chat completion (cache/cassette.h's format). */
function chatLine(model, seed, { content = `answer ${seed}`, ttlS = 3600, createdAgoS = 10 } = {}) {
  const created = Date.now() - createdAgoS * 1000;
  const body = {
    id: `chatcmpl-${seed}`,
    object: 'chat.completion',
    created: Math.floor(created / 1000),
    model,
    choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop', logprobs: null }],
    usage: { prompt_tokens: 12, completion_tokens: 3, total_tokens: 15 },
  };
  return JSON.stringify({
    key: `${model}:${hexKey(seed)}`,
    model,
    kind: 'chat',
    method: 'POST',
    path: '/v1/chat/completions',
    status: 200,
    headers: [['content-type', 'application/json']],
    stream: false,
    created: iso(created),
    expires: iso(created + ttlS * 1000),
    ttl_s: ttlS,
    hits: 0,
    usage: { input: 12, output: 3, cached: 0, reasoning: 0 },
    body,
  });
}

/** The same for a streamed answer (SSE events with their times). */
function streamLine(model, seed) {
  const created = Date.now() - 5000;
  const chunk = (delta, finish) =>
    `data: ${JSON.stringify({ id: `chatcmpl-${seed}`, object: 'chat.completion.chunk', created: Math.floor(created / 1000), model, choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
  return JSON.stringify({
    key: `${model}:${hexKey(seed)}`,
    model,
    kind: 'chat',
    method: 'POST',
    path: '/v1/chat/completions',
    status: 200,
    headers: [['content-type', 'text/event-stream']],
    stream: true,
    created: iso(created),
    expires: iso(created + 3600 * 1000),
    ttl_s: 3600,
    hits: 0,
    usage: { input: 5, output: 2, cached: 0, reasoning: 0 },
    events: [
      { t_ms: 0, text: chunk({ role: 'assistant', content: 'Hel' }, null) },
      { t_ms: 12, text: chunk({ content: 'lo' }, null) },
      { t_ms: 20, text: chunk({}, 'stop') },
      { t_ms: 21, text: 'data: [DONE]\n\n' },
    ],
  });
}

const cassette = (lines) => lines.join('\n') + '\n';

describe('cache API', () => {
  let srv;
  let a; // proxy under test
  let b; // a second proxy, for DELETE /api/v1/cache
  const api = (...args) => srv.api(...args);
  const importLines = async (proxy, lines) => {
    const r = await api('POST', `/api/v1/proxies/${proxy.id}/cache/import`, cassette(lines), {
      headers: { 'content-type': 'application/x-ndjson' },
    });
    assert.equal(r.status, 200, r.text);
    return r.json;
  };
  const entries = async (proxy, query = '') => {
    const r = await api('GET', `/api/v1/proxies/${proxy.id}/cache/entries${query}`);
    assert.equal(r.status, 200, r.text);
    return r.json;
  };
  const allKeys = async (proxy) => (await entries(proxy, '?limit=1000')).entries.map((e) => e.key).sort();
  const clear = async (proxy) => assert.equal((await api('DELETE', `/api/v1/proxies/${proxy.id}/cache`)).status, 200);

  before(async () => {
    srv = await startServer();
    a = await srv.createProxy({ name: 'cache-a', provider: 'openai', upstream_url: 'emulator' });
    b = await srv.createProxy({ name: 'cache-b', provider: 'openai', upstream_url: 'emulator' });
  });
  after(async () => {
    await srv?.stop();
  });

  test('an empty cache: zero stats, null hit rate and times, no entries', async () => {
    const r = await api('GET', `/api/v1/proxies/${a.id}/cache`);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, {
      proxy_id: a.id,
      entries: 0,
      bytes: 0,
      hits: 0,
      misses: 0,
      hit_rate: null,
      evictions: 0,
      expired: 0,
      oldest: null,
      newest: null,
    });
    assert.deepEqual(await entries(a), { entries: [], next_cursor: null });
  });

  test('import inserts every entry (an aged one with its TTL started again) and skips blank lines', async () => {
    const lines = [
      chatLine('gpt-4o-mini', 1),
      '',
      chatLine('gpt-4o-mini', 2, { createdAgoS: 20 }),
      chatLine('gpt-4o', 3, { createdAgoS: 30 }),
      chatLine('gpt-4o', 4, { ttlS: 5, createdAgoS: 60 }), // expired 55 s ago: lives 5 s from the import
      streamLine('gpt-4o-mini', 5),
    ];
    const t0 = Date.now();
    const r = await importLines(a, lines);
    assert.deepEqual(r, { imported: 5, skipped: 0, errors: [] });
    const aged = (await entries(a)).entries.find((x) => x.model === 'gpt-4o' && Date.parse(x.expires) - Date.parse(x.created) > 50000);
    assert.ok(aged, 'the aged entry is there');
    const left = Date.parse(aged.expires) - t0;
    assert.ok(left > 3000 && left < 8000, `expires ${left} ms after the import`);

    const s = (await api('GET', `/api/v1/proxies/${a.id}/cache`)).json;
    assert.equal(s.entries, 5);
    assert.ok(s.bytes > 0, `bytes ${s.bytes}`);
    assert.equal(s.hit_rate, null);
    assert.match(s.oldest, RFC3339_MS);
    assert.match(s.newest, RFC3339_MS);
    assert.ok(s.oldest < s.newest, `${s.oldest} < ${s.newest}`);
    await clear(a);
  });

  test('entries show what was imported, by pattern, in pages with a cursor', async () => {
    await importLines(a, [chatLine('gpt-4o-mini', 11), chatLine('gpt-4o-mini', 12), chatLine('gpt-4o', 13), streamLine('gpt-4o', 14)]);
    const all = await entries(a);
    assert.equal(all.entries.length, 4);
    assert.equal(all.next_cursor, null);
    const byKey = Object.fromEntries(all.entries.map((e) => [e.key, e]));
    const e11 = byKey[`gpt-4o-mini:${hexKey(11)}`];
    assert.ok(e11, JSON.stringify(all));
    assert.equal(e11.model, 'gpt-4o-mini');
    assert.equal(e11.stream, false);
    assert.equal(e11.status, 200);
    assert.equal(e11.path, '/v1/chat/completions');
    assert.equal(typeof e11.hits, 'number');
    assert.match(e11.created, RFC3339_MS);
    assert.match(e11.expires, RFC3339_MS);
    assert.equal(Date.parse(e11.expires) - Date.parse(e11.created), 3600 * 1000);
    const body11 = JSON.parse(chatLine('gpt-4o-mini', 11)).body;
    const bodyLen = JSON.stringify(body11).length; // stored as serialised JSON: about that long
    assert.ok(e11.size > bodyLen * 0.8 && e11.size < bodyLen * 1.3, `size ${e11.size} for a ${bodyLen}-byte body`);
    assert.equal(byKey[`gpt-4o:${hexKey(14)}`].stream, true);

    // A model's entries only: "gpt-4o:*" is not "gpt-4o-mini:*".
    const mini = await entries(a, '?pattern=gpt-4o-mini:*');
    assert.deepEqual(mini.entries.map((e) => e.model), ['gpt-4o-mini', 'gpt-4o-mini']);
    const o = await entries(a, `?pattern=${encodeURIComponent('gpt-4o:*')}`); // ':' and '*' encoded
    assert.deepEqual(o.entries.map((e) => e.key).sort(), [`gpt-4o:${hexKey(13)}`, `gpt-4o:${hexKey(14)}`].sort());
    assert.equal((await entries(a, '?pattern=claude*')).entries.length, 0);
    assert.equal((await entries(a, `?pattern=*:${hexKey(12)}`)).entries.length, 1);

    // Pages of 3 then 1: every entry once, in key order, and no cursor after the last page.
    const p1 = await entries(a, '?limit=3');
    assert.equal(p1.entries.length, 3);
    assert.match(p1.next_cursor, /^[0-9a-f]{64}$/);
    const p2 = await entries(a, `?limit=3&cursor=${p1.next_cursor}`);
    assert.equal(p2.entries.length, 1);
    assert.equal(p2.next_cursor, null);
    const paged = [...p1.entries, ...p2.entries].map((e) => e.key);
    assert.deepEqual([...paged].sort(), all.entries.map((e) => e.key).sort());
    const hexes = paged.map((k) => k.split(':').pop());
    assert.deepEqual(hexes, [...hexes].sort(), 'pages are in key order');
    // Exactly a page left: the page before it still says whether more exists.
    const p4 = await entries(a, '?limit=4');
    assert.equal(p4.next_cursor, null);
    // A pattern and a cursor together.
    const m1 = await entries(a, '?pattern=gpt-4o-mini:*&limit=1');
    const m2 = await entries(a, `?pattern=gpt-4o-mini:*&limit=1&cursor=${m1.next_cursor}`);
    assert.equal(m2.entries.length, 1);
    assert.equal(m2.next_cursor, null);
    assert.notEqual(m1.entries[0].key, m2.entries[0].key);
    await clear(a);
  });

  test('delete by key (text or bare hex), then 404 for an absent key', async () => {
    await importLines(a, [chatLine('gpt-4o-mini', 21), chatLine('gpt-4o-mini', 22), chatLine('gpt-4o', 23)]);
    const k21 = `gpt-4o-mini:${hexKey(21)}`;
    let r = await api('DELETE', `/api/v1/proxies/${a.id}/cache/entries/${encodeURIComponent(k21)}`);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { deleted: 1 });
    r = await api('DELETE', `/api/v1/proxies/${a.id}/cache/entries/${k21}`); // ':' unencoded
    assert.equal(r.status, 404, r.text);
    assert.equal(r.json.error.code, 'not_found');
    r = await api('DELETE', `/api/v1/proxies/${a.id}/cache/entries/${hexKey(22)}`);
    assert.deepEqual(r.json, { deleted: 1 });
    assert.deepEqual(await allKeys(a), [`gpt-4o:${hexKey(23)}`]);
    assert.equal((await api('GET', `/api/v1/proxies/${a.id}/cache`)).json.entries, 1);
    await clear(a);
  });

  test('delete by pattern removes that model only; delete without one clears the proxy', async () => {
    await importLines(a, [chatLine('gpt-4o-mini', 31), chatLine('gpt-4o', 32), chatLine('gpt-4o', 33)]);
    let r = await api('DELETE', `/api/v1/proxies/${a.id}/cache?pattern=${encodeURIComponent('gpt-4o:*')}`);
    assert.deepEqual(r.json, { deleted: 2 });
    assert.deepEqual(await allKeys(a), [`gpt-4o-mini:${hexKey(31)}`]);
    r = await api('DELETE', `/api/v1/proxies/${a.id}/cache?pattern=nothing*`);
    assert.deepEqual(r.json, { deleted: 0 });
    r = await api('DELETE', `/api/v1/proxies/${a.id}/cache`);
    assert.deepEqual(r.json, { deleted: 1 });
    assert.equal((await api('GET', `/api/v1/proxies/${a.id}/cache`)).json.entries, 0);
  });

  test('DELETE /api/v1/cache clears every proxy', async () => {
    await importLines(a, [chatLine('gpt-4o', 41), chatLine('gpt-4o', 42)]);
    await importLines(b, [chatLine('gpt-4o', 43)]);
    const r = await api('DELETE', '/api/v1/cache');
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { deleted: 3 });
    assert.deepEqual(await allKeys(a), []);
    assert.deepEqual(await allKeys(b), []);
  });

  test('export streams one line per entry; export, clear, import gives the same entries', async () => {
    const lines = [];
    for (let i = 0; i < 150; i++) lines.push(i % 10 === 0 ? streamLine('gpt-4o', 500 + i) : chatLine(i % 2 ? 'gpt-4o' : 'gpt-4o-mini', 500 + i));
    assert.equal((await importLines(a, lines)).imported, 150);
    const before = (await entries(a, '?limit=1000')).entries;

    const r = await api('GET', `/api/v1/proxies/${a.id}/cache/export`);
    assert.equal(r.status, 200, r.text);
    assert.match(String(r.headers['content-type']), /^application\/x-ndjson/);
    assert.equal(r.headers['content-disposition'], 'attachment; filename="cache-a.cassette.jsonl"');
    assert.equal(r.headers['transfer-encoding'], 'chunked', 'streamed, not built whole');
    const out = r.text.split('\n');
    assert.equal(out.pop(), '', 'ends with a newline');
    assert.equal(out.length, 150);
    const parsed = out.map((l) => JSON.parse(l));
    assert.deepEqual(parsed.map((p) => p.key).sort(), before.map((e) => e.key).sort());
    const s500 = parsed.find((p) => p.key === `gpt-4o:${hexKey(500)}`);
    assert.equal(s500.stream, true);
    assert.ok(Array.isArray(s500.events) && s500.events.length === 4, JSON.stringify(s500));
    assert.ok(!r.text.includes('test-token'), 'no admin token in a cassette');

    await clear(a);
    const back = await importLines(a, out);
    assert.deepEqual(back, { imported: 150, skipped: 0, errors: [] });
    const again = (await entries(a, '?limit=1000')).entries;
    const strip = (e) => ({ key: e.key, model: e.model, size: e.size, created: e.created, expires: e.expires, stream: e.stream, status: e.status, path: e.path });
    assert.deepEqual(again.map(strip), before.map(strip));
    // A second export of the re-imported cache is the same file.
    const r2 = await api('GET', `/api/v1/proxies/${a.id}/cache/export`);
    const norm = (t) => t.split('\n').filter(Boolean).map((l) => { const o = JSON.parse(l); delete o.hits; return JSON.stringify(o); });
    assert.deepEqual(norm(r2.text), norm(r.text));
    await clear(a);
  });

  test('a large export to a slow reader arrives whole, line for line', async () => {
    // ~12 MB of lines: more than the server's output high mark and the
    // socket buffers, read only after a pause, so the export waits for drains.
    const big = (i) => chatLine('gpt-4o', 900 + i, { content: `${i}:` + 'x'.repeat(120000) });
    const lines = Array.from({ length: 100 }, (_, i) => big(i));
    assert.equal((await importLines(a, lines)).imported, 100);
    const body = await new Promise((resolve, reject) => {
      const req = http.get(`${srv.adminUrl}/api/v1/proxies/${a.id}/cache/export`, { headers: { authorization: `Bearer ${srv.token}` }, agent: false }, (res) => {
        assert.equal(res.statusCode, 200);
        res.pause();
        const chunks = [];
        setTimeout(() => {
          res.on('data', (c) => chunks.push(c));
          res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
          res.resume();
        }, 500);
        res.on('error', reject);
      });
      req.on('error', reject);
    });
    const out = body.split('\n').filter(Boolean).map((l) => JSON.parse(l));
    assert.equal(out.length, 100);
    const want = new Map(lines.map((l) => [JSON.parse(l).key, JSON.parse(l).body.choices[0].message.content]));
    for (const o of out) assert.equal(o.body.choices[0].message.content, want.get(o.key), o.key);
    await clear(a);
  });

  test('an empty cache exports an empty body', async () => {
    const r = await api('GET', `/api/v1/proxies/${a.id}/cache/export`);
    assert.equal(r.status, 200);
    assert.equal(r.body.length, 0);
  });

  test('malformed lines are reported with their line numbers; the good ones are imported', async () => {
    const good = chatLine('gpt-4o', 61);
    const noKey = JSON.parse(chatLine('gpt-4o', 62));
    delete noKey.key;
    const badKey = { ...JSON.parse(chatLine('gpt-4o', 63)), key: 'gpt-4o:nothex' };
    const lines = [good, '{"key": "truncated', JSON.stringify(noKey), '', JSON.stringify(badKey), 'not json at all', chatLine('gpt-4o', 64)];
    const r = await importLines(a, lines);
    assert.equal(r.imported, 2);
    assert.equal(r.skipped, 4);
    assert.deepEqual(r.errors.map((e) => e.line), [2, 3, 5, 6]);
    for (const e of r.errors) assert.ok(typeof e.message === 'string' && e.message.length > 0, JSON.stringify(e));
    assert.deepEqual(await allKeys(a), [`gpt-4o:${hexKey(61)}`, `gpt-4o:${hexKey(64)}`].sort());
    await clear(a);
  });

  test('at most 20 errors are listed, all are counted', async () => {
    const lines = Array.from({ length: 30 }, () => '[1,2,3]');
    const r = await importLines(a, lines);
    assert.equal(r.imported, 0);
    assert.equal(r.skipped, 30);
    assert.equal(r.errors.length, 20);
    assert.deepEqual(r.errors.map((e) => e.line), Array.from({ length: 20 }, (_, i) => i + 1));
  });

  test('an unknown proxy is a 404 on every cache route', async () => {
    const routes = [
      ['GET', '/api/v1/proxies/9999/cache'],
      ['GET', '/api/v1/proxies/9999/cache/entries'],
      ['DELETE', '/api/v1/proxies/9999/cache'],
      ['DELETE', `/api/v1/proxies/9999/cache/entries/${hexKey(1)}`],
      ['GET', '/api/v1/proxies/9999/cache/export'],
      ['POST', '/api/v1/proxies/9999/cache/import'],
      ['GET', '/api/v1/proxies/abc/cache'],
    ];
    for (const [m, p] of routes) {
      const r = await api(m, p, m === 'POST' ? cassette([chatLine('gpt-4o', 1)]) : undefined);
      assert.equal(r.status, 404, `${m} ${p}: ${r.text}`);
      assert.equal(r.json.error.code, 'not_found');
    }
  });

  test('bad limit, cursor, pattern and key are 400 with the field named', async () => {
    const bad = [
      ['GET', '/cache/entries?limit=0', 'limit'],
      ['GET', '/cache/entries?limit=1001', 'limit'],
      ['GET', '/cache/entries?limit=ten', 'limit'],
      ['GET', '/cache/entries?limit=', 'limit'],
      ['GET', '/cache/entries?cursor=xyz', 'cursor'],
      ['GET', '/cache/entries?pattern=%ZZ', 'pattern'],
      ['GET', '/cache/entries?pattern=', 'pattern'],
      ['GET', '/cache/entries?pattern=a%00b', 'pattern'],
      ['GET', `/cache/entries?pattern=${'x'.repeat(400)}`, 'pattern'],
      ['DELETE', '/cache?pattern=%4', 'pattern'],
      ['DELETE', '/cache/entries/not-a-key', 'key'],
      ['DELETE', `/cache/entries/${hexKey(1).slice(0, 63)}`, 'key'],
    ];
    for (const [m, p, field] of bad) {
      const r = await api(m, `/api/v1/proxies/${a.id}${p}`);
      assert.equal(r.status, 400, `${m} ${p}: ${r.text}`);
      assert.equal(r.json.error.field, field, `${m} ${p}: ${r.text}`);
    }
    assert.equal((await entries(a, '?limit=1000')).next_cursor, null);
  });

  test('the cache routes need the admin token', async () => {
    for (const [m, p] of [
      ['GET', `/api/v1/proxies/${a.id}/cache`],
      ['GET', `/api/v1/proxies/${a.id}/cache/export`],
      ['DELETE', '/api/v1/cache'],
    ]) {
      const r = await api(m, p, undefined, { auth: null });
      assert.equal(r.status, 401, `${m} ${p}`);
    }
  });
});

describe('cache API and the cache stage (OpenAI SDK)', () => {
  let srv;
  let p;
  let ai;
  const ask = (content) =>
    ai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }], temperature: 0 }).withResponse();

  before(async () => {
    srv = await startServer();
    p = await srv.createProxy({ name: 'sdk-cache', provider: 'openai', upstream_url: 'emulator' });
    ai = new OpenAI({ baseURL: `${p.url}/v1`, apiKey: 'sk-cache-api', maxRetries: 0 });
  });
  after(async () => {
    await srv?.stop();
  });

  test('a miss then a hit, shown in the stats and the list; deleting its key makes the next one a miss', async () => {
    const m = await ask('cache me');
    assert.equal(m.response.headers.get('x-cache'), 'MISS');
    const h = await ask('cache me');
    assert.equal(h.response.headers.get('x-cache'), 'HIT');
    assert.deepEqual(h.data, m.data, 'the hit is the stored answer');
    const key = h.response.headers.get('x-cache-key');
    assert.match(key, /^gpt-4o-mini:[0-9a-f]{64}$/);

    const s = (await srv.api('GET', `/api/v1/proxies/${p.id}/cache`)).json;
    assert.equal(s.entries, 1);
    assert.equal(s.hits, 1);
    assert.equal(s.misses, 1);
    assert.equal(s.hit_rate, 0.5);
    const list = (await srv.api('GET', `/api/v1/proxies/${p.id}/cache/entries?pattern=gpt-4o-mini:*`)).json.entries;
    assert.equal(list.length, 1);
    assert.equal(list[0].key, key);
    assert.equal(list[0].hits, 1);
    assert.equal(list[0].stream, false);
    assert.equal(list[0].path, '/v1/chat/completions');

    const d = await srv.api('DELETE', `/api/v1/proxies/${p.id}/cache/entries/${encodeURIComponent(key)}`);
    assert.deepEqual(d.json, { deleted: 1 });
    const again = await ask('cache me');
    assert.equal(again.response.headers.get('x-cache'), 'MISS');
    assert.equal((await ask('cache me')).response.headers.get('x-cache'), 'HIT');
  });

  test('an exported answer, imported into a cleared cache, is served as a hit', async () => {
    const first = await ask('round trip');
    assert.notEqual(first.response.headers.get('x-cache'), 'HIT');
    const exp = await srv.api('GET', `/api/v1/proxies/${p.id}/cache/export`);
    assert.equal(exp.status, 200);
    assert.deepEqual((await srv.api('DELETE', '/api/v1/cache')).status, 200);
    assert.equal((await srv.api('GET', `/api/v1/proxies/${p.id}/cache`)).json.entries, 0);
    const imp = await srv.api('POST', `/api/v1/proxies/${p.id}/cache/import`, exp.text, { headers: { 'content-type': 'application/x-ndjson' } });
    assert.equal(imp.json.errors.length, 0, imp.text);
    assert.ok(imp.json.imported >= 1, imp.text);
    const hit = await ask('round trip');
    assert.equal(hit.response.headers.get('x-cache'), 'HIT');
    assert.deepEqual(hit.data, first.data);
  });
});

describe('cache API and the store', () => {
  test('imports are stored; key, pattern and whole-proxy deletes reach the store across a restart', async () => {
    const dataDir = tempDir();
    let srv = await startServer({ dataDir });
    const p = await srv.createProxy({ name: 'kept', provider: 'openai', upstream_url: 'emulator' });
    const q = await srv.createProxy({ name: 'cleared', provider: 'openai', upstream_url: 'emulator' });
    const imp = (proxy, lines) => srv.api('POST', `/api/v1/proxies/${proxy.id}/cache/import`, cassette(lines));
    assert.equal((await imp(p, [chatLine('gpt-4o', 1001), chatLine('gpt-4o', 1002), chatLine('gpt-4o-mini', 1003), chatLine('gpt-4o-mini', 1004)])).json.imported, 4);
    assert.equal((await imp(q, [chatLine('gpt-4o', 1005)])).json.imported, 1);
    assert.equal((await srv.api('DELETE', `/api/v1/proxies/${p.id}/cache/entries/${hexKey(1001)}`)).json.deleted, 1);
    assert.equal((await srv.api('DELETE', `/api/v1/proxies/${p.id}/cache?pattern=gpt-4o-mini:*${hexKey(1003).slice(0, 8)}*`)).json.deleted, 1);
    assert.equal((await srv.api('DELETE', `/api/v1/proxies/${q.id}/cache`)).json.deleted, 1);
    await srv.stop();

    srv = await startServer({ dataDir });
    const keysOf = async (proxy) =>
      (await srv.api('GET', `/api/v1/proxies/${proxy.id}/cache/entries`)).json.entries.map((e) => e.key).sort();
    const want = [`gpt-4o:${hexKey(1002)}`, `gpt-4o-mini:${hexKey(1004)}`].sort();
    // Stored entries load in the background after the start.
    let got;
    for (let i = 0; i < 100 && JSON.stringify((got = await keysOf(p))) !== JSON.stringify(want); i++) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(got, want);
    assert.deepEqual(await keysOf(q), []);
    await srv.stop();
  });
});

describe('rubberduck cassette', () => {
  let srv;
  let p;
  let dir;
  const env = () => ({ RUBBERDUCK_ADMIN_URL: srv.adminUrl, RUBBERDUCK_ADMIN_TOKEN: srv.token });
  const noSanitizer = (r) => assert.deepEqual(sanitizerReports(r.stderr), [], r.stderr);

  before(async () => {
    srv = await startServer();
    p = await srv.createProxy({ name: 'tapes', provider: 'openai', upstream_url: 'emulator' });
    dir = tempDir();
  });
  after(async () => {
    await srv?.stop();
  });

  test('import a file, export it back, clear, import the export: same entries', async () => {
    const file = path.join(dir, 'in.jsonl');
    fs.writeFileSync(file, cassette([chatLine('gpt-4o', 71), chatLine('gpt-4o-mini', 72), streamLine('gpt-4o', 73)]));
    let r = await runCli(['cassette', 'import', '--proxy', 'tapes', file], { env: env() });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `imported 3 entries into proxy tapes from ${file} (0 skipped)\n`);
    noSanitizer(r);

    const out = path.join(dir, 'out.jsonl');
    r = await runCli(['cassette', 'export', '--proxy', 'tapes', out], { env: env() });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^exported 3 entries of proxy tapes to ${out} \\(\\d+ bytes\\)\\n$`));
    noSanitizer(r);
    const exported = fs.readFileSync(out, 'utf8');
    assert.deepEqual(exported.split('\n').filter(Boolean).map((l) => JSON.parse(l).key).sort(),
      [`gpt-4o:${hexKey(71)}`, `gpt-4o-mini:${hexKey(72)}`, `gpt-4o:${hexKey(73)}`].sort());
    assert.deepEqual(fs.readdirSync(dir).sort(), ['in.jsonl', 'out.jsonl'], 'no temporary file left');

    assert.equal((await srv.api('DELETE', `/api/v1/proxies/${p.id}/cache`)).json.deleted, 3);
    // The token from the data directory, the address from RUBBERDUCK_LISTEN.
    fs.writeFileSync(path.join(dir, 'admin.token'), `${srv.token}\n`);
    r = await runCli(['cassette', 'import', '--proxy', 'tapes', '--data-dir', dir, out], {
      env: { RUBBERDUCK_LISTEN: srv.adminUrl.replace('http://', '') },
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^imported 3 entries into proxy tapes/);
    const keys = (await srv.api('GET', `/api/v1/proxies/${p.id}/cache/entries`)).json.entries.map((e) => e.key).sort();
    assert.deepEqual(keys, [`gpt-4o:${hexKey(71)}`, `gpt-4o-mini:${hexKey(72)}`, `gpt-4o:${hexKey(73)}`].sort());
  });

  test('malformed lines are printed as FILE:LINE and exit 1', async () => {
    const file = path.join(dir, 'bad.jsonl');
    fs.writeFileSync(file, cassette([chatLine('gpt-4o', 81), 'garbage']));
    const r = await runCli(['cassette', 'import', '--proxy', 'tapes', file], { env: env() });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`^${file}:2: `, 'm'));
    assert.match(r.stdout, /imported 1 entries .*\(1 skipped, 1 lines in error\)/);
    noSanitizer(r);
  });

  test('a file over the API body limit (16 MiB) goes in several requests; line numbers stay the file\'s', async () => {
    const file = path.join(dir, 'big.jsonl');
    const lines = Array.from({ length: 150 }, (_, i) => chatLine('gpt-4o', 2000 + i, { content: 'y'.repeat(120000) }));
    lines.push('garbage at the end');
    fs.writeFileSync(file, cassette(lines));
    assert.ok(fs.statSync(file).size > 16 * 1024 * 1024);
    const r = await runCli(['cassette', 'import', '--proxy', 'tapes', file], { env: env(), timeoutMs: 60000 });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stdout, /^imported 150 entries into proxy tapes .*\(1 skipped, 1 lines in error\)/);
    assert.match(r.stderr, new RegExp(`^${file}:151: `, 'm'));
    noSanitizer(r);
    assert.equal((await srv.api('GET', `/api/v1/proxies/${p.id}/cache/entries?pattern=gpt-4o:*&limit=1000`)).json.entries.filter((e) => e.size > 120000).length, 150);
  });

  test('an unknown proxy, a refused token, no server and bad usage fail clearly', async () => {
    const file = path.join(dir, 'x.jsonl');
    let r = await runCli(['cassette', 'export', '--proxy', 'nope', file], { env: env() });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no proxy named 'nope'/);
    assert.ok(!fs.existsSync(file));
    r = await runCli(['cassette', 'export', '--proxy', 'tapes', file], { env: { ...env(), RUBBERDUCK_ADMIN_TOKEN: 'wrong' } });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /admin token was refused/);
    r = await runCli(['cassette', 'import', '--proxy', 'tapes', '--admin', 'http://127.0.0.1:1', file], { env: env() });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot (open|reach)/);
    r = await runCli(['cassette', 'export', '--proxy', 'tapes', '--admin', 'http://127.0.0.1:1', file], { env: env() });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot reach the admin API at http:\/\/127\.0\.0\.1:1/);
    assert.ok(!fs.existsSync(file), 'a failed export leaves no file');
    r = await runCli(['cassette', 'export', file], { env: env() });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--proxy NAME is required/);
    r = await runCli(['cassette', 'frob'], { env: env() });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /usage/i);
    noSanitizer(r);
  });

  test('help cassette documents both commands and the options', async () => {
    const r = await runCli(['help', 'cassette']);
    assert.equal(r.code, 0, r.stderr);
    for (const s of ['cassette export', 'cassette import', '--proxy', '--admin', 'RUBBERDUCK_ADMIN_TOKEN']) assert.ok(r.stdout.includes(s), `help cassette lacks ${s}`);
  });
});
