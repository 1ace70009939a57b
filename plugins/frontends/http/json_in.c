/* json_in.c: request bodies (json_in.h). */
#include "json_in.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *refuse(json_in_error *e, const char *field, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static json_t *refuse(json_in_error *e, const char *field, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    snprintf(e->field, sizeof e->field, "%s", field ? field : "");
    return NULL;
}

/* ---- the scan before parsing: depth, and which key a byte offset is under ---- */

typedef struct key_scan {
    int depth;
    int in_string, escaped;
    int is_object[JSON_IN_MAX_DEPTH + 2];
    int expect_key[JSON_IN_MAX_DEPTH + 2]; /* the next string at this depth is a key */
    int string_is_key;
    char key[JSON_IN_MAX_DEPTH + 2][JSON_IN_FIELD_MAX];
    size_t key_len;
} key_scan;

/* The innermost key seen at or above the current depth ("" at the top). */
static const char *scan_key(const key_scan *k)
{
    for (int d = k->depth < JSON_IN_MAX_DEPTH + 1 ? k->depth : JSON_IN_MAX_DEPTH + 1; d >= 1; d--)
        if (k->key[d][0]) return k->key[d];
    return "";
}

static void scan_string_byte(key_scan *k, char c)
{
    if (k->escaped) k->escaped = 0;
    else if (c == '\\') k->escaped = 1;
    else if (c == '"') {
        k->in_string = 0;
        return;
    }
    if (k->string_is_key && k->key_len + 1 < JSON_IN_FIELD_MAX) {
        k->key[k->depth][k->key_len++] = c;
        k->key[k->depth][k->key_len] = '\0';
    }
}

/* Scans text[0, len); returns the offset where nesting got deeper than
 * JSON_IN_MAX_DEPTH, or len when it did not. k holds the state at the end. */
static size_t scan(const char *text, size_t len, key_scan *k)
{
    memset(k, 0, sizeof *k);
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (k->in_string) {
            scan_string_byte(k, c);
            continue;
        }
        switch (c) {
        case '"':
            k->in_string = 1;
            k->string_is_key = k->depth > 0 && k->is_object[k->depth] && k->expect_key[k->depth];
            if (k->string_is_key) {
                k->key_len = 0;
                k->key[k->depth][0] = '\0';
                k->expect_key[k->depth] = 0;
            }
            break;
        case '{':
        case '[':
            if (k->depth >= JSON_IN_MAX_DEPTH) return i;
            k->depth++;
            k->is_object[k->depth] = c == '{';
            k->expect_key[k->depth] = c == '{';
            k->key[k->depth][0] = '\0';
            break;
        case '}':
        case ']':
            if (k->depth > 0) k->depth--;
            break;
        case ',':
            if (k->depth > 0 && k->is_object[k->depth]) k->expect_key[k->depth] = 1;
            break;
        default:
            break;
        }
    }
    return len;
}

/* The key under which byte offset pos lies. */
static void key_at(const char *text, size_t len, size_t pos, char *out, size_t cap)
{
    key_scan k;
    scan(text, pos < len ? pos : len, &k);
    snprintf(out, cap, "%s", scan_key(&k));
}

/* ---- one member against its field ------------------------------------------------------ */

static int hp_index(const tb_fe_hp *hp, const char *name)
{
    for (int i = 0; hp && i < TB_STUDY_HP_COUNT; i++)
        if (hp[i].name && strcmp(hp[i].name, name) == 0) return i;
    return -1;
}

static const char *type_name(json_in_type t)
{
    switch (t) {
    case JIN_STRING: return "a string";
    case JIN_NUMBER: return "a number";
    case JIN_BOOL: return "true or false";
    case JIN_HP_VALUES: return "an object of hyperparameter values";
    case JIN_HP_TEXTS: return "an object of texts by hyperparameter";
    }
    return "?";
}

void json_in_text(const json_t *value, char *out, size_t cap)
{
    out[0] = '\0';
    if (json_is_string(value)) snprintf(out, cap, "%s", json_string_value(value));
    else if (json_is_integer(value)) snprintf(out, cap, "%lld", (long long)json_integer_value(value));
    else if (json_is_real(value)) {
        /* formatted in a local buffer: writing into out in the loop trips GCC's
         * -Wformat-truncation ("null destination") in the sanitizer build */
        double v = json_real_value(value);
        char text[32];
        for (int digits = 15; digits <= 17; digits++) {
            snprintf(text, sizeof text, "%.*g", digits, v);
            if (strtod(text, NULL) == v) break;
        }
        snprintf(out, cap, "%s", text);
    }
}

