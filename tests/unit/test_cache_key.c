/* Tests for src/cache/canon.c and src/cache/key.c: the cache key of a
 * request. What matters to a user: two requests that could get different
 * answers never share a key (a field left out serves a wrong answer), two
 * requests that must get the same answer do (key order, whitespace,
 * escapes, stream and tracking fields, a new SigV4 signature), and two
 * tenants never share one unless the proxy is scoped "proxy". Every
 * document is copied to the very end of a heap block exactly as long as
 * the document, so AddressSanitizer flags any read past len. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cache/canon.h"
#include "cache/key.h"
#include "http/headers.h"
#include "providers/provider.h"
#include "util/arena.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/hash.h"

#define RULES(...) ((const char *const[]){__VA_ARGS__, NULL})

/* ---- canonical JSON helpers ---- */

/* rd_canon_json over doc[0..len) in an exact-size block; on success the
 * result is returned (caller frees), else NULL with *rc set. */
static char *canon_n(const char *doc, size_t len, const struct rd_canon_rules *rules, int *rc)
{
    char *p = malloc(len ? len : 1);
    assert_non_null(p);
    memcpy(p, doc, len);
    struct rd_buf out;
    rd_buf_init(&out, 0);
    *rc = rd_canon_json(p, len, rules, &out);
    free(p);
    if (*rc != 0) {
        rd_buf_free(&out);
        return NULL;
    }
    size_t n;
    return rd_buf_steal(&out, &n);
}

static void expect_canon_rules(const char *doc, const struct rd_canon_rules *rules, const char *want)
{
    int rc;
    char *got = canon_n(doc, strlen(doc), rules, &rc);
    if (got == NULL) {
        print_error("canon(%s): %s\n", doc, rd_strerror(rc));
        fail();
    }
    if (strcmp(got, want) != 0) {
        print_error("canon(%s):\n  got  %s\n  want %s\n", doc, got, want);
        free(got);
        fail();
    }
    free(got);
}

static void expect_canon(const char *doc, const char *want)
{
    expect_canon_rules(doc, NULL, want);
}

static void expect_reject_n(const char *doc, size_t len, int want)
{
    int rc;
    char *got = canon_n(doc, len, NULL, &rc);
    if (got != NULL) {
        print_error("canon(%.*s) accepted as %s\n", (int)len, doc, got);
        free(got);
        fail();
    }
    assert_int_equal(rc, want);
}

static void expect_reject(const char *doc)
{
    expect_reject_n(doc, strlen(doc), RD_EPROTO);
}

/* ---- canonical JSON ---- */

static void test_key_order_every_depth(void **state)
{
    (void)state;
    expect_canon("{\"b\":1,\"a\":{\"d\":[{\"z\":1,\"y\":{\"q\":0,\"p\":0}}],\"c\":2}}",
                 "{\"a\":{\"c\":2,\"d\":[{\"y\":{\"p\":0,\"q\":0},\"z\":1}]},\"b\":1}");
    /* bytewise on the unescaped UTF-8: "" < "a" < "aa" < "b" < "z" < "é" */
    expect_canon("{\"\\u00e9\":1,\"z\":2,\"b\":3,\"aa\":4,\"a\":5,\"\":6}",
                 "{\"\":6,\"a\":5,\"aa\":4,\"b\":3,\"z\":2,\"\xc3\xa9\":1}");
    /* arrays keep their order */
    expect_canon("[3,1,2]", "[3,1,2]");
    expect_canon("{}", "{}");
    expect_canon("[]", "[]");
    expect_canon("\"s\"", "\"s\"");
    expect_canon("null", "null");
}

static void test_whitespace(void **state)
{
    (void)state;
    expect_canon(" \t\r\n{ \"a\" :\n[ 1 ,\t2 ] , \"b\" : true , \"c\" : { } , \"d\" : [ ] }\n ",
                 "{\"a\":[1,2],\"b\":true,\"c\":{},\"d\":[]}");
    /* whitespace inside strings is content */
    expect_canon("{\"a\":\" x \"}", "{\"a\":\" x \"}");
}

static void test_string_escapes(void **state)
{
    (void)state;
    /* \u escapes equal raw UTF-8, either hex case; "\/" is "/" */
    expect_canon("\"\\u00e9\\u00E9\xc3\xa9\"", "\"\xc3\xa9\xc3\xa9\xc3\xa9\"");
    expect_canon("\"\\u0041\\/\"", "\"A/\"");
    expect_canon("\"\\u20ac\"", "\"\xe2\x82\xac\"");
    /* one escaping: quote, backslash, the short forms, \u00xx for the rest */
    expect_canon("\"\\\"\\\\\\n\\r\\t\\b\\f\\u0001\\u001F\\u0000\"",
                 "\"\\\"\\\\\\n\\r\\t\\b\\f\\u0001\\u001f\\u0000\"");
    expect_canon("\"\\u000a\"", "\"\\n\"");
    /* DEL and '/' stay raw */
    expect_canon("\"\x7f/\"", "\"\x7f/\"");
    /* keys too: an escaped key is the same key */
    expect_canon("{\"\\u0062\":1,\"a\":2}", "{\"a\":2,\"b\":1}");
}

static void test_surrogates(void **state)
{
    (void)state;
    /* a pair decodes to the raw 4-byte form */
    expect_canon("\"\\ud83d\\ude00\"", "\"\xf0\x9f\x98\x80\"");
    expect_canon("\"\\uD83D\\uDE00\"", "\"\xf0\x9f\x98\x80\"");
    expect_canon("\"\xf0\x9f\x98\x80\"", "\"\xf0\x9f\x98\x80\"");
    /* lone surrogates stay escaped, lower case */
    expect_canon("\"\\uD800\"", "\"\\ud800\"");
    expect_canon("\"\\udc00x\"", "\"\\udc00x\"");
    expect_canon("\"a\\ud83d\"", "\"a\\ud83d\"");
    /* a high one followed by anything but a low one is alone */
    expect_canon("\"\\ud800\\u0041\"", "\"\\ud800A\"");
    expect_canon("\"\\ud800\\ud800\\udc00\"", "\"\\ud800\xf0\x90\x80\x80\"");
    /* a low one then a high one is no pair */
    expect_canon("\"\\udc00\\ud800\"", "\"\\udc00\\ud800\"");
    /* and differs from the text of its escape: two members, not one */
    expect_canon("{\"\\\\ud800\":1,\"\\ud800\":2}", "{\"\\\\ud800\":1,\"\\ud800\":2}");
}

