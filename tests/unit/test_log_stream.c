/* The live stream's fan-out (src/obs/logfan.c) against a fake history (a
 * window of the last rows, like the writer's) and fake outputs whose unsent
 * byte count the test sets: order, each row once, filters, resume by id,
 * a resume older than the history, the slow subscriber's loss and its
 * `lost` event, chunked reads, write failures, heartbeats. The output is
 * read back with the code base's SSE scanner (http/sse.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "http/sse.h"
#include "obs/logfan.h"
#include "util/json.h"

/* ---- a fake history: rows 1..last, of which the last `keep` are held ---- */

#define HIST_MAX 1000

struct hist {
    struct rd_log_rec rows[HIST_MAX]; /* rows[i].seq == i + 1 */
    uint64_t last;
    uint64_t keep;
    unsigned calls;
};

static size_t hist_since(void *ud, uint64_t after, struct rd_log_rec *out, size_t max, uint64_t *first_kept)
{
    struct hist *h = ud;
    h->calls++;
    uint64_t first = h->last > h->keep ? h->last - h->keep + 1 : 1;
    *first_kept = h->last ? first : 0;
    size_t n = 0;
    for (uint64_t s = after + 1 > first ? after + 1 : first; s <= h->last && n < max; s++)
        out[n++] = h->rows[s - 1];
    return n;
}

static uint64_t hist_last(void *ud)
{
    return ((struct hist *)ud)->last;
}

static void hist_add(struct hist *h, int64_t proxy_id, int status)
{
    assert_true(h->last < HIST_MAX);
    struct rd_log_rec *r = &h->rows[h->last];
    memset(r, 0, sizeof *r);
    r->seq = ++h->last;
    snprintf(r->id, sizeof r->id, "req_%016llx", (unsigned long long)r->seq);
    r->ts_ms = INT64_C(1796279462000) + (int64_t)r->seq;
    r->proxy_id = proxy_id;
    snprintf(r->method, sizeof r->method, "POST");
    snprintf(r->path, sizeof r->path, "/v1/chat/completions");
    r->status = status;
    r->upstream_latency_ms = r->ttfb_ms = -1;
    r->input_tokens = r->output_tokens = r->cached_tokens = r->reasoning_tokens = -1;
}

/* ---- a fake output ---- */

struct out {
    struct rd_buf bytes; /* everything written */
    size_t pending;      /* what the test says is unsent */
    bool fail;
};

static size_t out_pending(void *ud)
{
    return ((struct out *)ud)->pending;
}

static int out_write(void *ud, const char *p, size_t n)
{
    struct out *o = ud;
    if (o->fail)
        return -1;
    return rd_buf_append(&o->bytes, p, n);
}

/* The events written so far, as the SSE scanner reads them. */
struct seen {
    char kind[16]; /* "log" or "lost" */
    uint64_t id;   /* the event's id: field (log events) */
    struct json_object *data;
};

struct seen_list {
    struct seen v[HIST_MAX + 16];
    size_t n;
};

static int on_event(void *ud, const struct rd_sse_event *ev)
{
    struct seen_list *l = ud;
    assert_true(l->n < sizeof l->v / sizeof l->v[0]);
    struct seen *s = &l->v[l->n++];
    snprintf(s->kind, sizeof s->kind, "%.*s", (int)ev->event_len, ev->event);
    s->id = ev->id_len ? strtoull(ev->id, NULL, 10) : 0;
    s->data = json_tokener_parse(ev->data);
    assert_non_null(s->data);
    return 0;
}

static void seen_free(struct seen_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        json_object_put(l->v[i].data);
    l->n = 0;
}

/* Parses what o received (from the start) into l. */
static void read_out(const struct out *o, struct seen_list *l)
{
    seen_free(l);
    struct rd_sse sse;
    rd_sse_init(&sse, 0);
    assert_int_equal(rd_sse_feed(&sse, o->bytes.data ? o->bytes.data : "", o->bytes.len, on_event, l), 0);
    assert_true(rd_sse_at_boundary(&sse));
    rd_sse_free(&sse);
}

static int64_t num(const struct seen *s, const char *key)
{
    return json_object_get_int64(rd_json_get(s->data, key));
}

