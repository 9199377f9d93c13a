/* See forward.h. The request object (req.h) holds everything; this file
 * only relays. */
#include "proxy/forward.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cache/cache.h"
#include "cache/replay.h"
#include "obs/trace.h"
#include "providers/emulator/emulator.h"
#include "proxy/stages/stages.h"
#include "proxy/shape.h"
#include "util/err.h"
#include "util/log.h"
#include "util/time.h"

#define BODY_SCAN_MAX (1024u * 1024u) /* a non-streamed JSON body is kept this far for its usage */

/* ---- response decoding (usage, end of stream) ---- */

/* One decoded event: usage and the end of stream from the provider's hook,
 * then, for a shaped stream, the stages' verdict (shape.h), which may stop
 * the feed after it (1). end: where the event ends in the piece fed. */
static int on_event(struct rd_req *req, const struct rd_stream_event *se, size_t end)
{
    const struct rd_provider *p = req->dialect;
    bool last = p->stream_event && p->stream_event(p, se, &req->usage) == 1;
    if (last)
        req->stream_ended = true;
    if (req->stage_data[RD_STAGE_CACHE])
        rd_cache_record_event(req, req->dec_off + end);
    return req->shape ? rd_shape_event(req, se, last, end) : 0;
}

static int on_sse_event(void *ud, const struct rd_sse_event *ev)
{
    struct rd_req *req = ud;
    struct rd_stream_event se = rd_stream_event_of_sse(ev);
    return on_event(req, &se, req->sse.end);
}

/* One event-stream message: its :message-type says event or exception
 * (AWS also has "error", with :error-code), the name is its :event-type,
 * :exception-type or :error-code. */
static int on_es_msg(void *ud, const struct rd_es_msg *m)
{
    struct rd_req *req = ud;
    const char *mt = NULL, *name = "";
    size_t mt_len = 0, name_len = 0;
    (void)rd_es_header_string(m, ":message-type", &mt, &mt_len);
    bool event = mt == NULL || (mt_len == 5 && memcmp(mt, "event", 5) == 0);
    struct rd_stream_event se = {.type = event ? RD_STREAM_MSG_EVENT : RD_STREAM_MSG_EXCEPTION,
                                 .data = (const char *)m->payload, .data_len = m->payload_len};
    if (rd_es_header_string(m, ":event-type", &name, &name_len) ||
        rd_es_header_string(m, ":exception-type", &name, &name_len) ||
        rd_es_header_string(m, ":error-code", &name, &name_len)) {
        se.name = name;
        se.name_len = name_len;
    } else {
        se.name = "";
    }
    return on_event(req, &se, req->es.end);
}

static bool ctype_is(const char *v, const char *type)
{
    size_t n = strlen(type);
    return v && strncasecmp(v, type, n) == 0 && (v[n] == '\0' || v[n] == ';' || v[n] == ' ');
}

/* Decides once, from the head, how the body is looked at as it passes. */
static void pick_decoder(struct rd_req *req, const char *ct, const char *ce)
{
    req->encoded = ce && strcasecmp(ce, "identity") != 0;
    bool es = ctype_is(ct, "application/vnd.amazon.eventstream");
    req->stream = es || ctype_is(ct, "text/event-stream");
    req->decode = RD_DECODE_NONE;
    if (req->encoded)
        return;
    if (es) {
        rd_es_decoder_init(&req->es, 0);
        req->decode = RD_DECODE_EVENTSTREAM;
    } else if (req->stream) {
        if (!req->sse_ready) {
            rd_sse_init(&req->sse, 0);
            req->sse_ready = true;
        }
        req->decode = RD_DECODE_SSE;
    } else if (ctype_is(ct, "application/json") && req->dialect->body_usage && req->status_upstream < 300 &&
               (req->snap->usage || req->env->observe || rd_log_enabled(RD_LOG_DEBUG))) {
        /* Kept only when something will read it (rd_req_usage): the usage
         * totals, the request log, metrics or the debug log. */
        req->decode = RD_DECODE_BODY;
    }
}

