/* See shape.h. The held buffer, from its start:
 *
 *   [0, pass)     decided events that leave now (written at the end of a feed)
 *   [pass, fed)   with pending: the event waiting for its verdict to be
 *                 carried out; without: the start of an event not complete yet
 *   [fed, len)    not fed to the decoder yet (after a stop)
 *
 * Everything in held is still unwritten: written bytes are consumed at once.
 * The verdict of a pending event is carried out by pump(), from the read
 * that completed it, the timer, the client's drain or the source's end;
 * never a cut or an abort from inside the source's own callback (libcurl's
 * write callback cannot have its transfer removed under it): those wait
 * for the timer's next turn. */
#include "proxy/shape.h"

#include <stdlib.h>
#include <string.h>

#include "proxy/forward.h"
#include "proxy/pipeline.h"
#include "proxy/req.h"
#include "util/err.h"
#include "util/eventstream.h"
#include "util/log.h"
#include "util/mem.h"

struct rd_shape {
    uv_timer_t timer;
    struct rd_req *req; /* NULL once released: the timer is closing */
    uint32_t mask;      /* the pipeline's stream steps that see the events */
    struct rd_buf held;
    size_t fed, pass;
    size_t base;  /* during a feed: where in held the piece fed starts */
    bool pending; /* held[pass..fed) waits for verdict */
    struct rd_event_verdict verdict;
    struct rd_buf alt; /* MALFORM: what replaces the pending event */
    uint64_t events;   /* decided so far */
    uint64_t head_ms, prev_ms;
    uint64_t scratch[RD_STAGE_COUNT];
    bool source_done; /* the source ended without error */
    bool in_source;   /* inside the source's on_data */
    bool raw;         /* the framing was lost (malformed event stream): all goes as it comes */
};

static uint64_t now_ms(const struct rd_shape *sh)
{
    return uv_now(sh->timer.loop);
}

static void relay(struct rd_req *req, const char *p, size_t n)
{
    if (n == 0)
        return;
    req->bytes_out += n;
    /* A failed write means the client is gone: its read side reports it
     * and the request is released from there. */
    (void)rd_http_write(req->x, p, n);
}

static void on_closed(uv_handle_t *h)
{
    free(h->data);
}

void rd_shape_release(struct rd_req *req)
{
    struct rd_shape *sh = req->shape;
    if (sh == NULL)
        return;
    req->shape = NULL;
    sh->req = NULL;
    rd_buf_free(&sh->held);
    rd_buf_free(&sh->alt);
    uv_timer_stop(&sh->timer);
    uv_close((uv_handle_t *)&sh->timer, on_closed);
}

static void on_timer(uv_timer_t *t);

/* Waits for the timer (ms from now) with the source paused. */
static void wait_for(struct rd_shape *sh, uint64_t ms)
{
    rd_source_pause(&sh->req->src);
    /* Only fails on a closing handle, and a released shaper never waits. */
    if (uv_timer_start(&sh->timer, on_timer, ms, 0) != 0)
        abort();
}

/* held[0..n) went out (or was dropped). */
static void consumed(struct rd_shape *sh, size_t n)
{
    rd_buf_consume(&sh->held, n);
    sh->fed -= n;
    sh->pass = sh->pass > n ? sh->pass - n : 0;
}

/* Ends the response after the pending event's verdict removed the rest:
 * the provider's mid-stream error then a proper end, or a cut. The request
 * is released. */
static void end_early(struct rd_shape *sh)
{
    struct rd_req *req = sh->req;
    req->stream_ended = false; /* whatever the decoder saw, the client got no end */
    if (sh->verdict.act == RD_EVENT_CUT) {
        rd_req_debug(req, "stream cut after %llu events", (unsigned long long)(sh->events - 1));
        rd_req_fail(req, 502, "stream cut"); /* the head is out: this closes the connection */
        return;
    }
    struct rd_error_spec e = {
        .status = sh->verdict.error_status ? sh->verdict.error_status : 500,
        .message = sh->verdict.error_message ? sh->verdict.error_message
                                             : "The server had an error while processing your request.",
        .request_id = rd_req_id(req),
        .retry_after_s = -1,
    };
    struct rd_buf out;
    rd_buf_init(&out, 0);
    int rc = rd_provider_stream_error(req->dialect, &e, &out);
    rd_source_abort(&req->src);
    if (rc < 0) {
        rd_buf_free(&out);
        rd_req_warn(req, "cannot build the mid-stream error (%s): stream cut", rd_strerror(rc));
        rd_req_fail(req, 502, "stream cut");
        return;
    }
    relay(req, out.data, out.len);
    rd_buf_free(&out);
    rd_forward_done(req);
}

