/* Plain HTTP/1.1 upstream client: libuv TCP + llhttp (HTTP_RESPONSE), a
 * LIFO keep-alive pool per (host, port), and the source callbacks of
 * upstream/source.h. It exists because libcurl's generality (and its
 * allocations) cost more CPU than the proxying itself for small requests.
 *
 * Ownership: a struct conn owns two libuv handles (the socket and one timer
 * used for the connect timeout, the request deadline or the idle timeout)
 * and is freed only when both close callbacks have run. A struct rd_h1
 * (the request) owns no handle, so it can be released synchronously into
 * the context's free list when on_done fires or rd_h1_abort is called. The
 * context is freed when its last handle has closed. */
#include "upstream/h1.h"

#include <arpa/inet.h>
#include <llhttp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/arena.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/log.h"
#include "util/mem.h"

#define READ_BUF_SIZE 65536
#define MAX_RESP_HEAD (64 * 1024) /* status line, fields and trailers */
#define MAX_REQ_HEAD (1024 * 1024)
#define IDLE_TIMEOUT_MS 60000
#define IDLE_PER_KEY 256 /* idle connections kept per (host, port) */
#define IDLE_TOTAL 1024  /* and per context, as curl's MAXCONNECTS in upstream.c */
#define MAX_POOL_KEYS 256
#define FREE_REQS_MAX 128
#define HOST_MAX 46 /* INET6_ADDRSTRLEN */

enum cstate { C_CONNECTING, C_ACTIVE, C_IDLE, C_CLOSING };
enum feed_result { FEED_MORE, FEED_PAUSED, FEED_DONE };

struct pool {
    struct pool *next;
    struct conn *idle; /* most recently used first */
    size_t nidle;
    int port;
    char host[HOST_MAX];
};

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t creq;
    uv_write_t wreq;
    struct rd_h1_ctx *ctx;
    struct pool *pool;                 /* NULL: never pooled */
    struct rd_h1 *req;                 /* bound request; NULL when idle or closing */
    struct conn *prev, *next;          /* pool->idle while idle */
    struct conn *all_prev, *all_next;  /* ctx->conns until freed */
    llhttp_t ll;
    struct rd_buf field;  /* "name" + "value" of the header being parsed */
    size_t name_len;
    size_t head_bytes;    /* counted against MAX_RESP_HEAD */
    struct rd_buf saved;  /* while paused: the refused chunk, then unparsed bytes */
    size_t held;          /* length of the refused chunk at the front of saved */
    const char *hold_at;  /* set by on_body when on_data refuses bytes */
    size_t hold_len;
    char *wbuf;           /* owned copy of the head's unsent part, queued */
    int fail_err;         /* set by a parser callback that stopped llhttp */
    const char *fail_msg;
    int nopen;            /* handles not closed yet */
    enum cstate state;
    bool reused, writing, reading, paused, msg_done, keep_alive, timer_is_deadline;
};

struct rd_h1 {
    struct rd_h1_ctx *ctx;
    struct conn *conn;       /* borrowed while bound */
    struct pool *pool;
    const struct rd_source_cbs *cbs;
    void *ud;
    const char *body;        /* borrowed until on_done or abort */
    size_t body_len;
    struct rd_buf head;      /* request head; storage kept across reuse */
    struct rd_arena arena;   /* response header strings */
    struct rd_hdrs hdrs;
    uint64_t deadline;       /* loop time; 0 means none */
    uint64_t connect_timeout_ms;
    struct rd_h1 *prev, *next; /* deferred list, or free list */
    int port;
    int err;
    bool in_call, deferred, head_done, got_bytes, retried, is_head;
    char host[HOST_MAX];
    char detail[160];
};

struct rd_h1_ctx {
    uv_loop_t *loop;
    uv_idle_t defer;         /* delivers on_done outside start/resume */
    struct pool *pools;
    size_t npools;
    size_t nidle;
    struct conn *conns;
    struct rd_h1 *free_reqs;
    size_t nfree;
    struct rd_h1 *dhead, *dtail;
    size_t ndeferred;
    int nopen;               /* conns not freed yet + the defer handle */
    bool closing;
    /* One read buffer for all connections: libuv runs alloc and read
     * callbacks back to back per stream and the bytes are parsed before
     * on_read returns; what must outlive it (a paused tail) is copied. */
    char rbuf[READ_BUF_SIZE];
};

