/* Tests for src/util/json_scan.c: the one-pass scanner that reads the model
 * of every request and the usage of every response without building a tree.
 * What matters to a user: the value found is the one at the asked level (a
 * key inside a string or a nested object must not be taken for it), strings
 * come out decoded and within the caller's cap, and hostile or truncated
 * bodies give an error rather than a wrong value or a read past the body.
 * Every document is copied to the very end of a heap block exactly as long
 * as the document (no NUL after it), so AddressSanitizer flags any read past
 * len. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/err.h"
#include "util/json.h"
#include "util/json_scan.h"

#define PATH(...) ((const char *const[]){__VA_ARGS__, NULL})

static char *exact_copy(const char *doc, size_t len)
{
    char *p = malloc(len ? len : 1);
    assert_non_null(p);
    memcpy(p, doc, len);
    return p;
}

/* rd_json_scan_find over doc[0..len) in an exact-size block; on success the
 * span's text is copied into span (NUL-terminated, must fit). */
static int find_n(const char *doc, size_t len, const char *const *path, char *span, size_t cap)
{
    char *p = exact_copy(doc, len);
    struct rd_json_span v = {NULL, 0};
    int rc = rd_json_scan_find(p, len, path, &v);
    if (rc == 0) {
        assert_true(v.p >= p && v.n > 0 && v.p + v.n <= p + len);
        assert_true(v.n < cap);
        memcpy(span, v.p, v.n);
        span[v.n] = '\0';
    } else {
        assert_true(rc == RD_EPROTO || rc == RD_ENOTFOUND);
    }
    free(p);
    return rc;
}

static int find(const char *doc, const char *const *path, char *span, size_t cap)
{
    return find_n(doc, strlen(doc), path, span, cap);
}

/* Asserts that path is found in doc with exactly the text want. */
static void expect_span(const char *doc, const char *const *path, const char *want)
{
    char span[4096];
    int rc = find(doc, path, span, sizeof span);
    if (rc != 0)
        print_error("%s: %s\n", doc, rd_strerror(rc));
    assert_int_equal(rc, 0);
    assert_string_equal(span, want);
}

static void expect_rc(const char *doc, const char *const *path, int want)
{
    char span[4096];
    int rc = find(doc, path, span, sizeof span);
    if (rc != want)
        print_error("doc <%s>: got %s (span <%s>), wanted %s\n", doc, rc == 0 ? "found" : rd_strerror(rc),
                    rc == 0 ? span : "", rd_strerror(want));
    assert_int_equal(rc, want);
}

/* rd_json_scan_string over an exact-size copy. out gets one guard byte
 * after cap so a write past cap is seen. */
static int string_n(const char *doc, size_t len, const char *const *path, char *out, size_t cap)
{
    char *p = exact_copy(doc, len);
    char *o = malloc(cap + 1);
    assert_non_null(o);
    memset(o, '#', cap + 1);
    int rc = rd_json_scan_string(p, len, path, o, cap);
    assert_int_equal(o[cap], '#');
    if (rc >= 0 && cap > 0) {
        assert_true((size_t)rc < cap);
        assert_int_equal(o[rc], '\0');
    }
    memcpy(out, o, cap);
    free(o);
    free(p);
    return rc;
}

static int string_of(const char *doc, const char *const *path, char *out, size_t cap)
{
    return string_n(doc, strlen(doc), path, out, cap);
}

/* ---- finding ---- */

static const char usage_doc[] = "{\"id\":\"chatcmpl-1\",\"model\":\"gpt-4o\",\"usage\":{\"prompt_tokens\":12,"
                                "\"completion_tokens\":5,\"prompt_tokens_details\":{\"cached_tokens\":3}},\"n\":1}";

