/* See memo.h. */
#include "cache/memo.h"

#include <stdlib.h>
#include <string.h>

#include "util/mem.h"

uint64_t rd_key_memo_hash(const char *raw, size_t n)
{
    /* 8 bytes at a time, multiply-xorshift mixing (no quality claims
     * beyond spreading slots: equality is checked on the bytes). */
    uint64_t h = 0x9e3779b97f4a7c15ull ^ (uint64_t)n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, raw + i, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    uint64_t w = 0;
    memcpy(&w, raw + i, n - i);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 29);
}

bool rd_key_memo_get(const struct rd_key_memo *m, uint64_t gen, const char *raw, size_t n, uint64_t h,
                     uint8_t key[RD_CACHE_KEY_LEN])
{
    const struct rd_key_memo_slot *s = &m->slot[h % RD_KEY_MEMO_SLOTS];
    if (s->raw == NULL || s->h != h || s->gen != gen || s->len != n || memcmp(s->raw, raw, n) != 0)
        return false;
    memcpy(key, s->key, RD_CACHE_KEY_LEN);
    return true;
}

void rd_key_memo_put(struct rd_key_memo *m, uint64_t gen, const char *raw, size_t n, uint64_t h,
                     const uint8_t key[RD_CACHE_KEY_LEN])
{
    if (n > RD_KEY_MEMO_MAX)
        return;
    struct rd_key_memo_slot *s = &m->slot[h % RD_KEY_MEMO_SLOTS];
    if (s->raw == NULL || s->len < n) {
        free(s->raw);
        s->raw = rd_malloc(n ? n : 1);
    }
    memcpy(s->raw, raw, n);
    s->len = n;
    s->h = h;
    s->gen = gen;
    memcpy(s->key, key, RD_CACHE_KEY_LEN);
}

void rd_key_memo_free(struct rd_key_memo *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < RD_KEY_MEMO_SLOTS; i++)
        free(m->slot[i].raw);
    free(m);
}
