/* The per-worker key memo (cache/memo.h): a hit only for the same bytes
 * under the same configuration generation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cache/memo.h"
#include "util/mem.h"

static void test_same_bytes_same_gen(void **state)
{
    (void)state;
    struct rd_key_memo *m = rd_calloc(1, sizeof *m);
    const char a[] = "POST /v1/chat {\"x\":1}";
    uint8_t k[RD_CACHE_KEY_LEN], got[RD_CACHE_KEY_LEN];
    memset(k, 7, sizeof k);
    uint64_t h = rd_key_memo_hash(a, sizeof a - 1);
    assert_false(rd_key_memo_get(m, 1, a, sizeof a - 1, h, got));
    rd_key_memo_put(m, 1, a, sizeof a - 1, h, k);
    assert_true(rd_key_memo_get(m, 1, a, sizeof a - 1, h, got));
    assert_memory_equal(got, k, sizeof k);
    /* another configuration: its rules may differ */
    assert_false(rd_key_memo_get(m, 2, a, sizeof a - 1, h, got));
    /* the same hash (forced) but other bytes of the same length: no hit */
    const char b[] = "POST /v1/chat {\"x\":2}";
    assert_false(rd_key_memo_get(m, 1, b, sizeof b - 1, h, got));
    /* a prefix: no hit */
    assert_false(rd_key_memo_get(m, 1, a, sizeof a - 2, h, got));
    /* replaced by the next put of the slot */
    uint8_t k2[RD_CACHE_KEY_LEN];
    memset(k2, 9, sizeof k2);
    rd_key_memo_put(m, 1, b, sizeof b - 1, h, k2);
    assert_false(rd_key_memo_get(m, 1, a, sizeof a - 1, h, got));
    assert_true(rd_key_memo_get(m, 1, b, sizeof b - 1, h, got));
    assert_memory_equal(got, k2, sizeof k2);
    rd_key_memo_free(m);
}

static void test_hash_spreads_and_caps(void **state)
{
    (void)state;
    struct rd_key_memo *m = rd_calloc(1, sizeof *m);
    assert_int_not_equal(rd_key_memo_hash("abcdefgh1", 9), rd_key_memo_hash("abcdefgh2", 9));
    assert_int_not_equal(rd_key_memo_hash("", 0), rd_key_memo_hash("\0", 1));
    static char big[RD_KEY_MEMO_MAX + 1];
    uint8_t k[RD_CACHE_KEY_LEN] = {1}, got[RD_CACHE_KEY_LEN];
    uint64_t h = rd_key_memo_hash(big, sizeof big);
    rd_key_memo_put(m, 1, big, sizeof big, h, k); /* too big: not kept */
    assert_false(rd_key_memo_get(m, 1, big, sizeof big, h, got));
    rd_key_memo_free(m);
    rd_key_memo_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_bytes_same_gen),
        cmocka_unit_test(test_hash_spreads_and_caps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
