/* The request log's buffer and writer thread (logwriter.h).
 *
 * Each worker slot has its own single-producer single-consumer queue: a
 * linked list of chunks of records. The worker (the only producer) fills
 * the tail chunk and publishes each record with a release store of the
 * chunk's fill count (rd_log_reserve fills the record in place); the
 * writer thread (the only consumer) takes records from the head chunk by
 * pointer. A record is never copied on its way: the batch the store writes
 * and the live stream's history point into the chunks, and a chunk goes
 * back (as the producer's spare, or freed) once the writer has moved past
 * it and no batch or history entry holds one of its records. No lock is
 * taken on the request path and no cache line is shared between two
 * workers: a record costs two release stores, plus a load of the
 * consumer's counter when the queue looks full.
 *
 * The bound: each slot may hold buffer_bytes / nslots bytes of queued
 * records (cap records). Memory is taken a chunk at a time as records
 * queue, so it follows the queue's depth; when a slot drains, its chunks
 * are freed except the tail one (the producer still points at it), one
 * spare handed back for the next fill, and those the history still points
 * into (about history / CHUNK_RECS of them).
 *
 * The writer wakes every TICK_MS, or at once when a slot crosses half of
 * its bound (the one push that crosses it signals), or on a flush, and
 * drains every slot into batches of up to BATCH_MAX rows, each written in
 * one transaction on the writer's own store connection. */
#include "obs/logwriter.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/store.h"
#include "util/err.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/time.h"

#define CHUNK_RECS 64          /* records per chunk (about 60 KiB) */
#define BATCH_MAX 2048         /* rows per transaction (the store splits them into blocks) */
#define TICK_MS 50             /* the writer's longest sleep with records queued */
#define RETRY_PAUSE_MS 100     /* before the one retry of a failed batch */
#define WARN_EVERY_MS 10000    /* drops and failures are warned about at most this often */

struct slot;

struct chunk {
    _Atomic(struct chunk *) next; /* set by the producer once this one is full */
    atomic_size_t filled;         /* records published by the producer */
    size_t cap;
    struct slot *slot;
    /* The consumer's (the writer thread's) alone; the producer sets them
     * before it publishes the chunk. */
    size_t held;   /* records a batch or the history points to */
    bool consumed; /* the writer moved past it: no longer on the slot's list */
    struct rd_log_rec recs[];
};

struct slot {
    /* The producer's (the worker's) fields, on their own cache line. */
    alignas(64) struct chunk *tail;
    uint64_t pushed_own;  /* == pushed, without the atomic read */
    uint64_t popped_seen; /* the producer's last look at popped */
    atomic_uint_fast64_t pushed;
    atomic_uint_fast64_t dropped;
    /* The consumer's (the writer's). */
    alignas(64) struct chunk *head;
    size_t head_read; /* records of head already taken */
    atomic_uint_fast64_t popped;
    _Atomic(struct chunk *) spare; /* a drained chunk for the producer's next fill */
    uint64_t done;                 /* w->mu: records of this slot written or failed */
    /* The sentinel: a chunk of capacity 0 that head and tail start on, so neither side
     * ever sees an empty list. Never freed. */
    struct chunk sentinel;
};

struct hist_ent {
    const struct rd_log_rec *rec;
    struct chunk *chunk;
};

/* The live stream's handle on the control loop (set_notify). Heap
 * allocated: it is freed by its close callback, whenever that runs. */
struct notify {
    uv_async_t async;
    void (*fn)(void *ud);
    void *ud;
};

struct rd_log_writer {
    struct rd_store *store; /* owned; the writer thread's only */
    pthread_t thread;
    char node_id[64];
    unsigned nslots;
    uint64_t cap;       /* records per slot */
    size_t chunk_recs;  /* records per chunk of this writer */
    struct slot *slots; /* nslots */

    pthread_mutex_t mu;
    pthread_cond_t wake; /* the writer waits on it (CLOCK_MONOTONIC) */
    pthread_cond_t done; /* flushers wait on it: some slot's done moved */
    bool kicked, stopping;

