// GET /api/v1/proxies/{id}/usage: totals by model from the responses and the
// streams that passed, priced from the table; an unknown model costs null.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import { freePort, startServer } from './lib/server.mjs';
import { reply, startUpstream } from './lib/upstream.mjs';

const close = (a, b) => Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(b));

describe('usage totals', () => {
  let srv;
  let up;
  before(async () => {
    srv = await startServer({ workers: 2 });
    up = await startUpstream();
  });
  after(async () => {
    await up?.close();
    await srv?.stop();
  });

  test('emulator: plain and streamed chat calls sum up, with a cost from the table', async () => {
    const port = await freePort();
    const p = await srv.createProxy({ name: 'use-emu', provider: 'openai', upstream_url: 'emulator', port });
    const ai = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'sk-u', maxRetries: 0 });
    let input = 0;
    let output = 0;
    for (let i = 0; i < 3; i++) {
      const r = await ai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: `count me ${i}` }] });
      input += r.usage.prompt_tokens;
      output += r.usage.completion_tokens;
    }
    const stream = await ai.chat.completions.create({
      model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'stream me' }], stream: true, stream_options: { include_usage: true },
    });
    let streamed;
    for await (const ch of stream) if (ch.usage) streamed = ch.usage;
    input += streamed.prompt_tokens;
    output += streamed.completion_tokens;
    const unknown = await ai.chat.completions.create({ model: 'no-such-model-x', messages: [{ role: 'user', content: 'who' }] });

    const r = await srv.api('GET', `/api/v1/proxies/${p.id}/usage`);
    assert.equal(r.status, 200);
    assert.equal(r.json.proxy_id, p.id);
    assert.ok(Date.parse(r.json.since) > 0);
    const m = r.json.models.find((x) => x.model === 'gpt-4o-mini');
    assert.equal(m.requests, 4);
    assert.equal(m.input_tokens, input);
    assert.equal(m.output_tokens, output);
    assert.equal(m.cached_tokens, 0);
    assert.equal(m.unpriced_requests, 0);
    assert.equal(m.price.family, 'gpt-4o-mini');
    const want = (input * m.price.input_per_mtok + output * m.price.output_per_mtok) / 1e6;
    assert.ok(close(m.cost_usd, want), `${m.cost_usd} vs ${want}`);
    const u = r.json.models.find((x) => x.model === 'no-such-model-x');
    assert.equal(u.requests, 1);
    assert.equal(u.input_tokens, unknown.usage.prompt_tokens);
    assert.equal(u.cost_usd, null);
    assert.equal(u.unpriced_requests, 1);
    assert.equal(u.price, null);
    assert.equal(r.json.totals.requests, 5);
    assert.equal(r.json.totals.unpriced_requests, 1);
    assert.ok(close(r.json.totals.cost_usd, want));
    assert.equal(r.json.totals.input_tokens, input + unknown.usage.prompt_tokens);
  });

  test('upstream: cached tokens are part of the input, not added to it', async () => {
    const port = await freePort();
    const p = await srv.createProxy({ name: 'use-up', provider: 'openai', upstream_url: up.url, port });
    up.handle(reply.json({ id: 'c', object: 'chat.completion', created: 1, model: 'gpt-4o-2024-08-06',
      choices: [{ index: 0, message: { role: 'assistant', content: 'x' }, finish_reason: 'stop' }],
      usage: { prompt_tokens: 1000, completion_tokens: 100, total_tokens: 1100,
        prompt_tokens_details: { cached_tokens: 600 }, completion_tokens_details: { reasoning_tokens: 40 } } }));
    const ai = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'sk-u', maxRetries: 0 });
    await ai.chat.completions.create({ model: 'gpt-4o-2024-08-06', messages: [{ role: 'user', content: 'x' }] });
    const r = await srv.api('GET', `/api/v1/proxies/${p.id}/usage`);
    const m = r.json.models.find((x) => x.model === 'gpt-4o-2024-08-06');
    assert.equal(m.input_tokens, 1000);
    assert.equal(m.cached_tokens, 600);
    assert.equal(m.reasoning_tokens, 40);
    assert.equal(m.price.family, 'gpt-4o');
    const want = (400 * m.price.input_per_mtok + 600 * m.price.cached_input_per_mtok + 100 * m.price.output_per_mtok) / 1e6;
    assert.ok(close(m.cost_usd, want), `${m.cost_usd} vs ${want}`);
  });

  test('unknown proxy is a 404', async () => {
    const r = await srv.api('GET', '/api/v1/proxies/99999/usage');
    assert.equal(r.status, 404);
  });
});
