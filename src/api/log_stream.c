/* GET /api/v1/logs/stream: the request log as Server-Sent Events
 * (docs/observability.md, "Live stream"). The HTTP side of the fan-out in
 * obs/logfan.h: one hub per API, registered once for the log writer's
 * notification (one callback for every subscriber), a list of open
 * streams each with its filter, position, bounded output and heartbeat
 * timer. Control loop only.
 *
 * A stream's output is the exchange's write queue: an event is queued
 * while the client's unsent bytes stay under the stream's bound, so a
 * client that does not read costs at most that bound, loses events (and is
 * told so once it reads again) and never holds the writer or the proxies.
 * A client that leaves is removed at once (on_gone). The stop signal ends
 * every stream with a complete chunked body, so the admin listener's
 * graceful stop does not wait its drain timeout for them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "api/api.h"
#include "obs/logfan.h"
#include "obs/logwriter.h"
#include "obs/obs.h"
#include "util/mem.h"
#include "util/time.h"

#define STREAM_MAX 64 /* concurrent subscribers */
#define HEARTBEAT_DEFAULT_MS 15000
#define HEARTBEAT_MIN_MS 100 /* ?heartbeat_ms= bounds (tests go short) */
#define HEARTBEAT_MAX_MS 300000
#define QUEUE_DEFAULT_BYTES (1024u * 1024u) /* also the most ?queue_bytes= may ask */
#define QUEUE_MIN_BYTES 1024u
#define RETRY_MS 2000 /* EventSource's reconnection delay */

struct rd_api_log_stream {
    struct rd_log_fan fan;
    uv_loop_t *loop;           /* borrowed */
    struct rd_log_writer *log; /* borrowed; the writer our notify is set on, NULL: none */
    bool stopping;             /* the stop signal came: no new streams */
};

/* One open stream. Freed in its timer's close callback (libuv's close
 * protocol), after it left the fan and ended its exchange. */
struct stream {
    struct rd_log_sub sub; /* first: the fan hands us sub pointers */
    struct rd_api_log_stream *hub;
    struct rd_http_exch *x; /* NULL once the exchange ended */
    uv_timer_t heartbeat;
};

static size_t out_pending(void *ud)
{
    struct stream *s = ud;
    return s->x ? rd_http_pending(s->x) : 0;
}

static int out_write(void *ud, const char *p, size_t n)
{
    struct stream *s = ud;
    return s->x ? rd_http_write(s->x, p, n) : -1;
}

static void on_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

/* Leaves the fan and ends the exchange: clean (the body is complete) or
 * not (the client is gone or a write failed). */
static void stream_end(struct stream *s, bool clean)
{
    if (s->x == NULL)
        return;
    rd_log_fan_remove(&s->hub->fan, &s->sub);
    struct rd_http_exch *x = s->x;
    s->x = NULL;
    rd_http_set_callbacks(x, NULL, NULL, NULL);
    if (clean && !rd_http_client_gone(x))
        rd_http_finish(x);
    else
        rd_http_abort(x);
    uv_timer_stop(&s->heartbeat);
    uv_close((uv_handle_t *)&s->heartbeat, on_timer_closed);
}

/* Ends the streams whose writes failed (the fan only marks them: it never
 * sees a stream freed under its own loop). */
static void reap(struct rd_api_log_stream *hub)
{
    struct rd_log_sub *sub = hub->fan.head;
    while (sub) {
        struct rd_log_sub *next = sub->next;
        if (sub->failed)
            stream_end((struct stream *)sub, false);
        sub = next;
    }
}

static void on_gone(void *ud)
{
    stream_end(ud, false);
}

static void on_drain(void *ud)
{
    struct stream *s = ud;
    rd_log_sub_poke(&s->sub);
    if (s->sub.failed)
        stream_end(s, false);
}

static void on_heartbeat(uv_timer_t *t)
{
    struct stream *s = t->data;
    rd_log_sub_poke(&s->sub);
    rd_log_sub_heartbeat(&s->sub, rd_time_wall_ms());
    if (s->sub.failed)
        stream_end(s, false);
}