    /* The writer thread's batch: records in the chunks, and their chunks. */
    struct rd_log_rec **batch; /* BATCH_MAX */
    struct chunk **batch_chunks;
    size_t nbatch;
    uint64_t *batch_slots; /* nslots: records of each slot in the batch */
    bool degraded;         /* the last batch was lost: the next one is tried once, without a pause */
    uint64_t warned_dropped, warned_failed, warned_ms;

    atomic_uint_fast64_t written, failed, batches, last_seq, bad_slot;

    /* The history: the last hist_cap rows written, a ring of records in
     * the chunks (each entry holds its chunk). */
    pthread_mutex_t hist_mu;
    struct hist_ent *hist; /* allocated at the first row */
    size_t hist_cap, hist_n, hist_first;

    pthread_mutex_t notify_mu; /* the writer holds it while it touches *notify */
    struct notify *notify;
};

/* ---- the producer (a worker) ---- */

static struct chunk *new_chunk(struct rd_log_writer *w, struct slot *s)
{
    struct chunk *c = atomic_exchange_explicit(&s->spare, NULL, memory_order_acquire);
    if (c == NULL) {
        c = rd_malloc(sizeof *c + w->chunk_recs * sizeof c->recs[0]);
        c->cap = w->chunk_recs;
    }
    atomic_init(&c->next, NULL);
    atomic_init(&c->filled, 0);
    c->slot = s;
    c->held = 0;
    c->consumed = false;
    return c;
}

static void kick(struct rd_log_writer *w)
{
    pthread_mutex_lock(&w->mu);
    w->kicked = true;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->mu);
}

struct rd_log_rec *rd_log_reserve(struct rd_log_writer *w, unsigned slot)
{
    if (w == NULL)
        return NULL;
    if (slot >= w->nslots) { /* a caller's bug; never a second producer on a slot */
        atomic_fetch_add_explicit(&w->bad_slot, 1, memory_order_relaxed);
        return NULL;
    }
    struct slot *s = &w->slots[slot];
    uint64_t pushed = s->pushed_own;
    if (pushed - s->popped_seen >= w->cap) {
        s->popped_seen = atomic_load_explicit(&s->popped, memory_order_acquire);
        if (pushed - s->popped_seen >= w->cap) {
            atomic_store_explicit(&s->dropped, atomic_load_explicit(&s->dropped, memory_order_relaxed) + 1,
                                  memory_order_relaxed);
            return NULL;
        }
    }
    struct chunk *c = s->tail;
    size_t f = atomic_load_explicit(&c->filled, memory_order_relaxed); /* ours */
    if (f == c->cap) {
        struct chunk *n = new_chunk(w, s);
        atomic_store_explicit(&c->next, n, memory_order_release);
        s->tail = c = n;
        f = 0;
    }
    return &c->recs[f];
}

void rd_log_commit(struct rd_log_writer *w, unsigned slot)
{
    struct slot *s = &w->slots[slot];
    struct chunk *c = s->tail;
    size_t f = atomic_load_explicit(&c->filled, memory_order_relaxed); /* ours */
    atomic_store_explicit(&c->filled, f + 1, memory_order_release);
    uint64_t pushed = ++s->pushed_own;
    atomic_store_explicit(&s->pushed, pushed, memory_order_release);
    /* The one push that takes the slot to half its bound wakes the writer
     * (popped_seen may be stale, so check the real depth first). */
    if (pushed - s->popped_seen == w->cap / 2 + 1) {
        s->popped_seen = atomic_load_explicit(&s->popped, memory_order_acquire);
        if (pushed - s->popped_seen > w->cap / 2)
            kick(w);
    }
}

bool rd_log_push(struct rd_log_writer *w, unsigned slot, const struct rd_log_rec *r)
{
    struct rd_log_rec *to = rd_log_reserve(w, slot);
    if (to == NULL)
        return false;
    *to = *r;
    rd_log_commit(w, slot);
    return true;
}

/* ---- the consumer (the writer thread) ---- */

static void release_chunk(struct slot *s, struct chunk *c)
{
    if (c == &s->sentinel)
        return;
    struct chunk *none = NULL;
    if (!atomic_compare_exchange_strong_explicit(&s->spare, &none, c, memory_order_release, memory_order_relaxed))
        free(c);
}

