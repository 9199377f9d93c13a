// The request-log query API, export and purge (issue 9, items 3 and 5):
// keyset pagination, filters, 400s for hostile parameters, /logs/{id},
// an export of 100,000 rows within a fixed memory bound, CSV that parses
// back, purge by range and proxy, and retention at start. Rows are put
// straight into the database file with the sqlite3 CLI while the server is
// stopped, so every check is against rows the test wrote.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startServer, tempDir, sanitizerReports } from './lib/server.mjs';

const HOUR = 3600 * 1000;
const DAY = 24 * HOUR;
const T0 = Date.now() - HOUR; // set A's newest second
const NA = 300; // set A: the rows the filters and pages are checked on
const NB = 100000; // set B (proxy 9): the export
const NC = 50; // set C (proxy 7): two days old, for the retention
const SPECIAL_PATH = '/v1/x,"y"\nz'; // row a0's path: a comma, quotes and a newline
const ASAN = `${process.env.ASAN_OPTIONS || 'detect_leaks=1:abort_on_error=0'}:quarantine_size_mb=4`;

const sqlite = (db, sql) => execFileSync('sqlite3', ['-bail', db], { input: sql, encoding: 'utf8', maxBuffer: 1 << 26 });

/* Set A in JavaScript, as the SQL below writes it (seq: insertion order).
 * As the writer does, later rows have later (or equal) timestamps: "newest
 * first" is the order the records were written in, newest written first. */
const statuses = [200, 404, 429, 500];
const setA = Array.from({ length: NA }, (_, i) => ({
  seq: i + 1,
  id: `req_a${i.toString(16).padStart(15, '0')}`,
  ts: T0 - Math.floor((NA - 1 - i) / 5), // runs of five equal timestamps
  proxy_id: 1 + (i % 3),
  status: statuses[i % 4],
  cache: ['bypass', 'miss', 'hit', null][i % 4 === 3 ? 3 : i % 3],
  model: i % 2 ? 'gpt-4o' : 'claude-3',
  failure_type: i % 6 === 0 ? 'timeout' : null,
}));
const cacheCode = { bypass: 1, miss: 2, hit: 3 };
const newestFirst = (a, b) => b.seq - a.seq;

function insertRows(db) {
  const values = setA
    .map(
      (r, i) =>
        `('${r.id}', ${r.ts}, ${r.proxy_id}, 'n1', '10.0.0.${i % 7}', 'POST', ${i === 0 ? "'/v1/x,\"y\"' || char(10) || 'z'" : "'/v1/chat/completions'"}, 'openai', '${r.model}', ${r.status}, ${r.status}, 12.5, ${i % 2 ? 10 : 'NULL'}, 3, 100, 200, ${cacheCode[r.cache] ?? 0}, '${r.failure_type ?? ''}', 0, 0, ${i % 2 ? 7 : 'NULL'}, ${i % 2 ? 5 : 'NULL'}, NULL, NULL, ${i % 2 ? 0.0025 : 'NULL'}, '', 'up-${i}', '')`,
    )
    .join(',\n');
  sqlite(
    db,
    `BEGIN;
INSERT INTO request_logs (request_id, timestamp, proxy_id, node_id, client_ip, method, path, provider, model, status_code,
  upstream_status, latency_ms, upstream_latency_ms, ttfb_ms, request_bytes, response_bytes, cache, failure_type,
  response_delay_ms, stream, input_tokens, output_tokens, cached_tokens, reasoning_tokens, cost_usd, prompt_hash,
  upstream_request_id, trace_id) VALUES ${values};
WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < ${NB - 1})
INSERT INTO request_logs (request_id, timestamp, proxy_id, client_ip, method, path, provider, model, status_code,
  latency_ms, request_bytes, response_bytes, cache, input_tokens, output_tokens, cost_usd, prompt_hash, trace_id)
SELECT printf('req_b%015x', i), ${T0 - DAY / 2} - (${NB - 1} - i) * 10, 9, '192.168.1.' || (i % 250), 'POST', '/v1/chat/completions',
  'openai', 'gpt-4o-mini', 200, 25.125, 512, 2048, 2, 20, 40, 0.000123,
  '8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4', '4bf92f3577b34da6a3ce929d0e0e4736' FROM c;
WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < ${NC - 1})
INSERT INTO request_logs (request_id, timestamp, proxy_id, status_code) SELECT printf('req_c%015x', i), ${Date.now() - 2 * DAY} - (${NC - 1} - i), 7, 200 FROM c;
COMMIT;`,
  );
}

