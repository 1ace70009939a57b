/* analysis_report.c: tables as CSV files and HTML, figures inlined, and the
 * one self-contained report.html (inline CSS and SVG, no network requests). */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis_internal.h"

/* ---- text buffer ---------------------------------------------------------- */

static void buf_reserve(an_buf *b, size_t more)
{
    if (b->n + more + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->n + more + 1) cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) abort(); /* out of memory while writing a report: nothing sensible is left to do */
    b->s = s;
    b->cap = cap;
}

void an_buf_printf(an_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (len < 0) return;
    buf_reserve(b, (size_t)len);
    va_start(ap, fmt);
    vsnprintf(b->s + b->n, (size_t)len + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)len;
}

void an_buf_html(an_buf *b, const char *text)
{
    for (const char *p = text; *p; p++) {
        switch (*p) {
        case '&': an_buf_printf(b, "&amp;"); break;
        case '<': an_buf_printf(b, "&lt;"); break;
        case '>': an_buf_printf(b, "&gt;"); break;
        case '"': an_buf_printf(b, "&quot;"); break;
        default: an_buf_printf(b, "%c", *p);
        }
    }
}

void an_buf_free(an_buf *b)
{
    free(b->s);
    memset(b, 0, sizeof(*b));
}

/* ---- tables ----------------------------------------------------------------- */

an_table *an_table_new(const char *name, const char *title, const char *caption, const char *cols)
{
    an_table *t = calloc(1, sizeof(*t));
    if (!t) abort();
    tb_copy_str(t->name, sizeof(t->name), name);
    tb_copy_str(t->title, sizeof(t->title), title);
    tb_copy_str(t->caption, sizeof(t->caption), caption);
    const char *p = cols;
    while (*p && t->ncols < (int)TB_ARRAY_LEN(t->cols)) {
        size_t len = strcspn(p, ",");
        snprintf(t->cols[t->ncols++], sizeof(t->cols[0]), "%.*s", (int)len, p);
        p += len + (p[len] == ',');
    }
    return t;
}

static an_cell *next_cell(an_table *t)
{
    if (t->ncells == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 64;
        t->cells = realloc(t->cells, (size_t)t->cap * sizeof(*t->cells));
        if (!t->cells) abort();
    }
    an_cell *c = &t->cells[t->ncells++];
    memset(c, 0, sizeof(*c));
    return c;
}

void an_table_text(an_table *t, const char *text)
{
    an_cell *c = next_cell(t);
    c->text = strdup(text ? text : "");
    if (!c->text) abort();
}

void an_table_num(an_table *t, double v) { next_cell(t)->value = v; }

int an_table_rows(const an_table *t) { return t->ncols ? t->ncells / t->ncols : 0; }

void an_table_free(an_table *t)
{
    if (!t) return;
    for (int i = 0; i < t->ncells; i++) free(t->cells[i].text);
    free(t->cells);
    free(t);
}

/* CSV: RFC 4180 quoting; numbers with 10 significant digits, NaN empty. */
static void csv_cell(FILE *f, const an_cell *c)
{
    if (!c->text) {
        if (!isnan(c->value)) fprintf(f, "%.10g", c->value);
        return;
    }
    if (!strpbrk(c->text, ",\"\n")) {
        fputs(c->text, f);
        return;
    }
    fputc('"', f);
    for (const char *p = c->text; *p; p++) {
        if (*p == '"') fputc('"', f);
        fputc(*p, f);
    }
    fputc('"', f);
}

static int write_csv(const char *path, const an_table *t)
{
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    for (int j = 0; j < t->ncols; j++) fprintf(f, "%s%s", j ? "," : "", t->cols[j]);
    fputc('\n', f);
    for (int i = 0; i < t->ncells; i++) {
        csv_cell(f, &t->cells[i]);
        fputc((i + 1) % t->ncols ? ',' : '\n', f);
    }
    return fclose(f);
}

