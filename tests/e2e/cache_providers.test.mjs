// The response cache for every provider (issue 8), through each official
// SDK: a miss then a hit with identical parsed results, non-stream and
// stream, on the built-in emulator (whose ids and timings differ between
// two real calls, so an identical second result is the stored one), and
// against test upstreams playing Anthropic, Gemini, Azure and Bedrock
// (one upstream call for two requests; Bedrock's event stream and Gemini's
// SSE stored only when they ended properly; credentials scope the key).
import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import OpenAI, { AzureOpenAI } from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { GoogleGenAI } from '@google/genai';
import { OAuth2Client } from 'google-auth-library';
import {
  BedrockRuntimeClient,
  ConverseCommand,
  ConverseStreamCommand,
  InvokeModelCommand,
  InvokeModelWithResponseStreamCommand,
} from '@aws-sdk/client-bedrock-runtime';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { freePort, startServer } from './lib/server.mjs';
import { startUpstream } from './lib/upstream.mjs';
import { KEY_RE, header, postJson, uniqueTag, xcache } from './lib/cachekit.mjs';

const BEDROCK_MODEL = 'anthropic.claude-3-5-sonnet-20240620-v1:0';
const GEMINI_MODEL = 'gemini-2.0-flash';
const CLAUDE = 'claude-haiku-4-5';

let srv;
const ports = {}; // emulator proxy per provider

before(async () => {
  srv = await startServer({ workers: 2 });
  for (const [provider, config] of [
    ['openai'],
    ['deepseek'],
    ['anthropic'],
    ['azure_openai', { deployments: { 'prod-4o': 'gpt-4o' } }],
    ['bedrock'],
    ['gemini'],
    ['vertex_ai'],
  ]) {
    const port = await freePort();
    const body = { name: `emu-${provider}`, provider, upstream_url: 'emulator', port };
    if (config) body.config = config;
    await srv.createProxy(body);
    ports[provider] = port;
  }
});
after(async () => {
  await srv?.stop();
});

const openai = (port, apiKey = 'sk-cache-test') => new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey, maxRetries: 0, timeout: 15000 });
const anthropic = (port) => new Anthropic({ baseURL: `http://127.0.0.1:${port}`, apiKey: 'sk-ant-cache', maxRetries: 0, timeout: 15000 });
const gemini = (port, apiKey = 'AIzaSy-cache-test-key') => new GoogleGenAI({ apiKey, httpOptions: { baseUrl: `http://127.0.0.1:${port}` } });
function vertex(port) {
  const authClient = new OAuth2Client();
  authClient.setCredentials({ access_token: 'ya29.cache-test-token', expiry_date: Date.now() + 3600e3 });
  return new GoogleGenAI({
    vertexai: true,
    project: 'duck-project',
    location: 'us-central1',
    httpOptions: { baseUrl: `http://127.0.0.1:${port}` },
    googleAuthOptions: { authClient },
  });
}

/** A Bedrock client whose response heads land in .heads (the SDK keeps no headers on its outputs). */
function bedrock(port, { accessKeyId = 'AKIDCACHETEST00001', http1 = false } = {}) {
  const br = new BedrockRuntimeClient({
    region: 'us-west-2',
    endpoint: `http://127.0.0.1:${port}`,
    credentials: { accessKeyId, secretAccessKey: 'client-secret' },
    maxAttempts: 1,
    ...(http1 ? { requestHandler: new NodeHttpHandler() } : {}),
  });
  br.heads = [];
  br.middlewareStack.add(
    (next) => async (args) => {
      const out = await next(args);
      br.heads.push(out.response?.headers);
      return out;
    },
    { step: 'deserialize', name: 'rdCacheHeads' },
  );
  return br;
}
const withoutMeta = ({ $metadata, ...rest }) => rest;
const withoutHttp = ({ sdkHttpResponse, ...rest }) => rest;
const say = (text) => ({ messages: [{ role: 'user', content: [{ text }] }], inferenceConfig: { maxTokens: 200 } });

async function collect(s) {
  const out = [];
  for await (const x of s) out.push(x);
  return out;
}

