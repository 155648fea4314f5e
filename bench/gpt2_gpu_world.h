/* bench/gpt2_gpu's data-parallel side (issue 19's runs): under mpirun every rank trains on
 * its own device with the communicator `dsc train` makes (dsc_comm_new_default: NCCL with
 * one GPU per rank, MPI otherwise), and the parameters of a run can be written to a file or
 * compared with one, so N ranks can be checked against one.
 *
 * The data: every optimizer step draws the same GA_total micro-batches from one token stream
 * whatever the world size, and rank r trains micro-batches [r GA, (r + 1) GA) of them (GA =
 * GA_total / world). The global batch of a step is then the same for every world size, and
 * N ranks should give the 1-rank parameters up to the order of the gradient sums.
 *
 * The parameter file: raw float32 values of every parameter in declaration order (the
 * 16-bit working copy widened), preceded by a 16-byte header "DSCPARAM", uint64 count. */
#ifndef DSC_BENCH_GPT2_GPU_WORLD_H
#define DSC_BENCH_GPT2_GPU_WORLD_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsc/dsc.h"

typedef struct {
    dsc_comm_t *comm; /* NULL: one rank, no mpirun */
    int rank, size, local_rank;
    char device[64]; /* the device this rank opens */
} world_t;

/* The rank's place from OpenMPI's environment before any context exists (the device to open
 * depends on it): "cuda" (no ordinal) means cuda:<local rank modulo the GPU count>, so more
 * ranks than GPUs share them; anything else is used as given. Ranks sharing a GPU train
 * through the MPI backend (dsc_comm_new_default's choice; NCCL takes one GPU per rank). */
static void world_place(world_t *w, const char *device) {
    const char *size = getenv("OMPI_COMM_WORLD_SIZE"), *rank = getenv("OMPI_COMM_WORLD_RANK"),
               *local = getenv("OMPI_COMM_WORLD_LOCAL_RANK");
    w->size = size ? atoi(size) : 1;
    w->rank = rank ? atoi(rank) : 0;
    w->local_rank = local ? atoi(local) : 0;
    if (w->size < 1) w->size = 1;
    if (!strcmp(device, "cuda"))
        snprintf(w->device, sizeof w->device, "cuda:%d", w->local_rank % (dsc_gpu_count() > 0 ? dsc_gpu_count() : 1));
    else
        snprintf(w->device, sizeof w->device, "%s", device);
}

/* The communicator of a job of more than one rank (collective); DSC_OK with none for one. */
static dsc_status_t world_open(world_t *w, dsc_ctx_t *ctx) {
    if (w->size <= 1) return DSC_OK;
    dsc_status_t rc = dsc_comm_new_default(ctx, 600.0, &w->comm);
    if (rc != DSC_OK) return rc;
    w->rank = dsc_comm_rank(w->comm);
    w->size = dsc_comm_world_size(w->comm);
    return DSC_OK;
}

/* The largest of every rank's value (the identity for one rank). */
static double world_max(world_t *w, double v) {
    if (!w->comm) return v;
    double r = v;
    return dsc_comm_allreduce(w->comm, &v, &r, 1, DSC_F64, DSC_REDUCE_MAX) == DSC_OK ? r : v;
}

static float bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Every parameter's values widened to f32, gathered first at ZeRO-3 (collective); *n gets
 * the count. NULL on error (the message in err). */
