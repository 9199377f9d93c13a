/* The decisions of the stream_faults and stream_timing stages
 * (proxy/stages/stream.h) with a fixed clock and seed, the malformed
 * copies of the event seam (proxy/shape.h), the providers' mid-stream
 * errors, the decoders' event end offsets the seam relies on, and the
 * configuration blocks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "http/sse.h"
#include "providers/bedrock.h"
#include "providers/google.h"
#include "providers/provider.h"
#include "proxy/config.h"
#include "proxy/shape.h"
#include "proxy/stages/stream.h"
#include "util/err.h"
#include "util/eventstream.h"
#include "util/json.h"

static struct json_object *doc(const char *text)
{
    struct json_object *o = NULL;
    assert_int_equal(rd_json_parse(text, strlen(text), 65536, &o, NULL), 0);
    return o;
}

static struct json_object *valid(const char *text)
{
    struct json_object *o = doc(text);
    struct rd_config_err err;
    if (rd_config_validate(o, &err) != 0)
        fail_msg("%s: %s (%s)", text, err.message, err.field);
    return o;
}

static void refused(const char *text, const char *field)
{
    struct json_object *o = doc(text);
    struct rd_config_err err;
    assert_int_equal(rd_config_validate(o, &err), RD_EINVAL);
    assert_string_equal(err.field, field);
    json_object_put(o);
}

/* ---- configuration ---- */

static void test_schema(void **state)
{
    (void)state;
    json_object_put(valid("{\"stream_faults\":{\"cut_rate\":0.2,\"cut_after_events\":3,\"stall_rate\":0.2,"
                          "\"stall_after_events\":0,\"stall_ms\":500,\"error_rate\":0.2,\"error_after_events\":2,"
                          "\"error_status\":529,\"malformed_rate\":0.2,\"malformed_after_events\":1,"
                          "\"duplicate_rate\":0.2,\"duplicate_after_events\":4}}"));
    json_object_put(valid("{\"stream_timing\":{\"ttft_ms\":300,\"tokens_per_second\":42.5,\"jitter_ms\":10}}"));
    refused("{\"stream_faults\":{\"cut_rate\":0.6,\"error_rate\":0.5}}", "stream_faults");
    refused("{\"stream_faults\":{\"cut_rate\":1.5}}", "stream_faults.cut_rate");
    refused("{\"stream_faults\":{\"stall_rate\":-0.1}}", "stream_faults.stall_rate");
    refused("{\"stream_faults\":{\"cut_after_events\":-1}}", "stream_faults.cut_after_events");
    refused("{\"stream_faults\":{\"stall_ms\":0}}", "stream_faults.stall_ms");
    refused("{\"stream_faults\":{\"error_status\":200}}", "stream_faults.error_status");
    refused("{\"stream_faults\":{\"cut\":1}}", "stream_faults.cut");
    refused("{\"stream_timing\":{\"tokens_per_second\":-1}}", "stream_timing.tokens_per_second");
    refused("{\"stream_timing\":{\"ttft\":1}}", "stream_timing.ttft");
}