static size_t decode(struct rd_req *req, const char *p, size_t n)
{
    switch (req->decode) {
    case RD_DECODE_SSE:
        if (rd_sse_feed(&req->sse, p, n, on_sse_event, req) == 1)
            return req->sse.end; /* a shaper stopped after this event */
        break;
    case RD_DECODE_EVENTSTREAM: {
        int rc = rd_es_decoder_feed(&req->es, p, n, on_es_msg, req);
        if (rc == 1)
            return req->es.end;
        /* A malformed frame (CRC, lengths, caps) stops the looking, not the
         * relay: the client's SDK sees the same bytes and reports them. */
        if (rc < 0) {
            rd_req_warn(req, "the upstream's event stream is malformed (%s); relayed as is", rd_strerror(req->es.err));
            req->decode = RD_DECODE_NONE;
        }
        break;
    }
    case RD_DECODE_BODY:
        /* Kept, not parsed: usage is read from it only when a consumer asks
         * (rd_req_usage), so a plain relay pays a copy, not a scan. */
        if (req->body.len + n > BODY_SCAN_MAX || rd_buf_append(&req->body, p, n) < 0) {
            rd_buf_reset(&req->body);
            req->decode = RD_DECODE_NONE; /* too big to look at: relayed all the same */
        }
        break;
    case RD_DECODE_NONE: break;
    }
    return n;
}

size_t rd_forward_decode(struct rd_req *req, const char *p, size_t n)
{
    size_t used = decode(req, p, n);
    req->dec_off += used;
    return used;
}

/* The whole answer is relayed but its end has not left: the body is
 * complete for its usage, and a cache fill is committed now, so a client
 * that has the answer finds it stored (rd_cache_record_end). */
static void answer_whole(struct rd_req *req)
{
    req->body_complete = req->decode == RD_DECODE_BODY;
    if (req->stage_data[RD_STAGE_CACHE])
        rd_cache_record_end(req);
}

void rd_forward_done(struct rd_req *req)
{
    if (!req->counted) /* else on_data saw the whole answer already */
        answer_whole(req);
    req->decode = RD_DECODE_NONE;
    rd_req_finish(req);
}

/* ---- source callbacks ---- */

/* Copies an upstream's request id into the request (truncated to the
 * field), unless it holds anything but visible ASCII: it is a hostile
 * input that ends up in the database and the log API. */
static void keep_request_id(struct rd_req *req, const char *v, size_t n)
{
    if (n >= sizeof req->upstream_request_id)
        n = sizeof req->upstream_request_id - 1;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] <= 0x20 || (unsigned char)v[i] >= 0x7f)
            return;
    memcpy(req->upstream_request_id, v, n);
    req->upstream_request_id[n] = '\0';
}

