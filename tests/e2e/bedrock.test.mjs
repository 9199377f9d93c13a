// The bedrock provider through the official @aws-sdk/client-bedrock-runtime:
// Converse, ConverseStream, InvokeModel and InvokeModelWithResponseStream,
// with the SDK's default handler (HTTP/2, prior knowledge) and with
// NodeHttpHandler (HTTP/1.1), against an emulator proxy and against proxies
// whose upstream is a test upstream that checks the SigV4 signature the proxy
// makes with its configured (or environment) credentials.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import zlib from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import {
  BedrockRuntimeClient,
  ConverseCommand,
  ConverseStreamCommand,
  InvokeModelCommand,
  InvokeModelWithResponseStreamCommand,
  ThrottlingException,
  ValidationException,
} from '@aws-sdk/client-bedrock-runtime';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { freePort, startServer } from './lib/server.mjs';
import { startUpstream } from './lib/upstream.mjs';

const MODEL = 'anthropic.claude-3-5-sonnet-20240620-v1:0';
const CLIENT_CREDS = { accessKeyId: 'AKIDCLIENTONLY0000', secretAccessKey: 'client-secret-stays-home' };
const AWS = {
  access_key_id: 'AKIDPROXYEXAMPLE0001',
  secret_access_key: 'proxy-secret-Zq9/w8+Secret-Key-Value',
  session_token: 'proxy-session-token-FwoGZXIvYXdzEXAMPLE',
  region: 'eu-central-1',
};
const ENV_AWS = { AWS_ACCESS_KEY_ID: 'AKIDFROMENVIRONMENT1', AWS_SECRET_ACCESS_KEY: 'env-secret-kJ7y/Example+Key' };
const NO_AWS_ENV = {
  AWS_ACCESS_KEY_ID: null,
  AWS_SECRET_ACCESS_KEY: null,
  AWS_SESSION_TOKEN: null,
  AWS_REGION: null,
  AWS_DEFAULT_REGION: null,
};
const HANDLERS = [
  ['default handler (HTTP/2)', () => undefined],
  ['NodeHttpHandler (HTTP/1.1)', () => new NodeHttpHandler()],
];
const client = (port, handler, opts = {}) =>
  new BedrockRuntimeClient({
    region: 'us-west-2',
    endpoint: `http://127.0.0.1:${port}`,
    credentials: CLIENT_CREDS,
    maxAttempts: 1,
    ...(handler ? { requestHandler: handler } : {}),
    ...opts,
  });
const say = (text) => ({ messages: [{ role: 'user', content: [{ text }] }], inferenceConfig: { maxTokens: 300 } });
const textOf = (msg) => msg.content.filter((b) => b.text !== undefined).map((b) => b.text).join('');
const claudeBody = (text, extra = {}) =>
  JSON.stringify({
    anthropic_version: 'bedrock-2023-05-31',
    max_tokens: 300,
    messages: [{ role: 'user', content: text }],
    ...extra,
  });
const WEATHER = {
  toolSpec: {
    name: 'get_weather',
    description: 'Current weather for a place',
    inputSchema: {
      json: {
        type: 'object',
        properties: { location: { type: 'string' }, days: { type: 'integer', minimum: 1, maximum: 5 } },
        required: ['location', 'days'],
      },
    },
  },
};

let srv;
let emuPort;
let emuId;
let pacedPort;
before(async () => {
  // trace: the most the server ever logs, for the secrets test
  srv = await startServer({ args: ['--log-level', 'trace'], env: NO_AWS_ENV, cacheOff: true });
  emuPort = await freePort();
  emuId = (await srv.createProxy({ name: 'bedrock-emu', provider: 'bedrock', upstream_url: 'emulator', port: emuPort })).id;
  pacedPort = await freePort();
  await srv.createProxy({
    name: 'bedrock-paced',
    provider: 'bedrock',
    upstream_url: 'emulator',
    port: pacedPort,
    config: { emulator: { tokens_per_second: 100 } },
  });
});
after(async () => {
  await srv?.stop();
});

