/* The request log's SQLite ops (request_logs, 003_request_logs.sql). See
 * store.h rd_store_log_*. */
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "obs/record.h"
#include "store/sqlite_int.h"
#include "util/err.h"
#include "util/log.h"

/* This file's statement slots (sqlite_int.h): the insert, the lookup by id,
 * then one per query kind and filter shape (see shape_of). */
#define SQ_PUT ((enum rd_sqlite_ext)(RD_SQ_LOG_FIRST + 0))

#define LOG_COLS                                                                                            \
    "request_id, timestamp, proxy_id, node_id, client_ip, method, path, provider, model, status_code, "      \
    "upstream_status, latency_ms, upstream_latency_ms, ttfb_ms, request_bytes, response_bytes, cache, "      \
    "failure_type, response_delay_ms, stream, input_tokens, output_tokens, cached_tokens, reasoning_tokens, " \
    "cost_usd, prompt_hash, upstream_request_id, trace_id"

static const char put_sql[] = "INSERT INTO request_logs (" LOG_COLS
                              ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, "
                              "?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28)";

static int bind_opt_int(sqlite3_stmt *st, int i, int64_t v)
{
    return v < 0 ? sqlite3_bind_null(st, i) : sqlite3_bind_int64(st, i, v);
}

static int bind_opt_real(sqlite3_stmt *st, int i, double v, bool set)
{
    return set && isfinite(v) ? sqlite3_bind_double(st, i, v) : sqlite3_bind_null(st, i);
}

static int put_one(struct rd_store *s, sqlite3_stmt *st, struct rd_log_rec *r)
{
    int rc = sqlite3_bind_text(st, 1, r->id, -1, SQLITE_STATIC) | sqlite3_bind_int64(st, 2, r->ts_ms) |
             sqlite3_bind_int64(st, 3, r->proxy_id) | sqlite3_bind_text(st, 4, r->node_id, -1, SQLITE_STATIC) |
             sqlite3_bind_text(st, 5, r->client_ip, -1, SQLITE_STATIC) |
             sqlite3_bind_text(st, 6, r->method, -1, SQLITE_STATIC) |
             sqlite3_bind_text(st, 7, r->path, -1, SQLITE_STATIC) |
             sqlite3_bind_text(st, 8, r->provider, -1, SQLITE_STATIC) |
             sqlite3_bind_text(st, 9, r->model, -1, SQLITE_STATIC) | sqlite3_bind_int(st, 10, r->status) |
             sqlite3_bind_int(st, 11, r->upstream_status) | sqlite3_bind_double(st, 12, r->latency_ms) |
             bind_opt_real(st, 13, r->upstream_latency_ms, r->upstream_latency_ms >= 0) |
             bind_opt_real(st, 14, r->ttfb_ms, r->ttfb_ms >= 0) | sqlite3_bind_int64(st, 15, r->request_bytes) |
             sqlite3_bind_int64(st, 16, r->response_bytes) | sqlite3_bind_int(st, 17, (int)r->cache) |
             sqlite3_bind_text(st, 18, r->failure_type, -1, SQLITE_STATIC) |
             sqlite3_bind_int64(st, 19, r->response_delay_ms) | sqlite3_bind_int(st, 20, r->stream) |
             bind_opt_int(st, 21, r->input_tokens) | bind_opt_int(st, 22, r->output_tokens) |
             bind_opt_int(st, 23, r->cached_tokens) | bind_opt_int(st, 24, r->reasoning_tokens) |
             bind_opt_real(st, 25, r->cost_usd, r->has_cost) |
             sqlite3_bind_text(st, 26, r->prompt_hash, -1, SQLITE_STATIC) |
             sqlite3_bind_text(st, 27, r->upstream_request_id, -1, SQLITE_STATIC) |
             sqlite3_bind_text(st, 28, r->trace_id, -1, SQLITE_STATIC);
    int ret = 0;
    if (rc != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE)
        ret = rd_sqlite_err(s, "write request log");
    else
        r->seq = (uint64_t)sqlite3_last_insert_rowid(rd_sqlite_db(s));
    rd_sqlite_done(st);
    return ret;
}

