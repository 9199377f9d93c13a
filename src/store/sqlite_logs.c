/* The request log's SQLite ops (005_request_log_blocks.sql). See store.h
 * rd_store_log_*.
 *
 * A batch from the log writer becomes one block: one row of
 * request_log_blocks holding the batch's records as a JSON array
 * (obs/record_pack.c), plus one request_log_keys row per (proxy, status)
 * in it. Reading goes block by block, newest first (id DESC, records in
 * reverse): the keys pick the blocks a proxy or status filter needs, the
 * block's timestamp range those a time window needs, and a block whose
 * text lacks a string the filter asks for is skipped unread; the records
 * of the rest are decoded and matched in memory by rd_log_filter_match,
 * the live stream's own test, so a query and the stream never disagree.
 *
 * The order is the writing order: seq DESC, newest written first. A
 * record is written when its request is done, so a long stream appears
 * when it ends, and a page already read never gains rows. */
#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "obs/filter.h"
#include "obs/record.h"
#include "store/sqlite_int.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/json.h"
#include "util/json_scan.h"
#include "util/log.h"

#define BLOCK_MAX 512   /* records per block; a longer batch is split */
#define MAX_KEYS 64     /* distinct (proxy, status) pairs tracked per block, then one row per record */
#define PURGE_BLOCKS 16 /* blocks rewritten per purge transaction */
#define RD_ENOMEM (-ENOMEM)
#define RD_STR_(x) #x
#define RD_STR(x) RD_STR_(x)

/* This file's statement slots (sqlite_int.h). */
enum {
    SQ_LAST,      /* the newest block's last seq */
    SQ_PUT_BLOCK, /* insert a block */
    SQ_PUT_KEY,   /* insert a key row */
    SQ_GET_BLOCK, /* one block by id */
    SQ_DEL_BLOCK,
    SQ_DEL_KEYS,
    SQ_SET_BLOCK, /* rewrite a block after a partial purge */
    SQ_WHOLE,     /* the blocks wholly inside a time range */
    SQ_COUNT_KEYS_SHAPED,     /* + 4 shapes */
    SQ_SCAN = SQ_COUNT_KEYS_SHAPED + 4, /* + 4 shapes */
    SQ_COUNT_OF = SQ_SCAN + 4,
};
_Static_assert(SQ_COUNT_OF <= RD_SQ_ROLLUP_FIRST - RD_SQ_LOG_FIRST, "request log statement slots");
#define SLOT(i) ((enum rd_sqlite_ext)(RD_SQ_LOG_FIRST + (unsigned)(i)))

/* ---- writing ---- */

struct key_count {
    int64_t proxy_id;
    int status;
    int64_t n;
};

static int64_t last_seq(struct rd_store *s)
{
    /* The newest block's last seq, or the highest a purge took away
     * (007_request_log_seq_hw.sql): a seq is never given twice. */
    sqlite3_stmt *st =
        rd_sqlite_stmt(s, SLOT(SQ_LAST),
                       "SELECT max(coalesce((SELECT seq_last FROM request_log_blocks ORDER BY id DESC LIMIT 1), 0), "
                       "coalesce((SELECT seq_hw FROM request_log_seq WHERE id = 1), 0))");
    if (st == NULL)
        return RD_ESTORE;
    int rc = sqlite3_step(st);
    int64_t v = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        v = rd_sqlite_err(s, "read the request log's last seq");
    rd_sqlite_done(st);
    return v;
}

static int put_keys(struct rd_store *s, int64_t block, const struct key_count *keys, size_t nkeys)
{
    sqlite3_stmt *st = rd_sqlite_stmt(
        s, SLOT(SQ_PUT_KEY), "INSERT INTO request_log_keys (block, proxy_id, status_code, n) VALUES (?1, ?2, ?3, ?4)");
    if (st == NULL)
        return RD_ESTORE;
    for (size_t i = 0; i < nkeys; i++) {
        int rc = sqlite3_bind_int64(st, 1, block) | sqlite3_bind_int64(st, 2, keys[i].proxy_id) |
                 sqlite3_bind_int(st, 3, keys[i].status) | sqlite3_bind_int64(st, 4, keys[i].n);
        if (rc != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE) {
            rc = rd_sqlite_err(s, "write request log keys");
            rd_sqlite_done(st);
            return rc;
        }
        sqlite3_reset(st);
    }
    rd_sqlite_done(st);
    return 0;
}