for (const [label, mk] of HANDLERS) {
  describe(`emulator, ${label}`, () => {
    test('Converse: text, stopReason, usage, request id; deterministic', async () => {
      const br = client(emuPort, mk());
      const res = await br.send(new ConverseCommand({ modelId: MODEL, ...say('Hello there, duck') }));
      assert.equal(res.$metadata.httpStatusCode, 200);
      assert.match(res.$metadata.requestId, /^req_/);
      assert.equal(res.output.message.role, 'assistant');
      assert.match(textOf(res.output.message), /Hello there, duck/);
      assert.equal(res.stopReason, 'end_turn');
      assert.ok(res.usage.inputTokens > 0);
      assert.ok(res.usage.outputTokens >= 10);
      assert.equal(res.usage.totalTokens, res.usage.inputTokens + res.usage.outputTokens);
      assert.ok(res.metrics.latencyMs > 0);
      const again = await br.send(new ConverseCommand({ modelId: MODEL, ...say('Hello there, duck') }));
      assert.equal(textOf(again.output.message), textOf(res.output.message));
      br.destroy();
    });

    test('ConverseStream: events in order, the same text and usage as Converse', async () => {
      const br = client(emuPort, mk());
      const plain = await br.send(new ConverseCommand({ modelId: MODEL, ...say('stream to me') }));
      const res = await br.send(new ConverseStreamCommand({ modelId: MODEL, ...say('stream to me') }));
      const kinds = [];
      let text = '';
      let meta = null;
      let stop = null;
      for await (const ev of res.stream) {
        const kind = Object.keys(ev).filter((k) => ev[k] !== undefined)[0];
        kinds.push(kind);
        if (kind === 'contentBlockDelta') text += ev.contentBlockDelta.delta.text;
        if (kind === 'messageStop') stop = ev.messageStop.stopReason;
        if (kind === 'metadata') meta = ev.metadata;
      }
      assert.equal(kinds[0], 'messageStart');
      assert.deepEqual(kinds.slice(-3), ['contentBlockStop', 'messageStop', 'metadata']);
      assert.ok(kinds.filter((k) => k === 'contentBlockDelta').length >= 5);
      assert.equal(text, textOf(plain.output.message));
      assert.equal(stop, 'end_turn');
      assert.deepEqual(meta.usage, plain.usage);
      br.destroy();
    });

    test('Converse tool use: a toolUse block with schema-shaped input, plain and streamed', async () => {
      const br = client(emuPort, mk());
      const req = {
        modelId: MODEL,
        ...say('What is the weather in Lisbon?'),
        toolConfig: { tools: [WEATHER], toolChoice: { any: {} } },
      };
      const res = await br.send(new ConverseCommand(req));
      assert.equal(res.stopReason, 'tool_use');
      const use = res.output.message.content.find((b) => b.toolUse).toolUse;
      assert.equal(use.name, 'get_weather');
      assert.match(use.toolUseId, /^tooluse_/);
      assert.equal(typeof use.input.location, 'string');
      assert.ok(Number.isInteger(use.input.days) && use.input.days >= 1 && use.input.days <= 5);
      const s = await br.send(new ConverseStreamCommand(req));
      let start = null;
      let json = '';
      for await (const ev of s.stream) {
        if (ev.contentBlockStart) start = ev.contentBlockStart.start.toolUse;
        if (ev.contentBlockDelta?.delta.toolUse) json += ev.contentBlockDelta.delta.toolUse.input;
      }
      assert.deepEqual(start, { toolUseId: use.toolUseId, name: 'get_weather' });
      assert.deepEqual(JSON.parse(json), use.input);
      br.destroy();
    });

    test('InvokeModel (Claude): the Anthropic Message JSON', async () => {
      const br = client(emuPort, mk());
      const res = await br.send(
        new InvokeModelCommand({ modelId: MODEL, contentType: 'application/json', body: claudeBody('invoke me, duck') }),
      );
      const msg = JSON.parse(Buffer.from(res.body).toString('utf8'));
      assert.equal(msg.type, 'message');
      assert.equal(msg.role, 'assistant');
      assert.equal(msg.stop_reason, 'end_turn');
      assert.match(msg.content[0].text, /invoke me, duck/);
      assert.ok(msg.usage.input_tokens > 0 && msg.usage.output_tokens > 0);
      br.destroy();
    });

    test('InvokeModelWithResponseStream (Claude): base64 chunks of Anthropic events, metrics last', async () => {
      const br = client(emuPort, mk());
      const input = { modelId: MODEL, contentType: 'application/json', body: claudeBody('invoke a stream') };
      const plain = JSON.parse(Buffer.from((await br.send(new InvokeModelCommand(input))).body).toString('utf8'));
      const res = await br.send(new InvokeModelWithResponseStreamCommand(input));
      const events = [];
      for await (const ev of res.body) {
        assert.ok(ev.chunk, `a chunk event, got ${JSON.stringify(Object.keys(ev))}`);
        events.push(JSON.parse(Buffer.from(ev.chunk.bytes).toString('utf8')));
      }
      const types = events.map((e) => e.type);
      assert.equal(types[0], 'message_start');
      assert.deepEqual(types.slice(-3), ['content_block_stop', 'message_delta', 'message_stop']);
      const text = events
        .filter((e) => e.type === 'content_block_delta')
        .map((e) => e.delta.text)
        .join('');
      assert.equal(text, plain.content[0].text);
      const metrics = events.at(-1)['amazon-bedrock-invocationMetrics'];
      assert.equal(metrics.inputTokenCount, plain.usage.input_tokens);
      assert.equal(metrics.outputTokenCount, plain.usage.output_tokens);
      br.destroy();
    });

    test('errors are typed: ValidationException for a non-Claude invoke and a malformed body', async () => {
      const br = client(emuPort, mk());
      await assert.rejects(
        br.send(new InvokeModelCommand({ modelId: 'amazon.nova-pro-v1:0', body: '{"inputText":"hi"}' })),
        (e) => e instanceof ValidationException && e.$metadata.httpStatusCode === 400 && /Converse/.test(e.message),
      );
      await assert.rejects(
        br.send(new InvokeModelCommand({ modelId: MODEL, body: claudeBody('x', { max_tokens: 0 }) })),
        (e) => e instanceof ValidationException && /max_tokens/.test(e.message),
      );
      br.destroy();
    });
  });
}

