/* Tests for src/http/server.c and listener.c, the HTTP/1.1 server: the
 * connection state machine and its deadlines, output accounting and drain,
 * graceful stop with responses still draining, and errors the server
 * answers itself. The server runs on a libuv loop in the test's thread; a
 * blocking client runs in a second thread (with a small receive buffer where
 * a slow reader is needed) and asks the loop for actions through an async
 * handle. Every wait is bounded: a watchdog force-stops the listener. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "http/server.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/mem.h"

#define CHUNK (64u * 1024u)
#define WATCHDOG_MS 20000u

struct fx;
typedef void (*client_fn)(struct fx *f);

struct fx {
    uv_loop_t loop;
    struct rd_http_listener *l;
    int port;
    uv_async_t wake;
    uv_timer_t watchdog, poll;
    pthread_t thread;
    client_fn client;
    struct rd_http_limits limits;
    const char *error_ctype; /* content type the error callback reports */
    int sndbuf;              /* > 0: SO_SNDBUF of the listening socket (inherited by
                              * connections), so that output queues in the server
                              * instead of in an autotuned kernel buffer */
    atomic_int want_stop;    /* 1: graceful stop requested by the client */
    atomic_int client_done;
    atomic_int stopped;      /* the listener's done callback fired */
    atomic_int nconns;       /* open connections, published by the poll timer */
    atomic_int exchanges_gone; /* on_gone callbacks seen */
    int stop_deadline_ms;
    bool stop_sent, expired;
    char failed[256]; /* first failed check of the client thread */
};

/* cmocka's asserts must run on the test's thread: the client records its
 * first failure and returns; run() asserts on it after the join. */
