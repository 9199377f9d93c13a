/* The metric roll-ups' SQLite ops (metrics_rollups, metrics_rollup_failures:
 * 004_metrics_rollups.sql). See store.h rd_store_rollup_*. */
#include <sqlite3.h>
#include <stdint.h>
#include <string.h>

#include "store/sqlite_int.h"
#include "util/err.h"

/* This file's statement slots (sqlite_int.h). */
#define SQ_GET_LATENCY ((enum rd_sqlite_ext)(RD_SQ_ROLLUP_FIRST + 0))
#define SQ_UPSERT ((enum rd_sqlite_ext)(RD_SQ_ROLLUP_FIRST + 1))
#define SQ_FAIL_UPSERT ((enum rd_sqlite_ext)(RD_SQ_ROLLUP_FIRST + 2))
#define SQ_QUERY ((enum rd_sqlite_ext)(RD_SQ_ROLLUP_FIRST + 3))
#define SQ_SUMS ((enum rd_sqlite_ext)(RD_SQ_ROLLUP_FIRST + 4))
#define SQ_FAIL_SUMS ((enum rd_sqlite_ext)(RD_SQ_ROLLUP_FIRST + 5))
#define SQ_PURGE ((enum rd_sqlite_ext)(RD_SQ_ROLLUP_FIRST + 6))
#define SQ_FAIL_PURGE ((enum rd_sqlite_ext)(RD_SQ_ROLLUP_FIRST + 7))

/* clang-format off: the SQL reads best as written */
#define KEY_COLS "resolution_s, bucket_start, proxy_id, provider, model"
/* The counters, in struct rd_rollup_rec's order; each one a sum. */
#define X_COUNTERS(X)                                                                                                  \
    X(requests)                                                                                                        \
    X(cache_hits) X(cache_misses) X(cache_bypass) X(errors_simulated) X(errors_upstream) X(input_tokens)               \
        X(output_tokens) X(cached_tokens) X(cache_write_tokens) X(reasoning_tokens) X(cost_usd) X(priced_requests)     \
            X(unpriced_requests)
#define COL(c) ", " #c
#define ADD(c) #c " = " #c " + excluded." #c ", "
#define SUM(c) ", SUM(" #c ")"

static const char get_latency_sql[] = "SELECT latency FROM metrics_rollups WHERE resolution_s = ?1 AND "
                                      "bucket_start = ?2 AND proxy_id = ?3 AND provider = ?4 AND model = ?5";
static const char upsert_sql[] = "INSERT INTO metrics_rollups (" KEY_COLS X_COUNTERS(
    COL) ", latency) VALUES "
         "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, "
         "?18, ?19, ?20) ON CONFLICT (" KEY_COLS
         ") DO UPDATE SET " X_COUNTERS(ADD) "latency = COALESCE(excluded.latency, latency)";
static const char fail_upsert_sql[] =
    "INSERT INTO metrics_rollup_failures (resolution_s, bucket_start, proxy_id, failure_type, count) "
    "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (resolution_s, bucket_start, proxy_id, failure_type) "
    "DO UPDATE SET count = count + excluded.count";
static const char query_sql[] =
    "SELECT " KEY_COLS X_COUNTERS(COL) ", latency FROM metrics_rollups "
                                       "WHERE resolution_s = ?1 AND bucket_start >= ?2 AND bucket_start < ?3 "
                                       "AND (?4 = 0 OR proxy_id = ?4) ORDER BY bucket_start";
/* Same columns as query_sql, so one reader serves both. */
static const char sums_sql[] = "SELECT resolution_s, MIN(bucket_start), proxy_id, provider, model" X_COUNTERS(
    SUM) ", NULL FROM metrics_rollups WHERE resolution_s = ?1 "
         "GROUP BY proxy_id, provider, model ORDER BY proxy_id";
static const char fail_sums_sql[] = "SELECT proxy_id, failure_type, MIN(bucket_start), SUM(count) "
                                    "FROM metrics_rollup_failures WHERE resolution_s = ?1 "
                                    "GROUP BY proxy_id, failure_type";
/* clang-format on */
static const char purge_sql[] = "DELETE FROM metrics_rollups WHERE resolution_s = ?1 AND bucket_start < ?2";
static const char fail_purge_sql[] =
    "DELETE FROM metrics_rollup_failures WHERE resolution_s = ?1 AND bucket_start < ?2";

static int bind_key(sqlite3_stmt *st, const struct rd_rollup_rec *r)
{
    return sqlite3_bind_int(st, 1, r->res_s) | sqlite3_bind_int64(st, 2, r->start_ms) |
           sqlite3_bind_int64(st, 3, r->proxy_id) | sqlite3_bind_text(st, 4, r->provider, -1, SQLITE_STATIC) |
           sqlite3_bind_text(st, 5, r->model, -1, SQLITE_STATIC);
}

