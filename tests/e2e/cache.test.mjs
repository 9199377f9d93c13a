// The response cache (issue 8), end to end against a test upstream that
// numbers its answers: hits and misses as the client sees them (X-Cache,
// X-Cache-Key, Age), the client's controls, what goes into the key and what
// does not, what is never stored, TTL, limits, coalesced misses and the
// invalidation API. Every test sends prompts no other test sends, so
// entries never leak between tests; upstream calls are counted per prompt.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { freePort, startServer } from './lib/server.mjs';
import { reply, startUpstream } from './lib/upstream.mjs';
import { httpRequest } from './lib/http.mjs';
import { KEY_RE, entriesOf, header, llmUpstream, postJson, sleep, streamedContent, uniqueTag, xcache } from './lib/cachekit.mjs';

const MODEL = 'gpt-4o';
const CHAT = '/v1/chat/completions';
const chat = (content, extra = {}) => ({ model: MODEL, messages: [{ role: 'user', content }], ...extra });

let srv;
let up;
let h; // the upstream's current llmUpstream handler
const proxies = new Map(); // name -> {id, port, base}

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

/** A proxy on the test upstream with config (created once per name). */
async function proxy(name, config, provider = 'openai') {
  if (proxies.has(name)) return proxies.get(name);
  const port = await freePort();
  const body = { name, provider, upstream_url: up.url, port };
  if (config) body.config = config;
  const p = await srv.createProxy(body);
  assert.equal(p.status, 'running');
  const v = { id: p.id, port, base: `http://127.0.0.1:${port}` };
  proxies.set(name, v);
  return v;
}

/** Replaces the upstream's behaviour for the current test. */
function upstream(opts) {
  h = llmUpstream(opts);
  return h;
}

const contentOf = (r) => r.json?.choices?.[0]?.message?.content;
const xRubberduckAtUpstream = () =>
  up.requests.flatMap((rec) => Object.keys(rec.headers).filter((k) => k.startsWith('x-rubberduck-')));

describe('hits and misses as the client sees them', () => {
  test('on by default: MISS, then HIT with the same bytes, X-Cache-Key <model>:<hex> and Age; one upstream call', async () => {
    const { base } = await proxy('default');
    const u = upstream();
    const tag = uniqueTag('default');
    const auth = { headers: { authorization: 'Bearer sk-test' } }; // the SDK's credential: the same scope
    const a = await postJson(base + CHAT, chat(tag), auth);
    assert.equal(a.status, 200);
    assert.equal(xcache(a.headers), 'MISS');
    assert.equal(contentOf(a), `answer 1 to ${tag}`);
    const b = await postJson(base + CHAT, chat(tag), auth);
    assert.equal(b.status, 200);
    assert.equal(xcache(b.headers), 'HIT');
    assert.ok(b.body.equals(a.body), 'a hit answers the bytes of the miss');
    const m = KEY_RE.exec(b.headers['x-cache-key'] ?? '');
    assert.ok(m, `X-Cache-Key is <model>:<64 hex>, got ${b.headers['x-cache-key']}`);
    assert.equal(m[1], MODEL);
    assert.match(b.headers.age ?? '', /^\d+$/, 'a hit has Age in seconds');
    assert.ok(Number(b.headers.age) <= 1);
    assert.equal(b.headers['content-type'], 'application/json', 'the stored head is replayed');
    assert.equal(b.headers['x-request-id'], 'req_up1', "the provider's request id is replayed as it was");
    assert.equal(u.callsFor(tag), 1);
    // the same entry through the SDK: the parsed result is the first one
    const ai = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'sk-test', maxRetries: 0, timeout: 15000 });
    const { data, response } = await ai.chat.completions.create(chat(tag)).withResponse();
    assert.equal(xcache(response.headers), 'HIT');
    assert.deepEqual(data, a.json);
    assert.equal(u.callsFor(tag), 1);
  });

  test('Age counts the seconds since the entry was stored; the key is the same on every hit', async () => {
    const { base } = await proxy('default');
    upstream();
    const tag = uniqueTag('age');
    await postJson(base + CHAT, chat(tag));
    const b = await postJson(base + CHAT, chat(tag));
    await sleep(1100);
    const c = await postJson(base + CHAT, chat(tag));
    assert.equal(xcache(c.headers), 'HIT');
    assert.ok(Number(c.headers.age) >= 1, `Age after 1.1 s: ${c.headers.age}`);
    assert.equal(c.headers['x-cache-key'], b.headers['x-cache-key']);
    assert.ok(c.body.equals(b.body));
  });

  test('a route that is not cacheable (GET /v1/models) is BYPASS and always goes upstream', async () => {
    const { base } = await proxy('default');
    up.route('/v1/models', reply.json({ object: 'list', data: [{ id: 'gpt-4o', object: 'model', owned_by: 'openai', created: 1 }] }));
    const before_ = up.requests.filter((r) => r.url === '/v1/models').length;
    for (let i = 0; i < 2; i++) {
      const r = await httpRequest(`${base}/v1/models`);
      assert.equal(r.status, 200);
      assert.equal(xcache(r.headers), 'BYPASS');
      assert.equal(r.headers['x-cache-key'], undefined);
    }
    assert.equal(up.requests.filter((r) => r.url === '/v1/models').length - before_, 2);
  });

  test('paginated model lists: every page comes from the upstream (the query is not part of a key)', async () => {
    const anth = await proxy('anthropic-plain', null, 'anthropic');
    up.route('/v1/models?', reply.echo());
    const hdr = { headers: { 'x-api-key': 'sk-ant-k', 'anthropic-version': '2023-06-01' } };
    const pages = [];
    for (const q of ['limit=2', 'limit=2&after_id=claude-a', 'limit=2&after_id=claude-b']) {
      const r = await httpRequest(`${anth.base}/v1/models?${q}`, hdr);
      assert.equal(r.status, 200);
      assert.notEqual(xcache(r.headers), 'HIT', q);
      pages.push(JSON.parse(r.body).url);
    }
    assert.deepEqual(pages, ['/v1/models?limit=2', '/v1/models?limit=2&after_id=claude-a', '/v1/models?limit=2&after_id=claude-b']);
  });

  test('cache.enabled false: no lookup, no store, no X-Cache', async () => {
    const { base } = await proxy('disabled', { cache: { enabled: false } });
    const u = upstream();
    const tag = uniqueTag('off');
    const a = await postJson(base + CHAT, chat(tag));
    const b = await postJson(base + CHAT, chat(tag));
    assert.equal(contentOf(a), `answer 1 to ${tag}`);
    assert.equal(contentOf(b), `answer 2 to ${tag}`);
    assert.equal(u.callsFor(tag), 2);
    for (const r of [a, b]) assert.equal(xcache(r.headers), undefined, 'a proxy without a cache says nothing about one');
  });
});