/* A batch or the history is done with one record of c. */
static void let_go(struct chunk *c)
{
    if (--c->held == 0 && c->consumed)
        release_chunk(c->slot, c);
}

/* Takes up to max queued records of s into out (their chunks into
 * chunks), by pointer; returns how many. */
static size_t take(struct slot *s, struct rd_log_rec **out, struct chunk **chunks, size_t max)
{
    size_t n = 0;
    struct chunk *c = s->head;
    while (n < max) {
        size_t f = atomic_load_explicit(&c->filled, memory_order_acquire);
        if (s->head_read < f) {
            size_t k = f - s->head_read;
            if (k > max - n)
                k = max - n;
            for (size_t i = 0; i < k; i++) {
                out[n + i] = &c->recs[s->head_read + i];
                chunks[n + i] = c;
            }
            c->held += k;
            s->head_read += k;
            n += k;
            continue;
        }
        if (s->head_read < c->cap)
            break; /* the producer is still filling this one */
        struct chunk *next = atomic_load_explicit(&c->next, memory_order_acquire);
        if (next == NULL)
            break; /* full and read, but still the producer's tail */
        c->consumed = true;
        if (c->held == 0)
            release_chunk(s, c);
        s->head = c = next;
        s->head_read = 0;
    }
    if (n)
        atomic_store_explicit(&s->popped, atomic_load_explicit(&s->popped, memory_order_relaxed) + n,
                              memory_order_release);
    return n;
}

/* Empties the history. hist_mu held. */
static void history_clear(struct rd_log_writer *w)
{
    for (size_t i = 0; i < w->hist_n; i++)
        let_go(w->hist[(w->hist_first + i) % w->hist_cap].chunk);
    w->hist_n = w->hist_first = 0;
}

/* The batch's records (written) join the history, which takes over their
 * hold on their chunks; the oldest entries beyond hist_cap let go. */
static void history_append(struct rd_log_writer *w, struct rd_log_rec *const *recs, struct chunk *const *chunks,
                           size_t n)
{
    if (w->hist_cap == 0) {
        for (size_t i = 0; i < n; i++)
            let_go(chunks[i]);
        return;
    }
    pthread_mutex_lock(&w->hist_mu);
    if (w->hist == NULL)
        w->hist = rd_malloc(w->hist_cap * sizeof *w->hist);
    for (size_t i = 0; i < n; i++) {
        /* Seqs are rowids: they only go down if the newest rows were
         * deleted; the history then starts over rather than hold rows
         * out of order (history_since searches it by seq). */
        if (w->hist_n && recs[i]->seq <= w->hist[(w->hist_first + w->hist_n - 1) % w->hist_cap].rec->seq)
            history_clear(w);
        struct hist_ent e = {recs[i], chunks[i]};
        if (w->hist_n == w->hist_cap) {
            let_go(w->hist[w->hist_first].chunk);
            w->hist[w->hist_first] = e;
            w->hist_first = (w->hist_first + 1) % w->hist_cap;
        } else {
            w->hist[(w->hist_first + w->hist_n) % w->hist_cap] = e;
            w->hist_n++;
        }
    }
    pthread_mutex_unlock(&w->hist_mu);
}

static void notify(struct rd_log_writer *w)
{
    pthread_mutex_lock(&w->notify_mu);
    if (w->notify)
        (void)uv_async_send(&w->notify->async);
    pthread_mutex_unlock(&w->notify_mu);
}

