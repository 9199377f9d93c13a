/* libcurl backend of the upstream client (see upstream.h, which picks it for
 * https:// and hostnames). One context per loop; same contract as
 * rd_upstream_start/resume/abort. */
#ifndef RD_UPSTREAM_CURL_H
#define RD_UPSTREAM_CURL_H

#include <uv.h>

#include "upstream/source.h"
#include "upstream/upstream.h"

struct rd_curl_ctx;
struct rd_curl;

/* Never NULL. */
struct rd_curl_ctx *rd_curl_ctx_new(uv_loop_t *loop);
/* Closes pooled connections; memory is released after the close callbacks. */
void rd_curl_ctx_free(struct rd_curl_ctx *ctx);
/* Starts a transfer; never NULL; callbacks fire later on the loop. */
struct rd_curl *rd_curl_start(struct rd_curl_ctx *ctx, const struct rd_upstream_req *req,
                              const struct rd_source_cbs *cbs, void *ud);
void rd_curl_resume(struct rd_curl *c);
/* No callback after this; must not be called from the transfer's own callbacks. */
void rd_curl_abort(struct rd_curl *c);

#endif
