/* Write-behind persistence of response caches (persist.h).
 *
 * One writer thread owns a store object of its own (store.h's thread rule)
 * and drains a queue of operations that any thread appends to under one
 * mutex. It takes up to BATCH_MAX operations at a time and writes each run
 * of consecutive puts in one transaction (rd_store_cache_put); deletions,
 * clears and loads run on their own, in queue order, so a put followed by
 * the deletion of the same key never ends with the row present. Between
 * batches it purges expired rows every PURGE_EVERY_MS.
 *
 * A failure is counted and logged, never fatal: the memory cache stays
 * right, and the database is only its warm-start copy.
 *
 * Marks are stored packed, MARK_BYTES each: the event's end (u64) then its
 * time (u32), little-endian, so the blob reads the same on any host. */
#include "cache/persist.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache/image.h"
#include "store/store.h"
#include "util/err.h"
#include "util/json.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/time.h"

#define BATCH_MAX 256
/* Puts waiting beyond this are dropped (and counted as failed): each holds
 * an entry, so a stalled disk must not pin evicted bodies without bound. */
#define QUEUED_PUTS_MAX 8192
#define PURGE_EVERY_MS 60000
#define MARK_BYTES 12
#define HDRS_JSON_MAX ((size_t)4 << 20)

enum op_kind { OP_PUT, OP_DELETE, OP_CLEAR, OP_LOAD };

struct op {
    struct op *next;
    enum op_kind kind;
    int64_t proxy_id;
    uint8_t key[RD_CACHE_KEY_LEN]; /* OP_DELETE */
    struct rd_cache_entry *e;      /* OP_PUT: owned reference */
    struct rd_cache *c;            /* OP_LOAD: owned reference */
};

struct rd_cache_persist {
    struct rd_store *store; /* owned; the writer thread's only */
    pthread_t thread;

    pthread_mutex_t mu;
    pthread_cond_t wake; /* the writer waits on it: work queued, or stop */
    pthread_cond_t done; /* flushers wait on it: seq_done moved */
    struct op *head, *tail;
    size_t queued_puts;
    uint64_t seq_queued, seq_done; /* operations queued / finished since start */
    uint64_t dropped;
    bool stopping;

    atomic_uint_fast64_t written, deleted, failed;
};

/* ---- the queue (any thread) ---- */

static void enqueue(struct rd_cache_persist *p, struct op *op)
{
    pthread_mutex_lock(&p->mu);
    if (op->kind == OP_PUT && p->queued_puts >= QUEUED_PUTS_MAX) {
        uint64_t dropped = ++p->dropped;
        pthread_mutex_unlock(&p->mu);
        atomic_fetch_add(&p->failed, 1);
        /* Once, then every 1024th: a stalled disk must not also flood the log. */
        if ((dropped & 1023) == 1)
            rd_warn("cache persist: %d writes queued, dropping (%llu dropped so far)", QUEUED_PUTS_MAX,
                    (unsigned long long)dropped);
        rd_cache_entry_unref(op->e);
        free(op);
        return;
    }
    if (op->kind == OP_PUT)
        p->queued_puts++;
    if (p->tail)
        p->tail->next = op;
    else
        p->head = op;
    p->tail = op;
    p->seq_queued++;
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->mu);
}

static struct op *new_op(enum op_kind kind, int64_t proxy_id)
{
    struct op *op = rd_calloc(1, sizeof *op);
    op->kind = kind;
    op->proxy_id = proxy_id;
    return op;
}

void rd_cache_persist_put(struct rd_cache_persist *p, int64_t proxy_id, struct rd_cache_entry *e)
{
    struct op *op = new_op(OP_PUT, proxy_id);
    op->e = rd_cache_entry_ref(e);
    enqueue(p, op);
}

void rd_cache_persist_delete(struct rd_cache_persist *p, int64_t proxy_id, const uint8_t key[RD_CACHE_KEY_LEN])
{
    struct op *op = new_op(OP_DELETE, proxy_id);
    memcpy(op->key, key, RD_CACHE_KEY_LEN);
    enqueue(p, op);
}

