/* HTTP/1.1 server connections and the exchange API (see server.h for the
 * contract; listening sockets are in listener.c).
 *
 * A connection owns a parser, an input buffer, one timer (header, body or
 * idle deadline, depending on the state) and at most one exchange. Input is
 * always appended to c->in and parsed from there, so pipelined bytes simply
 * wait in the buffer while a handler runs. Output goes out with uv_try_write
 * first and is queued (copied) only for what the socket did not take. */
#include "http/server.h"
#include "http/server_int.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "util/deadline.h"
#include "util/err.h"
#include "util/log.h"
#include "util/mem.h"

#define IN_MAX (1024u * 1024u) /* input kept while a handler runs before reading pauses */
#define LINGER_MS 2000u        /* after an error response, read and discard this long */

struct wreq {
    uv_write_t req;
    struct conn *c;
    size_t len;
    char data[];
};

static void conn_process(struct conn *c);
static void start_reading(struct conn *c);
static void conn_close(struct conn *c);
static void close_now(struct conn *c);
static void conn_set_state(struct conn *c, enum conn_state s);
static void on_timer(uv_timer_t *t);

static const struct rd_http_exch_ops h1_exch_ops;

static struct conn *conn_of(struct rd_http_exch *x)
{
    return (struct conn *)((char *)x - offsetof(struct conn, x));
}

static const char *state_name(enum conn_state s)
{
    static const char *const names[] = {"idle",     "head",   "body", "handler", "writing",
                                        "draining", "linger", "h2",   "closing"};
    return names[s];
}

/* ---- output ---- */

/* Bytes the kernel has taken from uv_write requests (monotonic). */
static uint64_t bytes_accepted(const struct conn *c)
{
    return c->queued_total - uv_stream_get_write_queue_size((const uv_stream_t *)&c->tcp);
}

/* The state's deadline is lazy (util/deadline.h): a keep-alive request
 * normally costs no timer-heap operation. */
static void set_deadline(struct conn *c, uint64_t ms)
{
    rd_deadline_set(&c->deadline, &c->timer, on_timer, ms);
}

/* The send deadline: progress-based, so it fires only after idle_timeout_ms
 * in which the kernel accepted no byte, whatever the size of the writes. */
static void arm_send_deadline(struct conn *c)
{
    c->progress_mark = bytes_accepted(c);
    set_deadline(c, c->limits.idle_timeout_ms);
}

static void on_write(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    struct conn *c = w->c;
    size_t before = c->pending_out;
    c->pending_out -= w->len;
    free(w);
    if (c->state == CS_CLOSING)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    switch (c->state) {
    case CS_HANDLER:
        /* Drain is derived from the queued bytes: a handler that refused
         * bytes above the high mark hears back once they fall below the low
         * one, whatever happened to earlier responses on this connection. */
        if (before >= RD_HTTP_OUT_LOW && c->pending_out < RD_HTTP_OUT_LOW && c->x.on_drain)
            c->x.on_drain(c->x.cb_ud);
        break;
    case CS_WRITING:
        if (c->pending_out == 0) {
            conn_set_state(c, CS_IDLE);
            conn_process(c);
        }
        break;
    case CS_DRAINING:
        if (c->pending_out == 0)
            conn_close(c);
        break;
    case CS_H2: rd_h2_written(c->h2); break;
    default:
        break;
    }
}

/* Sends bufs: as much as possible right away, the rest copied and queued. */
static int out_send(struct conn *c, const uv_buf_t *bufs, unsigned int nbufs)
{
    if (c->state == CS_CLOSING || c->state == CS_LINGER || c->x.gone)
        return RD_EABORTED;
    size_t total = 0;
    for (unsigned int i = 0; i < nbufs; i++)
        total += bufs[i].len;
    if (total == 0)
        return 0;
    size_t sent = 0;
    if (c->pending_out == 0) {
        int n = uv_try_write((uv_stream_t *)&c->tcp, bufs, nbufs);
        if (n > 0)
            sent = (size_t)n;
        else if (n < 0 && n != UV_EAGAIN)
            return n;
    }
    if (sent == total)
        return 0;
    struct wreq *w = rd_malloc(sizeof *w + (total - sent));
    w->c = c;
    w->len = total - sent;
    size_t off = 0, skip = sent;
    for (unsigned int i = 0; i < nbufs; i++) {
        size_t len = bufs[i].len;
        const char *base = bufs[i].base;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        memcpy(w->data + off, base + skip, len - skip);
        off += len - skip;
        skip = 0;
    }
    uv_buf_t b = uv_buf_init(w->data, (unsigned int)w->len);
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (rc < 0) {
        free(w);
        return rc;
    }
    bool was_empty = c->pending_out == 0;
    c->pending_out += w->len;
    c->queued_total += w->len;
    /* Send timeout while the handler runs: a client that stops reading must
     * not hold the exchange (and its upstream) forever. The timer is left
     * running while output drains and checks progress when it fires. */
    if (was_empty && c->state == CS_HANDLER && c->deadline.at == 0)
        arm_send_deadline(c);
    return 0;
}

