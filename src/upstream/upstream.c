/* Picks the backend of each upstream request: the native HTTP/1.1 client
 * when it can take the URL, libcurl otherwise. */
#include "upstream/upstream.h"

#include <curl/curl.h>
#include <stdlib.h>

#include "upstream/curl.h"
#include "upstream/h1.h"
#include "util/err.h"
#include "util/mem.h"

struct rd_upstream_ctx {
    struct rd_h1_ctx *h1;
    struct rd_curl_ctx *curl;
};

int rd_upstream_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : RD_EINVAL;
}

void rd_upstream_global_cleanup(void)
{
    curl_global_cleanup();
}

struct rd_upstream_ctx *rd_upstream_ctx_new(uv_loop_t *loop)
{
    struct rd_upstream_ctx *ctx = rd_calloc(1, sizeof *ctx);
    ctx->h1 = rd_h1_ctx_new(loop);
    ctx->curl = rd_curl_ctx_new(loop);
    return ctx;
}

void rd_upstream_ctx_free(struct rd_upstream_ctx *ctx)
{
    if (ctx == NULL)
        return;
    rd_h1_ctx_free(ctx->h1);
    rd_curl_ctx_free(ctx->curl);
    free(ctx);
}

struct rd_h1_ctx *rd_upstream_h1_ctx(struct rd_upstream_ctx *ctx)
{
    return ctx->h1;
}

struct rd_curl_ctx *rd_upstream_curl_ctx(struct rd_upstream_ctx *ctx)
{
    return ctx->curl;
}

bool rd_upstream_native_ok(const char *base)
{
    char host[64];
    int port;
    const char *target;
    return base && rd_h1_parse_url(base, host, sizeof host, &port, &target) == 0;
}

static struct rd_upstream_req upstream_req(const struct rd_source_req *r)
{
    struct rd_upstream_req u = {
        .method = r->method,
        .url = r->url,
        .headers = r->headers,
        .body = r->body,
        .body_len = r->body_len,
        .connect_timeout_ms = r->connect_timeout_ms,
        .timeout_ms = r->timeout_ms,
        .ca_file = r->ca_file,
    };
    return u;
}

static void *h1_start(void *ctx, const struct rd_source_req *req, const struct rd_source_cbs *cbs, void *ud)
{
    struct rd_upstream_req u = upstream_req(req);
    return rd_h1_start(ctx, &u, cbs, ud);
}

static void h1_resume(void *h)
{
    rd_h1_resume(h);
}

static void h1_abort(void *h)
{
    rd_h1_abort(h);
}

static void *curl_start(void *ctx, const struct rd_source_req *req, const struct rd_source_cbs *cbs, void *ud)
{
    struct rd_upstream_req u = upstream_req(req);
    return rd_curl_start(ctx, &u, cbs, ud);
}

static void curl_resume(void *h)
{
    rd_curl_resume(h);
}

static void curl_abort(void *h)
{
    rd_curl_abort(h);
}

const struct rd_source_ops rd_upstream_h1_ops = {.name = "h1", .start = h1_start, .resume = h1_resume, .abort = h1_abort};
const struct rd_source_ops rd_upstream_curl_ops = {
    .name = "curl", .start = curl_start, .resume = curl_resume, .abort = curl_abort};
