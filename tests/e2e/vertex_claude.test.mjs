// Claude on Vertex AI through Anthropic's own Vertex client
// (@anthropic-ai/vertex-sdk, AnthropicVertex), as an application uses it:
// a vertex_ai proxy whose publishers/anthropic routes speak Anthropic's
// Messages API, against the emulator and against a test upstream playing
// Vertex. Auth is an OAuth2Client holding a fixed token (no ADC, no
// metadata server, no network).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { AnthropicVertex } from '@anthropic-ai/vertex-sdk';
import { OAuth2Client } from 'google-auth-library';
import { httpRequest, jsonOf, now } from './lib/http.mjs';
import { freePort, startServer } from './lib/server.mjs';
import { reply, startUpstream } from './lib/upstream.mjs';

const PROJECT = 'duck-project';
const REGION = 'us-east5';
const MODEL = 'claude-sonnet-4@20250514';
const TOKEN = 'ya29.rubberduck-vertex-claude-token';
const CLAUDE = `/v1/projects/${PROJECT}/locations/${REGION}/publishers/anthropic/models`;

function client(port, opts = {}) {
  const authClient = new OAuth2Client();
  authClient.setCredentials({ access_token: TOKEN, expiry_date: Date.now() + 3600e3 });
  return new AnthropicVertex({
    baseURL: `http://127.0.0.1:${port}/v1`,
    region: REGION,
    projectId: PROJECT,
    authClient,
    maxRetries: 0,
    timeout: 15000,
    ...opts,
  });
}

const textOf = (msg) => msg.content.filter((b) => b.type === 'text').map((b) => b.text).join('');
const close = (a, b) => Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(b));

let srv;
before(async () => {
  srv = await startServer({ cacheOff: true });
});
after(async () => {
  await srv?.stop();
});

async function usageOf(id, model) {
  const r = await srv.api('GET', `/api/v1/proxies/${id}/usage`);
  assert.equal(r.status, 200);
  return r.json.models.find((m) => m.model === model);
}

