/* Backend-independent half of the store: URL parsing, argument checks and
 * defaults, dispatch through struct rd_store_ops, and record helpers. */
#include "store/store.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "obs/record.h"
#include "store/sqlite_int.h"
#include "util/err.h"
#include "util/mem.h"

#define MAX_SCHEME_LEN 32

/* Column defaults, the same as in migrations/001_init.sql. Non-const arrays
 * only because struct rd_proxy_rec holds char *; nothing writes to them. */
static char default_bind[] = "127.0.0.1";
static char default_tags[] = "[]";
static char default_config[] = "{}";
static char default_status[] = "stopped";

/* Length of the RFC 3986 scheme before "://" at the start of url, or 0 when
 * url does not start with one (then it is a plain path, even if it contains
 * "://" further on). */
static size_t scheme_len(const char *url)
{
    const char *sep = strstr(url, "://");
    if (sep == NULL || sep == url || (size_t)(sep - url) > MAX_SCHEME_LEN)
        return 0;
    if (!isalpha((unsigned char)url[0]))
        return 0;
    for (const char *p = url; p < sep; p++) {
        if (!isalnum((unsigned char)*p) && *p != '+' && *p != '-' && *p != '.')
            return 0;
    }
    return (size_t)(sep - url);
}

/* Sets *path to the file path inside url (borrowed from url). Only the scheme
 * is ever quoted in errbuf: the rest of a URL may hold a password. */
static int url_to_path(const char *url, const char **path, char *errbuf, size_t errlen)
{
    if (url == NULL || url[0] == '\0') {
        rd_seterr(errbuf, errlen, "empty database URL");
        return RD_EINVAL;
    }
    size_t n = scheme_len(url);
    if (n == 0) {
        *path = url;
        return 0;
    }
    if (n == 6 && strncasecmp(url, "sqlite", n) == 0) {
        /* "sqlite:///abs" keeps the third slash (absolute); "sqlite://rel" is relative. */
        *path = url + n + 3;
        if (**path == '\0') {
            rd_seterr(errbuf, errlen, "database URL 'sqlite://' has no file path");
            return RD_EINVAL;
        }
        return 0;
    }
    if ((n == 8 && strncasecmp(url, "postgres", n) == 0) || (n == 10 && strncasecmp(url, "postgresql", n) == 0))
        rd_seterr(errbuf, errlen, "unsupported database URL scheme '%.*s' (PostgreSQL support comes later)", (int)n,
                  url);
    else
        rd_seterr(errbuf, errlen, "unsupported database URL scheme '%.*s' (use sqlite:///path or a file path)",
                  (int)n, url);
    return RD_EINVAL;
}

