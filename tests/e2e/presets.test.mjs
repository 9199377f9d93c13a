// GET /api/v1/providers and the OpenAI-compatible presets: every provider is
// listed with its default upstream, dialect and SDK base URL, and a proxy of
// each preset answers the openai SDK given exactly that base URL.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import { httpRequest } from './lib/http.mjs';
import { freePort, startServer } from './lib/server.mjs';
import { reply, startUpstream } from './lib/upstream.mjs';

const PRESETS = {
  groq: { upstream: 'https://api.groq.com', path: '/openai/v1', model: 'llama-3.3-70b-versatile' },
  mistral: { upstream: 'https://api.mistral.ai', path: '/v1', model: 'mistral-small-latest' },
  together: { upstream: 'https://api.together.xyz', path: '/v1', model: 'meta-llama/Llama-3.3-70B-Instruct-Turbo' },
  openrouter: { upstream: 'https://openrouter.ai/api', path: '/api/v1', model: 'openai/gpt-4o' },
  xai: { upstream: 'https://api.x.ai', path: '/v1', model: 'grok-3-mini' },
  ollama: { upstream: 'http://127.0.0.1:11434', path: '/v1', model: 'llama3.2' },
  openai_compatible: { upstream: null, path: '/v1', model: 'local-model' },
};

describe('providers list and OpenAI-compatible presets', () => {
  let srv;
  let providers;
  before(async () => {
    srv = await startServer();
    const r = await srv.api('GET', '/api/v1/providers');
    assert.equal(r.status, 200);
    providers = Object.fromEntries(r.json.providers.map((p) => [p.name, p]));
  });
  after(async () => {
    await srv?.stop();
  });

  test('every provider is listed with its upstream, dialect and SDK base URL', () => {
    for (const name of ['openai', 'deepseek', 'azure_openai', ...Object.keys(PRESETS)]) {
      const p = providers[name];
      assert.ok(p, `${name} is listed`);
      assert.equal(p.dialect, 'openai');
      assert.equal(typeof p.sdk_base_path, 'string');
      assert.equal(p.sdk_base_url_example, `http://127.0.0.1:<port>${p.sdk_base_path}`);
      assert.equal(typeof p.upstream_required, 'boolean');
      assert.ok(p.routes.length > 0);
    }
    for (const [name, want] of Object.entries(PRESETS)) {
      assert.equal(providers[name].default_upstream, want.upstream, name);
      assert.equal(providers[name].sdk_base_path, want.path, name);
      assert.equal(providers[name].upstream_required, want.upstream === null, name);
      assert.ok(providers[name].routes.every((r) => r.path.startsWith(want.path)), `${name}: routes under ${want.path}`);
    }
    assert.equal(providers.azure_openai.default_upstream, null);
    assert.equal(providers.azure_openai.upstream_required, true);
    assert.equal(providers.openai.upstream_required, false);
  });

  test('openai_compatible without upstream_url is a 400; with one it is created', async () => {
    const r = await srv.api('POST', '/api/v1/proxies', { name: 'compat-none', provider: 'openai_compatible', port: await freePort() });
    assert.equal(r.status, 400);
    assert.equal(r.json.error.field, 'upstream_url');
    assert.match(r.json.error.message, /openai_compatible/);
  });

  for (const [name, want] of Object.entries(PRESETS)) {
    test(`${name}: the openai SDK with the listed base URL, against the emulator`, async () => {
      const port = await freePort();
      await srv.createProxy({ name: `emu-${name}`, provider: name, upstream_url: 'emulator', port });
      const baseURL = providers[name].sdk_base_url_example.replace('<port>', String(port));
      const ai = new OpenAI({ baseURL, apiKey: 'sk-preset', maxRetries: 0, timeout: 10000 });
      const r = await ai.chat.completions.create({ model: want.model, messages: [{ role: 'user', content: `hi ${name}` }] });
      assert.equal(r.object, 'chat.completion');
      assert.equal(r.model, want.model);
      assert.ok(r.choices[0].message.content.length > 0);
      assert.ok(r.usage.prompt_tokens > 0);
      // GET {base}/models in the provider's own shape: Together AI answers a
      // bare array of model objects, the others OpenAI's list object.
      const raw = await httpRequest(`${baseURL}/models`, { headers: { authorization: 'Bearer sk-preset' } });
      assert.equal(raw.status, 200);
      const listed = JSON.parse(raw.body.toString());
      const data = name === 'together' ? listed : listed.data;
      if (name === 'together') assert.ok(Array.isArray(listed), `together lists a bare array: ${raw.body}`);
      else assert.equal(listed.object, 'list');
      assert.ok(data.length > 0);
      assert.ok(data.every((m) => typeof m.id === 'string' && m.object === 'model'));
      assert.ok(data.some((m) => m.id === want.model), `${want.model} is listed`);
      if (name !== 'together') {
        const models = await ai.models.list();
        assert.deepEqual(models.data.map((m) => m.id), data.map((m) => m.id));
      }
    });
  }

  test('a preset forwards to its upstream_url with the SDK path intact', async () => {
    const up = await startUpstream(reply.json({ id: 'x', object: 'chat.completion', created: 1, model: 'm',
      choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }] }));
    try {
      for (const name of ['groq', 'openrouter', 'openai_compatible']) {
        const port = await freePort();
        await srv.createProxy({ name: `up-${name}`, provider: name, upstream_url: up.url, port });
        up.clear();
        const ai = new OpenAI({ baseURL: `http://127.0.0.1:${port}${PRESETS[name].path}`, apiKey: 'sk-up', maxRetries: 0 });
        const r = await ai.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'x' }] });
        assert.equal(r.choices[0].message.content, 'ok');
        const rec = await up.waitRequest();
        assert.equal(rec.url, `${PRESETS[name].path}/chat/completions`);
        assert.equal(rec.headers.authorization, 'Bearer sk-up');
      }
    } finally {
      await up.close();
    }
  });
});
