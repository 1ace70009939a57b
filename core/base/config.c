/* config.c: INI configurations (iniparser 4.1) with --set overrides and typed,
 * range-checked accessors.
 *
 * iniparser parses the file; its dictionary is then copied into a small table
 * of (section, key, value) entries that tb_config_set edits, so overrides
 * simply replace the file's value. iniparser lowercases section and key names,
 * so names are case-insensitive everywhere: every name given to this API is
 * lowercased too. Values keep their case.
 *
 * Numbers are parsed with strtoll (base 10: "010" is ten, not octal) and
 * strtod, rejecting empty text, trailing garbage, hexadecimal, overflow,
 * underflow and NaN; an infinity passes only when the allowed range contains
 * it. Before iniparser reads a file, lint_text refuses what it would let
 * through silently: NUL bytes and control characters, a key or a section
 * given twice; a last line without a newline is read like any other. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <iniparser.h>
#include <pthread.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define CFG_NAME_MAX 64

typedef struct cfg_entry {
    char *section;
    char *key;
    char *value;
} cfg_entry;

struct tb_config {
    char path[4096];
    cfg_entry *e;
    int n, cap;
    char **sec; /* sections in order of appearance */
    int nsec, seccap;
};

/* ---- small helpers ------------------------------------------------------------ */

static char *dup_lower(const char *s)
{
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (!d) return NULL;
    for (size_t i = 0; i <= n; i++) d[i] = (char)tolower((unsigned char)s[i]);
    return d;
}

static void lower_into(char *dst, size_t cap, const char *src)
{
    size_t i = 0;
    for (; src[i] && i + 1 < cap; i++) dst[i] = (char)tolower((unsigned char)src[i]);
    dst[i] = '\0';
}

/* Copies s without leading and trailing white space; malloc'd. */
static char *dup_trimmed(const char *s)
{
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1])) n--;
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

/* Section and key names: letters, digits, '_' and '-' (so "section.key" and
 * iniparser's "section:key" are never ambiguous). */
static int valid_name(const char *s)
{
    if (!*s || strlen(s) >= CFG_NAME_MAX) return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-') return 0;
    return 1;
}

/* Appends text to buf[cap] at *used; ends with "..." when it does not fit. */
static void append(char *buf, size_t cap, size_t *used, const char *text)
{
    if (*used + 1 >= cap) return;
    size_t n = strlen(text);
    if (*used + n + 1 > cap) {
        size_t room = cap - *used - 1;
        memcpy(buf + *used, text, room);
        *used += room;
        buf[*used] = '\0';
        if (cap >= 4) memcpy(buf + cap - 4, "...", 4);
        *used = cap - 1;
        return;
    }
    memcpy(buf + *used, text, n + 1);
    *used += n;
}

/* "a, b, c" from names[0..n) into buf. */
static void join_names(char *buf, size_t cap, const char *const *names, int n, const char *sep)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (i) append(buf, cap, &used, sep);
        append(buf, cap, &used, names[i]);
    }
}

/* ---- the entry table -------------------------------------------------------------- */

static int find_entry(const tb_config *cfg, const char *section, const char *key)
{
    char s[CFG_NAME_MAX], k[CFG_NAME_MAX];
    lower_into(s, sizeof s, section);
    lower_into(k, sizeof k, key);
    for (int i = 0; i < cfg->n; i++)
        if (strcmp(cfg->e[i].section, s) == 0 && strcmp(cfg->e[i].key, k) == 0) return i;
    return -1;
}

static int find_section(const tb_config *cfg, const char *section)
{
    char s[CFG_NAME_MAX];
    lower_into(s, sizeof s, section);
    for (int i = 0; i < cfg->nsec; i++)
        if (strcmp(cfg->sec[i], s) == 0) return i;
    return -1;
}

static tb_status add_section(tb_config *cfg, const char *section)
{
    if (find_section(cfg, section) >= 0) return TB_OK;
    if (cfg->nsec == cfg->seccap) {
        int cap = cfg->seccap ? 2 * cfg->seccap : 8;
        char **s = realloc(cfg->sec, sizeof *s * (size_t)cap);
        if (!s) return TB_ENOMEM;
        cfg->sec = s;
        cfg->seccap = cap;
    }
    char *name = dup_lower(section);
    if (!name) return TB_ENOMEM;
    cfg->sec[cfg->nsec++] = name;
    return TB_OK;
}

/* Sets section.key (names already validated) to value (trimmed unless raw). */
static tb_status put(tb_config *cfg, const char *section, const char *key, const char *value, int raw)
{
    if (add_section(cfg, section) != TB_OK) return TB_ENOMEM;
    char *v = raw ? strdup(value) : dup_trimmed(value);
    if (!v) return TB_ENOMEM;
    int i = find_entry(cfg, section, key);
    if (i >= 0) {
        free(cfg->e[i].value);
        cfg->e[i].value = v;
        return TB_OK;
    }
    if (cfg->n == cfg->cap) {
        int cap = cfg->cap ? 2 * cfg->cap : 16;
        cfg_entry *e = realloc(cfg->e, sizeof *e * (size_t)cap);
        if (!e) {
            free(v);
            return TB_ENOMEM;
        }
        cfg->e = e;
        cfg->cap = cap;
    }
    cfg_entry *e = &cfg->e[cfg->n];
    e->section = dup_lower(section);
    e->key = dup_lower(key);
    e->value = v;
    if (!e->section || !e->key) {
        free(e->section);
        free(e->key);
        free(v);
        return TB_ENOMEM;
    }
    cfg->n++;
    return TB_OK;
}

