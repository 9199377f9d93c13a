/* /api/v1/logs: the request log (docs/observability.md, "Querying the log"
 * and "Export and purge") as the API shows it: a filtered, newest-first,
 * keyset-paged listing, one record by request id, the export (CSV, a JSON
 * array or NDJSON, streamed page by page), the purge, and the retention
 * timer that purges old rows by itself.
 *
 * The store is the control thread's connection (api->store); the log
 * writer thread inserts on its own connection meanwhile, which SQLite's WAL
 * and busy timeout arbitrate. Every query is bounded: a page is at most
 * 1000 rows, an export holds one page at a time, a purge deletes in chunks
 * (sqlite_logs.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "obs/filter.h"
#include "obs/record.h"
#include "util/err.h"
#include "util/json.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/time.h"

/* Rows per store query of an export: what the export holds in memory. */
#define EXPORT_PAGE 1000
/* A rendered page's cap: a record is well under 4 KiB in any format (its
 * strings are bounded by struct rd_log_rec), so this is never reached. */
#define PAGE_BYTES_MAX (EXPORT_PAGE * 8192u)
#define DAY_MS (24LL * 3600 * 1000)
#define RETENTION_EVERY_MS (3600u * 1000u)

/* ---- shared ---- */

static void send_body(struct rd_http_exch *x, int status, const struct rd_buf *b)
{
    struct rd_hdrs h;
    struct rd_arena a;
    rd_arena_init(&a);
    rd_hdrs_init(&h, &a);
    rd_hdrs_add_ref(&h, "Content-Type", "application/json");
    rd_hdrs_add_ref(&h, "Cache-Control", "no-store");
    rd_http_respond(x, status, &h, b->data ? b->data : "", b->len);
    rd_hdrs_free(&h);
    rd_arena_free(&a);
}

static void store_error(struct rd_http_exch *x)
{
    rd_api_send_error(x, 500, "store_error", NULL, "the request log could not be read");
}

/* The filter of the request's query string into *q; false after answering
 * 400 with the offending parameter. */
static bool parse_filter(struct rd_http_exch *x, const char *const *extra, struct rd_log_query *q)
{
    const char *bad = NULL;
    char err[256];
    if (rd_log_query_parse(x->req->query, extra, q, &bad, err, sizeof err) == 0)
        return true;
    rd_api_send_error(x, 400, "invalid_field", bad, "%s", err);
    return false;
}

/* ---- GET /api/v1/logs ---- */

struct listing {
    struct rd_buf body;
    size_t limit, shown;
    struct rd_log_rec last; /* the last one shown: the next page starts after it */
    bool more, failed;
};

static int list_one(void *ud, const struct rd_log_rec *r)
{
    struct listing *l = ud;
    if (l->shown == l->limit) {
        l->more = true; /* the one asked for beyond the page */
        return 1;
    }
    if ((l->shown ? rd_buf_append(&l->body, ",", 1) : 0) < 0 || rd_log_rec_json(&l->body, r) < 0) {
        l->failed = true;
        return 1;
    }
    l->shown++;
    l->last = *r;
    return 0;
}

/* The page is assembled from rd_log_rec_json's objects (the one writer of
 * a record's JSON) rather than parsed back into a tree to be printed again. */
static void list_logs(struct rd_api *api, struct rd_http_exch *x, const char *param)
{
    (void)param;
    struct rd_log_query q;
    if (!parse_filter(x, NULL, &q))
        return;
    struct listing *l = rd_calloc(1, sizeof *l);
    l->limit = q.limit;
    rd_buf_init(&l->body, PAGE_BYTES_MAX + 4096);
    int64_t total = 0;
    (void)rd_buf_appends(&l->body, "{\"logs\":[");
    /* One more than the page: a next_cursor only when a next page exists. */
    int n = rd_store_log_query(api->store, &q.f, q.limit + 1, list_one, l);
    if (n >= 0 && q.count)
        total = rd_store_log_count(api->store, &q.f);
    if (n < 0 || total < 0 || l->failed) {
        store_error(x);
        goto out;
    }
    char cursor[48];
    rd_log_cursor(&l->last, cursor, sizeof cursor);
    int rc = rd_buf_appends(&l->body, "],\"next_cursor\":");
    rc |= l->more ? rd_json_append_str(&l->body, cursor, strlen(cursor)) : rd_buf_appends(&l->body, "null");
    if (q.count)
        rc |= rd_buf_printf(&l->body, ",\"total\":%lld", (long long)total);
    rc |= rd_buf_appends(&l->body, "}");
    if (rc < 0)
        store_error(x);
    else
        send_body(x, 200, &l->body);
out:
    rd_buf_free(&l->body);
    free(l);
}