static void test_read(void **state)
{
    (void)state;
    struct rd_stream_faults_cfg c;
    struct json_object *d = valid("{}");
    assert_false(rd_stream_faults_read(d, &c)); /* nothing to do: compiles to nothing */
    json_object_put(d);
    d = valid("{\"stream_faults\":{\"cut_rate\":0}}");
    assert_false(rd_stream_faults_read(d, &c));
    json_object_put(d);
    d = valid("{\"stream_faults\":{\"cut_rate\":1,\"enabled\":false}}");
    assert_false(rd_stream_faults_read(d, &c));
    json_object_put(d);
    /* a scenario list or request overrides may ask for stream faults */
    d = valid("{\"failure\":{\"request_overrides\":true}}");
    assert_true(rd_stream_faults_read(d, &c));
    assert_false(c.any_rate);
    json_object_put(d);
    d = valid("{\"stream_faults\":{\"stall_rate\":0.5,\"stall_after_events\":7,\"stall_ms\":250}}");
    assert_true(rd_stream_faults_read(d, &c));
    assert_true(c.any_rate);
    assert_true(c.rates[RD_SFAULT_STALL - 1] == 0.5);
    assert_int_equal(c.after[RD_SFAULT_STALL - 1], 7);
    assert_int_equal(c.after[RD_SFAULT_CUT - 1], RD_SFAULT_AFTER_DEFAULT);
    assert_int_equal(c.stall_ms, 250);
    assert_int_equal(c.error_status, RD_SFAULT_ERROR_STATUS_DEFAULT);
    json_object_put(d);

    struct rd_stream_timing_cfg t;
    d = valid("{\"stream_timing\":{}}");
    assert_false(rd_stream_timing_read(d, &t));
    json_object_put(d);
    d = valid("{\"stream_timing\":{\"ttft_ms\":100,\"enabled\":false}}");
    assert_false(rd_stream_timing_read(d, &t));
    json_object_put(d);
    d = valid("{\"stream_timing\":{\"tokens_per_second\":20}}");
    assert_true(rd_stream_timing_read(d, &t));
    assert_true(t.tokens_per_second == 20);
    json_object_put(d);
}

/* ---- the stream_faults decision ---- */

static struct rd_stream_faults_cfg faults(double cut, double stall, double err, double mal, double dup)
{
    struct rd_stream_faults_cfg c = {
        .rates = {cut, stall, err, mal, dup},
        .after = {1, 2, 3, 4, 5},
        .stall_ms = 300,
        .error_status = 500,
        .any_rate = true,
        .label = rd_rng_label("stream_faults"),
    };
    return c;
}

static void test_decide_rates(void **state)
{
    (void)state;
    struct rd_stream_faults_cfg c = faults(0.1, 0.2, 0.3, 0.1, 0.1);
    unsigned count[RD_SFAULT_KINDS + 1] = {0};
    const unsigned N = 20000;
    for (uint64_t seq = 1; seq <= N; seq++) {
        struct rd_rng rng;
        rd_rng_init(&rng, 42, seq, c.label);
        struct rd_fault_plan plan = {0};
        enum rd_stream_fault f = rd_stream_faults_decide(&c, &plan, &rng);
        count[f]++;
        if (f != RD_SFAULT_NONE) {
            assert_int_equal(plan.after_events, c.after[f - 1]);
            assert_int_equal(plan.stall_ms, f == RD_SFAULT_STALL ? 300 : 0);
        }
    }
    /* within 5 standard deviations of each rate */
    const double want[] = {0.2, 0.1, 0.2, 0.3, 0.1, 0.1};
    for (size_t i = 0; i <= RD_SFAULT_KINDS; i++) {
        double sd = __builtin_sqrt(N * want[i] * (1 - want[i]));
        double d = (double)count[i] - N * want[i];
        if (d < -5 * sd || d > 5 * sd)
            fail_msg("outcome %zu: %u of %u, want about %.0f", i, count[i], N, N * want[i]);
    }
    /* the same seed and request number give the same outcome */
    for (uint64_t seq = 1; seq <= 100; seq++) {
        struct rd_rng a, b;
        rd_rng_init(&a, 7, seq, c.label);
        rd_rng_init(&b, 7, seq, c.label);
        struct rd_fault_plan pa = {0}, pb = {0};
        assert_int_equal(rd_stream_faults_decide(&c, &pa, &a), rd_stream_faults_decide(&c, &pb, &b));
    }
    /* rate 1 always, rate 0 never */
    c = faults(0, 0, 0, 0, 1);
    for (uint64_t seq = 1; seq <= 100; seq++) {
        struct rd_rng rng;
        rd_rng_init(&rng, 1, seq, c.label);
        struct rd_fault_plan plan = {0};
        assert_int_equal(rd_stream_faults_decide(&c, &plan, &rng), RD_SFAULT_DUPLICATE);
    }
}

