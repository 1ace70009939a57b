/* study_record.c: the study journal's records: their payloads ("key=value"
 * lines, values with \\ and \n escaped; the on-disk format archives depend
 * on) and their names. What a record means is study_apply's (study_state.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "study_internal.h"

const char *const study_record_names[REC_TYPE_COUNT] = {
    "",          "open",     "register",   "consent",      "lobby",        "admit",     "pause",     "submit",
    "run_start", "run_end",  "credit",     "final_choice", "final_queued", "final_end", "heartbeat", "close",
    "journal_loss", "unrecorded_run", "admission", "run_placed"};

static void rec_raw(rec_buf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap * 2 : 256;
        while (c < b->n + n + 1) c *= 2;
        char *q = realloc(b->p, c);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = c;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

void rec_str(rec_buf *b, const char *key, const char *v)
{
    rec_raw(b, key, strlen(key));
    rec_raw(b, "=", 1);
    for (const char *c = v ? v : ""; *c; c++) {
        if (*c == '\\') rec_raw(b, "\\\\", 2);
        else if (*c == '\n') rec_raw(b, "\\n", 2);
        else rec_raw(b, c, 1);
    }
    rec_raw(b, "\n", 1);
}

void rec_f64(rec_buf *b, const char *key, double v)
{
    char t[40];
    snprintf(t, sizeof t, "%.17g", v);
    rec_str(b, key, t);
}

void rec_i64(rec_buf *b, const char *key, int64_t v)
{
    char t[32];
    snprintf(t, sizeof t, "%lld", (long long)v);
    rec_str(b, key, t);
}

int rec_get(const char *data, size_t len, const char *key, char *out, size_t cap)
{
    size_t kl = strlen(key);
    const char *p = data, *end = data + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) nl = end;
        if ((size_t)(nl - p) > kl && memcmp(p, key, kl) == 0 && p[kl] == '=') {
            size_t o = 0;
            for (const char *c = p + kl + 1; c < nl; c++) {
                char ch = *c;
                if (ch == '\\' && c + 1 < nl) {
                    c++;
                    ch = *c == 'n' ? '\n' : *c;
                }
                if (o + 1 < cap) out[o++] = ch;
            }
            if (cap) out[o < cap ? o : cap - 1] = '\0';
            return 0;
        }
        p = nl + 1;
    }
    if (cap) out[0] = '\0';
    return -1;
}

double rec_get_f64(const char *data, size_t len, const char *key, double def)
{
    char t[64];
    if (rec_get(data, len, key, t, sizeof t) != 0) return def;
    return strtod(t, NULL);
}


void rec_submission(rec_buf *b, const char *pid, const submission *u)
{
    rec_str(b, "participant", pid);
    rec_str(b, "run", u->run_id);
    rec_str(b, "status", tb_run_status_name(u->status));
    rec_str(b, "message", u->message);
    for (int h = 0; h < TB_HP_COUNT; h++) {
        char key[64];
        snprintf(key, sizeof key, "v.%s", tb_hp_names[h]);
        rec_str(b, key, u->values.text[h]);
        snprintf(key, sizeof key, "c.%s", tb_hp_names[h]);
        rec_str(b, key, u->comments[h]);
        snprintf(key, sizeof key, "g.%s", tb_hp_names[h]);
        rec_i64(b, key, u->given[h]);
    }
}

void rec_run_end(rec_buf *b, const char *pid, const char *run_id, tb_run_status status, double val_accuracy,
                 double test_accuracy, int epoch, const char *message)
{
    rec_str(b, "run", run_id);
    rec_str(b, "participant", pid);
    rec_str(b, "status", tb_run_status_name(status));
    rec_f64(b, "val_accuracy", val_accuracy);
    rec_f64(b, "test_accuracy", test_accuracy);
    rec_i64(b, "epoch", epoch);
    rec_str(b, "message", message);
}

void rec_final_end(rec_buf *b, const char *pid, const char *run_id, tb_run_status status,
                   double test_accuracy, double started, const char *message)
{
    rec_str(b, "run", run_id);
    rec_str(b, "participant", pid);
    rec_str(b, "status", tb_run_status_name(status));
    rec_f64(b, "test_accuracy", test_accuracy);
    rec_f64(b, "started", started);
    if (message) rec_str(b, "message", message);
}
