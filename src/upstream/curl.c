/* The libcurl backend of the upstream client: HTTPS (TLS, HTTP/2 by ALPN),
 * hostnames, and anything the native client (h1.c) does not take.
 *
 * libcurl multi on libuv. The glue follows curl's multi-uv example: curl
 * tells us which sockets to watch (socket callback → uv_poll) and when to
 * wake it (timer callback → uv_timer); we call curl_multi_socket_action on
 * events and then collect finished transfers with curl_multi_info_read. */
#include "upstream/curl.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "util/arena.h"
#include "util/err.h"
#include "util/log.h"
#include "util/mem.h"

#define EASY_POOL_MAX 256

struct rd_curl_ctx {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    bool closing;
    /* Finished easy handles, reset and kept for the next request: creating
     * one costs several allocations (its buffers and state) per request. */
    CURL *pool[EASY_POOL_MAX];
    int npool;
};

struct sock {
    uv_poll_t poll;
    curl_socket_t fd;
    struct rd_curl_ctx *ctx;
};

struct rd_curl {
    struct rd_curl_ctx *ctx;
    CURL *easy;
    struct curl_slist *slist;
    const struct rd_source_cbs *cbs;
    void *ud;
    struct rd_arena arena;
    struct rd_hdrs hdrs;
    int status;
    bool head_done;
    bool in_status_line;
    bool aborted_by_head;
    char errbuf[CURL_ERROR_SIZE];
};

static void finish(struct rd_curl *u, CURLcode code);

static void check_done(struct rd_curl_ctx *ctx)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(ctx->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct rd_curl *u = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&u);
        finish(u, msg->data.result);
    }
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    struct sock *s = p->data;
    struct rd_curl_ctx *ctx = s->ctx;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    int running;
    curl_multi_socket_action(ctx->multi, s->fd, flags, &running);
    check_done(ctx);
}