static void test_numbers_as_sent(void **state)
{
    (void)state;
    expect_canon("{\"seed\":12345678901234567890123}", "{\"seed\":12345678901234567890123}");
    expect_canon("[1,1.0,1e2,1E+2,-0,0.5,-1.25e-3,100]", "[1,1.0,1e2,1E+2,-0,0.5,-1.25e-3,100]");
    expect_canon("1e400", "1e400");
}

/* The rounding's short path (plain decimals with up to 2 places and 15
 * digits, no strtod or printf) against the long one's definition, "%.2f"
 * of the nearest double with trailing zeros and '.' cut and -0 as 0, over
 * generated numbers on both sides of each limit. */
static void reference_round(const char *num, char *out, size_t cap)
{
    int len = snprintf(out, cap, "%.2f", strtod(num, NULL));
    while (out[len - 1] == '0')
        out[--len] = '\0';
    if (out[len - 1] == '.')
        out[--len] = '\0';
    if (strcmp(out, "-0") == 0)
        snprintf(out, cap, "0");
}

static void test_rounding_matches_printf(void **state)
{
    (void)state;
    const struct rd_canon_rules r = {.round2 = RULES("t")};
    uint64_t x = 0x9e3779b97f4a7c15ull;
    char num[64], doc[96], want[400], wdoc[420];
    for (int k = 0; k < 20000; k++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int digits = 1 + (int)(x % 17);   /* 1..17: past the 15 the short path takes */
        int places = (int)((x >> 8) % 4); /* 0..3: past the 2 it takes */
        uint64_t v = (x >> 16) % 10000000000000000000ull;
        char d[32];
        snprintf(d, sizeof d, "%019llu", (unsigned long long)v);
        const char *p = d + 19 - digits;
        while (*p == '0' && p[1] && digits - places > 1) /* no leading zero before the point */
            p++, digits--;
        int whole = digits - places;
        if (whole < 1)
            whole = 1, places = digits - 1;
        size_t n = 0;
        if ((x >> 40) & 1)
            num[n++] = '-';
        memcpy(num + n, p, (size_t)whole);
        n += (size_t)whole;
        if (places > 0) {
            num[n++] = '.';
            memcpy(num + n, p + whole, (size_t)places);
            n += (size_t)places;
        }
        num[n] = '\0';
        if ((x >> 41) % 16 == 0)
            snprintf(num, sizeof num, "%s0.%s", (x >> 40) & 1 ? "-" : "", (x >> 42) & 1 ? "00" : "0");
        snprintf(doc, sizeof doc, "{\"t\":%s}", num);
        reference_round(num, want, sizeof want);
        snprintf(wdoc, sizeof wdoc, "{\"t\":%s}", want);
        expect_canon_rules(doc, &r, wdoc);
    }
}

/* Objects on both sides of the small-object sort (16 members): reversed
 * keys with a duplicate come out in key order, the last duplicate kept. */
static void test_sort_sizes(void **state)
{
    (void)state;
    for (int n = 2; n <= 20; n++) {
        char doc[1024], want[1024];
        size_t d = 0, w = 0;
        d += (size_t)snprintf(doc + d, sizeof doc - d, "{");
        for (int i = n - 1; i >= 0; i--)
            d += (size_t)snprintf(doc + d, sizeof doc - d, "%s\"k%02d\":%d", i == n - 1 ? "" : ",", i, i);
        d += (size_t)snprintf(doc + d, sizeof doc - d, ",\"k%02d\":\"last\"}", n / 2); /* a later duplicate */
        w += (size_t)snprintf(want + w, sizeof want - w, "{");
        for (int i = 0; i < n; i++) {
            if (i == n / 2)
                w += (size_t)snprintf(want + w, sizeof want - w, "%s\"k%02d\":\"last\"", i ? "," : "", i);
            else
                w += (size_t)snprintf(want + w, sizeof want - w, "%s\"k%02d\":%d", i ? "," : "", i, i);
        }
        snprintf(want + w, sizeof want - w, "}");
        expect_canon(doc, want);
    }
}

static void test_rounding(void **state)
{
    (void)state;
    const struct rd_canon_rules r = {.round2 = RULES("temperature", "cfg.top_p")};
    expect_canon_rules("{\"temperature\":0.7}", &r, "{\"temperature\":0.7}");
    expect_canon_rules("{\"temperature\":0.70}", &r, "{\"temperature\":0.7}");
    expect_canon_rules("{\"temperature\":0.701}", &r, "{\"temperature\":0.7}");
    expect_canon_rules("{\"temperature\":7e-1}", &r, "{\"temperature\":0.7}");
    expect_canon_rules("{\"temperature\":0.71}", &r, "{\"temperature\":0.71}");
    expect_canon_rules("{\"temperature\":0.706}", &r, "{\"temperature\":0.71}");
    expect_canon_rules("{\"temperature\":1.00}", &r, "{\"temperature\":1}");
    expect_canon_rules("{\"temperature\":1}", &r, "{\"temperature\":1}");
    expect_canon_rules("{\"temperature\":10}", &r, "{\"temperature\":10}");
    expect_canon_rules("{\"temperature\":0}", &r, "{\"temperature\":0}");
    expect_canon_rules("{\"temperature\":-0.001}", &r, "{\"temperature\":0}");
    expect_canon_rules("{\"temperature\":-0}", &r, "{\"temperature\":0}");
    expect_canon_rules("{\"temperature\":-1.256}", &r, "{\"temperature\":-1.26}");
    expect_canon_rules("{\"temperature\":1e-400}", &r, "{\"temperature\":0}");
    /* no rounded value past a double's range: kept as sent */
    expect_canon_rules("{\"temperature\":1e400}", &r, "{\"temperature\":1e400}");
    /* a long text still rounds */
    expect_canon_rules("{\"temperature\":0.7000000000000000000000000000000000000000000000000000000000000000000000000"
                       "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
                       "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
                       "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
                       "000000000000000000000000000000000000000000000000000000000000000000000000000000000001}",
                       &r, "{\"temperature\":0.7}");
    /* only numbers, only at the path */
    expect_canon_rules("{\"temperature\":\"0.701\"}", &r, "{\"temperature\":\"0.701\"}");
    expect_canon_rules("{\"x\":{\"temperature\":0.701},\"top_p\":0.701}", &r,
                       "{\"top_p\":0.701,\"x\":{\"temperature\":0.701}}");
    expect_canon_rules("{\"cfg\":{\"top_p\":0.951,\"temperature\":0.951}}", &r,
                       "{\"cfg\":{\"temperature\":0.951,\"top_p\":0.95}}");
    /* a rounded value is still validated */
    int rc;
    assert_null(canon_n("{\"temperature\":0.}", 17, &r, &rc));
    assert_int_equal(rc, RD_EPROTO);
}

