/* A tool call's input made from the tool's JSON Schema, deterministically:
 * what a model would plausibly send, valid for the common schema keywords
 * (type, properties, required, enum, const, default, examples, format,
 * minimum/maximum, min/maxLength, items, minItems, anyOf/oneOf). Schemas
 * are the client's: every keyword is checked for its type before use, and
 * depth and breadth are bounded. */
#include <math.h>
#include <string.h>

#include "providers/emulator/anthropic_int.h"
#include "providers/emulator/text.h"

#define MAX_DEPTH 6
#define MAX_PROPS 32
#define MAX_ITEMS 3
#define TEXT_MAX 64 /* bytes of the user's text used for a string value */

struct gen {
    uint8_t seed[RD_SHA256_LEN];
    uint32_t n; /* values drawn so far */
    const char *text;
    size_t text_len;
};

static uint32_t draw(struct gen *g)
{
    uint8_t h[RD_SHA256_LEN];
    rd_emu_subseed(g->seed, "tool-value", g->n++, h);
    return (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
}

static struct json_object *value(struct gen *g, struct json_object *schema, const char *name, int depth);

/* A deep copy of a value the schema gives (enum, const, default). */
static struct json_object *copy(struct json_object *v)
{
    struct json_object *c = NULL;
    if (v == NULL || json_object_deep_copy(v, &c, NULL) != 0)
        return NULL;
    return c;
}

static bool is_num(struct json_object *v)
{
    return v && (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double));
}

/* Bytes of s[0..n) that fit in max bytes without cutting a UTF-8 sequence. */
static size_t utf8_cut(const char *s, size_t n, size_t max)
{
    if (n <= max)
        return n;
    while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80)
        max--;
    return max;
}

static struct json_object *string_value(struct gen *g, struct json_object *schema, const char *name)
{
    const char *fmt = rd_json_get_str(schema, "format");
    if (fmt) {
        static const struct {
            const char *format, *value;
        } FORMATS[] = {
            {"date", "2025-01-01"},
            {"date-time", "2025-01-01T12:00:00Z"},
            {"time", "12:00:00"},
            {"email", "duck@example.com"},
            {"uri", "https://example.com/"},
            {"url", "https://example.com/"},
            {"hostname", "example.com"},
            {"ipv4", "192.0.2.1"},
            {"ipv6", "2001:db8::1"},
            {"uuid", "4f3a2c1e-8b7d-4e6f-9a5b-1c2d3e4f5a6b"},
        };
        for (size_t i = 0; i < sizeof FORMATS / sizeof FORMATS[0]; i++)
            if (strcmp(fmt, FORMATS[i].format) == 0)
                return json_object_new_string(FORMATS[i].value);
    }
    /* What the user asked about stands in for free text (a search query, a
     * location, a name); the property name when there is no text. */
    const char *s = g->text_len ? g->text : name;
    size_t n = g->text_len ? g->text_len : strlen(name);
    size_t max = TEXT_MAX;
    int64_t ml = rd_json_get_int(schema, "maxLength", -1);
    if (ml >= 1 && (uint64_t)ml < max)
        max = (size_t)ml;
    n = utf8_cut(s, n, max);
    return rd_json_new_strn(s, n);
}

/* A number in the schema's range: [minimum, maximum], defaulting to 1..10. */
static struct json_object *number_value(struct gen *g, struct json_object *schema, bool integer)
{
    struct json_object *mn = rd_json_get(schema, "minimum"), *mx = rd_json_get(schema, "maximum");
    double lo = is_num(mn) ? json_object_get_double(mn) : 1;
    double hi = is_num(mx) ? json_object_get_double(mx) : lo + 9;
    if (!isfinite(lo) || !isfinite(hi) || hi < lo || hi - lo > 1e15 || fabs(lo) > 1e15)
        return integer ? json_object_new_int64(1) : json_object_new_double(1.0);
    if (integer) {
        double l = ceil(lo), h = floor(hi);
        if (h < l)
            return json_object_new_int64((int64_t)l);
        uint64_t span = (uint64_t)(h - l) + 1;
        return json_object_new_int64((int64_t)l + (int64_t)(draw(g) % span));
    }
    /* Tenths: a short, readable number. */
    double v = lo + (hi - lo) * (double)(draw(g) % 11) / 10.0;
    return json_object_new_double(round(v * 10.0) / 10.0);
}