static void on_timeout(uv_timer_t *t)
{
    struct rd_curl_ctx *ctx = t->data;
    int running;
    curl_multi_socket_action(ctx->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(ctx);
}

static int timer_cb(CURLM *multi, long ms, void *userp)
{
    (void)multi;
    struct rd_curl_ctx *ctx = userp;
    if (ms < 0)
        uv_timer_stop(&ctx->timer);
    else
        uv_timer_start(&ctx->timer, on_timeout, (uint64_t)ms, 0);
    return 0;
}

static void on_sock_closed(uv_handle_t *h)
{
    free(h->data);
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    struct rd_curl_ctx *ctx = userp;
    struct sock *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            uv_poll_stop(&s->poll);
            uv_close((uv_handle_t *)&s->poll, on_sock_closed);
            curl_multi_assign(ctx->multi, fd, NULL);
        }
        return 0;
    }
    if (s == NULL) {
        s = rd_calloc(1, sizeof *s);
        s->fd = fd;
        s->ctx = ctx;
        if (uv_poll_init_socket(ctx->loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        s->poll.data = s;
        curl_multi_assign(ctx->multi, fd, s);
    }
    int events = 0;
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    uv_poll_start(&s->poll, events, on_poll);
    return 0;
}

struct rd_curl_ctx *rd_curl_ctx_new(uv_loop_t *loop)
{
    struct rd_curl_ctx *ctx = rd_calloc(1, sizeof *ctx);
    ctx->loop = loop;
    ctx->multi = curl_multi_init();
    if (ctx->multi == NULL)
        abort();
    uv_timer_init(loop, &ctx->timer);
    ctx->timer.data = ctx;
    curl_multi_setopt(ctx->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(ctx->multi, CURLMOPT_SOCKETDATA, ctx);
    curl_multi_setopt(ctx->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(ctx->multi, CURLMOPT_TIMERDATA, ctx);
    /* Pool: keep plenty of idle connections per worker for keep-alive reuse. */
    curl_multi_setopt(ctx->multi, CURLMOPT_MAXCONNECTS, 1024L);
    curl_multi_setopt(ctx->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
    return ctx;
}

static void on_ctx_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

void rd_curl_ctx_free(struct rd_curl_ctx *ctx)
{
    if (ctx == NULL)
        return;
    ctx->closing = true;
    while (ctx->npool > 0)
        curl_easy_cleanup(ctx->pool[--ctx->npool]);
    /* Removing idle pooled connections makes curl call socket_cb REMOVE for
     * each, which closes their poll handles. */
    curl_multi_cleanup(ctx->multi);
    uv_timer_stop(&ctx->timer);
    uv_close((uv_handle_t *)&ctx->timer, on_ctx_timer_closed);
}

/* ---- one request ---- */

/* The status code of a status line ("HTTP/1.1 200 OK", "HTTP/2 200"): exactly
 * three digits after the first space, else 0. Parsed by hand rather than with
 * strtol because curl's header line is not NUL-terminated and a longer number
 * must not be narrowed to int, where it could wrap into a plausible code. */
static int status_code(const char *p, size_t len)
{
    const char *sp = memchr(p, ' ', len);
    if (sp == NULL || (size_t)(sp - p) + 4 > len)
        return 0;
    int code = 0;
    for (size_t i = 1; i <= 3; i++) {
        if (sp[i] < '0' || sp[i] > '9')
            return 0;
        code = code * 10 + (sp[i] - '0');
    }
    if ((size_t)(sp - p) + 4 < len && sp[4] >= '0' && sp[4] <= '9')
        return 0;
    return code;
}

static size_t on_header(char *p, size_t size, size_t n, void *userp)
{
    struct rd_curl *u = userp;
    size_t len = size * n;
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        /* A status line starts a (new) response: 1xx ones are skipped. */
        rd_hdrs_clear(&u->hdrs);
        u->status = status_code(p, len);
        return len;
    }
    if (len <= 2 && (p[0] == '\r' || p[0] == '\n')) {
        if (u->status >= 100 && u->status < 200)
            return len; /* interim response, wait for the final one */
        if (u->head_done)
            return len; /* trailers end */
        u->head_done = true;
        if (u->cbs->on_head(u->ud, u->status, &u->hdrs) < 0) {
            u->aborted_by_head = true;
            return 0; /* curl fails the transfer with CURLE_WRITE_ERROR */
        }
        return len;
    }
    if (u->head_done)
        return len; /* trailer fields are dropped */
    const char *colon = memchr(p, ':', len);
    if (colon == NULL)
        return len;
    size_t vlen = len - (size_t)(colon + 1 - p);
    const char *v = colon + 1;
    while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n'))
        vlen--;
    rd_hdrs_add(&u->hdrs, p, (size_t)(colon - p), v, vlen);
    return len;
}

static size_t on_body(char *p, size_t size, size_t n, void *userp)
{
    struct rd_curl *u = userp;
    size_t len = size * n;
    if (!u->head_done) {
        /* HTTP/0.9 or a server that skipped the blank line: treat as garbage. */
        return 0;
    }
    if (u->cbs->on_data(u->ud, p, len) == RD_SOURCE_PAUSE)
        return CURL_WRITEFUNC_PAUSE;
    return len;
}

static void add_header(struct rd_curl *u, const char *name, size_t nlen, const char *value, size_t vlen)
{
    /* curl syntax: "Name: value", or "Name;" to send an empty value. */
    size_t len = nlen + vlen + 3;
    char *line = rd_arena_alloc(&u->arena, len + 1);
    memcpy(line, name, nlen);
    if (vlen == 0) {
        line[nlen] = ';';
        line[nlen + 1] = '\0';
    } else {
        memcpy(line + nlen, ": ", 2);
        memcpy(line + nlen + 2, value, vlen);
        line[nlen + 2 + vlen] = '\0';
    }
    struct curl_slist *next = curl_slist_append(u->slist, line);
    if (next == NULL)
        abort();
    u->slist = next;
}

static void build_headers(struct rd_curl *u, const struct rd_hdrs *h)
{
    bool has_accept = false, has_ctype = false;
    for (size_t i = 0; h && i < h->n; i++) {
        const struct rd_hdr *f = &h->v[i];
        if (rd_hdr_name_eq(f->name, f->name_len, "accept"))
            has_accept = true;
        if (rd_hdr_name_eq(f->name, f->name_len, "content-type"))
            has_ctype = true;
        add_header(u, f->name, f->name_len, f->value, f->value_len);
    }
    /* Stop curl from adding headers the client did not send. */
    if (!has_accept)
        u->slist = curl_slist_append(u->slist, "Accept:");
    if (!has_ctype)
        u->slist = curl_slist_append(u->slist, "Content-Type:");
    u->slist = curl_slist_append(u->slist, "Expect:");
}

struct rd_curl *rd_curl_start(struct rd_curl_ctx *ctx, const struct rd_upstream_req *req,
                                      const struct rd_source_cbs *cbs, void *ud)
{
    struct rd_curl *u = rd_calloc(1, sizeof *u);
    u->ctx = ctx;
    u->cbs = cbs;
    u->ud = ud;
    rd_arena_init(&u->arena);
    rd_hdrs_init(&u->hdrs, &u->arena);
    u->easy = ctx->npool > 0 ? ctx->pool[--ctx->npool] : curl_easy_init();
    if (u->easy == NULL)
        abort();
    CURL *e = u->easy;
    build_headers(u, req->headers);
    curl_easy_setopt(e, CURLOPT_URL, req->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, u);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, u->slist);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, u);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, u);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, u->errbuf);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)req->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)req->timeout_ms);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, NULL); /* bodies pass through untouched */
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    if (req->ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, req->ca_file);
    bool is_head = strcmp(req->method, "HEAD") == 0;
    if (is_head) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (req->body != NULL && (req->body_len > 0 || strcmp(req->method, "GET") != 0)) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        if (strcmp(req->method, "POST") != 0)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
    } else if (strcmp(req->method, "GET") != 0) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
    }
    curl_multi_add_handle(ctx->multi, e);
    return u;
}

