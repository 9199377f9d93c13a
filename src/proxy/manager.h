/* The control plane's view of proxies: the persisted records, their live
 * status, and the operations that start, stop, change and delete them.
 * Runs on the control thread only; it is the only caller of the store and
 * the only sender of worker messages. */
#ifndef RD_PROXY_MANAGER_H
#define RD_PROXY_MANAGER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "proxy/snapshot.h"
#include "proxy/worker.h"
#include "store/store.h"
#include "util/mailbox.h"

enum rd_proxy_status { RD_PROXY_STOPPED, RD_PROXY_RUNNING, RD_PROXY_ERROR, RD_PROXY_STOPPING };

const char *rd_proxy_status_name(enum rd_proxy_status s);

typedef void (*rd_manager_done_fn)(void *ud);

/* Someone waiting for a proxy's stop or move to complete (an API call). */
struct rd_waiter {
    struct rd_waiter *next;
    rd_manager_done_fn fn;
    void *ud;
};

struct rd_proxy_entry {
    struct rd_proxy_entry *next; /* list ordered by id */
    struct rd_proxy_rec rec;     /* persisted state (rec.last_error mirrors the live one) */
    enum rd_proxy_status status;
    struct rd_proxy_rt *rt; /* while running or stopping */
    struct rd_waiter *waiters; /* owned list, in arrival order */
    bool deleting;
};

struct rd_manager {
    uv_loop_t *loop;
    struct rd_store *store;
    struct rd_worker **workers;
    int nworkers;
    uint64_t header_timeout_ms;
    struct rd_mailbox mb; /* worker completions */
    struct rd_proxy_entry *entries;
};

/* Error of a manager operation, for the API to render. */
struct rd_mgr_err {
    int status;       /* HTTP status: 400, 404, 409, 500 */
    const char *code; /* "conflict", "port_in_use", ... (static) */
    char field[64];
    char message[256];
};

/* Loads every proxy from the store. Returns 0 or a negative code. */
int rd_manager_init(struct rd_manager *m, uv_loop_t *loop, struct rd_store *store, struct rd_worker **workers,
                    int nworkers, uint64_t header_timeout_ms);
/* Starts the proxies whose desired status is running. */
void rd_manager_restore(struct rd_manager *m);
/* Releases everything; call after the workers are joined (no completion can
 * arrive any more), then run the loop once to finish the close callbacks. */
void rd_manager_free(struct rd_manager *m);

struct rd_proxy_entry *rd_manager_find(struct rd_manager *m, int64_t id);
int rd_manager_running(const struct rd_manager *m);
/* First port from 8001 upward that no proxy uses and that can be bound on
 * bind_addr; -1 if none. */
int rd_manager_pick_port(struct rd_manager *m, const char *bind_addr);

/* Creates a proxy from rec (its strings are taken over; rec is emptied).
 * With start, tries to start it: a bind failure leaves status "error" and is
 * not an error of the call. */
int rd_manager_create(struct rd_manager *m, struct rd_proxy_rec *rec, bool start, struct rd_proxy_entry **out,
                      struct rd_mgr_err *err);
/* Starts a stopped/errored proxy. 409 with the reason on failure. */
int rd_manager_start(struct rd_manager *m, struct rd_proxy_entry *e, struct rd_mgr_err *err);
/* Stops a running proxy; done fires on the control loop once it is stopped
 * (immediately-but-later if it was not running). persist records the
 * stopped state as the one to restore at start-up. */
void rd_manager_stop(struct rd_manager *m, struct rd_proxy_entry *e, enum rd_http_stop_mode mode,
                     uint64_t timeout_ms, bool persist, rd_manager_done_fn done, void *ud);
/* Replaces the proxy's fields with rec (taken over on success). A changed
 * port or bind moves the listener; any other change swaps the snapshot live.
 * Returns a negative code with err filled (done never fires), or 0: done
 * fires on a later loop turn, once a moved proxy listens on its new address
 * only. */
int rd_manager_update(struct rd_manager *m, struct rd_proxy_entry *e, struct rd_proxy_rec *rec,
                      struct rd_mgr_err *err, rd_manager_done_fn done, void *ud);
/* Force-stops and deletes; done fires when gone (e is invalid then). */
void rd_manager_delete(struct rd_manager *m, struct rd_proxy_entry *e, rd_manager_done_fn done, void *ud);
/* Stops every proxy without changing what is restored at start-up. */
void rd_manager_shutdown(struct rd_manager *m, enum rd_http_stop_mode mode, uint64_t timeout_ms,
                         rd_manager_done_fn done, void *ud);

#endif
