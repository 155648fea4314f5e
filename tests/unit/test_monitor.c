/* Monitors (dsc/monitor.h, src/engine/engine_monitor.c): the csv files byte for byte in
 * DeepSpeed's layout and parsed back; TensorBoard event files checked with an independent
 * crc32c and protobuf decoder; the engine's events and wall-clock lines; the PNG plot
 * inflated by an independent decoder. */
#define _GNU_SOURCE /* nftw */
#include <dirent.h>
#include <ftw.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "dsc/monitor.h"
#include "engine/engine_monitor.h"

/* ---- helpers ------------------------------------------------------------------------ */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}
static void rm_rf(const char *dir) { nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

static void check_file(const char *path, const char *want) {
    char *got = check_read_file(path, NULL);
    CHECK_MSG(got && !strcmp(got, want), "%s: got \"%s\", want \"%s\"", path, got ? got : "(missing)", want);
    free(got);
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return 1e3 * (double)ts.tv_sec + 1e-6 * (double)ts.tv_nsec;
}

/* ---- Python's repr(float) --------------------------------------------------------- */

static void test_python_float(void) {
    static const struct {
        double v;
        const char *want;
    } cases[] = {
        {0.001, "0.001"}, {65536.0, "65536.0"}, {1e-05, "1e-05"}, {1.5e16, "1.5e+16"}, {1e16, "1e+16"},
        {1e15, "1000000000000000.0"}, {0.1 + 0.2, "0.30000000000000004"}, {-0.0, "-0.0"}, {0.0, "0.0"},
        {2.5e-4, "0.00025"}, {0.0001, "0.0001"}, {123.456, "123.456"}, {-3.25, "-3.25"}, {1.0 / 3, "0.3333333333333333"},
        {5e-324, "5e-324"}, {1.7976931348623157e308, "1.7976931348623157e+308"}, {2.0, "2.0"}, {1e22, "1e+22"},
        {NAN, "nan"}, {INFINITY, "inf"}, {-INFINITY, "-inf"}, {4.1234567, "4.1234567"}, {100.5, "100.5"},
    };
    char buf[40];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dsc_format_python_float(cases[i].v, buf, sizeof buf);
        CHECK_MSG(!strcmp(buf, cases[i].want), "repr(%.17g): got %s, want %s", cases[i].v, buf, cases[i].want);
    }
}

/* ---- csv ------------------------------------------------------------------------------ */

static void test_csv(const char *tmp) {
    char out[512], dir[600], path[700], err[512];
    snprintf(out, sizeof out, "%s/csv/out/", tmp);
    dsc_csv_monitor_t *m = NULL;
    CHECK_OK(dsc_csv_monitor_open(out, "job", &m, err, sizeof err));
    if (!m) return;
    snprintf(dir, sizeof dir, "%s/csv/out/job", tmp);
    CHECK(!strcmp(dsc_csv_monitor_dir(m), dir));
    dsc_monitor_event_t ev1[2] = {{"Train/Samples/lr", 0.001, 16}, {"Train/Samples/loss scale", 65536.0, 16}};
    dsc_monitor_event_t ev2[1] = {{"Train/Samples/lr", 0.0005, 32}};
    CHECK_OK(dsc_csv_monitor_write(m, ev1, 2, err, sizeof err));
    CHECK_OK(dsc_csv_monitor_write(m, ev2, 1, err, sizeof err));
    dsc_csv_monitor_close(m);
    /* DeepSpeed's CsvMonitor: header "step,<last component>" on the first write, CRLF rows */
    snprintf(path, sizeof path, "%s/Train_Samples_lr.csv", dir);
    check_file(path, "step,lr\r\n16,0.001\r\n32,0.0005\r\n");
    snprintf(path, sizeof path, "%s/Train_Samples_loss_scale.csv", dir);
    check_file(path, "step,loss scale\r\n16,65536.0\r\n");
    char name[64];
    CHECK_OK(dsc_csv_monitor_file_name("Train/Samples/elapsed time", name, sizeof name));
    CHECK(!strcmp(name, "Train_Samples_elapsed_time.csv"));
    CHECK(dsc_csv_monitor_file_name("Train/Samples/lr", name, 10) == DSC_ERR_INVALID);

    /* A second monitor (a resumed run) appends, with its own header line: the reader skips it. */
    CHECK_OK(dsc_csv_monitor_open(out, "job", &m, err, sizeof err));
    dsc_monitor_event_t ev3[1] = {{"Train/Samples/lr", 1e-5, 48}};
    CHECK_OK(dsc_csv_monitor_write(m, ev3, 1, err, sizeof err));
    dsc_csv_monitor_close(m);
    snprintf(path, sizeof path, "%s/Train_Samples_lr.csv", dir);
    check_file(path, "step,lr\r\n16,0.001\r\n32,0.0005\r\nstep,lr\r\n48,1e-05\r\n");
    dsc_csv_series_t s;
    CHECK_OK(dsc_csv_series_read(path, &s, err, sizeof err));
    CHECK(s.n == 3 && !strcmp(s.header, "lr"));
    if (s.n == 3) {
        CHECK(s.steps[0] == 16 && s.steps[1] == 32 && s.steps[2] == 48);
        CHECK(s.values[0] == 0.001 && s.values[1] == 0.0005 && s.values[2] == 1e-5);
    }
    dsc_csv_series_free(&s);

    /* Errors name the file and line. */
    snprintf(path, sizeof path, "%s/bad.csv", dir);
    FILE *f = fopen(path, "w");
    fputs("step,lr\n1,0.5\nx,0.25\n", f);
    fclose(f);
    CHECK(dsc_csv_series_read(path, &s, err, sizeof err) == DSC_ERR_CORRUPT);
    CHECK_MSG(strstr(err, "bad.csv:3:") != NULL, "%s", err);
    CHECK(s.n == 0 && s.steps == NULL);
    snprintf(path, sizeof path, "%s/missing.csv", dir);
    CHECK(dsc_csv_series_read(path, &s, err, sizeof err) == DSC_ERR_IO);
    CHECK_MSG(strstr(err, "missing.csv") != NULL, "%s", err);
    /* a file where a directory must go */
    snprintf(path, sizeof path, "%s/csv/file", tmp);
    f = fopen(path, "w");
    fclose(f);
    CHECK(dsc_csv_monitor_open(path, "job", &m, err, sizeof err) == DSC_ERR_IO && m == NULL);
    CHECK_MSG(strstr(err, "csv/file") != NULL, "%s", err);
}

