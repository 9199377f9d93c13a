/* HTTP/2 streams: a request built from nghttp2's callbacks (pseudo-headers
 * mapped to the fields the HTTP/1.1 parser fills, limits as on HTTP/1.1),
 * then handed to the listener's handler as a struct rd_http_exch whose ops
 * below turn the response into HEADERS and DATA frames. Response bodies wait
 * in a per-stream queue that nghttp2's data provider reads when the stream's
 * flow-control window allows, so a stream whose reader is slow fills only
 * its own queue: rd_http_pending() reports it and the forwarder pauses that
 * upstream alone. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/h2_int.h"
#include "util/err.h"
#include "util/log.h"
#include "util/mem.h"

#define POOL_MAX 16u /* freed streams kept per connection */
#define KEEP_BUF (64u * 1024u) /* larger buffers are not kept in the pool */

static const struct rd_http_exch_ops h2_exch_ops;

static const char *stream_state_name(enum h2_stream_state s)
{
    static const char *const names[] = {"headers", "body",   "ready", "handler", "streaming",
                                        "flush",   "gone",   "orphan", "dead"};
    return names[s];
}

/* The one place a stream's state changes; it also restarts the state's clock. */
void h2_stream_set_state(struct h2_stream *s, enum h2_stream_state st)
{
    if (s->state != st)
        rd_trace("h2 stream %d: %s -> %s", (int)s->id, stream_state_name(s->state), stream_state_name(st));
    s->state = st;
    s->mark_at = h2_now(s->h);
}

bool h2_stream_owned(const struct h2_stream *s)
{
    return s->state == SS_HANDLER || s->state == SS_STREAMING || s->state == SS_GONE || s->state == SS_ORPHAN;
}

size_t h2_stream_pending(const struct h2_stream *s)
{
    return s->out.len - s->out_off;
}

static struct h2_stream *stream_of(nghttp2_session *session, int32_t id)
{
    return nghttp2_session_get_stream_user_data(session, id);
}

/* ---- lifetime ---- */

static void request_reset(struct rd_http_request *r)
{
    rd_arena_reset(&r->arena);
    rd_hdrs_clear(&r->headers);
    if (r->body.cap > KEEP_BUF)
        rd_buf_free(&r->body);
    else
        rd_buf_reset(&r->body);
    r->method = r->target = r->path = r->query = "";
    r->version_major = 2;
    r->version_minor = 0;
    r->content_length = -1;
    r->chunked = r->expect_continue = false;
    r->keep_alive = true;
}

static struct h2_stream *stream_new(struct rd_h2 *h, int32_t id)
{
    struct h2_stream *s = h->pool;
    if (s) {
        h->pool = s->next;
        h->npool--;
    } else {
        s = rd_calloc(1, sizeof *s);
        rd_arena_init(&s->req.arena);
        rd_hdrs_init(&s->req.headers, &s->req.arena);
        rd_buf_init(&s->req.body, 0);
        rd_buf_init(&s->out, 0);
        request_reset(&s->req);
    }
    s->x = (struct rd_http_exch){.ops = &h2_exch_ops, .req = &s->req};
    s->h = h;
    s->id = id;
    s->state = SS_HEADERS;
    s->mark_at = h2_now(h);
    h->cfg->limits(h->cfg->ud, &s->limits);
    if (s->limits.max_head == 0)
        s->limits.max_head = RD_HTTP_MAX_HEAD_DEFAULT;
    h->limits = s->limits;
    s->req.body.max = (size_t)s->limits.max_body;
    s->head_bytes = 0;
    s->err_status = 0;
    s->err_msg = NULL;
    s->cookie = NULL;
    s->cookie_len = 0;
    s->out_off = 0;
    s->resp_left = -1;
    s->deferred = s->above_low = false;
    s->prev = h->tail;
    s->next = NULL;
    if (h->tail)
        h->tail->next = s;
    else
        h->streams = s;
    h->tail = s;
    h->nstreams++;
    h->nrequests++;
    return s;
}

void h2_stream_destroy(struct h2_stream *s)
{
    rd_hdrs_free(&s->req.headers);
    rd_buf_free(&s->req.body);
    rd_arena_free(&s->req.arena);
    rd_buf_free(&s->out);
    free(s);
}

