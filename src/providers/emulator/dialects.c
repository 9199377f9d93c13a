#include "providers/emulator/dialects.h"

#include <stddef.h>

static const char *const OPENAI_MODELS[] = {
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "o3-mini",
    "text-embedding-3-small",
    "text-embedding-3-large",
    "text-embedding-ada-002",
    "gpt-3.5-turbo-instruct",
    NULL,
};

static const char *const DEEPSEEK_MODELS[] = {
    "deepseek-chat",
    "deepseek-reasoner",
    NULL,
};

/* Which paths each dialect serves is the provider's route table
 * (providers/openai.c: DeepSeek's also has the routes without /v1), not
 * dialect data. default_model is NULL for both: the real APIs answer 400 when a request
 * names no model, and the emulator does the same. */
const struct rd_emu_dialect rd_emu_dialect_openai = {
    .owned_by = "openai",
    .models = OPENAI_MODELS,
    .default_model = NULL,
    .has_embeddings = true,
    .has_responses = true,
};

const struct rd_emu_dialect rd_emu_dialect_deepseek = {
    .owned_by = "deepseek",
    .models = DEEPSEEK_MODELS,
    .default_model = NULL,
    .has_embeddings = false,
    .has_responses = false,
};
