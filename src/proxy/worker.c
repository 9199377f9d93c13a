#include "proxy/worker.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxy/req.h"
#include "upstream/upstream.h"
#include "util/err.h"
#include "util/log.h"
#include "util/mem.h"

struct binding {
    struct binding *next;
    struct rd_worker *w;
    int64_t proxy_id;
    struct rd_proxy_rt *rt;
    struct rd_proxy_snap *snap; /* the worker's cached reference to rt's current snapshot */
    unsigned gen;               /* rt->gen when snap was taken */
    struct rd_http_listener *l;
    bool stopping;
    struct rd_stop_op **ops; /* owned array: the stops waiting for this binding to end */
    size_t nops, cap;
};

struct rd_worker {
    int index;
    uv_thread_t thread;
    uv_loop_t loop;
    struct rd_mailbox mb;
    struct rd_upstream_ctx *up;
    struct rd_req_env reqs; /* request objects of this worker */
    struct binding *bindings;
    uv_sem_t ready;
    atomic_size_t conns; /* open client connections over all its listeners (GET /metrics) */
};

struct add_msg {
    struct rd_mail mail;
    struct rd_proxy_rt *rt;
    int64_t proxy_id;
    int fd;
};

struct stop_msg {
    struct rd_mail mail;
    int64_t proxy_id;
    enum rd_http_stop_mode mode;
    uint64_t deadline_ms;
    bool ack_unlisten;
    struct rd_stop_op *op;
};

static void op_complete(struct rd_stop_op *op)
{
    if (atomic_fetch_sub_explicit(&op->pending, 1, memory_order_acq_rel) == 1)
        rd_mailbox_post(op->reply_to, &op->mail, op->on_done);
}

/* ---- listener callbacks (worker loop) ---- */

/* The proxy's current snapshot (borrowed), without the holder's lock on
 * every request: the binding keeps a reference and takes a new one only
 * when a swap bumped the generation. The generation is read before the
 * snapshot, so a swap in between only makes the next call look again. */
static struct rd_proxy_snap *current(struct binding *b)
{
    unsigned gen = atomic_load_explicit(&b->rt->gen, memory_order_acquire);
    if (b->snap == NULL || gen != b->gen) {
        rd_proxy_snap_unref(b->snap);
        b->snap = rd_proxy_rt_acquire(b->rt);
        b->gen = gen;
    }
    return b->snap;
}

static void on_limits(void *ud, struct rd_http_limits *out)
{
    struct binding *b = ud;
    const struct rd_proxy_snap *s = current(b);
    out->max_head = RD_HTTP_MAX_HEAD_DEFAULT;
    out->max_body = s->limits.max_body_bytes;
    out->header_timeout_ms = s->header_timeout_ms;
    out->idle_timeout_ms = s->limits.idle_timeout_ms;
}

static void on_error(void *ud, const struct rd_http_error *e, struct rd_hdrs *hdrs, struct rd_buf *body,
                     const char **ctype)
{
    struct binding *b = ud;
    rd_req_server_error(&b->w->reqs, current(b), e, hdrs, body, ctype);
}

/* Every request of every proxy on this worker enters the proxy layer here. */
static void on_request(struct rd_http_exch *x, void *ud)
{
    struct binding *b = ud;
    rd_req_handle(&b->w->reqs, x, current(b)); /* the request takes its own reference */
}

static void on_unlisten(void *ud)
{
    op_complete(ud);
}

static void on_stopped(void *ud)
{
    struct binding *b = ud;
    struct rd_worker *w = b->w;
    for (struct binding **pp = &w->bindings; *pp; pp = &(*pp)->next) {
        if (*pp == b) {
            *pp = b->next;
            break;
        }
    }
    for (size_t i = 0; i < b->nops; i++)
        op_complete(b->ops[i]);
    free(b->ops);
    rd_proxy_snap_unref(b->snap);
    rd_proxy_rt_unref(b->rt);
    free(b);
}

/* ---- messages ---- */

static void handle_add(struct rd_mail *m, void *ctx)
{
    struct rd_worker *w = ctx;
    struct add_msg *msg = (struct add_msg *)m;
    struct binding *b = rd_calloc(1, sizeof *b);
    b->w = w;
    b->proxy_id = msg->proxy_id;
    b->rt = msg->rt;
    struct rd_http_listener_cfg cfg = {
        .handler = on_request, .limits = on_limits, .error = on_error, .ud = b, .open_conns = &w->conns};
    if (rd_http_listener_start(&w->loop, msg->fd, &cfg, &b->l) != 0) {
        rd_error("worker %d: cannot serve proxy %lld", w->index, (long long)msg->proxy_id);
        rd_proxy_rt_unref(b->rt);
        free(b);
    } else {
        b->next = w->bindings;
        w->bindings = b;
    }
    free(msg);
}

static void add_op(struct binding *b, struct rd_stop_op *op)
{
    if (b->nops == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 2;
        b->ops = rd_realloc(b->ops, b->cap * sizeof *b->ops);
    }
    b->ops[b->nops++] = op;
}

/* Whether stop message msg is about binding b. */
static bool stop_targets(const struct stop_msg *msg, const struct binding *b)
{
    return b->proxy_id == msg->proxy_id && !(msg->ack_unlisten && b->stopping);
}

