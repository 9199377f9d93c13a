/* The request log's store queries (src/store/sqlite_logs.c) against a real
 * SQLite file: every filter gives what the in-memory match
 * (rd_log_filter_match, the live stream's) gives, newest first; keyset
 * pages never repeat or skip a row, also when many rows share a timestamp;
 * count, get, the chunked purge by range and proxy; unknown (NULL) columns
 * read back as unknown. The request_logs view gives SQL readers the same
 * records, an insert into it is read back, a damaged block is skipped, and
 * the rows of the per-row table of 003 survive the move to blocks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "obs/filter.h"
#include "obs/record.h"
#include "store/migrations.h"
#include "store/sqlite_int.h"
#include "store/store.h"
#include "util/err.h"

#define NROWS 400
#define BASE_TS INT64_C(1796279462000)

struct fix {
    char dir[64];
    char db[128];
    struct rd_store *s;
    struct rd_log_rec recs[NROWS]; /* as written, seq set */
};

/* rd_store_log_put takes records by pointer: v[0..n) as such. */
static int put_recs(struct rd_store *s, struct rd_log_rec *v, size_t n)
{
    struct rd_log_rec **p = calloc(n ? n : 1, sizeof *p);
    for (size_t i = 0; i < n; i++)
        p[i] = &v[i];
    int rc = rd_store_log_put(s, p, n);
    free(p);
    return rc;
}
static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static const char *const models[] = {"gpt-4o", "claude-3", "gemini'; DROP TABLE request_logs; --", "m%_"};
static const char *const failures[] = {"", "", "rate_limit", "timeout"};
static const int statuses[] = {200, 200, 404, 429, 500, 503, 0};

/* Row i: timestamps in runs of 7 equal values, so keyset ties are common. */
static void make_rec(struct rd_log_rec *r, int i)
{
    memset(r, 0, sizeof *r);
    snprintf(r->id, sizeof r->id, "req_%016x", (unsigned)i + 1);
    r->ts_ms = BASE_TS + i / 7;
    r->proxy_id = 1 + i % 3;
    snprintf(r->method, sizeof r->method, "POST");
    snprintf(r->path, sizeof r->path, i % 5 ? "/v1/chat/completions" : "/v1/embeddings");
    snprintf(r->provider, sizeof r->provider, "openai");
    snprintf(r->model, sizeof r->model, "%s", models[i % 4]);
    snprintf(r->client_ip, sizeof r->client_ip, "10.0.0.%d", i % 11);
    r->status = statuses[i % 7];
    r->upstream_status = i % 2 ? r->status : 0;
    r->latency_ms = i * 1.5;
    r->upstream_latency_ms = i % 2 ? i * 1.25 : -1;
    r->ttfb_ms = i % 3 ? 0.5 : -1;
    r->request_bytes = i;
    r->response_bytes = 2 * i;
    r->cache = (enum rd_log_cache)(i % 4);
    snprintf(r->failure_type, sizeof r->failure_type, "%s", failures[i % 4]);
    r->stream = i % 2;
    r->input_tokens = i % 5 ? i : -1;
    r->output_tokens = i % 5 ? 2 * i : -1;
    r->cached_tokens = i % 5 ? 0 : -1;
    r->reasoning_tokens = -1;
    r->has_cost = i % 6 != 0;
    r->cost_usd = r->has_cost ? i * 0.001 : 0;
    if (i % 9 == 0)
        snprintf(r->trace_id, sizeof r->trace_id, "%032x", (unsigned)i);
}

static int setup(void **state)
{
    struct fix *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/rd-logstore-XXXXXX");
    if (f == NULL || mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->db, sizeof f->db, "%s/rd.db", f->dir);
    char err[256];
    if (rd_store_open(f->db, &f->s, err, sizeof err) != 0)
        return -1;
    for (int i = 0; i < NROWS; i++)
        make_rec(&f->recs[i], i);
    /* Written in batches, out of timestamp order in the last one: seq
     * follows the writing order, not the timestamps. */
    if (put_recs(f->s, f->recs, NROWS - 50) != NROWS - 50)
        return -1;
    for (int i = NROWS - 1; i >= NROWS - 50; i--)
        if (put_recs(f->s, &f->recs[i], 1) != 1)
            return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fix *f = *state;
    rd_store_close(f->s);
    int rc = nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return rc;
}

/* ---- collecting ---- */

struct got {
    struct rd_log_rec v[NROWS + 1];
    size_t n;
};

static int collect(void *ud, const struct rd_log_rec *r)
{
    struct got *g = ud;
    assert_true(g->n < NROWS + 1);
    g->v[g->n++] = *r;
    return 0;
}

/* Newest first is newest written first: seq order, whatever the
 * timestamps (the last batch was written out of timestamp order). */