static void test_drop_paths(void **state)
{
    (void)state;
    const struct rd_canon_rules r = {.drop = RULES("stream", "metadata.user_id", "a.*.b")};
    expect_canon_rules("{\"stream\":true,\"model\":\"m\"}", &r, "{\"model\":\"m\"}");
    expect_canon_rules("{\"model\":\"m\",\"stream\":{\"deep\":[1,{\"x\":2}]}}", &r, "{\"model\":\"m\"}");
    expect_canon_rules("{\"stream\":true}", &r, "{}");
    expect_canon_rules("{\"metadata\":{\"user_id\":\"u1\",\"tag\":\"t\"}}", &r, "{\"metadata\":{\"tag\":\"t\"}}");
    expect_canon_rules("{\"metadata\":{\"user_id\":\"u1\"}}", &r, "{\"metadata\":{}}");
    /* only at its path: not at the top, not deeper, not inside arrays */
    expect_canon_rules("{\"user_id\":1,\"x\":{\"stream\":1}}", &r, "{\"user_id\":1,\"x\":{\"stream\":1}}");
    expect_canon_rules("{\"messages\":[{\"stream\":1}]}", &r, "{\"messages\":[{\"stream\":1}]}");
    expect_canon_rules("[{\"stream\":1}]", &r, "[{\"stream\":1}]");
    /* "*" is any key at its level, exactly one level */
    expect_canon_rules("{\"a\":{\"p\":{\"b\":1,\"c\":2},\"q\":{\"b\":3}}}", &r, "{\"a\":{\"p\":{\"c\":2},\"q\":{}}}");
    expect_canon_rules("{\"a\":{\"b\":1}}", &r, "{\"a\":{\"b\":1}}");
    expect_canon_rules("{\"a\":{\"p\":{\"q\":{\"b\":1}}}}", &r, "{\"a\":{\"p\":{\"q\":{\"b\":1}}}}");
    /* every duplicate goes; an escaped key is the same key */
    expect_canon_rules("{\"stream\":1,\"n\":1,\"str\\u0065am\":2}", &r, "{\"n\":1}");
    /* a dropped value is still validated */
    int rc;
    const char *bad = "{\"stream\":[1,}";
    assert_null(canon_n(bad, strlen(bad), &r, &rc));
    assert_int_equal(rc, RD_EPROTO);
    /* found by fuzzing: every member dropped before any was kept, and an
     * empty key first (buffers that had no storage yet) */
    const struct rd_canon_rules all = {.drop = RULES("*")};
    expect_canon_rules("{\"a\":1,\"b\":{\"c\":2}}", &all, "{}");
    expect_canon_rules("{\"\":{\"b\":1},\"q\":2}", &r, "{\"\":{\"b\":1},\"q\":2}");
    expect_canon("{\"\":\"\"}", "{\"\":\"\"}");
    /* drop wins over round */
    const struct rd_canon_rules both = {.drop = RULES("t"), .round2 = RULES("t")};
    expect_canon_rules("{\"t\":0.5,\"u\":1}", &both, "{\"u\":1}");
}

static void test_duplicate_keys(void **state)
{
    (void)state;
    expect_canon("{\"a\":1,\"a\":2}", "{\"a\":2}");
    expect_canon("{\"a\":1,\"b\":0,\"a\":{\"x\":1}}", "{\"a\":{\"x\":1},\"b\":0}");
    expect_canon("{\"a\":1,\"\\u0061\":2,\"a\":3,\"c\":4,\"\\u0061\":5}", "{\"a\":5,\"c\":4}");
    expect_canon("{\"o\":{\"k\":1,\"k\":2},\"o\":{\"k\":3,\"j\":4}}", "{\"o\":{\"j\":4,\"k\":3}}");
}