int rd_sqlite_log_put(struct rd_store *s, struct rd_log_rec *recs, size_t n)
{
    sqlite3_stmt *st = rd_sqlite_stmt(s, SQ_PUT, put_sql);
    if (st == NULL || rd_sqlite_begin(s) < 0)
        return RD_ESTORE;
    for (size_t i = 0; i < n; i++) {
        if (put_one(s, st, &recs[i]) < 0) {
            rd_sqlite_rollback(s);
            for (size_t j = 0; j <= i; j++)
                recs[j].seq = 0;
            return RD_ESTORE;
        }
    }
    if (rd_sqlite_commit(s) < 0) {
        for (size_t j = 0; j < n; j++)
            recs[j].seq = 0;
        return RD_ESTORE;
    }
    return (int)n;
}

/* ---- queries ----
 *
 * The WHERE of a query varies with the filter, but only two of its parts
 * decide which index serves it: whether a proxy is named (idx_logs_proxy_id)
 * and whether a status is (exact: idx_logs_status, in the newest-first
 * order; a class: a range of it). Those make the statement's shape, one
 * prepared statement per kind and shape. Every other part is always there
 * and matches anything when its parameter is NULL ("?4 IS NULL OR cache =
 * ?4"), and the time range and keyset are always there too, bound to the
 * widest values when open: they are ranges on the index's timestamp, which
 * the planner uses in every shape. Values are only ever bound.
 *
 * Parameters: ?1 proxy_id, ?2 status (or the class's first code), ?3 the
 * class's end, ?4 cache, ?5 failure_type, ?6 model, ?7 since, ?9 q, ?10 ?11
 * the upper bound (timestamp, seq): the keyset or until, whichever is lower
 * (one upper bound, so the planner cannot pick the looser one for the
 * index range and filter by the other: a deep page would then scan every
 * row above it), ?12 the row limit. */

enum kind { K_SELECT, K_COUNT, K_DELETE, K_COUNT_OF };
enum status_shape { ST_ANY, ST_EXACT, ST_CLASS, ST_COUNT_OF };
#define NSHAPES (2 * ST_COUNT_OF)
#define SQ_GET ((enum rd_sqlite_ext)(RD_SQ_LOG_FIRST + 1))
#define SQ_SHAPE(kind, shape)                                                                                          \
    ((enum rd_sqlite_ext)(RD_SQ_LOG_FIRST + 2u + (unsigned)(kind)*NSHAPES + (unsigned)(shape)))
_Static_assert(2 + K_COUNT_OF * NSHAPES <= RD_SQ_ROLLUP_FIRST - RD_SQ_LOG_FIRST, "request log statement slots");

/* A purge deletes at most this many rows per statement (its own
 * transaction), so the log writer's connection gets the write lock between
 * chunks however many rows go. */
#define DELETE_CHUNK 10000

static int shape_of(const struct rd_log_filter *f)
{
    enum status_shape st = f->status ? ST_EXACT : f->status_class ? ST_CLASS : ST_ANY;
    return (f->proxy_id ? 1 : 0) + 2 * (int)st;
}

static const char where_common[] =
    " WHERE timestamp >= ?7 AND (timestamp, seq) < (?10, ?11)"
    " AND (?4 IS NULL OR cache = ?4) AND (?5 IS NULL OR failure_type = ?5) AND (?6 IS NULL OR model = ?6)"
    " AND (?9 IS NULL OR instr(request_id, ?9) > 0 OR instr(path, ?9) > 0 OR instr(model, ?9) > 0"
    " OR instr(client_ip, ?9) > 0 OR instr(upstream_request_id, ?9) > 0 OR instr(trace_id, ?9) > 0"
    " OR instr(prompt_hash, ?9) > 0)";

/* The statement of kind and shape, its SQL written the same every time
 * (rd_sqlite_stmt prepares it on first use). */
static sqlite3_stmt *shape_stmt(struct rd_store *s, enum kind k, int shape)
{
    static const char *const heads[] = {
        [K_SELECT] = "SELECT seq, " LOG_COLS " FROM request_logs",
        [K_COUNT] = "SELECT count(*) FROM request_logs",
        [K_DELETE] = "DELETE FROM request_logs WHERE seq IN (SELECT seq FROM request_logs",
    };
    static const char *const tails[] = {
        [K_SELECT] = " ORDER BY timestamp DESC, seq DESC LIMIT ?12",
        [K_COUNT] = "",
        [K_DELETE] = " LIMIT ?12)",
    };
    static const char *const status_terms[] = {[ST_ANY] = "",
                                               [ST_EXACT] = " AND status_code = ?2",
                                               [ST_CLASS] = " AND status_code >= ?2 AND status_code < ?3"};
    char sql[2048];
    int n = snprintf(sql, sizeof sql, "%s%s%s%s%s", heads[k], where_common, shape & 1 ? " AND proxy_id = ?1" : "",
                     status_terms[shape / 2], tails[k]);
    if (n < 0 || (size_t)n >= sizeof sql)
        return NULL;
    return rd_sqlite_stmt(s, SQ_SHAPE(k, shape), sql);
}

