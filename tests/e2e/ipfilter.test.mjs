// IP and country filtering (the ip_filter stage, docs/failure-simulation.md
// "IP filtering"). Real traffic only on loopback: 127.0.0.1 and aliases such
// as 127.0.0.2 (a client socket bound with localAddress), and ::1. Country
// decisions use a trusted proxy (127.0.0.1) forwarding a public address in
// X-Forwarded-For: the address is only ever written into a header, never
// contacted. The GeoIP database is Debian's geoip-database package.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { assertOpenAIError } from './lib/http.mjs';
import { freePort, startServer } from './lib/server.mjs';
import { reply, startUpstream } from './lib/upstream.mjs';

const US = '8.8.8.8';
const GB = '81.2.69.142';
const US6 = '2001:4860:4860::8888';

let srv, up;
before(async () => {
  srv = await startServer({ cacheOff: true });
  up = await startUpstream((req, res, rec) => {
    if (req.url.startsWith('/v1/messages')) {
      return reply.json({ id: 'msg_1', type: 'message', role: 'assistant', model: 'claude-3-5-haiku-latest',
        content: [{ type: 'text', text: 'ok' }], stop_reason: 'end_turn', usage: { input_tokens: 1, output_tokens: 1 } })(req, res, rec);
    }
    return reply.json({ id: 'c1', object: 'chat.completion', created: 1, model: 'gpt-4o-mini',
      choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }],
      usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } })(req, res, rec);
  });
});
after(async () => {
  await up?.close();
  await srv?.stop();
});

const CHAT = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
const MSG = JSON.stringify({ model: 'claude-3-5-haiku-latest', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] });

