/* The request log's path from the I/O workers to the store, off the hot
 * path (docs/observability.md, "Request log").
 *
 *   worker: rd_log_push()  -> its own bounded ring (no lock shared with the
 *                             other workers; full: the record is dropped
 *                             and counted, the request never waits)
 *   writer thread          -> drains every ring, inserts in batches (one
 *                             transaction per batch, prepared statements)
 *                             on its own store connection, gives each row
 *                             its seq, keeps the last rows in the history,
 *                             then tells the control loop (notify)
 *   control loop           -> live stream subscribers read the history
 *
 * The buffer's bound is in bytes (cfg.buffer_bytes, the server's
 * --log-buffer-size, memory_limits.log_buffer_size of the description),
 * shared out over the workers; memory is taken as records queue, not up
 * front. Stop writes what is queued before it returns. (The retention
 * purge runs on the control loop: src/api/logs.c.) */
#ifndef RD_OBS_LOGWRITER_H
#define RD_OBS_LOGWRITER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "obs/record.h"

struct rd_log_writer;

struct rd_log_writer_cfg {
    unsigned nslots;        /* one per I/O worker (rd_req_env.index) */
    uint64_t buffer_bytes;  /* bound of queued records, all slots together */
    const char *node_id;    /* copied */
    size_t history;         /* rows kept for the live stream (Last-Event-ID resume) */
};

/* Opens its own store connection on store_url and starts the thread.
 * Returns 0, or a negative rd_err with a reason in errbuf. Control thread. */
int rd_log_writer_start(const char *store_url, const struct rd_log_writer_cfg *cfg, struct rd_log_writer **out,
                        char *errbuf, size_t errlen);
/* Writes what is queued, stops the thread, closes. After the workers are
 * joined (nothing pushes any more). NULL-safe. */
void rd_log_writer_stop(struct rd_log_writer *w);

/* Worker slot's thread: the record to fill in place, or NULL when the
 * buffer is full (the record is dropped and counted) or w is NULL (not
 * counted). A record reserved is queued by rd_log_commit on the same slot,
 * before the next reserve; until then the writer does not see it. */
struct rd_log_rec *rd_log_reserve(struct rd_log_writer *w, unsigned slot);
void rd_log_commit(struct rd_log_writer *w, unsigned slot);
/* reserve, a copy of r, commit: false when the buffer is full. NULL-safe. */
bool rd_log_push(struct rd_log_writer *w, unsigned slot, const struct rd_log_rec *r);

struct rd_log_writer_stats {
    uint64_t queued;   /* records accepted by rd_log_push */
    uint64_t dropped;  /* refused: buffer full */
    uint64_t written;  /* rows committed */
    uint64_t failed;   /* rows lost to a store failure */
    uint64_t pending;  /* queued, not yet written */
    uint64_t batches;
};
/* Any thread. */
void rd_log_writer_stats(struct rd_log_writer *w, struct rd_log_writer_stats *out);

/* ---- the live stream's seam (control loop) ---- */

/* fn(ud) runs on loop after each batch is committed (coalesced: one call
 * may cover several batches). Set once, before requests flow; loop must
 * outlive the writer or rd_log_writer_set_notify(w, NULL, NULL, NULL) must
 * be called on it first. */
void rd_log_writer_set_notify(struct rd_log_writer *w, uv_loop_t *loop, void (*fn)(void *ud), void *ud);
/* Copies up to max written rows with seq > after_seq, oldest first, into
 * out; returns how many. *first_kept is the oldest seq the history still
 * holds (0 when empty): a caller whose after_seq + 1 < *first_kept has
 * missed rows. Any thread. */
size_t rd_log_history_since(struct rd_log_writer *w, uint64_t after_seq, struct rd_log_rec *out, size_t max,
                            uint64_t *first_kept);
/* The seq of the last row written (0 for none). Any thread. */
uint64_t rd_log_last_seq(struct rd_log_writer *w);

/* Waits until everything pushed before the call is written (tests, export
 * consistency); returns 0, or -1 after timeout_ms. Not on a worker. */
int rd_log_writer_flush(struct rd_log_writer *w, uint64_t timeout_ms);

#endif
