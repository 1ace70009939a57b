/* config.h: INI configuration (iniparser) with command-line overrides and
 * typed accessors.
 *
 * Keys are "section.key". Section and key names are case-insensitive
 * (iniparser lowercases them; so does every function here) and use letters,
 * digits, '_' and '-'; values keep their case. Values with ';' or '#' must be
 * quoted, as iniparser treats those as comments. Every accessor takes a
 * default and a closed range and fails with a message naming the key, the
 * value and what is allowed.
 * tb_config_check_section rejects unknown keys and names the nearest valid
 * one. Values given with tb_config_set (--set section.key=value) override the
 * file. The resolved configuration can be written back as INI text. */
#ifndef TB_CONFIG_H
#define TB_CONFIG_H

#include <stdint.h>

#include "common.h"

typedef struct tb_config tb_config;

/* Empty configuration (everything from defaults and tb_config_set). */
tb_config *tb_config_new(void);
/* Reads an INI file; errors name the file and line. */
tb_status tb_config_load(tb_config **out, const char *path, tb_err *err);
/* Reads INI text (e.g. tb_config_to_ini's); name stands for the file in
 * messages and tb_config_path. Thread-safe, as is tb_config_load. */
tb_status tb_config_load_text(tb_config **out, const char *text, const char *name, tb_err *err);
void tb_config_free(tb_config *cfg);
/* The file the config came from, or "" */
const char *tb_config_path(const tb_config *cfg);
/* Renames what tb_config_path returns (e.g. a configuration made in memory
 * takes the name of the job it became); truncated to the path's capacity. */
void tb_config_set_path(tb_config *cfg, const char *name);

/* Sets "section.key" to value (text, surrounding blanks removed as in a file;
 * one line), as --set does; replaces the file's value. The key must contain a dot. */
tb_status tb_config_set(tb_config *cfg, const char *section_key, const char *value, tb_err *err);
/* "section.key=value" as given on the command line. */
tb_status tb_config_set_assignment(tb_config *cfg, const char *assignment, tb_err *err);

/* Raw text of section.key, or NULL when absent. */
const char *tb_config_get(const tb_config *cfg, const char *section, const char *key);
int tb_config_has_section(const tb_config *cfg, const char *section);
/* Keys present in a section (without the "section." prefix): returns the
 * count and, if keys is non-NULL, up to max pointers valid until the next change. */
int tb_config_keys(const tb_config *cfg, const char *section, const char **keys, int max);
/* Sections present: returns the count and up to max names. */
int tb_config_sections(const tb_config *cfg, const char **sections, int max);

/* Typed accessors: absent -> default (returned as is); present -> parsed with
 * full checks and range-checked. */
tb_status tb_config_int(const tb_config *cfg, const char *section, const char *key, int64_t def, int64_t lo,
                        int64_t hi, int64_t *out, tb_err *err);
tb_status tb_config_double(const tb_config *cfg, const char *section, const char *key, double def, double lo,
                           double hi, double *out, tb_err *err);
tb_status tb_config_bool(const tb_config *cfg, const char *section, const char *key, int def, int *out,
                         tb_err *err);
/* Any text; def may be NULL (then *out is NULL when absent). */
tb_status tb_config_string(const tb_config *cfg, const char *section, const char *key, const char *def,
                           const char **out, tb_err *err);
/* One of choices ("a|b|c", matched exactly, else ignoring case); *index
 * receives its position, or -1 when absent and def is NULL. */
tb_status tb_config_choice(const tb_config *cfg, const char *section, const char *key, const char *def,
                           const char *choices, int *index, tb_err *err);
/* Comma-separated integers, each in [lo, hi]; returns the count in *n (<= max).
 * An empty value is an empty list; absent with def NULL gives *n = 0. */
tb_status tb_config_int_list(const tb_config *cfg, const char *section, const char *key, const char *def,
                             int64_t lo, int64_t hi, int64_t *out, int max, int *n, tb_err *err);

/* Fails when the section has a key not in valid[0..n): "unknown key
 * train.learning_rate (did you mean lr?); valid keys in [train]: epochs, ...". */
tb_status tb_config_check_section(const tb_config *cfg, const char *section, const char *const *valid, int n,
                                  tb_err *err);
/* Fails when a section is not in valid[0..n), naming the nearest. */
tb_status tb_config_check_sections(const tb_config *cfg, const char *const *valid, int n, tb_err *err);

/* The nearest of candidates to word by edit distance, or NULL when none is
 * close: Levenshtein distance <= max(2, strlen(word)/3); an abbreviation by
 * initials ("lr" / "learning_rate") or a prefix of 3+ characters counts as 1. */
const char *tb_nearest(const char *word, const char *const *candidates, int n);

/* The whole configuration as INI text (sections sorted, keys sorted); malloc'd. */
char *tb_config_to_ini(const tb_config *cfg);

#endif
