/* Incremental HTTP/1.1 request parser over llhttp, with our limits and
 * smuggling checks. Pure: no sockets, no loop; fed bytes, it yields one
 * request at a time. Used by http/server.c and by fuzz/fuzz_request.c.
 *
 * Contract (picohttpparser style): rd_http_parser_feed() never reads past len,
 * returns how many bytes it consumed, and reports what happened in *ev.
 * After RD_HTTP_EV_HEAD the parser is paused: the caller inspects the request
 * head (e.g. to send "100 Continue") and calls feed again with the rest.
 * After RD_HTTP_EV_MESSAGE the parser is paused until rd_http_parser_next():
 * bytes of a pipelined next request stay with the caller, unconsumed. */
#ifndef RD_HTTP_PARSER_H
#define RD_HTTP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/headers.h"
#include "util/arena.h"
#include "util/buf.h"

#define RD_HTTP_MAX_HEAD_DEFAULT (64u * 1024u) /* request line + headers */

struct rd_http_request {
    const char *method;   /* "GET", "POST", ... (arena) */
    const char *target;   /* raw request-target, "/v1/models?x=1" (arena) */
    const char *path;     /* target before '?' (arena) */
    const char *query;    /* after '?', without it; "" when absent (arena) */
    int version_major;
    int version_minor;
    struct rd_hdrs headers;
    struct rd_buf body;     /* de-chunked body, capped at max_body */
    int64_t content_length; /* declared length, -1 if none */
    bool chunked;           /* Transfer-Encoding: chunked */
    bool keep_alive;        /* connection may be reused after the response */
    bool expect_continue;   /* "Expect: 100-continue" was sent */
    struct rd_arena arena;  /* owns the strings above; reset per message */
};

enum rd_http_event {
    RD_HTTP_EV_NONE,    /* everything consumed; feed more bytes */
    RD_HTTP_EV_HEAD,    /* request line and headers complete; paused */
    RD_HTTP_EV_MESSAGE, /* request complete (body included); paused */
};

struct rd_http_parser;

/* Creates a parser. max_head caps request line + headers (431 beyond),
 * max_body caps the decoded body (413 beyond). Never NULL. */
struct rd_http_parser *rd_http_parser_new(size_t max_head, size_t max_body);
void rd_http_parser_free(struct rd_http_parser *p);
/* Changes the body cap for the current message; valid after EV_HEAD
 * (a proxy's own limit is only known once the head is parsed). */
void rd_http_parser_set_max_body(struct rd_http_parser *p, size_t max_body);

/* Feeds bytes. Returns the number consumed (0..len) with *ev set, or a
 * negative RD_EPROTO / RD_ETOOBIG with rd_http_parser_status() giving the
 * HTTP status to answer (400, 413, 431, 501) and rd_http_parser_errmsg() a
 * static reason. After an error the connection must be closed. */
int rd_http_parser_feed(struct rd_http_parser *p, const char *data, size_t len, enum rd_http_event *ev);

/* The request being parsed; valid from EV_HEAD until rd_http_parser_next(). */
struct rd_http_request *rd_http_parser_request(struct rd_http_parser *p);

/* Discards the finished request and prepares for the next one on the same
 * connection (keep-alive, pipelining). */
void rd_http_parser_next(struct rd_http_parser *p);

/* True while some bytes of a request have been consumed but it is not complete
 * (used for the header-read timeout and on EOF). */
bool rd_http_parser_in_message(const struct rd_http_parser *p);
/* True once headers are complete for the current message. */
bool rd_http_parser_head_done(const struct rd_http_parser *p);

int rd_http_parser_status(const struct rd_http_parser *p);
const char *rd_http_parser_errmsg(const struct rd_http_parser *p);

#endif
