/* Tests for src/upstream/h1.c, the native HTTP/1.1 upstream client, against
 * a scripted libuv server on 127.0.0.1 running on the same loop. Each test
 * sets what the server does when a complete request arrives (srv.on_req) and
 * checks what the client reported through the source callbacks and what the
 * server received. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "upstream/h1.h"
#include "util/buf.h"
#include "util/err.h"

struct fx;

/* ---- scripted server ---- */

struct sconn {
    uv_tcp_t tcp;
    uv_shutdown_t shut;
    struct srv *srv;
    struct rd_buf in;
    bool closing;
    struct sconn *next;
};

struct srv {
    uv_tcp_t listen;
    int port;
    int accepts, nreqs, eofs;
    int drop_at;            /* request number read whole and never answered */
    int reset_at_head;      /* request number whose head makes the server reset */
    int resets;
    struct rd_buf last_req; /* bytes of the last complete request */
    void (*on_req)(struct fx *f, struct sconn *sc);
    struct sconn *conns;
    struct sconn *last;     /* connection of the last request */
    struct fx *fx;
};

struct cli {
    struct fx *fx;
    struct rd_h1 *h;
    int status, nhead, ndata, ndone, err;
    char detail[256];
    bool detail_null;
    struct rd_buf body;
    struct rd_arena arena;
    struct rd_hdrs hdrs;    /* copy of the reported head */
    unsigned pause_mask;    /* on_data call k returns PAUSE if bit k is set */
    bool paused;
    int head_ret;
    uint64_t started, ended;
};

struct fx {
    uv_loop_t loop;
    struct srv srv;
    struct rd_h1_ctx *ctx;
    struct cli cli[3];
    uv_timer_t watchdog, resume;
    struct cli *to_resume;
    bool expired;
    bool in_api; /* inside rd_h1_start/resume/abort */
    void (*on_data_hook)(struct fx *f, struct cli *c);
    int hook_step;
};

struct wreq {
    uv_write_t w;
    char data[];
};

static void on_swritten(uv_write_t *w, int status)
{
    (void)status;
    free(w);
}

static void sc_write(struct sconn *sc, const char *s, size_t n)
{
    if (sc->closing)
        return;
    struct wreq *w = malloc(sizeof *w + n);
    assert_non_null(w);
    memcpy(w->data, s, n);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)n);
    assert_int_equal(uv_write(&w->w, (uv_stream_t *)&sc->tcp, &b, 1, on_swritten), 0);
}

static void sc_writes(struct sconn *sc, const char *s)
{
    sc_write(sc, s, strlen(s));
}

static void on_sclosed(uv_handle_t *h)
{
    struct sconn *sc = h->data;
    struct sconn **pp = &sc->srv->conns;
    while (*pp != sc)
        pp = &(*pp)->next;
    *pp = sc->next;
    if (sc->srv->last == sc)
        sc->srv->last = NULL;
    rd_buf_free(&sc->in);
    free(sc);
}

/* Closes at once (the fd is closed inside uv_close). */
static void sc_close_now(struct sconn *sc)
{
    if (sc->closing)
        return;
    sc->closing = true;
    uv_close((uv_handle_t *)&sc->tcp, on_sclosed);
}

static void on_shut(uv_shutdown_t *s, int status)
{
    (void)s;
    (void)status;
}

/* Sends FIN after what was written; the client sees EOF after the bytes.
 * The connection is closed when the client's EOF arrives (on_sread), so
 * srv.eofs also tells that the client closed its end. */
static void sc_end(struct sconn *sc)
{
    if (sc->closing)
        return;
    assert_int_equal(uv_shutdown(&sc->shut, (uv_stream_t *)&sc->tcp, on_shut), 0);
    sc->closing = true;
}

static size_t head_content_length(const char *p, size_t hl)
{
    static const char name[] = "\r\ncontent-length:";
    size_t nl = sizeof name - 1;
    for (size_t i = 0; i + nl <= hl; i++)
        if (strncasecmp(p + i, name, nl) == 0)
            return (size_t)strtoul(p + i + nl, NULL, 10);
    return 0;
}

static void on_salloc(uv_handle_t *h, size_t n, uv_buf_t *b)
{
    (void)h;
    b->base = malloc(n);
    b->len = b->base ? n : 0;
}

static void on_sread(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct sconn *sc = s->data;
    struct srv *srv = sc->srv;
    if (n < 0) {
        free(buf->base);
        srv->eofs++;
        sc->closing = false; /* a pending shutdown is cancelled by the close */
        sc_close_now(sc);
        return;
    }
    assert_int_equal(rd_buf_append(&sc->in, buf->base, (size_t)n), 0);
    free(buf->base);
    while (sc->in.len > 0 && !sc->closing) {
        const char *e = memmem(sc->in.data, sc->in.len, "\r\n\r\n", 4);
        if (e == NULL)
            return;
        size_t hl = (size_t)(e + 4 - sc->in.data);
        size_t total = hl + head_content_length(sc->in.data, hl);
        if (sc->in.len < total && srv->reset_at_head == srv->nreqs + 1) {
            /* Closed with the rest of the request unread: the kernel
             * answers with a reset, and the request never arrived whole. */
            srv->reset_at_head = 0;
            srv->resets++;
            sc_close_now(sc);
            return;
        }
        if (sc->in.len < total)
            return;
        rd_buf_reset(&srv->last_req);
        assert_int_equal(rd_buf_append(&srv->last_req, sc->in.data, total), 0);
        rd_buf_consume(&sc->in, total);
        srv->nreqs++;
        srv->last = sc;
        if (srv->on_req)
            srv->on_req(srv->fx, sc);
    }
}