void rd_cache_persist_clear(struct rd_cache_persist *p, int64_t proxy_id)
{
    enqueue(p, new_op(OP_CLEAR, proxy_id));
}

void rd_cache_persist_load(struct rd_cache_persist *p, int64_t proxy_id, struct rd_cache *c)
{
    struct op *op = new_op(OP_LOAD, proxy_id);
    op->c = rd_cache_ref(c);
    enqueue(p, op);
}

void rd_cache_persist_flush(struct rd_cache_persist *p)
{
    pthread_mutex_lock(&p->mu);
    uint64_t target = p->seq_queued;
    while (p->seq_done < target)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

void rd_cache_persist_counts(struct rd_cache_persist *p, uint64_t *written, uint64_t *deleted, uint64_t *failed)
{
    if (written)
        *written = atomic_load(&p->written);
    if (deleted)
        *deleted = atomic_load(&p->deleted);
    if (failed)
        *failed = atomic_load(&p->failed);
}

/* ---- puts (writer thread) ---- */

/* What one put needs kept alive until its transaction is done. */
struct put_buf {
    struct rd_cache_image im;
    struct json_object *hdrs;
    uint8_t *marks;
};

static void pack_marks(const struct rd_cache_image *im, uint8_t **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    if (im->nmarks == 0)
        return;
    uint8_t *b = rd_malloc(im->nmarks * MARK_BYTES);
    for (size_t i = 0; i < im->nmarks; i++) {
        uint8_t *m = b + i * MARK_BYTES;
        for (int k = 0; k < 8; k++)
            m[k] = (uint8_t)(im->marks[i].end >> (8 * k));
        for (int k = 0; k < 4; k++)
            m[8 + k] = (uint8_t)(im->marks[i].t_ms >> (8 * k));
    }
    *out = b;
    *len = im->nmarks * MARK_BYTES;
}

static void to_rec(const struct op *op, struct put_buf *pb, struct rd_cache_rec *r)
{
    rd_cache_image_of(op->e, &pb->im);
    const struct rd_cache_image *im = &pb->im;
    pb->hdrs = rd_cache_image_hdrs_json(im);
    memset(r, 0, sizeof *r);
    r->proxy_id = op->proxy_id;
    memcpy(r->key, im->key, sizeof r->key);
    r->model = im->model;
    r->kind = rd_cache_kind_name(im->kind);
    r->method = im->method;
    r->path = im->path;
    r->status = im->status;
    r->stream = im->stream;
    r->headers = rd_json_str(pb->hdrs, &r->headers_len);
    r->body = im->body;
    r->body_len = im->body_len;
    pack_marks(im, &pb->marks, &r->marks_len);
    r->marks = pb->marks;
    r->input_tokens = im->usage.input;
    r->output_tokens = im->usage.output;
    r->cached_tokens = im->usage.cached;
    r->cache_write_tokens = im->usage.cache_write;
    r->reasoning_tokens = im->usage.reasoning;
    r->upstream_model = im->upstream_model;
    r->finish = im->finish;
    r->created_at = im->created_ms;
    r->expires_at = im->expires_ms;
    r->ttl_s = im->ttl_s;
    r->hits = im->hits > INT64_MAX ? INT64_MAX : (int64_t)im->hits;
}

/* Writes ops[0..n) (all OP_PUT) in one transaction. */
static void write_puts(struct rd_cache_persist *p, struct op **ops, size_t n)
{
    struct rd_cache_rec *recs = rd_calloc(n, sizeof *recs);
    struct put_buf *pbs = rd_calloc(n, sizeof *pbs);
    for (size_t i = 0; i < n; i++)
        to_rec(ops[i], &pbs[i], &recs[i]);
    int rc = rd_store_cache_put(p->store, recs, n);
    if (rc >= 0) {
        atomic_fetch_add(&p->written, (uint64_t)rc);
        atomic_fetch_add(&p->failed, n - (size_t)rc);
    } else {
        atomic_fetch_add(&p->failed, n);
        rd_warn("cache persist: writing %zu entries failed: %s", n, rd_strerror(rc));
    }
    for (size_t i = 0; i < n; i++) {
        free((char *)pbs[i].im.body);
        json_object_put(pbs[i].hdrs);
        free(pbs[i].marks);
    }
    free(pbs);
    free(recs);
}

/* ---- loads (writer thread) ---- */

/* A load collects the entries newest first, then inserts them oldest first
 * (see persist.h): the cache's LRU then evicts the oldest where they do not
 * all fit, without this file knowing what the cache charges for an entry. */
struct load_ctx {
    int64_t proxy_id;
    struct rd_cache_entry **list;
    size_t n, cap, skipped;
};

static bool unpack_marks(const struct rd_cache_rec *r, struct rd_cache_mark **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (r->marks_len % MARK_BYTES != 0)
        return false;
    size_t count = r->marks_len / MARK_BYTES;
    if (count == 0)
        return true;
    struct rd_cache_mark *m = rd_calloc(count, sizeof *m);
    const uint8_t *b = r->marks;
    for (size_t i = 0; i < count; i++, b += MARK_BYTES) {
        for (int k = 0; k < 8; k++)
            m[i].end |= (uint64_t)b[k] << (8 * k);
        for (int k = 0; k < 4; k++)
            m[i].t_ms |= (uint32_t)b[8 + k] << (8 * k);
    }
    *out = m;
    *n = count;
    return true;
}

/* A complete entry from a row, or NULL with the reason in err. */
static struct rd_cache_entry *from_rec(const struct rd_cache_rec *r, char *err, size_t errlen)
{
    struct json_object *hj = NULL;
    struct rd_cache_hdr *hdrs = NULL;
    struct rd_cache_mark *marks = NULL;
    struct rd_cache_entry *e = NULL;
    struct rd_json_err jerr;
    struct rd_cache_image im = {0};
    if (rd_json_parse(r->headers, r->headers_len, HDRS_JSON_MAX, &hj, &jerr) < 0) {
        rd_seterr(err, errlen, "headers: %s at byte %zu", jerr.msg, jerr.pos);
        goto out;
    }
    if (rd_cache_image_hdrs_parse(hj, &hdrs, &im.nhdrs, err, errlen) < 0)
        goto out;
    if (!unpack_marks(r, &marks, &im.nmarks)) {
        rd_seterr(err, errlen, "marks: %zu bytes is not a whole number of marks", r->marks_len);
        goto out;
    }
    if (r->ttl_s <= 0 || r->ttl_s > UINT32_MAX) {
        rd_seterr(err, errlen, "ttl_s: out of range");
        goto out;
    }
    memcpy(im.key, r->key, sizeof im.key);
    im.model = r->model;
    im.method = r->method;
    im.path = r->path;
    /* A kind this build does not know (a newer one wrote it) only loses its TTL rule. */
    if (!rd_cache_kind_parse(r->kind, &im.kind))
        im.kind = RD_REQ_OTHER;
    im.status = r->status;
    im.stream = r->stream;
    im.hdrs = hdrs;
    im.body = r->body;
    im.body_len = r->body_len;
    im.marks = marks;
    im.usage = (struct rd_usage){.input = r->input_tokens,
                                 .output = r->output_tokens,
                                 .cached = r->cached_tokens,
                                 .cache_write = r->cache_write_tokens,
                                 .reasoning = r->reasoning_tokens};
    im.upstream_model = r->upstream_model;
    im.finish = r->finish;
    im.created_ms = r->created_at;
    im.expires_ms = r->expires_at;
    im.ttl_s = (uint32_t)r->ttl_s;
    im.hits = r->hits > 0 ? (uint64_t)r->hits : 0;
    e = rd_cache_image_build(&im, err, errlen);
out:
    free(marks);
    free(hdrs);
    json_object_put(hj);
    return e;
}

static int on_row(void *ud, const struct rd_cache_rec *r)
{
    struct load_ctx *l = ud;
    char err[160] = "";
    struct rd_cache_entry *e = from_rec(r, err, sizeof err);
    if (e == NULL) {
        l->skipped++;
        rd_warn("cache persist: a stored entry of proxy %lld is unusable (%s); skipped", (long long)l->proxy_id, err);
        return 0;
    }
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->list = rd_realloc(l->list, l->cap * sizeof *l->list);
    }
    l->list[l->n++] = e;
    return 0;
}

