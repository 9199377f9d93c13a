/* Incremental HTTP/1.1 request parser over llhttp, with our limits and
 * smuggling checks. Pure: no sockets, no loop; fed bytes, it yields one
 * request at a time. Used by http/server.c and by fuzz/fuzz_request.c.
 * A parser belongs to one connection and one thread at a time.
 *
 * Contract (picohttpparser style): rd_http_parser_feed() never reads past len,
 * returns how many bytes it consumed, and reports what happened in *ev.
 * Results do not depend on how the bytes are split across calls.
 *
 * Event sequence, for every request:
 *   EV_NONE*  EV_HEAD  EV_NONE*  EV_MESSAGE
 * - EV_NONE: every byte given was consumed; feed more when they arrive.
 * - EV_HEAD (exactly once, always before EV_MESSAGE, even without a body):
 *   the call consumed up to and including the blank line ending the head.
 *   The parser is paused: inspect the head (route, auth, send "100 Continue",
 *   rd_http_parser_set_max_body()) and call feed again with the rest; that
 *   call may pass len 0. A request without a body (no Content-Length or
 *   "Content-Length: 0", not chunked) reports EV_MESSAGE on that next call,
 *   consuming 0 bytes.
 * - EV_MESSAGE (exactly once): consumed up to the last byte of the message;
 *   req->body holds the decoded body. Bytes of a pipelined next request stay
 *   with the caller: until rd_http_parser_next(), every feed returns 0 with
 *   EV_MESSAGE again. After next(), feed the remaining bytes.
 * - Error: a negative return (see rd_http_parser_feed); sticky until next().
 *
 * Rejected with 400: Content-Length with Transfer-Encoding, duplicate or
 * malformed Content-Length, obs-fold (a line starting with SP/HTAB), bare CR
 * or bare LF outside body data, whitespace or invalid bytes in a field name,
 * an empty field name, control bytes (but HTAB) in field values, control,
 * space or non-ASCII bytes in the request-target, more than one Host,
 * Transfer-Encoding in HTTP/1.0 or not ending in chunked, and the rest of
 * llhttp's strict-mode errors. 501: a method other than GET, HEAD, POST, PUT,
 * DELETE, OPTIONS, PATCH (CONNECT included), a transfer coding other than
 * chunked. 505: an HTTP version other than 1.0 and 1.1. 431: head (request
 * line, headers, blank line, and any empty lines before the request line)
 * over max_head, or trailer fields over max_head. 413: decoded body over
 * max_body. Chunk trailers are checked and discarded, never added to
 * req->headers. "Upgrade" is ignored: the request is parsed as an ordinary
 * one (RFC 9110 7.8). Known llhttp 8.1 limit: a chunk-size line with a second
 * extension after one with a value ("5;a=b;c=d") is rejected with 400. */
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
    const char *method;   /* "GET", "POST", ... (static string) */
    const char *target;   /* raw request-target, "/v1/models?x=1" (arena) */
    const char *path;     /* target before '?' (arena) */
    const char *query;    /* after '?', without it; "" when absent (arena) */
    int version_major;
    int version_minor;
    struct rd_hdrs headers;
    struct rd_buf body;     /* de-chunked body, capped at max_body; the caller
                             * may rd_buf_steal() it after EV_MESSAGE */
    int64_t content_length; /* declared length, -1 if none */
    bool chunked;           /* Transfer-Encoding: chunked */
    bool keep_alive;        /* connection may be reused after the response
                             * (llhttp_should_keep_alive: HTTP/1.1 without
                             * "Connection: close", or HTTP/1.0 with
                             * "Connection: keep-alive") */
    bool expect_continue;   /* "Expect: 100-continue" (any case) in HTTP/1.1 */
    struct rd_arena arena;  /* owns the strings above; reset per message */
};

enum rd_http_event {
    RD_HTTP_EV_NONE,    /* everything consumed; feed more bytes */
    RD_HTTP_EV_HEAD,    /* request line and headers complete; paused */
    RD_HTTP_EV_MESSAGE, /* request complete (body included); paused */
};

struct rd_http_parser;

/* Creates a parser. max_head caps request line + headers (431 beyond; 0
 * means RD_HTTP_MAX_HEAD_DEFAULT), max_body caps the decoded body of each
 * message (413 beyond; 0 allows only empty bodies). Never NULL; the caller
 * owns it and frees it with rd_http_parser_free(). */
struct rd_http_parser *rd_http_parser_new(size_t max_head, size_t max_body);
/* Frees the parser and the current request. NULL-safe. */
void rd_http_parser_free(struct rd_http_parser *p);
/* Changes the body cap for the current message; meant for right after
 * EV_HEAD (a proxy's own limit is only known once the head is parsed). If the
 * declared Content-Length is over it, the next feed call fails with 413 at
 * once, without waiting for body bytes (call feed with len 0 to learn it
 * before sending "100 Continue"). rd_http_parser_next() restores the cap given
 * to rd_http_parser_new(). */
void rd_http_parser_set_max_body(struct rd_http_parser *p, size_t max_body);

/* Feeds bytes; data may be NULL when len is 0. Returns the number consumed
 * (0..len) with *ev set (see the event sequence above), or a negative
 * RD_EPROTO (status 400, 501, 505) / RD_ETOOBIG (413, 431) with
 * rd_http_parser_status() giving the HTTP status to answer and
 * rd_http_parser_errmsg() a static reason. After an error every call returns
 * the same error until rd_http_parser_next(); the connection must be closed. */
int rd_http_parser_feed(struct rd_http_parser *p, const char *data, size_t len, enum rd_http_event *ev);

/* The request being parsed (borrowed; owned by p); complete from EV_HEAD
 * until rd_http_parser_next(), which invalidates its strings. */
struct rd_http_request *rd_http_parser_request(struct rd_http_parser *p);

/* Discards the request and prepares for the next one on the same connection
 * (keep-alive, pipelining): resets the arena, headers and body and restores
 * the body cap. Valid in any state; in the middle of a message or after an
 * error it starts over from a clean state (so a parser can also be reused for
 * another connection). After a message with keep_alive false the server must
 * close instead of feeding the bytes that follow. */
void rd_http_parser_next(struct rd_http_parser *p);

/* True from the first byte of a request line until EV_MESSAGE (used for the
 * header-read timeout and on EOF). Empty lines before a request line, which
 * RFC 9112 2.2 lets a server skip, do not count. */
bool rd_http_parser_in_message(const struct rd_http_parser *p);
/* True once the head of the current message was parsed (EV_HEAD reported). */
bool rd_http_parser_head_done(const struct rd_http_parser *p);

/* Sets r->path and r->query (strings in r->arena) from the request-target
 * t[0..n), n > 0, as the parser does for every request line: origin-form
 * "/p?q", absolute-form "http://host/p?q" (the path starts after the
 * authority), "*"; a fragment ends the path or query; no query gives "". */
void rd_http_split_target(struct rd_http_request *r, const char *t, size_t n);

/* HTTP status for the error returned by feed (0 if none). */
int rd_http_parser_status(const struct rd_http_parser *p);
/* Static reason for that error (NULL if none); fit for a log line. */
const char *rd_http_parser_errmsg(const struct rd_http_parser *p);

#endif