static void test_decide_plan_wins(void **state)
{
    (void)state;
    struct rd_stream_faults_cfg c = faults(1, 0, 0, 0, 0);
    struct rd_rng rng;
    rd_rng_init(&rng, 1, 1, c.label);
    /* a scenario's stall without stall_ms gets the configured one */
    struct rd_fault_plan plan = {.set = true, .stream_fault = RD_SFAULT_STALL, .after_events = 9};
    assert_int_equal(rd_stream_faults_decide(&c, &plan, &rng), RD_SFAULT_STALL);
    assert_int_equal(plan.after_events, 9);
    assert_int_equal(plan.stall_ms, 300);
    /* a plan that asks for no stream fault: no draw of the stage's own */
    struct rd_fault_plan none = {.set = true, .status = 0, .delay_ms = 10};
    assert_int_equal(rd_stream_faults_decide(&c, &none, &rng), RD_SFAULT_NONE);
    assert_int_equal(rd_stream_fault_failure(RD_SFAULT_CUT), RD_FAIL_STREAM_CUT);
    assert_int_equal(rd_stream_fault_failure(RD_SFAULT_DUPLICATE), RD_FAIL_STREAM_DUPLICATE);
    assert_string_equal(rd_failure_name(RD_FAIL_STREAM_DUPLICATE), "stream_duplicate");
}

static struct rd_event_verdict verdict(enum rd_stream_fault f, uint32_t after, uint64_t index, bool last)
{
    struct rd_fault_plan plan = {.stream_fault = f, .after_events = after, .stall_ms = 300};
    struct rd_stream_view v = {.index = index, .last = last, .now_ms = 5000, .head_ms = 1000, .prev_ms = 4900};
    struct rd_event_verdict out = {.act = RD_EVENT_PASS};
    rd_stream_faults_verdict(&plan, 503, &v, &out);
    return out;
}

static void test_verdict(void **state)
{
    (void)state;
    /* cut after 3: events 0..2 pass, event 3 is cut */
    for (uint64_t i = 0; i < 3; i++)
        assert_int_equal(verdict(RD_SFAULT_CUT, 3, i, false).act, RD_EVENT_PASS);
    assert_int_equal(verdict(RD_SFAULT_CUT, 3, 3, false).act, RD_EVENT_CUT);
    /* a stream shorter than N: its end event is cut all the same */
    assert_int_equal(verdict(RD_SFAULT_CUT, 30, 5, true).act, RD_EVENT_CUT);
    /* after N, the end passes (the fault happened before) */
    assert_int_equal(verdict(RD_SFAULT_DUPLICATE, 2, 7, true).act, RD_EVENT_PASS);
    assert_int_equal(verdict(RD_SFAULT_CUT, 0, 0, false).act, RD_EVENT_CUT);
    struct rd_event_verdict e = verdict(RD_SFAULT_ERROR, 2, 2, false);
    assert_int_equal(e.act, RD_EVENT_ERROR);
    assert_int_equal(e.error_status, 503);
    assert_non_null(e.error_message);
    assert_int_equal(verdict(RD_SFAULT_MALFORMED, 1, 1, false).act, RD_EVENT_MALFORM);
    assert_int_equal(verdict(RD_SFAULT_DUPLICATE, 1, 1, false).act, RD_EVENT_DUPLICATE);
    /* a stall holds event N until stall_ms after the previous one left */
    struct rd_event_verdict s = verdict(RD_SFAULT_STALL, 4, 4, false);
    assert_int_equal(s.act, RD_EVENT_PASS);
    assert_int_equal(s.at_ms, 4900 + 300);
    assert_int_equal(verdict(RD_SFAULT_STALL, 4, 5, false).at_ms, 0);
    assert_int_equal(verdict(RD_SFAULT_NONE, 0, 0, true).act, RD_EVENT_PASS);
}

/* ---- the stream_timing schedule ---- */

struct sched {
    struct rd_stream_timing_cfg c;
    uint64_t scratch;
    uint64_t prev_ms;
};

