// Starts the real rubberduck binary for an end-to-end test and talks to its
// admin API. Every process started here is killed (by its own PID) when the
// test process exits, so a failed test never leaves a server running.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { httpRequest, waitFor } from './http.mjs';

/* RUBBERDUCK_E2E_UPSTREAM_CLIENT=curl runs a suite with every proxy made by
 * createProxy/putConfig forced onto libcurl ({"upstream":{"client":"curl"}}),
 * so the same assertions cover both upstream clients. */
const forcedClient = process.env.RUBBERDUCK_E2E_UPSTREAM_CLIENT;
function withForcedClient(body, key) {
  if (!forcedClient || body?.upstream_url === 'emulator') return body;
  const cfg = { ...(body[key] ?? {}) };
  cfg.upstream = { client: forcedClient, ...(cfg.upstream ?? {}) };
  return { ...body, [key]: cfg };
}

function withCacheOff(cfg) {
  return cfg && cfg.cache ? cfg : { ...(cfg ?? {}), cache: { enabled: false } };
}

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(here, '../../..');
export const BIN = process.env.RUBBERDUCK_BIN || path.join(REPO, 'build/asan/rubberduck');
export const VERSION = fs.readFileSync(path.join(REPO, 'VERSION'), 'utf8').trim();
export const TOKEN = 'test-token';

const SANITIZER_MARKERS = ['AddressSanitizer', 'LeakSanitizer', 'ThreadSanitizer', 'runtime error:'];

const live = new Set(); // child processes still running
const tmpDirs = new Set(); // data dirs this module created
function cleanup() {
  for (const child of live) {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  live.clear();
  for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
  tmpDirs.clear();
}
process.on('exit', cleanup);
// the test runner or a user interrupting the run: do not leave servers behind
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, () => {
    cleanup();
    process.exit(130);
  });
}

/**
 * A TCP port on 127.0.0.1 that was free a moment ago. Picked below the
 * kernel's ephemeral range (32768-60999) so that outgoing connections of
 * other processes on the machine do not grab it before the test binds it.
 */
export async function freePort() {
  for (let i = 0; i < 100; i++) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    if (await canBind(port)) return port;
  }
  throw new Error('no free port found in 20000-31999');
}

function canBind(port) {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** A fresh temporary directory, removed when the test process exits. */
export function tempDir(prefix = 'rd-e2e-') {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tmpDirs.add(d);
  return d;
}

/** Lines of text that look like a sanitizer report, or []. */
export function sanitizerReports(text, markers = SANITIZER_MARKERS) {
  return text.split('\n').filter((l) => markers.some((m) => l.includes(m)));
}

/** Runs the binary to completion (for CLI tests): {code, signal, stdout, stderr}. */
export function runCli(args, { env = {}, timeoutMs = 10000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, args, { env: mergeEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`rubberduck ${args.join(' ')} did not exit within ${timeoutMs} ms`));
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      live.delete(child);
      reject(e);
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      live.delete(child);
      // let the pipes drain before resolving
      setImmediate(() => resolve({ code, signal, stdout, stderr }));
    });
  });
}

function mergeEnv(extra) {
  const env = {
    ...process.env,
    // abort_on_error=0 keeps exit codes meaningful; leaks are on by default on x86_64
    ASAN_OPTIONS: process.env.ASAN_OPTIONS || 'detect_leaks=1:abort_on_error=0',
    UBSAN_OPTIONS: process.env.UBSAN_OPTIONS || 'print_stacktrace=1:halt_on_error=1',
  };
  for (const k of Object.keys(env)) if (k.startsWith('RUBBERDUCK_') || k === 'DATABASE_URL') delete env[k];
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined || v === null) delete env[k];
    else env[k] = String(v);
  }
  return env;
}

