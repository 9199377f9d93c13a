// The server's own log lines (stderr): logfmt text by default, one JSON
// object per line with --log-format json (or RUBBERDUCK_LOG_FORMAT, the flag
// winning), every line levelled, and request-scoped lines carrying the
// proxy's name and the request id the client got in X-Request-Id. A request
// path holding a quote and a backslash checks the escaping end to end.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RawConn } from './lib/http.mjs';
import { freePort, runCli, startServer } from './lib/server.mjs';

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error'];
const TEXT_LINE = /^ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=(trace|debug|info|warn|error) msg="(?:[^"\\]|\\.)*"(?: proxy=\S+)?(?: req=\S+)?$/;
const TS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const PATH = '/v1/chat/"q\\uote"/completions';

/* A server with a proxy whose upstream is a loopback port nobody listens
 * on; one request to it gets a 502 and an "upstream failed" warning. */
async function serverWithFailedRequest(opts) {
  const srv = await startServer(opts);
  const closed = await freePort();
  const p = await srv.createProxy({ name: 'to-closed', provider: 'openai', upstream_url: `http://127.0.0.1:${closed}`, port: await freePort() });
  const c = await RawConn.open(p.port);
  let r;
  try {
    await c.write(`POST ${PATH} HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`);
    r = await c.readResponse();
  } finally {
    c.destroy();
  }
  assert.equal(r.status, 502);
  const id = (r.headers['x-request-id'] ?? [])[0];
  assert.match(id ?? '', /^req_[0-9a-f]{16}$/);
  return { srv, id };
}

function lines(text) {
  assert.ok(text.endsWith('\n'), 'stderr ends mid-line');
  return text.slice(0, -1).split('\n');
}

function jsonLines(text) {
  return lines(text).map((l) => {
    let o;
    assert.doesNotThrow(() => (o = JSON.parse(l)), `not a JSON line: ${l}`);
    assert.equal(typeof o, 'object');
    assert.match(o.ts, TS, l);
    assert.ok(LEVELS.includes(o.level), l);
    assert.equal(typeof o.msg, 'string', l);
    for (const k of Object.keys(o)) assert.ok(['ts', 'level', 'msg', 'proxy', 'req'].includes(k), `unexpected key ${k}: ${l}`);
    return o;
  });
}

describe('process log', () => {
  test('--log-format json: every stderr line is a JSON object; the upstream failure carries req = X-Request-Id', async () => {
    const { srv, id } = await serverWithFailedRequest({ args: ['--log-format', 'json', '--log-level', 'debug'] });
    await srv.waitForStderr(new RegExp(`"req":"${id}"`));
    await srv.stop();
    const all = jsonLines(srv.stderrText());
    assert.ok(all.some((o) => o.level === 'info' && o.msg === `admin API on ${srv.adminUrl}` && !('req' in o) && !('proxy' in o)));
    const mine = all.filter((o) => o.req === id);
    const failed = mine.find((o) => o.level === 'warn' && /upstream failed/.test(o.msg));
    assert.ok(failed, `no warning for ${id}:\n${srv.stderrText()}`);
    assert.equal(failed.proxy, 'to-closed');
    // the path, quote and backslash included, arrives intact through the escaping
    assert.ok(failed.msg.startsWith(`POST ${PATH}: upstream failed: `), failed.msg);
    assert.ok(!failed.msg.includes(id), 'the id is a field, not repeated in the message');
    // the debug summary of the same request has the same fields
    assert.ok(mine.some((o) => o.level === 'debug' && o.proxy === 'to-closed' && / -> 502 /.test(o.msg)), JSON.stringify(mine));
  });

  test('the default text format is logfmt, one line per event, request-scoped lines ending in proxy= req=', async () => {
    const { srv, id } = await serverWithFailedRequest({ args: ['--log-level', 'debug'] });
    await srv.waitForStderr(new RegExp(` req=${id}\n`));
    await srv.stop();
    const all = lines(srv.stderrText());
    for (const l of all) assert.match(l, TEXT_LINE);
    assert.ok(all.some((l) => l.endsWith(` level=info msg="admin API on ${srv.adminUrl}"`)), srv.stderrText());
    const failed = all.find((l) => l.includes(' level=warn ') && l.endsWith(` proxy=to-closed req=${id}`));
    assert.ok(failed, `no warning for ${id}:\n${srv.stderrText()}`);
    // quote and backslash escaped inside the quoted message
    assert.ok(failed.includes(' msg="POST /v1/chat/\\"q\\\\uote\\"/completions: upstream failed: '), failed);
  });

  test('--log-level warn keeps info and debug lines out, in either format', async () => {
    const { srv, id } = await serverWithFailedRequest({ args: ['--log-format', 'json', '--log-level', 'warn'] });
    await srv.waitForStderr(new RegExp(`"req":"${id}"`));
    await srv.stop();
    const all = jsonLines(srv.stderrText());
    assert.ok(all.length > 0);
    for (const o of all) assert.ok(o.level === 'warn' || o.level === 'error', JSON.stringify(o));
    assert.ok(all.some((o) => o.req === id && o.proxy === 'to-closed'));
  });

  test('RUBBERDUCK_LOG_FORMAT selects the format and the flag wins over it', async () => {
    const env = await startServer({ env: { RUBBERDUCK_LOG_FORMAT: 'json' } });
    await env.stop();
    assert.ok(jsonLines(env.stderrText()).length > 0);
    const flag = await startServer({ env: { RUBBERDUCK_LOG_FORMAT: 'json' }, args: ['--log-format', 'text'] });
    await flag.stop();
    for (const l of lines(flag.stderrText())) assert.match(l, TEXT_LINE);
  });

  test('a bad format is refused with exit code 2, naming the option', async () => {
    const a = await runCli(['serve', '--log-format', 'xml']);
    assert.equal(a.code, 2);
    assert.match(a.stderr, /invalid option '--log-format xml'/);
    assert.match(a.stderr, /--log-format FORMAT/);
    const b = await runCli(['serve', '--log-format=JSON']);
    assert.equal(b.code, 2);
    assert.match(b.stderr, /invalid option '--log-format=JSON'/);
    const c = await runCli(['serve'], { env: { RUBBERDUCK_LOG_FORMAT: 'yaml' } });
    assert.equal(c.code, 2);
    assert.match(c.stderr, /invalid RUBBERDUCK_LOG_FORMAT=yaml/);
    const h = await runCli(['serve', '--help']);
    assert.match(h.stdout, /--log-format FORMAT .*text .*json .*RUBBERDUCK_LOG_FORMAT/);
  });
});
