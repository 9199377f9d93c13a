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
#include "upstream/h1_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <llhttp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "util/arena.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/log.h"
#include "util/mem.h"

#define MAX_REQ_HEAD (1024 * 1024)
#define IDLE_TIMEOUT_MS 60000
#define IDLE_PER_KEY 2048 /* idle connections kept per (host, port), for 60 s at most */
#define IDLE_TOTAL 4096  /* and per context (worker) */
#define MAX_POOL_KEYS 256
#define FREE_REQS_MAX 128

static void connect_new(struct rd_h1 *r);

static void set_state(struct conn *c, enum cstate s)
{
    static const char *const names[] = {"connecting", "active", "idle", "closing"};
    rd_trace("h1 conn %p: %s -> %s", (void *)c, names[c->state], names[s]);
    c->state = s;
}

/* ---- URL ---- */

/* An origin-form target: visible ASCII without '#'. */
static bool target_ok(const char *p)
{
    for (; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == '#')
            return false;
    return true;
}

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
        if (!target_ok(p))
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
    r->in_call = r->deferred = r->head_done = r->got_bytes = r->retried = r->is_head = r->idempotent = false;
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
void h1_finish(struct rd_h1 *r, int err, const char *detail)
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

/* True if the server closed idle c (or sent it something) since the loop
 * last read it: a FIN, a reset or stray bytes wait in the socket. The loop
 * reads idle connections and closes them on any of these, but not before
 * its next poll, and a request that reuses c in between would go out on a
 * dead connection and, if not idempotent, fail (h1_may_retry). A
 * non-blocking peek before reuse leaves only the race of a server that
 * closes just as the request travels. The peek costs a system call, a
 * quarter of the proxy's per-request total, so it is made only for a
 * connection idle for ctx->stale_check_ms (1 s): servers close idle
 * keep-alive connections after seconds (node 5 s, nginx 75 s), and one that
 * closes after a response says so in it (Connection: close, never pooled),
 * so a connection back in the pool for less than that has not been closed
 * by its server's idle timer. */
static bool conn_is_stale(struct conn *c)
{
    if (uv_now(c->ctx->loop) - c->idle_since < c->ctx->stale_check_ms)
        return false;
    uv_os_fd_t fd;
    char byte;
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0)
        return true;
    ssize_t n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* Unlinks and returns p's most recently used live connection, closing the
 * stale ones in front of it; NULL if none is left. */
static struct conn *pool_take(struct pool *p)
{
    struct conn *c;
    while ((c = p->idle) != NULL) {
        if (!conn_is_stale(c)) {
            idle_unlink(c);
            return c;
        }
        rd_trace("h1 conn %p: closed by the server while idle", (void *)c);
        h1_conn_close(c);
    }
    return NULL;
}

static void on_timer(uv_timer_t *t);

/* The connection's timer serves one purpose at a time (connect, the
 * request's deadline, the idle pool), lazily (util/deadline.h): a keep-alive
 * request costs no timer-heap work. */
static void conn_timer_at(struct conn *c, uint64_t at)
{
    rd_deadline_set_at(&c->deadline, &c->timer, on_timer, at);
}

/* Keeps c for the next request to its upstream. Idle connections keep
 * reading, so a close by the server (or stray bytes) closes them here. */