static void conn_close(struct conn *c);
static void connect_new(struct rd_h1 *r);
static void send_request(struct conn *c);
/* The llhttp callbacks, defined with the parsing code below. */
static const llhttp_settings_t settings;

static void set_state(struct conn *c, enum cstate s)
{
    static const char *const names[] = {"connecting", "active", "idle", "closing"};
    rd_trace("h1 conn %p: %s -> %s", (void *)c, names[c->state], names[s]);
    c->state = s;
}

/* ---- URL ---- */

int rd_h1_parse_url(const char *url, char *host, size_t hostlen, int *port, const char **target)
{
    if (url == NULL || strncasecmp(url, "http://", 7) != 0)
        return RD_EINVAL;
    const char *p = url + 7, *h = p, *he;
    bool v6 = *p == '[';
    if (v6) {
        h = p + 1;
        he = strchr(h, ']');
        if (he == NULL)
            return RD_EINVAL;
        p = he + 1;
    } else {
        p += strcspn(p, ":/?#@[]");
        he = p;
    }
    size_t hl = (size_t)(he - h);
    char tmp[HOST_MAX];
    unsigned char addr[16];
    if (hl == 0 || hl >= sizeof tmp || hl >= hostlen)
        return RD_EINVAL;
    memcpy(tmp, h, hl);
    tmp[hl] = '\0';
    if (v6 ? inet_pton(AF_INET6, tmp, addr) != 1
           : strcasecmp(tmp, "localhost") != 0 && inet_pton(AF_INET, tmp, addr) != 1)
        return RD_EINVAL;
    long prt = 80;
    if (*p == ':') {
        const char *ds = ++p;
        prt = 0;
        while (*p >= '0' && *p <= '9' && p - ds < 6)
            prt = prt * 10 + (*p++ - '0');
        if (p == ds || prt < 1 || prt > 65535)
            return RD_EINVAL;
    }
    const char *t = "/";
    if (*p == '/') {
        t = p;
        for (; *p; p++)
            if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == '#')
                return RD_EINVAL;
    } else if (*p != '\0') {
        return RD_EINVAL;
    }
    memcpy(host, tmp, hl + 1);
    *port = (int)prt;
    *target = t;
    return 0;
}

/* ---- request objects and completion ---- */

static struct rd_h1 *req_new(struct rd_h1_ctx *ctx)
{
    struct rd_h1 *r = ctx->free_reqs;
    if (r != NULL) {
        ctx->free_reqs = r->next;
        ctx->nfree--;
    } else {
        r = rd_calloc(1, sizeof *r);
        r->ctx = ctx;
        rd_buf_init(&r->head, MAX_REQ_HEAD);
        rd_arena_init(&r->arena);
        rd_hdrs_init(&r->hdrs, &r->arena);
    }
    r->conn = NULL;
    r->pool = NULL;
    r->prev = r->next = NULL;
    r->err = 0;
    r->in_call = r->deferred = r->head_done = r->got_bytes = r->retried = r->is_head = false;
    r->detail[0] = '\0';
    return r;
}

static void req_destroy(struct rd_h1 *r)
{
    rd_hdrs_free(&r->hdrs);
    rd_arena_free(&r->arena);
    rd_buf_free(&r->head);
    free(r);
}

static void req_release(struct rd_h1 *r)
{
    struct rd_h1_ctx *ctx = r->ctx;
    if (ctx->closing || ctx->nfree >= FREE_REQS_MAX || r->head.cap > 64 * 1024) {
        req_destroy(r);
        return;
    }
    rd_hdrs_clear(&r->hdrs);
    rd_arena_reset(&r->arena);
    rd_buf_reset(&r->head);
    r->next = ctx->free_reqs;
    ctx->free_reqs = r;
    ctx->nfree++;
}

static void defer_unlink(struct rd_h1 *r)
{
    struct rd_h1_ctx *ctx = r->ctx;
    if (r->prev)
        r->prev->next = r->next;
    else
        ctx->dhead = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        ctx->dtail = r->prev;
    r->prev = r->next = NULL;
    r->deferred = false;
    ctx->ndeferred--;
}