describe('Claude on Vertex: emulator through AnthropicVertex', () => {
  let proxy;
  let port;
  let pacedPort;
  before(async () => {
    port = await freePort();
    proxy = await srv.createProxy({ name: 'vtx-claude-emu', provider: 'vertex_ai', upstream_url: 'emulator', port });
    pacedPort = await freePort();
    await srv.createProxy({
      name: 'vtx-claude-paced',
      provider: 'vertex_ai',
      upstream_url: 'emulator',
      port: pacedPort,
      config: { emulator: { tokens_per_second: 100 } },
    });
  });

  let plain;
  test('messages.create: text, usage, stop reason, the path model, a request id', async () => {
    const ai = client(port);
    const { data: msg, response } = await ai.messages
      .create({ model: MODEL, max_tokens: 200, messages: [{ role: 'user', content: 'Tell me about ducks on Vertex' }] })
      .withResponse();
    plain = msg;
    assert.equal(msg.type, 'message');
    assert.equal(msg.role, 'assistant');
    assert.equal(msg.model, MODEL);
    assert.equal(msg.stop_reason, 'end_turn');
    assert.ok(textOf(msg).length > 20);
    assert.ok(msg.usage.input_tokens > 0);
    assert.ok(msg.usage.output_tokens > 5);
    assert.match(response.headers.get('request-id'), /^req_[0-9a-f]{16}$/);
    assert.match(response.headers.get('content-type'), /^application\/json/);
    // deterministic: the same request, the same answer
    const again = await ai.messages.create({ model: MODEL, max_tokens: 200, messages: [{ role: 'user', content: 'Tell me about ducks on Vertex' }] });
    assert.equal(textOf(again), textOf(msg));

    // the usage the proxy recorded is Anthropic's, priced by the anthropic row
    const m = await usageOf(proxy.id, MODEL);
    assert.equal(m.provider, 'vertex_ai');
    assert.equal(m.requests, 2);
    assert.equal(m.input_tokens, 2 * msg.usage.input_tokens);
    assert.equal(m.output_tokens, 2 * msg.usage.output_tokens);
    assert.equal(m.unpriced_requests, 0);
    assert.equal(m.price.provider, 'anthropic');
    assert.equal(m.price.family, 'claude-sonnet-4');
    const want = (m.input_tokens * m.price.input_per_mtok + m.output_tokens * m.price.output_per_mtok) / 1e6;
    assert.ok(close(m.cost_usd, want), `${m.cost_usd} vs ${want}`);
  });

  test('messages.stream(): the full event sequence, the plain answer, usage recorded', async () => {
    const model = 'claude-3-5-sonnet-v2@20241022';
    const ai = client(port);
    const body = { model, max_tokens: 200, messages: [{ role: 'user', content: 'Tell me about ducks on Vertex' }] };
    const ref = await ai.messages.create(body);
    const stream = ai.messages.stream(body);
    const types = [];
    for await (const ev of stream) types.push(ev.type);
    const final = await stream.finalMessage();
    assert.equal(types[0], 'message_start');
    assert.equal(types[1], 'content_block_start');
    assert.equal(types.at(-3), 'content_block_stop');
    assert.equal(types.at(-2), 'message_delta');
    assert.equal(types.at(-1), 'message_stop');
    const deltas = types.filter((t) => t === 'content_block_delta').length;
    assert.ok(deltas >= 3, `${deltas} deltas`);
    assert.equal(types.length, 5 + deltas);
    assert.equal(textOf(final), textOf(ref));
    assert.equal(final.model, model);
    assert.equal(final.usage.output_tokens, ref.usage.output_tokens);
    assert.equal(final.usage.input_tokens, ref.usage.input_tokens);

    // the stream's usage (message_start + message_delta) counted like the plain body's
    const m = await usageOf(proxy.id, model);
    assert.equal(m.requests, 2);
    assert.equal(m.input_tokens, 2 * ref.usage.input_tokens);
    assert.equal(m.output_tokens, 2 * ref.usage.output_tokens);
    assert.equal(m.price.provider, 'anthropic');
    assert.equal(m.price.family, 'claude-3-5-sonnet');
  });

  test('on the wire: streamRawPredict answers Anthropic SSE with event: lines', async () => {
    const r = await httpRequest(`http://127.0.0.1:${port}${CLAUDE}/${MODEL}:streamRawPredict`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({ anthropic_version: 'vertex-2023-10-16', max_tokens: 20, stream: true, messages: [{ role: 'user', content: 'hi' }] }),
    });
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /^text\/event-stream/);
    const names = [...r.body.toString().matchAll(/^event: (\w+)$/gm)].map((x) => x[1]);
    assert.deepEqual(names.slice(0, 3), ['message_start', 'content_block_start', 'ping']);
    assert.deepEqual(names.slice(-3), ['content_block_stop', 'message_delta', 'message_stop']);
  });

  test('a paced stream: deltas arrive one by one, spread in time', async () => {
    const ai = client(pacedPort);
    const stream = await ai.messages.create({
      model: MODEL, max_tokens: 40, stream: true, messages: [{ role: 'user', content: 'Pace me through Vertex' }],
    });
    const at = [];
    for await (const ev of stream) if (ev.type === 'content_block_delta') at.push(now());
    assert.ok(at.length >= 5, `${at.length} deltas`);
    const spread = at.at(-1) - at[0];
    assert.ok(spread > 40, `deltas spread over ${spread} ms`);
  });

  test('tool use: a tool_use block with schema-shaped input', async () => {
    const ai = client(port);
    const msg = await ai.messages.create({
      model: MODEL,
      max_tokens: 300,
      tool_choice: { type: 'tool', name: 'get_weather' },
      tools: [{
        name: 'get_weather',
        description: 'Weather for a city',
        input_schema: { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer' } }, required: ['city', 'days'] },
      }],
      messages: [{ role: 'user', content: 'Weather in Paris?' }],
    });
    assert.equal(msg.stop_reason, 'tool_use');
    const use = msg.content.find((b) => b.type === 'tool_use');
    assert.equal(use.name, 'get_weather');
    assert.equal(typeof use.input.city, 'string');
    assert.equal(typeof use.input.days, 'number');
  });

  test('messages.countTokens: count-tokens:rawPredict agrees with the usage of the same prompt', async () => {
    const ai = client(port);
    const counted = await ai.messages.countTokens({ model: MODEL, messages: [{ role: 'user', content: 'Tell me about ducks on Vertex' }] });
    assert.equal(counted.input_tokens, plain.usage.input_tokens);
  });

  test('errors are Anthropic-native: a bad body is a 400 invalid_request_error the SDK types', async () => {
    const ai = client(port);
    await assert.rejects(ai.messages.create({ model: MODEL, max_tokens: 10 }), (e) => {
      assert.ok(e instanceof AnthropicVertex.BadRequestError, e.constructor.name);
      assert.equal(e.status, 400);
      assert.equal(e.error.type, 'error');
      assert.equal(e.error.error.type, 'invalid_request_error');
      assert.match(e.error.error.message, /messages/);
      assert.match(e.requestID, /^req_[0-9a-f]{16}$/);
      return true;
    });
    // malformed JSON by hand: the same shape, not Google's {"error":{"code","status"}}
    const r = await httpRequest(`http://127.0.0.1:${port}${CLAUDE}/${MODEL}:rawPredict`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"anthropic_version":',
    });
    assert.equal(r.status, 400);
    const err = jsonOf(r.body);
    assert.equal(err.type, 'error');
    assert.equal(err.error.type, 'invalid_request_error');
    assert.equal(err.error.status, undefined);
    // a Gemini route of the same proxy keeps Google's errors
    const g = await httpRequest(`http://127.0.0.1:${port}/v1/projects/${PROJECT}/locations/${REGION}/publishers/google/models/gemini-2.0-flash:generateContent`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: '{',
    });
    assert.equal(g.status, 400);
    assert.equal(jsonOf(g.body).error.status, 'INVALID_ARGUMENT');
  });

  test("Rubberduck's own errors on Claude routes are Anthropic's: 413 request_too_large", async () => {
    const p = await freePort();
    await srv.createProxy({
      name: 'vtx-claude-small', provider: 'vertex_ai', upstream_url: 'emulator', port: p,
      config: { limits: { max_body_bytes: 1024 } },
    });
    const ai = client(p);
    await assert.rejects(
      ai.messages.create({ model: MODEL, max_tokens: 10, messages: [{ role: 'user', content: 'x'.repeat(4096) }] }),
      (e) => {
        assert.equal(e.status, 413);
        assert.equal(e.error.type, 'error');
        assert.equal(e.error.error.type, 'request_too_large');
        assert.match(e.requestID, /^req_[0-9a-f]{16}$/);
        return true;
      },
    );
  });
});

