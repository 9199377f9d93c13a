// GET /metrics on the admin port (docs/observability.md, "Prometheus
// metrics"): after requests sent with the OpenAI SDK, some of them
// rate-limited (simulated 429s), the exposition passes `promtool check
// metrics`, its counters equal what was sent, and a real Prometheus server
// scraping the admin port answers sum(rubberduck_requests_total) with the
// same number. With RUBBERDUCK_METRICS_TOKEN set, /metrics wants that token
// or the admin token.
//
// promtool and prometheus come from the Debian package `prometheus`
// (scripts/install-deps.sh test): when they are missing this suite fails.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import { httpRequest, jsonOf, waitFor } from './lib/http.mjs';
import { freePort, startServer, tempDir } from './lib/server.mjs';

const PROMTOOL = process.env.PROMTOOL || 'promtool';
const PROMETHEUS = process.env.PROMETHEUS || 'prometheus';
const SENT = 10; // requests through the proxy
const LIMIT = 4; // requests_per_minute: the rest are simulated 429s
// A model name with every character label values must escape.
const ODD_MODEL = 'odd "model"\nwith \\ backslash';

/** Parses the text format into [{name, labels, value}] (values as numbers). */
function parseExposition(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$/.exec(line);
    assert.ok(m, `sample line: ${JSON.stringify(line)}`);
    const labels = {};
    if (m[2]) {
      const body = m[2].slice(1, -1);
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/gy;
      let lm;
      let end = 0;
      while ((lm = re.exec(body)) !== null) {
        labels[lm[1]] = lm[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
        end = re.lastIndex;
        if (end === body.length) break;
      }
      assert.equal(end, body.length, `labels of ${line}`);
    }
    const v = m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ? -Infinity : Number(m[3]);
    out.push({ name: m[1], labels, value: v });
  }
  return out;
}

function sum(samples, name, pred = () => true) {
  return samples.filter((s) => s.name === name && pred(s.labels)).reduce((a, s) => a + s.value, 0);
}

async function scrape(srv, auth) {
  const headers = auth ? { authorization: `Bearer ${auth}` } : {};
  const r = await httpRequest(`${srv.adminUrl}/metrics`, { headers });
  return { status: r.status, headers: r.headers, text: r.body.toString() };
}

function tool(bin) {
  const r = spawnSync(bin, ['--version'], { encoding: 'utf8' });
  assert.equal(r.error, undefined, `${bin} not found (install the Debian package prometheus: scripts/install-deps.sh test)`);
  return bin;
}