static void pause_ms(uint64_t ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static uint64_t total_dropped(struct rd_log_writer *w)
{
    uint64_t d = atomic_load_explicit(&w->bad_slot, memory_order_relaxed);
    for (unsigned i = 0; i < w->nslots; i++)
        d += atomic_load_explicit(&w->slots[i].dropped, memory_order_relaxed);
    return d;
}

/* Warns about drops and lost rows since the last warning, at most once per
 * WARN_EVERY_MS (force: now, whatever the time; at stop). */
static void warn_losses(struct rd_log_writer *w, bool force)
{
    uint64_t now = rd_time_mono_ms();
    if (!force && w->warned_ms && now - w->warned_ms < WARN_EVERY_MS)
        return;
    uint64_t dropped = total_dropped(w), failed = atomic_load(&w->failed);
    if (dropped == w->warned_dropped && failed == w->warned_failed)
        return;
    rd_warn("request log: %" PRIu64 " record(s) dropped (buffer full), %" PRIu64
            " lost to store errors since the last report (%" PRIu64 " and %" PRIu64 " in all)",
            dropped - w->warned_dropped, failed - w->warned_failed, dropped, failed);
    w->warned_dropped = dropped;
    w->warned_failed = failed;
    w->warned_ms = now;
}

/* Writes the batch (retried once after a pause, unless the previous batch
 * was lost too), then settles its records: written or failed, in the
 * history, flushers and the live stream told. */
static void write_batch(struct rd_log_writer *w)
{
    size_t n = w->nbatch;
    for (size_t i = 0; i < n; i++)
        memcpy(w->batch[i]->node_id, w->node_id, sizeof w->node_id); /* same size, NUL-terminated */
    int rc = rd_store_log_put(w->store, w->batch, n);
    if (rc == RD_ESTORE && !w->degraded) {
        pause_ms(RETRY_PAUSE_MS);
        rc = rd_store_log_put(w->store, w->batch, n);
    }
    if (rc < 0) {
        w->degraded = true;
        atomic_fetch_add(&w->failed, n);
        for (size_t i = 0; i < n; i++)
            let_go(w->batch_chunks[i]);
    } else {
        w->degraded = false;
        atomic_fetch_add(&w->written, n);
        atomic_fetch_add(&w->batches, 1);
        atomic_store(&w->last_seq, w->batch[n - 1]->seq);
        history_append(w, w->batch, w->batch_chunks, n);
    }
    pthread_mutex_lock(&w->mu);
    for (unsigned i = 0; i < w->nslots; i++) {
        w->slots[i].done += w->batch_slots[i];
        w->batch_slots[i] = 0;
    }
    pthread_cond_broadcast(&w->done);
    pthread_mutex_unlock(&w->mu);
    w->nbatch = 0;
    if (rc >= 0)
        notify(w);
}

/* Drains every slot until all are empty. */
static void drain(struct rd_log_writer *w)
{
    for (;;) {
        size_t got = 0;
        for (unsigned i = 0; i < w->nslots; i++) {
            size_t k;
            while ((k = take(&w->slots[i], w->batch + w->nbatch, w->batch_chunks + w->nbatch, BATCH_MAX - w->nbatch)) >
                   0) {
                w->batch_slots[i] += k;
                w->nbatch += k;
                got += k;
                if (w->nbatch == BATCH_MAX)
                    write_batch(w);
            }
        }
        if (w->nbatch)
            write_batch(w);
        if (got == 0)
            return;
    }
}

static struct timespec mono_ts(uint64_t mono_ms)
{
    return (struct timespec){.tv_sec = (time_t)(mono_ms / 1000), .tv_nsec = (long)(mono_ms % 1000) * 1000000L};
}

static void *writer_main(void *arg)
{
    struct rd_log_writer *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        if (!w->kicked && !w->stopping) {
            struct timespec ts = mono_ts(rd_time_mono_ms() + TICK_MS);
            (void)pthread_cond_timedwait(&w->wake, &w->mu, &ts);
        }
        w->kicked = false;
        bool stopping = w->stopping;
        pthread_mutex_unlock(&w->mu);
        /* Stop is called once nothing pushes any more: this last drain
         * after seeing it writes everything. */
        drain(w);
        warn_losses(w, stopping);
        pthread_mutex_lock(&w->mu);
        if (stopping)
            break;
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* ---- start / stop ---- */

static int init_sync(struct rd_log_writer *w)
{
    /* Both condvars wait on CLOCK_MONOTONIC (rd_time_mono_ms's clock). */
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0)
        return -ENOMEM;
    int rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (rc == 0 && (rc = pthread_cond_init(&w->wake, &ca)) == 0 && (rc = pthread_cond_init(&w->done, &ca)) != 0)
        pthread_cond_destroy(&w->wake);
    pthread_condattr_destroy(&ca);
    if (rc != 0)
        return -rc;
    if ((rc = pthread_mutex_init(&w->mu, NULL)) != 0)
        goto no_mu;
    if ((rc = pthread_mutex_init(&w->hist_mu, NULL)) != 0)
        goto no_hist;
    if ((rc = pthread_mutex_init(&w->notify_mu, NULL)) != 0)
        goto no_notify;
    return 0;
no_notify:
    pthread_mutex_destroy(&w->hist_mu);
no_hist:
    pthread_mutex_destroy(&w->mu);
no_mu:
    pthread_cond_destroy(&w->done);
    pthread_cond_destroy(&w->wake);
    return -rc;
}

static void destroy_sync(struct rd_log_writer *w)
{
    pthread_mutex_destroy(&w->notify_mu);
    pthread_mutex_destroy(&w->hist_mu);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->done);
    pthread_cond_destroy(&w->wake);
}