// Recorded shapes of what Vertex answers for Claude: Anthropic's Message and
// its SSE stream (Vertex relays Anthropic's model ids in the body).
const message = (text) => ({
  id: 'msg_vrtx_01AbCdEfGh',
  type: 'message',
  role: 'assistant',
  model: 'claude-3-5-sonnet-v2-20241022',
  content: [{ type: 'text', text }],
  stop_reason: 'end_turn',
  stop_sequence: null,
  usage: { input_tokens: 12, cache_creation_input_tokens: 2048, cache_read_input_tokens: 4096, output_tokens: 57 },
});
const SSE = (name, obj) => `event: ${name}\ndata: ${JSON.stringify(obj)}\n\n`;
const STREAM = [
  SSE('message_start', {
    type: 'message_start',
    message: { id: 'msg_vrtx_s', type: 'message', role: 'assistant', model: 'claude-3-5-sonnet-v2-20241022', content: [],
      stop_reason: null, stop_sequence: null,
      usage: { input_tokens: 7, cache_creation_input_tokens: 1500, cache_read_input_tokens: 300, output_tokens: 1 } },
  }),
  SSE('ping', { type: 'ping' }),
  SSE('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }),
  SSE('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Hi from ' } }),
  SSE('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Vertex' } }),
  SSE('content_block_stop', { type: 'content_block_stop', index: 0 }),
  SSE('message_delta', { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 15 } }),
  SSE('message_stop', { type: 'message_stop' }),
];