static float *world_param_values(dsc_engine_t *engine, dsc_model_t *model, int64_t *n, char *err, size_t errsz) {
    dsc_ctx_t *ctx = dsc_model_ctx(model);
    const int np = dsc_model_param_count(model);
    *n = dsc_model_numel(model);
    float *out = malloc((size_t)*n * sizeof *out);
    void *tmp = NULL;
    dsc_status_t rc = out ? dsc_engine_gather_params(engine, NULL, 0) : DSC_ERR_NOMEM;
    if (rc != DSC_OK) {
        snprintf(err, errsz, "gathering the parameters: %s", out ? dsc_engine_errmsg(engine) : "out of memory");
        free(out);
        return NULL;
    }
    int64_t at = 0;
    for (int i = 0; i < np && rc == DSC_OK; i++) {
        dsc_param_info_t pi;
        if ((rc = dsc_model_param_info(model, i, &pi)) != DSC_OK) break;
        const dsc_dtype_t dt = dsc_tensor_dtype(pi.tensor);
        const size_t es = dsc_dtype_size(dt), bytes = (size_t)pi.numel * es;
        void *t = realloc(tmp, bytes);
        if (!t) {
            rc = DSC_ERR_NOMEM;
            break;
        }
        tmp = t;
        if ((rc = dsc_tensor_to_host(ctx, pi.tensor, tmp, bytes)) != DSC_OK) break;
        for (int64_t k = 0; k < pi.numel; k++)
            out[at + k] = dt == DSC_F32  ? ((const float *)tmp)[k]
                          : dt == DSC_BF16 ? bf16_to_f32(((const uint16_t *)tmp)[k])
                                           : NAN; /* the bench trains bf16 only */
        at += pi.numel;
    }
    free(tmp);
    dsc_status_t rel = dsc_engine_release_params(engine, NULL, 0, -1);
    if (rc == DSC_OK) rc = rel;
    if (rc != DSC_OK) {
        snprintf(err, errsz, "reading the parameters back: %s", dsc_ctx_errmsg(ctx));
        free(out);
        return NULL;
    }
    return out;
}

static const char world_magic[8] = {'D', 'S', 'C', 'P', 'A', 'R', 'A', 'M'};

static bool world_save_params(const char *path, const float *v, int64_t n, char *err, size_t errsz) {
    FILE *f = fopen(path, "wb");
    const uint64_t count = (uint64_t)n;
    bool ok = f && fwrite(world_magic, 1, 8, f) == 8 && fwrite(&count, 8, 1, f) == 1 &&
              fwrite(v, sizeof *v, (size_t)n, f) == (size_t)n;
    if (f && fclose(f) != 0) ok = false;
    if (!ok) snprintf(err, errsz, "cannot write the parameter file %s", path);
    return ok;
}

/* Compares v with the file's values: the largest |v - ref|, and ||v - ref|| / ||ref|| (the
 * bf16 tolerance of docs/zero.md, "Equivalence and tolerances": single elements drift by a
 * few bf16 spacings, and a parameter with a zero gradient (the attention key bias) by Adam's
 * +-lr steps of rounding noise, so the bound is on the whole vector). False when the file
 * cannot be read or holds another count. */
static bool world_compare_params(const char *path, const float *v, int64_t n, double *max_abs, double *rel_l2,
                                 char *err, size_t errsz) {
    FILE *f = fopen(path, "rb");
    char magic[8];
    uint64_t count = 0;
    if (!f || fread(magic, 1, 8, f) != 8 || memcmp(magic, world_magic, 8) || fread(&count, 8, 1, f) != 1) {
        snprintf(err, errsz, "%s is not a parameter file of gpt2_gpu --save-params", path);
        if (f) fclose(f);
        return false;
    }
    if (count != (uint64_t)n) {
        snprintf(err, errsz, "%s holds %llu parameters; this model has %lld", path, (unsigned long long)count,
                 (long long)n);
        fclose(f);
        return false;
    }
    double dmax = 0, d2 = 0, r2 = 0;
    float buf[4096];
    int64_t at = 0;
    while (at < n) {
        const size_t k = (size_t)(n - at < 4096 ? n - at : 4096);
        if (fread(buf, sizeof *buf, k, f) != k) {
            snprintf(err, errsz, "%s ends early", path);
            fclose(f);
            return false;
        }
        for (size_t i = 0; i < k; i++) {
            const double d = fabs((double)v[at + (int64_t)i] - buf[i]);
            if (!(d <= dmax)) dmax = d; /* NaN wins */
            d2 += d * d;
            r2 += (double)buf[i] * buf[i];
        }
        at += (int64_t)k;
    }
    fclose(f);
    *max_abs = dmax;
    *rel_l2 = r2 > 0 ? sqrt(d2 / r2) : sqrt(d2);
    return true;
}

#endif