static bool newer(const struct rd_log_rec *a, const struct rd_log_rec *b)
{
    return a->seq > b->seq;
}

/* What f should select from the records written, newest first. */
static size_t expect(const struct fix *fx, const struct rd_log_filter *f, const struct rd_log_rec **out)
{
    size_t n = 0;
    for (int i = 0; i < NROWS; i++) {
        const struct rd_log_rec *r = &fx->recs[i];
        if (rd_log_filter_match(f, r) &&
            (f->before_seq == 0 || newer(&(struct rd_log_rec){.ts_ms = f->before_ts, .seq = f->before_seq}, r)))
            out[n++] = r;
    }
    for (size_t i = 1; i < n; i++) /* insertion sort, newest first */
        for (size_t j = i; j > 0 && newer(out[j], out[j - 1]); j--) {
            const struct rd_log_rec *t = out[j];
            out[j] = out[j - 1];
            out[j - 1] = t;
        }
    return n;
}

static void check_filter(struct fix *fx, const struct rd_log_filter *f)
{
    static struct got g;
    const struct rd_log_rec *want[NROWS];
    size_t n = expect(fx, f, want);
    g.n = 0;
    assert_int_equal(rd_store_log_query(fx->s, f, 0, collect, &g), (int)n);
    assert_int_equal(g.n, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(g.v[i].seq, want[i]->seq);
        assert_string_equal(g.v[i].id, want[i]->id);
    }
    struct rd_log_filter nokey = *f;
    nokey.before_seq = 0;
    nokey.before_ts = 0;
    assert_int_equal(rd_store_log_count(fx->s, f), (int64_t)expect(fx, &nokey, want));
}

static struct rd_log_filter any(void)
{
    return (struct rd_log_filter){.cache = -1};
}

static void test_every_filter(void **state)
{
    struct fix *fx = *state;
    struct rd_log_filter f = any();
    check_filter(fx, &f);
    assert_int_equal(rd_store_log_count(fx->s, &f), NROWS);
    for (int64_t p = 1; p <= 4; p++) {
        f = any();
        f.proxy_id = p;
        check_filter(fx, &f);
    }
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
        f = any();
        f.status = statuses[i] ? statuses[i] : 201; /* 201: none */
        check_filter(fx, &f);
        f.proxy_id = 2;
        check_filter(fx, &f);
    }
    for (int c = 1; c <= 5; c++) {
        f = any();
        f.status_class = c;
        check_filter(fx, &f);
        f.proxy_id = 3;
        check_filter(fx, &f);
    }
    for (int c = 0; c <= 3; c++) {
        f = any();
        f.cache = c;
        check_filter(fx, &f);
    }
    const char *ft[] = {"none", "rate_limit", "timeout", "x"};
    for (size_t i = 0; i < 4; i++) {
        f = any();
        f.failure_type = ft[i];
        check_filter(fx, &f);
    }
    for (size_t i = 0; i < 4; i++) {
        f = any();
        f.model = models[i];
        check_filter(fx, &f);
    }
    f = any();
    f.model = "gpt-4"; /* exact, not a prefix */
    check_filter(fx, &f);
    assert_int_equal(rd_store_log_count(fx->s, &f), 0);
    /* q: substrings of several columns, case-sensitive; SQL and LIKE
     * syntax are plain text */
    const char *qs[] = {"req_00000000000000a", "embeddings",  "claude", "10.0.0.1", "0000000000000000000000000000001b",
                        "DROP TABLE",          "' OR '1'='1", "%",      "_",        "CLAUDE"};
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
        f = any();
        f.q = qs[i];
        check_filter(fx, &f);
    }
    f = any();
    f.q = "%";
    assert_int_equal(rd_store_log_count(fx->s, &f), NROWS / 4); /* only the model "m%_" */
    /* time range: since inclusive, until exclusive */
    f = any();
    f.since_ms = BASE_TS + 10;
    check_filter(fx, &f);
    assert_int_equal(rd_store_log_count(fx->s, &f), NROWS - 70);
    f.until_ms = BASE_TS + 20;
    check_filter(fx, &f);
    assert_int_equal(rd_store_log_count(fx->s, &f), 70);
    f.proxy_id = 1;
    f.status_class = 2;
    f.cache = 2;
    check_filter(fx, &f);
    f = any();
    f.until_ms = BASE_TS + 1;
    check_filter(fx, &f);
    assert_int_equal(rd_store_log_count(fx->s, &f), 7);
}

/* Pages of every size walk the whole selection once each, for several
 * filters, with the cursor the API hands out. */
