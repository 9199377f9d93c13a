/* Tests for src/http/parser.c: event sequence, request fields, limits at their
 * exact boundaries, smuggling defences. Every input is fed three ways (all at
 * once, one byte at a time, and split at every possible point) through a
 * driver that copies each chunk into an exact-size heap block, so
 * AddressSanitizer catches any read past len. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http/parser.h"
#include "util/err.h"

#define BIG ((size_t)1 << 20)

struct run {
    int rc;          /* last feed's error, or 0 */
    size_t consumed; /* bytes consumed before the stop */
    int heads;       /* EV_HEAD count */
    int messages;    /* EV_MESSAGE count (the driver stops at the first) */
};

/* Feeds s[0..len) the way the server does, in chunks of at most step bytes,
 * until EV_MESSAGE, an error, or the input runs out. A chunk may start with
 * bytes a previous call left unconsumed. */
static struct run drive(struct rd_http_parser *p, const char *s, size_t len, size_t step)
{
    struct run r = {0};
    size_t off = 0;
    for (;;) {
        size_t n = len - off < step ? len - off : step;
        char *chunk = malloc(n ? n : 1);
        assert_non_null(chunk);
        if (n)
            memcpy(chunk, s + off, n);
        enum rd_http_event ev = RD_HTTP_EV_NONE;
        int rc = rd_http_parser_feed(p, n ? chunk : NULL, n, &ev);
        free(chunk);
        if (rc < 0) {
            r.rc = rc;
            break;
        }
        assert_true((size_t)rc <= n);
        off += (size_t)rc;
        if (ev == RD_HTTP_EV_HEAD) {
            assert_int_equal(r.heads, 0);
            assert_true(rd_http_parser_head_done(p));
            r.heads++;
            continue;
        }
        if (ev == RD_HTTP_EV_MESSAGE) {
            r.messages++;
            break;
        }
        assert_int_equal(rc, (int)n); /* no event: everything was taken */
        if (off == len)
            break;
    }
    r.consumed = off;
    return r;
}

/* Feeds s in two pieces split at cut. */
static struct run drive_split(struct rd_http_parser *p, const char *s, size_t len, size_t cut)
{
    struct run a = drive(p, s, cut, cut ? cut : 1);
    if (a.rc < 0 || a.messages)
        return a;
    struct run b = drive(p, s + a.consumed, len - a.consumed, len);
    b.consumed += a.consumed;
    b.heads += a.heads;
    return b;
}

/* Parses one complete message from s in all three feeding modes, checks
 * that each saw EV_HEAD then EV_MESSAGE at the same offset, and leaves p
 * holding the message parsed all at once. Returns the bytes consumed. */
static size_t parse_ok(struct rd_http_parser *p, const char *s, size_t len)
{
    struct run one = drive(p, s, len, 1);
    assert_int_equal(one.rc, 0);
    assert_int_equal(one.heads, 1);
    assert_int_equal(one.messages, 1);
    rd_http_parser_next(p);
    for (size_t cut = 0; cut <= len; cut++) {
        struct run sp = drive_split(p, s, len, cut);
        assert_int_equal(sp.rc, 0);
        assert_int_equal(sp.messages, 1);
        assert_int_equal(sp.consumed, one.consumed);
        rd_http_parser_next(p);
    }
    struct run all = drive(p, s, len, len);
    assert_int_equal(all.rc, 0);
    assert_int_equal(all.heads, 1);
    assert_int_equal(all.messages, 1);
    assert_int_equal(all.consumed, one.consumed);
    return all.consumed;
}

/* Fails the test, naming the input and the feeding mode, unless the run
 * ended with the wanted error and status. */
