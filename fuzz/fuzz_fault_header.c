/* libFuzzer target for src/proxy/stages/scenario.c: the X-Rubberduck-Fault
 * request header (from clients) and the '*'-globs of scenario matches.
 *
 * The input is lines separated by '\n'. Lines starting with '#' are
 * "pattern\ttext" pairs for the glob matcher; every other line (at most 8)
 * is one X-Rubberduck-Fault header line, handed over in an exact-size,
 * unterminated block so that AddressSanitizer flags a read past its length.
 * The target traps when:
 *  - rd_scenario_parse_faults returns anything but 0, 1 or RD_EINVAL, or 0
 *    with header lines present;
 *  - an error leaves no message, or one not starting "Invalid
 *    X-Rubberduck-Fault header", or not terminated within the buffer;
 *  - an accepted plan breaks a rule the parser promises: a status outside
 *    400..599, a hang with anything else, a status with a stream fault,
 *    stall_ms on a fault other than a stall, numbers past their ranges,
 *    Retry-After missing on 429/503 or present without a status;
 *  - the glob matcher disagrees with a dynamic-programming oracle. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/stages/scenario.h"
#include "util/arena.h"
#include "util/err.h"
#include "check.h"

#define MAX_LINES 8
#define GLOB_MAX 64

/* Does p[0..pn) match t[0..tn), '*' matching any run? O(pn * tn). */
static bool oracle(const char *p, size_t pn, const char *t, size_t tn)
{
    bool row[GLOB_MAX + 1], next[GLOB_MAX + 1];
    /* row[j]: p[0..i) matches t[0..j) */
    row[0] = true;
    for (size_t j = 1; j <= tn; j++)
        row[j] = false;
    for (size_t i = 0; i < pn; i++) {
        next[0] = row[0] && p[i] == '*';
        for (size_t j = 1; j <= tn; j++)
            next[j] = p[i] == '*' ? (row[j] || next[j - 1]) : (row[j - 1] && p[i] == t[j - 1]);
        memcpy(row, next, (tn + 1) * sizeof row[0]);
    }
    return row[tn];
}

static void glob_case(const char *s, size_t n)
{
    const char *tab = memchr(s, '\t', n);
    if (tab == NULL)
        return;
    size_t pn = (size_t)(tab - s), tn = n - pn - 1;
    if (pn > GLOB_MAX || tn > GLOB_MAX || memchr(s, '\0', pn))
        return;
    char pat[GLOB_MAX + 1];
    memcpy(pat, s, pn);
    pat[pn] = '\0';
    char *text = malloc(tn ? tn : 1);
    CHECK(text != NULL);
    memcpy(text, tab + 1, tn);
    CHECK(rd_scenario_glob_match(pat, text, tn) == oracle(pat, pn, text, tn));
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 16384)
        return 0;
    struct rd_arena arena;
    struct rd_hdrs h;
    rd_arena_init(&arena);
    rd_hdrs_init(&h, &arena);
    char *blocks[MAX_LINES];
    size_t nlines = 0;
    const char *s = (const char *)data, *end = s + size;
    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        size_t n = nl ? (size_t)(nl - s) : (size_t)(end - s);
        if (n > 0 && s[0] == '#') {
            glob_case(s + 1, n - 1);
        } else if (nlines < MAX_LINES) {
            char *b = malloc(n ? n : 1);
            CHECK(b != NULL);
            memcpy(b, s, n);
            blocks[nlines++] = b;
            rd_hdrs_add_refn(&h, nlines % 2 ? "X-Rubberduck-Fault" : "x-rubberduck-fault", 18, b, n);
            rd_hdrs_add_refn(&h, "X-Other", 7, b, n); /* never read as a fault */
        }
        s += n + (nl != NULL);
    }

    struct rd_fault_plan p;
    char msg[320];
    memset(msg, 0x5a, sizeof msg);
    int rc = rd_scenario_parse_faults(&h, &p, msg, sizeof msg);
    CHECK(rc == 0 || rc == 1 || rc == RD_EINVAL);
    CHECK(rc != 0 || nlines == 0);
    if (rc == RD_EINVAL) {
        CHECK(memchr(msg, '\0', sizeof msg) != NULL);
        CHECK(strncmp(msg, "Invalid X-Rubberduck-Fault header", 33) == 0);
    }
    if (rc == 1) {
        CHECK(p.set);
        CHECK(p.status == 0 || (p.status >= 400 && p.status <= 599));
        CHECK(!p.hang || (p.status == 0 && p.delay_ms == 0 && p.stream_fault == RD_SFAULT_NONE));
        CHECK(p.status == 0 || p.stream_fault == RD_SFAULT_NONE);
        CHECK(p.stall_ms == 0 || p.stream_fault == RD_SFAULT_STALL);
        CHECK(p.delay_ms <= 3600000 && p.stall_ms <= 3600000 && p.after_events <= 1000000);
        CHECK(p.message == NULL);
        CHECK(p.status != 0 || p.retry_after_s == -1);
        CHECK(!(p.status == 429 || p.status == 503) || p.retry_after_s >= 0);
        CHECK(p.retry_after_s >= -1 && p.retry_after_s <= 86400);
    }
    rd_hdrs_free(&h);
    rd_arena_free(&arena);
    for (size_t i = 0; i < nlines; i++)
        free(blocks[i]);
    return 0;
}
