/* libFuzzer target for src/cache/cassette.c: cassette lines come from
 * files users commit and from POST .../cache/import.
 *
 * The input is one line, handed over in an exact-size heap block so
 * AddressSanitizer flags a read past its length. The target traps when:
 *  - rd_cassette_read refuses a line without saying why (empty err);
 *  - an accepted entry is not complete, has marks past its body or out of
 *    order, or a status outside 2xx;
 *  - writing an accepted entry fails or gives more than one line;
 *  - that line does not read back, or reads back to an entry that writes
 *    another line (write after read must be a fixed point: replay and
 *    export promise the same bytes). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cassette.h"
#include "check.h"
#include "util/buf.h"

static void check_entry(const struct rd_cache_entry *e)
{
    CHECK(e->state == RD_CACHE_COMPLETE && e->has_head);
    CHECK(e->status >= 200 && e->status <= 299);
    uint64_t end = 0;
    for (size_t i = 0; i < e->nmarks; i++) {
        CHECK(e->marks[i].end >= end && e->marks[i].end <= e->len);
        end = e->marks[i].end;
    }
    CHECK(e->stream || e->nmarks == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *line = malloc(size ? size : 1);
    CHECK(line != NULL);
    if (size)
        memcpy(line, data, size);
    char err[256] = "";
    struct rd_cache_entry *e = rd_cassette_read(line, size, err, sizeof err);
    free(line);
    if (e == NULL) {
        CHECK(err[0] != '\0');
        return 0;
    }
    check_entry(e);
    struct rd_buf a, b;
    rd_buf_init(&a, 0);
    rd_buf_init(&b, 0);
    CHECK(rd_cassette_write(e, &a) == 0);
    CHECK(a.len > 0 && a.data[a.len - 1] == '\n' && memchr(a.data, '\n', a.len - 1) == NULL);
    struct rd_cache_entry *again = rd_cassette_read(a.data, a.len, err, sizeof err);
    CHECK(again != NULL);
    check_entry(again);
    CHECK(rd_cassette_write(again, &b) == 0);
    CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
    rd_buf_free(&a);
    rd_buf_free(&b);
    rd_cache_entry_unref(again);
    rd_cache_entry_unref(e);
    return 0;
}