/* ---- GET /api/v1/logs/{id} ---- */

/* Request ids are "req_<16 hex>"; anything else names no record (and is
 * not echoed back). */
static bool plausible_id(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n < sizeof((struct rd_log_rec *)0)->id &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == n;
}

static void get_log(struct rd_api *api, struct rd_http_exch *x, const char *param)
{
    if (x->req->query && x->req->query[0]) {
        rd_api_send_error(x, 400, "invalid_field", "query", "GET /api/v1/logs/{id} takes no query parameters");
        return;
    }
    struct rd_log_rec r;
    int rc = plausible_id(param) ? rd_store_log_get(api->store, param, &r) : RD_ENOTFOUND;
    if (rc == RD_ENOTFOUND) {
        if (plausible_id(param))
            rd_api_send_error(x, 404, "not_found", NULL, "no request log record with id '%s'", param);
        else
            rd_api_send_error(x, 404, "not_found", NULL, "no request log record with that id");
        return;
    }
    struct rd_buf b;
    rd_buf_init(&b, 0);
    if (rc < 0 || rd_log_rec_json(&b, &r) < 0)
        store_error(x);
    else
        send_body(x, 200, &b);
    rd_buf_free(&b);
}

/* ---- GET /api/v1/logs/export ---- */

struct export_fmt {
    const char *name, *content_type, *ext;
    int (*head)(struct rd_buf *b);
    const char *sep, *tail; /* between two records; after the last */
    int (*row)(struct rd_buf *b, const struct rd_log_rec *r);
};

static int json_head(struct rd_buf *b)
{
    return rd_buf_appends(b, "[");
}

static int ndjson_row(struct rd_buf *b, const struct rd_log_rec *r)
{
    return rd_log_rec_json(b, r) < 0 || rd_buf_appends(b, "\n") < 0 ? -1 : 0;
}

static const struct export_fmt formats[] = {
    {"csv", "text/csv; charset=utf-8", "csv", rd_log_csv_header, "", "", rd_log_rec_csv},
    {"json", "application/json", "json", json_head, ",\n", "]\n", rd_log_rec_json},
    {"ndjson", "application/x-ndjson", "ndjson", NULL, "", "", ndjson_row},
};

/* An export in progress: the filter, its keyset moved past each page
 * written, and one page's rendering at a time. Pages are fetched while the
 * client's output stays under the high mark and resumed on drain, so memory
 * is one page plus the output queue whatever the number of rows. */
struct export_run {
    struct rd_http_exch *x;
    struct rd_store *store; /* borrowed */
    const struct export_fmt *fmt;
    struct rd_log_query q;
    struct rd_buf page;
    uint64_t rows;
    bool failed;
};

static void export_free(struct export_run *ex)
{
    rd_buf_free(&ex->page);
    free(ex);
}

static int export_row(void *ud, const struct rd_log_rec *r)
{
    struct export_run *ex = ud;
    if ((ex->rows ? rd_buf_appends(&ex->page, ex->fmt->sep) : 0) < 0 || ex->fmt->row(&ex->page, r) < 0) {
        ex->failed = true;
        return 1;
    }
    ex->rows++;
    ex->q.f.before_ts = r->ts_ms;
    ex->q.f.before_seq = r->seq;
    return 0;
}

/* Writes pages until the last one (finish), the client is gone or the
 * store fails (abort: the client sees a truncated body, not a short file
 * that looks whole), or the output passes the high mark (on_drain calls
 * again). */
static void export_pump(struct export_run *ex)
{
    while (rd_http_pending(ex->x) < RD_HTTP_OUT_HIGH) {
        rd_buf_reset(&ex->page);
        int n = rd_store_log_query(ex->store, &ex->q.f, EXPORT_PAGE, export_row, ex);
        if (n < 0 || ex->failed) {
            rd_warn("request log export: %s after %llu rows; export cut",
                    n < 0 ? "the store failed" : "a record did not render", (unsigned long long)ex->rows);
            goto abort;
        }
        bool last = n < EXPORT_PAGE;
        if (last && rd_buf_appends(&ex->page, ex->fmt->tail) < 0)
            goto abort;
        if (ex->page.len && rd_http_write(ex->x, ex->page.data, ex->page.len) != 0)
            goto abort;
        if (last) {
            rd_http_finish(ex->x);
            export_free(ex);
            return;
        }
    }
    return;
abort:
    rd_http_abort(ex->x);
    export_free(ex);
}

static void export_drain(void *ud)
{
    export_pump(ud);
}

