/* Scenarios and X-Rubberduck-Fault overrides (src/proxy/stages/scenario.c):
 * the schema of the "scenario" list, globs, matching (nth, model, path,
 * method, headers; first match wins; counters per compiled set), the plan a
 * match yields, and the override header's grammar with hostile values. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/config.h"
#include "proxy/pipeline.h"
#include "proxy/stages/scenario.h"
#include "util/arena.h"
#include "util/err.h"
#include "util/json.h"

/* Documents are written with ' for " to stay readable. */
static struct json_object *parse(const char *text)
{
    char buf[16384];
    size_t n = strlen(text);
    assert_true(n < sizeof buf);
    for (size_t i = 0; i <= n; i++)
        buf[i] = text[i] == '\'' ? '"' : text[i];
    struct json_object *o = NULL;
    assert_int_equal(rd_json_parse(buf, n, 65536, &o, NULL), 0);
    return o;
}

static struct rd_scenario_set *compile(const char *text, struct json_object **doc_out)
{
    struct json_object *doc = parse(text);
    struct rd_config_err err;
    int rc = rd_config_validate(doc, &err);
    if (rc != 0)
        fail_msg("refused: %s: %s", err.field, err.message);
    struct rd_scenario_set *set = NULL;
    assert_int_equal(rd_scenario_compile(rd_json_get(doc, "scenario"), &set, &err), 0);
    if (doc_out)
        *doc_out = doc;
    else
        json_object_put(doc); /* the set keeps copies */
    return set;
}

/* A request for matching: method, path, model and up to 4 headers. */
struct fake {
    struct rd_arena arena;
    struct rd_hdrs hdrs;
    struct rd_scenario_input in;
};

static void fake_init(struct fake *f, const char *method, const char *path, const char *model)
{
    rd_arena_init(&f->arena);
    rd_hdrs_init(&f->hdrs, &f->arena);
    f->in = (struct rd_scenario_input){.method = method, .path = path, .model = model, .headers = &f->hdrs};
}

static void fake_hdr(struct fake *f, const char *name, const char *value)
{
    rd_hdrs_add(&f->hdrs, name, strlen(name), value, strlen(value));
}

static void fake_free(struct fake *f)
{
    rd_hdrs_free(&f->hdrs);
    rd_arena_free(&f->arena);
}

static int match_simple(const struct rd_scenario_set *set, const char *method, const char *path, const char *model,
                        struct rd_fault_plan *plan)
{
    struct fake f;
    fake_init(&f, method, path, model);
    int w = rd_scenario_match(set, &f.in, plan);
    fake_free(&f);
    return w;
}

/* ---- schema ------------------------------------------------------------ */

static void test_schema_accepts(void **state)
{
    (void)state;
    /* the example, verbatim */
    struct rd_scenario_set *set = compile(
        "{'scenario': [{'match': {'nth': [1, 2]}, 'respond': {'status': 429}},"
        " {'match': {'model': 'gpt-4o', 'path': '/v1/chat/*'}, 'respond': {'delay_ms': 2000}},"
        " {'match': {'header': {'x-test-case': 'cut'}}, 'respond': {'stream_fault': 'cut', 'after_events': 3}}]}",
        NULL);
    assert_int_equal(rd_scenario_count(set), 3);
    rd_scenario_free(set);
    /* every field at once, and a respond without match */
    set = compile("{'scenario': [{'match': {'nth': 3, 'model': '*', 'path': '*', 'method': 'POST',"
                  " 'header': {'X-A': 'b*'}}, 'respond': {'status': 529, 'message': 'Overloaded',"
                  " 'retry_after_s': 0, 'delay_ms': 10}},"
                  " {'respond': {'stream_fault': 'stall', 'after_events': 0, 'stall_ms': 100, 'delay_ms': 5}},"
                  " {'respond': {'hang': true}}], 'failure': {'request_overrides': true}}",
                  NULL);
    assert_int_equal(rd_scenario_count(set), 3);
    rd_scenario_free(set);
    /* an empty list compiles to nothing */
    set = compile("{'scenario': []}", NULL);
    assert_null(set);
    rd_scenario_free(NULL);
}

