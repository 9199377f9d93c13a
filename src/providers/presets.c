/* OpenAI-compatible presets: providers reached through the OpenAI SDK with
 * another base URL. They differ from openai only in this data: name,
 * default upstream, the path prefix their SDK base URL carries (so the
 * route table matches what the SDK sends through the proxy), which of the
 * OpenAI endpoints they serve, and their emulator dialect (its model list).
 * Each base URL below is the one the provider documents for the OpenAI SDK;
 * docs/providers.md has the sources. */
#include "providers/openai_compat.h"

static const char *const bearer[] = {"authorization", NULL};

/* Groq: base URL https://api.groq.com/openai/v1 (chat, responses, models;
 * no embeddings or legacy completions). */
static const struct rd_route groq_routes[] = {
    RD_OAI_CHAT("/openai/v1"),
    RD_OAI_RESPONSES("/openai/v1"),
    RD_OAI_MODELS("/openai/v1"),
};

/* Mistral: https://api.mistral.ai/v1 (chat, embeddings, models; FIM and
 * agents have their own shapes and are forwarded as unknown routes). */
static const struct rd_route mistral_routes[] = {
    RD_OAI_CHAT("/v1"),
    RD_OAI_EMBEDDINGS("/v1"),
    RD_OAI_MODELS("/v1"),
};

/* Together AI: https://api.together.xyz/v1. */
static const struct rd_route together_routes[] = {
    RD_OAI_CHAT("/v1"),
    RD_OAI_COMPLETIONS("/v1"),
    RD_OAI_EMBEDDINGS("/v1"),
    RD_OAI_MODELS("/v1"),
};

/* OpenRouter: https://openrouter.ai/api/v1. */
static const struct rd_route openrouter_routes[] = {
    RD_OAI_CHAT("/api/v1"),      RD_OAI_COMPLETIONS("/api/v1"), RD_OAI_EMBEDDINGS("/api/v1"),
    RD_OAI_RESPONSES("/api/v1"), RD_OAI_MODELS("/api/v1"),
};

/* xAI: https://api.x.ai/v1. */
static const struct rd_route xai_routes[] = {
    RD_OAI_CHAT("/v1"),
    RD_OAI_COMPLETIONS("/v1"),
    RD_OAI_RESPONSES("/v1"),
    RD_OAI_MODELS("/v1"),
};

/* Ollama's OpenAI-compatible API (http://127.0.0.1:11434/v1), and the
 * generic OpenAI-compatible server (vLLM, LM Studio, llama.cpp server):
 * the whole OpenAI /v1 surface. */
static const struct rd_route v1_routes[] = {
    RD_OAI_CHAT("/v1"),      RD_OAI_COMPLETIONS("/v1"), RD_OAI_EMBEDDINGS("/v1"),
    RD_OAI_RESPONSES("/v1"), RD_OAI_MODELS("/v1"),
};

#define PRESET_HOOKS .auth_headers = bearer, .model = rd_provider_model_default, .error = rd_provider_error_openai

const struct rd_provider rd_provider_groq = {
    .name = "groq",
    .display_name = "Groq",
    .default_upstream = "https://api.groq.com",
    .sdk_base_path = "/openai/v1",
    .routes = groq_routes,
    .nroutes = RD_NROUTES(groq_routes),
    .emulator = &rd_emu_dialect_groq,
    .ratelimit_headers = &rd_ratelimit_names_openai, /* Groq documents OpenAI's x-ratelimit-* names */
    PRESET_HOOKS,
    RD_OAI_COMPAT_MEMBERS,
};

const struct rd_provider rd_provider_mistral = {
    .name = "mistral",
    .display_name = "Mistral AI",
    .default_upstream = "https://api.mistral.ai",
    .sdk_base_path = "/v1",
    .routes = mistral_routes,
    .nroutes = RD_NROUTES(mistral_routes),
    .emulator = &rd_emu_dialect_mistral,
    PRESET_HOOKS,
    RD_OAI_COMPAT_MEMBERS,
};

const struct rd_provider rd_provider_together = {
    .name = "together",
    .display_name = "Together AI",
    .default_upstream = "https://api.together.xyz",
    .sdk_base_path = "/v1",
    .routes = together_routes,
    .nroutes = RD_NROUTES(together_routes),
    .emulator = &rd_emu_dialect_together,
    PRESET_HOOKS,
    RD_OAI_COMPAT_MEMBERS,
};

const struct rd_provider rd_provider_openrouter = {
    .name = "openrouter",
    .display_name = "OpenRouter",
    .default_upstream = "https://openrouter.ai/api",
    .sdk_base_path = "/api/v1",
    .routes = openrouter_routes,
    .nroutes = RD_NROUTES(openrouter_routes),
    .emulator = &rd_emu_dialect_openrouter,
    PRESET_HOOKS,
    RD_OAI_COMPAT_MEMBERS,
};

const struct rd_provider rd_provider_xai = {
    .name = "xai",
    .display_name = "xAI",
    .default_upstream = "https://api.x.ai",
    .sdk_base_path = "/v1",
    .routes = xai_routes,
    .nroutes = RD_NROUTES(xai_routes),
    .emulator = &rd_emu_dialect_xai,
    PRESET_HOOKS,
    RD_OAI_COMPAT_MEMBERS,
};

const struct rd_provider rd_provider_ollama = {
    .name = "ollama",
    .display_name = "Ollama",
    .default_upstream = "http://127.0.0.1:11434",
    .sdk_base_path = "/v1",
    .routes = v1_routes,
    .nroutes = RD_NROUTES(v1_routes),
    .emulator = &rd_emu_dialect_ollama,
    PRESET_HOOKS,
    RD_OAI_COMPAT_MEMBERS,
};

const struct rd_provider rd_provider_openai_compatible = {
    .name = "openai_compatible",
    .display_name = "OpenAI-compatible server",
    .default_upstream = NULL,
    .upstream_required = true,
    .sdk_base_path = "/v1",
    .routes = v1_routes,
    .nroutes = RD_NROUTES(v1_routes),
    .emulator = &rd_emu_dialect_openai_compatible,
    PRESET_HOOKS,
    RD_OAI_COMPAT_MEMBERS,
};
