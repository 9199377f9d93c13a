/* CSV rendering of request-log records (src/obs/record_csv.c): RFC 4180
 * quoting (commas, quotes, CR, LF), CRLF line ends, empty (unknown) versus
 * 0, and the formula prefixes spreadsheet applications would run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "obs/record.h"
#include "util/buf.h"

static struct rd_log_rec blank(void)
{
    struct rd_log_rec r;
    memset(&r, 0, sizeof r);
    snprintf(r.id, sizeof r.id, "req_1");
    r.ts_ms = INT64_C(1796279462123);
    r.proxy_id = 3;
    r.upstream_latency_ms = r.ttfb_ms = -1;
    r.input_tokens = r.output_tokens = r.cached_tokens = r.reasoning_tokens = -1;
    return r;
}

/* Splits one CSV line (RFC 4180, as a spreadsheet reads it) into fields;
 * returns the count. Asserts the line ends with CRLF and nothing follows. */
static size_t parse_line(const char *s, char fields[][300], size_t max)
{
    size_t n = 0, o = 0;
    const char *p = s;
    for (;;) {
        assert_true(n < max);
        o = 0;
        if (*p == '"') {
            p++;
            for (;;) {
                assert_true(*p != '\0');
                if (*p == '"' && p[1] == '"') {
                    fields[n][o++] = '"';
                    p += 2;
                } else if (*p == '"') {
                    p++;
                    break;
                } else {
                    fields[n][o++] = *p++;
                }
            }
        } else {
            while (*p != ',' && *p != '\r' && *p != '\0') {
                assert_true(*p != '"' && *p != '\n');
                fields[n][o++] = *p++;
            }
        }
        fields[n++][o] = '\0';
        if (*p == ',') {
            p++;
            continue;
        }
        assert_string_equal(p, "\r\n");
        return n;
    }
}

static char F[64][300];

static void test_header_matches_fields(void **state)
{
    (void)state;
    struct rd_buf b;
    rd_buf_init(&b, 0);
    assert_int_equal(rd_log_csv_header(&b), 0);
    size_t nh = parse_line(b.data, F, 64);
    assert_int_equal(nh, 28);
    assert_string_equal(F[0], "id");
    assert_string_equal(F[1], "timestamp");
    assert_string_equal(F[24], "cost_usd");
    assert_string_equal(F[27], "trace_id");
    rd_buf_reset(&b);
    struct rd_log_rec r = blank();
    assert_int_equal(rd_log_rec_csv(&b, &r), 0);
    assert_int_equal(parse_line(b.data, F, 64), nh);
    rd_buf_free(&b);
}

static void test_quoting_round_trips(void **state)
{
    (void)state;
    struct rd_log_rec r = blank();
    snprintf(r.path, sizeof r.path, "/v1/a,b");
    snprintf(r.model, sizeof r.model, "say \"hi\"\r\nbye");
    snprintf(r.upstream_request_id, sizeof r.upstream_request_id, "\"");
    snprintf(r.client_ip, sizeof r.client_ip, "plain");
    struct rd_buf b;
    rd_buf_init(&b, 0);
    assert_int_equal(rd_log_rec_csv(&b, &r), 0);
    assert_non_null(strstr(b.data, ",\"/v1/a,b\","));
    assert_non_null(strstr(b.data, ",\"say \"\"hi\"\"\r\nbye\","));
    assert_non_null(strstr(b.data, ",plain,")); /* nothing to quote: not quoted */
    assert_int_equal(parse_line(b.data, F, 64), 28);
    assert_string_equal(F[0], "req_1");
    assert_string_equal(F[1], "2026-12-03T06:31:02.123Z");
    assert_string_equal(F[6], "/v1/a,b");
    assert_string_equal(F[8], "say \"hi\"\r\nbye");
    assert_string_equal(F[26], "\"");
    /* the record's line ends once, with CRLF */
    assert_int_equal(b.data[b.len - 2], '\r');
    assert_int_equal(b.data[b.len - 1], '\n');
    rd_buf_free(&b);
}

static void test_empty_versus_zero(void **state)
{
    (void)state;
    struct rd_log_rec r = blank();
    struct rd_buf b;
    rd_buf_init(&b, 0);
    assert_int_equal(rd_log_rec_csv(&b, &r), 0);
    assert_int_equal(parse_line(b.data, F, 64), 28);
    /* unknown: status 0, tokens -1, no cost, no ttfb, no cache */
    assert_string_equal(F[9], "");
    assert_string_equal(F[13], "");
    assert_string_equal(F[16], "");
    assert_string_equal(F[20], "");
    assert_string_equal(F[24], "");
    assert_string_equal(F[19], "false");
    rd_buf_reset(&b);
    r.status = 200;
    r.input_tokens = 0;
    r.has_cost = true;
    r.cost_usd = 0;
    r.ttfb_ms = 0;
    r.cache = RD_LOG_CACHE_HIT;
    r.stream = true;
    assert_int_equal(rd_log_rec_csv(&b, &r), 0);
    assert_int_equal(parse_line(b.data, F, 64), 28);
    assert_string_equal(F[9], "200");
    assert_string_equal(F[13], "0.000");
    assert_string_equal(F[16], "hit");
    assert_string_equal(F[20], "0");
    assert_string_equal(F[24], "0");
    assert_string_equal(F[19], "true");
    rd_buf_free(&b);
}

static void test_formula_prefixes(void **state)
{
    (void)state;
    const char *hostile[] = {"=HYPERLINK(\"http://x\")", "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"};
    for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
        struct rd_log_rec r = blank();
        snprintf(r.model, sizeof r.model, "%s", hostile[i]);
        snprintf(r.path, sizeof r.path, "/ok=1"); /* only the first character counts */
        struct rd_buf b;
        rd_buf_init(&b, 0);
        assert_int_equal(rd_log_rec_csv(&b, &r), 0);
        assert_int_equal(parse_line(b.data, F, 64), 28);
        assert_int_equal(F[8][0], '\'');
        assert_string_equal(F[8] + 1, hostile[i]);
        assert_string_equal(F[6], "/ok=1");
        rd_buf_free(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_matches_fields),
        cmocka_unit_test(test_quoting_round_trips),
        cmocka_unit_test(test_empty_versus_zero),
        cmocka_unit_test(test_formula_prefixes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