static json_t *check_hp_object(const json_t *obj, const json_in_field *f, const tb_fe_hp *hp, json_in_error *e)
{
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)obj, name, v) {
        if (hp_index(hp, name) < 0) return refuse(e, name, "%s: there is no hyperparameter %s", f->name, name);
        int ok = json_is_string(v) || (f->type == JIN_HP_VALUES && json_is_number(v));
        if (!ok)
            return refuse(e, name, "%s.%s must be %s", f->name, name,
                          f->type == JIN_HP_VALUES ? "a string or a number" : "a string");
        char text[512];
        json_in_text(v, text, sizeof text);
        size_t n = json_is_string(v) ? json_string_length(v) : strlen(text);
        if (n > f->max_len)
            return refuse(e, name, "%s.%s is too long: %zu bytes, at most %zu", f->name, name, n, f->max_len);
        if (json_is_string(v) && strlen(json_string_value(v)) != n)
            return refuse(e, name, "%s.%s holds a NUL character", f->name, name);
    }
    return (json_t *)obj;
}

static json_t *check_member(const json_t *v, const json_in_field *f, const tb_fe_hp *hp, json_in_error *e)
{
    switch (f->type) {
    case JIN_STRING:
        if (!json_is_string(v)) return refuse(e, f->name, "%s must be %s", f->name, type_name(f->type));
        if (json_string_length(v) > f->max_len)
            return refuse(e, f->name, "%s is too long: %zu bytes, at most %zu", f->name, json_string_length(v),
                          f->max_len);
        if (strlen(json_string_value(v)) != json_string_length(v))
            return refuse(e, f->name, "%s holds a NUL character", f->name);
        return (json_t *)v;
    case JIN_NUMBER:
        if (!json_is_number(v) || !isfinite(json_number_value(v)))
            return refuse(e, f->name, "%s must be %s", f->name, type_name(f->type));
        return (json_t *)v;
    case JIN_BOOL:
        if (!json_is_boolean(v)) return refuse(e, f->name, "%s must be %s", f->name, type_name(f->type));
        return (json_t *)v;
    case JIN_HP_VALUES:
    case JIN_HP_TEXTS:
        if (!json_is_object(v)) return refuse(e, f->name, "%s must be %s", f->name, type_name(f->type));
        return check_hp_object(v, f, hp, e);
    }
    return refuse(e, f->name, "%s: unknown field type", f->name);
}

static const json_in_field *find_field(const json_in_field *fields, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(fields[i].name, name) == 0) return &fields[i];
    return NULL;
}

/* Why jansson refused text, in a participant's words. */
static void parse_message(const json_error_t *je, char *out, size_t cap)
{
    enum json_error_code code = json_error_code(je);
    if (code == json_error_duplicate_key) snprintf(out, cap, "a key appears twice");
    else if (code == json_error_numeric_overflow)
        snprintf(out, cap, "a number is too large (numbers must be finite)");
    else if (strstr(je->text, "invalid token") && (strstr(je->text, "NaN") || strstr(je->text, "Inf")))
        snprintf(out, cap, "NaN and Infinity are not numbers here (numbers must be finite)");
    else snprintf(out, cap, "malformed JSON: %s", je->text);
}

json_t *json_in_parse(const char *text, size_t len, const json_in_field *fields, int n, const tb_fe_hp *hp,
                      json_in_error *e)
{
    memset(e, 0, sizeof *e);
    if (len == 0) return json_object();
    key_scan k;
    size_t deep = scan(text, len, &k);
    if (deep < len)
        return refuse(e, scan_key(&k), "nesting deeper than %d levels", JSON_IN_MAX_DEPTH);

    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        char field[JSON_IN_FIELD_MAX];
        key_at(text, len, je.position > 0 ? (size_t)je.position : 0, field, sizeof field);
        char msg[200];
        parse_message(&je, msg, sizeof msg);
        return refuse(e, field, "%s", msg);
    }
    if (!json_is_object(root)) {
        json_decref(root);
        return refuse(e, NULL, "the body must be a JSON object");
    }
    const char *name;
    json_t *v;
    json_object_foreach(root, name, v) {
        const json_in_field *f = find_field(fields, n, name);
        if (!f || !check_member(v, f, hp, e)) {
            if (!f) refuse(e, name, "unknown field %s", name);
            json_decref(root);
            return NULL;
        }
    }
    for (int i = 0; i < n; i++)
        if (fields[i].required && !json_object_get(root, fields[i].name)) {
            json_decref(root);
            return refuse(e, fields[i].name, "%s is missing", fields[i].name);
        }
    return root;
}
