/* Tests for src/http/h2.c and h2_stream.c, the HTTP/2 front end, driven by
 * an in-process nghttp2 client session over an in-memory transport with an
 * injected clock (no sockets, no threads, no sleeping): GOAWAY last-stream-id
 * on a graceful stop, per-stream flow control as backpressure (a stream with
 * no window fills its own queue, the drain callback fires after the client's
 * WINDOW_UPDATE, other streams are served meanwhile), RST_STREAM both ways,
 * limits (431, 413 with RST_STREAM NO_ERROR), deadlines (idle GOAWAY, body
 * 408, send stall), invalid frames, and the request mapping (pseudo-headers,
 * cookies, response header rules). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <nghttp2/nghttp2.h>

#include "http/h2.h"
#include "util/buf.h"

#define NRESP 32
#define NHELD 8

struct resp {
    int32_t id;
    int status;
    struct rd_buf body;
    char hdrs[512]; /* "name: value\n" as received */
    bool closed;
    uint32_t close_code;
};

struct fx {
    struct rd_h2 *h;
    nghttp2_session *cli;
    uint64_t now, deadline, accepted;
    int closes;
    struct rd_http_limits limits;
    struct rd_http_listener_cfg cfg;
    struct resp resp[NRESP];
    int nresp;
    bool goaway;
    int32_t goaway_last;
    uint32_t goaway_code;
    int rst_no_error; /* RST_STREAM NO_ERROR frames received */
    /* the handler's side */
    struct rd_http_exch *held[NHELD];
    int nheld, gone, drains;
    char last_path[128], last_query[128], last_host[64], last_cookie[128], last_method[16];
    size_t last_body;
};

static struct fx *F;

/* ---- transport ---- */

static int tp_send(void *ud, const uv_buf_t *bufs, unsigned int nbufs)
{
    struct fx *f = ud;
    assert_int_equal(f->closes, 0);
    for (unsigned int i = 0; i < nbufs; i++) {
        f->accepted += bufs[i].len;
        ssize_t rv = nghttp2_session_mem_recv(f->cli, (const uint8_t *)bufs[i].base, bufs[i].len);
        assert_true(rv >= 0);
    }
    return 0;
}
static size_t tp_pending(const void *ud)
{
    (void)ud;
    return 0;
}
static uint64_t tp_accepted(const void *ud)
{
    return ((const struct fx *)ud)->accepted;
}
static uint64_t tp_now(const void *ud)
{
    return ((const struct fx *)ud)->now;
}
static void tp_set_deadline(void *ud, uint64_t at)
{
    ((struct fx *)ud)->deadline = at;
}
static void tp_close(void *ud)
{
    ((struct fx *)ud)->closes++;
}
static const struct rd_h2_transport tp = {tp_send, tp_pending, tp_accepted, tp_now, tp_set_deadline, tp_close};

/* ---- the handler ---- */

static void forget(struct fx *f, struct rd_http_exch *x)
{
    for (int i = 0; i < f->nheld; i++)
        if (f->held[i] == x) {
            f->held[i] = f->held[--f->nheld];
            return;
        }
}
static void on_gone(void *ud)
{
    struct rd_http_exch *x = ud;
    F->gone++;
    forget(F, x);
    rd_http_abort(x);
}
static void on_drain(void *ud)
{
    (void)ud;
    F->drains++;
}

static void copy(char *dst, size_t n, const char *s)
{
    snprintf(dst, n, "%s", s ? s : "(null)");
}

