/* TTL policy (src/cache/ttl.c) with an injected clock: by_model (exact
 * before globs, globs in document order), by_request_type, the default,
 * 0 as "not cached", content_based, peak_hours (inside and outside the
 * window, wrapping midnight, days, the factor's rounding, at least 1 s),
 * usage_based (extension at multiples of every_hits, capped at
 * created + max_s) and compiling documents that skipped validation.
 *
 * Case documents are written with ' for " to stay readable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cache/ttl.h"
#include "proxy/config.h"
#include "util/err.h"
#include "util/json.h"

#define S 1000 /* ms */
#define MINUTE (60 * S)
#define HOUR (60 * MINUTE)
#define DAY (24 * HOUR)
#define WED INT64_C(1796169600000) /* 2026-12-02 00:00 UTC, a Wednesday */
#define MON (WED - 2 * DAY)
#define THU (WED + DAY)
#define FRI (WED + 2 * DAY)
#define SAT (WED + 3 * DAY)
#define SUN (WED + 4 * DAY)
#define AT(day, h, m) ((day) + (int64_t)(h)*HOUR + (int64_t)(m)*MINUTE)

static struct json_object *parse(const char *quoted)
{
    char buf[4096];
    size_t n = strlen(quoted);
    assert_true(n < sizeof buf);
    for (size_t i = 0; i <= n; i++)
        buf[i] = quoted[i] == '\'' ? '"' : quoted[i];
    struct json_object *o = NULL;
    assert_int_equal(rd_json_parse(buf, n, 65536, &o, NULL), 0);
    return o;
}

/* Validates (the way a stored document is) and compiles. */
static struct rd_cache_ttl *compile(const char *quoted)
{
    struct json_object *doc = parse(quoted);
    struct rd_config_err err;
    if (rd_config_validate(doc, &err) != 0)
        fail_msg("refused: %s: %s", err.field, err.message);
    struct rd_cache_ttl *t = NULL;
    assert_int_equal(rd_cache_ttl_compile(doc, &t, &err), 0);
    json_object_put(doc); /* the policy keeps copies */
    assert_non_null(t);
    return t;
}

static uint32_t ttl(const struct rd_cache_ttl *t, const char *model, enum rd_req_kind kind, int64_t now)
{
    return rd_cache_ttl_for(t, model, kind, "", now);
}

static void test_defaults(void **state)
{
    (void)state;
    struct rd_cache_ttl *t = NULL;
    struct rd_config_err err;
    assert_int_equal(rd_cache_ttl_compile(NULL, &t, &err), 0);
    assert_int_equal(ttl(t, "gpt-4o", RD_REQ_CHAT, WED), RD_CACHE_TTL_DEFAULT);
    assert_int_equal(ttl(t, "", RD_REQ_EMBEDDING, WED), 3600);
    rd_cache_ttl_free(t);

    t = compile("{'cache_ttl': {'default': 60}}");
    assert_int_equal(ttl(t, "gpt-4o", RD_REQ_CHAT, WED), 60);
    assert_int_equal(rd_cache_ttl_for(t, NULL, RD_REQ_OTHER, NULL, WED), 60);
    rd_cache_ttl_free(t);
    rd_cache_ttl_free(NULL);
}