static void html_cell(an_buf *b, const an_cell *c)
{
    if (c->text) {
        an_buf_printf(b, "<td>");
        an_buf_html(b, c->text);
        an_buf_printf(b, "</td>");
    } else if (isnan(c->value)) {
        an_buf_printf(b, "<td class=num>&ndash;</td>");
    } else if (c->value != 0 && fabs(c->value) < 1e-3) {
        an_buf_printf(b, "<td class=num>%.2e</td>", c->value);
    } else {
        an_buf_printf(b, "<td class=num>%.4g</td>", c->value);
    }
}

/* Long tables are cut in the report (the CSV has every row). */
#define AN_HTML_ROWS 40

void an_report_table(an_report *r, an_table *t)
{
    char path[1400];
    snprintf(path, sizeof(path), "%s/tables/%s.csv", r->out_dir, t->name);
    if (write_csv(path, t) != 0 && !r->failed) {
        r->failed = 1;
        tb_fail(&r->err, TB_EIO, "cannot write %s: %s", path, strerror(errno));
    }
    an_buf *b = &r->body;
    an_buf_printf(b, "<div class=table><p class=ttl>Table %d. ", ++r->n_tables);
    an_buf_html(b, t->title);
    an_buf_printf(b, "</p><p class=cap>");
    an_buf_html(b, t->caption);
    an_buf_printf(b, " <span class=file>tables/%s.csv</span></p><div class=scroll><table><tr>", t->name);
    for (int j = 0; j < t->ncols; j++) {
        an_buf_printf(b, "<th>");
        an_buf_html(b, t->cols[j]);
        an_buf_printf(b, "</th>");
    }
    an_buf_printf(b, "</tr>\n");
    int rows = an_table_rows(t);
    for (int i = 0; i < rows && i < AN_HTML_ROWS; i++) {
        an_buf_printf(b, "<tr>");
        for (int j = 0; j < t->ncols; j++) html_cell(b, &t->cells[i * t->ncols + j]);
        an_buf_printf(b, "</tr>\n");
    }
    an_buf_printf(b, "</table></div>");
    if (rows > AN_HTML_ROWS)
        an_buf_printf(b, "<p class=cap>%d of %d rows shown; the CSV has all of them.</p>", AN_HTML_ROWS, rows);
    an_buf_printf(b, "</div>\n");
    an_table_free(t);
}

/* ---- figures ---------------------------------------------------------------- */

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = len >= 0 ? malloc((size_t)len + 1) : NULL;
    if (s && fread(s, 1, (size_t)len, f) != (size_t)len) {
        free(s);
        s = NULL;
    }
    if (s) s[len] = 0;
    fclose(f);
    return s;
}

/* The SVG as an element of the page: without the XML prologue and DOCTYPE,
 * without the xmlns attributes (HTML knows <svg>; and the report then holds no
 * URL at all), scaled to the column, and with PLplot's clip-path ids made
 * unique per figure (every SVG of PLplot names them alike). */
static void inline_svg(an_buf *b, const char *svg, int figure)
{
    const char *p = strstr(svg, "<svg");
    if (!p) return;
    const char *end = strchr(p, '>');
    if (!end) return;
    const char *vb = strstr(p, "viewBox=");
    an_buf_printf(b, "<svg role=img");
    if (vb && vb < end) an_buf_printf(b, " %.*s", (int)(strchr(vb + 9, '"') - vb + 1), vb);
    an_buf_printf(b, " style=\"width:100%%;height:auto\">");
    for (p = end + 1; *p;) {
        const char *id = strstr(p, "text-clipping");
        if (!id) {
            an_buf_printf(b, "%s", p);
            break;
        }
        an_buf_printf(b, "%.*sf%d-text-clipping", (int)(id - p), p, figure);
        p = id + strlen("text-clipping");
    }
}

