/* Tests for src/util/log.c: the text (logfmt) and JSON line formats, their
 * escaping (one event is always one line), the proxy/req fields, level
 * filtering and the parse functions. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/buf.h"
#include "util/err.h"
#include "util/json.h"
#include "util/log.h"

/* 2026-12-04T14:56:18.123Z */
#define NOW_MS 1796396178123ull

static char *render(struct rd_buf *b, enum rd_log_format fmt, enum rd_log_level lvl, const char *proxy,
                    const char *req, const char *msg)
{
    rd_buf_reset(b);
    assert_int_equal(rd_log_render(b, fmt, NOW_MS, lvl, proxy, req, msg), 0);
    return b->data;
}

static size_t count_char(const char *s, char c)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == c;
    return n;
}

static void test_text_plain(void **state)
{
    (void)state;
    struct rd_buf b;
    rd_buf_init(&b, 0);
    assert_string_equal(render(&b, RD_LOG_TEXT, RD_LOG_INFO, NULL, NULL, "admin API on http://127.0.0.1:9000"),
                        "ts=2026-12-04T14:56:18.123Z level=info msg=\"admin API on http://127.0.0.1:9000\"\n");
    assert_string_equal(render(&b, RD_LOG_TEXT, RD_LOG_WARN, "", "", ""),
                        "ts=2026-12-04T14:56:18.123Z level=warn msg=\"\"\n");
    rd_buf_free(&b);
}

static void test_text_escaping(void **state)
{
    (void)state;
    struct rd_buf b;
    rd_buf_init(&b, 0);
    const char *line = render(&b, RD_LOG_TEXT, RD_LOG_ERROR, NULL, NULL,
                              "peer \"a\\b\"\nlevel=error msg=\"forged\"\r\tx\x01y\x1b[31m");
    assert_string_equal(line, "ts=2026-12-04T14:56:18.123Z level=error msg=\"peer \\\"a\\\\b\\\"\\nlevel=error "
                              "msg=\\\"forged\\\"\\r\\tx\\u0001y\\u001b[31m\"\n");
    /* one event, one line: the only newline is the last byte */
    assert_int_equal(count_char(line, '\n'), 1);
    assert_int_equal(line[b.len - 1], '\n');
    /* bytes that are not UTF-8 (a client's path, say) become U+FFFD */
    line = render(&b, RD_LOG_TEXT, RD_LOG_INFO, NULL, NULL, "GET /\xff\xfe ok \xc3\xa9");
    assert_string_equal(line, "ts=2026-12-04T14:56:18.123Z level=info msg=\"GET /\xEF\xBF\xBD\xEF\xBF\xBD ok \xc3\xa9\"\n");
    rd_buf_free(&b);
}

static void test_text_fields(void **state)
{
    (void)state;
    struct rd_buf b;
    rd_buf_init(&b, 0);
    assert_string_equal(render(&b, RD_LOG_TEXT, RD_LOG_WARN, "engine", "req_00000000000000ff", "upstream failed"),
                        "ts=2026-12-04T14:56:18.123Z level=warn msg=\"upstream failed\" proxy=engine "
                        "req=req_00000000000000ff\n");
    /* either field alone; NULL and "" leave it out */
    assert_string_equal(render(&b, RD_LOG_TEXT, RD_LOG_INFO, "p1", NULL, "m"),
                        "ts=2026-12-04T14:56:18.123Z level=info msg=\"m\" proxy=p1\n");
    assert_string_equal(render(&b, RD_LOG_TEXT, RD_LOG_INFO, "", "req_1", "m"),
                        "ts=2026-12-04T14:56:18.123Z level=info msg=\"m\" req=req_1\n");
    /* a value that could be read as more than one field is quoted */
    assert_string_equal(render(&b, RD_LOG_TEXT, RD_LOG_INFO, "my proxy req=x", "a\"b\n", "m"),
                        "ts=2026-12-04T14:56:18.123Z level=info msg=\"m\" proxy=\"my proxy req=x\" "
                        "req=\"a\\\"b\\n\"\n");
    rd_buf_free(&b);
}

/* Parses a JSON line (without its newline) and checks its fields; NULL
 * proxy or req means the key must be absent. */
static void check_json(const char *line, size_t len, const char *level, const char *msg, const char *proxy,
                       const char *req)
{
    assert_true(len > 0 && line[len - 1] == '\n');
    assert_int_equal(count_char(line, '\n'), 1);
    struct json_object *o = NULL;
    struct rd_json_err err;
    assert_int_equal(rd_json_parse(line, len - 1, 1 << 20, &o, &err), 0);
    assert_string_equal(rd_json_get_str(o, "ts"), "2026-12-04T14:56:18.123Z");
    assert_string_equal(rd_json_get_str(o, "level"), level);
    assert_string_equal(rd_json_get_str(o, "msg"), msg);
    if (proxy)
        assert_string_equal(rd_json_get_str(o, "proxy"), proxy);
    else
        assert_null(rd_json_get(o, "proxy"));
    if (req)
        assert_string_equal(rd_json_get_str(o, "req"), req);
    else
        assert_null(rd_json_get(o, "req"));
    json_object_put(o);
}