/* The latency blob to write for r: its own, or merged with the stored
 * row's. Returns 0 or RD_ESTORE. */
static int latency_to_write(struct rd_store *s, const struct rd_rollup_rec *r, rd_rollup_merge_fn merge, void *ud,
                            const void **blob, size_t *len)
{
    *blob = r->latency;
    *len = r->latency_len;
    if (r->latency_len == 0)
        return 0; /* COALESCE keeps the stored one */
    sqlite3_stmt *st = rd_sqlite_stmt(s, SQ_GET_LATENCY, get_latency_sql);
    if (st == NULL)
        return RD_ESTORE;
    int ret = 0;
    if (bind_key(st, r) != SQLITE_OK) {
        ret = rd_sqlite_err(s, "read roll-up");
        goto out;
    }
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_BLOB) {
        const void *old = sqlite3_column_blob(st, 0);
        size_t old_len = (size_t)sqlite3_column_bytes(st, 0);
        const void *out = NULL;
        size_t n = merge(ud, old, old_len, r->latency, r->latency_len, &out);
        if (n > 0) {
            *blob = out;
            *len = n;
        }
    } else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        ret = rd_sqlite_err(s, "read roll-up");
    }
out:
    rd_sqlite_done(st);
    return ret;
}

static int upsert_one(struct rd_store *s, sqlite3_stmt *st, const struct rd_rollup_rec *r, const void *blob, size_t len)
{
    const int64_t ints[] = {r->requests,         r->cache_hits,         r->cache_misses,    r->cache_bypass,
                            r->errors_simulated, r->errors_upstream,    r->input_tokens,    r->output_tokens,
                            r->cached_tokens,    r->cache_write_tokens, r->reasoning_tokens};
    int rc = bind_key(st, r);
    int col = 6;
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        rc |= sqlite3_bind_int64(st, col++, ints[i]);
    rc |= sqlite3_bind_double(st, col++, r->cost_usd);
    rc |= sqlite3_bind_int64(st, col++, r->priced);
    rc |= sqlite3_bind_int64(st, col++, r->unpriced);
    rc |= len > 0 ? sqlite3_bind_blob(st, col, blob, (int)len, SQLITE_STATIC) : sqlite3_bind_null(st, col);
    int ret = 0;
    if (rc != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE)
        ret = rd_sqlite_err(s, "write roll-up");
    rd_sqlite_done(st);
    return ret;
}

static int fail_upsert_one(struct rd_store *s, sqlite3_stmt *st, const struct rd_rollup_fail_rec *f)
{
    int rc = sqlite3_bind_int(st, 1, f->res_s) | sqlite3_bind_int64(st, 2, f->start_ms) |
             sqlite3_bind_int64(st, 3, f->proxy_id) | sqlite3_bind_text(st, 4, f->type, -1, SQLITE_STATIC) |
             sqlite3_bind_int64(st, 5, f->count);
    int ret = 0;
    if (rc != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE)
        ret = rd_sqlite_err(s, "write roll-up failures");
    rd_sqlite_done(st);
    return ret;
}

int rd_sqlite_rollup_add(struct rd_store *s, const struct rd_rollup_rec *recs, size_t n,
                         const struct rd_rollup_fail_rec *fails, size_t nfails, rd_rollup_merge_fn merge, void *ud)
{
    sqlite3_stmt *up = rd_sqlite_stmt(s, SQ_UPSERT, upsert_sql);
    sqlite3_stmt *fup = rd_sqlite_stmt(s, SQ_FAIL_UPSERT, fail_upsert_sql);
    if (up == NULL || fup == NULL || rd_sqlite_begin(s) < 0)
        return RD_ESTORE;
    for (size_t i = 0; i < n; i++) {
        const void *blob;
        size_t len;
        if (latency_to_write(s, &recs[i], merge, ud, &blob, &len) < 0 || len > INT32_MAX ||
            upsert_one(s, up, &recs[i], blob, len) < 0)
            goto fail;
    }
    for (size_t i = 0; i < nfails; i++)
        if (fail_upsert_one(s, fup, &fails[i]) < 0)
            goto fail;
    if (rd_sqlite_commit(s) < 0)
        return RD_ESTORE;
    return (int)(n + nfails);
fail:
    rd_sqlite_rollback(s);
    return RD_ESTORE;
}

static const char *col_text(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? (const char *)t : "";
}

