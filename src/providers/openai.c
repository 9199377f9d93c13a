/* OpenAI: https://api.openai.com, Bearer auth. */
#include "providers/emulator/dialects.h"
#include "providers/openai_routes.h"
#include "providers/provider.h"

#define CHAT_FLAGS (RD_ROUTE_CACHEABLE | RD_ROUTE_STREAMABLE)

/* OpenAI's routes come first; DeepSeek uses the whole table, whose tail
 * serves the same API without the /v1 prefix (its documented base URL has
 * none). The emulator answers by these routes too. */
const struct rd_route rd_openai_routes[RD_OPENAI_ROUTES_ALL] = {
    {"POST", "/v1/chat/completions", RD_REQ_CHAT, CHAT_FLAGS, RD_MODEL_IN_BODY, NULL},
    {"POST", "/v1/completions", RD_REQ_COMPLETION, CHAT_FLAGS, RD_MODEL_IN_BODY, NULL},
    {"POST", "/v1/embeddings", RD_REQ_EMBEDDING, RD_ROUTE_CACHEABLE, RD_MODEL_IN_BODY, NULL},
    {"POST", "/v1/responses", RD_REQ_RESPONSES, CHAT_FLAGS, RD_MODEL_IN_BODY, NULL},
    {"GET", "/v1/models", RD_REQ_MODELS, 0, RD_MODEL_IN_BODY, NULL},
    {"GET", "/v1/models/*", RD_REQ_MODELS, 0, 1, NULL},
    /* without /v1 (DeepSeek) */
    {"POST", "/chat/completions", RD_REQ_CHAT, CHAT_FLAGS, RD_MODEL_IN_BODY, NULL},
    {"POST", "/completions", RD_REQ_COMPLETION, CHAT_FLAGS, RD_MODEL_IN_BODY, NULL},
    {"GET", "/models", RD_REQ_MODELS, 0, RD_MODEL_IN_BODY, NULL},
    {"GET", "/models/*", RD_REQ_MODELS, 0, 1, NULL},
};

static const char *const auth_headers[] = {"authorization", "openai-organization", "openai-project", NULL};

const struct rd_provider rd_provider_openai = {
    .name = "openai",
    .display_name = "OpenAI",
    .default_upstream = "https://api.openai.com",
    .auth_headers = auth_headers,
    .dialect_name = "openai",
    .sdk_base_path = "/v1",
    .model_field = "model",
    .max_tokens_fields = rd_provider_max_tokens_openai,
    .cache_ignore_fields = rd_provider_cache_ignore_openai,
    .cache_round_fields = rd_provider_cache_round_top,
    .routes = rd_openai_routes,
    .nroutes = RD_OPENAI_ROUTES_V1,
    .request_id_header = "x-request-id",
    .error_style = RD_ERRSTYLE_OPENAI,
    .ratelimit_headers = &rd_ratelimit_names_openai,
    .framing = RD_FRAMING_SSE,
    .emulator = &rd_emu_dialect_openai,
    .emulate = rd_emu_openai,
    .model = rd_provider_model_default,
    .prepare = rd_provider_prepare_passthrough,
    .error = rd_provider_error_openai,
    .stream_event = rd_provider_stream_event_openai,
    .body_usage = rd_provider_body_usage_openai,
};
