/* analysis_internal.h: what analysis.c, analysis_plot.c and analysis_report.c
 * share: a growable text buffer, tables (one CSV each, also shown in the
 * report) and the report being assembled. Not a public interface. */
#ifndef TB_ANALYSIS_INTERNAL_H
#define TB_ANALYSIS_INTERNAL_H

#include <stddef.h>

#include "base/common.h"

typedef struct an_buf {
    char *s;
    size_t n, cap;
} an_buf;
void an_buf_printf(an_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends text with &, <, > and " escaped for HTML. */
void an_buf_html(an_buf *b, const char *text);
void an_buf_free(an_buf *b);

/* A table: cells row by row; numbers keep their value so the CSV has full
 * precision and the report a readable one. */
typedef struct an_cell {
    char *text; /* NULL for a number */
    double value;
} an_cell;
typedef struct an_table {
    char name[64];    /* tables/<name>.csv */
    char title[160];
    char caption[512];
    int ncols;
    char cols[24][48];
    an_cell *cells;
    int ncells, cap;
} an_table;
/* cols: comma-separated column names. */
an_table *an_table_new(const char *name, const char *title, const char *caption, const char *cols);
void an_table_text(an_table *t, const char *text);
void an_table_num(an_table *t, double v); /* NaN: an empty cell */
void an_table_free(an_table *t);
int an_table_rows(const an_table *t);

/* The report: sections of HTML in order, with the CSVs and SVGs written as they come. */
typedef struct an_report {
    char out_dir[1024];
    an_buf body;
    an_buf left_out; /* one <li> per piece left out */
    an_buf summary;  /* the lines printed on stdout */
    an_buf key;      /* the same results (not the left-out lines) as <li>s at the top of the report */
    int n_figures, n_tables;
    int failed;      /* a file could not be written */
    tb_err err;
} an_report;
void an_report_section(an_report *r, const char *title, const char *intro_html);
/* Writes tables/<name>.csv and adds the table to the body; frees t. */
void an_report_table(an_report *r, an_table *t);
/* Inlines figures/<name>.svg (already drawn) with its caption. */
void an_report_figure(an_report *r, const char *name, const char *caption);
void an_report_left_out(an_report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void an_report_say(an_report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Writes report.html around the body. */
tb_status an_report_write(an_report *r, const char *title, const char *meta_html, tb_err *err);

/* ---- figures (analysis_plot.c): PLplot keeps global state, so one figure at a time ---- */

#define AN_MAX_SERIES 16

/* Starts out_dir/figures/<name>.svg with a frame over [xmin, xmax] x [ymin, ymax]. */
void an_plot_begin(const char *path, const char *title, const char *xlabel, const char *ylabel, double xmin,
                   double xmax, double ymin, double ymax);
/* The same with categories on the x axis (x = 0 .. n-1), labelled below. */
void an_plot_begin_categories(const char *path, const char *title, const char *ylabel, int n,
                              const char *const *labels, double ymin, double ymax);
void an_plot_end(void);
void an_plot_color(int series);                 /* the series' colour (0: black) */
void an_plot_points(int n, const double *x, const double *y);
void an_plot_line(int n, const double *x, const double *y);
void an_plot_dashed_line(int n, const double *x, const double *y);
void an_plot_band(int n, const double *x, const double *lo, const double *hi); /* a translucent band */
void an_plot_rect(double x0, double x1, double y0, double y1);                   /* filled */
void an_plot_hist(int n, const double *values, double lo, double hi, int bins);
/* A legend entry in the top-left corner (row 0, 1, ...). */
void an_plot_legend(int row, int series, const char *text);
void an_plot_text(double x, double y, const char *text);
/* Legends of the current figure go to the lower right (for curves that rise to the top left). */
void an_plot_legend_low_right(int on);
/* A second row of category labels, centred at category position x of n (groups of thresholds). */
void an_plot_axis_note(double x, int n, const char *text);

#endif