static void handler(struct rd_http_exch *x, void *ud)
{
    struct fx *f = ud;
    const struct rd_http_request *r = x->req;
    copy(f->last_method, sizeof f->last_method, r->method);
    copy(f->last_path, sizeof f->last_path, r->path);
    copy(f->last_query, sizeof f->last_query, r->query);
    copy(f->last_host, sizeof f->last_host, rd_hdrs_get(&r->headers, "host"));
    copy(f->last_cookie, sizeof f->last_cookie, rd_hdrs_get(&r->headers, "cookie"));
    f->last_body = r->body.len;
    if (strncmp(r->path, "/hold", 5) == 0) {
        rd_http_set_callbacks(x, on_drain, on_gone, x);
        f->held[f->nheld++] = x;
        return;
    }
    struct rd_arena a;
    rd_arena_init(&a);
    struct rd_hdrs h;
    rd_hdrs_init(&h, &a);
    rd_hdrs_add_ref(&h, "X-Mixed-Case", "Yes");
    rd_hdrs_add_ref(&h, "Connection", "keep-alive, X-Private");
    rd_hdrs_add_ref(&h, "X-Private", "hop");
    rd_hdrs_add_ref(&h, "Transfer-Encoding", "chunked");
    rd_hdrs_add_ref(&h, "Content-Length", "999");
    rd_http_respond(x, 200, &h, r->body.data ? r->body.data : "", r->body.len);
    rd_hdrs_free(&h);
    rd_arena_free(&a);
}

static void limits(void *ud, struct rd_http_limits *out)
{
    *out = ((struct fx *)ud)->limits;
}

static void error_cb(void *ud, const struct rd_http_error *e, struct rd_hdrs *hdrs, struct rd_buf *body,
                     const char **ctype)
{
    (void)ud;
    (void)hdrs;
    (void)ctype;
    (void)rd_buf_printf(body, "{\"error\":%d}", e->status);
}

/* ---- the client ---- */

static struct resp *resp_of(struct fx *f, int32_t id)
{
    for (int i = 0; i < f->nresp; i++)
        if (f->resp[i].id == id)
            return &f->resp[i];
    assert_true(f->nresp < NRESP);
    struct resp *r = &f->resp[f->nresp++];
    r->id = id;
    rd_buf_init(&r->body, 0);
    return r;
}

static int c_on_header(nghttp2_session *s, const nghttp2_frame *fr, const uint8_t *name, size_t nl, const uint8_t *value,
                       size_t vl, uint8_t flags, void *ud)
{
    (void)s;
    (void)flags;
    struct resp *r = resp_of(ud, fr->hd.stream_id);
    if (nl == 7 && memcmp(name, ":status", 7) == 0)
        r->status = (int)strtol((const char *)value, NULL, 10);
    size_t len = strlen(r->hdrs);
    snprintf(r->hdrs + len, sizeof r->hdrs - len, "%.*s: %.*s\n", (int)nl, name, (int)vl, value);
    return 0;
}
static int c_on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *ud)
{
    (void)s;
    (void)flags;
    (void)rd_buf_append(&resp_of(ud, id)->body, data, len);
    return 0;
}
static int c_on_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud)
{
    (void)s;
    struct resp *r = resp_of(ud, id);
    r->closed = true;
    r->close_code = code;
    return 0;
}
static int c_on_frame(nghttp2_session *s, const nghttp2_frame *fr, void *ud)
{
    (void)s;
    struct fx *f = ud;
    if (fr->hd.type == NGHTTP2_GOAWAY) {
        f->goaway = true;
        f->goaway_last = fr->goaway.last_stream_id;
        f->goaway_code = fr->goaway.error_code;
    } else if (fr->hd.type == NGHTTP2_RST_STREAM && fr->rst_stream.error_code == NGHTTP2_NO_ERROR) {
        f->rst_no_error++;
    }
    return 0;
}

/* Moves bytes both ways until neither side has more. */
static void pump(struct fx *f)
{
    for (int round = 0; round < 1000 && f->closes == 0; round++) {
        const uint8_t *d;
        ssize_t n = nghttp2_session_mem_send(f->cli, &d);
        assert_true(n >= 0);
        if (n == 0)
            return;
        rd_h2_feed(f->h, (const char *)d, (size_t)n);
    }
}

/* Raw bytes from the client (after the session's own preface). */
static void feed_raw(struct fx *f, const void *p, size_t n)
{
    rd_h2_feed(f->h, p, n);
}

