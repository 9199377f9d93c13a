/* Tests for src/http/sse.c: the incremental Server-Sent Events scanner the
 * relay runs over every streamed response. What a user relies on is that the
 * events (and the usage they carry) come out the same whatever pieces the
 * network cut the stream into, so most tests feed one stream whole, one byte
 * at a time and split in two at every position, and compare the events with
 * those of a small whole-stream reference implementation of the WHATWG
 * algorithm ("event stream interpretation") written here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http/sse.h"
#include "util/buf.h"

/* ---- recording events ---- */

/* Events rendered as "[name|data|id]" with control bytes escaped, so a
 * mismatch prints readably. */
struct rec {
    struct rd_buf log;
    int n;
    int stop_at; /* return stop_rc from the stop_at-th event (1-based); 0: never */
    int stop_rc;
};

static void rec_init(struct rec *r)
{
    memset(r, 0, sizeof *r);
    rd_buf_init(&r->log, 0);
}

static void esc(struct rd_buf *b, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\n')
            rd_buf_appends(b, "\\n");
        else if (c == '\r')
            rd_buf_appends(b, "\\r");
        else if (c == '\\' || c == '|')
            rd_buf_printf(b, "\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            rd_buf_printf(b, "\\x%02x", c);
        else
            rd_buf_append(b, &p[i], 1);
    }
}

static void rec_event(struct rec *r, const char *name, size_t nl, const char *data, size_t dl, const char *id,
                      size_t il)
{
    rd_buf_appends(&r->log, "[");
    esc(&r->log, name, nl);
    rd_buf_appends(&r->log, "|");
    esc(&r->log, data, dl);
    rd_buf_appends(&r->log, "|");
    esc(&r->log, id, il);
    rd_buf_appends(&r->log, "]");
    r->n++;
}

static int on_event(void *ud, const struct rd_sse_event *ev)
{
    struct rec *r = ud;
    rec_event(r, ev->event, ev->event_len, ev->data, ev->data_len, ev->id, ev->id_len);
    if (r->stop_at && r->n == r->stop_at)
        return r->stop_rc;
    return 0;
}

static const char *rec_str(const struct rec *r)
{
    return r->log.data ? r->log.data : "";
}

/* ---- the reference: WHATWG event stream interpretation, whole stream ---- */

static void ref_line(const char *p, size_t n, struct rd_buf *data, struct rd_buf *name, struct rd_buf *id,
                     struct rec *out)
{
    if (n == 0) {
        if (data->len == 0) {
            rd_buf_reset(name);
            return;
        }
        rec_event(out, name->data ? name->data : "", name->len, data->data, data->len - 1, id->data ? id->data : "",
                  id->len);
        rd_buf_reset(data);
        rd_buf_reset(name);
        return;
    }
    if (p[0] == ':')
        return;
    const char *colon = memchr(p, ':', n);
    size_t fl = colon ? (size_t)(colon - p) : n;
    const char *v = colon ? colon + 1 : p + n;
    size_t vl = colon ? n - fl - 1 : 0;
    if (vl > 0 && v[0] == ' ') {
        v++;
        vl--;
    }
    if (fl == 4 && memcmp(p, "data", 4) == 0) {
        rd_buf_append(data, v, vl);
        rd_buf_append(data, "\n", 1);
    } else if (fl == 5 && memcmp(p, "event", 5) == 0) {
        rd_buf_reset(name);
        rd_buf_append(name, v, vl);
    } else if (fl == 2 && memcmp(p, "id", 2) == 0 && memchr(v, '\0', vl) == NULL) {
        rd_buf_reset(id);
        rd_buf_append(id, v, vl);
    }
}