static void deliver(struct rd_h1 *r)
{
    const struct rd_source_cbs *cbs = r->cbs;
    void *ud = r->ud;
    /* on_done gets r->detail, so r is released only after it returns. */
    cbs->on_done(ud, r->err, r->err ? r->detail : NULL);
    req_release(r);
}

static void on_defer(uv_idle_t *h)
{
    struct rd_h1_ctx *ctx = h->data;
    /* Only what was queued before this pass: on_done may start requests
     * that fail at once, and those wait for the next loop iteration. */
    size_t n = ctx->ndeferred;
    while (n-- > 0 && ctx->dhead != NULL) {
        struct rd_h1 *r = ctx->dhead;
        defer_unlink(r);
        deliver(r);
    }
    if (ctx->dhead == NULL)
        uv_idle_stop(&ctx->defer);
}

/* Ends r (already detached from its connection) with on_done, now, or on the
 * next loop iteration when we are inside rd_h1_start/rd_h1_resume. */
static void finish(struct rd_h1 *r, int err, const char *detail)
{
    r->conn = NULL;
    r->err = err;
    if (detail == NULL)
        r->detail[0] = '\0';
    else if (detail != r->detail)
        snprintf(r->detail, sizeof r->detail, "%s", detail);
    if (!r->in_call) {
        deliver(r);
        return;
    }
    struct rd_h1_ctx *ctx = r->ctx;
    r->deferred = true;
    r->next = NULL;
    r->prev = ctx->dtail;
    if (ctx->dtail)
        ctx->dtail->next = r;
    else
        ctx->dhead = r;
    ctx->dtail = r;
    ctx->ndeferred++;
    uv_idle_start(&ctx->defer, on_defer);
}

/* ---- pool ---- */

static struct pool *pool_find(struct rd_h1_ctx *ctx, const char *host, int port)
{
    for (struct pool *p = ctx->pools; p; p = p->next)
        if (p->port == port && strcmp(p->host, host) == 0)
            return p;
    if (ctx->npools >= MAX_POOL_KEYS)
        return NULL; /* connections to further upstreams are not kept */
    struct pool *p = rd_calloc(1, sizeof *p);
    p->port = port;
    snprintf(p->host, sizeof p->host, "%s", host);
    p->next = ctx->pools;
    ctx->pools = p;
    ctx->npools++;
    return p;
}

static void idle_unlink(struct conn *c)
{
    struct pool *p = c->pool;
    if (c->prev)
        c->prev->next = c->next;
    else
        p->idle = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    p->nidle--;
    c->ctx->nidle--;
}

static void on_timer(uv_timer_t *t);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct conn *c = h->data;
    *buf = uv_buf_init(c->ctx->rbuf, READ_BUF_SIZE);
}

static int start_reading(struct conn *c)
{
    if (c->reading)
        return 0;
    int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    c->reading = rc == 0;
    return rc;
}

/* Keeps c for the next request to its upstream. Idle connections keep
 * reading, so a close by the server (or stray bytes) closes them here. */
static void pool_put(struct conn *c)
{
    struct rd_h1_ctx *ctx = c->ctx;
    struct pool *p = c->pool;
    if (p == NULL || ctx->closing || p->nidle >= IDLE_PER_KEY || ctx->nidle >= IDLE_TOTAL || start_reading(c) < 0) {
        conn_close(c);
        return;
    }
    set_state(c, C_IDLE);
    c->reused = true;
    c->prev = NULL;
    c->next = p->idle;
    if (p->idle)
        p->idle->prev = c;
    p->idle = c;
    p->nidle++;
    ctx->nidle++;
    uv_timer_start(&c->timer, on_timer, IDLE_TIMEOUT_MS, 0);
}

/* ---- connections ---- */

static void ctx_unref(struct rd_h1_ctx *ctx)
{
    if (--ctx->nopen > 0 || !ctx->closing)
        return;
    while (ctx->pools) {
        struct pool *p = ctx->pools;
        ctx->pools = p->next;
        free(p);
    }
    while (ctx->free_reqs) {
        struct rd_h1 *r = ctx->free_reqs;
        ctx->free_reqs = r->next;
        req_destroy(r);
    }
    free(ctx);
}

