/* What differs between LLM providers, as data (struct rd_provider), so the
 * engine (sockets, streaming, timeouts, later caching and logging) is written
 * once. One provider per file in src/providers/; adding one is a new file plus
 * an entry in the registry (provider.c). See docs/adding-a-provider.md. */
#ifndef RD_PROVIDERS_PROVIDER_H
#define RD_PROVIDERS_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>

#include "providers/emulator/emulator.h"
#include "util/buf.h"

/* Kinds of request a route carries, for caching TTLs and usage extraction. */
enum rd_req_kind {
    RD_REQ_OTHER,
    RD_REQ_CHAT,
    RD_REQ_COMPLETION,
    RD_REQ_EMBEDDING,
    RD_REQ_RESPONSES,
    RD_REQ_MODELS,
};

#define RD_ROUTE_CACHEABLE 0x1  /* deterministic given the body: may be cached */
#define RD_ROUTE_STREAMABLE 0x2 /* may answer as a stream ("stream": true) */

struct rd_route {
    const char *method;  /* "POST", "GET" */
    const char *pattern; /* path with '*' matching one non-empty segment */
    enum rd_req_kind kind;
    unsigned flags;
};

/* How a provider shapes its error bodies. */
enum rd_error_style {
    RD_ERRSTYLE_OPENAI, /* {"error":{"message","type","param","code"}} */
};

struct rd_provider {
    const char *name;             /* "openai" */
    const char *display_name;     /* "OpenAI" */
    const char *default_upstream; /* "https://api.openai.com" (no trailing slash) */
    const char *const *auth_headers; /* NULL-terminated; never stored or logged */
    const char *model_field;      /* JSON body field naming the model */
    const struct rd_route *routes;
    size_t nroutes;
    enum rd_error_style error_style;
    const struct rd_emu_dialect *emulator; /* dialect data for rd_emu_openai */
    int (*emulate)(const struct rd_emu_dialect *d, const struct rd_emu_request *req, struct rd_emu_reply *out);
};

/* Registry lookups. */
const struct rd_provider *rd_provider_find(const char *name);
/* All providers in display order; *n receives the count. */
const struct rd_provider *const *rd_provider_all(size_t *n);

/* The route for method + path, or NULL. */
const struct rd_route *rd_provider_route(const struct rd_provider *p, const char *method, const char *path);

/* Renders the provider's native error body for an error Rubberduck itself
 * produces (413 from a limit, 502/504 from the upstream, ...). Appends to
 * out; content type "application/json". */
void rd_provider_error_body(const struct rd_provider *p, int status, const char *message, struct rd_buf *out);

#endif
