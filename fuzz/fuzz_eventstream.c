/* libFuzzer target for src/util/eventstream.c, the AWS event-stream decoder
 * the relay runs over every Bedrock stream an upstream sends.
 *
 * Input: byte 0 picks a decoder cap (high bit set: 16..4111 bytes, else the
 * default 16 MiB); bytes 1-2 pick a split point; the rest is the stream. The
 * stream is fed whole, in two pieces at the split point, in pseudo-random
 * pieces and one byte at a time, each piece in its own exact-size heap block
 * so AddressSanitizer flags a read past it. The target traps when:
 *  - the feedings disagree on the messages, the count, the error or
 *    rd_es_decoder_at_boundary: the result must not depend on how the
 *    network cut the stream;
 *  - a delivered message does not re-encode, through rd_es_encode with the
 *    headers rd_es_header_next read, to exactly the bytes it was decoded
 *    from (a message the decoder accepts is one the encoder could write);
 *  - a message passes the cap or a header iterates past its block;
 *  - the decoder accepts anything after an error;
 *  - stopping the feed after every message and going on from the end it
 *    reports (rd_es_decoder.end) gives other messages (the event seam). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"
#include "util/eventstream.h"
#include "check.h"


enum feed_mode { FEED_ALL, FEED_SPLIT, FEED_RANDOM, FEED_BYTES, FEED_STOP_EACH };

struct outcome {
    uint64_t digest;
    uint64_t messages;
    int err;
    bool at_boundary;
};

struct sink {
    struct outcome *out;
    size_t cap;
    /* FEED_STOP_EACH: every message stops the feed, which goes on from the
     * message's end (the relay's event seam): same messages as without. */
    bool stop_each;
    const struct rd_es_decoder *d;
    size_t piece_len;
};

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    h ^= n;
    h *= 1099511628211u;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211u;
    }
    return h;
}

static int on_msg(void *ud, const struct rd_es_msg *m)
{
    struct sink *k = ud;
    size_t total = RD_ES_MIN_LEN + m->headers_len + m->payload_len;
    CHECK(total <= k->cap);
    const uint8_t *frame = m->headers - RD_ES_PRELUDE_LEN;
    k->out->digest = mix(k->out->digest, frame, total);
    k->out->messages++;

    /* Re-encode from what the iterator reads. */
    struct rd_es_header_in in[64];
    size_t nh = 0, off = 0;
    struct rd_es_header h;
    int rc;
    bool fits = true;
    while ((rc = rd_es_header_next(m, &off, &h)) == 1) {
        CHECK(off <= m->headers_len);
        if (nh == sizeof in / sizeof in[0]) {
            fits = false;
            continue;
        }
        /* Names are length-prefixed, not NUL-terminated: copy them. */
        char *name = malloc(h.name_len + 1);
        memcpy(name, h.name, h.name_len);
        name[h.name_len] = '\0';
        in[nh++] = (struct rd_es_header_in){.name = name, .type = h.type, .i = h.i, .p = h.p, .n = h.n};
        if (memchr(h.name, '\0', h.name_len))
            fits = false; /* a NUL in a name cannot go through a C string */
    }
    CHECK(rc == 0 && off == m->headers_len);
    if (fits) {
        struct rd_buf b;
        rd_buf_init(&b, 0);
        CHECK(rd_es_encode(&b, in, nh, m->payload, m->payload_len) == 0);
        CHECK(b.len == total && memcmp(b.data, frame, total) == 0);
        rd_buf_free(&b);
    }
    for (size_t i = 0; i < nh; i++)
        free((void *)in[i].name);
    CHECK(k->d->end >= 1 && k->d->end <= k->piece_len);
    return k->stop_each ? 1 : 0;
}

static int feed_piece(struct rd_es_decoder *d, const uint8_t *p, size_t n, struct sink *k)
{
    uint8_t *copy = malloc(n ? n : 1);
    if (n)
        memcpy(copy, p, n);
    size_t at = 0;
    int rc;
    for (;;) {
        k->piece_len = n - at;
        rc = rd_es_decoder_feed(d, copy + at, n - at, on_msg, k);
        if (rc != 1)
            break;
        CHECK(k->stop_each);
        at += d->end;
        CHECK(at <= n);
    }
    free(copy);
    return rc;
}

static struct outcome run(size_t cap, const uint8_t *p, size_t n, enum feed_mode mode, size_t split, uint32_t seed)
{
    struct outcome out = {.digest = 14695981039346656037u};
    struct rd_es_decoder d;
    rd_es_decoder_init(&d, cap);
    struct sink k = {.out = &out, .cap = cap, .stop_each = mode == FEED_STOP_EACH, .d = &d};
    int err = 0;
    size_t i = 0;
    bool first = true;
    while (first || i < n) {
        size_t len;
        switch (mode) {
        case FEED_ALL: len = n; break;
        case FEED_SPLIT: len = first ? split : n - i; break;
        case FEED_BYTES: len = 1; break;
        default:
            seed = seed * 1103515245u + 12345u;
            len = 1 + (seed >> 16) % 97;
            break;
        }
        if (len > n - i)
            len = n - i;
        first = false;
        int rc = feed_piece(&d, p + i, len, &k);
        if (rc < 0 && err == 0)
            err = rc;
        if (err)
            CHECK(rc == err); /* stays failed */
        i += len;
    }
    out.err = err;
    out.at_boundary = err ? true : rd_es_decoder_at_boundary(&d);
    CHECK(d.messages == out.messages);
    rd_es_decoder_free(&d);
    return out;
}

static bool same(struct outcome a, struct outcome b)
{
    return a.digest == b.digest && a.messages == b.messages && a.err == b.err && a.at_boundary == b.at_boundary;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3 || size > 256u * 1024u)
        return 0;
    size_t cap = (data[0] & 0x80) ? 16u + ((size_t)(data[0] & 0x7f) << 5) : 0;
    size_t eff_cap = cap ? cap : RD_ES_MAX_TOTAL;
    const uint8_t *p = data + 3;
    size_t n = size - 3;
    size_t split = ((size_t)data[1] << 8 | data[2]) % (n + 1);
    uint32_t seed = (uint32_t)mix(0, data, size);

    struct outcome all = run(eff_cap, p, n, FEED_ALL, 0, seed);
    CHECK(same(all, run(eff_cap, p, n, FEED_SPLIT, split, seed)));
    CHECK(same(all, run(eff_cap, p, n, FEED_RANDOM, 0, seed)));
    if (n <= 8192)
        CHECK(same(all, run(eff_cap, p, n, FEED_BYTES, 0, seed)));
    CHECK(same(all, run(eff_cap, p, n, FEED_STOP_EACH, 0, seed)));
    return 0;
}