/* The product description's block, as written. */
static void test_description_block(void **state)
{
    (void)state;
    struct rd_cache_ttl *t = compile("{'cache_ttl': {'default': 3600,"
                                     " 'by_model': {'gpt-4': 7200, 'claude-3-sonnet': 3600, 'gpt-3.5-turbo': 1800},"
                                     " 'by_request_type': {'completion': 3600, 'chat': 1800, 'embedding': 86400}}}");
    assert_int_equal(ttl(t, "gpt-4", RD_REQ_CHAT, WED), 7200);
    assert_int_equal(ttl(t, "gpt-3.5-turbo", RD_REQ_COMPLETION, WED), 1800);
    /* no model rule: the request type decides */
    assert_int_equal(ttl(t, "gpt-4o", RD_REQ_CHAT, WED), 1800);
    assert_int_equal(ttl(t, "text-embedding-3-small", RD_REQ_EMBEDDING, WED), 86400);
    assert_int_equal(ttl(t, "gpt-4o", RD_REQ_COMPLETION, WED), 3600);
    /* exact names are exact: no prefix or case folding */
    assert_int_equal(ttl(t, "gpt-4-turbo", RD_REQ_RESPONSES, WED), 3600);
    assert_int_equal(ttl(t, "GPT-4", RD_REQ_RESPONSES, WED), 3600);
    rd_cache_ttl_free(t);
}

static void test_exact_beats_glob(void **state)
{
    (void)state;
    /* the glob comes first in the document, the exact name still wins */
    struct rd_cache_ttl *t = compile("{'cache_ttl': {'by_model': {'gpt-4*': 10, 'gpt-4o': 20, 'claude-?-opus': 30}}}");
    assert_int_equal(ttl(t, "gpt-4o", RD_REQ_CHAT, WED), 20);
    assert_int_equal(ttl(t, "gpt-4o-mini", RD_REQ_CHAT, WED), 10);
    assert_int_equal(ttl(t, "gpt-4", RD_REQ_CHAT, WED), 10); /* '*' matches the empty run */
    assert_int_equal(ttl(t, "claude-3-opus", RD_REQ_CHAT, WED), 30);
    assert_int_equal(ttl(t, "claude-35-opus", RD_REQ_CHAT, WED), 3600); /* '?' is exactly one */
    assert_int_equal(ttl(t, "claude--opus", RD_REQ_CHAT, WED), 3600);
    assert_int_equal(ttl(t, "xgpt-4o", RD_REQ_CHAT, WED), 3600); /* anchored at both ends */
    rd_cache_ttl_free(t);
}

static void test_glob_order(void **state)
{
    (void)state;
    struct rd_cache_ttl *t = compile("{'cache_ttl': {'by_model': {'gpt-*': 1, 'gpt-4*': 2, '*': 3}}}");
    assert_int_equal(ttl(t, "gpt-4o", RD_REQ_CHAT, WED), 1);
    assert_int_equal(ttl(t, "o3", RD_REQ_CHAT, WED), 3);
    rd_cache_ttl_free(t);
    t = compile("{'cache_ttl': {'by_model': {'gpt-4*': 2, 'gpt-*': 1, '*': 3}}}");
    assert_int_equal(ttl(t, "gpt-4o", RD_REQ_CHAT, WED), 2);
    assert_int_equal(ttl(t, "gpt-3.5-turbo", RD_REQ_CHAT, WED), 1);
    /* a request without a model matches no model rule, not even '*' */
    assert_int_equal(ttl(t, "", RD_REQ_CHAT, WED), 3600);
    rd_cache_ttl_free(t);
    /* backtracking: the first '*' must give back what the second needs */
    t = compile("{'cache_ttl': {'by_model': {'*a*b?c': 7, 'anthropic.*:?': 8}}}");
    assert_int_equal(ttl(t, "xaab-bxc", RD_REQ_CHAT, WED), 7);
    assert_int_equal(ttl(t, "xaab-bxcd", RD_REQ_CHAT, WED), 3600);
    assert_int_equal(ttl(t, "anthropic.claude-v2:1", RD_REQ_CHAT, WED), 8);
    assert_int_equal(ttl(t, "anthropic.claude-v2:10", RD_REQ_CHAT, WED), 3600);
    rd_cache_ttl_free(t);
}

