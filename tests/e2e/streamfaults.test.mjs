// Stream faults and stream timing (issue 7, items 3 and 5), end to end: the
// official SDKs meet a cut stream, a mid-stream error, a stall, a malformed
// or repeated event, as they would from the provider; events are counted in
// the provider's framing whatever the TCP reads; stream_timing paces
// events; a client leaving during a stall frees everything; responses that
// are not shaped (non-stream, pipelined) are untouched.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { GoogleGenAI } from '@google/genai';
import { BedrockRuntimeClient, ConverseStreamCommand } from '@aws-sdk/client-bedrock-runtime';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { freePort, startServer } from './lib/server.mjs';
import { startUpstream, reply } from './lib/upstream.mjs';
import { RawConn, now } from './lib/http.mjs';

const CHAT = { model: 'gpt-4o', messages: [{ role: 'user', content: 'Tell me a story about a duck' }] };
const CLAUDE = { model: 'claude-3-5-sonnet-latest', max_tokens: 60, messages: [{ role: 'user', content: 'Tell me a story' }] };
const BEDROCK_MODEL = 'anthropic.claude-3-5-sonnet-20240620-v1:0';

let srv;
const proxies = {}; // provider -> {id, port}

before(async () => {
  srv = await startServer({ workers: 2, cacheOff: true });
  for (const provider of ['openai', 'anthropic', 'bedrock', 'gemini']) {
    const port = await freePort();
    const p = await srv.createProxy({ name: `sf-${provider}`, provider, upstream_url: 'emulator', port });
    proxies[provider] = { id: p.id, port };
  }
});
after(async () => {
  await srv?.stop();
});

const configure = (provider, doc) => srv.putConfig(proxies[provider].id, doc);
const base = (provider) => `http://127.0.0.1:${proxies[provider].port}`;
const openai = () => new OpenAI({ baseURL: `${base('openai')}/v1`, apiKey: 'sk-test', maxRetries: 0, timeout: 15000 });

/**
 * POSTs body and reads the SSE response event by event: {status, headers,
 * headAt, events: [{text, at}], error (the read's failure, if any), doneAt}.
 * abortAfter: abort once that many events arrived.
 */
async function sse(url, body, { headers = {}, abortAfter } = {}) {
  const ac = new AbortController();
  const t0 = now();
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
    signal: ac.signal,
  });
  const out = { status: res.status, headers: res.headers, headAt: now() - t0, events: [], error: null, raw: '' };
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let pos = 0;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      out.raw += dec.decode(value, { stream: true });
      let i;
      while ((i = out.raw.indexOf('\n\n', pos)) >= 0) {
        out.events.push({ text: out.raw.slice(pos, i + 2), at: now() - t0 });
        pos = i + 2;
        if (abortAfter && out.events.length >= abortAfter) {
          ac.abort();
          out.aborted = true;
          return out;
        }
      }
    }
  } catch (e) {
    out.error = e;
  }
  out.doneAt = now() - t0;
  return out;
}

const dataOf = (ev) =>
  ev.text
    .split('\n')
    .filter((l) => l.startsWith('data: '))
    .map((l) => l.slice(6))
    .join('\n');