static void test_keyset_pages(void **state)
{
    struct fix *fx = *state;
    struct rd_log_filter filters[4] = {any(), any(), any(), any()};
    filters[1].proxy_id = 2;
    filters[2].status = 200;
    filters[3].until_ms = BASE_TS + 30;
    filters[3].status_class = 4;
    static struct got page;
    for (size_t k = 0; k < 4; k++) {
        const struct rd_log_rec *want[NROWS];
        size_t n = expect(fx, &filters[k], want);
        for (size_t limit = 1; limit <= 13; limit += 4) {
            struct rd_log_filter f = filters[k];
            size_t seen = 0;
            for (;;) {
                page.n = 0;
                int got = rd_store_log_query(fx->s, &f, limit, collect, &page);
                assert_true(got >= 0 && (size_t)got <= limit);
                for (size_t i = 0; i < page.n; i++) {
                    assert_true(seen < n);
                    assert_int_equal(page.v[i].seq, want[seen]->seq);
                    seen++;
                }
                if ((size_t)got < limit)
                    break;
                /* the API's cursor, parsed back as the API does */
                char cur[48], qs[80], err[128];
                rd_log_cursor(&page.v[page.n - 1], cur, sizeof cur);
                snprintf(qs, sizeof qs, "cursor=%s", cur);
                struct rd_log_query q;
                const char *bad;
                assert_int_equal(rd_log_query_parse(qs, NULL, &q, &bad, err, sizeof err), 0);
                f.before_ts = q.f.before_ts;
                f.before_seq = q.f.before_seq;
            }
            assert_int_equal(seen, n);
        }
    }
}

static void assert_same(const struct rd_log_rec *a, const struct rd_log_rec *b)
{
    assert_int_equal(a->seq, b->seq);
    assert_string_equal(a->id, b->id);
    assert_int_equal(a->ts_ms, b->ts_ms);
    assert_int_equal(a->proxy_id, b->proxy_id);
    assert_string_equal(a->client_ip, b->client_ip);
    assert_string_equal(a->path, b->path);
    assert_string_equal(a->model, b->model);
    assert_int_equal(a->status, b->status);
    assert_int_equal(a->upstream_status, b->upstream_status);
    assert_true(a->latency_ms == b->latency_ms);
    assert_true(a->upstream_latency_ms == b->upstream_latency_ms);
    assert_true(a->ttfb_ms == b->ttfb_ms);
    assert_int_equal(a->request_bytes, b->request_bytes);
    assert_int_equal(a->cache, b->cache);
    assert_string_equal(a->failure_type, b->failure_type);
    assert_int_equal(a->stream, b->stream);
    assert_int_equal(a->input_tokens, b->input_tokens);
    assert_int_equal(a->output_tokens, b->output_tokens);
    assert_int_equal(a->cached_tokens, b->cached_tokens);
    assert_int_equal(a->reasoning_tokens, b->reasoning_tokens);
    assert_int_equal(a->has_cost, b->has_cost);
    if (a->has_cost)
        assert_true(a->cost_usd == b->cost_usd);
    assert_string_equal(a->trace_id, b->trace_id);
}

/* Get by id, and every unknown value (NULL column) read back unknown. */
static void test_get_and_nulls(void **state)
{
    struct fix *fx = *state;
    struct rd_log_rec r;
    for (int i = 0; i < 12; i++) {
        assert_int_equal(rd_store_log_get(fx->s, fx->recs[i].id, &r), 0);
        assert_same(&r, &fx->recs[i]);
    }
    assert_int_equal(rd_store_log_get(fx->s, "req_ffffffffffffffff", &r), RD_ENOTFOUND);
    assert_int_equal(rd_store_log_get(fx->s, "' OR 1=1 --", &r), RD_ENOTFOUND);
    /* row 0: no tokens, no cost, no upstream latency, no ttfb */
    assert_int_equal(rd_store_log_get(fx->s, fx->recs[0].id, &r), 0);
    assert_int_equal(r.input_tokens, -1);
    assert_false(r.has_cost);
    assert_true(r.upstream_latency_ms < 0 && r.ttfb_ms < 0);
    /* and a cost of exactly 0 stays known */
    struct rd_log_rec z;
    make_rec(&z, 1);
    snprintf(z.id, sizeof z.id, "req_zero");
    z.has_cost = true;
    z.cost_usd = 0;
    assert_int_equal(put_recs(fx->s, &z, 1), 1);
    assert_int_equal(rd_store_log_get(fx->s, "req_zero", &r), 0);
    assert_true(r.has_cost && r.cost_usd == 0);
    assert_int_equal(r.cached_tokens, 0);
}