const char *rd_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return status >= 500 ? "Error" : status >= 400 ? "Client Error" : "Status";
    }
}

static bool status_has_no_body(int status)
{
    return status < 200 || status == 204 || status == 304;
}

/* Builds the status line and headers into c->head. */
static void build_head(struct conn *c, int status, const struct rd_hdrs *hdrs, int64_t content_length)
{
    struct rd_http_request *req = c->x.req;
    bool http10 = req->version_major == 1 && req->version_minor == 0;
    bool head_method = strcmp(req->method, "HEAD") == 0;
    c->resp_close = !req->keep_alive || c->l->stopping;
    c->resp_nobody = head_method || status_has_no_body(status);
    c->resp_chunked = false;
    c->resp_left = content_length;

    struct rd_buf *h = &c->head;
    rd_buf_reset(h);
    (void)rd_buf_append(h, "HTTP/1.1 ", 9);
    (void)rd_buf_append_u64(h, (uint64_t)(status < 0 ? 0 : status));
    (void)rd_buf_append(h, " ", 1);
    (void)rd_buf_appends(h, rd_http_reason(status));
    (void)rd_buf_append(h, "\r\n", 2);
    for (size_t i = 0; hdrs && i < hdrs->n; i++) {
        const struct rd_hdr *f = &hdrs->v[i];
        (void)rd_buf_append(h, f->name, f->name_len);
        (void)rd_buf_append(h, ": ", 2);
        (void)rd_buf_append(h, f->value, f->value_len);
        (void)rd_buf_append(h, "\r\n", 2);
    }
    if (content_length >= 0) {
        if (!status_has_no_body(status)) {
            (void)rd_buf_append(h, "Content-Length: ", 16);
            (void)rd_buf_append_u64(h, (uint64_t)content_length);
            (void)rd_buf_append(h, "\r\n", 2);
        }
    } else if (!c->resp_nobody) {
        if (http10)
            c->resp_close = true; /* close-delimited body */
        else {
            c->resp_chunked = true;
            (void)rd_buf_append(h, "Transfer-Encoding: chunked\r\n", 28);
        }
    }
    if (c->resp_nobody)
        c->resp_left = 0;
    if (c->resp_close)
        (void)rd_buf_append(h, "Connection: close\r\n", 19);
    else if (http10)
        (void)rd_buf_append(h, "Connection: keep-alive\r\n", 24);
    (void)rd_buf_append(h, "\r\n", 2);
}

static int flush_head(struct conn *c)
{
    if (c->head.len == 0)
        return 0;
    uv_buf_t b = uv_buf_init(c->head.data, (unsigned int)c->head.len);
    int rc = out_send(c, &b, 1);
    rd_buf_reset(&c->head);
    return rc;
}

/* ---- exchange API (HTTP/1.1 implementation of rd_http_exch_ops) ---- */

static void end_exchange(struct conn *c, bool clean)
{
    c->x.on_drain = c->x.on_gone = NULL;
    c->x.cb_ud = NULL;
    rd_buf_reset(&c->head);
    if (!clean || c->resp_close || c->x.gone || c->l->stopping) {
        if (c->pending_out == 0 || c->x.gone)
            close_now(c);
        else
            conn_set_state(c, CS_DRAINING);
        return;
    }
    rd_http_parser_next(c->parser);
    if (c->pending_out > 0) {
        /* The next request waits until this response is written: its own
         * output accounting then starts from an empty queue. */
        conn_set_state(c, CS_WRITING);
        return;
    }
    conn_set_state(c, CS_IDLE);
    conn_process(c);
}