describe('OpenAI', () => {
  test('a cut stream: the SDK stream fails after N chunks, no [DONE]; the head says stream_cut', async () => {
    await configure('openai', { stream_faults: { cut_rate: 1, cut_after_events: 3 } });
    const chunks = [];
    await assert.rejects(async () => {
      const stream = await openai().chat.completions.create({ ...CHAT, stream: true });
      for await (const c of stream) chunks.push(c);
    });
    assert.equal(chunks.length, 3);
    const raw = await sse(`${base('openai')}/v1/chat/completions`, { ...CHAT, stream: true });
    assert.equal(raw.status, 200);
    assert.equal(raw.headers.get('x-rubberduck-failure'), 'stream_cut');
    assert.equal(raw.events.length, 3);
    assert.ok(raw.error, 'the connection is cut, not ended');
    assert.ok(!raw.raw.includes('[DONE]'));
  });

  test('a mid-stream error chunk: the SDK throws APIError with the native message', async () => {
    await configure('openai', { stream_faults: { error_rate: 1, error_after_events: 2, error_status: 503 } });
    const chunks = [];
    await assert.rejects(
      async () => {
        const stream = await openai().chat.completions.create({ ...CHAT, stream: true });
        for await (const c of stream) chunks.push(c);
      },
      (e) => {
        assert.ok(e instanceof OpenAI.APIError, `${e}`);
        assert.match(e.message, /overloaded|not ready/i);
        return true;
      },
    );
    assert.equal(chunks.length, 2);
    const raw = await sse(`${base('openai')}/v1/chat/completions`, { ...CHAT, stream: true });
    assert.equal(raw.headers.get('x-rubberduck-failure'), 'stream_error');
    assert.equal(raw.error, null, 'the stream ends properly after the error');
    assert.equal(raw.events.length, 3);
    assert.ok(JSON.parse(dataOf(raw.events[2])).error.message);
  });

  test('duplicate and malformed events are visible in the raw SSE; the SDK fails on the malformed one', async () => {
    const plain = await (async () => {
      await configure('openai', {});
      return sse(`${base('openai')}/v1/chat/completions`, { ...CHAT, stream: true });
    })();
    await configure('openai', { stream_faults: { duplicate_rate: 1, duplicate_after_events: 2 } });
    const dup = await sse(`${base('openai')}/v1/chat/completions`, { ...CHAT, stream: true });
    assert.equal(dup.headers.get('x-rubberduck-failure'), 'stream_duplicate');
    assert.equal(dup.events.length, plain.events.length + 1);
    assert.equal(dup.events[2].text, dup.events[3].text);
    assert.deepEqual(
      dup.events.filter((_, i) => i !== 3).map((e) => e.text),
      plain.events.map((e) => e.text),
    );

    await configure('openai', { stream_faults: { malformed_rate: 1, malformed_after_events: 1 } });
    const bad = await sse(`${base('openai')}/v1/chat/completions`, { ...CHAT, stream: true });
    assert.equal(bad.headers.get('x-rubberduck-failure'), 'stream_malformed');
    assert.equal(bad.events.length, plain.events.length);
    assert.throws(() => JSON.parse(dataOf(bad.events[1])));
    assert.ok(plain.events[1].text.startsWith(bad.events[1].text.slice(0, -2)), 'a truncated copy');
    assert.equal(bad.events[2].text, plain.events[2].text);
    await assert.rejects(async () => {
      for await (const c of await openai().chat.completions.create({ ...CHAT, stream: true })) void c;
    });
  });

  test('a stall: nothing for stall_ms after N events, then the rest and [DONE]', async () => {
    await configure('openai', { stream_faults: { stall_rate: 1, stall_after_events: 2, stall_ms: 800 } });
    const r = await sse(`${base('openai')}/v1/chat/completions`, { ...CHAT, stream: true });
    assert.equal(r.headers.get('x-rubberduck-failure'), 'stream_stall');
    assert.equal(r.error, null);
    assert.ok(r.raw.includes('data: [DONE]'));
    const gaps = r.events.slice(1).map((e, i) => e.at - r.events[i].at);
    assert.ok(gaps[1] >= 780, `gap before event 2: ${gaps[1].toFixed(0)} ms`);
    const others = gaps.filter((_, i) => i !== 1);
    assert.ok(Math.max(...others) < 400, `other gaps: ${others.map((g) => g.toFixed(0))}`);
  });

  test('seeded: the same seed gives the same faults, request after request', async () => {
    const doc = { seed: 1234, stream_faults: { cut_rate: 0.3, duplicate_rate: 0.3 } };
    const outcomes = async () => {
      await configure('openai', doc); // a new configuration numbers requests from 1 again
      const seen = [];
      for (let i = 0; i < 12; i++) {
        const r = await sse(`${base('openai')}/v1/chat/completions`, { ...CHAT, stream: true });
        seen.push(r.headers.get('x-rubberduck-failure') ?? 'none');
      }
      return seen;
    };
    const a = await outcomes();
    const b = await outcomes();
    assert.deepEqual(a, b);
    assert.ok(new Set(a).size >= 2, `all alike: ${a}`);
  });

  test('failure.reveal false: no X-Rubberduck-Failure, the fault all the same', async () => {
    await configure('openai', { failure: { reveal: false }, stream_faults: { cut_rate: 1, cut_after_events: 1 } });
    const r = await sse(`${base('openai')}/v1/chat/completions`, { ...CHAT, stream: true });
    assert.equal(r.headers.get('x-rubberduck-failure'), null);
    assert.equal(r.events.length, 1);
    assert.ok(r.error);
  });
});