static int on_head(void *ud, int status, const struct rd_hdrs *hdrs)
{
    struct rd_req *req = ud;
    req->t_first_byte = rd_req_now_us();
    req->status_upstream = status;
    int64_t content_length = -1;
    bool conn_lists = rd_hdrs_connection_names_fields(hdrs);
    /* The upstream's own request id, for the request log: only from a
     * real upstream (a hit replays the id of the call that filled it). */
    const char *rid_name = req->snap->source != RD_SNAP_SRC_EMULATOR && req->cache != RD_CACHE_HIT
                               ? req->provider->request_id_header
                               : NULL;
    const char *ct = NULL, *ce = NULL; /* for the decoder, found in the same pass */
    for (size_t i = 0; i < hdrs->n; i++) {
        const struct rd_hdr *h = &hdrs->v[i];
        if (rid_name && rd_hdr_name_eq(h->name, h->name_len, rid_name)) {
            keep_request_id(req, h->value, h->value_len);
            rid_name = NULL; /* the first one */
        }
        if (ct == NULL && rd_hdr_name_eq(h->name, h->name_len, "content-type"))
            ct = h->value;
        else if (ce == NULL && rd_hdr_name_eq(h->name, h->name_len, "content-encoding"))
            ce = h->value;
        if (rd_hdr_name_eq(h->name, h->name_len, "content-length")) {
            char *end = NULL;
            long long v = strtoll(h->value, &end, 10);
            if (end != h->value && *end == '\0' && v >= 0)
                content_length = v;
            continue;
        }
        if (rd_hdr_is_hop_by_hop(h->name, h->name_len) ||
            (conn_lists && rd_hdrs_connection_lists(hdrs, h->name, h->name_len)))
            continue;
        rd_hdrs_add_refn(&req->resp_hdrs, h->name, h->name_len, h->value, h->value_len);
    }
    /* The emulator names no request id; the SDKs read one from the
     * provider's header (Anthropic's request-id, OpenAI's x-request-id) and
     * show it with every error, so the engine's id stands in: the one the
     * server log lines carry. */
    if (req->snap->source == RD_SNAP_SRC_EMULATOR && req->dialect->request_id_header)
        rd_hdrs_add_ref(&req->resp_hdrs, req->dialect->request_id_header, rd_req_id(req));
    for (size_t i = 0; i < req->add_hdrs.n; i++) { /* what the stages add (X-RateLimit-*, ...) */
        const struct rd_hdr *h = &req->add_hdrs.v[i];
        rd_hdrs_add_refn(&req->resp_hdrs, h->name, h->name_len, h->value, h->value_len);
    }
    pick_decoder(req, ct, ce);
    if (req->stage_data[RD_STAGE_CACHE])
        rd_cache_record_head(req, status, hdrs);
    rd_pipeline_head(req, status, &req->resp_hdrs);
    /* The event seam: a stage that shapes this stream may change its
     * length, so the head then goes out without Content-Length. */
    if (req->stream && req->decode != RD_DECODE_NONE && status >= 200 && status < 300 &&
        rd_pipeline_shapes(&req->snap->pipeline) && rd_shape_begin(req, &req->resp_hdrs))
        content_length = -1;
    req->content_length = content_length;
    req->head_sent = true;
    req->status_sent = status;
    rd_req_set_state(req, RD_REQ_RELAY);
    int rc = rd_http_begin(req->x, status, &req->resp_hdrs, content_length);
    rd_hdrs_clear(&req->resp_hdrs); /* its strings belong to the source's head */
    return rc < 0 ? RD_EABORTED : 0;
}

static int on_data(void *ud, const char *p, size_t n)
{
    struct rd_req *req = ud;
    if (req->shape) {
        int rc = rd_shape_data(req, p, n);
        if (rc == 0 && req->stage_data[RD_STAGE_CACHE])
            rd_cache_record_data(req, p, n);
        return rc;
    }
    if (rd_http_pending(req->x) > RD_HTTP_OUT_HIGH)
        return RD_SOURCE_PAUSE; /* the drain callback resumes the source */
    if (req->stage_data[RD_STAGE_CACHE])
        rd_cache_record_data(req, p, n); /* before the decoder finds events in it */
    req->bytes_out += n;
    (void)rd_forward_decode(req, p, n); /* unshaped: nothing stops it */
    /* The last bytes of a Content-Length body complete the answer for the
     * client: the source is as good as done, and the request is counted
     * before they leave (a client that has them and asks at once, for the
     * summary or its rate limit, finds it counted). */
    if (req->content_length >= 0 && req->bytes_out == (uint64_t)req->content_length) {
        if (req->stage_data[RD_STAGE_CACHE])
            rd_cache_record_done(req);
        answer_whole(req);
        rd_req_answered(req);
    }
    /* A failed write means the client is gone; its read side reports that
     * and the exchange is aborted from there. */
    (void)rd_http_write(req->x, p, n);
    return 0;
}

static void on_done(void *ud, int err, const char *detail)
{
    struct rd_req *req = ud;
    if (err == RD_ESTATE && rd_cache_rejoin(req))
        return; /* the fill it joined failed before its head: upstream itself */
    req->err = err;
    if (err == 0) {
        if (req->stage_data[RD_STAGE_CACHE])
            rd_cache_record_done(req);
        if (req->shape)
            rd_shape_source_done(req); /* what it holds goes out first */
        else
            rd_forward_done(req);
        return;
    }
    /* The details (host, port, curl or TLS text) stay in the server log; the
     * client gets the provider's error with the id that finds this line. */
    rd_req_warn(req, "%s %s: upstream %s: %s", req->method, req->path, err == RD_ETIMEDOUT ? "timed out" : "failed",
                detail && detail[0] ? detail : rd_strerror(err));
    if (err == RD_ETIMEDOUT)
        rd_req_fail(req, 504, "The upstream server did not answer in time.");
    else
        rd_req_fail(req, 502, "The upstream server could not be reached or sent an invalid response.");
}