static void on_conn_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (--c->nopen > 0)
        return;
    struct rd_h1_ctx *ctx = c->ctx;
    if (c->all_prev)
        c->all_prev->all_next = c->all_next;
    else
        ctx->conns = c->all_next;
    if (c->all_next)
        c->all_next->all_prev = c->all_prev;
    rd_buf_free(&c->field);
    rd_buf_free(&c->saved);
    free(c->wbuf);
    free(c);
    ctx_unref(ctx);
}

static struct conn *conn_new(struct rd_h1_ctx *ctx, struct pool *pool)
{
    struct conn *c = rd_calloc(1, sizeof *c);
    c->ctx = ctx;
    c->pool = pool;
    /* Neither init can fail for AF_UNSPEC TCP and a timer on a live loop. */
    (void)uv_tcp_init(ctx->loop, &c->tcp);
    (void)uv_timer_init(ctx->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->nopen = 2;
    rd_buf_init(&c->field, MAX_RESP_HEAD);
    rd_buf_init(&c->saved, 0);
    c->all_next = ctx->conns;
    if (ctx->conns)
        ctx->conns->all_prev = c;
    ctx->conns = c;
    ctx->nopen++;
    return c;
}

/* Closes c (never pooled again); memory goes in on_conn_closed. */
static void conn_close(struct conn *c)
{
    if (c->state == C_CLOSING)
        return;
    if (c->state == C_IDLE)
        idle_unlink(c);
    set_state(c, C_CLOSING);
    c->req = NULL;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

/* Closes c and ends its request with err. */
static void conn_fail(struct conn *c, int err, const char *detail)
{
    struct rd_h1 *r = c->req;
    conn_close(c);
    finish(r, err, detail);
}

static void arm_deadline(struct conn *c, const struct rd_h1 *r)
{
    if (r->deadline == 0) {
        uv_timer_stop(&c->timer);
        return;
    }
    uint64_t now = uv_now(c->ctx->loop);
    uv_timer_start(&c->timer, on_timer, r->deadline > now ? r->deadline - now : 0, 0);
}

/* Binds r to c and readies the parser for r's response. */
static void conn_attach(struct conn *c, struct rd_h1 *r, enum cstate state)
{
    c->req = r;
    r->conn = c;
    set_state(c, state);
    llhttp_init(&c->ll, HTTP_RESPONSE, &settings);
    c->ll.data = c;
    rd_buf_reset(&c->field);
    rd_buf_reset(&c->saved);
    c->name_len = c->head_bytes = c->held = c->hold_len = 0;
    c->hold_at = NULL;
    c->fail_err = 0;
    c->fail_msg = NULL;
    c->paused = c->msg_done = c->keep_alive = false;
}

static bool may_retry(const struct conn *c, const struct rd_h1 *r)
{
    return c->reused && !r->got_bytes && !r->retried && !c->ctx->closing;
}

/* A reused connection died before answering: the server closed it while it
 * sat in the pool. Nothing reached the caller, so try once on a new one. */
static void retry(struct conn *c, struct rd_h1 *r)
{
    conn_close(c);
    r->conn = NULL;
    r->retried = true;
    connect_new(r);
}

static void format_connect_error(struct rd_h1 *r, int uverr)
{
    bool v6 = strchr(r->host, ':') != NULL;
    snprintf(r->detail, sizeof r->detail, "connect to %s%s%s:%d failed: %s", v6 ? "[" : "", r->host, v6 ? "]" : "",
             r->port, uv_strerror(uverr));
}

static void on_connect(uv_connect_t *cr, int status)
{
    struct conn *c = cr->handle->data;
    if (status == UV_ECANCELED || c->state != C_CONNECTING)
        return; /* closed while connecting */
    struct rd_h1 *r = c->req;
    int rc = status;
    if (rc == 0) {
        set_state(c, C_ACTIVE);
        arm_deadline(c, r);
        rc = start_reading(c);
    }
    if (rc < 0) {
        format_connect_error(r, rc);
        conn_fail(c, RD_EUPSTREAM, r->detail);
        return;
    }
    send_request(c);
}

static void connect_new(struct rd_h1 *r)
{
    struct rd_h1_ctx *ctx = r->ctx;
    struct sockaddr_storage ss;
    int rc;
    if (strchr(r->host, ':') != NULL)
        rc = uv_ip6_addr(r->host, r->port, (struct sockaddr_in6 *)&ss);
    else
        rc = uv_ip4_addr(strcasecmp(r->host, "localhost") == 0 ? "127.0.0.1" : r->host, r->port,
                         (struct sockaddr_in *)&ss);
    struct conn *c = conn_new(ctx, r->pool);
    conn_attach(c, r, C_CONNECTING);
    /* Set before the socket exists; libuv applies it when connecting. */
    if (rc == 0)
        rc = uv_tcp_nodelay(&c->tcp, 1);
    if (rc == 0)
        rc = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&ss, on_connect);
    if (rc < 0) {
        format_connect_error(r, rc);
        conn_fail(c, RD_EUPSTREAM, r->detail);
        return;
    }
    uint64_t ms = r->connect_timeout_ms, now = uv_now(ctx->loop);
    c->timer_is_deadline = false;
    if (r->deadline != 0) {
        uint64_t left = r->deadline > now ? r->deadline - now : 0;
        if (ms == 0 || left <= ms) {
            ms = left;
            c->timer_is_deadline = true;
        }
    }
    if (ms > 0 || c->timer_is_deadline)
        uv_timer_start(&c->timer, on_timer, ms, 0);
}

static void on_timer(uv_timer_t *t)
{
    struct conn *c = t->data;
    switch (c->state) {
    case C_IDLE:
        conn_close(c);
        break;
    case C_CONNECTING:
        conn_fail(c, RD_ETIMEDOUT, c->timer_is_deadline ? "upstream timed out" : "connect timed out");
        break;
    case C_ACTIVE:
        conn_fail(c, RD_ETIMEDOUT, "upstream timed out");
        break;
    case C_CLOSING:
        break;
    }
}

/* ---- sending ---- */

static void write_failed(struct conn *c, int uverr)
{
    struct rd_h1 *r = c->req;
    if (may_retry(c, r)) {
        retry(c, r);
        return;
    }
    snprintf(r->detail, sizeof r->detail, "sending the request to upstream failed: %s", uv_strerror(uverr));
    conn_fail(c, RD_EUPSTREAM, r->detail);
}

static void on_write(uv_write_t *w, int status)
{
    struct conn *c = w->handle->data;
    c->writing = false;
    free(c->wbuf);
    c->wbuf = NULL;
    /* Once response bytes arrived the read side decides how this ends. */
    if (status < 0 && c->state == C_ACTIVE && !c->req->got_bytes)
        write_failed(c, status);
}

/* Writes head and body with one writev when the socket takes it all (the
 * usual case); otherwise queues the rest. The body stays borrowed: if the
 * request ends while a write is queued the connection is closed, and libuv
 * cancels the write without touching the bytes again. */
static void send_request(struct conn *c)
{
    struct rd_h1 *r = c->req;
    uv_buf_t b[2] = {{.base = r->head.data, .len = r->head.len}, {.base = (char *)r->body, .len = r->body_len}};
    int n = uv_try_write((uv_stream_t *)&c->tcp, b, r->body_len > 0 ? 2 : 1);
    if (n == UV_EAGAIN)
        n = 0;
    if (n < 0) {
        write_failed(c, n);
        return;
    }
    size_t off = (size_t)n;
    if (off == r->head.len + r->body_len)
        return;
    uv_buf_t q[2];
    unsigned nq = 0;
    if (off < r->head.len) {
        c->wbuf = rd_malloc(r->head.len - off);
        memcpy(c->wbuf, r->head.data + off, r->head.len - off);
        q[nq++] = (uv_buf_t){.base = c->wbuf, .len = r->head.len - off};
        off = 0;
    } else {
        off -= r->head.len;
    }
    if (off < r->body_len)
        q[nq++] = (uv_buf_t){.base = (char *)r->body + off, .len = r->body_len - off};
    int rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, q, nq, on_write);
    if (rc < 0) {
        free(c->wbuf);
        c->wbuf = NULL;
        write_failed(c, rc);
        return;
    }
    c->writing = true;
}