test('a paced emulator: converse-stream deltas arrive one by one, spread in time', async () => {
  const br = client(pacedPort, new NodeHttpHandler());
  const res = await br.send(new ConverseStreamCommand({ modelId: MODEL, messages: say('pace me please').messages, inferenceConfig: { maxTokens: 20 } }));
  const times = [];
  for await (const ev of res.stream) if (ev.contentBlockDelta) times.push(performance.now());
  assert.ok(times.length >= 10, `${times.length} deltas`);
  // 100 tokens/s: one delta every ~10 ms, so the stream takes well over 100 ms
  assert.ok(times.at(-1) - times[0] >= 100, `deltas spread over ${Math.round(times.at(-1) - times[0])} ms`);
  br.destroy();
});

test('the decoded modelId is the model of logs and usage, priced from the bedrock rows', async () => {
  const br = client(emuPort, new NodeHttpHandler());
  const profile = 'us.anthropic.claude-3-5-haiku-20241022-v1:0';
  await br.send(new ConverseCommand({ modelId: profile, ...say('price me') }));
  const s = await br.send(new ConverseStreamCommand({ modelId: profile, ...say('price me too') }));
  for await (const ev of s.stream) void ev;
  await srv.waitForStderr(/POST \/model\/us\.anthropic\.claude-3-5-haiku-20241022-v1%3A0\/converse-stream model=us\.anthropic\.claude-3-5-haiku-20241022-v1:0 -> 200/);
  const u = await srv.api('GET', `/api/v1/proxies/${emuId}/usage`);
  const row = u.json.models.find((m) => m.model === profile);
  assert.ok(row, JSON.stringify(u.json));
  assert.equal(row.provider, 'bedrock');
  assert.equal(row.requests, 2);
  assert.ok(row.input_tokens > 0 && row.output_tokens > 0);
  assert.equal(row.price.family, 'anthropic.claude-3-5-haiku');
  assert.ok(row.cost_usd > 0);
  br.destroy();
});

// ---- against a test upstream ----