/* Counts recs by (proxy, status) into keys (at most MAX_KEYS pairs; a
 * block with more is counted exactly all the same: the array grows to
 * n). Returns the number of pairs. */
static size_t count_keys(struct rd_log_rec *const *recs, size_t n, struct key_count *keys)
{
    size_t nk = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        while (k < nk && (keys[k].proxy_id != recs[i]->proxy_id || keys[k].status != recs[i]->status))
            k++;
        if (k == nk)
            keys[nk++] = (struct key_count){recs[i]->proxy_id, recs[i]->status, 0};
        keys[k].n++;
    }
    return nk;
}

/* Writes recs[0..n) (n <= BLOCK_MAX, seqs set) as block id: the fields
 * they all share once (common), each record with the rest, its seq left
 * out where it is id + its index. st is SQ_PUT_BLOCK's or SQ_SET_BLOCK's
 * statement: ?1 id, ?2 seq_last, ?3 ts_min, ?4 ts_max, ?5 n, ?6 records,
 * ?7 common. text holds both, common first. */
static int write_block(struct rd_store *s, sqlite3_stmt *st, int64_t id, struct rd_log_rec *const *recs, size_t n,
                       struct rd_buf *text)
{
    rd_buf_reset(text);
    uint64_t shared = rd_log_rec_shared(recs, n);
    struct rd_log_block_ctx c;
    rd_log_block_ctx_of(&c, recs, n, shared);
    int rc = rd_log_block_pack(text, shared ? recs[0] : NULL, shared, &c);
    size_t common_len = text->len;
    rc |= rd_buf_append(text, "[", 1);
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (i)
            rc |= rd_buf_append(text, ",", 1);
        uint64_t which = ~shared;
        if (recs[i]->seq == (uint64_t)id + i)
            which &= ~RD_LOG_PACK_SEQ;
        rc |= rd_log_rec_pack_in(text, recs[i], which, &c, i);
    }
    rc |= rd_buf_append(text, "]", 1);
    if (rc < 0 || text->len > INT_MAX)
        return RD_ENOMEM;
    const char *t = (const char *)text->data;
    rc = sqlite3_bind_int64(st, 1, id) | sqlite3_bind_int64(st, 2, (int64_t)recs[n - 1]->seq) |
         sqlite3_bind_int64(st, 3, c.ts_min) | sqlite3_bind_int64(st, 4, c.ts_max) |
         sqlite3_bind_int64(st, 5, (int64_t)n) |
         sqlite3_bind_text(st, 6, t + common_len, (int)(text->len - common_len), SQLITE_STATIC) |
         sqlite3_bind_text(st, 7, t, (int)common_len, SQLITE_STATIC);
    if (rc != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE)
        rc = rd_sqlite_err(s, "write request log block");
    else
        rc = 0;
    rd_sqlite_done(st);
    if (rc < 0)
        return rc;
    struct key_count keys[MAX_KEYS];
    struct key_count *kp = keys;
    if (n > MAX_KEYS && (kp = malloc(n * sizeof *kp)) == NULL)
        return RD_ENOMEM;
    rc = put_keys(s, id, kp, count_keys(recs, n, kp));
    if (kp != keys)
        free(kp);
    return rc;
}

/* The records from recs[0] on that go in one block: up to BLOCK_MAX, and
 * where a worker's run of request ids ends (another worker's prefix), so
 * that a block's ids are mostly implied (rd_log_block_ctx). */
static size_t block_len(struct rd_log_rec *const *recs, size_t n)
{
    size_t m = n < BLOCK_MAX ? n : BLOCK_MAX;
    uint32_t k;
    if (!rd_log_id_split(recs[0]->id, &k))
        return m;
    for (size_t i = 1; i < m; i++)
        if (memcmp(recs[i]->id, recs[0]->id, 12) != 0)
            return i;
    return m;
}

