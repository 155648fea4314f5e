/* `dsc plot`: the loss and lr curves of a run, read from its csv monitor files, drawn into
 * an RGB canvas (one panel per curve, axes, grid, tick labels in a 5x7 bitmap font) and
 * written as a PNG. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dsc/monitor.h"
#include "monitor/monitor_internal.h"

typedef struct {
    uint8_t *px;
    int w, h;
} canvas_t;

typedef struct {
    uint8_t r, g, b;
} rgb_t;

static const rgb_t WHITE = {255, 255, 255}, BLACK = {0, 0, 0}, GRID = {225, 225, 225}, TEXT = {40, 40, 40},
                   BLUE = {31, 119, 180}, ORANGE = {230, 110, 10}, GREEN = {44, 160, 44};

static void set_px(canvas_t *c, int x, int y, rgb_t col) {
    if (x < 0 || y < 0 || x >= c->w || y >= c->h) return;
    uint8_t *p = c->px + ((size_t)y * c->w + x) * 3;
    p[0] = col.r;
    p[1] = col.g;
    p[2] = col.b;
}

static void fill_rect(canvas_t *c, int x0, int y0, int x1, int y1, rgb_t col) {
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) set_px(c, x, y, col);
}

/* Bresenham, `thick` pixels wide (a square brush). */
static void line(canvas_t *c, int x0, int y0, int x1, int y1, rgb_t col, int thick) {
    int dx = abs(x1 - x0), sx = x0 < x1 ? 1 : -1, dy = -abs(y1 - y0), sy = y0 < y1 ? 1 : -1, e = dx + dy;
    for (;;) {
        fill_rect(c, x0, y0, x0 + thick - 1, y0 + thick - 1, col);
        if (x0 == x1 && y0 == y1) break;
        int e2 = 2 * e;
        if (e2 >= dy) {
            e += dy;
            x0 += sx;
        }
        if (e2 <= dx) {
            e += dx;
            y0 += sy;
        }
    }
}

/* ---- 5x7 font: the characters tick labels and titles use ----------------------------- */

typedef struct {
    char ch;
    const char *rows[7];
} glyph_t;

