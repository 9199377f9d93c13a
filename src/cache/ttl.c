#include "cache/ttl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"
#include "util/json.h"
#include "util/mem.h"

#define MS_PER_S INT64_C(1000)
#define MS_PER_MIN INT64_C(60000)
#define MIN_PER_DAY 1440
#define PPM 1000000u

/* by_request_type: the names that apply to each kind, first set wins.
 * Anthropic's /v1/messages is classified as chat, so "messages" is the
 * second name of a chat request; models and token counts have no name of
 * their own and take "other". */
static const struct {
    enum rd_req_kind kind;
    const char *names[2];
} kind_names[] = {
    {RD_REQ_CHAT, {"chat", "messages"}},     {RD_REQ_COMPLETION, {"completion", NULL}},
    {RD_REQ_EMBEDDING, {"embedding", NULL}}, {RD_REQ_RESPONSES, {"responses", NULL}},
    {RD_REQ_OTHER, {"other", NULL}},         {RD_REQ_MODELS, {"other", NULL}},
    {RD_REQ_TOKENS, {"other", NULL}},
};
#define NKINDS (sizeof kind_names / sizeof kind_names[0])

static const char *const day_names[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};

struct model_rule {
    char *name; /* owned */
    uint32_t ttl_s;
};

struct rd_cache_ttl {
    uint32_t dflt;
    int64_t by_kind[NKINDS];  /* -1: not set */
    struct model_rule *exact; /* sorted by name for bsearch */
    size_t nexact;
    struct model_rule *globs; /* document order: the first match wins */
    size_t nglobs;

    bool usage;
    uint64_t every_hits;
    uint32_t max_s;

    bool peak;
    uint32_t start_min, end_min; /* minutes after midnight UTC; end 1440 = midnight */
    uint8_t days;                /* bit i: day_names[i] */
    uint32_t factor_ppm;         /* the factor in millionths, so scaling is exact integer arithmetic */

    bool content;
    uint32_t truncated_s;
};

/* ---- globs -------------------------------------------------------------- */

static bool is_glob(const char *s)
{
    return strpbrk(s, "*?") != NULL;
}

/* '*' any run of characters, '?' exactly one byte, everything else itself.
 * The classic single-backtrack matcher: a later '*' makes the earlier one's
 * choice final, so the cost is at most pattern length times text length
 * (names are at most 256 bytes), whatever the input. */
static bool glob_match(const char *p, const char *t)
{
    const char *star = NULL, *resume = NULL;
    while (*t) {
        if (*p == '*') {
            star = p++;
            resume = t;
        } else if (*p == '?' || *p == *t) {
            p++;
            t++;
        } else if (star) {
            p = star + 1;
            t = ++resume;
        } else {
            return false;
        }
    }
    while (*p == '*')
        p++;
    return *p == '\0';
}

static int rule_cmp(const void *a, const void *b)
{
    return strcmp(((const struct model_rule *)a)->name, ((const struct model_rule *)b)->name);
}

/* ---- compile ------------------------------------------------------------ */

static void compile_by_model(struct rd_cache_ttl *t, struct json_object *by_model)
{
    size_t n = by_model ? (size_t)json_object_object_length(by_model) : 0;
    t->exact = rd_calloc(n ? n : 1, sizeof t->exact[0]);
    t->globs = rd_calloc(n ? n : 1, sizeof t->globs[0]);
    if (by_model == NULL)
        return;
    /* json-c iterates an object in insertion order, which is document order. */
    json_object_object_foreach(by_model, name, value)
    {
        struct model_rule r = {rd_strdup(name), (uint32_t)json_object_get_int64(value)};
        if (is_glob(name))
            t->globs[t->nglobs++] = r;
        else
            t->exact[t->nexact++] = r;
    }
    qsort(t->exact, t->nexact, sizeof t->exact[0], rule_cmp);
}

static void compile_by_kind(struct rd_cache_ttl *t, struct json_object *by_type)
{
    for (size_t k = 0; k < NKINDS; k++) {
        t->by_kind[k] = -1;
        for (size_t i = 0; i < 2 && kind_names[k].names[i] && t->by_kind[k] < 0; i++) {
            struct json_object *v = rd_json_get(by_type, kind_names[k].names[i]);
            if (v != NULL)
                t->by_kind[k] = json_object_get_int64(v);
        }
    }
}

static void compile_peak(struct rd_cache_ttl *t, struct json_object *peak)
{
    struct json_object *days = rd_json_get(peak, "days");
    t->peak = peak != NULL;
    if (!t->peak)
        return;
    /* Both parse: the block was validated. */
    (void)rd_config_parse_clock(rd_json_get_str(peak, "start"), &t->start_min);
    (void)rd_config_parse_clock(rd_json_get_str(peak, "end"), &t->end_min);
    t->days = days ? 0 : 0x7f;
    for (size_t i = 0; days && i < json_object_array_length(days); i++)
        for (unsigned d = 0; d < 7; d++)
            if (strcmp(json_object_get_string(json_object_array_get_idx(days, i)), day_names[d]) == 0)
                t->days |= (uint8_t)(1u << d);
    t->factor_ppm = (uint32_t)llround(json_object_get_double(rd_json_get(peak, "factor")) * PPM);
}

/* Validates the block alone with the schema's own rules, so that a
 * document that skipped rd_config_validate fails here with the same
 * message instead of compiling to something else. */