/**
 * Starts `rubberduck serve` on a free admin port and waits for /healthz 200.
 * opts: dataDir (default: a new temp dir), env (extra environment; a key set
 * to undefined removes it), args (extra CLI args), workers (default 2),
 * token (default 'test-token'; null: do not set RUBBERDUCK_ADMIN_TOKEN),
 * listenViaEnv (pass the address as RUBBERDUCK_LISTEN instead of --listen),
 * cacheOff (createProxy and putConfig add {"cache":{"enabled":false}} to a
 * document without a cache block: for suites that count upstream calls or
 * change the upstream's answer between identical requests, where a cache
 * hit would answer instead).
 */
export async function startServer(opts = {}) {
  // freePort() only says the port was free a moment ago: another test file
  // (they run in parallel) may take it first. Then this server exits with
  // "address already in use" — or, worse, /healthz answers from the other
  // server — so readiness also waits for this process's own "admin API on"
  // line, and a lost race is retried on another port.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startServerOnce(opts);
    } catch (e) {
      if (opts.adminPort !== undefined || attempt >= 5 || !/address already in use/.test(e.message)) throw e;
    }
  }
}

async function startServerOnce(opts) {
  const dataDir = opts.dataDir ?? tempDir();
  const adminPort = opts.adminPort ?? (await freePort());
  const listen = `127.0.0.1:${adminPort}`;
  const token = opts.token === undefined ? TOKEN : opts.token;
  const env = { ...(opts.env || {}) };
  if (token !== null) env.RUBBERDUCK_ADMIN_TOKEN = token;
  const args = ['serve'];
  if (opts.listenViaEnv) env.RUBBERDUCK_LISTEN = listen;
  else args.push('--listen', listen);
  if (!opts.dataDirViaEnv) args.push('--data-dir', dataDir);
  args.push('--workers', String(opts.workers ?? 2), ...(opts.args || []));

  const child = spawn(BIN, args, { env: mergeEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  let stderr = '';
  let stdout = '';
  child.stderr.on('data', (d) => (stderr += d));
  child.stdout.on('data', (d) => (stdout += d));
  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    });
    child.on('error', (e) => {
      live.delete(child);
      resolve({ code: null, signal: null, error: e });
    });
  });
  let exitInfo = null;
  exited.then((info) => (exitInfo = info));

  const adminUrl = `http://${listen}`;
  const levelArg = args.findIndex((a) => a === '--log-level' || a.startsWith('--log-level='));
  const level = levelArg < 0 ? env.RUBBERDUCK_LOG_LEVEL : args[levelArg].split('=')[1] ?? args[levelArg + 1];
  const infoHidden = level === 'warn' || level === 'error';
  const srv = {
    pid: child.pid,
    child,
    adminUrl,
    adminPort,
    dataDir,
    token,
    args,
    stderrText: () => stderr,
    stdoutText: () => stdout,
    exited,
    hasExited: () => exitInfo !== null,
    /** Admin API call: {status, json, headers, body}. body objects are sent as JSON, strings/Buffers raw. */
    api: (method, p, body, { auth = token, headers = {}, timeoutMs = 15000 } = {}) =>
      adminCall(adminUrl, method, p, body, { auth, headers, timeoutMs }),
    /** POST /api/v1/proxies expecting 201; returns the proxy object. */
    async createProxy(body) {
      body = withForcedClient(body, 'config');
      if (opts.cacheOff) body = { ...body, config: withCacheOff(body.config) };
      const r = await srv.api('POST', '/api/v1/proxies', body);
      if (r.status !== 201) throw new Error(`create proxy ${JSON.stringify(body)} -> ${r.status} ${r.text}`);
      return r.json;
    },
    /** PUT /api/v1/proxies/{id}/config expecting 200. */
    async putConfig(id, doc) {
      doc = withForcedClient({ config: doc }, 'config').config;
      if (opts.cacheOff) doc = withCacheOff(doc);
      const r = await srv.api('PUT', `/api/v1/proxies/${id}/config`, doc);
      if (r.status !== 200) throw new Error(`put config ${JSON.stringify(doc)} -> ${r.status} ${r.text}`);
      return r.json;
    },
    /** Resolves when stderr matches re (or rejects after timeoutMs). */
    waitForStderr: (re, timeoutMs = 10000) => waitFor(() => re.test(stderr), timeoutMs, `stderr matching ${re}`),
    kill: (signal = 'SIGTERM') => {
      if (exitInfo === null) process.kill(child.pid, signal);
    },
    /**
     * Sends signal (unless null) and waits for exit. Asserts the exit code
     * (expectCode, default 0) and that stderr holds no sanitizer report.
     * A process that does not exit within timeoutMs is SIGKILLed and the call throws.
     */
    async stop({ signal = 'SIGTERM', expectCode = 0, timeoutMs = 20000, markers = SANITIZER_MARKERS } = {}) {
      if (srv.stopped) return srv.stopped;
      srv.stopped = (async () => {
        if (exitInfo === null && signal) {
          try {
            process.kill(child.pid, signal);
          } catch {
            /* exited meanwhile */
          }
        }
        let timer;
        const res = await Promise.race([
          exited,
          new Promise((resolve) => (timer = setTimeout(() => resolve(null), timeoutMs))),
        ]);
        clearTimeout(timer);
        if (res === null) {
          try {
            process.kill(child.pid, 'SIGKILL');
          } catch {
            /* gone */
          }
          await exited;
          throw new Error(`rubberduck (pid ${child.pid}) did not exit within ${timeoutMs} ms of ${signal}; stderr:\n${tail(stderr)}`);
        }
        await new Promise((r) => setImmediate(r));
        const reports = sanitizerReports(stderr, markers);
        if (reports.length) throw new Error(`sanitizer report in stderr:\n${tail(stderr, 6000)}`);
        if (expectCode !== undefined && res.code !== expectCode) {
          throw new Error(`rubberduck exited with code ${res.code} signal ${res.signal}, expected ${expectCode}; stderr:\n${tail(stderr)}`);
        }
        return res;
      })();
      return srv.stopped;
    },
  };

  try {
    await waitFor(
      async () => {
        if (exitInfo !== null) throw new Error(`rubberduck exited early (${JSON.stringify(exitInfo)}); stderr:\n${tail(stderr)}`);
        try {
          const r = await httpRequest(`${adminUrl}/healthz`, { timeoutMs: 1000 });
          // The line reads msg="admin API on ..." in text and "msg":"admin API on ..."
          // with --log-format json; at --log-level warn or error it is not printed,
          // and /healthz alone has to do.
          return r.status === 200 && (infoHidden || stderr.includes(`admin API on ${adminUrl}`));
        } catch {
          return false;
        }
      },
      opts.readyTimeoutMs ?? 15000,
      `rubberduck /healthz on ${adminUrl}`,
    );
  } catch (e) {
    if (exitInfo === null) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    throw new Error(`${e.message}\nargs: ${args.join(' ')}\nstderr:\n${tail(stderr)}`);
  }
  return srv;
}

async function adminCall(adminUrl, method, p, body, { auth, headers, timeoutMs }) {
  const h = { ...headers };
  if (auth) h.authorization = `Bearer ${auth}`;
  let payload;
  if (body !== undefined && body !== null) {
    if (typeof body === 'string' || Buffer.isBuffer(body)) payload = body;
    else payload = JSON.stringify(body);
    if (!Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) h['content-type'] = 'application/json';
  }
  const r = await httpRequest(adminUrl + p, { method, headers: h, body: payload, timeoutMs });
  const text = r.body.toString('utf8');
  let json = null;
  if (text.length) {
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined; // not JSON: tests assert on it
    }
  }
  return { status: r.status, headers: r.headers, json, text, body: r.body };
}

function tail(s, n = 4000) {
  return s.length > n ? '…' + s.slice(-n) : s;
}
