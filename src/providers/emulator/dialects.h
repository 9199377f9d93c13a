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

#endif