/* Carries out what can be: feeds, writes, waits. Returns with the request
 * released (a cut, an error, the end), or waiting (timer, drain, source). */
static void pump(struct rd_shape *sh)
{
    struct rd_req *req = sh->req;
    for (;;) {
        if (!sh->pending && sh->fed < sh->held.len) {
            if (sh->raw) {
                sh->fed = sh->pass = sh->held.len;
            } else {
                sh->base = sh->fed;
                sh->fed += rd_forward_decode(req, sh->held.data + sh->fed, sh->held.len - sh->fed);
                if (req->decode == RD_DECODE_NONE) { /* the decoder gave up: relay as is */
                    sh->raw = true;
                    sh->fed = sh->pass = sh->held.len;
                }
            }
        }
        if (sh->pass > 0) {
            relay(req, sh->held.data, sh->pass);
            consumed(sh, sh->pass);
        }
        if (!sh->pending)
            break;
        /* The pending event is held[0..fed). */
        uint64_t now = now_ms(sh);
        if (sh->verdict.at_ms > now) {
            wait_for(sh, sh->verdict.at_ms - now);
            return;
        }
        enum rd_event_act act = sh->verdict.act;
        if ((act == RD_EVENT_CUT || act == RD_EVENT_ERROR) && sh->in_source) {
            wait_for(sh, 0); /* not from inside the source's callback */
            return;
        }
        if (act == RD_EVENT_CUT || act == RD_EVENT_ERROR) {
            end_early(sh);
            return;
        }
        if (rd_http_pending(req->x) > RD_HTTP_OUT_HIGH) {
            rd_source_pause(&req->src); /* the drain callback comes back here */
            return;
        }
        if (act == RD_EVENT_MALFORM) {
            relay(req, sh->alt.data, sh->alt.len);
            rd_buf_reset(&sh->alt);
        } else {
            relay(req, sh->held.data, sh->fed);
            if (act == RD_EVENT_DUPLICATE)
                relay(req, sh->held.data, sh->fed);
        }
        consumed(sh, sh->fed);
        sh->pending = false;
        sh->prev_ms = now;
    }
    /* Nothing pending, everything fed: held is the start of an event. */
    if (sh->source_done) {
        relay(req, sh->held.data, sh->held.len); /* a stream that ended mid-event ends so */
        rd_buf_reset(&sh->held);
        rd_forward_done(req);
        return;
    }
    if (sh->held.len > RD_SHAPE_HELD_MAX) {
        relay(req, sh->held.data, sh->held.len); /* too big to hold: its boundary is lost */
        rd_buf_reset(&sh->held);
        sh->fed = sh->pass = 0;
    }
    /* Last: the source may deliver (rd_shape_data) before this returns. */
    rd_source_resume(&req->src);
}

static void on_timer(uv_timer_t *t)
{
    struct rd_shape *sh = t->data;
    if (sh->req)
        pump(sh);
}

bool rd_shape_begin(struct rd_req *req, struct rd_hdrs *hdrs)
{
    uint32_t mask = rd_pipeline_stream(req, hdrs);
    if (mask == 0)
        return false;
    struct rd_shape *sh = rd_calloc(1, sizeof *sh);
    /* Cannot fail on a running loop. */
    if (uv_timer_init(req->env->loop, &sh->timer) != 0)
        abort();
    sh->timer.data = sh;
    sh->req = req;
    sh->mask = mask;
    rd_buf_init(&sh->held, 0);
    rd_buf_init(&sh->alt, 0);
    sh->head_ms = sh->prev_ms = now_ms(sh);
    req->shape = sh;
    return true;
}

int rd_shape_data(struct rd_req *req, const char *p, size_t n)
{
    struct rd_shape *sh = req->shape;
    if (sh->pending || rd_http_pending(req->x) > RD_HTTP_OUT_HIGH)
        return RD_SOURCE_PAUSE; /* offered again when pump resumes the source */
    if (rd_buf_append(&sh->held, p, n) < 0) /* held has no cap of its own: pump bounds it */
        return RD_SOURCE_PAUSE;
    /* pump never releases req from here: cuts and errors wait for the
     * timer, and the end comes from the source's on_done. */
    sh->in_source = true;
    pump(sh);
    sh->in_source = false;
    return 0;
}