/** One request from localAddress (default 127.0.0.1) to host:port. */
function send({ port, host = '127.0.0.1', from, path = '/v1/chat/completions', body = CHAT, headers = {} }) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host, port, path, method: 'POST', agent: false, localAddress: from,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try { json = JSON.parse(text); } catch { json = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
      res.on('error', reject);
    });
    req.setTimeout(10000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

/** A fetch for the SDKs whose connections leave from localAddress. */
function fetchFrom(localAddress) {
  return (url, init = {}) => new Promise((resolve, reject) => {
    const u = new URL(url);
    const headers = Object.fromEntries(new Headers(init.headers).entries());
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname + u.search, method: init.method ?? 'GET',
      headers, localAddress, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const h = new Headers();
        for (let i = 0; i < res.rawHeaders.length; i += 2) h.append(res.rawHeaders[i], res.rawHeaders[i + 1]);
        resolve(new Response(Buffer.concat(chunks), { status: res.statusCode, headers: h }));
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(init.body ?? undefined);
  });
}

async function proxy(name, provider, ip_filtering, extra = {}) {
  const port = await freePort();
  const p = await srv.createProxy({ name, provider, upstream_url: up.url, port, config: { ip_filtering }, ...extra });
  return { ...p, port };
}

function assertDenied(r, what) {
  assert.equal(r.status, 403, `${what}: ${r.status} ${r.text}`);
  assert.equal(r.headers['x-rubberduck-failure'], 'ip_blocked', what);
}

describe('allowlist of 127.0.0.1', () => {
  let oa, an;
  before(async () => {
    oa = await proxy('ipf-allow-openai', 'openai', { mode: 'allowlist', allowed_ips: ['127.0.0.1'] });
    an = await proxy('ipf-allow-anthropic', 'anthropic', { mode: 'allowlist', allowed_ips: ['127.0.0.1'] });
  });

  test('OpenAI: 127.0.0.2 gets the native 403 and no upstream call; 127.0.0.1 is admitted', async () => {
    const before = up.requests.length;
    const r = await send({ port: oa.port, from: '127.0.0.2' });
    assertDenied(r, 'from 127.0.0.2');
    const e = assertOpenAIError(assert, r.json);
    assert.match(e.message, /not allowed/);
    assert.ok(r.headers['x-request-id'], 'OpenAI request id header');
    assert.equal(up.requests.length, before, 'a denied request never reaches the upstream');
    const ok = await send({ port: oa.port, from: '127.0.0.1' });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.headers['x-rubberduck-failure'], undefined);
    assert.equal(up.requests.length, before + 1);
    // the upstream sees the client in X-Forwarded-For
    assert.equal(up.requests.at(-1).headers['x-forwarded-for'], '127.0.0.1');
  });

  test('the OpenAI SDK surfaces the 403 as PermissionDeniedError, and works from the allowed address', async () => {
    const before = up.requests.length;
    const blocked = new OpenAI({ baseURL: `http://127.0.0.1:${oa.port}/v1`, apiKey: 'sk-test', maxRetries: 2, timeout: 10000,
      fetch: fetchFrom('127.0.0.2') });
    await assert.rejects(blocked.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }),
      (err) => {
        assert.ok(err instanceof OpenAI.PermissionDeniedError, `${err?.constructor?.name}: ${err?.message}`);
        assert.equal(err.status, 403);
        assert.match(err.message, /not allowed/);
        return true;
      });
    assert.equal(up.requests.length, before, 'not retried into the upstream');
    const allowed = new OpenAI({ baseURL: `http://127.0.0.1:${oa.port}/v1`, apiKey: 'sk-test', maxRetries: 0, timeout: 10000,
      fetch: fetchFrom('127.0.0.1') });
    const c = await allowed.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(c.choices[0].message.content, 'ok');
  });

  test('Anthropic: native permission_error body; the SDK raises PermissionDeniedError', async () => {
    const before = up.requests.length;
    const r = await send({ port: an.port, from: '127.0.0.2', path: '/v1/messages', body: MSG,
      headers: { 'x-api-key': 'k', 'anthropic-version': '2023-06-01' } });
    assertDenied(r, 'anthropic from 127.0.0.2');
    assert.equal(r.json.type, 'error');
    assert.equal(r.json.error.type, 'permission_error');
    assert.match(r.json.error.message, /not allowed/);
    assert.ok(r.headers['request-id'], 'Anthropic request-id header');
    const sdk = new Anthropic({ baseURL: `http://127.0.0.1:${an.port}`, apiKey: 'k', maxRetries: 1, timeout: 10000,
      fetch: fetchFrom('127.0.0.2') });
    await assert.rejects(sdk.messages.create({ model: 'claude-3-5-haiku-latest', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] }),
      (err) => {
        assert.ok(err instanceof Anthropic.PermissionDeniedError, `${err?.constructor?.name}: ${err?.message}`);
        assert.equal(err.status, 403);
        return true;
      });
    assert.equal(up.requests.length, before);
    const ok = new Anthropic({ baseURL: `http://127.0.0.1:${an.port}`, apiKey: 'k', maxRetries: 0, timeout: 10000,
      fetch: fetchFrom('127.0.0.1') });
    const m = await ok.messages.create({ model: 'claude-3-5-haiku-latest', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(m.content[0].text, 'ok');
    assert.equal(up.requests.length, before + 1);
  });

  test('a forwarded header from an untrusted client changes nothing', async () => {
    const r = await send({ port: oa.port, from: '127.0.0.2', headers: { 'x-forwarded-for': '127.0.0.1', 'x-real-ip': '127.0.0.1' } });
    assertDenied(r, 'spoofed X-Forwarded-For');
  });
});

describe('patterns', () => {
  test('blocklist: CIDR, wildcard, and allowed_ips as exceptions', async () => {
    const p = await proxy('ipf-block', 'openai', { mode: 'blocklist', blocked_ips: ['127.0.0.2/31', '127.1.*'],
      allowed_ips: ['127.1.0.9'] });
    const before = up.requests.length;
    for (const from of ['127.0.0.2', '127.0.0.3', '127.1.2.3', '127.1.255.1']) assertDenied(await send({ port: p.port, from }), from);
    assert.equal(up.requests.length, before);
    for (const from of ['127.0.0.1', '127.0.0.4', '127.2.0.1', '127.1.0.9']) {
      const r = await send({ port: p.port, from });
      assert.equal(r.status, 200, `${from}: ${r.text}`);
    }
    assert.equal(up.requests.length, before + 4);
  });

  test('IPv6: a proxy on ::1 with an allowlist and a blocklist of ::1', async () => {
    const a = await proxy('ipf-v6-allow', 'openai', { mode: 'allowlist', allowed_ips: ['::1/128'] }, { bind: '::1' });
    const b = await proxy('ipf-v6-block', 'openai', { mode: 'blocklist', blocked_ips: ['::/127'] }, { bind: '::1' });
    const c = await proxy('ipf-v6-v4only', 'openai', { mode: 'allowlist', allowed_ips: ['*'] }, { bind: '::1' });
    assert.equal((await send({ port: a.port, host: '::1' })).status, 200);
    assertDenied(await send({ port: b.port, host: '::1' }), 'blocked ::1');
    // '*' is all of IPv4, not IPv6
    assertDenied(await send({ port: c.port, host: '::1' }), '::1 against *');
  });
});