static void export_gone(void *ud)
{
    struct export_run *ex = ud;
    rd_http_abort(ex->x);
    export_free(ex);
}

static const struct export_fmt *format_param(struct rd_http_exch *x)
{
    char buf[16];
    const char *v = rd_api_query(x, "format", buf, sizeof buf);
    if (v == NULL)
        return &formats[0];
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++)
        if (strcmp(v, formats[i].name) == 0)
            return &formats[i];
    rd_api_send_error(x, 400, "invalid_field", "format", "format must be csv, json or ndjson");
    return NULL;
}

static void export_logs(struct rd_api *api, struct rd_http_exch *x, const char *param)
{
    (void)param;
    static const char *const extra[] = {"format", NULL};
    char buf[8];
    const struct export_fmt *fmt = format_param(x);
    if (fmt == NULL)
        return;
    /* An export writes every matching row; a page size or a total is the
     * listing's business, and silently honouring one would cut the file. */
    const char *paging = rd_api_query(x, "limit", buf, sizeof buf)   ? "limit"
                         : rd_api_query(x, "count", buf, sizeof buf) ? "count"
                                                                     : NULL;
    if (paging) {
        rd_api_send_error(x, 400, "invalid_field", paging,
                          "%s is for GET /api/v1/logs; an export writes every matching record", paging);
        return;
    }
    struct export_run *ex = rd_calloc(1, sizeof *ex);
    if (!parse_filter(x, extra, &ex->q)) {
        free(ex);
        return;
    }
    ex->x = x;
    ex->store = api->store;
    ex->fmt = fmt;
    rd_buf_init(&ex->page, PAGE_BYTES_MAX);
    char stamp[32], disposition[96];
    int64_t now = rd_time_wall_ms();
    rd_log_iso8601(now, stamp, sizeof stamp); /* 2026-12-03T06:41:02.123Z */
    snprintf(disposition, sizeof disposition, "attachment; filename=\"rubberduck-logs-%.4s%.2s%.2sT%.2s%.2s%.2sZ.%s\"",
             stamp, stamp + 5, stamp + 8, stamp + 11, stamp + 14, stamp + 17, fmt->ext);
    struct rd_arena a;
    struct rd_hdrs h;
    rd_arena_init(&a);
    rd_hdrs_init(&h, &a);
    rd_hdrs_add_ref(&h, "Content-Type", fmt->content_type);
    rd_hdrs_add_ref(&h, "Content-Disposition", disposition);
    rd_hdrs_add_ref(&h, "Cache-Control", "no-store");
    rd_hdrs_add_ref(&h, "X-Content-Type-Options", "nosniff");
    int rc = rd_http_begin(x, 200, &h, -1);
    rd_hdrs_free(&h);
    rd_arena_free(&a);
    if (rc == 0 && fmt->head && (fmt->head(&ex->page) < 0 || rd_http_write(x, ex->page.data, ex->page.len) != 0))
        rc = -1;
    if (rc != 0) {
        rd_http_abort(x);
        export_free(ex);
        return;
    }
    rd_http_set_callbacks(x, export_drain, export_gone, ex);
    export_pump(ex);
}

/* ---- DELETE /api/v1/logs ---- */

/* before= / after= (ISO 8601 or epoch ms), proxy_id=, all=true into *f;
 * false after answering 400. Every parameter at most once, and one at
 * least: a DELETE without any would empty the log, so that takes all=true
 * alone. */