static bool is_tchar(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z') ||
           (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

static bool is_token(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)s[i]))
            return false;
    return n > 0;
}

static bool is_field_value(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
            return false;
    return true;
}

static bool wants_length(const struct rd_upstream_req *req)
{
    const char *m = req->method;
    if (req->body_len > 0 || strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0)
        return true;
    return req->body != NULL && strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0;
}

/* Request line, Host, the caller's fields, framing, blank line. */
static int build_head(struct rd_h1 *r, const struct rd_upstream_req *req, const char *target)
{
    struct rd_buf *b = &r->head;
    const struct rd_hdrs *h = req->headers;
    bool v6 = strchr(r->host, ':') != NULL;
    char num[64];
    int rc = 0;
    if (req->method == NULL || !is_token(req->method, strlen(req->method)))
        return RD_EINVAL;
    rd_buf_reset(b);
    rc |= rd_buf_appends(b, req->method);
    rc |= rd_buf_append(b, " ", 1);
    rc |= rd_buf_appends(b, target);
    rc |= rd_buf_appends(b, v6 ? " HTTP/1.1\r\nHost: [" : " HTTP/1.1\r\nHost: ");
    rc |= rd_buf_appends(b, r->host);
    rc |= rd_buf_appends(b, v6 ? "]" : "");
    if (r->port != 80) {
        snprintf(num, sizeof num, ":%d", r->port);
        rc |= rd_buf_appends(b, num);
    }
    rc |= rd_buf_append(b, "\r\n", 2);
    for (size_t i = 0; h != NULL && i < h->n; i++) {
        const struct rd_hdr *f = &h->v[i];
        if (!is_token(f->name, f->name_len) || !is_field_value(f->value, f->value_len))
            return RD_EINVAL;
        rc |= rd_buf_append(b, f->name, f->name_len);
        rc |= rd_buf_append(b, ": ", 2);
        rc |= rd_buf_append(b, f->value, f->value_len);
        rc |= rd_buf_append(b, "\r\n", 2);
    }
    if (wants_length(req)) {
        snprintf(num, sizeof num, "Content-Length: %zu\r\n", req->body_len);
        rc |= rd_buf_appends(b, num);
    }
    rc |= rd_buf_append(b, "\r\n", 2);
    return rc != 0 ? RD_ETOOBIG : 0;
}