static void test_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",         " ",        "{} x",      "{}{}",     "[1]]",       "{\"a\":1}}",  "\"abc", "{\"a\":1", "[1,2",
        "{\"a\"",   "{\"a\":",  "{\"a\" 1}", "[1,]",     "{\"a\":1,}", "{,}",         "[,1]",  "{1:2}",    "{a:1}",
        "01",       "1.",       ".5",        "+1",       "-",          "1e",          "1e+",   "--1",      "0x1",
        "tru",      "nul",      "True",      "\"\\x\"",  "\"\\u12\"",  "\"\\u12g4\"", "\"\\",  "\"\\u",    "'a'",
        "\"\x01\"", "\"a\nb\"", "\"\t\"",    "\xc3\xa9", "NaN",        "Infinity",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_reject(bad[i]);
    /* invalid UTF-8: overlong, raw surrogate, past U+10FFFF, truncated,
     * lone continuation, invalid lead bytes */
    static const char *const utf8[] = {
        "\"\xc0\x80\"",
        "\"\xc1\xbf\"",
        "\"\xe0\x80\xaf\"",
        "\"\xed\xa0\x80\"",
        "\"\xed\xbf\xbf\"",
        "\"\xf0\x80\x80\x80\"",
        "\"\xf4\x90\x80\x80\"",
        "\"\xf5\x80\x80\x80\"",
        "\"\xe2\x82\"",
        "\"\x80\"",
        "\"\xff\"",
        "\"\xe2\x82\xac",
        "\"\xf0\x9f\x98\"",
        "{\"\xc3\":1}",
    };
    for (size_t i = 0; i < sizeof utf8 / sizeof utf8[0]; i++)
        expect_reject(utf8[i]);
    /* a NUL byte inside or after a value */
    expect_reject_n("\"a\0b\"", 5, RD_EPROTO);
    expect_reject_n("{}\0", 3, RD_EPROTO);
    /* the largest valid code points are fine */
    expect_canon("\"\xf4\x8f\xbf\xbf\xef\xbf\xbf\xed\x9f\xbf\"", "\"\xf4\x8f\xbf\xbf\xef\xbf\xbf\xed\x9f\xbf\"");
}

/* depth containers of kind open/close around 1. */
static char *nested(unsigned depth, bool objects)
{
    size_t per = objects ? 5 : 1; /* {"a": */
    char *s = malloc(depth * (per + 1) + 2);
    assert_non_null(s);
    size_t w = 0;
    for (unsigned i = 0; i < depth; i++) {
        memcpy(s + w, objects ? "{\"a\":" : "[", per);
        w += per;
    }
    s[w++] = '1';
    for (unsigned i = 0; i < depth; i++)
        s[w++] = objects ? '}' : ']';
    s[w] = '\0';
    return s;
}

static void test_depth(void **state)
{
    (void)state;
    for (int objects = 0; objects < 2; objects++) {
        char *ok = nested(RD_CANON_MAX_DEPTH, objects);
        expect_canon(ok, ok);
        free(ok);
        char *deep = nested(RD_CANON_MAX_DEPTH + 1, objects);
        expect_reject_n(deep, strlen(deep), RD_ETOOBIG);
        free(deep);
    }
    /* far past the limit, unterminated: refused without recursing on */
    char *big = malloc(100000);
    assert_non_null(big);
    memset(big, '[', 100000);
    expect_reject_n(big, 100000, RD_ETOOBIG);
    free(big);
}

static void test_out_cap(void **state)
{
    (void)state;
    const char *doc = "{\"b\":\"0123456789\",\"a\":\"0123456789\"}";
    for (size_t max = 1; max < strlen(doc); max++) {
        struct rd_buf out;
        rd_buf_init(&out, max);
        assert_int_equal(rd_canon_json(doc, strlen(doc), NULL, &out), RD_ETOOBIG);
        assert_true(out.len <= max);
        rd_buf_free(&out);
    }
    /* appends to what out holds */
    struct rd_buf out;
    rd_buf_init(&out, 0);
    assert_int_equal(rd_buf_appends(&out, "pre:"), 0);
    assert_int_equal(rd_canon_json(doc, strlen(doc), NULL, &out), 0);
    assert_string_equal(out.data, "pre:{\"a\":\"0123456789\",\"b\":\"0123456789\"}");
    rd_buf_free(&out);
}

/* ---- cache keys ---- */

struct kreq {
    const char *provider, *method, *path, *query;
    const char *const *headers; /* name, value, ..., NULL */
    const char *body;
    bool stream, scope_proxy;
    const char *const *key_headers;
    const char *cred_provider;
};

static const struct rd_provider *provider(const char *name)
{
    const struct rd_provider *p = rd_provider_find(name);
    assert_non_null(p);
    return p;
}

/* The key of r, or the error in *rc (then the key is zero). The scratch
 * buffer is checked never to hold the raw credential. */
static int key_of(const struct kreq *r, uint8_t key[32])
{
    struct rd_arena arena;
    rd_arena_init(&arena);
    struct rd_hdrs h;
    rd_hdrs_init(&h, &arena);
    for (size_t i = 0; r->headers && r->headers[i]; i += 2)
        rd_hdrs_add(&h, r->headers[i], strlen(r->headers[i]), r->headers[i + 1], strlen(r->headers[i + 1]));
    size_t nkh = 0;
    while (r->key_headers && r->key_headers[nkh])
        nkh++;
    const char *body = r->body ? r->body : "";
    size_t len = strlen(body);
    char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, body, len);
    struct rd_cache_key_input in = {
        .provider = provider(r->provider),
        .method = r->method ? r->method : "POST",
        .path = r->path,
        .query = r->query ? r->query : "",
        .headers = &h,
        .body = copy,
        .body_len = len,
        .key_headers = r->key_headers,
        .nkey_headers = nkh,
        .scope_proxy = r->scope_proxy,
        .cred_provider = r->cred_provider ? provider(r->cred_provider) : NULL,
        .stream = r->stream,
    };
    struct rd_buf scratch;
    rd_buf_init(&scratch, 0);
    memset(key, 0, 32);
    size_t off = 0;
    int rc = rd_cache_key_canon(&in, &scratch, key, &off);
    if (scratch.data)
        assert_null(memmem(scratch.data, scratch.len, "sk-SECRET", 9));
    if (rc == 0 && len) {
        /* The canonical body kept from this key gives the same key, and the
         * same key of the other scope (the request log's prompt hash after
         * a credential-scoped cache key) as canonicalizing again. */
        size_t clen = scratch.len - off;
        char *canon = malloc(clen ? clen : 1);
        assert_non_null(canon);
        memcpy(canon, scratch.data + off, clen);
        uint8_t k2[32], k3[32], k4[32];
        struct rd_cache_key_input again = in;
        again.canon_body = canon;
        again.canon_body_len = clen;
        assert_int_equal(rd_cache_key(&again, &scratch, k2), 0);
        assert_memory_equal(k2, key, 32);
        struct rd_cache_key_input other = in;
        other.scope_proxy = !in.scope_proxy;
        assert_int_equal(rd_cache_key(&other, &scratch, k3), 0);
        other.canon_body = canon;
        other.canon_body_len = clen;
        assert_int_equal(rd_cache_key(&other, &scratch, k4), 0);
        assert_memory_equal(k3, k4, 32);
        free(canon);
    }
    rd_buf_free(&scratch);
    free(copy);
    rd_hdrs_free(&h);
    rd_arena_free(&arena);
    return rc;
}

