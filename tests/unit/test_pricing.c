/* Tests for src/providers/pricing.c: the embedded table parses whole, every
 * provider of the issue has its main models, dated and prefixed names find
 * their family (and near-misses do not), unknown models have no price, and
 * the cost arithmetic with cached and cache-write tokens counts nothing
 * twice. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "providers/pricing.h"
#include "util/err.h"

#define USAGE(in, out, cached, cw) ((struct rd_usage){(in), (out), (cached), (cw), -1})

static void assert_close(double got, double want)
{
    if (fabs(got - want) > 1e-12 * (fabs(want) + 1)) {
        print_error("got %.15g, wanted %.15g\n", got, want);
        fail();
    }
}

static const char *family(const char *provider, const char *model)
{
    const struct rd_price *p = rd_pricing_lookup(provider, model);
    return p ? p->family : NULL;
}

/* Every row of src/providers/prices.tsv parses (the embed script also refuses a bad
 * row at build time), with sane numbers, and each row is found by its own
 * family name. */
static void test_builtin_table_parses(void **state)
{
    (void)state;
    struct rd_price_table t;
    char err[160] = "";
    int rc = rd_price_table_parse(rd_prices_tsv, rd_prices_tsv_len, &t, err, sizeof err);
    if (rc != 0)
        print_error("%s\n", err);
    assert_int_equal(rc, 0);
    assert_true(t.n >= 100);
    for (size_t i = 0; i < t.n; i++) {
        const struct rd_price *r = &t.rows[i];
        assert_true(r->input > 0);
        assert_true(r->output >= 0);
        assert_true(r->cached_input >= 0 && r->cached_input <= r->input);
        assert_true(r->cache_write >= r->input || r->cache_write == r->input);
        assert_int_equal(strlen(r->checked), 10);
        assert_true(strncmp(r->source, "http", 4) == 0);
        assert_ptr_equal(rd_price_table_lookup(&t, r->provider, r->family), r);
    }
    rd_price_table_free(&t);
    assert_int_equal(rd_pricing_table()->n >= 100, 1);
}