/* ---- response parsing (llhttp callbacks never end the request: they
 * record why they stopped and feed() acts after llhttp_execute returns) ---- */

static struct conn *ll_conn(llhttp_t *ll)
{
    return ll->data;
}

static int stop(struct conn *c, int err, const char *msg)
{
    c->fail_err = err;
    c->fail_msg = msg;
    return HPE_USER;
}

static int count_head(struct conn *c, size_t n)
{
    if (n > MAX_RESP_HEAD - c->head_bytes)
        return stop(c, RD_EUPSTREAM, "response head from upstream too large");
    c->head_bytes += n;
    return 0;
}

static int on_status(llhttp_t *ll, const char *at, size_t n)
{
    (void)at;
    return count_head(ll_conn(ll), n);
}

static int on_header_field(llhttp_t *ll, const char *at, size_t n)
{
    struct conn *c = ll_conn(ll);
    if (count_head(c, n) != 0)
        return HPE_USER;
    /* Trailer fields (after the head was reported) are dropped. */
    if (!c->req->head_done && rd_buf_append(&c->field, at, n) < 0)
        return stop(c, RD_EUPSTREAM, "response head from upstream too large");
    return 0;
}

static int on_header_field_complete(llhttp_t *ll)
{
    struct conn *c = ll_conn(ll);
    c->name_len = c->field.len;
    return 0;
}

static int on_header_value(llhttp_t *ll, const char *at, size_t n)
{
    return on_header_field(ll, at, n);
}

static int on_header_value_complete(llhttp_t *ll)
{
    struct conn *c = ll_conn(ll);
    struct rd_h1 *r = c->req;
    if (!r->head_done && c->field.len > 0)
        rd_hdrs_add(&r->hdrs, c->field.data, c->name_len, c->field.data + c->name_len, c->field.len - c->name_len);
    rd_buf_reset(&c->field);
    c->name_len = 0;
    return 0;
}

static int on_headers_complete(llhttp_t *ll)
{
    struct conn *c = ll_conn(ll);
    struct rd_h1 *r = c->req;
    int status = ll->status_code;
    if (status == 101) {
        stop(c, RD_EUPSTREAM, "upstream switched protocols without being asked");
        return -1;
    }
    if (status < 200) {
        /* Interim response (100 Continue, 103 Early Hints): skipped, with
         * its fields; llhttp then parses the next response. */
        rd_hdrs_clear(&r->hdrs);
        return 1;
    }
    r->head_done = true;
    if (r->cbs->on_head(r->ud, status, &r->hdrs) < 0) {
        stop(c, RD_EABORTED, "response refused by the caller");
        return -1;
    }
    /* 1 tells llhttp that there is no body whatever the fields say. */
    return r->is_head || status == 204 || status == 304 ? 1 : 0;
}

