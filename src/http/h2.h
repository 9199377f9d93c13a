/* HTTP/2 front end (cleartext, prior knowledge) over libnghttp2: a second
 * implementation of the exchange (struct rd_http_exch_ops), so that every
 * h2 stream reaches the same handler, limits and error callbacks as an
 * HTTP/1.1 request. See docs/http.md, "HTTP/2".
 *
 * The front end owns no socket: it is fed bytes and writes through a small
 * transport table, so http/server.c drives it on a libuv connection and the
 * unit test and fuzz target drive it in memory with a fake clock. Every
 * function must be called on the thread that owns the transport; none may
 * be called from inside a transport callback. */
#ifndef RD_HTTP_H2_H
#define RD_HTTP_H2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "http/server.h"

/* The 24-byte client connection preface (RFC 9113 3.4). */
#define RD_H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define RD_H2_PREFACE_LEN 24u
/* SETTINGS_MAX_CONCURRENT_STREAMS we announce. */
#define RD_H2_MAX_STREAMS 128u

/* What the front end needs from its connection. ud is the transport's. */
struct rd_h2_transport {
    /* Writes bufs (as much as possible now, the rest copied and queued).
     * Returns 0 or a negative code when the connection is broken. */
    int (*send)(void *ud, const uv_buf_t *bufs, unsigned int nbufs);
    /* Bytes handed to send and not yet accepted by the kernel. */
    size_t (*pending)(const void *ud);
    /* Bytes the kernel has accepted so far (monotonic). */
    uint64_t (*accepted)(const void *ud);
    /* The current time in ms (the loop's clock). */
    uint64_t (*now)(const void *ud);
    /* Arms the one deadline at absolute time at (0: none); when it passes
     * the owner calls rd_h2_timer(). */
    void (*set_deadline)(void *ud, uint64_t at);
    /* The session is over: close the connection. Called once; after it the
     * front end makes no more transport calls, and the owner frees it with
     * rd_h2_free() (from the close callback). */
    void (*close)(void *ud);
};

struct rd_h2;

/* Detects the preface on the first bytes of a connection: 1 if p starts with
 * it, 0 if p[0..n) is a proper prefix of it (wait for more), -1 otherwise.
 * Pure. */
int rd_h2_preface_match(const char *p, size_t n);

/* Creates the front end for one connection. tp, tp_ud and cfg are borrowed
 * and must outlive it; client_ip is copied. Never NULL. Sends the server
 * SETTINGS at the first rd_h2_feed(). */
struct rd_h2 *rd_h2_new(const struct rd_h2_transport *tp, void *tp_ud, const struct rd_http_listener_cfg *cfg,
                        const char *client_ip);
/* Frees the front end, its session and its streams. Only after the
 * transport's close callback, when no handler owns a stream. NULL-safe. */
void rd_h2_free(struct rd_h2 *h);

/* Feeds bytes received from the client, starting with the preface. Frames
 * are processed, complete requests go to the handler, replies are written.
 * Invalid input ends in GOAWAY (connection errors) or RST_STREAM (stream
 * errors), never a crash. */
void rd_h2_feed(struct rd_h2 *h, const char *p, size_t n);
/* The transport accepted queued output: more may be written. */
void rd_h2_written(struct rd_h2 *h);
/* The deadline set through the transport passed. */
void rd_h2_timer(struct rd_h2 *h);
/* Graceful stop: GOAWAY with the last stream id processed; streams in flight
 * finish, then the connection closes. New streams are refused. */
void rd_h2_shutdown(struct rd_h2 *h);
/* The connection is gone (EOF, error, forced stop): handlers of streams in
 * progress hear on_gone; the transport's close follows once they ended. */
void rd_h2_gone(struct rd_h2 *h);

/* Streams in progress (for tests and the listener's count). */
size_t rd_h2_streams(const struct rd_h2 *h);

#endif