static void on_accept(uv_stream_t *l, int status)
{
    assert_int_equal(status, 0);
    struct srv *srv = l->data;
    struct sconn *sc = calloc(1, sizeof *sc);
    assert_non_null(sc);
    sc->srv = srv;
    rd_buf_init(&sc->in, 0);
    assert_int_equal(uv_tcp_init(l->loop, &sc->tcp), 0);
    sc->tcp.data = sc;
    assert_int_equal(uv_accept(l, (uv_stream_t *)&sc->tcp), 0);
    sc->next = srv->conns;
    srv->conns = sc;
    srv->accepts++;
    assert_int_equal(uv_read_start((uv_stream_t *)&sc->tcp, on_salloc, on_sread), 0);
}

static int bound_port(uv_tcp_t *t)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    assert_int_equal(uv_tcp_getsockname(t, (struct sockaddr *)&ss, &len), 0);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void srv_start(struct fx *f)
{
    struct srv *srv = &f->srv;
    struct sockaddr_in a;
    srv->fx = f;
    rd_buf_init(&srv->last_req, 0);
    assert_int_equal(uv_ip4_addr("127.0.0.1", 0, &a), 0);
    assert_int_equal(uv_tcp_init(&f->loop, &srv->listen), 0);
    srv->listen.data = srv;
    assert_int_equal(uv_tcp_bind(&srv->listen, (const struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&srv->listen, 128, on_accept), 0);
    srv->port = bound_port(&srv->listen);
}

/* ---- client side ---- */

static int cb_head(void *ud, int status, const struct rd_hdrs *h)
{
    struct cli *c = ud;
    assert_false(c->fx->in_api);
    assert_int_equal(c->ndata, 0);
    c->nhead++;
    c->status = status;
    for (size_t i = 0; i < h->n; i++)
        rd_hdrs_add(&c->hdrs, h->v[i].name, h->v[i].name_len, h->v[i].value, h->v[i].value_len);
    return c->head_ret;
}

static void on_resume_timer(uv_timer_t *t)
{
    struct fx *f = t->data;
    struct cli *c = f->to_resume;
    c->paused = false;
    f->in_api = true;
    rd_h1_resume(c->h);
    f->in_api = false;
}

static int cb_data(void *ud, const char *p, size_t n)
{
    struct cli *c = ud;
    struct fx *f = c->fx;
    assert_int_equal(c->nhead, 1);
    assert_false(c->paused); /* nothing may arrive while paused */
    assert_true(n > 0);
    unsigned k = (unsigned)c->ndata++;
    if (k < 32 && (c->pause_mask & (1u << k))) {
        c->paused = true;
        f->to_resume = c;
        uv_timer_start(&f->resume, on_resume_timer, 5, 0);
        return RD_SOURCE_PAUSE;
    }
    assert_int_equal(rd_buf_append(&c->body, p, n), 0);
    if (f->on_data_hook)
        f->on_data_hook(f, c);
    return 0;
}

static void cb_done(void *ud, int err, const char *detail)
{
    struct cli *c = ud;
    assert_false(c->fx->in_api); /* never from inside start/resume/abort */
    assert_false(c->paused);
    c->ndone++;
    c->err = err;
    c->detail_null = detail == NULL;
    snprintf(c->detail, sizeof c->detail, "%s", detail ? detail : "");
    c->ended = uv_now(&c->fx->loop);
    c->h = NULL;
}

static const struct rd_source_cbs cbs = {.on_head = cb_head, .on_data = cb_data, .on_done = cb_done};

static void cli_reset(struct fx *f, struct cli *c)
{
    rd_buf_free(&c->body);
    rd_hdrs_free(&c->hdrs);
    rd_arena_free(&c->arena);
    memset(c, 0, sizeof *c);
    c->fx = f;
    rd_buf_init(&c->body, 0);
    rd_arena_init(&c->arena);
    rd_hdrs_init(&c->hdrs, &c->arena);
}

struct reqspec {
    const char *method;
    const char *path; /* on the test server; default "/" */
    const char *url;  /* or a whole URL */
    const struct rd_hdrs *headers;
    const char *body;
    size_t body_len;
    uint64_t timeout_ms, connect_timeout_ms;
};

static void start(struct fx *f, struct cli *c, const struct reqspec *s)
{
    char url[256];
    if (s->url)
        snprintf(url, sizeof url, "%s", s->url);
    else
        snprintf(url, sizeof url, "http://127.0.0.1:%d%s", f->srv.port, s->path ? s->path : "/");
    struct rd_upstream_req req = {
        .method = s->method ? s->method : "GET",
        .url = url,
        .headers = s->headers,
        .body = s->body,
        .body_len = s->body_len,
        .connect_timeout_ms = s->connect_timeout_ms ? s->connect_timeout_ms : 1000,
        .timeout_ms = s->timeout_ms ? s->timeout_ms : 5000,
    };
    cli_reset(f, c);
    c->started = uv_now(&f->loop);
    f->in_api = true;
    c->h = rd_h1_start(f->ctx, &req, &cbs, c);
    f->in_api = false;
    assert_non_null(c->h);
}

static void on_watchdog(uv_timer_t *t)
{
    struct fx *f = t->data;
    f->expired = true;
}

#define RUN_UNTIL(f, cond)                                                                                            \
    do {                                                                                                              \
        (f)->expired = false;                                                                                         \
        uv_timer_start(&(f)->watchdog, on_watchdog, 5000, 0);                                                          \
        while (!(cond) && !(f)->expired)                                                                              \
            uv_run(&(f)->loop, UV_RUN_ONCE);                                                                          \
        uv_timer_stop(&(f)->watchdog);                                                                                \
        assert_false((f)->expired);                                                                                   \
    } while (0)

static void get_ok(struct fx *f, struct cli *c)
{
    struct reqspec s = {0};
    start(f, c, &s);
    RUN_UNTIL(f, c->ndone > 0);
    assert_int_equal(c->err, 0);
    assert_int_equal(c->status, 200);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &f->watchdog);
    uv_timer_init(&f->loop, &f->resume);
    f->watchdog.data = f->resume.data = f;
    srv_start(f);
    f->ctx = rd_h1_ctx_new(&f->loop);
    for (size_t i = 0; i < 3; i++)
        cli_reset(f, &f->cli[i]);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    rd_h1_ctx_free(f->ctx);
    for (struct sconn *sc = f->srv.conns; sc; sc = sc->next) {
        sc->closing = false;
        sc_close_now(sc);
    }
    uv_close((uv_handle_t *)&f->srv.listen, NULL);
    uv_close((uv_handle_t *)&f->watchdog, NULL);
    uv_close((uv_handle_t *)&f->resume, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    /* Every handle of the client was closed and released. */
    assert_int_equal(uv_loop_close(&f->loop), 0);
    for (size_t i = 0; i < 3; i++) {
        rd_buf_free(&f->cli[i].body);
        rd_hdrs_free(&f->cli[i].hdrs);
        rd_arena_free(&f->cli[i].arena);
    }
    rd_buf_free(&f->srv.last_req);
    free(f);
    return 0;
}

/* ---- responses ---- */

static void reply_hello(struct fx *f, struct sconn *sc)
{
    (void)f;
    sc_writes(sc, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Reply: yes\r\n\r\nhello");
}

static void test_simple_200(void **state)
{
    struct fx *f = *state;
    struct cli *c = &f->cli[0];
    f->srv.on_req = reply_hello;
    get_ok(f, c);
    assert_int_equal(c->nhead, 1);
    assert_int_equal(c->ndone, 1);
    assert_true(c->detail_null);
    assert_string_equal(c->body.data, "hello");
    /* all fields as received, framing included: the caller filters */
    assert_int_equal(c->hdrs.n, 2);
    assert_string_equal(rd_hdrs_get(&c->hdrs, "content-length"), "5");
    assert_string_equal(rd_hdrs_get(&c->hdrs, "X-Reply"), "yes");
}

static void test_request_bytes(void **state)
{
    struct fx *f = *state;
    struct cli *c = &f->cli[0];
    struct rd_arena a;
    struct rd_hdrs h;
    rd_arena_init(&a);
    rd_hdrs_init(&h, &a);
    rd_hdrs_add_ref(&h, "Content-Type", "application/json");
    rd_hdrs_add_ref(&h, "X-Test", "a b");
    f->srv.on_req = reply_hello;
    const char *body = "{\"a\":1}";
    struct reqspec s = {.method = "POST", .path = "/v1/chat?x=1", .headers = &h,
                        .body = body, .body_len = strlen(body)};
    start(f, c, &s);
    RUN_UNTIL(f, c->ndone > 0);
    assert_int_equal(c->err, 0);
    char want[512];
    snprintf(want, sizeof want,
             "POST /v1/chat?x=1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
             "X-Test: a b\r\nContent-Length: 7\r\n\r\n{\"a\":1}",
             f->srv.port);
    assert_string_equal(f->srv.last_req.data, want);
    /* GET without a body: no Content-Length; localhost keeps its name */
    char url[64];
    snprintf(url, sizeof url, "http://localhost:%d/models", f->srv.port);
    struct reqspec g = {.url = url};
    start(f, c, &g);
    RUN_UNTIL(f, c->ndone > 0);
    snprintf(want, sizeof want, "GET /models HTTP/1.1\r\nHost: localhost:%d\r\n\r\n", f->srv.port);
    assert_string_equal(f->srv.last_req.data, want);
    /* POST without a body says so */
    struct reqspec p = {.method = "POST"};
    start(f, c, &p);
    RUN_UNTIL(f, c->ndone > 0);
    snprintf(want, sizeof want, "POST / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: 0\r\n\r\n", f->srv.port);
    assert_string_equal(f->srv.last_req.data, want);
    assert_int_equal(f->srv.nreqs, 3);
    rd_hdrs_free(&h);
    rd_arena_free(&a);
}

static void test_invalid_request_fails_later(void **state)
{
    struct fx *f = *state;
    struct cli *c = &f->cli[0];
    struct rd_arena a;
    struct rd_hdrs h;
    rd_arena_init(&a);
    rd_hdrs_init(&h, &a);
    rd_hdrs_add_ref(&h, "X-Evil", "a\r\nX-Injected: 1");
    struct reqspec s = {.headers = &h};
    start(f, c, &s); /* on_done is deferred out of start (checked in cb_done) */
    assert_int_equal(c->ndone, 0);
    RUN_UNTIL(f, c->ndone > 0);
    assert_int_equal(c->err, RD_EUPSTREAM);
    assert_int_equal(f->srv.accepts, 0);
    /* aborting a request whose failure is queued: no callback at all */
    struct reqspec bad = {.method = "GE T"};
    start(f, c, &bad);
    f->in_api = true;
    rd_h1_abort(c->h);
    f->in_api = false;
    for (int i = 0; i < 3; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(c->ndone, 0);
    rd_hdrs_free(&h);
    rd_arena_free(&a);
}

static void chunk_step(struct fx *f, struct cli *c)
{
    (void)c;
    /* the second piece is sent only once the first reached on_data */
    if (f->hook_step++ == 0)
        sc_writes(f->srv.last, "6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n");
}

static void reply_chunked_first(struct fx *f, struct sconn *sc)
{
    (void)f;
    sc_writes(sc, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
}

static void test_chunked_in_pieces(void **state)
{
    struct fx *f = *state;
    struct cli *c = &f->cli[0];
    f->srv.on_req = reply_chunked_first;
    f->on_data_hook = chunk_step;
    get_ok(f, c);
    assert_string_equal(c->body.data, "hello world");
    assert_int_equal(c->ndata, 2);
    assert_null(rd_hdrs_get(&c->hdrs, "X-Trailer"));
    /* the chunked response ended cleanly, so the connection is reused */
    f->on_data_hook = NULL;
    f->srv.on_req = reply_hello;
    get_ok(f, &f->cli[1]);
    assert_int_equal(f->srv.accepts, 1);
}

static void test_keepalive_reuse(void **state)
{
    struct fx *f = *state;
    f->srv.on_req = reply_hello;
    get_ok(f, &f->cli[0]);
    get_ok(f, &f->cli[1]);
    assert_string_equal(f->cli[1].body.data, "hello");
    assert_int_equal(f->srv.accepts, 1);
    assert_int_equal(f->srv.nreqs, 2);
    /* two at once need two connections; both are pooled afterwards */
    struct reqspec s = {0};
    start(f, &f->cli[0], &s);
    start(f, &f->cli[1], &s);
    RUN_UNTIL(f, f->cli[0].ndone > 0 && f->cli[1].ndone > 0);
    assert_int_equal(f->srv.accepts, 2);
    get_ok(f, &f->cli[2]);
    get_ok(f, &f->cli[2]);
    assert_int_equal(f->srv.accepts, 2);
    assert_int_equal(f->srv.nreqs, 6);
}

static void test_idle_connection_closed_by_server(void **state)
{
    struct fx *f = *state;
    f->srv.on_req = reply_hello;
    get_ok(f, &f->cli[0]);
    /* the pooled connection keeps reading, so it sees the FIN and closes */
    sc_end(f->srv.conns);
    RUN_UNTIL(f, f->srv.eofs == 1);
    get_ok(f, &f->cli[1]);
    assert_int_equal(f->srv.accepts, 2);
}

static void reply_extra_bytes(struct fx *f, struct sconn *sc)
{
    (void)f;
    sc_writes(sc, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokSTRAY");
}

static void test_stray_bytes_not_pooled(void **state)
{
    struct fx *f = *state;
    f->srv.on_req = reply_extra_bytes;
    get_ok(f, &f->cli[0]);
    assert_string_equal(f->cli[0].body.data, "ok");
    RUN_UNTIL(f, f->srv.eofs == 1); /* the client closed that connection */
    get_ok(f, &f->cli[1]);
    assert_int_equal(f->srv.accepts, 2);
}

static void reply_head(struct fx *f, struct sconn *sc)
{
    (void)f;
    if (strncmp(f->srv.last_req.data, "HEAD ", 5) == 0)
        sc_writes(sc, "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n");
    else
        reply_hello(f, sc);
}

static void test_head_has_no_body(void **state)
{
    struct fx *f = *state;
    struct cli *c = &f->cli[0];
    f->srv.on_req = reply_head;
    struct reqspec s = {.method = "HEAD"};
    start(f, c, &s);
    RUN_UNTIL(f, c->ndone > 0);
    assert_int_equal(c->err, 0);
    assert_int_equal(c->status, 200);
    assert_int_equal(c->ndata, 0);
    assert_string_equal(rd_hdrs_get(&c->hdrs, "Content-Length"), "1234");
    /* nothing was waited for or swallowed: the connection serves a GET */
    get_ok(f, &f->cli[1]);
    assert_string_equal(f->cli[1].body.data, "hello");
    assert_int_equal(f->srv.accepts, 1);
}

static void reply_204(struct fx *f, struct sconn *sc)
{
    (void)f;
    sc_writes(sc, "HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n");
}

static void test_204(void **state)
{
    struct fx *f = *state;
    f->srv.on_req = reply_204;
    struct cli *c = &f->cli[0];
    struct reqspec s = {.method = "DELETE"};
    start(f, c, &s);
    RUN_UNTIL(f, c->ndone > 0);
    assert_int_equal(c->err, 0);
    assert_int_equal(c->status, 204);
    assert_int_equal(c->ndata, 0);
    start(f, c, &s);
    RUN_UNTIL(f, c->ndone > 0);
    assert_int_equal(c->status, 204);
    assert_int_equal(f->srv.accepts, 1);
}

static void reply_continue(struct fx *f, struct sconn *sc)
{
    (void)f;
    sc_writes(sc, "HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\n"
                  "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                  "HTTP/1.1 201 Created\r\nContent-Length: 2\r\nX-Final: 1\r\n\r\nok");
}

static void test_interim_responses_skipped(void **state)
{
    struct fx *f = *state;
    struct cli *c = &f->cli[0];
    f->srv.on_req = reply_continue;
    struct reqspec s = {.method = "POST", .body = "x", .body_len = 1};
    start(f, c, &s);
    RUN_UNTIL(f, c->ndone > 0);
    assert_int_equal(c->err, 0);
    assert_int_equal(c->nhead, 1);
    assert_int_equal(c->status, 201);
    assert_string_equal(c->body.data, "ok");
    assert_null(rd_hdrs_get(&c->hdrs, "X-Interim"));
    assert_null(rd_hdrs_get(&c->hdrs, "Link"));
    assert_string_equal(rd_hdrs_get(&c->hdrs, "X-Final"), "1");
}

static void close_delimited_step(struct fx *f, struct cli *c)
{
    (void)c;
    if (f->hook_step++ == 0) {
        sc_writes(f->srv.last, "world");
        sc_end(f->srv.last);
    }
}

static void reply_close_delimited(struct fx *f, struct sconn *sc)
{
    (void)f;
    sc_writes(sc, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello ");
}

static void test_close_delimited_body(void **state)
{
    struct fx *f = *state;
    f->srv.on_req = reply_close_delimited;
    f->on_data_hook = close_delimited_step;
    get_ok(f, &f->cli[0]);
    assert_string_equal(f->cli[0].body.data, "hello world");
    f->on_data_hook = NULL;
    f->srv.on_req = reply_hello;
    get_ok(f, &f->cli[1]);
    assert_int_equal(f->srv.accepts, 2);
}

static void reply_garbage(struct fx *f, struct sconn *sc)
{
    (void)f;
    sc_writes(sc, "HTTP/1.1 banana\r\n\r\n");
}

static void test_garbage_is_upstream_error(void **state)
{
    struct fx *f = *state;
    struct cli *c = &f->cli[0];
    f->srv.on_req = reply_garbage;
    struct reqspec s = {0};
    start(f, c, &s);
    RUN_UNTIL(f, c->ndone > 0);
    assert_int_equal(c->err, RD_EUPSTREAM);
    assert_int_equal(c->nhead, 0);
    assert_true(strncmp(c->detail, "invalid response from upstream: ", 32) == 0);
    assert_true(strlen(c->detail) > 32);
    RUN_UNTIL(f, f->srv.eofs == 1); /* and the connection is closed */
}

static void reply_short_body(struct fx *f, struct sconn *sc)
{
    (void)f;
    sc_writes(sc, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345");
    sc_end(sc);
}

static void test_eof_mid_body(void **state)
{
    struct fx *f = *state;
    struct cli *c = &f->cli[0];
    f->srv.on_req = reply_short_body;
    struct reqspec s = {0};
    start(f, c, &s);
    RUN_UNTIL(f, c->ndone > 0);
    assert_int_equal(c->nhead, 1);
    assert_string_equal(c->body.data, "12345");
    assert_int_equal(c->err, RD_EUPSTREAM);
    assert_string_equal(c->detail, "upstream closed the connection before the response ended");
}

static void reply_nothing_close(struct fx *f, struct sconn *sc)
{
    (void)f;
    sc_end(sc);
}

static void test_eof_before_response(void **state)
{
    struct fx *f = *state;
    struct cli *c = &f->cli[0];
    f->srv.on_req = reply_nothing_close;
    struct reqspec s = {0};
    start(f, c, &s);
    RUN_UNTIL(f, c->ndone > 0);
    assert_int_equal(c->err, RD_EUPSTREAM);
    assert_int_equal(c->nhead, 0);
    assert_string_equal(c->detail, "upstream closed the connection before sending a response");
    assert_int_equal(f->srv.accepts, 1); /* a new connection is not retried */
}

static void test_connection_refused(void **state)
{
    struct fx *f = *state;
    struct cli *c = &f->cli[0];
    /* a port that was just free: bind, read it, close */
    uv_tcp_t t;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_init(&f->loop, &t);
    assert_int_equal(uv_tcp_bind(&t, (const struct sockaddr *)&a, 0), 0);
    int port = bound_port(&t);
    uv_close((uv_handle_t *)&t, NULL);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/x", port);
    struct reqspec s = {.url = url};
    start(f, c, &s);
    RUN_UNTIL(f, c->ndone > 0);
    assert_int_equal(c->err, RD_EUPSTREAM);
    char want[128];
    snprintf(want, sizeof want, "connect to 127.0.0.1:%d failed: connection refused", port);
    assert_string_equal(c->detail, want);
}

static void test_total_timeout(void **state)
{
    struct fx *f = *state;
    struct cli *c = &f->cli[0];
    f->srv.on_req = NULL; /* accepts, reads, never answers */
    struct reqspec s = {.timeout_ms = 150};
    start(f, c, &s);
    RUN_UNTIL(f, c->ndone > 0);
    assert_int_equal(c->err, RD_ETIMEDOUT);
    assert_string_equal(c->detail, "upstream timed out");
    assert_true(c->ended - c->started >= 150);
    assert_true(c->ended - c->started < 2000);
    RUN_UNTIL(f, f->srv.eofs == 1); /* the connection was closed */
}

static void test_connect_timeout(void **state)
{
    struct fx *f = *state;
    struct cli *c = &f->cli[0];
    /* A listener with a full accept queue: Linux drops further SYNs, so the
     * client's connect hangs without an answer. */
    int l = socket(AF_INET, SOCK_STREAM, 0), filler = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(l >= 0 && filler >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(l, 0), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&a, &len), 0);
    assert_int_equal(connect(filler, (struct sockaddr *)&a, sizeof a), 0);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", ntohs(a.sin_port));
    struct reqspec s = {.url = url, .connect_timeout_ms = 100};
    start(f, c, &s);
    RUN_UNTIL(f, c->ndone > 0);
    assert_int_equal(c->err, RD_ETIMEDOUT);
    assert_string_equal(c->detail, "connect timed out");
    assert_true(c->ended - c->started >= 100);
    assert_int_equal(close(filler), 0);
    assert_int_equal(close(l), 0);
}

static void reply_chunks_one_write(struct fx *f, struct sconn *sc)
{
    (void)f;
    sc_writes(sc, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "4\r\naaaa\r\n4\r\nbbbb\r\n4\r\ncccc\r\n4\r\ndddd\r\n0\r\n\r\n");
}

static void test_pause_resume(void **state)
{
    struct fx *f = *state;
    struct cli *c = &f->cli[0];
    f->srv.on_req = reply_chunks_one_write;
    struct reqspec s = {0};
    start(f, c, &s);
    /* refuse the first offer, and its re-offer inside rd_h1_resume, then a
     * later chunk parsed from the saved bytes */
    c->pause_mask = 1u << 0 | 1u << 1 | 1u << 4;
    RUN_UNTIL(f, c->ndone > 0);
    assert_int_equal(c->err, 0);
    assert_string_equal(c->body.data, "aaaabbbbccccdddd");
    assert_int_equal(c->ndata, 7); /* 4 chunks + 3 refusals */
    /* completed from the saved bytes inside resume; the connection was
     * still returned to the pool and reads again */
    f->srv.on_req = reply_hello;
    get_ok(f, &f->cli[1]);
    assert_int_equal(f->srv.accepts, 1);
}

static void test_pause_on_last_bytes(void **state)
{
    struct fx *f = *state;
    struct cli *c = &f->cli[0];
    f->srv.on_req = reply_hello;
    struct reqspec s = {0};
    start(f, c, &s);
    c->pause_mask = 1u;
    RUN_UNTIL(f, c->ndone > 0);
    assert_int_equal(c->err, 0);
    assert_string_equal(c->body.data, "hello");
    assert_int_equal(c->ndata, 2);
    get_ok(f, &f->cli[1]);
    assert_int_equal(f->srv.accepts, 1);
}

static void partial_chunk_step(struct fx *f, struct cli *c)
{
    if (strcmp(c->body.data, "abcd") == 0)
        sc_writes(f->srv.last, "efgh\r\n0\r\n\r\n");
}

static void reply_partial_chunk(struct fx *f, struct sconn *sc)
{
    (void)f;
    sc_writes(sc, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8\r\nabcd");
}

static void test_pause_inside_partial_chunk(void **state)
{
    struct fx *f = *state;
    struct cli *c = &f->cli[0];
    f->srv.on_req = reply_partial_chunk;
    f->on_data_hook = partial_chunk_step;
    struct reqspec s = {0};
    start(f, c, &s);
    /* refused at the end of a read, in the middle of a chunk: resuming has
     * no saved bytes to parse and must wait for the rest of the chunk */
    c->pause_mask = 1u;
    RUN_UNTIL(f, c->ndone > 0);
    assert_int_equal(c->err, 0);
    assert_string_equal(c->body.data, "abcdefgh");
    assert_int_equal(c->ndata, 3);
}

static void reply_partial_body(struct fx *f, struct sconn *sc)
{
    (void)f;
    sc_writes(sc, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
}

static void test_abort_mid_body(void **state)
{
    struct fx *f = *state;
    struct cli *c = &f->cli[0];
    f->srv.on_req = reply_partial_body;
    struct reqspec s = {0};
    start(f, c, &s);
    RUN_UNTIL(f, c->ndata > 0);
    f->in_api = true;
    rd_h1_abort(c->h);
    f->in_api = false;
    /* the rest arrives at a connection that is gone; no callback fires */
    sc_writes(f->srv.last, "more bytes that nobody reads");
    RUN_UNTIL(f, f->srv.eofs == 1);
    assert_int_equal(c->ndata, 1);
    assert_int_equal(c->ndone, 0);
    assert_string_equal(c->body.data, "0123456789");
    /* a new request does not get the aborted connection */
    f->srv.on_req = reply_hello;
    get_ok(f, &f->cli[1]);
    assert_int_equal(f->srv.accepts, 2);
}

static void abort_in_callback(struct fx *f, struct cli *c)
{
    (void)f;
    rd_h1_abort(c->h); /* what the proxy does when the client is gone mid-write */
    c->h = NULL;
}

static void reply_chunked_whole(struct fx *f, struct sconn *sc)
{
    (void)f;
    sc_writes(sc, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
}

/* The caller aborts the request from inside on_data while the rest of the
 * response (more chunks and its end) sits in the same read: parsing stops
 * there; nothing touches the released request or pools the connection. */
static void test_abort_inside_on_data(void **state)
{
    struct fx *f = *state;
    void (*replies[])(struct fx *, struct sconn *) = {reply_hello, reply_chunked_whole};
    for (size_t i = 0; i < 2; i++) {
        struct cli *c = &f->cli[i];
        f->srv.on_req = replies[i];
        f->on_data_hook = abort_in_callback;
        struct reqspec s = {0};
        start(f, c, &s);
        RUN_UNTIL(f, f->srv.eofs == (int)i + 1);
        assert_int_equal(c->ndata, 1);
        assert_int_equal(c->ndone, 0);
    }
    f->on_data_hook = NULL;
    /* the aborted connections were closed, not pooled */
    f->srv.on_req = reply_hello;
    get_ok(f, &f->cli[2]);
    assert_int_equal(f->srv.accepts, 3);
}

static void test_abort_while_paused_and_connecting(void **state)
{
    struct fx *f = *state;
    struct cli *c = &f->cli[0];
    f->srv.on_req = reply_chunks_one_write;
    struct reqspec s = {0};
    start(f, c, &s);
    c->pause_mask = 1u;
    RUN_UNTIL(f, c->paused);
    uv_timer_stop(&f->resume);
    c->paused = false;
    rd_h1_abort(c->h);
    RUN_UNTIL(f, f->srv.eofs == 1);
    assert_int_equal(c->ndone, 0);
    /* abort before the connection is even established */
    start(f, &f->cli[1], &s);
    rd_h1_abort(f->cli[1].h);
    RUN_UNTIL(f, f->srv.eofs == 2);
    assert_int_equal(f->cli[1].ndone, 0);
}

static void test_on_head_refusal(void **state)
{
    struct fx *f = *state;
    struct cli *c = &f->cli[0];
    f->srv.on_req = reply_hello;
    struct reqspec s = {0};
    start(f, c, &s);
    c->head_ret = RD_EABORTED;
    RUN_UNTIL(f, c->ndone > 0);
    assert_int_equal(c->err, RD_EABORTED);
    assert_int_equal(c->ndata, 0);
    RUN_UNTIL(f, f->srv.eofs == 1); /* closed, not pooled */
}

static void reply_body_size(struct fx *f, struct sconn *sc)
{
    const char *e = strstr(f->srv.last_req.data, "\r\n\r\n");
    char resp[128];
    size_t n = f->srv.last_req.len - (size_t)(e + 4 - f->srv.last_req.data);
    char num[32];
    int nl = snprintf(num, sizeof num, "%zu", n);
    snprintf(resp, sizeof resp, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", nl, num);
    sc_writes(sc, resp);
}

static void test_large_body_queued_write(void **state)
{
    struct fx *f = *state;
    struct cli *c = &f->cli[0];
    size_t n = 8u << 20; /* more than the socket buffers take at once */
    char *body = malloc(n);
    assert_non_null(body);
    for (size_t i = 0; i < n; i++)
        body[i] = (char)('a' + i % 26);
    f->srv.on_req = reply_body_size;
    struct reqspec s = {.method = "PUT", .body = body, .body_len = n};
    start(f, c, &s);
    RUN_UNTIL(f, c->ndone > 0);
    assert_int_equal(c->err, 0);
    assert_string_equal(c->body.data, "8388608");
    const char *e = strstr(f->srv.last_req.data, "\r\n\r\n");
    assert_non_null(strstr(f->srv.last_req.data, "Content-Length: 8388608\r\n"));
    assert_memory_equal(e + 4, body, n);
    free(body);
}

/* ---- replaying a request after a reused connection failed ---- */

/* Answers every request except number srv.drop_at, which it reads whole and
 * then closes the connection on without a byte of response: from the
 * client's side the server may have acted on it. */
static void reply_or_drop(struct fx *f, struct sconn *sc)
{
    if (f->srv.nreqs == f->srv.drop_at)
        sc_end(sc);
    else
        reply_head(f, sc);
}

/* Sends a request with method on the connection a GET just left in the
 * pool, and the server drops it after reading it. */
static void drop_on_reused(struct fx *f, struct cli *c, const char *method)
{
    f->srv.on_req = reply_or_drop;
    get_ok(f, &f->cli[2]);
    f->srv.drop_at = f->srv.nreqs + 1;
    bool body = strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0;
    struct reqspec s = {.method = method, .body = body ? "{\"model\":\"m\"}" : NULL, .body_len = body ? 13 : 0};
    start(f, c, &s);
    RUN_UNTIL(f, c->ndone > 0);
}

static void test_post_read_then_dropped_not_replayed(void **state)
{
    struct fx *f = *state;
    static const char *const methods[] = {"POST", "PATCH", "REPORT"};
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        struct cli *c = &f->cli[0];
        int before = f->srv.nreqs, accepts = f->srv.accepts;
        drop_on_reused(f, c, methods[i]);
        /* The server read the whole request (a completion it may run and
         * bill): sending it again could do that twice, so the call fails. */
        assert_int_equal(c->err, RD_EUPSTREAM);
        assert_string_equal(c->detail, "upstream closed the connection before sending a response");
        RUN_UNTIL(f, f->srv.conns == NULL); /* the client closed its end too */
        assert_int_equal(f->srv.nreqs - before, 2); /* the GET and one copy of the request */
        assert_int_equal(f->srv.accepts - accepts, 1); /* no second connection */
        assert_true(strncmp(f->srv.last_req.data, methods[i], strlen(methods[i])) == 0);
    }
}

static void test_idempotent_read_then_dropped_replayed_once(void **state)
{
    struct fx *f = *state;
    /* RFC 9110 9.2.2: the safe methods, PUT and DELETE */
    static const char *const methods[] = {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"};
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        struct cli *c = &f->cli[0];
        int before = f->srv.nreqs, accepts = f->srv.accepts;
        drop_on_reused(f, c, methods[i]);
        assert_int_equal(c->err, 0);
        assert_int_equal(c->status, 200);
        /* the GET, the dropped request and its one replay, on a new connection */
        assert_int_equal(f->srv.nreqs - before, 3);
        assert_int_equal(f->srv.accepts - accepts, i == 0 ? 2 : 1);
        assert_true(strncmp(f->srv.last_req.data, methods[i], strlen(methods[i])) == 0);
    }
}

/* The client's end of sc: the socket of this process whose local address is
 * sc's peer. Lets a test wait for bytes or a FIN to reach the client without
 * running the loop (which would let the client see them first). */
static int client_fd_of(struct sconn *sc)
{
    struct sockaddr_in peer, a;
    int len = sizeof peer;
    assert_int_equal(uv_tcp_getpeername(&sc->tcp, (struct sockaddr *)&peer, &len), 0);
    for (int fd = 0; fd < 4096; fd++) {
        socklen_t al = sizeof a;
        if (getsockname(fd, (struct sockaddr *)&a, &al) == 0 && al == sizeof a && a.sin_family == AF_INET &&
            a.sin_port == peer.sin_port && a.sin_addr.s_addr == peer.sin_addr.s_addr)
            return fd;
    }
    fail_msg("no socket of this process is the client end of the connection");
    return -1;
}

static void wait_for_fin(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    assert_int_equal(poll(&p, 1, 5000), 1);
    assert_true(p.revents & (POLLRDHUP | POLLHUP));
}

/* The origin of the last URL is kept so the next request to it is not
 * parsed again: its target is still checked, a longer port is not taken for
 * the cached one, and another origin is parsed as usual. */
static void test_origin_cache(void **state)
{
    struct fx *f = *state;
    f->srv.on_req = reply_hello;
    get_ok(f, &f->cli[0]);
    char url[128];
    struct rd_upstream_req req = {.method = "GET", .url = url, .connect_timeout_ms = 1000, .timeout_ms = 1000};
    snprintf(url, sizeof url, "http://127.0.0.1:%d/a#b", f->srv.port);
    assert_null(rd_h1_start(f->ctx, &req, &cbs, &f->cli[1])); /* '#' in the target, cached origin or not */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/a b", f->srv.port);
    assert_null(rd_h1_start(f->ctx, &req, &cbs, &f->cli[1]));
    snprintf(url, sizeof url, "http://127.0.0.1:%d0/x", f->srv.port); /* same prefix, another port */
    char host[64];
    int port = 0;
    const char *target;
    int rc = rd_h1_parse_url(url, host, sizeof host, &port, &target);
    if (rc == 0) {
        struct cli *c = &f->cli[1];
        cli_reset(f, c);
        c->h = rd_h1_start(f->ctx, &req, &cbs, c);
        assert_non_null(c->h);
        RUN_UNTIL(f, c->ndone > 0);
        assert_int_not_equal(c->err, 0); /* nothing listens there: not the cached server */
    } else {
        assert_null(rd_h1_start(f->ctx, &req, &cbs, &f->cli[1])); /* port over 65535 */
    }
    struct reqspec s = {.path = "/again?q=1"};
    start(f, &f->cli[2], &s);
    RUN_UNTIL(f, f->cli[2].ndone > 0);
    assert_int_equal(f->cli[2].status, 200);
    assert_non_null(strstr(f->srv.last_req.data, "GET /again?q=1 HTTP/1.1"));
}

static void test_stale_pooled_connection_not_used(void **state)
{
    struct fx *f = *state;
    rd_h1_ctx_set_stale_check_ms(f->ctx, 0); /* the pool time below is far under the 1 s default */
    f->srv.on_req = reply_hello;
    static const char *const methods[] = {"GET", "POST"};
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        int before = f->srv.nreqs, accepts = f->srv.accepts;
        get_ok(f, &f->cli[0]);
        /* The server drops the idle connection and the client starts before
         * its loop can read the FIN. The request must still succeed, a POST
         * included, and reach the server once. */
        int fd = client_fd_of(f->srv.last);
        sc_close_now(f->srv.last);
        wait_for_fin(fd);
        struct cli *c = &f->cli[1];
        struct reqspec s = {.method = methods[i], .body = i == 1 ? "{}" : NULL, .body_len = i == 1 ? 2 : 0};
        start(f, c, &s);
        RUN_UNTIL(f, c->ndone > 0);
        assert_int_equal(c->err, 0);
        assert_string_equal(c->body.data, "hello");
        assert_int_equal(f->srv.nreqs - before, 2);
        assert_int_equal(f->srv.accepts - accepts, accepts == 0 ? 2 : 1);
    }
}

static void test_post_reset_before_sent_replayed(void **state)
{
    struct fx *f = *state;
    struct cli *c = &f->cli[0];
    size_t n = 32u << 20; /* more than the socket buffers hold: the write is still queued */
    char *body = malloc(n);
    assert_non_null(body);
    memset(body, 'x', n);
    f->srv.on_req = reply_body_size;
    get_ok(f, &f->cli[1]);
    /* The server resets the reused connection after the head of the POST,
     * with most of the body unsent: it cannot have acted on the request,
     * so it goes once more on a new connection. */
    f->srv.reset_at_head = 2;
    struct reqspec s = {.method = "POST", .body = body, .body_len = n};
    start(f, c, &s);
    RUN_UNTIL(f, c->ndone > 0);
    assert_int_equal(c->err, 0);
    assert_string_equal(c->body.data, "33554432");
    assert_int_equal(f->srv.resets, 1);
    assert_int_equal(f->srv.nreqs, 2);
    assert_int_equal(f->srv.accepts, 2);
    free(body);
}

static void test_parse_url(void **state)
{
    (void)state;
    char host[64];
    int port = 0;
    const char *t = NULL;
    const char *u = "http://127.0.0.1:8080/x?y";
    assert_int_equal(rd_h1_parse_url(u, host, sizeof host, &port, &t), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 8080);
    assert_ptr_equal(t, u + 21);
    assert_int_equal(rd_h1_parse_url("http://[::1]:80/", host, sizeof host, &port, &t), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 80);
    assert_string_equal(t, "/");
    assert_int_equal(rd_h1_parse_url("HTTP://localhost/", host, sizeof host, &port, &t), 0);
    assert_string_equal(host, "localhost");
    assert_int_equal(port, 80);
    assert_int_equal(rd_h1_parse_url("http://10.0.0.2:65535", host, sizeof host, &port, &t), 0);
    assert_int_equal(port, 65535);
    assert_string_equal(t, "/");
    static const char *bad[] = {
        "https://127.0.0.1/",       "http://example.com/",     "http://127.0.0.1:0/",
        "http://127.0.0.1:65536/",  "http://127.0.0.1:/",      "http://127.1/",
        "http://user@127.0.0.1/",   "http://[::1/",            "http://[fe80::1%25eth0]/",
        "http://127.0.0.1?x",       "http://127.0.0.1/a b",    "http://127.0.0.1/a#frag",
        "http://localhost.:80/",    "http://127.0.0.1:8080x/", "http:///",
        "ftp://127.0.0.1/",         "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(rd_h1_parse_url(bad[i], host, sizeof host, &port, &t), RD_EINVAL);
    assert_int_equal(rd_h1_parse_url(NULL, host, sizeof host, &port, &t), RD_EINVAL);
    /* host buffer too small */
    assert_int_equal(rd_h1_parse_url("http://127.0.0.1/", host, 9, &port, &t), RD_EINVAL);
}

static void test_start_rejects_other_urls(void **state)
{
    struct fx *f = *state;
    struct rd_upstream_req req = {.method = "GET", .url = "https://127.0.0.1/"};
    assert_null(rd_h1_start(f->ctx, &req, &cbs, &f->cli[0]));
    req.url = "http://api.example.com/v1";
    assert_null(rd_h1_start(f->ctx, &req, &cbs, &f->cli[0]));
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_url),
        T(test_start_rejects_other_urls),
        T(test_simple_200),
        T(test_request_bytes),
        T(test_invalid_request_fails_later),
        T(test_chunked_in_pieces),
        T(test_keepalive_reuse),
        T(test_post_read_then_dropped_not_replayed),
        T(test_idempotent_read_then_dropped_replayed_once),
        T(test_stale_pooled_connection_not_used),
        T(test_origin_cache),
        T(test_post_reset_before_sent_replayed),
        T(test_idle_connection_closed_by_server),
        T(test_stray_bytes_not_pooled),
        T(test_head_has_no_body),
        T(test_204),
        T(test_interim_responses_skipped),
        T(test_close_delimited_body),
        T(test_garbage_is_upstream_error),
        T(test_eof_mid_body),
        T(test_eof_before_response),
        T(test_connection_refused),
        T(test_total_timeout),
        T(test_connect_timeout),
        T(test_pause_resume),
        T(test_pause_on_last_bytes),
        T(test_pause_inside_partial_chunk),
        T(test_abort_mid_body),
        T(test_abort_inside_on_data),
        T(test_abort_while_paused_and_connecting),
        T(test_on_head_refusal),
        T(test_large_body_queued_write),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