static const char put_block_sql[] =
    "INSERT INTO request_log_blocks (id, seq_last, ts_min, ts_max, n, records, common) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
static const char set_block_sql[] =
    "UPDATE request_log_blocks SET seq_last = ?2, ts_min = ?3, ts_max = ?4, n = ?5, records = ?6, common = ?7 "
    "WHERE id = ?1";

int rd_sqlite_log_put(struct rd_store *s, struct rd_log_rec *const *recs, size_t n)
{
    if (rd_sqlite_begin(s) < 0)
        return RD_ESTORE;
    /* The store's own buffer: a block's text is tens of KB, every batch. */
    struct rd_buf *text = rd_sqlite_scratch(s);
    int64_t next = last_seq(s);
    int rc = next < 0 ? RD_ESTORE : 0;
    for (size_t off = 0, m; off < n && rc == 0; off += m) {
        m = block_len(recs + off, n - off);
        for (size_t i = 0; i < m; i++)
            recs[off + i]->seq = (uint64_t)(next + 1 + (int64_t)i);
        sqlite3_stmt *st = rd_sqlite_stmt(s, SLOT(SQ_PUT_BLOCK), put_block_sql);
        rc = st ? write_block(s, st, next + 1, recs + off, m, text) : RD_ESTORE;
        next += (int64_t)m;
    }
    rd_sqlite_scratch_done(s);
    if (rc == 0 && rd_sqlite_commit(s) < 0)
        rc = RD_ESTORE;
    if (rc < 0) {
        rd_sqlite_rollback(s);
        for (size_t i = 0; i < n; i++)
            recs[i]->seq = 0;
        return rc == RD_ENOMEM ? RD_ENOMEM : RD_ESTORE;
    }
    return (int)n;
}

/* ---- reading ---- */

/* The records of one block's text, decoded lazily: their spans. */
struct block {
    int64_t id;
    const char *text; /* the records array */
    size_t len;
    struct rd_json_span *recs;
    size_t n, cap;
    struct rd_log_rec base; /* the common fields over the defaults */
    struct rd_log_block_ctx ctx;
};

static int collect(void *ud, size_t index, struct rd_json_span v)
{
    (void)index;
    struct block *b = ud;
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : BLOCK_MAX;
        struct rd_json_span *p = realloc(b->recs, cap * sizeof *p);
        if (p == NULL)
            return RD_ENOMEM;
        b->recs = p;
        b->cap = cap;
    }
    b->recs[b->n++] = v;
    return 0;
}

/* Splits the records array, reads common into base and its context. */
static int split_block(struct block *b, const char *common, size_t common_len, int64_t ts_min)
{
    b->n = 0;
    rd_log_rec_reset(&b->base);
    if (rd_log_block_common_read(common, common_len, ts_min, &b->ctx, &b->base) < 0)
        return RD_EPROTO;
    b->base.seq = 0;
    int rc = rd_json_scan_elements(b->text, b->len, collect, b);
    return rc == RD_ENOMEM ? RD_ENOMEM : rc < 0 ? RD_EPROTO : 0;
}

/* Record i of a split block into *r. */
static int block_rec(const struct block *b, size_t i, struct rd_log_rec *r)
{
    *r = b->base;
    if (rd_log_rec_apply_in(b->recs[i].p, b->recs[i].n, r, &b->ctx, i) < 0)
        return RD_EPROTO;
    if (r->seq == 0)
        r->seq = (uint64_t)b->id + i;
    return 0;
}

/* Strings a matching record's JSON must contain: a block without one of
 * them holds no match and is not decoded. */
struct needles {
    struct rd_buf bufs[3];
    size_t n;
    /* q's needle (bufs[q_at]) could be part of a request id, which a block
     * of one worker's ids does not spell out (rd_log_block_ctx): such a
     * block may hold it all the same, unless q is a whole id outside the
     * block's range. */
    size_t q_at;
    bool q_idlike, q_whole_id;
    const char *q;
};

