/* Vertex AI: Google's models (and Claude, Llama, Mistral) under
 * /v1/ and /v1beta1/projects/{p}/locations/{l}/publishers/{pub}/models/{m},
 * Bearer token passed through. The host follows the location in the path
 * unless upstream_url is set (rd_vertex_prepare, google.c). Only data
 * otherwise: the hooks are Google's dialect, and the routes of Claude on
 * Vertex name the dialect they speak (Anthropic's). */
#include "providers/emulator/google.h"
#include "providers/google.h"
#include "providers/provider.h"

#define GEN RD_ROUTE_CACHEABLE
#define STREAM (RD_ROUTE_CACHEABLE | RD_ROUTE_STREAMABLE)

/* Captures: 1 project, 2 location, 3 publisher (or the model for the
 * publisher-specific routes), 4 model. The first match wins, so the
 * publisher-specific routes come before the generic ones.
 *
 * Claude on Vertex is Anthropic's Messages API behind rawPredict: the body
 * is a Messages request without "model" (the model is in the path) and with
 * "anthropic_version": "vertex-2023-10-16"; the answer, the SSE stream and
 * the errors are Anthropic's. Those routes name Anthropic as their dialect,
 * so the engine reads their usage and renders their errors with Anthropic's
 * hooks, and the emulator answers them with Anthropic's. Token counting
 * names the model in the body. */
#define PM(V) V "/projects/*/locations/*/publishers/"
#define CLAUDE (&rd_provider_anthropic)
/* clang-format off */
#define VERTEX_ROUTES(V)                                                                                               \
    {"POST", PM(V) "anthropic/models/count-tokens:rawPredict", RD_REQ_TOKENS, 0, RD_MODEL_IN_BODY, CLAUDE},          \
    {"POST", PM(V) "anthropic/models/*:rawPredict", RD_REQ_CHAT, GEN, 3, CLAUDE},                                      \
    {"POST", PM(V) "anthropic/models/*:streamRawPredict", RD_REQ_CHAT, STREAM, 3, CLAUDE},                             \
    /* Google's models (and any other publisher's) */                                                                  \
    {"POST", PM(V) "*/models/*:generateContent", RD_REQ_CHAT, GEN, 4, NULL},                                           \
    {"POST", PM(V) "*/models/*:streamGenerateContent", RD_REQ_CHAT, STREAM, 4, NULL},                                  \
    {"POST", PM(V) "*/models/*:countTokens", RD_REQ_TOKENS, 0, 4, NULL},                                             \
    {"POST", PM(V) "*/models/*:embedContent", RD_REQ_EMBEDDING, GEN, 4, NULL},                                         \
    {"POST", PM(V) "*/models/*:predict", RD_REQ_EMBEDDING, GEN, 4, NULL},                                              \
    {"POST", PM(V) "*/models/*:rawPredict", RD_REQ_CHAT, GEN, 4, NULL},                                                \
    {"POST", PM(V) "*/models/*:streamRawPredict", RD_REQ_CHAT, STREAM, 4, NULL},                                       \
    /* tuned models and deployed endpoints: the endpoint id is the model */                                            \
    {"POST", V "/projects/*/locations/*/endpoints/*:generateContent", RD_REQ_CHAT, GEN, 3, NULL},                      \
    {"POST", V "/projects/*/locations/*/endpoints/*:streamGenerateContent", RD_REQ_CHAT, STREAM, 3, NULL},             \
    /* models.get and models.list of @google/genai in Vertex mode */                                                   \
    {"GET", V "/publishers/google/models", RD_REQ_MODELS, 0, RD_MODEL_IN_BODY, NULL},                                \
    {"GET", V "/publishers/*/models/*", RD_REQ_MODELS, 0, 2, NULL}
/* clang-format on */

static const struct rd_route routes[] = {
    VERTEX_ROUTES("/v1beta1"),
    VERTEX_ROUTES("/v1"),
};

static const char *const auth_headers[] = {"authorization", "x-goog-api-key", "x-goog-user-project", NULL};
static const char *const secret_query_params[] = {"key", "access_token", NULL};
/* "labels" are user metadata "used for billing and reporting only"
 * (GenerateContentRequest); the answer never depends on them. */
static const char *const cache_ignore_fields[] = {"labels", NULL};

const struct rd_provider rd_provider_vertex_ai = {
    .name = "vertex_ai",
    .display_name = "Google Vertex AI",
    /* The global endpoint; with no upstream_url the host follows the
     * location in each request's path (rd_vertex_prepare). */
    .default_upstream = "https://aiplatform.googleapis.com",
    .dialect_name = "google",
    .sdk_base_path = "",
    .secret_query_params = secret_query_params,
    .auth_headers = auth_headers,
    .model_field = "model", /* count-tokens:rawPredict names it in the body */
    .max_tokens_fields = rd_google_max_tokens_fields,
    .cache_ignore_fields = cache_ignore_fields,
    .cache_round_fields = rd_google_cache_round_fields,
    .cache_query_params = rd_google_cache_query_params,
    .request_id_header = "x-request-id",
    .routes = routes,
    .nroutes = sizeof routes / sizeof routes[0],
    .framing = RD_FRAMING_SSE,
    .emulator = &rd_emu_dialect_google,
    .emulate = rd_emu_vertex,
    .model = rd_provider_model_default,
    .prepare = rd_vertex_prepare,
    .error = rd_provider_error_google,
    .stream_event = rd_provider_stream_event_google,
    .body_usage = rd_provider_body_usage_google,
};