/* Event index arriving at now: when it may leave (0: at once). */
static uint64_t at(struct sched *s, uint64_t index, uint64_t now, uint64_t seq)
{
    struct rd_stream_view v = {.index = index, .now_ms = now, .head_ms = 1000, .prev_ms = s->prev_ms,
                               .scratch = &s->scratch};
    struct rd_event_verdict out = {.act = RD_EVENT_PASS};
    struct rd_rng rng;
    rd_rng_init(&rng, 99, seq, s->c.label ^ (index + 1));
    rd_stream_timing_verdict(&s->c, &v, &rng, &out);
    assert_int_equal(out.act, RD_EVENT_PASS);
    s->prev_ms = out.at_ms > now ? out.at_ms : now;
    return out.at_ms;
}

static void test_timing(void **state)
{
    (void)state;
    struct sched s = {.c = {.ttft_ms = 500, .tokens_per_second = 20, .label = 1}, .prev_ms = 1000};
    /* events that arrive at once: the first 500 ms after the head, then one per 50 ms */
    assert_int_equal(at(&s, 0, 1001, 1), 1500);
    assert_int_equal(at(&s, 1, 1500, 1), 1550);
    assert_int_equal(at(&s, 2, 1551, 1), 1600);
    s.prev_ms = 1601; /* its timer fired a millisecond late: no drift */
    assert_int_equal(at(&s, 3, 1601, 1), 1650);
    s.prev_ms = 1800; /* held longer than a step by something else (a stall): from there */
    assert_int_equal(at(&s, 4, 1800, 1), 1850);
    /* a late event (the upstream slower than the rate) goes at once and the
     * schedule goes on from it, without a burst */
    assert_int_equal(at(&s, 5, 2000, 1), 0);
    assert_int_equal(at(&s, 6, 2001, 1), 2050);
    /* a rate that is no whole number of milliseconds keeps its average */
    struct sched r = {.c = {.tokens_per_second = 300, .label = 1}, .prev_ms = 1000};
    uint64_t last = 0;
    for (uint64_t i = 0; i < 301; i++)
        last = at(&r, i, r.prev_ms, 1);
    assert_true(last >= 1000 + 999 && last <= 1000 + 1001);
    /* jitter: within bounds, both ways, reproducible */
    struct sched j = {.c = {.tokens_per_second = 10, .jitter_ms = 20, .label = 5}, .prev_ms = 1000};
    bool early = false, late = false;
    uint64_t sched = 1000;
    for (uint64_t i = 0; i < 200; i++) {
        uint64_t now = j.prev_ms;
        uint64_t a = at(&j, i, now, 3);
        sched = i == 0 ? 1000 : sched + 100;
        uint64_t when = a ? a : now;
        assert_true(when + 20 >= sched && when <= sched + 21);
        early |= when < sched;
        late |= when > sched;
    }
    assert_true(early && late);
    struct sched j2 = {.c = j.c, .prev_ms = 1000};
    struct sched j3 = {.c = j.c, .prev_ms = 1000};
    for (uint64_t i = 0; i < 50; i++)
        assert_int_equal(at(&j2, i, j2.prev_ms, 8), at(&j3, i, j3.prev_ms, 8));
}

/* ---- malformed copies ---- */

static void test_malform_sse(void **state)
{
    (void)state;
    struct rd_buf out;
    rd_buf_init(&out, 0);
    const char *data = "{\"type\":\"content_block_delta\"}";
    struct rd_stream_event ev = {.name = "content_block_delta", .name_len = 19, .data = data, .data_len = strlen(data)};
    assert_int_equal(rd_shape_malform_sse(&ev, &out), 0);
    (void)rd_buf_append(&out, "", 1);
    assert_string_equal(out.data, "event: content_block_delta\ndata: {\"type\":\"conten\n\n");
    rd_buf_reset(&out);
    /* multi-line data keeps each line a data field */
    struct rd_stream_event ml = {.name = "", .data = "ab\ncd\nef", .data_len = 8};
    assert_int_equal(rd_shape_malform_sse(&ml, &out), 0);
    (void)rd_buf_append(&out, "", 1);
    assert_string_equal(out.data, "data: ab\ndata: c\n\n");
    rd_buf_free(&out);
}