/* ---- TensorBoard: an independent reader ---------------------------------------------- */

static uint32_t crc32c_table[256];
static void crc32c_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc32c_table[i] = c;
    }
}
static uint32_t crc32c(const uint8_t *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    while (n--) c = crc32c_table[(c ^ *p++) & 0xFF] ^ (c >> 8);
    return ~c;
}
static uint32_t masked(const uint8_t *p, size_t n) {
    uint32_t c = crc32c(p, n);
    return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}
static uint64_t le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

typedef struct {
    double wall_time;
    int64_t step;
    char file_version[32];
    char tag[128];
    float value;
    bool has_value;
} tb_event_t;

static bool varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
    *v = 0;
    for (int shift = 0; *p < end && shift < 64; shift += 7) {
        uint8_t b = *(*p)++;
        *v |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) return true;
    }
    return false;
}

/* Decodes the fields of Event / Summary / Value that the writer uses; false on anything
 * malformed or unexpected. */
static bool decode_value(const uint8_t *p, const uint8_t *end, tb_event_t *ev) {
    while (p < end) {
        uint64_t key, len;
        if (!varint(&p, end, &key)) return false;
        if (key == (1 << 3 | 2)) { /* tag */
            if (!varint(&p, end, &len) || len > (uint64_t)(end - p) || len >= sizeof ev->tag) return false;
            memcpy(ev->tag, p, len);
            ev->tag[len] = '\0';
            p += len;
        } else if (key == (2 << 3 | 5)) { /* simple_value */
            if (end - p < 4) return false;
            uint32_t u = (uint32_t)le(p, 4);
            memcpy(&ev->value, &u, 4);
            ev->has_value = true;
            p += 4;
        } else {
            return false;
        }
    }
    return true;
}

static bool decode_event(const uint8_t *p, const uint8_t *end, tb_event_t *ev) {
    memset(ev, 0, sizeof *ev);
    while (p < end) {
        uint64_t key, len, v;
        if (!varint(&p, end, &key)) return false;
        switch (key) {
        case 1 << 3 | 1: { /* wall_time */
            if (end - p < 8) return false;
            uint64_t u = le(p, 8);
            memcpy(&ev->wall_time, &u, 8);
            p += 8;
            break;
        }
        case 2 << 3 | 0: /* step */
            if (!varint(&p, end, &v)) return false;
            ev->step = (int64_t)v;
            break;
        case 3 << 3 | 2: /* file_version */
            if (!varint(&p, end, &len) || len > (uint64_t)(end - p) || len >= sizeof ev->file_version) return false;
            memcpy(ev->file_version, p, len);
            p += len;
            break;
        case 5 << 3 | 2: { /* summary { value { ... } } */
            if (!varint(&p, end, &len) || len > (uint64_t)(end - p)) return false;
            const uint8_t *s = p, *se = p + len;
            p += len;
            uint64_t k2, l2;
            if (!varint(&s, se, &k2) || k2 != (1 << 3 | 2) || !varint(&s, se, &l2) || l2 != (uint64_t)(se - s)) return false;
            if (!decode_value(s, se, ev)) return false;
            break;
        }
        default:
            return false;
        }
    }
    return true;
}

