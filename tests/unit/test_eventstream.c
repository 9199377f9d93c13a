/* Tests for src/util/eventstream.c, the AWS event-stream codec Bedrock's
 * streams use. The reference frames below were produced by the AWS SDK's
 * own codec (EventStreamCodec of @smithy/core 3.x, as installed with
 * @aws-sdk/client-bedrock-runtime 3.1164.0 in tests/e2e/node_modules), so
 * they check the decoder and the encoder against an independent
 * implementation, not against each other. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include "util/err.h"
#include "util/eventstream.h"

/* A converse-stream contentBlockDelta event. */
static const char M1[] =
    "0000009400000057b4ab9aee0b3a6576656e742d74797065070011636f6e74656e74426c6f636b44656c74610d3a636f6e74656e74"
    "2d747970650700106170706c69636174696f6e2f6a736f6e0d3a6d6573736167652d747970650700056576656e747b22636f6e7465"
    "6e74426c6f636b496e646578223a302c2264656c7461223a7b2274657874223a224869227d7d1f944657";
/* One header of every type (t f b s i l by st ts u), payload "x". */
static const char M2[] =
    "00000063000000523ed5e22c017400016601016202fe017303fed4016904075bcd15016c05fffffffed5fa0e000262790600030001"
    "ff02737407000368c3a9027473080000018bcfe5687b0175090123456789abcdef0123456789abcdef7820fedd8f";
/* A throttlingException exception frame. */
static const char M3[] =
    "00000090000000618e91a9b70f3a657863657074696f6e2d747970650700137468726f74746c696e67457863657074696f6e0d3a63"
    "6f6e74656e742d747970650700106170706c69636174696f6e2f6a736f6e0d3a6d6573736167652d74797065070009657863657074"
    "696f6e7b226d657373616765223a22546f6f206d616e79207265717565737473227de67f8005";

static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = strlen(hex) / 2;
    assert_true(n <= cap);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
    return n;
}

/* ---- recording decoded messages ---- */

struct rec {
    struct rd_buf log; /* "[type|payload]" per message */
    int n;
    int stop_at;
};

static int on_msg(void *ud, const struct rd_es_msg *m)
{
    struct rec *r = ud;
    const char *t = NULL;
    size_t tn = 0;
    if (!rd_es_header_string(m, ":event-type", &t, &tn) && !rd_es_header_string(m, ":exception-type", &t, &tn)) {
        t = "?";
        tn = 1;
    }
    assert_int_equal(rd_buf_append(&r->log, "[", 1), 0);
    assert_int_equal(rd_buf_append(&r->log, t, tn), 0);
    assert_int_equal(rd_buf_append(&r->log, "|", 1), 0);
    assert_int_equal(rd_buf_append(&r->log, m->payload, m->payload_len), 0);
    assert_int_equal(rd_buf_append(&r->log, "]", 1), 0);
    r->n++;
    return r->stop_at && r->n == r->stop_at ? 7 : 0;
}

static void feed_split(const uint8_t *p, size_t n, size_t cut, struct rec *r)
{
    struct rd_es_decoder d;
    rd_es_decoder_init(&d, 0);
    /* Each piece in its own heap block, so ASan sees a read past it. */
    uint8_t *a = malloc(cut ? cut : 1), *b = malloc(n - cut ? n - cut : 1);
    memcpy(a, p, cut);
    memcpy(b, p + cut, n - cut);
    assert_int_equal(rd_es_decoder_feed(&d, a, cut, on_msg, r), 0);
    assert_int_equal(rd_es_decoder_feed(&d, b, n - cut, on_msg, r), 0);
    assert_true(rd_es_decoder_at_boundary(&d));
    free(a);
    free(b);
    rd_es_decoder_free(&d);
}