tb_config *tb_config_new(void) { return calloc(1, sizeof(tb_config)); }

void tb_config_free(tb_config *cfg)
{
    if (!cfg) return;
    for (int i = 0; i < cfg->n; i++) {
        free(cfg->e[i].section);
        free(cfg->e[i].key);
        free(cfg->e[i].value);
    }
    for (int i = 0; i < cfg->nsec; i++) free(cfg->sec[i]);
    free(cfg->e);
    free(cfg->sec);
    free(cfg);
}

const char *tb_config_path(const tb_config *cfg) { return cfg ? cfg->path : ""; }

void tb_config_set_path(tb_config *cfg, const char *name)
{
    if (cfg) snprintf(cfg->path, sizeof cfg->path, "%s", name ? name : "");
}

/* ---- loading ------------------------------------------------------------------------ */

/* iniparser reports syntax errors through a global callback; we collect the
 * first one (and count the rest) while tb_config_load runs. */
static pthread_mutex_t ini_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    int count;
    int line;          /* 0 when the message carries none */
    char text[256];    /* the offending line, or iniparser's message */
} ini_error;

static int ini_error_cb(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (ini_error.count++ == 0) {
        if (strstr(fmt, "syntax error") || strstr(fmt, "line too long")) {
            /* "iniparser: syntax error in %s (%d):\n-> %s\n" and
             * "iniparser: input line too long in %s (%d)\n" */
            (void)va_arg(ap, const char *);
            ini_error.line = va_arg(ap, int);
            if (strstr(fmt, "syntax error")) {
                const char *line = va_arg(ap, const char *);
                snprintf(ini_error.text, sizeof ini_error.text, "syntax error in \"%s\" (expected [section], "
                         "key = value or a ; comment)", line ? line : "");
            } else {
                snprintf(ini_error.text, sizeof ini_error.text, "line too long (at most 1024 characters)");
            }
        } else {
            vsnprintf(ini_error.text, sizeof ini_error.text, fmt, ap);
            size_t n = strlen(ini_error.text);
            while (n > 0 && isspace((unsigned char)ini_error.text[n - 1])) ini_error.text[--n] = '\0';
            for (char *p = ini_error.text; *p; p++)
                if (*p == '\n') *p = ' ';
        }
    }
    va_end(ap);
    return 0;
}

/* Line of the first "[section]" header with that name, or of the first
 * "key =" inside it (key NULL: the header), for messages; 0 when not found.
 * key "" with section "": a key before any section. */
static int locate(const char *path, const char *section, const char *key)
{
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[2048], cur[CFG_NAME_MAX * 2] = "";
    int lineno = 0, found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        lineno++;
        char *s = line;
        while (isspace((unsigned char)*s)) s++;
        if (!*s || *s == ';' || *s == '#') continue;
        if (*s == '[') {
            char *end = strchr(s, ']');
            if (end) *end = '\0';
            char *name = s + 1;
            while (isspace((unsigned char)*name)) name++;
            size_t n = strlen(name);
            while (n > 0 && isspace((unsigned char)name[n - 1])) name[--n] = '\0';
            lower_into(cur, sizeof cur, name);
            if (!key && strcmp(cur, section) == 0) found = lineno;
            continue;
        }
        if (!key || strcmp(cur, section) != 0) continue;
        char *eq = strchr(s, '=');
        if (!eq) continue;
        *eq = '\0';
        size_t n = strlen(s);
        while (n > 0 && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
        char k[CFG_NAME_MAX * 2];
        lower_into(k, sizeof k, s);
        if (!*key || strcmp(k, key) == 0) found = lineno;
    }
    fclose(f);
    return found;
}