/** Asserts a miss/hit pair of X-Cache values, and a displayed key naming model. */
function assertMissHit(h1, h2, model) {
  assert.equal(xcache(h1), 'MISS');
  assert.equal(xcache(h2), 'HIT');
  const m = KEY_RE.exec(header(h2, 'x-cache-key') ?? '');
  assert.ok(m, `X-Cache-Key: ${header(h2, 'x-cache-key')}`);
  if (model) assert.equal(m[1], model);
}

describe('every provider on the emulator: a miss, then a hit with the same parsed result', () => {
  for (const provider of ['openai', 'deepseek']) {
    test(`${provider}: chat, non-stream and stream`, async () => {
      const ai = openai(ports[provider]);
      const model = provider === 'openai' ? 'gpt-4o' : 'deepseek-chat';
      const req = { model, messages: [{ role: 'user', content: uniqueTag(`${provider}-chat`) }] };
      const a = await ai.chat.completions.create(req).withResponse();
      const b = await ai.chat.completions.create(req).withResponse();
      assertMissHit(a.response.headers, b.response.headers, model);
      assert.deepEqual(b.data, a.data);
      assert.match(a.data.id, /^chatcmpl-/);
      const sa = await ai.chat.completions.create({ ...req, stream: true, stream_options: { include_usage: true } }).withResponse();
      const ca = await collect(sa.data);
      const sb = await ai.chat.completions.create({ ...req, stream: true, stream_options: { include_usage: true } }).withResponse();
      const cb = await collect(sb.data);
      assertMissHit(sa.response.headers, sb.response.headers, model);
      assert.deepEqual(cb, ca);
      assert.ok(ca.length > 3 && ca.at(-1).usage);
    });
  }

  test('openai: completions and embeddings', async () => {
    const ai = openai(ports.openai);
    const creq = { model: 'gpt-3.5-turbo-instruct', prompt: uniqueTag('completion'), max_tokens: 20 };
    const c1 = await ai.completions.create(creq).withResponse();
    const c2 = await ai.completions.create(creq).withResponse();
    assertMissHit(c1.response.headers, c2.response.headers, creq.model);
    assert.deepEqual(c2.data, c1.data);
    const ereq = { model: 'text-embedding-3-small', input: uniqueTag('embed'), encoding_format: 'float' };
    const e1 = await ai.embeddings.create(ereq).withResponse();
    const e2 = await ai.embeddings.create(ereq).withResponse();
    assertMissHit(e1.response.headers, e2.response.headers, ereq.model);
    assert.deepEqual(e2.data, e1.data);
  });

  test('anthropic: messages.create and a stream', async () => {
    const ai = anthropic(ports.anthropic);
    const req = { model: CLAUDE, max_tokens: 200, messages: [{ role: 'user', content: uniqueTag('claude') }] };
    const a = await ai.messages.create(req).withResponse();
    const b = await ai.messages.create(req).withResponse();
    assertMissHit(a.response.headers, b.response.headers, CLAUDE);
    assert.deepEqual(b.data, a.data);
    // the emulator's request id is the proxy's own id of each request (it finds the log line), so it is not compared
    const sa = await ai.messages.create({ ...req, stream: true }).withResponse();
    const ea = await collect(sa.data);
    const sb = await ai.messages.create({ ...req, stream: true }).withResponse();
    const eb = await collect(sb.data);
    assertMissHit(sa.response.headers, sb.response.headers, CLAUDE);
    assert.deepEqual(eb, ea);
    assert.equal(ea.at(-1).type, 'message_stop');
  });

  test('azure_openai: a deployment, non-stream and stream', async () => {
    const ai = new AzureOpenAI({
      endpoint: `http://127.0.0.1:${ports.azure_openai}`,
      apiKey: 'azure-cache-key',
      apiVersion: '2024-10-21',
      deployment: 'prod-4o',
      maxRetries: 0,
      timeout: 15000,
    });
    const req = { model: 'ignored', messages: [{ role: 'user', content: uniqueTag('azure') }] };
    const a = await ai.chat.completions.create(req).withResponse();
    const b = await ai.chat.completions.create(req).withResponse();
    assertMissHit(a.response.headers, b.response.headers, 'gpt-4o');
    assert.deepEqual(b.data, a.data);
    const sa = await ai.chat.completions.create({ ...req, stream: true }).withResponse();
    const ca = await collect(sa.data);
    const sb = await ai.chat.completions.create({ ...req, stream: true }).withResponse();
    assertMissHit(sa.response.headers, sb.response.headers, 'gpt-4o');
    assert.deepEqual(await collect(sb.data), ca);
  });

  for (const http1 of [false, true]) {
    test(`bedrock (${http1 ? 'HTTP/1.1' : 'HTTP/2'}): Converse, ConverseStream and InvokeModel; each request signed anew, still one entry`, async () => {
      const br = bedrock(ports.bedrock, { http1 });
      try {
        const input = { modelId: BEDROCK_MODEL, ...say(uniqueTag('converse')) };
        const a = await br.send(new ConverseCommand(input));
        await new Promise((r) => setTimeout(r, 1100)); // a new X-Amz-Date: another signature
        const b = await br.send(new ConverseCommand(input));
        assertMissHit(br.heads[0], br.heads[1], BEDROCK_MODEL);
        assert.deepEqual(withoutMeta(b), withoutMeta(a));

        const sinput = { modelId: BEDROCK_MODEL, ...say(uniqueTag('converse-stream')) };
        const sa = await br.send(new ConverseStreamCommand(sinput));
        const ea = await collect(sa.stream);
        const sb = await br.send(new ConverseStreamCommand(sinput));
        const eb = await collect(sb.stream);
        assertMissHit(br.heads[2], br.heads[3], BEDROCK_MODEL);
        assert.deepEqual(eb, ea);
        assert.ok(ea.at(-1).metadata, 'the stream ends with its metadata event');

        const body = JSON.stringify({ anthropic_version: 'bedrock-2023-05-31', max_tokens: 100, messages: [{ role: 'user', content: uniqueTag('invoke') }] });
        const ia = await br.send(new InvokeModelCommand({ modelId: BEDROCK_MODEL, body, contentType: 'application/json' }));
        const ib = await br.send(new InvokeModelCommand({ modelId: BEDROCK_MODEL, body, contentType: 'application/json' }));
        assertMissHit(br.heads[4], br.heads[5], BEDROCK_MODEL);
        assert.equal(Buffer.from(ib.body).toString(), Buffer.from(ia.body).toString());

        const chunks = async (res) => {
          const out = [];
          for await (const ev of res.body) out.push(JSON.parse(Buffer.from(ev.chunk.bytes).toString('utf8')));
          return out;
        };
        const sbody = JSON.stringify({ anthropic_version: 'bedrock-2023-05-31', max_tokens: 100, messages: [{ role: 'user', content: uniqueTag('invoke-stream') }] });
        const xa = await chunks(await br.send(new InvokeModelWithResponseStreamCommand({ modelId: BEDROCK_MODEL, body: sbody, contentType: 'application/json' })));
        const xb = await chunks(await br.send(new InvokeModelWithResponseStreamCommand({ modelId: BEDROCK_MODEL, body: sbody, contentType: 'application/json' })));
        assertMissHit(br.heads[6], br.heads[7], BEDROCK_MODEL);
        assert.deepEqual(xb, xa);
        assert.equal(xa.at(-1).type, 'message_stop');
      } finally {
        br.destroy();
      }
    });
  }

  test('bedrock: two access keys are two entries (credential scope)', async () => {
    const one = bedrock(ports.bedrock, { accessKeyId: 'AKIDTENANTONE00001', http1: true });
    const two = bedrock(ports.bedrock, { accessKeyId: 'AKIDTENANTTWO00002', http1: true });
    try {
      const input = { modelId: BEDROCK_MODEL, ...say(uniqueTag('tenants')) };
      await one.send(new ConverseCommand(input));
      await two.send(new ConverseCommand(input));
      await one.send(new ConverseCommand(input));
      assert.deepEqual([...one.heads, ...two.heads].map(xcache), ['MISS', 'HIT', 'MISS']);
    } finally {
      one.destroy();
      two.destroy();
    }
  });

  for (const mode of ['gemini', 'vertex_ai']) {
    test(`${mode}: generateContent and generateContentStream`, async () => {
      const ai = mode === 'gemini' ? gemini(ports.gemini) : vertex(ports.vertex_ai);
      const req = { model: GEMINI_MODEL, contents: uniqueTag(mode), config: { temperature: 0.3 } };
      const a = await ai.models.generateContent(req);
      const b = await ai.models.generateContent(req);
      assertMissHit(a.sdkHttpResponse.headers, b.sdkHttpResponse.headers, GEMINI_MODEL);
      assert.deepEqual(withoutHttp(b), withoutHttp(a));
      const ca = await collect(await ai.models.generateContentStream(req));
      const cb = await collect(await ai.models.generateContentStream(req));
      assertMissHit(ca[0].sdkHttpResponse.headers, cb[0].sdkHttpResponse.headers, GEMINI_MODEL);
      assert.deepEqual(cb.map(withoutHttp), ca.map(withoutHttp));
      assert.ok(ca.at(-1).candidates[0].finishReason);
    });
  }

  test('gemini: alt is part of the key (SSE and the JSON array are separate entries)', async () => {
    const body = { contents: [{ role: 'user', parts: [{ text: uniqueTag('alt') }] }] };
    const url = (q) => `http://127.0.0.1:${ports.gemini}/v1beta/models/${GEMINI_MODEL}:streamGenerateContent${q}`;
    const hdr = { headers: { 'x-goog-api-key': 'AIzaSy-alt-key' } };
    const sse1 = await postJson(url('?alt=sse'), body, hdr);
    const arr1 = await postJson(url(''), body, hdr);
    assert.equal(xcache(sse1.headers), 'MISS');
    assert.equal(xcache(arr1.headers), 'MISS', 'the alt-less JSON array is another entry');
    assert.match(sse1.headers['content-type'], /^text\/event-stream/);
    assert.ok(Array.isArray(arr1.json), arr1.text.slice(0, 100));
    const sse2 = await postJson(url('?alt=sse'), body, hdr);
    const arr2 = await postJson(url(''), body, hdr);
    assert.equal(xcache(sse2.headers), 'HIT');
    assert.equal(xcache(arr2.headers), 'HIT');
    assert.ok(sse2.body.equals(sse1.body) && arr2.body.equals(arr1.body));
  });

  test('gemini: two API keys are two entries; the same key hits', async () => {
    const req = { model: GEMINI_MODEL, contents: uniqueTag('gem-keys') };
    const a = await gemini(ports.gemini, 'AIzaSy-tenant-a').models.generateContent(req);
    const b = await gemini(ports.gemini, 'AIzaSy-tenant-b').models.generateContent(req);
    const c = await gemini(ports.gemini, 'AIzaSy-tenant-a').models.generateContent(req);
    assert.deepEqual([a, b, c].map((r) => xcache(r.sdkHttpResponse.headers)), ['MISS', 'MISS', 'HIT']);
  });
});

