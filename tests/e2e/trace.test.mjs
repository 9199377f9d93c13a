// OpenTelemetry traces: the server exports OTLP/HTTP JSON to a test
// collector on loopback (a node http server taking POST /v1/traces). An
// incoming traceparent is continued (same trace id, its parent kept), the
// upstream receives a traceparent naming our upstream_call span, child
// spans hang off the request span, and a missing or hostile traceparent
// starts a new trace.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { openaiCompletion, postJson } from './lib/cachekit.mjs';
import { httpRequest, waitFor } from './lib/http.mjs';
import { freePort, runCli, startServer, tempDir } from './lib/server.mjs';
import { reply, startUpstream } from './lib/upstream.mjs';

const TID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PID = '00f067aa0ba902b7';
const HEX32 = /^[0-9a-f]{32}$/;
const HEX16 = /^[0-9a-f]{16}$/;
const TP_RE = /^00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])$/;

/** An OTLP/HTTP JSON collector: every POST /v1/traces is parsed and kept. */
async function startCollector() {
  const posts = []; // {headers, doc}
  const spans = []; // every span, with its resource's attributes
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end();
        return;
      }
      let doc;
      try {
        doc = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        res.writeHead(400).end();
        return;
      }
      posts.push({ headers: req.headers, doc });
      for (const rs of doc.resourceSpans ?? []) {
        for (const ss of rs.scopeSpans ?? []) {
          for (const s of ss.spans ?? []) spans.push({ ...s, resource: rs.resource, scope: ss.scope });
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    posts,
    spans,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** The value of attribute key ({stringValue} / {intValue} unwrapped), or undefined. */
function attr(list, key) {
  const a = (list ?? []).find((x) => x.key === key);
  if (!a) return undefined;
  const v = a.value;
  return v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : v.boolValue ?? v.doubleValue);
}

/** The request span whose attributes say url.path and llm.model, once it arrived. */
async function requestSpan(col, traceId) {
  let s;
  await waitFor(() => (s = col.spans.find((x) => x.traceId === traceId && x.name === 'process_llm_request')),
    10000, `a process_llm_request span of trace ${traceId}`);
  return s;
}

/** A counter's value in the admin port's GET /metrics (undefined: not there). */
async function counter(srv, name) {
  const r = await httpRequest(`${srv.adminUrl}/metrics`);
  assert.equal(r.status, 200);
  const m = new RegExp(`^${name} (\\d+)$`, 'm').exec(r.body.toString());
  return m ? Number(m[1]) : undefined;
}

const childrenOf = (col, span) => col.spans.filter((x) => x.parentSpanId === span.spanId && x.traceId === span.traceId);

describe('OpenTelemetry traces', () => {
  let srv;
  let up;
  let col;
  before(async () => {
    col = await startCollector();
    up = await startUpstream(reply.json(openaiCompletion(1, 'gpt-4o-mini', 'hi')));
    srv = await startServer({
      workers: 2,
      env: {
        OTEL_EXPORTER_OTLP_ENDPOINT: col.url,
        OTEL_BSP_SCHEDULE_DELAY: '100',
        OTEL_SERVICE_NAME: 'rd-e2e',
        OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=e2e%20test,service.name=overridden',
        OTEL_EXPORTER_OTLP_HEADERS: 'x-collector-key=k%3Dv%201',
      },
    });
  });
  after(async () => {
    await srv?.stop();
    await up?.close();
    await col?.close();
  });

  test('a continued trace: same trace id, parent kept, children under the request span, traceparent upstream', async () => {
    const port = await freePort();
    const p = await srv.createProxy({ name: 'tr-up', provider: 'openai', upstream_url: up.url, port });
    const body = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'trace me once' }] };
    const before = up.requests.length;
    const r = await postJson(`http://127.0.0.1:${port}/v1/chat/completions`, body, {
      headers: { traceparent: `00-${TID}-${PID}-01`, tracestate: 'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE' },
    });
    assert.equal(r.status, 200, r.text);
    assert.equal(up.requests.length, before + 1);
    const got = up.requests[before].headers;
    const m = TP_RE.exec(got.traceparent);
    assert.ok(m, `upstream traceparent ${got.traceparent}`);
    assert.equal(m[1], TID);
    assert.notEqual(m[2], PID, 'the incoming traceparent was forwarded as is');
    assert.equal(m[3], '01');
    assert.equal(got.tracestate, 'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE');

    const s = await requestSpan(col, TID);
    assert.equal(s.parentSpanId, PID);
    assert.match(s.spanId, HEX16);
    assert.equal(s.kind, 2); // SERVER
    assert.match(s.startTimeUnixNano, /^\d+$/);
    assert.ok(BigInt(s.endTimeUnixNano) >= BigInt(s.startTimeUnixNano));
    const nowNs = BigInt(Date.now()) * 1000000n;
    assert.ok(BigInt(s.startTimeUnixNano) <= nowNs && BigInt(s.startTimeUnixNano) > nowNs - 60n * 1000000000n,
      `start ${s.startTimeUnixNano} is not a recent wall-clock time`);
    const a = s.attributes;
    assert.equal(attr(a, 'llm.provider'), 'openai');
    assert.equal(attr(a, 'gen_ai.system'), 'openai');
    assert.equal(attr(a, 'llm.model'), 'gpt-4o-mini');
    assert.equal(attr(a, 'gen_ai.request.model'), 'gpt-4o-mini');
    assert.equal(attr(a, 'gen_ai.usage.input_tokens'), 5);
    assert.equal(attr(a, 'gen_ai.usage.output_tokens'), 4);
    assert.equal(attr(a, 'request.size'), Buffer.byteLength(JSON.stringify(body)));
    assert.equal(attr(a, 'response.status'), 200);
    assert.equal(attr(a, 'response.size'), r.body.length);
    assert.equal(attr(a, 'rubberduck.cache'), 'miss');
    assert.equal(attr(a, 'rubberduck.failure_type'), undefined);
    assert.equal(attr(a, 'rubberduck.proxy_id'), p.id);
    assert.equal(attr(a, 'http.request.method'), 'POST');
    assert.equal(attr(a, 'url.path'), '/v1/chat/completions');
    assert.equal(s.status, undefined);

    let kids;
    await waitFor(() => (kids = childrenOf(col, s)).length === 2, 10000, 'the two child spans');
    const cache = kids.find((k) => k.name === 'cache_lookup');
    const call = kids.find((k) => k.name === 'upstream_call');
    assert.ok(cache && call, JSON.stringify(kids.map((k) => k.name)));
    assert.equal(call.spanId, m[2], 'the upstream saw another parent than the upstream_call span');
    assert.equal(call.kind, 3); // CLIENT
    assert.equal(attr(call.attributes, 'http.response.status_code'), 200);
    for (const k of kids) {
      assert.ok(BigInt(k.startTimeUnixNano) >= BigInt(s.startTimeUnixNano));
      assert.ok(BigInt(k.endTimeUnixNano) <= BigInt(s.endTimeUnixNano));
    }

    // the resource and the export request itself
    assert.equal(attr(s.resource.attributes, 'service.name'), 'rd-e2e'); // OTEL_SERVICE_NAME wins
    assert.equal(attr(s.resource.attributes, 'deployment.environment'), 'e2e test');
    const post = col.posts.find((x) =>
      x.doc.resourceSpans.some((rs) => rs.scopeSpans.some((ss) => ss.spans.some((y) => y.spanId === s.spanId))));
    assert.ok(post);
    assert.equal(post.headers['x-collector-key'], 'k=v 1');
    assert.match(post.headers['content-type'], /^application\/json/);

    // the same request again is a cache hit: a lookup, no upstream call
    const tid2 = 'aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbb';
    const r2 = await postJson(`http://127.0.0.1:${port}/v1/chat/completions`, body, {
      headers: { traceparent: `00-${tid2}-${PID}-01` },
    });
    assert.equal(r2.status, 200);
    assert.equal(up.requests.length, before + 1, 'the second call was not a cache hit');
    const s2 = await requestSpan(col, tid2);
    assert.equal(attr(s2.attributes, 'rubberduck.cache'), 'hit');
    await waitFor(() => childrenOf(col, s2).length >= 1, 10000, 'the cache_lookup span of the hit');
    assert.deepEqual(childrenOf(col, s2).map((k) => k.name), ['cache_lookup']);
    // what the collector took is counted on /metrics (5 spans at least: 3 + 2 so far)
    await waitFor(async () => (await counter(srv, 'rubberduck_trace_spans_exported_total')) >= 5, 10000,
      'rubberduck_trace_spans_exported_total');
    assert.equal(await counter(srv, 'rubberduck_trace_spans_dropped_total'), 0);
    assert.equal(await counter(srv, 'rubberduck_trace_spans_failed_total'), 0);
  });

  test('no traceparent, or a hostile one: a new trace, nothing of the hostile value forwarded', async () => {
    const port = await freePort();
    await srv.createProxy({ name: 'tr-new', provider: 'openai', upstream_url: up.url, port, config: { cache: { enabled: false } } });
    const hostile = [
      undefined,
      `00-${TID.toUpperCase()}-${PID}-01`,
      `ff-${TID}-${PID}-01`,
      `00-00000000000000000000000000000000-${PID}-01`,
      `00-${TID}-0000000000000000-01`,
      `00-${TID}-${PID}-01-extra`,
      `00-${TID}-${PID}`,
      `00-${TID}-${PID}-01${'x'.repeat(4000)}`,
    ];
    const ids = new Set();
    for (const [i, tp] of hostile.entries()) {
      const headers = tp === undefined ? {} : { traceparent: tp, tracestate: 'evil=1' };
      const n = up.requests.length;
      const r = await postJson(`http://127.0.0.1:${port}/v1/chat/completions`,
        { model: 'gpt-4o-mini', messages: [{ role: 'user', content: `new trace ${i}` }] }, { headers });
      assert.equal(r.status, 200, r.text);
      const got = up.requests[n].headers;
      const m = TP_RE.exec(got.traceparent);
      assert.ok(m, `case ${i}: upstream traceparent ${got.traceparent}`);
      assert.notEqual(m[1], TID, `case ${i}: the hostile trace id was continued`);
      assert.equal(got.tracestate, undefined, `case ${i}: tracestate of an invalid traceparent forwarded`);
      assert.equal(m[3], '01'); // the default sampler samples new traces
      assert.ok(!ids.has(m[1]), 'a trace id repeated');
      ids.add(m[1]);
      const s = await requestSpan(col, m[1]);
      assert.match(s.traceId, HEX32);
      assert.equal(s.parentSpanId ?? '', '', `case ${i}: a new trace has a parent`);
      const call = await waitFor(() => childrenOf(col, s).find((k) => k.name === 'upstream_call'), 10000, 'upstream_call');
      assert.ok(call);
      assert.equal(childrenOf(col, s).find((k) => k.name === 'upstream_call').spanId, m[2]);
      assert.equal(childrenOf(col, s).find((k) => k.name === 'cache_lookup'), undefined, 'cache off: no lookup span');
    }
  });

  test('an unsampled parent is followed (parentbased): propagated, not exported', async () => {
    const port = await freePort();
    await srv.createProxy({ name: 'tr-unsampled', provider: 'openai', upstream_url: up.url, port, config: { cache: { enabled: false } } });
    const quiet = 'cccccccccccccccccccccccccccccccc';
    const n = up.requests.length;
    const r = await postJson(`http://127.0.0.1:${port}/v1/chat/completions`,
      { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'unsampled' }] },
      { headers: { traceparent: `00-${quiet}-${PID}-00` } });
    assert.equal(r.status, 200);
    const m = TP_RE.exec(up.requests[n].headers.traceparent);
    assert.equal(m[1], quiet);
    assert.equal(m[3], '00');
    // a sampled request after it: once its span is in, the unsampled one
    // would have been too (one queue, in order)
    const loud = 'dddddddddddddddddddddddddddddddd';
    await postJson(`http://127.0.0.1:${port}/v1/chat/completions`,
      { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'sampled' }] },
      { headers: { traceparent: `00-${loud}-${PID}-01` } });
    await requestSpan(col, loud);
    assert.equal(col.spans.filter((s) => s.traceId === quiet).length, 0);
  });

  test('a 5xx answer is an error span; the emulator is an upstream call too', async () => {
    const port = await freePort();
    const bad = await startUpstream(reply.json({ error: { message: 'down', type: 'server_error' } }, { status: 503 }));
    try {
      await srv.createProxy({ name: 'tr-503', provider: 'openai', upstream_url: bad.url, port, config: { cache: { enabled: false } } });
      const tid = 'eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee';
      const r = await postJson(`http://127.0.0.1:${port}/v1/chat/completions`,
        { model: 'gpt-4o', messages: [{ role: 'user', content: 'fail' }] },
        { headers: { traceparent: `00-${tid}-${PID}-01` } });
      assert.equal(r.status, 503);
      const s = await requestSpan(col, tid);
      assert.equal(s.status?.code, 2);
      assert.equal(attr(s.attributes, 'response.status'), 503);
      await waitFor(() => childrenOf(col, s).some((k) => k.name === 'upstream_call'), 10000, 'upstream_call');
      assert.equal(childrenOf(col, s).find((k) => k.name === 'upstream_call').status?.code, 2);
    } finally {
      await bad.close();
    }
    const eport = await freePort();
    await srv.createProxy({ name: 'tr-emu', provider: 'openai', upstream_url: 'emulator', port: eport, config: { cache: { enabled: false } } });
    const tid = '1fffffffffffffffffffffffffffffff';
    const r = await postJson(`http://127.0.0.1:${eport}/v1/chat/completions`,
      { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'emulate' }] },
      { headers: { traceparent: `00-${tid}-${PID}-01` } });
    assert.equal(r.status, 200);
    const s = await requestSpan(col, tid);
    assert.equal(attr(s.attributes, 'gen_ai.usage.input_tokens'), r.json.usage.prompt_tokens);
    assert.equal(attr(s.attributes, 'gen_ai.usage.output_tokens'), r.json.usage.completion_tokens);
    await waitFor(() => childrenOf(col, s).some((k) => k.name === 'upstream_call'), 10000, 'upstream_call');
    assert.equal(attr(childrenOf(col, s).find((k) => k.name === 'upstream_call').attributes, 'rubberduck.upstream'), 'emulator');
  });
});