void rd_http_respond(struct rd_http_exch *x, int status, const struct rd_hdrs *hdrs, const char *body, size_t len)
{
    /* A known length keeps the head back, so head and body leave in one write. */
    if (rd_http_begin(x, status, hdrs, (int64_t)len) == 0 && len > 0)
        (void)rd_http_write(x, body, len);
    rd_http_finish(x);
}

static int h1_begin(struct rd_http_exch *x, int status, const struct rd_hdrs *hdrs, int64_t content_length)
{
    struct conn *c = conn_of(x);
    if (x->gone)
        return RD_EABORTED;
    build_head(c, status, hdrs, content_length);
    /* A known-length body follows right away: keep the head to send it in
     * the same write. Streams get their head now, so clients see it before
     * the first event. */
    if (content_length > 0 && !c->resp_nobody)
        return 0;
    return flush_head(c);
}

static int h1_write(struct rd_http_exch *x, const char *p, size_t n)
{
    struct conn *c = conn_of(x);
    if (x->gone)
        return RD_EABORTED;
    if (c->resp_nobody || n == 0)
        return flush_head(c);
    if (c->resp_left >= 0) {
        if ((uint64_t)c->resp_left < n)
            n = (size_t)c->resp_left; /* never send more than announced */
        c->resp_left -= (int64_t)n;
    }
    char sz[24];
    uv_buf_t bufs[4];
    unsigned int nb = 0;
    if (c->head.len)
        bufs[nb++] = uv_buf_init(c->head.data, (unsigned int)c->head.len);
    if (c->resp_chunked) {
        size_t l = rd_fmt_hex(sz, n);
        sz[l++] = '\r';
        sz[l++] = '\n';
        bufs[nb++] = uv_buf_init(sz, (unsigned int)l);
    }
    bufs[nb++] = uv_buf_init((char *)p, (unsigned int)n);
    if (c->resp_chunked)
        bufs[nb++] = uv_buf_init("\r\n", 2);
    int rc = out_send(c, bufs, nb);
    rd_buf_reset(&c->head);
    return rc;
}

static void h1_finish(struct rd_http_exch *x)
{
    struct conn *c = conn_of(x);
    bool clean = true;
    if (!x->gone) {
        (void)flush_head(c);
        if (c->resp_chunked) {
            uv_buf_t b = uv_buf_init("0\r\n\r\n", 5);
            (void)out_send(c, &b, 1);
        } else if (c->resp_left > 0) {
            clean = false; /* announced more than was sent: the framing is broken */
        }
    }
    end_exchange(c, clean);
}

static void h1_abort(struct rd_http_exch *x)
{
    struct conn *c = conn_of(x);
    if (!x->gone)
        (void)flush_head(c);
    end_exchange(c, false);
}

static size_t h1_pending(const struct rd_http_exch *x)
{
    const struct conn *c = (const struct conn *)((const char *)x - offsetof(struct conn, x));
    return c->pending_out;
}

static const struct rd_http_exch_ops h1_exch_ops = {
    .begin = h1_begin,
    .write = h1_write,
    .finish = h1_finish,
    .abort = h1_abort,
    .pending = h1_pending,
};

/* ---- connections ---- */

/* The one place the state changes; it arms the state's deadline (see the
 * table in server_int.h). */
static void conn_set_state(struct conn *c, enum conn_state s)
{
    if (c->state != s)
        rd_trace("http conn %p: %s -> %s", (void *)c, state_name(c->state), state_name(s));
    c->state = s;
    switch (s) {
    case CS_IDLE: set_deadline(c, c->nreq == 0 ? c->limits.header_timeout_ms : c->limits.idle_timeout_ms); break;
    case CS_HEAD: set_deadline(c, c->limits.header_timeout_ms); break;
    case CS_BODY: set_deadline(c, c->limits.idle_timeout_ms); break;
    case CS_HANDLER:
        if (c->pending_out > 0)
            arm_send_deadline(c);
        else
            set_deadline(c, 0);
        break;
    case CS_WRITING:
    case CS_DRAINING: arm_send_deadline(c); break;
    case CS_LINGER: set_deadline(c, LINGER_MS); break;
    case CS_H2: set_deadline(c, 0); break; /* the front end sets its own */
    case CS_CLOSING:
        c->deadline.at = 0;
        uv_timer_stop(&c->timer);
        break;
    }
}