static void needles_free(struct needles *nd)
{
    for (size_t i = 0; i < nd->n; i++)
        rd_buf_free(&nd->bufs[i]);
}

static void needle_member(struct needles *nd, const char *key, const char *v)
{
    struct rd_buf *b = &nd->bufs[nd->n];
    rd_buf_init(b, 0);
    if (rd_buf_printf(b, "\"%s\":", key) == 0 && rd_json_append_str(b, v, strlen(v)) == 0)
        nd->n++;
    else
        rd_buf_free(b);
}

/* The writer's JSON (rd_json_append_str) keeps a string's bytes as they
 * are unless they need an escape: q is a needle only without such bytes. */
static bool plain(const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == '"' || c == '\\' || c >= 0x80)
            return false;
    }
    return true;
}

static void needles_of(const struct rd_log_filter *f, struct needles *nd)
{
    nd->n = 0;
    if (f->model)
        needle_member(nd, rd_log_rec_key("model"), f->model);
    if (f->failure_type && strcmp(f->failure_type, "none") != 0)
        needle_member(nd, rd_log_rec_key("failure_type"), f->failure_type);
    nd->q_at = SIZE_MAX;
    if (f->q && f->q[0] && plain(f->q)) {
        rd_buf_init(&nd->bufs[nd->n], 0);
        if (rd_buf_appends(&nd->bufs[nd->n], f->q) == 0) {
            uint32_t k;
            nd->q = f->q;
            nd->q_at = nd->n++;
            nd->q_idlike = strlen(f->q) <= 20 && strspn(f->q, "req_0123456789abcdef") == strlen(f->q);
            nd->q_whole_id = rd_log_id_split(f->q, &k);
        } else {
            rd_buf_free(&nd->bufs[nd->n]);
        }
    }
}

/* A block whose common names its ids' prefix ("idp") may hold q in an id it
 * does not spell out. */
static bool q_implied(const struct needles *nd, const char *common, size_t common_len)
{
    static const char idp[] = "\"idp\":";
    if (!nd->q_idlike || common == NULL || memmem(common, common_len, idp, sizeof idp - 1) == NULL)
        return false;
    if (!nd->q_whole_id)
        return true;
    struct rd_log_block_ctx c;
    return rd_log_block_ctx_read(common, common_len, 0, &c) < 0 || rd_log_block_may_hold(&c, nd->q);
}

/* Each needle is in the block's records or its common fields. */
static bool has_needles(const struct needles *nd, const char *text, size_t len, const char *common,
                        size_t common_len)
{
    for (size_t i = 0; i < nd->n; i++) {
        const void *k = nd->bufs[i].data;
        size_t kn = nd->bufs[i].len;
        if (memmem(text, len, k, kn) == NULL && (common == NULL || memmem(common, common_len, k, kn) == NULL) &&
            !(i == nd->q_at && q_implied(nd, common, common_len)))
            return false;
    }
    return true;
}

/* The blocks that may hold a match of f with a seq below before (0: any),
 * newest first: ?1 proxy_id, ?2 ?3 the status range, ?4 since, ?5 until,
 * ?6 the keyset's seq. */
