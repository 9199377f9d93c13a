/* Tests for util/seal.c (AES-256-GCM at rest) and the sealing of the
 * configuration's secret fields (proxy/secrets.c). The known-answer cases
 * are Test Cases 13 and 14 of McGrew and Viega's GCM specification
 * (256-bit zero key, zero IV), also in NIST's GCM validation vectors. */
#include <json-c/json.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "proxy/secrets.h"
#include "util/err.h"
#include "util/json.h"
#include "util/seal.h"

static const uint8_t ZERO_KEY[RD_SEAL_KEY_LEN];

static int unseal_str(const uint8_t *key, const char *aad, const char *sealed, struct rd_buf *out)
{
    return rd_unseal(key, aad, sealed, strlen(sealed), out);
}

static void test_known_answers(void **state)
{
    (void)state;
    struct rd_buf b;
    rd_buf_init(&b, 0);
    /* Test Case 13: empty plaintext; the value is IV || tag. */
    assert_int_equal(unseal_str(ZERO_KEY, "", RD_SEAL_PREFIX "AAAAAAAAAAAAAAAAUw+K+8dFNrmpY7TxxMtziw==", &b), 0);
    assert_int_equal(b.len, 0);
    /* Test Case 14: 16 zero bytes; IV || ciphertext || tag. */
    assert_int_equal(
        unseal_str(ZERO_KEY, "", RD_SEAL_PREFIX "AAAAAAAAAAAAAAAAzqdAPU1ga24HTsXTuvOdGNDRyKeZmWvwJluYtdSKuRk=", &b), 0);
    assert_int_equal(b.len, 16);
    static const uint8_t zeros[16];
    assert_memory_equal(b.data, zeros, 16);
    rd_buf_free(&b);
}