static void ref_parse(const char *p, size_t n, struct rec *out)
{
    struct rd_buf data, name, id;
    rd_buf_init(&data, 0);
    rd_buf_init(&name, 0);
    rd_buf_init(&id, 0);
    size_t i = 0;
    if (n >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
        i = 3;
    while (i < n) {
        size_t j = i;
        while (j < n && p[j] != '\r' && p[j] != '\n')
            j++;
        if (j == n)
            break; /* an unterminated last line is discarded */
        ref_line(p + i, j - i, &data, &name, &id, out);
        if (p[j] == '\r' && j + 1 < n && p[j + 1] == '\n')
            j++;
        i = j + 1;
    }
    rd_buf_free(&data);
    rd_buf_free(&name);
    rd_buf_free(&id);
}

/* ---- feeding the scanner ---- */

struct run {
    struct rec rec;
    uint64_t events, dropped;
    bool at_boundary;
};

static void run_free(struct run *r)
{
    rd_buf_free(&r->rec.log);
}

/* Feeds s[0..n) in pieces cut at cuts[0..ncuts) (increasing), each piece in
 * its own exact-size heap block so AddressSanitizer sees any read past it. */
static void feed_cut(const char *s, size_t n, size_t max_event, const size_t *cuts, size_t ncuts, struct run *out)
{
    struct rd_sse sse;
    rd_sse_init(&sse, max_event);
    rec_init(&out->rec);
    size_t off = 0;
    for (size_t k = 0; k <= ncuts; k++) {
        size_t end = k < ncuts ? cuts[k] : n;
        size_t len = end - off;
        char *piece = malloc(len ? len : 1);
        assert_non_null(piece);
        memcpy(piece, s + off, len);
        assert_int_equal(rd_sse_feed(&sse, piece, len, on_event, &out->rec), 0);
        free(piece);
        off = end;
    }
    out->events = sse.events;
    out->dropped = sse.dropped;
    out->at_boundary = rd_sse_at_boundary(&sse);
    rd_sse_free(&sse);
}

static void feed_whole(const char *s, size_t n, size_t max_event, struct run *out)
{
    feed_cut(s, n, max_event, NULL, 0, out);
}

static void feed_bytes(const char *s, size_t n, size_t max_event, struct run *out)
{
    size_t *cuts = malloc((n ? n : 1) * sizeof *cuts);
    assert_non_null(cuts);
    for (size_t i = 0; i + 1 < n; i++)
        cuts[i] = i + 1;
    feed_cut(s, n, max_event, cuts, n ? n - 1 : 0, out);
    free(cuts);
}

static void assert_same_run(const struct run *a, const struct run *b, const char *how)
{
    if (strcmp(rec_str(&a->rec), rec_str(&b->rec)) != 0 || a->dropped != b->dropped || a->events != b->events ||
        a->at_boundary != b->at_boundary) {
        print_error("fed %s:\n  got    %s (dropped %llu, boundary %d)\n  wanted %s (dropped %llu, boundary %d)\n", how,
                    rec_str(&b->rec), (unsigned long long)b->dropped, b->at_boundary, rec_str(&a->rec),
                    (unsigned long long)a->dropped, a->at_boundary);
        fail();
    }
}

/* Feeds s whole, byte by byte, and in two pieces at every split point (and
 * in three pieces at every pair of points for short streams), asserting the
 * same events, counters and boundary state each time. Returns the whole run
 * in *whole (caller frees). */
static void check_any_split(const char *s, size_t n, size_t max_event, struct run *whole)
{
    feed_whole(s, n, max_event, whole);
    struct run r;
    feed_bytes(s, n, max_event, &r);
    assert_same_run(whole, &r, "one byte at a time");
    run_free(&r);
    for (size_t cut = 0; cut <= n; cut++) {
        feed_cut(s, n, max_event, &cut, 1, &r);
        char how[64];
        snprintf(how, sizeof how, "split at %zu", cut);
        assert_same_run(whole, &r, how);
        run_free(&r);
    }
    if (n <= 160) {
        for (size_t a = 1; a < n; a++)
            for (size_t b = a + 1; b < n; b++) {
                size_t cuts[2] = {a, b};
                feed_cut(s, n, max_event, cuts, 2, &r);
                char how[64];
                snprintf(how, sizeof how, "split at %zu and %zu", a, b);
                assert_same_run(whole, &r, how);
                run_free(&r);
            }
    }
}

/* The stream must give the reference's events in every feeding. */
static void check_stream(const char *s, size_t n, const char *expected)
{
    struct rec ref;
    rec_init(&ref);
    ref_parse(s, n, &ref);
    struct run whole;
    check_any_split(s, n, 0, &whole);
    assert_string_equal(rec_str(&whole.rec), rec_str(&ref));
    if (expected)
        assert_string_equal(rec_str(&whole.rec), expected);
    assert_int_equal(whole.events, (uint64_t)ref.n);
    assert_int_equal(whole.dropped, 0);
    run_free(&whole);
    rd_buf_free(&ref.log);
}

#define CHECK_STREAM(lit, expected) check_stream(lit, sizeof(lit) - 1, expected)

/* ---- streams ---- */

/* A real chat.completions stream with stream_options.include_usage. */
static const char openai_chat[] =
    "data: {\"id\":\"chatcmpl-B9\",\"object\":\"chat.completion.chunk\",\"created\":1741569952,"
    "\"model\":\"gpt-4o-2024-08-06\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
    "\"finish_reason\":null}],\"usage\":null}\n\n"
    "data: {\"id\":\"chatcmpl-B9\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
    "\"delta\":{\"content\":\"Hello\"},\"finish_reason\":null}],\"usage\":null}\n\n"
    "data: {\"id\":\"chatcmpl-B9\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
    "\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n"
    "data: {\"id\":\"chatcmpl-B9\",\"object\":\"chat.completion.chunk\",\"choices\":[],"
    "\"usage\":{\"prompt_tokens\":19,\"completion_tokens\":10,\"total_tokens\":29}}\n\n"
    "data: [DONE]\n\n";

/* The responses API names every event. */
static const char responses_api[] =
    "event: response.created\n"
    "data: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\",\"usage\":null}}\n\n"
    "event: response.output_text.delta\n"
    "data: {\"type\":\"response.output_text.delta\",\"sequence_number\":4,\"delta\":\"Hi\"}\n\n"
    "event: response.completed\n"
    "data: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_1\",\"usage\":{\"input_tokens\":12,"
    "\"output_tokens\":3,\"total_tokens\":15}}}\n\n";

static void test_real_streams_any_split(void **state)
{
    (void)state;
    CHECK_STREAM(openai_chat, NULL);
    struct run whole;
    feed_whole(openai_chat, sizeof openai_chat - 1, 0, &whole);
    assert_int_equal(whole.rec.n, 5);
    assert_true(whole.at_boundary);
    assert_non_null(strstr(rec_str(&whole.rec), "[|[DONE]|]"));
    run_free(&whole);

    CHECK_STREAM(responses_api, NULL);
    feed_whole(responses_api, sizeof responses_api - 1, 0, &whole);
    assert_int_equal(whole.rec.n, 3);
    assert_non_null(strstr(rec_str(&whole.rec), "[response.completed|{\"type\":\"response.completed\""));
    run_free(&whole);
}

static void test_line_endings(void **state)
{
    (void)state;
    /* the same two events with LF, CRLF, CR and a mix of the three */
    const char *want = "[a|1\\n2|][|3|]";
    CHECK_STREAM("event: a\ndata: 1\ndata: 2\n\ndata: 3\n\n", want);
    CHECK_STREAM("event: a\r\ndata: 1\r\ndata: 2\r\n\r\ndata: 3\r\n\r\n", want);
    CHECK_STREAM("event: a\rdata: 1\rdata: 2\r\rdata: 3\r\r", want);
    CHECK_STREAM("event: a\r\ndata: 1\rdata: 2\n\r\ndata: 3\n\r", want);
    /* CR LF is one line end but LF CR is two: a blank line in between */
    CHECK_STREAM("data: 1\n\rdata: 2\n\n", "[|1|][|2|]");
    CHECK_STREAM("data: 1\r\ndata: 2\r\n\r\n", "[|1\\n2|]");
}

static void test_crlf_split_across_feeds(void **state)
{
    (void)state;
    /* If the LF after a chunk-final CR were taken for a second line end, it
     * would be a blank line and dispatch "a" alone. */
    struct rd_sse s;
    struct rec r;
    rd_sse_init(&s, 0);
    rec_init(&r);
    assert_int_equal(rd_sse_feed(&s, "data: a\r", 8, on_event, &r), 0);
    assert_int_equal(rd_sse_feed(&s, "", 0, on_event, &r), 0); /* an empty read in between */
    assert_int_equal(rd_sse_feed(&s, "\ndata: b\r", 9, on_event, &r), 0);
    assert_int_equal(r.n, 0);
    /* the LF pairs with the CR before it; the next CR is the blank line */
    assert_int_equal(rd_sse_feed(&s, "\n\r", 2, on_event, &r), 0);
    assert_int_equal(r.n, 1);
    assert_string_equal(rec_str(&r), "[|a\\nb|]");
    assert_int_equal(rd_sse_feed(&s, "\n", 1, on_event, &r), 0);
    assert_true(rd_sse_at_boundary(&s));
    /* a CR at the end of a chunk followed by a non-LF byte ends the line too */
    assert_int_equal(rd_sse_feed(&s, "data: c\r", 8, on_event, &r), 0);
    assert_int_equal(rd_sse_feed(&s, "\r", 1, on_event, &r), 0);
    assert_string_equal(rec_str(&r), "[|a\\nb|][|c|]");
    rd_sse_free(&s);
    rd_buf_free(&r.log);
}

static void test_fields(void **state)
{
    (void)state;
    /* comments are ignored, also between data lines */
    CHECK_STREAM(": keep-alive\n\n:\ndata: a\n: inside\ndata: b\n\n", "[|a\\nb|]");
    /* only one leading space is stripped; no space is fine too */
    CHECK_STREAM("data:  two\ndata:none\ndata: \tx \n\n", "[| two\\nnone\\n\\x09x |]");
    /* a field without colon has an empty value: "data" adds an empty line */
    CHECK_STREAM("data\ndata\n\n", "[|\\n|]");
    CHECK_STREAM("data: a\ndata\n\n", "[|a\\n|]");
    /* "data:" alone is an event with empty data, dispatched (WHATWG) */
    CHECK_STREAM("data:\n\n", "[||]");
    /* a colon in the value is kept */
    CHECK_STREAM("data: a: b:c\n\n", "[|a: b:c|]");
    /* unknown fields, retry and wrong-case names are ignored */
    CHECK_STREAM("retry: 1000\nfoo: bar\nData: x\nDATA: y\ndata : z\ndata: ok\n\n", "[|ok|]");
    /* the last event: line wins; "event" without value clears the name */
    CHECK_STREAM("event: a\nevent: b\ndata: 1\n\nevent: a\nevent\ndata: 2\n\n", "[b|1|][|2|]");
    /* the name is per event */
    CHECK_STREAM("event: a\ndata: 1\n\ndata: 2\n\n", "[a|1|][|2|]");
}

static void test_no_data_not_dispatched(void **state)
{
    (void)state;
    /* a blank line without data dispatches nothing and forgets the name */
    CHECK_STREAM("\n\n\r\n\revent: ping\n\ndata: x\n\n", "[|x|]");
    CHECK_STREAM("event: ping\n: hi\nid: 3\n\n", "");
    struct run r;
    feed_whole("event: ping\n\n\n", 14, 0, &r);
    assert_int_equal(r.events, 0);
    assert_int_equal(r.dropped, 0);
    run_free(&r);
}

static void test_event_id(void **state)
{
    (void)state;
    /* the id stays with the stream until the next id field */
    CHECK_STREAM("id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\nid: 7\n\ndata: d\n\n", "[|a|1][|b|1][|c|][|d|7]");
    /* an id containing NUL is ignored */
    static const char nul[] = "id: 5\ndata: a\n\nid: x\0y\ndata: b\n\n";
    check_stream(nul, sizeof nul - 1, "[|a|5][|b|5]");
}

static void test_overlong_id_ignored(void **state)
{
    (void)state;
    /* sse.c: "an id over 1 KiB is ignored", so the previous id stays (a
     * client resuming with Last-Event-ID needs it); 1 KiB itself is kept */
    static char s[4096];
    static char big[1026];
    memset(big, '7', 1025);
    big[1025] = '\0';
    int n = snprintf(s, sizeof s, "id: 1\ndata: a\n\nid: %s\ndata: b\n\n", big);
    struct run r;
    feed_whole(s, (size_t)n, 0, &r);
    assert_string_equal(rec_str(&r.rec), "[|a|1][|b|1]");
    run_free(&r);
    big[1024] = '\0';
    n = snprintf(s, sizeof s, "id: 1\ndata: a\n\nid: %s\ndata: b\n\n", big);
    feed_whole(s, (size_t)n, 0, &r);
    assert_int_equal(r.rec.n, 2);
    assert_non_null(strstr(rec_str(&r.rec), "[|b|7777"));
    run_free(&r);
}

static void test_bom(void **state)
{
    (void)state;
    /* Without the BOM being skipped, the first field would be named
     * "\xEF\xBB\xBFdata" and the event lost. Fed whole here (and cut only
     * after the BOM); cutting the BOM itself is the next test. */
    static const char *const streams[][2] = {
        {"\xEF\xBB\xBF"
         "data: a\n\n",
         "[|a|]"},
        /* only one, only at the start */
        {"\xEF\xBB\xBF\xEF\xBB\xBF"
         "data: a\n\ndata: b\n\n",
         "[|b|]"},
        {"data: a\n\n\xEF\xBB\xBF"
         "data: b\n\n",
         "[|a|]"},
    };
    for (size_t k = 0; k < sizeof streams / sizeof streams[0]; k++) {
        const char *s = streams[k][0];
        size_t n = strlen(s);
        struct rec ref;
        rec_init(&ref);
        ref_parse(s, n, &ref);
        assert_string_equal(rec_str(&ref), streams[k][1]);
        for (size_t cut = 3; cut <= n; cut++) {
            struct run r;
            feed_cut(s, n, 0, &cut, 1, &r);
            assert_string_equal(rec_str(&r.rec), streams[k][1]);
            run_free(&r);
        }
        rd_buf_free(&ref.log);
    }
}

static void test_bom_split_across_feeds(void **state)
{
    (void)state;
    /* The network may deliver the BOM in pieces, like any other bytes. */
    static const char s[] = "\xEF\xBB\xBF"
                            "data: a\n\n";
    for (size_t cut = 1; cut <= 2; cut++) {
        struct run r;
        feed_cut(s, sizeof s - 1, 0, &cut, 1, &r);
        if (strcmp(rec_str(&r.rec), "[|a|]") != 0)
            print_error("BOM split at %zu: got \"%s\"\n", cut, rec_str(&r.rec));
        assert_string_equal(rec_str(&r.rec), "[|a|]");
        run_free(&r);
    }
}

/* ---- the size cap ---- */

static void test_oversized_event_dropped(void **state)
{
    (void)state;
    /* max_event 32: the middle event (100 bytes of data) is dropped, its
     * neighbours (and its name) come through untouched, in every feeding */
    char s[512];
    char big[101];
    memset(big, 'x', 100);
    big[100] = '\0';
    int n = snprintf(s, sizeof s, "data: before\n\nevent: big\ndata: %s\n\nevent: after\ndata: after\n\n", big);
    struct run whole;
    check_any_split(s, (size_t)n, 32, &whole);
    assert_string_equal(rec_str(&whole.rec), "[|before|][after|after|]");
    assert_int_equal(whole.events, 2);
    assert_int_equal(whole.dropped, 1);
    assert_true(whole.at_boundary);
    run_free(&whole);

    /* small data lines adding up past the cap (10+1+10+1+10+1+1 = 34) are dropped too */
    n = snprintf(s, sizeof s, "data: 0123456789\ndata: 0123456789\ndata: 0123456789\ndata: 0\n\ndata: ok\n\n");
    check_any_split(s, (size_t)n, 32, &whole);
    assert_string_equal(rec_str(&whole.rec), "[|ok|]");
    assert_int_equal(whole.dropped, 1);
    run_free(&whole);

    /* an over-long event name drops its event */
    n = snprintf(s, sizeof s, "event: %s\ndata: x\n\ndata: ok\n\n", big);
    check_any_split(s, (size_t)n, 32, &whole);
    assert_string_equal(rec_str(&whole.rec), "[|ok|]");
    assert_int_equal(whole.dropped, 1);
    run_free(&whole);
}

static void test_cap_boundary(void **state)
{
    (void)state;
    /* "max_event caps one event's data + name": with max_event 16, 16 bytes
     * of data (or 10 of name + 6 of data) fit and 17 do not. */
    struct run r;
    feed_whole("data: 0123456789abcdef\n\n", 24, 16, &r);
    assert_string_equal(rec_str(&r.rec), "[|0123456789abcdef|]");
    assert_int_equal(r.dropped, 0);
    run_free(&r);
    feed_whole("event: 0123456789\ndata: abcdef\n\n", 32, 16, &r);
    assert_string_equal(rec_str(&r.rec), "[0123456789|abcdef|]");
    run_free(&r);
    feed_whole("data: 01234567\ndata: abcdefg\n\n", 30, 16, &r); /* 8 + LF + 7 */
    assert_string_equal(rec_str(&r.rec), "[|01234567\\nabcdefg|]");
    run_free(&r);
    feed_whole("data: 0123456789abcdefg\n\n", 25, 16, &r);
    assert_int_equal(r.events, 0);
    assert_int_equal(r.dropped, 1);
    run_free(&r);
}

static void test_event_near_cap_same_when_split(void **state)
{
    (void)state;
    /* An event that fits when its line arrives in one read must fit when the
     * line is cut: here 15 bytes of data under a cap of 16, so a 21-byte
     * "data: ..." line. */
    static const char s[] = "data: 0123456789abcde\n\ndata: ok\n\n";
    struct run whole;
    check_any_split(s, sizeof s - 1, 16, &whole);
    assert_string_equal(rec_str(&whole.rec), "[|0123456789abcde|][|ok|]");
    run_free(&whole);
}

static void test_long_ignored_line_keeps_event(void **state)
{
    (void)state;
    /* Comments, unknown fields and ids over 1 KiB (documented as ignored)
     * carry nothing, so however long they are, and however the network cut
     * them, the event around them is not dropped. */
    static char s[2048];
    static char big[1101];
    memset(big, 'c', 1100);
    big[1100] = '\0';
    const char *fields[] = {":", "x-pad: ", "id: "};
    for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++) {
        int n = snprintf(s, sizeof s, "data: a\n%s%s\ndata: b\n\ndata: c\n\n", fields[k], big);
        struct run whole;
        check_any_split(s, (size_t)n, 32, &whole);
        assert_string_equal(rec_str(&whole.rec), "[|a\\nb|][|c|]");
        assert_int_equal(whole.dropped, 0);
        run_free(&whole);
    }
}