// An event-stream message, written independently of the proxy's encoder.
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
  const total = 16 + hb.length + pb.length;
  const prelude = Buffer.alloc(8);
  prelude.writeUInt32BE(total, 0);
  prelude.writeUInt32BE(hb.length, 4);
  const pcrc = Buffer.alloc(4);
  pcrc.writeUInt32BE(zlib.crc32(prelude), 0);
  const body = Buffer.concat([prelude, pcrc, hb, pb]);
  const mcrc = Buffer.alloc(4);
  mcrc.writeUInt32BE(zlib.crc32(body), 0);
  return Buffer.concat([body, mcrc]);
}
const esEvent = (type, obj) =>
  esFrame({ ':event-type': type, ':content-type': 'application/json', ':message-type': 'event' }, JSON.stringify(obj));

// SigV4 as AWS checks it, from what the upstream received.
const enc = (s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
const hmac = (k, s) => crypto.createHmac('sha256', k).update(s).digest();
function verifySigV4(rec, { accessKeyId, secretAccessKey, region }) {
  const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$/.exec(
    rec.headers.authorization ?? '',
  );
  assert.ok(m, `a SigV4 Authorization header, got ${rec.headers.authorization}`);
  const [, akid, date, scopeRegion, service, signed, signature] = m;
  assert.equal(akid, accessKeyId);
  assert.equal(scopeRegion, region);
  assert.equal(service, 'bedrock');
  const amzDate = rec.headers['x-amz-date'];
  assert.equal(amzDate.slice(0, 8), date);
  assert.ok(Math.abs(Date.parse(amzDate.replace(/^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/, '$1-$2-$3T$4:$5:$6Z')) - Date.now()) < 60000);
  const names = signed.split(';');
  assert.ok(names.includes('host') && names.includes('x-amz-date'));
  const [rawPath, rawQuery = ''] = rec.url.split('?');
  const canonUri = rawPath.split('/').map((seg) => enc(seg)).join('/');
  const canonQuery = rawQuery
    .split('&')
    .filter(Boolean)
    .map((kv) => kv.split('=').map((x) => enc(decodeURIComponent(x))))
    .sort()
    .map(([k, v = '']) => `${k}=${v}`)
    .join('&');
  const canonHeaders = names.map((n) => `${n}:${String(rec.headers[n]).trim().replace(/\s+/g, ' ')}\n`).join('');
  const payloadHash = crypto.createHash('sha256').update(rec.body).digest('hex');
  const creq = ['POST', canonUri, canonQuery, canonHeaders, signed, payloadHash].join('\n');
  const sts = ['AWS4-HMAC-SHA256', amzDate, `${date}/${region}/bedrock/aws4_request`, crypto.createHash('sha256').update(creq).digest('hex')].join('\n');
  const key = hmac(hmac(hmac(hmac('AWS4' + secretAccessKey, date), region), 'bedrock'), 'aws4_request');
  assert.equal(signature, hmac(key, sts).toString('hex'), 'the signature verifies with the configured secret');
  return names;
}

const CONVERSE_ANSWER = {
  output: { message: { role: 'assistant', content: [{ text: 'from upstream' }] } },
  stopReason: 'end_turn',
  usage: { inputTokens: 11, outputTokens: 3, totalTokens: 1250, cacheReadInputTokens: 1200, cacheWriteInputTokens: 36 },
  metrics: { latencyMs: 42 },
};

describe('forwarding to a Bedrock upstream', () => {
  let up;
  let upPort;
  let upId;
  before(async () => {
    up = await startUpstream();
    upPort = await freePort();
    upId = (await srv.createProxy({ name: 'bedrock-up', provider: 'bedrock', upstream_url: up.url, port: upPort, config: { aws: AWS } })).id;
  });
  after(() => up?.close());

  for (const [label, mk] of HANDLERS) {
    test(`${label}: re-signed with the proxy's credentials; path, body and model intact`, async () => {
      up.handle((req, res) => {
        res.writeHead(200, { 'content-type': 'application/json', 'x-amzn-RequestId': 'up-req-1' });
        res.end(JSON.stringify(CONVERSE_ANSWER));
      });
      const br = client(upPort, mk());
      const n = up.requests.length;
      const res = await br.send(new ConverseCommand({ modelId: MODEL, ...say('sign me') }));
      assert.equal(textOf(res.output.message), 'from upstream');
      assert.equal(res.$metadata.requestId, 'up-req-1');
      assert.deepEqual(res.usage, CONVERSE_ANSWER.usage);
      const rec = up.requests[n];
      assert.equal(rec.url, '/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse');
      assert.deepEqual(JSON.parse(rec.body.toString()), say('sign me'));
      const names = verifySigV4(rec, { accessKeyId: AWS.access_key_id, secretAccessKey: AWS.secret_access_key, region: AWS.region });
      assert.ok(names.includes('x-amz-security-token'));
      assert.equal(rec.headers['x-amz-security-token'], AWS.session_token);
      assert.ok(!JSON.stringify(rec.headers).includes(CLIENT_CREDS.accessKeyId), 'the client signature is gone');
      br.destroy();
    });
  }

  test('usage of a plain Converse body: input includes the cache reads and writes', async () => {
    await srv.waitForStderr(/model=anthropic\.claude-3-5-sonnet-20240620-v1:0 -> 200 \(upstream 200\) .* tokens 1247\/3/);
  });

  test('a converse stream is relayed frame by frame; metadata gives the usage', async () => {
    const events = [
      esEvent('messageStart', { role: 'assistant' }),
      esEvent('contentBlockDelta', { contentBlockIndex: 0, delta: { text: 'Hi ' } }),
      esEvent('contentBlockDelta', { contentBlockIndex: 0, delta: { text: 'there' } }),
      esEvent('contentBlockStop', { contentBlockIndex: 0 }),
      esEvent('messageStop', { stopReason: 'end_turn' }),
      esEvent('metadata', { usage: { inputTokens: 321, outputTokens: 2, totalTokens: 323 }, metrics: { latencyMs: 9 } }),
    ];
    let release;
    const gate = new Promise((r) => (release = r));
    up.handle(async (req, res) => {
      res.writeHead(200, { 'content-type': 'application/vnd.amazon.eventstream' });
      // the first frame split mid-header, then a pause the client must not wait for
      res.write(events[0].subarray(0, 10));
      setTimeout(() => res.write(events[0].subarray(10)), 20);
      await gate;
      for (const e of events.slice(1)) res.write(e);
      res.end();
    });
    const br = client(upPort, new NodeHttpHandler());
    const res = await br.send(new ConverseStreamCommand({ modelId: 'amazon.nova-pro-v1:0', ...say('relay') }));
    const it = res.stream[Symbol.asyncIterator]();
    const first = await it.next();
    assert.deepEqual(first.value.messageStart, { role: 'assistant' }, 'messageStart arrives before the upstream sends more');
    release();
    let text = '';
    let meta;
    for (let r = await it.next(); !r.done; r = await it.next()) {
      if (r.value.contentBlockDelta) text += r.value.contentBlockDelta.delta.text;
      if (r.value.metadata) meta = r.value.metadata;
    }
    assert.equal(text, 'Hi there');
    assert.equal(meta.usage.inputTokens, 321);
    await srv.waitForStderr(/model=amazon\.nova-pro-v1:0 -> 200 \(upstream 200\) .* tokens 321\/2/);
    br.destroy();
  });

  for (const [label, mk] of HANDLERS) {
    test(`${label}: an upstream 429 ThrottlingException reaches the SDK as ThrottlingException`, async () => {
      up.handle((req, res) => {
        res.writeHead(429, {
          'content-type': 'application/json',
          'x-amzn-ErrorType': 'ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/',
          'x-amzn-RequestId': 'throttled-1',
        });
        res.end(JSON.stringify({ message: 'Too many requests, please wait before trying again.' }));
      });
      const br = client(upPort, mk());
      await assert.rejects(br.send(new ConverseCommand({ modelId: MODEL, ...say('throttle me') })), (e) => {
        assert.ok(e instanceof ThrottlingException, `${e.name}: ${e.message}`);
        assert.equal(e.$metadata.httpStatusCode, 429);
        assert.equal(e.$metadata.requestId, 'throttled-1');
        assert.match(e.message, /Too many requests/);
        return true;
      });
      br.destroy();
    });
  }

  test('a mid-stream exception frame raises the typed exception', async () => {
    up.handle((req, res) => {
      res.writeHead(200, { 'content-type': 'application/vnd.amazon.eventstream' });
      res.write(esEvent('messageStart', { role: 'assistant' }));
      res.end(
        esFrame(
          { ':exception-type': 'throttlingException', ':content-type': 'application/json', ':message-type': 'exception' },
          JSON.stringify({ message: 'slow down mid-stream' }),
        ),
      );
    });
    const br = client(upPort, new NodeHttpHandler());
    const res = await br.send(new ConverseStreamCommand({ modelId: MODEL, ...say('x') }));
    await assert.rejects(
      (async () => {
        for await (const ev of res.stream) void ev;
      })(),
      (e) => e instanceof ThrottlingException && /slow down mid-stream/.test(e.message),
    );
    br.destroy();
  });

  test('a Bedrock API key (Authorization: Bearer) passes through unchanged, unsigned', async () => {
    up.handle((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(CONVERSE_ANSWER));
    });
    const br = client(upPort, new NodeHttpHandler(), {
      token: { token: 'bedrock-api-key-ABSKexample' },
      authSchemePreference: ['httpBearerAuth'],
    });
    const n = up.requests.length;
    await br.send(new ConverseCommand({ modelId: MODEL, ...say('bearer') }));
    const rec = up.requests[n];
    assert.equal(rec.headers.authorization, 'Bearer bedrock-api-key-ABSKexample');
    assert.equal(rec.headers['x-amz-security-token'], undefined);
    br.destroy();
  });

  test('the aws secrets never appear in the API or the server log', async () => {
    const list = await srv.api('GET', '/api/v1/proxies');
    const one = await srv.api('GET', `/api/v1/proxies/${upId}`);
    for (const text of [list.text, one.text, srv.stderrText()]) {
      assert.ok(!text.includes(AWS.secret_access_key), 'secret_access_key leaked');
      assert.ok(!text.includes(AWS.session_token), 'session_token leaked');
      assert.ok(!text.includes('bedrock-api-key-ABSKexample'), 'API key leaked');
    }
    assert.ok(list.text.includes('********'), 'the secrets show as the placeholder');
  });
});