static void advance(struct fx *f, uint64_t ms)
{
    f->now += ms;
    if (f->deadline && f->now >= f->deadline && f->closes == 0)
        rd_h2_timer(f->h);
    pump(f);
}

static void start(struct fx *f, uint32_t client_window)
{
    memset(f, 0, sizeof *f);
    F = f;
    f->now = 1000;
    f->limits = (struct rd_http_limits){.max_head = 4096, .max_body = 10000, .header_timeout_ms = 1000,
                                        .idle_timeout_ms = 5000};
    f->cfg = (struct rd_http_listener_cfg){handler, limits, error_cb, f, NULL};
    nghttp2_session_callbacks *cbs;
    assert_int_equal(nghttp2_session_callbacks_new(&cbs), 0);
    nghttp2_session_callbacks_set_on_header_callback(cbs, c_on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, c_on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, c_on_close);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, c_on_frame);
    nghttp2_option *opt;
    assert_int_equal(nghttp2_option_new(&opt), 0);
    nghttp2_option_set_no_auto_window_update(opt, 1); /* the test grants window itself */
    assert_int_equal(nghttp2_session_client_new2(&f->cli, cbs, f, opt), 0);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, client_window}};
    assert_int_equal(nghttp2_submit_settings(f->cli, NGHTTP2_FLAG_NONE, iv, 1), 0);
    /* a large connection window: only stream windows limit the server */
    assert_int_equal(nghttp2_session_set_local_window_size(f->cli, NGHTTP2_FLAG_NONE, 0, 1 << 30), 0);
    f->h = rd_h2_new(&tp, f, &f->cfg, "192.0.2.7");
    pump(f);
}

static void finish(struct fx *f)
{
    if (f->closes == 0)
        rd_h2_gone(f->h);
    assert_int_equal(f->closes, 1);
    assert_int_equal(f->nheld, 0);
    rd_h2_free(f->h);
    nghttp2_session_del(f->cli);
    for (int i = 0; i < f->nresp; i++)
        rd_buf_free(&f->resp[i].body);
}

struct body_src {
    const char *p;
    size_t len, off;
};

