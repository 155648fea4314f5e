/* The config's monitors (DeepSpeed's MonitorMaster: tensorboard and csv on rank 0), and the
 * helpers the monitor files share (directories, Python's float repr). */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dsc/monitor.h"
#include "monitor/monitor_internal.h"

dsc_status_t dsc__mon_fail(char *err, size_t errsz, dsc_status_t status, const char *fmt, ...) {
    if (err && errsz) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errsz, fmt, ap);
        va_end(ap);
    }
    return status;
}

dsc_status_t dsc__mon_mkdir_p(const char *path, char *err, size_t errsz) {
    if (!path || !*path) return DSC_OK; /* the current directory */
    size_t n = strlen(path);
    char *p = malloc(n + 1);
    if (!p) return dsc__mon_fail(err, errsz, DSC_ERR_NOMEM, "out of memory creating directory %s", path);
    memcpy(p, path, n + 1);
    dsc_status_t rc = DSC_OK;
    for (size_t i = 1; i <= n && rc == DSC_OK; i++) {
        if (p[i] != '/' && p[i] != '\0') continue;
        char saved = p[i];
        p[i] = '\0';
        struct stat st;
        if (mkdir(p, 0777) != 0 && errno != EEXIST)
            rc = dsc__mon_fail(err, errsz, DSC_ERR_IO, "cannot create directory %s: %s", p, strerror(errno));
        else if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode))
            rc = dsc__mon_fail(err, errsz, DSC_ERR_IO, "cannot create directory %s: a file of that name exists", p);
        p[i] = saved;
    }
    free(p);
    return rc;
}

char *dsc__mon_path_join(const char *a, const char *b) {
    if (!a) a = "";
    if (!b) b = "";
    if (b[0] == '/' || a[0] == '\0') a = "";
    size_t la = strlen(a), lb = strlen(b);
    bool slash = la > 0 && a[la - 1] != '/';
    char *s = malloc(la + lb + 2);
    if (!s) return NULL;
    memcpy(s, a, la);
    if (slash) s[la++] = '/';
    memcpy(s + la, b, lb + 1);
    return s;
}

/* ---- Python's repr(float) -------------------------------------------------------------
 * Shortest digit string that reads back to v, laid out as float_repr_style 'short' does:
 * positional for decimal exponents -4 <= e < 16 (at least one digit after the point),
 * scientific otherwise with a sign and at least two exponent digits. */