static int bind_opt_text(sqlite3_stmt *st, int i, const char *v)
{
    return v ? sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

/* Binds f (its strings borrowed until the statement is reset); the keyset
 * only when with_keyset. */
static int bind_filter(sqlite3_stmt *st, const struct rd_log_filter *f, bool with_keyset, int64_t limit)
{
    int rc = SQLITE_OK;
    if (f->proxy_id)
        rc |= sqlite3_bind_int64(st, 1, f->proxy_id);
    if (f->status) {
        rc |= sqlite3_bind_int(st, 2, f->status);
    } else if (f->status_class) {
        rc |= sqlite3_bind_int(st, 2, f->status_class * 100) | sqlite3_bind_int(st, 3, f->status_class * 100 + 100);
    }
    rc |= f->cache >= 0 ? sqlite3_bind_int(st, 4, f->cache) : sqlite3_bind_null(st, 4);
    const char *failure = f->failure_type && strcmp(f->failure_type, "none") == 0 ? "" : f->failure_type;
    rc |= bind_opt_text(st, 5, failure) | bind_opt_text(st, 6, f->model);
    rc |= sqlite3_bind_int64(st, 7, f->since_ms ? f->since_ms : INT64_MIN);
    rc |= bind_opt_text(st, 9, f->q && f->q[0] ? f->q : NULL);
    /* ts < until is (ts, seq) < (until, 1): seq starts at 1. */
    int64_t ub_ts = f->until_ms ? f->until_ms : INT64_MAX, ub_seq = f->until_ms ? 1 : INT64_MAX;
    int64_t kseq = f->before_seq <= INT64_MAX ? (int64_t)f->before_seq : INT64_MAX;
    if (with_keyset && kseq > 0 && (f->before_ts < ub_ts || (f->before_ts == ub_ts && kseq < ub_seq))) {
        ub_ts = f->before_ts;
        ub_seq = kseq;
    }
    rc |= sqlite3_bind_int64(st, 10, ub_ts) | sqlite3_bind_int64(st, 11, ub_seq);
    if (limit != 0)
        rc |= sqlite3_bind_int64(st, 12, limit);
    return rc == SQLITE_OK ? 0 : -1;
}

static void copy_text(sqlite3_stmt *st, int col, char *dst, size_t len)
{
    const unsigned char *v = sqlite3_column_text(st, col);
    size_t n = v ? (size_t)sqlite3_column_bytes(st, col) : 0;
    if (n >= len)
        n = len - 1;
    if (n)
        memcpy(dst, v, n);
    dst[n] = '\0';
}

static int64_t opt_int(sqlite3_stmt *st, int col)
{
    return sqlite3_column_type(st, col) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, col);
}

static double opt_real(sqlite3_stmt *st, int col)
{
    return sqlite3_column_type(st, col) == SQLITE_NULL ? -1.0 : sqlite3_column_double(st, col);
}

#define TEXT(col, field) copy_text(st, (col), r->field, sizeof r->field)

/* The current row of a "SELECT seq, LOG_COLS" into *r. */
static void read_row(sqlite3_stmt *st, struct rd_log_rec *r)
{
    memset(r, 0, sizeof *r);
    r->seq = (uint64_t)sqlite3_column_int64(st, 0);
    TEXT(1, id);
    r->ts_ms = sqlite3_column_int64(st, 2);
    r->proxy_id = sqlite3_column_int64(st, 3);
    TEXT(4, node_id);
    TEXT(5, client_ip);
    TEXT(6, method);
    TEXT(7, path);
    TEXT(8, provider);
    TEXT(9, model);
    r->status = sqlite3_column_int(st, 10);
    r->upstream_status = sqlite3_column_int(st, 11);
    r->latency_ms = sqlite3_column_double(st, 12);
    r->upstream_latency_ms = opt_real(st, 13);
    r->ttfb_ms = opt_real(st, 14);
    r->request_bytes = sqlite3_column_int64(st, 15);
    r->response_bytes = sqlite3_column_int64(st, 16);
    int cache = sqlite3_column_int(st, 17);
    r->cache = cache >= RD_LOG_CACHE_NONE && cache <= RD_LOG_CACHE_HIT ? (enum rd_log_cache)cache : RD_LOG_CACHE_NONE;
    TEXT(18, failure_type);
    r->response_delay_ms = sqlite3_column_int64(st, 19);
    r->stream = sqlite3_column_int(st, 20) != 0;
    r->input_tokens = opt_int(st, 21);
    r->output_tokens = opt_int(st, 22);
    r->cached_tokens = opt_int(st, 23);
    r->reasoning_tokens = opt_int(st, 24);
    r->has_cost = sqlite3_column_type(st, 25) != SQLITE_NULL;
    r->cost_usd = r->has_cost ? sqlite3_column_double(st, 25) : 0;
    TEXT(26, prompt_hash);
    TEXT(27, upstream_request_id);
    TEXT(28, trace_id);
}