/* The main current models of each provider the issue names. */
static void test_coverage(void **state)
{
    (void)state;
    static const char *const want[][2] = {
        {"openai", "gpt-4o"},
        {"openai", "gpt-4o-mini"},
        {"openai", "gpt-4.1"},
        {"openai", "gpt-5"},
        {"openai", "o3-mini"},
        {"openai", "text-embedding-3-small"},
        {"azure_openai", "gpt-4o"},
        {"azure_openai", "gpt-4.1-mini"},
        {"anthropic", "claude-sonnet-4-5"},
        {"anthropic", "claude-haiku-4-5"},
        {"anthropic", "claude-opus-4-1"},
        {"bedrock", "anthropic.claude-sonnet-4-5"},
        {"bedrock", "amazon.nova-pro"},
        {"bedrock", "meta.llama3-3-70b-instruct"},
        {"gemini", "gemini-2.5-pro"},
        {"gemini", "gemini-2.5-flash"},
        {"gemini", "gemini-2.5-flash-lite"},
        {"gemini", "gemini-2.0-flash"},
        {"vertex_ai", "gemini-2.5-flash"},
        {"deepseek", "deepseek-chat"},
        {"deepseek", "deepseek-reasoner"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const char *f = family(want[i][0], want[i][1]);
        if (f == NULL || strcmp(f, want[i][1]) != 0) {
            print_error("%s %s: no row of its own\n", want[i][0], want[i][1]);
            fail();
        }
    }
}

static void test_family_matching(void **state)
{
    (void)state;
    /* dated snapshots */
    assert_string_equal(family("openai", "gpt-4o-2024-08-06"), "gpt-4o");
    assert_string_equal(family("openai", "gpt-4o-mini-2024-07-18"), "gpt-4o-mini");
    assert_string_equal(family("openai", "gpt-5-2025-08-07"), "gpt-5");
    assert_string_equal(family("anthropic", "claude-sonnet-4-5-20250929"), "claude-sonnet-4-5");
    assert_string_equal(family("anthropic", "claude-sonnet-4-20250514"), "claude-sonnet-4");
    assert_string_equal(family("anthropic", "claude-3-5-haiku-latest"), "claude-3-5-haiku");
    assert_string_equal(family("anthropic", "claude-opus-4-1-20250805"), "claude-opus-4-1");
    /* a more specific row wins over its family: the first gpt-4o snapshot
     * has its own (higher) price */
    assert_string_equal(family("openai", "gpt-4o-2024-05-13"), "gpt-4o-2024-05-13");
    assert_close(rd_pricing_lookup("openai", "gpt-4o-2024-05-13")->input, 5.0);
    assert_close(rd_pricing_lookup("openai", "gpt-4o-2024-08-06")->input, 2.5);
    /* Bedrock: version suffix, URL-encoded ':' and geographic profiles
     * (in-region price) apart from global ones (base price) */
    assert_string_equal(family("bedrock", "anthropic.claude-sonnet-4-5-20250929-v1:0"), "anthropic.claude-sonnet-4-5");
    assert_string_equal(family("bedrock", "anthropic.claude-3-5-sonnet-20241022-v2%3A0"), "anthropic.claude-3-5-sonnet");
    assert_string_equal(family("bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"), "anthropic.claude-sonnet-4-5");
    assert_string_equal(family("bedrock", "eu.amazon.nova-lite-v1:0"), "amazon.nova-lite");
    assert_string_equal(family("bedrock", "global.anthropic.claude-sonnet-4-5-20250929-v1:0"),
                        "global.anthropic.claude-sonnet-4-5");
    assert_true(rd_pricing_lookup("bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0")->input >
                rd_pricing_lookup("bedrock", "global.anthropic.claude-sonnet-4-5-20250929-v1:0")->input);
    assert_string_equal(family("bedrock", "meta.llama3-3-70b-instruct-v1:0"), "meta.llama3-3-70b-instruct");
    assert_string_equal(family("bedrock", "meta.llama3-70b-instruct-v1:0"), "meta.llama3-70b-instruct");
    /* Vertex: '@' dates; Gemini: models/ prefix and preview builds */
    assert_string_equal(family("vertex_ai", "gemini-2.5-flash-001"), "gemini-2.5-flash");
    assert_string_equal(family("gemini", "models/gemini-2.5-flash"), "gemini-2.5-flash");
    assert_string_equal(family("gemini", "gemini-2.5-flash-preview-05-20"), "gemini-2.5-flash");
    assert_string_equal(family("gemini", "gemini-2.5-flash-lite-preview-06-17"), "gemini-2.5-flash-lite");
    assert_string_equal(family("gemini", "gemini-3-pro-preview"), "gemini-3-pro");
    /* the provider decides: the same name under another provider is another row */
    assert_ptr_not_equal(rd_pricing_lookup("openai", "gpt-4o"), rd_pricing_lookup("azure_openai", "gpt-4o"));
}

/* Claude on Vertex AI ("name@date", the model from the rawPredict path) is
 * priced by the anthropic rows; Vertex's own rows (Gemini) stay its own. */
static void test_vertex_claude_priced_as_anthropic(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"claude-3-5-sonnet-v2@20241022", "claude-3-5-sonnet"},
        {"claude-3-5-sonnet@20240620", "claude-3-5-sonnet"},
        {"claude-sonnet-4@20250514", "claude-sonnet-4"},
        {"claude-sonnet-4-5@20250929", "claude-sonnet-4-5"}, /* never claude-sonnet-4 */
        {"claude-3-haiku@20240307", "claude-3-haiku"},
        {"claude-3-5-haiku@20241022", "claude-3-5-haiku"},
        {"claude-opus-4-1@20250805", "claude-opus-4-1"},
        {"claude-opus-4@20250514", "claude-opus-4"},
        {"claude-haiku-4-5@20251001", "claude-haiku-4-5"},
        {"claude-3-7-sonnet@20250219", "claude-3-7-sonnet"},
        {"claude-sonnet-4-5", "claude-sonnet-4-5"}, /* an undated alias */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct rd_price *v = rd_pricing_lookup("vertex_ai", cases[i][0]);
        if (v == NULL || strcmp(v->provider, "anthropic") != 0 || strcmp(v->family, cases[i][1]) != 0) {
            print_error("vertex_ai %s: %s %s\n", cases[i][0], v ? v->provider : "-", v ? v->family : "-");
            fail();
        }
    }
    /* the same figures as Anthropic's dated id */
    assert_ptr_equal(rd_pricing_lookup("vertex_ai", "claude-3-haiku@20240307"),
                     rd_pricing_lookup("anthropic", "claude-3-haiku-20240307"));
    assert_close(rd_pricing_lookup("vertex_ai", "claude-3-haiku@20240307")->input, 0.25);
    /* Gemini on Vertex keeps Vertex's rows */
    assert_string_equal(rd_pricing_lookup("vertex_ai", "gemini-2.5-flash")->provider, "vertex_ai");
    /* near misses stay unknown; only vertex_ai resells, and only claude- names */
    static const char *const none[][2] = {
        {"vertex_ai", "claude-sonnet-4-9@20260101"}, {"vertex_ai", "claude"},   {"vertex_ai", "claude-"},
        {"vertex_ai", "claude-sonnet-4x@20250514"},  {"vertex_ai", "gpt-4o"},   {"gemini", "claude-sonnet-4@20250514"},
        {"bedrock", "claude-sonnet-4@20250514"},     {"vertex_ai", "Claude-sonnet-4@20250514"},
    };
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) {
        const char *f = family(none[i][0], none[i][1]);
        if (f != NULL) {
            print_error("%s %s matched %s\n", none[i][0], none[i][1], f);
            fail();
        }
    }
    /* a row of Vertex's own (a regional premium, say) wins over Anthropic's */
    static const char text[] = "anthropic\tclaude-x\t3\t-\t-\t15\t2026-12-02\thttps://e\n"
                               "vertex_ai\tclaude-x\t3.3\t-\t-\t16.5\t2026-12-02\thttps://e\n";
    struct rd_price_table t;
    assert_int_equal(rd_price_table_parse(text, sizeof text - 1, &t, NULL, 0), 0);
    assert_string_equal(rd_price_table_lookup(&t, "vertex_ai", "claude-x@20250101")->provider, "vertex_ai");
    assert_string_equal(rd_price_table_lookup(&t, "anthropic", "claude-x-20250101")->provider, "anthropic");
    assert_null(rd_price_table_lookup(&t, "vertex_ai", "claude-y@20250101"));
    rd_price_table_free(&t);
}

