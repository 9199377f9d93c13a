// The response cache's streams and its life beyond one request (issue 8):
// stream hits replay the bytes of the miss (raw and through the SDKs), at
// once or with the original pacing; the response-side stages (stream faults,
// stream timing) act on replays; two workers share the cache; the cache
// survives a restart; record then replay offline, and a cassette exported
// from one proxy serves hits on another.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import OpenAI, { NotFoundError } from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { freePort, startServer, tempDir } from './lib/server.mjs';
import { startUpstream } from './lib/upstream.mjs';
import { RawConn, httpRequest } from './lib/http.mjs';
import { KEY_RE, llmUpstream, postJson, readStream, sleep, sseEvents, uniqueTag, waitStats, xcache } from './lib/cachekit.mjs';

const MODEL = 'gpt-4o';
const CHAT = '/v1/chat/completions';
const chat = (content, extra = {}) => ({ model: MODEL, messages: [{ role: 'user', content }], ...extra });
const stream = (content, extra = {}) => chat(content, { stream: true, ...extra });
const AUTH = { authorization: 'Bearer sk-stream-test' };

let srv;
let up;
let h;
const proxies = new Map();

before(async () => {
  srv = await startServer({ workers: 2 });
  up = await startUpstream();
  h = llmUpstream();
  up.handle((...a) => h(...a));
});
after(async () => {
  await up?.close();
  await srv?.stop();
});

async function proxy(name, config, provider = 'openai', server = srv, upstreamUrl = up.url) {
  const k = `${server.adminPort}/${name}`;
  if (proxies.has(k)) return proxies.get(k);
  const port = await freePort();
  const body = { name, provider, upstream_url: upstreamUrl, port };
  if (config) body.config = config;
  const p = await server.createProxy(body);
  assert.equal(p.status, 'running');
  const v = { id: p.id, port, base: `http://127.0.0.1:${port}` };
  proxies.set(k, v);
  return v;
}
function upstream(opts) {
  h = llmUpstream(opts);
  return h;
}
const contentOf = (r) => r.json?.choices?.[0]?.message?.content;
const dataEvents = (text) => sseEvents(text).filter((e) => e.startsWith('data: ') && !e.startsWith('data: [DONE]'));

async function collect(s) {
  const out = [];
  for await (const x of s) out.push(x);
  return out;
}

