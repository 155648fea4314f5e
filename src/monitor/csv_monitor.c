/* DeepSpeed's CsvMonitor (deepspeed/monitor/csv_monitor.py): one file per event name under
 * output_path/job_name, a "step,<name tail>" header on the first write of a name, rows
 * "step,value" with Python's csv line ending "\r\n"; and the reader `dsc plot` uses. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsc/monitor.h"
#include "monitor/monitor_internal.h"

struct dsc_csv_monitor {
    char *dir;
    char **names; /* file names already written by this monitor (header done) */
    size_t n_names, cap_names;
};

dsc_status_t dsc_csv_monitor_file_name(const char *event_name, char *buf, size_t n) {
    if (!event_name || !buf) return DSC_ERR_INVALID;
    size_t len = strlen(event_name);
    if (len + 5 > n) return DSC_ERR_INVALID;
    for (size_t i = 0; i < len; i++) buf[i] = (event_name[i] == '/' || event_name[i] == ' ') ? '_' : event_name[i];
    memcpy(buf + len, ".csv", 5);
    return DSC_OK;
}

dsc_status_t dsc_csv_monitor_open(const char *output_path, const char *job_name, dsc_csv_monitor_t **out, char *err,
                                  size_t errsz) {
    if (err && errsz) err[0] = '\0';
    if (!out) return dsc__mon_fail(err, errsz, DSC_ERR_INVALID, "dsc_csv_monitor_open: out is NULL");
    *out = NULL;
    dsc_csv_monitor_t *m = calloc(1, sizeof *m);
    if (!m || !(m->dir = dsc__mon_path_join(output_path ? output_path : "", job_name ? job_name : "DeepSpeedJobName"))) {
        free(m);
        return dsc__mon_fail(err, errsz, DSC_ERR_NOMEM, "out of memory creating the csv monitor");
    }
    dsc_status_t rc = dsc__mon_mkdir_p(m->dir, err, errsz);
    if (rc != DSC_OK) {
        dsc_csv_monitor_close(m);
        return rc;
    }
    *out = m;
    return DSC_OK;
}

const char *dsc_csv_monitor_dir(const dsc_csv_monitor_t *m) { return m ? m->dir : NULL; }

void dsc_csv_monitor_close(dsc_csv_monitor_t *m) {
    if (!m) return;
    for (size_t i = 0; i < m->n_names; i++) free(m->names[i]);
    free(m->names);
    free(m->dir);
    free(m);
}

static bool seen(const dsc_csv_monitor_t *m, const char *file) {
    for (size_t i = 0; i < m->n_names; i++)
        if (!strcmp(m->names[i], file)) return true;
    return false;
}

static dsc_status_t remember(dsc_csv_monitor_t *m, const char *file) {
    if (m->n_names == m->cap_names) {
        size_t cap = m->cap_names ? 2 * m->cap_names : 8;
        char **names = realloc(m->names, cap * sizeof *names);
        if (!names) return DSC_ERR_NOMEM;
        m->names = names;
        m->cap_names = cap;
    }
    size_t len = strlen(file);
    if (!(m->names[m->n_names] = malloc(len + 1))) return DSC_ERR_NOMEM;
    memcpy(m->names[m->n_names++], file, len + 1);
    return DSC_OK;
}