describe('client controls', () => {
  test('X-Rubberduck-Cache: bypass skips the lookup and the store', async () => {
    const { base } = await proxy('default');
    const u = upstream();
    const tag = uniqueTag('bypass');
    // with nothing stored: goes upstream, stores nothing
    const a = await postJson(base + CHAT, chat(tag), { headers: { 'X-Rubberduck-Cache': 'bypass' } });
    assert.equal(xcache(a.headers), 'BYPASS');
    assert.equal(contentOf(a), `answer 1 to ${tag}`);
    const b = await postJson(base + CHAT, chat(tag));
    assert.equal(xcache(b.headers), 'MISS', 'the bypassed answer was not stored');
    assert.equal(contentOf(b), `answer 2 to ${tag}`);
    // with an entry: goes upstream anyway, and leaves the entry as it was
    const c = await postJson(base + CHAT, chat(tag), { headers: { 'x-rubberduck-cache': 'bypass' } });
    assert.equal(xcache(c.headers), 'BYPASS');
    assert.equal(contentOf(c), `answer 3 to ${tag}`);
    const d = await postJson(base + CHAT, chat(tag));
    assert.equal(xcache(d.headers), 'HIT');
    assert.equal(contentOf(d), `answer 2 to ${tag}`);
    assert.equal(u.callsFor(tag), 3);
  });

  test('X-Rubberduck-Cache: refresh skips the lookup and stores the new answer', async () => {
    const { base } = await proxy('default');
    const u = upstream();
    const tag = uniqueTag('refresh');
    await postJson(base + CHAT, chat(tag));
    const r = await postJson(base + CHAT, chat(tag), { headers: { 'X-Rubberduck-Cache': 'refresh' } });
    assert.notEqual(xcache(r.headers), 'HIT');
    assert.equal(contentOf(r), `answer 2 to ${tag}`);
    const hit = await postJson(base + CHAT, chat(tag));
    assert.equal(xcache(hit.headers), 'HIT');
    assert.equal(contentOf(hit), `answer 2 to ${tag}`, 'the refreshed answer replaced the entry');
    assert.equal(u.callsFor(tag), 2);
  });

  test('Cache-Control: no-cache from the client is refresh, no-store is bypass', async () => {
    const { base } = await proxy('default');
    const u = upstream();
    const tag = uniqueTag('cc');
    await postJson(base + CHAT, chat(tag)); // answer 1 stored
    const nc = await postJson(base + CHAT, chat(tag), { headers: { 'Cache-Control': 'no-cache' } });
    assert.notEqual(xcache(nc.headers), 'HIT');
    assert.equal(contentOf(nc), `answer 2 to ${tag}`);
    assert.equal(contentOf(await postJson(base + CHAT, chat(tag))), `answer 2 to ${tag}`, 'no-cache stored its answer');
    const ns = await postJson(base + CHAT, chat(tag), { headers: { 'Cache-Control': 'no-store' } });
    assert.equal(xcache(ns.headers), 'BYPASS');
    assert.equal(contentOf(ns), `answer 3 to ${tag}`);
    const after_ = await postJson(base + CHAT, chat(tag));
    assert.equal(xcache(after_.headers), 'HIT');
    assert.equal(contentOf(after_), `answer 2 to ${tag}`, 'no-store stored nothing');
    assert.equal(u.callsFor(tag), 3);
    // a fresh prompt under no-store is not stored either
    const tag2 = uniqueTag('cc-new');
    await postJson(base + CHAT, chat(tag2), { headers: { 'cache-control': 'no-store' } });
    assert.equal(xcache((await postJson(base + CHAT, chat(tag2))).headers), 'MISS');
  });

  test('X-Rubberduck-* request headers never reach the upstream', async () => {
    const { base } = await proxy('default');
    upstream();
    const tag = uniqueTag('hdrs');
    for (const v of ['bypass', 'refresh', 'bogus-value']) {
      const r = await postJson(base + CHAT, chat(tag), { headers: { 'X-Rubberduck-Cache': v, 'X-Rubberduck-Other': 'x' } });
      assert.equal(r.status, 200, `X-Rubberduck-Cache: ${v}`);
    }
    assert.deepEqual(xRubberduckAtUpstream(), []);
  });
});

