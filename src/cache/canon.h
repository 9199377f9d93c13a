/* Canonical JSON for cache keys (docs/caching.md, "Keys"): the same
 * request always gives the same bytes, and two requests that could get
 * different answers never do.
 *
 *   - object members sorted by key (bytewise on the unescaped UTF-8) at
 *     every depth; duplicate keys: the last one counts (as JSON.parse);
 *   - no insignificant whitespace;
 *   - strings unescaped then written with one escaping: '"', '\\' and
 *     control characters below 0x20 escaped (\n \r \t \b \f, others
 *     \u00XX), everything else as raw UTF-8 ("\u00e9" and "é" are equal;
 *     "\ud83d\ude00" pairs decode; a lone surrogate is kept as \uXXXX
 *     lower-case so it still differs from everything else);
 *   - numbers exactly as sent (their text), so 12345678901234567890123 keeps
 *     every digit and 1 and 1.0 stay different (the provider may treat them
 *     differently; a miss is cheaper than a wrong answer);
 *   - fields named in rules->drop removed, fields in rules->round2 that are
 *     numbers rounded to 2 decimals (written as the shortest of "%.2f" with
 *     trailing zeros and a trailing '.' removed: 0.7, 0.70 and 0.701 are
 *     all "0.7"; 1.00 is "1").
 *
 * Paths in rules are dotted object keys from the top ("stream",
 * "metadata.user_id", "generationConfig.temperature"); an element "*"
 * matches any key at that depth. A path never reaches into an array, and
 * an object whose members were all dropped stays as {}. Pure; any
 * thread. */
#ifndef RD_CACHE_CANON_H
#define RD_CACHE_CANON_H

#include <stddef.h>

#include "util/buf.h"

#define RD_CANON_MAX_DEPTH 64

struct rd_canon_rules {
    const char *const *drop;   /* NULL-terminated, or NULL */
    const char *const *round2; /* NULL-terminated, or NULL */
};

/* Appends the canonical form of doc[0..len) (one JSON value, surrounding
 * whitespace allowed) to out. Returns 0, RD_EPROTO when doc is not valid
 * JSON (also trailing bytes, invalid UTF-8 in strings, bad escapes),
 * RD_ETOOBIG past RD_CANON_MAX_DEPTH or out's cap; out is then left with
 * a partial result the caller discards. rules may be NULL. */
int rd_canon_json(const char *doc, size_t len, const struct rd_canon_rules *rules, struct rd_buf *out);

#endif