/* Reads every record of an event file, checking both CRCs of each. Returns the count, or -1
 * (naming the first problem on stderr unless `quiet`). */
static int read_events_q(const char *path, tb_event_t *evs, int max, bool quiet) {
    size_t n;
    uint8_t *d = (uint8_t *)check_read_file(path, &n);
    if (!d) return -1;
    int count = 0;
    size_t off = 0;
    while (off < n) {
        if (n - off < 12 || count == max) break;
        uint64_t len = le(d + off, 8);
        if ((uint32_t)le(d + off + 8, 4) != masked(d + off, 8) || len > n - off - 16) break;
        const uint8_t *data = d + off + 12;
        if ((uint32_t)le(data + len, 4) != masked(data, (size_t)len)) break;
        if (!decode_event(data, data + len, &evs[count])) break;
        count++;
        off += 16 + len;
    }
    bool ok = off == n;
    if (!ok && !quiet) fprintf(stderr, "read_events %s: bad record at offset %zu of %zu\n", path, off, n);
    free(d);
    return ok ? count : -1;
}
static int read_events(const char *path, tb_event_t *evs, int max) { return read_events_q(path, evs, max, false); }

static void test_tensorboard(const char *tmp) {
    crc32c_init();
    CHECK(crc32c((const uint8_t *)"123456789", 9) == 0xE3069283u); /* the standard check value */
    CHECK(dsc_tfrecord_masked_crc32c("123456789", 9) == masked((const uint8_t *)"123456789", 9));
    char dir[512], err[512];
    snprintf(dir, sizeof dir, "%s/tb/job", tmp);
    dsc_tb_writer_t *w = NULL;
    CHECK_OK(dsc_tb_writer_open(dir, &w, err, sizeof err));
    if (!w) return;
    char path[700];
    snprintf(path, sizeof path, "%s", dsc_tb_writer_path(w));
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    char prefix[700];
    snprintf(prefix, sizeof prefix, "%s/events.out.tfevents.", dir);
    CHECK_MSG(!strncmp(path, prefix, strlen(prefix)) && strstr(path, host), "%s", path);
    const char *digits = path + strlen(prefix);
    CHECK(strspn(digits, "0123456789") == 10 && digits[10] == '.');
    static const struct {
        const char *tag;
        double v;
        int64_t step;
    } sc[] = {{"Train/Samples/train_loss", 4.1875, 0}, {"Train/Samples/lr", 0.001, 16},
              {"Train/Samples/loss_scale", 65536, 1ll << 40}, {"x", -2.5e-7, 127}, {"Train/Samples/lr", 3.0, 128}};
    const int n_sc = (int)(sizeof sc / sizeof sc[0]);
    for (int i = 0; i < n_sc; i++)
        CHECK_OK(dsc_tb_writer_add_scalar(w, sc[i].tag, sc[i].v, sc[i].step, 1700000000.25 + i, err, sizeof err));
    CHECK_OK(dsc_tb_writer_flush(w, err, sizeof err));
    tb_event_t ev[16];
    int n = read_events(path, ev, 16);
    CHECK_MSG(n == n_sc + 1, "%d events", n);
    if (n == n_sc + 1) {
        CHECK(!strcmp(ev[0].file_version, "brain.Event:2") && ev[0].step == 0 && !ev[0].has_value);
        CHECK(fabs(ev[0].wall_time - (double)time(NULL)) < 600);
        for (int i = 0; i < n_sc; i++) {
            const tb_event_t *e = &ev[i + 1];
            CHECK_MSG(!strcmp(e->tag, sc[i].tag) && e->has_value && e->value == (float)sc[i].v && e->step == sc[i].step &&
                          e->wall_time == 1700000000.25 + i,
                      "event %d: %s %g %lld %.17g", i, e->tag, e->value, (long long)e->step, e->wall_time);
        }
    }
    dsc_tb_writer_close(w);
    /* a corrupted byte fails the data CRC */
    size_t len;
    char *bytes = check_read_file(path, &len);
    if (bytes && len > 40) {
        bytes[len - 10] ^= 0x20;
        FILE *f = fopen(path, "wb");
        fwrite(bytes, 1, len, f);
        fclose(f);
        CHECK(read_events_q(path, ev, 16, true) == -1);
    }
    free(bytes);
    /* two writers of one process in one directory get two files */
    dsc_tb_writer_t *w1 = NULL, *w2 = NULL;
    CHECK_OK(dsc_tb_writer_open(dir, &w1, err, sizeof err));
    CHECK_OK(dsc_tb_writer_open(dir, &w2, err, sizeof err));
    if (w1 && w2) CHECK(strcmp(dsc_tb_writer_path(w1), dsc_tb_writer_path(w2)) != 0);
    dsc_tb_writer_close(w1);
    dsc_tb_writer_close(w2);
}