void h2_stream_free(struct h2_stream *s)
{
    struct rd_h2 *h = s->h;
    /* nghttp2 may still hold the stream (a reset not yet sent): it must find
     * nothing from now on. Fails harmlessly when the stream is closed. */
    if (h->session)
        (void)nghttp2_session_set_stream_user_data(h->session, s->id, NULL);
    if (s->prev)
        s->prev->next = s->next;
    else
        h->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    else
        h->tail = s->prev;
    h->nstreams--;
    if (h->npool >= POOL_MAX) {
        h2_stream_destroy(s);
        return;
    }
    request_reset(&s->req);
    if (s->out.cap > KEEP_BUF)
        rd_buf_free(&s->out);
    else
        rd_buf_reset(&s->out);
    s->next = h->pool;
    h->pool = s;
    h->npool++;
}

/* Resets a stream we give up on; its handler, if any, has ended. */
static void stream_reset(struct h2_stream *s, uint32_t code)
{
    (void)nghttp2_submit_rst_stream(s->h->session, NGHTTP2_FLAG_NONE, s->id, code);
    h2_stream_set_state(s, SS_DEAD);
}

/* ---- the response ---- */

static bool status_has_no_body(int status)
{
    return status < 200 || status == 204 || status == 304;
}

/* Copies name lower-cased into the arena: HTTP/2 field names are lower
 * case (RFC 9113 8.2.1), HTTP/1.1 upstreams send them in any case. */
static uint8_t *lower_dup(struct rd_arena *a, const char *name, size_t n)
{
    uint8_t *d = rd_arena_alloc(a, n + 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        d[i] = (uint8_t)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    d[n] = 0;
    return d;
}

static ssize_t read_body(nghttp2_session *session, int32_t id, uint8_t *buf, size_t length, uint32_t *flags,
                         nghttp2_data_source *source, void *ud)
{
    (void)source;
    (void)ud;
    struct h2_stream *s = stream_of(session, id);
    if (s == NULL)
        return NGHTTP2_ERR_DEFERRED; /* detached: a reset is on its way */
    size_t avail = h2_stream_pending(s);
    size_t n = avail < length ? avail : length;
    if (n > 0) {
        memcpy(buf, s->out.data + s->out_off, n);
        s->out_off += n;
        s->mark_at = h2_now(s->h); /* output progress */
        if (s->out_off == s->out.len) {
            rd_buf_reset(&s->out);
            s->out_off = 0;
        } else if (s->out_off >= KEEP_BUF && s->out_off * 2 >= s->out.len) {
            rd_buf_consume(&s->out, s->out_off);
            s->out_off = 0;
        }
    }
    if (h2_stream_pending(s) == 0) {
        if (s->state == SS_FLUSH) {
            *flags |= NGHTTP2_DATA_FLAG_EOF;
        } else if (n == 0) {
            s->deferred = true;
            return NGHTTP2_ERR_DEFERRED;
        }
    }
    return (ssize_t)n;
}

static void resume(struct h2_stream *s)
{
    if (s->deferred) {
        s->deferred = false;
        (void)nghttp2_session_resume_data(s->h->session, s->id);
    }
}

/* Submits the response head; hop-by-hop fields and any Content-Length of
 * hdrs are dropped (content_length >= 0 gives ours). Enters STREAMING. */
static int submit_head(struct h2_stream *s, int status, const struct rd_hdrs *hdrs, int64_t content_length)
{
    struct rd_arena *a = &s->req.arena;
    bool nobody = status_has_no_body(status) || strcmp(s->req.method, "HEAD") == 0;
    size_t cap = (hdrs ? hdrs->n : 0) + 2, n = 0;
    nghttp2_nv *nv = rd_arena_alloc(a, cap * sizeof *nv);
    if (status < 100 || status > 999)
        status = 500;
    char *st = rd_arena_alloc(a, 4);
    size_t stlen = rd_fmt_u64(st, (uint64_t)status);
    nv[n++] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)st, 7, stlen, NGHTTP2_NV_FLAG_NONE};
    bool conn_lists = hdrs && rd_hdrs_connection_names_fields(hdrs);
    for (size_t i = 0; hdrs && i < hdrs->n; i++) {
        const struct rd_hdr *f = &hdrs->v[i];
        if (f->name_len == 0 || f->name[0] == ':' || rd_hdr_is_hop_by_hop(f->name, f->name_len) ||
            rd_hdr_name_eq(f->name, f->name_len, "content-length") ||
            (conn_lists && rd_hdrs_connection_lists(hdrs, f->name, f->name_len)))
            continue;
        nv[n++] = (nghttp2_nv){lower_dup(a, f->name, f->name_len), (uint8_t *)f->value, f->name_len, f->value_len,
                               NGHTTP2_NV_FLAG_NONE};
    }
    if (content_length >= 0 && !status_has_no_body(status)) {
        char *cl = rd_arena_alloc(a, 24);
        size_t cllen = rd_fmt_u64(cl, (uint64_t)content_length);
        nv[n++] = (nghttp2_nv){(uint8_t *)"content-length", (uint8_t *)cl, 14, cllen, NGHTTP2_NV_FLAG_NONE};
    }
    s->resp_left = nobody ? 0 : content_length;
    nghttp2_data_provider prd = {.source.ptr = s, .read_callback = read_body};
    /* Without a body the HEADERS frame carries END_STREAM. */
    int rv = nghttp2_submit_response(s->h->session, s->id, nv, n, s->resp_left == 0 ? NULL : &prd);
    if (rv != 0) {
        rd_debug("h2 stream %d: cannot submit the response: %s", (int)s->id, nghttp2_strerror(rv));
        return RD_EABORTED;
    }
    h2_stream_set_state(s, SS_STREAMING);
    return 0;
}