static tb_status load_error(tb_err *err, const char *path, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static tb_status load_error(tb_err *err, const char *path, int line, const char *fmt, ...)
{
    char what[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (line > 0) return tb_fail(err, TB_EFORMAT, "%s:%d: %s", path, line, what);
    return tb_fail(err, TB_EFORMAT, "%s: %s", path, what);
}

/* ---- what iniparser lets through -------------------------------------------------------
 *
 * iniparser keeps the last of two equal keys or sections, drops a line with
 * a NUL byte, takes control characters as text and ignores a short last line
 * without a newline. A configuration is what a study archives and a
 * participant's run is judged by, so these are refused before iniparser
 * reads the text: every mistake is named with its line. */

#define CONFIG_MAX_BYTES (4 << 20) /* far beyond any configuration; a guard against a wrong file */

typedef struct lint_name {
    char section[CFG_NAME_MAX], key[CFG_NAME_MAX]; /* key "": the section header */
    int line;
} lint_name;

static int cmp_lint_name(const void *a, const void *b)
{
    const lint_name *x = a, *y = b;
    int c = strcmp(x->section, y->section);
    if (!c) c = strcmp(x->key, y->key);
    if (!c) c = (x->line > y->line) - (x->line < y->line);
    return c;
}

/* Lowercased, trimmed copy of text[0..n) into dst (cut at cap - 1). */
static void trimmed_lower(char *dst, size_t cap, const char *text, size_t n)
{
    while (n > 0 && isspace((unsigned char)*text)) text++, n--;
    while (n > 0 && isspace((unsigned char)text[n - 1])) n--;
    if (n >= cap) n = cap - 1;
    for (size_t i = 0; i < n; i++) dst[i] = (char)tolower((unsigned char)text[i]);
    dst[n] = '\0';
}

static tb_status lint_text(const char *text, size_t len, const char *path, tb_err *err)
{
    lint_name *names = NULL;
    size_t n_names = 0, cap = 0;
    char section[CFG_NAME_MAX] = "";
    int line = 1, continued = 0;
    tb_status st = TB_OK;
    for (size_t start = 0; start < len && st == TB_OK; line++) {
        size_t end = start;
        while (end < len && text[end] != '\n') end++;
        /* bytes iniparser would drop or keep silently */
        for (size_t i = start; i < end; i++) {
            unsigned char c = (unsigned char)text[i];
            if (c == '\t' || (c == '\r' && i + 1 == end)) continue;
            if (c == 0) {
                st = load_error(err, path, line, "a NUL byte at column %zu (a configuration is text)", i - start + 1);
                break;
            }
            if (c < 0x20 || c == 0x7f) {
                st = load_error(err, path, line, "control character 0x%02x at column %zu (a configuration is text)",
                                c, i - start + 1);
                break;
            }
        }
        if (st != TB_OK) break;
        size_t a = start, b = end;
        while (a < b && isspace((unsigned char)text[a])) a++;
        while (b > a && isspace((unsigned char)text[b - 1])) b--;
        int was_continued = continued;
        continued = b > a && text[b - 1] == '\\'; /* iniparser joins the next line to this value */
        if (was_continued || a == b || text[a] == ';' || text[a] == '#') {
            start = end + 1;
            continue;
        }
        lint_name name = {.line = line};
        if (text[a] == '[') {
            const char *close = memchr(text + a, ']', b - a);
            trimmed_lower(name.section, sizeof name.section, text + a + 1,
                          close ? (size_t)(close - text - a - 1) : b - a - 1);
            tb_copy_str(section, sizeof section, name.section);
        } else {
            const char *eq = memchr(text + a, '=', b - a);
            if (!eq) { /* iniparser reports the syntax error */
                start = end + 1;
                continue;
            }
            tb_copy_str(name.section, sizeof name.section, section);
            trimmed_lower(name.key, sizeof name.key, text + a, (size_t)(eq - text - a));
        }
        if (n_names == cap) {
            size_t c2 = cap ? 2 * cap : 64;
            lint_name *grown = realloc(names, c2 * sizeof *grown);
            if (!grown) {
                st = tb_fail(err, TB_ENOMEM, "out of memory reading %s", path);
                break;
            }
            names = grown;
            cap = c2;
        }
        names[n_names++] = name;
        start = end + 1;
    }
    if (st == TB_OK && n_names > 1) {
        /* equal names sort together, by line: report the earliest repetition */
        qsort(names, n_names, sizeof *names, cmp_lint_name);
        const lint_name *first = NULL, *again = NULL;
        for (size_t i = 1; i < n_names; i++)
            if (!strcmp(names[i].section, names[i - 1].section) && !strcmp(names[i].key, names[i - 1].key) &&
                (!again || names[i].line < again->line) && (i == 1 || strcmp(names[i].section, names[i - 2].section) ||
                                                            strcmp(names[i].key, names[i - 2].key))) {
                first = &names[i - 1];
                again = &names[i];
            }
        if (again && !again->key[0])
            st = load_error(err, path, again->line, "section [%s] appears again (first at line %d): merge the two",
                            again->section, first->line);
        else if (again)
            st = load_error(err, path, again->line, "%s.%s is given twice (lines %d and %d): keep one", again->section,
                            again->key, first->line, again->line);
    }
    free(names);
    return st;
}

/* Reads path whole (a regular file, at most CONFIG_MAX_BYTES) into *out (malloc'd, NUL-terminated). */
static tb_status read_config_file(const char *path, char **out, size_t *len, tb_err *err)
{
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0) return tb_fail(err, TB_EIO, "cannot read config %s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return tb_fail(err, TB_EIO, "cannot read config %s: not a regular file", path);
    if (st.st_size > CONFIG_MAX_BYTES)
        return tb_fail(err, TB_EINVAL, "config %s is %lld bytes; a configuration has at most %d", path,
                       (long long)st.st_size, CONFIG_MAX_BYTES);
    FILE *f = fopen(path, "rb");
    if (!f) return tb_fail(err, TB_EIO, "cannot read config %s: %s", path, strerror(errno));
    char *text = malloc((size_t)st.st_size + 2);
    if (!text) {
        fclose(f);
        return tb_fail(err, TB_ENOMEM, "out of memory reading %s", path);
    }
    size_t n = fread(text, 1, (size_t)st.st_size + 1, f);
    int failed = ferror(f);
    fclose(f);
    if (failed || n > (size_t)st.st_size) { /* an error, or the file grew while read */
        free(text);
        return tb_fail(err, TB_EIO, "cannot read config %s: %s", path, failed ? strerror(errno) : "it changed while read");
    }
    text[n] = '\0';
    *out = text;
    *len = n;
    return TB_OK;
}

/* Writes text to a new temporary file (for iniparser, which reads only files); 0 or -1 with a message. */
static tb_status write_temporary(const char *text, size_t n, char path[1024], tb_err *err)
{
    const char *dir = getenv("TMPDIR");
    snprintf(path, 1024, "%s/tunebench-config-XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0)
        return tb_fail(err, TB_EIO, "cannot create a temporary file in %s: %s", dir && *dir ? dir : "/tmp",
                       strerror(errno));
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(fd, text + done, n - done);
        if (w <= 0) {
            int e = w < 0 ? errno : ENOSPC;
            close(fd);
            unlink(path);
            return tb_fail(err, TB_EIO, "cannot write %s: %s", path, strerror(e));
        }
        done += (size_t)w;
    }
    if (close(fd) != 0) {
        int e = errno;
        unlink(path);
        return tb_fail(err, TB_EIO, "cannot write %s: %s", path, strerror(e));
    }
    return TB_OK;
}

/* Copies iniparser's dictionary into cfg, validating names. */
static tb_status copy_dictionary(tb_config *cfg, const dictionary *d, const char *path, tb_err *err)
{
    for (ssize_t i = 0; i < d->size; i++) {
        const char *full = d->key[i];
        if (!full) continue;
        const char *colon = strchr(full, ':');
        /* a section header: iniparser stores it without a value; its name may hold a
         * ':' ("[train:lr]"), which must not pass for the key train.lr */
        if (!colon || !d->val[i]) {
            if (!valid_name(full))
                return load_error(err, path, locate(path, full, NULL),
                                  "invalid section name [%s] (use letters, digits, '_' and '-')", full);
            if (add_section(cfg, full) != TB_OK) return tb_fail(err, TB_ENOMEM, "out of memory reading %s", path);
            continue;
        }
        char section[CFG_NAME_MAX * 2];
        size_t slen = (size_t)(colon - full);
        if (slen >= sizeof section) slen = sizeof section - 1;
        memcpy(section, full, slen);
        section[slen] = '\0';
        const char *key = colon + 1;
        if (slen == 0)
            return load_error(err, path, locate(path, "", ""), "key \"%s\" is outside any section (put it under "
                              "a [section] header)", key);
        if (!valid_name(key))
            return load_error(err, path, locate(path, section, key),
                              "invalid key name \"%s\" in [%s] (use letters, digits, '_' and '-')", key, section);
        if (put(cfg, section, key, d->val[i] ? d->val[i] : "", 1) != TB_OK)
            return tb_fail(err, TB_ENOMEM, "out of memory reading %s", path);
    }
    return TB_OK;
}

/* Parses text read from path (name in messages: path). iniparser reads files:
 * it gets path itself, or a temporary copy when the text lacks its final
 * newline (iniparser would drop a short last line). */
static tb_status parse_text(tb_config **out, const char *path, char *text, size_t len, tb_err *err);

tb_status tb_config_load(tb_config **out, const char *path, tb_err *err)
{
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    tb_status st = read_config_file(path, &text, &len, err);
    if (st != TB_OK) return st;
    st = parse_text(out, path, text, len, err);
    free(text);
    return st;
}

/* Replaces the temporary file's name by name in err's message. */
static void rename_in_message(tb_err *err, const char *tmp, const char *name)
{
    if (!err || strncmp(err->msg, tmp, strlen(tmp)) != 0) return;
    char msg[sizeof err->msg];
    size_t used = 0;
    tb_appendf(msg, sizeof msg, &used, "%s%s", name, err->msg + strlen(tmp));
    tb_copy_str(err->msg, sizeof err->msg, msg);
}

static tb_status parse_file(tb_config **out, const char *path, tb_err *err);

static tb_status parse_text(tb_config **out, const char *path, char *text, size_t len, tb_err *err)
{
    tb_status st = lint_text(text, len, path, err);
    if (st != TB_OK) return st;
    if (len == 0 || text[len - 1] == '\n') return parse_file(out, path, err);
    char tmp[1024];
    text[len] = '\n'; /* read_config_file and tb_config_load_text leave room for it */
    st = write_temporary(text, len + 1, tmp, err);
    text[len] = '\0';
    if (st != TB_OK) return st;
    st = parse_file(out, tmp, err);
    unlink(tmp);
    if (st != TB_OK) rename_in_message(err, tmp, path);
    else snprintf((*out)->path, sizeof (*out)->path, "%s", path);
    return st;
}

/* iniparser on a file that passed lint_text. */
static tb_status parse_file(tb_config **out, const char *path, tb_err *err)
{
    /* iniparser's error callback is global: one load at a time (executor workers load configs too) */
    pthread_mutex_lock(&ini_lock);
    memset(&ini_error, 0, sizeof ini_error);
    iniparser_set_error_callback(ini_error_cb);
    dictionary *d = iniparser_load(path);
    iniparser_set_error_callback(NULL);
    if (!d || ini_error.count) {
        if (d) iniparser_freedict(d);
        tb_status failed;
        if (!ini_error.count) {
            failed = tb_fail(err, TB_EIO, "cannot read config %s", path);
        } else {
            char more[64] = "";
            if (ini_error.count > 1) snprintf(more, sizeof more, " (and %d more)", ini_error.count - 1);
            failed = load_error(err, path, ini_error.line, "%s%s", ini_error.text, more);
        }
        pthread_mutex_unlock(&ini_lock);
        return failed;
    }
    pthread_mutex_unlock(&ini_lock);

    tb_config *cfg = tb_config_new();
    if (!cfg) {
        iniparser_freedict(d);
        return tb_fail(err, TB_ENOMEM, "out of memory reading %s", path);
    }
    snprintf(cfg->path, sizeof cfg->path, "%s", path);
    tb_status s = copy_dictionary(cfg, d, path, err);
    iniparser_freedict(d);
    if (s != TB_OK) {
        tb_config_free(cfg);
        return s;
    }
    *out = cfg;
    return TB_OK;
}

tb_status tb_config_load_text(tb_config **out, const char *text, const char *name, tb_err *err)
{
    *out = NULL;
    size_t len = strlen(text);
    char *copy = malloc(len + 2);
    if (!copy) return tb_fail(err, TB_ENOMEM, "out of memory reading %s", name);
    memcpy(copy, text, len + 1);
    char tmp[1024];
    tb_status st = write_temporary(copy, len, tmp, err);
    if (st == TB_OK) {
        st = parse_text(out, tmp, copy, len, err);
        unlink(tmp);
        if (st != TB_OK) rename_in_message(err, tmp, name); /* the temporary name means nothing to the reader */
        else snprintf((*out)->path, sizeof (*out)->path, "%s", name);
    }
    free(copy);
    return st;
}

/* ---- overrides ------------------------------------------------------------------------- */

tb_status tb_config_set(tb_config *cfg, const char *section_key, const char *value, tb_err *err)
{
    if (!section_key || !value) return tb_fail(err, TB_EINVAL, "tb_config_set: missing key or value");
    const char *dot = strchr(section_key, '.');
    if (!dot)
        return tb_fail(err, TB_EINVAL, "\"%s\" is not of the form section.key (e.g. train.lr)", section_key);
    char section[CFG_NAME_MAX * 2];
    size_t slen = (size_t)(dot - section_key);
    if (slen >= sizeof section) slen = sizeof section - 1;
    memcpy(section, section_key, slen);
    section[slen] = '\0';
    const char *key = dot + 1;
    if (!valid_name(section) || !valid_name(key))
        return tb_fail(err, TB_EINVAL,
                       "\"%s\" is not of the form section.key (names use letters, digits, '_' and '-')",
                       section_key);
    if (strchr(value, '\n') || strchr(value, '\r'))
        return tb_fail(err, TB_EINVAL, "%s: a value must be one line", section_key);
    for (const char *c = value; *c; c++)
        if (((unsigned char)*c < 0x20 && *c != '\t') || *c == 0x7f)
            return tb_fail(err, TB_EINVAL, "%s: control character 0x%02x in the value (a configuration is text)",
                           section_key, (unsigned char)*c);
    if (put(cfg, section, key, value, 0) != TB_OK) return tb_fail(err, TB_ENOMEM, "out of memory");
    return TB_OK;
}

tb_status tb_config_set_assignment(tb_config *cfg, const char *assignment, tb_err *err)
{
    const char *eq = strchr(assignment, '=');
    if (!eq) return tb_fail(err, TB_EINVAL, "--set \"%s\": expected section.key=value", assignment);
    size_t n = (size_t)(eq - assignment);
    char *key = malloc(n + 1);
    if (!key) return tb_fail(err, TB_ENOMEM, "out of memory");
    memcpy(key, assignment, n);
    key[n] = '\0';
    char *trimmed = dup_trimmed(key);
    free(key);
    if (!trimmed) return tb_fail(err, TB_ENOMEM, "out of memory");
    tb_status s = tb_config_set(cfg, trimmed, eq + 1, err);
    free(trimmed);
    return s;
}

/* ---- reading ----------------------------------------------------------------------------- */

const char *tb_config_get(const tb_config *cfg, const char *section, const char *key)
{
    if (!cfg) return NULL;
    int i = find_entry(cfg, section, key);
    return i >= 0 ? cfg->e[i].value : NULL;
}

int tb_config_has_section(const tb_config *cfg, const char *section)
{
    return cfg && find_section(cfg, section) >= 0;
}

int tb_config_keys(const tb_config *cfg, const char *section, const char **keys, int max)
{
    if (!cfg) return 0;
    char s[CFG_NAME_MAX];
    lower_into(s, sizeof s, section);
    int count = 0;
    for (int i = 0; i < cfg->n; i++) {
        if (strcmp(cfg->e[i].section, s) != 0) continue;
        if (keys && count < max) keys[count] = cfg->e[i].key;
        count++;
    }
    return count;
}

int tb_config_sections(const tb_config *cfg, const char **sections, int max)
{
    if (!cfg) return 0;
    for (int i = 0; i < cfg->nsec && sections && i < max; i++) sections[i] = cfg->sec[i];
    return cfg->nsec;
}

/* ---- typed accessors ---------------------------------------------------------------------- */

/* strtoll in base 10 with every check; 0 ok, -1 not an integer, -2 overflow. */
static int parse_i64(const char *text, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (end == text || *end || isspace((unsigned char)text[0])) return -1;
    if (errno == ERANGE) return -2;
    *out = (int64_t)v;
    return 0;
}

/* strtod with every check; 0 ok, -1 not a number (NaN, hexadecimal), -2
 * overflow (*out = +-inf), -3 underflow (a nonzero value too small for a
 * double's normal range, which would silently become 0 or lose digits). */
static int parse_f64(const char *text, double *out)
{
    const char *digits = text + (text[0] == '+' || text[0] == '-');
    if (digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X')) return -1; /* strtod reads hex: 0x10 is 16 */
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || *end || isspace((unsigned char)text[0])) return -1;
    if (isnan(v)) return -1;
    if (errno == ERANGE && isinf(v)) {
        *out = v;
        return -2;
    }
    if (errno == ERANGE && fabs(v) < DBL_MIN) return -3;
    *out = v;
    return 0;
}

tb_status tb_config_int(const tb_config *cfg, const char *section, const char *key, int64_t def, int64_t lo,
                        int64_t hi, int64_t *out, tb_err *err)
{
    const char *v = tb_config_get(cfg, section, key);
    if (!v) {
        *out = def;
        return TB_OK;
    }
    int64_t x = 0;
    int r = parse_i64(v, &x);
    if (r == -1)
        return tb_fail(err, TB_EINVAL, "%s.%s = \"%s\" is not an integer; allowed: [%" PRId64 ", %" PRId64 "]",
                       section, key, v, lo, hi);
    if (r == -2 || x < lo || x > hi)
        return tb_fail(err, TB_EINVAL, "%s.%s = %s is outside [%" PRId64 ", %" PRId64 "]", section, key, v, lo, hi);
    *out = x;
    return TB_OK;
}

tb_status tb_config_double(const tb_config *cfg, const char *section, const char *key, double def, double lo,
                           double hi, double *out, tb_err *err)
{
    const char *v = tb_config_get(cfg, section, key);
    if (!v) {
        *out = def;
        return TB_OK;
    }
    double x = 0;
    int r = parse_f64(v, &x);
    if (r == -1)
        return tb_fail(err, TB_EINVAL, "%s.%s = \"%s\" is not a number; allowed: [%g, %g]", section, key, v, lo, hi);
    if (r == -3)
        return tb_fail(err, TB_EINVAL, "%s.%s = %s is too small to represent (it would become 0); allowed: [%g, %g]",
                       section, key, v, lo, hi);
    if (!(x >= lo && x <= hi)) /* an overflow to +-inf fails here unless the range is infinite */
        return tb_fail(err, TB_EINVAL, "%s.%s = %s is outside [%g, %g]", section, key, v, lo, hi);
    *out = x;
    return TB_OK;
}

static int parse_bool(const char *v, int *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < TB_ARRAY_LEN(yes); i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

tb_status tb_config_bool(const tb_config *cfg, const char *section, const char *key, int def, int *out,
                         tb_err *err)
{
    const char *v = tb_config_get(cfg, section, key);
    if (!v) {
        *out = def;
        return TB_OK;
    }
    if (parse_bool(v, out) != 0)
        return tb_fail(err, TB_EINVAL, "%s.%s = \"%s\" is not a boolean; allowed: true/false, yes/no, on/off, 1/0",
                       section, key, v);
    return TB_OK;
}

tb_status tb_config_string(const tb_config *cfg, const char *section, const char *key, const char *def,
                           const char **out, tb_err *err)
{
    (void)err;
    const char *v = tb_config_get(cfg, section, key);
    *out = v ? v : def;
    return TB_OK;
}

/* Position of word in "a|b|c" (exact, else ignoring case), or -1. */
static int choice_index(const char *choices, const char *word, int ignore_case)
{
    size_t wlen = strlen(word);
    int idx = 0;
    for (const char *p = choices;; idx++) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == wlen && (ignore_case ? strncasecmp(p, word, n) : strncmp(p, word, n)) == 0) return idx;
        if (!bar) return -1;
        p = bar + 1;
    }
}

/* Splits "a|b|c" into a malloc'd copy and pointers to each choice. */
static int split_choices(const char *choices, char **copy, const char **names, int max)
{
    *copy = strdup(choices);
    if (!*copy) return 0;
    int n = 0;
    for (char *p = *copy; p && n < max;) {
        names[n++] = p;
        char *bar = strchr(p, '|');
        if (bar) *bar++ = '\0';
        p = bar;
    }
    return n;
}

tb_status tb_config_choice(const tb_config *cfg, const char *section, const char *key, const char *def,
                           const char *choices, int *index, tb_err *err)
{
    const char *v = tb_config_get(cfg, section, key);
    int from_default = !v;
    if (!v) v = def;
    if (!v) {
        *index = -1;
        return TB_OK;
    }
    int idx = choice_index(choices, v, 0);
    if (idx < 0) idx = choice_index(choices, v, 1);
    if (idx >= 0) {
        *index = idx;
        return TB_OK;
    }
    if (from_default)
        return tb_fail(err, TB_EINVAL, "%s.%s: default \"%s\" is not one of %s", section, key, v, choices);
    const char *names[64];
    char *copy = NULL;
    int n = split_choices(choices, &copy, names, 64);
    char lower[128];
    lower_into(lower, sizeof lower, v);
    const char *near = tb_nearest(lower, names, n);
    char hint[160] = "";
    if (near) snprintf(hint, sizeof hint, " (did you mean %s?)", near);
    tb_status s = tb_fail(err, TB_EINVAL, "%s.%s = \"%s\" is not a valid choice%s; allowed: %s", section, key, v, hint,
                          choices);
    free(copy);
    return s;
}

/* Parses a comma-separated list; 0 ok, else fills err (what names the value). */
static tb_status parse_int_list(const char *section, const char *key, const char *text, int64_t lo, int64_t hi,
                                int64_t *out, int max, int *n, tb_err *err)
{
    *n = 0;
    const char *p = text;
    while (isspace((unsigned char)*p)) p++;
    if (!*p) return TB_OK; /* an empty list */
    int count = 0;
    for (int item = 1;; item++) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char buf[64];
        const char *s = p;
        while (len > 0 && isspace((unsigned char)*s)) s++, len--;
        while (len > 0 && isspace((unsigned char)s[len - 1])) len--;
        int too_long = len >= sizeof buf;
        if (too_long) len = sizeof buf - 1;
        memcpy(buf, s, len);
        buf[len] = '\0';
        int64_t x = 0;
        int r = too_long ? -2 : parse_i64(buf, &x);
        if (r == -1)
            return tb_fail(err, TB_EINVAL,
                           "%s.%s = \"%s\" is not a list of integers (item %d is \"%s\"); allowed: integers in "
                           "[%" PRId64 ", %" PRId64 "], at most %d",
                           section, key, text, item, buf, lo, hi, max);
        if (r == -2 || x < lo || x > hi)
            return tb_fail(err, TB_EINVAL, "%s.%s = %s is outside [%" PRId64 ", %" PRId64 "] (item %d is %s)",
                           section, key, text, lo, hi, item, buf);
        if (count < max) out[count] = x;
        count++;
        if (!comma) break;
        p = comma + 1;
    }
    if (count > max)
        return tb_fail(err, TB_EINVAL, "%s.%s = %s has %d values; allowed: at most %d", section, key, text, count,
                       max);
    *n = count;
    return TB_OK;
}