static void test_top_level_and_nested(void **state)
{
    (void)state;
    expect_span(usage_doc, PATH("model"), "\"gpt-4o\"");
    expect_span(usage_doc, PATH("n"), "1");
    expect_span(usage_doc, PATH("usage", "prompt_tokens"), "12");
    expect_span(usage_doc, PATH("usage", "prompt_tokens_details", "cached_tokens"), "3");
    /* a container is returned whole, exactly its bytes */
    expect_span(usage_doc, PATH("usage", "prompt_tokens_details"), "{\"cached_tokens\":3}");
    expect_span(usage_doc, PATH("usage"),
                "{\"prompt_tokens\":12,\"completion_tokens\":5,\"prompt_tokens_details\":{\"cached_tokens\":3}}");
    /* the empty path is the document */
    expect_span(" {\"a\":1} ", (const char *const[]){NULL}, "{\"a\":1}");
    expect_rc(usage_doc, PATH("missing"), RD_ENOTFOUND);
    expect_rc(usage_doc, PATH("usage", "missing"), RD_ENOTFOUND);
    expect_rc(usage_doc, PATH("usage", "prompt_tokens", "x"), RD_ENOTFOUND); /* 12 is no object */
    expect_rc(usage_doc, PATH("model", "x"), RD_ENOTFOUND);
    expect_rc("{}", PATH("model"), RD_ENOTFOUND);
    expect_rc("{ \n }", PATH("model"), RD_ENOTFOUND);
    /* a prefix or an extension of a key is another key */
    expect_rc("{\"mode\":1,\"models\":2,\"Model\":3}", PATH("model"), RD_ENOTFOUND);
}

static void test_only_the_right_level_matches(void **state)
{
    (void)state;
    /* "model" inside a string, an array, a nested object, as a value */
    static const char doc[] = "{\"messages\":[{\"role\":\"user\",\"content\":\"{\\\"model\\\": \\\"evil\\\"}\"},"
                              "{\"model\":\"in-array\"}],\"meta\":{\"model\":\"nested\",\"x\":{\"model\":2}},"
                              "\"k\":\"model\",\"tricky\":\"\\\\\",\"model\":\"real\"}";
    expect_span(doc, PATH("model"), "\"real\"");
    expect_span(doc, PATH("meta", "model"), "\"nested\"");
    expect_span(doc, PATH("meta", "x", "model"), "2");
    /* present only below the top level: not found at the top */
    expect_rc("{\"meta\":{\"model\":\"nested\"},\"list\":[{\"model\":\"a\"}],\"s\":\"\\\"model\\\":\\\"b\\\"\"}",
              PATH("model"), RD_ENOTFOUND);
    /* a value equal to the key is no key */
    expect_rc("{\"a\":\"model\",\"b\":[\"model\",\"model\"]}", PATH("model"), RD_ENOTFOUND);
    /* brackets and quotes inside strings do not change the depth */
    expect_span("{\"a\":[\"}{][\",{\"b\":\"]}\"}],\"c\":{\"d\":\"{{{\"},\"model\":\"m\"}", PATH("model"), "\"m\"");
    /* the usage of a responses API event is under "response" */
    static const char ev[] =
        "{\"type\":\"response.completed\",\"response\":{\"id\":\"resp_1\",\"output\":[{\"usage\":1}],"
        "\"usage\":{\"input_tokens\":9,\"output_tokens\":2}}}";
    expect_rc(ev, PATH("usage"), RD_ENOTFOUND);
    expect_span(ev, PATH("response", "usage"), "{\"input_tokens\":9,\"output_tokens\":2}");
}

static void test_escaped_keys(void **state)
{
    (void)state;
    expect_span("{\"a\\\"b\":1}", PATH("a\"b"), "1");
    expect_span("{\"a\\\\b\":2}", PATH("a\\b"), "2");
    expect_span("{\"a\\/b\":3}", PATH("a/b"), "3");
    expect_span("{\"\\n\\t\\r\\b\\f\":4}", PATH("\n\t\r\b\f"), "4");
    /* an escaped quote does not end the key early */
    expect_span("{\"model\\\":\\\"fake\":1,\"model\":\"real\"}", PATH("model"), "\"real\"");
    expect_rc("{\"model\\\\\":1}", PATH("model"), RD_ENOTFOUND);
    /* documented: keys with \u escapes never match (and are skipped cleanly) */
    expect_rc("{\"mod\\u0065l\":\"x\"}", PATH("model"), RD_ENOTFOUND);
    expect_span("{\"mod\\u0065l\":\"x\",\"model\":\"y\"}", PATH("model"), "\"y\"");
}