static void test_name_after_data_counts_toward_cap(void **state)
{
    (void)state;
    /* data + name over the cap is dropped whichever field comes first */
    static const char name_first[] = "event: 0123456789\ndata: 0123456789\n\ndata: ok\n\n";
    static const char data_first[] = "data: 0123456789\nevent: 0123456789\n\ndata: ok\n\n";
    struct run a, b;
    feed_whole(name_first, sizeof name_first - 1, 16, &a);
    feed_whole(data_first, sizeof data_first - 1, 16, &b);
    assert_string_equal(rec_str(&a.rec), "[|ok|]");
    assert_int_equal(a.dropped, 1);
    assert_string_equal(rec_str(&b.rec), "[|ok|]");
    assert_int_equal(b.dropped, 1);
    run_free(&a);
    run_free(&b);
}

static void test_oversized_line_across_many_feeds(void **state)
{
    (void)state;
    /* One data line of 64 KiB under a 1 KiB cap, arriving in 7-byte reads:
     * memory stays bounded (the line is not kept), the event is dropped once
     * its blank line comes, and the stream goes on. */
    struct rd_sse s;
    struct rec r;
    rd_sse_init(&s, 1024);
    rec_init(&r);
    assert_int_equal(rd_sse_feed(&s, "data: ok1\n\ndata: ", 17, on_event, &r), 0);
    char chunk[7];
    memset(chunk, 'z', sizeof chunk);
    for (size_t sent = 0; sent < 64 * 1024; sent += sizeof chunk) {
        assert_int_equal(rd_sse_feed(&s, chunk, sizeof chunk, on_event, &r), 0);
        assert_false(rd_sse_at_boundary(&s));
    }
    assert_true(s.line.cap <= 2048 && s.data.cap <= 2048);
    assert_int_equal(s.dropped, 0);
    /* the line ends, then more data for the same (dropped) event */
    assert_int_equal(rd_sse_feed(&s, "zz\r", 3, on_event, &r), 0);
    assert_int_equal(rd_sse_feed(&s, "\ndata: tail\n", 12, on_event, &r), 0);
    assert_false(rd_sse_at_boundary(&s));
    assert_int_equal(rd_sse_feed(&s, "\n", 1, on_event, &r), 0);
    assert_int_equal(s.dropped, 1);
    assert_true(rd_sse_at_boundary(&s));
    assert_int_equal(rd_sse_feed(&s, "data: ok2\n\n", 11, on_event, &r), 0);
    assert_string_equal(rec_str(&r), "[|ok1|][|ok2|]");
    assert_int_equal(s.events, 2);
    rd_sse_free(&s);
    rd_buf_free(&r.log);
}

