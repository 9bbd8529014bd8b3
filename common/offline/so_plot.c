/* so_plot — dependency-free SVG writer for the accuracy-cost figure (see so_plot.h). */
#include "offline/so_plot.h"
#include "base/so_alloc.h"
#include "base/so_err.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_FONT "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\""
#define S_CHAR_W 0.6 /* average glyph width, as a fraction of the font size */
#define S_MAX_TICKS 64
#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

static const char *const k_palette[] = { "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                         "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f" };
#define S_NPALETTE (sizeof k_palette / sizeof k_palette[0])

typedef struct {
    double x0, y0, x1, y1;
} s_box_t;

typedef struct {
    FILE *fp;
    int logx;
    double px0, px1, py0, py1; /* plot area in pixels, py0 at the top */
    double tlo, thi;           /* x range, in log10 units on a log axis */
    double ylo, yhi;
} s_ctx_t;

typedef struct {
    double v;  /* data value */
    int label; /* 1 labelled major tick, 0 minor grid line */
    int decimals;
} s_tick_t;

/* ---------------------------------------------------------------- text */

static size_t s_utf8_len(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char) *s & 0xC0) != 0x80)
            n++;
    return n;
}

static double s_text_w(const char *s, double fs)
{
    return (double) s_utf8_len(s) * S_CHAR_W * fs;
}

/* Writes s XML-escaped, at most max_chars code points (an ellipsis marks a
 * cut).  Control characters, which XML 1.0 forbids, become spaces. */
static void s_put_text(FILE *fp, const char *s, size_t max_chars)
{
    size_t len = s_utf8_len(s), chars = 0;
    int cut = len > max_chars && max_chars > 1;
    size_t keep = cut ? max_chars - 1 : len;
    for (const unsigned char *c = (const unsigned char *) s; *c; c++) {
        if ((*c & 0xC0) != 0x80 && chars++ == keep)
            break;
        switch (*c) {
        case '&': fputs("&amp;", fp); break;
        case '<': fputs("&lt;", fp); break;
        case '>': fputs("&gt;", fp); break;
        case '"': fputs("&quot;", fp); break;
        case '\'': fputs("&apos;", fp); break;
        default: fputc(*c < 0x20 ? ' ' : *c, fp);
        }
    }
    if (cut)
        fputs("\xE2\x80\xA6", fp);
}

static void s_text(const s_ctx_t *g, double x, double y, double fs, const char *anchor,
                   const char *extra, const char *s, size_t max_chars)
{
    fprintf(g->fp,
            "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%.0f\" "
            "text-anchor=\"%s\"%s%s>",
            x, y, fs, anchor, extra ? " " : "", extra ? extra : "");
    s_put_text(g->fp, s, max_chars);
    fputs("</text>\n", g->fp);
}

/* ----------------------------------------------------------- geometry */

static double s_tx(const s_ctx_t *g, double cost)
{
    return g->logx ? log10(cost) : cost;
}

static double s_px(const s_ctx_t *g, double cost)
{
    return g->px0 + (s_tx(g, cost) - g->tlo) / (g->thi - g->tlo) * (g->px1 - g->px0);
}

static double s_py(const s_ctx_t *g, double acc)
{
    return g->py1 - (acc - g->ylo) / (g->yhi - g->ylo) * (g->py1 - g->py0);
}

static double s_overlap(s_box_t a, s_box_t b)
{
    double w = fmin(a.x1, b.x1) - fmax(a.x0, b.x0);
    double h = fmin(a.y1, b.y1) - fmax(a.y0, b.y0);
    return w > 0 && h > 0 ? w * h : 0.0;
}

/* --------------------------------------------------------------- ticks */

static int s_decimals_for(double step)
{
    int d = (int) -floor(log10(step) + 1e-9);
    return d < 0 ? 0 : d;
}