int rd_store_open(const char *url, struct rd_store **out, char *errbuf, size_t errlen)
{
    const char *path = NULL;
    int rc = url_to_path(url, &path, errbuf, errlen);
    if (rc < 0)
        return rc;
    struct rd_store *s = rd_calloc(1, sizeof *s);
    rc = rd_sqlite_open(path, s, errbuf, errlen);
    if (rc < 0) {
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void rd_store_close(struct rd_store *s)
{
    if (s == NULL)
        return;
    s->ops->close(s);
    free(s);
}

int rd_store_ping(struct rd_store *s)
{
    return s ? s->ops->ping(s) : RD_EINVAL;
}

void rd_store_appender(struct rd_store *s)
{
    if (s && s->ops->appender)
        s->ops->appender(s);
}

int rd_store_schema_version(struct rd_store *s)
{
    return s ? s->ops->schema_version(s) : RD_EINVAL;
}

int rd_store_proxy_list(struct rd_store *s, struct rd_proxy_rec **out, size_t *n)
{
    if (s == NULL || out == NULL || n == NULL)
        return RD_EINVAL;
    return s->ops->proxy_list(s, out, n);
}

int rd_store_proxy_get(struct rd_store *s, int64_t id, struct rd_proxy_rec *out)
{
    if (s == NULL || out == NULL)
        return RD_EINVAL;
    return s->ops->proxy_get(s, id, out);
}

/* The checks every backend relies on; the schema repeats them as constraints. */
static int check_rec(const struct rd_proxy_rec *r)
{
    if (r == NULL || r->name == NULL || r->name[0] == '\0' || r->provider == NULL || r->provider[0] == '\0')
        return RD_EINVAL;
    if (r->port < 1 || r->port > 65535)
        return RD_EINVAL;
    if (r->desired_status != NULL && strcmp(r->desired_status, "running") != 0 &&
        strcmp(r->desired_status, "stopped") != 0)
        return RD_EINVAL;
    return 0;
}

/* A shallow copy of r whose NULL defaulted fields point at the defaults, so
 * backends always receive complete rows. */
static struct rd_proxy_rec with_defaults(const struct rd_proxy_rec *r)
{
    struct rd_proxy_rec t = *r;
    if (t.bind == NULL)
        t.bind = default_bind;
    if (t.tags_json == NULL)
        t.tags_json = default_tags;
    if (t.config_json == NULL)
        t.config_json = default_config;
    if (t.desired_status == NULL)
        t.desired_status = default_status;
    return t;
}

int rd_store_proxy_insert(struct rd_store *s, struct rd_proxy_rec *rec)
{
    if (s == NULL || check_rec(rec) < 0)
        return RD_EINVAL;
    struct rd_proxy_rec t = with_defaults(rec);
    int rc = s->ops->proxy_insert(s, &t);
    if (rc < 0)
        return rc;
    rec->id = t.id;
    rec->created_at = t.created_at;
    rec->updated_at = t.updated_at;
    /* Leave rec equal to the stored row: owned copies of the defaults used. */
    if (rec->bind == NULL)
        rec->bind = rd_strdup(default_bind);
    if (rec->tags_json == NULL)
        rec->tags_json = rd_strdup(default_tags);
    if (rec->config_json == NULL)
        rec->config_json = rd_strdup(default_config);
    if (rec->desired_status == NULL)
        rec->desired_status = rd_strdup(default_status);
    return 0;
}

int rd_store_proxy_update(struct rd_store *s, const struct rd_proxy_rec *rec)
{
    if (s == NULL || check_rec(rec) < 0)
        return RD_EINVAL;
    struct rd_proxy_rec t = with_defaults(rec);
    return s->ops->proxy_update(s, &t);
}

int rd_store_proxy_delete(struct rd_store *s, int64_t id)
{
    return s ? s->ops->proxy_delete(s, id) : RD_EINVAL;
}

/* The checks every backend relies on for a cache row; the schema repeats
 * the status, stream and ttl ones as constraints. */
static bool cache_rec_ok(const struct rd_cache_rec *r)
{
    if (r->model == NULL || r->kind == NULL || r->method == NULL || r->path == NULL || r->headers == NULL ||
        r->upstream_model == NULL || r->finish == NULL)
        return false;
    if ((r->body == NULL && r->body_len > 0) || (r->marks == NULL && r->marks_len > 0))
        return false;
    return r->status >= 100 && r->status <= 599 && r->ttl_s > 0;
}

int rd_store_cache_put(struct rd_store *s, const struct rd_cache_rec *recs, size_t n)
{
    if (s == NULL || (recs == NULL && n > 0) || n > INT_MAX)
        return RD_EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (!cache_rec_ok(&recs[i]))
            return RD_EINVAL;
    }
    return n == 0 ? 0 : s->ops->cache_put(s, recs, n);
}

int rd_store_cache_delete(struct rd_store *s, int64_t proxy_id, const uint8_t key[RD_STORE_CACHE_KEY_LEN])
{
    if (s == NULL || key == NULL)
        return RD_EINVAL;
    return s->ops->cache_delete(s, proxy_id, key);
}

int rd_store_cache_clear(struct rd_store *s, int64_t proxy_id)
{
    return s ? s->ops->cache_clear(s, proxy_id) : RD_EINVAL;
}

int rd_store_cache_purge(struct rd_store *s, int64_t now_ms)
{
    return s ? s->ops->cache_purge(s, now_ms) : RD_EINVAL;
}

int rd_store_cache_load(struct rd_store *s, int64_t proxy_id, int64_t now_ms, uint64_t max_entries,
                        uint64_t max_bytes, rd_cache_rec_fn fn, void *ud)
{
    if (s == NULL || fn == NULL)
        return RD_EINVAL;
    return s->ops->cache_load(s, proxy_id, now_ms, max_entries, max_bytes, fn, ud);
}

int rd_store_log_put(struct rd_store *s, struct rd_log_rec *const *recs, size_t n)
{
    if (s == NULL || (recs == NULL && n > 0) || n > INT_MAX)
        return RD_EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (recs[i] == NULL || recs[i]->id[0] == '\0')
            return RD_EINVAL;
    }
    return n == 0 ? 0 : s->ops->log_put(s, recs, n);
}