static bool same_key(const struct kreq *a, const struct kreq *b)
{
    uint8_t ka[32], kb[32];
    assert_int_equal(key_of(a, ka), 0);
    assert_int_equal(key_of(b, kb), 0);
    return memcmp(ka, kb, 32) == 0;
}

/* The base request r with its body replaced. */
static void expect_body(const struct kreq *r, const char *body, bool same)
{
    struct kreq b = *r;
    b.body = body;
    if (same_key(r, &b) != same) {
        print_error("%s: %s\n  vs %s\n  should %s the key\n", r->provider, r->body, body,
                    same ? "not change" : "change");
        fail();
    }
}

static const char *const OAI_AUTH[] = {"Authorization", "Bearer sk-SECRET-1", NULL};

#define OAI_BASE "\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"

static void test_key_openai_fields(void **state)
{
    (void)state;
    static const char *const dialect[] = {"openai", "deepseek", "azure_openai", "groq", "openai_compatible"};
    for (size_t i = 0; i < sizeof dialect / sizeof dialect[0]; i++) {
        const struct kreq r = {.provider = dialect[i],
                               .path = "/v1/chat/completions",
                               .headers = OAI_AUTH,
                               .body = "{" OAI_BASE ",\"temperature\":0.7}"};
        /* fields that must change the key */
        expect_body(&r, "{" OAI_BASE ",\"temperature\":0.7,\"tools\":[{\"type\":\"function\"}]}", false);
        expect_body(&r, "{" OAI_BASE ",\"temperature\":0.7,\"response_format\":{\"type\":\"json_object\"}}", false);
        expect_body(&r, "{" OAI_BASE ",\"temperature\":0.7,\"seed\":12345678901234567890123}", false);
        expect_body(&r, "{" OAI_BASE ",\"temperature\":0.7,\"n\":2}", false);
        expect_body(&r, "{" OAI_BASE ",\"temperature\":0.7,\"logprobs\":true}", false);
        expect_body(&r, "{" OAI_BASE ",\"temperature\":0.7,\"max_tokens\":10}", false);
        expect_body(&r, "{" OAI_BASE ",\"temperature\":0.7,\"reasoning_effort\":\"low\"}", false);
        expect_body(&r, "{" OAI_BASE ",\"temperature\":0.8}", false);
        expect_body(&r, "{" OAI_BASE ",\"temperature\":0.71}", false);
        expect_body(&r,
                    "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
                    "\"temperature\":0.7}",
                    false);
        expect_body(&r,
                    "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"hi!\"}],"
                    "\"temperature\":0.7}",
                    false);
        /* include_usage adds the usage chunk to a stream: another answer */
        expect_body(&r, "{" OAI_BASE ",\"temperature\":0.7,\"stream_options\":{\"include_usage\":true}}", false);
        /* fields that must not */
        expect_body(&r, "{" OAI_BASE ",\"temperature\":0.7,\"stream\":true}", true);
        expect_body(&r, "{" OAI_BASE ",\"temperature\":0.7,\"user\":\"u-123\"}", true);
        expect_body(&r, "{" OAI_BASE ",\"temperature\":0.7,\"safety_identifier\":\"h\"}", true);
        expect_body(&r, "{" OAI_BASE ",\"temperature\":0.7,\"store\":true}", true);
        expect_body(&r, "{" OAI_BASE ",\"temperature\":0.701}", true);
        expect_body(&r, "{" OAI_BASE ",\"temperature\":0.70}", true);
        expect_body(&r,
                    "{\"temperature\":0.7,\"messages\":[{\"content\":\"hi\",\"role\":\"user\"}],"
                    "\"model\":\"gpt-4o\"}",
                    true);
        expect_body(&r, "\n{ " OAI_BASE " , \"temperature\" : 7e-1 }\n", true);
        expect_body(&r,
                    "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"\\u0068i\"}],"
                    "\"temperature\":0.7}",
                    true);
    }
}

static void test_key_stream_flag(void **state)
{
    (void)state;
    /* the body's "stream" is dropped, so the caller's flag keeps a stream
     * and a plain answer apart; include_obfuscation only pads deltas with
     * random bytes, include_usage adds a chunk */
    const struct kreq plain = {
        .provider = "openai", .path = "/v1/chat/completions", .headers = OAI_AUTH, .body = "{" OAI_BASE "}"};
    struct kreq stream = plain;
    stream.body = "{" OAI_BASE ",\"stream\":true}";
    stream.stream = true;
    assert_false(same_key(&plain, &stream));
    struct kreq u1 = stream, u2 = stream, u3 = stream;
    u1.body = "{" OAI_BASE ",\"stream\":true,\"stream_options\":{\"include_usage\":true}}";
    u2.body = "{" OAI_BASE ",\"stream\":true,\"stream_options\":{\"include_obfuscation\":false,"
              "\"include_usage\":true}}";
    u3.body = "{" OAI_BASE ",\"stream\":true,\"stream_options\":{\"include_usage\":false}}";
    assert_true(same_key(&u1, &u2));
    assert_false(same_key(&u1, &u3));
    assert_false(same_key(&u1, &stream));
}