static void test_decode_sdk_frames(void **state)
{
    (void)state;
    uint8_t buf[512];
    size_t n = unhex(M1, buf, sizeof buf);
    struct rd_es_msg m;
    assert_int_equal(rd_es_decode(buf, n, 0, &m), (int)n);
    const char *v;
    size_t vn;
    assert_true(rd_es_header_string(&m, ":event-type", &v, &vn));
    assert_int_equal(vn, 17);
    assert_memory_equal(v, "contentBlockDelta", 17);
    assert_true(rd_es_header_string(&m, ":message-type", &v, &vn));
    assert_memory_equal(v, "event", 5);
    assert_true(rd_es_header_string(&m, ":content-type", &v, &vn));
    assert_memory_equal(v, "application/json", 16);
    assert_false(rd_es_header_string(&m, ":exception-type", &v, &vn));
    const char body[] = "{\"contentBlockIndex\":0,\"delta\":{\"text\":\"Hi\"}}";
    assert_int_equal(m.payload_len, sizeof body - 1);
    assert_memory_equal(m.payload, body, sizeof body - 1);

    n = unhex(M3, buf, sizeof buf);
    assert_int_equal(rd_es_decode(buf, n, 0, &m), (int)n);
    assert_true(rd_es_header_string(&m, ":exception-type", &v, &vn));
    assert_memory_equal(v, "throttlingException", 19);
    assert_true(rd_es_header_string(&m, ":message-type", &v, &vn));
    assert_memory_equal(v, "exception", 9);
}

static void test_header_types(void **state)
{
    (void)state;
    uint8_t buf[512];
    size_t n = unhex(M2, buf, sizeof buf);
    struct rd_es_msg m;
    assert_int_equal(rd_es_decode(buf, n, 0, &m), (int)n);
    assert_int_equal(m.payload_len, 1);
    assert_int_equal(m.payload[0], 'x');
    struct {
        const char *name;
        enum rd_es_type type;
        int64_t i;
        const char *bytes;
        size_t n;
    } want[] = {
        {"t", RD_ES_TRUE, 1, NULL, 0},
        {"f", RD_ES_FALSE, 0, NULL, 0},
        {"b", RD_ES_BYTE, -2, NULL, 0},
        {"s", RD_ES_SHORT, -300, NULL, 0},
        {"i", RD_ES_INT, 123456789, NULL, 0},
        {"l", RD_ES_LONG, -5000000000LL, NULL, 0},
        {"by", RD_ES_BYTES, 0, "\x00\x01\xff", 3},
        {"st", RD_ES_STRING, 0, "h\xc3\xa9", 3},
        {"ts", RD_ES_TIMESTAMP, 1700000000123LL, NULL, 0},
        {"u", RD_ES_UUID, 0, "\x01\x23\x45\x67\x89\xab\xcd\xef\x01\x23\x45\x67\x89\xab\xcd\xef", 16},
    };
    size_t off = 0, i = 0;
    struct rd_es_header h;
    while (rd_es_header_next(&m, &off, &h) == 1) {
        assert_true(i < sizeof want / sizeof want[0]);
        assert_int_equal(h.name_len, strlen(want[i].name));
        assert_memory_equal(h.name, want[i].name, h.name_len);
        assert_int_equal(h.type, want[i].type);
        if (want[i].bytes) {
            assert_int_equal(h.n, want[i].n);
            assert_memory_equal(h.p, want[i].bytes, h.n);
        } else {
            assert_true(h.i == want[i].i);
        }
        i++;
    }
    assert_int_equal(i, sizeof want / sizeof want[0]);
    /* A header that is not a string is not found as one. */
    const char *v;
    size_t vn;
    assert_false(rd_es_header_string(&m, "i", &v, &vn));
    assert_true(rd_es_header_string(&m, "st", &v, &vn));

    /* The encoder writes the same bytes as the SDK for every type. */
    struct rd_es_header_in in[] = {
        {.name = "t", .type = RD_ES_TRUE},
        {.name = "f", .type = RD_ES_FALSE},
        {.name = "b", .type = RD_ES_BYTE, .i = -2},
        {.name = "s", .type = RD_ES_SHORT, .i = -300},
        {.name = "i", .type = RD_ES_INT, .i = 123456789},
        {.name = "l", .type = RD_ES_LONG, .i = -5000000000LL},
        {.name = "by", .type = RD_ES_BYTES, .p = "\x00\x01\xff", .n = 3},
        {.name = "st", .type = RD_ES_STRING, .p = "h\xc3\xa9", .n = 3},
        {.name = "ts", .type = RD_ES_TIMESTAMP, .i = 1700000000123LL},
        {.name = "u", .type = RD_ES_UUID, .p = want[9].bytes, .n = 16},
    };
    struct rd_buf out;
    rd_buf_init(&out, 0);
    assert_int_equal(rd_es_encode(&out, in, sizeof in / sizeof in[0], "x", 1), 0);
    assert_int_equal(out.len, n);
    assert_memory_equal(out.data, buf, n);
    rd_buf_free(&out);
}