void an_report_figure(an_report *r, const char *name, const char *caption)
{
    char path[1400];
    snprintf(path, sizeof(path), "%s/figures/%s.svg", r->out_dir, name);
    char *svg = read_file(path);
    if (!svg) {
        an_report_left_out(r, "figure %s: PLplot wrote no %s", name, path);
        return;
    }
    an_buf *b = &r->body;
    an_buf_printf(b, "<figure>");
    inline_svg(b, svg, ++r->n_figures);
    an_buf_printf(b, "<figcaption><b>Figure %d.</b> ", r->n_figures);
    an_buf_html(b, caption);
    an_buf_printf(b, " <span class=file>figures/%s.svg</span></figcaption></figure>\n", name);
    free(svg);
}

/* ---- sections, notes, the page ------------------------------------------------ */

void an_report_section(an_report *r, const char *title, const char *intro_html)
{
    an_buf_printf(&r->body, "<h2>");
    an_buf_html(&r->body, title);
    an_buf_printf(&r->body, "</h2>\n");
    if (intro_html && *intro_html) an_buf_printf(&r->body, "<p>%s</p>\n", intro_html);
}

void an_report_left_out(an_report *r, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    an_buf_printf(&r->left_out, "<li>");
    an_buf_html(&r->left_out, line);
    an_buf_printf(&r->left_out, "</li>\n");
    an_buf_printf(&r->summary, "left out: %s\n", line);
}

void an_report_say(an_report *r, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    an_buf_printf(&r->summary, "%s\n", line);
    an_buf_printf(&r->key, "<li>");
    an_buf_html(&r->key, line);
    an_buf_printf(&r->key, "</li>\n");
}

static const char *page_css =
    "body{font:15px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;color:#222;background:#fff;margin:0}"
    "main{max-width:900px;margin:0 auto;padding:24px}"
    "h1{font-size:26px;margin:0 0 4px}h2{font-size:20px;border-bottom:1px solid #ddd;padding-bottom:4px;"
    "margin-top:36px}"
    ".meta{color:#555}figure{margin:18px 0;border:1px solid #e4e4e4;padding:8px}"
    "figcaption{font-size:14px;color:#333;margin-top:4px}.file{color:#888;font-size:12px;font-family:monospace}"
    ".table{margin:18px 0}.ttl{font-weight:600;margin:0}.cap{font-size:14px;color:#444;margin:2px 0 6px}"
    ".scroll{overflow-x:auto}table{border-collapse:collapse;font-size:13px}"
    "th,td{border:1px solid #ddd;padding:3px 7px;text-align:left;white-space:nowrap}"
    "th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}"
    ".leftout{background:#fff8e1;border:1px solid #f0d68a;padding:8px 14px}"
    ".key{font-variant-numeric:tabular-nums}";

tb_status an_report_write(an_report *r, const char *title, const char *meta_html, tb_err *err)
{
    if (r->failed) return tb_fail(err, TB_EIO, "%s", r->err.msg);
    char path[1400], tmp[1420];
    snprintf(path, sizeof(path), "%s/report.html", r->out_dir);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return tb_fail(err, TB_EIO, "cannot write %s: %s", tmp, strerror(errno));
    an_buf head = {0};
    an_buf_html(&head, title);
    fprintf(f,
            "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
            "<meta name=viewport content=\"width=device-width,initial-scale=1\">"
            "<title>%s: tunebench analysis</title><style>%s</style></head><body><main>\n"
            "<h1>%s</h1><p class=meta>%s</p>\n",
            head.s ? head.s : "", page_css, head.s ? head.s : "", meta_html);
    an_buf_free(&head);
    if (r->key.n) fprintf(f, "<h2>Key results</h2>\n<ul class=key>\n%s</ul>\n", r->key.s);
    fprintf(f, "<h2>Left out</h2>\n");
    if (r->left_out.n)
        fprintf(f, "<div class=leftout><p>These parts of the analysis were left out, and why:</p><ul>\n%s</ul></div>\n",
                r->left_out.s);
    else
        fprintf(f, "<p>Nothing: every part of the analysis had the data it needs.</p>\n");
    fprintf(f, "%s</main></body></html>\n", r->body.s ? r->body.s : "");
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        return tb_fail(err, TB_EIO, "cannot write %s: %s", path, strerror(errno));
    return TB_OK;
}