#undef TEXT

int rd_sqlite_log_query(struct rd_store *s, const struct rd_log_filter *f, size_t limit, rd_log_rec_fn fn, void *ud)
{
    sqlite3_stmt *st = shape_stmt(s, K_SELECT, shape_of(f));
    if (st == NULL)
        return RD_ESTORE;
    int64_t lim = limit == 0 || limit > INT64_MAX ? -1 : (int64_t)limit;
    if (bind_filter(st, f, true, lim) < 0) {
        rd_sqlite_done(st);
        return RD_ESTORE;
    }
    int n = 0, rc;
    struct rd_log_rec r;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        read_row(st, &r);
        n++;
        if (fn(ud, &r) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    if (rc != SQLITE_DONE)
        n = rd_sqlite_err(s, "query request log");
    rd_sqlite_done(st);
    return n < 0 ? RD_ESTORE : n;
}

int64_t rd_sqlite_log_count(struct rd_store *s, const struct rd_log_filter *f)
{
    sqlite3_stmt *st = shape_stmt(s, K_COUNT, shape_of(f));
    if (st == NULL)
        return RD_ESTORE;
    int64_t n = RD_ESTORE;
    if (bind_filter(st, f, false, 0) == 0 && sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    else
        (void)rd_sqlite_err(s, "count request log");
    rd_sqlite_done(st);
    return n;
}

int rd_sqlite_log_get(struct rd_store *s, const char *id, struct rd_log_rec *out)
{
    /* Request ids are unique; should two rows share one, the newer wins. */
    sqlite3_stmt *st = rd_sqlite_stmt(
        s, SQ_GET, "SELECT seq, " LOG_COLS " FROM request_logs WHERE request_id = ?1 ORDER BY seq DESC LIMIT 1");
    if (st == NULL)
        return RD_ESTORE;
    int ret = RD_ESTORE;
    int rc = sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        read_row(st, out);
        ret = 0;
    } else if (rc == SQLITE_DONE) {
        ret = RD_ENOTFOUND;
    } else {
        (void)rd_sqlite_err(s, "read request log");
    }
    rd_sqlite_done(st);
    return ret;
}

/* One chunk: deletes up to DELETE_CHUNK matching rows in its own
 * (autocommit) transaction; returns how many or RD_ESTORE. */
static int64_t delete_chunk(struct rd_store *s, const struct rd_log_filter *f)
{
    sqlite3_stmt *st = shape_stmt(s, K_DELETE, shape_of(f));
    if (st == NULL)
        return RD_ESTORE;
    int64_t n = RD_ESTORE;
    if (bind_filter(st, f, false, DELETE_CHUNK) == 0 && sqlite3_step(st) == SQLITE_DONE)
        n = sqlite3_changes(rd_sqlite_db(s));
    else
        (void)rd_sqlite_err(s, "purge request log");
    rd_sqlite_done(st);
    return n;
}

int64_t rd_sqlite_log_delete(struct rd_store *s, const struct rd_log_filter *f)
{
    /* Chunk after chunk until one comes back short: rows the writer adds
     * meanwhile that match are deleted too, and the loop still ends (a
     * chunk takes far less time than the writer needs to add as many). */
    int64_t total = 0, n;
    do {
        n = delete_chunk(s, f);
        if (n < 0) {
            if (total > 0)
                rd_warn("request log purge stopped by a database error after %lld rows", (long long)total);
            return RD_ESTORE;
        }
        total += n;
    } while (n == DELETE_CHUNK);
    return total;
}