/* ---- the config's monitors ------------------------------------------------------------- */

static dsc_config_t *parse(const char *json) {
    dsc_config_t *cfg = NULL;
    char err[512];
    if (dsc_config_parse_string(json, NULL, &cfg, err, sizeof err) != DSC_OK) fprintf(stderr, "config: %s\n", err);
    return cfg;
}

static void test_monitor_master(const char *tmp) {
    char json[1024], err[512];
    snprintf(json, sizeof json,
             "{\"tensorboard\": {\"enabled\": true, \"output_path\": \"%s/master\", \"job_name\": \"tbjob\"},"
             " \"csv_monitor\": {\"enabled\": true, \"output_path\": \"%s/master\"}}",
             tmp, tmp);
    dsc_config_t *cfg = parse(json);
    CHECK(cfg != NULL);
    if (!cfg) return;
    dsc_monitor_t *m = NULL;
    CHECK_OK(dsc_monitor_new(cfg, 0, &m, err, sizeof err));
    CHECK(dsc_monitor_enabled(m));
    char want[600];
    snprintf(want, sizeof want, "%s/master/DeepSpeedJobName", tmp); /* job_name's default */
    CHECK(dsc_monitor_csv_dir(m) && !strcmp(dsc_monitor_csv_dir(m), want));
    snprintf(want, sizeof want, "%s/master/tbjob/events.out.tfevents.", tmp);
    CHECK(dsc_monitor_tensorboard_file(m) && !strncmp(dsc_monitor_tensorboard_file(m), want, strlen(want)));
    dsc_monitor_event_t ev = {"Train/Samples/lr", 0.25, 8};
    CHECK_OK(dsc_monitor_write_events(m, &ev, 1, err, sizeof err));
    tb_event_t tev[4];
    CHECK(read_events(dsc_monitor_tensorboard_file(m), tev, 4) == 2 && !strcmp(tev[1].tag, "Train/Samples/lr") &&
          tev[1].value == 0.25f && tev[1].step == 8);
    char path[700];
    snprintf(path, sizeof path, "%s/Train_Samples_lr.csv", dsc_monitor_csv_dir(m));
    check_file(path, "step,lr\r\n8,0.25\r\n");
    dsc_monitor_free(m);

    /* other ranks write nothing */
    CHECK_OK(dsc_monitor_new(cfg, 1, &m, err, sizeof err));
    CHECK(m && !dsc_monitor_enabled(m) && !dsc_monitor_csv_dir(m));
    CHECK_OK(dsc_monitor_write_events(m, &ev, 1, err, sizeof err));
    dsc_monitor_free(m);
    dsc_config_free(cfg);

    cfg = parse("{\"wandb\": {\"enabled\": true}}");
    CHECK(cfg && dsc_monitor_new(cfg, 0, &m, err, sizeof err) == DSC_ERR_UNSUPPORTED && m == NULL);
    CHECK_MSG(strstr(err, "wandb.enabled") != NULL, "%s", err);
    dsc_config_free(cfg);
    cfg = parse("{\"comet\": {\"enabled\": true}}");
    CHECK(cfg && dsc_monitor_new(cfg, 0, &m, err, sizeof err) == DSC_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(err, "comet.enabled") != NULL, "%s", err);
    dsc_config_free(cfg);
}

/* ---- the engine's monitor: events and wall-clock lines ----------------------------------- */

typedef struct {
    int micro_lines, global_lines, other;
    char last_micro[512], last_global[512];
} log_capture_t;

static void capture(dsc_log_level_t level, const char *msg, void *user) {
    log_capture_t *c = user;
    (void)level;
    if (!strncmp(msg, "[Rank 0] time (ms) | fwd_microstep: ", 36)) {
        c->micro_lines++;
        snprintf(c->last_micro, sizeof c->last_micro, "%s", msg);
    } else if (!strncmp(msg, "[Rank 0] time (ms) | fwd: ", 26)) {
        c->global_lines++;
        snprintf(c->last_global, sizeof c->last_global, "%s", msg);
    } else {
        c->other++;
    }
}

/* The wall time of the last micro-step's step phase (step_begin to step_end), as the test
 * saw it: the monitor's step timer must fit in it less the reduction, however loaded the
 * machine (a comparison of two timers would not: a preempted thread can make any timer
 * long). */
static double last_step_phase_ms;