describe('stream hits', () => {
  test('OpenAI: a hit replays the bytes of the miss; the SDK parses the same chunks', async () => {
    const { base } = await proxy('default');
    const u = upstream({ intervalMs: 10 });
    const tag = uniqueTag('replay');
    const miss = await postJson(base + CHAT, stream(tag, { stream_options: { include_usage: true } }), { headers: AUTH });
    assert.equal(xcache(miss.headers), 'MISS');
    assert.ok(miss.text.endsWith('data: [DONE]\n\n'));
    const hit = await postJson(base + CHAT, stream(tag, { stream_options: { include_usage: true } }), { headers: AUTH });
    assert.equal(hit.status, 200);
    assert.equal(xcache(hit.headers), 'HIT');
    assert.match(hit.headers['x-cache-key'], KEY_RE);
    assert.match(hit.headers['content-type'], /^text\/event-stream/);
    assert.equal(hit.headers['x-request-id'], 'req_up1');
    assert.ok(hit.body.equals(miss.body), 'the same bytes in the same events and order');

    const ai = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'sk-stream-test', maxRetries: 0, timeout: 15000 });
    const { data, response } = await ai.chat.completions.create(stream(tag, { stream_options: { include_usage: true } })).withResponse();
    assert.equal(xcache(response.headers), 'HIT');
    const chunks = await collect(data);
    assert.deepEqual(chunks, dataEvents(miss.text).map((e) => JSON.parse(e.slice(6))));
    assert.equal(chunks.map((c) => c.choices[0]?.delta?.content ?? '').join(''), `answer 1 to ${tag}`);
    assert.deepEqual(chunks.at(-1).usage, { prompt_tokens: 5, completion_tokens: 4, total_tokens: 9 });
    // a miss and a hit through the SDK alone
    const tag2 = uniqueTag('sdk-stream');
    const m = await ai.chat.completions.create(stream(tag2)).withResponse();
    const mChunks = await collect(m.data);
    const hh = await ai.chat.completions.create(stream(tag2)).withResponse();
    assert.equal(xcache(m.response.headers), 'MISS');
    assert.equal(xcache(hh.response.headers), 'HIT');
    assert.deepEqual(await collect(hh.data), mChunks);
    assert.equal(u.callsFor(tag) + u.callsFor(tag2), 2);
  });

  test('Anthropic: the SDK stream of a hit is the stream of the miss, event for event', async () => {
    const { base } = await proxy('anthropic', null, 'anthropic');
    const u = upstream({ intervalMs: 10 });
    const ai = new Anthropic({ baseURL: base, apiKey: 'sk-ant-stream', maxRetries: 0, timeout: 15000 });
    const tag = uniqueTag('anth-stream');
    const req = { model: 'claude-haiku-4-5', max_tokens: 60, messages: [{ role: 'user', content: tag }], stream: true };
    const a = await ai.messages.create(req).withResponse();
    const ea = await collect(a.data);
    const b = await ai.messages.create(req).withResponse();
    const eb = await collect(b.data);
    assert.equal(xcache(a.response.headers), 'MISS');
    assert.equal(xcache(b.response.headers), 'HIT');
    assert.deepEqual(eb, ea);
    assert.equal(ea.at(-1).type, 'message_stop');
    // the raw bytes as well (same credential header as the SDK's)
    const hdr = { 'x-api-key': 'sk-ant-stream', 'anthropic-version': '2023-06-01' };
    const r1 = await postJson(`${base}/v1/messages`, req, { headers: hdr });
    const r2 = await postJson(`${base}/v1/messages`, req, { headers: hdr });
    assert.ok(r2.body.equals(r1.body));
    assert.equal(xcache(r2.headers), 'HIT');
    assert.ok(u.callsFor(tag) <= 2, `upstream calls ${u.callsFor(tag)}`);
  });

  test('replay_timing "original" replays with the pacing of the miss; "instant" (the default) at once', async () => {
    const orig = await proxy('timing-original', { cache: { replay_timing: 'original' } });
    const inst = await proxy('default');
    upstream({ intervalMs: 150 });
    const span = (r) => r.events.at(-1).at - r.events[0].at;
    const gaps = (r) => r.events.slice(1).map((e, i) => e.at - r.events[i].at);
    const tag = uniqueTag('orig');
    const miss = await readStream(orig.base + CHAT, stream(tag));
    assert.equal(miss.headers.get('x-cache'), 'MISS');
    assert.ok(miss.events.length >= 6, `${miss.events.length} events`);
    const hit = await readStream(orig.base + CHAT, stream(tag));
    assert.equal(hit.headers.get('x-cache'), 'HIT');
    assert.ok(hit.raw.equals(miss.raw));
    assert.ok(span(hit) >= span(miss) * 0.8, `original timing: hit span ${span(hit).toFixed(0)} ms, miss ${span(miss).toFixed(0)} ms`);
    assert.ok(span(hit) <= span(miss) + 600, `hit span ${span(hit).toFixed(0)} ms`);
    const g = gaps(hit).sort((x, y) => x - y);
    assert.ok(g[Math.floor(g.length / 2)] >= 100, `the events are spaced like the original's (gaps ${g.map((x) => x.toFixed(0))})`);

    const itag = uniqueTag('inst');
    const imiss = await readStream(inst.base + CHAT, stream(itag));
    const ihit = await readStream(inst.base + CHAT, stream(itag));
    assert.equal(ihit.headers.get('x-cache'), 'HIT');
    assert.ok(ihit.raw.equals(imiss.raw));
    assert.ok(span(imiss) >= 600);
    assert.ok(ihit.ms < 400, `an instant replay took ${ihit.ms.toFixed(0)} ms`);
  });

  test('stream_timing paces a replay like any relayed stream', async () => {
    const { base } = await proxy('timed', { stream_timing: { ttft_ms: 300 } });
    upstream();
    const tag = uniqueTag('ttft');
    await readStream(base + CHAT, stream(tag));
    const hit = await readStream(base + CHAT, stream(tag));
    assert.equal(hit.headers.get('x-cache'), 'HIT');
    assert.ok(hit.events[0].at >= 280, `the first replayed event left after ${hit.events[0].at.toFixed(0)} ms`);
  });
});