static void test_string_values(void **state)
{
    (void)state;
    char out[128];
    assert_int_equal(string_of(usage_doc, PATH("model"), out, sizeof out), 6);
    assert_string_equal(out, "gpt-4o");
    assert_int_equal(string_of("{\"model\":\"\"}", PATH("model"), out, sizeof out), 0);
    assert_string_equal(out, "");
    /* escapes are decoded (through json-c): quote, backslash, slash,
     * control escapes, BMP and surrogate-pair \u escapes */
    static const char esc[] = "{\"model\":\"a\\\"b\\\\c\\/d\\n\\t\\u00e9\\ud83d\\ude00\"}";
    static const char want[] = "a\"b\\c/d\n\t\xc3\xa9\xf0\x9f\x98\x80";
    assert_int_equal(string_of(esc, PATH("model"), out, sizeof out), (int)strlen(want));
    assert_string_equal(out, want);
    /* nested string */
    assert_int_equal(string_of("{\"a\":{\"b\":\"x\\ty\"}}", PATH("a", "b"), out, sizeof out), 3);
    assert_string_equal(out, "x\ty");
    /* not a string: not found (the model must be a string) */
    const char *not_strings[] = {"{\"model\":123}", "{\"model\":null}", "{\"model\":true}", "{\"model\":{\"a\":\"b\"}}",
                                 "{\"model\":[\"x\"]}"};
    for (size_t i = 0; i < sizeof not_strings / sizeof not_strings[0]; i++)
        assert_int_equal(string_of(not_strings[i], PATH("model"), out, sizeof out), RD_ENOTFOUND);
    assert_int_equal(string_of("{\"a\":1}", PATH("model"), out, sizeof out), RD_ENOTFOUND);
    assert_int_equal(string_of("[\"model\"]", PATH("model"), out, sizeof out), RD_ENOTFOUND);
    /* invalid escapes are malformed */
    assert_int_equal(string_of("{\"model\":\"a\\x\"}", PATH("model"), out, sizeof out), RD_EPROTO);
    assert_int_equal(string_of("{\"model\":\"a\\u12\"}", PATH("model"), out, sizeof out), RD_EPROTO);
    assert_int_equal(string_of("{\"model\":\"gpt", PATH("model"), out, sizeof out), RD_EPROTO);
}

static void test_string_truncated_to_cap(void **state)
{
    (void)state;
    char out[16];
    /* plain and escaped strings alike: at most cap - 1 bytes, NUL-terminated */
    static const char *const docs[] = {"{\"model\":\"gpt-4o\"}", "{\"model\":\"gpt\\u002d4o\"}"};
    for (size_t d = 0; d < 2; d++) {
        assert_int_equal(string_of(docs[d], PATH("model"), out, 7), 6);
        assert_string_equal(out, "gpt-4o");
        assert_int_equal(string_of(docs[d], PATH("model"), out, 6), 5);
        assert_string_equal(out, "gpt-4");
        assert_int_equal(string_of(docs[d], PATH("model"), out, 4), 3);
        assert_string_equal(out, "gpt");
        assert_int_equal(string_of(docs[d], PATH("model"), out, 1), 0);
        assert_string_equal(out, "");
        /* cap 0: nothing written (the guard byte check is in string_n) */
        assert_int_equal(string_of(docs[d], PATH("model"), out, 0), 0);
    }
}

static void test_big_numbers_left_as_text(void **state)
{
    (void)state;
    static const char doc[] = "{\"big\":123456789012345678901234567890,\"neg\":-9223372036854775809,"
                              "\"f\":-1.5e+300,\"t\":true,\"z\":null,\"last\":18446744073709551616}";
    expect_span(doc, PATH("big"), "123456789012345678901234567890");
    expect_span(doc, PATH("neg"), "-9223372036854775809");
    expect_span(doc, PATH("f"), "-1.5e+300");
    expect_span(doc, PATH("t"), "true");
    expect_span(doc, PATH("z"), "null");
    expect_span(doc, PATH("last"), "18446744073709551616");
}

static void test_whitespace_everywhere(void **state)
{
    (void)state;
    static const char doc[] = " \t\r\n{ \t\r\n\"a\" \t\r\n: \t\r\n{ \"b\" :\n 7 \n} , \"s\"\r\n:\t\"x y\"\n,\n"
                              "\"arr\" : [ 1 , { \"model\" : 0 } ] , \"model\"\r\n:\t\"m\" }\n\t ";
    expect_span(doc, PATH("a", "b"), "7");
    expect_span(doc, PATH("a"), "{ \"b\" :\n 7 \n}");
    expect_span(doc, PATH("model"), "\"m\"");
    expect_span(doc, PATH("arr"), "[ 1 , { \"model\" : 0 } ]");
    char out[16];
    assert_int_equal(string_of(doc, PATH("s"), out, sizeof out), 3);
    assert_string_equal(out, "x y");
}

/* ---- hostile and truncated input ---- */

#define NOT_FOUND_OR_MALFORMED 1