static void test_encode_matches_sdk(void **state)
{
    (void)state;
    uint8_t want[512];
    struct rd_buf out;
    rd_buf_init(&out, 0);
    const char body[] = "{\"contentBlockIndex\":0,\"delta\":{\"text\":\"Hi\"}}";
    assert_int_equal(rd_es_encode_event(&out, false, "contentBlockDelta", "application/json", body, sizeof body - 1),
                     0);
    size_t n = unhex(M1, want, sizeof want);
    assert_int_equal(out.len, n);
    assert_memory_equal(out.data, want, n);

    rd_buf_reset(&out);
    const char exc[] = "{\"message\":\"Too many requests\"}";
    assert_int_equal(rd_es_encode_event(&out, true, "throttlingException", "application/json", exc, sizeof exc - 1), 0);
    n = unhex(M3, want, sizeof want);
    assert_int_equal(out.len, n);
    assert_memory_equal(out.data, want, n);
    rd_buf_free(&out);
}

static void test_round_trip(void **state)
{
    (void)state;
    struct rd_buf out;
    rd_buf_init(&out, 0);
    /* Payloads of many sizes, including empty and binary. */
    static uint8_t payload[70000];
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (uint8_t)(i * 131 + 7);
    const size_t sizes[] = {0, 1, 15, 16, 255, 256, 65535, 65536, sizeof payload};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        rd_buf_reset(&out);
        char big[65535];
        memset(big, 'v', sizeof big);
        struct rd_es_header_in h[] = {
            {.name = ":event-type", .type = RD_ES_STRING, .p = "chunk", .n = 5},
            {.name = "big", .type = RD_ES_STRING, .p = big, .n = k % 2 ? sizeof big : 0},
        };
        assert_int_equal(rd_es_encode(&out, h, 2, payload, sizes[k]), 0);
        struct rd_es_msg m;
        assert_int_equal(rd_es_decode((const uint8_t *)out.data, out.len, 0, &m), (int)out.len);
        assert_int_equal(m.payload_len, sizes[k]);
        if (sizes[k])
            assert_memory_equal(m.payload, payload, sizes[k]);
        const char *v;
        size_t vn;
        assert_true(rd_es_header_string(&m, "big", &v, &vn));
        assert_int_equal(vn, k % 2 ? sizeof big : 0);
    }
    rd_buf_free(&out);
}

/* Every single-byte change anywhere in a frame is caught by one of the two
 * CRCs, and the decoder says so rather than delivering a message. */
static void test_crc_errors_rejected(void **state)
{
    (void)state;
    uint8_t buf[512];
    size_t n = unhex(M1, buf, sizeof buf);
    for (size_t i = 0; i < n; i++) {
        for (unsigned bit = 0; bit < 8; bit++) {
            buf[i] ^= (uint8_t)(1u << bit);
            struct rd_es_msg m;
            int rc = rd_es_decode(buf, n, 0, &m);
            assert_true(rc == RD_EPROTO || rc == RD_ETOOBIG || rc == RD_EAGAIN);
            if (i < 12)
                assert_int_equal(rc, RD_EPROTO); /* the prelude CRC, before any length is trusted */
            struct rd_es_decoder d;
            rd_es_decoder_init(&d, 0);
            struct rec r = {.n = 0};
            rd_buf_init(&r.log, 0);
            int frc = rd_es_decoder_feed(&d, buf, n, on_msg, &r);
            assert_int_equal(r.n, 0);
            assert_true(frc == RD_EPROTO || (frc == 0 && !rd_es_decoder_at_boundary(&d)));
            rd_buf_free(&r.log);
            rd_es_decoder_free(&d);
            buf[i] ^= (uint8_t)(1u << bit);
        }
    }
}

