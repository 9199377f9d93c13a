// The gemini and vertex_ai providers driven by @google/genai, as an
// application uses it: Gemini mode (API key) and Vertex mode (Bearer token
// from an auth client), against emulator proxies and against a test upstream.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ApiError, GoogleGenAI } from '@google/genai';
import { OAuth2Client } from 'google-auth-library';
import { httpRequest, jsonOf, now } from './lib/http.mjs';
import { freePort, startServer } from './lib/server.mjs';
import { startUpstream } from './lib/upstream.mjs';

const MODEL = 'gemini-2.0-flash';
const API_KEY = 'AIzaSy-rubberduck-test-key-0001';
const QUERY_KEY = 'AIzaSy-query-secret-never-logged-42';
const TOKEN = 'ya29.rubberduck-test-token';

function gemini(port) {
  return new GoogleGenAI({ apiKey: API_KEY, httpOptions: { baseUrl: `http://127.0.0.1:${port}` } });
}

// An auth client from the google-auth-library genai itself uses, holding a
// fixed token: no ADC, no metadata server.
function vertex(port, location = 'us-central1') {
  const authClient = new OAuth2Client();
  authClient.setCredentials({ access_token: TOKEN, expiry_date: Date.now() + 3600e3 });
  return new GoogleGenAI({
    vertexai: true,
    project: 'duck-project',
    location,
    httpOptions: { baseUrl: `http://127.0.0.1:${port}` },
    googleAuthOptions: { authClient },
  });
}

const WEATHER_TOOL = {
  functionDeclarations: [
    {
      name: 'get_weather',
      description: 'Weather for a city',
      parameters: {
        type: 'OBJECT',
        properties: { city: { type: 'STRING' }, unit: { type: 'STRING', enum: ['celsius', 'fahrenheit'] }, days: { type: 'INTEGER' } },
        required: ['city', 'unit'],
      },
    },
  ],
};

async function collect(stream) {
  const chunks = [];
  for await (const ch of stream) chunks.push({ at: now(), ch });
  return chunks;
}