static void check_error(struct rd_http_parser *p, struct run r, int status, const char *s, size_t len, const char *mode, size_t cut)
{
    int want = (status == 413 || status == 431) ? RD_ETOOBIG : RD_EPROTO;
    if (r.rc == want && rd_http_parser_status(p) == status && rd_http_parser_errmsg(p) != NULL)
        return;
    print_error("input (%s, cut %zu): ", mode, cut);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f)
            print_error("%c", c);
        else
            print_error("\\x%02x", c);
    }
    print_error("\ngot rc %d status %d (%s), want status %d\n", r.rc, rd_http_parser_status(p),
                rd_http_parser_errmsg(p) ? rd_http_parser_errmsg(p) : "-", status);
    fail();
}

/* Expects the same error status in all three feeding modes. */
static void expect_status(size_t max_head, size_t max_body, const char *s, size_t len, int status)
{
    struct rd_http_parser *p = rd_http_parser_new(max_head, max_body);
    check_error(p, drive(p, s, len, 1), status, s, len, "bytewise", 0);
    rd_http_parser_next(p);
    for (size_t cut = 0; cut <= len; cut++) {
        check_error(p, drive_split(p, s, len, cut), status, s, len, "split", cut);
        rd_http_parser_next(p);
    }
    struct run r = drive(p, s, len, len);
    check_error(p, r, status, s, len, "all", len);
    /* errors are sticky */
    enum rd_http_event ev;
    assert_int_equal(rd_http_parser_feed(p, "GET / HTTP/1.1\r\n\r\n", 18, &ev), r.rc);
    rd_http_parser_free(p);
}

#define S(lit) lit, sizeof(lit) - 1
#define REJECT(lit, status) expect_status(BIG, BIG, S(lit), status)

static void test_simple_get(void **state)
{
    (void)state;
    const char req[] = "GET /v1/models HTTP/1.1\r\nHost: localhost\r\nX-Multi:  a b \r\nEmpty:\r\n\r\n";
    struct rd_http_parser *p = rd_http_parser_new(0, BIG);
    assert_false(rd_http_parser_in_message(p));
    assert_int_equal(parse_ok(p, S(req)), sizeof req - 1);
    struct rd_http_request *r = rd_http_parser_request(p);
    assert_string_equal(r->method, "GET");
    assert_string_equal(r->target, "/v1/models");
    assert_string_equal(r->path, "/v1/models");
    assert_string_equal(r->query, "");
    assert_int_equal(r->version_major, 1);
    assert_int_equal(r->version_minor, 1);
    assert_int_equal(r->headers.n, 3);
    assert_string_equal(r->headers.v[0].name, "Host");
    assert_string_equal(rd_hdrs_get(&r->headers, "host"), "localhost");
    assert_string_equal(rd_hdrs_get(&r->headers, "x-multi"), "a b");
    assert_string_equal(rd_hdrs_get(&r->headers, "empty"), "");
    assert_int_equal(r->content_length, -1);
    assert_false(r->chunked);
    assert_true(r->keep_alive);
    assert_false(r->expect_continue);
    assert_int_equal(r->body.len, 0);
    assert_false(rd_http_parser_in_message(p));
    rd_http_parser_free(p);
}

