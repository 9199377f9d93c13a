/* The request log's SQLite ops (request_logs, 003_request_logs.sql). See
 * store.h rd_store_log_*. */
#include <math.h>
#include <sqlite3.h>
#include <string.h>

#include "obs/record.h"
#include "store/sqlite_int.h"
#include "util/err.h"
#include "util/log.h"

/* This file's statement slots (sqlite_int.h). */
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

/* ---- queries (to be written) ---- */

int rd_sqlite_log_query(struct rd_store *s, const struct rd_log_filter *f, size_t limit, rd_log_rec_fn fn, void *ud)
{
    (void)s, (void)f, (void)limit, (void)fn, (void)ud;
    return RD_ESTATE; /* not written yet */
}

int64_t rd_sqlite_log_count(struct rd_store *s, const struct rd_log_filter *f)
{
    (void)s, (void)f;
    return RD_ESTATE; /* not written yet */
}

int rd_sqlite_log_get(struct rd_store *s, const char *id, struct rd_log_rec *out)
{
    (void)s, (void)id, (void)out;
    return RD_ESTATE; /* not written yet */
}

int64_t rd_sqlite_log_delete(struct rd_store *s, const struct rd_log_filter *f)
{
    (void)s, (void)f;
    return RD_ESTATE; /* not written yet */
}