static void run_load(struct rd_cache_persist *p, struct op *op)
{
    struct load_ctx l = {.proxy_id = op->proxy_id};
    int rc = rd_store_cache_load(p->store, op->proxy_id, rd_cache_now(op->c), 0, 0, on_row, &l);
    if (rc < 0) {
        atomic_fetch_add(&p->failed, 1);
        rd_warn("cache persist: loading proxy %lld's entries failed: %s", (long long)op->proxy_id, rd_strerror(rc));
    }
    /* Even after a failure part way, what was read is good. */
    size_t loaded = 0;
    for (size_t i = l.n; i-- > 0;) {
        /* RD_EINVAL: it expired while loading; RD_ETOOBIG: larger than the whole limit. */
        if (rd_cache_insert(op->c, l.list[i]) == 0)
            loaded++;
        rd_cache_entry_unref(l.list[i]);
    }
    free(l.list);
    rd_info("cache persist: proxy %lld: %zu of %zu stored entries inserted%s", (long long)op->proxy_id, loaded, l.n,
            l.skipped ? " (some unusable, see above)" : "");
}

/* ---- the writer ---- */

static void count_deleted(struct rd_cache_persist *p, int rc, const char *what, int64_t proxy_id)
{
    if (rc >= 0) {
        atomic_fetch_add(&p->deleted, (uint64_t)rc);
        return;
    }
    atomic_fetch_add(&p->failed, 1);
    rd_warn("cache persist: %s of proxy %lld failed: %s", what, (long long)proxy_id, rd_strerror(rc));
}