describe('Anthropic, Bedrock, Gemini', () => {
  test('Anthropic: event: error mid-stream, the SDK throws with overloaded_error', async () => {
    await configure('anthropic', { stream_faults: { error_rate: 1, error_after_events: 3, error_status: 529 } });
    const ai = new Anthropic({ baseURL: base('anthropic'), apiKey: 'sk-ant-test', maxRetries: 0, timeout: 15000 });
    const types = [];
    await assert.rejects(
      async () => {
        const stream = await ai.messages.create({ ...CLAUDE, stream: true });
        for await (const ev of stream) types.push(ev.type);
      },
      (e) => {
        assert.ok(e instanceof Anthropic.APIError, `${e}`);
        assert.equal(e.error?.error?.type, 'overloaded_error');
        return true;
      },
    );
    const raw = await sse(`${base('anthropic')}/v1/messages`, { ...CLAUDE, stream: true }, { headers: { 'x-api-key': 'k', 'anthropic-version': '2023-06-01' } });
    assert.equal(raw.headers.get('x-rubberduck-failure'), 'stream_error');
    assert.equal(raw.events.length, 4);
    assert.ok(raw.events[3].text.startsWith('event: error\ndata: '));
    // what the SDK yielded: the three events before the error (it skips pings)
    const names = raw.events.slice(0, 3).map((e) => /^event: (\S+)/.exec(e.text)[1]);
    assert.deepEqual(types, names.filter((n) => n !== 'ping'));
    assert.equal(types[0], 'message_start');
  });

  test('Anthropic: a cut stream fails the SDK before message_stop', async () => {
    await configure('anthropic', { stream_faults: { cut_rate: 1, cut_after_events: 2 } });
    const ai = new Anthropic({ baseURL: base('anthropic'), apiKey: 'sk-ant-test', maxRetries: 0, timeout: 15000 });
    const types = [];
    await assert.rejects(async () => {
      for await (const ev of await ai.messages.create({ ...CLAUDE, stream: true })) types.push(ev.type);
    });
    assert.equal(types.length, 2);
    assert.ok(!types.includes('message_stop'));
  });

  for (const [label, handler] of [
    ['HTTP/2', () => undefined],
    ['HTTP/1.1', () => new NodeHttpHandler()],
  ]) {
    test(`Bedrock ConverseStream (${label}): the exception frame surfaces as ThrottlingException`, async () => {
      await configure('bedrock', { stream_faults: { error_rate: 1, error_after_events: 2, error_status: 429 } });
      const h = handler();
      const br = new BedrockRuntimeClient({
        region: 'us-west-2',
        endpoint: base('bedrock'),
        credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'secret' },
        maxAttempts: 1,
        ...(h ? { requestHandler: h } : {}),
      });
      const kinds = [];
      await assert.rejects(
        async () => {
          const res = await br.send(new ConverseStreamCommand({ modelId: BEDROCK_MODEL, messages: [{ role: 'user', content: [{ text: 'hi there' }] }] }));
          for await (const ev of res.stream) kinds.push(Object.keys(ev).find((k) => ev[k] !== undefined));
        },
        (e) => {
          assert.equal(e.name, 'ThrottlingException', `${e}`);
          return true;
        },
      );
      assert.equal(kinds.length, 2);
      br.destroy();
    });
  }

  test('Bedrock: a cut after N frames counts event-stream frames', async () => {
    await configure('bedrock', { stream_faults: { cut_rate: 1, cut_after_events: 3 } });
    const br = new BedrockRuntimeClient({
      region: 'us-west-2',
      endpoint: base('bedrock'),
      credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'secret' },
      maxAttempts: 1,
      requestHandler: new NodeHttpHandler(),
    });
    const kinds = [];
    await assert.rejects(async () => {
      const res = await br.send(new ConverseStreamCommand({ modelId: BEDROCK_MODEL, messages: [{ role: 'user', content: [{ text: 'hi there' }] }] }));
      for await (const ev of res.stream) kinds.push(Object.keys(ev).find((k) => ev[k] !== undefined));
    });
    assert.equal(kinds.length, 3);
    assert.ok(!kinds.includes('metadata'));
    br.destroy();
  });

  test('Gemini: the error object mid-stream, the SDK throws with its code', async () => {
    await configure('gemini', { stream_faults: { error_rate: 1, error_after_events: 1, error_status: 429 } });
    const ai = new GoogleGenAI({ apiKey: 'gm-key', httpOptions: { baseUrl: base('gemini') } });
    const texts = [];
    await assert.rejects(
      async () => {
        for await (const ch of await ai.models.generateContentStream({ model: 'gemini-2.0-flash', contents: 'tell me a story' })) texts.push(ch.text);
      },
      (e) => {
        assert.equal(e.status, 429, `${e}`);
        assert.match(e.message, /RESOURCE_EXHAUSTED/);
        return true;
      },
    );
    assert.equal(texts.length, 1);
  });
});

