// Helpers shared by the response-cache suites (cache*.test.mjs, issue 8):
// a test upstream that plays OpenAI and Anthropic with a counter in every
// answer (so a served hit shows which upstream call it came from), a raw
// POST that keeps the exact response bytes, unique prompts, and readers of
// the cache's response headers.
import crypto from 'node:crypto';
import { httpRequest, now } from './http.mjs';

/** A prompt no other test sends: requests with it never share an entry by accident. */
export function uniqueTag(label) {
  return `${label}-${crypto.randomBytes(6).toString('hex')}`;
}

/** Runs fn once the whole request body has been read (rec.body is set by then). */
function afterBody(req, fn) {
  if (req.readableEnded) fn();
  else req.on('end', fn);
}

function parseJson(buf) {
  try {
    return JSON.parse(buf.toString('utf8'));
  } catch {
    return null;
  }
}

/** The last user message of an OpenAI or Anthropic body (string content only). */
function lastUser(body) {
  const msgs = body?.messages ?? [];
  for (let i = msgs.length - 1; i >= 0; i--) if (msgs[i].role === 'user' && typeof msgs[i].content === 'string') return msgs[i].content;
  return body?.prompt ?? '';
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The SSE events of an OpenAI chat stream answering `text` (call n), [DONE] last. */
export function openaiStreamEvents(n, model, text, { done = true, usage = false } = {}) {
  const id = `chatcmpl-up${n}`;
  const chunk = (delta, finish = null) =>
    `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created: 1700000000 + n, model, choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }] })}`;
  const words = text.split(' ');
  const ev = [chunk({ role: 'assistant', content: '' })];
  for (const [i, w] of words.entries()) ev.push(chunk({ content: (i ? ' ' : '') + w }));
  ev.push(chunk({}, 'stop'));
  if (usage) {
    ev.push(`data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created: 1700000000 + n, model, choices: [], usage: { prompt_tokens: 5, completion_tokens: words.length, total_tokens: 5 + words.length } })}`);
  }
  if (done) ev.push('data: [DONE]');
  return ev;
}

/** An OpenAI chat.completion answering `text` (call n). */
export function openaiCompletion(n, model, text) {
  return {
    id: `chatcmpl-up${n}`,
    object: 'chat.completion',
    created: 1700000000 + n,
    model,
    choices: [{ index: 0, message: { role: 'assistant', content: text, refusal: null }, finish_reason: 'stop', logprobs: null }],
    usage: { prompt_tokens: 5, completion_tokens: 4, total_tokens: 9 },
    system_fingerprint: 'fp_upstream',
  };
}

/** An Anthropic message answering `text` (call n). */
export function anthropicMessage(n, model, text) {
  return {
    id: `msg_up${n}`,
    type: 'message',
    role: 'assistant',
    model,
    content: [{ type: 'text', text }],
    stop_reason: 'end_turn',
    stop_sequence: null,
    usage: { input_tokens: 5, output_tokens: 4 },
  };
}

/** The SSE events of an Anthropic Messages stream; stop: end with message_stop. */
export function anthropicStreamEvents(n, model, text, { stop = true } = {}) {
  const ev = (type, obj) => `event: ${type}\ndata: ${JSON.stringify({ type, ...obj })}`;
  const out = [
    ev('message_start', { message: { ...anthropicMessage(n, model, ''), content: [], stop_reason: null, usage: { input_tokens: 5, output_tokens: 1 } } }),
    ev('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }),
  ];
  for (const [i, w] of text.split(' ').entries()) out.push(ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: (i ? ' ' : '') + w } }));
  out.push(ev('content_block_stop', { index: 0 }));
  out.push(ev('message_delta', { delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 4 } }));
  if (stop) out.push(ev('message_stop', {}));
  return out;
}

/**
 * A test-upstream handler that plays the OpenAI chat API (and Anthropic
 * Messages for paths ending in /messages): every call gets the next number
 * n, and the answer says "answer <n> to <prompt>", so a client can tell a
 * hit (an old n) from a fresh call. Options (each may also be a function of
 * (n, body, rec) for per-call behaviour):
 *   delayMs     wait before the head
 *   intervalMs  between SSE events
 *   status      the status (non-2xx: an OpenAI error body)
 *   headers     extra response headers
 *   done        end OpenAI streams with [DONE] / Anthropic with message_stop (default true)
 *   cutAfter    destroy the connection after that many SSE events
 *   bodyPad     characters of filler appended to the answer text
 *   model       the model the answer names (default: the request's)
 * h.calls counts the calls; h.callsFor(tag) those whose body contains tag.
 */
