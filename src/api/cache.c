/* /api/v1/proxies/{id}/cache and /api/v1/cache: a proxy's response cache
 * (cache/cache.h) as the API shows it: statistics, a paged listing of the
 * entries, invalidation (all, by pattern, by key, every proxy), and the
 * cassette export and import (cache/cassette.h).
 *
 * The store copy follows the memory copy: an entry that leaves the memory
 * cache fires the cache's removed hook, which queues its deletion in the
 * write-behind store (cache/persist.h). What the hook cannot see is an
 * entry that is stored but not in memory (not loaded at start-up, because
 * loading stops at the memory limit): clearing a proxy therefore also
 * queues rd_cache_persist_clear, and a key deleted that memory does not
 * hold is deleted from the store all the same. A pattern only reaches the
 * entries in memory (docs/api.md says so). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "cache/cassette.h"
#include "cache/persist.h"
#include "util/err.h"
#include "util/hash.h"
#include "util/json.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/time.h"

#define LIST_DEFAULT 100
#define LIST_MAX 1000
/* A pattern is matched against key texts, which are at most
 * RD_CACHE_KEY_TEXT_MAX bytes: a longer one could match nothing. */
#define PATTERN_MAX RD_CACHE_KEY_TEXT_MAX
/* Import errors listed in the answer; the rest are only counted. */
#define IMPORT_MAX_ERRORS 20
/* One exported line: no longer than an import reads back. */
#define EXPORT_LINE_MAX RD_CASSETTE_LINE_MAX

/* ---- input ---- */

/* Percent-decodes s[0..n) into out (RFC 3986: '+' is literal). False on a
 * malformed escape, a NUL or control byte, or if it does not fit. */
