/* The pipeline's stage table and middleware_pipeline: which stages run, in
 * what order, and the documents that are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "proxy/pipeline.h"
#include "util/err.h"
#include "util/json.h"

static struct json_object *doc(const char *text)
{
    struct json_object *o = NULL;
    assert_int_equal(rd_json_parse(text, strlen(text), 65536, &o, NULL), 0);
    struct rd_config_err err;
    assert_int_equal(rd_config_validate(o, &err), 0);
    return o;
}

/* The names of the run list, space-separated. */
static void run_names(const struct rd_pipeline *pl, char *out, size_t cap)
{
    out[0] = '\0';
    for (size_t i = 0; i < pl->n; i++) {
        size_t n = strlen(out);
        snprintf(out + n, cap - n, "%s%s", i ? " " : "", pl->run[i].stage->name);
    }
}

static void test_table(void **state)
{
    (void)state;
    for (int id = 0; id < RD_STAGE_COUNT; id++) {
        const struct rd_stage *st = rd_stage_get((enum rd_stage_id)id);
        if (st)
            assert_non_null(st->name);
    }
    assert_non_null(rd_stage_get(RD_STAGE_UPSTREAM));
    assert_string_equal(rd_stage_get(RD_STAGE_UPSTREAM)->name, "upstream");
    assert_null(rd_stage_get(RD_STAGE_COUNT));
    assert_null(rd_stage_get((enum rd_stage_id)-1));
}

static void test_default_order(void **state)
{
    (void)state;
    /* the cache is on unless turned off (docs/caching.md) */
    struct json_object *d = doc("{}");
    struct rd_pipeline pl;
    struct rd_config_err err;
    char names[256];
    assert_int_equal(rd_pipeline_compile(d, NULL, &pl, &err), 0);
    run_names(&pl, names, sizeof names);
    assert_string_equal(names, "cache upstream");
    /* it needs no request numbers (no seeded draws) */
    assert_false(pl.active);
    rd_pipeline_free(&pl);
    json_object_put(d);
    d = doc("{\"cache\":{\"enabled\":false}}");
    assert_int_equal(rd_pipeline_compile(d, NULL, &pl, &err), 0);
    run_names(&pl, names, sizeof names);
    /* only configured stages run: with nothing configured, the upstream */
    assert_string_equal(names, "upstream");
    for (int id = 0; id < RD_STAGE_COUNT; id++)
        assert_true(pl.enabled[id]);
    /* nothing but the upstream and the request log: requests are not
     * numbered; the one hook is the record's (the prompt hash) */
    assert_false(pl.active);
    assert_true(rd_pipeline_logs(&pl));
    assert_int_equal(pl.nhead, 1);
    assert_int_equal(pl.ndone, 0);
    rd_pipeline_free(&pl);
    json_object_put(d);
    /* and with the request log off too, no hooks run */
    d = doc("{\"cache\":{\"enabled\":false},\"logging\":{\"enabled\":false}}");
    assert_int_equal(rd_pipeline_compile(d, NULL, &pl, &err), 0);
    assert_false(rd_pipeline_logs(&pl));
    assert_int_equal(pl.nhead, 0);
    assert_int_equal(pl.ndone, 0);
    rd_pipeline_free(&pl);
    json_object_put(d);
}

/* The request log is on by default, off by its block or when
 * middleware_pipeline leaves "logging" out. */
