/* A cache entry played back as a response source (upstream/source.h), so a
 * hit goes through the same relay as an upstream answer: the head's
 * headers, the response-side stages (stream faults and stream_timing shape
 * replays too), usage, backpressure. Three embedded handles drive it, as
 * the emulator's runner does (providers/emulator/run.c): an idle handle for
 * "next loop iteration" steps, a timer for original timing, and, while the
 * entry is still being filled by the request that missed (a coalesced
 * joiner), an async handle its leader wakes on every publication.
 *
 * What the client gets: the stored status and headers, plus Content-Length
 * for a complete non-streamed body (a joiner of an unfinished body gets it
 * without, that is chunked), then the stored bytes in order: all at once
 * (instant) or, for a stream with original timing, each event when its
 * recorded time after the head has come. A joiner follows the fill as its
 * bytes arrive, from the first. If the fill fails before its head the
 * source ends with RD_ESTATE (the request then goes upstream itself:
 * stages/cache.c); after the head, with RD_EUPSTREAM (the client's
 * response is cut, as the leader's was).
 *
 * Loop thread of the request only (the async handle is the one way in from
 * another thread). */
#ifndef RD_CACHE_REPLAY_H
#define RD_CACHE_REPLAY_H

#include <stdbool.h>

#include "cache/cache.h"
#include "upstream/source.h"

/* The ctx of rd_cache_replay_ops.start (borrowed for the call; the source
 * takes its own reference to the entry). */
struct rd_cache_replay_arg {
    struct rd_cache_entry *entry;
    bool original_timing;
};

extern const struct rd_source_ops rd_cache_replay_ops;

/* The head a replay of e sends: its stored headers (borrowed from e) and,
 * with_length, Content-Length rendered into clen. h must be initialised;
 * the caller frees it. */
void rd_cache_replay_head(const struct rd_cache_entry *e, bool with_length, struct rd_hdrs *h, char clen[24]);

#endif
