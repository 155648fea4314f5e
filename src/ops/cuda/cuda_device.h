/* The CUDA device's private state, shared by its table files (cuda_device.c: memory, copies,
 * events; cuda_backend.c: the op entries; cuda_optim_amp.c: the optimizer and mixed-precision
 * entries). Plain C: the kernels are reached through cuda_kernels.h, so these files compile
 * without CUDA headers, against the real kernels (libdsc with DSC_CUDA) or the CPU emulator
 * (the test library dsc_emu). Never installed. */
#ifndef DSC_OPS_CUDA_DEVICE_H
#define DSC_OPS_CUDA_DEVICE_H

#include <stddef.h>

#include "core/device.h"
#include "ops/cuda/cuda_kernels.h"

typedef struct dsc_cuda_dev {
    int ordinal;
    void *stream;          /* every call of this device is issued on this one stream */
    /* to_host_async's own stream (and the event that orders it after the main stream), made
     * on first use: its copies overlap the kernels queued after them; sync and to_host wait
     * for it too. NULL until then. */
    void *d2h_stream, *d2h_event;
    /* from_host_async's the same (the upload stream; its event orders it after the main stream
     * and, when the caller gives none, the main stream after the copy). */
    void *h2d_stream, *h2d_event;
    dsc_cuda_blas_t *blas; /* the cuBLASLt handle and its workspace */
    /* Device scratch for small per-call data (a sum, Lamb block lists, the amp scan's
     * segments, results and workspace). Reused call after call: stream order makes a later
     * upload wait for the kernels that read the previous contents. Grown (after a sync) when
     * a call needs more. */
    void *scratch;
    size_t scratch_bytes;
    dsc_cuda_device_info_t info;
    /* cuBLASLt found no algorithm for these epilogues once (cuda_fused.c): the separate
     * kernels run from then on without asking again. */
    bool no_dgelu_epilogue, no_residual_epilogue, no_gelu_epilogue;
    /* The tensor-core attention's variant (DSC_CUDA_ATTENTION when the device was made,
     * docs/cuda.md; zeros: the defaults). The backward variants other than RECOMPUTE take
     * their workspace from the scratch. */
    dsc_cuda_att_cfg_t att;
    /* The `cudnn` variant (DSC_CUDA_ATTENTION unset, or its word cudnn): att_cudnn set; its state
     * (cuda_kernels.h dsc_cuda_cudnn_*): cuDNN loaded, its handle and plans, made at the first
     * attention call; cudnn_off: loading failed (not retried);
     * cudnn_told: a fallback's reason went to stderr (once per device). The workspace of a
     * call comes from the scratch. */
    dsc_cuda_cudnn_t *cudnn;
    bool att_cudnn, cudnn_off, cudnn_told;
    /* DSC_CUDA_PROFILE set when the device was made: every checked call synchronises the
     * stream and adds the time since the previous one to its name's row (a profiling mode:
     * slower, but each row is that call's GPU time plus the host work before it); the table
     * goes to stderr when the device is destroyed. */
    bool profile;
    double prof_mark;
    int n_prof;
    struct dsc_cuda_prof_row {
        const char *what;
        long calls;
        double seconds;
    } prof[96];
    int n_host;
    char host_names[40][64];
} dsc_cuda_dev_t;

static inline dsc_cuda_dev_t *dsc__cuda_dev(const dsc_device_t *dev) { return (dsc_cuda_dev_t *)dev->impl; }
static inline void *dsc__cuda_stream(const dsc_device_t *dev) { return dsc__cuda_dev(dev)->stream; }

/* rc == 0: returns 0. Otherwise records DSC_ERR_DEVICE on the device's context with the CUDA
 * error's name and `what` (the kernel or call), and returns -1. */
int dsc__cuda_check(dsc_device_t *dev, int rc, const char *what);
/* At least n_bytes of device scratch (256-byte aligned); NULL with the error recorded.
 * Growing it waits for the whole device (the old buffer is freed): the context's host-read
 * check runs first, and when it reports a stuck collective the old scratch is kept and NULL
 * returned. */
void *dsc__cuda_scratch(dsc_device_t *dev, size_t n_bytes);
/* The context's host-read check (dsc__dev_host_wait_check) around a call of this device that
 * blocks the host: before a stream synchronise that is a read-back (whole_device false) or a
 * cudaFree (true), and after it; 0, or -1 when a communicator's stuck collective was
 * reported (the call must then not be made). */
int dsc__cuda_host_wait(dsc_device_t *dev, bool before, bool whole_device, const char *what);

/* The fused op entries of the backend table (cuda_fused.c; backend.h has their contracts). */
void dsc__cu_linear(struct dsc_device *dev, dsc_dtype_t dt, int64_t m, int64_t n, int64_t k, const void *x,
                    const void *w, const void *bias, void *y);
void dsc__cu_linear_gelu(struct dsc_device *dev, dsc_dtype_t dt, int64_t m, int64_t n, int64_t k, const void *x,
                         const void *w, const void *bias, void *pre, void *gelu);
void dsc__cu_linear_residual(struct dsc_device *dev, dsc_dtype_t dt, int64_t m, int64_t n, int64_t k, const void *x,
                             const void *w, const void *bias, const void *residual, void *y);
void dsc__cu_gemm_dgelu(struct dsc_device *dev, dsc_dtype_t dt, int64_t m, int64_t n, int64_t k, const void *g,
                        const void *w, const void *pre, void *dpre);

/* The kernel tables (cuda_backend.c, cuda_optim_amp.c). */
const struct dsc_backend *dsc__backend_cuda(void);
extern const struct dsc_optim_ops dsc__optim_ops_cuda;
extern const struct dsc_amp_ops dsc__amp_ops_cuda;

#endif
