/* Cassettes (docs/caching.md, "Record and replay"): a proxy's cache entries
 * as a file of JSON lines, one entry per line, human-diffable, bodies and
 * streams included, no secrets (no request headers, no credential: only
 * the key, which is a hash). One line:
 *
 *   {"key":"gpt-4o:<hex>","model":"gpt-4o","kind":"chat","method":"POST",
 *    "path":"/v1/chat/completions","status":200,
 *    "headers":[["content-type","application/json"],...],
 *    "stream":false,"created":"2026-12-02T10:00:00.000Z",
 *    "expires":"2026-12-02T11:00:00.000Z","ttl_s":3600,"hits":3,
 *    "usage":{"input":12,"output":40,"cached":0,"reasoning":0},
 *    "body":{...}}                      JSON body as JSON
 *    "body_text":"..."                  other text bodies
 *    "events":[{"t_ms":0,"text":"data: {...}\n\n"},...]   SSE streams
 *    "frames":[{"t_ms":0,"base64":"..."},...]             AWS event streams
 *
 * A JSON body is written parsed, so the file diffs by field; it is written
 * back byte for byte from a copy kept as "body_raw" only when re-serializing
 * would change its bytes (the SDKs never care; replay promises the same
 * bytes). Pure; any thread. */
#ifndef RD_CACHE_CASSETTE_H
#define RD_CACHE_CASSETTE_H

#include <json-c/json.h>
#include <stddef.h>

#include "cache/cache.h"
#include "util/buf.h"

/* Appends e as one line (with its final '\n') to out. Returns 0 or RD_ETOOBIG (out's cap). */
int rd_cassette_write(const struct rd_cache_entry *e, struct rd_buf *out);
/* Parses one line into a new complete entry (refs 1, not in any cache).
 * NULL with a message in err (which field, why) for a malformed line. */
struct rd_cache_entry *rd_cassette_read(const char *line, size_t len, char *err, size_t errlen);

#endif