tb_status tb_config_int_list(const tb_config *cfg, const char *section, const char *key, const char *def,
                             int64_t lo, int64_t hi, int64_t *out, int max, int *n, tb_err *err)
{
    const char *v = tb_config_get(cfg, section, key);
    if (!v) {
        *n = 0;
        if (!def) return TB_OK;
        tb_err inner;
        tb_status s = parse_int_list(section, key, def, lo, hi, out, max, n, &inner);
        if (s != TB_OK) return tb_fail(err, s, "invalid default: %s", inner.msg);
        return TB_OK;
    }
    return parse_int_list(section, key, v, lo, hi, out, max, n, err);
}

/* ---- unknown keys and sections -------------------------------------------------------------- */

tb_status tb_config_check_section(const tb_config *cfg, const char *section, const char *const *valid, int n,
                                  tb_err *err)
{
    if (!cfg) return TB_OK;
    char s[CFG_NAME_MAX];
    lower_into(s, sizeof s, section);
    for (int i = 0; i < cfg->n; i++) {
        if (strcmp(cfg->e[i].section, s) != 0) continue;
        const char *key = cfg->e[i].key;
        int known = 0;
        for (int j = 0; j < n && !known; j++) known = strcasecmp(valid[j], key) == 0;
        if (known) continue;
        if (n == 0) return tb_fail(err, TB_EINVAL, "unknown key %s.%s; section [%s] takes no keys", s, key, s);
        const char *near = tb_nearest(key, valid, n);
        char hint[96] = "", list[320];
        if (near) snprintf(hint, sizeof hint, " (did you mean %s?)", near);
        join_names(list, sizeof list, valid, n, ", ");
        return tb_fail(err, TB_EINVAL, "unknown key %s.%s%s; valid keys in [%s]: %s", s, key, hint, s, list);
    }
    return TB_OK;
}