static void test_request_types(void **state)
{
    (void)state;
    struct rd_cache_ttl *t = compile("{'cache_ttl': {'default': 5, 'by_request_type': {'chat': 1, 'completion': 2,"
                                     " 'embedding': 3, 'responses': 4, 'other': 6}}}");
    assert_int_equal(ttl(t, "m", RD_REQ_CHAT, WED), 1);
    assert_int_equal(ttl(t, "m", RD_REQ_COMPLETION, WED), 2);
    assert_int_equal(ttl(t, "m", RD_REQ_EMBEDDING, WED), 3);
    assert_int_equal(ttl(t, "m", RD_REQ_RESPONSES, WED), 4);
    assert_int_equal(ttl(t, "m", RD_REQ_OTHER, WED), 6);
    assert_int_equal(ttl(t, "m", RD_REQ_TOKENS, WED), 6);
    assert_int_equal(ttl(t, "m", RD_REQ_MODELS, WED), 6);
    rd_cache_ttl_free(t);
    /* "messages" (Anthropic's chat) applies to chat unless "chat" is set */
    t = compile("{'cache_ttl': {'default': 5, 'by_request_type': {'messages': 9}}}");
    assert_int_equal(ttl(t, "claude-sonnet-4", RD_REQ_CHAT, WED), 9);
    assert_int_equal(ttl(t, "claude-sonnet-4", RD_REQ_TOKENS, WED), 5);
    rd_cache_ttl_free(t);
    t = compile("{'cache_ttl': {'by_request_type': {'messages': 9, 'chat': 8}}}");
    assert_int_equal(ttl(t, "claude-sonnet-4", RD_REQ_CHAT, WED), 8);
    rd_cache_ttl_free(t);
}

/* 0 is "not cached", and no later rule brings it back. */
static void test_zero_not_cached(void **state)
{
    (void)state;
    struct rd_cache_ttl *t = compile("{'cache_ttl': {'default': 100, 'by_model': {'o1*': 0},"
                                     " 'by_request_type': {'embedding': 0},"
                                     " 'content_based': {'truncated_s': 50},"
                                     " 'peak_hours': {'start': '00:00', 'end': '24:00', 'factor': 0.5}}}");
    assert_int_equal(rd_cache_ttl_for(t, "o1-mini", RD_REQ_CHAT, "length", WED), 0);
    assert_int_equal(rd_cache_ttl_for(t, "o1-mini", RD_REQ_CHAT, "", WED), 0);
    assert_int_equal(ttl(t, "text-embedding-3-small", RD_REQ_EMBEDDING, WED), 0);
    rd_cache_ttl_free(t);
    /* a model rule above 0 wins over the type's 0 */
    t = compile("{'cache_ttl': {'by_model': {'embed-*': 10}, 'by_request_type': {'embedding': 0}}}");
    assert_int_equal(ttl(t, "embed-v3", RD_REQ_EMBEDDING, WED), 10);
    assert_int_equal(ttl(t, "other-embed", RD_REQ_EMBEDDING, WED), 0);
    rd_cache_ttl_free(t);
}

static void test_content_based(void **state)
{
    (void)state;
    struct rd_cache_ttl *t = compile("{'cache_ttl': {'default': 3600, 'by_model': {'short': 60},"
                                     " 'content_based': {'truncated_s': 300}}}");
    assert_int_equal(rd_cache_ttl_for(t, "m", RD_REQ_CHAT, "length", WED), 300);
    assert_int_equal(rd_cache_ttl_for(t, "m", RD_REQ_CHAT, "", WED), 3600);
    assert_int_equal(rd_cache_ttl_for(t, "m", RD_REQ_CHAT, "stop", WED), 3600);
    assert_int_equal(rd_cache_ttl_for(t, "m", RD_REQ_CHAT, NULL, WED), 3600);
    /* never longer than the rule's own TTL */
    assert_int_equal(rd_cache_ttl_for(t, "short", RD_REQ_CHAT, "length", WED), 60);
    rd_cache_ttl_free(t);
    /* truncated_s 0: truncated answers are not cached at all */
    t = compile("{'cache_ttl': {'content_based': {'truncated_s': 0}}}");
    assert_int_equal(rd_cache_ttl_for(t, "m", RD_REQ_CHAT, "length", WED), 0);
    assert_int_equal(rd_cache_ttl_for(t, "m", RD_REQ_CHAT, "", WED), 3600);
    rd_cache_ttl_free(t);
    /* without the rule, a truncated answer keeps its TTL */
    t = compile("{'cache_ttl': {'default': 70}}");
    assert_int_equal(rd_cache_ttl_for(t, "m", RD_REQ_CHAT, "length", WED), 70);
    rd_cache_ttl_free(t);
}