describe('trusted proxies', () => {
  let p;
  before(async () => {
    p = await proxy('ipf-trusted', 'openai', { mode: 'blocklist', blocked_ips: ['203.0.113.7', '2001:db8::7'],
      trusted_proxies: ['127.0.0.1'] });
  });

  test('X-Forwarded-For and X-Real-IP from the trusted peer decide the client', async () => {
    const before = up.requests.length;
    assertDenied(await send({ port: p.port, headers: { 'x-forwarded-for': '203.0.113.7' } }), 'forwarded blocked client');
    assertDenied(await send({ port: p.port, headers: { 'x-forwarded-for': '198.51.100.1, 203.0.113.7:5555, 127.0.0.1' } }),
      'walk from the right past the trusted hop');
    assertDenied(await send({ port: p.port, headers: { 'x-forwarded-for': '[2001:db8::7]:443' } }), 'IPv6 element');
    assertDenied(await send({ port: p.port, headers: { 'x-real-ip': '203.0.113.7' } }), 'X-Real-IP');
    assert.equal(up.requests.length, before);
    // a spoofed element left of the real client is not read
    const ok = await send({ port: p.port, headers: { 'x-forwarded-for': '203.0.113.7, 198.51.100.1' } });
    assert.equal(ok.status, 200, ok.text);
    // the upstream gets the chain plus the peer
    assert.equal(up.requests.at(-1).headers['x-forwarded-for'], '203.0.113.7, 198.51.100.1, 127.0.0.1');
  });

  test('the same headers from an untrusted peer are ignored', async () => {
    const r = await send({ port: p.port, from: '127.0.0.2', headers: { 'x-forwarded-for': '203.0.113.7', 'x-real-ip': '203.0.113.7' } });
    assert.equal(r.status, 200, r.text);
  });

  test('a malformed forwarded header from the trusted peer is refused', async () => {
    const before = up.requests.length;
    for (const h of [{ 'x-forwarded-for': 'unknown' }, { 'x-forwarded-for': '1.2.3.4, 300.1.1.1' }, { 'x-real-ip': 'localhost' }]) {
      const r = await send({ port: p.port, headers: h });
      assertDenied(r, JSON.stringify(h));
      assert.match(r.json.error.message, /forwarded client address/);
    }
    assert.equal(up.requests.length, before);
    // not from an untrusted peer: its headers are not read at all
    assert.equal((await send({ port: p.port, from: '127.0.0.2', headers: { 'x-forwarded-for': 'unknown' } })).status, 200);
  });
});

