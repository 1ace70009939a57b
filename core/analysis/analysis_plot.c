/* analysis_plot.c: the report's figures, drawn with PLplot's svg device.
 * PLplot keeps global state (one stream), so a figure is begun, drawn and
 * ended before the next one starts. */
#include <math.h>
#include <plplot/plplot.h>

#include "analysis_internal.h"

/* Colour map 0: 0 white (the background), 1 black (frame, text), then a
 * palette that stays readable for colour-blind readers (Okabe-Ito). */
static const int palette[][3] = {
    {255, 255, 255}, {0, 0, 0},    {0, 114, 178}, {230, 159, 0},   {0, 158, 115},
    {204, 121, 167}, {86, 180, 233}, {213, 94, 0}, {120, 120, 120}, {240, 228, 66},
    {0, 0, 0}, /* AN_SPARE: the translucent copy of a series' colour for bands */
};
#define AN_COLOURS ((int)(sizeof(palette) / sizeof(palette[0])))
#define AN_SERIES_COLOURS 8
#define AN_SPARE 10

static int current_colour = 1;
static int legend_low_right; /* legends of the current figure at the lower right */

static void start_stream(const char *path)
{
    PLINT r[AN_COLOURS], g[AN_COLOURS], b[AN_COLOURS];
    for (int i = 0; i < AN_COLOURS; i++) {
        r[i] = palette[i][0];
        g[i] = palette[i][1];
        b[i] = palette[i][2];
    }
    plsdev("svg");
    plsfnam(path);
    plspage(0, 0, 760, 440, 0, 0);
    plscmap0(r, g, b, AN_COLOURS);
    plinit();
    pladv(0);
    plcol0(1);
    plschr(0, 0.9);
}

static void frame_title(const char *title, const char *xlabel, const char *ylabel)
{
    plcol0(1);
    pllab(xlabel, ylabel, "");
    plmtex("t", 1.5, 0.5, 0.5, title);
}

void an_plot_begin(const char *path, const char *title, const char *xlabel, const char *ylabel, double xmin,
                   double xmax, double ymin, double ymax)
{
    start_stream(path);
    if (!(xmax > xmin)) xmax = xmin + 1;
    if (!(ymax > ymin)) ymax = ymin + 1;
    plvsta();
    plwind(xmin, xmax, ymin, ymax);
    plbox("bcnst", 0, 0, "bcnstv", 0, 0);
    frame_title(title, xlabel, ylabel);
}

void an_plot_begin_categories(const char *path, const char *title, const char *ylabel, int n,
                              const char *const *labels, double ymin, double ymax)
{
    start_stream(path);
    if (!(ymax > ymin)) ymax = ymin + 1;
    plvsta();
    plwind(-0.6, n - 0.4, ymin, ymax);
    plbox("bc", 0, 0, "bcnstv", 0, 0);
    for (int i = 0; i < n; i++) plmtex("b", 1.5, (i + 0.6) / (n + 0.2), 0.5, labels[i]);
    frame_title(title, "", ylabel);
}

void an_plot_end(void)
{
    plend();
    legend_low_right = 0;
}

void an_plot_axis_note(double x, int n, const char *text) { plmtex("b", 3.0, (x + 0.6) / (n + 0.2), 0.5, text); }

void an_plot_color(int series)
{
    current_colour = series <= 0 ? 1 : 2 + (series - 1) % AN_SERIES_COLOURS;
    plcol0(current_colour);
}

void an_plot_points(int n, const double *x, const double *y)
{
    if (n <= 0) return;
    plssym(0, 1.8); /* dots a reader can see */
    plpoin(n, x, y, 17);
    plssym(0, 1);
}

void an_plot_line(int n, const double *x, const double *y)
{
    if (n < 2) return;
    plwidth(2);
    plline(n, x, y);
    plwidth(1);
}

void an_plot_dashed_line(int n, const double *x, const double *y)
{
    pllsty(2);
    an_plot_line(n, x, y);
    pllsty(1);
}

void an_plot_band(int n, const double *x, const double *lo, const double *hi)
{
    if (n < 2) return;
    PLFLT px[2 * n], py[2 * n];
    for (int i = 0; i < n; i++) {
        px[i] = x[i];
        py[i] = lo[i];
        px[2 * n - 1 - i] = x[i];
        py[2 * n - 1 - i] = hi[i];
    }
    /* translucent: the current series' colour at 25% opacity, so lines and other bands show through */
    const int *c = palette[current_colour];
    plscol0a(AN_SPARE, c[0], c[1], c[2], 0.25);
    plcol0(AN_SPARE);
    plfill(2 * n, px, py);
    plcol0(current_colour);
}

void an_plot_rect(double x0, double x1, double y0, double y1)
{
    PLFLT px[4] = {x0, x1, x1, x0}, py[4] = {y0, y0, y1, y1};
    plfill(4, px, py);
}

void an_plot_hist(int n, const double *values, double lo, double hi, int bins)
{
    if (n <= 0) return;
    double w = (hi - lo) / bins;
    for (int k = 0; k < bins; k++) {
        int c = 0;
        for (int i = 0; i < n; i++) {
            int bin = (int)floor((values[i] - lo) / w);
            if (bin == bins) bin = bins - 1; /* the top edge belongs to the last bin */
            if (bin == k) c++;
        }
        if (c == 0) continue;
        an_plot_rect(lo + k * w, lo + (k + 1) * w, 0, c);
    }
}

void an_plot_legend_low_right(int on) { legend_low_right = on; }

void an_plot_legend(int row, int series, const char *text)
{
    PLFLT xmin, xmax, ymin, ymax;
    plgvpw(&xmin, &xmax, &ymin, &ymax);
    double x = xmin + 0.02 * (xmax - xmin), y = ymax - (0.06 + 0.06 * row) * (ymax - ymin);
    /* low right: rows still read downwards, from 30% of the height (room for five) */
    if (legend_low_right) x = xmin + 0.68 * (xmax - xmin), y = ymin + (0.30 - 0.06 * row) * (ymax - ymin);
    an_plot_color(series);
    an_plot_rect(x, x + 0.03 * (xmax - xmin), y - 0.015 * (ymax - ymin), y + 0.015 * (ymax - ymin));
    plcol0(1);
    plptex(x + 0.045 * (xmax - xmin), y, 1, 0, 0, text);
}

void an_plot_text(double x, double y, const char *text)
{
    plcol0(1);
    plptex(x, y, 1, 0, 0.5, text);
}
