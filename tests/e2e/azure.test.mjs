// Azure OpenAI through the openai SDK's AzureOpenAI client (and the plain
// client on the v1 API), against the emulator and against a test upstream
// standing in for https://myresource.openai.azure.com.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import OpenAI, { AzureOpenAI, NotFoundError } from 'openai';
import { freePort, startServer } from './lib/server.mjs';
import { reply, startUpstream } from './lib/upstream.mjs';

const API_VERSION = '2024-10-21';
const KEY = 'azure-key-e2e-7f3a9c'; // grepped for in the server's output at the end
const azure = (port, deployment) =>
  new AzureOpenAI({ endpoint: `http://127.0.0.1:${port}`, apiKey: KEY, apiVersion: API_VERSION, deployment, maxRetries: 0, timeout: 15000 });

describe('azure_openai', () => {
  let srv;
  let up;
  let emuPort;
  let upPort;
  before(async () => {
    srv = await startServer();
    up = await startUpstream();
    emuPort = await freePort();
    upPort = await freePort();
    await srv.createProxy({
      name: 'az-emu', provider: 'azure_openai', upstream_url: 'emulator', port: emuPort,
      config: { deployments: { 'prod-4o': 'gpt-4o', embed: 'text-embedding-3-small' } },
    });
    await srv.createProxy({ name: 'az-up', provider: 'azure_openai', upstream_url: up.url, port: upPort });
  });
  after(async () => {
    await up?.close();
    if (srv) {
      const text = srv.stderrText() + srv.stdoutText();
      await srv.stop();
      assert.ok(!text.includes(KEY), 'the api-key never reaches the server output');
    }
  });

  test('creating or updating without upstream_url is a 400 that says so', async () => {
    const r = await srv.api('POST', '/api/v1/proxies', { name: 'az-none', provider: 'azure_openai', port: await freePort() });
    assert.equal(r.status, 400);
    assert.equal(r.json.error.field, 'upstream_url');
    assert.match(r.json.error.message, /upstream_url is required/);
    const list = await srv.api('GET', '/api/v1/proxies');
    assert.ok(!list.json.proxies.some((p) => p.name === 'az-none'), 'nothing was created');
    const p = (await srv.api('GET', '/api/v1/proxies')).json.proxies.find((x) => x.name === 'az-up');
    const patch = await srv.api('PATCH', `/api/v1/proxies/${p.id}`, { upstream_url: null });
    assert.equal(patch.status, 400);
    assert.equal(patch.json.error.field, 'upstream_url');
    const still = await srv.api('GET', `/api/v1/proxies/${p.id}`);
    assert.equal(still.json.upstream_url, up.url);
    const bad = await srv.api('PUT', `/api/v1/proxies/${p.id}/config`, { deployments: { d: 7 } });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.field, 'deployments.d');
  });

  test('emulator: chat names the deployment\'s model, usage is consistent', async () => {
    const r = await azure(emuPort, 'prod-4o').chat.completions.create({ model: 'ignored', messages: [{ role: 'user', content: 'Hello Azure' }] });
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.model, 'gpt-4o'); // deployments: prod-4o -> gpt-4o
    assert.ok(r.choices[0].message.content.length > 0);
    assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
    // a deployment named after a model exists without being listed, and
    // is its own model name
    const u = await azure(emuPort, 'gpt-4o-mini').chat.completions.create({ model: 'x', messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(u.model, 'gpt-4o-mini');
  });

  test('emulator: an unknown deployment is Azure\'s DeploymentNotFound, an unknown path its "Resource not found"', async () => {
    for (const call of [
      () => azure(emuPort, 'no-such-deployment').chat.completions.create({ model: 'x', messages: [{ role: 'user', content: 'hi' }] }),
      () => azure(emuPort, 'no-such-deployment').embeddings.create({ model: 'x', input: 'hi' }),
    ]) {
      const err = await call().then(() => null, (e) => e);
      assert.ok(err instanceof NotFoundError, `NotFoundError, got ${err}`);
      assert.equal(err.status, 404);
      assert.equal(err.code, 'DeploymentNotFound');
      assert.equal(err.error.message,
        'The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again.');
      assert.ok(err.requestID, 'the request id header');
    }
    // a path Azure does not have, under a deployment that exists
    const err = await azure(emuPort, 'prod-4o').post('/images/generations', { body: { prompt: 'a duck' } }).then(() => null, (e) => e);
    assert.ok(err instanceof NotFoundError, `NotFoundError, got ${err}`);
    assert.equal(err.code, '404');
    assert.equal(err.error.message, 'Resource not found');
    assert.deepEqual(Object.keys(err.error).sort(), ['code', 'message']);
  });

  test('emulator: streaming arrives in chunks and ends with usage', async () => {
    const stream = await azure(emuPort, 'prod-4o').chat.completions.create({
      model: 'gpt-4o', messages: [{ role: 'user', content: 'stream please' }], stream: true, stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const ch of stream) chunks.push(ch);
    assert.ok(chunks.length >= 3);
    assert.equal(chunks[0].model, 'gpt-4o');
    const text = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
    assert.ok(text.length > 0);
    const last = chunks.at(-1);
    assert.deepEqual(last.choices, []);
    assert.ok(last.usage.completion_tokens > 0);
  });

  test('emulator: embeddings through a deployment', async () => {
    const r = await azure(emuPort, 'embed').embeddings.create({ model: 'text-embedding-3-small', input: ['one', 'two'] });
    assert.equal(r.data.length, 2);
    assert.equal(r.model, 'text-embedding-3-small');
    assert.ok(r.data[0].embedding.length > 100);
  });

  test('emulator: the v1 API with the plain OpenAI client', async () => {
    const ai = new OpenAI({ baseURL: `http://127.0.0.1:${emuPort}/openai/v1`, apiKey: KEY, maxRetries: 0 });
    const r = await ai.chat.completions.create({ model: 'prod-4o', messages: [{ role: 'user', content: 'v1' }] });
    assert.equal(r.model, 'gpt-4o');
    const models = await ai.models.list();
    assert.ok(models.data.some((m) => m.id === 'gpt-4o'));
  });

  test('upstream: path, api-version and api-key arrive intact; the body is relayed', async () => {
    const body = { id: 'chatcmpl-az1', object: 'chat.completion', created: 1, model: 'gpt-4o-2024-11-20',
      choices: [{ index: 0, message: { role: 'assistant', content: 'from upstream' }, finish_reason: 'stop' }],
      usage: { prompt_tokens: 5, completion_tokens: 3, total_tokens: 8 } };
    up.handle(reply.json(body, { headers: { 'apim-request-id': 'apim-123', 'x-request-id': 'xr-123' } }));
    up.clear();
    const { data, response } = await azure(upPort, 'prod-4o').chat.completions
      .create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] })
      .withResponse();
    assert.equal(data.choices[0].message.content, 'from upstream');
    assert.equal(response.headers.get('apim-request-id'), 'apim-123');
    const rec = await up.waitRequest();
    assert.equal(rec.method, 'POST');
    assert.equal(rec.url, `/openai/deployments/prod-4o/chat/completions?api-version=${API_VERSION}`);
    assert.equal(rec.headers['api-key'], KEY);
    assert.equal(rec.headers.authorization, undefined);
    assert.equal(JSON.parse(rec.body).messages[0].content, 'hi');
  });

  test('upstream: an Entra ID bearer token passes through, the query untouched', async () => {
    up.handle(reply.json({ object: 'list', data: [] }));
    up.clear();
    const ai = new AzureOpenAI({
      endpoint: `http://127.0.0.1:${upPort}`, apiVersion: '2025-04-01-preview', maxRetries: 0,
      azureADTokenProvider: async () => 'entra-token-abc',
    });
    await ai.models.list();
    const rec = await up.waitRequest();
    assert.equal(rec.url, '/openai/models?api-version=2025-04-01-preview');
    assert.equal(rec.headers.authorization, 'Bearer entra-token-abc');
  });

  test('upstream: a stream is relayed event by event', async () => {
    const chunk = (content, extra = {}) =>
      'data: ' + JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o',
        choices: content === null ? [] : [{ index: 0, delta: { content }, finish_reason: null }], ...extra });
    up.handle(reply.sse([chunk('Hel'), chunk('lo'), chunk(null, { usage: { prompt_tokens: 4, completion_tokens: 2, total_tokens: 6 } }), 'data: [DONE]'], { intervalMs: 150 }));
    up.clear();
    const stream = await azure(upPort, 'prod-4o').chat.completions.create({
      model: 'gpt-4o', messages: [{ role: 'user', content: 's' }], stream: true, stream_options: { include_usage: true },
    });
    const at = [];
    const parts = [];
    for await (const ch of stream) {
      at.push(performance.now());
      parts.push(ch.choices[0]?.delta?.content ?? '');
    }
    assert.equal(parts.join(''), 'Hello');
    assert.equal(at.length, 3);
    assert.ok(at[2] - at[0] > 200, `events arrived one by one (${Math.round(at[2] - at[0])} ms apart)`);
    const rec = await up.waitRequest();
    assert.equal(rec.url, `/openai/deployments/prod-4o/chat/completions?api-version=${API_VERSION}`);
  });

  test('upstream: embeddings', async () => {
    up.handle(reply.json({ object: 'list', data: [{ object: 'embedding', index: 0, embedding: [0.5, -0.25] }], model: 'text-embedding-3-small', usage: { prompt_tokens: 2, total_tokens: 2 } }));
    up.clear();
    const r = await azure(upPort, 'embed').embeddings.create({ model: 'text-embedding-3-small', input: 'x', encoding_format: 'float' });
    assert.deepEqual(r.data[0].embedding, [0.5, -0.25]);
    const rec = await up.waitRequest();
    assert.equal(rec.url, `/openai/deployments/embed/embeddings?api-version=${API_VERSION}`);
  });

  test('usage: the deployment is priced as its mapped model', async () => {
    const p = (await srv.api('GET', '/api/v1/proxies')).json.proxies.find((x) => x.name === 'az-emu');
    const r = await srv.api('GET', `/api/v1/proxies/${p.id}/usage`);
    assert.equal(r.status, 200);
    const m = r.json.models.find((x) => x.model === 'gpt-4o');
    assert.ok(m, JSON.stringify(r.json.models));
    assert.equal(m.provider, 'azure_openai');
    assert.equal(m.price.family, 'gpt-4o');
    assert.ok(m.cost_usd > 0);
  });
});
