/* HTTP/2 connections: the nghttp2 server session, output, deadlines and
 * stopping (see h2.h for the contract, h2_stream.c for the streams).
 *
 * nghttp2 callbacks only record what happened (a stream becomes READY, GONE
 * or DEAD); h2_after(), which ends every entry point, then runs handlers,
 * writes and frees, so no handler runs inside nghttp2 and nothing is freed
 * from inside its own callback stack. Output is serialised with
 * nghttp2_session_mem_send into one connection buffer and written in one
 * go, and only while the transport holds less than RD_HTTP_OUT_LOW: a slow
 * socket leaves the bytes in the streams' queues, where they count as each
 * stream's backpressure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/h2_int.h"
#include "util/log.h"
#include "util/mem.h"

#define LINGER_MS 2000u               /* a terminated session gets this long to flush its GOAWAY */
#define STREAM_WINDOW (1u << 20)      /* SETTINGS_INITIAL_WINDOW_SIZE: request bodies per stream */
#define CONN_WINDOW (4u << 20)        /* the connection's receive window */

static const char *state_name(enum h2_state s)
{
    static const char *const names[] = {"open", "stopping", "closing", "gone", "closed"};
    return names[s];
}

/* The one place the connection's state changes. */
static void h2_set_state(struct rd_h2 *h, enum h2_state st)
{
    if (h->state != st)
        rd_trace("h2 conn %p: %s -> %s", (void *)h, state_name(h->state), state_name(st));
    h->state = st;
    h->state_at = h2_now(h);
}

uint64_t h2_now(const struct rd_h2 *h)
{
    return h->tp->now(h->tp_ud);
}

int rd_h2_preface_match(const char *p, size_t n)
{
    size_t k = n < RD_H2_PREFACE_LEN ? n : RD_H2_PREFACE_LEN;
    if (k > 0 && memcmp(p, RD_H2_PREFACE, k) != 0)
        return -1;
    return n >= RD_H2_PREFACE_LEN ? 1 : 0;
}

size_t rd_h2_streams(const struct rd_h2 *h)
{
    return h->nstreams;
}

struct rd_h2 *rd_h2_new(const struct rd_h2_transport *tp, void *tp_ud, const struct rd_http_listener_cfg *cfg,
                        const char *client_ip)
{
    struct rd_h2 *h = rd_calloc(1, sizeof *h);
    h->tp = tp;
    h->tp_ud = tp_ud;
    h->cfg = cfg;
    snprintf(h->client_ip, sizeof h->client_ip, "%s", client_ip ? client_ip : "");
    cfg->limits(cfg->ud, &h->limits);
    if (h->limits.max_head == 0)
        h->limits.max_head = RD_HTTP_MAX_HEAD_DEFAULT;
    rd_buf_init(&h->wbuf, 0);
    nghttp2_session_callbacks *cbs = NULL;
    nghttp2_option *opt = NULL;
    /* nghttp2 fails these only when out of memory, which aborts here as
     * every internal allocation does. */
    if (nghttp2_session_callbacks_new(&cbs) != 0 || nghttp2_option_new(&opt) != 0)
        abort();
    h2_stream_set_callbacks(cbs);
    if (nghttp2_session_server_new2(&h->session, cbs, h, opt) != 0)
        abort();
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, RD_H2_MAX_STREAMS},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)(h->limits.max_head > UINT32_MAX ? UINT32_MAX
                                                                                            : h->limits.max_head)},
    };
    (void)nghttp2_submit_settings(h->session, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]);
    (void)nghttp2_session_set_local_window_size(h->session, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW);
    h->state = H2_OPEN;
    h->state_at = h->idle_since = h2_now(h);
    return h;
}

void rd_h2_free(struct rd_h2 *h)
{
    if (h == NULL)
        return;
    while (h->streams) {
        struct h2_stream *s = h->streams;
        if (h2_stream_owned(s))
            rd_warn("h2: stream %d freed while its handler owns it", (int)s->id);
        h->streams = s->next;
        h2_stream_destroy(s);
    }
    while (h->pool) {
        struct h2_stream *s = h->pool;
        h->pool = s->next;
        h2_stream_destroy(s);
    }
    nghttp2_session_del(h->session);
    rd_buf_free(&h->wbuf);
    free(h);
}

/* The transport is gone or cut: streams the handler owns hear on_gone (in
 * h2_after), the others are dropped; nghttp2 is not used again. */
static void go_gone(struct rd_h2 *h)
{
    if (h->state == H2_GONE || h->state == H2_CLOSED)
        return;
    h2_set_state(h, H2_GONE);
    for (struct h2_stream *s = h->streams; s; s = s->next) {
        if (s->state == SS_HANDLER || s->state == SS_STREAMING) {
            s->x.gone = true;
            h2_stream_set_state(s, SS_GONE);
        } else if (!h2_stream_owned(s)) {
            h2_stream_set_state(s, SS_DEAD);
        }
    }
}

/* Ends the session with a final GOAWAY (last_id: the highest stream that
 * may have been processed); the connection closes once it is written. */