/* Queues body bytes (capped at what content-length announced). */
static void queue_body(struct h2_stream *s, const char *p, size_t n)
{
    if (s->resp_left >= 0 && (uint64_t)s->resp_left < n)
        n = (size_t)s->resp_left; /* never send more than announced */
    if (n == 0)
        return;
    if (s->resp_left >= 0)
        s->resp_left -= (int64_t)n;
    if (h2_stream_pending(s) == 0)
        s->mark_at = h2_now(s->h); /* the send clock starts with the first queued byte */
    (void)rd_buf_append(&s->out, p, n);
    if (h2_stream_pending(s) >= RD_HTTP_OUT_LOW)
        s->above_low = true;
    resume(s);
}

void h2_stream_answer_error(struct h2_stream *s, int status, const char *message)
{
    struct rd_h2 *h = s->h;
    struct rd_buf body;
    rd_buf_init(&body, 0);
    struct rd_hdrs extra;
    rd_hdrs_init(&extra, &s->req.arena);
    const char *ctype = "application/json";
    struct rd_http_error e = {.status = status, .message = message, .client_ip = h->client_ip, .req = &s->req};
    h->cfg->error(h->cfg->ud, &e, &extra, &body, &ctype);
    rd_hdrs_add_ref(&extra, "content-type", ctype);
    rd_debug("h2 stream %d: %d %s", (int)s->id, status, message);
    if (submit_head(s, status, &extra, (int64_t)body.len) == 0) {
        queue_body(s, body.data, body.len);
        h2_stream_set_state(s, SS_FLUSH);
        resume(s);
    } else {
        stream_reset(s, NGHTTP2_INTERNAL_ERROR);
    }
    rd_hdrs_free(&extra);
    rd_buf_free(&body);
}

/* ---- the exchange (HTTP/2 implementation of rd_http_exch_ops) ---- */

static struct h2_stream *stream_of_exch(struct rd_http_exch *x)
{
    return (struct h2_stream *)x; /* x is the first member */
}

static int h2x_begin(struct rd_http_exch *x, int status, const struct rd_hdrs *hdrs, int64_t content_length)
{
    struct h2_stream *s = stream_of_exch(x);
    if (x->gone)
        return RD_EABORTED;
    if (s->state != SS_HANDLER)
        return RD_ESTATE;
    int rc = submit_head(s, status, hdrs, content_length);
    /* A known-length body follows: its first write sends head and data together. */
    if (rc == 0 && s->resp_left <= 0)
        h2_after(s->h);
    return rc;
}

static int h2x_write(struct rd_http_exch *x, const char *p, size_t n)
{
    struct h2_stream *s = stream_of_exch(x);
    if (x->gone)
        return RD_EABORTED;
    if (s->state != SS_STREAMING)
        return RD_ESTATE;
    queue_body(s, p, n);
    h2_after(s->h);
    return 0;
}

/* The handler is done with the exchange. */
static void end_exchange(struct h2_stream *s)
{
    s->x.on_drain = s->x.on_gone = NULL;
    s->x.cb_ud = NULL;
}

static void h2x_finish(struct rd_http_exch *x)
{
    struct h2_stream *s = stream_of_exch(x);
    struct rd_h2 *h = s->h;
    end_exchange(s);
    if (s->state == SS_GONE || s->state == SS_ORPHAN)
        h2_stream_set_state(s, SS_DEAD);
    else if (s->state != SS_STREAMING || s->resp_left > 0)
        stream_reset(s, NGHTTP2_INTERNAL_ERROR); /* no head, or less than announced: the framing is broken */
    else {
        h2_stream_set_state(s, SS_FLUSH);
        resume(s); /* the provider sends END_STREAM once the queue is empty */
    }
    h2_after(h);
}

