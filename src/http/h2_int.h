/* Private to src/http: the HTTP/2 front end's connection and stream, shared
 * by h2.c (the session, output, deadlines, stop) and h2_stream.c (requests,
 * the exchange ops, responses). */
#ifndef RD_HTTP_H2_INT_H
#define RD_HTTP_H2_INT_H

#include <nghttp2/nghttp2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/h2.h"
#include "http/parser.h"
#include "http/server.h"
#include "util/buf.h"

/* A stream's state. It changes only through h2_stream_set_state()
 * (h2_stream.c), which records the time of the change in mark_at:
 *
 *   state      what happens                                deadline (then)
 *   HEADERS    the request's header block arrives          header_timeout (GOAWAY, close)
 *   BODY       its body arrives                            idle_timeout without a byte (408)
 *   READY      request complete; dispatched at the end     none
 *              of the current event
 *   HANDLER    the handler owns the exchange, no head yet  none
 *   STREAMING  the handler owns it, head submitted         idle_timeout without nghttp2 taking
 *                                                          a queued byte (RST_STREAM CANCEL, GONE)
 *   FLUSH      response complete (the handler's or an      as STREAMING (RST_STREAM CANCEL, DEAD)
 *              error of ours); queued bytes go out until
 *              nghttp2 closes the stream
 *   GONE       nghttp2 closed the stream (client reset,    none
 *              connection gone) while the handler owns
 *              it; on_gone is due
 *   ORPHAN     on_gone fired; the handler will end it      none
 *   DEAD       the handler does not own it and nghttp2     none
 *              needs it no more (a reset stream is
 *              detached from nghttp2); freed at the end of
 *              the current event
 *
 * nghttp2 finds a stream only through its stream user data (callbacks and
 * the data provider alike), which is cleared when the stream is freed, so a
 * stream reset by us may be freed before nghttp2 has sent the RST_STREAM. */
enum h2_stream_state {
    SS_HEADERS,
    SS_BODY,
    SS_READY,
    SS_HANDLER,
    SS_STREAMING,
    SS_FLUSH,
    SS_GONE,
    SS_ORPHAN,
    SS_DEAD,
};

/* The connection's state, changed only through h2_set_state() (h2.c):
 *
 *   OPEN      serving streams
 *   STOPPING  graceful stop: GOAWAY sent, streams in flight finish, then close
 *   CLOSING   terminated (timeout, protocol error): the final GOAWAY goes out,
 *             input is discarded, close once written (LINGER_MS at most)
 *   GONE      the transport is gone or cut: handlers told; close when the
 *             last handler ended its exchange
 *   CLOSED    the transport's close was called; nothing more happens
 */
enum h2_state { H2_OPEN, H2_STOPPING, H2_CLOSING, H2_GONE, H2_CLOSED };

struct rd_h2;

struct h2_stream {
    struct rd_http_exch x;      /* first: the exchange the handler sees */
    struct rd_http_request req; /* method, path, headers, body; arena owns the strings */
    struct rd_h2 *h;
    struct h2_stream *prev, *next; /* the connection's list, in stream-id order */
    int32_t id;
    enum h2_stream_state state;
    struct rd_http_limits limits; /* as the listener gave them at the stream's start */
    uint64_t mark_at;             /* state entry, last body byte or last output progress (ms) */
    size_t head_bytes;            /* header list size so far (RFC 9113 6.5.2 counting) */
    int err_status;               /* limit hit while receiving: answered at the end of the headers */
    const char *err_msg;          /* static */
    const char *cookie;           /* cookie fields joined with "; " (RFC 9113 8.2.3), arena */
    size_t cookie_len;
    /* response */
    struct rd_buf out;  /* body bytes not yet taken by nghttp2 */
    size_t out_off;     /* taken from the front of out */
    int64_t resp_left;  /* bytes still announced by content-length; -1: unknown */
    bool deferred;      /* the data provider returned NGHTTP2_ERR_DEFERRED */
    bool above_low;     /* queued bytes reached RD_HTTP_OUT_LOW: on_drain when below */
};

struct rd_h2 {
    nghttp2_session *session;
    const struct rd_h2_transport *tp;
    void *tp_ud;
    const struct rd_http_listener_cfg *cfg;
    char client_ip[64];
    enum h2_state state;
    struct rd_http_limits limits; /* the latest the listener gave */
    struct h2_stream *streams, *tail;
    struct h2_stream *pool; /* freed streams kept for reuse (their buffers too) */
    size_t npool;
    size_t nstreams;
    uint32_t nrequests;   /* streams ever started */
    uint64_t idle_since;  /* no stream since (ms) */
    uint64_t state_at;    /* entry into the current state (ms) */
    uint64_t send_mark;   /* transport bytes accepted when send_at was taken */
    uint64_t send_at;     /* 0: nothing queued in the transport */
    struct rd_buf wbuf;   /* frames serialised by nghttp2, written in one go */
    int busy;             /* h2_after() is on the stack */
};

/* h2.c */
uint64_t h2_now(const struct rd_h2 *h);
/* Runs what the current event made due (dispatch, on_gone, on_drain),
 * writes, reaps dead streams, re-arms the deadline and closes when done.
 * Every entry point ends with it; nested calls return at once. */
void h2_after(struct rd_h2 *h);

/* h2_stream.c */
void h2_stream_set_state(struct h2_stream *s, enum h2_stream_state st);
bool h2_stream_owned(const struct h2_stream *s); /* the handler owns the exchange */
size_t h2_stream_pending(const struct h2_stream *s);
void h2_stream_dispatch(struct h2_stream *s);
/* Answers status in the listener's error format; the stream goes to FLUSH. */
void h2_stream_answer_error(struct h2_stream *s, int status, const char *message);
void h2_stream_free(struct h2_stream *s); /* unlinks it; keeps it in the pool */
void h2_stream_destroy(struct h2_stream *s);
/* The nghttp2 callbacks that build requests. */
void h2_stream_set_callbacks(nghttp2_session_callbacks *cbs);

#endif