static void test_round_trip_and_refusals(void **state)
{
    (void)state;
    uint8_t key[RD_SEAL_KEY_LEN], other[RD_SEAL_KEY_LEN];
    memset(key, 7, sizeof key);
    memset(other, 8, sizeof other);
    const char *plain = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    struct rd_buf s1, s2, out;
    rd_buf_init(&s1, 0);
    rd_buf_init(&s2, 0);
    rd_buf_init(&out, 0);
    assert_int_equal(rd_seal(key, "aws.secret_access_key", plain, strlen(plain), &s1), 0);
    assert_int_equal(rd_seal(key, "aws.secret_access_key", plain, strlen(plain), &s2), 0);
    assert_true(rd_is_sealed(s1.data, s1.len));
    assert_null(memmem(s1.data, s1.len, plain, strlen(plain)));
    /* a fresh nonce each time: the same secret never seals the same */
    assert_false(s1.len == s2.len && memcmp(s1.data, s2.data, s1.len) == 0);
    assert_int_equal(rd_unseal(key, "aws.secret_access_key", s1.data, s1.len, &out), 0);
    assert_int_equal(out.len, strlen(plain));
    assert_memory_equal(out.data, plain, out.len);
    rd_buf_reset(&out);
    /* another key, another field, a flipped bit: the tag does not verify */
    assert_int_equal(rd_unseal(other, "aws.secret_access_key", s1.data, s1.len, &out), RD_EINVAL);
    assert_int_equal(rd_unseal(key, "aws.session_token", s1.data, s1.len, &out), RD_EINVAL);
    char *t = strndup(s1.data, s1.len);
    t[sizeof RD_SEAL_PREFIX + 20] = t[sizeof RD_SEAL_PREFIX + 20] == 'A' ? 'B' : 'A';
    assert_int_equal(unseal_str(key, "aws.secret_access_key", t, &out), RD_EINVAL);
    free(t);
    assert_int_equal(out.len, 0);
    /* not sealed values */
    static const char *const bad[] = {
        "plain", RD_SEAL_PREFIX, RD_SEAL_PREFIX "AAAA", RD_SEAL_PREFIX "AAAAAAAAAAAAAAAAUw+K+8dFNrmpY7TxxMtzi",
        RD_SEAL_PREFIX "AAAAAAAAAAAAAAAAUw+K+8dFNrmpY7TxxMtz=w==", RD_SEAL_PREFIX "AAAAAAAAAAAAAAAAUw+K+8dFNrmpY7Txx\nMtziw==",
        RD_SEAL_PREFIX "AAAAAAAAAAAAAAAAUw+K+8dFNrmpY7TxxMtz*w==",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(unseal_str(ZERO_KEY, "", bad[i], &out), RD_EPROTO);
    assert_int_equal(out.len, 0);
    rd_buf_free(&s1);
    rd_buf_free(&s2);
    rd_buf_free(&out);
}

static struct json_object *parse(const char *s)
{
    struct json_object *o = NULL;
    assert_int_equal(rd_json_parse(s, strlen(s), 1u << 20, &o, NULL), 0);
    return o;
}

static const char *field(struct json_object *doc, const char *name)
{
    return rd_json_get_str(rd_json_get(doc, "aws"), name);
}

static void test_config_documents(void **state)
{
    (void)state;
    uint8_t key[RD_SEAL_KEY_LEN];
    memset(key, 3, sizeof key);
    rd_secrets_set_key(key);
    struct json_object *doc =
        parse("{\"aws\":{\"access_key_id\":\"AKID\",\"secret_access_key\":\"S3CRET\",\"session_token\":\"T0KEN\"}}");
    assert_int_equal(rd_config_seal(doc), 0);
    assert_string_equal(field(doc, "access_key_id"), "AKID"); /* not a secret */
    assert_true(rd_is_sealed(field(doc, "secret_access_key"), strlen(field(doc, "secret_access_key"))));
    assert_true(rd_is_sealed(field(doc, "session_token"), strlen(field(doc, "session_token"))));
    char *sealed_text = strdup(rd_json_str(doc, NULL));
    assert_null(strstr(sealed_text, "S3CRET"));
    assert_null(strstr(sealed_text, "T0KEN"));
    /* sealing twice leaves sealed values as they are */
    char *before = strdup(field(doc, "secret_access_key"));
    assert_int_equal(rd_config_seal(doc), 0);
    assert_string_equal(field(doc, "secret_access_key"), before);
    free(before);

    /* a client sends back the placeholder: the stored (sealed) value returns
     * and opens to the original */
    struct json_object *back = parse("{\"aws\":{\"secret_access_key\":\"********\",\"session_token\":\"NEW\"}}");
    rd_config_restore_secrets(back, sealed_text);
    const char *f = "unset";
    assert_int_equal(rd_config_unseal(back, &f), 0);
    assert_null(f);
    assert_string_equal(field(back, "secret_access_key"), "S3CRET");
    assert_string_equal(field(back, "session_token"), "NEW");
    json_object_put(back);

    /* the redacted form shows placeholders only */
    rd_config_redact(doc);
    assert_string_equal(field(doc, "secret_access_key"), RD_SECRET_PLACEHOLDER);
    assert_string_equal(field(doc, "session_token"), RD_SECRET_PLACEHOLDER);
    json_object_put(doc);

    /* another key cannot open them, and says which field */
    uint8_t other[RD_SEAL_KEY_LEN];
    memset(other, 4, sizeof other);
    rd_secrets_set_key(other);
    struct json_object *stored = parse(sealed_text);
    assert_int_equal(rd_config_unseal(stored, &f), RD_EINVAL);
    assert_string_equal(f, "aws.secret_access_key");
    json_object_put(stored);
    free(sealed_text);
}

static void test_key_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/rd-test-secrets-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128], why[256];
    snprintf(path, sizeof path, "%s/secrets.key", dir);
    assert_int_equal(rd_secrets_load_key(path, why, sizeof why), 0); /* created */
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, 65);
    /* a value sealed now opens after the key is read back from the file */
    struct json_object *doc = parse("{\"aws\":{\"secret_access_key\":\"KEPT\"}}");
    assert_int_equal(rd_config_seal(doc), 0);
    uint8_t other[RD_SEAL_KEY_LEN] = {1};
    rd_secrets_set_key(other);
    assert_int_equal(rd_secrets_load_key(path, why, sizeof why), 0); /* read */
    assert_int_equal(rd_config_unseal(doc, NULL), 0);
    assert_string_equal(field(doc, "secret_access_key"), "KEPT");
    json_object_put(doc);
    /* a damaged file is refused with a message naming it */
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("not hex\n", fp);
    fclose(fp);
    assert_int_equal(rd_secrets_load_key(path, why, sizeof why), RD_EINVAL);
    assert_non_null(strstr(why, path));
    unlink(path);
    rmdir(dir);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_answers),
        cmocka_unit_test(test_round_trip_and_refusals),
        cmocka_unit_test(test_config_documents),
        cmocka_unit_test(test_key_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