static void test_malformed(void **state)
{
    (void)state;
    /* each must fail cleanly (no value, no read past the end) */
    static const struct {
        const char *doc;
        int rc;
    } cases[] = {
        {"", RD_EPROTO},
        {" \n\t", RD_EPROTO},
        {"{", RD_EPROTO},
        {"{ ", RD_EPROTO},
        {"{\"", RD_EPROTO},
        {"{\"mod", RD_EPROTO},
        {"{\"model\"", RD_EPROTO},
        {"{\"model\" ", RD_EPROTO},
        {"{\"model\":", RD_EPROTO},
        {"{\"model\": ", RD_EPROTO},
        {"{\"model\":\"gpt", RD_EPROTO},
        {"{\"model\":\"gpt\\", RD_EPROTO},
        {"{\"model\":\"gpt\\\"", RD_EPROTO},
        {"{\"model\":}", RD_EPROTO},
        {"{\"model\":,\"a\":1}", RD_EPROTO},
        {"{\"a\":\"x\\", RD_EPROTO},
        {"{\"a\":\"x", RD_EPROTO},
        {"{\"a\":{\"b\":[1,2,{\"c\":3}", RD_EPROTO},
        {"{\"a\":[[[[", RD_EPROTO},
        {"{\"a\":{\"b\":\"}\"", RD_EPROTO},
        {"{\"a\":1", RD_EPROTO},
        {"{\"a\":1,", RD_EPROTO},
        {"{\"a\":1,}", RD_EPROTO},
        {"{,\"model\":1}", RD_EPROTO},
        {"{\"a\":1 \"model\":2}", RD_EPROTO},
        {"{\"a\" 1,\"model\":2}", RD_EPROTO},
        /* scalars are skipped up to a delimiter without checking their form
         * (documented), so this one may read as not found */
        {"{\"a\":1;\"model\":2}", NOT_FOUND_OR_MALFORMED},
        {"{a:1,\"model\":2}", RD_EPROTO},
        {"{'model':'x'}", RD_EPROTO},
        {"{\"a\":}", RD_EPROTO},
        /* raw control characters in strings, before or in the value */
        {"{\"a\":\"line\nbreak\",\"model\":\"m\"}", RD_EPROTO},
        {"{\"a\":\"tab\there\",\"model\":\"m\"}", RD_EPROTO},
        {"{\"model\":\"a\x01"
         "b\"}",
         RD_EPROTO},
        {"{\"mo\x1f"
         "del\":1,\"model\":\"m\"}",
         RD_EPROTO},
        /* a complete object without the key */
        {"{\"a\":1}", RD_ENOTFOUND},
        {"{\"a\":[1,{\"model\":2}]}", RD_ENOTFOUND},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (cases[i].rc == NOT_FOUND_OR_MALFORMED) {
            char span[64];
            assert_int_not_equal(find(cases[i].doc, PATH("model"), span, sizeof span), 0);
        } else {
            expect_rc(cases[i].doc, PATH("model"), cases[i].rc);
        }
    }
    /* NUL bytes are no whitespace and no string content */
    static const char nul[] = "{\"a\":\"x\0y\",\"model\":\"m\"}";
    char span[64];
    assert_int_equal(find_n(nul, sizeof nul - 1, PATH("model"), span, sizeof span), RD_EPROTO);
    static const char nul_ws[] = "{\"a\":1,\0\"model\":\"m\"}";
    assert_int_equal(find_n(nul_ws, sizeof nul_ws - 1, PATH("model"), span, sizeof span), RD_EPROTO);
}

static void test_mismatched_brackets_rejected(void **state)
{
    (void)state;
    /* The header promises malformed input walked through is rejected: a
     * '}' closing a '[' is not JSON, and a real parser (the upstream's)
     * rejects the whole body, so the scanner must not report a model from
     * it. */
    expect_rc("{\"a\":[1,2},\"model\":\"m\"}", PATH("model"), RD_EPROTO);
    expect_rc("{\"a\":{\"b\":1],\"model\":\"m\"}", PATH("model"), RD_EPROTO);
}