void dsc_format_python_float(double v, char *buf, size_t n) {
    if (!buf || n == 0) return;
    if (isnan(v)) {
        snprintf(buf, n, "nan");
        return;
    }
    if (isinf(v)) {
        snprintf(buf, n, v < 0 ? "-inf" : "inf");
        return;
    }
    char sci[40];
    int prec = 1;
    for (; prec <= 17; prec++) { /* %.{prec-1}e gives prec significant digits */
        snprintf(sci, sizeof sci, "%.*e", prec - 1, v);
        if (strtod(sci, NULL) == v) break;
    }
    /* sci: [-]d[.ddd]e[+-]xx */
    const char *s = sci;
    bool neg = *s == '-';
    if (neg) s++;
    char digits[24];
    size_t nd = 0;
    for (; *s && *s != 'e'; s++)
        if (*s != '.' && nd + 1 < sizeof digits) digits[nd++] = *s;
    int exp10 = *s == 'e' ? atoi(s + 1) : 0;
    while (nd > 1 && digits[nd - 1] == '0') nd--; /* trailing zeros carry no information */
    digits[nd] = '\0';
    if (v == 0) exp10 = 0;
    char out[64];
    size_t o = 0;
    if (neg) out[o++] = '-';
    if (exp10 >= -4 && exp10 < 16) {
        if (exp10 < 0) {
            out[o++] = '0';
            out[o++] = '.';
            for (int z = 0; z < -exp10 - 1; z++) out[o++] = '0';
            for (size_t i = 0; i < nd; i++) out[o++] = digits[i];
        } else {
            for (int i = 0; i <= exp10; i++) out[o++] = (size_t)i < nd ? digits[i] : '0';
            out[o++] = '.';
            if ((size_t)exp10 + 1 < nd)
                for (size_t i = (size_t)exp10 + 1; i < nd; i++) out[o++] = digits[i];
            else
                out[o++] = '0';
        }
        out[o] = '\0';
    } else {
        out[o++] = digits[0];
        if (nd > 1) {
            out[o++] = '.';
            for (size_t i = 1; i < nd; i++) out[o++] = digits[i];
        }
        snprintf(out + o, sizeof out - o, "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
    }
    snprintf(buf, n, "%s", out);
}

/* ---- MonitorMaster -------------------------------------------------------------------- */

struct dsc_monitor {
    dsc_tb_writer_t *tb;
    dsc_csv_monitor_t *csv;
};

dsc_status_t dsc_monitor_new(const dsc_config_t *cfg, int rank, dsc_monitor_t **out, char *err, size_t errsz) {
    if (err && errsz) err[0] = '\0';
    if (!out) return dsc__mon_fail(err, errsz, DSC_ERR_INVALID, "dsc_monitor_new: out is NULL");
    *out = NULL;
    if (!cfg) return dsc__mon_fail(err, errsz, DSC_ERR_INVALID, "dsc_monitor_new: config is NULL");
    if (cfg->wandb.enabled)
        return dsc__mon_fail(err, errsz, DSC_ERR_UNSUPPORTED, "%s: wandb.enabled: the wandb monitor is not supported by "
                             "dsc (it needs the wandb client); use csv_monitor or tensorboard", cfg->source_name);
    if (cfg->comet.enabled)
        return dsc__mon_fail(err, errsz, DSC_ERR_UNSUPPORTED, "%s: comet.enabled: the comet monitor is not supported by "
                             "dsc (it needs the comet_ml client); use csv_monitor or tensorboard", cfg->source_name);
    dsc_monitor_t *m = calloc(1, sizeof *m);
    if (!m) return dsc__mon_fail(err, errsz, DSC_ERR_NOMEM, "out of memory creating the monitor");
    dsc_status_t rc = DSC_OK;
    if (rank == 0 && cfg->tensorboard.enabled) {
        char *dir = dsc__mon_path_join(cfg->tensorboard.output_path, cfg->tensorboard.job_name);
        rc = dir ? dsc_tb_writer_open(dir, &m->tb, err, errsz)
                 : dsc__mon_fail(err, errsz, DSC_ERR_NOMEM, "out of memory creating the tensorboard monitor");
        free(dir);
    }
    if (rc == DSC_OK && rank == 0 && cfg->csv_monitor.enabled)
        rc = dsc_csv_monitor_open(cfg->csv_monitor.output_path, cfg->csv_monitor.job_name, &m->csv, err, errsz);
    if (rc != DSC_OK) {
        dsc_monitor_free(m);
        return rc;
    }
    *out = m;
    return DSC_OK;
}

bool dsc_monitor_enabled(const dsc_monitor_t *m) { return m && (m->tb || m->csv); }

dsc_status_t dsc_monitor_write_events(dsc_monitor_t *m, const dsc_monitor_event_t *events, size_t n, char *err,
                                      size_t errsz) {
    if (!m || n == 0) return DSC_OK;
    if (!events) return dsc__mon_fail(err, errsz, DSC_ERR_INVALID, "dsc_monitor_write_events: events is NULL");
    dsc_status_t rc = DSC_OK;
    for (size_t i = 0; m->tb && i < n && rc == DSC_OK; i++)
        rc = dsc_tb_writer_add_scalar(m->tb, events[i].name, events[i].value, events[i].step, 0, err, errsz);
    if (rc == DSC_OK && m->tb) rc = dsc_tb_writer_flush(m->tb, err, errsz);
    if (rc == DSC_OK && m->csv) rc = dsc_csv_monitor_write(m->csv, events, n, err, errsz);
    return rc;
}

const char *dsc_monitor_csv_dir(const dsc_monitor_t *m) { return m && m->csv ? dsc_csv_monitor_dir(m->csv) : NULL; }
const char *dsc_monitor_tensorboard_file(const dsc_monitor_t *m) { return m && m->tb ? dsc_tb_writer_path(m->tb) : NULL; }

void dsc_monitor_free(dsc_monitor_t *m) {
    if (!m) return;
    dsc_tb_writer_close(m->tb);
    dsc_csv_monitor_close(m->csv);
    free(m);
}
