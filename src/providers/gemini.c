/* Gemini (Google AI Studio API): https://generativelanguage.googleapis.com,
 * x-goog-api-key header or key= query (a secret: never stored or logged).
 * Only data: the hooks are Google's dialect (google.c). */
#include "providers/emulator/google.h"
#include "providers/google.h"
#include "providers/provider.h"

#define GEN RD_ROUTE_CACHEABLE
#define STREAM (RD_ROUTE_CACHEABLE | RD_ROUTE_STREAMABLE)

/* The same API under /v1beta (what @google/genai uses) and /v1. The model is
 * the first capture: "models/{m}:method" (the SDK sends "models/" itself). */
#define GEMINI_ROUTES(V)                                                                                               \
    {"POST", V "/models/*:generateContent", RD_REQ_CHAT, GEN, 1, NULL},                                                \
        {"POST", V "/models/*:streamGenerateContent", RD_REQ_CHAT, STREAM, 1, NULL},                                   \
        {"POST", V "/models/*:countTokens", RD_REQ_TOKENS, 0, 1, NULL},                                              \
        {"POST", V "/models/*:embedContent", RD_REQ_EMBEDDING, GEN, 1, NULL},                                          \
        {"POST", V "/models/*:batchEmbedContents", RD_REQ_EMBEDDING, GEN, 1, NULL},                                    \
        {"GET", V "/models", RD_REQ_MODELS, 0, RD_MODEL_IN_BODY, NULL},                                              \
        {"GET", V "/models/*", RD_REQ_MODELS, 0, 1, NULL},                                                           \
        {"POST", V "/tunedModels/*:generateContent", RD_REQ_CHAT, GEN, 1, NULL},                                       \
    {                                                                                                                  \
        "POST", V "/tunedModels/*:streamGenerateContent", RD_REQ_CHAT, STREAM, 1, NULL                                 \
    }

static const struct rd_route routes[] = {
    GEMINI_ROUTES("/v1beta"),
    GEMINI_ROUTES("/v1"),
};

static const char *const auth_headers[] = {"x-goog-api-key", "authorization", NULL};
static const char *const secret_query_params[] = {"key", NULL};

const struct rd_provider rd_provider_gemini = {
    .name = "gemini",
    .display_name = "Google Gemini",
    .default_upstream = "https://generativelanguage.googleapis.com",
    .dialect_name = "google",
    .sdk_base_path = "",
    .secret_query_params = secret_query_params,
    .auth_headers = auth_headers,
    .model_field = NULL, /* the model is in the path */
    .max_tokens_fields = rd_google_max_tokens_fields,
    /* nothing in a generateContent body is tracking only; streaming is the
     * path (streamGenerateContent) */
    .cache_round_fields = rd_google_cache_round_fields,
    .cache_query_params = rd_google_cache_query_params,
    .request_id_header = "x-request-id",
    .routes = routes,
    .nroutes = sizeof routes / sizeof routes[0],
    .framing = RD_FRAMING_SSE,
    .emulator = &rd_emu_dialect_google,
    .emulate = rd_emu_gemini,
    .model = rd_provider_model_default,
    .prepare = rd_provider_prepare_passthrough,
    .error = rd_provider_error_google,
    .stream_event = rd_provider_stream_event_google,
    .body_usage = rd_provider_body_usage_google,
};