#define CHECK(c)                                                                                                   \
    do {                                                                                                           \
        if (!(c)) {                                                                                                \
            snprintf(f->failed, sizeof f->failed, "line %d: %s", __LINE__, #c);                                   \
            return;                                                                                                \
        }                                                                                                          \
    } while (0)
#define CHECK_EQ(a, b) CHECK((long long)(a) == (long long)(b))

/* ---- handler: /big streams n bytes with backpressure, /blob answers n bytes at once ---- */

struct writer {
    struct rd_http_exch *x;
    struct fx *f;
    size_t left;
    size_t tail; /* the last bytes go in one write, whatever is queued (as a
                  * source that delivers a large last chunk) */
    char *chunk;
};

static void writer_pump(struct writer *w);

static void writer_free(struct writer *w)
{
    free(w->chunk);
    free(w);
}

static void on_drain(void *ud)
{
    writer_pump(ud);
}

static void on_gone(void *ud)
{
    struct writer *w = ud;
    atomic_fetch_add(&w->f->exchanges_gone, 1);
    rd_http_abort(w->x);
    writer_free(w);
}

/* Writes while the client keeps up, like the proxy's relay: above the high
 * mark it waits for the drain callback. */
static void writer_pump(struct writer *w)
{
    while (w->left > 0) {
        if (w->left == w->tail) {
            char *t = rd_malloc(w->tail);
            memset(t, 't', w->tail);
            int rc = rd_http_write(w->x, t, w->tail);
            free(t);
            if (rc < 0)
                return;
            w->left = 0;
            break;
        }
        if (rd_http_pending(w->x) > RD_HTTP_OUT_HIGH)
            return;
        size_t n = w->left - w->tail < CHUNK ? w->left - w->tail : CHUNK;
        if (rd_http_write(w->x, w->chunk, n) < 0)
            return; /* gone: on_gone follows */
        w->left -= n;
    }
    rd_http_finish(w->x);
    writer_free(w);
}

static size_t query_n(const struct rd_http_request *req)
{
    const char *q = strstr(req->query, "n=");
    return q ? (size_t)strtoull(q + 2, NULL, 10) : 0;
}

static void handler(struct rd_http_exch *x, void *ud)
{
    struct fx *f = ud;
    const struct rd_http_request *req = x->req;
    if (strcmp(req->path, "/big") == 0) {
        struct writer *w = rd_calloc(1, sizeof *w);
        w->x = x;
        w->f = f;
        w->left = query_n(req);
        const char *t = strstr(req->query, "tail=");
        w->tail = t ? (size_t)strtoull(t + 5, NULL, 10) : 0;
        if (w->tail > w->left)
            w->tail = w->left;
        w->chunk = rd_malloc(CHUNK);
        memset(w->chunk, 'b', CHUNK);
        rd_http_set_callbacks(x, on_drain, on_gone, w);
        if (rd_http_begin(x, 200, NULL, (int64_t)w->left) < 0) {
            rd_http_abort(x);
            writer_free(w);
            return;
        }
        writer_pump(w);
    } else if (strcmp(req->path, "/blob") == 0) {
        size_t n = query_n(req);
        char *body = rd_malloc(n + 1);
        memset(body, 'x', n);
        rd_http_respond(x, 200, NULL, body, n);
        free(body);
    } else {
        rd_http_respond(x, 200, NULL, "ok", 2);
    }
}

static void limits_cb(void *ud, struct rd_http_limits *out)
{
    struct fx *f = ud;
    *out = f->limits;
}

static void error_cb(void *ud, const struct rd_http_error *e, struct rd_hdrs *hdrs, struct rd_buf *body,
                     const char **ctype)
{
    struct fx *f = ud;
    (void)hdrs;
    (void)rd_buf_printf(body, "{\"status\":%d}", e->status);
    *ctype = f->error_ctype ? f->error_ctype : "application/json";
}

/* ---- loop side ---- */

static void on_stopped(void *ud)
{
    struct fx *f = ud;
    atomic_store(&f->stopped, 1);
}

static void maybe_finish(struct fx *f)
{
    if (atomic_load(&f->stopped)) {
        /* The listener is released after its done callback. */
        atomic_store(&f->nconns, 0);
        if (atomic_load(&f->client_done) && !uv_is_closing((uv_handle_t *)&f->wake)) {
            uv_close((uv_handle_t *)&f->wake, NULL);
            uv_close((uv_handle_t *)&f->poll, NULL);
            uv_close((uv_handle_t *)&f->watchdog, NULL);
        }
        return;
    }
    atomic_store(&f->nconns, (int)rd_http_listener_connections(f->l));
    if (atomic_load(&f->want_stop) && !f->stop_sent) {
        f->stop_sent = true;
        rd_http_listener_stop(f->l, RD_HTTP_STOP_GRACEFUL, (uint64_t)f->stop_deadline_ms, on_stopped, f);
    }
    if (atomic_load(&f->client_done)) {
        if (!f->stop_sent) {
            f->stop_sent = true;
            rd_http_listener_stop(f->l, RD_HTTP_STOP_FORCE, 0, on_stopped, f);
        } else {
            rd_http_listener_stop(f->l, RD_HTTP_STOP_FORCE, 0, on_stopped, f); /* escalates */
        }
        uv_close((uv_handle_t *)&f->wake, NULL);
        uv_close((uv_handle_t *)&f->poll, NULL);
        uv_close((uv_handle_t *)&f->watchdog, NULL);
    }
}

static void on_wake(uv_async_t *a)
{
    maybe_finish(a->data);
}

static void on_poll(uv_timer_t *t)
{
    maybe_finish(t->data);
}

static void on_watchdog(uv_timer_t *t)
{
    struct fx *f = t->data;
    f->expired = true;
    if (!atomic_load(&f->stopped))
        rd_http_listener_stop(f->l, RD_HTTP_STOP_FORCE, 0, on_stopped, f);
}

static void *client_main(void *arg)
{
    struct fx *f = arg;
    f->client(f);
    atomic_store(&f->client_done, 1);
    uv_async_send(&f->wake);
    return NULL;
}

static void run(struct fx *f, client_fn client)
{
    uv_loop_init(&f->loop);
    int fd = rd_http_bind("127.0.0.1", 0, false, 128);
    assert_true(fd >= 0);
    if (f->sndbuf > 0)
        assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &f->sndbuf, sizeof f->sndbuf), 0);
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    f->port = ntohs(sa.sin_port);
    struct rd_http_listener_cfg cfg = {.handler = handler, .limits = limits_cb, .error = error_cb, .ud = f};
    assert_int_equal(rd_http_listener_start(&f->loop, fd, &cfg, &f->l), 0);
    uv_async_init(&f->loop, &f->wake, on_wake);
    f->wake.data = f;
    uv_timer_init(&f->loop, &f->poll);
    f->poll.data = f;
    uv_timer_start(&f->poll, on_poll, 10, 10);
    uv_timer_init(&f->loop, &f->watchdog);
    f->watchdog.data = f;
    uv_timer_start(&f->watchdog, on_watchdog, WATCHDOG_MS, 0);
    f->client = client;
    assert_int_equal(pthread_create(&f->thread, NULL, client_main, f), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    pthread_join(f->thread, NULL);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    if (f->failed[0])
        fail_msg("client: %s", f->failed);
    assert_false(f->expired);
}