static void test_peak_window(void **state)
{
    (void)state;
    struct rd_cache_ttl *t = compile("{'cache_ttl': {'default': 1000, 'peak_hours':"
                                     " {'start': '09:00', 'end': '17:30', 'factor': 0.5}}}");
    assert_int_equal(ttl(t, "m", RD_REQ_CHAT, AT(WED, 8, 59)), 1000);
    assert_int_equal(ttl(t, "m", RD_REQ_CHAT, AT(WED, 9, 0)), 500);
    assert_int_equal(ttl(t, "m", RD_REQ_CHAT, AT(WED, 17, 29) + 59 * S + 999), 500);
    assert_int_equal(ttl(t, "m", RD_REQ_CHAT, AT(WED, 17, 30)), 1000); /* end excluded */
    /* no days: every day */
    assert_int_equal(ttl(t, "m", RD_REQ_CHAT, AT(SUN, 12, 0)), 500);
    assert_int_equal(ttl(t, "m", RD_REQ_CHAT, AT(SAT, 12, 0)), 500);
    rd_cache_ttl_free(t);
}

static void test_peak_days(void **state)
{
    (void)state;
    struct rd_cache_ttl *t = compile("{'cache_ttl': {'default': 1000, 'peak_hours': {'start': '09:00', 'end': '17:00',"
                                     " 'days': ['mon', 'tue', 'wed', 'thu', 'fri'], 'factor': 0.25}}}");
    assert_int_equal(ttl(t, "m", RD_REQ_CHAT, AT(MON, 10, 0)), 250);
    assert_int_equal(ttl(t, "m", RD_REQ_CHAT, AT(FRI, 16, 0)), 250);
    assert_int_equal(ttl(t, "m", RD_REQ_CHAT, AT(SAT, 10, 0)), 1000);
    assert_int_equal(ttl(t, "m", RD_REQ_CHAT, AT(SUN, 10, 0)), 1000);
    rd_cache_ttl_free(t);
    t = compile("{'cache_ttl': {'default': 1000, 'peak_hours': {'start': '00:00', 'end': '24:00',"
                " 'days': ['sun'], 'factor': 0.1}}}");
    assert_int_equal(ttl(t, "m", RD_REQ_CHAT, AT(SUN, 0, 0)), 100);
    assert_int_equal(ttl(t, "m", RD_REQ_CHAT, AT(SUN, 23, 59)), 100);
    assert_int_equal(ttl(t, "m", RD_REQ_CHAT, AT(SUN, 24, 0)), 1000); /* Monday 00:00 */
    assert_int_equal(ttl(t, "m", RD_REQ_CHAT, AT(SAT, 23, 59)), 1000);
    rd_cache_ttl_free(t);
}