static void on_notify(void *ud)
{
    struct rd_api_log_stream *hub = ud;
    if (hub->fan.n == 0)
        return;
    rd_log_fan_pump(&hub->fan);
    reap(hub);
}

static size_t src_since(void *ud, uint64_t after_seq, struct rd_log_rec *out, size_t max, uint64_t *first_kept)
{
    return rd_log_history_since(ud, after_seq, out, max, first_kept);
}

static uint64_t src_last_seq(void *ud)
{
    return rd_log_last_seq(ud);
}

void rd_api_log_stream_init(struct rd_api *api, uv_loop_t *loop)
{
    struct rd_api_log_stream *hub = rd_calloc(1, sizeof *hub);
    hub->loop = loop;
    hub->log = rd_obs.log;
    struct rd_log_source src = {.since = src_since, .last_seq = src_last_seq, .ud = hub->log};
    rd_log_fan_init(&hub->fan, &src);
    if (hub->log)
        rd_log_writer_set_notify(hub->log, loop, on_notify, hub);
    api->log_stream = hub;
}

void rd_api_log_stream_stop(struct rd_api *api)
{
    struct rd_api_log_stream *hub = api->log_stream;
    if (hub == NULL || hub->stopping)
        return;
    hub->stopping = true;
    if (hub->log)
        rd_log_writer_set_notify(hub->log, NULL, NULL, NULL);
    while (hub->fan.head)
        stream_end((struct stream *)hub->fan.head, true);
}

void rd_api_log_stream_free(struct rd_api *api)
{
    struct rd_api_log_stream *hub = api->log_stream;
    if (hub == NULL)
        return;
    rd_api_log_stream_stop(api); /* no stream is open by now; drops the notify if stop never ran */
    rd_log_fan_free(&hub->fan);
    free(hub);
    api->log_stream = NULL;
}