tb_status tb_config_check_sections(const tb_config *cfg, const char *const *valid, int n, tb_err *err)
{
    if (!cfg) return TB_OK;
    for (int i = 0; i < cfg->nsec; i++) {
        const char *sec = cfg->sec[i];
        int known = 0;
        for (int j = 0; j < n && !known; j++) known = strcasecmp(valid[j], sec) == 0;
        if (known) continue;
        const char *near = tb_nearest(sec, valid, n);
        char hint[96] = "", list[320];
        if (near) snprintf(hint, sizeof hint, " (did you mean [%s]?)", near);
        join_names(list, sizeof list, valid, n, ", ");
        return tb_fail(err, TB_EINVAL, "unknown section [%s]%s; valid sections: %s", sec, hint, list);
    }
    return TB_OK;
}

/* ---- nearest name ------------------------------------------------------------------------------ */

static size_t levenshtein(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 256 || lb > 256) return (size_t)-1;
    size_t row[257];
    for (size_t j = 0; j <= lb; j++) row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t cost = tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 1]) ? 0 : 1;
            size_t best = diag + cost;
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* 1 when short_word spells the initials of long_word's '_'-separated parts
 * ("lr" and "learning_rate", "wd" and "weight_decay"). */
static int is_initials(const char *short_word, const char *long_word)
{
    size_t n = 0;
    int at_start = 1;
    for (const char *p = long_word; *p; p++) {
        if (*p == '_' || *p == '-') {
            at_start = 1;
            continue;
        }
        if (at_start) {
            if (tolower((unsigned char)short_word[n]) != tolower((unsigned char)*p)) return 0;
            n++;
            at_start = 0;
        }
    }
    return n >= 2 && short_word[n] == '\0';
}