static bool pct_decode(const char *s, size_t n, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            int hi = i + 2 < n ? rd_hex_value(s[i + 1]) : -1;
            int lo = i + 2 < n ? rd_hex_value(s[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return false;
            c = hi * 16 + lo;
            i += 2;
        }
        if (c < 0x20 || c == 0x7f || o + 1 >= outlen)
            return false;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return true;
}

/* The proxy's cache, or NULL after answering 404 (no such proxy) or 503
 * (the proxy has no cache: a build without the cache stage). */
static struct rd_proxy_entry *cache_entry_or_error(struct rd_api *api, struct rd_http_exch *x, const char *param)
{
    char *end = NULL;
    long long id = strtoll(param, &end, 10);
    struct rd_proxy_entry *e = NULL;
    if (end && *end == '\0' && end != param)
        e = rd_manager_find(api->manager, id);
    if (e == NULL) {
        rd_api_send_error(x, 404, "not_found", NULL, "no proxy with id '%s'", param);
        return NULL;
    }
    if (e->cache == NULL) {
        rd_api_send_error(x, 503, "cache_unavailable", NULL, "proxy %lld has no response cache", id);
        return NULL;
    }
    return e;
}

/* The decoded ?pattern= into buf; *pattern NULL when absent. False after
 * answering 400. */
static bool pattern_param(struct rd_http_exch *x, char *buf, size_t len, const char **pattern)
{
    char raw[3 * PATTERN_MAX + 1];
    *pattern = NULL;
    const char *v = rd_api_query(x, "pattern", raw, sizeof raw);
    if (v == NULL)
        return true;
    if (strlen(v) >= sizeof raw - 1 || !pct_decode(v, strlen(v), buf, len) || buf[0] == '\0') {
        rd_api_send_error(x, 400, "invalid_field", "pattern",
                          "pattern must be 1 to %d characters of key text ('*' any run, '?' one character), "
                          "percent-encoded",
                          PATTERN_MAX - 1);
        return false;
    }
    *pattern = buf;
    return true;
}

static bool limit_param(struct rd_http_exch *x, size_t *limit)
{
    char buf[16];
    *limit = LIST_DEFAULT;
    const char *v = rd_api_query(x, "limit", buf, sizeof buf);
    if (v == NULL)
        return true;
    char *end = NULL;
    long long n = strtoll(v, &end, 10);
    if (end == v || *end != '\0' || n < 1 || n > LIST_MAX) {
        rd_api_send_error(x, 400, "invalid_field", "limit", "limit must be an integer from 1 to %d", LIST_MAX);
        return false;
    }
    *limit = (size_t)n;
    return true;
}

/* ?cursor= (a next_cursor: the key's hex, or a key text) into key; *has
 * false when absent. False after answering 400. */
static bool cursor_param(struct rd_http_exch *x, uint8_t key[RD_CACHE_KEY_LEN], bool *has)
{
    char raw[3 * RD_CACHE_KEY_TEXT_MAX + 1], text[RD_CACHE_KEY_TEXT_MAX];
    *has = false;
    const char *v = rd_api_query(x, "cursor", raw, sizeof raw);
    if (v == NULL)
        return true;
    if (!pct_decode(v, strlen(v), text, sizeof text) || !rd_cache_key_parse(text, key)) {
        rd_api_send_error(x, 400, "invalid_field", "cursor", "cursor must be a next_cursor value (64 hex digits)");
        return false;
    }
    *has = true;
    return true;
}

/* ---- rendering ---- */

static struct json_object *time_or_null(int64_t ms)
{
    char ts[32];
    return ms > 0 ? json_object_new_string(rd_time_format(ms, ts, sizeof ts)) : NULL;
}

static struct json_object *stats_json(const struct rd_proxy_entry *e)
{
    struct rd_cache_stats s;
    rd_cache_stats(e->cache, &s);
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "proxy_id", json_object_new_int64(e->rec.id));
    json_object_object_add(o, "entries", json_object_new_int64((int64_t)s.entries));
    json_object_object_add(o, "bytes", json_object_new_int64((int64_t)s.bytes));
    json_object_object_add(o, "hits", json_object_new_int64((int64_t)s.hits));
    json_object_object_add(o, "misses", json_object_new_int64((int64_t)s.misses));
    uint64_t lookups = s.hits + s.misses;
    json_object_object_add(o, "hit_rate", lookups ? json_object_new_double((double)s.hits / (double)lookups) : NULL);
    json_object_object_add(o, "evictions", json_object_new_int64((int64_t)s.evictions));
    json_object_object_add(o, "expired", json_object_new_int64((int64_t)s.expired));
    json_object_object_add(o, "oldest", time_or_null(s.oldest_ms));
    json_object_object_add(o, "newest", time_or_null(s.newest_ms));
    return o;
}

static struct json_object *entry_json(const struct rd_cache_entry *ce)
{
    char key[RD_CACHE_KEY_TEXT_MAX];
    rd_cache_key_text(ce, key);
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "key", json_object_new_string(key));
    json_object_object_add(o, "model", json_object_new_string(ce->model));
    /* The body's bytes: what the response weighs. stats.bytes counts the
     * charge against cache_max_size, which adds headers and bookkeeping. */
    json_object_object_add(o, "size", json_object_new_int64((int64_t)ce->len));
    json_object_object_add(o, "created", time_or_null(ce->created_ms));
    json_object_object_add(o, "expires", time_or_null(ce->expires_ms));
    json_object_object_add(o, "hits", json_object_new_int64((int64_t)atomic_load(&ce->hits)));
    json_object_object_add(o, "stream", json_object_new_boolean(ce->stream));
    json_object_object_add(o, "status", json_object_new_int(ce->status));
    json_object_object_add(o, "path", json_object_new_string(ce->path ? ce->path : ""));
    return o;
}

/* ---- statistics and listing ---- */

static void get_cache(struct rd_api *api, struct rd_http_exch *x, const char *param)
{
    struct rd_proxy_entry *e = cache_entry_or_error(api, x, param);
    if (e)
        rd_api_send_json(x, 200, stats_json(e));
}