static void conn_free(struct conn *c)
{
    struct rd_http_listener *l = c->l;
    if (c->prev)
        c->prev->next = c->next;
    else
        l->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    l->nconns--;
    if (l->cfg.open_conns)
        atomic_fetch_sub_explicit(l->cfg.open_conns, 1, memory_order_relaxed);
    rd_http_parser_free(c->parser);
    rd_h2_free(c->h2);
    rd_buf_free(&c->in);
    rd_buf_free(&c->head);
    free(c);
    http_listener_check_done(l);
}

static void on_conn_handle_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (--c->open_handles == 0)
        conn_free(c);
}

/* Closes the handles; queued output is dropped. */
static void close_now(struct conn *c)
{
    if (c->state == CS_CLOSING)
        return;
    conn_set_state(c, CS_CLOSING);
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
}

/* Tells the handler its client is gone; it ends the exchange, then the
 * connection closes. Without an exchange the connection closes now. */
static void conn_close(struct conn *c)
{
    if (c->state == CS_H2) {
        rd_h2_gone(c->h2); /* it closes the connection once its handlers ended */
        return;
    }
    if (c->state == CS_HANDLER) {
        c->x.gone = true;
        if (!c->gone_notified) {
            c->gone_notified = true;
            if (c->x.on_gone)
                c->x.on_gone(c->x.cb_ud);
        }
        return;
    }
    close_now(c);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    free(req);
}

/* Answers an error the server detected itself, then half-closes and reads
 * until the client closes (or LINGER_MS), so the response is not destroyed
 * by a reset caused by unread input. Only called while no exchange runs. */
static void send_error(struct conn *c, int status, const char *message)
{
    struct rd_buf body;
    rd_buf_init(&body, 0);
    struct rd_arena arena;
    rd_arena_init(&arena);
    struct rd_hdrs extra;
    rd_hdrs_init(&extra, &arena);
    const char *ctype = "application/json";
    struct rd_http_error e = {
        .status = status,
        .message = message,
        .client_ip = c->x.client_ip,
        .req = rd_http_parser_request(c->parser),
    };
    c->l->cfg.error(c->l->cfg.ud, &e, &extra, &body, &ctype);
    struct rd_buf *h = &c->head;
    rd_buf_reset(h);
    (void)rd_buf_printf(h, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n", status,
                        rd_http_reason(status), ctype, body.len);
    for (size_t i = 0; i < extra.n; i++)
        (void)rd_buf_printf(h, "%s: %s\r\n", extra.v[i].name, extra.v[i].value);
    (void)rd_buf_appends(h, "Connection: close\r\n\r\n");
    uv_buf_t bufs[2] = {uv_buf_init(h->data, (unsigned int)h->len), uv_buf_init(body.data, (unsigned int)body.len)};
    int rc = out_send(c, bufs, 2);
    rd_buf_reset(h);
    rd_buf_free(&body);
    rd_hdrs_free(&extra);
    rd_arena_free(&arena);
    rd_buf_reset(&c->in);
    if (rc < 0) {
        conn_close(c);
        return;
    }
    uv_shutdown_t *req = rd_malloc(sizeof *req);
    if (uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) < 0) {
        free(req);
        conn_close(c);
        return;
    }
    conn_set_state(c, CS_LINGER);
}

static void on_timer(uv_timer_t *t)
{
    struct conn *c = t->data;
    if (!rd_deadline_expired(&c->deadline, &c->timer, on_timer))
        return; /* no deadline in this state, or not yet */
    switch (c->state) {
    case CS_IDLE: conn_close(c); break;
    case CS_HEAD: send_error(c, 408, "request headers not received in time"); break;
    case CS_BODY: send_error(c, 408, "request body not received in time"); break;
    case CS_HANDLER:
    case CS_WRITING:
    case CS_DRAINING:
        if (c->pending_out == 0)
            break; /* everything was written since the deadline was set */
        if (bytes_accepted(c) > c->progress_mark) {
            arm_send_deadline(c);
            break;
        }
        rd_debug("client took no response byte in %llu ms: closing the connection",
                 (unsigned long long)c->limits.idle_timeout_ms);
        conn_close(c); /* in HANDLER this tells the handler, which ends the exchange */
        break;
    case CS_LINGER: conn_close(c); break;
    case CS_H2: rd_h2_timer(c->h2); break;
    case CS_CLOSING: break;
    }
}

