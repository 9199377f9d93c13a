/* libFuzzer target for the TTL policy (src/cache/ttl.c): any bytes through
 * the JSON parser, rd_config_validate and rd_cache_ttl_compile. Checks that
 * the schema and the compiler agree (a valid document compiles; a document
 * refused for its cache_ttl block is refused by the compiler with the same
 * field and message), and the policy's invariants on probes: a TTL never
 * past the schema's bound, a truncated answer never kept longer than a
 * complete one, an exact by_model name giving its own TTL outside peak
 * hours, and a hit that never shortens or revives an entry. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cache/ttl.h"
#include "check.h"
#include "proxy/config.h"
#include "util/err.h"
#include "util/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TTL_BOUND 315360000u
#define T0 INT64_C(1796169600000) /* 2026-12-02 00:00 UTC */

static const enum rd_req_kind kinds[] = {RD_REQ_OTHER,     RD_REQ_CHAT,   RD_REQ_COMPLETION, RD_REQ_EMBEDDING,
                                         RD_REQ_RESPONSES, RD_REQ_MODELS, RD_REQ_TOKENS};
static const int64_t times[] = {T0, T0 + 9 * 3600000, T0 + 23 * 3600000 + 59 * 60000, T0 + 3 * 86400000, -1800000};

static void probe(const struct rd_cache_ttl *t, const char *model)
{
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
            uint32_t full = rd_cache_ttl_for(t, model, kinds[k], "", times[i]);
            uint32_t cut = rd_cache_ttl_for(t, model, kinds[k], "length", times[i]);
            CHECK(full <= TTL_BOUND);
            CHECK(cut <= full);
        }
    }
}

static void probe_hits(const struct rd_cache_ttl *t)
{
    for (uint64_t hits = 0; hits < 12; hits++) {
        int64_t exp = T0 + 100000;
        int64_t got = rd_cache_ttl_on_hit(t, T0, 100, hits, exp, T0 + 50000);
        CHECK(got >= exp);
        CHECK(rd_cache_ttl_on_hit(t, T0, 100, hits, exp, exp) == exp);
    }
}

/* Without peak hours, an exact model name (no '*' or '?') is its own TTL. */
static void probe_exact(const struct rd_cache_ttl *t, struct json_object *blk)
{
    struct json_object *by_model = rd_json_get(blk, "by_model");
    if (by_model == NULL)
        return;
    json_object_object_foreach(by_model, name, value)
    {
        probe(t, name);
        if (rd_json_get(blk, "peak_hours") == NULL && strpbrk(name, "*?") == NULL)
            CHECK(rd_cache_ttl_for(t, name, RD_REQ_CHAT, "", T0) == (uint32_t)json_object_get_int64(value));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct json_object *doc = NULL;
    struct rd_json_err jerr;
    if (rd_json_parse((const char *)data, size, 1u << 20, &doc, &jerr) != 0)
        return 0;
    struct rd_config_err verr, cerr;
    int vrc = rd_config_validate(doc, &verr);
    struct rd_cache_ttl *t = NULL;
    int crc = rd_cache_ttl_compile(doc, &t, &cerr);
    CHECK(crc == 0 || crc == RD_EINVAL);
    CHECK((crc == 0) == (t != NULL));
    if (vrc == 0)
        CHECK(crc == 0);
    /* The block alone decides: another block's error (or a block named
     * "cache_ttl.x") is not the compiler's business. */
    struct json_object *blk = rd_json_get(doc, "cache_ttl");
    if (blk != NULL) {
        struct json_object *wrap = json_object_new_object();
        json_object_object_add(wrap, "cache_ttl", json_object_get(blk));
        int brc = rd_config_validate(wrap, &verr);
        json_object_put(wrap);
        CHECK((brc == 0) == (crc == 0));
        if (brc != 0)
            CHECK(strcmp(verr.field, cerr.field) == 0 && strcmp(verr.message, cerr.message) == 0);
    } else {
        CHECK(crc == 0);
    }
    if (t != NULL) {
        static const char *const models[] = {"", "gpt-4o", "gpt-4o-mini", "claude-3-opus", "a", "*", "?"};
        for (size_t i = 0; i < sizeof models / sizeof models[0]; i++)
            probe(t, models[i]);
        probe(t, NULL);
        probe_hits(t);
        probe_exact(t, rd_json_get(doc, "cache_ttl"));
    }
    rd_cache_ttl_free(t);
    json_object_put(doc);
    return 0;
}