/* A window that wraps midnight belongs to the day it starts on. */
static void test_peak_wraps_midnight(void **state)
{
    (void)state;
    struct rd_cache_ttl *t = compile("{'cache_ttl': {'default': 1000, 'peak_hours': {'start': '22:00', 'end': '02:00',"
                                     " 'days': ['fri'], 'factor': 0.5}}}");
    assert_int_equal(ttl(t, "m", RD_REQ_CHAT, AT(FRI, 21, 59)), 1000);
    assert_int_equal(ttl(t, "m", RD_REQ_CHAT, AT(FRI, 22, 0)), 500);
    assert_int_equal(ttl(t, "m", RD_REQ_CHAT, AT(FRI, 23, 59)), 500);
    assert_int_equal(ttl(t, "m", RD_REQ_CHAT, AT(SAT, 0, 0)), 500);
    assert_int_equal(ttl(t, "m", RD_REQ_CHAT, AT(SAT, 1, 59)), 500);
    assert_int_equal(ttl(t, "m", RD_REQ_CHAT, AT(SAT, 2, 0)), 1000);
    assert_int_equal(ttl(t, "m", RD_REQ_CHAT, AT(SAT, 22, 0)), 1000); /* Saturday's own night is not listed */
    assert_int_equal(ttl(t, "m", RD_REQ_CHAT, AT(FRI, 1, 0)), 1000);  /* Thursday's night */
    assert_int_equal(ttl(t, "m", RD_REQ_CHAT, AT(FRI, 12, 0)), 1000);
    rd_cache_ttl_free(t);
    /* every day: the small hours of any day are in */
    t = compile("{'cache_ttl': {'default': 1000, 'peak_hours': {'start': '22:00', 'end': '02:00', 'factor': 0.5}}}");
    assert_int_equal(ttl(t, "m", RD_REQ_CHAT, AT(THU, 1, 0)), 500);
    assert_int_equal(ttl(t, "m", RD_REQ_CHAT, AT(THU, 3, 0)), 1000);
    rd_cache_ttl_free(t);
}

/* The clock before 1970 still gives the right day and minute. */
static void test_peak_before_epoch(void **state)
{
    (void)state;
    /* 1969-12-31 was a Wednesday */
    struct rd_cache_ttl *t = compile("{'cache_ttl': {'default': 1000, 'peak_hours': {'start': '23:00', 'end': '24:00',"
                                     " 'days': ['wed'], 'factor': 0.5}}}");
    assert_int_equal(ttl(t, "m", RD_REQ_CHAT, -30 * MINUTE), 500);
    assert_int_equal(ttl(t, "m", RD_REQ_CHAT, -61 * MINUTE), 1000);
    assert_int_equal(ttl(t, "m", RD_REQ_CHAT, 30 * MINUTE), 1000); /* Thursday */
    rd_cache_ttl_free(t);
}

static void test_peak_factor_rounding(void **state)
{
    (void)state;
    static const struct {
        const char *factor;
        uint32_t ttl, want;
    } tc[] = {
        {"0.29", 100, 29}, /* 100 * 0.29 is 28.999... in binary: still 29 */
        {"0.5", 7, 3},     /* rounded down */
        {"0.1", 1, 1},     /* at least 1 s */
        {"0.001", 999, 1}, {"0.000001", 3600, 1}, {"1", 3600, 3600}, {"0.7", 10, 7}, {"0.333333", 315360000, 105119894},
    };
    for (size_t i = 0; i < sizeof tc / sizeof tc[0]; i++) {
        char text[256];
        snprintf(text, sizeof text,
                 "{'cache_ttl': {'default': %u, 'peak_hours': {'start': '00:00', 'end': '24:00', 'factor': %s}}}",
                 tc[i].ttl, tc[i].factor);
        struct rd_cache_ttl *t = compile(text);
        uint32_t got = ttl(t, "m", RD_REQ_CHAT, WED);
        rd_cache_ttl_free(t);
        if (got != tc[i].want)
            fail_msg("%u * %s: got %u, want %u", tc[i].ttl, tc[i].factor, got, tc[i].want);
    }
}