static void test_delete_range_and_proxy(void **state)
{
    struct fix *fx = *state;
    const struct rd_log_rec *want[NROWS];
    struct rd_log_filter f = any();
    f.since_ms = BASE_TS + 7; /* rows 49..55 */
    f.until_ms = BASE_TS + 8;
    assert_int_equal(rd_store_log_delete(fx->s, &f), 7);
    assert_int_equal(rd_store_log_count(fx->s, &f), 0);
    struct rd_log_filter all = any();
    assert_int_equal(rd_store_log_count(fx->s, &all), NROWS - 7);
    f = any();
    f.proxy_id = 2;
    size_t n2 = expect(fx, &f, want);
    int64_t d = rd_store_log_delete(fx->s, &f);
    /* some of proxy 2's rows went with the range already */
    size_t gone_before = 0, gone_p1 = 0;
    for (int i = 49; i < 56; i++) {
        gone_before += fx->recs[i].proxy_id == 2;
        gone_p1 += fx->recs[i].proxy_id == 1;
    }
    assert_int_equal(d, (int64_t)(n2 - gone_before));
    assert_int_equal(rd_store_log_count(fx->s, &f), 0);
    assert_int_equal(rd_store_log_count(fx->s, &all), NROWS - 7 - d);
    f.proxy_id = 1;
    assert_int_equal(rd_store_log_count(fx->s, &f), (int64_t)(expect(fx, &f, want) - gone_p1));
    /* a filter matching nothing deletes nothing */
    f = any();
    f.until_ms = BASE_TS;
    assert_int_equal(rd_store_log_delete(fx->s, &f), 0);
}

static void exec_raw(sqlite3 *db, const char *sql);

/* A seq is never given twice: after the newest rows are purged (whole
 * blocks, and a block cut short by a purge of one proxy), the next rows,
 * through the writer's put and through the view's insert trigger, count
 * on from the highest seq there ever was. */
static void test_purge_newest_seq_not_reused(void **state)
{
    struct fix *fx = *state;
    uint64_t top = 0;
    for (int i = 0; i < NROWS; i++)
        if (fx->recs[i].seq > top)
            top = fx->recs[i].seq;
    assert_int_equal(top, NROWS);
    /* the 50 newest rows are blocks of one (rows 350..399, ts from BASE_TS + 50) */
    struct rd_log_filter f = any();
    f.since_ms = BASE_TS + 50;
    assert_true(rd_store_log_delete(fx->s, &f) >= 50);
    struct rd_log_rec w;
    make_rec(&w, 1);
    snprintf(w.id, sizeof w.id, "req_next1");
    assert_int_equal(put_recs(fx->s, &w, 1), 1);
    assert_int_equal(w.seq, top + 1);
    /* that row's block (the newest) taken away as well, and proxy 1 cut out
     * of the big block: still no reuse */
    f = any();
    f.since_ms = w.ts_ms;
    f.until_ms = w.ts_ms + 1;
    assert_true(rd_store_log_delete(fx->s, &f) >= 1);
    f = any();
    f.proxy_id = 1;
    assert_true(rd_store_log_delete(fx->s, &f) > 0);
    snprintf(w.id, sizeof w.id, "req_next2");
    assert_int_equal(put_recs(fx->s, &w, 1), 1);
    assert_int_equal(w.seq, top + 2);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(fx->db, &db), SQLITE_OK);
    exec_raw(db, "DELETE FROM request_log_blocks WHERE id = (SELECT max(id) FROM request_log_blocks)");
    exec_raw(db, "INSERT INTO request_logs (request_id, timestamp, proxy_id, status_code) VALUES "
                 "('req_view', 1796279462000, 1, 200)");
    sqlite3_close(db);
    struct rd_log_rec r;
    assert_int_equal(rd_store_log_get(fx->s, "req_view", &r), 0);
    assert_int_equal(r.seq, top + 3);
}

/* More rows than one purge chunk: the count covers every chunk. */
static void test_delete_many_chunks(void **state)
{
    struct fix *fx = *state;
    enum { N = 25000 };
    struct rd_log_rec *v = calloc(N, sizeof *v);
    assert_non_null(v);
    for (int i = 0; i < N; i++) {
        make_rec(&v[i], i);
        snprintf(v[i].id, sizeof v[i].id, "req_b%015x", (unsigned)i);
        v[i].ts_ms = BASE_TS - 1000000 + i;
    }
    assert_int_equal(put_recs(fx->s, v, N), N);
    free(v);
    struct rd_log_filter f = any();
    f.until_ms = BASE_TS;
    assert_int_equal(rd_store_log_count(fx->s, &f), N);
    assert_int_equal(rd_store_log_delete(fx->s, &f), N);
    struct rd_log_filter all = any();
    assert_int_equal(rd_store_log_count(fx->s, &all), NROWS);
}

static void exec_raw(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg ? msg : "?");
}