/* One micro-step as the engine drives it; `boundary` steps reduce inside dsc_step. */
static void micro_step(dsc_engine_monitor_t *m, double loss, bool boundary, int64_t *samples, double lr) {
    static double losses[8]; /* the engine keeps them on the device and hands them over at the boundary */
    static int n_losses;
    sleep_ms(2); /* the forward */
    dsc__engine_monitor_backward_begin(m);
    losses[n_losses++ % 8] = loss;
    sleep_ms(1);
    if (boundary) {
        dsc__engine_monitor_losses(m, losses, n_losses, 2, *samples);
        n_losses = 0;
    }
    dsc__engine_monitor_backward_inner_end(m);
    dsc__engine_monitor_backward_end(m);
    const double phase0 = now_ms();
    dsc__engine_monitor_step_begin(m);
    if (boundary) {
        dsc__engine_monitor_reduce_begin(m);
        sleep_ms(3);
        dsc__engine_monitor_reduce_end(m);
        *samples += 8;
    }
    dsc__engine_monitor_step_end(m, boundary, *samples, lr, true, 32768);
    last_step_phase_ms = now_ms() - phase0;
}

static void test_engine_monitor(const char *tmp) {
    char json[1024], err[512];
    snprintf(json, sizeof json,
             "{\"wall_clock_breakdown\": true, \"tensorboard\": {\"enabled\": true, \"output_path\": \"%s/engine\"},"
             " \"csv_monitor\": {\"enabled\": true, \"output_path\": \"%s/engine\", \"job_name\": \"run\"}}",
             tmp, tmp);
    dsc_config_t *cfg = parse(json);
    dsc_ctx_t *ctx = check_ctx_new(1);
    log_capture_t cap = {0};
    dsc_ctx_set_log(ctx, capture, &cap, DSC_LOG_INFO);
    dsc_engine_monitor_t *m = NULL;
    CHECK_OK(dsc__engine_monitor_new(ctx, cfg, 0, &m, err, sizeof err));
    CHECK(m != NULL);
    if (!m) {
        dsc_ctx_free(ctx);
        dsc_config_free(cfg);
        return;
    }
    int64_t samples = 0;
    micro_step(m, 4.0, false, &samples, 0.001);
    micro_step(m, 3.0, true, &samples, 0.001); /* train_loss (4 + 3) / 2 at 0; lr at 8 */
    const double phase = last_step_phase_ms;
    double micro[5], glob[5];
    dsc__engine_monitor_timers(m, false, micro);
    dsc__engine_monitor_timers(m, true, glob);
    micro_step(m, 2.0, false, &samples, 0.0005);
    micro_step(m, 1.0, true, &samples, 0.0005); /* 1.5 at 8; lr at 16 */
    CHECK(cap.micro_lines == 4 && cap.global_lines == 2);
    CHECK_MSG(strstr(cap.last_global, " | bwd: ") && strstr(cap.last_global, " | bwd_inner: ") &&
                  strstr(cap.last_global, " | bwd_allreduce: ") && strstr(cap.last_global, " | step: "),
              "%s", cap.last_global);
    CHECK_MSG(strstr(cap.last_micro, " | bwd_microstep: ") && strstr(cap.last_micro, " | step_microstep: "), "%s",
              cap.last_micro);
    /* last micro-step of the first window: forward slept 2 ms, inner backward 1 ms, the
     * boundary reduction 3 ms (counted in bwd and bwd_allreduce, not in step: the step timer
     * fits in the step phase's wall time less the reduction). Lower bounds only: sleeps last
     * at least their time, and a loaded machine can only make timers longer. */
    CHECK_MSG(micro[0] >= 1.9 && micro[2] >= 0.9 && micro[3] >= 2.9 && micro[4] >= 0 &&
                  micro[4] <= phase - micro[3] + 1e-3,
              "fwd %.3f inner %.3f allreduce %.3f step %.3f (step phase %.3f ms)", micro[0], micro[2], micro[3],
              micro[4], phase);
    CHECK_MSG(fabs(micro[1] - micro[2] - micro[3]) < 1e-3, "bwd %.6f != inner %.6f + allreduce %.6f", micro[1], micro[2],
              micro[3]);
    CHECK_MSG(glob[0] >= 3.9 && glob[2] >= 1.9 && glob[3] >= 2.9 && fabs(glob[1] - glob[2] - glob[3]) < 1e-3,
              "global fwd %.3f bwd %.3f inner %.3f allreduce %.3f", glob[0], glob[1], glob[2], glob[3]);
    dsc__engine_monitor_free(m);

    char path[700];
    snprintf(path, sizeof path, "%s/engine/run/Train_Samples_train_loss.csv", tmp);
    check_file(path, "step,train_loss\r\n0,3.5\r\n8,1.5\r\n");
    snprintf(path, sizeof path, "%s/engine/run/Train_Samples_lr.csv", tmp);
    check_file(path, "step,lr\r\n8,0.001\r\n16,0.0005\r\n");
    snprintf(path, sizeof path, "%s/engine/run/Train_Samples_loss_scale.csv", tmp);
    check_file(path, "step,loss_scale\r\n8,32768.0\r\n16,32768.0\r\n");
    static const char *const timers[] = {"forward", "backward", "backward_inner", "backward_allreduce", "step"};
    for (int i = 0; i < 5; i++) {
        snprintf(path, sizeof path, "%s/engine/run/Train_Samples_elapsed_time_ms_%s.csv", tmp, timers[i]);
        dsc_csv_series_t s;
        CHECK_OK(dsc_csv_series_read(path, &s, err, sizeof err));
        CHECK_MSG(s.n == 2 && s.steps[0] == 8 && s.steps[1] == 16 && s.values[0] >= 0, "%s: %zu rows", path, s.n);
        if (i == 0 && s.n == 2) CHECK(fabs(s.values[0] - glob[0]) < 1e-9);
        dsc_csv_series_free(&s);
    }
    /* the tensorboard file holds the same events: 2 train_loss, 2 lr, 2 loss_scale, 10 timers */
    char tbdir[600];
    snprintf(tbdir, sizeof tbdir, "%s/engine/DeepSpeedJobName", tmp);
    char tbfile[900] = "";
    DIR *dp = opendir(tbdir);
    for (struct dirent *de = dp ? readdir(dp) : NULL; de; de = readdir(dp))
        if (!strncmp(de->d_name, "events.out.tfevents.", 20)) snprintf(tbfile, sizeof tbfile, "%s/%s", tbdir, de->d_name);
    if (dp) closedir(dp);
    tb_event_t ev[32];
    int n = read_events(tbfile, ev, 32);
    CHECK_MSG(n == 17, "%s: %d events", tbfile, n);
    if (n == 17) CHECK(!strcmp(ev[1].tag, "Train/Samples/train_loss") && ev[1].value == 3.5f && ev[1].step == 0);

    /* nothing enabled: no monitor at all, and every call is a no-op */
    dsc_config_t *none = parse("{}");
    CHECK_OK(dsc__engine_monitor_new(ctx, none, 0, &m, err, sizeof err));
    CHECK(m == NULL);
    samples = 0;
    micro_step(m, 1.0, true, &samples, 0.1);
    dsc_config_free(none);
    /* breakdown without monitors: lines, no files; other ranks time but print nothing */
    dsc_config_t *bd = parse("{\"wall_clock_breakdown\": true}");
    cap = (log_capture_t){0};
    CHECK_OK(dsc__engine_monitor_new(ctx, bd, 0, &m, err, sizeof err));
    micro_step(m, 1.0, true, &samples, 0.1);
    dsc__engine_monitor_free(m);
    CHECK(cap.micro_lines == 1 && cap.global_lines == 1);
    CHECK_OK(dsc__engine_monitor_new(ctx, bd, 1, &m, err, sizeof err));
    micro_step(m, 1.0, true, &samples, 0.1);
    dsc__engine_monitor_free(m);
    CHECK(cap.micro_lines == 1 && cap.global_lines == 1);
    dsc_config_free(bd);
    dsc_ctx_free(ctx);
    dsc_config_free(cfg);
}

