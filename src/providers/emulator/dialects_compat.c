/* Emulator dialects of Azure OpenAI and the OpenAI-compatible presets
 * (providers/azure_openai.c, providers/presets.c): data only, answered by
 * rd_emu_openai() like OpenAI's. Which paths each serves is its provider's
 * route table; the feature flags only say what a route kind may do. The
 * model lists are what each provider's GET .../models shows for a typical
 * account (docs/emulator.md). */
#include "providers/emulator/dialects.h"

#include <stddef.h>

static const char *const AZURE_MODELS[] = {
    "gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "o3-mini", "text-embedding-3-small", "text-embedding-3-large",
    NULL,
};

static const char *const GROQ_MODELS[] = {
    "llama-3.3-70b-versatile",
    "llama-3.1-8b-instant",
    "openai/gpt-oss-120b",
    "openai/gpt-oss-20b",
    "meta-llama/llama-4-scout-17b-16e-instruct",
    "qwen/qwen3-32b",
    NULL,
};

static const char *const MISTRAL_MODELS[] = {
    "mistral-large-latest", "mistral-medium-latest", "mistral-small-latest", "ministral-8b-latest",
    "codestral-latest",     "open-mistral-nemo",     "mistral-embed",        NULL,
};

static const char *const TOGETHER_MODELS[] = {
    "meta-llama/Llama-3.3-70B-Instruct-Turbo",
    "meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo",
    "deepseek-ai/DeepSeek-V3",
    "Qwen/Qwen2.5-72B-Instruct-Turbo",
    "mistralai/Mixtral-8x7B-Instruct-v0.1",
    "BAAI/bge-large-en-v1.5",
    NULL,
};

static const char *const OPENROUTER_MODELS[] = {
    "openai/gpt-4o",
    "openai/gpt-4o-mini",
    "anthropic/claude-sonnet-4",
    "google/gemini-2.5-flash",
    "meta-llama/llama-3.3-70b-instruct",
    "deepseek/deepseek-chat",
    "openai/text-embedding-3-small",
    NULL,
};

static const char *const XAI_MODELS[] = {"grok-4", "grok-3", "grok-3-mini", "grok-code-fast-1", NULL};

static const char *const OLLAMA_MODELS[] = {"llama3.2", "llama3.1:8b", "qwen2.5", "mistral", "nomic-embed-text", NULL};

static const char *const COMPATIBLE_MODELS[] = {"local-model", NULL};

/* Azure answers as the deployment: the model a response names is the one
 * the engine found for the request (the deployment, mapped through the
 * proxy's deployments block), not the body's "model". The emulated resource
 * has the deployments of that block plus one per model of its list, named
 * after the model; others, and paths Azure does not have, get Azure's own
 * 404 bodies (code and message, no type or param). */
const struct rd_emu_dialect rd_emu_dialect_azure_openai = {
    .owned_by = "system",
    .models = AZURE_MODELS,
    .has_embeddings = true,
    .has_responses = true,
    .model_from_request = true,
    .deployments_checked = true,
    .deployment_not_found_body =
        "{\"error\":{\"code\":\"DeploymentNotFound\",\"message\":\"The API deployment for this resource does not "
        "exist. If you created the deployment within the last 5 minutes, please wait a moment and try again.\"}}",
    .unknown_route_body = "{\"error\":{\"code\":\"404\",\"message\":\"Resource not found\"}}",
};

const struct rd_emu_dialect rd_emu_dialect_groq = {
    .owned_by = "groq", .models = GROQ_MODELS, .has_embeddings = false, .has_responses = true};
const struct rd_emu_dialect rd_emu_dialect_mistral = {
    .owned_by = "mistralai", .models = MISTRAL_MODELS, .has_embeddings = true, .has_responses = false};
/* Together's GET /v1/models answers a bare array of model objects. */
const struct rd_emu_dialect rd_emu_dialect_together = {.owned_by = "together",
                                                        .models = TOGETHER_MODELS,
                                                        .has_embeddings = true,
                                                        .has_responses = false,
                                                        .models_bare_array = true};
const struct rd_emu_dialect rd_emu_dialect_openrouter = {
    .owned_by = "openrouter", .models = OPENROUTER_MODELS, .has_embeddings = true, .has_responses = true};
const struct rd_emu_dialect rd_emu_dialect_xai = {
    .owned_by = "xai", .models = XAI_MODELS, .has_embeddings = false, .has_responses = true};
/* Ollama lists pulled models as owned by "library". */
const struct rd_emu_dialect rd_emu_dialect_ollama = {
    .owned_by = "library", .models = OLLAMA_MODELS, .has_embeddings = true, .has_responses = true};
const struct rd_emu_dialect rd_emu_dialect_openai_compatible = {
    .owned_by = "local", .models = COMPATIBLE_MODELS, .has_embeddings = true, .has_responses = true};
