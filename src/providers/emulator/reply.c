#include <stdlib.h>
#include <string.h>

#include "providers/emulator/emulator.h"
#include "util/json.h"
#include "util/mem.h"

void rd_emu_reply_add(struct rd_emu_reply *r, const char *data, size_t len, uint32_t tokens)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        r->chunks = rd_realloc(r->chunks, cap * sizeof *r->chunks);
        r->cap = cap;
    }
    /* One extra byte keeps the copy NUL-terminated, handy for tests and logs;
     * len stays the payload length. */
    char *copy = rd_malloc(len + 1);
    if (len)
        memcpy(copy, data, len);
    copy[len] = '\0';
    r->chunks[r->n++] = (struct rd_emu_chunk){.data = copy, .len = len, .tokens = tokens};
}

void rd_emu_reply_json(struct rd_emu_reply *out, struct json_object *obj, const char *content_type, uint32_t tokens)
{
    size_t len = 0;
    const char *s = rd_json_str(obj, &len);
    rd_emu_reply_free(out);
    out->status = 200;
    out->content_type = rd_strdup(content_type);
    out->stream = false;
    rd_emu_reply_add(out, s, len, tokens);
    json_object_put(obj);
}

void rd_emu_reply_free(struct rd_emu_reply *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n; i++)
        free(r->chunks[i].data);
    free(r->chunks);
    free(r->content_type);
    for (size_t i = 0; i < r->nheaders; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
    }
    memset(r, 0, sizeof *r);
}

void rd_emu_reply_header(struct rd_emu_reply *r, const char *name, const char *value)
{
    if (r->nheaders == RD_EMU_REPLY_MAX_HEADERS)
        abort();
    r->headers[r->nheaders].name = rd_strdup(name);
    r->headers[r->nheaders].value = rd_strdup(value);
    r->nheaders++;
}
