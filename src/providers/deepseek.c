/* DeepSeek: OpenAI-compatible API at https://api.deepseek.com, Bearer auth.
 * Only the data differs from openai.c. */
#include "providers/emulator/dialects.h"
#include "providers/openai_routes.h"
#include "providers/provider.h"

static const char *const auth_headers[] = {"authorization", NULL};

const struct rd_provider rd_provider_deepseek = {
    .name = "deepseek",
    .display_name = "DeepSeek",
    .default_upstream = "https://api.deepseek.com",
    .auth_headers = auth_headers,
    .dialect_name = "openai",
    .sdk_base_path = "",
    .model_field = "model",
    .max_tokens_fields = rd_provider_max_tokens_openai,
    .cache_ignore_fields = rd_provider_cache_ignore_openai,
    .cache_round_fields = rd_provider_cache_round_top,
    .routes = rd_openai_routes,
    .nroutes = RD_OPENAI_ROUTES_ALL,
    .request_id_header = "x-request-id",
    .error_style = RD_ERRSTYLE_OPENAI,
    .ratelimit_headers = &rd_ratelimit_names_openai,
    .framing = RD_FRAMING_SSE,
    .emulator = &rd_emu_dialect_deepseek,
    .emulate = rd_emu_openai,
    .model = rd_provider_model_default,
    .prepare = rd_provider_prepare_passthrough,
    .error = rd_provider_error_openai,
    .stream_event = rd_provider_stream_event_openai,
    .body_usage = rd_provider_body_usage_openai,
};
