/* TensorBoard event files written directly: TFRecord framing around hand-encoded Event
 * protobufs (tensorflow/core/util/event.proto, summary.proto), as
 * torch.utils.tensorboard.SummaryWriter.add_scalar writes them:
 *
 *   record  = u64 length (LE) | u32 masked_crc32c(length bytes) | data | u32 masked_crc32c(data)
 *   Event   = 1: double wall_time (fixed64) | 2: int64 step (varint) |
 *             3: string file_version | 5: Summary summary
 *   Summary = 1: repeated Value value
 *   Value   = 1: string tag | 2: float simple_value (fixed32)
 *
 * Fields holding proto3 defaults (step 0) are omitted, as protobuf serialises them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "dsc/monitor.h"
#include "monitor/monitor_internal.h"

struct dsc_tb_writer {
    FILE *f;
    char *path;
};

/* ---- crc32c (Castagnoli, reflected polynomial 0x82F63B78), bytewise ------------------- */

static uint32_t crc32c(const uint8_t *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
    }
    return c ^ 0xFFFFFFFFu;
}

uint32_t dsc_tfrecord_masked_crc32c(const void *data, size_t n) {
    uint32_t c = crc32c(data, n);
    return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

/* ---- protobuf encoding into a growing buffer --------------------------------------------- */

typedef struct {
    uint8_t *p;
    size_t n, cap;
    bool oom;
} pbuf_t;

static void put(pbuf_t *b, const void *src, size_t n) {
    if (b->oom) return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n) cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void put_varint(pbuf_t *b, uint64_t v) {
    uint8_t t[10];
    size_t n = 0;
    do {
        t[n] = (uint8_t)(v & 0x7F);
        v >>= 7;
        if (v) t[n] |= 0x80;
        n++;
    } while (v);
    put(b, t, n);
}

static void put_key(pbuf_t *b, unsigned field, unsigned wire) { put_varint(b, (uint64_t)field << 3 | wire); }

static void put_le(pbuf_t *b, uint64_t v, int bytes) {
    uint8_t t[8];
    for (int i = 0; i < bytes; i++) t[i] = (uint8_t)(v >> (8 * i));
    put(b, t, (size_t)bytes);
}

static void put_bytes_field(pbuf_t *b, unsigned field, const void *data, size_t n) {
    put_key(b, field, 2);
    put_varint(b, n);
    put(b, data, n);
}

static void put_double_field(pbuf_t *b, unsigned field, double v) {
    uint64_t u;
    memcpy(&u, &v, 8);
    put_key(b, field, 1);
    put_le(b, u, 8);
}

/* Event with wall_time, step and either file_version or one scalar value. */
static void encode_event(pbuf_t *ev, double wall_time, int64_t step, const char *file_version, const char *tag,
                         float value) {
    put_double_field(ev, 1, wall_time);
    if (step != 0) {
        put_key(ev, 2, 0);
        put_varint(ev, (uint64_t)step); /* int64: negative values as 10-byte two's complement */
    }
    if (file_version) {
        put_bytes_field(ev, 3, file_version, strlen(file_version));
        return;
    }
    pbuf_t val = {0}, sum = {0};
    put_bytes_field(&val, 1, tag, strlen(tag));
    uint32_t u;
    memcpy(&u, &value, 4);
    put_key(&val, 2, 5);
    put_le(&val, u, 4);
    put_bytes_field(&sum, 1, val.p, val.n);
    put_bytes_field(ev, 5, sum.p, sum.n);
    ev->oom |= val.oom || sum.oom;
    free(val.p);
    free(sum.p);
}

static dsc_status_t write_record(dsc_tb_writer_t *w, const pbuf_t *ev, char *err, size_t errsz) {
    if (ev->oom) return dsc__mon_fail(err, errsz, DSC_ERR_NOMEM, "out of memory encoding a tensorboard event");
    uint8_t head[12];
    uint64_t len = ev->n;
    for (int i = 0; i < 8; i++) head[i] = (uint8_t)(len >> (8 * i));
    uint32_t c = dsc_tfrecord_masked_crc32c(head, 8);
    for (int i = 0; i < 4; i++) head[8 + i] = (uint8_t)(c >> (8 * i));
    uint8_t foot[4];
    c = dsc_tfrecord_masked_crc32c(ev->p, ev->n);
    for (int i = 0; i < 4; i++) foot[i] = (uint8_t)(c >> (8 * i));
    if (fwrite(head, 1, 12, w->f) != 12 || fwrite(ev->p, 1, ev->n, w->f) != ev->n || fwrite(foot, 1, 4, w->f) != 4)
        return dsc__mon_fail(err, errsz, DSC_ERR_IO, "cannot write %s: %s", w->path, strerror(errno));
    return DSC_OK;
}

static double now_seconds(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + tv.tv_usec * 1e-6;
}

dsc_status_t dsc_tb_writer_open(const char *log_dir, dsc_tb_writer_t **out, char *err, size_t errsz) {
    if (err && errsz) err[0] = '\0';
    if (!out) return dsc__mon_fail(err, errsz, DSC_ERR_INVALID, "dsc_tb_writer_open: out is NULL");
    *out = NULL;
    if (!log_dir) log_dir = "";
    dsc_status_t rc = dsc__mon_mkdir_p(log_dir, err, errsz);
    if (rc != DSC_OK) return rc;
    char host[256] = "localhost";
    if (gethostname(host, sizeof host - 1) != 0) snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    double t = now_seconds();
    dsc_tb_writer_t *w = calloc(1, sizeof *w);
    if (!w) return dsc__mon_fail(err, errsz, DSC_ERR_NOMEM, "out of memory opening a tensorboard event file");
    /* torch.utils.tensorboard's name; the last number tells apart writers of one process. */
    for (int uid = 0; uid < 1000 && !w->f; uid++) {
        char name[400];
        snprintf(name, sizeof name, "events.out.tfevents.%010lld.%s.%d.%d", (long long)t, host, (int)getpid(), uid);
        free(w->path);
        w->path = dsc__mon_path_join(log_dir, name);
        if (!w->path) break;
        w->f = fopen(w->path, "wbx"); /* never append to another writer's file */
        if (!w->f && errno != EEXIST) break;
    }
    if (!w->f) {
        rc = dsc__mon_fail(err, errsz, w->path ? DSC_ERR_IO : DSC_ERR_NOMEM, "cannot create tensorboard event file %s: %s",
                           w->path ? w->path : log_dir, strerror(errno));
        dsc_tb_writer_close(w);
        return rc;
    }
    pbuf_t ev = {0};
    encode_event(&ev, t, 0, "brain.Event:2", NULL, 0);
    rc = write_record(w, &ev, err, errsz);
    free(ev.p);
    if (rc == DSC_OK) rc = dsc_tb_writer_flush(w, err, errsz);
    if (rc != DSC_OK) {
        dsc_tb_writer_close(w);
        return rc;
    }
    *out = w;
    return DSC_OK;
}

dsc_status_t dsc_tb_writer_add_scalar(dsc_tb_writer_t *w, const char *tag, double value, int64_t step,
                                      double wall_time, char *err, size_t errsz) {
    if (!w || !tag) return dsc__mon_fail(err, errsz, DSC_ERR_INVALID, "dsc_tb_writer_add_scalar: writer or tag is NULL");
    pbuf_t ev = {0};
    encode_event(&ev, wall_time > 0 ? wall_time : now_seconds(), step, NULL, tag, (float)value);
    dsc_status_t rc = write_record(w, &ev, err, errsz);
    free(ev.p);
    return rc;
}

dsc_status_t dsc_tb_writer_flush(dsc_tb_writer_t *w, char *err, size_t errsz) {
    if (!w) return DSC_OK;
    if (fflush(w->f) != 0) return dsc__mon_fail(err, errsz, DSC_ERR_IO, "cannot write %s: %s", w->path, strerror(errno));
    return DSC_OK;
}

const char *dsc_tb_writer_path(const dsc_tb_writer_t *w) { return w ? w->path : NULL; }

void dsc_tb_writer_close(dsc_tb_writer_t *w) {
    if (!w) return;
    if (w->f) fclose(w->f);
    free(w->path);
    free(w);
}