struct listing {
    struct json_object *arr;
    size_t limit;                   /* entries to show; one more is asked for */
    uint8_t last[RD_CACHE_KEY_LEN]; /* key of the last one shown */
    bool more;                      /* the extra one came: there is a next page */
};

static void list_one(void *ud, const struct rd_cache_entry *ce)
{
    struct listing *l = ud;
    if (json_object_array_length(l->arr) == l->limit) {
        l->more = true;
        return;
    }
    json_object_array_add(l->arr, entry_json(ce));
    memcpy(l->last, ce->key, RD_CACHE_KEY_LEN);
}

static void list_entries(struct rd_api *api, struct rd_http_exch *x, const char *param)
{
    struct rd_proxy_entry *e = cache_entry_or_error(api, x, param);
    if (e == NULL)
        return;
    char pbuf[PATTERN_MAX];
    const char *pattern;
    uint8_t after[RD_CACHE_KEY_LEN];
    bool has_after;
    struct listing l = {0};
    if (!pattern_param(x, pbuf, sizeof pbuf, &pattern) || !limit_param(x, &l.limit) ||
        !cursor_param(x, after, &has_after))
        return;
    l.arr = json_object_new_array();
    /* One more than the page: a next_cursor only when a next page exists. */
    (void)rd_cache_list(e->cache, pattern, has_after ? after : NULL, l.limit + 1, list_one, &l);
    struct json_object *root = json_object_new_object();
    json_object_object_add(root, "entries", l.arr);
    char hex[2 * RD_CACHE_KEY_LEN + 1];
    if (l.more)
        rd_hex(l.last, RD_CACHE_KEY_LEN, hex);
    json_object_object_add(root, "next_cursor", l.more ? json_object_new_string(hex) : NULL);
    rd_api_send_json(x, 200, root);
}

/* ---- invalidation ---- */

static void send_deleted(struct rd_http_exch *x, size_t n)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "deleted", json_object_new_int64((int64_t)n));
    rd_api_send_json(x, 200, o);
}

static void delete_cache(struct rd_api *api, struct rd_http_exch *x, const char *param)
{
    struct rd_proxy_entry *e = cache_entry_or_error(api, x, param);
    if (e == NULL)
        return;
    char pbuf[PATTERN_MAX];
    const char *pattern;
    if (!pattern_param(x, pbuf, sizeof pbuf, &pattern))
        return;
    size_t n = rd_cache_delete_pattern(e->cache, pattern);
    /* The removed hook queued the deletion of each entry memory held; the
     * whole-proxy clear also reaches the stored entries it did not hold. */
    if (pattern == NULL && api->manager->persist)
        rd_cache_persist_clear(api->manager->persist, e->rec.id);
    send_deleted(x, n);
}

/* DELETE /api/v1/proxies/{id}/cache/entries/{key}: the key follows the id
 * in param (api.h). */
static void delete_entry(struct rd_api *api, struct rd_http_exch *x, const char *param)
{
    struct rd_proxy_entry *e = cache_entry_or_error(api, x, param);
    if (e == NULL)
        return;
    const char *seg = param + strlen(param) + 1;
    char text[RD_CACHE_KEY_TEXT_MAX];
    uint8_t key[RD_CACHE_KEY_LEN];
    if (!pct_decode(seg, strlen(seg), text, sizeof text) || !rd_cache_key_parse(text, key)) {
        rd_api_send_error(x, 400, "invalid_field", "key", "a key is \"<model>:<64 hex digits>\" or 64 hex digits");
        return;
    }
    if (!rd_cache_delete_key(e->cache, key)) {
        /* Not in memory, but it may be stored (not loaded): the store must
         * not bring it back at the next start. */
        if (api->manager->persist)
            rd_cache_persist_delete(api->manager->persist, e->rec.id, key);
        rd_api_send_error(x, 404, "not_found", "key", "proxy %lld has no cache entry %s", (long long)e->rec.id, text);
        return;
    }
    send_deleted(x, 1);
}

