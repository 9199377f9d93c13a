/* libFuzzer target for src/http/sse.c, the scanner the relay runs over
 * every streamed response.
 *
 * Input: byte 0 picks the cap (high bit set: max_event 1..64, else the
 * default) and where a callback stops the feed; bytes 1-2 pick a split
 * point; the rest is the stream. The stream is fed whole, in two pieces at
 * the split point, in pseudo-random pieces seeded from the input and one byte
 * at a time, each piece in its own exact-size heap block so AddressSanitizer
 * flags a read past it. The target traps when:
 *  - the feedings disagree on the events (name, data, id), the dispatched
 *    and dropped counts or rd_sse_at_boundary: the result must not depend on
 *    how the network cut the stream;
 *  - with the default cap, the events differ from a whole-stream reference
 *    implementation of the WHATWG algorithm written here;
 *  - an event breaks what the header promises: data + name within
 *    max_event, no CR or LF in a name or id, no CR in data, no NUL in an id;
 *  - a callback's non-zero return is not what the feed returns, or events
 *    keep coming after it;
 *  - rd_sse_reset does not give a scanner that behaves like a new one;
 *  - stopping the feed after every event and going on from the end it
 *    reports (rd_sse.end) gives other events, or an end outside the piece
 *    (the relay's event seam depends on both). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/sse.h"
#include "util/buf.h"
#include "check.h"


enum feed_mode { FEED_ALL, FEED_SPLIT, FEED_RANDOM, FEED_BYTES, FEED_STOP_EACH };

struct outcome {
    uint64_t digest; /* over every event, in order */
    uint64_t events, dropped, seen;
    bool at_boundary;
};