/* content_based then peak_hours: the shorter truncated TTL is scaled too. */
static void test_rules_combine(void **state)
{
    (void)state;
    struct rd_cache_ttl *t = compile("{'cache_ttl': {'default': 1000, 'content_based': {'truncated_s': 100},"
                                     " 'peak_hours': {'start': '09:00', 'end': '17:00', 'factor': 0.5}}}");
    assert_int_equal(rd_cache_ttl_for(t, "m", RD_REQ_CHAT, "length", AT(WED, 10, 0)), 50);
    assert_int_equal(rd_cache_ttl_for(t, "m", RD_REQ_CHAT, "length", AT(WED, 18, 0)), 100);
    assert_int_equal(rd_cache_ttl_for(t, "m", RD_REQ_CHAT, "stop", AT(WED, 10, 0)), 500);
    rd_cache_ttl_free(t);
}

static void test_usage_based(void **state)
{
    (void)state;
    struct rd_cache_ttl *t = compile("{'cache_ttl': {'usage_based': {'every_hits': 3, 'max_s': 10000}}}");
    const int64_t created = WED;
    int64_t exp = created + 100 * S; /* stored with ttl 100 s */
    /* hits 1 and 2: unchanged */
    assert_true(rd_cache_ttl_on_hit(t, created, 100, 1, exp, created + 10 * S) == exp);
    assert_true(rd_cache_ttl_on_hit(t, created, 100, 2, exp, created + 20 * S) == exp);
    /* the 3rd hit: now + ttl */
    exp = rd_cache_ttl_on_hit(t, created, 100, 3, exp, created + 50 * S);
    assert_true(exp == created + 150 * S);
    assert_true(rd_cache_ttl_on_hit(t, created, 100, 4, exp, created + 60 * S) == exp);
    /* the 6th: again */
    exp = rd_cache_ttl_on_hit(t, created, 100, 6, exp, created + 140 * S);
    assert_true(exp == created + 240 * S);
    /* never earlier than it already was: a hit timed before the last one
     * (another thread's clock read) leaves it */
    assert_true(rd_cache_ttl_on_hit(t, created, 100, 9, exp, created + 130 * S) == exp);
    exp = rd_cache_ttl_on_hit(t, created, 100, 9, exp, created + 141 * S);
    assert_true(exp == created + 241 * S);
    /* an expired entry is not revived, even on a multiple */
    assert_true(rd_cache_ttl_on_hit(t, created, 100, 12, exp, exp) == exp);
    assert_true(rd_cache_ttl_on_hit(t, created, 100, 0, exp, created) == exp);
    rd_cache_ttl_free(t);
}

static void test_usage_based_cap(void **state)
{
    (void)state;
    struct rd_cache_ttl *t = compile("{'cache_ttl': {'usage_based': {'every_hits': 1, 'max_s': 200}}}");
    const int64_t created = WED;
    int64_t exp = created + 100 * S;
    exp = rd_cache_ttl_on_hit(t, created, 100, 1, exp, created + 90 * S);
    assert_true(exp == created + 190 * S);
    /* capped at created + max_s */
    exp = rd_cache_ttl_on_hit(t, created, 100, 2, exp, created + 150 * S);
    assert_true(exp == created + 200 * S);
    assert_true(rd_cache_ttl_on_hit(t, created, 100, 3, exp, created + 199 * S) == created + 200 * S);
    /* an entry stored for longer than the cap is never shortened */
    exp = created + 300 * S;
    assert_true(rd_cache_ttl_on_hit(t, created, 300, 4, exp, created + 250 * S) == exp);
    /* times near the end of int64 saturate instead of wrapping */
    assert_true(rd_cache_ttl_on_hit(t, INT64_MAX - 10, 100, 1, INT64_MAX - 5, INT64_MAX - 8) == INT64_MAX);
    rd_cache_ttl_free(t);
    /* without the rule, hits change nothing */
    t = compile("{'cache_ttl': {'default': 100}}");
    assert_true(rd_cache_ttl_on_hit(t, created, 100, 5, created + 100 * S, created + 90 * S) == created + 100 * S);
    rd_cache_ttl_free(t);
}