static int validate_block(struct json_object *blk, struct rd_config_err *err)
{
    struct json_object *wrap = json_object_new_object();
    json_object_object_add(wrap, "cache_ttl", json_object_get(blk));
    int rc = rd_config_validate(wrap, err);
    json_object_put(wrap);
    return rc;
}

int rd_cache_ttl_compile(struct json_object *doc, struct rd_cache_ttl **out, struct rd_config_err *err)
{
    struct json_object *blk = rd_json_get(doc, "cache_ttl");
    if (blk != NULL) {
        int rc = validate_block(blk, err);
        if (rc != 0)
            return rc;
    }
    struct rd_cache_ttl *t = rd_calloc(1, sizeof *t);
    t->dflt = (uint32_t)rd_json_get_int(blk, "default", RD_CACHE_TTL_DEFAULT);
    compile_by_model(t, rd_json_get(blk, "by_model"));
    compile_by_kind(t, rd_json_get(blk, "by_request_type"));

    struct json_object *usage = rd_json_get(blk, "usage_based");
    t->usage = usage != NULL;
    t->every_hits = (uint64_t)rd_json_get_int(usage, "every_hits", 1);
    t->max_s = (uint32_t)rd_json_get_int(usage, "max_s", 0);

    compile_peak(t, rd_json_get(blk, "peak_hours"));

    struct json_object *content = rd_json_get(blk, "content_based");
    t->content = content != NULL;
    t->truncated_s = (uint32_t)rd_json_get_int(content, "truncated_s", 0);
    *out = t;
    return 0;
}

void rd_cache_ttl_free(struct rd_cache_ttl *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->nexact; i++)
        free(t->exact[i].name);
    for (size_t i = 0; i < t->nglobs; i++)
        free(t->globs[i].name);
    free(t->exact);
    free(t->globs);
    free(t);
}

/* ---- policy ------------------------------------------------------------- */

static uint32_t base_ttl(const struct rd_cache_ttl *t, const char *model, enum rd_req_kind kind)
{
    if (model != NULL && model[0] != '\0') {
        struct model_rule key = {.name = (char *)(uintptr_t)model};
        const struct model_rule *hit = bsearch(&key, t->exact, t->nexact, sizeof t->exact[0], rule_cmp);
        if (hit != NULL)
            return hit->ttl_s;
        for (size_t i = 0; i < t->nglobs; i++)
            if (glob_match(t->globs[i].name, model))
                return t->globs[i].ttl_s;
    }
    for (size_t k = 0; k < NKINDS; k++)
        if (kind_names[k].kind == kind && t->by_kind[k] >= 0)
            return (uint32_t)t->by_kind[k];
    return t->dflt;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static bool day_listed(const struct rd_cache_ttl *t, int64_t epoch_day)
{
    /* 1970-01-01 was a Thursday: index 3 from Monday. */
    int64_t dow = (epoch_day % 7 + 7 + 3) % 7;
    return (t->days >> dow) & 1u;
}

/* Inside [start, end) on a listed day. A window that wraps midnight
 * belongs to the day it starts on: "fri" 22:00-02:00 covers Friday 22:00
 * to Saturday 02:00. */
static bool in_peak(const struct rd_cache_ttl *t, int64_t now_ms)
{
    int64_t minute = floor_div(now_ms, MS_PER_MIN);
    int64_t day = floor_div(minute, MIN_PER_DAY);
    int64_t m = minute - day * MIN_PER_DAY;
    if (t->start_min < t->end_min)
        return m >= t->start_min && m < t->end_min && day_listed(t, day);
    if (m >= t->start_min)
        return day_listed(t, day);
    return m < t->end_min && day_listed(t, day - 1);
}

uint32_t rd_cache_ttl_for(const struct rd_cache_ttl *t, const char *model, enum rd_req_kind kind, const char *finish,
                          int64_t now_ms)
{
    if (t == NULL)
        return RD_CACHE_TTL_DEFAULT;
    uint32_t ttl = base_ttl(t, model, kind);
    /* A shorter TTL for a truncated answer, never a longer one: a model
     * configured not to be cached (0) stays uncached. */
    if (t->content && finish != NULL && strcmp(finish, "length") == 0 && t->truncated_s < ttl)
        ttl = t->truncated_s;
    if (ttl == 0 || !t->peak || !in_peak(t, now_ms))
        return ttl;
    uint64_t scaled = (uint64_t)ttl * t->factor_ppm / PPM;
    return scaled > 0 ? (uint32_t)scaled : 1;
}

static int64_t add_sat(int64_t a, int64_t b)
{
    int64_t r;
    return __builtin_add_overflow(a, b, &r) ? INT64_MAX : r;
}

int64_t rd_cache_ttl_on_hit(const struct rd_cache_ttl *t, int64_t created_ms, uint32_t ttl_s, uint64_t hits,
                            int64_t expires_ms, int64_t now_ms)
{
    /* An expired entry is never served, so a hit on one cannot revive it. */
    if (t == NULL || !t->usage || hits == 0 || hits % t->every_hits != 0 || now_ms >= expires_ms)
        return expires_ms;
    int64_t want = add_sat(now_ms, (int64_t)ttl_s * MS_PER_S);
    int64_t cap = add_sat(created_ms, (int64_t)t->max_s * MS_PER_S);
    if (want > cap)
        want = cap;
    return want > expires_ms ? want : expires_ms;
}