struct sink {
    struct outcome *out;
    size_t max_event;
    uint64_t stop_at; /* return 1 from this event (1-based); 0: never */
    bool stopped;
    bool stop_each;   /* return 1 from every event (the event seam's way) */
    const struct rd_sse *scanner;
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

static uint64_t mix_event(uint64_t h, const char *name, size_t nl, const char *data, size_t dl, const char *id,
                          size_t il)
{
    return mix(mix(mix(h, name, nl), data, dl), id, il);
}

static uint32_t xorshift(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

static int on_event(void *ud, const struct rd_sse_event *ev)
{
    struct sink *s = ud;
    CHECK(!s->stopped);
    CHECK(ev->event != NULL && ev->data != NULL && ev->id != NULL);
    CHECK(ev->data_len + ev->event_len <= s->max_event);
    CHECK(memchr(ev->event, '\r', ev->event_len) == NULL && memchr(ev->event, '\n', ev->event_len) == NULL);
    CHECK(memchr(ev->id, '\r', ev->id_len) == NULL && memchr(ev->id, '\n', ev->id_len) == NULL);
    CHECK(memchr(ev->id, '\0', ev->id_len) == NULL);
    CHECK(memchr(ev->data, '\r', ev->data_len) == NULL);
    s->out->digest = mix_event(s->out->digest, ev->event, ev->event_len, ev->data, ev->data_len, ev->id, ev->id_len);
    s->out->seen++;
    /* The event's end in the piece: past at least its blank line's
     * terminator, within the piece. */
    CHECK(s->scanner == NULL || (s->scanner->end >= 1 && s->scanner->end <= s->piece_len));
    if (s->stop_each)
        return 1;
    if (s->stop_at && s->out->seen == s->stop_at) {
        s->stopped = true;
        return 1;
    }
    return 0;
}

static size_t next_step(enum feed_mode mode, uint32_t *rng, size_t off, size_t split, size_t left)
{
    size_t step = left;
    if (mode == FEED_SPLIT && off < split)
        step = split - off;
    else if (mode == FEED_RANDOM)
        step = 1 + xorshift(rng) % 37u;
    else if (mode == FEED_BYTES)
        step = 1;
    return step < left ? step : left;
}

/* Feeds p[0..n) into s (already initialised) and returns what came out. */
static struct outcome feed(struct rd_sse *s, size_t max_event, const uint8_t *p, size_t n, enum feed_mode mode,
                           size_t split, uint32_t seed)
{
    struct outcome out = {.digest = 14695981039346656037u};
    struct sink sink = {.out = &out, .max_event = max_event, .scanner = s, .stop_each = mode == FEED_STOP_EACH};
    uint32_t rng = seed | 1u;
    size_t off = 0;
    while (off < n) {
        size_t step = next_step(mode == FEED_STOP_EACH ? FEED_RANDOM : mode, &rng, off, split, n - off);
        char *piece = malloc(step);
        CHECK(piece != NULL);
        memcpy(piece, p + off, step);
        /* FEED_STOP_EACH: every event stops the feed, which goes on from
         * the event's end (what the relay's event seam does): the events
         * must be the same as without stops. */
        size_t at = 0;
        for (;;) {
            sink.piece_len = step - at;
            int rc = rd_sse_feed(s, piece + at, step - at, on_event, &sink);
            if (rc == 0)
                break;
            CHECK(rc == 1 && sink.stop_each);
            at += s->end;
            CHECK(at <= step);
        }
        free(piece);
        off += step;
    }
    sink.scanner = NULL;
    CHECK(rd_sse_feed(s, NULL, 0, on_event, &sink) == 0); /* an empty read changes nothing */
    out.events = s->events;
    out.dropped = s->dropped;
    out.at_boundary = rd_sse_at_boundary(s);
    CHECK(out.events == out.seen);
    return out;
}

static struct outcome run(size_t max_event, const uint8_t *p, size_t n, enum feed_mode mode, size_t split,
                          uint32_t seed)
{
    struct rd_sse s;
    rd_sse_init(&s, max_event);
    struct outcome out = feed(&s, max_event, p, n, mode, split, seed);
    rd_sse_free(&s);
    return out;
}

static bool same(struct outcome a, struct outcome b)
{
    return a.digest == b.digest && a.events == b.events && a.dropped == b.dropped && a.at_boundary == b.at_boundary;
}

/* The WHATWG algorithm over the whole stream, without a cap: the digest and
 * count of its events. */
static void ref_line(const char *p, size_t n, struct rd_buf *data, struct rd_buf *name, struct rd_buf *id,
                     struct outcome *out)
{
    if (n == 0) {
        if (data->len > 0) {
            out->digest = mix_event(out->digest, name->data ? name->data : "", name->len, data->data, data->len - 1,
                                    id->data ? id->data : "", id->len);
            out->events++;
        }
        rd_buf_reset(data);
        rd_buf_reset(name);
        return;
    }
    if (p[0] == ':')
        return;
    const char *colon = memchr(p, ':', n);
    size_t fl = colon ? (size_t)(colon - p) : n;
    const char *v = colon ? colon + 1 : p + n;
    size_t vl = colon ? n - fl - 1 : 0;
    if (vl > 0 && v[0] == ' ') {
        v++;
        vl--;
    }
    if (fl == 4 && memcmp(p, "data", 4) == 0) {
        CHECK(rd_buf_append(data, v, vl) == 0 && rd_buf_append(data, "\n", 1) == 0);
    } else if (fl == 5 && memcmp(p, "event", 5) == 0) {
        rd_buf_reset(name);
        CHECK(rd_buf_append(name, v, vl) == 0);
    } else if (fl == 2 && memcmp(p, "id", 2) == 0 && memchr(v, '\0', vl) == NULL && vl <= 1024) {
        rd_buf_reset(id); /* the scanner ignores ids over 1 KiB (documented) */
        CHECK(rd_buf_append(id, v, vl) == 0);
    }
}

static struct outcome reference(const char *p, size_t n)
{
    struct outcome out = {.digest = 14695981039346656037u};
    struct rd_buf data, name, id;
    rd_buf_init(&data, 0);
    rd_buf_init(&name, 0);
    rd_buf_init(&id, 0);
    size_t i = n >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
    while (i < n) {
        size_t j = i;
        while (j < n && p[j] != '\r' && p[j] != '\n')
            j++;
        if (j == n)
            break;
        ref_line(p + i, j - i, &data, &name, &id, &out);
        if (p[j] == '\r' && j + 1 < n && p[j + 1] == '\n')
            j++;
        i = j + 1;
    }
    rd_buf_free(&data);
    rd_buf_free(&name);
    rd_buf_free(&id);
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3 || size > 256u * 1024u)
        return 0;
    size_t max_event = (data[0] & 0x80) ? 1u + (data[0] & 0x3fu) : 1024u * 1024u;
    const uint8_t *p = data + 3;
    size_t n = size - 3;
    size_t split = ((size_t)data[1] << 8 | data[2]) % (n + 1);
    uint32_t seed = (uint32_t)mix(0, data, size);

    struct outcome all = run(max_event, p, n, FEED_ALL, 0, seed);
    CHECK(same(all, run(max_event, p, n, FEED_SPLIT, split, seed)));
    CHECK(same(all, run(max_event, p, n, FEED_RANDOM, 0, seed)));
    if (n <= 8192)
        CHECK(same(all, run(max_event, p, n, FEED_BYTES, 0, seed)));
    CHECK(same(all, run(max_event, p, n, FEED_STOP_EACH, 0, seed)));

    if (!(data[0] & 0x80)) {
        struct outcome ref = reference((const char *)p, n);
        CHECK(ref.digest == all.digest && ref.events == all.events && all.dropped == 0);
    }

    /* a callback stopping at the k-th event stops the feed there */
    uint64_t k = 1u + (data[0] & 0x3u);
    if (all.events >= k) {
        struct rd_sse s;
        rd_sse_init(&s, max_event);
        struct outcome out = {.digest = 14695981039346656037u};
        struct sink sink = {.out = &out, .max_event = max_event, .stop_at = k};
        CHECK(rd_sse_feed(&s, (const char *)p, n, on_event, &sink) == 1);
        CHECK(out.seen == k && s.events == k);
        rd_sse_free(&s);
    }

    /* reset: the same scanner, dirtied by the stream, then reset, behaves
     * like a new one on the stream again */
    struct rd_sse s;
    rd_sse_init(&s, max_event);
    (void)feed(&s, max_event, p, n, FEED_SPLIT, split, seed);
    rd_sse_reset(&s);
    CHECK(rd_sse_at_boundary(&s) && s.events == 0 && s.dropped == 0);
    CHECK(same(all, feed(&s, max_event, p, n, FEED_ALL, 0, seed)));
    rd_sse_free(&s);
    return 0;
}