static void terminate(struct rd_h2 *h, int32_t last_id, uint32_t code)
{
    if (h->state != H2_OPEN && h->state != H2_STOPPING)
        return;
    (void)nghttp2_session_terminate_session2(h->session, last_id, code);
    h2_set_state(h, H2_CLOSING);
}

/* Serialises what nghttp2 has to send into wbuf and writes it. Returns true
 * if anything was written. */
static bool flush(struct rd_h2 *h)
{
    if (h->state == H2_GONE || h->state == H2_CLOSED)
        return false;
    size_t queued = h->tp->pending(h->tp_ud);
    rd_buf_reset(&h->wbuf);
    while (queued + h->wbuf.len < RD_HTTP_OUT_LOW) {
        const uint8_t *data = NULL;
        ssize_t n = nghttp2_session_mem_send(h->session, &data);
        if (n < 0) {
            rd_debug("h2: nghttp2 cannot send: %s", nghttp2_strerror((int)n));
            go_gone(h);
            return true;
        }
        if (n == 0)
            break;
        (void)rd_buf_append(&h->wbuf, data, (size_t)n);
    }
    if (h->wbuf.len == 0)
        return false;
    uv_buf_t b = uv_buf_init(h->wbuf.data, (unsigned int)h->wbuf.len);
    if (h->tp->send(h->tp_ud, &b, 1) < 0)
        go_gone(h);
    rd_buf_reset(&h->wbuf);
    return true;
}

/* Runs the streams' pending events once; true if any ran. */
static bool run_streams(struct rd_h2 *h)
{
    bool ran = false;
    for (struct h2_stream *s = h->streams; s; s = s->next) {
        switch (s->state) {
        case SS_READY:
            if (h->state == H2_OPEN || h->state == H2_STOPPING)
                h2_stream_dispatch(s);
            else
                h2_stream_set_state(s, SS_DEAD); /* the session ended before it could be answered */
            ran = true;
            break;
        case SS_GONE:
            h2_stream_set_state(s, SS_ORPHAN);
            if (s->x.on_gone)
                s->x.on_gone(s->x.cb_ud); /* the handler ends the exchange: DEAD */
            ran = true;
            break;
        case SS_HANDLER:
        case SS_STREAMING:
            /* Drain is derived from the queued bytes, as on HTTP/1.1. */
            if (s->above_low && h2_stream_pending(s) < RD_HTTP_OUT_LOW) {
                s->above_low = false;
                if (s->x.on_drain)
                    s->x.on_drain(s->x.cb_ud);
                ran = true;
            }
            break;
        default: break;
        }
    }
    return ran;
}

static void reap(struct rd_h2 *h)
{
    bool had = h->streams != NULL;
    for (struct h2_stream *s = h->streams, *next; s; s = next) {
        next = s->next;
        if (s->state == SS_DEAD)
            h2_stream_free(s);
    }
    if (had && h->streams == NULL)
        h->idle_since = h2_now(h);
}

static bool session_done(const struct rd_h2 *h)
{
    return !nghttp2_session_want_read(h->session) && !nghttp2_session_want_write(h->session) &&
           h->tp->pending(h->tp_ud) == 0;
}

static bool any_owned(const struct rd_h2 *h)
{
    for (const struct h2_stream *s = h->streams; s; s = s->next)
        if (h2_stream_owned(s))
            return true;
    return false;
}

#define MIN_AT(t)                                                                                                      \
    do {                                                                                                               \
        uint64_t t_ = (t);                                                                                             \
        if (at == 0 || t_ < at)                                                                                        \
            at = t_;                                                                                                   \
    } while (0)

/* The next deadline: the earliest of the send stall, the connection's idle
 * or linger time and each stream's state deadline (see h2_int.h). */
static void rearm(struct rd_h2 *h)
{
    uint64_t now = h2_now(h), at = 0;
    uint64_t idle = h->limits.idle_timeout_ms;
    if (h->tp->pending(h->tp_ud) == 0) {
        h->send_at = 0;
    } else {
        uint64_t acc = h->tp->accepted(h->tp_ud);
        if (h->send_at == 0 || acc != h->send_mark) {
            h->send_mark = acc;
            h->send_at = now;
        }
        if (idle)
            MIN_AT(h->send_at + idle);
    }
    if (h->state == H2_CLOSING)
        MIN_AT(h->state_at + LINGER_MS);
    if (h->streams == NULL && h->state == H2_OPEN) {
        uint64_t t = h->nrequests == 0 ? h->limits.header_timeout_ms : idle;
        if (t)
            MIN_AT(h->idle_since + t);
    }
    for (const struct h2_stream *s = h->streams; s; s = s->next) {
        uint64_t t = 0;
        if (s->state == SS_HEADERS)
            t = s->limits.header_timeout_ms;
        else if (s->state == SS_BODY || ((s->state == SS_STREAMING || s->state == SS_FLUSH) && h2_stream_pending(s)))
            t = s->limits.idle_timeout_ms;
        if (t)
            MIN_AT(s->mark_at + t);
    }
    h->tp->set_deadline(h->tp_ud, at);
}