/* Edit distance (Levenshtein), accepted when <= max(2, len(word)/3). Two
 * spellings Levenshtein misses also count as close (distance 1): an
 * abbreviation by initials ("learning_rate" for "lr") and a prefix of at
 * least 3 characters ("batch" for "batch_size"). Ties go to the first. */
const char *tb_nearest(const char *word, const char *const *candidates, int n)
{
    if (!word || !*word) return NULL;
    size_t len = strlen(word), limit = len / 3 > 2 ? len / 3 : 2;
    const char *best = NULL;
    size_t best_d = (size_t)-1;
    for (int i = 0; i < n; i++) {
        const char *c = candidates[i];
        if (!c) continue;
        size_t d = levenshtein(word, c);
        size_t clen = strlen(c);
        if (d > 1) {
            size_t shorter = clen < len ? clen : len;
            if (is_initials(word, c) || is_initials(c, word)) d = 1;
            else if (shorter >= 3 && strncasecmp(word, c, shorter) == 0) d = 1;
        }
        if (d <= limit && d < best_d) {
            best = c;
            best_d = d;
        }
    }
    return best;
}

/* ---- writing ---------------------------------------------------------------------------------- */

typedef struct strbuf {
    char *p;
    size_t len, cap;
    int failed;
} strbuf;