static struct json_object *array_value(struct gen *g, struct json_object *schema, const char *name, int depth)
{
    struct json_object *a = json_object_new_array();
    int64_t count = rd_json_get_int(schema, "minItems", 1);
    if (count < 1)
        count = 1;
    if (count > MAX_ITEMS)
        count = MAX_ITEMS;
    int64_t mx = rd_json_get_int(schema, "maxItems", MAX_ITEMS);
    if (mx >= 0 && count > mx)
        count = mx;
    struct json_object *items = rd_json_get(schema, "items");
    for (int64_t i = 0; i < count; i++)
        json_object_array_add(a, value(g, items, name, depth + 1));
    return a;
}

static bool in_list(struct json_object *list, const char *key)
{
    size_t n = json_object_array_length(list);
    for (size_t i = 0; i < n; i++) {
        struct json_object *v = json_object_array_get_idx(list, i);
        if (json_object_is_type(v, json_type_string) && strcmp(json_object_get_string(v), key) == 0)
            return true;
    }
    return false;
}

/* The required properties, in the order "properties" lists them; all of
 * them when the schema lists none required (a model fills what it can). */
static struct json_object *object_value(struct gen *g, struct json_object *schema, int depth)
{
    struct json_object *o = json_object_new_object();
    struct json_object *props = rd_json_get(schema, "properties");
    struct json_object *req = rd_json_get(schema, "required");
    if (!json_object_is_type(props, json_type_object))
        return o;
    bool all = !json_object_is_type(req, json_type_array) || json_object_array_length(req) == 0;
    int n = 0;
    json_object_object_foreach(props, key, sub)
    {
        if (n >= MAX_PROPS)
            break;
        if (!all && !in_list(req, key))
            continue;
        json_object_object_add(o, key, value(g, sub, key, depth + 1));
        n++;
    }
    return o;
}

/* The first type of "type" that is not "null" (a string or a list). */
static const char *schema_type(struct json_object *schema)
{
    struct json_object *t = rd_json_get(schema, "type");
    if (json_object_is_type(t, json_type_string))
        return json_object_get_string(t);
    if (json_object_is_type(t, json_type_array)) {
        size_t n = json_object_array_length(t);
        for (size_t i = 0; i < n; i++) {
            struct json_object *e = json_object_array_get_idx(t, i);
            if (json_object_is_type(e, json_type_string) && strcmp(json_object_get_string(e), "null") != 0)
                return json_object_get_string(e);
        }
        return "null";
    }
    if (rd_json_get(schema, "properties"))
        return "object";
    if (rd_json_get(schema, "items"))
        return "array";
    return "string";
}

static struct json_object *value(struct gen *g, struct json_object *schema, const char *name, int depth)
{
    if (!json_object_is_type(schema, json_type_object) || depth > MAX_DEPTH)
        return json_object_new_string("");
    struct json_object *v;
    if ((v = rd_json_get(schema, "const")) != NULL)
        return copy(v);
    if ((v = rd_json_get(schema, "enum")) && json_object_is_type(v, json_type_array) && json_object_array_length(v) > 0)
        return copy(json_object_array_get_idx(v, 0));
    if ((v = rd_json_get(schema, "default")) != NULL)
        return copy(v);
    if ((v = rd_json_get(schema, "examples")) && json_object_is_type(v, json_type_array) &&
        json_object_array_length(v) > 0)
        return copy(json_object_array_get_idx(v, 0));
    static const char *const ALTS[] = {"anyOf", "oneOf", "allOf"};
    for (size_t i = 0; i < 3; i++)
        if ((v = rd_json_get(schema, ALTS[i])) && json_object_is_type(v, json_type_array) &&
            json_object_array_length(v) > 0)
            return value(g, json_object_array_get_idx(v, 0), name, depth + 1);
    const char *t = schema_type(schema);
    if (strcmp(t, "object") == 0)
        return object_value(g, schema, depth);
    if (strcmp(t, "array") == 0)
        return array_value(g, schema, name, depth);
    if (strcmp(t, "integer") == 0)
        return number_value(g, schema, true);
    if (strcmp(t, "number") == 0)
        return number_value(g, schema, false);
    if (strcmp(t, "boolean") == 0)
        return json_object_new_boolean(1);
    if (strcmp(t, "null") == 0)
        return NULL;
    return string_value(g, schema, name);
}

struct json_object *rd_emu_anth_tool_input(struct json_object *tool, const uint8_t seed[RD_SHA256_LEN],
                                           const char *text, size_t text_len)
{
    struct gen g = {.n = 0, .text = text ? text : "", .text_len = text ? text_len : 0};
    memcpy(g.seed, seed, RD_SHA256_LEN);
    struct json_object *schema = rd_json_get(tool, "input_schema");
    struct json_object *in = json_object_is_type(schema, json_type_object) ? object_value(&g, schema, 0) : NULL;
    return in ? in : json_object_new_object();
}