describe('the key', () => {
  test('key order, whitespace and string escapes do not matter', async () => {
    const { base } = await proxy('default');
    const u = upstream();
    const tag = uniqueTag('canon');
    const a = await postJson(base + CHAT, `{"model":"gpt-4o","messages":[{"role":"user","content":"${tag} é ☃"}],"max_tokens":50}`);
    assert.equal(xcache(a.headers), 'MISS');
    const variants = [
      `{ "max_tokens" : 50 ,\n  "messages" : [ { "content" : "${tag} \\u00e9 \\u2603", "role" : "user" } ],\t"model":"gpt-4o" }`,
      `{"messages":[{"role":"user","content":"${tag} \\u00E9 ☃"}],"model":"gpt\\u002d4o","max_tokens":50}`,
    ];
    for (const v of variants) {
      const r = await postJson(base + CHAT, v);
      assert.equal(xcache(r.headers), 'HIT', v);
      assert.equal(r.headers['x-cache-key'], (await postJson(base + CHAT, variants[0])).headers['x-cache-key']);
      assert.ok(r.body.equals(a.body));
    }
    assert.equal(u.callsFor(tag), 1);
  });

  test('user and stream_options.include_obfuscation do not change the key; include_usage does (it adds a chunk)', async () => {
    const { base } = await proxy('default');
    const u = upstream();
    const tag = uniqueTag('user');
    await postJson(base + CHAT, chat(tag, { user: 'alice' }));
    for (const extra of [{ user: 'bob' }, {}]) {
      const r = await postJson(base + CHAT, chat(tag, extra));
      assert.equal(xcache(r.headers), 'HIT', JSON.stringify(extra));
    }
    assert.equal(u.callsFor(tag), 1);
    const stag = uniqueTag('stream-options');
    const s1 = await postJson(base + CHAT, chat(stag, { stream: true, stream_options: { include_usage: true } }));
    assert.equal(xcache(s1.headers), 'MISS');
    const s2 = await postJson(base + CHAT, chat(stag, { stream: true, stream_options: { include_usage: true, include_obfuscation: false } }));
    assert.equal(xcache(s2.headers), 'HIT');
    assert.ok(s2.body.equals(s1.body));
    const s3 = await postJson(base + CHAT, chat(stag, { stream: true }));
    assert.equal(xcache(s3.headers), 'MISS', 'a stream without the usage chunk is another answer');
    assert.ok(!s3.text.includes('"usage"'));
    assert.equal(u.callsFor(stag), 2);
  });

  test('a stream request and a non-stream request are separate entries, each served in its own form', async () => {
    const { base } = await proxy('default');
    const u = upstream();
    const tag = uniqueTag('stream-vs-json');
    const j1 = await postJson(base + CHAT, chat(tag));
    const s1 = await postJson(base + CHAT, chat(tag, { stream: true }));
    assert.equal(xcache(j1.headers), 'MISS');
    assert.equal(xcache(s1.headers), 'MISS');
    assert.match(s1.headers['content-type'], /^text\/event-stream/);
    assert.ok(s1.text.includes('data: [DONE]'));
    assert.equal(u.callsFor(tag), 2);
    const j2 = await postJson(base + CHAT, chat(tag));
    const s2 = await postJson(base + CHAT, chat(tag, { stream: false }));
    const s3 = await postJson(base + CHAT, chat(tag, { stream: true }));
    assert.equal(xcache(j2.headers), 'HIT');
    assert.equal(xcache(s2.headers), 'HIT', 'stream: false is the non-stream entry');
    assert.equal(xcache(s3.headers), 'HIT');
    assert.ok(j2.body.equals(j1.body) && s2.body.equals(j1.body));
    assert.ok(s3.body.equals(s1.body));
    assert.notEqual(j2.headers['x-cache-key'], s3.headers['x-cache-key']);
    assert.equal(u.callsFor(tag), 2);
  });

  test('every other field changes the key: seed (every digit), tools, temperature past 2 decimals, max_tokens, n, model', async () => {
    const { base } = await proxy('default');
    const u = upstream();
    const tag = uniqueTag('fields');
    const msgs = `[{"role":"user","content":"${tag}"}]`;
    const tool = (name) => `[{"type":"function","function":{"name":"${name}","parameters":{"type":"object","properties":{}}}}]`;
    const bodies = [
      `{"model":"gpt-4o","messages":${msgs},"seed":1,"temperature":0.7}`,
      `{"model":"gpt-4o","messages":${msgs},"seed":2,"temperature":0.7}`,
      `{"model":"gpt-4o","messages":${msgs},"seed":12345678901234567890123,"temperature":0.7}`,
      `{"model":"gpt-4o","messages":${msgs},"seed":12345678901234567890124,"temperature":0.7}`,
      `{"model":"gpt-4o","messages":${msgs},"seed":1,"temperature":0.71}`,
      `{"model":"gpt-4o","messages":${msgs},"seed":1,"temperature":0.7,"tools":${tool('a')}}`,
      `{"model":"gpt-4o","messages":${msgs},"seed":1,"temperature":0.7,"tools":${tool('b')}}`,
      `{"model":"gpt-4o","messages":${msgs},"seed":1,"temperature":0.7,"max_tokens":10}`,
      `{"model":"gpt-4o","messages":${msgs},"seed":1,"temperature":0.7,"n":2}`,
      `{"model":"gpt-4o-mini","messages":${msgs},"seed":1,"temperature":0.7}`,
    ];
    const keys = new Set();
    for (const [i, b] of bodies.entries()) {
      const r = await postJson(base + CHAT, b);
      assert.equal(xcache(r.headers), 'MISS', `body ${i} must be its own entry: ${b}`);
      assert.equal(contentOf(r), `answer ${i + 1} to ${tag}`);
    }
    for (const [i, b] of bodies.entries()) {
      const r = await postJson(base + CHAT, b);
      assert.equal(xcache(r.headers), 'HIT', `body ${i} again: ${b}`);
      assert.equal(contentOf(r), `answer ${i + 1} to ${tag}`, `body ${i} is served its own answer`);
      keys.add(r.headers['x-cache-key']);
    }
    assert.equal(keys.size, bodies.length);
    assert.ok([...keys].at(-1).startsWith('gpt-4o-mini:'));
    // temperature is compared to 2 decimals: 0.701 is 0.7
    const r = await postJson(base + CHAT, `{"model":"gpt-4o","messages":${msgs},"seed":1,"temperature":0.701}`);
    assert.equal(xcache(r.headers), 'HIT');
    assert.equal(contentOf(r), `answer 1 to ${tag}`);
    assert.equal(u.callsFor(tag), bodies.length);
  });

  test('scope "credential" (the default): two API keys are two entries; the same key hits', async () => {
    const { base } = await proxy('default');
    const u = upstream();
    const tag = uniqueTag('cred');
    const as = (key) => ({ headers: { authorization: `Bearer ${key}` } });
    const a = await postJson(base + CHAT, chat(tag), as('sk-tenant-a'));
    const b = await postJson(base + CHAT, chat(tag), as('sk-tenant-b'));
    assert.equal(xcache(b.headers), 'MISS', "tenant b never sees tenant a's answer");
    assert.equal(contentOf(b), `answer 2 to ${tag}`);
    const a2 = await postJson(base + CHAT, chat(tag), as('sk-tenant-a'));
    assert.equal(xcache(a2.headers), 'HIT');
    assert.equal(contentOf(a2), contentOf(a));
    const none = await postJson(base + CHAT, chat(tag));
    assert.equal(xcache(none.headers), 'MISS', 'no credential is a scope of its own');
    assert.equal(u.callsFor(tag), 3);
  });

  test('scope "proxy": everyone on the proxy shares the entries', async () => {
    const { base } = await proxy('scope-proxy', { cache: { scope: 'proxy' } });
    const u = upstream();
    const tag = uniqueTag('shared');
    await postJson(base + CHAT, chat(tag), { headers: { authorization: 'Bearer sk-one' } });
    const b = await postJson(base + CHAT, chat(tag), { headers: { authorization: 'Bearer sk-two' } });
    assert.equal(xcache(b.headers), 'HIT');
    assert.equal(contentOf(b), `answer 1 to ${tag}`);
    assert.equal(u.callsFor(tag), 1);
  });

  test('cache.key_headers puts a header into the key (anthropic-beta); otherwise headers do not count', async () => {
    const keyed = await proxy('anthropic-keyed', { cache: { key_headers: ['anthropic-beta'] } }, 'anthropic');
    const plain = await proxy('anthropic-plain', null, 'anthropic');
    const u = upstream();
    const body = (tag) => ({ model: 'claude-haiku-4-5', max_tokens: 50, messages: [{ role: 'user', content: tag }] });
    const beta = (v) => ({ headers: { 'x-api-key': 'sk-ant-k', 'anthropic-version': '2023-06-01', ...(v ? { 'anthropic-beta': v } : {}) } });
    const tag = uniqueTag('beta');
    const r1 = await postJson(`${keyed.base}/v1/messages`, body(tag), beta('tools-2024-04-04'));
    const r2 = await postJson(`${keyed.base}/v1/messages`, body(tag), beta('prompt-caching-2024-07-31'));
    assert.equal(r1.status, 200);
    assert.equal(xcache(r2.headers), 'MISS', 'another anthropic-beta is another entry');
    const r3 = await postJson(`${keyed.base}/v1/messages`, body(tag), { headers: { ...beta().headers, 'Anthropic-Beta': 'prompt-caching-2024-07-31' } });
    assert.equal(xcache(r3.headers), 'HIT', 'the same value (any header case) hits');
    assert.equal(r3.json.content[0].text, `answer 2 to ${tag}`);
    assert.equal(u.callsFor(tag), 2);
    const ptag = uniqueTag('beta-plain');
    await postJson(`${plain.base}/v1/messages`, body(ptag), beta('tools-2024-04-04'));
    const p2 = await postJson(`${plain.base}/v1/messages`, body(ptag), beta('prompt-caching-2024-07-31'));
    assert.equal(xcache(p2.headers), 'HIT', 'without key_headers, anthropic-beta is not in the key');
    assert.equal(u.callsFor(ptag), 1);
  });
});