describe('Claude on Vertex: forwarded to a test upstream', () => {
  let up;
  let port;
  let proxy;
  before(async () => {
    up = await startUpstream();
    port = await freePort();
    proxy = await srv.createProxy({ name: 'vtx-claude-up', provider: 'vertex_ai', upstream_url: up.url, port });
  });
  after(async () => {
    await up?.close();
  });

  test('rawPredict: path, Bearer token and body arrive intact; usage and cost from the Anthropic body', async () => {
    const model = 'claude-3-5-sonnet-v2@20241022';
    up.clear();
    up.handle(reply.json(message('forwarded'), { headers: { 'request-id': 'req_vertex_up_1' } }));
    const ai = client(port);
    const { data: msg, response } = await ai.messages
      .create({ model, max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] })
      .withResponse();
    assert.equal(textOf(msg), 'forwarded');
    assert.equal(response.headers.get('request-id'), 'req_vertex_up_1');
    const rec = up.requests.at(-1);
    assert.equal(rec.method, 'POST');
    assert.equal(rec.url, `${CLAUDE}/${model}:rawPredict`);
    assert.equal(rec.headers.authorization, `Bearer ${TOKEN}`);
    assert.equal(rec.headers['anthropic-version'], undefined); // the SDK moves it into the body
    const sent = JSON.parse(rec.body);
    assert.equal(sent.model, undefined);
    // the SDK moves its anthropic-version header into the body (1.1.4 with sdk 1.14: "2026-10-21")
    assert.match(sent.anthropic_version, /^(vertex-)?\d{4}-\d{2}-\d{2}$/);
    assert.equal(sent.max_tokens, 10);

    const m = await usageOf(proxy.id, model);
    assert.equal(m.requests, 1);
    assert.equal(m.input_tokens, 12 + 2048 + 4096); // Anthropic's input_tokens excludes the cache counts
    assert.equal(m.cached_tokens, 4096);
    assert.equal(m.cache_write_tokens, 2048);
    assert.equal(m.output_tokens, 57);
    assert.equal(m.price.provider, 'anthropic');
    assert.equal(m.price.family, 'claude-3-5-sonnet');
    const p = m.price;
    const want = (12 * p.input_per_mtok + 4096 * p.cached_input_per_mtok + 2048 * p.cache_write_per_mtok + 57 * p.output_per_mtok) / 1e6;
    assert.ok(close(m.cost_usd, want), `${m.cost_usd} vs ${want}`);
  });

  test('streamRawPredict: relayed event by event; the stream hook reads Anthropic usage', async () => {
    const model = 'claude-3-haiku@20240307';
    up.clear();
    up.handle(reply.sse(STREAM.map((e) => e.replace(/\n\n$/, '')), { intervalMs: 20 }));
    const ai = client(port);
    const stream = ai.messages.stream({ model, max_tokens: 100, messages: [{ role: 'user', content: 'hi' }] });
    const types = [];
    let sentAtFirst = -1;
    for await (const ev of stream) {
      if (types.length === 0) sentAtFirst = up.requests.at(-1).sent.length;
      types.push(ev.type);
    }
    // unbuffered: the first event reached the SDK before the upstream had sent the last
    assert.ok(sentAtFirst >= 1 && sentAtFirst < STREAM.length, `${sentAtFirst} of ${STREAM.length} sent at the first event`);
    const final = await stream.finalMessage();
    assert.equal(textOf(final), 'Hi from Vertex');
    assert.deepEqual(types, ['message_start', 'content_block_start', 'content_block_delta', 'content_block_delta',
      'content_block_stop', 'message_delta', 'message_stop']);
    assert.equal(up.requests.at(-1).url, `${CLAUDE}/${model}:streamRawPredict`);
    assert.equal(JSON.parse(up.requests.at(-1).body).stream, true);
    const m = await usageOf(proxy.id, model);
    assert.equal(m.input_tokens, 7 + 1500 + 300);
    assert.equal(m.cached_tokens, 300);
    assert.equal(m.cache_write_tokens, 1500);
    assert.equal(m.output_tokens, 15);
    assert.equal(m.price.family, 'claude-3-haiku');
    assert.ok(m.cost_usd > 0);
  });

  test('count-tokens:rawPredict keeps the model in the body', async () => {
    up.clear();
    up.handle(reply.json({ input_tokens: 42 }));
    const ai = client(port);
    const r = await ai.messages.countTokens({ model: MODEL, messages: [{ role: 'user', content: 'count' }] });
    assert.equal(r.input_tokens, 42);
    const rec = up.requests.at(-1);
    assert.equal(rec.url, `${CLAUDE}/count-tokens:rawPredict`);
    assert.equal(JSON.parse(rec.body).model, MODEL);
  });

  test("an upstream's Anthropic error reaches the SDK typed, with its request id", async () => {
    up.handle(reply.json(
      { type: 'error', error: { type: 'rate_limit_error', message: 'Quota exceeded' } },
      { status: 429, headers: { 'request-id': 'req_vertex_429' } },
    ));
    const ai = client(port);
    await assert.rejects(ai.messages.create({ model: MODEL, max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }), (e) => {
      assert.ok(e instanceof AnthropicVertex.RateLimitError, e.constructor.name);
      assert.equal(e.error.error.type, 'rate_limit_error');
      assert.equal(e.requestID, 'req_vertex_429');
      return true;
    });
  });

  test('an unreachable upstream is a 502 api_error in Anthropic format on Claude routes', async () => {
    const dead = await freePort();
    const p = await freePort();
    await srv.createProxy({ name: 'vtx-claude-dead', provider: 'vertex_ai', upstream_url: `http://127.0.0.1:${dead}`, port: p });
    const ai = client(p);
    await assert.rejects(ai.messages.create({ model: MODEL, max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }), (e) => {
      assert.equal(e.status, 502);
      assert.equal(e.error.type, 'error');
      assert.equal(e.error.error.type, 'api_error');
      assert.doesNotMatch(e.error.error.message, new RegExp(String(dead)));
      assert.match(e.requestID, /^req_[0-9a-f]{16}$/);
      return true;
    });
  });
});