/* Near-misses are unknown, never a wrong neighbour. */
static void test_unknown_is_null(void **state)
{
    (void)state;
    static const char *const none[][2] = {
        {"openai", "gpt-4o-audio-preview-x"}, /* "-audio" is not a version */
        {"openai", "gpt-4"},                  /* a prefix of a family is not it */
        {"openai", "gpt-4oo"},
        {"openai", "gpt-5-chat"},
        {"anthropic", "claude-sonnet-4-9"}, /* a newer minor version than the table knows */
        {"anthropic", "claude"},
        {"openai", "claude-sonnet-4-5"}, /* right model, wrong provider */
        {"ollama", "llama3.2"},
        {"openai_compatible", "local-model"},
        {"nope", "gpt-4o"},
        {"openai", ""},
        {"bedrock", "us."},
        {"gemini", "models/"},
    };
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) {
        const char *f = family(none[i][0], none[i][1]);
        if (f != NULL) {
            print_error("%s %s matched %s\n", none[i][0], none[i][1], f);
            fail();
        }
    }
    assert_null(rd_pricing_lookup("openai", NULL));
    assert_null(rd_pricing_lookup(NULL, "gpt-4o"));
    double usd = -7;
    struct rd_usage u = USAGE(100, 10, -1, -1);
    assert_false(rd_pricing_cost(NULL, &u, &usd));
    assert_close(usd, -7); /* untouched: unknown, not zero */
}

static const struct rd_price P = {.provider = "t", .family = "m", .input = 3.0, .cached_input = 0.3,
                                  .cache_write = 3.75, .output = 15.0, .checked = "2026-12-02",
                                  .source = "https://example.com"};

static void test_cost_arithmetic(void **state)
{
    (void)state;
    double usd = 0;
    /* plain */
    struct rd_usage u = USAGE(1000, 200, -1, -1);
    assert_true(rd_pricing_cost(&P, &u, &usd));
    assert_close(usd, (1000 * 3.0 + 200 * 15.0) / 1e6);
    /* OpenAI: prompt_tokens 1000 includes 800 cached: 200 at input, 800 at
     * the cached rate, not 1000 + 800 */
    u = USAGE(1000, 200, 800, 0);
    assert_true(rd_pricing_cost(&P, &u, &usd));
    assert_close(usd, (200 * 3.0 + 800 * 0.3 + 200 * 15.0) / 1e6);
    /* Anthropic, normalised by its hook: input = 10 + 500 read + 300 written */
    u = USAGE(810, 50, 500, 300);
    assert_true(rd_pricing_cost(&P, &u, &usd));
    assert_close(usd, (10 * 3.0 + 500 * 0.3 + 300 * 3.75 + 50 * 15.0) / 1e6);
    /* output only (a stream cut before usage of input), input only (embeddings) */
    u = USAGE(-1, 40, -1, -1);
    assert_true(rd_pricing_cost(&P, &u, &usd));
    assert_close(usd, 40 * 15.0 / 1e6);
    u = USAGE(1000000, -1, -1, -1);
    assert_true(rd_pricing_cost(&P, &u, &usd));
    assert_close(usd, 3.0);
    /* a confused upstream: cached > input is clamped, never negative */
    u = USAGE(100, 0, 500, 500);
    assert_true(rd_pricing_cost(&P, &u, &usd));
    assert_close(usd, 100 * 0.3 / 1e6);
    /* no tokens reported at all: no cost (unknown, not 0) */
    u = USAGE(-1, -1, -1, -1);
    usd = -1;
    assert_false(rd_pricing_cost(&P, &u, &usd));
    assert_close(usd, -1);
    /* a real row: gpt-4o-mini, 1M prompt of which 0.5M cached, 1M out */
    u = USAGE(1000000, 1000000, 500000, -1);
    assert_true(rd_pricing_cost(rd_pricing_lookup("openai", "gpt-4o-mini-2024-07-18"), &u, &usd));
    assert_close(usd, 0.5 * 0.15 + 0.5 * 0.075 + 0.60);
}

