// The anthropic provider through both official SDKs: @anthropic-ai/sdk 1.x
// (Authorization: Bearer, anthropic-version 2026-10-21) and the last 0.x
// (X-Api-Key, anthropic-version 2023-06-01), against an emulator proxy and
// against a proxy whose upstream is a test upstream playing Anthropic.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import Anthropic0 from 'anthropic-sdk-0';
import { httpRequest, now } from './lib/http.mjs';
import { freePort, startServer } from './lib/server.mjs';
import { reply, startUpstream } from './lib/upstream.mjs';

const MODEL = 'claude-haiku-4-5';
const SDKS = [
  ['1.x', Anthropic],
  ['0.x', Anthropic0],
];
const client = (Sdk, port, opts = {}) =>
  new Sdk({ baseURL: `http://127.0.0.1:${port}`, apiKey: 'sk-ant-test-key', maxRetries: 0, timeout: 15000, ...opts });
const textOf = (msg) => msg.content.filter((b) => b.type === 'text').map((b) => b.text).join('');

const WEATHER_TOOL = {
  name: 'get_weather',
  description: 'Current weather for a place',
  input_schema: {
    type: 'object',
    properties: {
      location: { type: 'string', description: 'City and country' },
      unit: { type: 'string', enum: ['celsius', 'fahrenheit'] },
      days: { type: 'integer', minimum: 1, maximum: 5 },
    },
    required: ['location', 'unit', 'days'],
  },
};

let srv;
let emuPort;
let pacedPort;
before(async () => {
  // debug logging: the request lines carry the usage the hooks read
  srv = await startServer({ args: ['--log-level', 'debug'], cacheOff: true });
  emuPort = await freePort();
  await srv.createProxy({ name: 'anthropic-emu', provider: 'anthropic', upstream_url: 'emulator', port: emuPort });
  pacedPort = await freePort();
  await srv.createProxy({
    name: 'anthropic-paced',
    provider: 'anthropic',
    upstream_url: 'emulator',
    port: pacedPort,
    config: { emulator: { tokens_per_second: 100 } },
  });
});
after(async () => {
  await srv?.stop();
});

