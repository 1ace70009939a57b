/* hparam_space.c: the 15 hyperparameters of Table 1 and a study's space over them
 * (see space.h for the [space] syntax and the contract of each function). */
#include "hparam_space.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/rng.h"
#include "engine/hparams.h"
#include "engine/optim.h"
#include "tunebench/tunebench_plugin.h"

_Static_assert(TB_HP_COUNT == TB_STUDY_HP_COUNT, "Table 1 and the front-end ABI count the same hyperparameters");

const char *const tb_hp_names[TB_HP_COUNT] = {
#define NAME(ENUM, name, ...) #name,
    TB_TABLE1(NAME)
#undef NAME
};

/* Each of Table 1's hyperparameters as training knows it (engine/hparams.h):
 * its type, the range [train] accepts, which optimizer reads it. A [space]
 * may narrow that range, never widen it, so every value a space admits is
 * one a run accepts. A Table 1 name that training lacks does not compile. */
static const tb_hparam_id training_row[TB_HP_COUNT] = {
#define ROW(ENUM, name, ...) [TB_HP_##ENUM] = TB_HPARAM_##name,
    TB_TABLE1(ROW)
#undef ROW
};

/* What training accepts for hp: type and range; for a choice, Table 1's
 * listing of the names its parser knows. */
typedef struct core_limit {
    tb_hp_type type;
    double lo, hi;
    const char *choices; /* CHOICE: the canonical names, '|'-separated */
} core_limit;

/* The paper's space (see tb_space_default): range or choices, distribution, preset. */
typedef struct default_spec {
    double lo, hi;
    int log;
    const char *def; /* "" for the four mandatory ones: Table 1 gives them no default */
    const char *choices;
} default_spec;

static const default_spec paper_space[TB_HP_COUNT] = {
#define PAPER(ENUM, name, lo, hi, log, preset, choices) [TB_HP_##ENUM] = {lo, hi, log, preset, choices},
    TB_TABLE1(PAPER)
#undef PAPER
};

static core_limit core_limits(tb_hp hp)
{
    const tb_hparam_info *row = &tb_hparams[training_row[hp]];
    core_limit c = {TB_HP_FLOAT, row->lo, row->hi, NULL};
    if (row->type == TB_HPARAM_INT) c.type = TB_HP_INT;
    if (row->type == TB_HPARAM_CHOICE) {
        c.type = TB_HP_CHOICE;
        c.choices = paper_space[hp].choices;
    }
    return c;
}

/* Random search: each hyperparameter draws from its own fixed run of Philox
 * blocks, so narrowing one range (or drawing an optimizer that skips a
 * hyperparameter) never shifts the values of the others. */
#define SEARCH_BLOCKS_PER_HP 16

int tb_hp_index(const char *name)
{
    if (!name) return -1;
    for (int i = 0; i < TB_HP_COUNT; i++)
        if (strcasecmp(name, tb_hp_names[i]) == 0) return i;
    return -1;
}

/* ---- text helpers ------------------------------------------------------------------------ */

static int is_blank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* The range p[0..*n) without surrounding blanks: new start, *n updated. */
static const char *trim_n(const char *p, size_t *n)
{
    while (*n > 0 && is_blank(*p)) p++, (*n)--;
    while (*n > 0 && is_blank(p[*n - 1])) (*n)--;
    return p;
}

/* The text without surrounding blanks: start and length. */
static const char *trim(const char *text, size_t *len)
{
    *len = strlen(text);
    return trim_n(text, len);
}

/* A value as shown in a message: at most 60 characters, control characters
 * replaced, so a message stays one readable line whatever a participant typed. */
