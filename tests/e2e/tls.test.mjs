// HTTPS upstreams go through libcurl: TLS verified against upstream.ca_file,
// HTTP/2 negotiated by ALPN, streams relayed event by event, and backpressure
// (curl's pause) over an HTTP/2 stream. The upstream is a Node http2 secure
// server with a certificate made for the test by the openssl command.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { assertOpenAIError, httpRequest, jsonOf, now, readSlowly, waitFor } from './lib/http.mjs';
import { freePort, startServer, tempDir } from './lib/server.mjs';
import { prng } from './lib/upstream.mjs';

let srv, upstream, upPort, certFile;
const seen = []; // {path, httpVersion, headers}
let handler = (req, res) => res.end('{}');

before(async () => {
  const dir = tempDir('rd-tls-');
  certFile = path.join(dir, 'cert.pem');
  const keyFile = path.join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', keyFile, '-out', certFile], { stdio: 'ignore' });
  upstream = http2.createSecureServer({ key: fs.readFileSync(keyFile), cert: fs.readFileSync(certFile), allowHTTP1: true },
    (req, res) => {
      seen.push({ path: req.url, httpVersion: req.httpVersion, headers: req.headers });
      handler(req, res);
    });
  await new Promise((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  upPort = upstream.address().port;
  srv = await startServer();
});
after(async () => {
  // The proxy first: its pooled HTTP/2 connection would keep close() waiting.
  await srv?.stop();
  await new Promise((resolve) => upstream?.close(resolve));
});

async function tlsProxy(name, config) {
  return srv.createProxy({ name, provider: 'openai', upstream_url: `https://127.0.0.1:${upPort}`, port: await freePort(), config });
}

test('an https upstream is verified with upstream.ca_file and spoken to over HTTP/2', async () => {
  const p = await tlsProxy('tls-ok', { upstream: { ca_file: certFile } });
  handler = (req, res) => {
    res.setHeader('content-type', 'application/json');
    res.setHeader('x-upstream', 'h2');
    res.end(JSON.stringify({ id: 'x', via: req.httpVersion }));
  };
  const r = await httpRequest(`http://127.0.0.1:${p.port}/v1/models?limit=2`, { headers: { authorization: 'Bearer sk-tls-test' } });
  assert.equal(r.status, 200);
  assert.deepEqual(jsonOf(r.body), { id: 'x', via: '2.0' });
  assert.equal(r.headers['x-upstream'], 'h2');
  const rec = seen.at(-1);
  assert.equal(rec.path, '/v1/models?limit=2');
  assert.equal(rec.httpVersion, '2.0', 'curl should negotiate HTTP/2 by ALPN');
  assert.equal(rec.headers.authorization, 'Bearer sk-tls-test');
  assert.match(rec.headers['x-forwarded-for'], /127\.0\.0\.1/);
});

test('without the CA the certificate is refused: 502 in the provider format', async () => {
  const p = await tlsProxy('tls-untrusted');
  const before = seen.length;
  const r = await httpRequest(`http://127.0.0.1:${p.port}/v1/chat/completions`, { method: 'POST', body: '{}' });
  assert.equal(r.status, 502);
  const err = assertOpenAIError(assert, r.body);
  assert.equal(err.code, 'bad_gateway');
  // The TLS details stay in the server log, found by the request id the client gets.
  assert.doesNotMatch(err.message, /certificate|SSL|TLS|127\.0\.0\.1|curl/i);
  const id = r.headers['x-request-id'];
  assert.match(id, /^req_[0-9a-f]{16}$/);
  await srv.waitForStderr(new RegExp(`(certificate|SSL|TLS).* req=${id}`, 'i'));
  assert.equal(seen.length, before, 'no request may reach an unverified upstream');
});

test('SSE over HTTP/2: each event reaches the client before the upstream sends the next', async () => {
  const p = await tlsProxy('tls-sse', { upstream: { ca_file: certFile } });
  const sentAt = [];
  handler = (req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    let i = 0;
    const tick = () => {
      if (i === 4) {
        res.end('data: [DONE]\n\n');
        return;
      }
      sentAt.push(now());
      res.write(`data: {"n":${i++}}\n\n`);
      setTimeout(tick, 150);
    };
    tick();
  };
  const gotAt = [];
  const sock = net.connect({ port: p.port, host: '127.0.0.1' });
  let buf = '';
  sock.on('data', (d) => {
    buf += d.toString('latin1');
    const n = (buf.match(/data: \{"n":\d\}/g) || []).length;
    while (gotAt.length < n) gotAt.push(now());
  });
  sock.write('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}');
  await waitFor(() => buf.includes('[DONE]'), 10000, 'the whole stream');
  sock.destroy();
  assert.equal(gotAt.length, 4);
  for (let i = 0; i < 3; i++) assert.ok(gotAt[i] < sentAt[i + 1], `event ${i} arrived after the upstream sent event ${i + 1}`);
});

test('backpressure over HTTP/2: a slow reader stalls the upstream and still gets every byte', async () => {
  const p = await tlsProxy('tls-big', { upstream: { ca_file: certFile } });
  const SIZE = 48 * 1024 * 1024;
  const data = prng(11)(SIZE);
  const digest = crypto.createHash('sha256').update(data).digest('hex');
  let written = 0;
  let finished = false;
  handler = (req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(SIZE) });
    const pump = () => {
      while (written < SIZE) {
        const n = Math.min(64 * 1024, SIZE - written);
        const ok = res.write(data.subarray(written, written + n));
        written += n;
        if (!ok) return res.once('drain', pump);
      }
      res.end(() => (finished = true));
    };
    pump();
  };
  const r = await readSlowly(p.port, '/big', () => ({ sent: written, finished }), { size: SIZE });
  assert.ok(r.stalledAt > 0, 'the upstream was not observed sending');
  assert.ok(!r.finishedWhilePaused && r.stalledAt < SIZE * 0.67,
    `the upstream wrote ${(r.stalledAt / 1048576).toFixed(1)} MiB of ${SIZE / 1048576} with the client not reading: no backpressure`);
  assert.equal(r.response.status, 200);
  assert.equal(r.response.body.length, SIZE);
  assert.equal(crypto.createHash('sha256').update(r.response.body).digest('hex'), digest, 'body corrupted');
});
