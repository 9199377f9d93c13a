/* A cache entry's own storage (cache.h): its head, its body chunks, its
 * stream marks, its followers, and its key's text.
 *
 * Publication. Only the fill's thread writes an entry while it is FILLING.
 * It copies body bytes into the tail of the last chunk (or into new chunks)
 * outside any lock, because no reader looks past the published length, and
 * then, under e->mu, adds them to the chunk's len, links new chunks and
 * raises e->len. A reader that took e->len under e->mu (rd_cache_peek)
 * therefore sees every byte and link below it. While the entry fills, the
 * last chunk's len still moves: a reader bounds each chunk by its cap and
 * by the published length instead (chunks fill to cap before the next one
 * starts). Once the entry is COMPLETE nothing of it changes but its hit
 * count, access time and expiry.
 *
 * Followers. The wake loop holds e->mu while it calls each wake, and
 * rd_cache_unfollow takes e->mu: so when rd_cache_unfollow returns, no wake
 * of that follower is running or will run, and the follower may free
 * itself. wake only calls uv_async_send, which is safe under a lock and
 * never calls back into the cache. */
#include <stdlib.h>
#include <string.h>

#include "cache/cache_int.h"
#include "util/err.h"
#include "util/hash.h"
#include "util/mem.h"

void rd_cache_entry_lock(struct rd_cache_entry *e)
{
    if (pthread_mutex_lock(&e->mu) != 0)
        abort();
}

void rd_cache_entry_unlock(struct rd_cache_entry *e)
{
    if (pthread_mutex_unlock(&e->mu) != 0)
        abort();
}

static void copy_model(char *dst, const char *src)
{
    size_t n = src ? strnlen(src, RD_CACHE_MODEL_MAX - 1) : 0;
    if (n)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

struct rd_cache_entry *rd_cache_entry_new(const uint8_t key[RD_CACHE_KEY_LEN], const char *model, enum rd_req_kind kind,
                                          const char *method, const char *path)
{
    struct rd_cache_entry *e = rd_calloc(1, sizeof(*e));
    atomic_init(&e->refs, 1);
    memcpy(e->key, key, RD_CACHE_KEY_LEN);
    copy_model(e->model, model);
    e->kind = kind;
    /* Never NULL, so rd_cache_closest and exports compare and print them. */
    e->method = rd_strdup(method ? method : "");
    e->path = rd_strdup(path ? path : "");
    atomic_init(&e->hits, 0);
    atomic_init(&e->access, 0);
    if (pthread_mutex_init(&e->mu, NULL) != 0)
        abort();
    e->state = RD_CACHE_FILLING;
    return e;
}

struct rd_cache_entry *rd_cache_entry_ref(struct rd_cache_entry *e)
{
    atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
    return e;
}

static void entry_free(struct rd_cache_entry *e)
{
    struct rd_cache_chunk *ch = e->first;
    while (ch) {
        struct rd_cache_chunk *next = ch->next;
        free(ch);
        ch = next;
    }
    free(e->hdrs); /* one block: the array, then its strings */
    free(e->marks);
    free(e->method);
    free(e->path);
    pthread_mutex_destroy(&e->mu);
    free(e);
}

void rd_cache_entry_unref(struct rd_cache_entry *e)
{
    /* acq_rel: the last owner sees every write the others made before
     * they let go. */
    if (e && atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) == 1)
        entry_free(e);
}

/* The size of one block holding n headers and their NUL-terminated
 * strings; false on overflow. */
static bool hdr_block_size(const struct rd_cache_hdr *h, size_t n, size_t *out)
{
    size_t total;
    if (__builtin_mul_overflow(n, sizeof(*h), &total))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (__builtin_add_overflow(total, (size_t)h[i].name_len, &total) ||
            __builtin_add_overflow(total, (size_t)h[i].value_len, &total) ||
            __builtin_add_overflow(total, (size_t)2, &total))
            return false;
    }
    *out = total;
    return true;
}