/* A document that skipped rd_config_validate is refused with the schema's
 * own message, not compiled into something else. */
static void test_compile_unvalidated(void **state)
{
    (void)state;
    static const struct {
        const char *doc, *field, *msg;
    } tc[] = {
        {"{'cache_ttl': {'default': -5}}", "cache_ttl.default", "between 0 and 315360000"},
        {"{'cache_ttl': []}", "cache_ttl", "must be an object"},
        {"{'cache_ttl': {'peak_hours': {'start': '25:00', 'end': '02:00', 'factor': 0.5}}}",
         "cache_ttl.peak_hours.start", "time of day"},
        {"{'cache_ttl': {'usage_based': {'every_hits': 3}}}", "cache_ttl.usage_based.max_s", "is required"},
    };
    for (size_t i = 0; i < sizeof tc / sizeof tc[0]; i++) {
        struct json_object *doc = parse(tc[i].doc);
        struct rd_cache_ttl *t = NULL;
        struct rd_config_err err;
        assert_int_equal(rd_cache_ttl_compile(doc, &t, &err), RD_EINVAL);
        assert_null(t);
        assert_string_equal(err.field, tc[i].field);
        if (strstr(err.message, tc[i].msg) == NULL)
            fail_msg("%s: message %s", tc[i].doc, err.message);
        json_object_put(doc);
    }
    /* other blocks are not the TTL's business */
    struct json_object *doc = parse("{'foo': 1, 'cache_ttl': {'default': 5}}");
    struct rd_cache_ttl *t = NULL;
    struct rd_config_err err;
    assert_int_equal(rd_cache_ttl_compile(doc, &t, &err), 0);
    assert_int_equal(ttl(t, "m", RD_REQ_CHAT, WED), 5);
    rd_cache_ttl_free(t);
    json_object_put(doc);
}

/* Many exact names: the lookup finds each one (sorted at compile time). */
static void test_many_models(void **state)
{
    (void)state;
    struct json_object *doc = parse("{'cache_ttl': {'by_model': {}}}");
    struct json_object *bm = rd_json_get(rd_json_get(doc, "cache_ttl"), "by_model");
    for (int i = 0; i < 1000; i++) {
        char name[32];
        snprintf(name, sizeof name, "model-%d", (i * 7919) % 1000);
        json_object_object_add(bm, name, json_object_new_int(i + 1));
    }
    json_object_object_add(bm, "model-*", json_object_new_int(5000));
    struct rd_config_err err;
    assert_int_equal(rd_config_validate(doc, &err), 0);
    struct rd_cache_ttl *t = NULL;
    assert_int_equal(rd_cache_ttl_compile(doc, &t, &err), 0);
    json_object_put(doc);
    for (int i = 0; i < 1000; i++) {
        char name[32];
        snprintf(name, sizeof name, "model-%d", (i * 7919) % 1000);
        assert_int_equal(ttl(t, name, RD_REQ_CHAT, WED), i + 1);
    }
    assert_int_equal(ttl(t, "model-x", RD_REQ_CHAT, WED), 5000);
    rd_cache_ttl_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),          cmocka_unit_test(test_description_block),
        cmocka_unit_test(test_exact_beats_glob),  cmocka_unit_test(test_glob_order),
        cmocka_unit_test(test_request_types),     cmocka_unit_test(test_zero_not_cached),
        cmocka_unit_test(test_content_based),     cmocka_unit_test(test_peak_window),
        cmocka_unit_test(test_peak_days),         cmocka_unit_test(test_peak_wraps_midnight),
        cmocka_unit_test(test_peak_before_epoch), cmocka_unit_test(test_peak_factor_rounding),
        cmocka_unit_test(test_rules_combine),     cmocka_unit_test(test_usage_based),
        cmocka_unit_test(test_usage_based_cap),   cmocka_unit_test(test_compile_unvalidated),
        cmocka_unit_test(test_many_models),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