static const struct rd_source_cbs source_cbs = {.on_head = on_head, .on_data = on_data, .on_done = on_done};

/* The common hit: a complete, non-streamed entry no larger than the output
 * buffer's high mark, answered in this call through the same callbacks the
 * replay source would call over two loop turns (head, the body as one
 * write, done): no handles, no allocation. Nothing here can wait: the body
 * is not shaped (not a stream) and fits the buffer. Returns false for
 * every other entry (the replay source plays it). */
static bool replay_now(struct rd_req *req, struct rd_cache_entry *e)
{
    enum rd_cache_state st;
    uint64_t len;
    rd_cache_peek(e, &st, &len, NULL);
    if (st != RD_CACHE_COMPLETE || e->stream || len > RD_HTTP_OUT_HIGH)
        return false;
    struct rd_hdrs h;
    rd_hdrs_init(&h, NULL);
    char clen[24];
    rd_cache_replay_head(e, true, &h, clen);
    int rc = on_head(req, e->status, &h);
    rd_hdrs_free(&h);
    if (rc < 0) {
        on_done(req, RD_EABORTED, "the client is gone");
        return true;
    }
    for (const struct rd_cache_chunk *ch = e->first; ch && req->bytes_out < len; ch = ch->next) {
        size_t n = ch->len;
        if (n > len - req->bytes_out)
            n = (size_t)(len - req->bytes_out);
        req->bytes_out += n;
        (void)rd_forward_decode(req, ch->data, n);
        (void)rd_http_write(req->x, ch->data, n);
    }
    on_done(req, 0, NULL);
    return true;
}

void rd_forward_replay(struct rd_req *req, struct rd_cache_entry *e, bool original_timing)
{
    const struct rd_http_request *hr = req->x->req;
    req->t_upstream = rd_req_now_us();
    rd_req_set_state(req, RD_REQ_UPSTREAM);
    if (replay_now(req, e))
        return;
    struct rd_cache_replay_arg arg = {.entry = e, .original_timing = original_timing};
    struct rd_source_req sr = {.loop = req->env->loop, .method = hr->method, .path = hr->path, .query = hr->query};
    (void)rd_source_start(&req->src, &rd_cache_replay_ops, &arg, &sr, &source_cbs, req);
}

/* ---- start ---- */

/* X-Rubberduck-* fields are addressed to the proxy (X-Rubberduck-Fault, ...):
 * never forwarded, whether or not the proxy honours them, so a test's
 * instructions never reach a real provider. */
static bool is_rubberduck_header(const struct rd_hdr *h)
{
    static const char prefix[] = "x-rubberduck-";
    return h->name_len >= sizeof prefix - 1 && (h->name[0] | 0x20) == 'x' &&
           strncasecmp(h->name, prefix, sizeof prefix - 1) == 0;
}

static bool skip_request_header(const struct rd_hdrs *in, bool conn_lists, const struct rd_hdr *h)
{
    return rd_hdr_is_hop_by_hop(h->name, h->name_len) || is_rubberduck_header(h) ||
           (conn_lists && rd_hdrs_connection_lists(in, h->name, h->name_len)) ||
           rd_hdr_name_eq(h->name, h->name_len, "host") || rd_hdr_name_eq(h->name, h->name_len, "content-length") ||
           rd_hdr_name_eq(h->name, h->name_len, "expect") ||
           rd_hdr_name_eq(h->name, h->name_len, "x-forwarded-for") ||
           rd_hdr_name_eq(h->name, h->name_len, "x-forwarded-proto") ||
           rd_hdr_name_eq(h->name, h->name_len, "accept-encoding") ||
           rd_hdr_name_eq(h->name, h->name_len, "traceparent");
}

