/* Tests for src/http/headers.c: the header list the parser fills and the
 * proxy filters (hop-by-hop rules of RFC 9110 7.6.1). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "http/headers.h"

struct fixture {
    struct rd_arena arena;
    struct rd_hdrs h;
};

static int setup(void **state)
{
    static struct fixture f;
    rd_arena_init(&f.arena);
    rd_hdrs_init(&f.h, &f.arena);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    rd_hdrs_free(&f->h);
    rd_arena_free(&f->arena);
    return 0;
}

static void add(struct rd_hdrs *h, const char *name, const char *value)
{
    rd_hdrs_add(h, name, strlen(name), value, strlen(value));
}

static void test_add_trims_and_copies(void **state)
{
    struct fixture *f = *state;
    char name[] = "X-Name";
    char value[] = " \t padded value \t ";
    rd_hdrs_add(&f->h, name, strlen(name), value, strlen(value));
    /* the list keeps copies: changing the input must not change it */
    memset(name, 'z', sizeof name - 1);
    memset(value, 'z', sizeof value - 1);
    assert_int_equal(f->h.n, 1);
    assert_string_equal(f->h.v[0].name, "X-Name");
    assert_int_equal(f->h.v[0].name_len, 6);
    assert_string_equal(f->h.v[0].value, "padded value");
    assert_int_equal(f->h.v[0].value_len, 12);
    /* counted input: bytes past the given length are not read */
    rd_hdrs_add(&f->h, "Host-and-more", 4, "  x  trailing", 3);
    assert_string_equal(f->h.v[1].name, "Host");
    assert_string_equal(f->h.v[1].value, "x");
    add(&f->h, "Empty", "   ");
    assert_string_equal(rd_hdrs_get(&f->h, "empty"), "");
    assert_int_equal(rd_hdrs_find(&f->h, "empty")->value_len, 0);
    /* inner whitespace is kept */
    add(&f->h, "Inner", "a \t b");
    assert_string_equal(rd_hdrs_get(&f->h, "inner"), "a \t b");
}

static void test_find_count_case_insensitive(void **state)
{
    struct fixture *f = *state;
    add(&f->h, "Content-Type", "application/json");
    add(&f->h, "X-Dup", "one");
    add(&f->h, "x-dup", "two");
    add(&f->h, "X-DUP", "three");
    assert_string_equal(rd_hdrs_get(&f->h, "CONTENT-TYPE"), "application/json");
    assert_string_equal(rd_hdrs_find(&f->h, "content-type")->name, "Content-Type");
    /* find returns the first match */
    assert_string_equal(rd_hdrs_get(&f->h, "X-Dup"), "one");
    assert_int_equal(rd_hdrs_count(&f->h, "x-DUP"), 3);
    assert_int_equal(rd_hdrs_count(&f->h, "content-type"), 1);
    assert_int_equal(rd_hdrs_count(&f->h, "missing"), 0);
    assert_null(rd_hdrs_find(&f->h, "missing"));
    assert_null(rd_hdrs_get(&f->h, "missing"));
    /* a prefix is not a match */
    assert_null(rd_hdrs_get(&f->h, "Content"));
    assert_null(rd_hdrs_get(&f->h, "Content-Type-X"));
}

static void test_add_ref_and_clear(void **state)
{
    struct fixture *f = *state;
    static const char name[] = "X-Ref";
    static const char value[] = "static";
    rd_hdrs_add_ref(&f->h, name, value);
    assert_ptr_equal(f->h.v[0].name, name);
    assert_ptr_equal(f->h.v[0].value, value);
    assert_int_equal(f->h.v[0].value_len, 6);
    /* growing past the initial capacity keeps earlier entries intact */
    char buf[32];
    for (int i = 0; i < 100; i++) {
        int n = snprintf(buf, sizeof buf, "H%d", i);
        rd_hdrs_add(&f->h, buf, (size_t)n, buf, (size_t)n);
    }
    assert_int_equal(f->h.n, 101);
    assert_string_equal(rd_hdrs_get(&f->h, "x-ref"), "static");
    assert_string_equal(rd_hdrs_get(&f->h, "h99"), "H99");
    rd_hdrs_clear(&f->h);
    assert_int_equal(f->h.n, 0);
    assert_null(rd_hdrs_get(&f->h, "x-ref"));
    add(&f->h, "After", "clear");
    assert_int_equal(f->h.n, 1);
    assert_string_equal(rd_hdrs_get(&f->h, "after"), "clear");
}

static bool hop(const char *name)
{
    return rd_hdr_is_hop_by_hop(name, strlen(name));
}

