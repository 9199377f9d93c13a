// The built-in emulator (upstream_url "emulator"), driven by the official
// openai SDK exactly as an application would use it.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import { httpRequest, jsonOf, now } from './lib/http.mjs';
import { freePort, startServer } from './lib/server.mjs';

const MODEL = 'gpt-4o-mini';
const client = (port) => new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'sk-test', maxRetries: 0, timeout: 15000 });

function textOfResponse(resp) {
  return (resp.output || [])
    .flatMap((o) => (o.type === 'message' ? o.content : []))
    .filter((c) => c.type === 'output_text')
    .map((c) => c.text)
    .join('');
}

describe('emulator through the openai SDK', () => {
  let srv;
  let port;
  let ai;
  before(async () => {
    srv = await startServer();
    port = await freePort();
    await srv.createProxy({ name: 'emu', provider: 'openai', upstream_url: 'emulator', port });
    ai = client(port);
  });
  after(async () => {
    await srv?.stop();
  });

  test('chat completion (non-stream): content and consistent usage', async () => {
    const r = await ai.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'Hello there, duck' }] });
    assert.equal(r.object, 'chat.completion');
    assert.equal(typeof r.id, 'string');
    assert.ok(r.id.length > 0);
    assert.ok(Number.isInteger(r.created));
    assert.equal(r.model, MODEL);
    assert.equal(r.choices.length, 1);
    const c = r.choices[0];
    assert.equal(c.index, 0);
    assert.equal(c.message.role, 'assistant');
    assert.equal(typeof c.message.content, 'string');
    assert.ok(c.message.content.length > 0);
    assert.equal(c.finish_reason, 'stop');
    assert.ok(r.usage.prompt_tokens > 0, 'prompt_tokens');
    assert.ok(r.usage.completion_tokens > 0, 'completion_tokens');
    assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
  });

  test('same request, same answer; a different request, a different answer', async () => {
    const req = { model: MODEL, messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'determinism please' }] };
    const a = await ai.chat.completions.create(req);
    const b = await ai.chat.completions.create(req);
    assert.equal(a.choices[0].message.content, b.choices[0].message.content);
    assert.deepEqual(a.usage, b.usage);
    const c = await ai.chat.completions.create({ ...req, messages: [{ role: 'user', content: 'something else entirely' }] });
    assert.notEqual(c.choices[0].message.content, a.choices[0].message.content);
  });

  test('longer prompts count more prompt tokens', async () => {
    const short = await ai.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] });
    const long = await ai.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi '.repeat(200) }] });
    assert.ok(long.usage.prompt_tokens > short.usage.prompt_tokens + 50, `${long.usage.prompt_tokens} vs ${short.usage.prompt_tokens}`);
  });

  test('chat completion stream: role first, text in chunks, stop, no usage unless asked', async () => {
    const stream = await ai.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'stream to me' }], stream: true });
    const chunks = [];
    for await (const ch of stream) chunks.push(ch);
    assert.ok(chunks.length >= 3, `only ${chunks.length} chunks`);
    for (const ch of chunks) {
      assert.equal(ch.object, 'chat.completion.chunk');
      assert.equal(ch.id, chunks[0].id, 'every chunk carries the same id');
      assert.equal(ch.model, MODEL);
    }
    assert.equal(chunks[0].choices[0].delta.role, 'assistant');
    const text = chunks.map((ch) => ch.choices[0]?.delta?.content ?? '').join('');
    assert.ok(text.length > 0);
    const contentChunks = chunks.filter((ch) => ch.choices[0]?.delta?.content);
    assert.ok(contentChunks.length >= 2, 'the text should come in several chunks');
    const last = chunks.filter((ch) => ch.choices.length).at(-1);
    assert.equal(last.choices[0].finish_reason, 'stop');
    assert.ok(!chunks.some((ch) => ch.usage), 'usage must only be sent when stream_options.include_usage is set');
  });

  test('stream with include_usage ends with a usage chunk with empty choices', async () => {
    const stream = await ai.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: 'count my tokens' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const ch of stream) chunks.push(ch);
    const last = chunks.at(-1);
    assert.deepEqual(last.choices, []);
    assert.ok(last.usage.prompt_tokens > 0);
    assert.ok(last.usage.completion_tokens > 0);
    assert.equal(last.usage.total_tokens, last.usage.prompt_tokens + last.usage.completion_tokens);
    assert.equal(chunks.filter((ch) => ch.usage).length, 1, 'exactly one chunk carries usage');
  });

  test('stream on the wire: text/event-stream, data: lines, ends with data: [DONE]', async () => {
    const r = await httpRequest(`http://127.0.0.1:${port}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer sk-test' },
      body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'wire' }], stream: true }),
    });
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /^text\/event-stream/);
    const text = r.body.toString('utf8');
    const events = text.split(/\r?\n\r?\n/).filter((e) => e.trim());
    assert.equal(events.at(-1).trim(), 'data: [DONE]');
    for (const e of events.slice(0, -1)) {
      assert.match(e, /^data: \{/);
      JSON.parse(e.slice(6));
    }
  });

  test('completions (legacy)', async () => {
    const r = await ai.completions.create({ model: 'gpt-3.5-turbo-instruct', prompt: 'Say something' });
    assert.equal(r.object, 'text_completion');
    assert.equal(typeof r.choices[0].text, 'string');
    assert.ok(r.choices[0].text.length > 0);
    assert.ok(r.usage.prompt_tokens > 0 && r.usage.completion_tokens > 0);
    assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
    const again = await ai.completions.create({ model: 'gpt-3.5-turbo-instruct', prompt: 'Say something' });
    assert.equal(again.choices[0].text, r.choices[0].text);
  });

  test('embeddings with the SDK default (base64 on the wire): floats of the requested dimensions', async () => {
    const r = await ai.embeddings.create({ model: 'text-embedding-3-small', input: 'hello world', dimensions: 8 });
    assert.equal(r.object, 'list');
    assert.equal(r.data.length, 1);
    const v = r.data[0].embedding;
    assert.equal(v.length, 8);
    assert.ok(v.every((x) => typeof x === 'number' && Number.isFinite(x)), JSON.stringify(v));
    assert.ok(v.some((x) => x !== 0), 'an all-zero vector');
    assert.ok(r.usage.prompt_tokens > 0);
    const again = await ai.embeddings.create({ model: 'text-embedding-3-small', input: 'hello world', dimensions: 8 });
    assert.deepEqual(again.data[0].embedding, v, 'embeddings must be deterministic');
    const other = await ai.embeddings.create({ model: 'text-embedding-3-small', input: 'another text', dimensions: 8 });
    assert.notDeepEqual(other.data[0].embedding, v);
  });

  test('embeddings: encoding_format float equals the decoded base64, several inputs keep their order', async () => {
    const body = (fmt) => JSON.stringify({ model: 'text-embedding-3-small', input: ['one', 'two'], dimensions: 16, encoding_format: fmt });
    const post = async (fmt) => {
      const r = await httpRequest(`http://127.0.0.1:${port}/v1/embeddings`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: body(fmt),
      });
      assert.equal(r.status, 200, r.body.toString());
      return jsonOf(r.body);
    };
    const b64 = await post('base64');
    const flt = await post('float');
    assert.deepEqual(b64.data.map((d) => d.index), [0, 1]);
    assert.deepEqual(flt.data.map((d) => d.index), [0, 1]);
    for (let i = 0; i < 2; i++) {
      assert.equal(typeof b64.data[i].embedding, 'string', 'base64 format must give a string');
      const raw = Buffer.from(b64.data[i].embedding, 'base64');
      assert.equal(raw.length, 16 * 4, 'base64 must hold 16 little-endian float32');
      const decoded = Array.from({ length: 16 }, (_, k) => raw.readFloatLE(k * 4));
      const floats = flt.data[i].embedding;
      assert.equal(floats.length, 16);
      for (let k = 0; k < 16; k++) assert.ok(Math.abs(decoded[k] - floats[k]) <= 1e-6 * Math.max(1, Math.abs(floats[k])), `component ${k}: ${decoded[k]} vs ${floats[k]}`);
    }
    assert.notDeepEqual(flt.data[0].embedding, flt.data[1].embedding);
    // the SDK with encoding_format float returns the floats untouched
    const sdk = await ai.embeddings.create({ model: 'text-embedding-3-small', input: ['one', 'two'], dimensions: 16, encoding_format: 'float' });
    assert.deepEqual(sdk.data[1].embedding, flt.data[1].embedding);
  });

  test('models: list, retrieve, and 404 as NotFoundError', async () => {
    const models = [];
    for await (const m of ai.models.list()) models.push(m);
    assert.ok(models.length >= 1);
    for (const m of models) {
      assert.equal(typeof m.id, 'string');
      assert.equal(m.object, 'model');
      assert.equal(typeof m.owned_by, 'string');
      assert.ok(Number.isInteger(m.created));
    }
    const one = await ai.models.retrieve(models[0].id);
    assert.equal(one.id, models[0].id);
    assert.equal(one.object, 'model');
    await assert.rejects(
      () => ai.models.retrieve('no-such-model-xyz'),
      (e) => {
        assert.ok(e instanceof OpenAI.NotFoundError, `expected NotFoundError, got ${e?.constructor?.name}: ${e?.message}`);
        assert.equal(e.status, 404);
        assert.equal(typeof e.error?.message, 'string');
        return true;
      },
    );
  });

  test('responses API, non-stream: output_text and usage', async () => {
    const r = await ai.responses.create({ model: MODEL, input: 'Tell me about ducks' });
    assert.equal(r.object, 'response');
    assert.equal(r.status, 'completed');
    assert.equal(typeof r.output_text, 'string');
    assert.ok(r.output_text.length > 0);
    assert.ok(r.usage.input_tokens > 0 && r.usage.output_tokens > 0);
    assert.equal(r.usage.total_tokens, r.usage.input_tokens + r.usage.output_tokens);
    const again = await ai.responses.create({ model: MODEL, input: 'Tell me about ducks' });
    assert.equal(again.output_text, r.output_text);
  });

  test('responses API, stream: created, text deltas, completed', async () => {
    const stream = await ai.responses.create({ model: MODEL, input: 'Stream about ducks', stream: true });
    const events = [];
    for await (const ev of stream) events.push(ev);
    const types = events.map((e) => e.type);
    assert.equal(types[0], 'response.created', types.join(','));
    assert.equal(types.at(-1), 'response.completed', types.join(','));
    const deltas = events.filter((e) => e.type === 'response.output_text.delta');
    assert.ok(deltas.length >= 2, `${deltas.length} text deltas`);
    const done = events.at(-1).response;
    assert.equal(done.status, 'completed');
    assert.equal(deltas.map((d) => d.delta).join(''), textOfResponse(done));
    assert.ok(done.usage.output_tokens > 0);
  });

  test('malformed JSON gets OpenAI\'s 400 invalid_request_error body', async () => {
    for (const p of ['/v1/chat/completions', '/v1/embeddings', '/v1/responses', '/v1/completions']) {
      const r = await httpRequest(`http://127.0.0.1:${port}${p}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: 'Bearer sk-test' },
        body: '{"model": "gpt-4o-mini", "messages": [',
      });
      assert.equal(r.status, 400, `${p}: ${r.status}`);
      assert.match(String(r.headers['content-type']), /application\/json/);
      const j = jsonOf(r.body);
      assert.equal(j.error?.type, 'invalid_request_error', `${p}: ${r.body}`);
      assert.equal(typeof j.error.message, 'string');
      assert.ok('param' in j.error && 'code' in j.error, `${p}: ${r.body}`);
    }
  });

  test('an unknown path is a 404 in OpenAI\'s format', async () => {
    const r = await httpRequest(`http://127.0.0.1:${port}/v1/definitely-not-an-endpoint`, { headers: { authorization: 'Bearer sk-test' } });
    assert.equal(r.status, 404);
    const j = jsonOf(r.body);
    assert.equal(typeof j.error?.message, 'string');
  });
});

