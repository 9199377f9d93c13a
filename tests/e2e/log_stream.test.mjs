// The live stream of the request log (issue 9, item 4): GET /api/v1/logs/stream
// pushes each written record as an SSE event (id = its seq) in order, with the
// query API's filters, resumes by Last-Event-ID from the writer's history,
// sends heartbeats, and ends promptly when the server is stopped.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import { freePort, startServer, TOKEN } from './lib/server.mjs';
import { waitFor } from './lib/http.mjs';

/** Opens a stream; collects parsed events ({id, event, data}) and comments. */
function openStream(srv, query = '', headers = {}) {
  const s = { events: [], comments: [], status: 0, text: '' };
  s.done = new Promise((resolve, reject) => {
    s.req = http.get(`${srv.adminUrl}/api/v1/logs/stream${query}`,
      { headers: { authorization: `Bearer ${TOKEN}`, ...headers } }, (res) => {
        s.status = res.statusCode;
        s.headers = res.headers;
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (d) => {
          s.text += d;
          buf += d;
          let i;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const ev = {};
            for (const line of block.split('\n')) {
              if (line.startsWith(':')) s.comments.push(line);
              else if (line.startsWith('id: ')) ev.id = Number(line.slice(4));
              else if (line.startsWith('event: ')) ev.event = line.slice(7);
              else if (line.startsWith('data: ')) ev.data = JSON.parse(line.slice(6));
            }
            if (ev.event) s.events.push(ev);
          }
        });
        res.on('end', resolve);
        res.on('error', resolve);
      });
    s.req.on('error', (e) => (e.code === 'ECONNRESET' ? resolve() : reject(e)));
  });
  s.close = () => s.req.destroy();
  return s;
}

describe('live log stream', () => {
  let srv;
  let ai;
  let proxyId;
  before(async () => {
    srv = await startServer({ workers: 2 });
    const port = await freePort();
    const p = await srv.createProxy({ name: 'stream-demo', provider: 'openai', upstream_url: 'emulator', port,
                                      config: { cache: { enabled: false } } });
    proxyId = p.id;
    ai = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'sk-stream-test', maxRetries: 0 });
  });
  after(async () => {
    await srv?.stop();
  });

  const call = (content) => ai.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content }] });

  test('records arrive in seq order with the query API fields; a filter applies; Last-Event-ID resumes exactly', async () => {
    const all = openStream(srv, '?heartbeat_ms=200');
    const only4xx = openStream(srv, `?proxy_id=${proxyId}&status_class=4xx`);
    await waitFor(() => all.status === 200 && only4xx.status === 200, 5000, 'streams open');
    assert.equal(all.headers['content-type'], 'text/event-stream');
    for (let i = 0; i < 6; i++) await call(`hello ${i}`);
    await waitFor(() => all.events.length >= 6, 10000, '6 events');
    const ids = all.events.map((e) => e.id);
    assert.deepEqual(ids, [...ids].sort((a, b) => a - b));
    assert.equal(new Set(ids).size, ids.length);
    for (const e of all.events) {
      assert.equal(e.event, 'log');
      assert.equal(e.data.proxy_id, proxyId);
      assert.equal(e.data.status, 200);
      assert.match(e.data.id, /^req_[0-9a-f]{16}$/);
      assert.match(e.data.timestamp, /Z$/);
    }
    await waitFor(() => all.comments.some((c) => c.startsWith(': heartbeat')), 5000, 'a heartbeat');
    assert.equal(only4xx.events.length, 0); // every call was a 200
    // resume from the third event: exactly the ones after it, in order
    const from = ids[2];
    const resumed = openStream(srv, '', { 'last-event-id': String(from) });
    await waitFor(() => resumed.events.length >= ids.length - 3, 5000, 'replayed events');
    assert.deepEqual(resumed.events.map((e) => e.id).slice(0, ids.length - 3), ids.slice(3));
    all.close();
    only4xx.close();
    resumed.close();
  });

  test('bad filters are 400 before any stream byte; no token is 401', async () => {
    const bad = openStream(srv, '?status_class=9xx');
    await bad.done;
    assert.equal(bad.status, 400);
    const r = await srv.api('GET', '/api/v1/logs/stream', undefined, { auth: null });
    assert.equal(r.status, 401);
  });

  test('SIGTERM with a stream open: the stream ends and the server exits well within the drain timeout', async () => {
    const s = openStream(srv);
    await waitFor(() => s.status === 200, 5000, 'stream open');
    const t0 = Date.now();
    await srv.stop({ timeoutMs: 10000 });
    await s.done;
    assert.ok(Date.now() - t0 < 5000, `stop took ${Date.now() - t0} ms`);
    srv = null;
  });
});
