/* The upstream relay of a request (the pipeline's "upstream" stage): build
 * the upstream request (same method, path, query, body bytes and end-to-end
 * headers, then the provider's rewrite/sign hook), start the source chosen
 * by the snapshot (native client, libcurl or the emulator), relay head and
 * body chunks to the client as they come through the stream decoder, pause
 * the source while the client is slow, and map source failures to 502/504
 * in the provider's format. Runs on the worker loop that accepted the
 * request. */
#ifndef RD_PROXY_FORWARD_H
#define RD_PROXY_FORWARD_H

#include "proxy/req.h"

/* Starts the upstream relay of req (state NEW or WAIT). The request ends
 * through rd_req_done/rd_req_fail when the response is over. */
void rd_forward_start(struct rd_req *req);
/* Answers req from a cache entry (a hit, or a fill in flight it joined)
 * through the replay source (cache/replay.h) and the same relay. */
struct rd_cache_entry;
void rd_forward_replay(struct rd_req *req, struct rd_cache_entry *e, bool original_timing);
/* Feeds p[0..n) of the response body to its decoder (usage, the end of a
 * stream and, for a shaped stream, rd_shape_event on each event). Returns
 * the bytes consumed: n, or less when a shaper stopped the feed after an
 * event (the rest is fed again later). */
size_t rd_forward_decode(struct rd_req *req, const char *p, size_t n);
/* The response body is complete and relayed: closes the decoder and ends
 * the request (rd_req_finish; req is released). */
void rd_forward_done(struct rd_req *req);

#endif
