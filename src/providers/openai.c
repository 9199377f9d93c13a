/* OpenAI: https://api.openai.com, Bearer auth. */
#include "providers/emulator/dialects.h"
#include "providers/openai_routes.h"
#include "providers/provider.h"

const struct rd_route rd_openai_routes[RD_OPENAI_NROUTES] = {
    {"POST", "/v1/chat/completions", RD_REQ_CHAT, RD_ROUTE_CACHEABLE | RD_ROUTE_STREAMABLE},
    {"POST", "/v1/completions", RD_REQ_COMPLETION, RD_ROUTE_CACHEABLE | RD_ROUTE_STREAMABLE},
    {"POST", "/v1/embeddings", RD_REQ_EMBEDDING, RD_ROUTE_CACHEABLE},
    {"POST", "/v1/responses", RD_REQ_RESPONSES, RD_ROUTE_CACHEABLE | RD_ROUTE_STREAMABLE},
    {"GET", "/v1/models", RD_REQ_MODELS, RD_ROUTE_CACHEABLE},
    {"GET", "/v1/models/*", RD_REQ_MODELS, RD_ROUTE_CACHEABLE},
    /* DeepSeek also serves these without the /v1 prefix. */
    {"POST", "/chat/completions", RD_REQ_CHAT, RD_ROUTE_CACHEABLE | RD_ROUTE_STREAMABLE},
    {"GET", "/models", RD_REQ_MODELS, RD_ROUTE_CACHEABLE},
};

static const char *const auth_headers[] = {"authorization", "openai-organization", "openai-project", NULL};

const struct rd_provider rd_provider_openai = {
    .name = "openai",
    .display_name = "OpenAI",
    .default_upstream = "https://api.openai.com",
    .auth_headers = auth_headers,
    .model_field = "model",
    .routes = rd_openai_routes,
    .nroutes = RD_OPENAI_NROUTES,
    .error_style = RD_ERRSTYLE_OPENAI,
    .emulator = &rd_emu_dialect_openai,
    .emulate = rd_emu_openai,
};
