/* libFuzzer target for src/cache/canon.c, which reads every cacheable
 * request body (from clients) to build its cache key.
 *
 * The input is the document, in an exact-size block (libFuzzer's and the
 * replayer's), so AddressSanitizer flags a read past len. The target traps
 * when:
 *  - the result is not 0, RD_EPROTO or RD_ETOOBIG;
 *  - the rules change whether a document is accepted (dropped and rounded
 *    values are validated all the same);
 *  - the canonical form is not a fixed point: canonicalising it again, with
 *    the same rules, gives other bytes or an error;
 *  - a small cap on out is passed, or the result under it is not 0 or
 *    RD_ETOOBIG where the full run succeeded;
 *  - on a document json-c parses strictly, the canonical form is not one
 *    json-c parses to an equal tree (json-c keeps the last duplicate too);
 *    documents with \u0000 (json-c cuts its keys at a NUL) or surrogate
 *    escapes (json-c replaces a lone one) are left out.
 * json-c is no judge of what is valid: even in strict mode it takes "1."
 * and "-0777", which RFC 8259 (and canon.c) refuse; the unit tests hold
 * the grammar. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "cache/canon.h"
#include "check.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/json.h"

static const char *const drop[] = {"stream", "metadata.user_id", "a.*.b", "*", NULL};
static const char *const round2[] = {"temperature", "top_p", "generationConfig.temperature", "a.*", NULL};
static const struct rd_canon_rules rules = {.drop = drop, .round2 = round2};
/* A copy of the rules without the "*" that drops every top-level member
 * (which would hide most of the others). */
static const char *const drop_some[] = {"stream", "metadata.user_id", "a.*.b", NULL};
static const struct rd_canon_rules some = {.drop = drop_some, .round2 = round2};

/* rd_canon_json into a fresh buffer with cap max (0: none). */
static int canon(const char *doc, size_t len, const struct rd_canon_rules *r, size_t max, struct rd_buf *out)
{
    rd_buf_init(out, max);
    int rc = rd_canon_json(doc, len, r, out);
    CHECK(rc == 0 || rc == RD_EPROTO || rc == RD_ETOOBIG);
    CHECK(max == 0 || out->len <= max);
    return rc;
}

/* Canonicalising a canonical form again changes nothing. */
static void check_fixed_point(const struct rd_buf *first, const struct rd_canon_rules *r)
{
    char *copy = malloc(first->len ? first->len : 1);
    CHECK(copy != NULL);
    memcpy(copy, first->data, first->len);
    struct rd_buf again;
    CHECK(canon(copy, first->len, r, 0, &again) == 0);
    CHECK(again.len == first->len && memcmp(again.data, first->data, first->len) == 0);
    rd_buf_free(&again);
    free(copy);
}

/* Escapes json-c reads its own way: \u0000 (it cuts keys there) and
 * surrogates (canon.h keeps a lone one distinct; json-c replaces it). */
static bool has_unequal_escapes(const uint8_t *d, size_t n)
{
    return memmem(d, n, "\\u0000", 6) || memmem(d, n, "\\ud", 3) || memmem(d, n, "\\uD", 3);
}

/* The canonical form means what the document means, by json-c's reading. */
static void check_same_tree(const uint8_t *data, size_t size, const struct rd_buf *plain, int rc)
{
    struct json_object *in = NULL, *out = NULL;
    if (rc != 0 || rd_json_parse((const char *)data, size, SIZE_MAX, &in, NULL) != 0)
        return;
    if (!has_unequal_escapes(data, size) && rd_json_parse(plain->data, plain->len, SIZE_MAX, &out, NULL) == 0)
        CHECK(json_object_equal(in, out));
    json_object_put(in);
    json_object_put(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1u << 20)
        return 0;
    const char *doc = (const char *)data;
    struct rd_buf plain, all, part;
    int rc = canon(doc, size, NULL, 0, &plain);
    /* the rules never change whether a document is valid */
    CHECK(canon(doc, size, &rules, 0, &all) == rc);
    CHECK(canon(doc, size, &some, 0, &part) == rc);
    if (rc == 0) {
        check_fixed_point(&plain, NULL);
        check_fixed_point(&all, &rules);
        check_fixed_point(&part, &some);
        /* under a cap just short of the result: refused, never overrun */
        if (plain.len > 1) { /* a cap of 0 is none */
            struct rd_buf small;
            CHECK(canon(doc, size, NULL, plain.len - 1, &small) == RD_ETOOBIG);
            rd_buf_free(&small);
        }
    }
    check_same_tree(data, size, &plain, rc);
    rd_buf_free(&plain);
    rd_buf_free(&all);
    rd_buf_free(&part);
    return 0;
}