static void test_hop_by_hop(void **state)
{
    (void)state;
    assert_true(hop("Connection"));
    assert_true(hop("Keep-Alive"));
    assert_true(hop("TE"));
    assert_true(hop("Trailer"));
    assert_true(hop("Transfer-Encoding"));
    assert_true(hop("Upgrade"));
    assert_true(hop("connection"));
    assert_true(hop("UPGRADE"));
    assert_true(hop("Proxy-Authorization"));
    assert_true(hop("Proxy-Authenticate"));
    assert_true(hop("proxy-connection"));
    assert_false(hop("Content-Type"));
    assert_false(hop("Authorization"));
    assert_false(hop("Trailers"));
    assert_false(hop("Tex"));
    assert_false(hop("Proxy"));
    assert_false(hop("X-Proxy-Token"));
    /* counted: only the first len bytes are the name */
    assert_true(rd_hdr_is_hop_by_hop("TE-suffix", 2));
    assert_false(rd_hdr_is_hop_by_hop("Content-Type", 7));
}

static void test_has_token(void **state)
{
    (void)state;
    assert_true(rd_hdr_has_token("close", "close"));
    assert_true(rd_hdr_has_token("Keep-Alive, Upgrade", "upgrade"));
    assert_true(rd_hdr_has_token(" ,  CLOSE  , ", "close"));
    assert_true(rd_hdr_has_token("a,\tb\t,c", "b"));
    assert_false(rd_hdr_has_token("closed", "close"));
    assert_false(rd_hdr_has_token("close-ish, x", "close"));
    assert_false(rd_hdr_has_token("", "close"));
    assert_false(rd_hdr_has_token(", ,", "close"));
    assert_false(rd_hdr_has_token("keep-alive", "alive"));
}

static void test_connection_lists(void **state)
{
    struct fixture *f = *state;
    add(&f->h, "Connection", "keep-alive, X-Secret");
    add(&f->h, "connection", "X-Other");
    add(&f->h, "X-Secret", "1");
    add(&f->h, "X-Listed-Elsewhere", "X-Public");
    assert_true(rd_hdrs_connection_lists(&f->h, "x-secret", 8));
    assert_true(rd_hdrs_connection_lists(&f->h, "X-OTHER", 7));
    assert_true(rd_hdrs_connection_lists(&f->h, "Keep-Alive", 10));
    /* counted name */
    assert_true(rd_hdrs_connection_lists(&f->h, "X-Other-and-more", 7));
    assert_false(rd_hdrs_connection_lists(&f->h, "X-Public", 8));
    assert_false(rd_hdrs_connection_lists(&f->h, "X-Secre", 7));
    char longname[200];
    memset(longname, 'a', sizeof longname);
    assert_false(rd_hdrs_connection_lists(&f->h, longname, sizeof longname));
}

static void test_name_eq(void **state)
{
    (void)state;
    assert_true(rd_hdr_name_eq("Content-Length", 14, "content-length"));
    assert_true(rd_hdr_name_eq("Content-Lengthxx", 14, "CONTENT-LENGTH"));
    assert_false(rd_hdr_name_eq("Content-Length", 13, "content-length"));
    assert_false(rd_hdr_name_eq("Content-Lengt", 13, "content-length"));
}

static void test_tchar_and_token(void **state)
{
    (void)state;
    /* every byte value against the RFC 9110 5.6.2 list */
    static const char extra[] = "!#$%&'*+-.^_`|~";
    for (int c = 0; c < 256; c++) {
        bool want = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c != 0 && memchr(extra, c, sizeof extra - 1) != NULL);
        assert_int_equal(rd_http_is_tchar((unsigned char)c), want);
    }
    assert_true(rd_http_is_token("GET", 3));
    assert_true(rd_http_is_token("X-Api-Key", 9));
    assert_true(rd_http_is_token("!#$%&'*+-.^_`|~09azAZ", 21));
    assert_false(rd_http_is_token("", 0));
    assert_false(rd_http_is_token("GE T", 4));
    assert_false(rd_http_is_token("X-A:", 4));
    assert_false(rd_http_is_token("a\r\nb", 4));
    assert_false(rd_http_is_token("caf\xc3\xa9", 5));
    assert_false(rd_http_is_token("(x)", 3));
    assert_false(rd_http_is_token("a\"b", 3));
    /* counted: a NUL inside is not a tchar, bytes past n are not read */
    assert_false(rd_http_is_token("ab\0c", 4));
    assert_true(rd_http_is_token("GET /", 3));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_add_trims_and_copies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_find_count_case_insensitive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_add_ref_and_clear, setup, teardown),
        cmocka_unit_test(test_hop_by_hop),
        cmocka_unit_test(test_has_token),
        cmocka_unit_test_setup_teardown(test_connection_lists, setup, teardown),
        cmocka_unit_test(test_name_eq),
        cmocka_unit_test(test_tchar_and_token),
    };
    return cmocka_run_group_tests_name("headers", tests, NULL, NULL);
}