describe('what is never stored', () => {
  for (const status of [500, 429, 400]) {
    test(`an upstream ${status}: relayed, not stored; the next request goes upstream`, async () => {
      const { base } = await proxy('default');
      const u = upstream({ status: (n) => (n === 1 ? status : 200) });
      const tag = uniqueTag(`err${status}`);
      const a = await postJson(base + CHAT, chat(tag));
      assert.equal(a.status, status);
      assert.equal(a.json.error.message, `upstream says ${status}`);
      const b = await postJson(base + CHAT, chat(tag));
      assert.equal(b.status, 200);
      assert.equal(xcache(b.headers), 'MISS');
      const c = await postJson(base + CHAT, chat(tag));
      assert.equal(xcache(c.headers), 'HIT');
      assert.equal(contentOf(c), `answer 2 to ${tag}`);
      assert.equal(u.callsFor(tag), 2);
    });
  }

  for (const cc of ['no-store', 'private', 'private, max-age=600', 'max-age=0, no-store']) {
    test(`an upstream answer with Cache-Control: ${cc} is not stored`, async () => {
      const { base } = await proxy('default');
      const u = upstream({ headers: { 'cache-control': cc } });
      const tag = uniqueTag('no-store');
      const a = await postJson(base + CHAT, chat(tag));
      assert.equal(a.status, 200);
      assert.equal(a.headers['cache-control'], cc, "the upstream's header reaches the client");
      const b = await postJson(base + CHAT, chat(tag));
      assert.notEqual(xcache(b.headers), 'HIT');
      assert.equal(contentOf(b), `answer 2 to ${tag}`);
      assert.equal(u.callsFor(tag), 2);
    });
  }

  test('a stream the upstream cuts (no [DONE]) is not stored', async () => {
    const { base } = await proxy('default');
    const u = upstream({ cutAfter: (n) => (n === 1 ? 3 : undefined) });
    const tag = uniqueTag('cut');
    await assert.rejects(postJson(base + CHAT, chat(tag, { stream: true })), 'the client sees the cut');
    const b = await postJson(base + CHAT, chat(tag, { stream: true }));
    assert.equal(xcache(b.headers), 'MISS');
    assert.equal(streamedContent(b.text), `answer 2 to ${tag}`);
    assert.ok(b.text.includes('[DONE]'));
    assert.equal(xcache((await postJson(base + CHAT, chat(tag, { stream: true }))).headers), 'HIT');
    assert.equal(u.callsFor(tag), 2);
  });

  test('a stream that ends without its proper end ([DONE], message_stop) is relayed but not stored', async () => {
    const { base } = await proxy('default');
    const u = upstream({ done: (n) => n !== 1 });
    const tag = uniqueTag('no-done');
    const a = await postJson(base + CHAT, chat(tag, { stream: true }));
    assert.equal(a.status, 200);
    assert.ok(!a.text.includes('[DONE]'));
    assert.ok(a.text.includes('"finish_reason":"stop"'), 'everything the upstream sent arrived');
    const b = await postJson(base + CHAT, chat(tag, { stream: true }));
    assert.equal(xcache(b.headers), 'MISS');
    assert.equal(u.callsFor(tag), 2);

    const anth = await proxy('anthropic-plain', null, 'anthropic');
    const ua = upstream({ done: (n) => n !== 1 });
    const atag = uniqueTag('no-stop');
    const abody = { model: 'claude-haiku-4-5', max_tokens: 50, stream: true, messages: [{ role: 'user', content: atag }] };
    const hdr = { headers: { 'x-api-key': 'sk-ant-k', 'anthropic-version': '2023-06-01' } };
    const x = await postJson(`${anth.base}/v1/messages`, abody, hdr);
    assert.ok(!x.text.includes('message_stop'));
    const y = await postJson(`${anth.base}/v1/messages`, abody, hdr);
    assert.equal(xcache(y.headers), 'MISS', 'an Anthropic stream without message_stop was stored');
    assert.ok(y.text.includes('event: message_stop'));
    assert.equal(xcache((await postJson(`${anth.base}/v1/messages`, abody, hdr)).headers), 'HIT');
    assert.equal(ua.callsFor(atag), 2);
  });

  test('a truncated non-stream body is not stored', async () => {
    const { base } = await proxy('default');
    const tag = uniqueTag('short-body');
    let calls = 0;
    h = (req, res) => {
      calls++;
      req.resume();
      req.on('end', () => {
        const b = Buffer.from(JSON.stringify({ id: `chatcmpl-short${calls}`, object: 'chat.completion', model: MODEL, choices: [] }));
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': b.length + 100 });
        res.write(b, () => setTimeout(() => req.socket.destroy(), 30));
      });
    };
    await postJson(base + CHAT, chat(tag)).catch((e) => e); // a 502 or a cut: either way not an answer
    upstream();
    const b = await postJson(base + CHAT, chat(tag));
    assert.equal(b.status, 200);
    assert.equal(xcache(b.headers), 'MISS');
    assert.equal(calls, 1);
  });

  test('a simulated failure is never cached and never replaces an entry', async () => {
    const { base } = await proxy('overrides', { failure: { request_overrides: true } });
    const u = upstream();
    const tag = uniqueTag('sim');
    const fault = { headers: { 'X-Rubberduck-Fault': 'status=500' } };
    const a = await postJson(base + CHAT, chat(tag), fault);
    assert.equal(a.status, 500);
    assert.equal(a.headers['x-rubberduck-failure'], 'scenario');
    const b = await postJson(base + CHAT, chat(tag));
    assert.equal(b.status, 200);
    assert.equal(xcache(b.headers), 'MISS', 'the simulated 500 was not stored');
    const c = await postJson(base + CHAT, chat(tag), fault);
    assert.equal(c.status, 500, 'a simulated failure applies to a request that would hit');
    const d = await postJson(base + CHAT, chat(tag));
    assert.equal(xcache(d.headers), 'HIT');
    assert.ok(d.body.equals(b.body), 'the entry is the real answer');
    // error_injection at rate 1: every request fails, none is stored
    const inj = await proxy('inject', { error_injection: { '503_rate': 1 } });
    const itag = uniqueTag('inject');
    for (let i = 0; i < 2; i++) {
      const r = await postJson(inj.base + CHAT, chat(itag));
      assert.equal(r.status, 503);
      assert.notEqual(xcache(r.headers), 'HIT');
    }
    assert.equal(u.callsFor(itag), 0);
    assert.equal(u.callsFor(tag), 1);
  });
});

