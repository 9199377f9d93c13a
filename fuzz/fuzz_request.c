/* libFuzzer target for src/http/parser.c.
 *
 * Each input is parsed three times, the way http/server.c drives the parser
 * (EV_HEAD: look at the head and feed on; EV_MESSAGE: next() and feed on;
 * error: stop): all at once, one byte at a time, and in pseudo-random chunks
 * seeded from the input. Every chunk is copied into an exact-size heap block
 * so AddressSanitizer flags any read past len. Besides memory errors, the
 * target traps when:
 *  - a feed without an event leaves bytes unconsumed, or the loop stalls;
 *  - a finished request breaks an invariant (unterminated strings, a body
 *    over its cap, an unexpected status);
 *  - the three feeding modes disagree on the requests parsed or the error
 *    status: parsing must not depend on how the bytes were split. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/parser.h"
#include "util/err.h"
#include "check.h"

#define FUZZ_MAX_HEAD 1024u
#define FUZZ_MAX_BODY 4096u
#define FUZZ_SMALL_BODY 512u /* set after EV_HEAD on every other message */

enum feed_mode { FEED_ALL, FEED_BYTES, FEED_RANDOM };

struct outcome {
    uint64_t digest; /* over every completed request */
    int messages;
    int status; /* error status, 0 if none */
    bool in_message;
};


static uint64_t mix(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211u;
    }
    return h;
}

static uint64_t mix_str(uint64_t h, const char *s)
{
    size_t n = strlen(s);
    h = mix(h, &n, sizeof n);
    return mix(h, s, n);
}

static uint32_t xorshift(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

/* Checks a request at EV_HEAD and returns its digest at EV_MESSAGE. */
static uint64_t check_request(const struct rd_http_request *r, uint64_t h)
{
    h = mix_str(h, r->method);
    h = mix_str(h, r->target);
    h = mix_str(h, r->path);
    h = mix_str(h, r->query);
    CHECK(r->version_major == 1 && (r->version_minor == 0 || r->version_minor == 1));
    CHECK(r->path[0] != '\0');
    for (size_t i = 0; i < r->headers.n; i++) {
        const struct rd_hdr *f = &r->headers.v[i];
        CHECK(strlen(f->name) == f->name_len && f->name_len > 0);
        CHECK(strlen(f->value) == f->value_len);
        h = mix_str(mix_str(h, f->name), f->value);
    }
    CHECK(!(r->chunked && r->content_length >= 0));
    int flags = r->chunked | r->keep_alive << 1 | r->expect_continue << 2;
    h = mix(h, &flags, sizeof flags);
    return mix(h, &r->content_length, sizeof r->content_length);
}

static size_t next_step(enum feed_mode mode, uint32_t *rng, size_t left)
{
    size_t step = left;
    if (mode == FEED_BYTES)
        step = 1;
    else if (mode == FEED_RANDOM)
        step = 1 + xorshift(rng) % 97u;
    return step < left ? step : left;
}

static bool status_ok(int status)
{
    return status == 400 || status == 413 || status == 431 || status == 501 || status == 505;
}

static struct outcome run(const uint8_t *data, size_t size, enum feed_mode mode, uint32_t seed)
{
    struct outcome out = {.digest = 14695981039346656037u};
    struct rd_http_parser *p = rd_http_parser_new(FUZZ_MAX_HEAD, FUZZ_MAX_BODY);
    uint32_t rng = seed | 1u;
    size_t off = 0, budget = 2 * size + 16;
    while (budget-- > 0) {
        size_t n = next_step(mode, &rng, size - off);
        char *chunk = malloc(n ? n : 1);
        CHECK(chunk != NULL);
        if (n)
            memcpy(chunk, data + off, n);
        enum rd_http_event ev = RD_HTTP_EV_NONE;
        int rc = rd_http_parser_feed(p, n ? chunk : NULL, n, &ev);
        free(chunk);
        if (rc < 0) {
            out.status = rd_http_parser_status(p);
            CHECK(status_ok(out.status) && rd_http_parser_errmsg(p) != NULL);
            CHECK(rc == ((out.status == 413 || out.status == 431) ? RD_ETOOBIG : RD_EPROTO));
            CHECK(rd_http_parser_feed(p, "x", 1, &ev) == rc); /* sticky */
            break;
        }
        CHECK((size_t)rc <= n);
        off += (size_t)rc;
        struct rd_http_request *r = rd_http_parser_request(p);
        if (ev == RD_HTTP_EV_HEAD) {
            CHECK(rd_http_parser_head_done(p));
            (void)check_request(r, 0);
            if (out.messages % 2 == 1)
                rd_http_parser_set_max_body(p, FUZZ_SMALL_BODY);
            continue;
        }
        if (ev == RD_HTTP_EV_MESSAGE) {
            CHECK(!rd_http_parser_in_message(p));
            CHECK(r->body.len <= (out.messages % 2 ? FUZZ_SMALL_BODY : FUZZ_MAX_BODY));
            CHECK(r->content_length < 0 || (uint64_t)r->content_length == r->body.len);
            out.digest = check_request(r, out.digest);
            out.digest = mix(out.digest, r->body.data ? r->body.data : "", r->body.len);
            out.messages++;
            rd_http_parser_next(p);
            continue;
        }
        CHECK((size_t)rc == n);
        if (off == size)
            break;
    }
    CHECK(budget != (size_t)-1); /* the loop must end by itself */
    out.in_message = rd_http_parser_in_message(p);
    rd_http_parser_free(p);
    return out;
}

static bool same(struct outcome a, struct outcome b)
{
    /* in_message after an error says only whether the failing byte came
     * before or after the first byte of a method, so it is not compared */
    return a.digest == b.digest && a.messages == b.messages && a.status == b.status &&
           (a.status != 0 || a.in_message == b.in_message);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 64u * 1024u)
        return 0;
    uint32_t seed = (uint32_t)mix(14695981039346656037u, data, size);
    struct outcome all = run(data, size, FEED_ALL, seed);
    CHECK(same(all, run(data, size, FEED_RANDOM, seed)));
    if (size <= 8192)
        CHECK(same(all, run(data, size, FEED_BYTES, seed)));
    return 0;
}