/* Python's csv.writer quotes a field holding the delimiter, a quote or a line break. */
static void write_field(FILE *f, const char *s) {
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

dsc_status_t dsc_csv_monitor_write(dsc_csv_monitor_t *m, const dsc_monitor_event_t *events, size_t n, char *err,
                                   size_t errsz) {
    if (!m || n == 0) return DSC_OK;
    if (!events) return dsc__mon_fail(err, errsz, DSC_ERR_INVALID, "dsc_csv_monitor_write: events is NULL");
    for (size_t i = 0; i < n; i++) {
        const char *name = events[i].name ? events[i].name : "";
        size_t fn_size = strlen(name) + 5;
        char *file = malloc(fn_size);
        char *path = file && dsc_csv_monitor_file_name(name, file, fn_size) == DSC_OK ? dsc__mon_path_join(m->dir, file) : NULL;
        if (!path) {
            free(file);
            return dsc__mon_fail(err, errsz, DSC_ERR_NOMEM, "out of memory writing csv event %s", name);
        }
        FILE *f = fopen(path, "a");
        dsc_status_t rc = DSC_OK;
        if (!f) {
            rc = dsc__mon_fail(err, errsz, DSC_ERR_IO, "cannot open %s for appending: %s", path, strerror(errno));
        } else {
            if (!seen(m, file)) {
                rc = remember(m, file);
                const char *slash = strrchr(name, '/');
                fputs("step,", f);
                write_field(f, slash ? slash + 1 : name);
                fputs("\r\n", f);
            }
            char value[40];
            dsc_format_python_float(events[i].value, value, sizeof value);
            fprintf(f, "%lld,%s\r\n", (long long)events[i].step, value);
            if (ferror(f) | (fclose(f) != 0))
                rc = dsc__mon_fail(err, errsz, DSC_ERR_IO, "cannot write %s: %s", path, strerror(errno));
            else if (rc == DSC_ERR_NOMEM)
                dsc__mon_fail(err, errsz, rc, "out of memory writing csv event %s", name);
        }
        free(path);
        free(file);
        if (rc != DSC_OK) return rc;
    }
    return DSC_OK;
}

/* ---- reading ------------------------------------------------------------------------- */

void dsc_csv_series_free(dsc_csv_series_t *s) {
    if (!s) return;
    free(s->steps);
    free(s->values);
    memset(s, 0, sizeof *s);
}

/* Python float() spellings csv files may hold besides what strtod reads. */
static bool parse_value(const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s) return false;
    while (*end == ' ' || *end == '\t') end++;
    if (*end) return false;
    *out = v;
    return true;
}

dsc_status_t dsc_csv_series_read(const char *path, dsc_csv_series_t *out, char *err, size_t errsz) {
    if (err && errsz) err[0] = '\0';
    if (!out) return dsc__mon_fail(err, errsz, DSC_ERR_INVALID, "dsc_csv_series_read: out is NULL");
    memset(out, 0, sizeof *out);
    if (!path) return dsc__mon_fail(err, errsz, DSC_ERR_INVALID, "dsc_csv_series_read: path is NULL");
    FILE *f = fopen(path, "r");
    if (!f) return dsc__mon_fail(err, errsz, DSC_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    char line[512];
    size_t cap = 0;
    long lineno = 0;
    dsc_status_t rc = DSC_OK;
    while (rc == DSC_OK && fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            rc = dsc__mon_fail(err, errsz, DSC_ERR_CORRUPT, "%s:%ld: line longer than %zu bytes", path, lineno, sizeof line - 2);
            break;
        }
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
        if (len == 0) continue;
        char *comma = strchr(line, ',');
        if (!comma) {
            rc = dsc__mon_fail(err, errsz, DSC_ERR_CORRUPT, "%s:%ld: expected \"step,value\", got \"%s\"", path, lineno, line);
            break;
        }
        *comma = '\0';
        const char *a = line, *b = comma + 1;
        if (!strcmp(a, "step")) { /* a header: the first, or one a later run appended */
            char *h = (char *)b;
            size_t hl = strlen(h);
            if (hl >= 2 && h[0] == '"' && h[hl - 1] == '"') { /* csv quoting */
                h[hl - 1] = '\0';
                h++;
            }
            if (!out->header[0]) snprintf(out->header, sizeof out->header, "%s", h);
            continue;
        }
        char *end;
        errno = 0;
        long long step = strtoll(a, &end, 10);
        double v;
        if (end == a || *end || errno || !parse_value(b, &v)) {
            rc = dsc__mon_fail(err, errsz, DSC_ERR_CORRUPT, "%s:%ld: expected \"integer,number\", got \"%s,%s\"", path,
                               lineno, a, b);
            break;
        }
        if (out->n == cap) {
            size_t nc = cap ? 2 * cap : 256;
            int64_t *st = realloc(out->steps, nc * sizeof *st);
            if (st) out->steps = st;
            double *va = st ? realloc(out->values, nc * sizeof *va) : NULL;
            if (va) out->values = va;
            if (!st || !va) {
                rc = dsc__mon_fail(err, errsz, DSC_ERR_NOMEM, "out of memory reading %s", path);
                break;
            }
            cap = nc;
        }
        out->steps[out->n] = step;
        out->values[out->n++] = v;
    }
    if (rc == DSC_OK && ferror(f)) rc = dsc__mon_fail(err, errsz, DSC_ERR_IO, "cannot read %s: %s", path, strerror(errno));
    fclose(f);
    if (rc != DSC_OK) dsc_csv_series_free(out);
    return rc;
}