/* The view's row for seq compared with the record written. */
static void check_view_row(sqlite3_stmt *st, const struct rd_log_rec *r)
{
    assert_int_equal(sqlite3_column_int64(st, 0), (int64_t)r->seq);
    assert_string_equal((const char *)sqlite3_column_text(st, 1), r->id);
    assert_int_equal(sqlite3_column_int64(st, 2), r->ts_ms);
    assert_int_equal(sqlite3_column_int64(st, 3), r->proxy_id);
    assert_string_equal((const char *)sqlite3_column_text(st, 4), r->model);
    assert_int_equal(sqlite3_column_int(st, 5), r->status);
    assert_true(sqlite3_column_double(st, 6) == r->latency_ms);
    if (r->upstream_latency_ms < 0)
        assert_int_equal(sqlite3_column_type(st, 7), SQLITE_NULL);
    else
        assert_true(sqlite3_column_double(st, 7) == r->upstream_latency_ms);
    if (r->input_tokens < 0)
        assert_int_equal(sqlite3_column_type(st, 8), SQLITE_NULL);
    else
        assert_int_equal(sqlite3_column_int64(st, 8), r->input_tokens);
    assert_int_equal(sqlite3_column_type(st, 9) == SQLITE_NULL, !r->has_cost);
    if (r->has_cost)
        assert_true(sqlite3_column_double(st, 9) == r->cost_usd);
    assert_string_equal((const char *)sqlite3_column_text(st, 10), r->failure_type);
    assert_int_equal(sqlite3_column_int(st, 11), (int)r->cache);
    assert_string_equal((const char *)sqlite3_column_text(st, 12), r->trace_id);
}

static const char view_sql[] = "SELECT seq, request_id, timestamp, proxy_id, model, status_code, latency_ms, "
                               "upstream_latency_ms, input_tokens, cost_usd, failure_type, cache, trace_id "
                               "FROM request_logs ORDER BY seq";

/* The view: every record as written (common fields, implied seqs), also
 * after a purge rewrote a block with gaps in its seqs. */
static void test_view_reads_blocks(void **state)
{
    struct fix *fx = *state;
    sqlite3 *db;
    assert_int_equal(sqlite3_open(fx->db, &db), SQLITE_OK);
    for (int pass = 0; pass < 2; pass++) {
        sqlite3_stmt *st;
        assert_int_equal(sqlite3_prepare_v2(db, view_sql, -1, &st, NULL), SQLITE_OK);
        size_t n = 0;
        for (int i = 0; i < NROWS; i++) {
            /* the recs in seq order: the first NROWS - 50, then the last 50 reversed */
            int k = i < NROWS - 50 ? i : NROWS - 1 - (i - (NROWS - 50));
            if (pass == 1 && fx->recs[k].proxy_id == 3)
                continue;
            assert_int_equal(sqlite3_step(st), SQLITE_ROW);
            check_view_row(st, &fx->recs[k]);
            n++;
        }
        assert_int_equal(sqlite3_step(st), SQLITE_DONE);
        sqlite3_finalize(st);
        assert_true(n > 0);
        struct rd_log_filter f = any();
        f.proxy_id = 3;
        if (pass == 0)
            assert_true(rd_store_log_delete(fx->s, &f) > 0);
    }
    /* the store reads the rewritten block back the same */
    for (int i = 0; i < NROWS; i++) {
        struct rd_log_rec r;
        int rc = rd_store_log_get(fx->s, fx->recs[i].id, &r);
        assert_int_equal(rc, fx->recs[i].proxy_id == 3 ? RD_ENOTFOUND : 0);
        if (rc == 0)
            assert_same(&r, &fx->recs[i]);
    }
    sqlite3_close(db);
}

/* A row inserted into the view is a record like the writer's: the next
 * seq, found by id, by proxy, and counted. */
static void test_view_insert(void **state)
{
    struct fix *fx = *state;
    sqlite3 *db;
    assert_int_equal(sqlite3_open(fx->db, &db), SQLITE_OK);
    exec_raw(db, "INSERT INTO request_logs (request_id, timestamp, proxy_id, model, status_code, latency_ms, cost_usd) "
                 "VALUES ('req_byhand', 1796279462999, 42, 'm\"x', 418, 2.5, 0.25)");
    sqlite3_close(db);
    struct rd_log_rec r;
    assert_int_equal(rd_store_log_get(fx->s, "req_byhand", &r), 0);
    assert_int_equal(r.seq, NROWS + 1);
    assert_int_equal(r.proxy_id, 42);
    assert_string_equal(r.model, "m\"x");
    assert_int_equal(r.status, 418);
    assert_true(r.latency_ms == 2.5 && r.has_cost && r.cost_usd == 0.25);
    assert_true(r.input_tokens < 0 && r.upstream_latency_ms < 0);
    struct rd_log_filter f = any();
    f.proxy_id = 42;
    assert_int_equal(rd_store_log_count(fx->s, &f), 1);
    f.model = "m\"x";
    assert_int_equal(rd_store_log_count(fx->s, &f), 1);
    /* the writer's next block follows it */
    struct rd_log_rec w;
    make_rec(&w, 3);
    snprintf(w.id, sizeof w.id, "req_after");
    assert_int_equal(put_recs(fx->s, &w, 1), 1);
    assert_int_equal(w.seq, NROWS + 2);
}

