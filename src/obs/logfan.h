/* The live stream's fan-out (docs/observability.md, "Live stream"): one
 * source of written request-log rows (the log writer's history) read for
 * every subscriber of GET /api/v1/logs/stream, each with its own filter,
 * its own position and its own bounded output. Pure: the source and each
 * subscriber's output are ops tables, so the HTTP glue (api/log_stream.c)
 * and the unit test plug in their own. One thread (the control loop).
 *
 * A subscriber's position, last_seq, means every row up to it was sent or
 * accounted for; rows reach it strictly in seq order, each once. Its
 * output is bounded: once its unsent bytes pass `bound` it is "lossy": the
 * rows it would have had are counted, not queued, and once its output has
 * fallen to half the bound (rd_log_sub_poke) it is told with an
 * `event: lost` how many it missed and goes on from the current row. A
 * subscriber behind what the history still holds (a resume from an old
 * Last-Event-ID) gets an `event: lost` naming the gap, then the rest. */
#ifndef RD_OBS_LOGFAN_H
#define RD_OBS_LOGFAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "obs/filter.h"
#include "obs/record.h"
#include "util/buf.h"

/* Rows read from the source per call. */
#define RD_LOG_FAN_CHUNK 64u

/* Where rows come from: rd_log_history_since / rd_log_last_seq semantics. */
struct rd_log_source {
    size_t (*since)(void *ud, uint64_t after_seq, struct rd_log_rec *out, size_t max, uint64_t *first_kept);
    uint64_t (*last_seq)(void *ud);
    void *ud;
};

/* A subscriber's output: bytes not yet taken by the client, and a write
 * that copies (non-zero: the client is gone). */
struct rd_log_out {
    size_t (*pending)(void *ud);
    int (*write)(void *ud, const char *p, size_t n);
    void *ud;
};

struct rd_log_sub {
    struct rd_log_sub *prev, *next; /* the fan's list */
    struct rd_log_query q;          /* the filter (its strings live in q) */
    struct rd_log_out out;
    size_t bound;         /* unsent bytes at which events stop being queued */
    uint64_t last_seq;    /* every row up to it sent or accounted for */
    bool lossy;           /* passed the bound: counting, not sending */
    bool failed;          /* a write failed: the owner ends it (rd_log_fan_remove) */
    uint64_t missed;      /* while lossy: matching rows not sent */
    uint64_t missed_from; /* while lossy: the first of them */
    uint64_t sent;        /* log events written */
    uint64_t lost_events; /* `event: lost` written */
};

struct rd_log_fan {
    struct rd_log_source src;
    struct rd_log_sub *head; /* borrowed subscribers */
    size_t n;
    struct rd_log_rec *chunk; /* owned, RD_LOG_FAN_CHUNK rows */
    struct rd_buf line;       /* one event being formatted */
};

void rd_log_fan_init(struct rd_log_fan *f, const struct rd_log_source *src);
/* Frees the fan's buffers; the subscribers are the caller's. NULL-safe. */
void rd_log_fan_free(struct rd_log_fan *f);

/* Prepares sub (its q already parsed by the caller) with its output and
 * bound; position 0. */
void rd_log_sub_init(struct rd_log_sub *sub, const struct rd_log_out *out, size_t bound);

/* Adds sub (borrowed until rd_log_fan_remove) at a position: resume true
 * continues after after_seq (clamped to the source's last row: an id from
 * the future starts from now), replaying what the history holds and
 * telling of a gap first; resume false starts from the source's last row.
 * Sets sub->failed if a write failed. */
void rd_log_fan_add(struct rd_log_fan *f, struct rd_log_sub *sub, bool resume, uint64_t after_seq);
void rd_log_fan_remove(struct rd_log_fan *f, struct rd_log_sub *sub);

/* New rows were written: reads the source from the lowest position among
 * the subscribers, in chunks, and hands each row to every subscriber past
 * whose position it is and whose filter it passes. Subscribers whose write
 * failed are left with failed set, for the caller to remove. */
void rd_log_fan_pump(struct rd_log_fan *f);

/* The subscriber's output may have drained (drain callback, heartbeat): a
 * lossy one at or below half its bound writes its `event: lost`
 * ({"reason":"slow","missed":N,"missed_from":S,"resumed_at":R}) and
 * takes events again. */
void rd_log_sub_poke(struct rd_log_sub *sub);

/* Writes the SSE comment ": heartbeat <ISO 8601>\n\n" unless the output is
 * at its bound (a heartbeat is for idle connections). */
void rd_log_sub_heartbeat(struct rd_log_sub *sub, int64_t now_ms);

/* Appends one record as an SSE event: "id: <seq>\nevent: log\ndata: <json>\n\n".
 * Returns 0 or -1. */
int rd_log_sse_event(struct rd_buf *out, const struct rd_log_rec *r);

#endif