/* The exact event sequence and what each feed call returns. */
static void test_event_sequence(void **state)
{
    (void)state;
    const char req[] = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
    struct rd_http_parser *p = rd_http_parser_new(0, BIG);
    enum rd_http_event ev;
    assert_int_equal(rd_http_parser_feed(p, req, 5, &ev), 5);
    assert_int_equal(ev, RD_HTTP_EV_NONE);
    assert_true(rd_http_parser_in_message(p));
    assert_false(rd_http_parser_head_done(p));
    assert_int_equal(rd_http_parser_feed(p, req + 5, sizeof req - 6, &ev), (int)sizeof req - 6);
    assert_int_equal(ev, RD_HTTP_EV_HEAD);
    assert_true(rd_http_parser_head_done(p));
    assert_true(rd_http_parser_in_message(p));
    /* no body: the next call (even with no bytes) completes the message */
    assert_int_equal(rd_http_parser_feed(p, NULL, 0, &ev), 0);
    assert_int_equal(ev, RD_HTTP_EV_MESSAGE);
    assert_false(rd_http_parser_in_message(p));
    /* until rd_http_parser_next(), feeding consumes nothing and repeats EV_MESSAGE */
    assert_int_equal(rd_http_parser_feed(p, req, sizeof req - 1, &ev), 0);
    assert_int_equal(ev, RD_HTTP_EV_MESSAGE);
    assert_string_equal(rd_http_parser_request(p)->path, "/a");
    rd_http_parser_next(p);
    assert_false(rd_http_parser_head_done(p));
    assert_false(rd_http_parser_in_message(p));
    /* empty lines before a request are skipped and do not start a message */
    assert_int_equal(rd_http_parser_feed(p, "\r\n", 2, &ev), 2);
    assert_int_equal(ev, RD_HTTP_EV_NONE);
    assert_false(rd_http_parser_in_message(p));
    assert_int_equal(rd_http_parser_feed(p, req, sizeof req - 1, &ev), (int)sizeof req - 1);
    assert_int_equal(ev, RD_HTTP_EV_HEAD);
    rd_http_parser_free(p);
}

