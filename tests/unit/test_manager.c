/* Tests for src/proxy/manager.c: the proxy lifecycle driven through
 * sequences of concurrent calls, with two real workers serving on
 * 127.0.0.1, a SQLite store in a temporary directory, and an upstream on the
 * test loop that accepts requests and answers only when told to (so a
 * request stays in flight as long as a test needs it).
 *
 * Each test checks the final state, what listens, what happened to the
 * request in flight, and that every call's done callback fired exactly once
 * with the outcome it should report. "During a move" is reached without
 * timing luck: the manager's driver runs from a 0 ms timer started by the
 * call, so a 0 ms timer started right after it fires in the same timer
 * phase, after the move began and before any worker completion (those come
 * in the poll phase). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "http/server.h"
#include "proxy/manager.h"
#include "proxy/worker.h"
#include "store/store.h"
#include "util/err.h"
#include "util/mem.h"

#define NWORKERS 2
#define LONG_MS 20000 /* a graceful timeout no test waits for */

struct fx;

/* ---- upstream: holds every request until told to answer ---- */

struct uconn {
    struct uconn *next;
    struct fx *f;
    uv_tcp_t tcp;
    char buf[8192];
    size_t len;
    bool counted; /* a complete request head arrived */
    bool closed;
};

/* ---- a client request to a proxy ---- */

struct client {
    struct fx *f;
    uv_tcp_t tcp;
    uv_connect_t conn;
    uv_write_t w;
    char rx[4096];
    size_t rxlen;
    bool ended; /* the proxy closed the connection */
    bool handle_closed;
};

/* ---- a manager call and its answer ---- */

struct call {
    struct rd_proxy_entry *e; /* borrowed; read only inside the callback */
    int fired;
    bool failed;
    int err_status;
    char status[16]; /* rd_proxy_status_name when answered */
};

struct fx {
    char dir[64];
    uv_loop_t loop;
    uv_timer_t watchdog, probe, recheck;
    bool expired;
    struct rd_store *store;
    struct rd_worker **workers;
    struct rd_manager m;
    uv_tcp_t up_listen;
    int up_port;
    struct uconn *uconns;
    int up_requests; /* request heads received */
    int up_closed;   /* connections the proxy closed */
    void (*after_kick)(struct fx *f);
    struct rd_proxy_entry *target;
    struct call later_call;
};

static void on_watchdog(uv_timer_t *t)
{
    struct fx *f = t->data;
    f->expired = true;
}

static void on_recheck(uv_timer_t *t)
{
    (void)t; /* only wakes the loop */
}

/* Runs the loop until cond holds, failing after 8 s. Some conditions change
 * in the workers' threads without waking this loop (a port closing), so a
 * 5 ms timer makes the loop come back to check them. */