for (const [label, Sdk] of SDKS) {
  describe(`emulator through @anthropic-ai/sdk ${label}`, () => {
    test('messages.create: text, usage, stop_reason, request id', async () => {
      const ai = client(Sdk, emuPort);
      const { data: msg, response } = await ai.messages
        .create({
          model: MODEL,
          max_tokens: 1024,
          system: [{ type: 'text', text: 'You are a duck.' }],
          messages: [{ role: 'user', content: 'Hello there, duck' }],
        })
        .withResponse();
      assert.match(msg.id, /^msg_01[0-9A-Za-z]{22}$/);
      assert.equal(msg.type, 'message');
      assert.equal(msg.role, 'assistant');
      assert.equal(msg.model, MODEL);
      assert.equal(msg.stop_reason, 'end_turn');
      assert.equal(msg.stop_sequence, null);
      assert.match(textOf(msg), /Hello there, duck/);
      assert.ok(msg.usage.input_tokens > 0);
      assert.ok(msg.usage.output_tokens >= 20);
      assert.equal(msg.usage.cache_read_input_tokens, 0);
      assert.equal(msg.usage.cache_creation_input_tokens, 0);
      assert.match(response.headers.get('request-id'), /^req_/);
      // deterministic
      const again = await ai.messages.create({
        model: MODEL,
        max_tokens: 1024,
        system: [{ type: 'text', text: 'You are a duck.' }],
        messages: [{ role: 'user', content: 'Hello there, duck' }],
      });
      assert.equal(again.id, msg.id);
      assert.equal(textOf(again), textOf(msg));
    });

    test('messages.stream(): events in order, finalMessage matches the plain answer', async () => {
      const ai = client(Sdk, emuPort);
      const params = { model: MODEL, max_tokens: 500, messages: [{ role: 'user', content: 'stream to me' }] };
      const plain = await ai.messages.create(params);
      const stream = ai.messages.stream(params);
      const types = [];
      let text = '';
      for await (const ev of stream) {
        types.push(ev.type);
        if (ev.type === 'content_block_delta' && ev.delta.type === 'text_delta') text += ev.delta.text;
      }
      const final = await stream.finalMessage();
      assert.equal(types[0], 'message_start');
      assert.equal(types[1], 'content_block_start');
      assert.deepEqual(types.slice(-3), ['content_block_stop', 'message_delta', 'message_stop']);
      assert.ok(types.filter((t) => t === 'content_block_delta').length >= 5);
      assert.equal(text, textOf(plain));
      assert.equal(textOf(final), textOf(plain));
      assert.equal(final.id, plain.id);
      assert.equal(final.stop_reason, 'end_turn');
      assert.deepEqual(final.usage.output_tokens, plain.usage.output_tokens);
      assert.deepEqual(final.usage.input_tokens, plain.usage.input_tokens);
    });

    test('create({stream:true}) on a paced proxy: deltas arrive one by one, spread in time', async () => {
      const ai = client(Sdk, pacedPort);
      const stream = await ai.messages.create({
        model: MODEL,
        max_tokens: 40,
        messages: [{ role: 'user', content: 'pace '.repeat(60) }], // an echo longer than 40 tokens
        stream: true,
      });
      const seen = [];
      for await (const ev of stream) seen.push({ type: ev.type, t: now() });
      const names = seen.map((e) => e.type); // the SDK drops ping events
      assert.deepEqual(names.slice(0, 2), ['message_start', 'content_block_start']);
      assert.deepEqual(names.slice(-2), ['message_delta', 'message_stop']);
      const deltas = seen.filter((e) => e.type === 'content_block_delta');
      assert.equal(deltas.length, 40); // max_tokens 40, one token per delta
      // 40 tokens at 100/s: about 400 ms between the first and the last
      const spread = deltas.at(-1).t - deltas[0].t;
      assert.ok(spread >= 250, `deltas spread over ${spread.toFixed(0)} ms`);
      const gaps = deltas.slice(1).map((d, i) => d.t - deltas[i].t);
      assert.ok(gaps.filter((g) => g >= 3).length >= 20, 'most deltas arrive on their own');
    });

    test('tool use: tool_use block with schema-shaped input, streamed as input_json_delta', async () => {
      const ai = client(Sdk, emuPort);
      const params = {
        model: MODEL,
        max_tokens: 500,
        tools: [WEATHER_TOOL],
        messages: [{ role: 'user', content: 'Weather in Paris, France?' }],
      };
      const msg = await ai.messages.create(params);
      assert.equal(msg.stop_reason, 'tool_use');
      const tu = msg.content.find((b) => b.type === 'tool_use');
      assert.ok(tu, 'a tool_use block');
      assert.match(tu.id, /^toolu_01/);
      assert.equal(tu.name, 'get_weather');
      assert.equal(typeof tu.input.location, 'string');
      assert.equal(tu.input.unit, 'celsius');
      assert.ok(Number.isInteger(tu.input.days) && tu.input.days >= 1 && tu.input.days <= 5);

      const stream = ai.messages.stream(params);
      let partials = 0;
      stream.on('inputJson', () => partials++);
      const final = await stream.finalMessage();
      assert.ok(partials >= 2, `${partials} input_json_delta events`);
      const ftu = final.content.find((b) => b.type === 'tool_use');
      assert.deepEqual(ftu.input, tu.input);
      assert.equal(final.stop_reason, 'tool_use');

      // handing the result back gets a text answer
      const next = await ai.messages.create({
        ...params,
        messages: [
          ...params.messages,
          { role: 'assistant', content: msg.content },
          { role: 'user', content: [{ type: 'tool_result', tool_use_id: tu.id, content: 'Sunny, 21 C' }] },
        ],
      });
      assert.equal(next.stop_reason, 'end_turn');
      assert.match(textOf(next), /Sunny, 21 C/);
    });

    test('extended thinking: a signed thinking block first, streamed as thinking and signature deltas', async () => {
      const ai = client(Sdk, emuPort);
      const params = {
        model: 'claude-sonnet-4-5',
        max_tokens: 2048,
        thinking: { type: 'enabled', budget_tokens: 1024 },
        messages: [{ role: 'user', content: 'Think, then answer: why ducks?' }],
      };
      const msg = await ai.messages.create(params);
      assert.deepEqual(msg.content.map((b) => b.type), ['thinking', 'text']);
      const [th] = msg.content;
      assert.ok(th.thinking.length > 0);
      assert.match(th.signature, /^[A-Za-z0-9+/]+=*$/);

      const stream = ai.messages.stream(params);
      let thinking = '';
      let signature = '';
      stream.on('thinking', (delta) => (thinking += delta));
      stream.on('signature', (sig) => (signature = sig));
      const final = await stream.finalMessage();
      assert.equal(thinking, th.thinking);
      assert.equal(signature, th.signature);
      assert.deepEqual(final.content, msg.content);
      assert.equal(final.usage.output_tokens, msg.usage.output_tokens);

      // a budget not below max_tokens is the API's 400
      await assert.rejects(
        ai.messages.create({ ...params, max_tokens: 1024 }),
        (e) => e instanceof Sdk.BadRequestError && /max_tokens/.test(e.message),
      );
    });

    test('countTokens agrees with the usage of the same prompt', async () => {
      const ai = client(Sdk, emuPort);
      const prompt = { model: MODEL, messages: [{ role: 'user', content: 'count these tokens for me please' }], tools: [WEATHER_TOOL] };
      const counted = await ai.messages.countTokens(prompt);
      const msg = await ai.messages.create({ ...prompt, max_tokens: 100 });
      assert.equal(counted.input_tokens, msg.usage.input_tokens);
      assert.ok(counted.input_tokens > 300, 'tools add their system prompt');
    });

    test('models.list (auto-paginated) and models.retrieve', async () => {
      const ai = client(Sdk, emuPort);
      const ids = [];
      for await (const m of ai.models.list({ limit: 2 })) {
        assert.equal(m.type, 'model');
        assert.match(m.display_name, /^Claude /);
        assert.match(m.created_at, /^\d{4}-\d\d-\d\dT00:00:00Z$/);
        ids.push(m.id);
      }
      assert.ok(ids.length >= 5);
      assert.equal(new Set(ids).size, ids.length);
      const m = await ai.models.retrieve('claude-sonnet-4-5'); // an alias
      assert.equal(m.id, 'claude-sonnet-4-5-20250929');
      assert.equal(m.display_name, 'Claude Sonnet 4.5');
    });

    test('errors: typed, in Anthropic format, with the request id', async () => {
      const ai = client(Sdk, emuPort);
      await assert.rejects(ai.models.retrieve('claude-nonexistent'), (e) => {
        assert.ok(e instanceof Sdk.NotFoundError, e.constructor.name);
        assert.equal(e.status, 404);
        assert.equal(e.error.type, 'error');
        assert.equal(e.error.error.type, 'not_found_error');
        assert.match(e.requestID, /^req_/);
        return true;
      });
      await assert.rejects(ai.messages.create({ model: MODEL, messages: [{ role: 'user', content: 'x' }] }), (e) => {
        assert.ok(e instanceof Sdk.BadRequestError, e.constructor.name);
        assert.equal(e.error.error.type, 'invalid_request_error');
        assert.equal(e.error.error.message, 'max_tokens: Field required');
        assert.match(e.requestID, /^req_/);
        return true;
      });
      const r = await httpRequest(`http://127.0.0.1:${emuPort}/v1/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"model":',
      });
      assert.equal(r.status, 400);
      assert.match(JSON.parse(r.body).error.message, /^The request body is not valid JSON/);
      const nf = await httpRequest(`http://127.0.0.1:${emuPort}/v1/nothing-here`);
      assert.equal(nf.status, 404);
      assert.deepEqual(JSON.parse(nf.body), { type: 'error', error: { type: 'not_found_error', message: 'Not Found' } });
    });
  });
}

describe('the emulator on the wire', () => {
  test('a stream has event: lines, a ping after the first block start, and ends with message_stop', async () => {
    const r = await httpRequest(`http://127.0.0.1:${emuPort}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': 'k', 'anthropic-version': '2023-06-01' },
      body: JSON.stringify({ model: MODEL, max_tokens: 20, stream: true, messages: [{ role: 'user', content: 'wire' }] }),
    });
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /^text\/event-stream/);
    assert.match(String(r.headers['request-id']), /^req_/);
    const events = r.body.toString('utf8').split('\n\n').filter((e) => e);
    const names = events.map((e) => {
      const m = /^event: (\w+)\ndata: (\{.*\})$/s.exec(e);
      assert.ok(m, `malformed event ${JSON.stringify(e)}`);
      assert.equal(JSON.parse(m[2]).type, m[1]);
      return m[1];
    });
    assert.deepEqual(names.slice(0, 3), ['message_start', 'content_block_start', 'ping']);
    assert.deepEqual(names.slice(-3), ['content_block_stop', 'message_delta', 'message_stop']);
    assert.equal(names.filter((n) => n === 'content_block_delta').length, 20);
  });
});

describe('legacy text completions (0.x SDK)', () => {
  test('completions.create, plain and streamed', async () => {
    const ai = client(Anthropic0, emuPort);
    const params = { model: 'claude-2.1', max_tokens_to_sample: 300, prompt: '\n\nHuman: Tell me a story\n\nAssistant:' };
    // (0.137.0's HUMAN_PROMPT and AI_PROMPT hold a literal backslash-n, which the API rejects)
    const c = await ai.completions.create(params);
    assert.equal(c.type, 'completion');
    assert.match(c.completion, /Tell me a story/);
    assert.equal(c.stop_reason, 'stop_sequence');
    const stream = await ai.completions.create({ ...params, stream: true });
    let text = '';
    let last;
    for await (const ev of stream) {
      assert.equal(ev.type, 'completion');
      text += ev.completion;
      last = ev;
    }
    assert.equal(text, c.completion);
    assert.equal(last.stop_reason, 'stop_sequence');
  });
});

// ---- against a test upstream playing Anthropic ----

const SSE = (name, obj) => `event: ${name}\ndata: ${JSON.stringify(obj)}`;
const MESSAGE_START = SSE('message_start', {
  type: 'message_start',
  message: {
    id: 'msg_up',
    type: 'message',
    role: 'assistant',
    model: MODEL,
    content: [],
    stop_reason: null,
    stop_sequence: null,
    usage: { input_tokens: 7, cache_creation_input_tokens: 1500, cache_read_input_tokens: 300, output_tokens: 1 },
  },
});
const REST = [
  SSE('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }),
  SSE('ping', { type: 'ping' }),
  SSE('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Hi from ' } }),
  SSE('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'upstream' } }),
  SSE('content_block_stop', { type: 'content_block_stop', index: 0 }),
  SSE('message_delta', { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 15 } }),
  SSE('message_stop', { type: 'message_stop' }),
];

describe('forwarding to an Anthropic upstream', () => {
  let up;
  let port;
  before(async () => {
    up = await startUpstream();
    port = await freePort();
    await srv.createProxy({ name: 'anthropic-up', provider: 'anthropic', upstream_url: up.url, port });
  });
  after(async () => {
    await up?.close();
  });

  const message = (text = 'ok') => ({
    id: 'msg_up_plain',
    type: 'message',
    role: 'assistant',
    model: MODEL,
    content: [{ type: 'text', text }],
    stop_reason: 'end_turn',
    stop_sequence: null,
    usage: { input_tokens: 12, cache_creation_input_tokens: 2048, cache_read_input_tokens: 4096, output_tokens: 57 },
  });

  // 0.x's beta.messages adds ?beta=true, 1.x's does not
  for (const [label, Sdk, authCheck, version, betaUrl] of [
    ['1.x', Anthropic, (h) => assert.equal(h.authorization, 'Bearer sk-ant-test-key'), '2026-10-21', '/v1/messages'],
    ['0.x', Anthropic0, (h) => assert.equal(h['x-api-key'], 'sk-ant-test-key'), '2023-06-01', '/v1/messages?beta=true'],
  ]) {
    test(`${label}: auth, anthropic-version and anthropic-beta arrive unchanged; method, path, query intact`, async () => {
      up.clear();
      up.handle(reply.json(message('forwarded'), { headers: { 'request-id': 'req_upstream_1' } }));
      const ai = client(Sdk, port);
      const { data: msg, response } = await ai.beta.messages
        .create({ model: MODEL, max_tokens: 10, betas: ['prompt-caching-2024-07-31', 'pdfs-2024-09-25'], messages: [{ role: 'user', content: 'hi' }] })
        .withResponse();
      assert.equal(textOf(msg), 'forwarded');
      assert.equal(response.headers.get('request-id'), 'req_upstream_1');
      const rec = up.requests.at(-1);
      assert.equal(rec.method, 'POST');
      assert.equal(rec.url, betaUrl);
      assert.equal(label === '1.x' ? rec.headers['x-api-key'] : rec.headers.authorization, undefined);
      authCheck(rec.headers);
      assert.equal(rec.headers['anthropic-version'], version);
      assert.equal(rec.headers['anthropic-beta'], 'prompt-caching-2024-07-31,pdfs-2024-09-25');
      assert.equal(JSON.parse(rec.body).model, MODEL);

      up.handle(reply.json({ data: [], has_more: false, first_id: null, last_id: null }));
      await ai.models.list({ limit: 3, after_id: 'claude-x' });
      const lr = up.requests.at(-1);
      assert.equal(lr.method, 'GET');
      assert.equal(lr.url, '/v1/models?limit=3&after_id=claude-x');
      authCheck(lr.headers);
      assert.equal(lr.headers['anthropic-version'], version);
    });
  }

  test('a stream is relayed unbuffered: the client sees message_start before the upstream sends more', async () => {
    let release;
    const released = new Promise((r) => (release = r));
    let timedOut = false;
    up.handle((req, res) => {
      req.on('end', async () => {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'request-id': 'req_stream_1' });
        res.write(MESSAGE_START + '\n\n');
        // the rest only once the client has seen the first event (or a
        // timeout, which the test reports as buffering)
        const timer = setTimeout(() => {
          timedOut = true;
          release();
        }, 4000);
        await released;
        clearTimeout(timer);
        for (const e of REST) res.write(e + '\n\n');
        res.end();
      });
      req.resume();
    });
    const ai = client(Anthropic, port);
    const stream = ai.messages.stream({ model: 'claude-stream-probe', max_tokens: 100, messages: [{ role: 'user', content: 'hi' }] });
    const types = [];
    for await (const ev of stream) {
      types.push(ev.type);
      if (ev.type === 'message_start') release();
    }
    assert.equal(timedOut, false, 'message_start reached the client only after the upstream sent more');
    const final = await stream.finalMessage();
    assert.equal(textOf(final), 'Hi from upstream');
    assert.equal(final.usage.output_tokens, 15);
    assert.deepEqual(types, ['message_start', 'content_block_start', 'content_block_delta', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop']);
    // the stream hook's usage: 7 + 1500 + 300 input (cache reads and writes added once), 15 output
    await srv.waitForStderr(/POST \/v1\/messages model=claude-stream-probe -> 200 \(upstream 200\) .* tokens 1807\/15/);
  });

  test('usage of a plain body: input_tokens plus both cache counts', async () => {
    up.handle(reply.json(message('plain usage probe')));
    const ai = client(Anthropic0, port);
    await ai.messages.create({ model: 'claude-body-probe', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] });
    await srv.waitForStderr(/model=claude-body-probe -> 200 \(upstream 200\) .* tokens 6156\/57/);
  });

  for (const [label, Sdk] of SDKS) {
    test(`${label}: an upstream 529 reaches the SDK as overloaded, with its request id`, async () => {
      up.handle(
        reply.json(
          { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' }, request_id: 'req_overloaded_1' },
          { status: 529, headers: { 'request-id': 'req_overloaded_1' } },
        ),
      );
      const ai = client(Sdk, port);
      await assert.rejects(ai.messages.create({ model: MODEL, max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }), (e) => {
        assert.ok(e instanceof Sdk.APIError, e.constructor.name);
        assert.equal(e.status, 529);
        assert.equal(e.error.error.type, 'overloaded_error');
        assert.equal(e.requestID, 'req_overloaded_1');
        if (Sdk.OverloadedError) assert.ok(e instanceof Sdk.OverloadedError);
        return true;
      });
    });

    test(`${label}: a mid-stream event: error raises the SDK's APIError`, async () => {
      up.handle(
        reply.sse([
          MESSAGE_START,
          REST[0],
          REST[2],
          SSE('error', { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded mid-stream' } }),
        ]),
      );
      const ai = client(Sdk, port);
      const stream = await ai.messages.create({ model: MODEL, max_tokens: 10, messages: [{ role: 'user', content: 'hi' }], stream: true });
      const types = [];
      await assert.rejects(
        (async () => {
          for await (const ev of stream) types.push(ev.type);
        })(),
        (e) => {
          assert.ok(e instanceof Sdk.APIError, e.constructor.name);
          assert.match(String(e.message), /Overloaded mid-stream/);
          return true;
        },
      );
      assert.deepEqual(types, ['message_start', 'content_block_start', 'content_block_delta']);
    });
  }

  test("Rubberduck's own errors are Anthropic's: an unreachable upstream is a 502 api_error", async () => {
    const deadPort = await freePort();
    const p = await freePort();
    await srv.createProxy({ name: 'anthropic-dead', provider: 'anthropic', upstream_url: `http://127.0.0.1:${deadPort}`, port: p });
    const ai = client(Anthropic, p);
    await assert.rejects(ai.messages.create({ model: MODEL, max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }), (e) => {
      assert.equal(e.status, 502);
      assert.equal(e.error.type, 'error');
      assert.equal(e.error.error.type, 'api_error');
      assert.match(e.requestID, /^req_/);
      assert.equal(e.error.request_id, e.requestID);
      return true;
    });
  });

  test('the API key never reaches the server log', async () => {
    // the debug log has a line per request of this suite, none with the key
    assert.match(srv.stderrText(), /msg="POST \/v1\/messages .*" proxy=anthropic-up req=req_\w+/);
    assert.ok(!srv.stderrText().includes('sk-ant-test-key'), 'the key appears in the server output');
  });
});