/* 1-2-5 steps giving about `want` ticks on [lo, hi]. */
static size_t s_linear_ticks(double lo, double hi, int want, s_tick_t *t)
{
    double raw = (hi - lo) / want;
    double mag = pow(10.0, floor(log10(raw)));
    double norm = raw / mag;
    double step = (norm < 1.5 ? 1 : norm < 3.5 ? 2 : norm < 7.5 ? 5 : 10) * mag;
    int dec = s_decimals_for(step);
    size_t n = 0;
    for (double k = ceil(lo / step - 1e-9); n < S_MAX_TICKS; k += 1.0) {
        double v = k * step + 0.0; /* + 0.0: no "-0.000" label */
        if (v > hi + step * 1e-9)
            break;
        t[n++] = (s_tick_t){ v, 1, dec };
    }
    return n;
}

/* Decades, with 2 and 5 (or every digit) labelled when the axis spans few
 * decades, and the other digits as minor grid lines. */
static size_t s_log_ticks(double tlo, double thi, s_tick_t *t)
{
    double span = thi - tlo;
    static const int all[] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };
    size_t n = 0, labelled = 0;
    for (double d = floor(tlo); d <= ceil(thi) && n < S_MAX_TICKS - 9; d += 1.0) {
        for (size_t i = 0; i < 9; i++) {
            int m = all[i];
            double v = m * pow(10.0, d);
            double lv = log10(v);
            if (lv < tlo - 1e-9 || lv > thi + 1e-9)
                continue;
            int lab = span <= 0.7 ? 1 : span <= 2.6 ? (m == 1 || m == 2 || m == 5) : m == 1;
            if (span > 6 && m != 1)
                continue; /* minor lines would be a grey smear */
            int dec = d < 0 ? (int) -d : 0;
            t[n++] = (s_tick_t){ v, lab, dec };
            labelled += (size_t) lab;
        }
    }
    if (labelled >= 2)
        return n;
    /* Less than one step of the digits: fall back to 1-2-5 linear ticks,
     * placed logarithmically. */
    return s_linear_ticks(pow(10.0, tlo), pow(10.0, thi), 4, t);
}

/* ------------------------------------------------------------- markers */

static void s_marker(FILE *fp, so_plot_marker_t m, double x, double y, double r,
                     const char *color)
{
    const char *style = "stroke=\"#ffffff\" stroke-width=\"1\"";
    switch (m) {
    case SO_PLOT_MARK_NONE: break;
    case SO_PLOT_MARK_SQUARE:
        fprintf(fp,
                "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                "fill=\"%s\" %s/>\n",
                x - r * 0.9, y - r * 0.9, 1.8 * r, 1.8 * r, color, style);
        break;
    case SO_PLOT_MARK_DIAMOND:
        fprintf(fp,
                "<polygon points=\"%.1f,%.1f %.1f,%.1f %.1f,%.1f %.1f,%.1f\" "
                "fill=\"%s\" %s/>\n",
                x, y - 1.3 * r, x + 1.3 * r, y, x, y + 1.3 * r, x - 1.3 * r, y, color, style);
        break;
    case SO_PLOT_MARK_TRIANGLE:
        fprintf(fp,
                "<polygon points=\"%.1f,%.1f %.1f,%.1f %.1f,%.1f\" "
                "fill=\"%s\" %s/>\n",
                x, y - 1.3 * r, x + 1.15 * r, y + 0.75 * r, x - 1.15 * r, y + 0.75 * r, color,
                style);
        break;
    case SO_PLOT_MARK_STAR:
        fputs("<polygon points=\"", fp);
        for (int i = 0; i < 10; i++) {
            double a = -M_PI / 2 + i * M_PI / 5, rr = (i % 2 ? 0.45 : 1.5) * r;
            fprintf(fp, "%s%.1f,%.1f", i ? " " : "", x + rr * cos(a), y + rr * sin(a));
        }
        fprintf(fp, "\" fill=\"%s\" %s/>\n", color, style);
        break;
    case SO_PLOT_MARK_CROSS:
        fprintf(fp,
                "<path d=\"M%.1f,%.1fL%.1f,%.1fM%.1f,%.1fL%.1f,%.1f\" "
                "stroke=\"%s\" stroke-width=\"2.5\" fill=\"none\"/>\n",
                x - r, y - r, x + r, y + r, x - r, y + r, x + r, y - r, color);
        break;
    case SO_PLOT_MARK_CIRCLE:
    default:
        fprintf(fp, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\" fill=\"%s\" %s/>\n", x, y, r,
                color, style);
        break;
    }
}