static void handle_stop(struct rd_mail *m, void *ctx)
{
    struct rd_worker *w = ctx;
    struct stop_msg *msg = (struct stop_msg *)m;
    /* A move (ack_unlisten) closes only the listener still accepting; its
     * connections then drain on their own. Any other stop is about every
     * binding of the proxy, including those still draining after a move: a
     * force cuts them all, a graceful one waits for them all (and brings
     * their deadline forward), so a stopped proxy has nothing left. */
    size_t n = 0;
    for (struct binding *b = w->bindings; b; b = b->next)
        n += stop_targets(msg, b);
    if (n == 0) {
        op_complete(msg->op);
        free(msg);
        return;
    }
    /* op still counts this worker once, so it cannot complete before the
     * extra shares are added. */
    if (n > 1)
        atomic_fetch_add_explicit(&msg->op->pending, (int)(n - 1), memory_order_acq_rel);
    for (struct binding *b = w->bindings; b; b = b->next) {
        if (!stop_targets(msg, b))
            continue;
        b->stopping = true;
        if (msg->ack_unlisten)
            rd_http_listener_on_unlisten(b->l, on_unlisten, msg->op);
        else
            add_op(b, msg->op);
        /* done never fires inside this call, so the list stays intact. */
        rd_http_listener_stop(b->l, msg->mode, msg->deadline_ms, on_stopped, b);
    }
    free(msg);
}

struct quit_msg {
    struct rd_mail mail;
};

static void on_walk_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void handle_quit(struct rd_mail *m, void *ctx)
{
    struct rd_worker *w = ctx;
    free(m);
    /* Whatever is still open is closed now: aborting in-flight exchanges
     * releases their upstream transfers before curl's multi goes away. */
    for (struct binding *b = w->bindings; b; b = b->next) {
        b->stopping = true;
        rd_http_listener_stop(b->l, RD_HTTP_STOP_FORCE, 0, on_stopped, b);
    }
    rd_req_env_close(&w->reqs);
    rd_upstream_ctx_free(w->up);
    w->up = NULL;
    rd_mailbox_close(&w->mb);
}

static void worker_main(void *arg)
{
    struct rd_worker *w = arg;
    char name[16]; /* for top -H and the bench's per-thread CPU */
    snprintf(name, sizeof name, "rd-worker-%d", w->index % 10000);
    (void)pthread_setname_np(pthread_self(), name);
    uv_loop_init(&w->loop);
    rd_mailbox_init(&w->loop, &w->mb, w);
    w->up = rd_upstream_ctx_new(&w->loop);
    rd_req_env_init(&w->reqs, &w->loop, w->up);
    w->reqs.index = (unsigned)w->index;
    uv_sem_post(&w->ready);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&w->loop) == UV_EBUSY) {
        uv_walk(&w->loop, on_walk_close, NULL);
        uv_run(&w->loop, UV_RUN_DEFAULT);
        (void)uv_loop_close(&w->loop);
    }
}

int rd_workers_start(int n, struct rd_worker ***out)
{
    struct rd_worker **ws = rd_calloc((size_t)n, sizeof *ws);
    for (int i = 0; i < n; i++) {
        struct rd_worker *w = rd_calloc(1, sizeof *w);
        w->index = i;
        atomic_init(&w->conns, 0);
        uv_sem_init(&w->ready, 0);
        int rc = uv_thread_create(&w->thread, worker_main, w);
        if (rc != 0) {
            rd_error("cannot start worker thread: %s", uv_strerror(rc));
            free(w);
            rd_workers_join(ws, i);
            return rc;
        }
        uv_sem_wait(&w->ready);
        ws[i] = w;
    }
    *out = ws;
    return 0;
}

void rd_workers_join(struct rd_worker **ws, int n)
{
    for (int i = 0; i < n; i++) {
        struct quit_msg *m = rd_calloc(1, sizeof *m);
        rd_mailbox_post(&ws[i]->mb, &m->mail, handle_quit);
    }
    for (int i = 0; i < n; i++) {
        uv_thread_join(&ws[i]->thread);
        uv_sem_destroy(&ws[i]->ready);
        free(ws[i]);
    }
    free(ws);
}

void rd_worker_add_listener(struct rd_worker *w, struct rd_proxy_rt *rt, int64_t proxy_id, int fd)
{
    struct add_msg *m = rd_calloc(1, sizeof *m);
    m->rt = rd_proxy_rt_ref(rt);
    m->proxy_id = proxy_id;
    m->fd = fd;
    rd_mailbox_post(&w->mb, &m->mail, handle_add);
}

void rd_worker_stop_listener(struct rd_worker *w, int64_t proxy_id, enum rd_http_stop_mode mode,
                             uint64_t deadline_ms, bool ack_unlisten, struct rd_stop_op *op)
{
    struct stop_msg *m = rd_calloc(1, sizeof *m);
    m->ack_unlisten = ack_unlisten;
    m->proxy_id = proxy_id;
    m->mode = mode;
    m->deadline_ms = deadline_ms;
    m->op = op;
    rd_mailbox_post(&w->mb, &m->mail, handle_stop);
}

size_t rd_worker_connections(const struct rd_worker *w)
{
    return atomic_load_explicit(&w->conns, memory_order_relaxed);
}