/* ---- client side (blocking, in its own thread) ---- */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* rcvbuf > 0 makes a slow reader: the kernel holds little for it. */
static int cli_connect(struct fx *f, int rcvbuf)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0)
        return -1;
    if (rcvbuf > 0 && setsockopt(s, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) != 0) {
        close(s);
        return -1;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(s, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(s);
        return -1;
    }
    return s;
}

static void cli_send(int s, const char *p)
{
    size_t n = strlen(p);
    while (n > 0) {
        ssize_t w = send(s, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

/* Reads up to max bytes within timeout_ms. Returns bytes read, 0 on EOF, -1
 * on timeout or error. */
static ssize_t cli_read(int s, char *buf, size_t max, int timeout_ms)
{
    struct pollfd pfd = {.fd = s, .events = POLLIN};
    if (poll(&pfd, 1, timeout_ms) <= 0)
        return -1;
    ssize_t n = recv(s, buf, max, 0);
    return n < 0 ? -1 : n;
}

struct resp {
    int status;
    long long content_length;
    char ctype[1024];
    size_t body_len;
    bool complete; /* the whole announced body arrived */
};

/* Reads one response with a Content-Length body from s; `in` keeps bytes
 * of a following pipelined response. pace_bytes/pace_ms make a slow reader
 * (0: read as fast as possible). */
static void read_response(int s, struct rd_buf *in, struct resp *r, size_t pace_bytes, unsigned pace_ms,
                          int timeout_ms)
{
    memset(r, 0, sizeof *r);
    r->content_length = -1;
    char buf[64 * 1024];
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    char *end = NULL;
    while ((end = in->data ? strstr(in->data, "\r\n\r\n") : NULL) == NULL) {
        ssize_t n = cli_read(s, buf, sizeof buf, (int)(deadline - now_ms()));
        if (n <= 0)
            return;
        (void)rd_buf_append(in, buf, (size_t)n);
    }
    size_t head_len = (size_t)(end - in->data) + 4;
    sscanf(in->data, "HTTP/1.1 %d", &r->status);
    const char *cl = strcasestr(in->data, "\r\ncontent-length:");
    if (cl && cl < end)
        r->content_length = strtoll(cl + 17, NULL, 10);
    const char *ct = strcasestr(in->data, "\r\ncontent-type: ");
    if (ct && ct < end) {
        const char *e = strstr(ct + 2, "\r\n");
        size_t n = (size_t)(e - (ct + 16));
        if (n >= sizeof r->ctype)
            n = sizeof r->ctype - 1;
        memcpy(r->ctype, ct + 16, n);
        r->ctype[n] = '\0';
    }
    rd_buf_consume(in, head_len);
    size_t want = r->content_length < 0 ? 0 : (size_t)r->content_length;
    size_t take = in->len < want ? in->len : want;
    r->body_len = take;
    rd_buf_consume(in, take);
    while (r->body_len < want && now_ms() < deadline) {
        size_t max = pace_bytes ? pace_bytes : sizeof buf;
        if (max > want - r->body_len)
            max = want - r->body_len;
        ssize_t n = cli_read(s, buf, max, (int)(deadline - now_ms()));
        if (n <= 0)
            break;
        r->body_len += (size_t)n;
        if (pace_ms)
            sleep_ms(pace_ms);
    }
    r->complete = r->body_len == want;
}

static void default_limits(struct fx *f)
{
    f->limits.max_head = 64 * 1024;
    f->limits.max_body = 1024 * 1024;
    f->limits.header_timeout_ms = 5000;
    f->limits.idle_timeout_ms = 5000;
    f->stop_deadline_ms = 10000;
}

/* What a test changes from the defaults: SO_SNDBUF, idle and header
 * timeouts, the error callback's content type (0 / NULL: default). */
struct opts {
    int sndbuf;
    uint64_t idle_ms, header_ms;
    const char *error_ctype;
};

static void run_with(client_fn client, struct opts o)
{
    struct fx f;
    memset(&f, 0, sizeof f);
    default_limits(&f);
    f.sndbuf = o.sndbuf;
    if (o.idle_ms)
        f.limits.idle_timeout_ms = o.idle_ms;
    if (o.header_ms)
        f.limits.header_timeout_ms = o.header_ms;
    f.error_ctype = o.error_ctype;
    run(&f, client);
}

/* ---- tests ---- */

/* A request pipelined after a 4 MB response (whose last write left more
 * than the high mark queued while the client was not reading) must get its
 * answer:
 * the drain that resumes its writer is derived from the queued bytes. */
static void client_pipelined(struct fx *f)
{
    int s = cli_connect(f, 0);
    CHECK(s >= 0);
    cli_send(s, "GET /big?n=4000000&tail=600000 HTTP/1.1\r\nHost: t\r\n\r\nGET /big?n=300000 HTTP/1.1\r\nHost: t\r\n\r\n");
    sleep_ms(300); /* let output pile up */
    struct rd_buf in;
    rd_buf_init(&in, 0);
    struct resp r1, r2;
    read_response(s, &in, &r1, 0, 0, 10000);
    read_response(s, &in, &r2, 0, 0, 5000);
    rd_buf_free(&in);
    close(s);
    CHECK_EQ(r1.status, 200);
    CHECK(r1.complete);
    CHECK_EQ(r2.status, 200);
    CHECK(r2.complete);
}

static void test_pipelined_after_large_response(void **state)
{
    (void)state;
    run_with(client_pipelined, (struct opts){.sndbuf = 16384});
}

/* A graceful stop must let a response that is complete on the server side
 * but still queued for a slow reader drain completely. */
static void client_stop_while_draining(struct fx *f)
{
    int s = cli_connect(f, 8192);
    CHECK(s >= 0);
    cli_send(s, "GET /blob?n=3000000 HTTP/1.1\r\nHost: t\r\n\r\n");
    sleep_ms(200); /* the response is complete and queued */
    atomic_store(&f->want_stop, 1);
    uv_async_send(&f->wake);
    sleep_ms(200);
    CHECK_EQ(atomic_load(&f->stopped), 0); /* still draining */
    struct rd_buf in;
    rd_buf_init(&in, 0);
    struct resp r;
    read_response(s, &in, &r, 0, 0, 10000);
    rd_buf_free(&in);
    CHECK_EQ(r.status, 200);
    CHECK(r.complete);
    /* Drained: the connection closes and the stop completes. */
    char b[16];
    CHECK_EQ(cli_read(s, b, sizeof b, 5000), 0);
    close(s);
    uint64_t until = now_ms() + 5000;
    while (!atomic_load(&f->stopped) && now_ms() < until)
        sleep_ms(10);
    CHECK_EQ(atomic_load(&f->stopped), 1);
}

static void test_graceful_stop_drains_complete_response(void **state)
{
    (void)state;
    run_with(client_stop_while_draining, (struct opts){.sndbuf = 16384});
}

/* The send timeout is progress-based: a client that reads steadily, but
 * slower than one write takes, is never cut, however long the write. */
static void client_steady_slow_reader(struct fx *f)
{
    int s = cli_connect(f, 8192);
    CHECK(s >= 0);
    cli_send(s, "GET /blob?n=700000 HTTP/1.1\r\nHost: t\r\n\r\n");
    struct rd_buf in;
    rd_buf_init(&in, 0);
    struct resp r;
    /* ~8 KiB every 15 ms: the 700 kB write takes well over the 300 ms timeout. */
    read_response(s, &in, &r, 8192, 15, 15000);
    rd_buf_free(&in);
    close(s);
    CHECK_EQ(r.status, 200);
    CHECK(r.complete);
}

static void test_send_timeout_counts_progress(void **state)
{
    (void)state;
    run_with(client_steady_slow_reader, (struct opts){.sndbuf = 16384, .idle_ms = 300});
}

/* Same for a response streamed by a writer that waits for drain. */
static void client_steady_slow_stream(struct fx *f)
{
    int s = cli_connect(f, 8192);
    CHECK(s >= 0);
    cli_send(s, "GET /big?n=1500000 HTTP/1.1\r\nHost: t\r\n\r\n");
    struct rd_buf in;
    rd_buf_init(&in, 0);
    struct resp r;
    read_response(s, &in, &r, 16384, 10, 15000);
    rd_buf_free(&in);
    close(s);
    CHECK(r.complete);
    CHECK_EQ(atomic_load(&f->exchanges_gone), 0);
}

static void test_send_timeout_stream_progress(void **state)
{
    (void)state;
    run_with(client_steady_slow_stream, (struct opts){.sndbuf = 16384, .idle_ms = 300});
}

/* A client that stops reading is cut after idle_timeout_ms without
 * progress, in every state that holds output: while the handler still
 * writes (the handler hears on_gone), and when a closing connection has
 * less than the high mark queued. */
static void wait_conns(struct fx *f, int n, unsigned ms)
{
    uint64_t until = now_ms() + ms;
    while (atomic_load(&f->nconns) != n && now_ms() < until)
        sleep_ms(5);
}

static void wait_no_conns(struct fx *f, unsigned ms)
{
    uint64_t until = now_ms() + ms;
    while (atomic_load(&f->nconns) != 0 && now_ms() < until)
        sleep_ms(10);
}

static void client_stuck_closing(struct fx *f)
{
    int s = cli_connect(f, 4096);
    CHECK(s >= 0);
    cli_send(s, "GET /blob?n=200000 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    sleep_ms(100);
    CHECK_EQ(atomic_load(&f->nconns), 1);
    wait_no_conns(f, 5000); /* never reading */
    CHECK_EQ(atomic_load(&f->nconns), 0);
    close(s);
}

static void test_stuck_reader_on_closing_connection(void **state)
{
    (void)state;
    run_with(client_stuck_closing, (struct opts){.sndbuf = 16384, .idle_ms = 300});
}

static void client_stuck_streaming(struct fx *f)
{
    int s = cli_connect(f, 4096);
    CHECK(s >= 0);
    wait_conns(f, 1, 2000);
    CHECK_EQ(atomic_load(&f->nconns), 1);
    cli_send(s, "GET /big?n=50000000 HTTP/1.1\r\nHost: t\r\n\r\n");
    wait_no_conns(f, 8000);
    CHECK_EQ(atomic_load(&f->nconns), 0);
    CHECK_EQ(atomic_load(&f->exchanges_gone), 1);
    close(s);
}

static void test_stuck_reader_while_streaming(void **state)
{
    (void)state;
    run_with(client_stuck_streaming, (struct opts){.sndbuf = 16384, .idle_ms = 300});
}

/* Keep-alive idle deadline and the header deadline (408). */
static void client_deadlines(struct fx *f)
{
    int s = cli_connect(f, 0);
    CHECK(s >= 0);
    cli_send(s, "GET /x HTTP/1.1\r\nHost: t\r\n\r\n");
    struct rd_buf in;
    rd_buf_init(&in, 0);
    struct resp r;
    read_response(s, &in, &r, 0, 0, 5000);
    CHECK_EQ(r.status, 200);
    uint64_t t0 = now_ms();
    char b[256];
    CHECK_EQ(cli_read(s, b, sizeof b, 5000), 0); /* closed by the idle deadline */
    CHECK(now_ms() - t0 >= 250);
    close(s);

    s = cli_connect(f, 0);
    CHECK(s >= 0);
    cli_send(s, "GET /x HTTP/1.1\r\nHo"); /* slowloris */
    rd_buf_reset(&in);
    read_response(s, &in, &r, 0, 0, 5000);
    CHECK_EQ(r.status, 408);
    close(s);
    rd_buf_free(&in);
}

static void test_idle_and_header_deadlines(void **state)
{
    (void)state;
    run_with(client_deadlines, (struct opts){.idle_ms = 300, .header_ms = 300});
}

/* The head of an error the server answers itself is built without a fixed
 * buffer: a long content type from the error callback arrives whole. */
static char long_ctype[600];

static void client_bad_request(struct fx *f)
{
    int s = cli_connect(f, 0);
    CHECK(s >= 0);
    cli_send(s, "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
    struct rd_buf in;
    rd_buf_init(&in, 0);
    struct resp r;
    read_response(s, &in, &r, 0, 0, 5000);
    rd_buf_free(&in);
    close(s);
    CHECK_EQ(r.status, 400);
    CHECK(strcmp(r.ctype, long_ctype) == 0);
    CHECK(r.complete);
    CHECK_EQ(r.body_len, strlen("{\"status\":400}"));
}

static void test_error_head_not_truncated(void **state)
{
    (void)state;
    memset(long_ctype, 'a', sizeof long_ctype - 1);
    memcpy(long_ctype, "application/x-", 14);
    long_ctype[sizeof long_ctype - 1] = '\0';
    run_with(client_bad_request, (struct opts){.error_ctype = long_ctype});
}

/* A request pipelined behind a slow-draining response waits for it, then is
 * answered on the same connection, in order. */
static void client_pipelined_small(struct fx *f)
{
    int s = cli_connect(f, 8192);
    CHECK(s >= 0);
    cli_send(s, "GET /blob?n=2000000 HTTP/1.1\r\nHost: t\r\n\r\nGET /x HTTP/1.1\r\nHost: t\r\n\r\n");
    sleep_ms(100);
    struct rd_buf in;
    rd_buf_init(&in, 0);
    struct resp r1, r2;
    read_response(s, &in, &r1, 0, 0, 10000);
    read_response(s, &in, &r2, 0, 0, 5000);
    rd_buf_free(&in);
    close(s);
    CHECK(r1.complete);
    CHECK_EQ(r1.body_len, 2000000);
    CHECK_EQ(r2.status, 200);
    CHECK_EQ(r2.body_len, 2);
}

static void test_pipelined_behind_queued_response(void **state)
{
    (void)state;
    run_with(client_pipelined_small, (struct opts){.sndbuf = 16384});
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc > 1)
        cmocka_set_test_filter(argv[1]); /* e.g. test_server test_pipelined* */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipelined_after_large_response),
        cmocka_unit_test(test_graceful_stop_drains_complete_response),
        cmocka_unit_test(test_send_timeout_counts_progress),
        cmocka_unit_test(test_send_timeout_stream_progress),
        cmocka_unit_test(test_stuck_reader_on_closing_connection),
        cmocka_unit_test(test_stuck_reader_while_streaming),
        cmocka_unit_test(test_idle_and_header_deadlines),
        cmocka_unit_test(test_error_head_not_truncated),
        cmocka_unit_test(test_pipelined_behind_queued_response),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