static void test_key_anthropic_fields(void **state)
{
    (void)state;
    static const char *const auth[] = {"x-api-key", "sk-SECRET-a", "anthropic-version", "2023-06-01", NULL};
#define ANT_BASE                                                                                                       \
    "\"model\":\"claude-sonnet-4-5\",\"max_tokens\":100,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"
    const struct kreq r = {.provider = "anthropic",
                           .path = "/v1/messages",
                           .headers = auth,
                           .body = "{" ANT_BASE ",\"metadata\":{\"user_id\":\"a\"},\"top_p\":0.9}"};
    expect_body(&r, "{" ANT_BASE ",\"metadata\":{\"user_id\":\"b\"},\"top_p\":0.9}", true);
    expect_body(&r, "{" ANT_BASE ",\"metadata\":{\"user_id\":\"b\"},\"top_p\":0.9,\"stream\":true}", true);
    expect_body(&r, "{" ANT_BASE ",\"metadata\":{\"user_id\":\"b\"},\"top_p\":0.901}", true);
    expect_body(&r, "{" ANT_BASE ",\"metadata\":{\"user_id\":\"b\"},\"top_p\":0.91}", false);
    expect_body(&r, "{" ANT_BASE ",\"metadata\":{\"user_id\":\"a\"},\"top_p\":0.9,\"top_k\":5}", false);
    expect_body(&r, "{" ANT_BASE ",\"metadata\":{\"user_id\":\"a\"},\"top_p\":0.9,\"system\":\"be brief\"}", false);
    expect_body(&r,
                "{" ANT_BASE ",\"metadata\":{\"user_id\":\"a\"},\"top_p\":0.9,"
                "\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":1024}}",
                false);
    expect_body(&r,
                "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":101,\"messages\":[{\"role\":\"user\","
                "\"content\":\"hi\"}],\"metadata\":{\"user_id\":\"a\"},\"top_p\":0.9}",
                false);
    /* "user" is no Anthropic field: it stays */
    expect_body(&r, "{" ANT_BASE ",\"metadata\":{\"user_id\":\"a\"},\"top_p\":0.9,\"user\":\"x\"}", false);
#undef ANT_BASE
}

static void test_key_google_fields(void **state)
{
    (void)state;
    static const char *const auth[] = {"x-goog-api-key", "sk-SECRET-g", NULL};
    const char *gen = "/v1beta/models/gemini-2.5-flash:generateContent";
    const struct kreq r = {.provider = "gemini",
                           .path = gen,
                           .headers = auth,
                           .body = "{\"contents\":[{\"parts\":[{\"text\":\"hi\"}]}],"
                                   "\"generationConfig\":{\"temperature\":0.5,\"topP\":0.9,\"seed\":7}}"};
    expect_body(&r,
                "{\"generationConfig\":{\"seed\":7,\"topP\":0.9001,\"temperature\":0.50},"
                "\"contents\":[{\"parts\":[{\"text\":\"hi\"}]}]}",
                true);
    expect_body(&r,
                "{\"contents\":[{\"parts\":[{\"text\":\"hi\"}]}],"
                "\"generationConfig\":{\"temperature\":0.5,\"topP\":0.9,\"seed\":8}}",
                false);
    expect_body(&r,
                "{\"contents\":[{\"parts\":[{\"text\":\"hi\"}]}],"
                "\"generationConfig\":{\"temperature\":0.5,\"topP\":0.9,\"seed\":7,\"responseMimeType\":"
                "\"application/json\"}}",
                false);
    /* streaming is the path; alt changes the answer's framing */
    struct kreq s = r;
    s.path = "/v1beta/models/gemini-2.5-flash:streamGenerateContent";
    s.query = "alt=sse";
    s.stream = true;
    assert_false(same_key(&r, &s));
    struct kreq s2 = s;
    s2.query = "";
    assert_false(same_key(&s, &s2));
    /* another model is another path */
    struct kreq m = r;
    m.path = "/v1beta/models/gemini-2.5-pro:generateContent";
    assert_false(same_key(&r, &m));
    /* Vertex's labels are billing metadata */
    static const char *const bearer[] = {"authorization", "Bearer sk-SECRET-v", NULL};
    const struct kreq v = {.provider = "vertex_ai",
                           .path = "/v1beta1/projects/p/locations/us-central1/publishers/google/models/"
                                   "gemini-2.5-flash:generateContent",
                           .headers = bearer,
                           .body = "{\"contents\":[],\"labels\":{\"team\":\"a\"}}"};
    expect_body(&v, "{\"contents\":[],\"labels\":{\"team\":\"b\"}}", true);
    expect_body(&v, "{\"contents\":[]}", true);
    expect_body(&v, "{\"contents\":[],\"generationConfig\":{\"topP\":0.9}}", false);
}

static void test_key_bedrock_fields(void **state)
{
    (void)state;
    static const char *const auth[] = {"authorization", "Bearer sk-SECRET-b", NULL};
    const struct kreq r = {.provider = "bedrock",
                           .path = "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse",
                           .headers = auth,
                           .body = "{\"messages\":[],\"inferenceConfig\":{\"temperature\":0.3,\"topP\":0.9,"
                                   "\"maxTokens\":10},\"requestMetadata\":{\"run\":\"1\"}}"};
    expect_body(&r,
                "{\"messages\":[],\"inferenceConfig\":{\"temperature\":0.301,\"topP\":0.90,"
                "\"maxTokens\":10},\"requestMetadata\":{\"run\":\"2\"}}",
                true);
    expect_body(&r, "{\"messages\":[],\"inferenceConfig\":{\"temperature\":0.3,\"topP\":0.9,\"maxTokens\":10}}", true);
    expect_body(&r, "{\"messages\":[],\"inferenceConfig\":{\"temperature\":0.3,\"topP\":0.9,\"maxTokens\":11}}", false);
    expect_body(&r,
                "{\"messages\":[],\"inferenceConfig\":{\"temperature\":0.3,\"topP\":0.9,\"maxTokens\":10},"
                "\"toolConfig\":{\"tools\":[]}}",
                false);
    struct kreq s = r;
    s.path = "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream";
    assert_false(same_key(&r, &s));
}