/* Runs st (bound) and gives each row to fn as a record. */
static int read_rows(struct rd_store *s, sqlite3_stmt *st, rd_rollup_rec_fn fn, void *ud, const char *what)
{
    int given = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct rd_rollup_rec r = {.res_s = sqlite3_column_int(st, 0),
                                  .start_ms = sqlite3_column_int64(st, 1),
                                  .proxy_id = sqlite3_column_int64(st, 2),
                                  .provider = col_text(st, 3),
                                  .model = col_text(st, 4)};
        int64_t *ints[] = {&r.requests,         &r.cache_hits,         &r.cache_misses,    &r.cache_bypass,
                           &r.errors_simulated, &r.errors_upstream,    &r.input_tokens,    &r.output_tokens,
                           &r.cached_tokens,    &r.cache_write_tokens, &r.reasoning_tokens};
        int col = 5;
        for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
            *ints[i] = sqlite3_column_int64(st, col++);
        r.cost_usd = sqlite3_column_double(st, col++);
        r.priced = sqlite3_column_int64(st, col++);
        r.unpriced = sqlite3_column_int64(st, col++);
        if (sqlite3_column_type(st, col) == SQLITE_BLOB) {
            r.latency = sqlite3_column_blob(st, col);
            r.latency_len = (size_t)sqlite3_column_bytes(st, col);
        }
        given++;
        if (fn(ud, &r) != 0)
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        given = rd_sqlite_err(s, what);
    rd_sqlite_done(st);
    return given;
}

int rd_sqlite_rollup_query(struct rd_store *s, const struct rd_rollup_filter *f, rd_rollup_rec_fn fn, void *ud)
{
    sqlite3_stmt *st = rd_sqlite_stmt(s, SQ_QUERY, query_sql);
    if (st == NULL)
        return RD_ESTORE;
    if ((sqlite3_bind_int(st, 1, f->res_s) | sqlite3_bind_int64(st, 2, f->since_ms) |
         sqlite3_bind_int64(st, 3, f->until_ms > 0 ? f->until_ms : INT64_MAX) |
         sqlite3_bind_int64(st, 4, f->proxy_id)) != SQLITE_OK) {
        int rc = rd_sqlite_err(s, "query roll-ups");
        rd_sqlite_done(st);
        return rc;
    }
    return read_rows(s, st, fn, ud, "query roll-ups");
}

int rd_sqlite_rollup_sums(struct rd_store *s, int32_t res_s, rd_rollup_rec_fn fn, void *ud)
{
    sqlite3_stmt *st = rd_sqlite_stmt(s, SQ_SUMS, sums_sql);
    if (st == NULL)
        return RD_ESTORE;
    if (sqlite3_bind_int(st, 1, res_s) != SQLITE_OK) {
        int rc = rd_sqlite_err(s, "sum roll-ups");
        rd_sqlite_done(st);
        return rc;
    }
    return read_rows(s, st, fn, ud, "sum roll-ups");
}

int rd_sqlite_rollup_fail_sums(struct rd_store *s, int32_t res_s, rd_rollup_fail_fn fn, void *ud)
{
    sqlite3_stmt *st = rd_sqlite_stmt(s, SQ_FAIL_SUMS, fail_sums_sql);
    if (st == NULL)
        return RD_ESTORE;
    int given = 0, rc = sqlite3_bind_int(st, 1, res_s);
    if (rc != SQLITE_OK) {
        given = rd_sqlite_err(s, "sum roll-up failures");
        goto out;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct rd_rollup_fail_rec f = {.res_s = res_s,
                                       .proxy_id = sqlite3_column_int64(st, 0),
                                       .type = col_text(st, 1),
                                       .start_ms = sqlite3_column_int64(st, 2),
                                       .count = sqlite3_column_int64(st, 3)};
        given++;
        if (fn(ud, &f) != 0)
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        given = rd_sqlite_err(s, "sum roll-up failures");
out:
    rd_sqlite_done(st);
    return given;
}

static int64_t purge_one(struct rd_store *s, enum rd_sqlite_ext id, const char *sql, int32_t res_s, int64_t before)
{
    sqlite3_stmt *st = rd_sqlite_stmt(s, id, sql);
    if (st == NULL)
        return RD_ESTORE;
    int64_t ret;
    if ((sqlite3_bind_int(st, 1, res_s) | sqlite3_bind_int64(st, 2, before)) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_DONE)
        ret = rd_sqlite_err(s, "purge roll-ups");
    else
        ret = sqlite3_changes64(rd_sqlite_db(s));
    rd_sqlite_done(st);
    return ret;
}

int64_t rd_sqlite_rollup_purge(struct rd_store *s, int32_t res_s, int64_t before_ms)
{
    int64_t a = purge_one(s, SQ_PURGE, purge_sql, res_s, before_ms);
    if (a < 0)
        return a;
    int64_t b = purge_one(s, SQ_FAIL_PURGE, fail_purge_sql, res_s, before_ms);
    return b < 0 ? b : a + b;
}