describe('trace export lifecycle', () => {
  test('spans still queued are exported when the server stops', async () => {
    const col = await startCollector();
    const srv = await startServer({ env: { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${col.url}/v1/traces`, OTEL_BSP_SCHEDULE_DELAY: '600000' } });
    try {
      const port = await freePort();
      await srv.createProxy({ name: 'tr-stop', provider: 'openai', upstream_url: 'emulator', port });
      const tid = '12121212121212121212121212121212';
      const r = await postJson(`http://127.0.0.1:${port}/v1/chat/completions`,
        { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'flush me' }] },
        { headers: { traceparent: `00-${tid}-${PID}-01` } });
      assert.equal(r.status, 200);
      assert.equal(col.spans.length, 0); // a 10-minute delay: nothing sent yet
      await srv.stop();
      assert.ok(col.spans.some((s) => s.traceId === tid && s.name === 'process_llm_request'), 'not flushed at stop');
    } finally {
      await srv.stop();
      await col.close();
    }
  });

  test('an unreachable collector costs the proxy nothing: requests are answered', async () => {
    const dead = await freePort(); // nothing listens there
    const srv = await startServer({ env: { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${dead}`, OTEL_BSP_SCHEDULE_DELAY: '50' } });
    try {
      const port = await freePort();
      await srv.createProxy({ name: 'tr-dead', provider: 'openai', upstream_url: 'emulator', port });
      for (let i = 0; i < 5; i++) {
        const r = await postJson(`http://127.0.0.1:${port}/v1/chat/completions`,
          { model: 'gpt-4o-mini', messages: [{ role: 'user', content: `dead ${i}` }] });
        assert.equal(r.status, 200);
      }
      await srv.waitForStderr(/traces: export to http:\/\/127\.0\.0\.1:\d+ failed/);
      // counted just after the warning is printed
      await waitFor(async () => (await counter(srv, 'rubberduck_trace_spans_failed_total')) >= 1, 10000,
        'rubberduck_trace_spans_failed_total');
      assert.equal(await counter(srv, 'rubberduck_trace_spans_exported_total'), 0);
    } finally {
      await srv.stop();
    }
  });

  test('http/protobuf is refused at startup with a clear error', async () => {
    const r = await runCli(['serve', '--data-dir', tempDir(), '--listen', `127.0.0.1:${await freePort()}`], {
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf' },
    });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /OTEL_EXPORTER_OTLP_PROTOCOL=http\/protobuf: .*http\/json/);
  });
});