static void h2x_abort(struct rd_http_exch *x)
{
    struct h2_stream *s = stream_of_exch(x);
    struct rd_h2 *h = s->h;
    end_exchange(s);
    if (s->state == SS_GONE || s->state == SS_ORPHAN)
        h2_stream_set_state(s, SS_DEAD);
    else
        stream_reset(s, NGHTTP2_INTERNAL_ERROR);
    h2_after(h);
}

static size_t h2x_pending(const struct rd_http_exch *x)
{
    return h2_stream_pending((const struct h2_stream *)x);
}

static const struct rd_http_exch_ops h2_exch_ops = {
    .begin = h2x_begin,
    .write = h2x_write,
    .finish = h2x_finish,
    .abort = h2x_abort,
    .pending = h2x_pending,
};

void h2_stream_dispatch(struct h2_stream *s)
{
    struct rd_h2 *h = s->h;
    s->x.gone = false;
    s->x.on_drain = s->x.on_gone = NULL;
    s->x.cb_ud = NULL;
    s->x.user = NULL;
    memcpy(s->x.client_ip, h->client_ip, sizeof s->x.client_ip);
    h2_stream_set_state(s, SS_HANDLER);
    h->cfg->handler(&s->x, h->cfg->ud);
}

/* ---- requests from nghttp2's callbacks ---- */

static void fail_stream(struct h2_stream *s, int status, const char *msg)
{
    if (s->err_status == 0) {
        s->err_status = status;
        s->err_msg = msg;
    }
}

static bool name_is(const uint8_t *name, size_t len, const char *s)
{
    return len == strlen(s) && memcmp(name, s, len) == 0;
}

/* The methods the HTTP/1.1 parser accepts; the others get 501 there too. */
static const char *known_method(const uint8_t *v, size_t n)
{
    static const char *const methods[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"};
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (name_is(v, n, methods[i]))
            return methods[i];
    return NULL;
}

static void on_pseudo(struct h2_stream *s, const uint8_t *name, size_t nlen, const uint8_t *value, size_t vlen)
{
    struct rd_http_request *r = &s->req;
    if (name_is(name, nlen, ":method")) {
        const char *m = known_method(value, vlen);
        if (m == NULL)
            fail_stream(s, 501, "unsupported request method");
        else
            r->method = m;
    } else if (name_is(name, nlen, ":path")) {
        /* Visible ASCII only, as on HTTP/1.1 (RFC 3986). */
        for (size_t i = 0; i < vlen; i++)
            if (value[i] <= 0x20 || value[i] >= 0x7f) {
                fail_stream(s, 400, "invalid character in request target");
                return;
            }
        if (vlen == 0) {
            fail_stream(s, 400, "empty request target");
            return;
        }
        r->target = rd_arena_strndup(&r->arena, (const char *)value, vlen);
        rd_http_split_target(r, r->target, vlen);
    } else if (name_is(name, nlen, ":authority")) {
        rd_hdrs_add(&r->headers, "host", 4, (const char *)value, vlen);
    }
    /* :scheme (and :protocol, which we do not enable) need nothing: nghttp2
     * checked the set of pseudo-headers. */
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name, size_t nlen,
                     const uint8_t *value, size_t vlen, uint8_t flags, void *ud)
{
    (void)flags;
    (void)ud;
    struct h2_stream *s = stream_of(session, frame->hd.stream_id);
    if (s == NULL || (s->state != SS_HEADERS && s->state != SS_BODY))
        return 0;
    /* The header list size as SETTINGS_MAX_HEADER_LIST_SIZE counts it
     * (RFC 9113 6.5.2); trailers count too, as on HTTP/1.1. */
    s->head_bytes += nlen + vlen + 32;
    if (s->head_bytes > s->limits.max_head) {
        fail_stream(s, 431, s->state == SS_BODY ? "trailer fields too large" : "request header fields too large");
        return 0;
    }
    if (s->err_status || s->state == SS_BODY)
        return 0; /* trailers are checked and discarded, as on HTTP/1.1 */
    struct rd_http_request *r = &s->req;
    if (nlen > 0 && name[0] == ':') {
        on_pseudo(s, name, nlen, value, vlen);
        return 0;
    }
    if (name_is(name, nlen, "host") && rd_hdrs_find(&r->headers, "host"))
        return 0; /* :authority came first and wins (RFC 9113 8.3.1) */
    if (name_is(name, nlen, "cookie")) {
        /* Split cookie fields are joined for HTTP/1.1 (RFC 9113 8.2.3). */
        size_t len = s->cookie ? s->cookie_len + 2 + vlen : vlen;
        char *c = rd_arena_alloc(&r->arena, len + 1);
        size_t off = 0;
        if (s->cookie) {
            memcpy(c, s->cookie, s->cookie_len);
            memcpy(c + s->cookie_len, "; ", 2);
            off = s->cookie_len + 2;
        }
        memcpy(c + off, value, vlen);
        c[len] = '\0';
        s->cookie = c;
        s->cookie_len = len;
        return 0;
    }
    if (name_is(name, nlen, "content-length")) {
        /* nghttp2 checked it is digits and will check the DATA against it. */
        int64_t v = 0;
        for (size_t i = 0; i < vlen; i++) {
            if (value[i] < '0' || value[i] > '9' || v > (INT64_MAX - 9) / 10) {
                v = INT64_MAX; /* over any body cap: 413 */
                break;
            }
            v = v * 10 + (value[i] - '0');
        }
        r->content_length = v;
    }
    rd_hdrs_add(&r->headers, (const char *)name, nlen, (const char *)value, vlen);
    return 0;
}

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *ud)
{
    struct rd_h2 *h = ud;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    struct h2_stream *s = stream_new(h, frame->hd.stream_id);
    if (nghttp2_session_set_stream_user_data(session, s->id, s) != 0)
        h2_stream_set_state(s, SS_DEAD);
    return 0;
}

