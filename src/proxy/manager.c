#include "proxy/manager.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/cache.h"
#include "cache/persist.h"
#include "http/server.h"
#include "proxy/stages/stages.h"
#include "util/err.h"
#include "util/json.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/time.h"

#define FIRST_AUTO_PORT 8001
#define LAST_AUTO_PORT 65535

/* How long a move lets the old listeners' requests finish before cutting them. */
#define MOVE_DRAIN_MS 30000

static void advance(struct rd_manager *m, struct rd_proxy_entry *e);

static const char *state_name(enum rd_proxy_status s)
{
    switch (s) {
    case RD_PROXY_RUNNING: return "running";
    case RD_PROXY_ERROR: return "error";
    case RD_PROXY_STOPPING: return "stopping";
    case RD_PROXY_MOVING: return "moving";
    case RD_PROXY_STOPPED:
    default: return "stopped";
    }
}

const char *rd_proxy_status_name(const struct rd_proxy_entry *e)
{
    /* A move keeps serving; it only shows as stopping when what comes next
     * is a stop, so the API never says running for a proxy about to stop. */
    if (e->status == RD_PROXY_MOVING)
        return e->stop == RD_PROXY_STOP_NONE ? "running" : "stopping";
    return state_name(e->status);
}

bool rd_proxy_is_deleting(const struct rd_proxy_entry *e)
{
    return e->goal == RD_PROXY_GOAL_DELETED;
}

/* The one place that changes a proxy's status. */
static void set_status(struct rd_proxy_entry *e, enum rd_proxy_status s)
{
    if (e->status == s)
        return;
    rd_debug("proxy %s: %s -> %s", e->rec.name, state_name(e->status), state_name(s));
    e->status = s;
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

static void on_kick(uv_timer_t *t)
{
    struct rd_proxy_entry *e = t->data;
    advance(e->m, e);
}

/* The entry's cache, with the limits of its configuration (a document
 * that does not build gets the defaults: the proxy will not start with it
 * anyway). Entries leaving it are deleted from the store too. */
static struct rd_cache *cache_new(struct rd_proxy_entry *e)
{
    struct rd_cache_limits lim;
    struct json_object *doc = json_tokener_parse(e->rec.config_json ? e->rec.config_json : "{}");
    if (doc == NULL)
        doc = json_object_new_object();
    rd_cache_limits_of(doc, &lim);
    json_object_put(doc);
    struct rd_cache_opts opts = {.removed = rd_cache_stage_removed, .removed_ud = (void *)(intptr_t)e->rec.id};
    return rd_cache_new(&lim, &opts);
}

/* Takes over rec's strings. */
static struct rd_proxy_entry *entry_new(struct rd_manager *m, struct rd_proxy_rec *rec)
{
    struct rd_proxy_entry *e = rd_calloc(1, sizeof *e);
    e->m = m;
    e->rec = *rec;
    memset(rec, 0, sizeof *rec);
    e->status = RD_PROXY_STOPPED;
    e->goal = RD_PROXY_GOAL_STOPPED;
    e->usage = rd_proxy_usage_new((unsigned)m->nworkers, rd_time_wall_ms());
    e->failstats = rd_failstats_new((unsigned)m->nworkers, rd_time_wall_ms());
    e->cache = cache_new(e);
    uv_timer_init(m->loop, &e->kick);
    e->kick.data = e;
    uv_timer_init(m->loop, &e->temp_timer);
    e->temp_timer.data = e;
    e->open_handles = 2;
    return e;
}

static void on_entry_closed(uv_handle_t *h)
{
    struct rd_proxy_entry *e = h->data;
    if (--e->open_handles > 0)
        return;
    /* Waiters left here are calls whose answer no longer matters (the
     * process is exiting; their connections are gone). */
    while (e->waiters) {
        struct rd_waiter *next = e->waiters->next;
        free(e->waiters);
        e->waiters = next;
    }
    rd_proxy_rec_free(&e->rec);
    rd_proxy_rt_unref(e->rt);
    rd_proxy_usage_unref(e->usage);
    rd_failstats_unref(e->failstats);
    rd_cache_unref(e->cache);
    free(e->temp_config);
    free(e->live_bind);
    free(e);
}

/* Memory goes in the close callback of the embedded timer. */
static void entry_free(struct rd_proxy_entry *e)
{
    uv_close((uv_handle_t *)&e->kick, on_entry_closed);
    uv_close((uv_handle_t *)&e->temp_timer, on_entry_closed);
}

/* Runs the driver on the next loop turn, so no callback fires inside a call
 * and calls made in one turn are seen together. */
static void kick(struct rd_proxy_entry *e)
{
    uv_timer_start(&e->kick, on_kick, 0, 0);
}

/* Expired cache entries are never served (lookups check), and this purge
 * frees them (and their stored copies) in the background. */
#define PURGE_INTERVAL_MS 30000

static void on_purge(uv_timer_t *t)
{
    struct rd_manager *m = t->data;
    for (struct rd_proxy_entry *e = m->entries; e; e = e->next)
        (void)rd_cache_purge_expired(e->cache);
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
    uv_timer_init(loop, &m->purge);
    m->purge.data = m;
    uv_timer_start(&m->purge, on_purge, PURGE_INTERVAL_MS, PURGE_INTERVAL_MS);
    uv_unref((uv_handle_t *)&m->purge);
    struct rd_proxy_rec *recs = NULL;
    size_t n = 0;
    rc = rd_store_proxy_list(store, &recs, &n);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++)
        insert_sorted(m, entry_new(m, &recs[i])); /* strings move into the entry */
    free(recs);
    return 0;
}

