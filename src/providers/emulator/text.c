#include "providers/emulator/text.h"

#include <math.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/mem.h"

/* Filler vocabulary: plain lower-case ASCII words, each short enough to be a
 * single piece, so every filler word counts as exactly one token. */
static const char *const WORDS[] = {
    "the",      "duck",     "cache",    "request",  "answer",   "model",    "token",    "stream",
    "quietly",  "returns",  "every",    "small",    "bright",   "river",    "because",  "system",
    "latency",  "proxy",    "record",   "replay",   "offline",  "stable",   "simple",   "careful",
    "reads",    "writes",   "waits",    "learns",   "keeps",    "sends",    "finds",    "checks",
    "a",        "an",       "with",     "without",  "before",   "after",    "while",    "under",
    "over",     "again",    "today",    "always",   "never",    "often",    "rubber",   "yellow",
    "pond",     "light",    "signal",   "window",   "budget",   "limit",    "retry",    "header",
    "payload",  "engineer", "question", "detail",   "pattern",  "memory",   "network",  "result",
};
#define NWORDS (sizeof WORDS / sizeof WORDS[0])

/* Non-space bytes one piece of echoed text holds at most (then a new piece
 * starts, at the next UTF-8 boundary). */
#define PIECE_MAX_BYTES 8

struct stream {
    uint8_t seed[RD_SHA256_LEN];
    uint8_t block[RD_SHA256_LEN];
    uint32_t ctr;
    size_t pos;
};

void rd_emu_subseed(const uint8_t seed[RD_SHA256_LEN], const char *label, uint32_t index, uint8_t out[RD_SHA256_LEN])
{
    uint8_t msg[RD_SHA256_LEN + 64 + 4];
    size_t ll = strlen(label);
    if (ll > 64)
        ll = 64;
    memcpy(msg, seed, RD_SHA256_LEN);
    memcpy(msg + RD_SHA256_LEN, label, ll);
    for (int i = 0; i < 4; i++)
        msg[RD_SHA256_LEN + ll + (size_t)i] = (uint8_t)(index >> (8 * i));
    rd_sha256(msg, RD_SHA256_LEN + ll + 4, out);
}

static uint8_t next_byte(struct stream *st)
{
    if (st->pos == RD_SHA256_LEN) {
        rd_emu_subseed(st->seed, "text", st->ctr++, st->block);
        st->pos = 0;
    }
    return st->block[st->pos++];
}

struct builder {
    struct rd_buf b;
    size_t *ends;
    size_t n, cap;
    uint32_t max; /* 0: unlimited */
    bool full;
};

/* Adds one piece unless the token limit is reached (then marks truncation). */
static void push_piece(struct builder *bd, const char *p, size_t len)
{
    if (bd->max && bd->n >= bd->max) {
        bd->full = true;
        return;
    }
    if (bd->n == bd->cap) {
        bd->cap = bd->cap ? bd->cap * 2 : 64;
        bd->ends = rd_realloc(bd->ends, bd->cap * sizeof *bd->ends);
    }
    /* The buffer has no cap beyond memory: its input is bounded by the echo
     * cap and the filler size. */
    if (rd_buf_append(&bd->b, p, len) < 0)
        abort();
    bd->ends[bd->n++] = bd->b.len;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool is_cont(char c)
{
    return ((unsigned char)c & 0xC0) == 0x80;
}

/* Splits s into pieces: a run of whitespace plus up to PIECE_MAX_BYTES
 * non-space bytes, never ending inside a UTF-8 sequence. */
static void push_split(struct builder *bd, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && !bd->full) {
        size_t start = i;
        while (i < n && is_space(s[i]))
            i++;
        size_t word = i;
        while (i < n && !is_space(s[i]) && i - word < PIECE_MAX_BYTES)
            i++;
        while (i < n && is_cont(s[i]))
            i++;
        push_piece(bd, s + start, i - start);
    }
}

/* Byte length of the first max_chars code points of s[0..n). */
static size_t utf8_prefix(const char *s, size_t n, size_t max_chars)
{
    size_t chars = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_cont(s[i])) {
            if (chars == max_chars)
                return i;
            chars++;
        }
    }
    return n;
}

