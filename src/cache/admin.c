/* The management side of the memory cache (cache.h): statistics, listing in
 * key order with a cursor, removal by pattern, key, model and expiry, and
 * the closest entry for replay's miss error. These walk every shard, one
 * lock at a time, and call back or tell the removed callback with no lock
 * held. */
#include <stdlib.h>
#include <string.h>

#include "cache/cache_int.h"
#include "util/mem.h"

/* Glob match of the whole of s: '*' any run (empty included), '?' one
 * character. Backtracks only to the last '*', so it is linear in practice
 * and never recursive. */
static bool glob_match(const char *pat, const char *s)
{
    const char *star = NULL, *resume = NULL;
    while (*s) {
        if (*pat == '*') {
            star = pat++;
            resume = s;
        } else if (*pat == '?' || *pat == *s) {
            pat++;
            s++;
        } else if (star) {
            pat = star + 1;
            s = ++resume;
        } else {
            return false;
        }
    }
    while (*pat == '*')
        pat++;
    return *pat == '\0';
}

static bool key_matches(const struct rd_cache_entry *e, const char *pattern)
{
    if (!pattern)
        return true;
    char text[RD_CACHE_KEY_TEXT_MAX];
    rd_cache_key_text(e, text);
    return glob_match(pattern, text);
}

void rd_cache_stats(struct rd_cache *c, struct rd_cache_stats *out)
{
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < RD_CACHE_SHARDS; i++) {
        struct rd_cache_shard *s = &c->shards[i];
        rd_cache_shard_lock(s);
        out->entries += s->count;
        out->bytes += s->bytes;
        for (const struct rd_cache_entry *e = s->lru_head; e; e = e->lru_next) {
            if (!out->oldest_ms || e->created_ms < out->oldest_ms)
                out->oldest_ms = e->created_ms;
            if (e->created_ms > out->newest_ms)
                out->newest_ms = e->created_ms;
        }
        rd_cache_shard_unlock(s);
    }
    out->hits = atomic_load(&c->hits);
    out->misses = atomic_load(&c->misses);
    out->evictions = atomic_load(&c->evictions);
    out->expired = atomic_load(&c->expired);
}

struct picked {
    struct rd_cache_entry **v;
    size_t n, cap;
};

static void pick(struct picked *p, struct rd_cache_entry *e)
{
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 64;
        p->v = rd_realloc(p->v, p->cap * sizeof(*p->v));
    }
    p->v[p->n++] = rd_cache_entry_ref(e);
}

static int by_key(const void *a, const void *b)
{
    const struct rd_cache_entry *x = *(struct rd_cache_entry *const *)a, *y = *(struct rd_cache_entry *const *)b;
    return memcmp(x->key, y->key, RD_CACHE_KEY_LEN);
}

size_t rd_cache_list(struct rd_cache *c, const char *pattern, const uint8_t *after, size_t limit,
                     void (*fn)(void *ud, const struct rd_cache_entry *e), void *ud)
{
    struct picked p = {0};
    for (size_t i = 0; i < RD_CACHE_SHARDS; i++) {
        struct rd_cache_shard *s = &c->shards[i];
        rd_cache_shard_lock(s);
        for (struct rd_cache_entry *e = s->lru_head; e; e = e->lru_next)
            if ((!after || memcmp(e->key, after, RD_CACHE_KEY_LEN) > 0) && key_matches(e, pattern))
                pick(&p, e);
        rd_cache_shard_unlock(s);
    }
    if (p.n > 1)
        qsort(p.v, p.n, sizeof(*p.v), by_key);
    size_t given = limit && limit < p.n ? limit : p.n;
    for (size_t i = 0; i < given; i++)
        fn(ud, p.v[i]);
    for (size_t i = 0; i < p.n; i++)
        rd_cache_entry_unref(p.v[i]);
    free(p.v);
    return given;
}

/* Removes, shard by shard, the complete entries pred accepts; returns how
 * many. */
static size_t remove_where(struct rd_cache *c, bool (*pred)(const struct rd_cache_entry *e, const void *arg),
                           const void *arg, bool count_expired)
{
    size_t removed = 0;
    struct rd_cache_gone g;
    rd_cache_gone_init(&g);
    for (size_t i = 0; i < RD_CACHE_SHARDS; i++) {
        struct rd_cache_shard *s = &c->shards[i];
        rd_cache_shard_lock(s);
        struct rd_cache_entry *e = s->lru_head;
        while (e) {
            struct rd_cache_entry *next = e->lru_next;
            if (pred(e, arg)) {
                rd_cache_table_remove(c, s, e);
                rd_cache_gone_add(&g, e);
            }
            e = next;
        }
        rd_cache_shard_unlock(s);
        removed += g.n;
        if (count_expired)
            atomic_fetch_add(&c->expired, g.n);
        rd_cache_gone_finish(c, &g);
    }
    return removed;
}

static bool pred_pattern(const struct rd_cache_entry *e, const void *pattern)
{
    return key_matches(e, pattern);
}

static bool pred_model(const struct rd_cache_entry *e, const void *model)
{
    return strcmp(e->model, model) == 0;
}

static bool pred_expired(const struct rd_cache_entry *e, const void *now)
{
    return rd_cache_entry_is_expired(e, *(const int64_t *)now);
}

size_t rd_cache_delete_pattern(struct rd_cache *c, const char *pattern)
{
    return remove_where(c, pred_pattern, pattern, false);
}

size_t rd_cache_delete_model(struct rd_cache *c, const char *model)
{
    return model ? remove_where(c, pred_model, model, false) : 0;
}

size_t rd_cache_purge_expired(struct rd_cache *c)
{
    int64_t now = rd_cache_now(c);
    return remove_where(c, pred_expired, &now, true);
}

bool rd_cache_delete_key(struct rd_cache *c, const uint8_t key[RD_CACHE_KEY_LEN])
{
    struct rd_cache_shard *s = &c->shards[key[0] % RD_CACHE_SHARDS];
    struct rd_cache_gone g;
    rd_cache_gone_init(&g);
    rd_cache_shard_lock(s);
    struct rd_cache_entry *e = rd_cache_table_find(s, key);
    if (e) {
        rd_cache_table_remove(c, s, e);
        rd_cache_gone_add(&g, e);
    }
    rd_cache_shard_unlock(s);
    bool found = g.n > 0;
    rd_cache_gone_finish(c, &g);
    return found;
}

/* Whether e is more recent than best (created, then last used). */
static bool more_recent(const struct rd_cache_entry *e, const struct rd_cache_entry *best)
{
    if (!best)
        return true;
    if (e->created_ms != best->created_ms)
        return e->created_ms > best->created_ms;
    return atomic_load(&e->access) > atomic_load(&best->access);
}

struct rd_cache_entry *rd_cache_closest(struct rd_cache *c, const char *path, const char *model)
{
    struct rd_cache_entry *best = NULL;
    int64_t now = rd_cache_now(c);
    for (size_t i = 0; i < RD_CACHE_SHARDS; i++) {
        struct rd_cache_shard *s = &c->shards[i];
        rd_cache_shard_lock(s);
        for (struct rd_cache_entry *e = s->lru_head; e; e = e->lru_next) {
            if (rd_cache_entry_is_expired(e, now) || strcmp(e->path, path ? path : "") != 0 ||
                strcmp(e->model, model ? model : "") != 0 || !more_recent(e, best))
                continue;
            /* The previous best may have left its table since: this is then
             * its last reference, and freeing takes no cache lock. */
            rd_cache_entry_unref(best);
            best = rd_cache_entry_ref(e);
        }
        rd_cache_shard_unlock(s);
    }
    return best;
}