describe('TTL and limits', () => {
  test('cache_ttl.default 1: the entry is not served after it expired', async () => {
    const { base } = await proxy('ttl1', { cache_ttl: { default: 1 } });
    const u = upstream();
    const tag = uniqueTag('ttl');
    await postJson(base + CHAT, chat(tag));
    assert.equal(xcache((await postJson(base + CHAT, chat(tag))).headers), 'HIT');
    await sleep(1250);
    const r = await postJson(base + CHAT, chat(tag));
    assert.equal(xcache(r.headers), 'MISS');
    assert.equal(contentOf(r), `answer 2 to ${tag}`);
    assert.equal(u.callsFor(tag), 2);
  });

  test('cache_ttl.by_model 0 means "not cached" for that model only', async () => {
    const { base } = await proxy('ttl-model', { cache_ttl: { default: 60, by_model: { 'gpt-4o-mini': 0 } } });
    const u = upstream();
    const tag = uniqueTag('ttl-model');
    for (let i = 0; i < 2; i++) await postJson(base + CHAT, { ...chat(tag), model: 'gpt-4o-mini' });
    for (let i = 0; i < 2; i++) await postJson(base + CHAT, chat(tag));
    assert.equal(u.seen.filter((s) => s.body.model === 'gpt-4o-mini' && s.rec.body.includes(tag)).length, 2);
    assert.equal(u.seen.filter((s) => s.body.model === 'gpt-4o' && s.rec.body.includes(tag)).length, 1);
  });

  test('memory_limits.cache_max_entries 2: the least recently used entry is evicted', async () => {
    const { base, id } = await proxy('max2', { memory_limits: { cache_max_entries: 2 } });
    const u = upstream();
    const [A, B, C] = ['A', 'B', 'C'].map((x) => uniqueTag(`lru${x}`));
    await postJson(base + CHAT, chat(A));
    await postJson(base + CHAT, chat(B));
    assert.equal(xcache((await postJson(base + CHAT, chat(A))).headers), 'HIT'); // A is now more recent than B
    await postJson(base + CHAT, chat(C)); // evicts B
    assert.equal(xcache((await postJson(base + CHAT, chat(A))).headers), 'HIT');
    assert.equal(xcache((await postJson(base + CHAT, chat(C))).headers), 'HIT');
    assert.equal(xcache((await postJson(base + CHAT, chat(B))).headers), 'MISS', 'B was the least recently used');
    assert.deepEqual([A, B, C].map((t) => u.callsFor(t)), [1, 2, 1]);
    const stats = await srv.api('GET', `/api/v1/proxies/${id}/cache`);
    assert.equal(stats.status, 200);
    assert.equal(stats.json.entries, 2);
    assert.ok(stats.json.evictions >= 2, JSON.stringify(stats.json));
  });

  test('memory_limits.cache_max_size: the bytes stay under the limit, the oldest entries go first', async () => {
    const { base, id } = await proxy('max-size', { memory_limits: { cache_max_size: '8KB' } });
    const u = upstream({ bodyPad: 1500 }); // about 2 KB charged per entry
    const tags = Array.from({ length: 8 }, (_, i) => uniqueTag(`size${i}`));
    for (const t of tags) assert.equal(xcache((await postJson(base + CHAT, chat(t))).headers), 'MISS');
    assert.equal(xcache((await postJson(base + CHAT, chat(tags.at(-1)))).headers), 'HIT', 'the newest entry is kept');
    assert.equal(xcache((await postJson(base + CHAT, chat(tags[0]))).headers), 'MISS', 'the oldest was evicted');
    const st = await srv.api('GET', `/api/v1/proxies/${id}/cache`);
    assert.equal(st.status, 200);
    assert.ok(st.json.bytes <= 8192, `bytes ${st.json.bytes} over cache_max_size`);
    assert.ok(st.json.entries >= 1 && st.json.entries < 8, `entries ${st.json.entries}`);
    assert.ok(st.json.evictions >= 1);
    assert.equal(u.callsFor(tags[0]), 2);
  });

  test('memory_limits.response_buffer_size: a larger response is relayed in full but not cached', async () => {
    const { base } = await proxy('small-buffer', { memory_limits: { response_buffer_size: '1KB' } });
    const tag = uniqueTag('big');
    const u = upstream({ bodyPad: (n, body) => (body.messages[0].content === tag ? 4000 : 0) });
    const a = await postJson(base + CHAT, chat(tag));
    assert.equal(a.status, 200);
    assert.ok(a.body.length > 4000);
    assert.equal(contentOf(a).length, `answer 1 to ${tag} `.length + 4000, 'the whole body arrived');
    const b = await postJson(base + CHAT, chat(tag));
    assert.notEqual(xcache(b.headers), 'HIT');
    assert.equal(u.callsFor(tag), 2);
    // a stream over the limit is not cached either
    const s1 = await postJson(base + CHAT, chat(tag, { stream: true }));
    assert.ok(s1.text.includes('[DONE]') && s1.text.length > 4000);
    assert.notEqual(xcache((await postJson(base + CHAT, chat(tag, { stream: true }))).headers), 'HIT');
    // small answers on the same proxy are
    const small = uniqueTag('small');
    await postJson(base + CHAT, chat(small));
    assert.equal(xcache((await postJson(base + CHAT, chat(small))).headers), 'HIT');
  });
});