function vm(pid) {
  const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)[1]);
  return { hwm: kb('VmHWM'), rss: kb('VmRSS') };
}

/* Streams GET path, calling onData per chunk; resolves {status, headers}. */
function stream(srv, p, onData, { abortAfter } = {}) {
  return new Promise((resolve, reject) => {
    let seen = 0;
    const req = http.get(`${srv.adminUrl}${p}`, { headers: { authorization: `Bearer ${srv.token}` }, agent: false }, (res) => {
      res.on('data', (c) => {
        seen += c.length;
        onData(c);
        if (abortAfter && seen >= abortAfter) {
          req.destroy();
          resolve({ status: res.statusCode, headers: res.headers, aborted: true });
        }
      });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers }));
      res.on('error', reject);
    });
    req.on('error', (e) => (abortAfter ? resolve({ aborted: true }) : reject(e)));
    req.setTimeout(120000, () => req.destroy(new Error(`GET ${p} timed out`)));
  });
}

/* RFC 4180, as a spreadsheet reads it: rows of fields. */
function parseCsv(text) {
  const rows = [];
  let row = [];
  let f = '';
  let i = 0;
  let quoted = false;
  while (i < text.length) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') (f += '"'), (i += 2);
      else if (c === '"') (quoted = false), i++;
      else (f += c), i++;
    } else if (c === '"') (quoted = true), i++;
    else if (c === ',') row.push(f), (f = ''), i++;
    else if (c === '\r' && text[i + 1] === '\n') row.push(f), rows.push(row), (row = []), (f = ''), (i += 2);
    else {
      assert.notEqual(c, '\n', `bare LF outside quotes at ${i}`);
      (f += c), i++;
    }
  }
  assert.equal(f, '');
  assert.equal(row.length, 0, 'the file ends with CRLF');
  return rows;
}