int rd_shape_event(struct rd_req *req, const struct rd_stream_event *ev, bool last, size_t end)
{
    struct rd_shape *sh = req->shape;
    size_t at = sh->base + end;
    struct rd_stream_view v = {
        .ev = ev,
        .index = sh->events,
        .last = last,
        .now_ms = now_ms(sh),
        .head_ms = sh->head_ms,
        .prev_ms = sh->prev_ms,
        .scratch = sh->scratch,
    };
    struct rd_event_verdict vd = {.act = RD_EVENT_PASS};
    rd_pipeline_event(req, sh->mask, &v, &vd);
    sh->events++;
    if (vd.act == RD_EVENT_PASS && vd.at_ms <= v.now_ms) {
        sh->pass = at;
        sh->prev_ms = v.now_ms;
        return 0;
    }
    sh->pending = true;
    sh->verdict = vd;
    if (vd.act == RD_EVENT_MALFORM) {
        rd_buf_reset(&sh->alt);
        const char *raw = sh->held.data + sh->pass;
        int rc = req->decode == RD_DECODE_EVENTSTREAM ? rd_shape_malform_frame(raw, at - sh->pass, &sh->alt)
                                                      : rd_shape_malform_sse(ev, &sh->alt);
        if (rc < 0) { /* cannot happen for a frame the decoder accepted; relay it as is */
            rd_buf_reset(&sh->alt);
            sh->verdict.act = RD_EVENT_PASS;
        }
    }
    return 1;
}

void rd_shape_source_done(struct rd_req *req)
{
    struct rd_shape *sh = req->shape;
    sh->source_done = true;
    if (uv_is_active((uv_handle_t *)&sh->timer))
        return; /* an event waits for its time: the timer carries on */
    pump(sh);
}

void rd_shape_drain(struct rd_req *req)
{
    struct rd_shape *sh = req->shape;
    if (uv_is_active((uv_handle_t *)&sh->timer))
        return; /* an event waits for its time: the timer carries on */
    pump(sh);
}

/* ---- malformed copies ---- */

int rd_shape_malform_sse(const struct rd_stream_event *ev, struct rd_buf *out)
{
    int rc = 0;
    if (ev->name_len) {
        rc |= rd_buf_appends(out, "event: ");
        rc |= rd_buf_append(out, ev->name, ev->name_len);
        rc |= rd_buf_appends(out, "\n");
    }
    rc |= rd_buf_appends(out, "data: ");
    size_t keep = ev->data_len / 2;
    for (size_t i = 0; i < keep; i++) {
        /* Multi-line data: each line its own data field. */
        if (ev->data[i] == '\n')
            rc |= rd_buf_appends(out, "\ndata: ");
        else
            rc |= rd_buf_append(out, &ev->data[i], 1);
    }
    rc |= rd_buf_appends(out, "\n\n");
    return rc ? RD_ETOOBIG : 0;
}

#define MALFORM_MAX_HEADERS 32

int rd_shape_malform_frame(const void *raw, size_t n, struct rd_buf *out)
{
    struct rd_es_msg m;
    int rc = rd_es_decode(raw, n, 0, &m);
    if (rc < 0 || (size_t)rc != n)
        return RD_EPROTO;
    /* Header names are not NUL-terminated in the frame; the encoder wants
     * them so. */
    char names[MALFORM_MAX_HEADERS][256];
    struct rd_es_header_in in[MALFORM_MAX_HEADERS];
    struct rd_es_header h;
    size_t off = 0, nh = 0;
    while ((rc = rd_es_header_next(&m, &off, &h)) == 1) {
        if (nh == MALFORM_MAX_HEADERS || h.name_len == 0 || h.name_len > 255)
            return RD_EPROTO;
        memcpy(names[nh], h.name, h.name_len);
        names[nh][h.name_len] = '\0';
        in[nh] = (struct rd_es_header_in){.name = names[nh], .type = h.type, .i = h.i, .p = h.p, .n = h.n};
        nh++;
    }
    if (rc < 0)
        return rc;
    return rd_es_encode(out, in, nh, m.payload, m.payload_len / 2);
}