describe('GET /metrics', () => {
  let srv;
  let proxy;
  let port;
  let okCount = 0;
  let limitedCount = 0;
  let inputTokens = 0;
  let oddTokens = 0;

  before(async () => {
    tool(PROMTOOL);
    tool(PROMETHEUS);
    srv = await startServer({ workers: 2 });
    port = await freePort();
    proxy = await srv.createProxy({
      name: 'metrics-emu', provider: 'openai', upstream_url: 'emulator', port,
      config: { rate_limiting: { requests_per_minute: LIMIT, key: 'ip' } },
    });
    const ai = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'sk-metrics', maxRetries: 0 });
    for (let i = 0; i < SENT; i++) {
      const model = i === 0 ? ODD_MODEL : 'gpt-4o-mini';
      try {
        const r = await ai.chat.completions.create({ model, messages: [{ role: 'user', content: `metrics ${i}` }] });
        okCount++;
        if (model === ODD_MODEL) oddTokens += r.usage.prompt_tokens;
        else inputTokens += r.usage.prompt_tokens;
      } catch (e) {
        assert.equal(e.status, 429, `request ${i}: ${e}`);
        limitedCount++;
      }
    }
    assert.equal(okCount, LIMIT);
    assert.equal(limitedCount, SENT - LIMIT);
  });
  after(async () => {
    await srv?.stop();
  });

  test('counters equal the requests sent, labels escaped, promtool finds no problem', async () => {
    // A request is counted as it is released, just after its last byte left:
    // wait (bounded) for the last one.
    let res;
    await waitFor(async () => {
      res = await scrape(srv);
      return sum(parseExposition(res.text), 'rubberduck_requests_total') === SENT;
    }, 10000, `rubberduck_requests_total = ${SENT}`);
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
    const s = parseExposition(res.text);
    const mine = (l) => l.proxy_id === String(proxy.id) && l.provider === 'openai';
    assert.equal(sum(s, 'rubberduck_requests_total', (l) => mine(l) && l.status === '200'), okCount);
    assert.equal(sum(s, 'rubberduck_requests_total', (l) => mine(l) && l.status === '429'), limitedCount);
    assert.equal(sum(s, 'rubberduck_request_duration_seconds_count', mine), SENT);
    assert.equal(sum(s, 'rubberduck_request_duration_seconds_bucket', (l) => mine(l) && l.le === '+Inf'), SENT);
    assert.equal(sum(s, 'rubberduck_simulated_failures_total', (l) => l.type === 'rate_limited'), limitedCount);
    assert.equal(sum(s, 'rubberduck_upstream_errors_total'), 0);
    assert.equal(sum(s, 'rubberduck_tokens_total', (l) => l.model === 'gpt-4o-mini' && l.type === 'input'), inputTokens);
    // The odd name went through the escaping and came back whole.
    assert.equal(sum(s, 'rubberduck_tokens_total', (l) => l.model === ODD_MODEL && l.type === 'input'), oddTokens);
    assert.ok(oddTokens > 0);
    assert.ok(res.text.includes('model="odd \\"model\\"\\nwith \\\\ backslash"'), 'escaped model label');
    assert.ok(sum(s, 'rubberduck_cost_usd_total', (l) => l.model === 'gpt-4o-mini') > 0);
    assert.equal(sum(s, 'rubberduck_active_proxies'), 1);
    assert.equal(sum(s, 'rubberduck_requests_in_flight'), 0);
    assert.equal(s.filter((x) => x.name === 'rubberduck_open_connections').length, 1);
    assert.equal(s.filter((x) => x.name === 'rubberduck_build_info').length, 1);
    // cache misses: every chat call that was not rate-limited looked the cache up
    assert.equal(sum(s, 'rubberduck_cache_misses_total'), okCount);

    const check = spawnSync(PROMTOOL, ['check', 'metrics'], { input: res.text, encoding: 'utf8', timeout: 30000 });
    assert.equal(check.status, 0, `promtool check metrics: ${check.stdout}${check.stderr}`);
    assert.equal(check.stdout + check.stderr, '', 'promtool lint output');
  });

  test('a real Prometheus server scrapes the admin port and answers sum(rubberduck_requests_total)', async () => {
    const dir = tempDir('rd-prom-');
    const webPort = await freePort();
    const cfg = path.join(dir, 'prometheus.yml');
    fs.writeFileSync(cfg, [
      'global:',
      '  scrape_interval: 1s',
      '  evaluation_interval: 1s',
      'scrape_configs:',
      '  - job_name: rubberduck',
      '    static_configs:',
      `      - targets: ['127.0.0.1:${srv.adminPort}']`,
      '',
    ].join('\n'));
    const child = spawn(PROMETHEUS, [
      `--config.file=${cfg}`, `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${webPort}`, '--log.level=warn',
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    try {
      const base = `http://127.0.0.1:${webPort}`;
      let last = null;
      await waitFor(async () => {
        let r;
        try {
          r = await httpRequest(`${base}/api/v1/query?query=${encodeURIComponent('sum(rubberduck_requests_total)')}`,
            { timeoutMs: 3000 });
        } catch {
          return false; // not listening yet
        }
        if (r.status !== 200) return false;
        const j = jsonOf(r.body);
        last = j?.data?.result?.[0]?.value?.[1] ?? null;
        return last !== null && Number(last) === SENT;
      }, 30000, `Prometheus answering sum(rubberduck_requests_total) = ${SENT} (last: ${last}); stderr:\n${stderr}`, 250);
      assert.equal(Number(last), SENT);
      // The scrape itself was healthy.
      const up = await httpRequest(`${base}/api/v1/query?query=${encodeURIComponent('up{job="rubberduck"}')}`);
      assert.equal(jsonOf(up.body).data.result[0].value[1], '1');
    } finally {
      process.kill(child.pid, 'SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10000))]);
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL');
    }
  });
});

describe('GET /metrics with RUBBERDUCK_METRICS_TOKEN', () => {
  let srv;
  before(async () => {
    srv = await startServer({ workers: 1, env: { RUBBERDUCK_METRICS_TOKEN: 'metrics-secret' } });
  });
  after(async () => {
    await srv?.stop();
  });

  test('no token or a wrong one is 401; the metrics token or the admin token is 200', async () => {
    const none = await scrape(srv);
    assert.equal(none.status, 401);
    assert.equal(jsonOf(Buffer.from(none.text)).error.code, 'unauthorized');
    assert.ok(!none.text.includes('rubberduck_'), 'no metric in the refusal');
    assert.equal((await scrape(srv, 'wrong')).status, 401);
    assert.equal((await scrape(srv, 'metrics-secre')).status, 401);
    const ok = await scrape(srv, 'metrics-secret');
    assert.equal(ok.status, 200);
    assert.ok(ok.text.includes('# TYPE rubberduck_requests_total counter'));
    assert.equal((await scrape(srv, srv.token)).status, 200);
  });
});