static void test_key_query_params(void **state)
{
    (void)state;
    static const char *const auth[] = {"api-key", "sk-SECRET-z", NULL};
    const struct kreq r = {.provider = "azure_openai",
                           .path = "/openai/deployments/my-gpt4o/chat/completions",
                           .query = "api-version=2024-10-21",
                           .headers = auth,
                           .body = "{\"messages\":[]}"};
    struct kreq q = r;
    q.query = "api-version=2025-01-01-preview";
    assert_false(same_key(&r, &q));
    q.query = "";
    assert_false(same_key(&r, &q));
    /* the name as the upstream decodes it */
    q.query = "api%2Dversion=2025-01-01-preview";
    struct kreq q2 = r;
    q2.query = "foo=1&api-version=2025-01-01-preview";
    assert_true(same_key(&q, &q2));
    /* other parameters are not in the key */
    q.query = "x=1&api-version=2024-10-21&y=2";
    assert_true(same_key(&r, &q));
    /* given twice, both count */
    q.query = "api-version=2024-10-21&api-version=2025-01-01-preview";
    assert_false(same_key(&r, &q));
    /* a provider without query parameters ignores them */
    const struct kreq o = {.provider = "openai", .path = "/v1/chat/completions", .body = "{}"};
    struct kreq o2 = o;
    o2.query = "api-version=1";
    assert_true(same_key(&o, &o2));
}

static void test_key_headers(void **state)
{
    (void)state;
    static const char *const kh[] = {"Anthropic-Beta", "anthropic-version", NULL};
    static const char *const h1[] = {
        "x-api-key", "k", "anthropic-version", "2023-06-01", "anthropic-beta", "a", "x-stainless-os", "Linux", NULL};
    static const char *const h2[] = {
        "x-api-key", "k", "Anthropic-Version", "2023-06-01", "ANTHROPIC-BETA", "a", "x-stainless-os", "MacOS", NULL};
    static const char *const h3[] = {"x-api-key", "k", "anthropic-version", "2023-06-01", "anthropic-beta", "b", NULL};
    static const char *const h4[] = {"x-api-key", "k", "anthropic-version", "2023-06-01", NULL};
    const struct kreq a = {
        .provider = "anthropic", .path = "/v1/messages", .headers = h1, .body = "{}", .key_headers = kh};
    struct kreq b = a;
    b.headers = h2; /* name case and unlisted headers do not matter */
    assert_true(same_key(&a, &b));
    b.headers = h3;
    assert_false(same_key(&a, &b));
    b.headers = h4;
    assert_false(same_key(&a, &b));
    /* without key_headers, headers other than the credential never count */
    struct kreq c = a, d = a;
    c.key_headers = d.key_headers = NULL;
    d.headers = h3;
    assert_true(same_key(&c, &d));
}

static void test_key_scope(void **state)
{
    (void)state;
    static const char *const k1[] = {"Authorization", "Bearer sk-SECRET-1", NULL};
    static const char *const k2[] = {"Authorization", "Bearer sk-SECRET-2", NULL};
    const struct kreq a = {.provider = "openai", .path = "/v1/chat/completions", .headers = k1, .body = "{}"};
    struct kreq b = a;
    b.headers = k2;
    assert_false(same_key(&a, &b));
    struct kreq none = a;
    none.headers = NULL;
    assert_false(same_key(&a, &none));
    /* scope "proxy": one entry for everybody */
    struct kreq pa = a, pb = b, pn = none;
    pa.scope_proxy = pb.scope_proxy = pn.scope_proxy = true;
    assert_true(same_key(&pa, &pb));
    assert_true(same_key(&pa, &pn));
    assert_false(same_key(&a, &pa));
    /* Anthropic: either auth form; the first listed counts */
    static const char *const x1[] = {"x-api-key", "sk-SECRET-1", "authorization", "Bearer z", NULL};
    static const char *const x2[] = {"x-api-key", "sk-SECRET-1", "authorization", "Bearer y", NULL};
    static const char *const x3[] = {"x-api-key", "sk-SECRET-3", "authorization", "Bearer z", NULL};
    const struct kreq an = {.provider = "anthropic", .path = "/v1/messages", .headers = x1, .body = "{}"};
    struct kreq an2 = an;
    an2.headers = x2;
    assert_true(same_key(&an, &an2));
    an2.headers = x3;
    assert_false(same_key(&an, &an2));
}

static void test_key_scope_query_secret(void **state)
{
    (void)state;
    const char *path = "/v1beta/models/gemini-2.5-flash:generateContent";
    const struct kreq a = {.provider = "gemini", .path = path, .query = "key=sk-SECRET-1", .body = "{}"};
    struct kreq b = a;
    b.query = "key=sk-SECRET-2";
    assert_false(same_key(&a, &b));
    b.query = "k%65y=sk-SECRET-1"; /* the same name, percent-encoded */
    assert_true(same_key(&a, &b));
    /* Claude on Vertex: Anthropic's body rules, Vertex's credentials */
    const char *claude = "/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5:rawPredict";
    const struct kreq c1 = {.provider = "anthropic",
                            .cred_provider = "vertex_ai",
                            .path = claude,
                            .query = "key=sk-SECRET-1",
                            .body = "{\"anthropic_version\":\"vertex-2023-10-16\",\"metadata\":{\"user_id\":\"a\"}}"};
    struct kreq c2 = c1;
    c2.query = "key=sk-SECRET-2";
    c2.body = "{\"anthropic_version\":\"vertex-2023-10-16\",\"metadata\":{\"user_id\":\"b\"}}";
    assert_false(same_key(&c1, &c2));
    c2.query = c1.query;
    assert_true(same_key(&c1, &c2)); /* metadata.user_id: Anthropic's rule */
}