static void push_echo(struct builder *bd, const char *echo, size_t echo_len)
{
    struct rd_buf e;
    rd_buf_init(&e, 0);
    size_t cut = utf8_prefix(echo, echo_len, RD_EMU_ECHO_MAX_CHARS);
    if (rd_buf_appends(&e, "You said: \"") < 0 || rd_buf_append(&e, echo, cut) < 0 || rd_buf_appends(&e, "\".") < 0)
        abort();
    push_split(bd, e.data, e.len);
    rd_buf_free(&e);
}

/* Filler: sentences of 4..12 words drawn from WORDS, one token per word. */
static void push_filler(struct builder *bd, struct stream *st)
{
    uint32_t total = RD_EMU_FILLER_MIN + next_byte(st) % (RD_EMU_FILLER_MAX - RD_EMU_FILLER_MIN + 1);
    uint32_t done = 0;
    while (done < total && !bd->full) {
        uint32_t len = 4 + next_byte(st) % 9;
        if (len > total - done)
            len = total - done;
        for (uint32_t w = 0; w < len && !bd->full; w++) {
            const char *word = WORDS[next_byte(st) % NWORDS];
            char piece[24];
            size_t wl = strlen(word);
            piece[0] = ' ';
            memcpy(piece + 1, word, wl);
            if (w == 0 && piece[1] >= 'a' && piece[1] <= 'z')
                piece[1] = (char)(piece[1] - 'a' + 'A');
            size_t pl = wl + 1;
            if (w + 1 == len)
                piece[pl++] = '.';
            push_piece(bd, piece, pl);
        }
        done += len;
    }
}

void rd_emu_text_generate(const uint8_t seed[RD_SHA256_LEN], const char *echo, size_t echo_len, uint32_t max_tokens,
                          struct rd_emu_text *out)
{
    struct builder bd = {.max = max_tokens};
    rd_buf_init(&bd.b, 0);
    struct stream st = {.pos = RD_SHA256_LEN};
    memcpy(st.seed, seed, RD_SHA256_LEN);

    push_echo(&bd, echo ? echo : "", echo ? echo_len : 0);
    push_filler(&bd, &st);

    out->s = rd_buf_steal(&bd.b, &out->len);
    out->ends = bd.ends;
    out->n = bd.n;
    out->truncated = bd.full;
}

void rd_emu_text_free(struct rd_emu_text *t)
{
    if (t == NULL)
        return;
    free(t->s);
    free(t->ends);
    memset(t, 0, sizeof *t);
}

size_t rd_emu_text_piece(const struct rd_emu_text *t, size_t i, const char **start)
{
    size_t from = i == 0 ? 0 : t->ends[i - 1];
    *start = t->s + from;
    return t->ends[i] - from;
}

uint32_t rd_emu_tokens_estimate(size_t nbytes)
{
    size_t t = nbytes / 4 + (nbytes % 4 != 0);
    return t > UINT32_MAX ? UINT32_MAX : (uint32_t)t;
}

char *rd_emu_base64(const void *p, size_t n, size_t *out_len)
{
    if (n >= (1u << 30))
        abort();
    size_t cap = 4 * ((n + 2) / 3) + 1;
    unsigned char *out = rd_malloc(cap);
    int len = EVP_EncodeBlock(out, p, (int)n);
    if (len < 0)
        abort();
    *out_len = (size_t)len;
    return (char *)out;
}

void rd_emu_embedding(const char *model, const char *p, size_t n, uint32_t dims, float *v)
{
    uint8_t seed[RD_SHA256_LEN], block[RD_SHA256_LEN];
    struct rd_buf b;
    rd_buf_init(&b, 0);
    if (rd_buf_appends(&b, "embedding\n") < 0 || rd_buf_appends(&b, model) < 0 || rd_buf_append(&b, "", 1) < 0 ||
        rd_buf_append(&b, p, n) < 0)
        abort();
    rd_sha256(b.data, b.len, seed);
    rd_buf_free(&b);

    double sum = 0;
    for (uint32_t k = 0; k < dims; k++) {
        if (k % 8 == 0)
            rd_emu_subseed(seed, "v", k / 8, block);
        const uint8_t *q = block + 4 * (k % 8);
        uint32_t u = (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 | (uint32_t)q[3] << 24;
        double x = ((double)u + 0.5) / 4294967296.0 * 2.0 - 1.0;
        v[k] = (float)x;
        sum += x * x;
    }
    double norm = sqrt(sum);
    for (uint32_t k = 0; k < dims; k++)
        v[k] = (float)(v[k] / norm);
}