/* ---------------------------------------------------------- validation */

static int s_check_pt(so_point_t q, int logx, const char *what, const char *name, size_t i,
                      char *err, size_t errlen)
{
    if (!isfinite(q.cost) || !isfinite(q.accuracy)) {
        so_err(err, errlen, "%s '%s' point %zu is not finite", what, name, i);
        return -1;
    }
    if (logx && q.cost <= 0) {
        so_err(err, errlen, "%s '%s' point %zu has cost %g <= 0 on a log axis", what, name, i,
               q.cost);
        return -1;
    }
    return 0;
}

static int s_check(const char *path, const so_plot_t *p, char *err, size_t errlen)
{
    if (!path || !p) {
        so_err(err, errlen, "no %s given", path ? "plot" : "path");
        return -1;
    }
    if (p->nseries + p->nlabels == 0) {
        so_err(err, errlen, "nothing to plot: no series and no labelled points");
        return -1;
    }
    if ((p->nseries && !p->series) || (p->nlabels && !p->labels)) {
        so_err(err, errlen, "series or label array is NULL");
        return -1;
    }
    if (p->xscale != SO_PLOT_XLOG && p->xscale != SO_PLOT_XLINEAR) {
        so_err(err, errlen, "unknown x scale %d", (int) p->xscale);
        return -1;
    }
    int w = p->width ? p->width : 900, h = p->height ? p->height : 600;
    if (w < 300 || h < 200 || w > 20000 || h > 20000) {
        so_err(err, errlen, "size %dx%d out of range (300x200 to 20000x20000)", w, h);
        return -1;
    }
    int logx = p->xscale == SO_PLOT_XLOG;
    for (size_t i = 0; i < p->nseries; i++) {
        const so_plot_series_t *s = &p->series[i];
        if (!s->name) {
            so_err(err, errlen, "series %zu has no name", i);
            return -1;
        }
        if (s->n == 0 || !s->pts) {
            so_err(err, errlen, "series '%s' is empty", s->name);
            return -1;
        }
        if (s->has_aiq && !isfinite(s->aiq)) {
            so_err(err, errlen, "series '%s' has a non-finite AIQ", s->name);
            return -1;
        }
        for (size_t j = 0; j < s->n; j++)
            if (s_check_pt(s->pts[j], logx, "series", s->name, j, err, errlen))
                return -1;
    }
    for (size_t i = 0; i < p->nlabels; i++) {
        const so_plot_label_t *l = &p->labels[i];
        if (!l->name) {
            so_err(err, errlen, "labelled point %zu has no name", i);
            return -1;
        }
        if (s_check_pt(l->pt, logx, "labelled point", l->name, 0, err, errlen))
            return -1;
    }
    return 0;
}

/* -------------------------------------------------------------- ranges */

