#include "util/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/mem.h"

#define CHUNK_SIZE 4096u
/* An arena's first chunk is small: a request held for a long time (a
 * simulated hang, a slow client) keeps its arenas, and most requests fit
 * 1 KiB; one that needs more gets standard chunks, and reset keeps the
 * largest standard-or-smaller chunk, so a reused arena settles at the size
 * its requests need and does not allocate again. */
#define FIRST_CHUNK_SIZE 1024u

struct rd_arena_chunk {
    struct rd_arena_chunk *next;
    size_t used;
    size_t size;
    _Alignas(16) unsigned char data[];
};

void rd_arena_init(struct rd_arena *a)
{
    a->head = NULL;
    a->total = 0;
}

void *rd_arena_alloc(struct rd_arena *a, size_t n)
{
    size_t need = (n + 15u) & ~(size_t)15u;
    if (need < n)
        abort(); /* callers cap input sizes long before this */
    struct rd_arena_chunk *c = a->head;
    if (c == NULL || c->size - c->used < need) {
        size_t std = c == NULL ? FIRST_CHUNK_SIZE : CHUNK_SIZE;
        size_t size = need > std ? need : std;
        struct rd_arena_chunk *nc = rd_malloc(sizeof *nc + size);
        nc->used = 0;
        nc->size = size;
        if (c != NULL && need > CHUNK_SIZE) {
            /* A big one-off block goes behind the current chunk so the
             * current chunk's free space stays usable. */
            nc->next = c->next;
            c->next = nc;
        } else {
            nc->next = c;
            a->head = nc;
        }
        c = nc;
    }
    void *p = c->data + c->used;
    c->used += need;
    a->total += need;
    return p;
}

char *rd_arena_strndup(struct rd_arena *a, const char *s, size_t n)
{
    char *d = rd_arena_alloc(a, n + 1);
    if (n)
        memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

void rd_arena_reset(struct rd_arena *a)
{
    /* Keep the largest chunk no bigger than a standard one; free the rest
     * (big one-off blocks included). */
    struct rd_arena_chunk *keep = NULL;
    for (struct rd_arena_chunk *c = a->head; c; c = c->next)
        if (c->size <= CHUNK_SIZE && (keep == NULL || c->size > keep->size))
            keep = c;
    struct rd_arena_chunk *c = a->head;
    while (c) {
        struct rd_arena_chunk *next = c->next;
        if (c != keep)
            free(c);
        c = next;
    }
    if (keep) {
        keep->used = 0;
        keep->next = NULL;
    }
    a->head = keep;
    a->total = 0;
}

void rd_arena_free(struct rd_arena *a)
{
    if (a == NULL)
        return;
    struct rd_arena_chunk *c = a->head;
    while (c) {
        struct rd_arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
    a->total = 0;
}