/* A block that does not decode, or holds a record that does not, costs
 * its own records only: the rest reads, counts and purges as before. */
static void test_bad_block_skipped(void **state)
{
    struct fix *fx = *state;
    sqlite3 *db;
    assert_int_equal(sqlite3_open(fx->db, &db), SQLITE_OK);
    exec_raw(db, "INSERT INTO request_log_blocks (id, seq_last, ts_min, ts_max, n, records) "
                 "VALUES (100000, 100000, 0, 5, 1, '[{\"seq\":100000,')");
    exec_raw(db, "INSERT INTO request_log_blocks (id, seq_last, ts_min, ts_max, n, common, records) "
                 "VALUES (100001, 100002, 0, 5, 2, '{\"proxy_id\":\"x\"}', '[{},{}]')");
    exec_raw(db, "INSERT INTO request_log_blocks (id, seq_last, ts_min, ts_max, n, records) "
                 "VALUES (100003, 100004, 5, 5, 2, "
                 "'[{\"request_id\":\"req_good\",\"timestamp\":5,\"proxy_id\":1},{\"status_code\":\"bad\"}]')");
    sqlite3_close(db);
    struct rd_log_filter f = any();
    struct got *g = calloc(1, sizeof *g);
    assert_int_equal(rd_store_log_query(fx->s, &f, 0, collect, g), NROWS + 1);
    assert_string_equal(g->v[0].id, "req_good");
    assert_int_equal(g->v[0].seq, 100003);
    free(g);
    struct rd_log_rec r;
    assert_int_equal(rd_store_log_get(fx->s, "req_good", &r), 0);
    /* a purge by another field leaves a block it cannot read as it is */
    f.model = "gpt-4o";
    f.until_ms = BASE_TS;
    assert_int_equal(rd_store_log_delete(fx->s, &f), 0);
    assert_int_equal(rd_store_log_get(fx->s, "req_good", &r), 0);
    /* a purge by time alone takes whole blocks unread: the damaged ones
     * too (their records as the blocks count them: 1 + 2 + 2) */
    f = any();
    f.until_ms = BASE_TS;
    assert_int_equal(rd_store_log_delete(fx->s, &f), 5);
    assert_int_equal(rd_store_log_get(fx->s, "req_good", &r), RD_ENOTFOUND);
    struct rd_log_filter all = any();
    assert_int_equal(rd_store_log_count(fx->s, &all), NROWS); /* the keys count what the writer wrote */
    g = calloc(1, sizeof *g);
    assert_int_equal(rd_store_log_query(fx->s, &all, 0, collect, g), NROWS);
    free(g);
}

/* A database of the per-row table (up to migration 004) moves to blocks
 * with every row: seqs, values, NULLs, order. */
/* A database file name.db in the fixture's directory with the migrations up
 * to version applied (an older release's), open; its path into path. */
static sqlite3 *db_at_version(const struct fix *fx, const char *name, int version, char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s.db", fx->dir, name);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    size_t upto = 0;
    while (upto < rd_migrations_count && rd_migrations[upto].version <= version)
        upto++;
    char err[256];
    assert_int_equal(rd_sqlite_migrate(db, rd_migrations, upto, err, sizeof err), 0);
    return db;
}

/* A database of 005 (blocks under the columns' own names) opened by this
 * version: 006 rewrites the keys short, the view and the readers see the
 * same records, and a string value that looks like a key is left alone. */