#define RUN_UNTIL(f, cond)                                                                                            \
    do {                                                                                                              \
        (f)->expired = false;                                                                                         \
        uv_timer_start(&(f)->watchdog, on_watchdog, 8000, 0);                                                          \
        uv_timer_start(&(f)->recheck, on_recheck, 5, 5);                                                               \
        while (!(cond) && !(f)->expired)                                                                              \
            uv_run(&(f)->loop, UV_RUN_ONCE);                                                                          \
        uv_timer_stop(&(f)->watchdog);                                                                                \
        uv_timer_stop(&(f)->recheck);                                                                                 \
        if ((f)->expired)                                                                                             \
            fail_msg("timed out waiting for %s", #cond);                                                              \
    } while (0)

/* Runs whatever is already due (kicks, completions in the queue) without
 * waiting, so a callback that should not fire has had its chance to. */
static void settle_turns(struct fx *f)
{
    for (int i = 0; i < 5; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
}

/* ---- upstream ---- */

static void on_ualloc(uv_handle_t *h, size_t n, uv_buf_t *b)
{
    (void)n;
    struct uconn *c = h->data;
    b->base = c->buf + c->len;
    b->len = sizeof c->buf - c->len - 1;
}

static void on_uclosed(uv_handle_t *h)
{
    (void)h; /* the uconn stays on the list until teardown */
}

static void on_uread(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    struct uconn *c = s->data;
    if (n < 0) {
        if (!c->closed) {
            c->closed = true;
            c->f->up_closed++;
            uv_close((uv_handle_t *)&c->tcp, on_uclosed);
        }
        return;
    }
    c->len += (size_t)n;
    c->buf[c->len] = '\0';
    if (!c->counted && strstr(c->buf, "\r\n\r\n")) {
        c->counted = true;
        c->f->up_requests++;
    }
    if (c->len + 1 >= sizeof c->buf)
        c->len = 0; /* only the first head matters */
}

static void on_uaccept(uv_stream_t *l, int status)
{
    assert_int_equal(status, 0);
    struct fx *f = l->data;
    struct uconn *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->f = f;
    assert_int_equal(uv_tcp_init(&f->loop, &c->tcp), 0);
    c->tcp.data = c;
    assert_int_equal(uv_accept(l, (uv_stream_t *)&c->tcp), 0);
    assert_int_equal(uv_read_start((uv_stream_t *)&c->tcp, on_ualloc, on_uread), 0);
    c->next = f->uconns;
    f->uconns = c;
}

static void on_uwritten(uv_write_t *w, int status)
{
    (void)status;
    free(w);
}

/* Answers every request the upstream holds. */
static void upstream_answer_all(struct fx *f)
{
    static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
    for (struct uconn *c = f->uconns; c; c = c->next) {
        if (c->closed || !c->counted)
            continue;
        uv_write_t *w = calloc(1, sizeof *w);
        assert_non_null(w);
        uv_buf_t b = uv_buf_init((char *)resp, sizeof resp - 1);
        assert_int_equal(uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, on_uwritten), 0);
        /* The connection may carry the next request (keep-alive). */
        c->counted = false;
        c->len = 0;
    }
}

static int bound_port(uv_tcp_t *t)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    assert_int_equal(uv_tcp_getsockname(t, (struct sockaddr *)&ss, &len), 0);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* ---- ports ---- */

/* A port the kernel just handed out on 127.0.0.1 (free at the time). */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    assert_int_equal(close(fd), 0);
    return ntohs(a.sin_port);
}

/* Whether something accepts connections on 127.0.0.1:port (a blocking
 * loopback connect: refused at once when nothing listens). */
static bool listens(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int rc = connect(fd, (struct sockaddr *)&a, sizeof a);
    int saved = errno;
    assert_int_equal(close(fd), 0);
    if (rc != 0)
        assert_int_equal(saved, ECONNREFUSED);
    return rc == 0;
}

/* ---- client ---- */

static void on_calloc(uv_handle_t *h, size_t n, uv_buf_t *b)
{
    (void)n;
    struct client *c = h->data;
    b->base = c->rx + c->rxlen;
    b->len = sizeof c->rx - c->rxlen - 1;
}

static void on_cclosed(uv_handle_t *h)
{
    struct client *c = h->data;
    c->handle_closed = true;
}

static void on_cread(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    struct client *c = s->data;
    if (n < 0) {
        c->ended = true;
        uv_close((uv_handle_t *)&c->tcp, on_cclosed);
        return;
    }
    c->rxlen += (size_t)n;
    c->rx[c->rxlen] = '\0';
}

static void on_cwritten(uv_write_t *w, int status)
{
    (void)w;
    assert_int_equal(status, 0);
}

static void on_cconnect(uv_connect_t *req, int status)
{
    struct client *c = req->data;
    assert_int_equal(status, 0);
    static const char body[] = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                               "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
    uv_buf_t b = uv_buf_init((char *)body, sizeof body - 1);
    assert_int_equal(uv_write(&c->w, (uv_stream_t *)&c->tcp, &b, 1, on_cwritten), 0);
    assert_int_equal(uv_read_start((uv_stream_t *)&c->tcp, on_calloc, on_cread), 0);
}