describe('countries (GeoIP, Debian geoip-database)', () => {
  test('countries_blocked through a trusted proxy', async () => {
    const p = await proxy('ipf-country-block', 'openai', { mode: 'blocklist', countries_blocked: ['GB'],
      trusted_proxies: ['127.0.0.1'], geoip_database: '/usr/share/GeoIP/GeoIP.dat' });
    const before = up.requests.length;
    const r = await send({ port: p.port, headers: { 'x-forwarded-for': GB } });
    assertDenied(r, 'GB client');
    assertOpenAIError(assert, r.json);
    assert.match(r.json.error.message, /Country, region, or territory not supported/);
    assert.equal(up.requests.length, before);
    for (const ip of [US, US6]) {
      const ok = await send({ port: p.port, headers: { 'x-forwarded-for': ip } });
      assert.equal(ok.status, 200, `${ip}: ${ok.text}`);
    }
    // loopback has no country: not blocked
    assert.equal((await send({ port: p.port })).status, 200);
  });

  test('countries_allowed (allowlist): only that country, plus listed addresses', async () => {
    const p = await proxy('ipf-country-allow', 'anthropic', { mode: 'allowlist', countries_allowed: ['US'],
      allowed_ips: ['127.0.0.3'], trusted_proxies: ['127.0.0.1'] });
    const opts = { port: p.port, path: '/v1/messages', body: MSG, headers: { 'x-api-key': 'k', 'anthropic-version': '2023-06-01' } };
    assert.equal((await send({ ...opts, headers: { ...opts.headers, 'x-forwarded-for': US } })).status, 200);
    assert.equal((await send({ ...opts, headers: { ...opts.headers, 'x-forwarded-for': US6 } })).status, 200);
    const gb = await send({ ...opts, headers: { ...opts.headers, 'x-forwarded-for': GB } });
    assertDenied(gb, 'GB client');
    assert.equal(gb.json.error.type, 'permission_error');
    assertDenied(await send(opts), 'loopback without a country');
    assert.equal((await send({ ...opts, from: '127.0.0.3' })).status, 200);
  });

  test('an unreadable or invalid database is a 400 naming the field', async () => {
    const p = await proxy('ipf-country-bad', 'openai', { mode: 'blocklist', blocked_ips: ['127.0.0.9'] });
    for (const [path, field, re] of [
      ['/nonexistent/GeoIP.dat', 'ip_filtering.geoip_database', /cannot read \/nonexistent\/GeoIP\.dat/],
      ['/usr/share/GeoIP/GeoIPv6.dat', 'ip_filtering.geoip_database', /not a GeoIP IPv4 country database/],
    ]) {
      const r = await srv.api('PUT', `/api/v1/proxies/${p.id}/config`,
        { ip_filtering: { mode: 'blocklist', countries_blocked: ['GB'], geoip_database: path } });
      assert.equal(r.status, 400, r.text);
      assert.equal(r.json.error.field, field);
      assert.match(r.json.error.message, re);
    }
    const r = await srv.api('PUT', `/api/v1/proxies/${p.id}/config`, { ip_filtering: { mode: 'blocklist', countries_blocked: ['gb'] } });
    assert.equal(r.status, 400);
    assert.equal(r.json.error.field, 'ip_filtering.countries_blocked[0]');
    // the proxy kept its configuration
    assertDenied(await send({ port: p.port, from: '127.0.0.9' }), 'old config still in force');
  });
});

describe('other providers answer in their own format', () => {
  test('Bedrock: AccessDeniedException; Gemini: PERMISSION_DENIED', async () => {
    const br = await proxy('ipf-bedrock', 'bedrock', { mode: 'allowlist', allowed_ips: ['127.0.0.1'] });
    const r = await send({ port: br.port, from: '127.0.0.2', path: '/model/anthropic.claude-3-haiku-20240307-v1:0/invoke',
      body: JSON.stringify({ anthropic_version: 'bedrock-2023-05-31', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] }) });
    assertDenied(r, 'bedrock');
    assert.equal(r.headers['x-amzn-errortype'], 'AccessDeniedException');
    assert.match(r.json.message ?? r.json.Message, /not allowed/);
    const gm = await proxy('ipf-gemini', 'gemini', { mode: 'allowlist', allowed_ips: ['127.0.0.1'] });
    const g = await send({ port: gm.port, from: '127.0.0.2', path: '/v1beta/models/gemini-2.0-flash:generateContent',
      body: JSON.stringify({ contents: [{ parts: [{ text: 'hi' }] }] }) });
    assertDenied(g, 'gemini');
    assert.equal(g.json.error.status, 'PERMISSION_DENIED');
    assert.equal(g.json.error.code, 403);
  });
});