static sqlite3_stmt *scan_stmt(struct rd_store *s, const struct rd_log_filter *f, uint64_t before)
{
    bool by_proxy = f->proxy_id != 0, by_status = f->status || f->status_class;
    int shape = (by_proxy ? 1 : 0) + (by_status ? 2 : 0);
    char sql[512];
    int n = snprintf(sql, sizeof sql,
                     "SELECT id, records, common, ts_min FROM request_log_blocks WHERE id < ?6 AND ts_max >= ?4 AND "
                     "ts_min < ?5%s%s%s%s"
                     " ORDER BY id DESC",
                     shape ? " AND id IN (SELECT block FROM request_log_keys WHERE 1" : "",
                     by_proxy ? " AND proxy_id = ?1" : "",
                     by_status ? " AND status_code >= ?2 AND status_code < ?3" : "", shape ? ")" : "");
    if (n < 0 || (size_t)n >= sizeof sql)
        return NULL;
    sqlite3_stmt *st = rd_sqlite_stmt(s, SLOT(SQ_SCAN + shape), sql);
    if (st == NULL)
        return NULL;
    int lo = f->status ? f->status : f->status_class * 100, hi = f->status ? f->status + 1 : f->status_class * 100 + 100;
    int64_t b = before > 0 && before <= INT64_MAX ? (int64_t)before : INT64_MAX;
    int rc = sqlite3_bind_int64(st, 6, b) | sqlite3_bind_int64(st, 4, f->since_ms ? f->since_ms : INT64_MIN) |
             sqlite3_bind_int64(st, 5, f->until_ms ? f->until_ms : INT64_MAX);
    if (by_proxy)
        rc |= sqlite3_bind_int64(st, 1, f->proxy_id);
    if (by_status)
        rc |= sqlite3_bind_int(st, 2, lo) | sqlite3_bind_int(st, 3, hi);
    if (rc != SQLITE_OK) {
        rd_sqlite_done(st);
        return NULL;
    }
    return st;
}

/* Calls fn for each record of f below the keyset, newest first, until fn
 * returns non-zero; what fn returns, 0 at the end, or RD_ESTORE. A block
 * that does not decode is skipped with a warning (the rest of the log
 * stays readable). */
typedef int (*each_fn)(void *ud, const struct rd_log_rec *r, int64_t block);

static int each_record(struct rd_store *s, const struct rd_log_filter *f, bool keyset, each_fn fn, void *ud)
{
    uint64_t before = keyset ? f->before_seq : 0;
    sqlite3_stmt *st = scan_stmt(s, f, before);
    if (st == NULL)
        return rd_sqlite_err(s, "query request log");
    struct needles nd;
    needles_of(f, &nd);
    struct block b = {0};
    struct rd_log_rec r;
    int ret = 0, rc = SQLITE_DONE;
    while (ret == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        b.id = sqlite3_column_int64(st, 0);
        b.text = (const char *)sqlite3_column_text(st, 1);
        b.len = (size_t)sqlite3_column_bytes(st, 1);
        const char *common = (const char *)sqlite3_column_text(st, 2);
        size_t common_len = (size_t)sqlite3_column_bytes(st, 2);
        if (b.text == NULL || !has_needles(&nd, b.text, b.len, common, common_len))
            continue;
        int sr = split_block(&b, common, common_len, sqlite3_column_int64(st, 3));
        if (sr == RD_ENOMEM) {
            ret = RD_ENOMEM;
            break;
        }
        if (sr < 0) {
            rd_warn("request log: block %lld does not decode: skipped", (long long)b.id);
            continue;
        }
        for (size_t i = b.n; i-- > 0 && ret == 0;) {
            if (block_rec(&b, i, &r) < 0) {
                rd_warn("request log: a record of block %lld does not decode: skipped", (long long)b.id);
                continue;
            }
            if ((before == 0 || r.seq < before) && rd_log_filter_match(f, &r))
                ret = fn(ud, &r, b.id);
        }
    }
    if (ret == 0 && rc != SQLITE_DONE)
        ret = rd_sqlite_err(s, "query request log");
    rd_sqlite_done(st);
    free(b.recs);
    needles_free(&nd);
    return ret;
}

struct query_ctx {
    rd_log_rec_fn fn;
    void *ud;
    size_t limit, n;
    bool stopped;
};

static int query_one(void *ud, const struct rd_log_rec *r, int64_t block)
{
    (void)block;
    struct query_ctx *q = ud;
    q->n++;
    if (q->fn(q->ud, r) != 0) {
        q->stopped = true;
        return 1;
    }
    return q->limit && q->n >= q->limit ? 1 : 0;
}