/* The log events of l are exactly seqs from..to (step: every `step`-th). */
static void assert_logs(const struct seen_list *l, size_t at, uint64_t from, uint64_t to, uint64_t step)
{
    size_t i = at;
    for (uint64_t s = from; s <= to; s += step, i++) {
        assert_true(i < l->n);
        assert_string_equal(l->v[i].kind, "log");
        assert_true(l->v[i].id == s);
        char want[24];
        snprintf(want, sizeof want, "req_%016llx", (unsigned long long)s);
        assert_string_equal(json_object_get_string(rd_json_get(l->v[i].data, "id")), want); /* the row of that seq */
    }
    assert_int_equal(i, l->n);
}

struct fixture {
    struct hist h;
    struct rd_log_fan fan;
    struct out o[3];
    struct rd_log_sub sub[3];
    struct seen_list seen;
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);
    fx->h.keep = HIST_MAX;
    struct rd_log_source src = {.since = hist_since, .last_seq = hist_last, .ud = &fx->h};
    rd_log_fan_init(&fx->fan, &src);
    for (int i = 0; i < 3; i++) {
        rd_buf_init(&fx->o[i].bytes, 0);
        struct rd_log_out out = {.pending = out_pending, .write = out_write, .ud = &fx->o[i]};
        const char *bad;
        char err[64];
        assert_int_equal(rd_log_query_parse(NULL, NULL, &fx->sub[i].q, &bad, err, sizeof err), 0);
        rd_log_sub_init(&fx->sub[i], &out, 4096);
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    seen_free(&fx->seen);
    for (int i = 0; i < 3; i++)
        rd_buf_free(&fx->o[i].bytes);
    rd_log_fan_free(&fx->fan);
    free(fx);
    return 0;
}

static void filter(struct rd_log_sub *sub, const char *query)
{
    const char *bad;
    char err[64];
    assert_int_equal(rd_log_query_parse(query, NULL, &sub->q, &bad, err, sizeof err), 0);
}

static void test_from_now_in_order(void **state)
{
    struct fixture *fx = *state;
    for (int i = 0; i < 5; i++)
        hist_add(&fx->h, 1, 200);
    rd_log_fan_add(&fx->fan, &fx->sub[0], false, 0);
    assert_true(fx->sub[0].last_seq == 5);
    rd_log_fan_pump(&fx->fan);
    assert_int_equal(fx->o[0].bytes.len, 0); /* rows from before the connection are not sent */
    for (int i = 0; i < 3; i++)
        hist_add(&fx->h, 1, 200);
    rd_log_fan_pump(&fx->fan);
    rd_log_fan_pump(&fx->fan); /* a second notify with nothing new sends nothing twice */
    read_out(&fx->o[0], &fx->seen);
    assert_logs(&fx->seen, 0, 6, 8, 1);
    assert_string_equal(json_object_get_string(rd_json_get(fx->seen.v[0].data, "id")), "req_0000000000000006");
}

static void test_filter(void **state)
{
    struct fixture *fx = *state;
    filter(&fx->sub[0], "proxy_id=2");
    filter(&fx->sub[1], "status_class=5xx");
    rd_log_fan_add(&fx->fan, &fx->sub[0], false, 0);
    rd_log_fan_add(&fx->fan, &fx->sub[1], false, 0);
    rd_log_fan_add(&fx->fan, &fx->sub[2], false, 0);
    for (int i = 0; i < 10; i++)
        hist_add(&fx->h, i % 2 ? 2 : 1, i % 5 == 4 ? 503 : 200);
    rd_log_fan_pump(&fx->fan);
    read_out(&fx->o[0], &fx->seen);
    assert_logs(&fx->seen, 0, 2, 10, 2);
    read_out(&fx->o[1], &fx->seen);
    assert_logs(&fx->seen, 0, 5, 10, 5);
    read_out(&fx->o[2], &fx->seen);
    assert_logs(&fx->seen, 0, 1, 10, 1);
    /* Positions advance past rows a filter skipped. */
    assert_true(fx->sub[0].last_seq == 10 && fx->sub[1].last_seq == 10);
}