static void test_split_at_every_byte(void **state)
{
    (void)state;
    uint8_t buf[1024];
    size_t n = unhex(M1, buf, sizeof buf);
    n += unhex(M2, buf + n, sizeof buf - n);
    n += unhex(M3, buf + n, sizeof buf - n);
    struct rec whole = {.n = 0};
    rd_buf_init(&whole.log, 0);
    feed_split(buf, n, n, &whole);
    assert_int_equal(whole.n, 3);
    assert_string_equal(whole.log.data, "[contentBlockDelta|{\"contentBlockIndex\":0,\"delta\":{\"text\":\"Hi\"}}][?|x]"
                                        "[throttlingException|{\"message\":\"Too many requests\"}]");
    for (size_t cut = 0; cut <= n; cut++) {
        struct rec r = {.n = 0};
        rd_buf_init(&r.log, 0);
        feed_split(buf, n, cut, &r);
        assert_int_equal(r.n, 3);
        assert_string_equal(r.log.data, whole.log.data);
        rd_buf_free(&r.log);
    }
    /* One byte at a time. */
    struct rd_es_decoder d;
    rd_es_decoder_init(&d, 0);
    struct rec r = {.n = 0};
    rd_buf_init(&r.log, 0);
    for (size_t i = 0; i < n; i++) {
        uint8_t *one = malloc(1);
        one[0] = buf[i];
        assert_int_equal(rd_es_decoder_feed(&d, one, 1, on_msg, &r), 0);
        free(one);
    }
    assert_true(rd_es_decoder_at_boundary(&d));
    assert_string_equal(r.log.data, whole.log.data);
    assert_int_equal(d.messages, 3);
    rd_buf_free(&r.log);
    rd_buf_free(&whole.log);
    rd_es_decoder_free(&d);
}

static void test_truncated(void **state)
{
    (void)state;
    uint8_t buf[512];
    size_t n = unhex(M1, buf, sizeof buf);
    for (size_t k = 0; k < n; k++) {
        struct rd_es_msg m;
        assert_int_equal(rd_es_decode(buf, k, 0, &m), RD_EAGAIN);
        struct rd_es_decoder d;
        rd_es_decoder_init(&d, 0);
        struct rec r = {.n = 0};
        rd_buf_init(&r.log, 0);
        assert_int_equal(rd_es_decoder_feed(&d, buf, k, on_msg, &r), 0);
        assert_int_equal(r.n, 0);
        assert_int_equal(rd_es_decoder_at_boundary(&d), k == 0);
        rd_buf_free(&r.log);
        rd_es_decoder_free(&d);
    }
}

static void be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* A frame with the given prelude lengths, valid CRCs and body bytes. */
static size_t forge(uint8_t *out, uint32_t total, uint32_t hlen, const uint8_t *rest, size_t rest_len)
{
    be32(out, total);
    be32(out + 4, hlen);
    be32(out + 8, (uint32_t)crc32(0, out, 8));
    if (rest_len)
        memcpy(out + 12, rest, rest_len);
    size_t n = 12 + rest_len;
    be32(out + n, (uint32_t)crc32(0, out, (uInt)n));
    return n + 4;
}