/* The header block of a request is complete. */
static void headers_done(struct h2_stream *s, bool end_stream)
{
    if (s->cookie)
        rd_hdrs_add_refn(&s->req.headers, "cookie", 6, s->cookie, s->cookie_len);
    if (s->err_status) {
        h2_stream_answer_error(s, s->err_status, s->err_msg);
        return;
    }
    if (s->req.content_length >= 0 && (uint64_t)s->req.content_length > s->limits.max_body) {
        h2_stream_answer_error(s, 413, "request body too large");
        return;
    }
    h2_stream_set_state(s, end_stream ? SS_READY : SS_BODY);
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *ud)
{
    (void)ud;
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
        return 0;
    struct h2_stream *s = stream_of(session, frame->hd.stream_id);
    if (s == NULL)
        return 0;
    bool end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (s->state == SS_HEADERS && frame->hd.type == NGHTTP2_HEADERS) {
        headers_done(s, end_stream);
    } else if (s->state == SS_BODY && end_stream) {
        if (s->err_status) /* trailers too large */
            h2_stream_answer_error(s, s->err_status, s->err_msg);
        else
            h2_stream_set_state(s, SS_READY);
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                         void *ud)
{
    (void)flags;
    (void)ud;
    struct h2_stream *s = stream_of(session, id);
    if (s == NULL || s->state != SS_BODY)
        return 0; /* answered early (413, 408) or reset: discarded */
    h2_stream_set_state(s, SS_BODY); /* body progress restarts its clock */
    if (rd_buf_append(&s->req.body, data, len) < 0)
        h2_stream_answer_error(s, 413, "request body too large");
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t id, uint32_t code, void *ud)
{
    (void)ud;
    struct h2_stream *s = stream_of(session, id);
    if (s == NULL)
        return 0;
    switch (s->state) {
    case SS_HANDLER:
    case SS_STREAMING:
        rd_debug("h2 stream %d closed (error code %u) while its handler runs", (int)id, code);
        s->x.gone = true;
        h2_stream_set_state(s, SS_GONE);
        break;
    case SS_GONE:
    case SS_ORPHAN:
    case SS_DEAD: break;
    default: h2_stream_set_state(s, SS_DEAD); break;
    }
    (void)nghttp2_session_set_stream_user_data(session, id, NULL);
    return 0;
}

/* A response that ended before the request did: tell the client to stop
 * sending (RFC 9113 8.1, RST_STREAM with NO_ERROR). */
static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *ud)
{
    (void)ud;
    if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
        nghttp2_session_get_stream_remote_close(session, frame->hd.stream_id) == 0)
        (void)nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_NO_ERROR);
    return 0;
}

void h2_stream_set_callbacks(nghttp2_session_callbacks *cbs)
{
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
}