int rd_sqlite_log_query(struct rd_store *s, const struct rd_log_filter *f, size_t limit, rd_log_rec_fn fn, void *ud)
{
    struct query_ctx q = {.fn = fn, .ud = ud, .limit = limit};
    int rc = each_record(s, f, true, query_one, &q);
    if (rc < 0)
        return RD_ESTORE;
    return q.n > INT_MAX ? INT_MAX : (int)q.n;
}

static int count_one(void *ud, const struct rd_log_rec *r, int64_t block)
{
    (void)r, (void)block;
    (*(int64_t *)ud)++;
    return 0;
}

/* Only a proxy and a status: the key rows' counts, no block read. */
static bool keys_answer(const struct rd_log_filter *f)
{
    return f->cache < 0 && f->failure_type == NULL && f->model == NULL && f->since_ms == 0 && f->until_ms == 0 &&
           (f->q == NULL || f->q[0] == '\0');
}

/* Nothing but a time range (or nothing). */
static bool keys_answer_time(const struct rd_log_filter *f)
{
    return f->proxy_id == 0 && f->status == 0 && f->status_class == 0 && f->cache < 0 && f->failure_type == NULL &&
           f->model == NULL && (f->q == NULL || f->q[0] == '\0');
}

static int64_t count_by_keys(struct rd_store *s, const struct rd_log_filter *f)
{
    bool by_proxy = f->proxy_id != 0, by_status = f->status || f->status_class;
    int shape = (by_proxy ? 1 : 0) + (by_status ? 2 : 0);
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT coalesce(sum(n), 0) FROM request_log_keys WHERE 1%s%s",
             by_proxy ? " AND proxy_id = ?1" : "", by_status ? " AND status_code >= ?2 AND status_code < ?3" : "");
    sqlite3_stmt *st = rd_sqlite_stmt(s, SLOT(SQ_COUNT_KEYS_SHAPED + shape), sql);
    if (st == NULL)
        return RD_ESTORE;
    int lo = f->status ? f->status : f->status_class * 100, hi = f->status ? f->status + 1 : f->status_class * 100 + 100;
    int rc = SQLITE_OK;
    if (by_proxy)
        rc |= sqlite3_bind_int64(st, 1, f->proxy_id);
    if (by_status)
        rc |= sqlite3_bind_int(st, 2, lo) | sqlite3_bind_int(st, 3, hi);
    int64_t n = RD_ESTORE;
    if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    else
        (void)rd_sqlite_err(s, "count request log");
    rd_sqlite_done(st);
    return n;
}

int64_t rd_sqlite_log_count(struct rd_store *s, const struct rd_log_filter *f)
{
    if (keys_answer(f))
        return count_by_keys(s, f);
    int64_t n = 0;
    return each_record(s, f, false, count_one, &n) < 0 ? RD_ESTORE : n;
}

struct get_ctx {
    const char *id;
    struct rd_log_rec *out;
};

static int get_one(void *ud, const struct rd_log_rec *r, int64_t block)
{
    (void)block;
    struct get_ctx *g = ud;
    if (strcmp(r->id, g->id) != 0)
        return 0;
    *g->out = *r;
    return 1;
}

int rd_sqlite_log_get(struct rd_store *s, const char *id, struct rd_log_rec *out)
{
    /* A scan, newest first, reading only the blocks whose text holds the
     * id: ids are unique; should two records share one, the newer wins. */
    if (id[0] == '\0' || !plain(id))
        return RD_ENOTFOUND;
    struct rd_log_filter f = {.cache = -1, .q = id};
    struct get_ctx g = {id, out};
    int rc = each_record(s, &f, false, get_one, &g);
    return rc < 0 ? RD_ESTORE : rc == 1 ? 0 : RD_ENOTFOUND;
}

/* ---- purging ---- */

struct ids {
    int64_t *v;
    size_t n, cap;
};

static int note_block(void *ud, const struct rd_log_rec *r, int64_t block)
{
    (void)r;
    struct ids *ids = ud;
    if (ids->n && ids->v[ids->n - 1] == block)
        return 0;
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? 2 * ids->cap : 64;
        int64_t *p = realloc(ids->v, cap * sizeof *p);
        if (p == NULL)
            return RD_ENOMEM;
        ids->v = p;
        ids->cap = cap;
    }
    ids->v[ids->n++] = block;
    return 0;
}

