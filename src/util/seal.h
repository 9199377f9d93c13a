/* Secrets at rest: AES-256-GCM (OpenSSL) under a key the caller holds, as
 * printable text that can sit in a JSON string in the database. A sealed
 * value is RD_SEAL_PREFIX followed by base64(nonce || ciphertext || tag),
 * with a fresh random 96-bit nonce each time; the associated data (the
 * field's name) is authenticated, so a sealed value moved to another field
 * does not open. Pure apart from the randomness; any thread. */
#ifndef RD_UTIL_SEAL_H
#define RD_UTIL_SEAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

#define RD_SEAL_KEY_LEN 32
#define RD_SEAL_PREFIX "rdsealed:v1:"

/* Longest plaintext rd_seal accepts (a cap: sizes here fit an int). */
#define RD_SEAL_MAX (1u << 20)

/* Appends the sealed form of plain (n bytes) to out. aad is NUL-terminated
 * (may be ""). Returns 0, RD_ETOOBIG (n over RD_SEAL_MAX or out's cap) or
 * RD_EINVAL (no randomness, cipher failure). */
int rd_seal(const uint8_t key[RD_SEAL_KEY_LEN], const char *aad, const void *plain, size_t n, struct rd_buf *out);

/* True if s (len bytes) starts with RD_SEAL_PREFIX. */
bool rd_is_sealed(const char *s, size_t len);

/* Appends the plaintext of sealed (len bytes, with its prefix) to out.
 * Returns 0, RD_EPROTO (not a sealed value: prefix, base64 or length
 * wrong), RD_EINVAL (wrong key, wrong aad or tampered: the tag does not
 * verify) or RD_ETOOBIG (out's cap). On error out is left as it was. */
int rd_unseal(const uint8_t key[RD_SEAL_KEY_LEN], const char *aad, const char *sealed, size_t len,
              struct rd_buf *out);

#endif