void h2_after(struct rd_h2 *h)
{
    if (h->busy || h->state == H2_CLOSED)
        return;
    h->busy = 1;
    for (;;) {
        bool ran = run_streams(h);
        bool wrote = flush(h);
        if (ran || wrote)
            continue;
        reap(h);
        if (h->state != H2_GONE && session_done(h)) {
            go_gone(h); /* nothing more to read or write: tell the handlers, then close */
            continue;
        }
        break;
    }
    if (h->state == H2_GONE && !any_owned(h)) {
        h2_set_state(h, H2_CLOSED);
        h->busy = 0;
        h->tp->set_deadline(h->tp_ud, 0);
        h->tp->close(h->tp_ud);
        return;
    }
    rearm(h);
    h->busy = 0;
}

void rd_h2_feed(struct rd_h2 *h, const char *p, size_t n)
{
    if (h->state != H2_OPEN && h->state != H2_STOPPING)
        return; /* terminated: input is discarded */
    ssize_t rv = nghttp2_session_mem_recv(h->session, (const uint8_t *)p, n);
    if (rv < 0) {
        rd_debug("h2 from %s: %s", h->client_ip, nghttp2_strerror((int)rv));
        if (rv == NGHTTP2_ERR_FLOODED)
            go_gone(h); /* a flood gets no more of our output */
        else
            terminate(h, nghttp2_session_get_last_proc_stream_id(h->session), NGHTTP2_PROTOCOL_ERROR);
    }
    h2_after(h);
}

void rd_h2_written(struct rd_h2 *h)
{
    h2_after(h);
}

static void stream_expired(struct rd_h2 *h, struct h2_stream *s)
{
    switch (s->state) {
    case SS_HEADERS:
        /* A header block cut short holds the whole connection (nothing may
         * come between HEADERS and CONTINUATION), so the connection ends;
         * this stream, the last one begun, was not processed. */
        rd_debug("h2 from %s: request headers not received in time", h->client_ip);
        terminate(h, s->id > 2 ? s->id - 2 : 0, NGHTTP2_NO_ERROR);
        break;
    case SS_BODY: h2_stream_answer_error(s, 408, "request body not received in time"); break;
    case SS_STREAMING:
    case SS_FLUSH:
        rd_debug("h2 stream %d: client took no response byte in %llu ms: resetting it", (int)s->id,
                 (unsigned long long)s->limits.idle_timeout_ms);
        (void)nghttp2_submit_rst_stream(h->session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
        if (s->state == SS_STREAMING) {
            s->x.gone = true;
            (void)nghttp2_session_set_stream_user_data(h->session, s->id, NULL);
            h2_stream_set_state(s, SS_GONE);
        } else {
            h2_stream_set_state(s, SS_DEAD);
        }
        break;
    default: break;
    }
}

void rd_h2_timer(struct rd_h2 *h)
{
    if (h->state == H2_CLOSED)
        return;
    uint64_t now = h2_now(h), idle = h->limits.idle_timeout_ms;
    if (h->send_at && idle && now >= h->send_at + idle && h->tp->accepted(h->tp_ud) == h->send_mark &&
        h->tp->pending(h->tp_ud) > 0) {
        rd_debug("h2: client took no byte in %llu ms: closing the connection", (unsigned long long)idle);
        go_gone(h);
    } else if (h->state == H2_CLOSING && now >= h->state_at + LINGER_MS) {
        go_gone(h);
    } else if (h->streams == NULL && h->state == H2_OPEN) {
        uint64_t t = h->nrequests == 0 ? h->limits.header_timeout_ms : idle;
        if (t && now >= h->idle_since + t)
            terminate(h, nghttp2_session_get_last_proc_stream_id(h->session), NGHTTP2_NO_ERROR);
    } else if (h->state == H2_OPEN || h->state == H2_STOPPING) {
        for (struct h2_stream *s = h->streams; s; s = s->next) {
            uint64_t t = 0;
            if (s->state == SS_HEADERS)
                t = s->limits.header_timeout_ms;
            else if (s->state == SS_BODY ||
                     ((s->state == SS_STREAMING || s->state == SS_FLUSH) && h2_stream_pending(s)))
                t = s->limits.idle_timeout_ms;
            if (t && now >= s->mark_at + t)
                stream_expired(h, s);
            if (h->state == H2_CLOSING)
                break;
        }
    }
    h2_after(h);
}

void rd_h2_shutdown(struct rd_h2 *h)
{
    if (h->state != H2_OPEN)
        return;
    /* Streams up to the last one processed finish; later ones are refused
     * by nghttp2 and the client may retry them elsewhere (RFC 9113 6.8). */
    (void)nghttp2_submit_goaway(h->session, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(h->session),
                                NGHTTP2_NO_ERROR, NULL, 0);
    h2_set_state(h, H2_STOPPING);
    h2_after(h);
}

void rd_h2_gone(struct rd_h2 *h)
{
    go_gone(h);
    h2_after(h);
}