static ssize_t read_src(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                        nghttp2_data_source *src, void *ud)
{
    (void)s;
    (void)id;
    (void)ud;
    struct body_src *b = src->ptr;
    size_t n = b->len - b->off < len ? b->len - b->off : len;
    memcpy(buf, b->p + b->off, n);
    b->off += n;
    if (b->off == b->len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

#define NV(n, v) {(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE}

static int32_t req(struct fx *f, const char *method, const char *path, struct body_src *body)
{
    nghttp2_nv nv[] = {NV(":method", method), NV(":scheme", "http"), NV(":path", path), NV(":authority", "example:1")};
    nghttp2_data_provider prd = {.source.ptr = body, .read_callback = read_src};
    int32_t id = nghttp2_submit_request(f->cli, NULL, nv, 4, body ? &prd : NULL, NULL);
    assert_true(id > 0);
    return id;
}

/* ---- tests ---- */

static void test_request_mapping_and_response_headers(void **state)
{
    (void)state;
    struct fx f;
    start(&f, 65535);
    nghttp2_nv nv[] = {NV(":method", "POST"), NV(":scheme", "http"), NV(":path", "/v1/x?a=1&b=2#frag"),
                       NV(":authority", "example:1"), NV("host", "ignored"), NV("cookie", "a=1"),
                       NV("cookie", "b=2")};
    struct body_src b = {"hello body", 10, 0};
    nghttp2_data_provider prd = {.source.ptr = &b, .read_callback = read_src};
    int32_t id = nghttp2_submit_request(f.cli, NULL, nv, 7, &prd, NULL);
    pump(&f);
    assert_string_equal(f.last_method, "POST");
    assert_string_equal(f.last_path, "/v1/x");
    assert_string_equal(f.last_query, "a=1&b=2");
    assert_string_equal(f.last_host, "example:1");
    assert_string_equal(f.last_cookie, "a=1; b=2");
    assert_int_equal(f.last_body, 10);
    struct resp *r = resp_of(&f, id);
    assert_true(r->closed);
    assert_int_equal(r->close_code, NGHTTP2_NO_ERROR);
    assert_int_equal(r->status, 200);
    assert_int_equal(r->body.len, 10);
    assert_memory_equal(r->body.data, "hello body", 10);
    /* lower-cased, hop-by-hop and Connection-listed fields dropped, our own content-length */
    assert_non_null(strstr(r->hdrs, "x-mixed-case: Yes\n"));
    assert_null(strstr(r->hdrs, "connection"));
    assert_null(strstr(r->hdrs, "x-private"));
    assert_null(strstr(r->hdrs, "transfer-encoding"));
    assert_non_null(strstr(r->hdrs, "content-length: 10\n"));
    assert_null(strstr(r->hdrs, "999"));
    finish(&f);
}

static void test_graceful_stop_goaway_last_stream(void **state)
{
    (void)state;
    struct fx f;
    start(&f, 65535);
    int32_t a = req(&f, "GET", "/hold/a", NULL), b = req(&f, "GET", "/hold/b", NULL);
    pump(&f);
    assert_int_equal(f.nheld, 2);
    rd_h2_shutdown(f.h);
    pump(&f);
    assert_true(f.goaway);
    assert_int_equal(f.goaway_last, b);
    assert_int_equal(f.goaway_code, NGHTTP2_NO_ERROR);
    /* a stream opened after the GOAWAY is not processed */
    f.goaway = false;
    struct fx *fp = &f;
    nghttp2_nv nv[] = {NV(":method", "GET"), NV(":scheme", "http"), NV(":path", "/late"), NV(":authority", "x")};
    (void)nghttp2_submit_request(fp->cli, NULL, nv, 4, NULL, NULL);
    pump(&f);
    assert_string_not_equal(f.last_path, "/late");
    assert_int_equal(f.closes, 0);
    /* the streams in flight finish, then the connection closes */
    for (int i = 0; i < 2; i++) {
        struct rd_http_exch *x = f.held[0];
        forget(&f, x);
        rd_http_respond(x, 200, NULL, "done", 4);
    }
    pump(&f);
    assert_int_equal(resp_of(&f, a)->status, 200);
    assert_int_equal(resp_of(&f, b)->status, 200);
    assert_memory_equal(resp_of(&f, b)->body.data, "done", 4);
    assert_int_equal(f.closes, 1);
    finish(&f);
}

static void test_flow_control_is_per_stream_backpressure(void **state)
{
    (void)state;
    struct fx f;
    start(&f, 1024); /* every stream may receive 1 KiB until the client grants more */
    int32_t a = req(&f, "GET", "/hold/slow", NULL);
    pump(&f);
    assert_int_equal(f.nheld, 1);
    struct rd_http_exch *x = f.held[0];
    assert_int_equal(rd_http_begin(x, 200, NULL, -1), 0);
    static char chunk[64 * 1024];
    memset(chunk, 'z', sizeof chunk);
    size_t wrote = 0;
    while (rd_http_pending(x) <= RD_HTTP_OUT_HIGH) {
        assert_int_equal(rd_http_write(x, chunk, sizeof chunk), 0);
        wrote += sizeof chunk;
    }
    pump(&f);
    f.drains = 0; /* the first chunk crossed the low mark on its way */
    assert_int_equal(resp_of(&f, a)->body.len, 1024); /* only the window's worth left */
    assert_true(rd_http_pending(x) > RD_HTTP_OUT_HIGH);
    /* another stream on the connection is not held up */
    int32_t b = req(&f, "GET", "/echo", NULL);
    pump(&f);
    assert_int_equal(resp_of(&f, b)->status, 200);
    assert_true(resp_of(&f, b)->closed);
    assert_int_equal(f.drains, 0);
    /* the client reads: WINDOW_UPDATE, the queue empties below the low mark, drain fires */
    while (resp_of(&f, a)->body.len < wrote) {
        size_t before = resp_of(&f, a)->body.len;
        assert_int_equal(nghttp2_submit_window_update(f.cli, NGHTTP2_FLAG_NONE, a, 256 * 1024), 0);
        pump(&f);
        assert_true(resp_of(&f, a)->body.len > before);
    }
    assert_int_equal(rd_http_pending(x), 0);
    assert_int_equal(f.drains, 1);
    forget(&f, x);
    rd_http_finish(x);
    pump(&f);
    assert_true(resp_of(&f, a)->closed);
    assert_int_equal(resp_of(&f, a)->close_code, NGHTTP2_NO_ERROR);
    finish(&f);
}

static void test_client_reset_tells_the_handler(void **state)
{
    (void)state;
    struct fx f;
    start(&f, 65535);
    int32_t a = req(&f, "GET", "/hold/x", NULL);
    pump(&f);
    assert_int_equal(f.nheld, 1);
    assert_int_equal(nghttp2_submit_rst_stream(f.cli, NGHTTP2_FLAG_NONE, a, NGHTTP2_CANCEL), 0);
    pump(&f);
    assert_int_equal(f.gone, 1);
    assert_int_equal(f.nheld, 0);
    assert_int_equal(rd_h2_streams(f.h), 0);
    /* the connection keeps serving */
    int32_t b = req(&f, "GET", "/echo", NULL);
    pump(&f);
    assert_int_equal(resp_of(&f, b)->status, 200);
    finish(&f);
}

static void test_handler_abort_resets_the_stream(void **state)
{
    (void)state;
    struct fx f;
    start(&f, 65535);
    int32_t a = req(&f, "GET", "/hold/x", NULL);
    pump(&f);
    struct rd_http_exch *x = f.held[0];
    assert_int_equal(rd_http_begin(x, 200, NULL, 100), 0);
    assert_int_equal(rd_http_write(x, "part", 4), 0);
    forget(&f, x);
    rd_http_finish(x); /* less than announced: the stream is reset, not ended */
    pump(&f);
    assert_true(resp_of(&f, a)->closed);
    assert_int_equal(resp_of(&f, a)->close_code, NGHTTP2_INTERNAL_ERROR);
    finish(&f);
}

static void test_limits_431_and_413(void **state)
{
    (void)state;
    struct fx f;
    start(&f, 65535);
    static char big[5000];
    memset(big, 'h', sizeof big - 1);
    nghttp2_nv nv[] = {NV(":method", "GET"), NV(":scheme", "http"), NV(":path", "/big-head"), NV(":authority", "x"),
                       NV("x-big", big)};
    int32_t a = nghttp2_submit_request(f.cli, NULL, nv, 5, NULL, NULL);
    pump(&f);
    assert_int_equal(resp_of(&f, a)->status, 431);
    assert_memory_equal(resp_of(&f, a)->body.data, "{\"error\":431}", 13);
    assert_string_not_equal(f.last_path, "/big-head");
    /* a body over max_body without content-length: 413 while it arrives; the
     * client is told to stop sending with RST_STREAM NO_ERROR */
    static char body[30000];
    struct body_src src = {body, sizeof body, 0};
    int32_t b = req(&f, "POST", "/big-body", &src);
    pump(&f);
    assert_int_equal(resp_of(&f, b)->status, 413);
    assert_true(resp_of(&f, b)->closed);
    assert_int_equal(f.rst_no_error, 1);
    assert_string_not_equal(f.last_path, "/big-body");
    finish(&f);
}

static void test_deadlines(void **state)
{
    (void)state;
    struct fx f;
    start(&f, 65535);
    /* a body that stops arriving: 408 after idle_timeout */
    nghttp2_nv nv[] = {NV(":method", "POST"), NV(":scheme", "http"), NV(":path", "/stall"), NV(":authority", "x")};
    int32_t a = nghttp2_submit_headers(f.cli, NGHTTP2_FLAG_NONE, -1, NULL, nv, 4, NULL);
    pump(&f);
    advance(&f, 4999);
    assert_int_equal(resp_of(&f, a)->status, 0);
    advance(&f, 2);
    assert_int_equal(resp_of(&f, a)->status, 408);
    /* a response the client takes no byte of: the stream is reset and its handler hears on_gone */
    assert_int_equal(nghttp2_submit_settings(f.cli, NGHTTP2_FLAG_NONE,
                                             (nghttp2_settings_entry[]){{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 0}}, 1),
                     0);
    int32_t b = req(&f, "GET", "/hold/stuck", NULL);
    pump(&f);
    struct rd_http_exch *x = f.held[0];
    assert_int_equal(rd_http_begin(x, 200, NULL, -1), 0);
    assert_int_equal(rd_http_write(x, "stuck", 5), 0);
    pump(&f);
    advance(&f, 5001);
    assert_int_equal(f.gone, 1);
    assert_int_equal(resp_of(&f, b)->close_code, NGHTTP2_CANCEL);
    /* no stream left: GOAWAY NO_ERROR after idle_timeout, then close */
    advance(&f, 5001);
    assert_true(f.goaway);
    assert_int_equal(f.goaway_code, NGHTTP2_NO_ERROR);
    assert_int_equal(f.goaway_last, b);
    assert_int_equal(f.closes, 1);
    finish(&f);
}

static void test_first_request_within_header_timeout(void **state)
{
    (void)state;
    struct fx f;
    start(&f, 65535);
    advance(&f, 999);
    assert_false(f.goaway);
    advance(&f, 2);
    assert_true(f.goaway);
    assert_int_equal(f.goaway_last, 0);
    assert_int_equal(f.closes, 1);
    finish(&f);
}

static void test_invalid_frames_goaway(void **state)
{
    (void)state;
    /* DATA on stream 0; a frame over the maximum size; WINDOW_UPDATE of 0 on the connection */
    static const unsigned char cases[][13] = {
        {0, 0, 4, 0, 0, 0, 0, 0, 0, 'a', 'b', 'c', 'd'},
        {0x01, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0},
        {0, 0, 4, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    };
    static const uint32_t codes[] = {NGHTTP2_PROTOCOL_ERROR, NGHTTP2_FRAME_SIZE_ERROR, NGHTTP2_PROTOCOL_ERROR};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct fx f;
        start(&f, 65535);
        feed_raw(&f, cases[i], sizeof cases[i]);
        assert_true(f.goaway);
        assert_int_equal(f.goaway_code, codes[i]);
        assert_int_equal(f.closes, 1);
        finish(&f);
    }
}

static void test_preface_match(void **state)
{
    (void)state;
    assert_int_equal(rd_h2_preface_match("", 0), 0);
    assert_int_equal(rd_h2_preface_match("PRI * HT", 8), 0);
    assert_int_equal(rd_h2_preface_match(RD_H2_PREFACE "xyz", RD_H2_PREFACE_LEN + 3), 1);
    assert_int_equal(rd_h2_preface_match("POST / HTTP/1.1", 15), -1);
    assert_int_equal(rd_h2_preface_match("PRI * HTTP/1.1\r\n", 16), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_preface_match),
        cmocka_unit_test(test_request_mapping_and_response_headers),
        cmocka_unit_test(test_graceful_stop_goaway_last_stream),
        cmocka_unit_test(test_flow_control_is_per_stream_backpressure),
        cmocka_unit_test(test_client_reset_tells_the_handler),
        cmocka_unit_test(test_handler_abort_resets_the_stream),
        cmocka_unit_test(test_limits_431_and_413),
        cmocka_unit_test(test_deadlines),
        cmocka_unit_test(test_first_request_within_header_timeout),
        cmocka_unit_test(test_invalid_frames_goaway),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
