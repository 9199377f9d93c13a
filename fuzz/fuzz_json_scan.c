/* libFuzzer target for src/util/json_scan.c, which reads the model of every
 * request body (from clients) and the usage of every response (from
 * upstreams) without building a tree.
 *
 * The input is the document, in an exact-size block (libFuzzer's and the
 * replayer's), so AddressSanitizer flags a read past len. For a few paths
 * the proxy uses (and some generic ones) the target traps when:
 *  - a result is not 0, RD_EPROTO or RD_ENOTFOUND, or a span is empty or
 *    outside the document;
 *  - a nested find succeeds while its parent does not, or lands outside the
 *    parent's span;
 *  - rd_json_scan_string with a small cap writes past it, returns more than
 *    cap - 1, is not NUL-terminated, or is not a prefix of the result with a
 *    large cap;
 *  - on a document json-c parses strictly (and free of control bytes and
 *    \u escapes, whose handling is documented to differ), the scanner
 *    reports malformed input, misses or invents a key json-c has, returns a
 *    span that is not one complete JSON value, or decodes a string
 *    differently from json-c;
 *  - rd_json_scan_find_top disagrees with rd_json_scan_find on such a
 *    document (found or not; without duplicate keys, the same span). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "util/err.h"
#include "util/json.h"
#include "util/json_scan.h"
#include "check.h"


#define MAX_PATH 4

static const char *const paths[][MAX_PATH + 1] = {
    {"model", NULL},
    {"usage", NULL},
    {"response", "usage", NULL},
    {"usage", "prompt_tokens_details", "cached_tokens", NULL},
    {"usage", "prompt_tokens", NULL},
    {"a", NULL},
    {"a", "b", NULL},
    {"a", "b", "c", NULL},
    {"", NULL},
    {NULL},
};

#define NPATHS (sizeof paths / sizeof paths[0])

static const size_t caps[] = {1, 2, 3, 8, 64};

/* json-c's value at path in doc, NULL if some level is missing or no object. */
static struct json_object *jc_get(struct json_object *doc, const char *const *path)
{
    struct json_object *v = doc;
    for (size_t i = 0; path[i]; i++) {
        if (!json_object_is_type(v, json_type_object))
            return NULL;
        struct json_object *next = NULL;
        if (!json_object_object_get_ex(v, path[i], &next))
            return NULL;
        /* a JSON null is a present key; keep a marker that is not NULL */
        v = next ? next : (struct json_object *)doc;
        if (next == NULL && path[i + 1])
            return NULL;
    }
    return v;
}

static bool jc_has(struct json_object *doc, const char *const *path)
{
    return jc_get(doc, path) != NULL;
}

static void check_strings(const char *doc, size_t len, const char *const *path, int found)
{
    char big[4096];
    int rb = rd_json_scan_string(doc, len, path, big, sizeof big);
    CHECK(rb == RD_EPROTO || rb == RD_ENOTFOUND || (rb >= 0 && (size_t)rb < sizeof big && big[rb] == '\0'));
    if (found != 0)
        CHECK(rb < 0); /* no value, no string */
    for (size_t c = 0; c < sizeof caps / sizeof caps[0]; c++) {
        char out[65];
        memset(out, '#', sizeof out);
        int r = rd_json_scan_string(doc, len, path, out, caps[c]);
        CHECK(out[caps[c]] == '#');
        if (rb < 0) {
            CHECK(r == rb);
            continue;
        }
        size_t want = (size_t)rb < caps[c] - 1 ? (size_t)rb : caps[c] - 1;
        CHECK(r >= 0 && (size_t)r == want && out[r] == '\0' && memcmp(out, big, want) == 0);
    }
    /* cap 0 writes nothing; it need not decode, so a malformed escape may
     * go unnoticed there */
    char none = '#';
    int r0 = rd_json_scan_string(doc, len, path, &none, 0);
    CHECK(none == '#');
    CHECK(rb == RD_ENOTFOUND ? r0 == rb : rb == RD_EPROTO ? (r0 == rb || r0 == 0) : r0 == 0);
}

static bool has_control(const uint8_t *d, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (d[i] < 0x20 && d[i] != ' ' && d[i] != '\t' && d[i] != '\n' && d[i] != '\r')
            return true;
    /* raw TAB/LF/CR are only whitespace outside strings; json-c accepts them
     * inside, the scanner (rightly) does not: look for them inside strings */
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        if (in_str && d[i] == '\\') {
            i++;
            continue;
        }
        if (d[i] == '"')
            in_str = !in_str;
        else if (in_str && d[i] < 0x20)
            return true;
    }
    return false;
}

/* General invariants over doc[0..len) (any bytes). If valid (a strictly
 * valid JSON object), also: nothing is malformed, and what is found is one
 * complete JSON value. If tree is not NULL (json-c's tree of a document
 * without duplicate keys), the scanner must find exactly what json-c has. */