static void test_schema_refuses(void **state)
{
    (void)state;
    static const struct {
        const char *doc, *field, *msg;
    } bad[] = {
        {"{'scenario': {}}", "scenario", "must be an array"},
        {"{'scenario': [{'respond': {'status': 503}}, {'respond': {'status': 503}},"
         " {'respond': {'status': 200}}]}",
         "scenario[2].respond.status", "between 400 and 599"},
        {"{'scenario': [{'match': {}}]}", "scenario[0].respond", "is required"},
        {"{'scenario': [{'respond': {}}]}", "scenario[0].respond", "must ask for an outcome"},
        {"{'scenario': [{'respond': {'delay_ms': 0}}]}", "scenario[0].respond", "must ask for an outcome"},
        {"{'scenario': [{'respond': {'hang': false}}]}", "scenario[0].respond", "must ask for an outcome"},
        {"{'scenario': [{'respond': {'status': 503, 'what': 1}}]}", "scenario[0].respond.what", "unknown field"},
        {"{'scenario': [{'when': {}, 'respond': {'status': 503}}]}", "scenario[0].when", "unknown field"},
        {"{'scenario': [{'match': {'nth': 0}, 'respond': {'status': 503}}]}", "scenario[0].match.nth",
         "between 1 and"},
        {"{'scenario': [{'match': {'nth': -1}, 'respond': {'status': 503}}]}", "scenario[0].match.nth",
         "between 1 and"},
        {"{'scenario': [{'match': {'nth': 1.5}, 'respond': {'status': 503}}]}", "scenario[0].match.nth",
         "request number"},
        {"{'scenario': [{'match': {'nth': []}, 'respond': {'status': 503}}]}", "scenario[0].match.nth",
         "must list 1 to 64"},
        {"{'scenario': [{'match': {'nth': [1, 'x']}, 'respond': {'status': 503}}]}", "scenario[0].match.nth[1]",
         "integer between 1"},
        {"{'scenario': [{'match': {'nth': '1'}, 'respond': {'status': 503}}]}", "scenario[0].match.nth",
         "request number"},
        {"{'scenario': [{'match': {'path': 'v1/*'}, 'respond': {'status': 503}}]}", "scenario[0].match.path",
         "must start with '/' or '*'"},
        {"{'scenario': [{'match': {'path': '/a b'}, 'respond': {'status': 503}}]}", "scenario[0].match.path",
         "spaces"},
        {"{'scenario': [{'match': {'method': 'PO ST'}, 'respond': {'status': 503}}]}", "scenario[0].match.method",
         "HTTP method"},
        {"{'scenario': [{'match': {'model': ''}, 'respond': {'status': 503}}]}", "scenario[0].match.model",
         "1 to 256"},
        {"{'scenario': [{'match': {'header': {'a b': 'x'}}, 'respond': {'status': 503}}]}",
         "scenario[0].match.header.a b", "unknown field"},
        {"{'scenario': [{'match': {'header': {'x': 'a\\nb'}}, 'respond': {'status': 503}}]}",
         "scenario[0].match.header.x", "control characters"},
        {"{'scenario': [{'respond': {'hang': true, 'status': 503}}]}", "scenario[0].respond.hang",
         "cannot be combined"},
        {"{'scenario': [{'respond': {'hang': true, 'delay_ms': 5}}]}", "scenario[0].respond.hang",
         "cannot be combined"},
        {"{'scenario': [{'respond': {'status': 503, 'stream_fault': 'cut'}}]}", "scenario[0].respond.stream_fault",
         "cannot be combined with status"},
        {"{'scenario': [{'respond': {'stream_fault': 'explode'}}]}", "scenario[0].respond.stream_fault",
         "must be one of: cut, stall, error, malformed, duplicate"},
        {"{'scenario': [{'respond': {'delay_ms': 5, 'message': 'x'}}]}", "scenario[0].respond.message",
         "requires status"},
        {"{'scenario': [{'respond': {'delay_ms': 5, 'retry_after_s': 3}}]}", "scenario[0].respond.retry_after_s",
         "requires status"},
        {"{'scenario': [{'respond': {'status': 503, 'retry_after_s': -1}}]}", "scenario[0].respond.retry_after_s",
         "between 0 and 86400"},
        {"{'scenario': [{'respond': {'delay_ms': 5, 'after_events': 3}}]}", "scenario[0].respond.after_events",
         "requires stream_fault"},
        {"{'scenario': [{'respond': {'stream_fault': 'cut', 'stall_ms': 3}}]}", "scenario[0].respond.stall_ms",
         "requires stream_fault \"stall\""},
        {"{'scenario': [{'respond': {'delay_ms': 3600001}}]}", "scenario[0].respond.delay_ms", "between 0 and"},
        {"{'scenario': [{'respond': {'status': 503, 'message': ''}}]}", "scenario[0].respond.message",
         "1 to 1024"},
        {"{'scenario': [7]}", "scenario[0]", "must be an object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct json_object *doc = parse(bad[i].doc);
        struct rd_config_err err;
        assert_int_equal(rd_config_validate(doc, &err), RD_EINVAL);
        if (strcmp(err.field, bad[i].field) != 0 || strstr(err.message, bad[i].msg) == NULL)
            fail_msg("case %zu: got %s: %s", i, err.field, err.message);
        json_object_put(doc);
    }
    /* the list's cap */
    char big[16000];
    size_t off = (size_t)snprintf(big, sizeof big, "{'scenario': [");
    for (int i = 0; i < 257; i++)
        off += (size_t)snprintf(big + off, sizeof big - off, "%s{'respond':{'status':500}}", i ? "," : "");
    snprintf(big + off, sizeof big - off, "]}");
    struct json_object *doc = parse(big);
    struct rd_config_err err;
    assert_int_equal(rd_config_validate(doc, &err), RD_EINVAL);
    assert_string_equal(err.field, "scenario");
    assert_non_null(strstr(err.message, "at most 256"));
    json_object_put(doc);
}

/* ---- globs ------------------------------------------------------------- */

static void test_glob(void **state)
{
    (void)state;
    static const struct {
        const char *pat, *text;
        bool ok;
    } cases[] = {
        {"gpt-4o", "gpt-4o", true},     {"gpt-4o", "gpt-4o-mini", false}, {"gpt-4o*", "gpt-4o-mini", true},
        {"gpt-4o*", "gpt-4o", true},    {"*mini", "gpt-4o-mini", true},   {"*mini", "gpt-4o", false},
        {"*", "", true},                {"*", "anything/at/all", true},   {"**", "x", true},
        {"", "", true},                 {"", "x", false},                 {"a*a", "a", false},
        {"a*a", "aa", true},            {"a*b*c", "abc", true},           {"a*b*c", "axxbyyc", true},
        {"a*b*c", "acb", false},        {"a*b*c", "abcb", false},         {"*b*", "abc", true},
        {"/v1/chat/*", "/v1/chat/completions", true},                     {"/v1/chat/*", "/v1/embeddings", false},
        {"/v1/*/completions", "/v1/chat/completions", true},              {"/v1/*/completions", "/v1/completions", false},
        {"*/converse*", "/model/anthropic.claude-3/converse-stream", true}, {"ab*ab", "ab", false},
        {"ab*ab", "abab", true},        {"a*aa", "aaa", true},            {"a*aa", "aa", false},
        {"GPT-4O", "gpt-4o", false}, /* case-sensitive */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (rd_scenario_glob_match(cases[i].pat, cases[i].text, strlen(cases[i].text)) != cases[i].ok)
            fail_msg("glob '%s' on '%s': expected %d", cases[i].pat, cases[i].text, cases[i].ok);
    /* the length bounds the text: no read past it */
    assert_true(rd_scenario_glob_match("ab", "abc", 2));
    assert_false(rd_scenario_glob_match("abc", "abc", 2));
}

/* ---- matching ---------------------------------------------------------- */

static void test_nth_list(void **state)
{
    (void)state;
    struct rd_scenario_set *set =
        compile("{'scenario': [{'match': {'nth': [2, 1, 5]}, 'respond': {'status': 503}}]}", NULL);
    int expect[] = {0, 0, -1, -1, 0, -1, -1};
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++) {
        struct rd_fault_plan plan = {0};
        int w = match_simple(set, "POST", "/v1/chat/completions", "gpt-4o", &plan);
        if (w != expect[i])
            fail_msg("request %zu: got %d", i + 1, w);
        if (w == 0) {
            assert_true(plan.set);
            assert_int_equal(plan.status, 503);
            assert_int_equal(plan.retry_after_s, 1); /* the default on 503 */
            assert_null(plan.message);
        }
    }
    rd_scenario_free(set);

    /* nth as one number: the 3rd request only */
    set = compile("{'scenario': [{'match': {'nth': 3}, 'respond': {'status': 429, 'retry_after_s': 7}}]}", NULL);
    for (int i = 1; i <= 5; i++) {
        struct rd_fault_plan plan = {0};
        assert_int_equal(match_simple(set, "POST", "/x", "", &plan), i == 3 ? 0 : -1);
        if (i == 3)
            assert_int_equal(plan.retry_after_s, 7);
    }
    rd_scenario_free(set);
}

static void test_conditions(void **state)
{
    (void)state;
    struct rd_scenario_set *set = compile(
        "{'scenario': ["
        " {'match': {'model': 'gpt-4o', 'path': '/v1/chat/*'}, 'respond': {'delay_ms': 2000}},"
        " {'match': {'header': {'x-test-case': 'cut'}}, 'respond': {'stream_fault': 'cut', 'after_events': 3}},"
        " {'match': {'method': 'get', 'path': '/v1/models'}, 'respond': {'status': 500, 'message': 'boom'}},"
        " {'match': {'header': {'X-Tenant': 'acme-*', 'x-two': 'yes'}}, 'respond': {'stream_fault': 'stall'}}"
        "]}",
        NULL);
    struct rd_fault_plan plan;
    /* model and path */
    memset(&plan, 0, sizeof plan);
    assert_int_equal(match_simple(set, "POST", "/v1/chat/completions", "gpt-4o", &plan), 0);
    assert_int_equal(plan.delay_ms, 2000);
    assert_int_equal(plan.status, 0);
    assert_int_equal(match_simple(set, "POST", "/v1/chat/completions", "gpt-4o-mini", &plan), -1);
    assert_int_equal(match_simple(set, "POST", "/v1/embeddings", "gpt-4o", &plan), -1);
    assert_int_equal(match_simple(set, "POST", "/v1/chat/completions", "", &plan), -1);
    /* method, case-insensitive; message kept */
    assert_int_equal(match_simple(set, "GET", "/v1/models", "", &plan), 2);
    assert_int_equal(plan.status, 500);
    assert_string_equal(plan.message, "boom");
    assert_int_equal(plan.retry_after_s, -1); /* none on 500 unless asked */
    assert_int_equal(match_simple(set, "POST", "/v1/models", "", &plan), -1);

    /* header names are case-insensitive, values exact (a glob) */
    struct fake f;
    fake_init(&f, "POST", "/v1/messages", "claude");
    fake_hdr(&f, "X-Test-Case", "cut");
    memset(&plan, 0, sizeof plan);
    assert_int_equal(rd_scenario_match(set, &f.in, &plan), 1);
    assert_int_equal(plan.stream_fault, RD_SFAULT_CUT);
    assert_int_equal(plan.after_events, 3);
    fake_free(&f);
    fake_init(&f, "POST", "/v1/messages", "claude");
    fake_hdr(&f, "x-test-case", "Cut");
    assert_int_equal(rd_scenario_match(set, &f.in, &plan), -1);
    fake_free(&f);
    /* every header of an entry must match; any line of a repeated name will do */
    fake_init(&f, "POST", "/v1/messages", "claude");
    fake_hdr(&f, "x-tenant", "other");
    fake_hdr(&f, "X-TENANT", "acme-eu");
    assert_int_equal(rd_scenario_match(set, &f.in, &plan), -1);
    fake_hdr(&f, "x-two", "yes");
    memset(&plan, 0, sizeof plan);
    assert_int_equal(rd_scenario_match(set, &f.in, &plan), 3);
    assert_int_equal(plan.stream_fault, RD_SFAULT_STALL);
    assert_int_equal(plan.after_events, 1); /* defaults */
    assert_int_equal(plan.stall_ms, 5000);
    fake_free(&f);
    rd_scenario_free(set);
}

static void test_first_match_wins(void **state)
{
    (void)state;
    /* The 2nd request to the chat path gets a 429 although the first entry
     * answered the 1st: each entry counts the requests meeting its other
     * conditions, whoever answered them. */
    struct rd_scenario_set *set = compile("{'scenario': ["
                                          " {'match': {'nth': 1}, 'respond': {'status': 503}},"
                                          " {'match': {'nth': [2], 'path': '/v1/chat/*'}, 'respond': {'status': 429}},"
                                          " {'match': {'path': '/v1/chat/*'}, 'respond': {'status': 500}},"
                                          " {'respond': {'status': 400}}"
                                          "]}",
                                          NULL);
    struct rd_fault_plan plan;
    const char *paths[] = {"/v1/chat/completions", "/v1/chat/completions", "/v1/chat/completions", "/v1/other"};
    int want_status[] = {503, 429, 500, 400};
    for (size_t i = 0; i < 4; i++) {
        memset(&plan, 0, sizeof plan);
        assert_true(match_simple(set, "POST", paths[i], "", &plan) >= 0);
        if (plan.status != want_status[i])
            fail_msg("request %zu: status %d", i + 1, plan.status);
    }
    rd_scenario_free(set);

    /* An entry that never matches does not stop the next one. */
    set = compile("{'scenario': [{'match': {'model': 'nope'}, 'respond': {'status': 503}},"
                  " {'match': {'nth': [1, 2]}, 'respond': {'delay_ms': 1}}]}",
                  NULL);
    assert_int_equal(match_simple(set, "POST", "/", "gpt", &plan), 1);
    assert_int_equal(match_simple(set, "POST", "/", "gpt", &plan), 1);
    assert_int_equal(match_simple(set, "POST", "/", "gpt", &plan), -1);
    rd_scenario_free(set);
}

static void test_counters_reset_with_compile(void **state)
{
    (void)state;
    const char *text = "{'scenario': [{'match': {'nth': [1, 2]}, 'respond': {'status': 503}}]}";
    struct rd_fault_plan plan;
    struct rd_scenario_set *a = compile(text, NULL);
    assert_int_equal(match_simple(a, "POST", "/", "", &plan), 0);
    assert_int_equal(match_simple(a, "POST", "/", "", &plan), 0);
    assert_int_equal(match_simple(a, "POST", "/", "", &plan), -1);
    /* a new configuration (a new compile of the same text) counts from 1 */
    struct rd_scenario_set *b = compile(text, NULL);
    assert_int_equal(match_simple(b, "POST", "/", "", &plan), 0);
    assert_int_equal(match_simple(a, "POST", "/", "", &plan), -1); /* the old one goes on where it was */
    assert_int_equal(match_simple(b, "POST", "/", "", &plan), 0);
    assert_int_equal(match_simple(b, "POST", "/", "", &plan), -1);
    rd_scenario_free(a);
    rd_scenario_free(b);
    assert_int_equal(rd_scenario_match(NULL, NULL, &plan), -1);
}

struct thread_arg {
    struct rd_scenario_set *set;
    int wins;
};

static void *hammer(void *p)
{
    struct thread_arg *a = p;
    for (int i = 0; i < 2000; i++) {
        struct rd_fault_plan plan;
        if (match_simple(a->set, "POST", "/", "", &plan) == 0)
            a->wins++;
    }
    return NULL;
}

/* Shared counters: with 4 threads, exactly the listed request numbers win. */
static void test_counters_threads(void **state)
{
    (void)state;
    struct rd_scenario_set *set =
        compile("{'scenario': [{'match': {'nth': [1, 100, 4000, 7999, 8000, 8001]}, 'respond': {'status': 503}}]}",
                NULL);
    pthread_t t[4];
    struct thread_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (struct thread_arg){set, 0};
        assert_int_equal(pthread_create(&t[i], NULL, hammer, &args[i]), 0);
    }
    int wins = 0;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        wins += args[i].wins;
    }
    assert_int_equal(wins, 5); /* 8001 is never reached by 8000 requests */
    rd_scenario_free(set);
}