static void test_migrates_long_keys(void **state)
{
    struct fix *fx = *state;
    char path[160], err[256];
    sqlite3 *db = db_at_version(fx, "v5", 5, path, sizeof path);
    /* one block as 005's writer wrote it, one row through 005's view trigger */
    exec_raw(db, "INSERT INTO request_log_blocks (id, seq_last, ts_min, ts_max, n, common, records) VALUES "
                 "(1, 2, 1796279462001, 1796279462002, 2, "
                 "'{\"proxy_id\":3,\"model\":\"gpt-4o\",\"status_code\":200,\"node_id\":\"n1\"}', "
                 "'[{\"request_id\":\"req_a\",\"timestamp\":1796279462001,\"latency_ms\":1.5,"
                 "\"path\":\"/x\\\"request_id\\\":\"},"
                 "{\"request_id\":\"req_b\",\"timestamp\":1796279462002,\"latency_ms\":2.25,\"ttfb_ms\":0.5,"
                 "\"trace_id\":\"0af7651916cd43dd8448eb211c80319c\",\"input_tokens\":7}]')");
    exec_raw(db, "INSERT INTO request_log_keys (block, proxy_id, status_code, n) VALUES (1, 3, 200, 2)");
    exec_raw(db, "INSERT INTO request_logs (request_id, timestamp, proxy_id, model, status_code, latency_ms) "
                 "VALUES ('req_c', 1796279462003, 3, 'gpt-4o', 404, 3.0)");
    sqlite3_close(db);
    struct rd_store *s;
    assert_int_equal(rd_store_open(path, &s, err, sizeof err), 0);
    struct rd_log_rec r;
    assert_int_equal(rd_store_log_get(s, "req_b", &r), 0);
    assert_int_equal(r.proxy_id, 3);
    assert_string_equal(r.model, "gpt-4o");
    assert_string_equal(r.node_id, "n1");
    assert_true(r.latency_ms == 2.25 && r.ttfb_ms == 0.5);
    assert_string_equal(r.trace_id, "0af7651916cd43dd8448eb211c80319c");
    assert_int_equal(r.input_tokens, 7);
    assert_int_equal(rd_store_log_get(s, "req_a", &r), 0);
    assert_string_equal(r.path, "/x\"request_id\":"); /* a value, not a key: as it was */
    assert_int_equal(rd_store_log_get(s, "req_c", &r), 0);
    assert_int_equal(r.status, 404);
    struct rd_log_filter f = any();
    f.model = "gpt-4o"; /* the block scan's needle is the short key's */
    assert_int_equal(rd_store_log_count(s, &f), 3);
    rd_store_close(s);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(
        sqlite3_prepare_v2(db,
                           "SELECT count(*) FROM request_log_blocks WHERE records LIKE '%\"request_id\":%' "
                           "OR records LIKE '%\"latency_ms\":%' OR common LIKE '%\"proxy_id\":%'",
                           -1, &st, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 0);
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT request_id, proxy_id, model, latency_ms, status_code FROM request_logs "
                                        "ORDER BY seq",
                                        -1, &st, NULL),
                     SQLITE_OK);
    const char *ids[] = {"req_a", "req_b", "req_c"};
    const double ms[] = {1.5, 2.25, 3.0};
    const int status[] = {200, 200, 404};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_string_equal((const char *)sqlite3_column_text(st, 0), ids[i]);
        assert_int_equal(sqlite3_column_int(st, 1), 3);
        assert_string_equal((const char *)sqlite3_column_text(st, 2), "gpt-4o");
        assert_true(sqlite3_column_double(st, 3) == ms[i]);
        assert_int_equal(sqlite3_column_int(st, 4), status[i]);
    }
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void test_migrates_rows(void **state)
{
    struct fix *fx = *state;
    char path[160], err[256];
    sqlite3 *db = db_at_version(fx, "old", 4, path, sizeof path);
    exec_raw(db, "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 1100) "
                 "INSERT INTO request_logs (request_id, timestamp, proxy_id, model, status_code, latency_ms, "
                 "upstream_latency_ms, input_tokens, cost_usd, cache) "
                 "SELECT printf('req_old%05d', i), 1796279462000 + i, 1 + i % 2, 'gpt', 200 + i % 3, i * 0.5, "
                 "CASE WHEN i % 2 THEN i ELSE NULL END, CASE WHEN i % 3 THEN i ELSE NULL END, "
                 "CASE WHEN i % 5 THEN i * 0.125 ELSE NULL END, i % 4 FROM c");
    sqlite3_close(db);
    struct rd_store *s;
    assert_int_equal(rd_store_open(path, &s, err, sizeof err), 0);
    struct rd_log_filter f = any();
    assert_int_equal(rd_store_log_count(s, &f), 1100);
    f.proxy_id = 2;
    assert_int_equal(rd_store_log_count(s, &f), 550);
    f = any();
    struct got *g = calloc(1, sizeof *g);
    assert_int_equal(rd_store_log_query(s, &f, NROWS, collect, g), NROWS);
    for (size_t k = 0; k < g->n; k++) {
        int i = 1100 - (int)k;
        const struct rd_log_rec *r = &g->v[k];
        char id[24];
        snprintf(id, sizeof id, "req_old%05d", i);
        assert_int_equal(r->seq, (uint64_t)i);
        assert_string_equal(r->id, id);
        assert_int_equal(r->ts_ms, 1796279462000 + i);
        assert_int_equal(r->status, 200 + i % 3);
        assert_true(r->latency_ms == i * 0.5);
        assert_true(i % 2 ? r->upstream_latency_ms == i : r->upstream_latency_ms < 0);
        assert_int_equal(r->input_tokens, i % 3 ? i : -1);
        assert_int_equal(r->has_cost, i % 5 != 0);
        assert_int_equal((int)r->cache, i % 4);
    }
    free(g);
    struct rd_log_rec r;
    assert_int_equal(rd_store_log_get(s, "req_old00001", &r), 0);
    assert_int_equal(r.seq, 1);
    struct rd_log_rec w;
    make_rec(&w, 0);
    assert_int_equal(put_recs(s, &w, 1), 1);
    assert_int_equal(w.seq, 1101);
    rd_store_close(s);
}

