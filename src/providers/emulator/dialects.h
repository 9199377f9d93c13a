/* The OpenAI-compatible dialects the emulator speaks: data only, the code
 * that answers them is rd_emu_openai() (openai.c). */
#ifndef RD_PROVIDERS_EMULATOR_DIALECTS_H
#define RD_PROVIDERS_EMULATOR_DIALECTS_H

#include "providers/emulator/emulator.h"

/* OpenAI: chat, completions, embeddings, responses and models. Read-only,
 * safe to share between threads. */
extern const struct rd_emu_dialect rd_emu_dialect_openai;
/* DeepSeek: chat, completions and models; no embeddings, no responses API
 * (those paths answer 404 like any unknown URL). */
extern const struct rd_emu_dialect rd_emu_dialect_deepseek;

/* Azure OpenAI (the model reported is the request's deployment, mapped) and
 * the OpenAI-compatible presets (dialects_compat.c). */
extern const struct rd_emu_dialect rd_emu_dialect_azure_openai;
extern const struct rd_emu_dialect rd_emu_dialect_groq;
extern const struct rd_emu_dialect rd_emu_dialect_mistral;
extern const struct rd_emu_dialect rd_emu_dialect_together;
extern const struct rd_emu_dialect rd_emu_dialect_openrouter;
extern const struct rd_emu_dialect rd_emu_dialect_xai;
extern const struct rd_emu_dialect rd_emu_dialect_ollama;
extern const struct rd_emu_dialect rd_emu_dialect_openai_compatible;

#endif