static void test_resume(void **state)
{
    struct fixture *fx = *state;
    for (int i = 0; i < 10; i++)
        hist_add(&fx->h, 1, 200);
    rd_log_fan_add(&fx->fan, &fx->sub[0], true, 4);
    read_out(&fx->o[0], &fx->seen);
    assert_logs(&fx->seen, 0, 5, 10, 1);
    hist_add(&fx->h, 1, 200);
    rd_log_fan_pump(&fx->fan);
    read_out(&fx->o[0], &fx->seen);
    assert_logs(&fx->seen, 0, 5, 11, 1);
    /* An id from the future (another server's, a reset) starts from now. */
    rd_log_fan_add(&fx->fan, &fx->sub[1], true, 999);
    assert_true(fx->sub[1].last_seq == 11);
    hist_add(&fx->h, 1, 200);
    rd_log_fan_pump(&fx->fan);
    read_out(&fx->o[1], &fx->seen);
    assert_logs(&fx->seen, 0, 12, 12, 1);
    /* Resuming at the last id replays nothing. */
    rd_log_fan_add(&fx->fan, &fx->sub[2], true, 12);
    assert_int_equal(fx->o[2].bytes.len, 0);
}

static void test_resume_older_than_history(void **state)
{
    struct fixture *fx = *state;
    fx->h.keep = 5;
    for (int i = 0; i < 10; i++)
        hist_add(&fx->h, 1, 200);
    rd_log_fan_add(&fx->fan, &fx->sub[0], true, 2);
    read_out(&fx->o[0], &fx->seen);
    assert_true(fx->seen.n == 6);
    assert_string_equal(fx->seen.v[0].kind, "lost");
    assert_string_equal(json_object_get_string(rd_json_get(fx->seen.v[0].data, "reason")), "history");
    assert_int_equal(num(&fx->seen.v[0], "missed_from"), 3);
    assert_int_equal(num(&fx->seen.v[0], "resumed_at"), 6);
    for (size_t i = 1; i < 6; i++)
        assert_true(fx->seen.v[i].id == 5 + i);
    /* Exactly at the edge (the history still holds id + 1): no lost event. */
    rd_log_fan_add(&fx->fan, &fx->sub[1], true, 5);
    read_out(&fx->o[1], &fx->seen);
    assert_logs(&fx->seen, 0, 6, 10, 1);
}

static void test_slow_subscriber(void **state)
{
    struct fixture *fx = *state;
    filter(&fx->sub[0], "proxy_id=1");
    rd_log_fan_add(&fx->fan, &fx->sub[0], false, 0);
    rd_log_fan_add(&fx->fan, &fx->sub[1], false, 0);
    for (int i = 0; i < 3; i++)
        hist_add(&fx->h, 1, 200);
    rd_log_fan_pump(&fx->fan);
    /* The slow one's client stops reading: its unsent bytes reach the bound. */
    fx->o[0].pending = 4096;
    for (int i = 0; i < 7; i++)
        hist_add(&fx->h, i == 3 ? 2 : 1, 200); /* seq 4..10; 7 is another proxy's */
    rd_log_fan_pump(&fx->fan);
    assert_true(fx->sub[0].lossy);
    size_t before = fx->o[0].bytes.len;
    rd_log_sub_poke(&fx->sub[0]); /* still full: nothing */
    fx->o[0].pending = 2049;
    rd_log_sub_poke(&fx->sub[0]);         /* above half the bound: nothing */
    rd_log_sub_heartbeat(&fx->sub[0], 0); /* not at the bound: a heartbeat passes */
    assert_true(fx->sub[0].lossy);
    read_out(&fx->o[0], &fx->seen);
    assert_logs(&fx->seen, 0, 1, 3, 1); /* heartbeats are comments: still the three events 1..3 */
    assert_true(fx->o[0].bytes.len > before);
    fx->o[0].pending = 2048;
    rd_log_sub_poke(&fx->sub[0]);
    assert_false(fx->sub[0].lossy);
    hist_add(&fx->h, 1, 200); /* 11 */
    rd_log_fan_pump(&fx->fan);
    read_out(&fx->o[0], &fx->seen);
    assert_int_equal(fx->seen.n, 5);
    for (size_t i = 0; i < 3; i++)
        assert_true(fx->seen.v[i].id == i + 1);
    assert_string_equal(fx->seen.v[3].kind, "lost");
    assert_string_equal(json_object_get_string(rd_json_get(fx->seen.v[3].data, "reason")), "slow");
    assert_int_equal(num(&fx->seen.v[3], "missed"), 6); /* 4..10 but 7, which its filter skips */
    assert_int_equal(num(&fx->seen.v[3], "missed_from"), 4);
    assert_int_equal(num(&fx->seen.v[3], "resumed_at"), 11);
    assert_true(fx->seen.v[4].id == 11);
    /* The other subscriber got everything, in order. */
    read_out(&fx->o[1], &fx->seen);
    assert_logs(&fx->seen, 0, 1, 11, 1);
}