// An AWS event-stream message (as in bedrock.test.mjs, independent of the proxy's code).
function esFrame(headers, payload) {
  const hs = [];
  for (const [k, v] of Object.entries(headers)) {
    const name = Buffer.from(k);
    const val = Buffer.from(v);
    const h = Buffer.alloc(1 + name.length + 3 + val.length);
    h.writeUInt8(name.length, 0);
    name.copy(h, 1);
    h.writeUInt8(7, 1 + name.length);
    h.writeUInt16BE(val.length, 2 + name.length);
    val.copy(h, 4 + name.length);
    hs.push(h);
  }
  const hb = Buffer.concat(hs);
  const pb = Buffer.from(payload);
  const prelude = Buffer.alloc(8);
  prelude.writeUInt32BE(16 + hb.length + pb.length, 0);
  prelude.writeUInt32BE(hb.length, 4);
  const pcrc = Buffer.alloc(4);
  pcrc.writeUInt32BE(zlib.crc32(prelude), 0);
  const body = Buffer.concat([prelude, pcrc, hb, pb]);
  const mcrc = Buffer.alloc(4);
  mcrc.writeUInt32BE(zlib.crc32(body), 0);
  return Buffer.concat([body, mcrc]);
}
const esEvent = (type, obj) => esFrame({ ':event-type': type, ':content-type': 'application/json', ':message-type': 'event' }, JSON.stringify(obj));

