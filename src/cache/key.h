/* The cache key of a request (docs/caching.md, "Keys"): SHA-256 (OpenSSL,
 * util/hash.h) over a canonical form of everything that changes the answer:
 *
 *   "rdk1" NUL provider NUL method NUL path NUL
 *   each of the provider's answer-changing query parameters present
 *     (provider->cache_query_params, in that order) as name=value NUL
 *   each configured key header present (lower-cased name: value) NUL
 *   scope: "proxy", or "cred:" + hex SHA-256 of the request's credential NUL
 *   the body as canonical JSON (rd_canon_json) with the provider's
 *     cache_ignore_fields dropped and cache_round_fields rounded
 *
 * The credential is the value of the provider's first auth header present
 * (provider->auth_headers), or of its secret query parameter (Gemini's
 * key); for an AWS SigV4 Authorization only the access key id of its
 * Credential= part (the rest changes with every request). No credential:
 * "cred:none". Pure; any thread. */
#ifndef RD_CACHE_KEY_H
#define RD_CACHE_KEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/headers.h"
#include "providers/provider.h"
#include "util/buf.h"

struct rd_cache_key_input {
    const struct rd_provider *provider; /* whose cache_* data applies (the route's dialect for the body) */
    const char *method, *path, *query;  /* query "" when absent (not decoded: compared as sent) */
    const struct rd_hdrs *headers;      /* the client's request headers */
    const char *body;
    size_t body_len;
    const char *const *key_headers; /* configured header names (cache.key_headers), any case */
    size_t nkey_headers;
    bool scope_proxy; /* cache.scope "proxy": no credential in the key */
    /* The request asks for a stream ("stream": true, which is dropped from
     * the body as it does not change the answer): hashed as "stream:1" or
     * "stream:0" NUL before the body, so the two are separate entries. */
    bool stream;
};

/* Computes the key into key. Returns 0, or RD_EPROTO when the body is
 * not one valid JSON value (the request then bypasses the cache), or
 * RD_ETOOBIG past RD_CANON_MAX_DEPTH. scratch is working storage (reset
 * and reused; the caller keeps it to avoid allocations). */
int rd_cache_key(const struct rd_cache_key_input *in, struct rd_buf *scratch, uint8_t key[32]);

#endif