/* Sends one request to the proxy on port and returns once the upstream
 * holds it: the request is then in flight on that port's listener. */
static void request_in_flight(struct fx *f, struct client *c, int port)
{
    memset(c, 0, sizeof *c);
    c->f = f;
    int before = f->up_requests;
    assert_int_equal(uv_tcp_init(&f->loop, &c->tcp), 0);
    c->tcp.data = c;
    c->conn.data = c;
    struct sockaddr_in a;
    assert_int_equal(uv_ip4_addr("127.0.0.1", port, &a), 0);
    assert_int_equal(uv_tcp_connect(&c->conn, &c->tcp, (const struct sockaddr *)&a, on_cconnect), 0);
    RUN_UNTIL(f, f->up_requests > before);
}

/* ---- calls ---- */

static void on_done(void *ud, const struct rd_mgr_err *err)
{
    struct call *c = ud;
    c->fired++;
    c->failed = err != NULL;
    c->err_status = err ? err->status : 0;
    snprintf(c->status, sizeof c->status, "%s", rd_proxy_status_name(c->e));
}

static void on_done_deleted(void *ud, const struct rd_mgr_err *err)
{
    struct call *c = ud;
    c->fired++;
    c->failed = err != NULL;
    snprintf(c->status, sizeof c->status, "deleted");
}

static void call_init(struct call *c, struct rd_proxy_entry *e)
{
    memset(c, 0, sizeof *c);
    c->e = e;
}

/* Asserts c was answered exactly once, without error, showing status. */
static void assert_answered(const struct call *c, const char *status)
{
    assert_int_equal(c->fired, 1);
    assert_false(c->failed);
    assert_string_equal(c->status, status);
}

/* PATCH: a copy of the record with a new port (and description). */
static int update_port(struct fx *f, struct rd_proxy_entry *e, int port, const char *desc, struct call *c)
{
    struct rd_proxy_rec rec;
    rd_proxy_rec_copy(&rec, &e->rec);
    rec.port = port;
    if (desc) {
        free(rec.description);
        rec.description = rd_strdup(desc);
    }
    struct rd_mgr_err err;
    int rc = rd_manager_update(&f->m, e, &rec, &err, on_done, c);
    rd_proxy_rec_free(&rec);
    return rc;
}

static struct rd_proxy_entry *new_proxy(struct fx *f, const char *name, int port)
{
    char up[64];
    snprintf(up, sizeof up, "http://127.0.0.1:%d", f->up_port);
    struct rd_proxy_rec rec;
    memset(&rec, 0, sizeof rec);
    rec.name = rd_strdup(name);
    rec.provider = rd_strdup("openai");
    rec.port = port;
    rec.bind = rd_strdup("127.0.0.1");
    rec.upstream_url = rd_strdup(up);
    rec.tags_json = rd_strdup("[]");
    /* every request must reach the test upstream: no cache answers */
    rec.config_json = rd_strdup("{\"cache\":{\"enabled\":false}}");
    rec.desired_status = rd_strdup("stopped");
    struct rd_proxy_entry *e = NULL;
    struct rd_mgr_err err;
    assert_int_equal(rd_manager_create(&f->m, &rec, true, &e, &err), 0);
    rd_proxy_rec_free(&rec);
    assert_non_null(e);
    assert_string_equal(rd_proxy_status_name(e), "running");
    assert_true(listens(port));
    return e;
}

/* Runs fn in the same timer phase as the manager's driver, right after it:
 * a transition the driver began is in progress, no completion has come. */
static void on_probe(uv_timer_t *t)
{
    struct fx *f = t->data;
    void (*fn)(struct fx *) = f->after_kick;
    f->after_kick = NULL;
    fn(f);
}