static void s_ranges(const so_plot_t *p, s_ctx_t *g)
{
    double tlo = INFINITY, thi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    for (size_t i = 0; i < p->nseries; i++)
        for (size_t j = 0; j < p->series[i].n; j++) {
            so_point_t q = p->series[i].pts[j];
            tlo = fmin(tlo, s_tx(g, q.cost));
            thi = fmax(thi, s_tx(g, q.cost));
            ylo = fmin(ylo, q.accuracy);
            yhi = fmax(yhi, q.accuracy);
        }
    for (size_t i = 0; i < p->nlabels; i++) {
        so_point_t q = p->labels[i].pt;
        tlo = fmin(tlo, s_tx(g, q.cost));
        thi = fmax(thi, s_tx(g, q.cost));
        ylo = fmin(ylo, q.accuracy);
        yhi = fmax(yhi, q.accuracy);
    }
    if (thi - tlo < 1e-12 * fmax(1.0, fabs(thi))) {
        double d = g->logx ? 0.5 : fmax(fabs(thi) * 0.5, 1e-6);
        tlo -= d;
        thi += d;
    }
    if (yhi - ylo < 1e-9) {
        ylo -= 0.05;
        yhi += 0.05;
    }
    double tp = (thi - tlo) * 0.06, yp = (yhi - ylo) * 0.07;
    g->tlo = tlo - tp;
    g->thi = thi + tp;
    if (!g->logx && tlo >= 0 && g->tlo < 0)
        g->tlo = 0; /* costs are not negative */
    g->ylo = ylo - yp;
    g->yhi = yhi + yp;
}

/* ------------------------------------------------------------- drawing */

static void s_axes(const s_ctx_t *g, const so_plot_t *p)
{
    FILE *fp = g->fp;
    s_tick_t t[S_MAX_TICKS];
    char buf[64];

    /* x grid, ticks and labels; a label that would collide with the
     * previous one is dropped (its grid line stays). */
    size_t n = g->logx ? s_log_ticks(g->tlo, g->thi, t) : s_linear_ticks(g->tlo, g->thi, 7, t);
    double last_right = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        double x = s_px(g, t[i].v);
        fprintf(fp,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                "stroke=\"%s\" stroke-width=\"1\"/>\n",
                x, g->py0, x, g->py1, t[i].label ? "#dddddd" : "#f0f0f0");
        if (!t[i].label)
            continue;
        fprintf(fp,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                "stroke=\"#333333\"/>\n",
                x, g->py1, x, g->py1 + 5);
        snprintf(buf, sizeof buf, "%.*f", t[i].decimals, t[i].v);
        double w = s_text_w(buf, 12);
        if (x - w / 2 < last_right + 6)
            continue;
        last_right = x + w / 2;
        s_text(g, x, g->py1 + 20, 12, "middle", "fill=\"#333333\"", buf, 64);
    }
    /* y grid, ticks and labels. */
    n = s_linear_ticks(g->ylo, g->yhi, 7, t);
    for (size_t i = 0; i < n; i++) {
        double y = s_py(g, t[i].v);
        fprintf(fp,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                "stroke=\"#dddddd\"/>\n",
                g->px0, y, g->px1, y);
        fprintf(fp,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                "stroke=\"#333333\"/>\n",
                g->px0 - 5, y, g->px0, y);
        snprintf(buf, sizeof buf, "%.*f", t[i].decimals, t[i].v);
        s_text(g, g->px0 - 8, y + 4, 12, "end", "fill=\"#333333\"", buf, 64);
    }
    fprintf(fp,
            "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
            "fill=\"none\" stroke=\"#333333\"/>\n",
            g->px0, g->py0, g->px1 - g->px0, g->py1 - g->py0);

    const char *xl = p->xlabel ? p->xlabel : "Cost per query (USD)";
    char xbuf[256];
    snprintf(xbuf, sizeof xbuf, "%s%s", xl, g->logx ? ", log scale" : "");
    s_text(g, (g->px0 + g->px1) / 2, g->py1 + 44, 14, "middle", NULL, xbuf, 120);
    const char *yl = p->ylabel ? p->ylabel : "Accuracy";
    double yx = g->px0 - 52, yy = (g->py0 + g->py1) / 2;
    snprintf(buf, sizeof buf, "transform=\"rotate(-90 %.1f %.1f)\"", yx, yy);
    s_text(g, yx, yy, 14, "middle", buf, yl, 80);
}

static const char *s_series_color(const so_plot_t *p, size_t i)
{
    return p->series[i].color ? p->series[i].color : k_palette[i % S_NPALETTE];
}

