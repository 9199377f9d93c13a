/* Upstream HTTP client, one context per I/O worker so connections are pooled
 * and reused per worker. Two backends behind one call:
 *  - h1.c, a lean HTTP/1.1 client on libuv + llhttp, for plain http:// URLs to
 *    an IP address or localhost (self-hosted servers, loopback, benchmarks):
 *    no allocation per request once warm, one write and one read per request;
 *  - curl.c, libcurl's multi interface on the same loop, for everything else
 *    (TLS, HTTP/2 by ALPN, hostnames, proxies from the environment).
 * Responses are reported through the source callbacks (upstream/source.h) as
 * they arrive, whichever backend runs the request. */
#ifndef RD_UPSTREAM_UPSTREAM_H
#define RD_UPSTREAM_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "http/headers.h"
#include "upstream/source.h"

struct rd_upstream_ctx;
struct rd_h1_ctx;
struct rd_curl_ctx;

/* The request as the two backends take it (filled from a rd_source_req). */
struct rd_upstream_req {
    const char *method; /* any token; HEAD gets no body back */
    const char *url;    /* absolute http(s) URL with path and query */
    const struct rd_hdrs *headers; /* end-to-end headers to send (no Host, no framing) */
    const char *body;   /* borrowed until on_done or abort; may be NULL */
    size_t body_len;
    uint64_t connect_timeout_ms;
    uint64_t timeout_ms; /* whole transfer */
    const char *ca_file; /* CA bundle for TLS instead of the system one; NULL for default */
};

/* Call once per process before any thread starts (curl_global_init). */
int rd_upstream_global_init(void);
void rd_upstream_global_cleanup(void);

/* Creates the context of one loop. Never NULL. */
struct rd_upstream_ctx *rd_upstream_ctx_new(uv_loop_t *loop);
/* Aborts what is left and closes the context's handles; memory is released
 * once the loop has run the close callbacks. */
void rd_upstream_ctx_free(struct rd_upstream_ctx *ctx);

/* The two backends as sources (upstream/source.h). Their start takes the
 * context returned below; the native client declines URLs it does not
 * serve (see rd_upstream_native_ok), libcurl takes any. */
extern const struct rd_source_ops rd_upstream_h1_ops;
extern const struct rd_source_ops rd_upstream_curl_ops;
struct rd_h1_ctx *rd_upstream_h1_ctx(struct rd_upstream_ctx *ctx);
struct rd_curl_ctx *rd_upstream_curl_ctx(struct rd_upstream_ctx *ctx);
/* True if the native HTTP/1.1 client can serve URLs under base (plain http
 * to an IP address or localhost). Pure; decided once per proxy snapshot. */
bool rd_upstream_native_ok(const char *base);

#endif