describe('request log API', () => {
  let srv;
  let dataDir;
  before(async () => {
    dataDir = tempDir('rd-logs-');
    const first = await startServer({ dataDir }); // creates the schema
    await first.stop();
    insertRows(path.join(dataDir, 'rubberduck.db'));
    srv = await startServer({ dataDir, env: { ASAN_OPTIONS: ASAN } });
  });
  after(async () => {
    if (srv) await srv.stop();
  });

  const get = (q, opts) => srv.api('GET', `/api/v1/logs${q}`, undefined, opts);

  test('pages through one proxy newest first, never repeating or skipping, with ties on timestamps', async () => {
    const want = setA.filter((r) => r.proxy_id === 1).sort(newestFirst).map((r) => r.id);
    for (const limit of [1, 7, 100]) {
      const got = [];
      let cursor = null;
      for (let page = 0; page < 200; page++) {
        const r = await get(`?proxy_id=1&limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
        assert.equal(r.status, 200, r.text);
        assert.ok(r.json.logs.length <= limit);
        assert.equal('total' in r.json, false);
        got.push(...r.json.logs.map((l) => l.id));
        cursor = r.json.next_cursor;
        if (cursor === null) break;
      }
      assert.deepEqual(got, want, `limit ${limit}`);
    }
    const r = await get('?proxy_id=1&count=true&limit=3');
    assert.equal(r.json.total, want.length);
    assert.equal(r.json.logs.length, 3);
  });

  test('filters select what they say', async () => {
    const cases = [
      ['status=404', (r) => r.status === 404],
      ['status_class=5xx', (r) => r.status >= 500],
      ['status_class=4xx&proxy_id=2', (r) => r.status >= 400 && r.status < 500 && r.proxy_id === 2],
      ['cache=hit', (r) => r.cache === 'hit'],
      ['cache=bypass&status=200', (r) => r.cache === 'bypass' && r.status === 200],
      ['failure_type=timeout', (r) => r.failure_type === 'timeout'],
      ['model=claude-3&proxy_id=3', (r) => r.model === 'claude-3' && r.proxy_id === 3],
      [`since=${T0 - 9}&until=${new Date(T0 - 3).toISOString()}`, (r) => r.ts >= T0 - 9 && r.ts < T0 - 3],
      ['q=req_a00000000000001', (r) => r.id.includes('req_a00000000000001')],
    ];
    for (const [q, pred] of cases) {
      const want = setA.filter(pred).sort(newestFirst);
      assert.ok(want.length > 0 && want.length < NA, q);
      const r = await get(`?${q}&count=true&limit=1000`);
      assert.equal(r.status, 200, `${q}: ${r.text}`);
      assert.deepEqual(r.json.logs.map((l) => l.id), want.map((w) => w.id), q);
      assert.equal(r.json.total, want.length, q);
    }
    // failure_type=none: the records without one (sets A's others, B, C)
    const none = await get('?failure_type=none&count=true&limit=1');
    assert.equal(none.json.total, NA - setA.filter((r) => r.failure_type).length + NB + NC);
    // the records as JSON: every field, nulls for the unknown
    const one = (await get(`?q=${setA[1].id}`)).json.logs[0];
    assert.equal(one.timestamp, new Date(setA[1].ts).toISOString());
    assert.deepEqual(one.tokens, { input: 7, output: 5, cached: null, reasoning: null });
    assert.equal(one.cost_usd, 0.0025);
    assert.equal(one.upstream_request_id, 'up-1');
    const zero = (await get(`?q=${setA[0].id}`)).json.logs[0];
    assert.equal(zero.path, SPECIAL_PATH);
    assert.equal(zero.cost_usd, null);
    assert.equal(zero.upstream_latency_ms, null);
  });

  test('hostile parameters: 400 with the field, or plain values that match nothing', async () => {
    for (const [q, field] of [
      ['?nope=1', 'query'],
      ['?limit=100000', 'limit'],
      ['?limit=0', 'limit'],
      ['?limit=-5', 'limit'],
      ['?status=abc', 'status'],
      ['?status_class=6xx', 'status_class'],
      ['?cache=warm', 'cache'],
      ['?cursor=garbage', 'cursor'],
      ['?cursor=1.0', 'cursor'],
      ['?since=yesterday', 'since'],
      ['?since=2026-12-03&until=2026-12-02', 'until'],
      ['?count=maybe', 'count'],
      ['?proxy_id=1%20OR%201=1', 'proxy_id'],
      [`?q=${'x'.repeat(600)}`, 'q'],
      ['?q=%ZZ', 'q'],
      ['?model=a%00b', 'model'],
    ]) {
      const r = await get(q);
      assert.equal(r.status, 400, `${q}: ${r.text}`);
      assert.equal(r.json.error.field, field, q);
    }
    for (const q of ["?q=' OR '1'='1", '?model=x%27%3B%20DROP%20TABLE%20request_logs%3B--', '?q=%25', '?q=_%25', '?q=req_a%25']) {
      const r = await get(q);
      assert.equal(r.status, 200, `${q}: ${r.text}`);
      assert.deepEqual(r.json.logs, [], q);
      assert.equal(r.json.next_cursor, null);
    }
    const all = await get('?count=true&limit=1');
    assert.equal(all.json.total, NA + NB + NC, 'nothing was dropped');
    assert.equal((await get('', { auth: null })).status, 401);
    assert.equal((await get('', { auth: 'wrong' })).status, 401);
    assert.equal((await srv.api('GET', '/api/v1/logs/export', undefined, { auth: null })).status, 401);
    assert.equal((await srv.api('DELETE', '/api/v1/logs?all=true', undefined, { auth: null })).status, 401);
  });

  test('GET /logs/{id}: the record, or 404', async () => {
    const r = await srv.api('GET', `/api/v1/logs/${setA[5].id}`);
    assert.equal(r.status, 200);
    assert.equal(r.json.id, setA[5].id);
    assert.equal(r.json.proxy_id, setA[5].proxy_id);
    assert.equal(r.json.status, setA[5].status);
    for (const id of ['req_ffffffffffffffff', '%27%20OR%201%3D1', 'x'.repeat(200)]) {
      const m = await srv.api('GET', `/api/v1/logs/${id}`);
      assert.equal(m.status, 404, id);
      assert.equal(m.json.error.code, 'not_found');
    }
  });

  test('CSV, JSON and NDJSON exports parse back', async () => {
    const want = setA.filter((r) => r.proxy_id === 1).sort(newestFirst);
    const csv = await srv.api('GET', '/api/v1/logs/export?format=csv&proxy_id=1');
    assert.equal(csv.status, 200);
    assert.match(csv.headers['content-type'], /^text\/csv/);
    assert.match(csv.headers['content-disposition'], /^attachment; filename="rubberduck-logs-\d{8}T\d{6}Z\.csv"$/);
    const rows = parseCsv(csv.body.toString('utf8'));
    assert.equal(rows.length, want.length + 1);
    const head = rows[0];
    const col = (name) => head.indexOf(name);
    assert.ok(col('id') === 0 && col('path') > 0 && col('cost_usd') > 0);
    assert.deepEqual(rows.slice(1).map((r) => r[0]), want.map((w) => w.id));
    const zero = rows.find((r) => r[0] === setA[0].id);
    assert.equal(zero[col('path')], SPECIAL_PATH);
    assert.equal(zero[col('cost_usd')], '');
    assert.ok(rows.every((r) => r.length === head.length));

    const json = await srv.api('GET', '/api/v1/logs/export?format=json&proxy_id=1&status=200');
    assert.match(json.headers['content-type'], /^application\/json/);
    assert.match(json.headers['content-disposition'], /\.json"$/);
    const arr = JSON.parse(json.body.toString('utf8'));
    assert.deepEqual(arr.map((r) => r.id), want.filter((w) => w.status === 200).map((w) => w.id));
    const empty = await srv.api('GET', '/api/v1/logs/export?format=json&model=none-such');
    assert.deepEqual(JSON.parse(empty.body.toString('utf8')), []);

    const nd = await srv.api('GET', '/api/v1/logs/export?format=ndjson&cache=hit');
    assert.match(nd.headers['content-type'], /^application\/x-ndjson/);
    const lines = nd.body.toString('utf8').split('\n');
    assert.equal(lines.pop(), '');
    assert.deepEqual(lines.map((l) => JSON.parse(l).id), setA.filter((r) => r.cache === 'hit').sort(newestFirst).map((r) => r.id));

    for (const q of ['format=xml', 'limit=10', 'count=true', 'format=csv&bogus=1']) {
      const r = await srv.api('GET', `/api/v1/logs/export?${q}`);
      assert.equal(r.status, 400, q);
    }
  });

  test('an export of 100,000 rows streams within a fixed memory bound', async () => {
    const before = vm(srv.pid);
    let bytes = 0;
    let lines = 0;
    let tail = '';
    const r = await stream(srv, '/api/v1/logs/export?format=ndjson&proxy_id=9', (c) => {
      bytes += c.length;
      const s = tail + c.toString('latin1');
      const parts = s.split('\n');
      tail = parts.pop();
      lines += parts.length;
      if (lines === parts.length && parts.length) assert.equal(JSON.parse(parts[0]).id, `req_b${(NB - 1).toString(16).padStart(15, '0')}`);
    });
    assert.equal(r.status, 200);
    assert.equal(tail, '');
    assert.equal(lines, NB);
    const afterExport = vm(srv.pid);
    const grewMb = (afterExport.hwm - before.hwm) / 1024;
    // The file is tens of MB; the server holds one page of 1000 rows and
    // the output queue: a bound well under the file's size.
    assert.ok(bytes > 40 * 1024 * 1024, `export was ${bytes} bytes`);
    console.log(`export: ${bytes} bytes, peak RSS +${grewMb.toFixed(1)} MB`);
    assert.ok(grewMb < 16, `peak RSS grew by ${grewMb.toFixed(1)} MB for a ${(bytes / 1048576).toFixed(0)} MB export`);

    // CSV of the same rows: every line there, header first
    let csvLines = 0;
    await stream(srv, '/api/v1/logs/export?format=csv&proxy_id=9', (c) => {
      for (let i = c.indexOf(10); i !== -1; i = c.indexOf(10, i + 1)) csvLines++;
    });
    assert.equal(csvLines, NB + 1);
    assert.ok((vm(srv.pid).hwm - before.hwm) / 1024 < 16);

    // a client that leaves mid-export: the server goes on answering
    const cut = await stream(srv, '/api/v1/logs/export?format=json&proxy_id=9', () => {}, { abortAfter: 1 << 20 });
    assert.ok(cut.aborted);
    const ok = await get('?limit=1');
    assert.equal(ok.status, 200);
  });

  test('purge by range and proxy returns the count and leaves the rest', async () => {
    for (const q of ['', '?bogus=1', '?before=', '?before=yesterday', '?all=yes', '?all=true&proxy_id=1', '?before=1000&after=2000', '?proxy_id=0', '?before=0', '?before=1&before=2']) {
      const r = await srv.api('DELETE', `/api/v1/logs${q}`);
      assert.equal(r.status, 400, `${q}: ${r.text}`);
    }
    const inRange = (r) => r.ts >= T0 - 20 && r.ts < T0 - 10;
    const gone = setA.filter((r) => inRange(r) && r.proxy_id === 2);
    const d = await srv.api('DELETE', `/api/v1/logs?after=${new Date(T0 - 20).toISOString()}&before=${T0 - 10}&proxy_id=2`);
    assert.equal(d.status, 200, d.text);
    assert.deepEqual(d.json, { deleted: gone.length });
    const left = await get(`?since=${T0 - 20}&until=${T0 - 10}&count=true&limit=1000`);
    assert.deepEqual(left.json.logs.map((l) => l.id), setA.filter((r) => inRange(r) && r.proxy_id !== 2).sort(newestFirst).map((r) => r.id));
    const all = await get('?count=true&limit=1');
    assert.equal(all.json.total, NA + NB + NC - gone.length);
    // by proxy alone, and then a range of set B (more than one purge chunk)
    const p3 = await srv.api('DELETE', '/api/v1/logs?proxy_id=3');
    assert.deepEqual(p3.json, { deleted: setA.filter((r) => r.proxy_id === 3).length });
    const b = await srv.api('DELETE', `/api/v1/logs?before=${T0 - DAY / 2 - 10 * 30000 + 1}&after=${T0 - DAY}`);
    assert.deepEqual(b.json, { deleted: NB - 30000 });
    assert.equal((await get('?proxy_id=9&count=true&limit=1')).json.total, 30000);
  });

  test('retention purges what is older at start', async () => {
    assert.equal((await get('?proxy_id=7&count=true&limit=1')).json.total, NC, 'kept with the default 30 days');
    await srv.stop();
    srv = await startServer({ dataDir, args: ['--log-retention-days', '1'] });
    assert.equal((await get('?proxy_id=7&count=true&limit=1')).json.total, 0);
    assert.equal((await get('?proxy_id=9&count=true&limit=1')).json.total, 30000);
    assert.equal((await get('?proxy_id=1&count=true&limit=1')).json.total, setA.filter((r) => r.proxy_id === 1).length);
    assert.match(srv.stderrText(), /request log retention: purged 50 record\(s\) older than 1 day/);
    assert.deepEqual(sanitizerReports(srv.stderrText()), []);
  });
});