static const char *s_label_color(const so_plot_label_t *l)
{
    return l->color ? l->color : "#555555";
}

static void s_series(const s_ctx_t *g, const so_plot_t *p)
{
    FILE *fp = g->fp;
    for (size_t i = 0; i < p->nseries; i++) {
        const so_plot_series_t *s = &p->series[i];
        const char *c = s_series_color(p, i);
        fprintf(fp,
                "<polyline clip-path=\"url(#so-plot-area)\" fill=\"none\" "
                "stroke=\"%s\" stroke-width=\"2\" stroke-linejoin=\"round\"%s "
                "points=\"",
                c, s->dashed ? " stroke-dasharray=\"7,5\"" : "");
        for (size_t j = 0; j < s->n; j++)
            fprintf(fp, "%s%.1f,%.1f", j ? " " : "", s_px(g, s->pts[j].cost),
                    s_py(g, s->pts[j].accuracy));
        fputs("\"/>\n", fp);
        for (size_t j = 0; j < s->n; j++)
            s_marker(fp, s->marker, s_px(g, s->pts[j].cost), s_py(g, s->pts[j].accuracy), 3.5, c);
    }
}

/* Small boxes every few pixels along a series' line (inside the plot
 * area), so that labels keep off the lines too; returns how many, writing
 * them to out unless it is NULL.  Capped per segment so a long sweep on a
 * huge canvas stays cheap. */
static size_t s_line_samples(const s_ctx_t *g, const so_plot_series_t *s, s_box_t *out)
{
    size_t k = 0;
    for (size_t j = 0; j + 1 < s->n; j++) {
        double xa = s_px(g, s->pts[j].cost), ya = s_py(g, s->pts[j].accuracy);
        double xb = s_px(g, s->pts[j + 1].cost), yb = s_py(g, s->pts[j + 1].accuracy);
        double len = hypot(xb - xa, yb - ya);
        size_t steps = (size_t) fmin(len / 5.0, 400.0);
        for (size_t q = 1; q < steps; q++) {
            double t = (double) q / (double) steps;
            double x = xa + t * (xb - xa), y = ya + t * (yb - ya);
            if (x < g->px0 || x > g->px1 || y < g->py0 || y > g->py1)
                continue;
            if (out)
                out[k] = (s_box_t){ x - 2, y - 2, x + 2, y + 2 };
            k++;
        }
    }
    return k;
}

/* Greedy label placement, the simple kind map makers use: for each label
 * try positions around its marker, nearest first, and keep the one whose
 * text box overlaps least with the plot's edge, the markers and the labels
 * already placed.  A label set off diagonally or pushed away from its marker
 * gets a leader line, so it is clear which marker it names. */
#define S_LABEL_FS 11.0

/* What labels should not cover: the labelled points, every series point and
 * samples along the lines.  Returns how many boxes it wrote. */
static size_t s_marks(const s_ctx_t *g, const so_plot_t *p, s_box_t *marks)
{
    size_t k = 0;
    for (size_t i = 0; i < p->nlabels; i++) {
        double x = s_px(g, p->labels[i].pt.cost), y = s_py(g, p->labels[i].pt.accuracy);
        marks[k++] = (s_box_t){ x - 7, y - 7, x + 7, y + 7 };
    }
    for (size_t i = 0; i < p->nseries; i++)
        for (size_t j = 0; j < p->series[i].n; j++) {
            double x = s_px(g, p->series[i].pts[j].cost);
            double y = s_py(g, p->series[i].pts[j].accuracy);
            marks[k++] = (s_box_t){ x - 4, y - 4, x + 4, y + 4 };
        }
    for (size_t i = 0; i < p->nseries; i++)
        k += s_line_samples(g, &p->series[i], marks + k);
    return k;
}