static void test_key_sigv4(void **state)
{
    (void)state;
    static const char *const s1[] = {
        "authorization",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/bedrock/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=1111111111111111111111111111111111111111111111111111111111111111",
        "x-amz-date", "20260101T000000Z", NULL};
    static const char *const s2[] = {
        "authorization",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260102/us-east-1/bedrock/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=2222222222222222222222222222222222222222222222222222222222222222",
        "x-amz-date", "20260102T000000Z", NULL};
    static const char *const s3[] = {
        "authorization",
        "AWS4-HMAC-SHA256 Credential=AKIDOTHER/20260101/us-east-1/bedrock/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=1111111111111111111111111111111111111111111111111111111111111111",
        "x-amz-date", "20260101T000000Z", NULL};
    const struct kreq a = {.provider = "bedrock",
                           .path = "/model/amazon.nova-lite-v1%3A0/converse",
                           .headers = s1,
                           .body = "{\"messages\":[]}"};
    struct kreq b = a;
    b.headers = s2;
    assert_true(same_key(&a, &b));
    b.headers = s3;
    assert_false(same_key(&a, &b));
    /* a malformed SigV4 value counts whole: it never shares by accident */
    static const char *const m1[] = {"authorization", "AWS4-HMAC-SHA256 Signature=1", NULL};
    static const char *const m2[] = {"authorization", "AWS4-HMAC-SHA256 Signature=2", NULL};
    struct kreq c = a, d = a;
    c.headers = m1;
    d.headers = m2;
    assert_false(same_key(&c, &d));
}

static void test_key_errors_and_empty_body(void **state)
{
    (void)state;
    uint8_t k[32];
    struct kreq r = {.provider = "openai", .path = "/v1/chat/completions", .body = "{\"a\":1} x"};
    assert_int_equal(key_of(&r, k), RD_EPROTO);
    r.body = "{\"a\":";
    assert_int_equal(key_of(&r, k), RD_EPROTO);
    char *deep = nested(RD_CANON_MAX_DEPTH + 1, true);
    r.body = deep;
    assert_int_equal(key_of(&r, k), RD_ETOOBIG);
    free(deep);
    /* GETs have no body; paths tell them apart */
    const struct kreq list = {.provider = "openai", .method = "GET", .path = "/v1/models"};
    struct kreq one = list;
    one.path = "/v1/models/gpt-4o";
    assert_false(same_key(&list, &one));
    struct kreq post = list;
    post.method = "POST";
    assert_false(same_key(&list, &post));
    /* a different provider is a different key for the same request */
    struct kreq ds = list;
    ds.provider = "deepseek";
    assert_false(same_key(&list, &ds));
}

/* The key is the SHA-256 of the material key.h documents, byte for byte
 * (persisted entries and cassettes depend on it staying so). */
static void test_key_material_layout(void **state)
{
    (void)state;
    static const char *const kh[] = {"anthropic-beta", NULL};
    static const char *const h[] = {"Api-Key", "sk-SECRET-9", "Anthropic-Beta", "b1", NULL};
    const struct kreq r = {.provider = "azure_openai",
                           .path = "/openai/deployments/d/chat/completions",
                           .query = "x=1&api-version=2024-10-21",
                           .headers = h,
                           .key_headers = kh,
                           .stream = true,
                           .body = "{\"stream\":true, \"b\":1,\"a\":0.5,\"temperature\":0.701}"};
    uint8_t got[32], want[32], ch[32];
    assert_int_equal(key_of(&r, got), 0);
    char hex[65];
    rd_sha256("sk-SECRET-9", 11, ch);
    rd_hex(ch, 32, hex);
    struct rd_buf m;
    rd_buf_init(&m, 0);
    static const char head[] = "rdk1\0azure_openai\0POST\0/openai/deployments/d/chat/completions\0"
                               "api-version=2024-10-21\0anthropic-beta: b1\0cred:";
    assert_int_equal(rd_buf_append(&m, head, sizeof head - 1), 0);
    assert_int_equal(rd_buf_append(&m, hex, 64), 0);
    static const char tail[] = "\0stream:1\0{\"a\":0.5,\"b\":1,\"temperature\":0.7}";
    assert_int_equal(rd_buf_append(&m, tail, sizeof tail - 1), 0);
    rd_sha256(m.data, m.len, want);
    rd_buf_free(&m);
    assert_memory_equal(got, want, 32);
}

/* Every provider has sane cache data: lists NULL-terminated, paths
 * without empty elements (a typo would silently never match). */
static void test_provider_cache_data(void **state)
{
    (void)state;
    size_t n;
    const struct rd_provider *const *all = rd_provider_all(&n);
    for (size_t i = 0; i < n; i++) {
        const char *const *lists[] = {all[i]->cache_ignore_fields, all[i]->cache_round_fields,
                                      all[i]->cache_query_params};
        for (size_t l = 0; l < 3; l++)
            for (size_t k = 0; lists[l] && lists[l][k]; k++) {
                const char *s = lists[l][k];
                assert_true(s[0] != '\0' && s[0] != '.' && s[strlen(s) - 1] != '.');
                assert_null(strstr(s, ".."));
            }
        /* every OpenAI-dialect provider drops stream and user */
        if (strcmp(all[i]->dialect_name, "openai") == 0)
            assert_ptr_equal(all[i]->cache_ignore_fields, rd_provider_cache_ignore_openai);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_order_every_depth),
        cmocka_unit_test(test_whitespace),
        cmocka_unit_test(test_string_escapes),
        cmocka_unit_test(test_surrogates),
        cmocka_unit_test(test_numbers_as_sent),
        cmocka_unit_test(test_rounding),
        cmocka_unit_test(test_sort_sizes),
        cmocka_unit_test(test_rounding_matches_printf),
        cmocka_unit_test(test_drop_paths),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_out_cap),
        cmocka_unit_test(test_key_openai_fields),
        cmocka_unit_test(test_key_stream_flag),
        cmocka_unit_test(test_key_anthropic_fields),
        cmocka_unit_test(test_key_google_fields),
        cmocka_unit_test(test_key_bedrock_fields),
        cmocka_unit_test(test_key_query_params),
        cmocka_unit_test(test_key_headers),
        cmocka_unit_test(test_key_scope),
        cmocka_unit_test(test_key_scope_query_secret),
        cmocka_unit_test(test_key_sigv4),
        cmocka_unit_test(test_key_errors_and_empty_body),
        cmocka_unit_test(test_key_material_layout),
        cmocka_unit_test(test_provider_cache_data),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