static void test_logging_switch(void **state)
{
    (void)state;
    static const struct {
        const char *doc;
        bool logs;
    } cases[] = {
        {"{}", true},
        {"{\"logging\":{}}", true},
        {"{\"logging\":{\"enabled\":true}}", true},
        {"{\"logging\":{\"enabled\":false}}", false},
        {"{\"middleware_pipeline\":[\"provider_forwarding\",\"logging\"]}", true},
        {"{\"middleware_pipeline\":[\"caching\",\"provider_forwarding\"]}", false},
        {"{\"middleware_pipeline\":[\"provider_forwarding\",\"logging\"],\"logging\":{\"enabled\":false}}", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct json_object *d = doc(cases[i].doc);
        struct rd_pipeline pl;
        struct rd_config_err err;
        assert_int_equal(rd_pipeline_compile(d, NULL, &pl, &err), 0);
        if (rd_pipeline_logs(&pl) != cases[i].logs)
            fail_msg("%s: logs %d", cases[i].doc, !cases[i].logs);
        rd_pipeline_free(&pl);
        json_object_put(d);
    }
}

static void test_description_list(void **state)
{
    (void)state;
    /* the product description's list as is */
    struct json_object *d =
        doc("{\"middleware_pipeline\":[\"authentication\",\"rate_limiting\",\"request_validation\",\"caching\","
            "\"failure_simulation\",\"provider_forwarding\",\"response_processing\",\"logging\"]}");
    struct rd_pipeline pl;
    struct rd_config_err err;
    assert_int_equal(rd_pipeline_compile(d, NULL, &pl, &err), 0);
    for (int id = 0; id < RD_STAGE_COUNT; id++)
        assert_true(pl.enabled[id]);
    assert_int_equal(rd_pipeline_check(d, NULL, &err), 0);
    rd_pipeline_free(&pl);
    json_object_put(d);

    /* dropping names drops their stages; response-side names may follow forwarding */
    d = doc("{\"middleware_pipeline\":[\"provider_forwarding\",\"logging\"]}");
    assert_int_equal(rd_pipeline_compile(d, NULL, &pl, &err), 0);
    assert_true(pl.enabled[RD_STAGE_UPSTREAM]);
    assert_true(pl.enabled[RD_STAGE_RECORD]);
    assert_false(pl.enabled[RD_STAGE_IP_FILTER]);
    assert_false(pl.enabled[RD_STAGE_ERROR_INJECTION]);
    assert_false(pl.enabled[RD_STAGE_STREAM_FAULTS]);
    assert_false(pl.enabled[RD_STAGE_RESPONSE_DELAY]);
    char names[256];
    run_names(&pl, names, sizeof names);
    assert_string_equal(names, "upstream");
    rd_pipeline_free(&pl);
    json_object_put(d);

    /* failure_simulation stands for its request stages and the stream faults */
    d = doc("{\"middleware_pipeline\":[\"failure_simulation\",\"ip_filter\",\"provider_forwarding\"]}");
    assert_int_equal(rd_pipeline_compile(d, NULL, &pl, &err), 0);
    assert_true(pl.enabled[RD_STAGE_SCENARIO] && pl.enabled[RD_STAGE_TIMEOUT] &&
                pl.enabled[RD_STAGE_ERROR_INJECTION] && pl.enabled[RD_STAGE_STREAM_FAULTS]);
    assert_true(pl.enabled[RD_STAGE_IP_FILTER]);
    assert_false(pl.enabled[RD_STAGE_RATE_LIMIT]);
    rd_pipeline_free(&pl);
    json_object_put(d);
}

static void test_refused(void **state)
{
    (void)state;
    static const struct {
        const char *doc;
        const char *field;
        const char *msg;
    } bad[] = {
        {"{\"middleware_pipeline\":[\"authentication\",\"caching\"]}", "middleware_pipeline",
         "the pipeline must include \"provider_forwarding\""},
        {"{\"middleware_pipeline\":[]}", "middleware_pipeline", "the pipeline must include \"provider_forwarding\""},
        {"{\"middleware_pipeline\":[\"provider_forwarding\",\"caching\"]}", "middleware_pipeline[1]",
         "\"caching\" must come before \"provider_forwarding\""},
        {"{\"middleware_pipeline\":[\"logging\",\"provider_forwarding\",\"rate_limiting\"]}",
         "middleware_pipeline[2]", "\"rate_limiting\" must come before"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct json_object *d = doc(bad[i].doc);
        struct rd_pipeline pl;
        struct rd_config_err err;
        assert_int_equal(rd_pipeline_compile(d, NULL, &pl, &err), RD_EINVAL);
        assert_string_equal(err.field, bad[i].field);
        assert_memory_equal(err.message, bad[i].msg, strlen(bad[i].msg));
        assert_int_equal(rd_pipeline_check(d, NULL, &err), RD_EINVAL);
        json_object_put(d);
    }
    /* unknown names never get this far: the schema names the element */
    struct json_object *o = NULL;
    const char *text = "{\"middleware_pipeline\":[\"provider_forwarding\",\"telepathy\"]}";
    assert_int_equal(rd_json_parse(text, strlen(text), 65536, &o, NULL), 0);
    struct rd_config_err err;
    assert_int_equal(rd_config_validate(o, &err), RD_EINVAL);
    assert_string_equal(err.field, "middleware_pipeline[1]");
    json_object_put(o);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_default_order),
        cmocka_unit_test(test_logging_switch),
        cmocka_unit_test(test_description_list),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