static void test_every_truncation(void **state)
{
    (void)state;
    /* A body cut at any byte (the client or the upstream went away) never
     * yields a string or container other than the whole document's. */
    static const char doc[] =
        "{\"id\":\"x\\\"}\",\"choices\":[{\"delta\":{\"content\":\"{\\\"usage\\\":1}\"}}],"
        "\"model\":\"gpt-4o\",\"usage\":{\"prompt_tokens\":12,\"details\":{\"cached_tokens\":3}}}";
    const char *const *const paths[] = {PATH("model"), PATH("usage"), PATH("usage", "details"), PATH("choices")};
    char full[512], span[512];
    for (size_t k = 0; k < sizeof paths / sizeof paths[0]; k++) {
        assert_int_equal(find(doc, paths[k], full, sizeof full), 0);
        for (size_t len = 0; len < sizeof doc - 1; len++) {
            int rc = find_n(doc, len, paths[k], span, sizeof span);
            if (rc == 0)
                assert_string_equal(span, full);
            char out[64];
            rc = string_n(doc, len, paths[k], out, sizeof out);
            assert_true(rc == RD_EPROTO || rc == RD_ENOTFOUND || (k == 0 && rc == 6));
        }
    }
}

static void test_depth(void **state)
{
    (void)state;
    /* {"k":{"k":...{"k":1}...}} with 65 keys: a path of 64 keys is searched,
     * a longer one is not (RD_JSON_SCAN_MAX_DEPTH) */
    enum { LEVELS = RD_JSON_SCAN_MAX_DEPTH + 1 };
    char doc[LEVELS * 6 + LEVELS + 8];
    size_t n = 0;
    for (int i = 0; i < LEVELS; i++)
        n += (size_t)snprintf(doc + n, sizeof doc - n, "{\"k\":");
    n += (size_t)snprintf(doc + n, sizeof doc - n, "1");
    for (int i = 0; i < LEVELS; i++)
        doc[n++] = '}';
    doc[n] = '\0';
    const char *path[LEVELS + 2];
    for (int i = 0; i < LEVELS + 1; i++)
        path[i] = "k";
    path[RD_JSON_SCAN_MAX_DEPTH] = NULL;
    char span[64];
    assert_int_equal(find(doc, path, span, sizeof span), 0);
    assert_string_equal(span, "{\"k\":1}");
    path[RD_JSON_SCAN_MAX_DEPTH] = "k";
    path[LEVELS] = NULL;
    assert_int_equal(find(doc, path, span, sizeof span), RD_ENOTFOUND);

    /* skipping is not recursive: 100000 nested arrays before the key */
    enum { DEEP = 100000 };
    char *big = malloc(2 * DEEP + 64);
    assert_non_null(big);
    n = (size_t)snprintf(big, 64, "{\"a\":");
    memset(big + n, '[', DEEP);
    n += DEEP;
    memset(big + n, ']', DEEP);
    n += DEEP;
    memcpy(big + n, ",\"model\":\"m\"}", 13);
    n += 13;
    assert_int_equal(find_n(big, n, PATH("model"), span, sizeof span), 0);
    assert_string_equal(span, "\"m\"");
    /* and unterminated, it fails */
    assert_int_equal(find_n(big, 5 + DEEP + DEEP / 2, PATH("model"), span, sizeof span), RD_EPROTO);
    free(big);
}

static void test_non_object_top_level(void **state)
{
    (void)state;
    const char *docs[] = {"[{\"model\":\"x\"}]", "\"model\"", "42", "null", " true ", "[]", "\"{\\\"model\\\":1}\""};
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++)
        expect_rc(docs[i], PATH("model"), RD_ENOTFOUND);
    char out[8];
    assert_int_equal(string_of("[\"x\"]", PATH("model"), out, sizeof out), RD_ENOTFOUND);
}

/* rd_json_scan_find_top over an exact-size copy; span as find_n. */
static int top_n(const char *doc, size_t len, const char *key, char *span, size_t cap)
{
    char *p = exact_copy(doc, len);
    struct rd_json_span v = {NULL, 0};
    int rc = rd_json_scan_find_top(p, len, key, &v);
    if (rc == 0) {
        assert_true(v.p >= p && v.n > 0 && v.p + v.n <= p + len && v.n < cap);
        memcpy(span, v.p, v.n);
        span[v.n] = '\0';
    }
    free(p);
    return rc;
}

static void expect_top(const char *doc, const char *key, int want_rc, const char *want)
{
    char span[256];
    int rc = top_n(doc, strlen(doc), key, span, sizeof span);
    if (rc != want_rc)
        print_error("doc <%s>: got %s, wanted %s\n", doc, rd_strerror(rc), rd_strerror(want_rc));
    assert_int_equal(rc, want_rc);
    if (rc == 0)
        assert_string_equal(span, want);
}

/* The tail search answers what the full walk answers: a "usage" that only
 * looks top-level from the end (inside a string, a nested object, an array,
 * a key's text, a value) is never taken, and a body where usage is not last
 * still finds it (by the full walk). */