/* ---- state and control ---- */

static void test_at_boundary(void **state)
{
    (void)state;
    struct rd_sse s;
    struct rec r;
    rd_sse_init(&s, 0);
    rec_init(&r);
    assert_true(rd_sse_at_boundary(&s));
    rd_sse_feed(&s, "da", 2, on_event, &r); /* partial line */
    assert_false(rd_sse_at_boundary(&s));
    rd_sse_feed(&s, "ta: x\n", 6, on_event, &r); /* line done, event pending */
    assert_false(rd_sse_at_boundary(&s));
    rd_sse_feed(&s, "\n", 1, on_event, &r);
    assert_true(rd_sse_at_boundary(&s));
    rd_sse_feed(&s, "event: y\n", 9, on_event, &r); /* a name alone is pending too */
    assert_false(rd_sse_at_boundary(&s));
    rd_sse_feed(&s, "\n: comment\n", 11, on_event, &r);
    assert_true(rd_sse_at_boundary(&s));
    rd_sse_feed(&s, "data: z\r", 8, on_event, &r);
    assert_false(rd_sse_at_boundary(&s));
    rd_sse_feed(&s, "\r", 1, on_event, &r); /* CR CR: dispatched */
    assert_true(rd_sse_at_boundary(&s));
    assert_string_equal(rec_str(&r), "[|x|][|z|]");
    /* a stream cut in the middle of an event (upstream died): not at a boundary */
    rd_sse_feed(&s, "data: {\"trunc", 13, on_event, &r);
    assert_false(rd_sse_at_boundary(&s));
    rd_sse_free(&s);
    rd_buf_free(&r.log);
}