/* ---- PNG: an independent inflate (stored and fixed-Huffman blocks) ----------------------- */

typedef struct {
    const uint8_t *p;
    size_t n, pos;
    int bit;
    bool bad;
} bitin_t;

static unsigned getbit(bitin_t *b) {
    if (b->pos >= b->n) {
        b->bad = true;
        return 0;
    }
    unsigned v = (b->p[b->pos] >> b->bit) & 1u;
    if (++b->bit == 8) b->bit = 0, b->pos++;
    return v;
}
static unsigned getbits(bitin_t *b, int n) {
    unsigned v = 0;
    for (int i = 0; i < n; i++) v |= getbit(b) << i;
    return v;
}
/* Fixed literal/length code (RFC 1951 3.2.6), read MSB first. */
static int fixed_litlen(bitin_t *b) {
    unsigned c = 0;
    for (int i = 0; i < 7; i++) c = c << 1 | getbit(b);
    if (c <= 0x17) return (int)c + 256; /* 7 bits: 256..279 */
    c = c << 1 | getbit(b);
    if (c >= 0x30 && c <= 0xBF) return (int)c - 0x30;       /* 0..143 */
    if (c >= 0xC0 && c <= 0xC7) return (int)c - 0xC0 + 280; /* 280..287 */
    c = c << 1 | getbit(b);
    if (c >= 0x190 && c <= 0x1FF) return (int)c - 0x190 + 144; /* 144..255 */
    b->bad = true;
    return -1;
}