static void s_labels(const s_ctx_t *g, const so_plot_t *p)
{
    FILE *fp = g->fp;
    size_t nl = p->nlabels, nmark = nl;
    for (size_t i = 0; i < p->nseries; i++)
        nmark += p->series[i].n + s_line_samples(g, &p->series[i], NULL);
    s_box_t *placed = so_calloc(nl ? nl : 1, sizeof *placed);
    s_box_t *marks = so_calloc(nmark ? nmark : 1, sizeof *marks);
    size_t k = s_marks(g, p, marks);
    /* Directions (unit steps) tried at distance 1 and 2. */
    static const double dirs[][2] = { { 1, 0 },  { -1, 0 }, { 0, -1 },  { 0, 1 },
                                      { 1, -1 }, { 1, 1 },  { -1, -1 }, { -1, 1 } };
    const double fs = S_LABEL_FS, th = fs + 2;

    for (size_t i = 0; i < nl; i++) {
        const so_plot_label_t *l = &p->labels[i];
        double mx = s_px(g, l->pt.cost), my = s_py(g, l->pt.accuracy);
        double tw = s_text_w(l->name, fs);
        s_box_t best = { 0, 0, 0, 0 };
        double best_cost = INFINITY;
        int best_far = 0;
        for (int dist = 1; dist <= 3; dist++) {
            for (size_t d = 0; d < sizeof dirs / sizeof dirs[0]; d++) {
                double gap = 9.0 + (dist - 1) * 16.0;
                double cx = mx + dirs[d][0] * (gap + tw / 2);
                double cy = my + dirs[d][1] * (gap + th / 2 - (dirs[d][0] != 0 ? 4 : 0));
                if (dirs[d][0] == 0)
                    cx = mx;
                s_box_t b = { cx - tw / 2, cy - th / 2, cx + tw / 2, cy + th / 2 };
                double cost = (dist - 1) * 40.0 + (double) d;
                double inside = s_overlap(b, (s_box_t){ g->px0, g->py0, g->px1, g->py1 });
                cost += (tw * th - inside) * 50.0;
                for (size_t j = 0; j < i; j++)
                    cost += s_overlap(b, placed[j]) * 20.0;
                for (size_t j = 0; j < k; j++)
                    if (j != i)
                        cost += s_overlap(b, marks[j]) * 10.0;
                if (cost < best_cost) {
                    best_cost = cost;
                    best = b;
                    best_far = dist > 1 || (dirs[d][0] != 0 && dirs[d][1] != 0);
                }
            }
        }
        placed[i] = best;
        if (best_far) {
            double ex = fmax(best.x0, fmin(mx, best.x1));
            double ey = fmax(best.y0, fmin(my, best.y1));
            fprintf(fp,
                    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                    "stroke=\"#999999\" stroke-width=\"0.8\"/>\n",
                    mx, my, ex, ey);
        }
        s_text(g, (best.x0 + best.x1) / 2, (best.y0 + best.y1) / 2 + fs * 0.35, fs, "middle",
               "fill=\"#222222\"", l->name, 200);
    }
    /* Markers last, above the leader lines. */
    for (size_t i = 0; i < nl; i++) {
        const so_plot_label_t *l = &p->labels[i];
        s_marker(fp, l->marker, s_px(g, l->pt.cost), s_py(g, l->pt.accuracy),
                 l->marker == SO_PLOT_MARK_STAR ? 6.0 : 5.5, s_label_color(l));
    }
    free(placed);
    free(marks);
}

/* Width the legend needs, from its longest line. */
static double s_legend_width(const so_plot_t *p)
{
    double w = 0;
    for (size_t i = 0; i < p->nseries; i++)
        w = fmax(w, s_text_w(p->series[i].name, 13));
    for (size_t i = 0; i < p->nlabels; i++)
        if (p->labels[i].group)
            w = fmax(w, s_text_w(p->labels[i].group, 13));
    return w + 56;
}