/* A decimal number in [lo, hi], digits only. */
static bool parse_num(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    if (s == NULL || s[0] == '\0' || strlen(s) > 20)
        return false;
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        unsigned d = (unsigned)(*p - '0');
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, d, &v))
            return false;
    }
    if (v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

/* The stream's own parameters, next to the query API's filters. */
static const char *const stream_params[] = {"last_event_id", "heartbeat_ms", "queue_bytes", NULL};
/* The query API's paging parameters mean nothing here: refused, not ignored. */
static const char *const paging_params[] = {"limit", "cursor", "count", NULL};

struct stream_opts {
    bool resume;
    uint64_t last_id;
    uint64_t heartbeat_ms;
    uint64_t queue_bytes;
};

/* Reads the options; false when it answered 400. */
static bool read_opts(struct rd_http_exch *x, struct stream_opts *o)
{
    char buf[64];
    *o = (struct stream_opts){.heartbeat_ms = HEARTBEAT_DEFAULT_MS, .queue_bytes = QUEUE_DEFAULT_BYTES};
    for (size_t i = 0; paging_params[i]; i++) {
        if (rd_api_query(x, paging_params[i], buf, sizeof buf)) {
            rd_api_send_error(x, 400, "invalid_parameter", paging_params[i], "%s does not apply to the live stream",
                              paging_params[i]);
            return false;
        }
    }
    const char *v = rd_api_query(x, "heartbeat_ms", buf, sizeof buf);
    if (v && !parse_num(v, HEARTBEAT_MIN_MS, HEARTBEAT_MAX_MS, &o->heartbeat_ms)) {
        rd_api_send_error(x, 400, "invalid_parameter", "heartbeat_ms", "heartbeat_ms must be %d..%d", HEARTBEAT_MIN_MS,
                          HEARTBEAT_MAX_MS);
        return false;
    }
    v = rd_api_query(x, "queue_bytes", buf, sizeof buf);
    if (v && !parse_num(v, QUEUE_MIN_BYTES, QUEUE_DEFAULT_BYTES, &o->queue_bytes)) {
        rd_api_send_error(x, 400, "invalid_parameter", "queue_bytes", "queue_bytes must be %u..%u", QUEUE_MIN_BYTES,
                          QUEUE_DEFAULT_BYTES);
        return false;
    }
    /* The header (what EventSource sends on reconnecting) wins over the
     * parameter of the URL it was first opened with. An empty one is no
     * id, as EventSource treats it. */
    const char *field = "Last-Event-ID";
    size_t nhdr = rd_hdrs_count(&x->req->headers, "last-event-id");
    if (nhdr > 1) {
        rd_api_send_error(x, 400, "invalid_parameter", field, "more than one Last-Event-ID header");
        return false;
    }
    v = rd_hdrs_get(&x->req->headers, "last-event-id");
    if (v == NULL || v[0] == '\0') {
        field = "last_event_id";
        v = rd_api_query(x, "last_event_id", buf, sizeof buf);
    }
    if (v && v[0]) {
        if (!parse_num(v, 0, UINT64_MAX, &o->last_id)) {
            rd_api_send_error(x, 400, "invalid_parameter", field, "%s must be an event id (a decimal number)", field);
            return false;
        }
        o->resume = true;
    }
    return true;
}

static void stream_logs(struct rd_api *api, struct rd_http_exch *x, const char *param)
{
    (void)param;
    struct rd_api_log_stream *hub = api->log_stream;
    if (hub && hub->stopping) {
        rd_api_send_error(x, 503, "shutting_down", NULL, "the server is stopping");
        return;
    }
    if (hub == NULL || hub->log == NULL) {
        rd_api_send_error(x, 503, "log_unavailable", NULL, "the request log is not running");
        return;
    }
    struct stream_opts o;
    if (!read_opts(x, &o))
        return;
    struct stream *s = rd_calloc(1, sizeof *s);
    const char *bad = NULL;
    char err[256] = "";
    if (rd_log_query_parse(x->req->query, stream_params, &s->sub.q, &bad, err, sizeof err) != 0) {
        rd_api_send_error(x, 400, "invalid_parameter", bad, "%s", err);
        free(s);
        return;
    }
    if (hub->fan.n >= STREAM_MAX) {
        rd_api_send_error(x, 503, "too_many_streams", NULL, "at most %d live streams at a time", STREAM_MAX);
        free(s);
        return;
    }
    struct rd_arena a;
    struct rd_hdrs h;
    rd_arena_init(&a);
    rd_hdrs_init(&h, &a);
    rd_hdrs_add_ref(&h, "Content-Type", "text/event-stream");
    rd_hdrs_add_ref(&h, "Cache-Control", "no-cache");
    rd_hdrs_add_ref(&h, "X-Accel-Buffering", "no"); /* nginx in front: pass events as they come */
    int rc = rd_http_begin(x, 200, &h, -1);
    rd_hdrs_free(&h);
    rd_arena_free(&a);
    if (rc != 0) {
        rd_http_abort(x);
        free(s);
        return;
    }
    s->hub = hub;
    s->x = x;
    struct rd_log_out out = {.pending = out_pending, .write = out_write, .ud = s};
    rd_log_sub_init(&s->sub, &out, (size_t)o.queue_bytes);
    uv_timer_init(hub->loop, &s->heartbeat);
    s->heartbeat.data = s;
    rd_http_set_callbacks(x, on_drain, on_gone, s);
    char retry[32];
    int n = snprintf(retry, sizeof retry, "retry: %d\n\n", RETRY_MS);
    if (rd_http_write(x, retry, (size_t)n) != 0)
        s->sub.failed = true;
    rd_log_fan_add(&hub->fan, &s->sub, o.resume, o.last_id);
    uv_timer_start(&s->heartbeat, on_heartbeat, o.heartbeat_ms, o.heartbeat_ms);
    if (s->sub.failed)
        stream_end(s, false);
}

const struct rd_api_route rd_api_log_stream_routes[] = {
    {"GET", "/api/v1/logs/stream", stream_logs, true},
};
const size_t rd_api_log_stream_nroutes = sizeof rd_api_log_stream_routes / sizeof rd_api_log_stream_routes[0];
