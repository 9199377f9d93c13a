/* A proxy's configuration document: the JSON blocks of the product
 * description (limits, timeout_config, error_injection, rate_limiting,
 * ip_filtering, cache_ttl, memory_limits, middleware_pipeline, ...).
 *
 * Validation is schema-as-data: one table of known blocks and fields with
 * types and ranges. The subsystems compile their own blocks (the stages,
 * cache/ttl.c); this module checks their shape and extracts what the
 * engine itself uses (limits) and a few typed values (sizes, times). */
#ifndef RD_PROXY_CONFIG_H
#define RD_PROXY_CONFIG_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rd_limits {
    uint64_t max_body_bytes;      /* default 33554432 (32 MiB) */
    uint64_t connect_timeout_ms;  /* default 10000 */
    uint64_t upstream_timeout_ms; /* default 600000 */
    uint64_t idle_timeout_ms;     /* default 60000 */
};

struct rd_config_err {
    char field[128];   /* dotted path of the offending field, "" if none */
    char message[256]; /* human-readable reason */
};

/* The defaults above. */
void rd_limits_default(struct rd_limits *out);

/* Checks doc against the schema: doc must be an object; unknown top-level keys
 * are rejected naming the key; known blocks must have the right types and
 * ranges (unknown keys inside a known block are rejected too). Returns 0 or
 * RD_EINVAL with err filled. doc is borrowed. */
int rd_config_validate(struct json_object *doc, struct rd_config_err *err);

/* Reads the limits block of a validated doc, with defaults for what is
 * absent. doc may be NULL (all defaults). */
void rd_config_limits(struct json_object *doc, struct rd_limits *out);

/* Largest configuration document callers should accept: pass it as max_len to
 * rd_json_parse before rd_config_validate. 16 MiB: room for IP lists of
 * RD_IPSET_MAX_ENTRIES patterns (ip_filtering). */
#define RD_CONFIG_MAX_DOC_BYTES (16u * 1024u * 1024u)

/* emulator.tokens_per_second of doc, or 0 (no pacing) when doc is NULL, the
 * block or field is absent, or the value is not a number in 0..100000.
 * doc is borrowed. Pure and thread-safe. */
double rd_config_emulator_tps(struct json_object *doc);

/* True when upstream.client is "curl" (always use libcurl, never the native
 * HTTP/1.1 client). */
bool rd_config_upstream_curl(struct json_object *doc);

/* upstream.ca_file, or NULL: CAs to trust for https upstreams instead of the
 * system bundle. Borrowed from doc. */
const char *rd_config_upstream_ca_file(struct json_object *doc);

/* Parses a size string: a decimal integer followed by an optional unit B, KB,
 * MB or GB (case-insensitive, 1024-based, no spaces): "512KB", "10mb", "4096".
 * Returns 0 with *out set, RD_EINVAL when s is NULL or malformed, RD_ETOOBIG
 * when the value does not fit in 64 bits; *out is untouched on error. */
int rd_config_parse_size(const char *s, uint64_t *out);

/* The size field block.field of doc (memory_limits.cache_max_size, ...):
 * a size string or a byte count within the schema's range for that field.
 * Returns 0 with *out set, or with *out = dflt when doc, the block or the
 * field is absent; RD_EINVAL with *out = dflt when the value is not a size
 * in range (only an unvalidated document has one) or block.field is not a
 * size field of the schema. doc is borrowed; pure and thread-safe. */
int rd_config_size(struct json_object *doc, const char *block, const char *field, uint64_t dflt, uint64_t *out);

/* The cache's defaults for memory_limits (docs/configuration.md): pass them
 * as dflt. cache_max_entries is an integer field (rd_json_get_int). */
#define RD_CONFIG_CACHE_MAX_SIZE_DEFAULT (UINT64_C(1) << 30) /* "1GB" */
#define RD_CONFIG_CACHE_MAX_ENTRIES_DEFAULT 10000
#define RD_CONFIG_RESPONSE_BUFFER_SIZE_DEFAULT (UINT64_C(10) << 20) /* "10MB" */

/* Parses a UTC time of day "HH:MM" (two digits each) from "00:00" to
 * "24:00" into minutes after midnight (0..1440): cache_ttl.peak_hours.
 * Returns 0, or RD_EINVAL (s NULL or malformed; *minutes untouched). */
int rd_config_parse_clock(const char *s, uint32_t *minutes);

#endif