describe('large entries', () => {
  test('a 3 MB answer and a 2,000-event stream are replayed byte for byte, also to a client that reads slowly', async () => {
    const { base } = await proxy('default');
    const tag = uniqueTag('large');
    const u = upstream({ bodyPad: (n, body) => (body.stream ? 0 : 3 * 1024 * 1024) });
    const big = await postJson(base + CHAT, chat(tag), { timeoutMs: 30000 });
    assert.ok(big.body.length > 3 * 1024 * 1024);
    const bigHit = await postJson(base + CHAT, chat(tag), { timeoutMs: 30000 });
    assert.equal(xcache(bigHit.headers), 'HIT');
    assert.ok(bigHit.body.equals(big.body));

    // a stream of many small events: "answer n to <2,000 words>"
    const words = Array.from({ length: 2000 }, (_, i) => `w${i}`).join(' ');
    const many = await postJson(base + CHAT, stream(words), { timeoutMs: 30000 });
    assert.ok(sseEvents(many.text).length > 2000);
    // read the hit slowly: pause the socket for a while after the head
    const slow = await new Promise((resolve, reject) => {
      const req = http.request(base + CHAT, { method: 'POST', agent: false, headers: { 'content-type': 'application/json' } }, (res) => {
        const parts = [];
        res.pause();
        setTimeout(() => res.resume(), 500);
        res.on('data', (d) => parts.push(d));
        res.on('end', () => resolve({ headers: res.headers, body: Buffer.concat(parts) }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(JSON.stringify(stream(words)));
    });
    assert.equal(xcache(slow.headers), 'HIT');
    assert.ok(slow.body.equals(many.body));
    assert.equal(u.callsFor(tag) + u.callsFor('w1999'), 2);
  });
});

describe('a leader that leaves', () => {
  test('the first client leaves mid-stream: its joiner is cut as documented, nothing is stored, the next request is whole', async () => {
    const { base } = await proxy('default');
    const u = upstream({ intervalMs: 60 });
    const tag = uniqueTag('leader-leaves');
    const ac = new AbortController();
    const leader = fetch(base + CHAT, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(stream(tag)), signal: ac.signal });
    await up.waitRequest((r) => r.body?.includes(tag));
    const res = await leader;
    const reader = res.body.getReader();
    await reader.read(); // the first bytes
    // the joiner's head is in (it joined) before the leader leaves
    const joined = await fetch(base + CHAT, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(stream(tag)) });
    assert.equal(joined.headers.get('x-cache'), 'HIT', 'it joined the leader');
    ac.abort();
    let text = '';
    let cut = null;
    try {
      text = await joined.text();
    } catch (e) {
      cut = e;
    }
    assert.ok(cut || !text.includes('[DONE]'), 'the joiner does not get a whole stream from a cancelled transfer');
    const next = await readStream(base + CHAT, stream(tag));
    assert.equal(next.error, null);
    assert.equal(next.headers.get('x-cache'), 'MISS');
    assert.ok(next.raw.includes('[DONE]'));
    assert.equal(u.callsFor(tag), 2);
  });
});

describe('replays on one keep-alive connection', () => {
  test('misses and hits, plain and streamed, one after another and pipelined, on one connection', async () => {
    const { port } = await proxy('default');
    upstream();
    const tag = uniqueTag('keepalive');
    const reqText = (body) => {
      const b = JSON.stringify(body);
      return `POST ${CHAT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(b)}\r\n\r\n${b}`;
    };
    const c = await RawConn.open(port);
    try {
      const seq = [];
      for (const body of [chat(tag), chat(tag), stream(tag), stream(tag)]) {
        await c.write(reqText(body));
        seq.push(await c.readResponse());
      }
      assert.deepEqual(seq.map((r) => r.headers['x-cache'][0]), ['MISS', 'HIT', 'MISS', 'HIT']);
      assert.ok(seq[1].body.equals(seq[0].body) && seq[3].body.equals(seq[2].body));
      await c.write(reqText(stream(tag)) + reqText(chat(tag)) + reqText(stream(tag)));
      const piped = [await c.readResponse(), await c.readResponse(), await c.readResponse()];
      assert.deepEqual(piped.map((r) => r.status), [200, 200, 200]);
      assert.ok(piped[0].body.equals(seq[2].body) && piped[1].body.equals(seq[0].body) && piped[2].body.equals(seq[2].body));
      assert.ok(!c.ended, 'the connection stays open');
    } finally {
      c.destroy();
    }
  });
});

describe('stream faults and replays', () => {
  const FAULTS = { failure: { request_overrides: true } };

  test('a cut on a hit cuts the replay; the entry stays whole', async () => {
    const { base } = await proxy('faults', FAULTS);
    const u = upstream();
    const tag = uniqueTag('cut-hit');
    const miss = await readStream(base + CHAT, stream(tag));
    assert.equal(miss.error, null);
    const cut = await readStream(base + CHAT, stream(tag), { headers: { 'X-Rubberduck-Fault': 'cut_after=2' } });
    assert.equal(cut.headers.get('x-cache'), 'HIT');
    assert.equal(cut.headers.get('x-rubberduck-failure'), 'stream_cut');
    assert.equal(cut.events.length, 2);
    assert.ok(cut.error, 'the replay was cut, not ended');
    assert.ok(!cut.raw.includes('[DONE]'));
    assert.ok(miss.raw.subarray(0, cut.raw.length).equals(cut.raw), 'the replay ran as the original up to the cut');
    const whole = await readStream(base + CHAT, stream(tag));
    assert.equal(whole.headers.get('x-cache'), 'HIT');
    assert.ok(whole.raw.equals(miss.raw));
    assert.equal(u.callsFor(tag), 1);
  });

  test('a mid-stream error and a duplicate on a hit', async () => {
    const { base } = await proxy('faults', FAULTS);
    upstream();
    const tag = uniqueTag('err-hit');
    const miss = await readStream(base + CHAT, stream(tag));
    const err = await readStream(base + CHAT, stream(tag), { headers: { 'X-Rubberduck-Fault': 'error_after=2' } });
    assert.equal(err.headers.get('x-cache'), 'HIT');
    assert.equal(err.headers.get('x-rubberduck-failure'), 'stream_error');
    assert.equal(err.events.length, 3);
    assert.ok(JSON.parse(err.events[2].text.slice(6)).error.message);
    const dup = await readStream(base + CHAT, stream(tag), { headers: { 'X-Rubberduck-Fault': 'duplicate=2' } });
    assert.equal(dup.headers.get('x-cache'), 'HIT');
    assert.equal(dup.events.length, miss.events.length + 1);
    assert.equal(dup.events[2].text, dup.events[3].text);
  });

  for (const [fault, label] of [
    ['cut_after=2', 'cut'],
    ['error_after=2', 'mid-stream error'],
  ]) {
    test(`a stream with a simulated ${label} on a miss is not stored`, async () => {
      const { base } = await proxy('faults', FAULTS);
      const u = upstream({ intervalMs: 5 });
      const tag = uniqueTag(`fault-miss-${label.replace(/\W/g, '')}`);
      const first = await readStream(base + CHAT, stream(tag), { headers: { 'X-Rubberduck-Fault': fault } });
      assert.equal(first.status, 200);
      assert.ok(first.headers.get('x-rubberduck-failure')?.startsWith('stream_'));
      const next = await readStream(base + CHAT, stream(tag));
      assert.equal(next.error, null);
      assert.ok(next.raw.includes('[DONE]'), 'the next client gets a whole stream');
      assert.equal(next.headers.get('x-cache'), 'MISS', 'the damaged stream was not stored');
      assert.equal(u.callsFor(tag), 2);
    });
  }

  // These faults leave the upstream's stream whole: what was stored while it
  // was relayed is the upstream's answer, not the damaged copy the client got.
  for (const [fault, label] of [
    ['malformed=2', 'malformed event'],
    ['duplicate=2', 'duplicate event'],
  ]) {
    test(`a stream with a simulated ${label} on a miss: the next client gets the upstream's stream intact`, async () => {
      const { base } = await proxy('faults', FAULTS);
      upstream({ intervalMs: 5 });
      const tag = uniqueTag(`fault-intact-${label.replace(/\W/g, '')}`);
      const first = await readStream(base + CHAT, stream(tag), { headers: { 'X-Rubberduck-Fault': fault } });
      assert.ok(first.headers.get('x-rubberduck-failure')?.startsWith('stream_'));
      const plain = await readStream(base + CHAT, stream(tag));
      const again = await readStream(base + CHAT, stream(tag));
      assert.equal(again.headers.get('x-cache'), 'HIT');
      assert.ok(again.raw.equals(plain.raw));
      const data = plain.events.map((e) => e.text).filter((t) => t.startsWith('data: {'));
      for (const t of data) JSON.parse(t.slice(6)); // no malformed event was stored
      assert.equal(new Set(data).size, data.length, 'no duplicated event was stored');
      assert.ok(plain.raw.includes('[DONE]'));
      assert.ok(first.events.length !== plain.events.length || !first.raw.equals(plain.raw), 'the first client got the damaged copy');
    });
  }
});

describe('two workers', () => {
  test('hits on fresh connections (spread over both workers); a burst of 8 streams is one upstream call', async () => {
    const { base } = await proxy('default');
    const u = upstream({ delayMs: 200, intervalMs: 20 });
    const tag = uniqueTag('workers');
    const first = await postJson(base + CHAT, chat(tag));
    const verdicts = [];
    for (let i = 0; i < 16; i++) {
      const r = await postJson(base + CHAT, chat(tag)); // a new connection each: the kernel spreads them over the workers
      verdicts.push(xcache(r.headers));
      assert.ok(r.body.equals(first.body));
    }
    assert.deepEqual(verdicts, Array(16).fill('HIT'));
    assert.equal(u.callsFor(tag), 1);
    const stag = uniqueTag('workers-burst');
    const rs = await Promise.all(Array.from({ length: 8 }, () => postJson(base + CHAT, stream(stag))));
    assert.equal(u.callsFor(stag), 1);
    for (const r of rs) assert.ok(r.body.equals(rs[0].body));
    const jtag = uniqueTag('workers-burst-json');
    const js = await Promise.all(Array.from({ length: 8 }, () => postJson(base + CHAT, chat(jtag))));
    assert.equal(u.callsFor(jtag), 1);
    for (const r of js) assert.ok(r.body.equals(js[0].body));
  });
});

describe('persistence', () => {
  test('a server restarted on the same database serves the hits stored before', async () => {
    const dataDir = tempDir('rd-cache-persist-');
    const u = upstream({ intervalMs: 5 });
    const s1 = await startServer({ dataDir });
    const p = await proxy('persist', null, 'openai', s1);
    const tag = uniqueTag('persist');
    const j = await postJson(p.base + CHAT, chat(tag), { headers: AUTH });
    const s = await postJson(p.base + CHAT, stream(tag), { headers: AUTH });
    assert.equal(xcache(j.headers), 'MISS');
    assert.equal(xcache((await postJson(p.base + CHAT, chat(tag), { headers: AUTH })).headers), 'HIT');
    const np = await proxy('no-persist', { cache: { persist: false } }, 'openai', s1);
    await postJson(np.base + CHAT, chat(tag), { headers: AUTH });
    assert.equal(xcache((await postJson(np.base + CHAT, chat(tag), { headers: AUTH })).headers), 'HIT');
    await s1.stop();

    let s2 = await startServer({ dataDir });
    try {
      await waitStats(s2, p.id, (st) => st.entries >= 2, 10000);
      const j2 = await postJson(p.base + CHAT, chat(tag), { headers: AUTH });
      const st2 = await postJson(p.base + CHAT, stream(tag), { headers: AUTH });
      assert.equal(xcache(j2.headers), 'HIT');
      assert.equal(xcache(st2.headers), 'HIT');
      assert.ok(j2.body.equals(j.body), 'the stored answer, byte for byte');
      assert.ok(st2.body.equals(s.body), 'the stored stream, byte for byte');
      assert.equal(u.callsFor(tag), 3);
      assert.equal((await s2.api('GET', `/api/v1/proxies/${np.id}/cache`)).json.entries, 0);
      assert.equal(xcache((await postJson(np.base + CHAT, chat(tag), { headers: AUTH })).headers), 'MISS', 'persist false: nothing kept');

      // written behind while running: a kill -9 some time after the miss keeps it
      const tag2 = uniqueTag('persist-kill');
      const k = await postJson(p.base + CHAT, chat(tag2), { headers: AUTH });
      assert.equal(xcache(k.headers), 'MISS');
      await sleep(2000);
      await s2.stop({ signal: 'SIGKILL', expectCode: null });
      s2 = await startServer({ dataDir });
      await waitStats(s2, p.id, (st) => st.entries >= 3, 10000);
      const k2 = await postJson(p.base + CHAT, chat(tag2), { headers: AUTH });
      assert.equal(xcache(k2.headers), 'HIT');
      assert.ok(k2.body.equals(k.body));

      // a deleted entry stays deleted after a restart
      await s2.api('DELETE', `/api/v1/proxies/${p.id}/cache/entries/${encodeURIComponent(k2.headers['x-cache-key'])}`);
      await s2.stop();
      s2 = await startServer({ dataDir });
      await waitStats(s2, p.id, (st) => st.entries >= 2, 10000);
      await sleep(300);
      assert.equal((await s2.api('GET', `/api/v1/proxies/${p.id}/cache`)).json.entries, 2);
      assert.equal(xcache((await postJson(p.base + CHAT, chat(tag2), { headers: AUTH })).headers), 'MISS');
    } finally {
      await s2.stop();
    }
  });
});

describe('record and replay', () => {
  test('record always goes upstream and stores; replay answers offline; a request never recorded gets a native 404 naming the key and the closest entry', async (t) => {
    const up2 = await startUpstream();
    const u2 = llmUpstream({ intervalMs: 5 });
    up2.handle(u2);
    t.after(() => up2.close().catch(() => {}));
    const oa = await proxy('rec-openai', { cache: { mode: 'record' } }, 'openai', srv, up2.url);
    const an = await proxy('rec-anthropic', { cache: { mode: 'record' } }, 'anthropic', srv, up2.url);
    const tag = uniqueTag('rec');
    const rec1 = await postJson(oa.base + CHAT, chat(tag), { headers: AUTH });
    const rec2 = await postJson(oa.base + CHAT, chat(tag), { headers: AUTH });
    const recS = await postJson(oa.base + CHAT, stream(tag), { headers: AUTH });
    for (const r of [rec1, rec2, recS]) assert.notEqual(xcache(r.headers), 'HIT', 'record never serves from the cache');
    assert.equal(contentOf(rec2), `answer 2 to ${tag}`);
    const areq = { model: 'claude-haiku-4-5', max_tokens: 50, messages: [{ role: 'user', content: tag }] };
    const ahdr = { 'x-api-key': 'sk-ant-rec', 'anthropic-version': '2023-06-01' };
    const arec = await postJson(`${an.base}/v1/messages`, areq, { headers: ahdr });
    assert.equal(u2.callsFor(tag), 4);

    await srv.putConfig(oa.id, { cache: { mode: 'replay' } });
    await srv.putConfig(an.id, { cache: { mode: 'replay' } });
    await up2.close(); // offline from here on

    const hit = await postJson(oa.base + CHAT, chat(tag), { headers: AUTH });
    assert.equal(hit.status, 200);
    assert.equal(xcache(hit.headers), 'HIT');
    assert.ok(hit.body.equals(rec2.body), 'the last recording is served');
    const hitS = await postJson(oa.base + CHAT, stream(tag), { headers: AUTH });
    assert.equal(xcache(hitS.headers), 'HIT');
    assert.ok(hitS.body.equals(recS.body));
    const ai = new OpenAI({ baseURL: `${oa.base}/v1`, apiKey: 'sk-stream-test', maxRetries: 0, timeout: 15000 });
    assert.equal((await ai.chat.completions.create(chat(tag))).choices[0].message.content, `answer 2 to ${tag}`);

    // never recorded: same path and model, another prompt
    const missing = await postJson(oa.base + CHAT, chat(`${tag} but different`), { headers: AUTH });
    assert.equal(missing.status, 404);
    const msg = missing.json?.error?.message ?? '';
    assert.equal(typeof missing.json.error.type, 'string', `OpenAI's error format: ${missing.text}`);
    const keys = msg.match(/gpt-4o:[0-9a-f]{64}/g) ?? [];
    assert.ok(keys.length >= 2, `the message names the missing key and the closest recorded one: ${msg}`);
    assert.ok(keys.includes(hit.headers['x-cache-key']) || keys.includes(hitS.headers['x-cache-key']), `closest recorded: ${msg}`);
    await assert.rejects(ai.chat.completions.create(chat(`${tag} and again`)), (e) => e instanceof NotFoundError);

    const ahit = await postJson(`${an.base}/v1/messages`, areq, { headers: ahdr });
    assert.equal(xcache(ahit.headers), 'HIT');
    assert.ok(ahit.body.equals(arec.body));
    const amiss = await postJson(`${an.base}/v1/messages`, { ...areq, max_tokens: 51 }, { headers: ahdr });
    assert.equal(amiss.status, 404);
    assert.equal(amiss.json.type, 'error', `Anthropic's error format: ${amiss.text}`);
    assert.equal(amiss.json.error.type, 'not_found_error');
    assert.match(amiss.json.error.message, /claude-haiku-4-5:[0-9a-f]{64}/);
    assert.equal(u2.calls, 4, 'replay never went upstream');
  });

  test('a cassette exported from one proxy serves hits on another; it holds no secret', async () => {
    const up3 = await startUpstream();
    const u3 = llmUpstream({ intervalMs: 5 });
    up3.handle(u3);
    let closed = false;
    try {
      const src = await proxy('cassette-src', { cache: { scope: 'proxy' } }, 'openai', srv, up3.url);
      const tag = uniqueTag('cassette');
      const secret = 'sk-cassette-secret-77e1';
      const j = await postJson(src.base + CHAT, chat(tag), { headers: { authorization: `Bearer ${secret}` } });
      const s = await postJson(src.base + CHAT, stream(tag), { headers: { authorization: `Bearer ${secret}` } });
      const exp = await httpRequest(`${srv.adminUrl}/api/v1/proxies/${src.id}/cache/export`, { headers: { authorization: `Bearer ${srv.token}` } });
      assert.equal(exp.status, 200);
      const text = exp.body.toString('utf8');
      const lines = text.split('\n').filter((l) => l.trim());
      assert.equal(lines.length, 2);
      for (const l of lines) JSON.parse(l);
      assert.ok(!text.includes(secret), 'no credential in the cassette');
      await up3.close();
      closed = true;

      const dst = await proxy('cassette-dst', { cache: { scope: 'proxy', mode: 'replay' } }, 'openai', srv, up3.url);
      const imp = await srv.api('POST', `/api/v1/proxies/${dst.id}/cache/import`, text, { headers: { 'content-type': 'application/x-ndjson' } });
      assert.equal(imp.status, 200, imp.text);
      assert.equal(imp.json.imported, 2);
      const j2 = await postJson(dst.base + CHAT, chat(tag), { headers: { authorization: 'Bearer sk-someone-else' } });
      const s2 = await postJson(dst.base + CHAT, stream(tag));
      assert.equal(xcache(j2.headers), 'HIT');
      assert.equal(xcache(s2.headers), 'HIT');
      assert.ok(j2.body.equals(j.body));
      assert.ok(s2.body.equals(s.body));
      assert.equal(u3.calls, 2);
    } finally {
      if (!closed) await up3.close();
    }
  });
});