static void test_dash_means_input_price(void **state)
{
    (void)state;
    static const char text[] = "# c\n\nx\tm\t2.5\t-\t-\t10\t2026-12-02\thttps://e.com\r\n";
    struct rd_price_table t;
    assert_int_equal(rd_price_table_parse(text, sizeof text - 1, &t, NULL, 0), 0);
    assert_int_equal(t.n, 1);
    assert_close(t.rows[0].cached_input, 2.5);
    assert_close(t.rows[0].cache_write, 2.5);
    assert_close(t.rows[0].output, 10);
    assert_string_equal(t.rows[0].source, "https://e.com");
    rd_price_table_free(&t);
    rd_price_table_free(NULL);
}

static void test_bad_rows_rejected(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "x\tm\t1\t-\t-\t2\t2026-12-02\n",                          /* 7 fields */
        "x\tm\t1\t-\t-\t2\t2026-12-02\thttps://e\textra\n",        /* 9 fields */
        "x\tm\t-\t-\t-\t2\t2026-12-02\thttps://e\n",               /* input "-" */
        "x\tm\t1\t-\t-\t-\t2026-12-02\thttps://e\n",               /* output "-" */
        "x\tm\t1,5\t-\t-\t2\t2026-12-02\thttps://e\n",             /* comma */
        "x\tm\t-1\t-\t-\t2\t2026-12-02\thttps://e\n",              /* sign */
        "x\tm\t1e3\t-\t-\t2\t2026-12-02\thttps://e\n",             /* exponent */
        "x\tm\t1.\t-\t-\t2\t2026-12-02\thttps://e\n",              /* trailing dot */
        "x\tm\t.5\t-\t-\t2\t2026-12-02\thttps://e\n",              /* leading dot */
        "x\tm\t99999999999999999999\t-\t-\t2\t2026-12-02\thttps://e\n", /* overflow */
        "x\tm\t1\t-\t-\t2\t2026-1-2\thttps://e\n",                 /* date */
        "x\tm\t1\t-\t-\t2\t2026-12-02\tsomewhere\n",               /* source */
        "x\t\t1\t-\t-\t2\t2026-12-02\thttps://e\n",                /* empty family */
        "x\tm m\t1\t-\t-\t2\t2026-12-02\thttps://e\n",             /* space */
        "x\tm\t1\t-\t-\t2\t2026-12-02\thttps://e\nx\tm\t1\t-\t-\t2\t2026-12-02\thttps://e\n", /* duplicate */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct rd_price_table t;
        char err[160] = "";
        assert_int_equal(rd_price_table_parse(bad[i], strlen(bad[i]), &t, err, sizeof err), RD_EPROTO);
        assert_true(strncmp(err, "line ", 5) == 0);
        assert_null(t.rows);
        assert_int_equal(t.n, 0);
    }
    static const char nul[] = "x\tm\t1\t-\t-\t2\t2026-12-02\thttps://e\n\0";
    struct rd_price_table t;
    assert_int_equal(rd_price_table_parse(nul, sizeof nul - 1, &t, NULL, 0), RD_EPROTO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builtin_table_parses), cmocka_unit_test(test_coverage),
        cmocka_unit_test(test_family_matching),      cmocka_unit_test(test_unknown_is_null),
        cmocka_unit_test(test_cost_arithmetic),      cmocka_unit_test(test_dash_means_input_price),
        cmocka_unit_test(test_bad_rows_rejected),    cmocka_unit_test(test_vertex_claude_priced_as_anthropic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