describe('through test upstreams', () => {
  let up;
  let calls;
  let handler;
  const p = {};
  before(async () => {
    up = await startUpstream();
    calls = [];
    up.handle((req, res, rec) => {
      req.resume();
      req.on('end', () => {
        calls.push(rec);
        handler(req, res, rec, calls.length);
      });
    });
    for (const [provider, config] of [
      ['anthropic'],
      ['gemini'],
      ['azure_openai'],
      ['bedrock', { aws: { access_key_id: 'AKIDPROXYCACHE0001', secret_access_key: 'proxy-secret', region: 'us-east-1' } }],
    ]) {
      const port = await freePort();
      const body = { name: `up-${provider}`, provider, upstream_url: up.url, port };
      if (config) body.config = config;
      await srv.createProxy(body);
      p[provider] = port;
    }
  });
  after(async () => {
    await up?.close();
  });
  const callsWith = (tag) => calls.filter((r) => r.body.includes(tag)).length;
  const json = (obj, extra = {}) => (req, res) => {
    const b = Buffer.from(JSON.stringify(obj));
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': b.length, ...extra });
    res.end(b);
  };

  test('anthropic: one upstream call for two SDK requests, the same message', async () => {
    const tag = uniqueTag('up-claude');
    handler = (req, res, rec, n) =>
      json({ id: `msg_up${n}`, type: 'message', role: 'assistant', model: CLAUDE, content: [{ type: 'text', text: `hi ${n}` }], stop_reason: 'end_turn', stop_sequence: null, usage: { input_tokens: 3, output_tokens: 2 } }, { 'request-id': `req_up${n}` })(req, res);
    const ai = anthropic(p.anthropic);
    const req = { model: CLAUDE, max_tokens: 50, messages: [{ role: 'user', content: tag }] };
    const a = await ai.messages.create(req).withResponse();
    const b = await ai.messages.create(req).withResponse();
    assertMissHit(a.response.headers, b.response.headers, CLAUDE);
    assert.deepEqual(b.data, a.data);
    assert.equal(header(b.response.headers, 'request-id'), header(a.response.headers, 'request-id'));
    assert.equal(header(b.response.headers, 'request-id'), 'req_up1', "the upstream's request id is replayed");
    assert.equal(callsWith(tag), 1);
  });

  test('azure_openai: the deployment and api-version in the path and query; one upstream call', async () => {
    const tag = uniqueTag('up-azure');
    handler = (req, res, rec, n) =>
      json({ id: `chatcmpl-az${n}`, object: 'chat.completion', created: 1, model: 'gpt-4o', choices: [{ index: 0, message: { role: 'assistant', content: `az ${n}` }, finish_reason: 'stop', logprobs: null }], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } })(req, res);
    const mk = (apiVersion) =>
      new AzureOpenAI({ endpoint: `http://127.0.0.1:${p.azure_openai}`, apiKey: 'azure-up-key', apiVersion, deployment: 'prod-4o', maxRetries: 0, timeout: 15000 });
    const req = { model: 'x', messages: [{ role: 'user', content: tag }] };
    const a = await mk('2024-10-21').chat.completions.create(req);
    const b = await mk('2024-10-21').chat.completions.create(req).withResponse();
    assert.equal(xcache(b.response.headers), 'HIT');
    assert.deepEqual(b.data, a);
    assert.equal(callsWith(tag), 1);
    const c = await mk('2025-01-01-preview').chat.completions.create(req).withResponse();
    assert.equal(xcache(c.response.headers), 'MISS', 'api-version is part of the key');
    assert.equal(callsWith(tag), 2);
  });

  test('gemini: generateContent hits; a stream is stored only when its last chunk has a finishReason', async () => {
    const ai = gemini(p.gemini);
    const answer = (text, finish) => ({
      candidates: [{ content: { role: 'model', parts: [{ text }] }, ...(finish ? { finishReason: 'STOP' } : {}), index: 0 }],
      usageMetadata: { promptTokenCount: 2, candidatesTokenCount: 1, totalTokenCount: 3 },
      modelVersion: GEMINI_MODEL,
    });
    const tag = uniqueTag('up-gem');
    handler = (req, res, rec, n) => json(answer(`gem ${n}`, true))(req, res);
    const a = await ai.models.generateContent({ model: GEMINI_MODEL, contents: tag });
    const b = await ai.models.generateContent({ model: GEMINI_MODEL, contents: tag });
    assertMissHit(a.sdkHttpResponse.headers, b.sdkHttpResponse.headers, GEMINI_MODEL);
    assert.equal(b.text, a.text);
    assert.equal(callsWith(tag), 1);

    const stag = uniqueTag('up-gem-stream');
    let streamCalls = 0;
    handler = (req, res) => {
      streamCalls++;
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`data: ${JSON.stringify(answer(`part ${streamCalls} `, false))}\r\n\r\n`);
      // the first call's stream stops without the final chunk
      res.end(streamCalls === 1 ? undefined : `data: ${JSON.stringify(answer('end', true))}\r\n\r\n`);
    };
    const s1 = await collect(await ai.models.generateContentStream({ model: GEMINI_MODEL, contents: stag }));
    assert.equal(s1.length, 1);
    const s2 = await collect(await ai.models.generateContentStream({ model: GEMINI_MODEL, contents: stag }));
    assert.equal(xcache(s2[0].sdkHttpResponse.headers), 'MISS', 'a stream without its finishReason chunk was stored');
    assert.equal(s2.length, 2);
    const s3 = await collect(await ai.models.generateContentStream({ model: GEMINI_MODEL, contents: stag }));
    assert.equal(xcache(s3[0].sdkHttpResponse.headers), 'HIT');
    assert.deepEqual(s3.map(withoutHttp), s2.map(withoutHttp));
    assert.equal(callsWith(stag), 2);
    assert.equal(streamCalls, 2);
  });

  test('bedrock: Converse hits (one signed upstream call); ConverseStream is stored only with its final metadata frame', async () => {
    const br = bedrock(p.bedrock, { http1: true });
    try {
      const tag = uniqueTag('up-bedrock');
      handler = (req, res, rec, n) =>
        json({ output: { message: { role: 'assistant', content: [{ text: `bedrock ${n}` }] } }, stopReason: 'end_turn', usage: { inputTokens: 2, outputTokens: 1, totalTokens: 3 }, metrics: { latencyMs: n } }, { 'x-amzn-requestid': `up-${n}` })(req, res);
      const a = await br.send(new ConverseCommand({ modelId: BEDROCK_MODEL, ...say(tag) }));
      const b = await br.send(new ConverseCommand({ modelId: BEDROCK_MODEL, ...say(tag) }));
      assertMissHit(br.heads[0], br.heads[1], BEDROCK_MODEL);
      assert.deepEqual(withoutMeta(b), withoutMeta(a));
      assert.match(a.$metadata.requestId, /^up-\d+$/);
      assert.equal(b.$metadata.requestId, a.$metadata.requestId, "the upstream's x-amzn-requestid is replayed as it was");
      assert.equal(callsWith(tag), 1);
      assert.match(calls.at(-1).headers.authorization, /Credential=AKIDPROXYCACHE0001\//, "the proxy's own signature went upstream");

      const stag = uniqueTag('up-bedrock-stream');
      let streamCalls = 0;
      handler = (req, res) => {
        streamCalls++;
        res.writeHead(200, { 'content-type': 'application/vnd.amazon.eventstream' });
        res.write(esEvent('messageStart', { role: 'assistant' }));
        res.write(esEvent('contentBlockDelta', { contentBlockIndex: 0, delta: { text: `s${streamCalls}` } }));
        res.write(esEvent('contentBlockStop', { contentBlockIndex: 0 }));
        res.write(esEvent('messageStop', { stopReason: 'end_turn' }));
        // the first answer ends without the final metadata frame
        res.end(streamCalls === 1 ? undefined : esEvent('metadata', { usage: { inputTokens: 2, outputTokens: 1, totalTokens: 3 }, metrics: { latencyMs: 5 } }));
      };
      const s1 = await collect((await br.send(new ConverseStreamCommand({ modelId: BEDROCK_MODEL, ...say(stag) }))).stream);
      assert.ok(!s1.some((e) => e.metadata));
      const s2 = await collect((await br.send(new ConverseStreamCommand({ modelId: BEDROCK_MODEL, ...say(stag) }))).stream);
      const s3 = await collect((await br.send(new ConverseStreamCommand({ modelId: BEDROCK_MODEL, ...say(stag) }))).stream);
      assert.deepEqual(br.heads.slice(2).map(xcache), ['MISS', 'MISS', 'HIT']);
      assert.deepEqual(s3, s2);
      assert.ok(s2.at(-1).metadata);
      assert.equal(streamCalls, 2);
    } finally {
      br.destroy();
    }
  });
});
