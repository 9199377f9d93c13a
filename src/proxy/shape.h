/* The shaper of a relayed stream: the relay side of the event seam
 * (proxy/pipeline.h, "the event seam"). When a response-side stage wants
 * the events of a streamed response (stream_faults, stream_timing), the
 * relay of that one response goes through here instead of writing each
 * source read straight to the client:
 *
 *   source read -> held (one copy) -> stream decoder -> event boundaries
 *     -> each complete event: the stages' verdict (rd_pipeline_event)
 *     -> relayed now, or held until its time / the client drains,
 *        duplicated, replaced by a malformed copy, replaced by the
 *        provider's mid-stream error (then the end), or cut.
 *
 * Only whole events leave: the bytes of an event that is not complete yet
 * wait in held for the rest (a stage may still drop or replace it). While
 * an event waits, the source is paused (its next read is refused and
 * offered again on resume), so held is at most one source read beyond the
 * event waiting, plus a partial event: the decoders cap an event (1 MiB for
 * SSE, 16 MiB for an event-stream frame); a partial event past
 * RD_SHAPE_HELD_MAX goes out as it is (its boundary is then lost to the
 * stages, the stream goes on). Comments and blank lines between events
 * travel with the next event.
 *
 * An unshaped response never comes here and pays nothing: forward.c tests
 * req->shape (NULL) once per read. Loop thread of the request only. */
#ifndef RD_PROXY_SHAPE_H
#define RD_PROXY_SHAPE_H

#include <stdbool.h>
#include <stddef.h>

#include "providers/provider.h"

struct rd_req;
struct rd_hdrs;

#define RD_SHAPE_HELD_MAX (2u * 1024u * 1024u)

/* forward.c, as a streamed response's head (2xx, decoded framing) is about
 * to go out: offers the stream to the stages (rd_pipeline_stream, which may
 * add headers to hdrs) and, when one wants its events, attaches a shaper
 * (req->shape). Returns true if the stream is shaped: the head then goes
 * out without Content-Length (the body may change length). */
bool rd_shape_begin(struct rd_req *req, struct rd_hdrs *hdrs);
/* The source's on_data for a shaped stream: 0 (taken) or RD_SOURCE_PAUSE. */
int rd_shape_data(struct rd_req *req, const char *p, size_t n);
/* The stream decoder's callback for each complete event (forward.c): end
 * is the offset just past the event in the piece being fed, last whether
 * the provider's stream_event hook saw its end-of-stream event. Returns 0
 * to go on, 1 to stop the feed after this event (it waits). */
int rd_shape_event(struct rd_req *req, const struct rd_stream_event *ev, bool last, size_t end);
/* The source finished without error: what is held goes out (in time), then
 * the response ends. */
void rd_shape_source_done(struct rd_req *req);
/* The client's output fell below the low mark (req.c's drain callback). */
void rd_shape_drain(struct rd_req *req);
/* Detaches and frees req's shaper (the request is being released);
 * NULL-safe. Its timer is closed; the memory goes in the close callback. */
void rd_shape_release(struct rd_req *req);

/* A copy of an SSE event with its data cut to half its length (so JSON in
 * it no longer parses) and the SSE framing intact: "event: <name>\n" (when
 * named), "data: ..." lines, blank line. Appended to out. Pure. */
int rd_shape_malform_sse(const struct rd_stream_event *ev, struct rd_buf *out);
/* The same for one complete event-stream frame raw[0..n): its headers
 * kept, its payload cut to half, CRCs recomputed (so the SDK reads a valid
 * frame whose JSON fails). Returns 0, RD_EPROTO if raw is not one valid
 * frame, or rd_es_encode's error. Pure. */
int rd_shape_malform_frame(const void *raw, size_t n, struct rd_buf *out);

#endif
