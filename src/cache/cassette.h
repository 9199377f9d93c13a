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
 *    "upstream_model":"gpt-4o-2024-08-06","finish":"length",  (when set)
 *    "body":{...}}                      JSON body as JSON
 *    "body_text":"..."                  other text (UTF-8) bodies
 *    "body_base64":"..."                other bodies
 *    "events":[{"t_ms":0,"text":"data: {...}\n\n"},...]   SSE streams
 *    "frames":[{"t_ms":0,"base64":"..."},...]             AWS event streams
 *
 * A JSON body is written parsed, so the file diffs by field; it is written
 * back byte for byte from a copy kept as "body_raw" only when re-serializing
 * would change its bytes (the SDKs never care; replay promises the same
 * bytes). Re-serializing is rd_json_str's (compact, '/' unescaped); a body
 * that is not compact already (OpenAI's is indented) therefore carries
 * "body_raw". On reading, "body_raw" wins only while it still parses to a
 * value equal to "body": a hand-edited "body" is taken as the edit.
 *
 * A stream's elements are its events, split at the entry's marks, each
 * with the time it came ("t_ms", ms after the head): "text" when its bytes
 * are UTF-8, else "base64" (frames always base64); bytes after the last
 * mark, if any, are a last element {"unmarked":true,...} with no time.
 * Exactly one body form per line; events and frames go with "stream":true.
 * "hits", "upstream_model", "finish" and the usage members may be left out
 * (0, ""); unknown members are ignored. Pure; any thread. */
#ifndef RD_CACHE_CASSETTE_H
#define RD_CACHE_CASSETTE_H

#include <json-c/json.h>
#include <stddef.h>

#include "cache/cache.h"
#include "util/buf.h"

/* The longest line rd_cassette_read takes (a body of up to about 190 MiB
 * in base64; RD_CACHE_IMAGE_MAX_BODY caps any body at 1 GiB). */
#define RD_CASSETTE_LINE_MAX ((size_t)256 << 20)

/* Appends e as one line (with its final '\n') to out. Returns 0 or RD_ETOOBIG (out's cap). */
int rd_cassette_write(const struct rd_cache_entry *e, struct rd_buf *out);
/* Parses one line (its '\n' may be included) into a new complete entry
 * (refs 1, not in any cache). NULL with a message in err (which field, why)
 * for a malformed line: not JSON or longer than RD_CASSETTE_LINE_MAX, a
 * missing or mistyped field, a key that is not "<model>:<64 hex>" with the
 * line's model, a status outside 2xx, a bad time, header, base64 or event
 * order, and what rd_cache_image_build refuses (cache/image.h). An expired
 * entry is read as it is (the importer decides what to do with it). */
struct rd_cache_entry *rd_cassette_read(const char *line, size_t len, char *err, size_t errlen);

#endif