static void test_chunks_and_positions(void **state)
{
    struct fixture *fx = *state;
    for (int i = 0; i < 300; i++)
        hist_add(&fx->h, 1, 200);
    rd_log_fan_add(&fx->fan, &fx->sub[0], true, 10);
    rd_log_fan_add(&fx->fan, &fx->sub[1], true, 250);
    for (int i = 0; i < 400; i++)
        hist_add(&fx->h, 1, 200);
    rd_log_fan_add(&fx->fan, &fx->sub[2], false, 0);
    fx->h.calls = 0;
    rd_log_fan_pump(&fx->fan);
    /* Both replayed up to 300 when they were added; the pump reads once
     * for everyone from the lowest position (300): 400 rows, 64 a read. */
    assert_int_equal(fx->h.calls, 400 / RD_LOG_FAN_CHUNK + 1);
    read_out(&fx->o[0], &fx->seen);
    assert_logs(&fx->seen, 0, 11, 700, 1);
    read_out(&fx->o[1], &fx->seen);
    assert_logs(&fx->seen, 0, 251, 700, 1);
    assert_int_equal(fx->o[2].bytes.len, 0);
}

static void test_write_failure(void **state)
{
    struct fixture *fx = *state;
    rd_log_fan_add(&fx->fan, &fx->sub[0], false, 0);
    rd_log_fan_add(&fx->fan, &fx->sub[1], false, 0);
    assert_int_equal(fx->fan.n, 2);
    fx->o[0].fail = true;
    hist_add(&fx->h, 1, 200);
    rd_log_fan_pump(&fx->fan);
    assert_true(fx->sub[0].failed);
    assert_false(fx->sub[1].failed);
    rd_log_fan_remove(&fx->fan, &fx->sub[0]);
    rd_log_fan_remove(&fx->fan, &fx->sub[0]); /* twice: no harm */
    assert_int_equal(fx->fan.n, 1);
    hist_add(&fx->h, 1, 200);
    rd_log_fan_pump(&fx->fan);
    read_out(&fx->o[1], &fx->seen);
    assert_logs(&fx->seen, 0, 1, 2, 1);
    rd_log_fan_remove(&fx->fan, &fx->sub[1]);
    assert_int_equal(fx->fan.n, 0);
    assert_null(fx->fan.head);
}

static void test_heartbeat_and_event_format(void **state)
{
    struct fixture *fx = *state;
    rd_log_sub_heartbeat(&fx->sub[0], INT64_C(1796279462123));
    assert_string_equal(fx->o[0].bytes.data, ": heartbeat 2026-12-03T06:31:02.123Z\n\n");
    fx->o[0].pending = 4096;
    rd_log_sub_heartbeat(&fx->sub[0], 0);
    assert_int_equal(fx->o[0].bytes.len, strlen(": heartbeat 2026-12-03T06:31:02.123Z\n\n"));
    hist_add(&fx->h, 3, 200);
    struct rd_buf b;
    rd_buf_init(&b, 0);
    assert_int_equal(rd_log_sse_event(&b, &fx->h.rows[0]), 0);
    assert_memory_equal(b.data, "id: 1\nevent: log\ndata: {", 24);
    assert_null(memchr(b.data + 23, '\n', b.len - 25)); /* the JSON is one line */
    assert_string_equal(b.data + b.len - 2, "\n\n");
    rd_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_from_now_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume_older_than_history, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_subscriber, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunks_and_positions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_heartbeat_and_event_format, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