static void delete_all_caches(struct rd_api *api, struct rd_http_exch *x, const char *param)
{
    (void)param;
    size_t n = 0;
    for (struct rd_proxy_entry *e = api->manager->entries; e; e = e->next)
        if (!rd_proxy_is_deleting(e) && e->cache)
            n += rd_cache_delete_pattern(e->cache, NULL);
    if (api->manager->persist)
        rd_cache_persist_clear(api->manager->persist, 0);
    send_deleted(x, n);
}

/* ---- export ---- */

/* An export in progress: a snapshot of the cache's entries (references,
 * taken in key order by one listing when it starts), written one cassette
 * line each while the client's output stays under the high mark, resumed
 * on drain. The references keep every entry of the snapshot alive until it
 * is written, whatever the cache does meanwhile (one listing of the whole
 * cache, not one per batch: a listing walks every shard). */
struct export_run {
    struct rd_http_exch *x;
    struct rd_cache_entry **v; /* owned references */
    size_t n, cap, next;       /* next: the first not written yet */
    struct rd_buf line;
};

static void export_free(struct export_run *ex)
{
    for (size_t i = ex->next; i < ex->n; i++)
        rd_cache_entry_unref(ex->v[i]);
    free(ex->v);
    rd_buf_free(&ex->line);
    free(ex);
}

static void export_pick(void *ud, const struct rd_cache_entry *ce)
{
    struct export_run *ex = ud;
    if (ex->n == ex->cap) {
        ex->cap = ex->cap ? 2 * ex->cap : 64;
        ex->v = rd_realloc(ex->v, ex->cap * sizeof *ex->v);
    }
    /* The listing's reference is for the call only: take one of ours. */
    ex->v[ex->n++] = rd_cache_entry_ref((struct rd_cache_entry *)ce);
}

/* Writes lines until the snapshot is written (finish), the client is gone
 * or a line fails (abort: the client sees a truncated body), or the output
 * passes the high mark (on_drain calls again). */