static void test_callback_stops_feed(void **state)
{
    (void)state;
    static const char s[] = "data: 1\n\ndata: 2\n\ndata: 3\n\n";
    struct rd_sse sse;
    struct rec r;
    rd_sse_init(&sse, 0);
    rec_init(&r);
    r.stop_at = 2;
    r.stop_rc = -42;
    assert_int_equal(rd_sse_feed(&sse, s, sizeof s - 1, on_event, &r), -42);
    assert_string_equal(rec_str(&r), "[|1|][|2|]"); /* 3 was not reported */
    assert_int_equal(sse.events, 2);
    rd_sse_free(&sse);
    rd_buf_free(&r.log);

    /* a positive value stops it too, also for an event completed from a
     * line carried over from the previous feed */
    rd_sse_init(&sse, 0);
    rec_init(&r);
    r.stop_at = 1;
    r.stop_rc = 7;
    assert_int_equal(rd_sse_feed(&sse, "data: 1\n", 8, on_event, &r), 0);
    assert_int_equal(rd_sse_feed(&sse, "\ndata: 2\n\n", 10, on_event, &r), 7);
    assert_string_equal(rec_str(&r), "[|1|]");
    rd_sse_free(&sse);
    rd_buf_free(&r.log);

    /* without a callback the events are only counted */
    rd_sse_init(&sse, 0);
    assert_int_equal(rd_sse_feed(&sse, s, sizeof s - 1, NULL, NULL), 0);
    assert_int_equal(sse.events, 3);
    rd_sse_free(&sse);
}