static int exec_id(struct rd_store *s, int slot, const char *sql, int64_t id)
{
    sqlite3_stmt *st = rd_sqlite_stmt(s, SLOT(slot), sql);
    if (st == NULL)
        return RD_ESTORE;
    int rc = sqlite3_bind_int64(st, 1, id) == SQLITE_OK && sqlite3_step(st) == SQLITE_DONE ? 0 : RD_ESTORE;
    if (rc < 0)
        (void)rd_sqlite_err(s, "purge request log");
    rd_sqlite_done(st);
    return rc;
}

/* Removes the records of block id that match f; returns how many, or
 * RD_ESTORE / RD_ENOMEM. Within the caller's transaction. */
static int64_t purge_block(struct rd_store *s, const struct rd_log_filter *f, int64_t id, struct rd_buf *text)
{
    sqlite3_stmt *st =
        rd_sqlite_stmt(s, SLOT(SQ_GET_BLOCK), "SELECT records, common, ts_min FROM request_log_blocks WHERE id = ?1");
    if (st == NULL)
        return RD_ESTORE;
    if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK) {
        rd_sqlite_done(st);
        return RD_ESTORE;
    }
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        rd_sqlite_done(st);
        return 0; /* gone meanwhile */
    }
    if (rc != SQLITE_ROW) {
        rd_sqlite_done(st);
        return rd_sqlite_err(s, "purge request log");
    }
    struct block b = {.id = id, .text = (const char *)sqlite3_column_text(st, 0)};
    b.len = (size_t)sqlite3_column_bytes(st, 0);
    struct rd_log_rec *keep = NULL;
    size_t nkeep = 0;
    int64_t gone = 0;
    int64_t ret = b.text && split_block(&b, (const char *)sqlite3_column_text(st, 1),
                                        (size_t)sqlite3_column_bytes(st, 1), sqlite3_column_int64(st, 2)) == 0
                      ? 0
                      : RD_EPROTO;
    if (ret == 0 && b.n && (keep = malloc(b.n * sizeof *keep)) == NULL)
        ret = RD_ENOMEM;
    for (size_t i = 0; ret == 0 && i < b.n; i++) {
        if (block_rec(&b, i, &keep[nkeep]) < 0)
            ret = RD_EPROTO;
        else if (rd_log_filter_match(f, &keep[nkeep]))
            gone++;
        else
            nkeep++;
    }
    rd_sqlite_done(st); /* b.text is not used past here */
    free(b.recs);
    if (ret == RD_EPROTO) {
        /* A block that does not decode is left as it is. */
        rd_warn("request log: block %lld does not decode: not purged", (long long)id);
        free(keep);
        return 0;
    }
    if (ret == 0 && gone > 0) {
        if (nkeep == 0) {
            ret = exec_id(s, SQ_DEL_BLOCK, "DELETE FROM request_log_blocks WHERE id = ?1", id) |
                  exec_id(s, SQ_DEL_KEYS, "DELETE FROM request_log_keys WHERE block = ?1", id);
        } else {
            sqlite3_stmt *set = rd_sqlite_stmt(s, SLOT(SQ_SET_BLOCK), set_block_sql);
            struct rd_log_rec **kp = malloc(nkeep * sizeof *kp);
            for (size_t i = 0; kp && i < nkeep; i++)
                kp[i] = &keep[i];
            ret = kp ? exec_id(s, SQ_DEL_KEYS, "DELETE FROM request_log_keys WHERE block = ?1", id) : RD_ENOMEM;
            if (ret == 0)
                ret = set ? write_block(s, set, id, kp, nkeep, text) : RD_ESTORE;
            free(kp);
        }
    }
    free(keep);
    return ret < 0 ? (ret == RD_ENOMEM ? RD_ENOMEM : RD_ESTORE) : gone;
}