static void build_request_headers(struct rd_req *req)
{
    const struct rd_http_request *hr = req->x->req;
    const struct rd_hdrs *in = &hr->headers;
    struct rd_hdrs *out = &req->up_hdrs;
    size_t xff_len = 0;
    bool conn_lists = rd_hdrs_connection_names_fields(in);
    for (size_t i = 0; i < in->n; i++) {
        const struct rd_hdr *h = &in->v[i];
        if (rd_hdr_name_eq(h->name, h->name_len, "x-forwarded-for") && h->value_len)
            xff_len += h->value_len + 2;
        if (!skip_request_header(in, conn_lists, h) &&
            /* tracestate belongs to the traceparent it came with (W3C 3.3) */
            (req->parent_span_id[0] || !rd_hdr_name_eq(h->name, h->name_len, "tracestate")))
            rd_hdrs_add_refn(out, h->name, h->name_len, h->value, h->value_len);
    }
    /* The trace goes on from our upstream_call span (obs/trace.h). */
    char *tp = rd_arena_alloc(&req->arena, 56);
    if (rd_trace_traceparent(req, tp, 56))
        rd_hdrs_add_ref(out, "traceparent", tp);
    /* Responses must be readable on the way (usage, stream events, later the
     * cache and stream faults): the upstream is asked for identity whatever
     * the client accepts. See docs/http.md, "Compression". */
    rd_hdrs_add_ref(out, "Accept-Encoding", "identity");
    /* X-Forwarded-For: every incoming value in order, then this client. */
    size_t ip_len = strlen(req->x->client_ip);
    char *v = rd_arena_alloc(&req->arena, xff_len + ip_len + 1), *w = v;
    for (size_t i = 0; i < in->n; i++) {
        const struct rd_hdr *h = &in->v[i];
        if (rd_hdr_name_eq(h->name, h->name_len, "x-forwarded-for") && h->value_len) {
            memcpy(w, h->value, h->value_len);
            w += h->value_len;
            memcpy(w, ", ", 2);
            w += 2;
        }
    }
    memcpy(w, req->x->client_ip, ip_len + 1);
    rd_hdrs_add_ref(out, "X-Forwarded-For", v);
    rd_hdrs_add_ref(out, "X-Forwarded-Proto", "http");
}

void rd_forward_start(struct rd_req *req)
{
    const struct rd_http_request *hr = req->x->req;
    const struct rd_proxy_snap *snap = req->snap;
    const struct rd_provider *p = req->provider;
    const struct rd_source_ops *ops;
    void *ctx;
    switch (snap->source) {
    case RD_SNAP_SRC_EMULATOR:
        ops = &rd_emu_source_ops;
        ctx = (void *)&snap->emu;
        break;
    case RD_SNAP_SRC_H1:
        ops = &rd_upstream_h1_ops;
        ctx = rd_upstream_h1_ctx(req->env->up);
        break;
    case RD_SNAP_SRC_CURL:
    default:
        ops = &rd_upstream_curl_ops;
        ctx = rd_upstream_curl_ctx(req->env->up);
        break;
    }
    struct rd_source_req sr = {
        .loop = req->env->loop,
        .method = hr->method,
        .path = hr->path,
        .query = hr->query,
        .headers = &hr->headers,
        .body = hr->body.data,
        .body_len = hr->body.len,
        .connect_timeout_ms = snap->limits.connect_timeout_ms,
        .ca_file = snap->ca_file,
        .arg = &req->match, /* the emulator answers by the route (emulator.h) */
        .model = req->model,
    };
    if (snap->source != RD_SNAP_SRC_EMULATOR) {
        build_request_headers(req);
        struct rd_provider_req pr;
        rd_req_provider_view(req, &pr);
        struct rd_upstream_prep prep = {
            .base = snap->upstream_base,
            .base_is_default = snap->upstream_is_default,
            .url = &req->url,
            .headers = &req->up_hdrs,
            .arena = &req->arena,
            .now_ms = rd_time_wall_ms(),
        };
        int rc = p->prepare(p, &pr, &prep);
        if (rc < 0) {
            rd_req_warn(req, "cannot prepare the upstream request: %s", rd_strerror(rc));
            rd_req_fail(req, 502,
                        prep.fail_message ? prep.fail_message
                                          : "The request could not be prepared for the upstream server.");
            return;
        }
        sr.url = req->url.data;
        sr.headers = &req->up_hdrs;
    }
    req->t_upstream = rd_req_now_us();
    rd_req_set_state(req, RD_REQ_UPSTREAM);
    if (rd_source_start(&req->src, ops, ctx, &sr, &source_cbs, req) < 0 && ops == &rd_upstream_h1_ops)
        (void)rd_source_start(&req->src, &rd_upstream_curl_ops, rd_upstream_curl_ctx(req->env->up), &sr,
                              &source_cbs, req);
}
