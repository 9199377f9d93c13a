#include "util/seal.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"
#include "util/hash.h"
#include "util/mem.h"

#define NONCE_LEN 12
#define TAG_LEN 16
#define PREFIX_LEN (sizeof RD_SEAL_PREFIX - 1)

bool rd_is_sealed(const char *s, size_t len)
{
    return len >= PREFIX_LEN && memcmp(s, RD_SEAL_PREFIX, PREFIX_LEN) == 0;
}

/* One AES-256-GCM pass: encrypt (enc) or decrypt n bytes of in into out,
 * the tag written (enc) or checked (!enc). Returns 0, or RD_EINVAL when the
 * cipher fails or the tag does not verify. */
static int gcm(bool enc, const uint8_t *key, const uint8_t *nonce, const char *aad, const uint8_t *in, size_t n,
               uint8_t *out, uint8_t *tag)
{
    int rc = RD_EINVAL;
    int len = 0;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL)
        return RD_EINVAL;
    size_t aad_len = strlen(aad);
    if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, nonce, enc ? 1 : 0) != 1)
        goto out;
    if (aad_len > 0 && EVP_CipherUpdate(ctx, NULL, &len, (const uint8_t *)aad, (int)aad_len) != 1)
        goto out;
    if (n > 0 && EVP_CipherUpdate(ctx, out, &len, in, (int)n) != 1)
        goto out;
    if (!enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) != 1)
        goto out;
    if (EVP_CipherFinal_ex(ctx, out + (n > 0 ? len : 0), &len) != 1)
        goto out;
    if (enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) != 1)
        goto out;
    rc = 0;
out:
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

int rd_seal(const uint8_t key[RD_SEAL_KEY_LEN], const char *aad, const void *plain, size_t n, struct rd_buf *out)
{
    if (n > RD_SEAL_MAX || strlen(aad) > RD_SEAL_MAX)
        return RD_ETOOBIG;
    size_t raw_len = NONCE_LEN + n + TAG_LEN;
    uint8_t *raw = rd_malloc(raw_len);
    /* base64: 4 characters per 3 bytes, and the NUL EVP_EncodeBlock writes. */
    char *b64 = rd_malloc(4 * ((raw_len + 2) / 3) + 1);
    int rc = rd_random_bytes(raw, NONCE_LEN);
    if (rc == 0)
        rc = gcm(true, key, raw, aad, plain, n, raw + NONCE_LEN, raw + NONCE_LEN + n);
    if (rc == 0) {
        int b64_len = EVP_EncodeBlock((unsigned char *)b64, raw, (int)raw_len);
        rc = rd_buf_appends(out, RD_SEAL_PREFIX);
        if (rc == 0)
            rc = rd_buf_append(out, b64, (size_t)b64_len);
    }
    OPENSSL_cleanse(raw, raw_len);
    free(raw);
    free(b64);
    return rc;
}

int rd_unseal(const uint8_t key[RD_SEAL_KEY_LEN], const char *aad, const char *sealed, size_t len,
              struct rd_buf *out)
{
    if (!rd_is_sealed(sealed, len))
        return RD_EPROTO;
    const char *b64 = sealed + PREFIX_LEN;
    size_t b64_len = len - PREFIX_LEN;
    /* The encoder never emits line breaks; the shortest value holds a nonce
     * and a tag, the longest stays within RD_SEAL_MAX. */
    if (b64_len % 4 != 0 || b64_len < 4 * ((NONCE_LEN + TAG_LEN + 2) / 3) || b64_len / 4 * 3 > RD_SEAL_MAX + 64 ||
        strlen(aad) > RD_SEAL_MAX)
        return RD_EPROTO;
    for (size_t i = 0; i < b64_len; i++) {
        unsigned char c = (unsigned char)b64[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
                  c == '/' || (c == '=' && i >= b64_len - 2);
        if (!ok)
            return RD_EPROTO;
    }
    size_t pad = (size_t)(b64[b64_len - 1] == '=') + (size_t)(b64[b64_len - 2] == '=');
    if (pad == 1 && b64[b64_len - 2] == '=')
        return RD_EPROTO;
    uint8_t *raw = rd_malloc(b64_len / 4 * 3);
    int decoded = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)b64_len);
    int rc = RD_EPROTO;
    uint8_t *plain = NULL;
    size_t n = 0;
    if (decoded < 0 || (size_t)decoded < pad || (size_t)decoded - pad < NONCE_LEN + TAG_LEN)
        goto out;
    n = (size_t)decoded - pad - NONCE_LEN - TAG_LEN;
    plain = rd_malloc(n + 1);
    rc = gcm(false, key, raw, aad, raw + NONCE_LEN, n, plain, raw + NONCE_LEN + n);
    if (rc == 0)
        rc = rd_buf_append(out, plain, n);
    OPENSSL_cleanse(plain, n + 1);
out:
    free(plain);
    free(raw);
    return rc;
}