/* Whether doc (a stored configuration) keeps its cache in the store. */
static bool persists(const char *config_json)
{
    struct json_object *doc = json_tokener_parse(config_json ? config_json : "{}");
    struct json_object *c = doc ? rd_json_get(doc, "cache") : NULL;
    bool on = c == NULL || (rd_json_get_bool(c, "enabled", true) && rd_json_get_bool(c, "persist", true));
    json_object_put(doc);
    return on;
}

void rd_manager_set_persist(struct rd_manager *m, struct rd_cache_persist *p)
{
    m->persist = p;
    rd_cache_stage_set_persist(p);
    for (struct rd_proxy_entry *e = m->entries; p && e; e = e->next)
        if (persists(e->rec.config_json))
            rd_cache_persist_load(p, e->rec.id, e->cache);
}

void rd_manager_free(struct rd_manager *m)
{
    uv_close((uv_handle_t *)&m->purge, NULL);
    /* Completions still queued are dropped: with the workers gone nothing
     * may start, and nobody is left to answer. */
    m->closing = true;
    rd_mailbox_close(&m->mb);
    struct rd_proxy_entry *e = m->entries;
    while (e) {
        struct rd_proxy_entry *next = e->next;
        entry_free(e);
        e = next;
    }
    m->entries = NULL;
}

struct rd_proxy_entry *rd_manager_find(struct rd_manager *m, int64_t id)
{
    for (struct rd_proxy_entry *e = m->entries; e; e = e->next)
        if (e->rec.id == id && !rd_proxy_is_deleting(e))
            return e;
    return NULL;
}

int rd_manager_running(const struct rd_manager *m)
{
    int n = 0;
    for (const struct rd_proxy_entry *e = m->entries; e; e = e->next)
        n += strcmp(rd_proxy_status_name(e), "running") == 0;
    return n;
}

static struct rd_proxy_entry *find_port(struct rd_manager *m, int port, const struct rd_proxy_entry *except)
{
    for (struct rd_proxy_entry *e = m->entries; e; e = e->next)
        if (e != except && e->rec.port == port && !rd_proxy_is_deleting(e))
            return e;
    return NULL;
}

static struct rd_proxy_entry *find_name(struct rd_manager *m, const char *name, const struct rd_proxy_entry *except)
{
    for (struct rd_proxy_entry *e = m->entries; e; e = e->next)
        if (e != except && strcmp(e->rec.name, name) == 0 && !rd_proxy_is_deleting(e))
            return e;
    return NULL;
}

/* The uniqueness rules of create and update: rec's name and port may not
 * belong to another proxy (except is the one being changed, or NULL). */
static int check_conflicts(struct rd_manager *m, const struct rd_proxy_rec *rec, const struct rd_proxy_entry *except,
                           struct rd_mgr_err *err)
{
    if (find_name(m, rec->name, except)) {
        set_err(err, 409, "conflict", "name", "a proxy named '%s' already exists", rec->name);
        return RD_ECONFLICT;
    }
    struct rd_proxy_entry *other = find_port(m, rec->port, except);
    if (other) {
        set_err(err, 409, "conflict", "port", "port %d is already assigned to proxy '%s'", rec->port,
                other->rec.name);
        return RD_ECONFLICT;
    }
    return 0;
}