describe('read your writes', () => {
  // The answer is stored before its last bytes reach the client: the next
  // request, on another connection (and so, with two workers, often
  // another thread), finds it, whatever the timing. A fill committed only
  // when the request is released leaves a window in which that request
  // misses (or joins the fill and skips a ttl-0 model's upstream call).
  const ROUNDS = 60;

  test('a plain answer, a stream and a ttl-0 model, each asked again at once', async () => {
    const { base } = await proxy('ryw', { cache_ttl: { default: 60, by_model: { 'gpt-4o-mini': 0 } } });
    const u = upstream();
    for (let i = 0; i < ROUNDS; i++) {
      const tag = uniqueTag(`ryw${i}`);
      await postJson(base + CHAT, chat(tag));
      const again = await postJson(base + CHAT, chat(tag));
      assert.equal(xcache(again.headers), 'HIT', `round ${i}: plain`);
      const stag = uniqueTag(`ryws${i}`);
      await postJson(base + CHAT, chat(stag, { stream: true }));
      const sagain = await postJson(base + CHAT, chat(stag, { stream: true }));
      assert.equal(xcache(sagain.headers), 'HIT', `round ${i}: stream`);
      const mtag = uniqueTag(`rywm${i}`);
      for (let k = 0; k < 2; k++) await postJson(base + CHAT, { ...chat(mtag), model: 'gpt-4o-mini' });
      assert.equal(u.callsFor(mtag), 2, `round ${i}: a ttl-0 answer is never shared`);
      assert.deepEqual([u.callsFor(tag), u.callsFor(stag)], [1, 1], `round ${i}`);
    }
  });

  test('the stats the API reports after an answer include its store and eviction', async () => {
    const { base, id } = await proxy('ryw-lru', { memory_limits: { cache_max_entries: 1 } });
    upstream();
    for (let i = 0; i < ROUNDS; i++) {
      await postJson(base + CHAT, chat(uniqueTag(`rywe${i}`)));
      const st = await srv.api('GET', `/api/v1/proxies/${id}/cache`);
      assert.equal(st.json.entries, 1, `round ${i}`);
      assert.equal(st.json.evictions, i, `round ${i}: ${JSON.stringify(st.json)}`);
    }
  });
});

describe('coalesced misses', () => {
  const N = 8;

  test(`${N} identical concurrent requests: one upstream call, ${N} identical answers`, async () => {
    const { base } = await proxy('default');
    const u = upstream({ delayMs: 300 });
    const tag = uniqueTag('burst');
    const rs = await Promise.all(Array.from({ length: N }, () => postJson(base + CHAT, chat(tag))));
    assert.equal(u.callsFor(tag), 1);
    for (const r of rs) {
      assert.equal(r.status, 200);
      assert.ok(r.body.equals(rs[0].body));
    }
    assert.equal(contentOf(rs[0]), `answer 1 to ${tag}`);
    const verdicts = rs.map((r) => xcache(r.headers)).sort();
    assert.equal(verdicts.filter((v) => v === 'MISS').length, 1, `X-Cache of the burst: ${verdicts}`);
  });

  test(`${N} identical concurrent streams: one upstream call, the same bytes to all`, async () => {
    const { base } = await proxy('default');
    const u = upstream({ delayMs: 150, intervalMs: 40 });
    const tag = uniqueTag('burst-stream');
    const rs = await Promise.all(Array.from({ length: N }, () => postJson(base + CHAT, chat(tag, { stream: true }))));
    assert.equal(u.callsFor(tag), 1);
    for (const r of rs) {
      assert.equal(r.status, 200);
      assert.ok(r.body.equals(rs[0].body), 'every joiner got the stream from its first byte');
    }
    assert.ok(rs[0].text.includes('[DONE]'));
  });

  test('when the one upstream call fails, the waiting requests go upstream themselves', async () => {
    const { base } = await proxy('default');
    const u = upstream({ delayMs: 300, status: (n) => (n === 1 ? 500 : 200) });
    const tag = uniqueTag('burst-fail');
    const rs = await Promise.all(Array.from({ length: N }, () => postJson(base + CHAT, chat(tag))));
    const statuses = rs.map((r) => r.status);
    assert.equal(statuses.filter((s) => s === 500).length, 1, `one failure only: ${statuses}`);
    assert.equal(statuses.filter((s) => s === 200).length, N - 1);
    // the waiters look up again: one leads a new (stored) fill, the rest join it
    assert.equal(u.callsFor(tag), 2, `upstream calls: ${u.callsFor(tag)}`);
    const ok = rs.filter((x) => x.status === 200);
    assert.equal(contentOf(ok[0]), `answer 2 to ${tag}`);
    for (const r of ok) assert.ok(r.body.equals(ok[0].body));
    const next = await postJson(base + CHAT, chat(tag));
    assert.equal(xcache(next.headers), 'HIT', 'the retried answer was stored');
    assert.ok(next.body.equals(ok[0].body));
    assert.equal(u.callsFor(tag), 2);
  });
});