// The same assertions for both modes: only the client differs.
for (const mode of ['gemini', 'vertex_ai']) {
  describe(`${mode} emulator through @google/genai`, () => {
    let srv;
    let ai;
    let paced;
    before(async () => {
      srv = await startServer();
      const port = await freePort();
      await srv.createProxy({ name: 'emu', provider: mode, upstream_url: 'emulator', port });
      const slowPort = await freePort();
      await srv.createProxy({
        name: 'slow',
        provider: mode,
        upstream_url: 'emulator',
        port: slowPort,
        config: { emulator: { tokens_per_second: 200 } },
      });
      ai = mode === 'gemini' ? gemini(port) : vertex(port);
      paced = mode === 'gemini' ? gemini(slowPort) : vertex(slowPort);
    });
    after(async () => {
      await srv?.stop();
    });

    test('generateContent: text, usage, finishReason, deterministic', async () => {
      const r = await ai.models.generateContent({ model: MODEL, contents: 'Hello there, duck', config: { systemInstruction: 'Be brief.' } });
      assert.match(r.text, /^You said: "Hello there, duck"\./);
      assert.equal(r.candidates.length, 1);
      assert.equal(r.candidates[0].finishReason, 'STOP');
      assert.equal(r.candidates[0].content.role, 'model');
      assert.equal(r.modelVersion, MODEL);
      assert.equal(typeof r.responseId, 'string');
      const u = r.usageMetadata;
      assert.ok(u.promptTokenCount > 0 && u.candidatesTokenCount > 0, JSON.stringify(u));
      assert.equal(u.totalTokenCount, u.promptTokenCount + u.candidatesTokenCount);
      const again = await ai.models.generateContent({ model: MODEL, contents: 'Hello there, duck', config: { systemInstruction: 'Be brief.' } });
      assert.equal(again.text, r.text);
      assert.equal(again.responseId, r.responseId);
      const other = await ai.models.generateContent({ model: MODEL, contents: 'Something else' });
      assert.notEqual(other.text, r.text);
    });

    test('maxOutputTokens cuts the answer with MAX_TOKENS', async () => {
      const r = await ai.models.generateContent({ model: MODEL, contents: 'long answer please', config: { maxOutputTokens: 5 } });
      assert.equal(r.candidates[0].finishReason, 'MAX_TOKENS');
      assert.equal(r.usageMetadata.candidatesTokenCount, 5);
    });

    test('generateContentStream: chunks in order, cumulative usage, finishReason last, same text as non-stream', async () => {
      const req = { model: MODEL, contents: 'stream to me please' };
      const plain = await ai.models.generateContent(req);
      const chunks = await collect(await ai.models.generateContentStream(req));
      assert.ok(chunks.length >= 3, `only ${chunks.length} chunks`);
      assert.equal(chunks.map((c) => c.ch.text).join(''), plain.text);
      let last = 0;
      for (const [i, { ch }] of chunks.entries()) {
        const n = ch.usageMetadata.candidatesTokenCount;
        assert.ok(n > last, `usage grows: chunk ${i} has ${n} after ${last}`);
        last = n;
        assert.equal(ch.candidates[0].finishReason, i === chunks.length - 1 ? 'STOP' : undefined);
      }
      assert.equal(last, plain.usageMetadata.candidatesTokenCount);
    });

    test('with tokens_per_second the chunks arrive spread in time, one by one', async () => {
      const chunks = await collect(await paced.models.generateContentStream({ model: MODEL, contents: 'pace me' }));
      const tokens = chunks.at(-1).ch.usageMetadata.candidatesTokenCount;
      const expectMs = (tokens / 200) * 1000;
      const spread = chunks.at(-1).at - chunks[0].at;
      assert.ok(spread >= expectMs * 0.5, `${chunks.length} chunks within ${spread.toFixed(0)} ms, expected ~${expectMs} ms`);
      const gaps = chunks.slice(1).map((c, i) => c.at - chunks[i].at);
      assert.ok(gaps.filter((g) => g > 5).length >= chunks.length / 2, `chunks came in bursts: ${gaps.map((g) => g.toFixed(0))}`);
    });

    test('function declarations give a functionCall that fits the schema', async () => {
      const r = await ai.models.generateContent({ model: MODEL, contents: 'Weather in Paris?', config: { tools: [WEATHER_TOOL] } });
      assert.equal(r.functionCalls.length, 1);
      const call = r.functionCalls[0];
      assert.equal(call.name, 'get_weather');
      assert.equal(typeof call.args.city, 'string');
      assert.equal(call.args.unit, 'celsius');
      assert.equal(call.args.days, undefined, 'only required properties');
      assert.equal(r.candidates[0].finishReason, 'STOP');
      // Answering the call gets text, not another call.
      const follow = await ai.models.generateContent({
        model: MODEL,
        contents: [
          { role: 'user', parts: [{ text: 'Weather in Paris?' }] },
          { role: 'model', parts: [{ functionCall: call }] },
          { role: 'user', parts: [{ functionResponse: { name: 'get_weather', response: { temp: 21 } } }] },
        ],
        config: { tools: [WEATHER_TOOL] },
      });
      assert.equal(follow.functionCalls, undefined);
      assert.ok(follow.text.length > 0);
      const stream = await collect(await ai.models.generateContentStream({ model: MODEL, contents: 'Weather?', config: { tools: [WEATHER_TOOL] } }));
      assert.equal(stream.length, 1);
      assert.equal(stream[0].ch.functionCalls[0].name, 'get_weather');
    });

    test('countTokens agrees with promptTokenCount', async () => {
      const contents = 'Count these words, please, all of them.';
      const c = await ai.models.countTokens({ model: MODEL, contents });
      const r = await ai.models.generateContent({ model: MODEL, contents });
      assert.ok(c.totalTokens > 0);
      assert.equal(c.totalTokens, r.usageMetadata.promptTokenCount);
    });

    test('embedContent: deterministic vectors, outputDimensionality honoured', async () => {
      const model = mode === 'gemini' ? 'gemini-embedding-001' : 'text-embedding-005';
      const a = await ai.models.embedContent({ model, contents: ['duck', 'goose'], config: { outputDimensionality: 16 } });
      assert.equal(a.embeddings.length, 2);
      for (const e of a.embeddings) {
        assert.equal(e.values.length, 16);
        const norm = Math.sqrt(e.values.reduce((s, x) => s + x * x, 0));
        assert.ok(Math.abs(norm - 1) < 1e-5, `unit length, got ${norm}`);
      }
      assert.notDeepEqual(a.embeddings[0].values, a.embeddings[1].values);
      const b = await ai.models.embedContent({ model, contents: 'duck', config: { outputDimensionality: 16 } });
      assert.deepEqual(b.embeddings[0].values, a.embeddings[0].values);
      const full = await ai.models.embedContent({ model, contents: 'duck' });
      assert.equal(full.embeddings[0].values.length, mode === 'gemini' ? 3072 : 768);
    });

    test('models.get and models.list; an unknown model is NOT_FOUND', async () => {
      const m = await ai.models.get({ model: MODEL });
      assert.equal(m.name, mode === 'gemini' ? `models/${MODEL}` : `publishers/google/models/${MODEL}`);
      const names = [];
      for await (const x of await ai.models.list()) names.push(x.name);
      assert.ok(names.some((n) => n.endsWith(`/${MODEL}`)), names.join(', '));
      await assert.rejects(ai.models.get({ model: 'no-such-model' }), (e) => e instanceof ApiError && e.status === 404);
    });

    test('bad input: malformed JSON is INVALID_ARGUMENT, an unknown path NOT_FOUND, in Google format', async () => {
      const base = ai.apiClient.clientOptions.httpOptions.baseUrl;
      const path =
        mode === 'gemini'
          ? `/v1beta/models/${MODEL}:generateContent`
          : `/v1beta1/projects/p/locations/us-central1/publishers/google/models/${MODEL}:generateContent`;
      const bad = await httpRequest(base + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"contents": [' });
      assert.equal(bad.status, 400);
      assert.match(bad.headers['content-type'], /^application\/json; charset=UTF-8/);
      const e = jsonOf(bad.body).error;
      assert.equal(e.code, 400);
      assert.equal(e.status, 'INVALID_ARGUMENT');
      assert.match(e.message, /Invalid JSON payload/);
      const empty = await httpRequest(base + path, { method: 'POST', body: '{"contents":[]}' });
      assert.equal(empty.status, 400);
      assert.match(jsonOf(empty.body).error.message, /contents is not specified/);
      const missing = await httpRequest(base + '/v1beta/nothing/here', { method: 'POST', body: '{}' });
      assert.equal(missing.status, 404);
      assert.equal(jsonOf(missing.body).error.status, 'NOT_FOUND');
    });
  });
}

describe('Gemini and Vertex AI through a test upstream', () => {
  let srv;
  let up;
  let gem;
  let vtx;
  let gemPort;
  before(async () => {
    srv = await startServer({ args: ['--log-level', 'debug'], cacheOff: true });
    up = await startUpstream();
    gemPort = await freePort();
    await srv.createProxy({ name: 'gem', provider: 'gemini', upstream_url: up.url, port: gemPort });
    const vPort = await freePort();
    await srv.createProxy({ name: 'vtx', provider: 'vertex_ai', upstream_url: up.url, port: vPort });
    gem = gemini(gemPort);
    vtx = vertex(vPort, 'europe-west4');
  });
  after(async () => {
    await srv?.stop();
    await up?.close();
    // No credential of these tests ever reaches the server's output.
    const out = (srv?.stderrText() ?? '') + (srv?.stdoutText() ?? '');
    for (const secret of [API_KEY, QUERY_KEY, TOKEN]) assert.ok(!out.includes(secret), `${secret} appears in the server log`);
  });

  const answer = (text, extra = {}) => ({
    candidates: [{ content: { role: 'model', parts: [{ text }] }, finishReason: 'STOP', index: 0 }],
    usageMetadata: { promptTokenCount: 7, candidatesTokenCount: 3, totalTokenCount: 10 },
    modelVersion: MODEL,
    ...extra,
  });
  const json = (obj, status = 200) => (req, res) => {
    req.resume();
    req.on('end', () => {
      const body = JSON.stringify(obj);
      res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  };

  test('gemini: path, query and x-goog-api-key pass through; the answer reaches the SDK', async () => {
    up.clear();
    up.handle(json(answer('from upstream')));
    const r = await gem.models.generateContent({ model: MODEL, contents: 'hi' });
    assert.equal(r.text, 'from upstream');
    const rec = up.requests[0];
    assert.equal(rec.method, 'POST');
    assert.equal(rec.url, `/v1beta/models/${MODEL}:generateContent`);
    assert.equal(rec.headers['x-goog-api-key'], API_KEY);
    assert.deepEqual(JSON.parse(rec.body).contents, [{ role: 'user', parts: [{ text: 'hi' }] }]);
  });

  test('gemini: a key= query is passed through untouched', async () => {
    up.clear();
    up.handle(json(answer('ok')));
    const path = `/v1beta/models/${MODEL}:generateContent?key=${QUERY_KEY}&alt=json`;
    const r = await httpRequest(`http://127.0.0.1:${gemPort}${path}`, { method: 'POST', body: JSON.stringify({ contents: [{ parts: [{ text: 'q' }] }] }) });
    assert.equal(r.status, 200);
    assert.equal(up.requests[0].url, path);
  });

  test('gemini: an SSE answer is relayed unbuffered, chunk by chunk', async () => {
    up.clear();
    let release;
    const gate = new Promise((r) => (release = r));
    up.handle((req, res) => {
      req.resume();
      req.on('end', async () => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(`data: ${JSON.stringify({ candidates: [{ content: { role: 'model', parts: [{ text: 'first ' }] }, index: 0 }] })}\r\n\r\n`);
        // The second chunk is only written once the SDK has the first:
        // a proxy that buffered would deadlock here until the timeout.
        await Promise.race([gate, new Promise((r) => setTimeout(r, 5000))]);
        res.end(`data: ${JSON.stringify(answer('second'))}\r\n\r\n`);
      });
    });
    const seen = [];
    const started = now();
    for await (const ch of await gem.models.generateContentStream({ model: MODEL, contents: 'stream' })) {
      seen.push(ch.text);
      release();
    }
    assert.deepEqual(seen, ['first ', 'second']);
    assert.ok(now() - started < 4000, 'the first chunk was held back');
    assert.equal(up.requests[0].url, `/v1beta/models/${MODEL}:streamGenerateContent?alt=sse`);
    // The engine read the usage from the last chunk and saw the stream end.
    await srv.waitForStderr(/streamGenerateContent model=gemini-2\.0-flash -> 200 .* tokens 7\/3(?! \(stream not ended\))/);
  });

  test('gemini: an upstream 429 reaches the SDK as ApiError 429 with Google\'s body', async () => {
    up.clear();
    up.handle(json({ error: { code: 429, message: 'Resource has been exhausted (e.g. check quota).', status: 'RESOURCE_EXHAUSTED' } }, 429));
    const e = await gem.models.generateContent({ model: MODEL, contents: 'hi' }).catch((x) => x);
    assert.ok(e instanceof ApiError, String(e));
    assert.equal(e.status, 429);
    assert.match(e.message, /RESOURCE_EXHAUSTED/);
  });

  test('vertex: the path, alt=sse and the Bearer token pass through', async () => {
    up.clear();
    up.handle(json(answer('vertex says hi')));
    const r = await vtx.models.generateContent({ model: MODEL, contents: 'hi' });
    assert.equal(r.text, 'vertex says hi');
    const rec = up.requests[0];
    assert.equal(rec.url, `/v1beta1/projects/duck-project/locations/europe-west4/publishers/google/models/${MODEL}:generateContent`);
    assert.equal(rec.headers.authorization, `Bearer ${TOKEN}`);
    up.clear();
    up.handle((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.end(`data: ${JSON.stringify(answer('streamed'))}\r\n\r\n`);
      });
    });
    const chunks = await collect(await vtx.models.generateContentStream({ model: MODEL, contents: 'hi' }));
    assert.equal(chunks.map((c) => c.ch.text).join(''), 'streamed');
    assert.match(up.requests[0].url, /:streamGenerateContent\?alt=sse$/);
  });

  test('vertex: the JSON-array stream (no alt=sse) is relayed as it comes', async () => {
    up.clear();
    let release;
    const gate = new Promise((r) => (release = r));
    up.handle((req, res) => {
      req.resume();
      req.on('end', async () => {
        res.writeHead(200, { 'content-type': 'application/json; charset=UTF-8' });
        res.write('[' + JSON.stringify({ candidates: [{ content: { role: 'model', parts: [{ text: 'a' }] }, index: 0 }] }));
        await Promise.race([gate, new Promise((r) => setTimeout(r, 5000))]);
        res.end(',\r\n' + JSON.stringify(answer('b')) + ']');
      });
    });
    const path = `/v1/projects/p/locations/us-east5/publishers/google/models/${MODEL}:streamGenerateContent`;
    const res = await fetch(`${vtx.apiClient.clientOptions.httpOptions.baseUrl}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'x' }] }] }),
    });
    const reader = res.body.getReader();
    const first = await reader.read();
    assert.match(Buffer.from(first.value).toString(), /^\[\{"candidates"/);
    release();
    let rest = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      rest += Buffer.from(value).toString();
    }
    const all = JSON.parse(Buffer.from(first.value).toString() + rest);
    assert.equal(all.length, 2);
    await srv.waitForStderr(/streamGenerateContent model=gemini-2\.0-flash -> 200 .* tokens 7\/3/);
  });

  test('a key= value never reaches the log, even on an upstream failure', async () => {
    const deadPort = await freePort();
    const port = await freePort();
    await srv.createProxy({ name: 'dead', provider: 'gemini', upstream_url: `http://127.0.0.1:${deadPort}`, port });
    const r = await httpRequest(`http://127.0.0.1:${port}/v1beta/models/${MODEL}:generateContent?key=${QUERY_KEY}`, {
      method: 'POST',
      headers: { 'x-goog-api-key': API_KEY },
      body: '{"contents":[{"parts":[{"text":"x"}]}]}',
    });
    assert.equal(r.status, 502);
    const e = jsonOf(r.body).error;
    assert.equal(e.code, 502);
    assert.equal(e.status, 'UNKNOWN');
    assert.ok(!r.body.toString().includes(QUERY_KEY));
    await srv.waitForStderr(/upstream failed/);
    assert.ok(!srv.stderrText().includes(QUERY_KEY), 'the key= value is in the log');
    assert.ok(!srv.stderrText().includes(API_KEY), 'the api key header is in the log');
  });
});