static void dispatch(struct conn *c)
{
    struct rd_http_listener *l = c->l;
    c->x.gone = false;
    c->gone_notified = false;
    c->x.on_drain = c->x.on_gone = NULL;
    c->x.cb_ud = NULL;
    c->x.user = NULL;
    c->nreq++;
    conn_set_state(c, CS_HANDLER);
    l->cfg.handler(&c->x, l->cfg.ud);
}

/* Headers are complete: apply this request's limits, answer 413 early when
 * the declared length is over the cap, and send 100 Continue when asked. */
static bool on_head(struct conn *c)
{
    struct rd_http_request *req = rd_http_parser_request(c->parser);
    c->l->cfg.limits(c->l->cfg.ud, &c->limits);
    rd_http_parser_set_max_body(c->parser, (size_t)c->limits.max_body);
    if (req->content_length >= 0 && (uint64_t)req->content_length > c->limits.max_body) {
        send_error(c, 413, "request body too large");
        return false;
    }
    if (req->expect_continue && (req->content_length > 0 || req->chunked) && c->in.len == 0) {
        uv_buf_t b = uv_buf_init("HTTP/1.1 100 Continue\r\n\r\n", 25);
        (void)out_send(c, &b, 1);
    }
    conn_set_state(c, CS_BODY);
    return true;
}

/* ---- HTTP/2 hand-off: the front end talks to the connection through this table ---- */

static int tp_send(void *ud, const uv_buf_t *bufs, unsigned int nbufs)
{
    return out_send(ud, bufs, nbufs);
}

static size_t tp_pending(const void *ud)
{
    return ((const struct conn *)ud)->pending_out;
}

static uint64_t tp_accepted(const void *ud)
{
    return bytes_accepted(ud);
}

static uint64_t tp_now(const void *ud)
{
    return uv_now(((const struct conn *)ud)->l->loop);
}

static void tp_set_deadline(void *ud, uint64_t at)
{
    struct conn *c = ud;
    rd_deadline_set_at(&c->deadline, &c->timer, on_timer, at);
}

static void tp_close(void *ud)
{
    close_now(ud);
}

static const struct rd_h2_transport h2_transport = {
    .send = tp_send,
    .pending = tp_pending,
    .accepted = tp_accepted,
    .now = tp_now,
    .set_deadline = tp_set_deadline,
    .close = tp_close,
};

/* A connection's first bytes decide its protocol: the HTTP/2 preface (prior
 * knowledge, RFC 9113 3.3) hands the connection to the HTTP/2 front end.
 * Returns true when parsing must stop: the front end took over, or a prefix
 * of the preface waits for more bytes (under the header deadline). */
static bool sniff_h2(struct conn *c)
{
    if (c->nreq != 0 || rd_http_parser_in_message(c->parser))
        return false;
    int m = rd_h2_preface_match(c->in.data ? c->in.data : "", c->in.len);
    if (m < 0)
        return false;
    if (m == 0) {
        if (c->in.len > 0 && c->state == CS_IDLE)
            conn_set_state(c, CS_HEAD);
        return true;
    }
    conn_set_state(c, CS_H2);
    c->h2 = rd_h2_new(&h2_transport, c, &c->l->cfg, c->x.client_ip);
    struct rd_buf in = c->in;
    rd_buf_init(&c->in, 0);
    rd_h2_feed(c->h2, in.data, in.len);
    rd_buf_free(&in);
    return true;
}

static bool may_parse(const struct conn *c)
{
    return c->state == CS_IDLE || c->state == CS_HEAD || c->state == CS_BODY;
}