static void run_one(struct rd_cache_persist *p, struct op *op)
{
    switch (op->kind) {
    case OP_DELETE:
        count_deleted(p, rd_store_cache_delete(p->store, op->proxy_id, op->key), "a deletion", op->proxy_id);
        break;
    case OP_CLEAR: count_deleted(p, rd_store_cache_clear(p->store, op->proxy_id), "a clear", op->proxy_id); break;
    case OP_LOAD: run_load(p, op); break;
    case OP_PUT: break; /* batched by run_batch */
    }
}

static void free_op(struct op *op)
{
    rd_cache_entry_unref(op->e);
    rd_cache_unref(op->c);
    free(op);
}

static void run_batch(struct rd_cache_persist *p, struct op *list)
{
    struct op *puts[BATCH_MAX];
    size_t nputs = 0;
    for (struct op *op = list; op != NULL; op = op->next) {
        if (op->kind == OP_PUT) {
            puts[nputs++] = op;
            continue;
        }
        if (nputs) {
            write_puts(p, puts, nputs);
            nputs = 0;
        }
        run_one(p, op);
    }
    if (nputs)
        write_puts(p, puts, nputs);
    while (list) {
        struct op *next = list->next;
        free_op(list);
        list = next;
    }
}

/* Detaches up to BATCH_MAX operations (p->mu held); returns how many. */
static size_t take_batch(struct rd_cache_persist *p, struct op **list)
{
    size_t n = 0;
    struct op *first = p->head, *last = NULL;
    for (struct op *op = first; op != NULL && n < BATCH_MAX; op = op->next) {
        last = op;
        n++;
        if (op->kind == OP_PUT)
            p->queued_puts--;
    }
    if (last) {
        p->head = last->next;
        if (p->head == NULL)
            p->tail = NULL;
        last->next = NULL;
    }
    *list = first;
    return n;
}