int rd_store_log_query(struct rd_store *s, const struct rd_log_filter *f, size_t limit, rd_log_rec_fn fn, void *ud)
{
    if (s == NULL || f == NULL || fn == NULL)
        return RD_EINVAL;
    return s->ops->log_query(s, f, limit, fn, ud);
}

int64_t rd_store_log_count(struct rd_store *s, const struct rd_log_filter *f)
{
    return s && f ? s->ops->log_count(s, f) : RD_EINVAL;
}

int rd_store_log_get(struct rd_store *s, const char *id, struct rd_log_rec *out)
{
    if (s == NULL || id == NULL || out == NULL)
        return RD_EINVAL;
    return s->ops->log_get(s, id, out);
}

int64_t rd_store_log_delete(struct rd_store *s, const struct rd_log_filter *f)
{
    return s && f ? s->ops->log_delete(s, f) : RD_EINVAL;
}

void rd_proxy_rec_free(struct rd_proxy_rec *rec)
{
    if (rec == NULL)
        return;
    free(rec->name);
    free(rec->provider);
    free(rec->bind);
    free(rec->upstream_url);
    free(rec->description);
    free(rec->tags_json);
    free(rec->model);
    free(rec->config_json);
    free(rec->desired_status);
    free(rec->last_error);
    memset(rec, 0, sizeof *rec);
}

void rd_proxy_recs_free(struct rd_proxy_rec *recs, size_t n)
{
    if (recs == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        rd_proxy_rec_free(&recs[i]);
    free(recs);
}

void rd_proxy_rec_copy(struct rd_proxy_rec *dst, const struct rd_proxy_rec *src)
{
    *dst = *src;
    dst->name = rd_strdup(src->name);
    dst->provider = rd_strdup(src->provider);
    dst->bind = rd_strdup(src->bind);
    dst->upstream_url = rd_strdup(src->upstream_url);
    dst->description = rd_strdup(src->description);
    dst->tags_json = rd_strdup(src->tags_json);
    dst->model = rd_strdup(src->model);
    dst->config_json = rd_strdup(src->config_json);
    dst->desired_status = rd_strdup(src->desired_status);
    dst->last_error = rd_strdup(src->last_error);
}

int rd_store_rollup_add(struct rd_store *s, const struct rd_rollup_rec *recs, size_t n,
                        const struct rd_rollup_fail_rec *fails, size_t nfails, rd_rollup_merge_fn merge, void *ud)
{
    if (s == NULL || (recs == NULL && n > 0) || (fails == NULL && nfails > 0) || merge == NULL ||
        n > INT_MAX / 2 || nfails > INT_MAX / 2)
        return RD_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (recs[i].res_s <= 0 || recs[i].provider == NULL || recs[i].model == NULL ||
            (recs[i].latency == NULL && recs[i].latency_len > 0))
            return RD_EINVAL;
    for (size_t i = 0; i < nfails; i++)
        if (fails[i].res_s <= 0 || fails[i].type == NULL)
            return RD_EINVAL;
    return n + nfails == 0 ? 0 : s->ops->rollup_add(s, recs, n, fails, nfails, merge, ud);
}

int rd_store_rollup_query(struct rd_store *s, const struct rd_rollup_filter *f, rd_rollup_rec_fn fn, void *ud)
{
    if (s == NULL || f == NULL || fn == NULL)
        return RD_EINVAL;
    return s->ops->rollup_query(s, f, fn, ud);
}

int rd_store_rollup_sums(struct rd_store *s, int32_t res_s, rd_rollup_rec_fn fn, void *ud)
{
    return s && fn ? s->ops->rollup_sums(s, res_s, fn, ud) : RD_EINVAL;
}

int rd_store_rollup_fail_sums(struct rd_store *s, int32_t res_s, rd_rollup_fail_fn fn, void *ud)
{
    return s && fn ? s->ops->rollup_fail_sums(s, res_s, fn, ud) : RD_EINVAL;
}

int64_t rd_store_rollup_purge(struct rd_store *s, int32_t res_s, int64_t before_ms)
{
    return s ? s->ops->rollup_purge(s, res_s, before_ms) : RD_EINVAL;
}
