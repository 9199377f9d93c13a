/* Deterministic text for the emulator: the answer a dialect puts in a
 * completion, split into token-sized pieces so streams and usage agree, plus
 * the token estimate used for prompts and base64 for embeddings.
 *
 * Everything here is a pure function of its arguments (no clock, no global
 * state), so the same request always gets the same answer. */
#ifndef RD_PROVIDERS_EMULATOR_TEXT_H
#define RD_PROVIDERS_EMULATOR_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/hash.h"

/* Longest echo of the user's message, in Unicode code points. */
#define RD_EMU_ECHO_MAX_CHARS 200
/* Filler after the echo: between these many tokens, chosen by the seed. */
#define RD_EMU_FILLER_MIN 20
#define RD_EMU_FILLER_MAX 60

/* A generated answer. Piece i (one "token") is s[start_i .. ends[i]) where
 * start_0 = 0 and start_i = ends[i - 1]; the pieces concatenate to s. */
struct rd_emu_text {
    char *s;      /* owned, NUL-terminated */
    size_t len;
    size_t *ends; /* owned, n entries */
    size_t n;     /* number of pieces, i.e. completion tokens */
    bool truncated; /* true when max_tokens cut the answer short */
};

/* Generates the answer for seed: 'You said: "<echo>".' (echo cut to
 * RD_EMU_ECHO_MAX_CHARS code points at a UTF-8 boundary) followed by filler
 * sentences whose length in tokens (RD_EMU_FILLER_MIN..MAX) and words come
 * from the seed. At most max_tokens pieces are kept (0 means no limit).
 * echo is borrowed and may contain NULs. Free the result with
 * rd_emu_text_free. Never fails (aborts on OOM). */
void rd_emu_text_generate(const uint8_t seed[RD_SHA256_LEN], const char *echo, size_t echo_len, uint32_t max_tokens,
                          struct rd_emu_text *out);

/* Releases t's storage and empties it. NULL-safe. */
void rd_emu_text_free(struct rd_emu_text *t);

/* Length in bytes of piece i of t (i < t->n), and its start. */
size_t rd_emu_text_piece(const struct rd_emu_text *t, size_t i, const char **start);

/* The token estimate: ceil(nbytes / 4). Documented in docs/emulator.md. */
uint32_t rd_emu_tokens_estimate(size_t nbytes);

/* Standard base64 (with padding) of p[0..n). Returns a NUL-terminated string
 * owned by the caller, its length in *out_len. n must be below 1 GiB (the
 * callers cap their inputs far below that); aborts otherwise. */
char *rd_emu_base64(const void *p, size_t n, size_t *out_len);

/* Derives a sub-seed: SHA-256(seed || label || index as 4 little-endian bytes). */
void rd_emu_subseed(const uint8_t seed[RD_SHA256_LEN], const char *label, uint32_t index, uint8_t out[RD_SHA256_LEN]);

/* Fills v[0..dims) with a unit vector derived from (model, p[0..n)):
 * uniform values in (-1, 1) from SHA-256 in counter mode, normalised.
 * Component k does not depend on dims, so a shortened vector is a
 * renormalised prefix of the full one (as text-embedding-3 and Gemini's
 * outputDimensionality behave). Shared by every dialect's embeddings. */
void rd_emu_embedding(const char *model, const char *p, size_t n, uint32_t dims, float *v);

#endif
