/* Building blocks for providers that speak the OpenAI API (Azure OpenAI and
 * the OpenAI-compatible presets): route rows under a path prefix and the
 * hooks they share, so each provider is a table of data, not a copy. */
#ifndef RD_PROVIDERS_OPENAI_COMPAT_H
#define RD_PROVIDERS_OPENAI_COMPAT_H

#include "providers/emulator/dialects.h"
#include "providers/provider.h"

/* Generation routes may be cached and may stream. */
#define RD_OAI_GEN (RD_ROUTE_CACHEABLE | RD_ROUTE_STREAMABLE)

/* One route row each, under the path prefix pfx (a string literal such as
 * "/v1" or "/openai/v1"). */
#define RD_OAI_CHAT(pfx)                                                                                               \
    {                                                                                                                  \
        "POST", pfx "/chat/completions", RD_REQ_CHAT, RD_OAI_GEN, RD_MODEL_IN_BODY, NULL                               \
    }
#define RD_OAI_COMPLETIONS(pfx)                                                                                        \
    {                                                                                                                  \
        "POST", pfx "/completions", RD_REQ_COMPLETION, RD_OAI_GEN, RD_MODEL_IN_BODY, NULL                              \
    }
#define RD_OAI_EMBEDDINGS(pfx)                                                                                         \
    {                                                                                                                  \
        "POST", pfx "/embeddings", RD_REQ_EMBEDDING, RD_ROUTE_CACHEABLE, RD_MODEL_IN_BODY, NULL                        \
    }
#define RD_OAI_RESPONSES(pfx)                                                                                          \
    {                                                                                                                  \
        "POST", pfx "/responses", RD_REQ_RESPONSES, RD_OAI_GEN, RD_MODEL_IN_BODY, NULL                                 \
    }
/* Two rows: the list and one model by id (the id is the model). */
#define RD_OAI_MODELS(pfx)                                                                                             \
    {"GET", pfx "/models", RD_REQ_MODELS, 0, RD_MODEL_IN_BODY, NULL},                                                  \
    {                                                                                                                  \
        "GET", pfx "/models/*", RD_REQ_MODELS, 0, 1, NULL                                                              \
    }

/* The members every OpenAI-compatible provider shares (a designated
 * initializer list); each provider adds its names, upstream, auth headers,
 * routes, dialect and its model and error hooks. */
#define RD_OAI_COMPAT_MEMBERS                                                                                          \
    .dialect_name = "openai", .model_field = "model", .request_id_header = "x-request-id",                             \
    .max_tokens_fields = rd_provider_max_tokens_openai, .cache_ignore_fields = rd_provider_cache_ignore_openai,        \
    .cache_round_fields = rd_provider_cache_round_top, .error_style = RD_ERRSTYLE_OPENAI, .framing = RD_FRAMING_SSE,   \
    .emulate = rd_emu_openai, .prepare = rd_provider_prepare_passthrough,                                              \
    .stream_event = rd_provider_stream_event_openai, .body_usage = rd_provider_body_usage_openai

#define RD_NROUTES(t) (sizeof(t) / sizeof((t)[0]))

#endif
