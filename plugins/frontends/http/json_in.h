/* json_in.h: request bodies, parsed once at the edge and checked against a
 * route's field list. Refused, each naming the field: nesting deeper than
 * JSON_IN_MAX_DEPTH (a scan before parsing), malformed JSON, duplicate keys,
 * non-finite or overflowing numbers, unknown fields, wrong types, strings
 * longer than the field allows, missing required fields. The field named is
 * the innermost key at the point of the error ("lr" inside "values"). */
#ifndef TB_HTTP_JSON_IN_H
#define TB_HTTP_JSON_IN_H

#include <jansson.h>
#include <stddef.h>

#include "tunebench_plugin.h"

#define JSON_IN_MAX_DEPTH 4
#define JSON_IN_FIELD_MAX 64

typedef enum json_in_type {
    JIN_STRING = 1,   /* a string of at most max_len bytes */
    JIN_NUMBER,       /* a finite number */
    JIN_BOOL,
    JIN_HP_VALUES,    /* {hp name: string or number}, each at most max_len bytes as text */
    JIN_HP_TEXTS,     /* {hp name: string of at most max_len bytes} */
} json_in_type;

typedef struct json_in_field {
    const char *name;
    json_in_type type;
    int required;
    size_t max_len;
} json_in_field;

/* Where a body was refused: the message and the field (JSON null when ""). */
typedef struct json_in_error {
    char message[256];
    char field[JSON_IN_FIELD_MAX];
} json_in_error;

/* Parses text[0, len) (empty: {}) into an object whose fields are all in
 * fields[0, n); hp: the study's hyperparameters for JIN_HP_*. Returns the
 * object, or NULL with *e filled. */
json_t *json_in_parse(const char *text, size_t len, const json_in_field *fields, int n, const tb_fe_hp *hp,
                      json_in_error *e);

/* A number or string member as text (numbers: the shortest form that reads back
 * the same double); "" when absent. */
void json_in_text(const json_t *value, char *out, size_t cap);

#endif