static void sb_add(strbuf *b, const char *s, size_t n)
{
    if (b->failed) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(strbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

/* Writes value so that iniparser reads it back unchanged: quoted when it
 * has a comment character, surrounding blanks, quotes at its ends, a
 * trailing backslash (a continuation) or is empty. */
static void sb_value(strbuf *b, const char *v)
{
    size_t n = strlen(v);
    int quote = n == 0 || strpbrk(v, ";#") || isspace((unsigned char)v[0]) || isspace((unsigned char)v[n - 1]) ||
                v[0] == '"' || v[0] == '\'' || v[n - 1] == '"' || v[n - 1] == '\'' || v[n - 1] == '\\';
    if (!quote) {
        sb_str(b, v);
        return;
    }
    const char *q = strchr(v, '"') ? "'" : "\"";
    sb_str(b, q);
    sb_str(b, v);
    sb_str(b, q);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_entry(const void *a, const void *b)
{
    const cfg_entry *x = *(const cfg_entry *const *)a, *y = *(const cfg_entry *const *)b;
    return strcmp(x->key, y->key);
}

char *tb_config_to_ini(const tb_config *cfg)
{
    strbuf b = {0};
    sb_str(&b, "");
    if (!cfg) return b.p;
    const char **secs = malloc(sizeof *secs * (size_t)(cfg->nsec + 1));
    const cfg_entry **ents = malloc(sizeof *ents * (size_t)(cfg->n + 1));
    if (!secs || !ents) {
        free(secs);
        free(ents);
        free(b.p);
        return NULL;
    }
    for (int i = 0; i < cfg->nsec; i++) secs[i] = cfg->sec[i];
    qsort(secs, (size_t)cfg->nsec, sizeof *secs, cmp_str);
    for (int s = 0; s < cfg->nsec; s++) {
        int m = 0;
        for (int i = 0; i < cfg->n; i++)
            if (strcmp(cfg->e[i].section, secs[s]) == 0) ents[m++] = &cfg->e[i];
        qsort(ents, (size_t)m, sizeof *ents, cmp_entry);
        if (s) sb_str(&b, "\n");
        sb_str(&b, "[");
        sb_str(&b, secs[s]);
        sb_str(&b, "]\n");
        for (int i = 0; i < m; i++) {
            sb_str(&b, ents[i]->key);
            sb_str(&b, " = ");
            sb_value(&b, ents[i]->value);
            sb_str(&b, "\n");
        }
    }
    free(secs);
    free(ents);
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