static const glyph_t font[] = {
    {'0', {".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."}},
    {'1', {"..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."}},
    {'2', {".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"}},
    {'3', {"#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."}},
    {'4', {"...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."}},
    {'5', {"#####", "#....", "####.", "....#", "....#", "#...#", ".###."}},
    {'6', {"..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."}},
    {'7', {"#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."}},
    {'8', {".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."}},
    {'9', {".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."}},
    {'.', {".....", ".....", ".....", ".....", ".....", ".##..", ".##.."}},
    {'-', {".....", ".....", ".....", "#####", ".....", ".....", "....."}},
    {'+', {".....", "..#..", "..#..", "#####", "..#..", "..#..", "....."}},
    {':', {".....", ".##..", ".##..", ".....", ".##..", ".##..", "....."}},
    {'/', {".....", "....#", "...#.", "..#..", ".#...", "#....", "....."}},
    {'_', {".....", ".....", ".....", ".....", ".....", ".....", "#####"}},
    {'(', {"...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#."}},
    {')', {".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#..."}},
    {',', {".....", ".....", ".....", ".....", ".##..", "..#..", ".#..."}},
    {'=', {".....", ".....", "#####", ".....", "#####", ".....", "....."}},
    {'a', {".....", ".....", ".###.", "....#", ".####", "#...#", ".####"}},
    {'b', {"#....", "#....", "#.##.", "##..#", "#...#", "#...#", "####."}},
    {'c', {".....", ".....", ".###.", "#....", "#....", "#...#", ".###."}},
    {'d', {"....#", "....#", ".##.#", "#..##", "#...#", "#...#", ".####"}},
    {'e', {".....", ".....", ".###.", "#...#", "#####", "#....", ".###."}},
    {'f', {"..##.", ".#..#", ".#...", "###..", ".#...", ".#...", ".#..."}},
    {'g', {".....", ".####", "#...#", "#...#", ".####", "....#", ".###."}},
    {'h', {"#....", "#....", "#.##.", "##..#", "#...#", "#...#", "#...#"}},
    {'i', {"..#..", ".....", ".##..", "..#..", "..#..", "..#..", ".###."}},
    {'j', {"...#.", ".....", "..##.", "...#.", "...#.", "#..#.", ".##.."}},
    {'k', {"#....", "#....", "#..#.", "#.#..", "##...", "#.#..", "#..#."}},
    {'l', {".##..", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."}},
    {'m', {".....", ".....", "##.#.", "#.#.#", "#.#.#", "#...#", "#...#"}},
    {'n', {".....", ".....", "#.##.", "##..#", "#...#", "#...#", "#...#"}},
    {'o', {".....", ".....", ".###.", "#...#", "#...#", "#...#", ".###."}},
    {'p', {".....", ".....", "####.", "#...#", "####.", "#....", "#...."}},
    {'q', {".....", ".....", ".##.#", "#..##", ".####", "....#", "....#"}},
    {'r', {".....", ".....", "#.##.", "##..#", "#....", "#....", "#...."}},
    {'s', {".....", ".....", ".###.", "#....", ".###.", "....#", "####."}},
    {'t', {".#...", ".#...", "###..", ".#...", ".#...", ".#..#", "..##."}},
    {'u', {".....", ".....", "#...#", "#...#", "#...#", "#..##", ".##.#"}},
    {'v', {".....", ".....", "#...#", "#...#", "#...#", ".#.#.", "..#.."}},
    {'w', {".....", ".....", "#...#", "#...#", "#.#.#", "#.#.#", ".#.#."}},
    {'x', {".....", ".....", "#...#", ".#.#.", "..#..", ".#.#.", "#...#"}},
    {'y', {".....", ".....", "#...#", "#...#", ".####", "....#", ".###."}},
    {'z', {".....", ".....", "#####", "...#.", "..#..", ".#...", "#####"}},
};

static const glyph_t *find_glyph(char ch) {
    if (ch >= 'A' && ch <= 'Z') ch = (char)(ch - 'A' + 'a');
    for (size_t i = 0; i < sizeof font / sizeof font[0]; i++)
        if (font[i].ch == ch) return &font[i];
    return NULL; /* space and anything unknown: blank */
}

static int text_width(const char *s, int scale) { return (int)strlen(s) * 6 * scale; }

static void text(canvas_t *c, int x, int y, const char *s, rgb_t col, int scale) {
    for (; *s; s++, x += 6 * scale) {
        const glyph_t *g = find_glyph(*s);
        if (!g) continue;
        for (int r = 0; r < 7; r++)
            for (int k = 0; k < 5; k++)
                if (g->rows[r][k] == '#') fill_rect(c, x + k * scale, y + r * scale, x + k * scale + scale - 1, y + r * scale + scale - 1, col);
    }
}

/* ---- axes ------------------------------------------------------------------------------ */

/* A "nice" tick step (1, 2 or 5 times a power of ten) giving about `n` intervals. */
static double nice_step(double range, int n) {
    double raw = range / n, p = pow(10, floor(log10(raw))), f = raw / p;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

static void format_tick(double v, double step, char *buf, size_t n) {
    if (fabs(v) < step * 1e-9) v = 0;
    snprintf(buf, n, "%.4g", v);
}

typedef struct {
    const char *title;
    const dsc_csv_series_t *s, *s2; /* s2: a second curve on the same axes (validation loss), or NULL */
    rgb_t color, color2;
} panel_t;

/* One curve: consecutive finite points joined; a lone point is a dot. */
static void draw_curve(canvas_t *c, const dsc_csv_series_t *s, rgb_t color, int left, int right, int ptop, int pbot,
                       double xmin, double xmax, double ymin, double ymax) {
    int px = 0, py = 0;
    bool have = false;
    for (size_t i = 0; i < s->n; i++) {
        double v = s->values[i];
        if (!isfinite(v)) {
            have = false;
            continue;
        }
        int x = left + (int)lround(((double)s->steps[i] - xmin) / (xmax - xmin) * (right - left));
        int y = pbot - (int)lround((v - ymin) / (ymax - ymin) * (pbot - ptop));
        if (have) line(c, px, py, x, y, color, 2);
        else fill_rect(c, x - 1, y - 1, x + 1, y + 1, color);
        px = x, py = y, have = true;
    }
}

static void draw_panel(canvas_t *c, const panel_t *p, int top, int bottom, double xmin, double xmax) {
    const int left = 78, right = c->w - 24, ptop = top + 30, pbot = bottom - 34;
    text(c, left, top + 8, p->title, TEXT, 2);
    double ymin = INFINITY, ymax = -INFINITY;
    const dsc_csv_series_t *both[2] = {p->s, p->s2};
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; both[k] && i < both[k]->n; i++)
            if (isfinite(both[k]->values[i])) {
                ymin = fmin(ymin, both[k]->values[i]);
                ymax = fmax(ymax, both[k]->values[i]);
            }
    if (!(ymin <= ymax)) ymin = 0, ymax = 1; /* no finite value */
    if (ymax - ymin <= fabs(ymax) * 1e-12) {
        double d = ymax != 0 ? fabs(ymax) * 0.1 : 1;
        ymin -= d, ymax += d;
    }
    double pad = (ymax - ymin) * 0.05;
    ymin -= pad, ymax += pad;
    /* grid and tick labels */
    char lab[40];
    double ys = nice_step(ymax - ymin, 4);
    for (double v = ceil(ymin / ys) * ys; v <= ymax + ys * 1e-9; v += ys) {
        int y = pbot - (int)lround((v - ymin) / (ymax - ymin) * (pbot - ptop));
        line(c, left, y, right, y, GRID, 1);
        format_tick(v, ys, lab, sizeof lab);
        text(c, left - 6 - text_width(lab, 1), y - 3, lab, TEXT, 1);
    }
    double xs = nice_step(xmax - xmin, 5);
    for (double v = ceil(xmin / xs) * xs; v <= xmax + xs * 1e-9; v += xs) {
        int x = left + (int)lround((v - xmin) / (xmax - xmin) * (right - left));
        line(c, x, ptop, x, pbot, GRID, 1);
        format_tick(v, xs, lab, sizeof lab);
        text(c, x - text_width(lab, 1) / 2, pbot + 6, lab, TEXT, 1);
    }
    text(c, right - text_width("samples", 1), pbot + 18, "samples", TEXT, 1);
    draw_curve(c, p->s, p->color, left, right, ptop, pbot, xmin, xmax, ymin, ymax);
    if (p->s2) draw_curve(c, p->s2, p->color2, left, right, ptop, pbot, xmin, xmax, ymin, ymax);
    /* frame */
    line(c, left, ptop, right, ptop, BLACK, 1);
    line(c, left, pbot, right, pbot, BLACK, 1);
    line(c, left, ptop, left, pbot, BLACK, 1);
    line(c, right, ptop, right, pbot, BLACK, 1);
}

static dsc_status_t read_optional(const char *dir, const char *file, dsc_csv_series_t *s, bool *found, char *err,
                                  size_t errsz) {
    char *path = dsc__mon_path_join(dir, file);
    if (!path) return dsc__mon_fail(err, errsz, DSC_ERR_NOMEM, "out of memory");
    struct stat st;
    *found = stat(path, &st) == 0;
    dsc_status_t rc = *found ? dsc_csv_series_read(path, s, err, errsz) : DSC_OK;
    free(path);
    return rc;
}

dsc_status_t dsc_plot_run_dir(const char *run_dir, const char *png_path, int width, int height, char *err,
                              size_t errsz) {
    if (err && errsz) err[0] = '\0';
    if (!run_dir || !png_path) return dsc__mon_fail(err, errsz, DSC_ERR_INVALID, "dsc_plot_run_dir: run_dir or png_path is NULL");
    if (width == 0) width = 900;
    if (height == 0) height = 600;
    if (width < 200 || height < 200 || width > 8000 || height > 8000)
        return dsc__mon_fail(err, errsz, DSC_ERR_INVALID, "plot size %dx%d: width and height must be in 200..8000", width, height);
    struct stat st;
    if (stat(run_dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return dsc__mon_fail(err, errsz, DSC_ERR_IO, "%s is not a directory (expected a csv_monitor run directory, "
                             "<output_path>/<job_name>)", run_dir);
    dsc_csv_series_t loss = {0}, lr = {0}, val = {0};
    bool have_loss = false, have_lr = false, have_val = false;
    dsc_status_t rc = read_optional(run_dir, "Train_Samples_train_loss.csv", &loss, &have_loss, err, errsz);
    if (rc == DSC_OK) rc = read_optional(run_dir, "Train_Samples_lr.csv", &lr, &have_lr, err, errsz);
    if (rc == DSC_OK) rc = read_optional(run_dir, "Train_Samples_val_loss.csv", &val, &have_val, err, errsz);
    if (rc == DSC_OK && !have_loss && !have_lr)
        rc = dsc__mon_fail(err, errsz, DSC_ERR_IO, "%s holds neither Train_Samples_train_loss.csv nor Train_Samples_lr.csv "
                           "(enable \"csv_monitor\" in the DeepSpeed config to write them)", run_dir);
    if (rc == DSC_OK && loss.n == 0 && lr.n == 0)
        rc = dsc__mon_fail(err, errsz, DSC_ERR_CORRUPT, "%s: the csv files hold no rows yet", run_dir);
    canvas_t c = {NULL, width, height};
    if (rc == DSC_OK && !(c.px = malloc((size_t)width * height * 3)))
        rc = dsc__mon_fail(err, errsz, DSC_ERR_NOMEM, "out of memory for a %dx%d plot", width, height);
    if (rc == DSC_OK) {
        fill_rect(&c, 0, 0, width - 1, height - 1, WHITE);
        /* one x range for both panels */
        double xmin = INFINITY, xmax = -INFINITY;
        const dsc_csv_series_t *all[3] = {&loss, &lr, &val};
        for (int k = 0; k < 3; k++)
            for (size_t i = 0; i < all[k]->n; i++) {
                xmin = fmin(xmin, (double)all[k]->steps[i]);
                xmax = fmax(xmax, (double)all[k]->steps[i]);
            }
        if (xmax <= xmin) xmax = xmin + 1;
        panel_t panels[2];
        int np = 0;
        if (loss.n && val.n) panels[np++] = (panel_t){"train loss / val loss", &loss, &val, BLUE, GREEN};
        else if (loss.n) panels[np++] = (panel_t){"train loss", &loss, NULL, BLUE, BLUE};
        if (lr.n) panels[np++] = (panel_t){"lr", &lr, NULL, ORANGE, ORANGE};
        for (int k = 0; k < np; k++) draw_panel(&c, &panels[k], k * height / np, (k + 1) * height / np, xmin, xmax);
        rc = dsc_png_write_rgb(png_path, c.px, width, height, err, errsz);
    }
    free(c.px);
    dsc_csv_series_free(&loss);
    dsc_csv_series_free(&lr);
    dsc_csv_series_free(&val);
    return rc;
}
