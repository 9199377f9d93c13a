/* OpenTelemetry traces (docs/observability.md, "Traces"): a span
 * process_llm_request per proxied request, with child spans for the cache
 * lookup and the upstream call; an incoming W3C traceparent is continued and
 * forwarded upstream. Spans go to a bounded queue and are exported in
 * batches by OTLP/HTTP (JSON, obs/otlp.h) from a thread of their own; with
 * no endpoint configured nothing is queued (ids are still made: the request
 * log keeps the trace id).
 *
 * Configuration: the standard OTEL_* variables (OTEL_EXPORTER_OTLP_ENDPOINT,
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_HEADERS,
 * OTEL_EXPORTER_OTLP_TIMEOUT, OTEL_EXPORTER_OTLP_PROTOCOL, OTEL_SERVICE_NAME,
 * OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER(_ARG), OTEL_SDK_DISABLED,
 * OTEL_TRACES_EXPORTER, OTEL_BSP_SCHEDULE_DELAY, OTEL_BSP_MAX_QUEUE_SIZE,
 * OTEL_BSP_MAX_EXPORT_BATCH_SIZE). */
#ifndef RD_OBS_TRACE_H
#define RD_OBS_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rd_req;
struct rd_tracer;

/* Reads the OTEL_* environment; *out is NULL (and 0 returned) when tracing
 * is not configured. A negative rd_err with a reason in errbuf for a bad
 * setting. Control thread, before the workers take requests. */
int rd_tracer_start(struct rd_tracer **out, char *errbuf, size_t errlen);
/* Exports what is queued (for at most a few seconds), stops the thread.
 * After the workers are joined. NULL-safe. */
void rd_tracer_stop(struct rd_tracer *t);

/* Gives req its trace context: continues the request's traceparent header
 * when valid, otherwise a new trace id; a new span id either way
 * (req->trace_id, req->span_id, req->parent_span_id, req->trace_flags with
 * the sampling decision). Worker, once per request, t may be NULL. */
void rd_trace_begin(struct rd_tracer *t, struct rd_req *req);
/* Queues req's spans (state DONE) when they are sampled; a full queue drops
 * them (counted). Never blocks on the exporter. Worker; t may be NULL
 * (nothing). */
void rd_trace_done(struct rd_tracer *t, unsigned slot, struct rd_req *req);

/* The traceparent to send upstream for req: "00-<trace id>-<the
 * upstream_call span id>-<flags>" into out (at least 56 bytes). false
 * (out "") before rd_trace_begin. Worker. */
bool rd_trace_traceparent(const struct rd_req *req, char *out, size_t len);

struct rd_tracer_stats {
    uint64_t queued, dropped, exported, failed; /* spans */
    uint64_t batches;
};
/* Any thread; t may be NULL (zeros). */
void rd_tracer_stats(struct rd_tracer *t, struct rd_tracer_stats *out);

/* ---- parsing (pure, for tests) ---- */

struct rd_traceparent {
    uint8_t version;
    uint8_t trace_id[16];
    uint64_t parent_id;
    uint8_t flags;
};
/* Parses a W3C traceparent value (Trace Context level 1 and 2): version
 * 00 exactly "00-<32 hex>-<16 hex>-<2 hex>", a later version (not ff) the
 * same four fields optionally followed by "-..."; lower-case hex only,
 * neither id all zeros. false for anything else. */
bool rd_traceparent_parse(const char *v, size_t n, struct rd_traceparent *out);

/* Decodes an OTEL_EXPORTER_OTLP_HEADERS / OTEL_RESOURCE_ATTRIBUTES list
 * ("k=v,k2=v2", percent-encoded values, whitespace around items ignored)
 * into pairs: fn(key, value, ud) per item, both NUL-terminated and valid
 * only during the call; fn returns false to stop with RD_EINVAL. Returns 0,
 * or RD_EINVAL for an item without '=' or with an empty key or a bad %
 * escape (an item longer than 4 KiB is RD_ETOOBIG). */
int rd_otel_parse_pairs(const char *s, bool (*fn)(const char *k, const char *v, void *ud), void *ud);

enum rd_sampler_kind { RD_SAMPLE_ALWAYS_ON, RD_SAMPLE_ALWAYS_OFF, RD_SAMPLE_RATIO };
struct rd_sampler {
    enum rd_sampler_kind root; /* what decides a new trace */
    bool parent_based;         /* a continued trace follows the parent's sampled flag */
    double ratio;              /* RD_SAMPLE_RATIO: [0, 1] */
};
/* Parses OTEL_TRACES_SAMPLER (NULL: parentbased_always_on) and
 * OTEL_TRACES_SAMPLER_ARG (NULL: 1.0). Returns 0 or RD_EINVAL. */
int rd_sampler_parse(const char *name, const char *arg, struct rd_sampler *out);
/* The decision for a trace id: has_parent/parent_sampled from the incoming
 * traceparent. Pure. */
bool rd_sampler_decide(const struct rd_sampler *s, const uint8_t trace_id[16], bool has_parent,
                       bool parent_sampled);

#endif