describe('runtime updates', () => {
  test('a new configuration applies to the next request, also while requests run', async () => {
    const p = await proxy('ipf-update', 'openai', { mode: 'allowlist', allowed_ips: ['127.0.0.1'] });
    assertDenied(await send({ port: p.port, from: '127.0.0.2' }), 'before');
    await srv.putConfig(p.id, { ip_filtering: { mode: 'allowlist', allowed_ips: ['127.0.0.1', '127.0.0.2'] } });
    assert.equal((await send({ port: p.port, from: '127.0.0.2' })).status, 200);
    await srv.putConfig(p.id, { ip_filtering: { enabled: false, mode: 'blocklist', blocked_ips: ['127.0.0.1'] } });
    assert.equal((await send({ port: p.port })).status, 200, 'disabled block does nothing');
    await srv.putConfig(p.id, { ip_filtering: { mode: 'blocklist', blocked_ips: ['127.0.0.1'] } });
    assertDenied(await send({ port: p.port }), 'blocked after the update');

    // flip between two configurations while requests from 127.0.0.2 run:
    // every answer is a well-formed 200 or a native 403, nothing else
    const deadline = Date.now() + 1500;
    const seen = { 200: 0, 403: 0 };
    const traffic = async () => {
      while (Date.now() < deadline) {
        const r = await send({ port: p.port, from: '127.0.0.2' });
        assert.ok(r.status === 200 || r.status === 403, `${r.status} ${r.text}`);
        if (r.status === 403) assertOpenAIError(assert, r.json);
        else assert.equal(r.json.choices[0].message.content, 'ok');
        seen[r.status]++;
      }
    };
    const flips = async () => {
      for (let i = 0; Date.now() < deadline; i++) {
        await srv.putConfig(p.id, { ip_filtering: i % 2 ? { mode: 'blocklist', blocked_ips: ['127.0.0.2'] }
          : { mode: 'allowlist', allowed_ips: ['127.0.0.2'] } });
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    await Promise.all([traffic(), traffic(), flips()]);
    assert.ok(seen[200] > 0 && seen[403] > 0, JSON.stringify(seen));
  });

  test('with other blocks: failure.reveal false hides the failure type; middleware_pipeline can drop the stage', async () => {
    const p = await proxy('ipf-combo', 'openai', { mode: 'allowlist', allowed_ips: ['127.0.0.1'] });
    await srv.putConfig(p.id, { ip_filtering: { mode: 'allowlist', allowed_ips: ['127.0.0.1'] }, failure: { reveal: false },
      limits: { max_body_bytes: 4096 } });
    const hidden = await send({ port: p.port, from: '127.0.0.2' });
    assert.equal(hidden.status, 403);
    assert.equal(hidden.headers['x-rubberduck-failure'], undefined, 'nothing tells it from a real 403');
    assertOpenAIError(assert, hidden.json);
    await srv.putConfig(p.id, { ip_filtering: { mode: 'allowlist', allowed_ips: ['127.0.0.1'] },
      middleware_pipeline: ['rate_limiting', 'provider_forwarding'] });
    const before = up.requests.length;
    assert.equal((await send({ port: p.port, from: '127.0.0.2' })).status, 200, 'stage dropped: everyone gets in');
    assert.equal(up.requests.length, before + 1);
    await srv.putConfig(p.id, { ip_filtering: { mode: 'allowlist', allowed_ips: ['127.0.0.1'] },
      middleware_pipeline: ['authentication', 'provider_forwarding'] });
    assertDenied(await send({ port: p.port, from: '127.0.0.2' }), '"authentication" stands for the ip_filter stage');
  });

  test('a 10,000-entry blocklist: applied and enforced', async () => {
    const blocked_ips = [];
    for (let i = 0; i < 10000; i++) blocked_ips.push(`10.${i >> 8}.${i & 255}.0/24`);
    blocked_ips.push('127.0.0.2');
    const p = await proxy('ipf-big', 'openai', { mode: 'blocklist', blocked_ips });
    assertDenied(await send({ port: p.port, from: '127.0.0.2' }), 'last entry of a big list');
    assert.equal((await send({ port: p.port })).status, 200);
    const cfg = await srv.api('GET', `/api/v1/proxies/${p.id}/config`);
    assert.equal(cfg.json.ip_filtering.blocked_ips.length, 10001);
  });
});