static void release(struct rd_curl *u)
{
    struct rd_curl_ctx *ctx = u->ctx;
    curl_multi_remove_handle(ctx->multi, u->easy);
    if (ctx->npool < EASY_POOL_MAX && !ctx->closing) {
        curl_easy_reset(u->easy);
        ctx->pool[ctx->npool++] = u->easy;
    } else {
        curl_easy_cleanup(u->easy);
    }
    curl_slist_free_all(u->slist);
    rd_hdrs_free(&u->hdrs);
    rd_arena_free(&u->arena);
    free(u);
}

static void finish(struct rd_curl *u, CURLcode code)
{
    const struct rd_source_cbs *cbs = u->cbs;
    void *ud = u->ud;
    int err = 0;
    char detail[CURL_ERROR_SIZE + 64];
    detail[0] = '\0';
    if (u->aborted_by_head) {
        err = RD_EABORTED;
    } else if (code == CURLE_OPERATION_TIMEDOUT) {
        err = RD_ETIMEDOUT;
    } else if (code != CURLE_OK) {
        err = RD_EUPSTREAM;
    } else if (!u->head_done) {
        err = RD_EUPSTREAM; /* e.g. a HEAD request answered without headers */
    }
    if (err != 0)
        snprintf(detail, sizeof detail, "%s%s%s", curl_easy_strerror(code), u->errbuf[0] ? ": " : "", u->errbuf);
    release(u);
    cbs->on_done(ud, err, detail);
}

void rd_curl_resume(struct rd_curl *u)
{
    curl_easy_pause(u->easy, CURLPAUSE_CONT);
}

void rd_curl_abort(struct rd_curl *u)
{
    if (u == NULL)
        return;
    release(u);
}