static void test_malform_frame(void **state)
{
    (void)state;
    struct rd_buf frame, out;
    rd_buf_init(&frame, 0);
    rd_buf_init(&out, 0);
    const char *payload = "{\"contentBlockIndex\":0,\"delta\":{\"text\":\"Hello\"}}";
    assert_int_equal(rd_es_encode_event(&frame, false, "contentBlockDelta", "application/json", payload,
                                        strlen(payload)),
                     0);
    assert_int_equal(rd_shape_malform_frame(frame.data, frame.len, &out), 0);
    struct rd_es_msg m;
    assert_int_equal(rd_es_decode((const uint8_t *)out.data, out.len, 0, &m), (int)out.len); /* valid frame */
    assert_int_equal(m.payload_len, strlen(payload) / 2);
    assert_memory_equal(m.payload, payload, m.payload_len);
    const char *v;
    size_t n;
    assert_true(rd_es_header_string(&m, ":event-type", &v, &n));
    assert_int_equal(n, 17);
    assert_memory_equal(v, "contentBlockDelta", 17);
    assert_true(rd_es_header_string(&m, ":message-type", &v, &n));
    /* not one frame: refused */
    assert_int_equal(rd_shape_malform_frame(frame.data, frame.len - 1, &out), RD_EPROTO);
    rd_buf_free(&frame);
    rd_buf_free(&out);
}

/* ---- the providers' mid-stream errors ---- */

static char *stream_error(const struct rd_provider *p, int status, struct rd_buf *out)
{
    struct rd_error_spec e = {.status = status, .message = "Overloaded", .request_id = "req_1", .retry_after_s = -1};
    rd_buf_reset(out);
    assert_int_equal(rd_provider_stream_error(p, &e, out), 0);
    (void)rd_buf_append(out, "", 1);
    return out->data;
}

static void test_stream_errors(void **state)
{
    (void)state;
    struct rd_buf out;
    rd_buf_init(&out, 0);
    char *s = stream_error(&rd_provider_anthropic, 529, &out);
    assert_true(strncmp(s, "event: error\ndata: {", 20) == 0);
    assert_non_null(strstr(s, "\"overloaded_error\""));
    assert_true(strcmp(s + strlen(s) - 3, "}\n\n") == 0);
    s = stream_error(rd_provider_find("openai"), 500, &out);
    assert_true(strncmp(s, "data: {\"error\":{", 16) == 0);
    assert_null(strstr(s, "event:"));
    s = stream_error(&rd_provider_gemini, 429, &out);
    assert_true(strncmp(s, "data: {\"error\":{", 16) == 0);
    assert_non_null(strstr(s, "\"RESOURCE_EXHAUSTED\""));
    /* every provider's is one SSE event, except Bedrock's frame */
    size_t np;
    const struct rd_provider *const *all = rd_provider_all(&np);
    for (size_t i = 0; i < np; i++) {
        if (all[i]->framing != RD_FRAMING_SSE)
            continue;
        s = stream_error(all[i], 503, &out);
        struct rd_sse sse;
        rd_sse_init(&sse, 0);
        assert_int_equal(rd_sse_feed(&sse, s, strlen(s), NULL, NULL), 0);
        assert_int_equal(sse.events, 1);
        assert_true(rd_sse_at_boundary(&sse));
        rd_sse_free(&sse);
    }
    rd_buf_reset(&out);
    struct rd_error_spec e = {.status = 429, .message = "slow down", .retry_after_s = -1};
    assert_int_equal(rd_provider_stream_error(&rd_provider_bedrock, &e, &out), 0);
    struct rd_es_msg m;
    assert_int_equal(rd_es_decode((const uint8_t *)out.data, out.len, 0, &m), (int)out.len);
    const char *v;
    size_t n;
    assert_true(rd_es_header_string(&m, ":message-type", &v, &n));
    assert_memory_equal(v, "exception", 9);
    assert_true(rd_es_header_string(&m, ":exception-type", &v, &n));
    assert_int_equal(n, strlen("throttlingException"));
    assert_memory_equal(v, "throttlingException", n);
    rd_buf_free(&out);
}

/* ---- the decoders' event end offsets ---- */