static void after_kick(struct fx *f, void (*fn)(struct fx *))
{
    f->after_kick = fn;
    uv_timer_start(&f->probe, on_probe, 0, 0);
}

/* ---- fixture ---- */

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/rd-manager-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char db[128], errbuf[256];
    snprintf(db, sizeof db, "%s/rd.db", f->dir);
    assert_int_equal(rd_store_open(db, &f->store, errbuf, sizeof errbuf), 0);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &f->watchdog);
    uv_timer_init(&f->loop, &f->probe);
    uv_timer_init(&f->loop, &f->recheck);
    f->watchdog.data = f->probe.data = f->recheck.data = f;

    struct sockaddr_in a;
    assert_int_equal(uv_ip4_addr("127.0.0.1", 0, &a), 0);
    assert_int_equal(uv_tcp_init(&f->loop, &f->up_listen), 0);
    f->up_listen.data = f;
    assert_int_equal(uv_tcp_bind(&f->up_listen, (const struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&f->up_listen, 128, on_uaccept), 0);
    f->up_port = bound_port(&f->up_listen);

    assert_int_equal(rd_workers_start(NWORKERS, &f->workers), 0);
    assert_int_equal(rd_manager_init(&f->m, &f->loop, f->store, f->workers, NWORKERS, 5000), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    /* Workers first: once joined, no completion can reach the manager. */
    rd_workers_join(f->workers, NWORKERS);
    rd_manager_free(&f->m);
    for (struct uconn *c = f->uconns; c; c = c->next)
        if (!c->closed)
            uv_close((uv_handle_t *)&c->tcp, NULL);
    uv_close((uv_handle_t *)&f->up_listen, NULL);
    uv_close((uv_handle_t *)&f->watchdog, NULL);
    uv_close((uv_handle_t *)&f->probe, NULL);
    uv_close((uv_handle_t *)&f->recheck, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    while (f->uconns) {
        struct uconn *next = f->uconns->next;
        free(f->uconns);
        f->uconns = next;
    }
    rd_store_close(f->store);
    int rc = nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return rc;
}

/* ---- tests ---- */

/* A stop arriving while a move is in progress wins: the new address never
 * opens, the move's PATCH is answered with the state reached (stopped). */
static void stop_during_move(struct fx *f)
{
    assert_int_equal(f->target->status, RD_PROXY_MOVING);
    call_init(&f->later_call, f->target);
    rd_manager_stop(&f->m, f->target, RD_HTTP_STOP_GRACEFUL, LONG_MS, true, on_done, &f->later_call);
    /* Shown as stopping from now on, never as running. */
    assert_string_equal(rd_proxy_status_name(f->target), "stopping");
}

static void test_move_then_stop(void **state)
{
    struct fx *f = *state;
    int p1 = free_port(), p2 = free_port();
    struct rd_proxy_entry *e = new_proxy(f, "mover", p1);
    struct call u;
    call_init(&u, e);
    assert_int_equal(update_port(f, e, p2, NULL, &u), 0);
    f->target = e;
    after_kick(f, stop_during_move);
    RUN_UNTIL(f, u.fired && f->later_call.fired);
    settle_turns(f);
    assert_answered(&f->later_call, "stopped");
    assert_answered(&u, "stopped");
    assert_int_equal(e->status, RD_PROXY_STOPPED);
    assert_int_equal(e->rec.port, p2);
    assert_string_equal(e->rec.desired_status, "stopped");
    assert_false(listens(p1));
    assert_false(listens(p2));
}

/* The same calls in the same turn (before the move began) end the same way. */
static void test_move_and_stop_same_turn(void **state)
{
    struct fx *f = *state;
    int p1 = free_port(), p2 = free_port();
    struct rd_proxy_entry *e = new_proxy(f, "mover2", p1);
    struct call u, s;
    call_init(&u, e);
    call_init(&s, e);
    assert_int_equal(update_port(f, e, p2, NULL, &u), 0);
    rd_manager_stop(&f->m, e, RD_HTTP_STOP_GRACEFUL, LONG_MS, true, on_done, &s);
    RUN_UNTIL(f, u.fired && s.fired);
    settle_turns(f);
    assert_answered(&s, "stopped");
    assert_answered(&u, "stopped");
    assert_false(listens(p1));
    assert_false(listens(p2));
}

/* A move during a graceful stop is applied to the record only; a later
 * start listens on the new address. */
static void test_stop_then_move(void **state)
{
    struct fx *f = *state;
    int p1 = free_port(), p2 = free_port();
    struct rd_proxy_entry *e = new_proxy(f, "stopper", p1);
    struct client c;
    request_in_flight(f, &c, p1);
    struct call s, u;
    call_init(&s, e);
    call_init(&u, e);
    rd_manager_stop(&f->m, e, RD_HTTP_STOP_GRACEFUL, LONG_MS, true, on_done, &s);
    RUN_UNTIL(f, e->status == RD_PROXY_STOPPING && !listens(p1));
    assert_int_equal(update_port(f, e, p2, "moved while stopping", &u), 0);
    settle_turns(f);
    /* The stop drains the request in flight; the PATCH waits for it. */
    assert_int_equal(s.fired, 0);
    assert_int_equal(u.fired, 0);
    assert_string_equal(rd_proxy_status_name(e), "stopping");
    assert_int_equal(e->rec.port, p2);
    assert_false(listens(p2));
    upstream_answer_all(f);
    RUN_UNTIL(f, s.fired && u.fired);
    settle_turns(f);
    assert_answered(&s, "stopped");
    assert_answered(&u, "stopped");
    /* The proxy closed it before the stop completed; its EOF reaches this
     * loop on its own turn. */
    RUN_UNTIL(f, c.ended);
    assert_non_null(strstr(c.rx, "HTTP/1.1 200"));
    assert_string_equal(e->rec.description, "moved while stopping");
    assert_false(listens(p1));
    assert_false(listens(p2));

    struct call st;
    call_init(&st, e);
    rd_manager_start(&f->m, e, on_done, &st);
    RUN_UNTIL(f, st.fired);
    assert_answered(&st, "running");
    assert_true(listens(p2));
    assert_false(listens(p1));
    RUN_UNTIL(f, c.handle_closed);
}

/* A start during a graceful stop runs after it: the stop is answered
 * stopped, then the start running. */
static void test_start_during_stop(void **state)
{
    struct fx *f = *state;
    int p1 = free_port();
    struct rd_proxy_entry *e = new_proxy(f, "restarter", p1);
    struct client c;
    request_in_flight(f, &c, p1);
    struct call s, st;
    call_init(&s, e);
    call_init(&st, e);
    rd_manager_stop(&f->m, e, RD_HTTP_STOP_GRACEFUL, LONG_MS, true, on_done, &s);
    RUN_UNTIL(f, e->status == RD_PROXY_STOPPING && !listens(p1));
    rd_manager_start(&f->m, e, on_done, &st);
    settle_turns(f);
    assert_int_equal(s.fired, 0);
    assert_int_equal(st.fired, 0);
    assert_string_equal(rd_proxy_status_name(e), "stopping");
    upstream_answer_all(f);
    RUN_UNTIL(f, s.fired && st.fired);
    settle_turns(f);
    assert_answered(&s, "stopped");
    assert_answered(&st, "running");
    assert_string_equal(e->rec.desired_status, "running");
    assert_true(listens(p1));
    RUN_UNTIL(f, c.handle_closed);
}

/* stop, start, stop during one drain: the last call (stop) wins; the start
 * is answered with the state it left, without error. */
static void test_last_call_wins(void **state)
{
    struct fx *f = *state;
    int p1 = free_port();
    struct rd_proxy_entry *e = new_proxy(f, "flipflop", p1);
    struct client c;
    request_in_flight(f, &c, p1);
    struct call s1, st, s2;
    call_init(&s1, e);
    call_init(&st, e);
    call_init(&s2, e);
    rd_manager_stop(&f->m, e, RD_HTTP_STOP_GRACEFUL, LONG_MS, true, on_done, &s1);
    RUN_UNTIL(f, e->status == RD_PROXY_STOPPING);
    rd_manager_start(&f->m, e, on_done, &st);
    rd_manager_stop(&f->m, e, RD_HTTP_STOP_FORCE, 0, true, on_done, &s2);
    RUN_UNTIL(f, s1.fired && st.fired && s2.fired);
    settle_turns(f);
    assert_answered(&s1, "stopped");
    assert_answered(&s2, "stopped");
    assert_answered(&st, "stopped");
    assert_int_equal(e->status, RD_PROXY_STOPPED);
    assert_false(listens(p1));
    RUN_UNTIL(f, c.ended && f->up_closed == 1);
    RUN_UNTIL(f, c.handle_closed);
}

/* A delete during a move cuts the request still on the old port and
 * removes the proxy; the move's PATCH hears it was deleted. */
static void delete_during_move(struct fx *f)
{
    assert_int_equal(f->target->status, RD_PROXY_MOVING);
    call_init(&f->later_call, f->target);
    rd_manager_delete(&f->m, f->target, on_done_deleted, &f->later_call);
    assert_null(rd_manager_find(&f->m, 1));
}

static void test_delete_during_move(void **state)
{
    struct fx *f = *state;
    int p1 = free_port(), p2 = free_port();
    struct rd_proxy_entry *e = new_proxy(f, "doomed", p1);
    assert_int_equal(e->rec.id, 1);
    struct client c;
    request_in_flight(f, &c, p1);
    struct call u;
    call_init(&u, e);
    assert_int_equal(update_port(f, e, p2, NULL, &u), 0);
    f->target = e;
    after_kick(f, delete_during_move);
    RUN_UNTIL(f, u.fired && f->later_call.fired);
    settle_turns(f);
    assert_int_equal(f->later_call.fired, 1);
    assert_false(f->later_call.failed);
    assert_int_equal(u.fired, 1);
    assert_false(u.failed);
    assert_null(rd_manager_find(&f->m, 1));
    assert_null(f->m.entries);
    assert_false(listens(p1));
    assert_false(listens(p2));
    RUN_UNTIL(f, c.ended && f->up_closed == 1);
    RUN_UNTIL(f, c.handle_closed);
    struct rd_proxy_rec rec;
    assert_int_equal(rd_store_proxy_get(f->store, 1, &rec), RD_ENOTFOUND);
}

/* A force stop during a graceful one escalates it: the request in flight is
 * cut at once and both calls are answered stopped. */
static void test_graceful_then_force(void **state)
{
    struct fx *f = *state;
    int p1 = free_port();
    struct rd_proxy_entry *e = new_proxy(f, "escalated", p1);
    struct client c;
    request_in_flight(f, &c, p1);
    struct call s1, s2;
    call_init(&s1, e);
    call_init(&s2, e);
    rd_manager_stop(&f->m, e, RD_HTTP_STOP_GRACEFUL, LONG_MS, true, on_done, &s1);
    RUN_UNTIL(f, e->status == RD_PROXY_STOPPING && !listens(p1));
    settle_turns(f);
    assert_int_equal(s1.fired, 0);
    assert_false(c.ended);
    rd_manager_stop(&f->m, e, RD_HTTP_STOP_FORCE, 0, true, on_done, &s2);
    RUN_UNTIL(f, s1.fired && s2.fired);
    settle_turns(f);
    assert_answered(&s1, "stopped");
    assert_answered(&s2, "stopped");
    RUN_UNTIL(f, c.ended && f->up_closed == 1);
    assert_null(strstr(c.rx, "HTTP/1.1 200"));
    RUN_UNTIL(f, c.handle_closed);
}

/* A graceful stop with no time left is a force stop. */
static void test_graceful_timeout_zero(void **state)
{
    struct fx *f = *state;
    int p1 = free_port();
    struct rd_proxy_entry *e = new_proxy(f, "zero", p1);
    struct client c;
    request_in_flight(f, &c, p1);
    struct call s;
    call_init(&s, e);
    rd_manager_stop(&f->m, e, RD_HTTP_STOP_GRACEFUL, 0, true, on_done, &s);
    RUN_UNTIL(f, s.fired);
    assert_answered(&s, "stopped");
    RUN_UNTIL(f, c.ended && f->up_closed == 1);
    RUN_UNTIL(f, c.handle_closed);
}

/* After a move, a force stop also cuts the request still draining on the
 * old port; a graceful stop waits for it. */
static void test_stop_after_move_covers_old_port(void **state)
{
    struct fx *f = *state;
    int p1 = free_port(), p2 = free_port(), p3 = free_port();
    struct rd_proxy_entry *e = new_proxy(f, "old-port", p1);
    struct client c1, c2;
    request_in_flight(f, &c1, p1);
    struct call u;
    call_init(&u, e);
    assert_int_equal(update_port(f, e, p2, NULL, &u), 0);
    RUN_UNTIL(f, u.fired);
    assert_answered(&u, "running");
    assert_false(listens(p1));
    assert_true(listens(p2));
    settle_turns(f);
    assert_false(c1.ended); /* still draining on the old listener */

    /* graceful: answered only once the old port's request is done */
    struct call s;
    call_init(&s, e);
    rd_manager_stop(&f->m, e, RD_HTTP_STOP_GRACEFUL, LONG_MS, true, on_done, &s);
    RUN_UNTIL(f, e->status == RD_PROXY_STOPPING && !listens(p2));
    settle_turns(f);
    assert_int_equal(s.fired, 0);
    upstream_answer_all(f);
    RUN_UNTIL(f, s.fired);
    assert_answered(&s, "stopped");
    RUN_UNTIL(f, c1.ended);
    assert_non_null(strstr(c1.rx, "HTTP/1.1 200"));

    /* force: start, request, move, force stop */
    struct call st, u2, fs;
    call_init(&st, e);
    call_init(&u2, e);
    call_init(&fs, e);
    rd_manager_start(&f->m, e, on_done, &st);
    RUN_UNTIL(f, st.fired);
    assert_answered(&st, "running");
    int closed_before = f->up_closed;
    request_in_flight(f, &c2, p2);
    assert_int_equal(update_port(f, e, p3, NULL, &u2), 0);
    RUN_UNTIL(f, u2.fired);
    assert_answered(&u2, "running");
    settle_turns(f);
    assert_false(c2.ended);
    rd_manager_stop(&f->m, e, RD_HTTP_STOP_FORCE, 0, true, on_done, &fs);
    RUN_UNTIL(f, fs.fired);
    assert_answered(&fs, "stopped");
    RUN_UNTIL(f, c2.ended && f->up_closed > closed_before);
    assert_false(listens(p2));
    assert_false(listens(p3));
    RUN_UNTIL(f, c1.handle_closed && c2.handle_closed);
}

/* A start that cannot bind is answered 409 with status error; a stop then
 * clears the error. */
static void test_start_failure(void **state)
{
    struct fx *f = *state;
    int p1 = free_port();
    struct rd_proxy_entry *e = new_proxy(f, "blocked", p1);
    struct call s, st, s2;
    call_init(&s, e);
    call_init(&st, e);
    call_init(&s2, e);
    rd_manager_stop(&f->m, e, RD_HTTP_STOP_FORCE, 0, true, on_done, &s);
    RUN_UNTIL(f, s.fired);
    assert_answered(&s, "stopped");
    int holder = rd_http_bind("127.0.0.1", p1, false, 1);
    assert_true(holder >= 0);
    rd_manager_start(&f->m, e, on_done, &st);
    RUN_UNTIL(f, st.fired);
    assert_int_equal(st.fired, 1);
    assert_true(st.failed);
    assert_int_equal(st.err_status, 409);
    assert_string_equal(st.status, "error");
    assert_non_null(e->rec.last_error);
    assert_int_equal(close(holder), 0);
    rd_manager_stop(&f->m, e, RD_HTTP_STOP_GRACEFUL, LONG_MS, true, on_done, &s2);
    RUN_UNTIL(f, s2.fired);
    assert_answered(&s2, "stopped");
}

/* Shutdown overtakes a start not yet done and stops the running proxies
 * without changing what is restored at start-up. */
static void on_shutdown(void *ud, const struct rd_mgr_err *err)
{
    (void)err;
    (*(int *)ud)++;
}

static void test_shutdown(void **state)
{
    struct fx *f = *state;
    int p1 = free_port(), p2 = free_port();
    struct rd_proxy_entry *a = new_proxy(f, "a", p1);
    struct rd_proxy_entry *b = new_proxy(f, "b", p2);
    struct call s, st;
    call_init(&s, b);
    call_init(&st, b);
    rd_manager_stop(&f->m, b, RD_HTTP_STOP_FORCE, 0, true, on_done, &s);
    RUN_UNTIL(f, s.fired);
    rd_manager_start(&f->m, b, on_done, &st);
    int down = 0;
    rd_manager_shutdown(&f->m, RD_HTTP_STOP_GRACEFUL, LONG_MS, on_shutdown, &down);
    RUN_UNTIL(f, down == 1 && st.fired);
    settle_turns(f);
    assert_int_equal(down, 1);
    assert_answered(&st, "stopped");
    assert_int_equal(a->status, RD_PROXY_STOPPED);
    assert_string_equal(a->rec.desired_status, "running");
    assert_false(listens(p1));
    assert_false(listens(p2));
}

/* Name and port conflicts are refused the same way by create and update. */
static void test_conflicts(void **state)
{
    struct fx *f = *state;
    int p1 = free_port(), p2 = free_port();
    struct rd_proxy_entry *a = new_proxy(f, "first", p1);
    struct rd_proxy_entry *b = new_proxy(f, "second", p2);
    (void)a;
    struct rd_proxy_rec rec;
    rd_proxy_rec_copy(&rec, &b->rec);
    rec.port = p1;
    struct rd_mgr_err err;
    struct call u;
    call_init(&u, b);
    assert_int_equal(rd_manager_update(&f->m, b, &rec, &err, on_done, &u), RD_ECONFLICT);
    assert_string_equal(err.field, "port");
    rd_proxy_rec_free(&rec);
    rd_proxy_rec_copy(&rec, &b->rec);
    free(rec.name);
    rec.name = rd_strdup("first");
    rec.id = 0;
    struct rd_proxy_entry *out = NULL;
    assert_int_equal(rd_manager_create(&f->m, &rec, false, &out, &err), RD_ECONFLICT);
    assert_string_equal(err.field, "name");
    rd_proxy_rec_free(&rec);
    settle_turns(f);
    assert_int_equal(u.fired, 0);
    assert_int_equal(b->rec.port, p2);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_move_then_stop),
        T(test_move_and_stop_same_turn),
        T(test_stop_then_move),
        T(test_start_during_stop),
        T(test_last_call_wins),
        T(test_delete_during_move),
        T(test_graceful_then_force),
        T(test_graceful_timeout_zero),
        T(test_stop_after_move_covers_old_port),
        T(test_start_failure),
        T(test_shutdown),
        T(test_conflicts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