void h1_pool_put(struct conn *c)
{
    struct rd_h1_ctx *ctx = c->ctx;
    struct pool *p = c->pool;
    if (p == NULL || ctx->closing || p->nidle >= IDLE_PER_KEY || ctx->nidle >= IDLE_TOTAL || h1_start_reading(c) < 0) {
        h1_conn_close(c);
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
    c->idle_since = uv_now(ctx->loop);
    conn_timer_at(c, c->idle_since + IDLE_TIMEOUT_MS);
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
void h1_conn_close(struct conn *c)
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
void h1_conn_fail(struct conn *c, int err, const char *detail)
{
    struct rd_h1 *r = c->req;
    h1_conn_close(c);
    h1_finish(r, err, detail);
}

static void arm_deadline(struct conn *c, const struct rd_h1 *r)
{
    conn_timer_at(c, r->deadline);
}

/* Binds r to c and readies the parser for r's response. */
static void conn_attach(struct conn *c, struct rd_h1 *r, enum cstate state)
{
    c->req = r;
    r->conn = c;
    set_state(c, state);
    llhttp_init(&c->ll, HTTP_RESPONSE, &h1_settings);
    c->ll.data = c;
    rd_buf_reset(&c->field);
    rd_buf_reset(&c->saved);
    c->name_len = c->head_bytes = c->held = c->hold_len = 0;
    c->hold_at = NULL;
    c->fail_err = 0;
    c->fail_msg = NULL;
    c->paused = c->msg_done = c->keep_alive = false;
}

/* A reused connection that fails before any response byte was most likely
 * closed by the server while it sat in the pool, but it may as well have
 * been closed after the server read the request and acted on it: running a
 * completion twice would bill it twice. So the request goes once more, on a
 * new connection, only when that is harmless (RFC 9112 9.3.1):
 * - its method is idempotent (RFC 9110 9.2.2: GET, HEAD, OPTIONS, TRACE,
 *   PUT, DELETE; a repeated PUT or DELETE leaves the server as one would,
 *   though a replayed DELETE may answer 404 for a delete that succeeded);
 * - or part of it never reached the socket (the write failed, or the
 *   connection died with a write still queued), so the server never had the
 *   whole request.
 * Otherwise the caller gets RD_EUPSTREAM (a 502) and the client decides. */
bool h1_may_retry(const struct conn *c, const struct rd_h1 *r, bool written)
{
    return c->reused && !r->got_bytes && !r->retried && !c->ctx->closing && (r->idempotent || !written);
}

/* Closes c and starts r again on a new connection (h1_may_retry said so). */
void h1_retry(struct conn *c, struct rd_h1 *r)
{
    h1_conn_close(c);
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
        rc = h1_start_reading(c);
    }
    if (rc < 0) {
        format_connect_error(r, rc);
        h1_conn_fail(c, RD_EUPSTREAM, r->detail);
        return;
    }
    h1_send_request(c);
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
        h1_conn_fail(c, RD_EUPSTREAM, r->detail);
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
        conn_timer_at(c, now + ms);
    else
        c->deadline.at = 0;
}

static void on_timer(uv_timer_t *t)
{
    struct conn *c = t->data;
    if (!rd_deadline_expired(&c->deadline, &c->timer, on_timer))
        return; /* the purpose it was armed for is over, or not due yet */
    switch (c->state) {
    case C_IDLE:
        h1_conn_close(c);
        break;
    case C_CONNECTING:
        h1_conn_fail(c, RD_ETIMEDOUT, c->timer_is_deadline ? "upstream timed out" : "connect timed out");
        break;
    case C_ACTIVE:
        h1_conn_fail(c, RD_ETIMEDOUT, "upstream timed out");
        break;
    case C_CLOSING:
        break;
    }
}

/* ---- public API ---- */

/* RFC 9110 9.2.2; methods are case-sensitive. */
static bool is_idempotent(const char *method)
{
    static const char *const idempotent[] = {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"};
    for (size_t i = 0; method != NULL && i < sizeof idempotent / sizeof idempotent[0]; i++)
        if (strcmp(method, idempotent[i]) == 0)
            return true;
    return false;
}

struct rd_h1_ctx *rd_h1_ctx_new(uv_loop_t *loop)
{
    struct rd_h1_ctx *ctx = rd_calloc(1, sizeof *ctx);
    ctx->loop = loop;
    (void)uv_idle_init(loop, &ctx->defer);
    ctx->defer.data = ctx;
    ctx->nopen = 1;
    ctx->stale_check_ms = RD_H1_STALE_CHECK_MS;
    return ctx;
}

void rd_h1_ctx_set_stale_check_ms(struct rd_h1_ctx *ctx, uint64_t ms)
{
    ctx->stale_check_ms = ms;
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
    /* h1_conn_close unlinks nothing from ctx->conns (on_conn_closed does). */
    for (struct conn *c = ctx->conns; c != NULL; c = c->all_next) {
        if (c->req != NULL)
            req_destroy(c->req);
        h1_conn_close(c);
    }
    uv_close((uv_handle_t *)&ctx->defer, on_defer_closed);
}

struct rd_h1 *rd_h1_start(struct rd_h1_ctx *ctx, const struct rd_upstream_req *req, const struct rd_source_cbs *cbs,
                          void *ud)
{
    char host[HOST_MAX];
    int port;
    const char *target;
    /* A proxy sends every request to the same origin: the last one parsed is
     * kept, and a URL that starts with it only has its target checked. */
    size_t ol = ctx->last_origin_len;
    if (ol > 0 && req->url != NULL && strncmp(req->url, ctx->last_origin, ol) == 0 && req->url[ol] == '/' &&
        target_ok(req->url + ol)) {
        memcpy(host, ctx->last_host, sizeof host);
        port = ctx->last_port;
        target = req->url + ol;
    } else {
        if (rd_h1_parse_url(req->url, host, sizeof host, &port, &target) < 0)
            return NULL;
        /* Only a target inside the URL (not the static "/" of an empty path). */
        const char *slash = strchr(req->url + 7, '/');
        size_t n = slash == target ? (size_t)(target - req->url) : sizeof ctx->last_origin;
        if (n < sizeof ctx->last_origin) {
            memcpy(ctx->last_origin, req->url, n);
            ctx->last_origin[n] = '\0';
            ctx->last_origin_len = n;
            memcpy(ctx->last_host, host, sizeof host);
            ctx->last_port = port;
        }
    }
    struct rd_h1 *r = req_new(ctx);
    r->cbs = cbs;
    r->ud = ud;
    r->body = req->body;
    r->body_len = req->body_len;
    r->is_head = req->method != NULL && strcmp(req->method, "HEAD") == 0;
    r->idempotent = is_idempotent(req->method);
    r->connect_timeout_ms = req->connect_timeout_ms;
    r->deadline = req->timeout_ms > 0 ? uv_now(ctx->loop) + req->timeout_ms : 0;
    r->port = port;
    memcpy(r->host, host, sizeof host);
    r->in_call = true;
    if (h1_build_head(r, req, target) < 0) {
        h1_finish(r, RD_EUPSTREAM, "request not sendable upstream (invalid or too large head)");
    } else {
        r->pool = pool_find(ctx, host, port);
        struct conn *c = r->pool != NULL ? pool_take(r->pool) : NULL;
        if (c != NULL) {
            conn_attach(c, r, C_ACTIVE);
            arm_deadline(c, r);
            h1_send_request(c);
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
    if (h1_feed(c, c->saved.data + off, c->saved.len - off, true) == FEED_MORE) {
        rd_buf_reset(&c->saved);
        int rc = h1_start_reading(c);
        if (rc < 0) {
            snprintf(r->detail, sizeof r->detail, "reading from upstream failed: %s", uv_strerror(rc));
            h1_conn_fail(c, RD_EUPSTREAM, r->detail);
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
        h1_conn_close(r->conn);
        r->conn = NULL;
    }
    req_release(r);
}