static void test_json_lines(void **state)
{
    (void)state;
    struct rd_buf b;
    rd_buf_init(&b, 0);
    assert_string_equal(render(&b, RD_LOG_JSON, RD_LOG_INFO, NULL, NULL, "stopped"),
                        "{\"ts\":\"2026-12-04T14:56:18.123Z\",\"level\":\"info\",\"msg\":\"stopped\"}\n");
    assert_string_equal(render(&b, RD_LOG_JSON, RD_LOG_DEBUG, "emu", "req_2a", "POST /v1/x -> 200"),
                        "{\"ts\":\"2026-12-04T14:56:18.123Z\",\"level\":\"debug\",\"msg\":\"POST /v1/x -> 200\","
                        "\"proxy\":\"emu\",\"req\":\"req_2a\"}\n");
    const char *nasty = "q\"uote\\ new\nline\r tab\t ctl\x01\x1f end\"}";
    render(&b, RD_LOG_JSON, RD_LOG_ERROR, "p\"x", "r\n1", nasty);
    check_json(b.data, b.len, "error", nasty, "p\"x", "r\n1");
    render(&b, RD_LOG_JSON, RD_LOG_TRACE, NULL, "req_9", "m");
    check_json(b.data, b.len, "trace", "m", NULL, "req_9");
    render(&b, RD_LOG_JSON, RD_LOG_WARN, "only", "", "m");
    check_json(b.data, b.len, "warn", "m", "only", NULL);
    /* invalid UTF-8 still yields valid JSON */
    render(&b, RD_LOG_JSON, RD_LOG_INFO, NULL, NULL, "bad \xc3 byte");
    check_json(b.data, b.len, "info", "bad \xEF\xBF\xBD byte", NULL, NULL);
    rd_buf_free(&b);
}

static void test_parse(void **state)
{
    (void)state;
    enum rd_log_format f = RD_LOG_JSON;
    assert_int_equal(rd_log_parse_format("text", &f), 0);
    assert_int_equal(f, RD_LOG_TEXT);
    assert_int_equal(rd_log_parse_format("json", &f), 0);
    assert_int_equal(f, RD_LOG_JSON);
    assert_int_equal(rd_log_parse_format("JSON", &f), RD_EINVAL);
    assert_int_equal(rd_log_parse_format("", &f), RD_EINVAL);
    assert_int_equal(rd_log_parse_format("logfmt", &f), RD_EINVAL);
    assert_int_equal(f, RD_LOG_JSON); /* unchanged on error */
    enum rd_log_level l = RD_LOG_INFO;
    const char *const names[] = {"trace", "debug", "info", "warn", "error"};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(rd_log_parse_level(names[i], &l), 0);
        assert_int_equal(l, i);
    }
    assert_int_equal(rd_log_parse_level("warning", &l), RD_EINVAL);
    assert_int_equal(rd_log_parse_level("", &l), RD_EINVAL);
}

/* Everything rd_log wrote to the pipe so far. */
static size_t drain(int fd, char *out, size_t cap)
{
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, out + n, cap - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    out[n] = '\0';
    return n;
}

static void test_write_and_levels(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
    rd_log_set_fd(p[1]);
    rd_log_set_format(RD_LOG_TEXT);
    rd_log_set_level(RD_LOG_WARN);
    char out[8192];

    assert_false(rd_log_enabled(RD_LOG_INFO));
    assert_true(rd_log_enabled(RD_LOG_WARN));
    assert_true(rd_log_enabled(RD_LOG_ERROR));
    rd_info("not %s", "shown");
    rd_debug("not shown");
    rd_info_req("p", "req_1", "not shown");
    rd_debug_req("p", "req_1", "not shown");
    assert_int_equal(drain(p[0], out, sizeof out), 0);

    rd_warn("disk %d%% full", 93);
    rd_error_req("engine", "req_00000000000000ab", "%s %s: upstream failed: %s", "POST", "/v1/chat/completions",
                 "connection refused");
    drain(p[0], out, sizeof out);
    const char *second = strchr(out, '\n') + 1;
    assert_true(strncmp(out, "ts=", 3) == 0);
    assert_non_null(strstr(out, " level=warn msg=\"disk 93% full\"\n"));
    assert_true(strncmp(second, "ts=", 3) == 0);
    assert_non_null(strstr(second, " level=error msg=\"POST /v1/chat/completions: upstream failed: connection "
                                   "refused\" proxy=engine req=req_00000000000000ab\n"));
    assert_int_equal(count_char(out, '\n'), 2);

    /* trace lets everything through, in JSON too */
    rd_log_set_level(RD_LOG_TRACE);
    rd_log_set_format(RD_LOG_JSON);
    rd_trace_req("p", "req_7", "a -> b");
    size_t n = drain(p[0], out, sizeof out);
    assert_true(n > 0 && out[0] == '{' && out[n - 1] == '\n');
    struct json_object *o = NULL;
    struct rd_json_err err;
    assert_int_equal(rd_json_parse(out, n - 1, sizeof out, &o, &err), 0);
    assert_string_equal(rd_json_get_str(o, "level"), "trace");
    assert_string_equal(rd_json_get_str(o, "msg"), "a -> b");
    assert_string_equal(rd_json_get_str(o, "req"), "req_7");
    assert_string_equal(rd_json_get_str(o, "proxy"), "p");
    json_object_put(o);

    /* a message past the cap is cut, and the line is still one valid line */
    char big[RD_LOG_MSG_MAX * 2];
    memset(big, '\n', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    rd_warn("%s", big);
    n = drain(p[0], out, sizeof out);
    assert_int_equal(count_char(out, '\n'), 1);
    assert_int_equal(rd_json_parse(out, n - 1, sizeof out, &o, &err), 0);
    assert_int_equal(strlen(rd_json_get_str(o, "msg")), RD_LOG_MSG_MAX - 1);
    json_object_put(o);

    rd_log_set_fd(2);
    rd_log_set_format(RD_LOG_TEXT);
    rd_log_set_level(RD_LOG_INFO);
    close(p[0]);
    close(p[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_plain),  cmocka_unit_test(test_text_escaping), cmocka_unit_test(test_text_fields),
        cmocka_unit_test(test_json_lines),  cmocka_unit_test(test_parse),         cmocka_unit_test(test_write_and_levels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