static void export_pump(struct export_run *ex)
{
    while (ex->next < ex->n && rd_http_pending(ex->x) < RD_HTTP_OUT_HIGH) {
        struct rd_cache_entry *ce = ex->v[ex->next++];
        rd_buf_reset(&ex->line);
        int rc = rd_cassette_write(ce, &ex->line);
        rd_cache_entry_unref(ce);
        if (rc != 0) {
            rd_warn("cache export: an entry does not fit a line of %zu bytes; export cut", (size_t)EXPORT_LINE_MAX);
            goto abort;
        }
        if (rd_http_write(ex->x, ex->line.data, ex->line.len) != 0)
            goto abort;
    }
    if (ex->next == ex->n) {
        rd_http_finish(ex->x);
        export_free(ex);
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

static void export_cache(struct rd_api *api, struct rd_http_exch *x, const char *param)
{
    struct rd_proxy_entry *e = cache_entry_or_error(api, x, param);
    if (e == NULL)
        return;
    char disposition[128];
    /* Proxy names are [A-Za-z0-9._-] (proxies.c): safe in a quoted filename. */
    snprintf(disposition, sizeof disposition, "attachment; filename=\"%s.cassette.jsonl\"", e->rec.name);
    struct rd_arena a;
    struct rd_hdrs h;
    rd_arena_init(&a);
    rd_hdrs_init(&h, &a);
    rd_hdrs_add_ref(&h, "Content-Type", "application/x-ndjson");
    rd_hdrs_add_ref(&h, "Content-Disposition", disposition);
    rd_hdrs_add_ref(&h, "Cache-Control", "no-store");
    int rc = rd_http_begin(x, 200, &h, -1);
    rd_hdrs_free(&h);
    rd_arena_free(&a);
    if (rc != 0) {
        rd_http_abort(x);
        return;
    }
    struct export_run *ex = rd_calloc(1, sizeof *ex);
    ex->x = x;
    rd_buf_init(&ex->line, EXPORT_LINE_MAX);
    (void)rd_cache_list(e->cache, NULL, NULL, 0, export_pick, ex);
    rd_http_set_callbacks(x, export_drain, export_gone, ex);
    export_pump(ex);
}

/* ---- import ---- */

struct import {
    struct rd_api *api;
    struct rd_proxy_entry *e;
    int64_t now_ms;
    size_t imported, skipped;
    struct json_object *errors;
};

static void import_error(struct import *im, size_t line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void import_error(struct import *im, size_t line, const char *fmt, ...)
{
    im->skipped++;
    if (json_object_array_length(im->errors) >= IMPORT_MAX_ERRORS)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "line", json_object_new_int64((int64_t)line));
    json_object_object_add(o, "message", json_object_new_string(msg));
    json_object_array_add(im->errors, o);
}

/* One non-empty line: parsed, checked for expiry, inserted and queued for
 * the store. */
static void import_line(struct import *im, size_t lineno, const char *p, size_t n)
{
    char err[256] = "";
    struct rd_cache_entry *ce = rd_cassette_read(p, n, err, sizeof err);
    if (ce == NULL) {
        import_error(im, lineno, "%s", err[0] ? err : "malformed cassette line");
        return;
    }
    /* A cassette is committed next to a test suite and replayed weeks
     * later: an import starts each entry's TTL (the one it was stored
     * with) again from now, rather than dropping what merely aged. */
    if (ce->expires_ms <= im->now_ms)
        ce->expires_ms = im->now_ms + (int64_t)ce->ttl_s * 1000;
    int rc = rd_cache_insert(im->e->cache, ce);
    if (rc != 0) {
        import_error(im, lineno, "not inserted: %s",
                     rc == RD_ETOOBIG ? "larger than the cache's limits" : rd_strerror(rc));
        goto out;
    }
    im->imported++;
    if (im->api->manager->persist)
        rd_cache_persist_put(im->api->manager->persist, im->e->rec.id, ce);
out:
    rd_cache_entry_unref(ce);
}

static void import_cache(struct rd_api *api, struct rd_http_exch *x, const char *param)
{
    struct rd_proxy_entry *e = cache_entry_or_error(api, x, param);
    if (e == NULL)
        return;
    struct import im = {.api = api, .e = e, .now_ms = rd_cache_now(e->cache), .errors = json_object_new_array()};
    const char *p = x->req->body.data ? x->req->body.data : "";
    const char *end = p + x->req->body.len;
    for (size_t lineno = 1; p < end; lineno++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl ? nl : end;
        size_t n = (size_t)(stop - p);
        if (n && p[n - 1] == '\r')
            n--;
        /* Blank lines (an editor's trailing newline) are not entries. */
        size_t blank = 0;
        while (blank < n && (p[blank] == ' ' || p[blank] == '\t'))
            blank++;
        if (blank < n)
            import_line(&im, lineno, p, n);
        p = nl ? nl + 1 : end;
    }
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "imported", json_object_new_int64((int64_t)im.imported));
    json_object_object_add(o, "skipped", json_object_new_int64((int64_t)im.skipped));
    json_object_object_add(o, "errors", im.errors);
    rd_api_send_json(x, 200, o);
}

const struct rd_api_route rd_api_cache_routes[] = {
    {"GET", "/api/v1/proxies/{id}/cache", get_cache, true},
    {"DELETE", "/api/v1/proxies/{id}/cache", delete_cache, true},
    {"GET", "/api/v1/proxies/{id}/cache/entries", list_entries, true},
    {"DELETE", "/api/v1/proxies/{id}/cache/entries/{key}", delete_entry, true},
    {"GET", "/api/v1/proxies/{id}/cache/export", export_cache, true},
    {"POST", "/api/v1/proxies/{id}/cache/import", import_cache, true},
    {"DELETE", "/api/v1/cache", delete_all_caches, true},
};
const size_t rd_api_cache_nroutes = sizeof rd_api_cache_routes / sizeof rd_api_cache_routes[0];