export function llmUpstream(opts = {}) {
  const val = (v, ...a) => (typeof v === 'function' ? v(...a) : v);
  const seen = [];
  const h = (req, res, rec) =>
    afterBody(req, () => {
      const body = parseJson(rec.body) ?? {};
      const n = seen.length + 1;
      seen.push({ n, body, rec });
      const status = val(opts.status, n, body, rec) ?? 200;
      const extra = val(opts.headers, n, body, rec) ?? {};
      const delayMs = val(opts.delayMs, n, body, rec) ?? 0;
      const intervalMs = val(opts.intervalMs, n, body, rec) ?? 0;
      const done = val(opts.done, n, body, rec) ?? true;
      const cutAfter = val(opts.cutAfter, n, body, rec);
      const pad = val(opts.bodyPad, n, body, rec) ?? 0;
      const model = val(opts.model, n, body, rec) ?? body.model ?? 'unknown-model';
      const text = `answer ${n} to ${lastUser(body)}${pad ? ' ' + 'x'.repeat(pad) : ''}`;
      const anthropic = req.url.split('?')[0].endsWith('/messages');
      const send = () => {
        if (res.destroyed) return;
        if (status < 200 || status > 299) {
          const err = anthropic
            ? { type: 'error', error: { type: 'api_error', message: `upstream says ${status}` } }
            : { error: { message: `upstream says ${status}`, type: 'server_error', param: null, code: null } };
          const b = Buffer.from(JSON.stringify(err));
          res.writeHead(status, { 'content-type': 'application/json', 'content-length': b.length, ...extra });
          res.end(b);
          return;
        }
        if (!body.stream) {
          const obj = anthropic ? anthropicMessage(n, model, text) : openaiCompletion(n, model, text);
          const b = Buffer.from(JSON.stringify(obj));
          res.writeHead(status, { 'content-type': 'application/json', 'content-length': b.length, 'x-request-id': `req_up${n}`, ...extra });
          res.end(b);
          return;
        }
        const events = anthropic
          ? anthropicStreamEvents(n, model, text, { stop: done })
          : openaiStreamEvents(n, model, text, { done, usage: body.stream_options?.include_usage === true });
        res.writeHead(status, { 'content-type': 'text/event-stream', 'x-request-id': `req_up${n}`, ...extra });
        res.flushHeaders();
        let i = 0;
        const next = () => {
          if (res.destroyed || rec.closedEarly) return;
          if (cutAfter !== undefined && i >= cutAfter) {
            req.socket.destroy();
            return;
          }
          if (i >= events.length) {
            res.end();
            return;
          }
          rec.sent[i] = now();
          res.write(events[i] + '\n\n');
          i++;
          setTimeout(next, intervalMs);
        };
        next();
      };
      if (delayMs) setTimeout(send, delayMs);
      else send();
    });
  Object.defineProperty(h, 'calls', { get: () => seen.length });
  h.seen = seen;
  h.callsFor = (tag) => seen.filter((s) => s.rec.body.includes(tag)).length;
  return h;
}

/**
 * POSTs JSON (an object, or a string sent as is) on a new connection:
 * {status, headers, body (the exact bytes), json, text, ms}.
 */
export async function postJson(url, body, { headers = {}, timeoutMs = 15000 } = {}) {
  const payload = typeof body === 'string' ? body : JSON.stringify(body);
  const t0 = now();
  const r = await httpRequest(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), ...headers },
    body: payload,
    timeoutMs,
  });
  const text = r.body.toString('utf8');
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    /* a stream or not JSON */
  }
  return { ...r, text, json, ms: now() - t0 };
}

/** The X-Cache value of a response (Node headers object, fetch Headers, or an SDK's raw headers). */
export function xcache(headers) {
  return header(headers, 'x-cache');
}

/** A header of a Node headers object, a fetch Headers, or a plain record (any case). */
export function header(headers, name) {
  if (!headers) return undefined;
  if (typeof headers.get === 'function') return headers.get(name) ?? undefined;
  const k = Object.keys(headers).find((x) => x.toLowerCase() === name);
  const v = k === undefined ? undefined : headers[k];
  return Array.isArray(v) ? v.join(', ') : v;
}

export const KEY_RE = /^(.*):([0-9a-f]{64})$/;

/** The SSE events of a body (text of each, blank-line terminated). */
export function sseEvents(text) {
  return text
    .replace(/\r\n/g, '\n')
    .split('\n\n')
    .filter((e) => e.trim().length > 0);
}

/**
 * POSTs body and reads the SSE response as it arrives: {status, headers,
 * events: [{text, at}], raw (Buffer), error, ms}; at is ms after the request.
 */
export async function readStream(url, body, { headers = {} } = {}) {
  const t0 = now();
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const out = { status: res.status, headers: res.headers, events: [], error: null, raw: Buffer.alloc(0) };
  const reader = res.body.getReader();
  let pending = '';
  const dec = new TextDecoder();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      out.raw = Buffer.concat([out.raw, Buffer.from(value)]);
      pending += dec.decode(value, { stream: true }).replace(/\r\n/g, '\n');
      let i;
      while ((i = pending.indexOf('\n\n')) >= 0) {
        out.events.push({ text: pending.slice(0, i + 2), at: now() - t0 });
        pending = pending.slice(i + 2);
      }
    }
  } catch (e) {
    out.error = e;
  }
  out.ms = now() - t0;
  return out;
}

/** Polls the cache stats of a proxy until pred(stats json) holds. */
export async function waitStats(srv, id, pred, timeoutMs = 5000) {
  const deadline = now() + timeoutMs;
  let last;
  for (;;) {
    last = await srv.api('GET', `/api/v1/proxies/${id}/cache`);
    if (last.status === 200 && pred(last.json)) return last.json;
    if (now() > deadline) throw new Error(`cache stats of proxy ${id} never matched; last: ${last.status} ${last.text}`);
    await sleep(50);
  }
}

/** The entries array of a GET .../cache/entries answer. */
export const entriesOf = (json) => json?.entries ?? json?.data ?? [];

/** The text an OpenAI chat stream spells out (its deltas joined). */
export function streamedContent(text) {
  return sseEvents(text)
    .filter((e) => e.startsWith('data: {'))
    .map((e) => JSON.parse(e.slice(6)).choices?.[0]?.delta?.content ?? '')
    .join('');
}
