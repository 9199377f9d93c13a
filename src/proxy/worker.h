/* I/O workers: one thread, one libuv loop and one curl multi each. Every
 * running proxy has one SO_REUSEPORT listener per worker; the kernel spreads
 * connections over them. Workers are driven by messages from the control
 * thread (add/stop listeners) and report completions back through a
 * control-side mailbox. */
#ifndef RD_PROXY_WORKER_H
#define RD_PROXY_WORKER_H

#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

#include "http/server.h"
#include "proxy/snapshot.h"
#include "util/mailbox.h"

struct rd_worker;

/* Completion shared by the workers taking part in one stop: the last one to
 * finish posts `mail` to the control mailbox. */
struct rd_stop_op {
    struct rd_mail mail; /* must be first: the control callback gets it */
    atomic_int pending;
    struct rd_mailbox *reply_to;
    rd_mail_fn on_done; /* runs on the control loop, owns the op */
    void *ud;
};

/* Starts n workers; returns the array (owned). Never fails short of OOM or
 * thread creation failure (negative code). */
int rd_workers_start(int n, struct rd_worker ***out);
/* Tells every worker to exit once its loop is empty, joins and frees them. */
void rd_workers_join(struct rd_worker **w, int n);

/* Control thread: hands listening socket fd (ownership passes) of proxy rt to
 * worker w. */
void rd_worker_add_listener(struct rd_worker *w, struct rd_proxy_rt *rt, int64_t proxy_id, int fd);
/* Control thread: stops proxy_id's listeners on worker w; op->pending must
 * count w. Without ack_unlisten the stop covers every binding of the proxy
 * on w, also those still draining after a move: FORCE cuts them all, and
 * GRACEFUL lets them finish within deadline_ms (bringing an earlier stop's
 * deadline forward, never back); op completes once the last of them is gone.
 * With ack_unlisten (a move) only the binding still accepting is stopped
 * gracefully and op completes as soon as its listening socket is closed
 * (its connections then drain on their own). */
void rd_worker_stop_listener(struct rd_worker *w, int64_t proxy_id, enum rd_http_stop_mode mode,
                             uint64_t deadline_ms, bool ack_unlisten, struct rd_stop_op *op);

/* Client connections open on w's listeners right now. Any thread. */
size_t rd_worker_connections(const struct rd_worker *w);

#endif