static const char *copy_str(char **at, const char *s, uint32_t len)
{
    char *dst = *at;
    if (len)
        memcpy(dst, s, len);
    dst[len] = '\0';
    *at = dst + len + 1;
    return dst;
}

/* One block of size bytes: the n headers, then their strings. */
static struct rd_cache_hdr *hdrs_copy(const struct rd_cache_hdr *hdrs, size_t n, size_t size)
{
    struct rd_cache_hdr *copy = rd_malloc(size);
    char *at = (char *)(copy + n);
    for (size_t i = 0; i < n; i++) {
        copy[i].name_len = hdrs[i].name_len;
        copy[i].value_len = hdrs[i].value_len;
        copy[i].name = copy_str(&at, hdrs[i].name, hdrs[i].name_len);
        copy[i].value = copy_str(&at, hdrs[i].value, hdrs[i].value_len);
    }
    return copy;
}

int rd_cache_fill_head(struct rd_cache_entry *e, int status, const struct rd_cache_hdr *hdrs, size_t n, bool stream)
{
    size_t size;
    if (n && !hdrs)
        return RD_EINVAL;
    if (!hdr_block_size(hdrs, n, &size))
        return RD_ETOOBIG;
    struct rd_cache_hdr *copy = n ? hdrs_copy(hdrs, n, size) : NULL;
    rd_cache_entry_lock(e);
    if (e->has_head || e->state != RD_CACHE_FILLING) {
        rd_cache_entry_unlock(e);
        free(copy);
        return RD_ESTATE;
    }
    e->status = status;
    e->hdrs = copy;
    e->nhdrs = n;
    e->stream = stream;
    e->has_head = true;
    rd_cache_entry_unlock(e);
    rd_cache_entry_wake(e);
    return 0;
}

static struct rd_cache_chunk *chunk_new(size_t cap)
{
    struct rd_cache_chunk *ch = rd_malloc(sizeof(*ch) + cap);
    ch->next = NULL;
    ch->len = 0;
    ch->cap = cap;
    return ch;
}

static size_t next_cap(const struct rd_cache_chunk *prev)
{
    if (!prev)
        return RD_CACHE_CHUNK_MIN;
    return prev->cap >= RD_CACHE_CHUNK_MAX / 2 ? RD_CACHE_CHUNK_MAX : prev->cap * 2;
}

/* Wakes the followers; e->mu is held. */
static void wake_locked(struct rd_cache_entry *e)
{
    for (struct rd_cache_follow *f = e->follows; f; f = f->next)
        f->wake(f->ud);
}

void rd_cache_entry_wake(struct rd_cache_entry *e)
{
    rd_cache_entry_lock(e);
    wake_locked(e);
    rd_cache_entry_unlock(e);
}

void rd_cache_entry_append(struct rd_cache_entry *e, const char *p, size_t n)
{
    /* e->last and its len are written by this thread only, so reading
     * them here needs no lock. */
    struct rd_cache_chunk *last = e->last, *head = NULL, *tail = NULL, *prev = last;
    size_t room = last ? last->cap - last->len : 0;
    size_t in_last = n < room ? n : room;
    if (in_last)
        memcpy(last->data + last->len, p, in_last);
    for (size_t done = in_last; done < n;) {
        struct rd_cache_chunk *ch = chunk_new(next_cap(prev));
        size_t k = n - done < ch->cap ? n - done : ch->cap;
        memcpy(ch->data, p + done, k);
        ch->len = k;
        done += k;
        if (tail)
            tail->next = ch;
        else
            head = ch;
        tail = prev = ch;
    }
    rd_cache_entry_lock(e);
    if (last)
        last->len += in_last;
    if (head) {
        if (last)
            last->next = head;
        else
            e->first = head;
        e->last = tail;
    }
    e->len += n;
    e->relayed = true;
    wake_locked(e);
    rd_cache_entry_unlock(e);
}