static void test_targets(void **state)
{
    (void)state;
    struct rd_http_parser *p = rd_http_parser_new(0, BIG);
    static const struct {
        const char *req, *method, *path, *query;
    } cases[] = {
        {"GET /v1/chat?stream=1&x=%20 HTTP/1.1\r\n\r\n", "GET", "/v1/chat", "stream=1&x=%20"},
        {"GET /p? HTTP/1.1\r\n\r\n", "GET", "/p", ""},
        {"HEAD /a/b#frag HTTP/1.1\r\n\r\n", "HEAD", "/a/b", ""},
        {"GET http://example.com:8080/v1/x?y=2 HTTP/1.1\r\n\r\n", "GET", "/v1/x", "y=2"},
        {"GET http://example.com?q HTTP/1.1\r\n\r\n", "GET", "/", "q"},
        {"OPTIONS * HTTP/1.1\r\n\r\n", "OPTIONS", "*", ""},
        {"DELETE /k HTTP/1.1\r\n\r\n", "DELETE", "/k", ""},
        {"PATCH /k HTTP/1.1\r\nContent-Length: 0\r\n\r\n", "PATCH", "/k", ""},
        {"PUT /k HTTP/1.1\r\nContent-Length: 0\r\n\r\n", "PUT", "/k", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        parse_ok(p, cases[i].req, strlen(cases[i].req));
        struct rd_http_request *r = rd_http_parser_request(p);
        assert_string_equal(r->method, cases[i].method);
        assert_string_equal(r->path, cases[i].path);
        assert_string_equal(r->query, cases[i].query);
        rd_http_parser_next(p);
    }
    rd_http_parser_free(p);
}

static void test_post_content_length(void **state)
{
    (void)state;
    const char req[] = "POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello world";
    struct rd_http_parser *p = rd_http_parser_new(0, BIG);
    assert_int_equal(parse_ok(p, S(req)), sizeof req - 1);
    struct rd_http_request *r = rd_http_parser_request(p);
    assert_string_equal(r->method, "POST");
    assert_int_equal(r->content_length, 11);
    assert_int_equal(r->body.len, 11);
    assert_memory_equal(r->body.data, "hello world", 11);
    assert_false(r->chunked);
    rd_http_parser_next(p);
    /* body bytes are opaque: whitespace, bare CR/LF and NUL are data */
    const char odd[] = "PUT /x HTTP/1.1\r\nContent-Length: 6\r\n\r\n \r\0\n\t ";
    assert_int_equal(parse_ok(p, S(odd)), sizeof odd - 1);
    assert_int_equal(r->body.len, 6);
    assert_memory_equal(r->body.data, " \r\0\n\t ", 6);
    rd_http_parser_free(p);
}

static void test_body_waits_for_bytes(void **state)
{
    (void)state;
    const char head[] = "POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\n";
    struct rd_http_parser *p = rd_http_parser_new(0, BIG);
    enum rd_http_event ev;
    assert_int_equal(rd_http_parser_feed(p, S(head), &ev), (int)sizeof head - 1);
    assert_int_equal(ev, RD_HTTP_EV_HEAD);
    assert_int_equal(rd_http_parser_feed(p, "ab", 2, &ev), 2);
    assert_int_equal(ev, RD_HTTP_EV_NONE);
    assert_true(rd_http_parser_in_message(p));
    /* only the rest of the body is consumed, not the pipelined bytes */
    assert_int_equal(rd_http_parser_feed(p, "cdGET", 5, &ev), 2);
    assert_int_equal(ev, RD_HTTP_EV_MESSAGE);
    assert_string_equal(rd_http_parser_request(p)->body.data, "abcd");
    rd_http_parser_free(p);
}

static void test_chunked_extensions_trailers(void **state)
{
    (void)state;
    const char req[] = "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "5;name=value\r\nhello\r\n"
                       "6;quoted=\"a b\"\r\n wor\r\n\r\n"
                       "A;x;y\r\n0123456789\r\n"
                       "0\r\nX-Trailer: t\r\nContent-Length: 99\r\n\r\n";
    struct rd_http_parser *p = rd_http_parser_new(0, BIG);
    assert_int_equal(parse_ok(p, S(req)), sizeof req - 1);
    struct rd_http_request *r = rd_http_parser_request(p);
    assert_true(r->chunked);
    assert_int_equal(r->content_length, -1);
    assert_int_equal(r->body.len, 21);
    assert_memory_equal(r->body.data, "hello wor\r\n0123456789", 21);
    /* trailers are validated but never merged into the head */
    assert_int_equal(r->headers.n, 2);
    assert_null(rd_hdrs_get(&r->headers, "x-trailer"));
    assert_null(rd_hdrs_get(&r->headers, "content-length"));
    rd_http_parser_free(p);
}

static void test_pipelining(void **state)
{
    (void)state;
    const char first[] = "POST /one HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
    const char both[] = "POST /one HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
                        "GET /two?z HTTP/1.1\r\nX-N: 2\r\n\r\n";
    struct rd_http_parser *p = rd_http_parser_new(0, BIG);
    for (int mode = 0; mode < 2; mode++) {
        size_t step = mode ? 1 : sizeof both;
        struct run r = drive(p, S(both), step);
        assert_int_equal(r.messages, 1);
        assert_int_equal(r.consumed, sizeof first - 1);
        assert_string_equal(rd_http_parser_request(p)->path, "/one");
        assert_string_equal(rd_http_parser_request(p)->body.data, "abc");
        rd_http_parser_next(p);
        size_t off = r.consumed;
        r = drive(p, both + off, sizeof both - 1 - off, step);
        assert_int_equal(r.rc, 0);
        assert_int_equal(r.messages, 1);
        assert_int_equal(off + r.consumed, sizeof both - 1);
        struct rd_http_request *q = rd_http_parser_request(p);
        assert_string_equal(q->path, "/two");
        assert_string_equal(q->query, "z");
        assert_int_equal(q->headers.n, 1);
        assert_string_equal(rd_hdrs_get(&q->headers, "X-N"), "2");
        assert_int_equal(q->body.len, 0);
        rd_http_parser_next(p);
    }
    rd_http_parser_free(p);
}

/* The same parser object serves many requests; nothing leaks between them. */
static void test_reuse(void **state)
{
    (void)state;
    struct rd_http_parser *p = rd_http_parser_new(0, BIG);
    char req[256];
    for (int i = 0; i < 200; i++) {
        int n = snprintf(req, sizeof req, "POST /r%d HTTP/1.1\r\nX-I: %d\r\nContent-Length: 2\r\n\r\n%02d", i, i, i % 100);
        struct run r = drive(p, req, (size_t)n, (size_t)n);
        assert_int_equal(r.messages, 1);
        struct rd_http_request *q = rd_http_parser_request(p);
        char want[32];
        snprintf(want, sizeof want, "/r%d", i);
        assert_string_equal(q->path, want);
        assert_int_equal(q->headers.n, 2);
        assert_int_equal(q->body.len, 2);
        rd_http_parser_next(p);
    }
    rd_http_parser_free(p);
}

static struct rd_http_request *parse_head(struct rd_http_parser *p, const char *s)
{
    parse_ok(p, s, strlen(s));
    return rd_http_parser_request(p);
}

static void test_keep_alive_and_expect(void **state)
{
    (void)state;
    struct rd_http_parser *p = rd_http_parser_new(0, BIG);
    assert_true(parse_head(p, "GET / HTTP/1.1\r\n\r\n")->keep_alive);
    rd_http_parser_next(p);
    assert_false(parse_head(p, "GET / HTTP/1.1\r\nConnection: close\r\n\r\n")->keep_alive);
    rd_http_parser_next(p);
    assert_false(parse_head(p, "GET / HTTP/1.1\r\nConnection: foo, Close\r\n\r\n")->keep_alive);
    rd_http_parser_next(p);
    struct rd_http_request *r = parse_head(p, "GET / HTTP/1.0\r\n\r\n");
    assert_false(r->keep_alive);
    assert_int_equal(r->version_minor, 0);
    rd_http_parser_next(p);
    assert_true(parse_head(p, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")->keep_alive);
    rd_http_parser_next(p);
    r = parse_head(p, "POST / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\nx");
    assert_true(r->expect_continue);
    rd_http_parser_next(p);
    assert_false(parse_head(p, "POST / HTTP/1.1\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\nx")->expect_continue);
    rd_http_parser_next(p);
    /* RFC 9110 10.1.1: ignore Expect from HTTP/1.0 clients */
    assert_false(parse_head(p, "POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx")->expect_continue);
    rd_http_parser_next(p);
    /* Upgrade is ignored: the request is served as an ordinary one */
    r = parse_head(p, "GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
    assert_string_equal(r->path, "/ws");
    rd_http_parser_free(p);
}

/* A head of exactly max_head bytes passes; one byte more is 431. */
static void test_max_head_boundary(void **state)
{
    (void)state;
    const char req[] = "POST / HTTP/1.1\r\nHost: h\r\nX-Pad: 0123456789abcdef\r\nContent-Length: 2\r\n\r\nok";
    size_t head = sizeof req - 1 - 2;
    struct rd_http_parser *p = rd_http_parser_new(head, BIG);
    assert_int_equal(parse_ok(p, S(req)), sizeof req - 1);
    assert_string_equal(rd_http_parser_request(p)->body.data, "ok");
    rd_http_parser_free(p);
    expect_status(head - 1, BIG, S(req), 431);
    /* leading empty lines count toward the head */
    char longer[sizeof req + 2] = "\r\n";
    memcpy(longer + 2, req, sizeof req);
    expect_status(head + 1, BIG, longer, sizeof longer - 1, 431);
    p = rd_http_parser_new(head + 2, BIG);
    assert_int_equal(parse_ok(p, longer, sizeof longer - 1), sizeof longer - 1);
    rd_http_parser_free(p);
}

static void test_max_body_boundary(void **state)
{
    (void)state;
    const char cl5[] = "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
    const char cl6[] = "POST / HTTP/1.1\r\nContent-Length: 6\r\n\r\nhello!";
    const char ch5[] = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n";
    const char ch6[] = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n3\r\nlo!\r\n0\r\n\r\n";
    struct rd_http_parser *p = rd_http_parser_new(0, 5);
    parse_ok(p, S(cl5));
    assert_int_equal(rd_http_parser_request(p)->body.len, 5);
    rd_http_parser_next(p);
    parse_ok(p, S(ch5));
    assert_string_equal(rd_http_parser_request(p)->body.data, "hello");
    rd_http_parser_free(p);
    expect_status(0, 5, S(cl6), 413);
    expect_status(0, 5, S(ch6), 413);
    /* max_body 0: no body at all */
    expect_status(0, 0, S(cl5), 413);
    p = rd_http_parser_new(0, 0);
    parse_ok(p, S("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n"));
    rd_http_parser_free(p);
}

/* A declared length over the cap fails right after EV_HEAD, before any body
 * byte arrives; set_max_body() applies to the current message only. */
static void test_set_max_body(void **state)
{
    (void)state;
    const char head[] = "POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n";
    struct rd_http_parser *p = rd_http_parser_new(0, 1000);
    enum rd_http_event ev;
    assert_int_equal(rd_http_parser_feed(p, S(head), &ev), (int)sizeof head - 1);
    assert_int_equal(ev, RD_HTTP_EV_HEAD);
    rd_http_parser_set_max_body(p, 99);
    assert_int_equal(rd_http_parser_feed(p, NULL, 0, &ev), RD_ETOOBIG);
    assert_int_equal(rd_http_parser_status(p), 413);
    rd_http_parser_next(p);

    assert_int_equal(rd_http_parser_feed(p, S(head), &ev), (int)sizeof head - 1);
    rd_http_parser_set_max_body(p, 100);
    char body[100];
    memset(body, 'b', sizeof body);
    assert_int_equal(rd_http_parser_feed(p, body, sizeof body, &ev), 100);
    assert_int_equal(ev, RD_HTTP_EV_MESSAGE);
    rd_http_parser_next(p);

    /* the cap is back to 1000 for the next message; a raise works too */
    const char big[] = "POST / HTTP/1.1\r\nContent-Length: 2000\r\n\r\n";
    assert_int_equal(rd_http_parser_feed(p, S(big), &ev), (int)sizeof big - 1);
    assert_int_equal(ev, RD_HTTP_EV_HEAD);
    assert_int_equal(rd_http_parser_feed(p, body, 10, &ev), RD_ETOOBIG);
    rd_http_parser_next(p);
    assert_int_equal(rd_http_parser_feed(p, S(big), &ev), (int)sizeof big - 1);
    rd_http_parser_set_max_body(p, 2000);
    assert_int_equal(rd_http_parser_feed(p, body, 10, &ev), 10);
    assert_int_equal(ev, RD_HTTP_EV_NONE);

    /* chunked: the cap lowered after EV_HEAD stops the decoded body */
    rd_http_parser_next(p);
    const char ch[] = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_int_equal(rd_http_parser_feed(p, S(ch), &ev), (int)sizeof ch - 1);
    rd_http_parser_set_max_body(p, 3);
    assert_int_equal(rd_http_parser_feed(p, S("4\r\nabcd\r\n"), &ev), RD_ETOOBIG);
    assert_int_equal(rd_http_parser_status(p), 413);
    rd_http_parser_free(p);
}

static void test_smuggling(void **state)
{
    (void)state;
    REJECT("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 400);
    REJECT("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 400);
    REJECT("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400);
    REJECT("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400);
    REJECT("POST / HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\nabc", 400);
    REJECT("POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\nabc", 400);
    REJECT("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", 400);
    /* obs-fold */
    REJECT("GET / HTTP/1.1\r\nX-A: a\r\n folded\r\n\r\n", 400);
    REJECT("GET / HTTP/1.1\r\nX-A: a\r\n\tfolded\r\n\r\n", 400);
    REJECT("GET / HTTP/1.1\r\nX-A:\r\n folded\r\n\r\n", 400);
    REJECT("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: a\r\n b\r\n\r\n", 400);
    /* bare CR and bare LF */
    REJECT("GET / HTTP/1.1\r\nX-A: a\rb\r\n\r\n", 400);
    REJECT("GET / HTTP/1.1\rX-A: a\r\n\r\n", 400);
    REJECT("GET / HTTP/1.1\r\nX-A: a\r\n\r\r\n", 400);
    REJECT("GET / HTTP/1.1\r\nX-A: a\r\n\rX", 400);
    REJECT("GET / HTTP/1.1\nX-A: a\n\n", 400);
    REJECT("GET / HTTP/1.1\r\nX-A: a\r\n\n", 400);
    REJECT("\nGET / HTTP/1.1\r\n\r\n", 400);
    REJECT("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\rXabc\r\n0\r\n\r\n", 400);
    REJECT("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\rX0\r\n\r\n", 400);
    REJECT("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n", 400);
    /* header names */
    REJECT("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400);
    REJECT("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 400);
    REJECT("GET / HTTP/1.1\r\nX(A: a\r\n\r\n", 400);
    REJECT("GET / HTTP/1.1\r\nX@A: a\r\n\r\n", 400);
    REJECT("GET / HTTP/1.1\r\nX\x01: a\r\n\r\n", 400);
    REJECT("GET / HTTP/1.1\r\n: a\r\n\r\n", 400);
    REJECT("GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400);
    /* header values */
    REJECT("GET / HTTP/1.1\r\nX-A: a\0b\r\n\r\n", 400);
    REJECT("GET / HTTP/1.1\r\nX-A: a\x01z\r\n\r\n", 400);
    REJECT("GET / HTTP/1.1\r\nX-A: a\x7fz\r\n\r\n", 400);
    /* ambiguous host */
    REJECT("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 400);
    /* request target */
    REJECT("GET /a\x01z HTTP/1.1\r\n\r\n", 400);
    REJECT("GET /a\x7f HTTP/1.1\r\n\r\n", 400);
    REJECT("GET /\xc3\xa9 HTTP/1.1\r\n\r\n", 400);
    REJECT("GET /a b HTTP/1.1\r\n\r\n", 400);
}

/* The first bad byte decides the status, however the input is split
 * (found by fuzz/fuzz_request.c; inputs in fuzz/corpus/request/crash_*). */
static void test_errors_in_byte_order(void **state)
{
    (void)state;
    /* bare LF before a malformed method */
    expect_status(BIG, BIG, S("\r\n\r\n\nGE\0\0\0\0\0\0\0/1.1\r\n\r\n"), 400);
    /* HTTP/0.9-style line ending in a bare LF: 400, not the 505 found later */
    REJECT("OPTIONS *($TTP/1.1\n\r\n", 400);
    /* a bare CR ending the head comes before the version check */
    REJECT("GET / HTTP/2.0\r\nX: a\r\n\rX", 400);
    /* a fold comes before the duplicate-Host check */
    REJECT("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n c\r\n\r\n", 400);
    REJECT("PROPFIND /\n", 400);
    REJECT("PROPFIND /\r\n", 501);
}

static void test_transfer_encoding(void **state)
{
    (void)state;
    REJECT("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501);
    REJECT("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501);
    REJECT("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\nabc", 400);
    REJECT("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400);
    REJECT("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400);
    REJECT("POST / HTTP/1.1\r\nTransfer-Encoding:\r\n\r\n", 400);
    REJECT("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400);
    REJECT("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400);
    struct rd_http_parser *p = rd_http_parser_new(0, BIG);
    parse_ok(p, S("POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n"));
    assert_true(rd_http_parser_request(p)->chunked);
    rd_http_parser_free(p);
    /* trailers are capped like the head */
    expect_status(64, BIG, S("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
                             "X-T: 0123456789012345678901234567890123456789012345678901234567890123456789\r\n\r\n"), 431);
}

static void test_methods_and_versions(void **state)
{
    (void)state;
    REJECT("FOO / HTTP/1.1\r\n\r\n", 501);
    REJECT("get / HTTP/1.1\r\n\r\n", 501);
    REJECT("CONNECT example.com:443 HTTP/1.1\r\n\r\n", 501);
    REJECT("TRACE / HTTP/1.1\r\n\r\n", 501);
    REJECT("PROPFIND / HTTP/1.1\r\n\r\n", 501);
    REJECT("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400);
    REJECT("GET / HTTP/2.0\r\n\r\n", 505);
    REJECT("GET / HTTP/0.9\r\n\r\n", 505);
    REJECT("GET / HTTP/1.2\r\n\r\n", 505);
    REJECT("GET / HTTP/1.1 \r\n\r\n", 400);
    REJECT("GET / XTTP/1.1\r\n\r\n", 400);
}

/* next() in the middle of a message, or after an error, starts afresh. */
static void test_next_resets(void **state)
{
    (void)state;
    struct rd_http_parser *p = rd_http_parser_new(0, BIG);
    enum rd_http_event ev;
    assert_int_equal(rd_http_parser_feed(p, S("POST / HTTP/1.1\r\nContent-Le"), &ev), 27);
    rd_http_parser_next(p);
    assert_false(rd_http_parser_in_message(p));
    parse_ok(p, S("GET /fresh HTTP/1.1\r\n\r\n"));
    assert_string_equal(rd_http_parser_request(p)->path, "/fresh");
    assert_int_equal(rd_http_parser_request(p)->headers.n, 0);
    rd_http_parser_next(p);
    assert_true(rd_http_parser_feed(p, S("GET / HTTP/1.1\r\nA : b\r\n\r\n"), &ev) < 0);
    rd_http_parser_next(p);
    assert_int_equal(rd_http_parser_status(p), 0);
    parse_ok(p, S("GET /again HTTP/1.1\r\n\r\n"));
    rd_http_parser_free(p);
    rd_http_parser_free(NULL);
}

/* A head bigger than one arena chunk, and many headers. */
static void test_many_headers(void **state)
{
    (void)state;
    char req[16384];
    size_t n = (size_t)snprintf(req, sizeof req, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < 300; i++)
        n += (size_t)snprintf(req + n, sizeof req - n, "X-H%d: v%d\r\n", i, i);
    n += (size_t)snprintf(req + n, sizeof req - n, "\r\n");
    struct rd_http_parser *p = rd_http_parser_new(0, BIG);
    struct run r = drive(p, req, n, 1);
    assert_int_equal(r.messages, 1);
    struct rd_http_request *q = rd_http_parser_request(p);
    assert_int_equal(q->headers.n, 300);
    assert_string_equal(rd_hdrs_get(&q->headers, "x-h299"), "v299");
    rd_http_parser_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_get),
        cmocka_unit_test(test_event_sequence),
        cmocka_unit_test(test_targets),
        cmocka_unit_test(test_post_content_length),
        cmocka_unit_test(test_body_waits_for_bytes),
        cmocka_unit_test(test_chunked_extensions_trailers),
        cmocka_unit_test(test_pipelining),
        cmocka_unit_test(test_reuse),
        cmocka_unit_test(test_keep_alive_and_expect),
        cmocka_unit_test(test_max_head_boundary),
        cmocka_unit_test(test_max_body_boundary),
        cmocka_unit_test(test_set_max_body),
        cmocka_unit_test(test_smuggling),
        cmocka_unit_test(test_errors_in_byte_order),
        cmocka_unit_test(test_transfer_encoding),
        cmocka_unit_test(test_methods_and_versions),
        cmocka_unit_test(test_next_resets),
        cmocka_unit_test(test_many_headers),
    };
    return cmocka_run_group_tests_name("parser", tests, NULL, NULL);
}