describe('emulator pacing and the deepseek dialect', () => {
  let srv;
  before(async () => {
    srv = await startServer({ cacheOff: true });
  });
  after(async () => {
    await srv?.stop();
  });

  async function timedStream(ai, content) {
    const t0 = now();
    const stream = await ai.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content }],
      stream: true,
      stream_options: { include_usage: true },
    });
    const times = [];
    let usage;
    for await (const ch of stream) {
      if (ch.choices[0]?.delta?.content) times.push(now());
      if (ch.usage) usage = ch.usage;
    }
    return { elapsed: now() - t0, times, usage };
  }

  test('tokens_per_second paces the stream (and the default does not)', async () => {
    const port = await freePort();
    const p = await srv.createProxy({ name: 'paced', provider: 'openai', upstream_url: 'emulator', port });
    const ai = client(port);
    const content = 'please pace this answer for the duck';
    const fast = await timedStream(ai, content);
    const n = fast.usage.completion_tokens;
    assert.ok(n >= 5, `the answer has only ${n} tokens, too short to measure pacing`);
    const tps = 25;
    const expectMs = (n / tps) * 1000;
    assert.ok(fast.elapsed < expectMs * 0.7, `unpaced stream took ${fast.elapsed.toFixed(0)} ms for ${n} tokens`);

    await srv.putConfig(p.id, { emulator: { tokens_per_second: tps } });
    const slow = await timedStream(ai, content);
    assert.equal(slow.usage.completion_tokens, n, 'pacing must not change the answer');
    assert.ok(slow.elapsed >= expectMs * 0.85, `${n} tokens at ${tps}/s took ${slow.elapsed.toFixed(0)} ms, expected >= ${expectMs.toFixed(0)}`);
    assert.ok(slow.elapsed < expectMs * 3 + 2000, `paced stream too slow: ${slow.elapsed.toFixed(0)} ms`);
    const spread = slow.times.at(-1) - slow.times[0];
    assert.ok(spread >= expectMs * 0.5, `text chunks arrived within ${spread.toFixed(0)} ms: paced as a burst, not a stream`);

    await srv.putConfig(p.id, { emulator: { tokens_per_second: 0 } });
    const again = await timedStream(ai, content);
    assert.ok(again.elapsed < expectMs * 0.7, `pacing still on after reset: ${again.elapsed.toFixed(0)} ms`);
  });

  test('a client that aborts a paced stream leaves the proxy healthy', async () => {
    const port = await freePort();
    await srv.createProxy({ name: 'abort-me', provider: 'openai', upstream_url: 'emulator', port, config: { emulator: { tokens_per_second: 20 } } });
    const ai = client(port);
    for (let k = 0; k < 3; k++) {
      const ctrl = new AbortController();
      const stream = await ai.chat.completions.create(
        { model: MODEL, messages: [{ role: 'user', content: `abort me ${k}` }], stream: true },
        { signal: ctrl.signal },
      );
      let n = 0;
      let finished = false;
      // the SDK ends an aborted stream quietly; the point is what the server does with the cut
      for await (const ch of stream) {
        if (ch.choices[0]?.delta?.content && ++n === 2) ctrl.abort();
        if (ch.choices[0]?.finish_reason) finished = true;
      }
      assert.equal(n, 2, 'chunks kept coming after the abort');
      assert.ok(!finished, 'the stream finished before it could be aborted: pacing had no effect');
    }
    const r = await ai.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'still there?' }] });
    assert.ok(r.choices[0].message.content.length > 0);
  });

  test('20 concurrent streams get complete, identical answers', async () => {
    const port = await freePort();
    await srv.createProxy({ name: 'many-streams', provider: 'openai', upstream_url: 'emulator', port });
    const ai = client(port);
    const texts = await Promise.all(
      Array.from({ length: 20 }, async () => {
        const stream = await ai.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'same for all' }], stream: true });
        let t = '';
        let finish = null;
        for await (const ch of stream) {
          t += ch.choices[0]?.delta?.content ?? '';
          finish = ch.choices[0]?.finish_reason ?? finish;
        }
        assert.equal(finish, 'stop');
        return t;
      }),
    );
    assert.ok(texts[0].length > 0);
    assert.equal(new Set(texts).size, 1, 'the same request must give the same text on every stream');
  });

  test('deepseek provider with the emulator answers chat in the OpenAI dialect', async () => {
    const port = await freePort();
    await srv.createProxy({ name: 'ds', provider: 'deepseek', upstream_url: 'emulator', port });
    const ai = client(port);
    const models = [];
    for await (const m of ai.models.list()) models.push(m);
    assert.ok(models.length >= 1);
    assert.ok(models.every((m) => m.owned_by === 'deepseek'), JSON.stringify(models));
    const r = await ai.chat.completions.create({ model: models[0].id, messages: [{ role: 'user', content: 'hi deepseek' }] });
    assert.equal(r.object, 'chat.completion');
    assert.ok(r.choices[0].message.content.length > 0);
    assert.equal(r.model, models[0].id);
  });
});