int rd_cache_fill_mark(struct rd_cache_entry *e, uint64_t end, uint32_t t_ms)
{
    rd_cache_entry_lock(e);
    if (e->state != RD_CACHE_FILLING) {
        rd_cache_entry_unlock(e);
        return RD_ESTATE;
    }
    if (end > e->len || (e->nmarks > 0 && end < e->marks[e->nmarks - 1].end)) {
        rd_cache_entry_unlock(e);
        return RD_EINVAL;
    }
    /* Under e->mu because the array moves when it grows. */
    if (e->nmarks == e->cap_marks) {
        e->cap_marks = e->cap_marks ? e->cap_marks * 2 : 16;
        e->marks = rd_realloc(e->marks, e->cap_marks * sizeof(*e->marks));
    }
    e->marks[e->nmarks++] = (struct rd_cache_mark){.end = end, .t_ms = t_ms};
    rd_cache_entry_unlock(e);
    return 0;
}

bool rd_cache_follow(struct rd_cache_entry *e, struct rd_cache_follow *f)
{
    rd_cache_entry_lock(e);
    bool filling = e->state == RD_CACHE_FILLING;
    if (filling) {
        f->next = e->follows;
        e->follows = f;
    }
    rd_cache_entry_unlock(e);
    return filling;
}

void rd_cache_unfollow(struct rd_cache_entry *e, struct rd_cache_follow *f)
{
    rd_cache_entry_lock(e);
    for (struct rd_cache_follow **pp = &e->follows; *pp; pp = &(*pp)->next) {
        if (*pp == f) {
            *pp = f->next;
            break;
        }
    }
    rd_cache_entry_unlock(e);
}

void rd_cache_peek(struct rd_cache_entry *e, enum rd_cache_state *state, uint64_t *len, bool *has_head)
{
    rd_cache_entry_lock(e);
    if (state)
        *state = e->state;
    if (len)
        *len = e->len;
    if (has_head)
        *has_head = e->has_head;
    rd_cache_entry_unlock(e);
}

size_t rd_cache_entry_charge(const struct rd_cache_entry *e)
{
    size_t n = sizeof(*e) + strlen(e->method) + 1 + strlen(e->path) + 1;
    size_t hdrs = 0;
    if (e->nhdrs && hdr_block_size(e->hdrs, e->nhdrs, &hdrs))
        n += hdrs;
    for (const struct rd_cache_chunk *ch = e->first; ch; ch = ch->next)
        n += sizeof(*ch) + ch->cap;
    return n + e->cap_marks * sizeof(*e->marks);
}

void rd_cache_key_text(const struct rd_cache_entry *e, char *out)
{
    size_t m = strnlen(e->model, RD_CACHE_MODEL_MAX - 1);
    memcpy(out, e->model, m);
    out[m] = ':';
    rd_hex(e->key, RD_CACHE_KEY_LEN, out + m + 1);
}

bool rd_cache_key_parse(const char *text, uint8_t key[RD_CACHE_KEY_LEN])
{
    if (!text)
        return false;
    /* The hex is the last 64 characters: models may contain ':'
     * ("ft:gpt-4o-mini:acme::id"). */
    size_t n = strlen(text);
    if (n < 2 * RD_CACHE_KEY_LEN)
        return false;
    const char *hex = text + n - 2 * RD_CACHE_KEY_LEN;
    if (n > 2 * RD_CACHE_KEY_LEN && (hex[-1] != ':' || n - 2 * RD_CACHE_KEY_LEN - 1 > RD_CACHE_MODEL_MAX - 1))
        return false;
    uint8_t out[RD_CACHE_KEY_LEN];
    for (size_t i = 0; i < RD_CACHE_KEY_LEN; i++) {
        int hi = rd_hex_value(hex[2 * i]), lo = rd_hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    memcpy(key, out, sizeof(out));
    return true;
}