struct ends {
    size_t at[8];
    size_t n;
    size_t stop_after; /* stop the feed after this many events (0: never) */
    const struct rd_sse *sse;
    const struct rd_es_decoder *es;
};

static int on_sse(void *ud, const struct rd_sse_event *ev)
{
    (void)ev;
    struct ends *e = ud;
    e->at[e->n++] = e->sse->end;
    return e->stop_after && e->n == e->stop_after ? 1 : 0;
}

static void test_sse_end_offsets(void **state)
{
    (void)state;
    const char *s = ": hi\ndata: a\n\nevent: x\r\ndata: b\r\n\r\ndata: c\n\ndata: d";
    struct rd_sse sse;
    rd_sse_init(&sse, 0);
    struct ends e = {.sse = &sse};
    assert_int_equal(rd_sse_feed(&sse, s, strlen(s), on_sse, &e), 0);
    assert_int_equal(e.n, 3);
    assert_int_equal(e.at[0], 14);
    assert_int_equal(e.at[1], 35);
    assert_int_equal(e.at[2], 44);
    /* a stop leaves the feed at the event's end; the rest is fed again */
    rd_sse_reset(&sse);
    struct ends f = {.sse = &sse, .stop_after = 2};
    assert_int_equal(rd_sse_feed(&sse, s, strlen(s), on_sse, &f), 1);
    assert_int_equal(f.at[1], 35);
    f.stop_after = 0;
    assert_int_equal(rd_sse_feed(&sse, s + 35, strlen(s) - 35, on_sse, &f), 0);
    assert_int_equal(f.n, 3);
    assert_int_equal(f.at[2], 9);
    /* an event split across pieces ends in the piece that completes it */
    rd_sse_reset(&sse);
    struct ends g = {.sse = &sse};
    assert_int_equal(rd_sse_feed(&sse, "data: ab", 8, on_sse, &g), 0);
    assert_int_equal(rd_sse_feed(&sse, "c\n", 2, on_sse, &g), 0);
    assert_int_equal(g.n, 0);
    assert_int_equal(rd_sse_feed(&sse, "\nda", 3, on_sse, &g), 0);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.at[0], 1);
    rd_sse_free(&sse);
}

static int on_es(void *ud, const struct rd_es_msg *m)
{
    (void)m;
    struct ends *e = ud;
    e->at[e->n++] = e->es->end;
    return e->stop_after && e->n == e->stop_after ? 1 : 0;
}

static void test_es_end_offsets(void **state)
{
    (void)state;
    struct rd_buf b;
    rd_buf_init(&b, 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(rd_es_encode_event(&b, false, "chunk", "application/json", "{\"a\":1}", 7), 0);
    size_t one = b.len / 3;
    struct rd_es_decoder d;
    rd_es_decoder_init(&d, 0);
    struct ends e = {.es = &d, .stop_after = 2};
    assert_int_equal(rd_es_decoder_feed(&d, b.data, b.len, on_es, &e), 1);
    assert_int_equal(e.at[0], one);
    assert_int_equal(e.at[1], 2 * one);
    e.stop_after = 0;
    /* the rest, split mid-frame: the end is in the piece that completes it */
    assert_int_equal(rd_es_decoder_feed(&d, b.data + 2 * one, 5, on_es, &e), 0);
    assert_int_equal(e.n, 2);
    assert_int_equal(rd_es_decoder_feed(&d, b.data + 2 * one + 5, one - 5, on_es, &e), 0);
    assert_int_equal(e.n, 3);
    assert_int_equal(e.at[2], one - 5);
    rd_es_decoder_free(&d);
    rd_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schema),           cmocka_unit_test(test_read),
        cmocka_unit_test(test_decide_rates),     cmocka_unit_test(test_decide_plan_wins),
        cmocka_unit_test(test_verdict),          cmocka_unit_test(test_timing),
        cmocka_unit_test(test_malform_sse),      cmocka_unit_test(test_malform_frame),
        cmocka_unit_test(test_stream_errors),    cmocka_unit_test(test_sse_end_offsets),
        cmocka_unit_test(test_es_end_offsets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