/* Renders a store failure of an insert or update. */
static void store_err(struct rd_mgr_err *err, int rc)
{
    if (rc == RD_ECONFLICT)
        set_err(err, 409, "conflict", NULL, "name or port already in use");
    else
        set_err(err, 500, "store_error", NULL, "cannot save the proxy: %s", rd_strerror(rc));
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

static void set_desired(struct rd_manager *m, struct rd_proxy_entry *e, const char *desired)
{
    if (strcmp(e->rec.desired_status, desired) == 0)
        return;
    free(e->rec.desired_status);
    e->rec.desired_status = rd_strdup(desired);
    persist(m, e);
}

/* ---- waiters ---- */

static void add_waiter(struct rd_proxy_entry *e, enum rd_mgr_op op, rd_manager_done_fn done, void *ud)
{
    if (done == NULL)
        return;
    struct rd_waiter *w = rd_calloc(1, sizeof *w);
    w->op = op;
    w->fn = done;
    w->ud = ud;
    struct rd_waiter **pp = &e->waiters;
    while (*pp)
        pp = &(*pp)->next;
    *pp = w;
}

/* Answers the waiters for op (all of them with all), in arrival order.
 * They are detached first: a callback may make another call on e, which
 * adds a waiter for a later answer. */
static void answer(struct rd_proxy_entry *e, bool all, enum rd_mgr_op op, const struct rd_mgr_err *err)
{
    struct rd_waiter *mine = NULL, **tail = &mine;
    for (struct rd_waiter **pp = &e->waiters; *pp;) {
        struct rd_waiter *w = *pp;
        if (all || w->op == op) {
            *pp = w->next;
            w->next = NULL;
            *tail = w;
            tail = &w->next;
        } else {
            pp = &w->next;
        }
    }
    while (mine) {
        struct rd_waiter *next = mine->next;
        mine->fn(mine->ud, err);
        free(mine);
        mine = next;
    }
}

/* ---- transitions ---- */

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

/* The snapshot e runs: its record, with the temporary configuration in
 * place of the permanent one while there is one, sharing e's counters. */
static struct rd_proxy_snap *build_snap(struct rd_manager *m, struct rd_proxy_entry *e, const char **why)
{
    struct rd_proxy_rec r = e->rec; /* borrowed fields: snap_new copies what it keeps */
    if (e->temp_config)
        r.config_json = e->temp_config;
    struct rd_proxy_snap *snap = rd_proxy_snap_new(&r, m->header_timeout_ms, why);
    if (snap) {
        snap->usage = rd_proxy_usage_ref(e->usage);
        snap->failstats = rd_failstats_ref(e->failstats);
        snap->cache = rd_cache_ref(e->cache);
        struct rd_cache_limits lim;
        rd_cache_limits_of(snap->config, &lim);
        rd_cache_set_limits(e->cache, &lim); /* memory_limits as configured now */
    }
    return snap;
}

/* STOPPED, ERROR or the end of a move -> RUNNING, or ERROR with err filled. */
static int start_entry(struct rd_manager *m, struct rd_proxy_entry *e, struct rd_mgr_err *err)
{
    const char *why = NULL;
    int rc = 0;
    int *fds = NULL;
    struct rd_proxy_snap *snap = build_snap(m, e, &why);
    if (snap == NULL) {
        set_err(err, 409, "start_failed", NULL, "cannot start proxy '%s': %s", e->rec.name, why);
        rc = RD_EINVAL;
        goto out;
    }
    fds = rd_calloc((size_t)m->nworkers, sizeof *fds);
    rc = bind_all(m, &e->rec, fds);
    if (rc < 0) {
        set_err(err, 409, "port_unavailable", "port", "cannot listen on %s:%d: %s", e->rec.bind, e->rec.port,
                uv_strerror(rc));
        goto out;
    }
    e->rt = rd_proxy_rt_new(snap);
    snap = NULL;
    for (int i = 0; i < m->nworkers; i++)
        rd_worker_add_listener(m->workers[i], e->rt, e->rec.id, fds[i]);
    free(e->live_bind);
    e->live_bind = rd_strdup(e->rec.bind);
    e->live_port = e->rec.port;
    set_status(e, RD_PROXY_RUNNING);
    set_last_error(e, NULL);
    free(e->rec.desired_status);
    e->rec.desired_status = rd_strdup("running");
    persist(m, e);
    rd_info("proxy %s (%s) listening on http://%s:%d", e->rec.name, e->rec.provider, e->rec.bind, e->rec.port);
out:
    if (rc < 0) {
        set_status(e, RD_PROXY_ERROR);
        set_last_error(e, err->message);
        rd_warn("proxy %s: %s", e->rec.name, err->message);
        persist(m, e);
    }
    rd_proxy_snap_unref(snap);
    free(fds);
    return rc;
}

enum stop_kind {
    STOP_TRANSITION, /* the stop or move that the entry's status waits for */
    STOP_TIGHTEN,    /* escalates the running one (force, earlier deadline); its completion is ignored */
};

struct stop_ctx {
    struct rd_stop_op op; /* first: the mailbox hands us &op.mail */
    struct rd_manager *m;
    struct rd_proxy_entry *e; /* STOP_TRANSITION only: the entry outlives its transition */
    enum stop_kind kind;
};

static void on_stop_done(struct rd_mail *mail, void *ctx);

static void send_stop(struct rd_manager *m, struct rd_proxy_entry *e, enum stop_kind kind, enum rd_http_stop_mode mode,
                      uint64_t timeout_ms, bool ack_unlisten)
{
    struct stop_ctx *sc = rd_calloc(1, sizeof *sc);
    sc->m = m;
    sc->e = kind == STOP_TRANSITION ? e : NULL;
    sc->kind = kind;
    atomic_init(&sc->op.pending, m->nworkers);
    sc->op.reply_to = &m->mb;
    sc->op.on_done = on_stop_done;
    for (int i = 0; i < m->nworkers; i++)
        rd_worker_stop_listener(m->workers[i], e->rec.id, mode, timeout_ms, ack_unlisten, &sc->op);
}

/* What the stop asked for means now: the mode and the time left. */
static enum rd_http_stop_mode stop_params(struct rd_manager *m, const struct rd_proxy_entry *e, uint64_t *timeout_ms)
{
    uint64_t now = uv_now(m->loop);
    *timeout_ms = 0;
    if (e->stop == RD_PROXY_STOP_FORCE || e->stop_deadline <= now)
        return RD_HTTP_STOP_FORCE;
    *timeout_ms = e->stop_deadline - now;
    return RD_HTTP_STOP_GRACEFUL;
}

/* RUNNING or MOVING -> STOPPING. The workers stop every binding of the
 * proxy, including those still draining after a move. */
static void begin_stop(struct rd_manager *m, struct rd_proxy_entry *e)
{
    uint64_t timeout_ms;
    enum rd_http_stop_mode mode = stop_params(m, e, &timeout_ms);
    set_status(e, RD_PROXY_STOPPING);
    send_stop(m, e, STOP_TRANSITION, mode, timeout_ms, false);
}

/* RUNNING -> MOVING: the old listeners close (their requests finish on
 * their own), then the record's address opens. */
static void begin_move(struct rd_manager *m, struct rd_proxy_entry *e)
{
    rd_info("proxy %s: moving from %s:%d to %s:%d", e->rec.name, e->live_bind, e->live_port, e->rec.bind,
            e->rec.port);
    set_status(e, RD_PROXY_MOVING);
    send_stop(m, e, STOP_TRANSITION, RD_HTTP_STOP_GRACEFUL, MOVE_DRAIN_MS, true);
}

static void on_stop_done(struct rd_mail *mail, void *ctx)
{
    (void)ctx;
    struct stop_ctx *sc = (struct stop_ctx *)mail;
    struct rd_manager *m = sc->m;
    struct rd_proxy_entry *e = sc->e;
    enum stop_kind kind = sc->kind;
    free(sc);
    if (kind != STOP_TRANSITION || m->closing)
        return;
    rd_proxy_rt_unref(e->rt);
    e->rt = NULL;
    free(e->live_bind);
    e->live_bind = NULL;
    e->live_port = 0;
    if (e->status == RD_PROXY_MOVING && e->stop != RD_PROXY_STOP_NONE) {
        /* A stop came during the move: it wins over the restart, and waits
         * for (or cuts) the old listeners' connections. */
        begin_stop(m, e);
        return;
    }
    if (e->status == RD_PROXY_STOPPING)
        rd_info("proxy %s stopped", e->rec.name);
    set_status(e, RD_PROXY_STOPPED);
    advance(m, e);
}

static void remove_entry(struct rd_manager *m, struct rd_proxy_entry *e)
{
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
    answer(e, true, RD_MGR_OP_DELETE, NULL);
    entry_free(e);
}

static bool address_changed(const struct rd_proxy_entry *e)
{
    return e->live_bind == NULL || e->live_port != e->rec.port || strcmp(e->live_bind, e->rec.bind) != 0;
}

/* The driver: moves e toward what was asked (stop, then goal, then the
 * record's address) and answers each waiter when its outcome happened.
 * Runs from the kick timer and from worker completions, never inside a
 * call; e may be freed when it returns. */
static void advance(struct rd_manager *m, struct rd_proxy_entry *e)
{
    uv_timer_stop(&e->kick);
    for (;;) {
        switch (e->status) {
        case RD_PROXY_STOPPING:
        case RD_PROXY_MOVING:
            return; /* on_stop_done continues */
        case RD_PROXY_RUNNING:
            if (e->stop != RD_PROXY_STOP_NONE) {
                begin_stop(m, e);
                return;
            }
            if (address_changed(e)) {
                begin_move(m, e);
                return;
            }
            answer(e, true, RD_MGR_OP_UPDATE, NULL);
            return;
        case RD_PROXY_STOPPED:
        case RD_PROXY_ERROR:
            if (e->stop != RD_PROXY_STOP_NONE) {
                /* Every accepted stop is answered "stopped" before a later
                 * start runs. A stop clears an error. */
                e->stop = RD_PROXY_STOP_NONE;
                e->stop_deadline = 0;
                set_status(e, RD_PROXY_STOPPED);
                answer(e, false, RD_MGR_OP_STOP, NULL);
                continue;
            }
            if (e->goal == RD_PROXY_GOAL_DELETED) {
                remove_entry(m, e);
                return;
            }
            if (e->goal == RD_PROXY_GOAL_RUNNING) {
                struct rd_mgr_err err;
                if (start_entry(m, e, &err) == 0) {
                    answer(e, false, RD_MGR_OP_START, NULL);
                } else {
                    /* Not retried on its own: the next start or move is. */
                    e->goal = RD_PROXY_GOAL_STOPPED;
                    answer(e, false, RD_MGR_OP_START, &err);
                }
                continue;
            }
            answer(e, true, RD_MGR_OP_UPDATE, NULL);
            return;
        }
    }
}

/* Records a stop request on e, merged with any earlier one: force wins,
 * then the earlier deadline. A stop already running is tightened now. */
static void request_stop(struct rd_manager *m, struct rd_proxy_entry *e, enum rd_http_stop_mode mode,
                         uint64_t timeout_ms)
{
    enum rd_proxy_stop want = mode == RD_HTTP_STOP_FORCE || timeout_ms == 0 ? RD_PROXY_STOP_FORCE
                                                                           : RD_PROXY_STOP_GRACEFUL;
    uint64_t deadline = want == RD_PROXY_STOP_FORCE ? 0 : uv_now(m->loop) + timeout_ms;
    bool tighter = e->stop == RD_PROXY_STOP_NONE || (want == RD_PROXY_STOP_FORCE && e->stop != RD_PROXY_STOP_FORCE) ||
                   (want == RD_PROXY_STOP_GRACEFUL && e->stop == RD_PROXY_STOP_GRACEFUL && deadline < e->stop_deadline);
    if (!tighter)
        return;
    bool was_stopping = e->stop != RD_PROXY_STOP_NONE && e->status == RD_PROXY_STOPPING;
    e->stop = want;
    e->stop_deadline = deadline;
    if (was_stopping) {
        uint64_t left;
        enum rd_http_stop_mode now_mode = stop_params(m, e, &left);
        send_stop(m, e, STOP_TIGHTEN, now_mode, left, false);
    }
}

/* ---- calls ---- */

void rd_manager_restore(struct rd_manager *m)
{
    for (struct rd_proxy_entry *e = m->entries; e; e = e->next) {
        if (strcmp(e->rec.desired_status, "running") != 0)
            continue;
        e->goal = RD_PROXY_GOAL_RUNNING;
        advance(m, e); /* nobody waits yet, so nothing is answered inside */
    }
}

int rd_manager_create(struct rd_manager *m, struct rd_proxy_rec *rec, bool start, struct rd_proxy_entry **out,
                      struct rd_mgr_err *err)
{
    int rc = check_conflicts(m, rec, NULL, err);
    if (rc < 0)
        return rc;
    free(rec->desired_status);
    rec->desired_status = rd_strdup("stopped");
    rc = rd_store_proxy_insert(m->store, rec);
    if (rc < 0) {
        store_err(err, rc);
        return rc;
    }
    struct rd_proxy_entry *e = entry_new(m, rec);
    insert_sorted(m, e);
    if (start) {
        e->goal = RD_PROXY_GOAL_RUNNING;
        advance(m, e); /* a failure shows as status "error" */
    }
    *out = e;
    return 0;
}

void rd_manager_start(struct rd_manager *m, struct rd_proxy_entry *e, rd_manager_done_fn done, void *ud)
{
    (void)m;
    e->goal = RD_PROXY_GOAL_RUNNING;
    add_waiter(e, RD_MGR_OP_START, done, ud);
    kick(e);
}

void rd_manager_stop(struct rd_manager *m, struct rd_proxy_entry *e, enum rd_http_stop_mode mode,
                     uint64_t timeout_ms, bool persist_state, rd_manager_done_fn done, void *ud)
{
    rd_manager_end_temp(m, e); /* a stop (restart, shutdown) ends a chaos run */
    if (e->goal != RD_PROXY_GOAL_DELETED)
        e->goal = RD_PROXY_GOAL_STOPPED;
    if (persist_state)
        set_desired(m, e, "stopped");
    request_stop(m, e, mode, timeout_ms);
    add_waiter(e, RD_MGR_OP_STOP, done, ud);
    kick(e);
}

int rd_manager_update(struct rd_manager *m, struct rd_proxy_entry *e, struct rd_proxy_rec *rec,
                      struct rd_mgr_err *err, rd_manager_done_fn done, void *ud)
{
    int rc = check_conflicts(m, rec, e, err);
    if (rc < 0)
        return rc;
    bool moved = rec->port != e->rec.port || strcmp(rec->bind, e->rec.bind) != 0;
    /* Identity, creation time and run state are not the caller's to change. */
    rec->id = e->rec.id;
    rec->created_at = e->rec.created_at;
    free(rec->desired_status);
    rec->desired_status = rd_strdup(e->rec.desired_status);
    free(rec->last_error);
    rec->last_error = e->rec.last_error ? rd_strdup(e->rec.last_error) : NULL;
    rc = rd_store_proxy_update(m->store, rec);
    if (rc < 0) {
        store_err(err, rc);
        return rc;
    }
    rd_proxy_rec_free(&e->rec);
    e->rec = *rec;
    memset(rec, 0, sizeof *rec);
    /* Listeners that stay where they are take the new settings for their
     * next request; a move or a later start builds its own snapshot. */
    if (e->rt) {
        const char *why = NULL;
        struct rd_proxy_snap *snap = build_snap(m, e, &why);
        if (snap)
            rd_proxy_rt_swap(e->rt, snap);
    }
    /* A proxy that failed to start gets another chance on its new address. */
    if (e->status == RD_PROXY_ERROR && moved && e->goal == RD_PROXY_GOAL_STOPPED && e->stop == RD_PROXY_STOP_NONE)
        e->goal = RD_PROXY_GOAL_RUNNING;
    add_waiter(e, RD_MGR_OP_UPDATE, done, ud);
    kick(e);
    return 0;
}

void rd_manager_delete(struct rd_manager *m, struct rd_proxy_entry *e, rd_manager_done_fn done, void *ud)
{
    rd_manager_end_temp(m, e);
    e->goal = RD_PROXY_GOAL_DELETED;
    request_stop(m, e, RD_HTTP_STOP_FORCE, 0);
    add_waiter(e, RD_MGR_OP_DELETE, done, ud);
    kick(e);
}

/* ---- temporary configuration ---- */

static void on_temp_expired(uv_timer_t *t)
{
    struct rd_proxy_entry *e = t->data;
    rd_manager_end_temp(e->m, e);
}

int rd_manager_set_temp(struct rd_manager *m, struct rd_proxy_entry *e, char *config_json, uint64_t ttl_ms,
                        struct rd_mgr_err *err)
{
    if (e->rt == NULL || e->status != RD_PROXY_RUNNING || e->goal != RD_PROXY_GOAL_RUNNING ||
        e->stop != RD_PROXY_STOP_NONE) {
        set_err(err, 409, "not_running", NULL,
                "proxy '%s' is %s: a temporary configuration applies to a running proxy (a stop ends it)",
                e->rec.name, rd_proxy_status_name(e));
        return RD_ECONFLICT;
    }
    char *old = e->temp_config;
    e->temp_config = config_json;
    const char *why = NULL;
    struct rd_proxy_snap *snap = build_snap(m, e, &why);
    if (snap == NULL) {
        e->temp_config = old;
        set_err(err, 400, "invalid_config", NULL, "the configuration cannot run: %s", why);
        return RD_EINVAL;
    }
    free(old);
    rd_proxy_rt_swap(e->rt, snap);
    e->temp_until_ms = rd_time_wall_ms() + (int64_t)ttl_ms;
    /* Not a reason to keep the loop alive: shutdown stops the proxies,
     * which ends it, and the entry's close releases the handle. */
    uv_timer_start(&e->temp_timer, on_temp_expired, ttl_ms, 0);
    uv_unref((uv_handle_t *)&e->temp_timer);
    rd_info("proxy %s: temporary configuration for %llu s", e->rec.name, (unsigned long long)(ttl_ms / 1000u));
    return 0;
}

void rd_manager_end_temp(struct rd_manager *m, struct rd_proxy_entry *e)
{
    if (e->temp_config == NULL)
        return;
    uv_timer_stop(&e->temp_timer);
    free(e->temp_config);
    e->temp_config = NULL;
    e->temp_until_ms = 0;
    rd_info("proxy %s: temporary configuration ended, the permanent one runs", e->rec.name);
    if (e->rt) {
        const char *why = NULL;
        struct rd_proxy_snap *snap = build_snap(m, e, &why);
        if (snap)
            rd_proxy_rt_swap(e->rt, snap);
        else /* the permanent document was accepted when stored: not expected */
            rd_error("proxy %s: cannot rebuild the permanent configuration: %s", e->rec.name, why);
    }
}

/* ---- shutdown ---- */

struct shutdown_ctx {
    int pending;
    rd_manager_done_fn done;
    void *ud;
};

static void one_stopped(void *ud, const struct rd_mgr_err *err)
{
    (void)err;
    struct shutdown_ctx *sc = ud;
    if (--sc->pending == 0) {
        if (sc->done)
            sc->done(sc->ud, NULL);
        free(sc);
    }
}

static void on_timer_closed(uv_handle_t *h)
{
    free(h);
}

static void on_shutdown_issued(uv_timer_t *t)
{
    struct shutdown_ctx *sc = t->data;
    uv_close((uv_handle_t *)t, on_timer_closed);
    one_stopped(sc, NULL);
}

void rd_manager_shutdown(struct rd_manager *m, enum rd_http_stop_mode mode, uint64_t timeout_ms,
                         rd_manager_done_fn done, void *ud)
{
    struct shutdown_ctx *sc = rd_calloc(1, sizeof *sc);
    sc->done = done;
    sc->ud = ud;
    sc->pending = 1; /* held until every stop is issued */
    for (struct rd_proxy_entry *e = m->entries; e; e = e->next) {
        if (e->goal == RD_PROXY_GOAL_RUNNING)
            e->goal = RD_PROXY_GOAL_STOPPED; /* a start not yet done is overtaken */
        if (e->status != RD_PROXY_RUNNING && e->status != RD_PROXY_STOPPING && e->status != RD_PROXY_MOVING)
            continue;
        sc->pending++;
        rd_manager_stop(m, e, mode, timeout_ms, false, one_stopped, sc);
    }
    /* Released on a later turn, so done never fires inside this call. */
    uv_timer_t *t = rd_calloc(1, sizeof *t);
    uv_timer_init(m->loop, t);
    t->data = sc;
    uv_timer_start(t, on_shutdown_issued, 0, 0);
}