static void test_malformed_lengths_and_headers(void **state)
{
    (void)state;
    uint8_t f[256];
    struct rd_es_msg m;
    /* total below the minimum. */
    forge(f, 12, 0, NULL, 0);
    assert_int_equal(rd_es_decode(f, 16, 0, &m), RD_EPROTO);
    /* headers longer than the frame allows. */
    forge(f, 16, 1, NULL, 0);
    assert_int_equal(rd_es_decode(f, 16, 0, &m), RD_EPROTO);
    /* Over the caps: rejected from the prelude alone, nothing buffered. */
    forge(f, RD_ES_MAX_TOTAL + 1, 0, NULL, 0);
    assert_int_equal(rd_es_decode(f, 16, 0, &m), RD_ETOOBIG);
    forge(f, 1000, 0, NULL, 0);
    assert_int_equal(rd_es_decode(f, 16, 999, &m), RD_ETOOBIG);
    forge(f, RD_ES_MAX_HEADERS_LEN + 100, RD_ES_MAX_HEADERS_LEN + 1, NULL, 0);
    assert_int_equal(rd_es_decode(f, 16, 0, &m), RD_ETOOBIG);
    struct rd_es_decoder d;
    rd_es_decoder_init(&d, 1000);
    forge(f, 2000, 0, NULL, 0);
    assert_int_equal(rd_es_decoder_feed(&d, f, 16, on_msg, NULL), RD_ETOOBIG);
    assert_int_equal(rd_es_decoder_feed(&d, f, 16, on_msg, NULL), RD_ETOOBIG); /* stays failed */
    rd_es_decoder_reset(&d);
    assert_int_equal(d.err, 0);
    rd_es_decoder_free(&d);

    /* Malformed headers with correct CRCs. */
    static const struct {
        const char *what;
        uint8_t h[8];
        uint32_t n;
    } bad[] = {
        {"empty name", {0, 0}, 2},
        {"unknown type", {1, 'a', 10}, 3},
        {"name past the block", {5, 'a', 'b'}, 3},
        {"no type byte", {1, 'a'}, 2},
        {"string length past the block", {1, 'a', 7, 0, 9, 'x'}, 6},
        {"string length cut", {1, 'a', 7, 0}, 4},
        {"int cut", {1, 'a', 4, 0, 0}, 5},
        {"uuid cut", {1, 'a', 9, 1, 2, 3}, 6},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t n = forge(f, 16 + bad[i].n, bad[i].n, bad[i].h, bad[i].n);
        if (rd_es_decode(f, n, 0, &m) != RD_EPROTO)
            fail_msg("%s: accepted", bad[i].what);
    }
    /* A valid empty frame. */
    size_t n = forge(f, 16, 0, NULL, 0);
    assert_int_equal(rd_es_decode(f, n, 0, &m), 16);
    assert_int_equal(m.headers_len, 0);
    assert_int_equal(m.payload_len, 0);
}

static void test_callback_stops_feed(void **state)
{
    (void)state;
    uint8_t buf[1024];
    size_t n = unhex(M1, buf, sizeof buf);
    n += unhex(M3, buf + n, sizeof buf - n);
    struct rd_es_decoder d;
    rd_es_decoder_init(&d, 0);
    struct rec r = {.n = 0, .stop_at = 1};
    rd_buf_init(&r.log, 0);
    assert_int_equal(rd_es_decoder_feed(&d, buf, n, on_msg, &r), 7);
    assert_int_equal(r.n, 1);
    rd_buf_free(&r.log);
    rd_es_decoder_free(&d);
}

static void test_encode_errors(void **state)
{
    (void)state;
    struct rd_buf out;
    rd_buf_init(&out, 0);
    char name[300];
    memset(name, 'n', sizeof name);
    name[256] = '\0';
    struct rd_es_header_in h = {.name = name, .type = RD_ES_TRUE};
    assert_int_equal(rd_es_encode(&out, &h, 1, NULL, 0), RD_EINVAL);
    h = (struct rd_es_header_in){.name = "", .type = RD_ES_TRUE};
    assert_int_equal(rd_es_encode(&out, &h, 1, NULL, 0), RD_EINVAL);
    h = (struct rd_es_header_in){.name = "a", .type = RD_ES_STRING, .p = name, .n = 65536};
    assert_int_equal(rd_es_encode(&out, &h, 1, NULL, 0), RD_EINVAL);
    h = (struct rd_es_header_in){.name = "a", .type = (enum rd_es_type)10};
    assert_int_equal(rd_es_encode(&out, &h, 1, NULL, 0), RD_EINVAL);
    assert_int_equal(out.len, 0);
    struct rd_buf small;
    rd_buf_init(&small, 20);
    assert_int_equal(rd_es_encode_event(&small, false, "chunk", NULL, "{}", 2), RD_ETOOBIG);
    assert_int_equal(small.len, 0);
    rd_buf_free(&small);
    rd_buf_free(&out);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_sdk_frames),   cmocka_unit_test(test_header_types),
        cmocka_unit_test(test_encode_matches_sdk),  cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_crc_errors_rejected), cmocka_unit_test(test_split_at_every_byte),
        cmocka_unit_test(test_truncated),           cmocka_unit_test(test_malformed_lengths_and_headers),
        cmocka_unit_test(test_callback_stops_feed), cmocka_unit_test(test_encode_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