static int on_body(llhttp_t *ll, const char *at, size_t n)
{
    struct conn *c = ll_conn(ll);
    struct rd_h1 *r = c->req;
    /* llhttp flushes an empty body span when run on no input mid-chunk
     * (rd_h1_resume with nothing saved after the refused bytes). */
    if (n == 0)
        return 0;
    if (r->cbs->on_data(r->ud, at, n) == RD_SOURCE_PAUSE) {
        c->hold_at = at;
        c->hold_len = n;
        return HPE_PAUSED;
    }
    return 0;
}

static int on_message_complete(llhttp_t *ll)
{
    struct conn *c = ll_conn(ll);
    if (ll->status_code < 200)
        return 0;
    c->msg_done = true;
    c->keep_alive = llhttp_should_keep_alive(ll) != 0;
    /* Stop here: whatever follows is not ours (feed() checks for it). */
    return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_status = on_status,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- receiving ---- */

/* The response is complete: c goes back to the pool if the server allows
 * it, the request is fully written and no stray bytes followed. */
static void conn_complete(struct conn *c, bool leftover)
{
    struct rd_h1 *r = c->req;
    c->req = NULL;
    r->conn = NULL;
    if (c->keep_alive && !leftover && !c->writing)
        pool_put(c);
    else
        conn_close(c);
    finish(r, 0, NULL);
}

/* on_data refused the chunk at c->hold_at: keep it and the unparsed rest of
 * the input (they are contiguous, ending at end) and stop reading. */
static void hold(struct conn *c, const char *end, bool from_saved)
{
    if (from_saved) {
        rd_buf_consume(&c->saved, (size_t)(c->hold_at - c->saved.data));
    } else {
        rd_buf_reset(&c->saved);
        /* saved has no cap below SIZE_MAX / 2 and gets at most one read. */
        (void)rd_buf_append(&c->saved, c->hold_at, (size_t)(end - c->hold_at));
    }
    c->held = c->hold_len;
    c->hold_at = NULL;
    c->paused = true;
    if (c->reading) {
        (void)uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

/* Parses n bytes of c's response. FEED_DONE means the request ended (c may
 * be pooled or closing, the request finished or deferred). */
static enum feed_result feed(struct conn *c, const char *p, size_t n, bool from_saved)
{
    struct rd_h1 *r = c->req;
    llhttp_errno_t e = llhttp_execute(&c->ll, p, n);
    if (e == HPE_OK)
        return FEED_MORE;
    if (e == HPE_PAUSED && c->msg_done) {
        conn_complete(c, llhttp_get_error_pos(&c->ll) != p + n);
        return FEED_DONE;
    }
    if (e == HPE_PAUSED && c->hold_at != NULL) {
        hold(c, p + n, from_saved);
        return FEED_PAUSED;
    }
    if (c->fail_err != 0) {
        conn_fail(c, c->fail_err, c->fail_msg);
        return FEED_DONE;
    }
    const char *why = llhttp_get_error_reason(&c->ll);
    snprintf(r->detail, sizeof r->detail, "invalid response from upstream: %s", why ? why : llhttp_errno_name(e));
    conn_fail(c, RD_EUPSTREAM, r->detail);
    return FEED_DONE;
}

static void on_eof(struct conn *c, int uverr)
{
    struct rd_h1 *r = c->req;
    if (may_retry(c, r)) {
        retry(c, r);
        return;
    }
    if (uverr == UV_EOF && r->got_bytes) {
        /* A close-delimited body ends here; llhttp_finish reports it
         * through on_message_complete. */
        (void)llhttp_finish(&c->ll);
        if (c->msg_done) {
            c->keep_alive = false;
            conn_complete(c, false);
            return;
        }
    }
    conn_fail(c, RD_EUPSTREAM,
              r->got_bytes ? "upstream closed the connection before the response ended"
                           : "upstream closed the connection before sending a response");
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct conn *c = s->data;
    if (nread == 0 || c->state == C_CLOSING)
        return;
    if (c->state != C_ACTIVE) {
        conn_close(c); /* idle: the server closed it or sent stray bytes */
        return;
    }
    if (nread < 0) {
        on_eof(c, (int)nread);
        return;
    }
    c->req->got_bytes = true;
    (void)feed(c, c->ctx->rbuf, (size_t)nread, false);
}

/* ---- public API ---- */

struct rd_h1_ctx *rd_h1_ctx_new(uv_loop_t *loop)
{
    struct rd_h1_ctx *ctx = rd_calloc(1, sizeof *ctx);
    ctx->loop = loop;
    (void)uv_idle_init(loop, &ctx->defer);
    ctx->defer.data = ctx;
    ctx->nopen = 1;
    return ctx;
}

static void on_defer_closed(uv_handle_t *h)
{
    ctx_unref(h->data);
}

void rd_h1_ctx_free(struct rd_h1_ctx *ctx)
{
    if (ctx == NULL)
        return;
    ctx->closing = true;
    while (ctx->dhead != NULL) {
        struct rd_h1 *r = ctx->dhead;
        defer_unlink(r);
        req_destroy(r);
    }
    /* conn_close unlinks nothing from ctx->conns (on_conn_closed does). */
    for (struct conn *c = ctx->conns; c != NULL; c = c->all_next) {
        if (c->req != NULL)
            req_destroy(c->req);
        conn_close(c);
    }
    uv_close((uv_handle_t *)&ctx->defer, on_defer_closed);
}

struct rd_h1 *rd_h1_start(struct rd_h1_ctx *ctx, const struct rd_upstream_req *req, const struct rd_source_cbs *cbs,
                          void *ud)
{
    char host[HOST_MAX];
    int port;
    const char *target;
    if (rd_h1_parse_url(req->url, host, sizeof host, &port, &target) < 0)
        return NULL;
    struct rd_h1 *r = req_new(ctx);
    r->cbs = cbs;
    r->ud = ud;
    r->body = req->body;
    r->body_len = req->body_len;
    r->is_head = req->method != NULL && strcmp(req->method, "HEAD") == 0;
    r->connect_timeout_ms = req->connect_timeout_ms;
    r->deadline = req->timeout_ms > 0 ? uv_now(ctx->loop) + req->timeout_ms : 0;
    r->port = port;
    memcpy(r->host, host, sizeof host);
    r->in_call = true;
    if (build_head(r, req, target) < 0) {
        finish(r, RD_EUPSTREAM, "request not sendable upstream (invalid or too large head)");
    } else {
        r->pool = pool_find(ctx, host, port);
        struct conn *c = r->pool != NULL ? r->pool->idle : NULL;
        if (c != NULL) {
            idle_unlink(c);
            conn_attach(c, r, C_ACTIVE);
            arm_deadline(c, r);
            send_request(c);
        } else {
            connect_new(r);
        }
    }
    r->in_call = false;
    return r;
}

void rd_h1_resume(struct rd_h1 *r)
{
    struct conn *c = r != NULL ? r->conn : NULL;
    if (c == NULL || c->state != C_ACTIVE || !c->paused)
        return;
    r->in_call = true;
    size_t off = 0;
    if (c->held > 0) {
        if (r->cbs->on_data(r->ud, c->saved.data, c->held) == RD_SOURCE_PAUSE)
            goto out;
        off = c->held;
        c->held = 0;
    }
    c->paused = false;
    llhttp_resume(&c->ll);
    /* With nothing left after the refused chunk this still runs llhttp once,
     * which completes a message whose last body bytes were that chunk. */
    if (feed(c, c->saved.data + off, c->saved.len - off, true) == FEED_MORE) {
        rd_buf_reset(&c->saved);
        int rc = start_reading(c);
        if (rc < 0) {
            snprintf(r->detail, sizeof r->detail, "reading from upstream failed: %s", uv_strerror(rc));
            conn_fail(c, RD_EUPSTREAM, r->detail);
        }
    }
out:
    r->in_call = false;
}

void rd_h1_abort(struct rd_h1 *r)
{
    if (r == NULL)
        return;
    if (r->deferred) {
        defer_unlink(r);
    } else if (r->conn != NULL) {
        conn_close(r->conn);
        r->conn = NULL;
    }
    req_release(r);
}