static void shown(char *out, size_t cap, const char *p, size_t n)
{
    const size_t limit = 60;
    size_t k = 0;
    for (size_t i = 0; i < n && i < limit && k + 1 < cap; i++) {
        unsigned char c = (unsigned char)p[i];
        out[k++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    out[k] = '\0';
    if (n > limit && k + 4 < cap) strcat(out, "...");
}

/* The shortest "%.*g" text (precision 1..17) that reads back as the same
 * double: 10 is "10", not "1e+01"; -0 becomes 0. */
static void format_double(char *out, size_t cap, double v)
{
    if (v == 0) v = 0;
    char best[32] = "", text[32];
    for (int precision = 1; precision <= 17; precision++) {
        snprintf(text, sizeof text, "%.*g", precision, v);
        if (strtod(text, NULL) == v && (!best[0] || strlen(text) < strlen(best))) memcpy(best, text, sizeof best);
    }
    snprintf(out, cap, "%s", best);
}

/* A bound or value of hp's type, canonically. */
static void format_value(char *out, size_t cap, tb_hp_type type, double v)
{
    if (type == TB_HP_INT) snprintf(out, cap, "%lld", (long long)v);
    else format_double(out, cap, v);
}

/* Parses a whole text as a decimal integer (optional sign). Returns 0, -1
 * when it is not an integer, -2 when it is one too large for long long. */
static int parse_int(const char *p, size_t n, long long *out)
{
    size_t i = 0;
    if (i < n && (p[i] == '+' || p[i] == '-')) i++;
    if (i == n) return -1;
    for (size_t j = i; j < n; j++)
        if (p[j] < '0' || p[j] > '9') return -1;
    char buf[32];
    if (n >= sizeof buf) return -2;
    memcpy(buf, p, n);
    buf[n] = '\0';
    errno = 0;
    long long v = strtoll(buf, NULL, 10);
    if (errno == ERANGE) return -2;
    *out = v;
    return 0;
}

/* Parses a whole text as a number. Returns 0, -1 when it is not a number,
 * -2 when it is NaN or infinite, -3 when it overflows a double (1e999). */
static int parse_number(const char *p, size_t n, double *out)
{
    char buf[256];
    if (n == 0 || n >= sizeof buf) return -1;
    memcpy(buf, p, n);
    buf[n] = '\0';
    char *end;
    errno = 0;
    double v = strtod(buf, &end);
    if (end == buf || *end) return -1;
    if (isinf(v) && errno == ERANGE) return -3;
    if (!isfinite(v)) return -2;
    *out = v;
    return 0;
}

/* The k-th of '|'-separated choices into out; returns its length, or -1. */
static int choice_at(const char *choices, int k, char *out, size_t cap)
{
    const char *p = choices;
    for (int i = 0; i < k; i++) {
        p = strchr(p, '|');
        if (!p) return -1;
        p++;
    }
    size_t n = strcspn(p, "|");
    if (n == 0 && !*p) return -1;
    if (out) snprintf(out, cap, "%.*s", (int)n, p);
    return (int)n;
}

static int choice_count(const char *choices)
{
    if (!choices[0]) return 0;
    int n = 1;
    for (const char *p = choices; *p; p++) n += *p == '|';
    return n;
}

/* The position of text (length n) among choices, ignoring case, or -1. */
static int choice_find(const char *choices, const char *text, size_t n)
{
    int count = choice_count(choices);
    for (int k = 0; k < count; k++) {
        char c[TB_HP_TEXT];
        int len = choice_at(choices, k, c, sizeof c);
        if (len >= 0 && (size_t)len == n && strncasecmp(c, text, n) == 0) return k;
    }
    return -1;
}

/* "a|b|c" as "a, b, c". */
static void choices_listed(char *out, size_t cap, const char *choices)
{
    size_t k = 0;
    for (const char *p = choices; *p && k + 3 < cap; p++) {
        if (*p == '|') {
            out[k++] = ',';
            out[k++] = ' ';
        } else {
            out[k++] = *p;
        }
    }
    out[k] = '\0';
}

/* What a value of h may be, for the "allowed: ..." part of a message. */
static void allowed_values(char *out, size_t cap, const tb_hp_spec *h)
{
    char lo[TB_HP_TEXT], hi[TB_HP_TEXT];
    format_value(lo, sizeof lo, h->type, h->lo);
    format_value(hi, sizeof hi, h->type, h->hi);
    switch (h->type) {
    case TB_HP_INT: snprintf(out, cap, "an integer in [%s, %s]", lo, hi); break;
    case TB_HP_FLOAT: snprintf(out, cap, "float in [%s, %s]", lo, hi); break;
    case TB_HP_CHOICE: choices_listed(out, cap, h->choices); break;
    }
}

/* ---- the paper's space ------------------------------------------------------------------- */

void tb_space_default(tb_space *s)
{
    memset(s, 0, sizeof *s);
    for (int i = 0; i < TB_HP_COUNT; i++) {
        tb_hp_spec *h = &s->hp[i];
        const core_limit c = core_limits((tb_hp)i);
        h->type = c.type;
        h->mandatory = i <= TB_HP_OPTIMIZER;
        h->lo = paper_space[i].lo;
        h->hi = paper_space[i].hi;
        h->log = paper_space[i].log;
        if (h->type == TB_HP_CHOICE) snprintf(h->choices, sizeof h->choices, "%s", c.choices);
        snprintf(h->def, sizeof h->def, "%s", paper_space[i].def);
    }
}

/* ---- checking one value ------------------------------------------------------------------ */

enum { BAD_EMPTY, BAD_CHOICE, BAD_INT, BAD_NUMBER, BAD_FINITE, BAD_RANGE };

/* The error of check_value; the texts are built only here, not for every accepted value. */
static tb_status bad_value(tb_err *err, int why, const char *prefix, const char *name, const char *p, size_t n,
                           const tb_hp_spec *h)
{
    char allowed[256], show[80], lo[TB_HP_TEXT], hi[TB_HP_TEXT];
    allowed_values(allowed, sizeof allowed, h);
    shown(show, sizeof show, p, n);
    format_value(lo, sizeof lo, h->type, h->lo);
    format_value(hi, sizeof hi, h->type, h->hi);
    switch (why) {
    case BAD_EMPTY: return tb_fail(err, TB_EINVAL, "%s%s is empty; allowed: %s", prefix, name, allowed);
    case BAD_CHOICE: return tb_fail(err, TB_EINVAL, "%s%s = %s is not allowed; allowed: %s", prefix, name, show, allowed);
    case BAD_INT: return tb_fail(err, TB_EINVAL, "%s%s = %s is not an integer; allowed: %s", prefix, name, show, allowed);
    case BAD_NUMBER: return tb_fail(err, TB_EINVAL, "%s%s = %s is not a number; allowed: %s", prefix, name, show, allowed);
    case BAD_FINITE:
        return tb_fail(err, TB_EINVAL, "%s%s = %s is not a finite number; allowed: %s", prefix, name, show, allowed);
    default:
        return tb_fail(err, TB_EINVAL, "%s%s = %s is outside the allowed range [%s, %s]", prefix, name, show, lo, hi);
    }
}

/* tb_space_check_value with the name in messages prefixed (e.g. "train."). */
static tb_status check_value(const tb_space *s, tb_hp hp, const char *text, char canonical[TB_HP_TEXT],
                             const char *prefix, tb_err *err)
{
    if (canonical) canonical[0] = '\0';
    if ((int)hp < 0 || (int)hp >= TB_HP_COUNT)
        return tb_fail(err, TB_EINVAL, "hyperparameter index %d is not one of the %d", (int)hp, TB_HP_COUNT);
    const tb_hp_spec *h = &s->hp[hp];
    const char *name = tb_hp_names[hp];
    char out[TB_HP_TEXT];
    size_t n = 0;
    const char *p = trim(text ? text : "", &n);
    if (n == 0) return bad_value(err, BAD_EMPTY, prefix, name, p, n, h);

    if (h->type == TB_HP_CHOICE) {
        int k = choice_find(h->choices, p, n);
        if (k < 0) return bad_value(err, BAD_CHOICE, prefix, name, p, n, h);
        choice_at(h->choices, k, out, sizeof out);
    } else if (h->type == TB_HP_INT) {
        long long v = 0;
        int r = parse_int(p, n, &v);
        if (r == -1) return bad_value(err, BAD_INT, prefix, name, p, n, h);
        if (r == -2 || (double)v < h->lo || (double)v > h->hi) return bad_value(err, BAD_RANGE, prefix, name, p, n, h);
        snprintf(out, sizeof out, "%lld", v);
    } else {
        double v = 0;
        int r = parse_number(p, n, &v);
        if (r == -1) return bad_value(err, BAD_NUMBER, prefix, name, p, n, h);
        if (r == -2) return bad_value(err, BAD_FINITE, prefix, name, p, n, h);
        if (r == -3 || v < h->lo || v > h->hi) return bad_value(err, BAD_RANGE, prefix, name, p, n, h);
        format_double(out, sizeof out, v);
    }
    if (canonical) snprintf(canonical, TB_HP_TEXT, "%s", out);
    return TB_OK;
}

tb_status tb_space_check_value(const tb_space *s, tb_hp hp, const char *text, char canonical[TB_HP_TEXT],
                               tb_err *err)
{
    return check_value(s, hp, text, canonical, "", err);
}

/* ---- reading [space] --------------------------------------------------------------------- */

/* The syntax and core limits of hp's [space] line, for messages. */
static void spec_syntax(char *out, size_t cap, tb_hp hp)
{
    const core_limit limit = core_limits(hp), *c = &limit;
    char lo[TB_HP_TEXT], hi[TB_HP_TEXT], list[192];
    format_value(lo, sizeof lo, c->type, c->lo);
    format_value(hi, sizeof hi, c->type, c->hi);
    switch (c->type) {
    case TB_HP_INT: snprintf(out, cap, "int LO HI [log] with %s <= LO <= HI <= %s", lo, hi); break;
    case TB_HP_FLOAT: snprintf(out, cap, "float LO HI [log] with %s <= LO <= HI <= %s", lo, hi); break;
    case TB_HP_CHOICE:
        choices_listed(list, sizeof list, c->choices);
        snprintf(out, cap, "choice NAME|NAME|... from %s", list);
        break;
    }
}

static const char *type_word(tb_hp_type t)
{
    return t == TB_HP_INT ? "int" : t == TB_HP_FLOAT ? "float" : "choice";
}

/* Splits text at blanks into up to max words (in buf); returns the count, or max + 1 when there are more. */
static int split_words(char *buf, char **words, int max)
{
    int n = 0;
    char *p = buf;
    for (;;) {
        while (is_blank(*p)) p++;
        if (!*p) return n;
        if (n == max) return max + 1;
        words[n++] = p;
        while (*p && !is_blank(*p)) p++;
        if (*p) *p++ = '\0';
    }
}

/* "choice a|b|c" (the part after "choice") into h->choices, canonically. */
static tb_status parse_choices(tb_hp hp, const char *list, const char *value, const char *syntax, tb_hp_spec *h,
                               tb_err *err)
{
    const char *name = tb_hp_names[hp];
    char out[sizeof h->choices] = "";
    size_t used = 0;
    const char *p = list;
    for (;;) {
        size_t n = strcspn(p, "|");
        const char *t = trim_n(p, &n);
        char item[80];
        shown(item, sizeof item, t, n);
        if (n == 0)
            return tb_fail(err, TB_EINVAL, "space.%s = \"%s\" has an empty choice; allowed: %s", name, value, syntax);
        int k = choice_find(core_limits(hp).choices, t, n);
        if (k < 0)
            return tb_fail(err, TB_EINVAL, "space.%s = \"%s\": %s is not allowed; allowed: %s", name, value, item,
                           syntax);
        char canon[TB_HP_TEXT];
        choice_at(core_limits(hp).choices, k, canon, sizeof canon);
        if (choice_find(out, canon, strlen(canon)) >= 0)
            return tb_fail(err, TB_EINVAL, "space.%s = \"%s\" lists %s twice; allowed: %s", name, value, canon,
                           syntax);
        /* out cannot overflow: the choices are distinct names from the core's list */
        used += (size_t)snprintf(out + used, sizeof out - used, "%s%s", used ? "|" : "", canon);
        p += strcspn(p, "|");
        if (!*p) break;
        p++;
    }
    snprintf(h->choices, sizeof h->choices, "%s", out);
    return TB_OK;
}

/* One [space] line for hp: "int LO HI [log]", "float LO HI [log]" or "choice a|b|c". */
static tb_status parse_spec(tb_hp hp, const char *raw, tb_hp_spec *h, tb_err *err)
{
    const char *name = tb_hp_names[hp];
    const core_limit limit = core_limits(hp), *c = &limit;
    char syntax[256], value[160], buf[512];
    spec_syntax(syntax, sizeof syntax, hp);
    size_t n = 0;
    const char *text = trim(raw, &n);
    shown(value, sizeof value, text, n);
    if (n >= sizeof buf)
        return tb_fail(err, TB_EINVAL, "space.%s = \"%s\" is too long; allowed: %s", name, value, syntax);
    memcpy(buf, text, n);
    buf[n] = '\0';

    size_t word_len = 0;
    while (buf[word_len] && !is_blank(buf[word_len])) word_len++;
    const char *want = type_word(c->type);
    int is_type_word = 0;
    for (int t = TB_HP_INT; t <= TB_HP_CHOICE; t++)
        if (word_len == strlen(type_word((tb_hp_type)t)) && strncasecmp(buf, type_word((tb_hp_type)t), word_len) == 0)
            is_type_word = 1;
    if (!is_type_word)
        return tb_fail(err, TB_EINVAL, "space.%s = \"%s\" does not start with int, float or choice; allowed: %s", name,
                       value, syntax);
    if (word_len != strlen(want) || strncasecmp(buf, want, word_len) != 0)
        return tb_fail(err, TB_EINVAL, "space.%s = \"%s\": %s is %s, not %.*s; allowed: %s", name, value, name,
                       c->type == TB_HP_INT ? "an integer" : c->type == TB_HP_FLOAT ? "a float" : "a choice",
                       (int)word_len, buf, syntax);

    tb_hp_spec spec = *h;
    spec.type = c->type;
    if (c->type == TB_HP_CHOICE) {
        const char *list = buf + word_len;
        tb_status st = parse_choices(hp, list, value, syntax, &spec, err);
        if (st != TB_OK) return st;
        spec.lo = spec.hi = 0;
        spec.log = 0;
        *h = spec;
        return TB_OK;
    }

    char *words[4];
    int nw = split_words(buf + word_len, words, 3);
    if (nw < 2 || nw > 3 || (nw == 3 && strcasecmp(words[2], "log") != 0))
        return tb_fail(err, TB_EINVAL, "space.%s = \"%s\" is not a valid range; allowed: %s", name, value, syntax);
    double bounds[2];
    for (int i = 0; i < 2; i++) {
        int r;
        if (c->type == TB_HP_INT) {
            long long v = 0;
            r = parse_int(words[i], strlen(words[i]), &v);
            bounds[i] = (double)v;
            if (r == -2) { /* too large for long long: certainly outside the core's limits, reported below */
                r = 0;
                bounds[i] = words[i][0] == '-' ? -INFINITY : INFINITY;
            }
        } else {
            r = parse_number(words[i], strlen(words[i]), &bounds[i]);
        }
        if (r != 0)
            return tb_fail(err, TB_EINVAL, "space.%s = \"%s\": %s is not %s; allowed: %s", name, value, words[i],
                           c->type == TB_HP_INT ? "an integer" : "a finite number", syntax);
    }
    if (bounds[0] > bounds[1])
        return tb_fail(err, TB_EINVAL, "space.%s = \"%s\": LO %s is greater than HI %s; allowed: %s", name, value,
                       words[0], words[1], syntax);
    if (bounds[0] < c->lo || bounds[1] > c->hi)
        return tb_fail(err, TB_EINVAL, "space.%s = \"%s\" is outside what training accepts; allowed: %s", name,
                       value, syntax);
    spec.log = nw == 3;
    if (spec.log && !(bounds[0] > 0))
        return tb_fail(err, TB_EINVAL, "space.%s = \"%s\": log needs LO > 0; allowed: %s", name, value, syntax);
    spec.lo = bounds[0] == 0 ? 0 : bounds[0]; /* no -0 */
    spec.hi = bounds[1] == 0 ? 0 : bounds[1];
    spec.choices[0] = '\0';
    *h = spec;
    return TB_OK;
}

/* "mandatory = a, b, c": exactly those are mandatory; an empty value makes none. */
static tb_status parse_mandatory(tb_space *s, const char *raw, tb_err *err)
{
    size_t n = 0;
    const char *text = trim(raw, &n);
    char value[160], names[256];
    shown(value, sizeof value, text, n);
    snprintf(names, sizeof names, "%s", tb_hp_names[0]);
    for (int i = 1; i < TB_HP_COUNT; i++) {
        strncat(names, ", ", sizeof names - strlen(names) - 1);
        strncat(names, tb_hp_names[i], sizeof names - strlen(names) - 1);
    }
    int mandatory[TB_HP_COUNT] = {0};
    if (n > 0) {
        const char *p = text, *end = text + n;
        for (;;) {
            const char *comma = memchr(p, ',', (size_t)(end - p));
            size_t len = (size_t)((comma ? comma : end) - p);
            const char *t = trim_n(p, &len);
            char item[80];
            shown(item, sizeof item, t, len);
            if (len == 0)
                return tb_fail(err, TB_EINVAL, "space.mandatory = \"%s\" has an empty name; allowed: names from %s",
                               value, names);
            int hp = -1;
            for (int i = 0; i < TB_HP_COUNT && hp < 0; i++)
                if (strlen(tb_hp_names[i]) == len && strncasecmp(tb_hp_names[i], t, len) == 0) hp = i;
            if (hp < 0) {
                char hint[96] = "";
                const char *near = tb_nearest(item, tb_hp_names, TB_HP_COUNT);
                if (near) snprintf(hint, sizeof hint, " (did you mean %s?)", near);
                return tb_fail(err, TB_EINVAL,
                               "space.mandatory = \"%s\": %s is not a hyperparameter%s; allowed: names from %s", value,
                               item, hint, names);
            }
            mandatory[hp] = 1;
            if (!comma) break;
            p = comma + 1;
        }
    }
    for (int i = 0; i < TB_HP_COUNT; i++) s->hp[i].mandatory = mandatory[i];
    return TB_OK;
}

tb_status tb_space_load(tb_space *s, const tb_config *cfg, tb_err *err)
{
    tb_space_default(s);
    if (!cfg) return TB_OK;
    const char *valid[TB_HP_COUNT + 1];
    for (int i = 0; i < TB_HP_COUNT; i++) valid[i] = tb_hp_names[i];
    valid[TB_HP_COUNT] = "mandatory";
    tb_status st = tb_config_check_section(cfg, "space", valid, TB_HP_COUNT + 1, err);
    if (st != TB_OK) return st;

    const char *m = tb_config_get(cfg, "space", "mandatory");
    if (m && (st = parse_mandatory(s, m, err)) != TB_OK) return st;
    for (int i = 0; i < TB_HP_COUNT; i++) {
        const char *text = tb_config_get(cfg, "space", tb_hp_names[i]);
        if (text && (st = parse_spec((tb_hp)i, text, &s->hp[i], err)) != TB_OK) return st;
    }

    /* presets: [train]'s value, else Table 1's default; either must lie in the space */
    for (int i = 0; i < TB_HP_COUNT; i++) {
        tb_hp_spec *h = &s->hp[i];
        const char *name = tb_hp_names[i];
        const char *given = tb_config_get(cfg, "train", name);
        char canon[TB_HP_TEXT];
        if (given) {
            if ((st = check_value(s, (tb_hp)i, given, canon, "train.", err)) != TB_OK) return st;
            snprintf(h->def, sizeof h->def, "%s", canon);
        } else if (h->mandatory) {
            h->def[0] = '\0';
        } else if (!paper_space[i].def[0]) {
            return tb_fail(err, TB_EINVAL,
                           "space.mandatory leaves %s optional, but it has no preset; give train.%s or make it "
                           "mandatory",
                           name, name);
        } else if (check_value(s, (tb_hp)i, paper_space[i].def, canon, "", NULL) != TB_OK) {
            char allowed[256];
            allowed_values(allowed, sizeof allowed, h);
            return tb_fail(err, TB_EINVAL,
                           "%s's preset %s (Table 1's default) is outside space.%s; give train.%s or widen the "
                           "range; allowed: %s",
                           name, paper_space[i].def, name, name, allowed);
        } else {
            snprintf(h->def, sizeof h->def, "%s", canon);
        }
    }
    return TB_OK;
}

/* ---- optimizers -------------------------------------------------------------------------- */

int tb_hp_used_by(tb_hp hp, const char *optimizer)
{
    if ((int)hp < 0 || (int)hp >= TB_HP_COUNT) return 0;
    const tb_hparam_info *row = &tb_hparams[training_row[hp]];
    if (!row->is_optim) return 1; /* epochs, batch_size, loss, optimizer: every optimizer */
    char lower[16];
    size_t n = 0;
    for (; optimizer && optimizer[n] && n + 1 < sizeof lower; n++) lower[n] = (char)tolower((unsigned char)optimizer[n]);
    lower[n] = '\0';
    tb_optim_kind kind;
    if (!optimizer || optimizer[n] || tb_optim_parse(lower, &kind) != 0) return 0;
    return (row->read_by & (1u << kind)) != 0;
}

/* ---- a whole submission ------------------------------------------------------------------ */

static int is_blank_text(const char *text)
{
    size_t n = 0;
    return !text || (trim(text, &n), n == 0);
}

tb_status tb_space_resolve(const tb_space *s, const char *const given[TB_HP_COUNT], int train_count,
                           tb_hp_values *out, int *bad_hp, tb_err *err)
{
    if (bad_hp) *bad_hp = -1;
    tb_hp_values v;
    memset(&v, 0, sizeof v);
    for (int i = 0; i < TB_HP_COUNT; i++) {
        const tb_hp_spec *h = &s->hp[i];
        const char *text = given ? given[i] : NULL;
        tb_status st = TB_OK;
        if (!is_blank_text(text)) {
            st = tb_space_check_value(s, (tb_hp)i, text, v.text[i], err);
        } else if (h->mandatory || !h->def[0]) {
            char allowed[256];
            allowed_values(allowed, sizeof allowed, h);
            st = tb_fail(err, TB_EINVAL, "%s is mandatory; allowed: %s", tb_hp_names[i], allowed);
        } else {
            snprintf(v.text[i], sizeof v.text[i], "%s", h->def);
        }
        if (st == TB_OK && i == TB_HP_BATCH_SIZE && train_count > 0 && strtoll(v.text[i], NULL, 10) > train_count)
            st = tb_fail(err, TB_EINVAL, "batch_size = %s is larger than the training set (%d samples)", v.text[i],
                         train_count);
        if (st != TB_OK) {
            if (bad_hp) *bad_hp = i;
            return st;
        }
    }
    if (out) *out = v;
    return TB_OK;
}

/* ---- random search ----------------------------------------------------------------------- */

/* Uniform in [0, 1) with 53 random bits. */
static double uniform53(tb_rng *r)
{
    uint64_t a = tb_rng_u32(r) >> 5, b = tb_rng_u32(r) >> 6;
    return (double)((a << 26) | b) * 0x1p-53;
}

/* One draw of hp from its own blocks (see SEARCH_BLOCKS_PER_HP). */
static void draw(const tb_hp_spec *h, tb_hp hp, tb_rng *r, uint64_t base, char out[TB_HP_TEXT])
{
    tb_rng_seek(r, base + (uint64_t)hp * SEARCH_BLOCKS_PER_HP);
    double u = uniform53(r);
    if (h->type == TB_HP_CHOICE) {
        int n = choice_count(h->choices);
        int k = (int)(u * n);
        if (k > n - 1) k = n - 1;
        choice_at(h->choices, k, out, TB_HP_TEXT);
        return;
    }
    double v;
    if (h->lo == h->hi) {
        v = h->lo;
    } else if (h->type == TB_HP_INT) {
        /* log: integer k gets the log-uniform mass of [k, k + 1), so both ends are full weight */
        if (h->log) v = floor(exp(log(h->lo) + u * (log(h->hi + 1) - log(h->lo))));
        else v = h->lo + floor(u * (h->hi - h->lo + 1));
    } else {
        v = h->log ? exp(log(h->lo) + u * (log(h->hi) - log(h->lo))) : h->lo + u * (h->hi - h->lo);
    }
    /* rounding in exp/log (or lo + u * width) may step just outside */
    if (v < h->lo) v = h->lo;
    if (v > h->hi) v = h->hi;
    format_value(out, TB_HP_TEXT, h->type, v);
}

void tb_space_sample(const tb_space *s, uint64_t seed, uint64_t index, tb_hp_values *out)
{
    /* sub = the low 32 bits of index; the high bits pick a run of 2^32 blocks */
    tb_rng r;
    tb_rng_init(&r, seed, TB_STREAM_SEARCH, (uint32_t)index);
    const uint64_t base = (index >> 32) << 32;
    memset(out, 0, sizeof *out);
    draw(&s->hp[TB_HP_OPTIMIZER], TB_HP_OPTIMIZER, &r, base, out->text[TB_HP_OPTIMIZER]);
    const char *optimizer = out->text[TB_HP_OPTIMIZER];
    for (int i = 0; i < TB_HP_COUNT; i++) {
        if (i == TB_HP_OPTIMIZER) continue;
        const tb_hp_spec *h = &s->hp[i];
        /* a mandatory one without a preset is drawn even when unread, as a submission must give it */
        if (!tb_hp_used_by((tb_hp)i, optimizer) && h->def[0])
            snprintf(out->text[i], sizeof out->text[i], "%s", h->def);
        else
            draw(h, (tb_hp)i, &r, base, out->text[i]);
    }
}

/* ---- output ------------------------------------------------------------------------------ */

tb_status tb_space_apply(const tb_hp_values *v, tb_config *cfg, tb_err *err)
{
    for (int i = 0; i < TB_HP_COUNT; i++) {
        if (!v->text[i][0]) return tb_fail(err, TB_EINVAL, "train.%s has no value to apply", tb_hp_names[i]);
        char key[64];
        snprintf(key, sizeof key, "train.%s", tb_hp_names[i]);
        tb_status st = tb_config_set(cfg, key, v->text[i], err);
        if (st != TB_OK) return st;
    }
    return TB_OK;
}

void tb_space_describe(const tb_space *s, tb_hp hp, char *out, size_t cap)
{
    if (!out || cap == 0) return;
    if ((int)hp < 0 || (int)hp >= TB_HP_COUNT) {
        snprintf(out, cap, "unknown hyperparameter");
        return;
    }
    const tb_hp_spec *h = &s->hp[hp];
    char lo[TB_HP_TEXT], hi[TB_HP_TEXT], list[256];
    format_value(lo, sizeof lo, h->type, h->lo);
    format_value(hi, sizeof hi, h->type, h->hi);
    if (h->type == TB_HP_CHOICE) {
        choices_listed(list, sizeof list, h->choices);
        snprintf(out, cap, "one of %s", list);
    } else {
        snprintf(out, cap, "%s in [%s, %s]%s", type_word(h->type), lo, hi, h->log ? " (log scale)" : "");
    }
}

/* A growing text for tb_space_to_ini; failed is set once an allocation fails. */
typedef struct text_buf {
    char *p;
    size_t len, cap;
    int failed;
} text_buf;

static void add(text_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(text_buf *b, const char *fmt, ...)
{
    if (b->failed) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || b->len + (size_t)n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (n >= 0 && cap < b->len + (size_t)n + 1) cap *= 2;
        char *p = n < 0 ? NULL : realloc(b->p, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

char *tb_space_to_ini(const tb_space *s)
{
    text_buf b = {0};
    add(&b, "[space]\nmandatory =");
    int first = 1;
    for (int i = 0; i < TB_HP_COUNT; i++) {
        if (!s->hp[i].mandatory) continue;
        add(&b, "%s %s", first ? "" : ",", tb_hp_names[i]);
        first = 0;
    }
    add(&b, "\n");
    for (int i = 0; i < TB_HP_COUNT; i++) {
        const tb_hp_spec *h = &s->hp[i];
        if (h->type == TB_HP_CHOICE) {
            add(&b, "%s = choice %s\n", tb_hp_names[i], h->choices);
        } else {
            char lo[TB_HP_TEXT], hi[TB_HP_TEXT];
            format_value(lo, sizeof lo, h->type, h->lo);
            format_value(hi, sizeof hi, h->type, h->hi);
            add(&b, "%s = %s %s %s%s\n", tb_hp_names[i], type_word(h->type), lo, hi, h->log ? " log" : "");
        }
    }
    /* the presets as the [train] values tb_space_load takes them from, so the text loads back to the same space */
    add(&b, "\n[train]\n");
    for (int i = 0; i < TB_HP_COUNT; i++)
        if (s->hp[i].def[0]) add(&b, "%s = %s\n", tb_hp_names[i], s->hp[i].def);
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
