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

struct rd_upstream_call rd_upstream_start(struct rd_upstream_ctx *ctx, const struct rd_upstream_req *req,
                                          const struct rd_source_cbs *cbs, void *ud)
{
    struct rd_upstream_call c = {NULL, NULL};
    /* rd_h1_start declines (NULL, no callback) URLs it does not serve. */
    if (!req->force_curl)
        c.h1 = rd_h1_start(ctx->h1, req, cbs, ud);
    if (c.h1 == NULL)
        c.curl = rd_curl_start(ctx->curl, req, cbs, ud);
    return c;
}

void rd_upstream_resume(struct rd_upstream_call c)
{
    if (c.h1)
        rd_h1_resume(c.h1);
    else if (c.curl)
        rd_curl_resume(c.curl);
}

void rd_upstream_abort(struct rd_upstream_call c)
{
    if (c.h1)
        rd_h1_abort(c.h1);
    else if (c.curl)
        rd_curl_abort(c.curl);
}
