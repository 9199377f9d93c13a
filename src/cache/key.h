/* The cache key of a request (docs/caching.md, "Keys"): SHA-256 (OpenSSL,
 * util/hash.h) over a canonical form of everything that changes the answer:
 *
 *   "rdk1" NUL provider NUL method NUL path NUL
 *   each of the provider's answer-changing query parameters present
 *     (provider->cache_query_params, in that order) as name=value NUL
 *   each configured key header present (lower-cased name: value) NUL
 *   scope: "proxy", or "cred:" + hex SHA-256 of the request's credential NUL
 *   "stream:1" or "stream:0" NUL (in->stream)
 *   the body as canonical JSON (rd_canon_json) with the provider's
 *     cache_ignore_fields dropped and cache_round_fields rounded; nothing
 *     for an empty body (a GET), which no JSON value can be confused with
 *
 * Query parameter names are compared percent-decoded (as the upstream
 * reads them); the value is hashed as sent, and a parameter given twice
 * is hashed twice, in query order. A key header given twice is too.
 *
 * The credential is the value of the first auth header present
 * (auth_headers of in->cred_provider, or of in->provider when that is
 * NULL), or else of its first secret query parameter present (Gemini's
 * key); for an AWS SigV4 Authorization ("AWS4-HMAC-SHA256 Credential=...")
 * only the access key id of its Credential= part (the rest changes with
 * every request). No credential: "cred:none". Only a hash of it is ever
 * written to scratch. Pure; any thread. */
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
    /* The provider whose auth_headers and secret_query_params name the
     * credential, when it is not provider: the proxy's own provider for a
     * route that speaks another's dialect (Claude on Vertex AI keeps
     * Vertex's key= and Authorization). NULL: provider. */
    const struct rd_provider *cred_provider;
    /* The client asked for a stream. OpenAI- and Anthropic-style bodies
     * drop "stream" (cache_ignore_fields), so the caller says it here and a
     * stream and a plain answer stay separate entries; where the path tells
     * them apart (Gemini, Bedrock) it is hashed all the same. */
    bool stream;
    /* The body's canonical form under provider's rules, when the caller
     * already has it (from another key of the same request): used as is
     * instead of canonicalizing the body again. NULL: canonicalize. */
    const char *canon_body;
    size_t canon_body_len;
};

/* Computes the key into key. Returns 0, or RD_EPROTO when the body is
 * not one valid JSON value (the request then bypasses the cache), or
 * RD_ETOOBIG past RD_CANON_MAX_DEPTH. scratch is working storage (reset
 * and reused; the caller keeps it to avoid allocations). */
int rd_cache_key(const struct rd_cache_key_input *in, struct rd_buf *scratch, uint8_t key[32]);
/* rd_cache_key, and *body_off where the body's canonical form starts in
 * scratch (it runs to scratch->len; body_off == scratch->len: no body). */
int rd_cache_key_canon(const struct rd_cache_key_input *in, struct rd_buf *scratch, uint8_t key[32], size_t *body_off);

#endif