describe('counting events and timing', () => {
  let up;
  let upPort;
  let upId;
  // 8 events; the first three in one write, the rest dribbled 5 bytes at a time.
  const EVENTS = Array.from({ length: 7 }, (_, i) => `data: {"choices":[{"index":0,"delta":{"content":"w${i} "}}]}\n\n`).concat(['data: [DONE]\n\n']);
  before(async () => {
    up = await startUpstream((req, res, rec) => {
      req.resume();
      req.on('end', async () => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.flushHeaders();
        res.write(EVENTS.slice(0, 3).join(''));
        const rest = EVENTS.slice(3).join('');
        for (let i = 0; i < rest.length; i += 5) {
          if (res.destroyed || rec.closedEarly) return;
          res.write(rest.slice(i, i + 5));
          await new Promise((r) => setTimeout(r, 2));
        }
        res.end();
      });
    });
    upPort = await freePort();
    upId = (await srv.createProxy({ name: 'sf-slow', provider: 'openai', upstream_url: up.url, port: upPort })).id;
  });
  after(async () => {
    await up?.close();
  });
  const url = () => `http://127.0.0.1:${upPort}/v1/chat/completions`;

  test('events are counted in SSE framing, not TCP reads: three in one read, one over many', async () => {
    for (const n of [2, 5]) {
      await srv.putConfig(upId, { stream_faults: { cut_rate: 1, cut_after_events: n } });
      const r = await sse(url(), { ...CHAT, stream: true });
      assert.deepEqual(
        r.events.map((e) => e.text),
        EVENTS.slice(0, n),
        `cut after ${n}`,
      );
      assert.ok(r.error);
    }
    await srv.putConfig(upId, { stream_faults: { duplicate_rate: 1, duplicate_after_events: 5 } });
    const d = await sse(url(), { ...CHAT, stream: true });
    assert.deepEqual(
      d.events.map((e) => e.text),
      [...EVENTS.slice(0, 6), EVENTS[5], ...EVENTS.slice(6)],
    );
  });

  test('stream_timing: ttft then one event per 1/tokens_per_second', async () => {
    await srv.putConfig(upId, { stream_timing: { ttft_ms: 400, tokens_per_second: 20 } });
    const r = await sse(url(), { ...CHAT, stream: true });
    assert.deepEqual(
      r.events.map((e) => e.text),
      EVENTS,
    );
    const first = r.events[0].at - r.headAt;
    assert.ok(first >= 380 && first < 1500, `first event ${first.toFixed(0)} ms after the head`);
    const span = r.events.at(-1).at - r.events[0].at;
    const want = (EVENTS.length - 1) * 50;
    assert.ok(span >= want * 0.9 && span < want * 3 + 500, `${EVENTS.length} events over ${span.toFixed(0)} ms, want ~${want}`);
    const gaps = r.events.slice(1).map((e, i) => e.at - r.events[i].at);
    assert.ok(Math.min(...gaps) >= 30, `gaps ${gaps.map((g) => g.toFixed(0))}`);
  });

  test('stream_timing with jitter and a stall together; an emulator stream paced too', async () => {
    await srv.putConfig(upId, {
      seed: 5,
      stream_timing: { tokens_per_second: 50, jitter_ms: 10 },
      stream_faults: { stall_rate: 1, stall_after_events: 4, stall_ms: 500 },
    });
    const r = await sse(url(), { ...CHAT, stream: true });
    assert.equal(r.events.length, EVENTS.length);
    const gaps = r.events.slice(1).map((e, i) => e.at - r.events[i].at);
    assert.ok(gaps[3] >= 480, `stall gap ${gaps[3].toFixed(0)}`);
    for (const [i, g] of gaps.entries()) if (i !== 3) assert.ok(g >= 5 && g < 300, `gap ${i}: ${g.toFixed(0)}`);

    await configure('openai', { stream_timing: { ttft_ms: 200, tokens_per_second: 100 } });
    const e = await sse(`${base('openai')}/v1/chat/completions`, { ...CHAT, stream: true });
    assert.ok(e.events[0].at - e.headAt >= 180);
    const span = e.events.at(-1).at - e.events[0].at;
    assert.ok(span >= (e.events.length - 1) * 10 * 0.9, `${e.events.length} events in ${span.toFixed(0)} ms`);
    await configure('openai', {});
  });

  test('a client leaving during a stall frees everything: upstream closed, proxy keeps serving', async () => {
    await srv.putConfig(upId, { stream_faults: { stall_rate: 1, stall_after_events: 1, stall_ms: 60000 } });
    up.clear();
    const r = await sse(url(), { ...CHAT, stream: true }, { abortAfter: 1 });
    assert.ok(r.aborted);
    const rec = await up.waitRequest();
    await up.waitRec(rec, (x) => x.closedAt !== null, 5000, 'the upstream request to be closed');
    // the same proxy, and another, answer at once
    await srv.putConfig(upId, {});
    const ok = await sse(url(), { ...CHAT, stream: true });
    assert.equal(ok.events.length, EVENTS.length);
    const chat = await openai().chat.completions.create(CHAT);
    assert.ok(chat.choices[0].message.content.length > 0);
  });

  test('a large non-stream response then a pipelined request on one connection, stream_faults configured', async () => {
    const big = 'x'.repeat(3 * 1024 * 1024);
    up.handle(reply.json({ id: 'chatcmpl-big', object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: big } }] }));
    await srv.putConfig(upId, { stream_faults: { cut_rate: 1, cut_after_events: 0 }, stream_timing: { tokens_per_second: 1000 } });
    const c = await RawConn.open(upPort);
    const body = JSON.stringify(CHAT);
    const one = `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    await c.write(one + one);
    for (let i = 0; i < 2; i++) {
      const r = await c.readResponse({ timeoutMs: 15000 });
      assert.equal(r.status, 200);
      assert.equal(r.headers['x-rubberduck-failure'], undefined);
      assert.equal(JSON.parse(r.body.toString()).choices[0].message.content.length, big.length);
    }
    c.destroy();
  });
});
