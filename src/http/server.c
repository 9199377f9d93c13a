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
static void arm_timer(struct conn *c, uint64_t ms);
static void conn_close(struct conn *c);

static struct conn *conn_of(struct rd_http_exch *x)
{
    return (struct conn *)((char *)x - offsetof(struct conn, x));
}

/* ---- output ---- */

static void on_write(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    struct conn *c = w->c;
    c->pending_out -= w->len;
    free(w);
    if (status < 0) {
        if (!c->closing)
            conn_close(c);
        return;
    }
    if (c->above_high && c->state == C_HANDLER)
        arm_timer(c, c->pending_out < RD_HTTP_OUT_LOW ? 0 : c->limits.idle_timeout_ms);
    if (c->above_high && c->pending_out < RD_HTTP_OUT_LOW) {
        c->above_high = false;
        if (c->x_active && c->on_drain)
            c->on_drain(c->cb_ud);
    }
    if (c->close_when_flushed && c->pending_out == 0)
        conn_close(c);
}

/* Sends bufs: as much as possible right away, the rest copied and queued. */
static int out_send(struct conn *c, uv_buf_t *bufs, unsigned int nbufs)
{
    if (c->closing || c->shut)
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
    c->pending_out += w->len;
    if (c->pending_out > RD_HTTP_OUT_HIGH && !c->above_high) {
        c->above_high = true;
        /* Send timeout: a client that stops reading must not hold the
         * exchange (and its upstream) forever. Progress re-arms it. */
        if (c->state == C_HANDLER)
            arm_timer(c, c->limits.idle_timeout_ms);
    }
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
    c->resp_close = !req->keep_alive || c->close_when_flushed || c->l->stopping;
    c->resp_nobody = head_method || status_has_no_body(status);
    c->resp_chunked = false;
    c->resp_left = content_length;

    struct rd_buf *h = &c->head;
    rd_buf_reset(h);
    (void)rd_buf_printf(h, "HTTP/1.1 %d %s\r\n", status, rd_http_reason(status));
    for (size_t i = 0; hdrs && i < hdrs->n; i++) {
        const struct rd_hdr *f = &hdrs->v[i];
        (void)rd_buf_append(h, f->name, f->name_len);
        (void)rd_buf_append(h, ": ", 2);
        (void)rd_buf_append(h, f->value, f->value_len);
        (void)rd_buf_append(h, "\r\n", 2);
    }
    if (content_length >= 0) {
        if (!status_has_no_body(status))
            (void)rd_buf_printf(h, "Content-Length: %lld\r\n", (long long)content_length);
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

/* ---- exchange API ---- */

static void end_exchange(struct conn *c, bool clean)
{
    c->x_active = false;
    c->on_drain = c->on_gone = NULL;
    rd_buf_reset(&c->head);
    if (!clean || c->resp_close || c->gone || c->l->stopping) {
        c->close_when_flushed = true;
        if (c->pending_out == 0 || c->gone)
            conn_close(c);
        return;
    }
    rd_http_parser_next(c->parser);
    c->state = C_IDLE;
    /* Reading may have paused because input piled up while the handler ran. */
    start_reading(c);
    arm_timer(c, c->limits.idle_timeout_ms);
    conn_process(c);
}

void rd_http_respond(struct rd_http_exch *x, int status, const struct rd_hdrs *hdrs, const char *body, size_t len)
{
    struct conn *c = conn_of(x);
    build_head(c, status, hdrs, (int64_t)len);
    uv_buf_t bufs[2] = {uv_buf_init(c->head.data, (unsigned int)c->head.len),
                        uv_buf_init((char *)body, c->resp_nobody ? 0 : (unsigned int)len)};
    (void)out_send(c, bufs, 2);
    rd_buf_reset(&c->head);
    end_exchange(c, true);
}

int rd_http_begin(struct rd_http_exch *x, int status, const struct rd_hdrs *hdrs, int64_t content_length)
{
    struct conn *c = conn_of(x);
    if (c->gone)
        return RD_EABORTED;
    build_head(c, status, hdrs, content_length);
    /* A known-length body follows right away: keep the head to send it in
     * the same write. Streams get their head now, so clients see it before
     * the first event. */
    if (content_length > 0 && !c->resp_nobody)
        return 0;
    return flush_head(c);
}

int rd_http_write(struct rd_http_exch *x, const char *p, size_t n)
{
    struct conn *c = conn_of(x);
    if (c->gone)
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
        int l = snprintf(sz, sizeof sz, "%zx\r\n", n);
        bufs[nb++] = uv_buf_init(sz, (unsigned int)l);
    }
    bufs[nb++] = uv_buf_init((char *)p, (unsigned int)n);
    if (c->resp_chunked)
        bufs[nb++] = uv_buf_init("\r\n", 2);
    int rc = out_send(c, bufs, nb);
    rd_buf_reset(&c->head);
    return rc;
}

void rd_http_finish(struct rd_http_exch *x)
{
    struct conn *c = conn_of(x);
    bool clean = true;
    if (!c->gone) {
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

void rd_http_abort(struct rd_http_exch *x)
{
    struct conn *c = conn_of(x);
    if (!c->gone)
        (void)flush_head(c);
    end_exchange(c, false);
}

size_t rd_http_pending(const struct rd_http_exch *x)
{
    const struct conn *c = (const struct conn *)((const char *)x - offsetof(struct conn, x));
    return c->pending_out;
}

void rd_http_set_callbacks(struct rd_http_exch *x, rd_http_exch_fn on_drain, rd_http_exch_fn on_gone, void *ud)
{
    struct conn *c = conn_of(x);
    c->on_drain = on_drain;
    c->on_gone = on_gone;
    c->cb_ud = ud;
}

bool rd_http_client_gone(const struct rd_http_exch *x)
{
    const struct conn *c = (const struct conn *)((const char *)x - offsetof(struct conn, x));
    return c->gone;
}

/* ---- connections ---- */

static void on_timer(uv_timer_t *t);

static void arm_timer(struct conn *c, uint64_t ms)
{
    if (ms == 0)
        uv_timer_stop(&c->timer);
    else
        uv_timer_start(&c->timer, on_timer, ms, 0);
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
    rd_http_parser_free(c->parser);
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

/* Tells the handler its client is gone; it ends the exchange, then the
 * connection closes. Without an exchange the connection closes now. */
static void conn_close(struct conn *c)
{
    if (c->x_active) {
        c->gone = true;
        if (!c->gone_notified) {
            c->gone_notified = true;
            if (c->on_gone)
                c->on_gone(c->cb_ud);
        }
        return;
    }
    if (c->closing)
        return;
    c->closing = true;
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    free(req);
}

/* Answers an error the server detected itself, then half-closes and reads
 * until the client closes (or LINGER_MS), so the response is not destroyed
 * by a reset caused by unread input. */
static void send_error(struct conn *c, int status, const char *message)
{
    struct rd_buf body;
    rd_buf_init(&body, 0);
    const char *ctype = "application/json";
    c->l->cfg.error(c->l->cfg.ud, status, message, &body, &ctype);
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", status,
                     rd_http_reason(status), ctype, body.len);
    uv_buf_t bufs[2] = {uv_buf_init(head, (unsigned int)n), uv_buf_init(body.data, (unsigned int)body.len)};
    (void)out_send(c, bufs, 2);
    rd_buf_free(&body);
    c->state = C_LINGER;
    rd_buf_reset(&c->in);
    uv_shutdown_t *req = rd_malloc(sizeof *req);
    if (uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) < 0) {
        free(req);
        conn_close(c);
        return;
    }
    c->shut = true;
    arm_timer(c, LINGER_MS);
}

static void on_timer(uv_timer_t *t)
{
    struct conn *c = t->data;
    if (c->state == C_LINGER || c->state == C_IDLE) {
        if (c->state == C_IDLE && rd_http_parser_in_message(c->parser)) {
            send_error(c, 408, "request headers not received in time");
            return;
        }
        conn_close(c);
    } else if (c->state == C_HEAD) {
        send_error(c, 408, "request headers not received in time");
    } else if (c->state == C_BODY) {
        send_error(c, 408, "request body not received in time");
    } else if (c->state == C_HANDLER) {
        rd_debug("client stopped reading its response: closing the connection");
        conn_close(c);
    }
}

static void dispatch(struct conn *c)
{
    struct rd_http_listener *l = c->l;
    c->state = C_HANDLER;
    c->x_active = true;
    c->gone = c->gone_notified = c->above_high = false;
    c->on_drain = c->on_gone = NULL;
    c->x.user = NULL;
    uv_timer_stop(&c->timer);
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
    c->state = C_BODY;
    arm_timer(c, c->limits.idle_timeout_ms);
    return true;
}

static void conn_process(struct conn *c)
{
    if (c->processing)
        return;
    c->processing = true;
    while (!c->x_active && !c->closing && c->state != C_LINGER) {
        enum rd_http_event ev = RD_HTTP_EV_NONE;
        bool was_in_message = rd_http_parser_in_message(c->parser);
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
        if (c->state == C_IDLE && !was_in_message && rd_http_parser_in_message(c->parser)) {
            c->state = C_HEAD;
            arm_timer(c, c->limits.header_timeout_ms);
        }
        break;
    }
    c->processing = false;
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
    if (nread == 0 || c->closing)
        return;
    if (c->state == C_LINGER)
        return; /* discard */
    if (c->state == C_BODY)
        arm_timer(c, c->limits.idle_timeout_ms);
    if (rd_buf_append(&c->in, buf->base, (size_t)nread) < 0) {
        send_error(c, 400, "too much pipelined input");
        return;
    }
    if (c->x_active) {
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
    if (c->reading || c->closing)
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

void http_on_connection(uv_stream_t *server, int status)
{
    struct rd_http_listener *l = server->data;
    if (status < 0 || l->stopping)
        return;
    struct conn *c = rd_calloc(1, sizeof *c);
    c->l = l;
    uv_tcp_init(l->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        /* Nothing to accept after all (another worker took it). */
        c->open_handles = 1;
        c->closing = true;
        l->nconns++;
        c->next = l->conns;
        if (l->conns)
            l->conns->prev = c;
        l->conns = c;
        uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
        return;
    }
    uv_timer_init(l->loop, &c->timer);
    c->timer.data = c;
    c->open_handles = 2;
    c->next = l->conns;
    if (l->conns)
        l->conns->prev = c;
    l->conns = c;
    l->nconns++;
    uv_tcp_nodelay(&c->tcp, 1);
    l->cfg.limits(l->cfg.ud, &c->limits);
    c->parser = rd_http_parser_new(c->limits.max_head, (size_t)c->limits.max_body);
    rd_buf_init(&c->in, 0);
    rd_buf_init(&c->head, 0);
    peer_ip(c);
    c->state = C_IDLE;
    /* A new connection must deliver its first request head in time. */
    arm_timer(c, c->limits.header_timeout_ms);
    start_reading(c);
}

void http_conn_close(struct conn *c)
{
    conn_close(c);
}