describe('coalesced misses: the edges', () => {
  test('when the one upstream stream is cut after its head, the joined streams are cut as well; nothing is stored', async () => {
    const { base } = await proxy('default');
    const u = upstream({ delayMs: 200, intervalMs: 30, cutAfter: (n) => (n === 1 ? 3 : undefined) });
    const tag = uniqueTag('burst-cut');
    const rs = await Promise.allSettled(Array.from({ length: 4 }, () => postJson(base + CHAT, chat(tag, { stream: true }))));
    assert.equal(u.callsFor(tag), 1);
    assert.deepEqual(rs.map((r) => r.status), Array(4).fill('rejected'), 'every client sees the cut');
    const next = await postJson(base + CHAT, chat(tag, { stream: true }));
    assert.equal(xcache(next.headers), 'MISS');
    assert.ok(next.text.includes('[DONE]'));
  });

  test('cache.coalesce false: identical concurrent requests each go upstream', async () => {
    const { base } = await proxy('no-coalesce', { cache: { coalesce: false } });
    const u = upstream({ delayMs: 200 });
    const tag = uniqueTag('no-join');
    const rs = await Promise.all(Array.from({ length: 4 }, () => postJson(base + CHAT, chat(tag))));
    assert.equal(u.callsFor(tag), 4);
    for (const r of rs) assert.equal(xcache(r.headers), 'MISS');
    assert.equal(xcache((await postJson(base + CHAT, chat(tag))).headers), 'HIT');
  });
});

describe('automatic invalidation', () => {
  test('invalidate_on_error_rate: enough upstream errors in the window clear the proxy\'s cache', async () => {
    const { base } = await proxy('error-rate', { cache: { invalidate_on_error_rate: { threshold: 0.5, window_s: 60, min_requests: 4 } } });
    const tag = uniqueTag('kept');
    const u = upstream({ status: (n, body) => (body.messages[0].content.startsWith('fail-') ? 500 : 200) });
    await postJson(base + CHAT, chat(tag));
    assert.equal(xcache((await postJson(base + CHAT, chat(tag))).headers), 'HIT');
    for (let i = 0; i < 4; i++) assert.equal((await postJson(base + CHAT, chat(uniqueTag(`fail-${i}`)))).status, 500);
    const r = await postJson(base + CHAT, chat(tag));
    assert.equal(xcache(r.headers), 'MISS', '4 errors of 5 upstream requests cleared the cache');
    assert.equal(u.callsFor(tag), 2);
  });

  test('simulated failures do not count towards the error rate', async () => {
    const { base } = await proxy('error-rate-sim', {
      failure: { request_overrides: true },
      cache: { invalidate_on_error_rate: { threshold: 0.5, window_s: 60, min_requests: 4 } },
    });
    upstream();
    const tag = uniqueTag('kept-sim');
    await postJson(base + CHAT, chat(tag));
    for (let i = 0; i < 6; i++) {
      const r = await postJson(base + CHAT, chat(uniqueTag('sim-fail')), { headers: { 'X-Rubberduck-Fault': 'status=500' } });
      assert.equal(r.status, 500);
    }
    assert.equal(xcache((await postJson(base + CHAT, chat(tag))).headers), 'HIT');
  });

  test('invalidate_on_model_change (default on): a new model version from the upstream drops that model\'s entries', async () => {
    const { base } = await proxy('model-change');
    const [A, B] = [uniqueTag('v1'), uniqueTag('v2')];
    const u = upstream({ model: (n, body) => (body.messages[0].content === B ? 'gpt-4o-2024-11-20' : 'gpt-4o-2024-08-06') });
    const other = uniqueTag('other-model');
    await postJson(base + CHAT, chat(A));
    await postJson(base + CHAT, { ...chat(other), model: 'gpt-4o-mini' });
    assert.equal(xcache((await postJson(base + CHAT, chat(A))).headers), 'HIT', 'the same version: kept');
    await postJson(base + CHAT, chat(B)); // gpt-4o now answers as another version
    assert.equal(xcache((await postJson(base + CHAT, chat(A))).headers), 'MISS');
    assert.equal(xcache((await postJson(base + CHAT, { ...chat(other), model: 'gpt-4o-mini' })).headers), 'HIT', 'other models keep theirs');
    assert.equal(u.callsFor(A), 2);
  });
});