static void free_writer(struct rd_log_writer *w)
{
    if (w->hist) /* the chunks it alone holds go back first */
        history_clear(w);
    for (unsigned i = 0; w->slots && i < w->nslots; i++) {
        struct slot *s = &w->slots[i];
        for (struct chunk *c = s->head, *next; c != NULL; c = next) {
            next = atomic_load(&c->next);
            if (c != &s->sentinel)
                free(c);
        }
        free(atomic_load(&s->spare));
    }
    free(w->slots);
    free(w->batch);
    free(w->batch_chunks);
    free(w->batch_slots);
    free(w->hist);
    rd_store_close(w->store);
    free(w);
}

int rd_log_writer_start(const char *store_url, const struct rd_log_writer_cfg *cfg, struct rd_log_writer **out,
                        char *errbuf, size_t errlen)
{
    *out = NULL;
    if (cfg->nslots == 0) {
        rd_seterr(errbuf, errlen, "request log: no worker slots");
        return RD_EINVAL;
    }
    struct rd_log_writer *w = rd_calloc(1, sizeof *w);
    int rc = rd_store_open(store_url, &w->store, errbuf, errlen);
    if (rc < 0) {
        free(w);
        return rc;
    }
    rd_store_appender(w->store);
    snprintf(w->node_id, sizeof w->node_id, "%s", cfg->node_id ? cfg->node_id : "");
    w->nslots = cfg->nslots;
    w->cap = cfg->buffer_bytes / cfg->nslots / sizeof(struct rd_log_rec);
    w->chunk_recs = w->cap < CHUNK_RECS ? (w->cap ? (size_t)w->cap : 1) : CHUNK_RECS;
    w->slots = rd_calloc(cfg->nslots, sizeof *w->slots);
    for (unsigned i = 0; i < cfg->nslots; i++) {
        struct slot *s = &w->slots[i];
        s->head = s->tail = &s->sentinel;
        atomic_init(&s->sentinel.next, NULL);
        atomic_init(&s->sentinel.filled, 0);
        s->sentinel.cap = 0;
    }
    w->batch = rd_malloc(BATCH_MAX * sizeof *w->batch);
    w->batch_chunks = rd_malloc(BATCH_MAX * sizeof *w->batch_chunks);
    w->batch_slots = rd_calloc(cfg->nslots, sizeof *w->batch_slots);
    w->hist_cap = cfg->history;
    if ((rc = init_sync(w)) < 0) {
        rd_seterr(errbuf, errlen, "request log: %s", rd_strerror(rc));
        free_writer(w);
        return rc;
    }
    if ((rc = pthread_create(&w->thread, NULL, writer_main, w)) != 0) {
        rd_seterr(errbuf, errlen, "request log: cannot start the writer thread: %s", rd_strerror(-rc));
        destroy_sync(w);
        free_writer(w);
        return -rc;
    }
    /* Named, so that top -H and the bench can tell its CPU from the workers'. */
    (void)pthread_setname_np(w->thread, "rd-logwriter");
    *out = w;
    return 0;
}

