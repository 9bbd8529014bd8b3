/*
 * so_plot — writes the accuracy-vs-cost figure as a self-contained SVG file,
 * with no dependency beyond libc: line series (a router's lambda sweep with
 * markers, its hull dashed), labelled single points (the single models, the
 * oracle, random), a log or linear cost axis, ticks, axis labels, a legend
 * with each series' AIQ, and a title.  900x600 unless told otherwise.
 *
 * The plot description is borrowed for the call: nothing is kept or freed.
 */
#ifndef SO_PLOT_H
#define SO_PLOT_H

#include <stddef.h>

#include "offline/so_metrics.h"

typedef enum {
    SO_PLOT_XLOG = 0, /* default: costs span two orders of magnitude */
    SO_PLOT_XLINEAR
} so_plot_xscale_t;

typedef enum {
    SO_PLOT_MARK_CIRCLE = 0,
    SO_PLOT_MARK_SQUARE,
    SO_PLOT_MARK_DIAMOND,
    SO_PLOT_MARK_TRIANGLE,
    SO_PLOT_MARK_STAR,
    SO_PLOT_MARK_CROSS,
    SO_PLOT_MARK_NONE
} so_plot_marker_t;

/* A polyline through pts in the given order (sort by cost first for a
 * sweep).  Shown in the legend as its name, followed by "(AIQ 0.823)"
 * when has_aiq is set. */
typedef struct {
    const char *name;
    const so_point_t *pts;
    size_t n;
    int dashed;              /* 0 solid, 1 dashed (e.g. the hull) */
    so_plot_marker_t marker; /* marker at every point; MARK_NONE for none */
    const char *color;       /* SVG colour, e.g. "#1f77b4"; NULL = palette */
    int has_aiq;
    double aiq;
} so_plot_series_t;

/* A single marker with its name written next to it.  Labels that share a
 * non-NULL group get one legend entry under the group's name (e.g. all
 * single models as "single models"); group NULL keeps it out of the legend. */
typedef struct {
    const char *name;
    so_point_t pt;
    so_plot_marker_t marker;
    const char *color; /* NULL = dark grey */
    const char *group;
} so_plot_label_t;

typedef struct {
    const char *title;  /* NULL = none */
    const char *xlabel; /* NULL = "Cost per query (USD)" */
    const char *ylabel; /* NULL = "Accuracy" */
    const so_plot_series_t *series;
    size_t nseries;
    const so_plot_label_t *labels;
    size_t nlabels;
    so_plot_xscale_t xscale;
    int width, height; /* 0 = 900 x 600 */
} so_plot_t;

/* Writes p to path as SVG.  Returns 0, or -1 with a message in err (if err
 * and errlen allow) when: p or path is NULL, there is nothing to plot, a
 * series is empty, a name is missing, a coordinate is not finite, a cost is
 * <= 0 on the log axis, the size is absurd, or the file cannot be written
 * (a partly written file is removed).  Input is checked before the file is
 * opened, so a rejected plot leaves no file. */
int so_plot_svg(const char *path, const so_plot_t *p, char *err, size_t errlen);

#endif