static uint8_t *inflate_zlib(const uint8_t *z, size_t zn, size_t *out_n) {
    static const int lb[29] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
    static const int le_[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
    static const int db[30] = {1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
    static const int de[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};
    if (zn < 6 || (z[0] & 0x0F) != 8 || ((z[0] << 8) | z[1]) % 31 != 0) return NULL;
    bitin_t b = {z + 2, zn - 6, 0, 0, false};
    size_t cap = 1 << 16, n = 0;
    uint8_t *out = malloc(cap);
    bool final = false;
    while (!final && !b.bad && out) {
        final = getbit(&b);
        unsigned type = getbits(&b, 2);
        if (type == 0) { /* stored */
            if (b.bit) b.bit = 0, b.pos++;
            if (b.pos + 4 > b.n) break;
            unsigned len = b.p[b.pos] | b.p[b.pos + 1] << 8;
            b.pos += 4;
            if (b.pos + len > b.n) break;
            while (n + len > cap) out = realloc(out, cap *= 2);
            memcpy(out + n, b.p + b.pos, len);
            n += len, b.pos += len;
            continue;
        }
        if (type != 1) break; /* the writer only makes fixed blocks */
        for (;;) {
            int sym = fixed_litlen(&b);
            if (b.bad || sym == 256) break;
            if (n + 258 > cap) out = realloc(out, cap *= 2);
            if (sym < 256) {
                out[n++] = (uint8_t)sym;
                continue;
            }
            sym -= 257;
            if (sym > 28) {
                b.bad = true;
                break;
            }
            int len = lb[sym] + (int)getbits(&b, le_[sym]);
            unsigned dc = 0;
            for (int i = 0; i < 5; i++) dc = dc << 1 | getbit(&b);
            if (dc > 29) {
                b.bad = true;
                break;
            }
            size_t dist = (size_t)db[dc] + getbits(&b, de[dc]);
            if (dist > n) {
                b.bad = true;
                break;
            }
            for (int i = 0; i < len; i++, n++) out[n] = out[n - dist];
        }
    }
    if (!out || b.bad || !final) {
        free(out);
        return NULL;
    }
    uint32_t a = 1, s2 = 0;
    for (size_t i = 0; i < n; i++) a = (a + out[i]) % 65521u, s2 = (s2 + a) % 65521u;
    const uint8_t *t = z + zn - 4;
    if ((s2 << 16 | a) != ((uint32_t)t[0] << 24 | (uint32_t)t[1] << 16 | (uint32_t)t[2] << 8 | t[3])) {
        free(out);
        return NULL;
    }
    *out_n = n;
    return out;
}

static uint32_t crc32_png(const uint8_t *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    while (n--) {
        c ^= *p++;
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0xEDB88320u : c >> 1;
    }
    return ~c;
}

/* Reads a PNG written by dsc_png_write_rgb; returns the RGB pixels (malloc'ed) or NULL. */
static uint8_t *read_png(const char *path, int *w, int *h) {
    size_t n;
    uint8_t *d = (uint8_t *)check_read_file(path, &n);
    if (!d) return NULL;
    uint8_t *pixels = NULL, *idat = NULL;
    size_t idat_n = 0, off = 8;
    bool ok = n > 8 && !memcmp(d, "\x89PNG\r\n\x1a\n", 8), end = false;
    *w = *h = 0;
    while (ok && !end && off + 12 <= n) {
        uint32_t len = (uint32_t)d[off] << 24 | (uint32_t)d[off + 1] << 16 | (uint32_t)d[off + 2] << 8 | d[off + 3];
        if (off + 12 + len > n) break;
        const uint8_t *type = d + off + 4, *data = d + off + 8, *c = data + len;
        ok = crc32_png(type, 4 + len) == ((uint32_t)c[0] << 24 | (uint32_t)c[1] << 16 | (uint32_t)c[2] << 8 | c[3]);
        if (!memcmp(type, "IHDR", 4)) {
            *w = (int)(data[0] << 24 | data[1] << 16 | data[2] << 8 | data[3]);
            *h = (int)(data[4] << 24 | data[5] << 16 | data[6] << 8 | data[7]);
            ok = ok && len == 13 && off == 8 && data[8] == 8 && data[9] == 2 && !data[10] && !data[11] && !data[12];
        } else if (!memcmp(type, "IDAT", 4)) {
            idat = realloc(idat, idat_n + len);
            memcpy(idat + idat_n, data, len);
            idat_n += len;
        } else if (!memcmp(type, "IEND", 4)) {
            end = true;
        }
        off += 12 + len;
    }
    size_t raw_n = 0;
    uint8_t *raw = ok && end && off == n && idat ? inflate_zlib(idat, idat_n, &raw_n) : NULL;
    const size_t stride = 1 + (size_t)*w * 3;
    if (raw && *w > 0 && *h > 0 && raw_n == stride * (size_t)*h) {
        pixels = malloc((size_t)*w * *h * 3);
        for (int y = 0; y < *h && pixels; y++) {
            if (raw[(size_t)y * stride] != 0) { /* the writer uses filter 0 only */
                free(pixels);
                pixels = NULL;
                break;
            }
            memcpy(pixels + (size_t)y * *w * 3, raw + (size_t)y * stride + 1, (size_t)*w * 3);
        }
    }
    free(raw);
    free(idat);
    free(d);
    return pixels;
}

static void test_png_and_plot(const char *tmp) {
    char path[600], dir[600], err[512];
    /* a round trip: noise, runs, repeated rows */
    const int w = 37, h = 23;
    uint8_t *img = malloc((size_t)w * h * 3);
    uint32_t st = 12345;
    for (int i = 0; i < w * h * 3; i++) {
        st = st * 1103515245u + 12345u;
        int y = i / (w * 3);
        img[i] = y < 8 ? (uint8_t)(st >> 16) : y < 16 ? (uint8_t)(i % 3 * 80) : img[i - w * 3];
    }
    snprintf(path, sizeof path, "%s/rt.png", tmp);
    CHECK_OK(dsc_png_write_rgb(path, img, w, h, err, sizeof err));
    int rw, rh;
    uint8_t *back = read_png(path, &rw, &rh);
    CHECK_MSG(back && rw == w && rh == h && !memcmp(back, img, (size_t)w * h * 3), "PNG round trip");
    free(back);
    free(img);
    CHECK(dsc_png_write_rgb(path, NULL, 10, 10, err, sizeof err) == DSC_ERR_INVALID);

    /* the plot of a run directory */
    snprintf(dir, sizeof dir, "%s/plotrun", tmp);
    dsc_csv_monitor_t *m = NULL;
    snprintf(path, sizeof path, "%s", tmp);
    CHECK_OK(dsc_csv_monitor_open(path, "plotrun", &m, err, sizeof err));
    for (int i = 0; i < 50 && m; i++) {
        dsc_monitor_event_t ev[2] = {{"Train/Samples/train_loss", 4.0 * exp(-i / 20.0) + 1, 16 * i},
                                     {"Train/Samples/lr", 1e-3 * (i < 10 ? i / 10.0 : 1.0), 16 * (i + 1)}};
        CHECK_OK(dsc_csv_monitor_write(m, ev, 2, err, sizeof err));
    }
    dsc_csv_monitor_close(m);
    snprintf(path, sizeof path, "%s/plot.png", tmp);
    CHECK_OK(dsc_plot_run_dir(dir, path, 640, 400, err, sizeof err));
    uint8_t *px = read_png(path, &rw, &rh);
    CHECK_MSG(px && rw == 640 && rh == 400, "plot PNG");
    if (px) {
        size_t white = 0, blue = 0, orange = 0;
        for (size_t i = 0; i < (size_t)rw * rh; i++) {
            const uint8_t *q = px + 3 * i;
            white += q[0] == 255 && q[1] == 255 && q[2] == 255;
            blue += q[0] == 31 && q[1] == 119 && q[2] == 180;
            orange += q[0] == 230 && q[1] == 110 && q[2] == 10;
        }
        CHECK(px[0] == 255 && white > (size_t)rw * rh / 2); /* a white canvas */
        CHECK_MSG(blue > 300 && orange > 300, "curves: %zu blue, %zu orange pixels", blue, orange);
    }
    free(px);
    /* errors */
    snprintf(path, sizeof path, "%s/nope.png", tmp);
    snprintf(dir, sizeof dir, "%s/no_such_dir", tmp);
    CHECK(dsc_plot_run_dir(dir, path, 0, 0, err, sizeof err) == DSC_ERR_IO);
    CHECK_MSG(strstr(err, "no_such_dir") != NULL, "%s", err);
    snprintf(dir, sizeof dir, "%s/tb", tmp); /* a directory without csv files */
    CHECK(dsc_plot_run_dir(dir, path, 0, 0, err, sizeof err) == DSC_ERR_IO);
    CHECK_MSG(strstr(err, "csv_monitor") != NULL, "%s", err);
    CHECK(dsc_plot_run_dir(dir, path, 100, 100, err, sizeof err) == DSC_ERR_INVALID);
}

int main(void) {
    char tmp[] = "/tmp/dsc_test_monitor.XXXXXX";
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        return 1;
    }
    test_python_float();
    test_csv(tmp);
    test_tensorboard(tmp);
    test_monitor_master(tmp);
    test_engine_monitor(tmp);
    test_png_and_plot(tmp);
    rm_rf(tmp);
    return check_finish("test_monitor");
}