describe('invalidation API', () => {
  test('stats, entries by pattern, delete by key, by pattern, the proxy, every proxy', async () => {
    const { base, id } = await proxy('inval');
    const other = await proxy('inval-other');
    const u = upstream();
    const t4o = uniqueTag('inval-4o');
    const tmini = uniqueTag('inval-mini');
    const miss1 = await postJson(base + CHAT, chat(t4o));
    await postJson(base + CHAT, { ...chat(tmini), model: 'gpt-4o-mini' });
    await postJson(other.base + CHAT, chat(t4o));
    const hit = await postJson(base + CHAT, chat(t4o));
    const key = hit.headers['x-cache-key'];
    assert.equal(xcache(miss1.headers), 'MISS');

    const st = await srv.api('GET', `/api/v1/proxies/${id}/cache`);
    assert.equal(st.status, 200);
    assert.equal(st.json.entries, 2);
    assert.ok(st.json.hits >= 1 && st.json.misses >= 2, JSON.stringify(st.json));
    assert.ok(st.json.bytes > 0);

    const list = await srv.api('GET', `/api/v1/proxies/${id}/cache/entries?pattern=${encodeURIComponent('gpt-4o:*')}`);
    assert.equal(list.status, 200);
    const es = entriesOf(list.json);
    assert.deepEqual(es.map((e) => e.key), [key], 'gpt-4o:* selects the gpt-4o entry only');
    assert.equal(es[0].model, MODEL);
    assert.equal(es[0].stream, false);
    assert.ok(es[0].hits >= 1);

    const del = await srv.api('DELETE', `/api/v1/proxies/${id}/cache/entries/${encodeURIComponent(key)}`);
    assert.ok(del.status === 200 || del.status === 204, `${del.status} ${del.text}`);
    assert.equal(xcache((await postJson(base + CHAT, chat(t4o))).headers), 'MISS', 'deleted by key');
    assert.equal(xcache((await postJson(base + CHAT, { ...chat(tmini), model: 'gpt-4o-mini' })).headers), 'HIT', 'other keys stay');

    const byPattern = await srv.api('DELETE', `/api/v1/proxies/${id}/cache?pattern=${encodeURIComponent('gpt-4o-mini:*')}`);
    assert.ok(byPattern.status === 200 || byPattern.status === 204);
    assert.equal(xcache((await postJson(base + CHAT, { ...chat(tmini), model: 'gpt-4o-mini' })).headers), 'MISS', 'deleted by pattern');
    assert.equal(xcache((await postJson(base + CHAT, chat(t4o))).headers), 'HIT', 'the pattern spared gpt-4o');

    const all = await srv.api('DELETE', `/api/v1/proxies/${id}/cache`);
    assert.ok(all.status === 200 || all.status === 204);
    assert.equal((await srv.api('GET', `/api/v1/proxies/${id}/cache`)).json.entries, 0);
    assert.equal(xcache((await postJson(base + CHAT, chat(t4o))).headers), 'MISS', 'the proxy was cleared');
    assert.equal(xcache((await postJson(other.base + CHAT, chat(t4o))).headers), 'HIT', 'another proxy keeps its entries');

    const global = await srv.api('DELETE', '/api/v1/cache');
    assert.ok(global.status === 200 || global.status === 204);
    assert.equal(xcache((await postJson(other.base + CHAT, chat(t4o))).headers), 'MISS', 'DELETE /api/v1/cache clears every proxy');
    assert.equal(xcache((await postJson(base + CHAT, chat(t4o))).headers), 'MISS');
    assert.equal(u.callsFor(t4o), 6);
  });

  test('Anthropic through the SDK: a deleted entry is a miss, the next request a hit again', async () => {
    const { base, id } = await proxy('anthropic-plain', null, 'anthropic');
    upstream();
    const ai = new Anthropic({ baseURL: base, apiKey: 'sk-ant-sdk', maxRetries: 0, timeout: 15000 });
    const tag = uniqueTag('anth-del');
    const req = { model: 'claude-haiku-4-5', max_tokens: 50, messages: [{ role: 'user', content: tag }] };
    const first = await ai.messages.create(req).withResponse();
    const second = await ai.messages.create(req).withResponse();
    assert.equal(xcache(first.response.headers), 'MISS');
    assert.equal(xcache(second.response.headers), 'HIT');
    assert.deepEqual(second.data, first.data);
    const key = header(second.response.headers, 'x-cache-key');
    assert.match(key, /^claude-haiku-4-5:[0-9a-f]{64}$/);
    const del = await srv.api('DELETE', `/api/v1/proxies/${id}/cache/entries/${encodeURIComponent(key)}`);
    assert.ok(del.status === 200 || del.status === 204, `${del.status} ${del.text}`);
    const third = await ai.messages.create(req).withResponse();
    assert.equal(xcache(third.response.headers), 'MISS');
    assert.equal(third.data.content[0].text, `answer 2 to ${tag}`);
    assert.equal(xcache((await ai.messages.create(req).withResponse()).response.headers), 'HIT');
  });
});

describe('the cache and the other stages', () => {
  test('a body that is not JSON is not cached (BYPASS)', async () => {
    const { base } = await proxy('default');
    const u = upstream();
    const tag = uniqueTag('not-json');
    for (let i = 0; i < 2; i++) {
      const r = await postJson(base + CHAT, `{"model":"gpt-4o","messages":[{"role":"user","content":"${tag}"}]`);
      assert.equal(xcache(r.headers), 'BYPASS');
    }
    assert.equal(u.callsFor(tag), 2);
  });

  test('failure.reveal false: hits are served but not told apart (no X-Cache, X-Cache-Key, Age)', async () => {
    const { base } = await proxy('unrevealed', { failure: { reveal: false } });
    const u = upstream();
    const tag = uniqueTag('reveal');
    const a = await postJson(base + CHAT, chat(tag));
    const b = await postJson(base + CHAT, chat(tag));
    assert.ok(b.body.equals(a.body));
    assert.equal(u.callsFor(tag), 1, 'the second request was a hit');
    for (const r of [a, b]) for (const name of ['x-cache', 'x-cache-key', 'age']) assert.equal(r.headers[name], undefined, name);
  });

  test('response_delay.cache_only delays hits only', async () => {
    const { base } = await proxy('slow-hits', { response_delay: { enabled: true, min_ms: 400, max_ms: 400, cache_only: true } });
    upstream();
    const tag = uniqueTag('delay');
    const miss = await postJson(base + CHAT, chat(tag));
    const hit = await postJson(base + CHAT, chat(tag));
    assert.ok(miss.ms < 350, `the miss took ${miss.ms.toFixed(0)} ms`);
    assert.ok(hit.ms >= 380, `the hit took ${hit.ms.toFixed(0)} ms`);
    assert.ok(hit.body.equals(miss.body));
  });

  test('hits add nothing to the usage totals', async () => {
    const { base, id } = await proxy('usage');
    upstream();
    const tag = uniqueTag('usage');
    const model = `usage-model-${tag}`;
    for (let i = 0; i < 3; i++) await postJson(base + CHAT, { ...chat(tag), model });
    const r = await srv.api('GET', `/api/v1/proxies/${id}/usage`);
    assert.equal(r.status, 200);
    const m = r.json.models.find((x) => x.model === model);
    assert.ok(m, JSON.stringify(r.json));
    assert.equal(m.input_tokens, 5, 'the tokens of the one upstream answer');
    assert.equal(m.output_tokens, 4);
  });
});