static void scan(const char *doc, size_t len, bool valid, struct json_object *tree)
{
    struct rd_json_span spans[NPATHS];
    int rcs[NPATHS];
    for (size_t k = 0; k < NPATHS; k++) {
        struct rd_json_span v = {NULL, 0};
        int rc = rd_json_scan_find(doc, len, paths[k], &v);
        rcs[k] = rc;
        spans[k] = v;
        CHECK(rc == 0 || rc == RD_EPROTO || rc == RD_ENOTFOUND);
        if (rc == 0)
            CHECK(v.p >= doc && v.n > 0 && v.p + v.n <= doc + len);
        check_strings(doc, len, paths[k], rc);
        if (!valid)
            continue;
        CHECK(rc != RD_EPROTO);
        if (tree)
            CHECK((rc == 0) == (paths[k][0] == NULL || jc_has(tree, paths[k])));
        if (rc != 0)
            continue;
        /* the span is exactly one JSON value */
        struct json_object *jv = NULL;
        CHECK(rd_json_parse(v.p, v.n, SIZE_MAX, &jv, NULL) == 0);
        CHECK(v.p[0] != ' ' && v.p[v.n - 1] != ' ' && v.p[v.n - 1] != '\n');
        if (json_object_is_type(jv, json_type_string)) {
            char out[4096];
            int n = rd_json_scan_string(doc, len, paths[k], out, sizeof out);
            size_t jl = (size_t)json_object_get_string_len(jv);
            if (jl < sizeof out)
                CHECK(n >= 0 && (size_t)n == jl && memcmp(out, json_object_get_string(jv), jl) == 0);
            if (tree && paths[k][0]) {
                struct json_object *tv = jc_get(tree, paths[k]);
                CHECK(json_object_is_type(tv, json_type_string));
                CHECK((size_t)json_object_get_string_len(tv) == jl &&
                      memcmp(json_object_get_string(tv), json_object_get_string(jv), jl) == 0);
            }
        }
        json_object_put(jv);
    }
    /* rd_json_scan_find_top (the usage readers' tail search) for one-key
     * paths: a span inside the document always; on a valid document it
     * finds a key exactly when the full walk does, one complete value, and
     * without duplicate keys (tree) the very same span */
    for (size_t k = 0; k < NPATHS; k++) {
        if (paths[k][0] == NULL || paths[k][1] != NULL)
            continue;
        struct rd_json_span t = {NULL, 0};
        int rt = rd_json_scan_find_top(doc, len, paths[k][0], &t);
        CHECK(rt == 0 || rt == RD_EPROTO || rt == RD_ENOTFOUND);
        if (rt == 0)
            CHECK(t.p >= doc && t.n > 0 && t.p + t.n <= doc + len);
        if (!valid)
            continue;
        CHECK((rt == 0) == (rcs[k] == 0));
        if (rt == 0) {
            struct json_object *jv = NULL;
            CHECK(rd_json_parse(t.p, t.n, SIZE_MAX, &jv, NULL) == 0);
            json_object_put(jv);
        }
        if (tree && rt == 0)
            CHECK(t.p == spans[k].p && t.n == spans[k].n);
    }
    /* nesting: {"a","b"} and {"a","b","c"} sit inside {"a"}, usage's
     * children inside usage */
    static const size_t parent_of[][2] = {{6, 5}, {7, 6}, {3, 1}, {4, 1}};
    for (size_t i = 0; i < sizeof parent_of / sizeof parent_of[0]; i++) {
        size_t c = parent_of[i][0], p = parent_of[i][1];
        if (rcs[c] != 0)
            continue;
        /* found inside a parent the document then fails to close (the
         * scanner does not validate what follows the value): the parent
         * is malformed, never absent */
        CHECK(rcs[p] == 0 || rcs[p] == RD_EPROTO);
        if (rcs[p] == 0) {
            CHECK(spans[p].p[0] == '{');
            CHECK(spans[c].p > spans[p].p && spans[c].p + spans[c].n < spans[p].p + spans[p].n);
        }
    }
}

/* rd_json_scan_members and rd_json_span_int64 (the usage reader's parts):
 * every key and value lies inside the object, and an integer the scanner
 * accepts is one json-c reads the same. */
struct members {
    const char *doc;
    size_t len;
    int n;
};

static int on_member(void *ud, const char *key, size_t key_len, bool escaped, struct rd_json_span v)
{
    struct members *m = ud;
    (void)escaped;
    CHECK(key >= m->doc && key + key_len <= m->doc + m->len);
    CHECK(v.p >= key + key_len && v.p + v.n <= m->doc + m->len && v.n > 0);
    int64_t x;
    if (rd_json_span_int64(v, &x) == 0) {
        char buf[32];
        CHECK(v.n < sizeof buf);
        memcpy(buf, v.p, v.n);
        buf[v.n] = '\0';
        CHECK(strtoll(buf, NULL, 10) == x);
    }
    if (v.p[0] == '{') {
        struct members inner = {v.p, v.n, 0};
        (void)rd_json_scan_members(v.p, v.n, on_member, &inner);
    }
    return ++m->n > 10000;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1u << 20)
        return 0;
    struct json_object *jdoc = NULL;
    bool parsed = rd_json_parse((const char *)data, size, SIZE_MAX, &jdoc, NULL) == 0 &&
                  json_object_is_type(jdoc, json_type_object);
    scan((const char *)data, size, parsed && !has_control(data, size), NULL);
    struct members m = {(const char *)data, size, 0};
    int mrc = rd_json_scan_members((const char *)data, size, on_member, &m);
    CHECK(!parsed || has_control(data, size) || mrc >= 0);
    if (parsed) {
        /* json-c's own rendering has no duplicate keys: there the scanner
         * and json-c must agree on every path (keys with \u escapes aside,
         * and none of the paths needs one) */
        size_t n = 0;
        const char *canon =
            json_object_to_json_string_length(jdoc, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
        char *copy = malloc(n ? n : 1);
        CHECK(copy != NULL);
        memcpy(copy, canon, n);
        scan(copy, n, true, jdoc);
        free(copy);
    }
    json_object_put(jdoc);
    return 0;
}