/* A filter of a time range only: the blocks wholly inside it go without
 * being read (the retention purge's case, damaged blocks included), up to
 * PURGE_BLOCKS to a transaction. Returns their records or RD_ESTORE. */
static int64_t purge_whole_blocks(struct rd_store *s, const struct rd_log_filter *f)
{
    int64_t total = 0;
    for (;;) {
        sqlite3_stmt *st = rd_sqlite_stmt(s, SLOT(SQ_WHOLE),
                                          "SELECT id, n FROM request_log_blocks WHERE ts_min >= ?1 AND ts_max < ?2 "
                                          "ORDER BY id LIMIT " RD_STR(PURGE_BLOCKS));
        if (st == NULL)
            return RD_ESTORE;
        int64_t ids[PURGE_BLOCKS], ns[PURGE_BLOCKS];
        size_t k = 0;
        int rc = sqlite3_bind_int64(st, 1, f->since_ms ? f->since_ms : INT64_MIN) |
                 sqlite3_bind_int64(st, 2, f->until_ms ? f->until_ms : INT64_MAX);
        while (rc == SQLITE_OK && k < PURGE_BLOCKS && (rc = sqlite3_step(st)) == SQLITE_ROW) {
            ids[k] = sqlite3_column_int64(st, 0);
            ns[k++] = sqlite3_column_int64(st, 1);
            rc = SQLITE_OK;
        }
        bool failed = rc != SQLITE_OK && rc != SQLITE_DONE;
        if (failed)
            (void)rd_sqlite_err(s, "purge request log");
        rd_sqlite_done(st);
        if (failed)
            return RD_ESTORE;
        if (k == 0)
            return total;
        if (rd_sqlite_begin(s) < 0)
            return RD_ESTORE;
        int64_t chunk = 0;
        for (size_t i = 0; i < k && !failed; i++) {
            failed = (exec_id(s, SQ_DEL_BLOCK, "DELETE FROM request_log_blocks WHERE id = ?1", ids[i]) |
                      exec_id(s, SQ_DEL_KEYS, "DELETE FROM request_log_keys WHERE block = ?1", ids[i])) != 0;
            chunk += ns[i] > 0 ? ns[i] : 0;
        }
        if (failed || rd_sqlite_commit(s) < 0) {
            rd_sqlite_rollback(s);
            return RD_ESTORE;
        }
        total += chunk;
    }
}

int64_t rd_sqlite_log_delete(struct rd_store *s, const struct rd_log_filter *f)
{
    int64_t whole = 0;
    if (keys_answer_time(f) && (whole = purge_whole_blocks(s, f)) < 0)
        return RD_ESTORE;
    /* The blocks holding a match first (their ids), then each rewritten or
     * deleted, PURGE_BLOCKS to a transaction, so the log writer's
     * connection gets the write lock between them however much goes.
     * Records the writer adds meanwhile are in newer blocks: not purged. */
    struct ids ids = {0};
    int rc = each_record(s, f, false, note_block, &ids);
    if (rc < 0) {
        free(ids.v);
        return RD_ESTORE;
    }
    struct rd_buf text;
    rd_buf_init(&text, 0);
    int64_t total = whole;
    for (size_t i = 0; i < ids.n && rc == 0; i += PURGE_BLOCKS) {
        if (rd_sqlite_begin(s) < 0) {
            rc = RD_ESTORE;
            break;
        }
        int64_t chunk = 0;
        for (size_t j = i; j < ids.n && j < i + PURGE_BLOCKS && rc == 0; j++) {
            int64_t n = purge_block(s, f, ids.v[j], &text);
            if (n < 0)
                rc = (int)n;
            else
                chunk += n;
        }
        if (rc == 0 && rd_sqlite_commit(s) == 0) {
            total += chunk;
        } else {
            rd_sqlite_rollback(s);
            rc = RD_ESTORE;
        }
    }
    rd_buf_free(&text);
    free(ids.v);
    if (rc < 0) {
        if (total > 0)
            rd_warn("request log purge stopped by a database error after %lld rows", (long long)total);
        return RD_ESTORE;
    }
    return total;
}