describe('credentials from elsewhere', () => {
  test('no credentials anywhere: a 502 that says so, in Bedrock format', async () => {
    const up = await startUpstream();
    const port = await freePort();
    await srv.createProxy({ name: 'bedrock-nocreds', provider: 'bedrock', upstream_url: up.url, port, config: { aws: { region: 'us-east-1' } } });
    const br = client(port, new NodeHttpHandler());
    await assert.rejects(br.send(new ConverseCommand({ modelId: MODEL, ...say('x') })), (e) => {
      assert.equal(e.$metadata.httpStatusCode, 502);
      assert.equal(e.name, 'InternalServerException');
      assert.match(e.message, /No AWS credentials/);
      return true;
    });
    assert.equal(up.requests.length, 0, 'nothing reached the upstream');
    br.destroy();
    await up.close();
  });

  test('AWS_* environment variables sign when the proxy has no aws block; region from the client scope', async () => {
    const envSrv = await startServer({ env: { ...NO_AWS_ENV, ...ENV_AWS } });
    const up = await startUpstream((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(CONVERSE_ANSWER));
    });
    try {
      const port = await freePort();
      await envSrv.createProxy({ name: 'bedrock-env', provider: 'bedrock', upstream_url: up.url, port });
      const br = client(port, new NodeHttpHandler(), { region: 'ap-southeast-2' });
      await br.send(new ConverseCommand({ modelId: MODEL, ...say('env creds') }));
      verifySigV4(up.requests[0], {
        accessKeyId: ENV_AWS.AWS_ACCESS_KEY_ID,
        secretAccessKey: ENV_AWS.AWS_SECRET_ACCESS_KEY,
        region: 'ap-southeast-2',
      });
      assert.equal(up.requests[0].headers['x-amz-security-token'], undefined);
      assert.ok(!envSrv.stderrText().includes(ENV_AWS.AWS_SECRET_ACCESS_KEY));
      br.destroy();
    } finally {
      await up.close();
      await envSrv.stop();
    }
  });
});