static bool purge_filter(struct rd_http_exch *x, struct rd_log_filter *f)
{
    static const char *const names[] = {"before", "after", "proxy_id", "all"};
    bool seen[4] = {false, false, false, false};
    char val[128];
    memset(f, 0, sizeof *f);
    f->cache = -1;
    for (const char *p = x->req->query ? x->req->query : ""; *p;) {
        const char *end = strchr(p, '&');
        size_t seg = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', seg);
        size_t nlen = eq ? (size_t)(eq - p) : seg, i = 0;
        while (i < 4 && !(strlen(names[i]) == nlen && strncmp(p, names[i], nlen) == 0))
            i++;
        if (seg == 0) {
            p++;
            continue;
        }
        if (i == 4) {
            rd_api_send_error(x, 400, "invalid_field", "query",
                              "unknown query parameter: DELETE /api/v1/logs takes before, after, proxy_id or all");
            return false;
        }
        int64_t v = 0;
        bool ok = !seen[i] && eq && rd_url_decode(eq + 1, seg - nlen - 1, val, sizeof val) > 0;
        if (ok && i <= 1)
            ok = rd_log_parse_time(val, &v) == 0 && v > 0;
        else if (ok && i == 2)
            ok = strspn(val, "0123456789") == strlen(val) && strlen(val) < 19 && (v = strtoll(val, NULL, 10)) > 0;
        else if (ok)
            ok = strcmp(val, "true") == 0;
        if (!ok) {
            rd_api_send_error(x, 400, "invalid_field", names[i], "%s: %s", names[i],
                              seen[i]  ? "given twice"
                              : i <= 1 ? "expected an ISO 8601 time (2026-12-03T06:00:00Z) or epoch milliseconds"
                              : i == 2 ? "expected a positive integer"
                                       : "the only value is true");
            return false;
        }
        seen[i] = true;
        if (i == 0)
            f->until_ms = v;
        else if (i == 1)
            f->since_ms = v;
        else if (i == 2)
            f->proxy_id = v;
        p = end ? end + 1 : p + seg;
    }
    bool some = seen[0] || seen[1] || seen[2];
    if (some == seen[3]) {
        rd_api_send_error(x, 400, "invalid_field", "query",
                          some ? "all=true deletes everything: it takes no other parameter"
                               : "give before, after or proxy_id, or all=true to delete every record");
        return false;
    }
    if (f->since_ms && f->until_ms && f->until_ms <= f->since_ms) {
        rd_api_send_error(x, 400, "invalid_field", "before", "before must be later than after");
        return false;
    }
    return true;
}

static void purge_logs(struct rd_api *api, struct rd_http_exch *x, const char *param)
{
    (void)param;
    struct rd_log_filter f;
    if (!purge_filter(x, &f))
        return;
    int64_t n = rd_store_log_delete(api->store, &f);
    if (n < 0) {
        rd_api_send_error(x, 500, "store_error", NULL, "the request log could not be purged");
        return;
    }
    rd_info("request log: purged %lld record(s) by API", (long long)n);
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "deleted", json_object_new_int64(n));
    rd_api_send_json(x, 200, o);
}

/* ---- retention ---- */

struct rd_api_retention {
    uv_timer_t timer; /* data: this */
    struct rd_store *store;
    uint32_t days;
};

static void retention_run(struct rd_api_retention *r, bool first)
{
    struct rd_log_filter f = {.cache = -1, .until_ms = rd_time_wall_ms() - (int64_t)r->days * DAY_MS};
    if (f.until_ms <= 0)
        return;
    int64_t n = rd_store_log_delete(r->store, &f);
    char cut[32];
    rd_log_iso8601(f.until_ms, cut, sizeof cut);
    if (n < 0)
        rd_warn("request log retention: purge of records before %s failed", cut);
    else
        /* An hourly "purged 0" at info would be noise in a quiet server's log. */
        rd_log(n > 0 || first ? RD_LOG_INFO : RD_LOG_DEBUG,
               "request log retention: purged %lld record(s) older than %u day(s) (before %s)", (long long)n, r->days,
               cut);
}

static void retention_tick(uv_timer_t *t)
{
    retention_run(t->data, false);
}

void rd_api_logs_start(struct rd_api *api, uv_loop_t *loop, uint32_t retention_days)
{
    if (retention_days == 0 || api->retention)
        return;
    struct rd_api_retention *r = rd_calloc(1, sizeof *r);
    r->store = api->store;
    r->days = retention_days;
    /* The first purge now, before the API answers anything: what a restart
     * after a long stop finds expired is gone before it can be queried. */
    retention_run(r, true);
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    uv_timer_start(&r->timer, retention_tick, RETENTION_EVERY_MS, RETENTION_EVERY_MS);
    uv_unref((uv_handle_t *)&r->timer); /* it must not keep the loop alive */
    api->retention = r;
}

static void retention_closed(uv_handle_t *h)
{
    free(h->data);
}

void rd_api_logs_stop(struct rd_api *api)
{
    struct rd_api_retention *r = api->retention;
    if (r == NULL)
        return;
    api->retention = NULL;
    uv_timer_stop(&r->timer);
    uv_close((uv_handle_t *)&r->timer, retention_closed);
}

/* export before {id}: both match /api/v1/logs/export. */
const struct rd_api_route rd_api_logs_routes[] = {
    {"GET", "/api/v1/logs", list_logs, true},
    {"DELETE", "/api/v1/logs", purge_logs, true},
    {"GET", "/api/v1/logs/export", export_logs, true},
    {"GET", "/api/v1/logs/{id}", get_log, true},
};
const size_t rd_api_logs_nroutes = sizeof rd_api_logs_routes / sizeof rd_api_logs_routes[0];