static void test_reset(void **state)
{
    (void)state;
    struct rd_sse s;
    struct rec r;
    rd_sse_init(&s, 16);
    rec_init(&r);
    /* leave everything dirty: an id, a dropped event, a pending name, data,
     * a partial line and a chunk-final CR */
    static const char dirty[] = "id: 9\ndata: 0123456789abcdefghij\n\nevent: n\ndata: pending\r";
    rd_sse_feed(&s, dirty, sizeof dirty - 1, on_event, &r);
    assert_int_equal(s.dropped, 1);
    assert_false(rd_sse_at_boundary(&s));
    rd_sse_reset(&s);
    assert_true(rd_sse_at_boundary(&s));
    assert_int_equal(s.events, 0);
    assert_int_equal(s.dropped, 0);
    /* a new stream: its BOM is skipped, the old name, data and id are
     * forgotten, and the cap still applies */
    static const char next[] = "\xEF\xBB\xBF\ndata: fresh\n\ndata: 0123456789abcdefghij\n\ndata: ok\n\n";
    assert_int_equal(rd_sse_feed(&s, next, sizeof next - 1, on_event, &r), 0);
    assert_string_equal(rec_str(&r), "[|fresh|][|ok|]");
    assert_int_equal(s.events, 2);
    assert_int_equal(s.dropped, 1);

    /* reset in the middle of a partial line */
    rd_buf_reset(&r.log);
    r.n = 0;
    rd_sse_feed(&s, "data: half", 10, on_event, &r);
    rd_sse_reset(&s);
    rd_sse_feed(&s, "data: whole\n\n", 13, on_event, &r);
    assert_string_equal(rec_str(&r), "[|whole|]");
    rd_sse_free(&s);
    rd_sse_free(NULL);
    rd_buf_free(&r.log);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_streams_any_split),
        cmocka_unit_test(test_line_endings),
        cmocka_unit_test(test_crlf_split_across_feeds),
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_no_data_not_dispatched),
        cmocka_unit_test(test_event_id),
        cmocka_unit_test(test_overlong_id_ignored),
        cmocka_unit_test(test_bom),
        cmocka_unit_test(test_bom_split_across_feeds),
        cmocka_unit_test(test_oversized_event_dropped),
        cmocka_unit_test(test_cap_boundary),
        cmocka_unit_test(test_event_near_cap_same_when_split),
        cmocka_unit_test(test_long_ignored_line_keeps_event),
        cmocka_unit_test(test_name_after_data_counts_toward_cap),
        cmocka_unit_test(test_oversized_line_across_many_feeds),
        cmocka_unit_test(test_at_boundary),
        cmocka_unit_test(test_callback_stops_feed),
        cmocka_unit_test(test_reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
