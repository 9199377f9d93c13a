/* The control plane's view of proxies: the persisted records, their live
 * status, and the operations that start, stop, change and delete them.
 * Runs on the control thread only; it is the only caller of the store and
 * the only sender of worker messages.
 *
 * Every call records what it asks for on the entry (the goal, a stop, a new
 * record) and returns; one driver in manager.c then moves the entry's status
 * toward it, one transition at a time, and answers each caller once the
 * outcome it waits for has happened. docs/api.md has the state table. */
#ifndef RD_PROXY_MANAGER_H
#define RD_PROXY_MANAGER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "proxy/snapshot.h"
#include "proxy/worker.h"
#include "store/store.h"
#include "util/mailbox.h"

/* Where a proxy is. Only set_status() in manager.c writes it. */
enum rd_proxy_status {
    RD_PROXY_STOPPED,  /* no listener */
    RD_PROXY_RUNNING,  /* listening on live_bind:live_port */
    RD_PROXY_ERROR,    /* the last start failed (rec.last_error says why); no listener */
    RD_PROXY_STOPPING, /* the workers are closing the listeners and draining connections */
    RD_PROXY_MOVING,   /* the old listeners are closing; the record's address opens next */
};

/* What the last accepted start, stop or delete asked for. */
enum rd_proxy_goal { RD_PROXY_GOAL_STOPPED, RD_PROXY_GOAL_RUNNING, RD_PROXY_GOAL_DELETED };

/* The strongest stop asked for since the proxy last reached stopped. */
enum rd_proxy_stop { RD_PROXY_STOP_NONE, RD_PROXY_STOP_GRACEFUL, RD_PROXY_STOP_FORCE };

/* The kind of call a waiter stands for: it decides when the call is answered. */
enum rd_mgr_op { RD_MGR_OP_START, RD_MGR_OP_STOP, RD_MGR_OP_UPDATE, RD_MGR_OP_DELETE };

/* Error of a manager operation, for the API to render. */
struct rd_mgr_err {
    int status;       /* HTTP status: 400, 404, 409, 500 */
    const char *code; /* "conflict", "port_in_use", ... (static) */
    char field[64];
    char message[256];
};

/* Completion of a call: err is NULL when it succeeded, else borrowed for the
 * duration of the callback. Runs on the control loop, on a later turn than
 * the call. */
typedef void (*rd_manager_done_fn)(void *ud, const struct rd_mgr_err *err);

/* Someone waiting for a call's outcome (an API call). */
struct rd_waiter {
    struct rd_waiter *next;
    enum rd_mgr_op op;
    rd_manager_done_fn fn;
    void *ud;
};

struct rd_manager;

struct rd_proxy_entry {
    struct rd_proxy_entry *next; /* list ordered by id */
    struct rd_manager *m;        /* borrowed */
    struct rd_proxy_rec rec;     /* persisted state (rec.last_error mirrors the live one) */
    enum rd_proxy_status status;
    enum rd_proxy_goal goal;
    enum rd_proxy_stop stop;
    uint64_t stop_deadline;    /* loop time (ms) at which a graceful stop is cut */
    char *live_bind;           /* owned; the address the listeners accept on (RUNNING) */
    int live_port;
    struct rd_proxy_rt *rt;    /* while running or stopping */
    struct rd_waiter *waiters; /* owned list, in arrival order */
    uv_timer_t kick;           /* runs the driver on the next loop turn */
    struct rd_proxy_usage *usage; /* totals since the entry was loaded or created; every snapshot holds a reference */
    struct rd_failstats *failstats; /* simulated outcomes and retry audit, like usage */
    /* The proxy's response cache (cache/cache.h): one for the entry's
     * lifetime, so configuration changes, stops and starts keep it warm;
     * every snapshot holds a reference. Its limits follow memory_limits. */
    struct rd_cache *cache;
    /* A temporary configuration (PUT/PATCH .../config?ttl_s=N): the document
     * the running snapshot is built from instead of rec.config_json until
     * temp_timer fires. In memory only: a restart runs the permanent one. */
    char *temp_config;     /* owned, sealed like rec.config_json; NULL when none */
    int64_t temp_until_ms; /* wall clock at which it reverts */
    uv_timer_t temp_timer;
    int open_handles;      /* kick and temp_timer: the entry is freed when both are closed */
};

struct rd_manager {
    uv_loop_t *loop;
    struct rd_store *store;
    struct rd_worker **workers;
    int nworkers;
    uint64_t header_timeout_ms;
    struct rd_mailbox mb; /* worker completions */
    /* Write-behind persistence of the caches (cache/persist.h); NULL when
     * the process runs without it. Borrowed: main owns it. */
    struct rd_cache_persist *persist;
    uv_timer_t purge; /* the caches' background purge of expired entries */
    struct rd_proxy_entry *entries;
    bool closing; /* rd_manager_free runs: completions are dropped */
};

/* The status the API shows: running, stopped, error or stopping (a move
 * shows as running unless a stop or delete waits behind it). Static string. */
