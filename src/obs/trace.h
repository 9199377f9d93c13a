/* OpenTelemetry traces (docs/observability.md, "Traces"): a span
 * process_llm_request per proxied request, with child spans for the cache
 * lookup and the upstream call; an incoming W3C traceparent is continued and
 * forwarded upstream. Spans go to a bounded queue and are exported in
 * batches by OTLP/HTTP from a thread of their own; with no endpoint
 * configured nothing is queued (ids are still made: the request log keeps
 * the trace id).
 *
 * Configuration: the standard OTEL_* variables (OTEL_EXPORTER_OTLP_ENDPOINT,
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_HEADERS,
 * OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER, OTEL_SDK_DISABLED, ...). */
#ifndef RD_OBS_TRACE_H
#define RD_OBS_TRACE_H

#include <stdbool.h>
#include <stddef.h>

struct rd_req;
struct rd_tracer;

/* Reads the OTEL_* environment; *out is NULL (and 0 returned) when tracing
 * is not configured. A negative rd_err with a reason in errbuf for a bad
 * setting. Control thread, before the workers take requests. */
int rd_tracer_start(struct rd_tracer **out, char *errbuf, size_t errlen);
/* Exports what is queued, stops the thread. After the workers are joined.
 * NULL-safe. */
void rd_tracer_stop(struct rd_tracer *t);

/* Gives req its trace context: continues the request's traceparent header
 * when valid, otherwise a new trace id; a new span id either way
 * (req->trace_id, req->span_id). Worker, once per request, t may be NULL. */
void rd_trace_begin(struct rd_tracer *t, struct rd_req *req);
/* Queues req's spans (state DONE). Worker; t may be NULL (nothing). */
void rd_trace_done(struct rd_tracer *t, unsigned slot, struct rd_req *req);

#endif
