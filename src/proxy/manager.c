#include "proxy/manager.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http/server.h"
#include "util/err.h"
#include "util/log.h"
#include "util/mem.h"

#define FIRST_AUTO_PORT 8001
#define LAST_AUTO_PORT 65535

const char *rd_proxy_status_name(enum rd_proxy_status s)
{
    switch (s) {
    case RD_PROXY_RUNNING: return "running";
    case RD_PROXY_ERROR: return "error";
    case RD_PROXY_STOPPING: return "stopping";
    case RD_PROXY_STOPPED:
    default: return "stopped";
    }
}

static void set_err(struct rd_mgr_err *err, int status, const char *code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void set_err(struct rd_mgr_err *err, int status, const char *code, const char *field, const char *fmt, ...)
{
    err->status = status;
    err->code = code;
    snprintf(err->field, sizeof err->field, "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
}

static void set_last_error(struct rd_proxy_entry *e, const char *msg)
{
    free(e->rec.last_error);
    e->rec.last_error = msg ? rd_strdup(msg) : NULL;
}

static void persist(struct rd_manager *m, struct rd_proxy_entry *e)
{
    int rc = rd_store_proxy_update(m->store, &e->rec);
    if (rc < 0)
        rd_error("proxy %s: cannot save state: %s", e->rec.name, rd_strerror(rc));
}

static void insert_sorted(struct rd_manager *m, struct rd_proxy_entry *e)
{
    struct rd_proxy_entry **pp = &m->entries;
    while (*pp && (*pp)->rec.id < e->rec.id)
        pp = &(*pp)->next;
    e->next = *pp;
    *pp = e;
}

static void entry_free(struct rd_proxy_entry *e)
{
    /* Waiters left at shutdown are API calls whose connections are gone. */
    while (e->waiters) {
        struct rd_waiter *next = e->waiters->next;
        free(e->waiters);
        e->waiters = next;
    }
    rd_proxy_rec_free(&e->rec);
    rd_proxy_rt_unref(e->rt);
    free(e);
}

int rd_manager_init(struct rd_manager *m, uv_loop_t *loop, struct rd_store *store, struct rd_worker **workers,
                    int nworkers, uint64_t header_timeout_ms)
{
    memset(m, 0, sizeof *m);
    m->loop = loop;
    m->store = store;
    m->workers = workers;
    m->nworkers = nworkers;
    m->header_timeout_ms = header_timeout_ms;
    int rc = rd_mailbox_init(loop, &m->mb, m);
    if (rc < 0)
        return rc;
    /* Completions only matter while something waits for them (and that
     * something keeps the loop alive); the mailbox itself must not. */
    uv_unref((uv_handle_t *)&m->mb.async);
    struct rd_proxy_rec *recs = NULL;
    size_t n = 0;
    rc = rd_store_proxy_list(store, &recs, &n);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        struct rd_proxy_entry *e = rd_calloc(1, sizeof *e);
        e->rec = recs[i]; /* strings move into the entry */
        e->status = RD_PROXY_STOPPED;
        insert_sorted(m, e);
    }
    free(recs);
    return 0;
}

void rd_manager_free(struct rd_manager *m)
{
    struct rd_proxy_entry *e = m->entries;
    while (e) {
        struct rd_proxy_entry *next = e->next;
        entry_free(e);
        e = next;
    }
    m->entries = NULL;
    rd_mailbox_close(&m->mb);
}

struct rd_proxy_entry *rd_manager_find(struct rd_manager *m, int64_t id)
{
    for (struct rd_proxy_entry *e = m->entries; e; e = e->next)
        if (e->rec.id == id && !e->deleting)
            return e;
    return NULL;
}

int rd_manager_running(const struct rd_manager *m)
{
    int n = 0;
    for (const struct rd_proxy_entry *e = m->entries; e; e = e->next)
        n += e->status == RD_PROXY_RUNNING;
    return n;
}

static struct rd_proxy_entry *find_port(struct rd_manager *m, int port, const struct rd_proxy_entry *except)
{
    for (struct rd_proxy_entry *e = m->entries; e; e = e->next)
        if (e != except && e->rec.port == port && !e->deleting)
            return e;
    return NULL;
}

static struct rd_proxy_entry *find_name(struct rd_manager *m, const char *name, const struct rd_proxy_entry *except)
{
    for (struct rd_proxy_entry *e = m->entries; e; e = e->next)
        if (e != except && strcmp(e->rec.name, name) == 0 && !e->deleting)
            return e;
    return NULL;
}

int rd_manager_pick_port(struct rd_manager *m, const char *bind_addr)
{
    for (int port = FIRST_AUTO_PORT; port <= LAST_AUTO_PORT; port++) {
        if (find_port(m, port, NULL))
            continue;
        int fd = rd_http_bind(bind_addr, port, false, 1);
        if (fd < 0)
            continue;
        close(fd);
        return port;
    }
    return -1;
}

/* Binds one listening socket per worker. A first bind without SO_REUSEPORT
 * proves nobody else holds the port (sockets of another process with
 * SO_REUSEPORT would otherwise share it silently). */
static int bind_all(struct rd_manager *m, const struct rd_proxy_rec *rec, int *fds)
{
    int probe = rd_http_bind(rec->bind, rec->port, false, 1);
    if (probe < 0)
        return probe;
    close(probe);
    for (int i = 0; i < m->nworkers; i++) {
        fds[i] = rd_http_bind(rec->bind, rec->port, m->nworkers > 1, RD_HTTP_BACKLOG);
        if (fds[i] < 0) {
            int rc = fds[i];
            for (int j = 0; j < i; j++)
                close(fds[j]);
            return rc;
        }
    }
    return 0;
}

static int start_entry(struct rd_manager *m, struct rd_proxy_entry *e, struct rd_mgr_err *err)
{
    if (e->status == RD_PROXY_RUNNING)
        return 0;
    if (e->status == RD_PROXY_STOPPING) {
        set_err(err, 409, "conflict", NULL, "proxy '%s' is stopping", e->rec.name);
        return RD_ESTATE;
    }
    const char *why = NULL;
    struct rd_proxy_snap *snap = rd_proxy_snap_new(&e->rec, m->header_timeout_ms, &why);
    if (snap == NULL) {
        set_err(err, 409, "start_failed", NULL, "cannot start proxy '%s': %s", e->rec.name, why);
        e->status = RD_PROXY_ERROR;
        set_last_error(e, err->message);
        return RD_EINVAL;
    }
    int *fds = rd_calloc((size_t)m->nworkers, sizeof *fds);
    int rc = bind_all(m, &e->rec, fds);
    if (rc < 0) {
        set_err(err, 409, "port_unavailable", "port", "cannot listen on %s:%d: %s", e->rec.bind, e->rec.port,
                uv_strerror(rc));
        e->status = RD_PROXY_ERROR;
        set_last_error(e, err->message);
        rd_warn("proxy %s: %s", e->rec.name, err->message);
        rd_proxy_snap_unref(snap);
        free(fds);
        persist(m, e);
        return rc;
    }
    e->rt = rd_proxy_rt_new(snap);
    for (int i = 0; i < m->nworkers; i++)
        rd_worker_add_listener(m->workers[i], e->rt, e->rec.id, fds[i]);
    free(fds);
    e->status = RD_PROXY_RUNNING;
    set_last_error(e, NULL);
    free(e->rec.desired_status);
    e->rec.desired_status = rd_strdup("running");
    persist(m, e);
    rd_info("proxy %s (%s) listening on http://%s:%d", e->rec.name, e->rec.provider, e->rec.bind, e->rec.port);
    return 0;
}

void rd_manager_restore(struct rd_manager *m)
{
    for (struct rd_proxy_entry *e = m->entries; e; e = e->next) {
        if (strcmp(e->rec.desired_status, "running") != 0)
            continue;
        struct rd_mgr_err err;
        (void)start_entry(m, e, &err);
    }
}

int rd_manager_start(struct rd_manager *m, struct rd_proxy_entry *e, struct rd_mgr_err *err)
{
    return start_entry(m, e, err);
}

int rd_manager_create(struct rd_manager *m, struct rd_proxy_rec *rec, bool start, struct rd_proxy_entry **out,
                      struct rd_mgr_err *err)
{
    if (find_name(m, rec->name, NULL)) {
        set_err(err, 409, "conflict", "name", "a proxy named '%s' already exists", rec->name);
        return RD_ECONFLICT;
    }
    struct rd_proxy_entry *other = find_port(m, rec->port, NULL);
    if (other) {
        set_err(err, 409, "conflict", "port", "port %d is already assigned to proxy '%s'", rec->port,
                other->rec.name);
        return RD_ECONFLICT;
    }
    struct rd_proxy_entry *e = rd_calloc(1, sizeof *e);
    e->rec = *rec;
    memset(rec, 0, sizeof *rec);
    free(e->rec.desired_status);
    e->rec.desired_status = rd_strdup("stopped");
    int rc = rd_store_proxy_insert(m->store, &e->rec);
    if (rc < 0) {
        if (rc == RD_ECONFLICT)
            set_err(err, 409, "conflict", NULL, "name or port already in use");
        else
            set_err(err, 500, "store_error", NULL, "cannot save the proxy: %s", rd_strerror(rc));
        entry_free(e);
        return rc;
    }
    e->status = RD_PROXY_STOPPED;
    insert_sorted(m, e);
    if (start) {
        struct rd_mgr_err ignored;
        (void)start_entry(m, e, &ignored); /* failure shows as status "error" */
    }
    *out = e;
    return 0;
}

/* ---- stopping ---- */

struct stop_ctx {
    struct rd_stop_op op; /* first: the mailbox hands us &op.mail */
    struct rd_manager *m;
    struct rd_proxy_entry *e;
    bool persist;
    bool primary; /* the stop that owns the entry's transition */
    bool restart; /* a move: start again on the new address once unlistened */
};

static void run_waiters(struct rd_proxy_entry *e)
{
    /* Detach first: a waiter may start another stop on this entry. */
    struct rd_waiter *w = e->waiters;
    e->waiters = NULL;
    while (w) {
        struct rd_waiter *next = w->next;
        w->fn(w->ud);
        free(w);
        w = next;
    }
}

static void on_stop_done(struct rd_mail *mail, void *ctx)
{
    (void)ctx;
    struct stop_ctx *sc = (struct stop_ctx *)mail;
    struct rd_proxy_entry *e = sc->e;
    struct rd_manager *m = sc->m;
    if (sc->primary) {
        rd_proxy_rt_unref(e->rt);
        e->rt = NULL;
        e->status = RD_PROXY_STOPPED;
        if (sc->persist && !e->deleting) {
            free(e->rec.desired_status);
            e->rec.desired_status = rd_strdup("stopped");
            persist(m, e);
        }
        if (sc->restart && !e->deleting) {
            struct rd_mgr_err ignored;
            (void)start_entry(m, e, &ignored);
        } else {
            rd_info("proxy %s stopped", e->rec.name);
        }
        run_waiters(e);
    }
    free(sc);
}

static void add_waiter(struct rd_proxy_entry *e, rd_manager_done_fn done, void *ud)
{
    if (done == NULL)
        return;
    struct rd_waiter *w = rd_calloc(1, sizeof *w);
    w->fn = done;
    w->ud = ud;
    struct rd_waiter **pp = &e->waiters;
    while (*pp)
        pp = &(*pp)->next;
    *pp = w;
}

static void send_stop(struct rd_manager *m, struct rd_proxy_entry *e, enum rd_http_stop_mode mode, uint64_t timeout_ms,
                      bool persist_state, bool primary, bool restart)
{
    struct stop_ctx *sc = rd_calloc(1, sizeof *sc);
    sc->m = m;
    sc->e = e;
    sc->persist = persist_state;
    sc->primary = primary;
    sc->restart = restart;
    atomic_init(&sc->op.pending, m->nworkers);
    sc->op.reply_to = &m->mb;
    sc->op.on_done = on_stop_done;
    for (int i = 0; i < m->nworkers; i++)
        rd_worker_stop_listener(m->workers[i], e->rec.id, mode, timeout_ms, restart, &sc->op);
}

struct later {
    uv_timer_t timer;
    rd_manager_done_fn fn;
    void *ud;
};

static void on_later_closed(uv_handle_t *h)
{
    free(h->data);
}

static void on_later(uv_timer_t *t)
{
    struct later *l = t->data;
    l->fn(l->ud);
    uv_close((uv_handle_t *)&l->timer, on_later_closed);
}

/* Calls fn on a later loop turn, so completion never runs inside the call. */
static void call_later(struct rd_manager *m, rd_manager_done_fn fn, void *ud)
{
    if (fn == NULL)
        return;
    struct later *l = rd_calloc(1, sizeof *l);
    l->fn = fn;
    l->ud = ud;
    uv_timer_init(m->loop, &l->timer);
    l->timer.data = l;
    uv_timer_start(&l->timer, on_later, 0, 0);
}

void rd_manager_stop(struct rd_manager *m, struct rd_proxy_entry *e, enum rd_http_stop_mode mode,
                     uint64_t timeout_ms, bool persist_state, rd_manager_done_fn done, void *ud)
{
    if (e->status == RD_PROXY_STOPPING) {
        add_waiter(e, done, ud);
        if (mode == RD_HTTP_STOP_FORCE)
            send_stop(m, e, RD_HTTP_STOP_FORCE, 0, false, false, false);
        return;
    }
    if (e->status != RD_PROXY_RUNNING) {
        if (persist_state && strcmp(e->rec.desired_status, "stopped") != 0) {
            free(e->rec.desired_status);
            e->rec.desired_status = rd_strdup("stopped");
            persist(m, e);
        }
        if (e->status == RD_PROXY_ERROR && persist_state) {
            e->status = RD_PROXY_STOPPED;
        }
        call_later(m, done, ud);
        return;
    }
    e->status = RD_PROXY_STOPPING;
    add_waiter(e, done, ud);
    send_stop(m, e, mode, timeout_ms, persist_state, true, false);
}

/* ---- update ---- */

int rd_manager_update(struct rd_manager *m, struct rd_proxy_entry *e, struct rd_proxy_rec *rec,
                      struct rd_mgr_err *err, rd_manager_done_fn done, void *ud)
{
    if (find_name(m, rec->name, e)) {
        set_err(err, 409, "conflict", "name", "a proxy named '%s' already exists", rec->name);
        return RD_ECONFLICT;
    }
    struct rd_proxy_entry *other = find_port(m, rec->port, e);
    if (other) {
        set_err(err, 409, "conflict", "port", "port %d is already assigned to proxy '%s'", rec->port,
                other->rec.name);
        return RD_ECONFLICT;
    }
    if (e->status == RD_PROXY_STOPPING) {
        set_err(err, 409, "conflict", NULL, "proxy '%s' is stopping", e->rec.name);
        return RD_ESTATE;
    }
    bool moved = rec->port != e->rec.port || strcmp(rec->bind, e->rec.bind) != 0;
    /* Identity, creation time and run state are not the caller's to change. */
    rec->id = e->rec.id;
    rec->created_at = e->rec.created_at;
    free(rec->desired_status);
    rec->desired_status = rd_strdup(e->rec.desired_status);
    free(rec->last_error);
    rec->last_error = e->rec.last_error ? rd_strdup(e->rec.last_error) : NULL;
    int rc = rd_store_proxy_update(m->store, rec);
    if (rc < 0) {
        if (rc == RD_ECONFLICT)
            set_err(err, 409, "conflict", NULL, "name or port already in use");
        else
            set_err(err, 500, "store_error", NULL, "cannot save the proxy: %s", rd_strerror(rc));
        return rc;
    }
    rd_proxy_rec_free(&e->rec);
    e->rec = *rec;
    memset(rec, 0, sizeof *rec);

    if (e->status == RD_PROXY_ERROR && moved) {
        /* A proxy that failed to bind gets another chance on its new address. */
        struct rd_mgr_err ignored;
        e->status = RD_PROXY_STOPPED;
        (void)start_entry(m, e, &ignored);
    } else if (e->status == RD_PROXY_RUNNING && moved) {
        /* The old listeners close first (their in-flight requests finish on
         * their own), then the new ones open; the caller hears back once the
         * proxy listens on its new address only. */
        e->status = RD_PROXY_STOPPING;
        add_waiter(e, done, ud);
        send_stop(m, e, RD_HTTP_STOP_GRACEFUL, 30000, false, true, true);
        return 0;
    } else if (e->status == RD_PROXY_RUNNING) {
        const char *why = NULL;
        struct rd_proxy_snap *snap = rd_proxy_snap_new(&e->rec, m->header_timeout_ms, &why);
        if (snap)
            rd_proxy_rt_swap(e->rt, snap);
    }
    call_later(m, done, ud);
    return 0;
}

/* ---- delete ---- */

struct delete_ctx {
    struct rd_manager *m;
    struct rd_proxy_entry *e;
    rd_manager_done_fn done;
    void *ud;
};

static void finish_delete(void *ud)
{
    struct delete_ctx *dc = ud;
    struct rd_manager *m = dc->m;
    struct rd_proxy_entry *e = dc->e;
    int rc = rd_store_proxy_delete(m->store, e->rec.id);
    if (rc < 0 && rc != RD_ENOTFOUND)
        rd_error("proxy %s: cannot delete from the store: %s", e->rec.name, rd_strerror(rc));
    for (struct rd_proxy_entry **pp = &m->entries; *pp; pp = &(*pp)->next) {
        if (*pp == e) {
            *pp = e->next;
            break;
        }
    }
    rd_info("proxy %s deleted", e->rec.name);
    entry_free(e);
    if (dc->done)
        dc->done(dc->ud);
    free(dc);
}

void rd_manager_delete(struct rd_manager *m, struct rd_proxy_entry *e, rd_manager_done_fn done, void *ud)
{
    struct delete_ctx *dc = rd_calloc(1, sizeof *dc);
    dc->m = m;
    dc->e = e;
    dc->done = done;
    dc->ud = ud;
    e->deleting = true;
    if (e->status == RD_PROXY_RUNNING || e->status == RD_PROXY_STOPPING)
        rd_manager_stop(m, e, RD_HTTP_STOP_FORCE, 0, false, finish_delete, dc);
    else
        call_later(m, finish_delete, dc);
}

/* ---- shutdown ---- */

struct shutdown_ctx {
    int pending;
    rd_manager_done_fn done;
    void *ud;
};

static void one_stopped(void *ud)
{
    struct shutdown_ctx *sc = ud;
    if (--sc->pending == 0) {
        if (sc->done)
            sc->done(sc->ud);
        free(sc);
    }
}

void rd_manager_shutdown(struct rd_manager *m, enum rd_http_stop_mode mode, uint64_t timeout_ms,
                         rd_manager_done_fn done, void *ud)
{
    struct shutdown_ctx *sc = rd_calloc(1, sizeof *sc);
    sc->done = done;
    sc->ud = ud;
    sc->pending = 1; /* held until every stop is issued */
    for (struct rd_proxy_entry *e = m->entries; e; e = e->next) {
        if (e->status != RD_PROXY_RUNNING && e->status != RD_PROXY_STOPPING)
            continue;
        sc->pending++;
        rd_manager_stop(m, e, mode, timeout_ms, false, one_stopped, sc);
    }
    call_later(m, one_stopped, sc);
}