static void purge(struct rd_cache_persist *p)
{
    int rc = rd_store_cache_purge(p->store, rd_time_wall_ms());
    count_deleted(p, rc, "the purge", 0);
    if (rc > 0)
        rd_debug("cache persist: %d expired entries purged", rc);
}

/* mono_ms (rd_time_mono_ms's clock) as the absolute time the wake
 * condvar's timed wait takes (it runs on CLOCK_MONOTONIC, see init_sync). */
static struct timespec mono_ts(uint64_t mono_ms)
{
    return (struct timespec){.tv_sec = (time_t)(mono_ms / 1000), .tv_nsec = (long)(mono_ms % 1000) * 1000000L};
}

static void *writer_main(void *arg)
{
    struct rd_cache_persist *p = arg;
    uint64_t next_purge = rd_time_mono_ms() + PURGE_EVERY_MS;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->head == NULL && !p->stopping) {
            struct timespec ts = mono_ts(next_purge);
            if (pthread_cond_timedwait(&p->wake, &p->mu, &ts) == ETIMEDOUT)
                break;
        }
        if (p->head == NULL && p->stopping)
            break;
        struct op *list = NULL;
        size_t n = take_batch(p, &list);
        pthread_mutex_unlock(&p->mu);
        run_batch(p, list);
        /* Checked after every batch, not only when idle: a queue that never
         * empties must not stop the purge. */
        if (rd_time_mono_ms() >= next_purge) {
            purge(p);
            next_purge = rd_time_mono_ms() + PURGE_EVERY_MS;
        }
        pthread_mutex_lock(&p->mu);
        p->seq_done += n;
        pthread_cond_broadcast(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* ---- start / stop ---- */

static int init_sync(struct rd_cache_persist *p)
{
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0)
        return -ENOMEM;
    int rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (rc == 0)
        rc = pthread_cond_init(&p->wake, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0)
        return -rc;
    if ((rc = pthread_cond_init(&p->done, NULL)) != 0) {
        pthread_cond_destroy(&p->wake);
        return -rc;
    }
    if ((rc = pthread_mutex_init(&p->mu, NULL)) != 0) {
        pthread_cond_destroy(&p->done);
        pthread_cond_destroy(&p->wake);
        return -rc;
    }
    return 0;
}

static void destroy_sync(struct rd_cache_persist *p)
{
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->wake);
}

int rd_cache_persist_start(const char *store_url, struct rd_cache_persist **out, char *err, size_t errlen)
{
    struct rd_cache_persist *p = rd_calloc(1, sizeof *p);
    int rc = rd_store_open(store_url, &p->store, err, errlen);
    if (rc < 0) {
        free(p);
        return rc;
    }
    if ((rc = init_sync(p)) < 0) {
        rd_seterr(err, errlen, "cache persist: %s", rd_strerror(rc));
        goto fail;
    }
    if ((rc = pthread_create(&p->thread, NULL, writer_main, p)) != 0) {
        rd_seterr(err, errlen, "cache persist: cannot start the writer thread: %s", rd_strerror(-rc));
        destroy_sync(p);
        rc = -rc;
        goto fail;
    }
    (void)pthread_setname_np(p->thread, "rd-cache-store");
    *out = p;
    return 0;
fail:
    rd_store_close(p->store);
    free(p);
    return rc;
}

void rd_cache_persist_stop(struct rd_cache_persist *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->mu);
    /* The writer drains the queue before it leaves, so nothing queued is lost. */
    int rc = pthread_join(p->thread, NULL);
    if (rc != 0)
        rd_error("cache persist: joining the writer failed: %s", rd_strerror(-rc));
    destroy_sync(p);
    rd_store_close(p->store);
    free(p);
}
