/* Tests for src/util/err.c: error messages and the optional error buffer
 * the store and configuration functions fill. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util/err.h"

static void test_seterr_formats_and_truncates(void **state)
{
    (void)state;
    char buf[16];
    rd_seterr(buf, sizeof buf, "cannot open '%s': %d", "x.db", 5);
    assert_string_equal(buf, "cannot open 'x.");
    rd_seterr(buf, sizeof buf, "%s", "short");
    assert_string_equal(buf, "short");
    /* no buffer, or an empty one: nothing is written */
    rd_seterr(NULL, 0, "%s", "ignored");
    memset(buf, 'z', sizeof buf);
    rd_seterr(buf, 0, "%s", "ignored");
    assert_int_equal(buf[0], 'z');
    rd_seterr(buf, 1, "%s", "ignored");
    assert_int_equal(buf[0], '\0');
}

static void test_strerror(void **state)
{
    (void)state;
    assert_string_equal(rd_strerror(0), "success");
    assert_string_equal(rd_strerror(RD_EUPSTREAM), "upstream failure");
    assert_string_equal(rd_strerror(-ENOENT), strerror(ENOENT));
    assert_string_equal(rd_strerror(-20000), "unknown error");
    assert_string_equal(rd_strerror(7), "unknown error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seterr_formats_and_truncates),
        cmocka_unit_test(test_strerror),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