/* ---- the stage in the pipeline -------------------------------------------- */

static void test_pipeline_membership(void **state)
{
    (void)state;
    static const struct {
        const char *doc;
        bool in;
    } cases[] = {
        {"{}", false},
        {"{'scenario': []}", false},
        {"{'failure': {'request_overrides': false}}", false},
        {"{'failure': {'request_overrides': true}}", true},
        {"{'scenario': [{'respond': {'status': 503}}]}", true},
        {"{'scenario': [{'respond': {'status': 503}}], 'middleware_pipeline': ['provider_forwarding']}", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct json_object *doc = parse(cases[i].doc);
        struct rd_config_err err;
        assert_int_equal(rd_config_validate(doc, &err), 0);
        struct rd_pipeline pl;
        assert_int_equal(rd_pipeline_compile(doc, NULL, &pl, &err), 0);
        bool in = false;
        for (size_t k = 0; k < pl.n; k++)
            in |= strcmp(pl.run[k].stage->name, "scenario") == 0;
        if (in != cases[i].in)
            fail_msg("case %zu (%s): scenario stage %s", i, cases[i].doc, in ? "present" : "absent");
        if (in) {
            assert_string_equal(pl.run[0].stage->name, "scenario");
            assert_true(pl.active); /* requests are numbered */
        }
        rd_pipeline_free(&pl);
        json_object_put(doc);
    }
}

/* ---- X-Rubberduck-Fault -------------------------------------------------- */

/* Parses the given header lines (NULL-terminated); returns the rc. */
static int faults(struct rd_fault_plan *plan, char *msg, size_t cap, ...)
{
    struct rd_arena arena;
    struct rd_hdrs h;
    rd_arena_init(&arena);
    rd_hdrs_init(&h, &arena);
    rd_hdrs_add(&h, "Content-Type", 12, "application/json", 16);
    va_list ap;
    va_start(ap, cap);
    for (const char *v; (v = va_arg(ap, const char *)) != NULL;)
        rd_hdrs_add(&h, "X-Rubberduck-Fault", 18, v, strlen(v));
    va_end(ap);
    msg[0] = '\0';
    int rc = rd_scenario_parse_faults(&h, plan, msg, cap);
    rd_hdrs_free(&h);
    rd_arena_free(&arena);
    return rc;
}

static void test_fault_header_valid(void **state)
{
    (void)state;
    struct rd_fault_plan p;
    char msg[320];
    memset(&p, 0xab, sizeof p);
    struct rd_fault_plan before = p;
    assert_int_equal(faults(&p, msg, sizeof msg, NULL), 0); /* no header: untouched */
    assert_memory_equal(&p, &before, sizeof p);

    assert_int_equal(faults(&p, msg, sizeof msg, "status=503", NULL), 1);
    assert_true(p.set);
    assert_int_equal(p.status, 503);
    assert_int_equal(p.retry_after_s, 1);
    assert_null(p.message);
    assert_false(p.hang);
    assert_int_equal(p.stream_fault, RD_SFAULT_NONE);

    assert_int_equal(faults(&p, msg, sizeof msg, "status=429, retry_after_s=0", NULL), 1);
    assert_int_equal(p.status, 429);
    assert_int_equal(p.retry_after_s, 0);
    assert_int_equal(faults(&p, msg, sizeof msg, "status=500", NULL), 1);
    assert_int_equal(p.retry_after_s, -1);

    assert_int_equal(faults(&p, msg, sizeof msg, "hang", NULL), 1);
    assert_true(p.hang);
    assert_int_equal(faults(&p, msg, sizeof msg, "delay_ms=500", NULL), 1);
    assert_int_equal(p.delay_ms, 500);
    assert_int_equal(p.status, 0);

    assert_int_equal(faults(&p, msg, sizeof msg, "cut_after=3", NULL), 1);
    assert_int_equal(p.stream_fault, RD_SFAULT_CUT);
    assert_int_equal(p.after_events, 3);
    assert_int_equal(faults(&p, msg, sizeof msg, "cut_after=0", NULL), 1);
    assert_int_equal(p.after_events, 0);
    assert_int_equal(faults(&p, msg, sizeof msg, " stall_after=2 ,\tstall_ms=250 ", NULL), 1);
    assert_int_equal(p.stream_fault, RD_SFAULT_STALL);
    assert_int_equal(p.after_events, 2);
    assert_int_equal(p.stall_ms, 250);
    assert_int_equal(faults(&p, msg, sizeof msg, "stall_after=2", NULL), 1);
    assert_int_equal(p.stall_ms, 5000);
    assert_int_equal(faults(&p, msg, sizeof msg, "error_after=4", NULL), 1);
    assert_int_equal(p.stream_fault, RD_SFAULT_ERROR);
    assert_int_equal(p.after_events, 4);
    assert_int_equal(faults(&p, msg, sizeof msg, "malformed", NULL), 1);
    assert_int_equal(p.stream_fault, RD_SFAULT_MALFORMED);
    assert_int_equal(p.after_events, 1);
    assert_int_equal(faults(&p, msg, sizeof msg, "malformed=6", NULL), 1);
    assert_int_equal(p.after_events, 6);
    assert_int_equal(faults(&p, msg, sizeof msg, "DUPLICATE", NULL), 1);
    assert_int_equal(p.stream_fault, RD_SFAULT_DUPLICATE);
    assert_int_equal(faults(&p, msg, sizeof msg, "duplicate_after=2", NULL), 1);
    assert_int_equal(p.after_events, 2);
    /* a delay before an error or a stream fault; several lines; empty elements */
    assert_int_equal(faults(&p, msg, sizeof msg, "delay_ms=20,,status=502,", NULL), 1);
    assert_int_equal(p.delay_ms, 20);
    assert_int_equal(p.status, 502);
    assert_int_equal(faults(&p, msg, sizeof msg, "delay_ms=20", "cut_after=1", NULL), 1);
    assert_int_equal(p.delay_ms, 20);
    assert_int_equal(p.stream_fault, RD_SFAULT_CUT);
}

static void test_fault_header_hostile(void **state)
{
    (void)state;
    static const struct {
        const char *v1, *v2;
        const char *msg;
    } bad[] = {
        {"", NULL, "names no fault"},
        {" , ,", NULL, "names no fault"},
        {"explode", NULL, "header (position 1): unknown item \"explode\": expected status=<400-599>, "},
        {"status=503,bogus=1", NULL, "header (position 12): unknown item \"bogus\""},
        {"status", NULL, "status needs a value"},
        {"status=", NULL, "status must be an HTTP status from 400 to 599"},
        {"status=abc", NULL, "status must be an HTTP status"},
        {"status=200", NULL, "status must be an HTTP status"},
        {"status=600", NULL, "status must be an HTTP status"},
        {"status=-503", NULL, "status must be an HTTP status"},
        {"status=5 03", NULL, "status must be an HTTP status"},
        {"status=503x", NULL, "status must be an HTTP status"},
        {"status=99999999999999999999999999", NULL, "status must be an HTTP status"},
        {"status=0x1f7", NULL, "status must be an HTTP status"},
        {"delay_ms=3600001", NULL, "delay_ms must be milliseconds from 0 to 3600000"},
        {"hang=1", NULL, "hang takes no value"},
        {"cut_after", NULL, "cut_after needs a value"},
        {"status=503,status=500", NULL, "header (position 12): status is given twice"},
        {"malformed,malformed_after=2", NULL, "malformed_after is given twice"},
        {"status=503", "status=500", "header (line 2, position 1): status is given twice"},
        {"hang,status=503", NULL, "hang cannot be combined"},
        {"hang,delay_ms=5", NULL, "hang cannot be combined"},
        {"cut_after=1,error_after=2", NULL, "at most one stream fault"},
        {"status=503,cut_after=1", NULL, "status cannot be combined with a stream fault"},
        {"retry_after_s=3", NULL, "retry_after_s requires status"},
        {"stall_ms=3", NULL, "stall_ms requires stall_after"},
        {"cut_after=1,stall_ms=3", NULL, "stall_ms requires stall_after"},
        {"\x01\x02\xff=1", NULL, "unknown item \"???\""},
        {"status=503;hang", NULL, "status must be"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct rd_fault_plan p;
        char msg[320];
        int rc = bad[i].v2 ? faults(&p, msg, sizeof msg, bad[i].v1, bad[i].v2, NULL)
                           : faults(&p, msg, sizeof msg, bad[i].v1, NULL);
        if (rc != RD_EINVAL || strstr(msg, bad[i].msg) == NULL ||
            strncmp(msg, "Invalid X-Rubberduck-Fault header", 33) != 0)
            fail_msg("case %zu (%s): rc %d, msg %s", i, bad[i].v1, rc, msg);
    }
    /* a long name is quoted cut short; an oversized value is refused whole */
    char longname[200];
    memset(longname, 'q', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    struct rd_fault_plan p;
    char msg[320];
    assert_int_equal(faults(&p, msg, sizeof msg, longname, NULL), RD_EINVAL);
    assert_non_null(strstr(msg, "qqq...\""));
    assert_true(strlen(msg) < sizeof msg - 1);
    char huge[2000];
    memset(huge, ',', sizeof huge - 1);
    huge[sizeof huge - 1] = '\0';
    assert_int_equal(faults(&p, msg, sizeof msg, huge, NULL), RD_EINVAL);
    assert_non_null(strstr(msg, "longer than 1024 bytes"));
    /* a tiny message buffer is still a terminated string */
    char tiny[8];
    assert_int_equal(faults(&p, tiny, sizeof tiny, "bogus", NULL), RD_EINVAL);
    assert_int_equal(strlen(tiny), 7);
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schema_accepts),
        cmocka_unit_test(test_schema_refuses),
        cmocka_unit_test(test_glob),
        cmocka_unit_test(test_nth_list),
        cmocka_unit_test(test_conditions),
        cmocka_unit_test(test_first_match_wins),
        cmocka_unit_test(test_counters_reset_with_compile),
        cmocka_unit_test(test_counters_threads),
        cmocka_unit_test(test_pipeline_membership),
        cmocka_unit_test(test_fault_header_valid),
        cmocka_unit_test(test_fault_header_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