static void conn_process(struct conn *c)
{
    if (c->processing)
        return;
    c->processing = true;
    while (may_parse(c)) {
        if ((c->state == CS_IDLE || c->state == CS_HEAD) && sniff_h2(c))
            break;
        enum rd_http_event ev = RD_HTTP_EV_NONE;
        int rc = rd_http_parser_feed(c->parser, c->in.data ? c->in.data : "", c->in.len, &ev);
        if (rc < 0) {
            send_error(c, rd_http_parser_status(c->parser), rd_http_parser_errmsg(c->parser));
            break;
        }
        rd_buf_consume(&c->in, (size_t)rc);
        if (ev == RD_HTTP_EV_HEAD) {
            if (!on_head(c))
                break;
            continue;
        }
        if (ev == RD_HTTP_EV_MESSAGE) {
            c->x.req = rd_http_parser_request(c->parser);
            dispatch(c);
            continue;
        }
        /* Need more bytes. The first byte of a request starts the header clock. */
        if (c->state == CS_IDLE && rd_http_parser_in_message(c->parser))
            conn_set_state(c, CS_HEAD);
        break;
    }
    c->processing = false;
    /* Reading may have paused because input piled up while a handler ran. */
    if (may_parse(c) || c->state == CS_H2)
        start_reading(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    static _Thread_local char rbuf[64 * 1024];
    *buf = uv_buf_init(rbuf, sizeof rbuf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    if (nread < 0) {
        /* EOF or error: a client that goes away while its request is being
         * handled aborts it (like nginx without proxy_ignore_client_abort). */
        uv_read_stop(s);
        c->reading = false;
        conn_close(c);
        return;
    }
    if (nread == 0 || c->state == CS_CLOSING || c->state == CS_LINGER)
        return; /* nothing, or discarded */
    if (c->state == CS_H2) {
        rd_h2_feed(c->h2, buf->base, (size_t)nread); /* nghttp2 keeps what it needs of partial frames */
        return;
    }
    if (c->state == CS_BODY)
        conn_set_state(c, CS_BODY); /* body progress re-arms its deadline */
    if (rd_buf_append(&c->in, buf->base, (size_t)nread) < 0) {
        if (may_parse(c))
            send_error(c, 400, "too much pipelined input");
        else
            close_now(c); /* cannot happen below the buffer's cap; never answer inside a response */
        return;
    }
    if (!may_parse(c)) {
        /* A response is in progress: pipelined bytes wait, up to IN_MAX. */
        if (c->in.len > IN_MAX) {
            uv_read_stop(s);
            c->reading = false;
        }
        return;
    }
    conn_process(c);
}

static void start_reading(struct conn *c)
{
    if (c->reading || c->state == CS_CLOSING)
        return;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
        c->reading = true;
}

static void peer_ip(struct conn *c)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    c->x.client_ip[0] = '\0';
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_INET)
        uv_ip4_name((struct sockaddr_in *)&ss, c->x.client_ip, sizeof c->x.client_ip);
    else if (ss.ss_family == AF_INET6)
        uv_ip6_name((struct sockaddr_in6 *)&ss, c->x.client_ip, sizeof c->x.client_ip);
}

static void link_conn(struct rd_http_listener *l, struct conn *c)
{
    c->next = l->conns;
    if (l->conns)
        l->conns->prev = c;
    l->conns = c;
    l->nconns++;
    if (l->cfg.open_conns)
        atomic_fetch_add_explicit(l->cfg.open_conns, 1, memory_order_relaxed);
}

void http_on_connection(uv_stream_t *server, int status)
{
    struct rd_http_listener *l = server->data;
    if (status < 0 || l->stopping)
        return;
    struct conn *c = rd_calloc(1, sizeof *c);
    c->l = l;
    c->x.ops = &h1_exch_ops;
    uv_tcp_init(l->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        /* Nothing to accept after all (another worker took it). */
        c->open_handles = 1;
        c->state = CS_CLOSING; /* never set up: no timer to arm */
        link_conn(l, c);
        uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
        return;
    }
    uv_timer_init(l->loop, &c->timer);
    c->timer.data = c;
    c->open_handles = 2;
    link_conn(l, c);
    uv_tcp_nodelay(&c->tcp, 1);
    l->cfg.limits(l->cfg.ud, &c->limits);
    c->parser = rd_http_parser_new(c->limits.max_head, (size_t)c->limits.max_body);
    rd_buf_init(&c->in, 0);
    rd_buf_init(&c->head, 0);
    peer_ip(c);
    /* A new connection must deliver its first request head in time. */
    conn_set_state(c, CS_IDLE);
    start_reading(c);
}

void http_conn_close(struct conn *c)
{
    conn_close(c);
}

void http_conn_stop_gracefully(struct conn *c)
{
    switch (c->state) {
    case CS_IDLE: close_now(c); break;
    case CS_WRITING: conn_set_state(c, CS_DRAINING); break; /* its response is complete: let it drain */
    case CS_H2: rd_h2_shutdown(c->h2); break;              /* GOAWAY; streams in flight finish */
    default: break; /* HEAD/BODY/HANDLER: closed after their response (build_head and end_exchange check stopping) */
    }
}