static void test_find_top(void **state)
{
    (void)state;
    expect_top("{\"id\":\"x\",\"choices\":[{\"a\":1}],\"usage\":{\"p\":1},\"fp\":\"y\"}", "usage", 0, "{\"p\":1}");
    expect_top(" {\"usage\" : {\"p\":2} }\n", "usage", 0, "{\"p\":2}");
    expect_top("{\"usage\":{\"p\":3},\"choices\":[{\"usage\":{\"p\":9}}]}", "usage", 0, "{\"p\":3}");
    expect_top("{\"usage\":{\"p\":4},\"b\":{\"usage\":{\"p\":9}}}", "usage", 0, "{\"p\":4}");
    expect_top("{\"b\":{\"usage\":{\"p\":9}}}", "usage", RD_ENOTFOUND, NULL);
    expect_top("{\"b\":[{\"usage\":{\"p\":9}}]}", "usage", RD_ENOTFOUND, NULL);
    expect_top("{\"s\":\"{\\\"usage\\\":{}}\"}", "usage", RD_ENOTFOUND, NULL);
    expect_top("{\"a \\\"usage\":{\"p\":9}}", "usage", RD_ENOTFOUND, NULL);
    expect_top("{\"usage\":{\"p\":5},\"k\":\"usage\"}", "usage", 0, "{\"p\":5}");
    expect_top("{\"usage\":null}", "usage", 0, "null");
    expect_top("{\"usage\":{\"p\":1},\"usage\":{\"p\":6}}", "usage", 0, "{\"p\":6}"); /* last wins */
    expect_top("\"usage\"", "usage", RD_ENOTFOUND, NULL);
    expect_top("", "usage", RD_EPROTO, NULL);
    expect_top("{\"usage\":{\"p\":1}", "usage", 0, "{\"p\":1}"); /* unclosed: the full walk's answer */
    expect_top("{\"usage\":{\"p\":1},\"x\"", "usage", 0, "{\"p\":1}");
    /* every truncation of a body: never a read past it, and never a span
     * the full walk would not give */
    const char *doc = "{\"id\":\"c\",\"choices\":[{\"m\":\"\\\"usage\\\"\"}],\"usage\":{\"p\":7},\"z\":[1,{}]}";
    for (size_t n = 0; n <= strlen(doc); n++) {
        char a[256], b[256];
        int rt = top_n(doc, n, "usage", a, sizeof a);
        int rf = find_n(doc, n, PATH("usage"), b, sizeof b);
        assert_int_equal(rt == 0, rf == 0);
        if (rt == 0)
            assert_string_equal(a, b);
    }
}

/* rd_json_parse is strict where json-c's strict mode is not: single-quoted
 * strings and raw control characters inside strings are not JSON. */
static void test_parse_rejects_json_c_leniency(void **state)
{
    (void)state;
    static const struct {
        const char *doc;
        int rc;
        size_t pos;
    } cases[] = {
        {"{\"a\":'b'}", RD_EPROTO, 5},
        {"{'a':1}", RD_EPROTO, 1},
        {"{\"a\":\"x\ty\"}", RD_EPROTO, 7},
        {"{\"a\":\"x\ny\"}", RD_EPROTO, 7},
        {"{\"it's\":\"fine\"}", 0, 0},
        {"{\"a\":\"q\\\"'\"}", 0, 0},
        {" {\"a\" :\t[1,\r\n2]}\n", 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct json_object *o = NULL;
        struct rd_json_err e = {0};
        int rc = rd_json_parse(cases[i].doc, strlen(cases[i].doc), 1024, &o, &e);
        assert_int_equal(rc, cases[i].rc);
        if (rc == 0) {
            assert_non_null(o);
            json_object_put(o);
        } else {
            assert_null(o);
            assert_int_equal(e.pos, cases[i].pos);
            assert_non_null(e.msg);
        }
    }
}

int main(int argc, char **argv)
{
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_top_level_and_nested),
        cmocka_unit_test(test_only_the_right_level_matches),
        cmocka_unit_test(test_escaped_keys),
        cmocka_unit_test(test_string_values),
        cmocka_unit_test(test_string_truncated_to_cap),
        cmocka_unit_test(test_big_numbers_left_as_text),
        cmocka_unit_test(test_whitespace_everywhere),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_mismatched_brackets_rejected),
        cmocka_unit_test(test_every_truncation),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_non_object_top_level),
        cmocka_unit_test(test_find_top),
        cmocka_unit_test(test_parse_rejects_json_c_leniency),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