/* Two workers' records in one batch: the store cuts a block where one
 * worker's run of ids ends, so each block implies its ids (008); every
 * record is found by its id, a part of an id finds the records that hold
 * it (q), an id out of every block's range is not found, and the view
 * spells the ids out as the store reads them. */
static int collect_ids(void *ud, const struct rd_log_rec *r)
{
    unsigned *n = ud;
    (void)r;
    (*n)++;
    return 0;
}

static void test_two_workers_ids(void **state)
{
    struct fix *fx = *state;
    enum { N = 90 };
    struct rd_log_rec v[N];
    for (int i = 0; i < N; i++) {
        make_rec(&v[i], i);
        /* runs of 30: worker a, b, a again (its count going on) */
        unsigned w = (unsigned)(i / 30) == 1 ? 0x5eed000bu : 0x5eed000au;
        snprintf(v[i].id, sizeof v[i].id, "req_%08x%08x", w, 0x7ab00u + (unsigned)i);
    }
    assert_int_equal(put_recs(fx->s, v, N), N);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(fx->db, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT count(*), sum(common ->> 'idp' IS NOT NULL), "
                                        "sum(instr(records, 'req_') > 0) FROM request_log_blocks WHERE id > ?1",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(st, 1, (int64_t)v[0].seq - 1);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 3);
    assert_int_equal(sqlite3_column_int(st, 1), 3);
    assert_int_equal(sqlite3_column_int(st, 2), 0);
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT request_id, timestamp FROM request_logs WHERE seq >= ?1 ORDER BY seq",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(st, 1, (int64_t)v[0].seq);
    for (int i = 0; i < N; i++) {
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_string_equal((const char *)sqlite3_column_text(st, 0), v[i].id);
        assert_int_equal(sqlite3_column_int64(st, 1), v[i].ts_ms);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    struct rd_log_rec r;
    for (int i = 0; i < N; i++) {
        assert_int_equal(rd_store_log_get(fx->s, v[i].id, &r), 0);
        assert_same(&r, &v[i]);
    }
    assert_int_equal(rd_store_log_get(fx->s, "req_5eed000a0007ac00", &r), RD_ENOTFOUND);
    assert_int_equal(rd_store_log_get(fx->s, "req_5eed000c0007ab01", &r), RD_ENOTFOUND);
    /* q: a part of an id (in the implied count), the prefix, another worker's */
    struct {
        const char *q;
        unsigned n;
    } qs[] = {
        {"007ab1", 16}, {"req_5eed000b", 30}, {"5eed000a0007ab4", 16}, {"5eed000b0007ab0", 0}, {"a0007ab59", 1},
    };
    for (size_t k = 0; k < sizeof qs / sizeof qs[0]; k++) {
        struct rd_log_filter f = any();
        f.q = qs[k].q;
        unsigned n = 0;
        assert_true(rd_store_log_query(fx->s, &f, 0, collect_ids, &n) >= 0);
        assert_int_equal(n, qs[k].n);
    }
    /* a purge by proxy rewrites the blocks with gaps in their ids (and
     * seqs): the rest are found as before, by the store and by the view */
    struct rd_log_filter f = any();
    f.proxy_id = 2;
    assert_true(rd_store_log_delete(fx->s, &f) > 0);
    assert_int_equal(sqlite3_open(fx->db, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT request_id, timestamp FROM request_logs WHERE seq >= ?1 ORDER BY seq",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(st, 1, (int64_t)v[0].seq);
    for (int i = 0; i < N; i++) {
        if (v[i].proxy_id == 2) {
            assert_int_equal(rd_store_log_get(fx->s, v[i].id, &r), RD_ENOTFOUND);
            continue;
        }
        assert_int_equal(rd_store_log_get(fx->s, v[i].id, &r), 0);
        assert_same(&r, &v[i]);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_string_equal((const char *)sqlite3_column_text(st, 0), v[i].id);
        assert_int_equal(sqlite3_column_int64(st, 1), v[i].ts_ms);
    }
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_every_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keyset_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_and_nulls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_range_and_proxy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_many_chunks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_view_reads_blocks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_view_insert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_block_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_purge_newest_seq_not_reused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrates_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrates_long_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_workers_ids, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