const char *rd_proxy_status_name(const struct rd_proxy_entry *e);
/* True once a delete was accepted: the API no longer shows the proxy. */
bool rd_proxy_is_deleting(const struct rd_proxy_entry *e);

/* Loads every proxy from the store. Returns 0 or a negative code. */
int rd_manager_init(struct rd_manager *m, uv_loop_t *loop, struct rd_store *store, struct rd_worker **workers,
                    int nworkers, uint64_t header_timeout_ms);
/* Hands the caches' write-behind store to the manager (and the cache
 * stage) and queues the load of every persisting proxy's stored entries.
 * Call after rd_manager_init, before rd_manager_restore; p outlives the
 * workers (main stops it after they are joined). NULL: no persistence. */
void rd_manager_set_persist(struct rd_manager *m, struct rd_cache_persist *p);
/* Starts the proxies whose desired status is running (synchronously). */
void rd_manager_restore(struct rd_manager *m);
/* Releases everything; call after the workers are joined (no completion can
 * arrive any more), then run the loop to finish the close callbacks.
 * Callbacks still waiting are dropped without being called. */
void rd_manager_free(struct rd_manager *m);

/* The entry with that id, or NULL (also once a delete was accepted). */
struct rd_proxy_entry *rd_manager_find(struct rd_manager *m, int64_t id);
/* How many proxies the API shows as running. */
int rd_manager_running(const struct rd_manager *m);
/* First port from 8001 upward that no proxy uses and that can be bound on
 * bind_addr; -1 if none. */
int rd_manager_pick_port(struct rd_manager *m, const char *bind_addr);

/* Creates a proxy from rec (on success its strings are taken over and rec
 * is emptied; on failure rec is left to the caller).
 * With start, starts it before returning: a bind failure leaves status
 * "error" and is not an error of the call. Returns 0 with *out, or a
 * negative code with err filled (409 name/port conflict, 500 store). */
int rd_manager_create(struct rd_manager *m, struct rd_proxy_rec *rec, bool start, struct rd_proxy_entry **out,
                      struct rd_mgr_err *err);
/* Asks for the proxy to run. done fires once it is running (err NULL), once
 * the start failed (err: 409 with the reason; status "error"), or, if a
 * later stop or delete overtook it, once that one is done (err NULL). A
 * start during a stop runs after the stop. */
void rd_manager_start(struct rd_manager *m, struct rd_proxy_entry *e, rd_manager_done_fn done, void *ud);
/* Asks for the proxy to stop: graceful waits up to timeout_ms for requests
 * in flight (0: cut now, like force), force cuts them now. A stop during
 * another one tightens it (force, or an earlier deadline). done fires once
 * the proxy has stopped and no connection of it is left. persist records
 * the stopped state as the one to restore at start-up. */
void rd_manager_stop(struct rd_manager *m, struct rd_proxy_entry *e, enum rd_http_stop_mode mode,
                     uint64_t timeout_ms, bool persist, rd_manager_done_fn done, void *ud);
/* Replaces the proxy's fields with rec at once (taken over on success; the
 * run state is kept). A changed port or bind moves a running proxy's
 * listener; any other change swaps the snapshot live. Returns a negative
 * code with err filled (done never fires): 409 name/port conflict, 500
 * store. Or 0: done fires once the proxy has settled (a moved proxy listens
 * on its new address only; a stopping one has stopped). */
int rd_manager_update(struct rd_manager *m, struct rd_proxy_entry *e, struct rd_proxy_rec *rec,
                      struct rd_mgr_err *err, rd_manager_done_fn done, void *ud);
/* Runs config_json (a validated, sealed document; taken over on success)
 * instead of the permanent configuration for ttl_ms, then reverts to the
 * permanent one by itself. A second call replaces the first (new document,
 * new deadline; it still reverts to the permanent one). Only for a running
 * proxy: returns 0, or a negative code with err filled (409 not_running,
 * 400 if the document does not build). The change applies to the next
 * request, before the call returns. */
int rd_manager_set_temp(struct rd_manager *m, struct rd_proxy_entry *e, char *config_json, uint64_t ttl_ms,
                        struct rd_mgr_err *err);
/* Ends the temporary configuration now, if there is one: the running
 * snapshot is rebuilt from the permanent one. Stops, deletes and shutdown
 * call it; the API calls it after a permanent configuration change. */
void rd_manager_end_temp(struct rd_manager *m, struct rd_proxy_entry *e);

/* Force-stops (escalating a stop in progress) and deletes; the entry
 * disappears from rd_manager_find at once and is freed after done fired. */
void rd_manager_delete(struct rd_manager *m, struct rd_proxy_entry *e, rd_manager_done_fn done, void *ud);
/* Stops every proxy without changing what is restored at start-up; a start
 * not yet done is overtaken. done fires once all have stopped. */
void rd_manager_shutdown(struct rd_manager *m, enum rd_http_stop_mode mode, uint64_t timeout_ms,
                         rd_manager_done_fn done, void *ud);

#endif
