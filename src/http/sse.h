/* Incremental Server-Sent Events scanner (WHATWG HTML, "event stream
 * interpretation"), the one SSE parser of the code base: the relay feeds it
 * each chunk as it passes, in whatever pieces the network delivered, and it
 * reports each complete event once. Lines end with CRLF, LF or CR (a CRLF
 * split across two chunks counts once); "data" lines are joined with LF;
 * "event" names the event; comments (":") and unknown fields are ignored;
 * an empty line dispatches the event if it has data. A byte-order mark at
 * the start is skipped. An event larger than max_event is dropped whole and
 * counted, so a hostile stream cannot grow memory. Loop-thread agnostic: one
 * scanner per stream, no shared state. */
#ifndef RD_HTTP_SSE_H
#define RD_HTTP_SSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

struct rd_sse_event {
    const char *event; /* "" when the event had no "event:" field */
    size_t event_len;
    const char *data; /* data lines joined with LF (no trailing LF) */
    size_t data_len;
    const char *id; /* last "id:" value seen so far in the stream, "" if none */
    size_t id_len;
};

/* Called for each complete event (all pointers valid for the call only).
 * A non-zero return stops the feed, which returns that value. */
typedef int (*rd_sse_event_fn)(void *ud, const struct rd_sse_event *ev);

struct rd_sse {
    struct rd_buf line;  /* partial line carried over from the previous chunk */
    struct rd_buf data;  /* data of the event being built */
    struct rd_buf event; /* its event name */
    struct rd_buf id;    /* last event id */
    size_t max_event;
    uint64_t events;     /* dispatched */
    uint64_t dropped;    /* over max_event */
    bool after_cr;       /* the previous chunk ended with CR: a leading LF is its pair */
    bool started;        /* past a possible BOM */
    unsigned bom;        /* BOM bytes seen while not started */
    bool oversized;      /* the event being built passed max_event: drop it */
    bool skip_line;      /* inside a line too long to keep: discard to its end */
    /* The usual event, one data line complete in the chunk being fed, is
     * dispatched from the chunk without a copy: ref points into it until
     * the feed returns (then it is copied into data if still pending). */
    const char *ref;
    size_t ref_len;
    bool ref_on;
    /* While fn runs: the offset in the piece being fed just past the line
     * that dispatched the event (its blank line, terminator included), so
     * a caller knows where the event ends in the bytes it relays. A stop
     * (fn returning non-zero) leaves the feed having consumed exactly
     * that much. */
    size_t end;
};

/* max_event caps one event's data + name (0: 1 MiB). */
void rd_sse_init(struct rd_sse *s, size_t max_event);
/* Scans p[0..n). Returns 0, or the first non-zero value fn returned. */
int rd_sse_feed(struct rd_sse *s, const char *p, size_t n, rd_sse_event_fn fn, void *ud);
/* True if no partial line or event is pending (the stream ended on an
 * event boundary). */
bool rd_sse_at_boundary(const struct rd_sse *s);
/* Forgets everything (storage kept) for a new stream. */
void rd_sse_reset(struct rd_sse *s);
/* Releases the storage. NULL-safe. */
void rd_sse_free(struct rd_sse *s);

#endif