static void s_legend(const s_ctx_t *g, const so_plot_t *p, double x, double w)
{
    FILE *fp = g->fp;
    /* The width estimate is generous, so allow a character's slack. */
    size_t max_chars = (size_t) fmax(4, (w - 56) / (S_CHAR_W * 13) + 1.5);
    double y = g->py0 + 6;
    double top = g->py0;
    fprintf(fp, "<g id=\"legend\">\n");
    for (size_t i = 0; i < p->nseries; i++) {
        const so_plot_series_t *s = &p->series[i];
        const char *c = s_series_color(p, i);
        double cy = y + 10;
        fprintf(fp,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                "stroke=\"%s\" stroke-width=\"2\"%s/>\n",
                x + 8, cy, x + 40, cy, c, s->dashed ? " stroke-dasharray=\"7,5\"" : "");
        s_marker(fp, s->marker, x + 24, cy, 3.5, c);
        s_text(g, x + 48, cy + 4.5, 13, "start", NULL, s->name, max_chars);
        y += 22;
        if (s->has_aiq) {
            char buf[64];
            snprintf(buf, sizeof buf, "AIQ %.4f", s->aiq);
            s_text(g, x + 48, y + 6, 11, "start", "fill=\"#555555\"", buf, 64);
            y += 16;
        }
    }
    for (size_t i = 0; i < p->nlabels; i++) {
        const so_plot_label_t *l = &p->labels[i];
        if (!l->group)
            continue;
        size_t j = 0;
        while (j < i && !(p->labels[j].group && strcmp(p->labels[j].group, l->group) == 0))
            j++;
        if (j < i)
            continue; /* group already listed */
        double cy = y + 10;
        s_marker(fp, l->marker, x + 24, cy, 5.0, s_label_color(l));
        s_text(g, x + 48, cy + 4.5, 13, "start", NULL, l->group, max_chars);
        y += 22;
    }
    fprintf(fp,
            "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
            "fill=\"none\" stroke=\"#bbbbbb\" rx=\"4\"/>\n</g>\n",
            x, top, w, y - top + 6);
}

/* ---------------------------------------------------------------- main */

int so_plot_svg(const char *path, const so_plot_t *p, char *err, size_t errlen)
{
    if (s_check(path, p, err, errlen) != 0)
        return -1;
    int W = p->width ? p->width : 900, H = p->height ? p->height : 600;

    s_ctx_t g = { .logx = p->xscale == SO_PLOT_XLOG };
    double legend_w = fmin(fmax(s_legend_width(p), 140), W * 0.34);
    g.px0 = 78;
    g.px1 = W - legend_w - 34;
    g.py0 = p->title ? 52 : 20;
    g.py1 = H - 62;
    s_ranges(p, &g);

    g.fp = fopen(path, "w");
    if (!g.fp) {
        so_err(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    FILE *fp = g.fp;
    fprintf(fp,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
            "height=\"%d\" viewBox=\"0 0 %d %d\" %s>\n",
            W, H, W, H, S_FONT);
    fprintf(fp,
            "<defs><clipPath id=\"so-plot-area\"><rect x=\"%.1f\" y=\"%.1f\" "
            "width=\"%.1f\" height=\"%.1f\"/></clipPath></defs>\n",
            g.px0, g.py0, g.px1 - g.px0, g.py1 - g.py0);
    fprintf(fp, "<rect width=\"100%%\" height=\"100%%\" fill=\"#ffffff\"/>\n");
    if (p->title)
        s_text(&g, W / 2.0, 32, 18, "middle", "font-weight=\"bold\"", p->title,
               (size_t) (W / (S_CHAR_W * 18)));
    s_axes(&g, p);
    s_series(&g, p);
    s_labels(&g, p);
    s_legend(&g, p, g.px1 + 18, legend_w);
    fputs("</svg>\n", fp);

    int bad = ferror(fp);
    if (fclose(fp) != 0 || bad) {
        so_err(err, errlen, "cannot write %s: %s", path, errno ? strerror(errno) : "I/O error");
        remove(path);
        return -1;
    }
    return 0;
}