void rd_log_writer_stop(struct rd_log_writer *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    w->stopping = true;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->mu);
    int rc = pthread_join(w->thread, NULL);
    if (rc != 0)
        rd_error("request log: joining the writer failed: %s", rd_strerror(-rc));
    if (w->notify) /* its loop should have unset it (logwriter.h); it cannot be closed from here */
        rd_warn("request log: stopped with a live stream notify handle still set");
    destroy_sync(w);
    free_writer(w);
}

void rd_log_writer_stats(struct rd_log_writer *w, struct rd_log_writer_stats *out)
{
    *out = (struct rd_log_writer_stats){0};
    if (w == NULL)
        return;
    for (unsigned i = 0; i < w->nslots; i++)
        out->queued += atomic_load_explicit(&w->slots[i].pushed, memory_order_acquire);
    out->dropped = total_dropped(w);
    out->written = atomic_load(&w->written);
    out->failed = atomic_load(&w->failed);
    out->batches = atomic_load(&w->batches);
    uint64_t settled = out->written + out->failed;
    out->pending = out->queued > settled ? out->queued - settled : 0;
}

/* ---- the live stream's seam ---- */

static void on_async(uv_async_t *h)
{
    struct notify *n = h->data;
    n->fn(n->ud);
}

static void on_notify_closed(uv_handle_t *h)
{
    free(h->data);
}

void rd_log_writer_set_notify(struct rd_log_writer *w, uv_loop_t *loop, void (*fn)(void *ud), void *ud)
{
    if (w == NULL)
        return;
    struct notify *n = NULL;
    if (loop && fn) {
        n = rd_calloc(1, sizeof *n);
        n->fn = fn;
        n->ud = ud;
        n->async.data = n;
        if (uv_async_init(loop, &n->async, on_async) != 0) {
            rd_warn("request log: cannot set up the live stream's wake-up");
            free(n);
            n = NULL;
        }
    }
    /* Swapped under notify_mu: once this returns the writer no longer
     * holds the old handle, so it can be closed. */
    pthread_mutex_lock(&w->notify_mu);
    struct notify *old = w->notify;
    w->notify = n;
    pthread_mutex_unlock(&w->notify_mu);
    if (old)
        uv_close((uv_handle_t *)&old->async, on_notify_closed);
}

size_t rd_log_history_since(struct rd_log_writer *w, uint64_t after_seq, struct rd_log_rec *out, size_t max,
                            uint64_t *first_kept)
{
    *first_kept = 0;
    if (w == NULL)
        return 0;
    pthread_mutex_lock(&w->hist_mu);
    size_t n = w->hist_n, cap = w->hist_cap, first = w->hist_first;
    if (n)
        *first_kept = w->hist[first].rec->seq;
    /* The first row with seq > after_seq (seqs increase along the ring). */
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (w->hist[(first + mid) % cap].rec->seq <= after_seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t k = 0;
    for (size_t i = lo; i < n && k < max; i++)
        out[k++] = *w->hist[(first + i) % cap].rec;
    pthread_mutex_unlock(&w->hist_mu);
    return k;
}

uint64_t rd_log_last_seq(struct rd_log_writer *w)
{
    return w ? atomic_load(&w->last_seq) : 0;
}

int rd_log_writer_flush(struct rd_log_writer *w, uint64_t timeout_ms)
{
    if (w == NULL)
        return 0;
    uint64_t *target = rd_malloc(w->nslots * sizeof *target);
    for (unsigned i = 0; i < w->nslots; i++)
        target[i] = atomic_load_explicit(&w->slots[i].pushed, memory_order_acquire);
    struct timespec until = mono_ts(rd_time_mono_ms() + timeout_ms);
    int rc = 0;
    pthread_mutex_lock(&w->mu);
    w->kicked = true;
    pthread_cond_signal(&w->wake);
    for (unsigned i = 0; i < w->nslots; i++)
        while (w->slots[i].done < target[i] && rc == 0)
            if (pthread_cond_timedwait(&w->done, &w->mu, &until) == ETIMEDOUT)
                rc = w->slots[i].done >= target[i] ? 0 : -1;
    pthread_mutex_unlock(&w->mu);
    free(target);
    return rc;
}
