/* cuDNN's fused flash attention for the CUDA device's `cudnn` variant (cuda_kernels.h has the
 * contract). Plain host code: cuDNN's backend (graph) API, which is C, reached through
 * function pointers that dsc_cuda_cudnn_create takes from dlopen("libcudnn.so.9"), so that
 * nothing links against cuDNN and a machine without it runs the default kernels.
 *
 * The graphs are the operation pattern cuDNN's fused SDPA engines recognise (the one
 * cudnn-frontend's composite SDPA nodes lower to), causal with the top-left diagonal:
 *  - forward: S = Q K^T; S *= scale; row, col = index(S, axis 2), index(S, axis 3);
 *    S = row >= col ? S : -inf; m = max_j S; E = exp(S - m); l = sum_j E;
 *    stats = m + log l (written to lse: our natural-log log-sum-exp); P = E / l (bf16/f16);
 *    O = P V;
 *  - backward: Dq = sum_d dO O (times 1, f32, a workspace tensor); S = scale Q K^T;
 *    P = exp(mask(S - stats)); dV = P^T dO; dP = dO V^T; dS = P (dP - Dq) scale; dK = dS^T Q;
 *    dQ = dS K into an f32 accumulator in the workspace, then copied (cast) to dQ.
 * Q, K, V are strided views of qkv [B,T,3C] (head h at column h*hd, K^T and V^T by swapping
 * the last two strides), O and dO of [B,T,C]: no transposes. The heuristics (mode A) list
 * engine configurations; the first that finalizes into an execution plan is kept per shape.
 * Every descriptor a plan was built from stays alive with it until dsc_cuda_cudnn_destroy. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/cuda/cuda_kernels.h"

#if defined(DSC_CUDA_EMU) || !__has_include(<cudnn_graph.h>)

#ifdef DSC_CUDA_EMU
#define CDN_ABSENT "cuDNN does not run on the CPU emulator"
#else
#define CDN_ABSENT "this build of dsc had no cudnn_graph.h (cuDNN's headers) to compile against"
#endif

extern "C" dsc_cuda_cudnn_t *dsc_cuda_cudnn_create(void *stream, char *err, size_t err_len) {
    (void)stream;
    snprintf(err, err_len, "%s", CDN_ABSENT);
    return NULL;
}
extern "C" void dsc_cuda_cudnn_destroy(dsc_cuda_cudnn_t *cd) { (void)cd; }
extern "C" const char *dsc_cuda_cudnn_message(const dsc_cuda_cudnn_t *cd) { return (void)cd, CDN_ABSENT; }
extern "C" size_t dsc_cuda_cudnn_version(const dsc_cuda_cudnn_t *cd) { return (void)cd, 0; }
extern "C" int dsc_cuda_cudnn_attention_prepare(dsc_cuda_cudnn_t *cd, bool backward, dsc_dtype_t dt, int64_t B,
                                                int64_t T, int64_t C, int64_t H, size_t *ws_bytes) {
    (void)cd, (void)backward, (void)dt, (void)B, (void)T, (void)C, (void)H, (void)ws_bytes;
    return 1;
}
extern "C" int dsc_cuda_cudnn_attention(dsc_cuda_cudnn_t *cd, dsc_dtype_t dt, int64_t B, int64_t T, int64_t C,
                                        int64_t H, const void *qkv, void *out, void *lse, void *ws, size_t ws_bytes) {
    (void)cd, (void)dt, (void)B, (void)T, (void)C, (void)H, (void)qkv, (void)out, (void)lse, (void)ws, (void)ws_bytes;
    return 1;
}
extern "C" int dsc_cuda_cudnn_attention_backward(dsc_cuda_cudnn_t *cd, dsc_dtype_t dt, int64_t B, int64_t T,
                                                 int64_t C, int64_t H, const void *qkv, const void *out,
                                                 const void *lse, const void *dout, void *dqkv, void *ws,
                                                 size_t ws_bytes) {
    (void)cd, (void)dt, (void)B, (void)T, (void)C, (void)H, (void)qkv, (void)out, (void)lse, (void)dout, (void)dqkv;
    (void)ws, (void)ws_bytes;
    return 1;
}

#else

#include <cudnn_graph.h>
#include <dlfcn.h>

/* The cuDNN entry points used, as loaded. */
struct cdn_api {
    void *lib;
    decltype(&::cudnnGetVersion) get_version;
    decltype(&::cudnnGetErrorString) error_string;
    decltype(&::cudnnGetLastErrorString) last_error;
    decltype(&::cudnnCreate) create;
    decltype(&::cudnnDestroy) destroy;
    decltype(&::cudnnSetStream) set_stream;
    decltype(&::cudnnBackendCreateDescriptor) desc_create;
    decltype(&::cudnnBackendDestroyDescriptor) desc_destroy;
    decltype(&::cudnnBackendSetAttribute) set_attr;
    decltype(&::cudnnBackendGetAttribute) get_attr;
    decltype(&::cudnnBackendFinalize) finalize;
    decltype(&::cudnnBackendExecute) execute;
};

/* Unique ids of the tensors a variant pack binds (the virtual ones count up from VIRT). */
enum {
    U_Q = 1, U_K, U_V, U_O, U_STATS, U_SCALE, U_NEG_INF, U_ONE, U_DO, U_DQ, U_DK, U_DV, U_DQ_SUM, U_DQ_ACC,
    U_VIRT = 100
};

#define CDN_MAX_DESCS 128
#define CDN_MAX_OPS 40
#define CDN_MAX_PLANS 16

/* One shape's plan: the key, the plan and every descriptor it was made from, its workspace,
 * the by-value scalars its variant pack points at. ok: 1 built, -1 refused (reason kept). */
struct cdn_plan {
    int backward, dt;
    int64_t B, T, C, H;
    int ok;
    cudnnBackendDescriptor_t plan;
    cudnnBackendDescriptor_t descs[CDN_MAX_DESCS];
    int n_descs;
    size_t plan_ws, ws_bytes; /* cuDNN's workspace; all of it with our f32 tensors */
    float scale, neg_inf, one;
    char why[320];
};

struct dsc_cuda_cudnn {
    struct cdn_api api;
    cudnnHandle_t handle;
    size_t version;
    struct cdn_plan plans[CDN_MAX_PLANS];
    int n_plans;
    char message[384];
};

/* ---- building a graph: the first failure sticks and later calls do nothing ---------------- */

struct cdn_graph {
    const struct cdn_api *a;
    struct cdn_plan *p; /* descriptors are recorded in the plan (destroyed with it) */
    cudnnBackendDescriptor_t ops[CDN_MAX_OPS];
    int n_ops;
    int64_t next_uid;
    cudnnStatus_t st;
    char where[96];
};

static void g_fail(cdn_graph *g, cudnnStatus_t st, const char *where) {
    if (g->st != CUDNN_STATUS_SUCCESS) return;
    g->st = st;
    snprintf(g->where, sizeof g->where, "%s", where);
}

static cudnnBackendDescriptor_t g_desc(cdn_graph *g, cudnnBackendDescriptorType_t type) {
    if (g->st != CUDNN_STATUS_SUCCESS) return NULL;
    if (g->p->n_descs == CDN_MAX_DESCS) {
        g_fail(g, CUDNN_STATUS_INTERNAL_ERROR, "too many descriptors");
        return NULL;
    }
    cudnnBackendDescriptor_t d = NULL;
    const cudnnStatus_t st = g->a->desc_create(type, &d);
    if (st != CUDNN_STATUS_SUCCESS) {
        g_fail(g, st, "creating a descriptor");
        return NULL;
    }
    g->p->descs[g->p->n_descs++] = d;
    return d;
}

static void g_set(cdn_graph *g, cudnnBackendDescriptor_t d, int attr, cudnnBackendAttributeType_t type,
                  int64_t n, const void *v, const char *what) {
    if (g->st != CUDNN_STATUS_SUCCESS || !d) return;
    const cudnnStatus_t st = g->a->set_attr(d, (cudnnBackendAttributeName_t)attr, type, n, v);
    if (st != CUDNN_STATUS_SUCCESS) g_fail(g, st, what);
}

static void g_finalize(cdn_graph *g, cudnnBackendDescriptor_t d, const char *what) {
    if (g->st != CUDNN_STATUS_SUCCESS || !d) return;
    const cudnnStatus_t st = g->a->finalize(d);
    if (st != CUDNN_STATUS_SUCCESS) g_fail(g, st, what);
}

/* A rank-4 tensor; uid 0: a virtual one with the next free id. */
static cudnnBackendDescriptor_t g_tensor(cdn_graph *g, int64_t uid, cudnnDataType_t dt, const int64_t dims[4],
                                         const int64_t strides[4], bool by_value = false) {
    cudnnBackendDescriptor_t t = g_desc(g, CUDNN_BACKEND_TENSOR_DESCRIPTOR);
    const bool is_virtual = uid == 0;
    if (is_virtual) uid = g->next_uid++;
    const int64_t align = 16;
    g_set(g, t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &dt, "tensor type");
    g_set(g, t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims, "tensor dims");
    g_set(g, t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides, "tensor strides");
    g_set(g, t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid, "tensor id");
    g_set(g, t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align, "tensor alignment");
    g_set(g, t, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &is_virtual, "tensor virtual");
    if (by_value) g_set(g, t, CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &by_value, "tensor by value");
    g_finalize(g, t, "a tensor");
    return t;
}

static void g_op(cdn_graph *g, cudnnBackendDescriptor_t op) {
    if (g->st != CUDNN_STATUS_SUCCESS || !op) return;
    if (g->n_ops == CDN_MAX_OPS) return g_fail(g, CUDNN_STATUS_INTERNAL_ERROR, "too many operations");
    g->ops[g->n_ops++] = op;
}

/* y = mode(x, b, t) (b, t optional); axis for GEN_INDEX; prec: the math precision. */
static void g_pointwise(cdn_graph *g, cudnnPointwiseMode_t mode, cudnnDataType_t prec, cudnnBackendDescriptor_t x,
                        cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t t, cudnnBackendDescriptor_t y,
                        int64_t axis = -1) {
    cudnnBackendDescriptor_t pw = g_desc(g, CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
    g_set(g, pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode, "pointwise mode");
    g_set(g, pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &prec, "pointwise precision");
    if (mode == CUDNN_POINTWISE_GEN_INDEX)
        g_set(g, pw, CUDNN_ATTR_POINTWISE_AXIS, CUDNN_TYPE_INT64, 1, &axis, "pointwise axis");
    g_finalize(g, pw, "a pointwise descriptor");
    cudnnBackendDescriptor_t op = g_desc(g, CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR);
    const float one = 1.0f;
    g_set(g, op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &pw, "pw desc");
    g_set(g, op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x, "pw x");
    if (b) g_set(g, op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b, "pw b");
    if (t) g_set(g, op, CUDNN_ATTR_OPERATION_POINTWISE_TDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &t, "pw t");
    g_set(g, op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y, "pw y");
    g_set(g, op, CUDNN_ATTR_OPERATION_POINTWISE_ALPHA1, CUDNN_TYPE_FLOAT, 1, &one, "pw alpha1");
    g_set(g, op, CUDNN_ATTR_OPERATION_POINTWISE_ALPHA2, CUDNN_TYPE_FLOAT, 1, &one, "pw alpha2");
    g_finalize(g, op, "a pointwise operation");
    g_op(g, op);
}

/* c = a b (batched over the first two dims), f32 accumulation. */
static void g_matmul(cdn_graph *g, cudnnBackendDescriptor_t a, cudnnBackendDescriptor_t b,
                     cudnnBackendDescriptor_t c) {
    const cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
    cudnnBackendDescriptor_t mm = g_desc(g, CUDNN_BACKEND_MATMUL_DESCRIPTOR);
    g_set(g, mm, CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f32, "matmul compute type");
    g_finalize(g, mm, "a matmul descriptor");
    cudnnBackendDescriptor_t op = g_desc(g, CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR);
    g_set(g, op, CUDNN_ATTR_OPERATION_MATMUL_ADESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &a, "matmul a");
    g_set(g, op, CUDNN_ATTR_OPERATION_MATMUL_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b, "matmul b");
    g_set(g, op, CUDNN_ATTR_OPERATION_MATMUL_CDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &c, "matmul c");
    g_set(g, op, CUDNN_ATTR_OPERATION_MATMUL_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &mm, "matmul desc");
    g_finalize(g, op, "a matmul operation");
    g_op(g, op);
}

/* y = reduce(x) over the dims where y has extent 1. */
static void g_reduce(cdn_graph *g, cudnnReduceTensorOp_t how, cudnnBackendDescriptor_t x,
                     cudnnBackendDescriptor_t y) {
    const cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
    cudnnBackendDescriptor_t rd = g_desc(g, CUDNN_BACKEND_REDUCTION_DESCRIPTOR);
    g_set(g, rd, CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &how, "reduction operator");
    g_set(g, rd, CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f32, "reduction compute type");
    g_finalize(g, rd, "a reduction descriptor");
    cudnnBackendDescriptor_t op = g_desc(g, CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR);
    g_set(g, op, CUDNN_ATTR_OPERATION_REDUCTION_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x, "reduction x");
    g_set(g, op, CUDNN_ATTR_OPERATION_REDUCTION_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y, "reduction y");
    g_set(g, op, CUDNN_ATTR_OPERATION_REDUCTION_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &rd, "reduction desc");
    g_finalize(g, op, "a reduction operation");
    g_op(g, op);
}

/* y = x seen through other dims/strides (a transpose of a virtual tensor). */
static void g_reshape(cdn_graph *g, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y) {
    cudnnBackendDescriptor_t op = g_desc(g, CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR);
    g_set(g, op, CUDNN_ATTR_OPERATION_RESHAPE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x, "reshape x");
    g_set(g, op, CUDNN_ATTR_OPERATION_RESHAPE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y, "reshape y");
    g_finalize(g, op, "a reshape operation");
    g_op(g, op);
}

/* ---- the two graphs ------------------------------------------------------------------------ */

/* Shapes of one call: Q, K, V as [B,H,T,hd] views of qkv; their transposes; O/dO; scores. */
struct cdn_shapes {
    int64_t qkv[4], qkv_st[4], t[4], t_st[4], o[4], o_st[4], s[4], s_st[4], st_t[4], row[4], row_st[4];
    int64_t acc_st[4], one[4];
};

static cdn_shapes shapes_of(int64_t B, int64_t T, int64_t C, int64_t H) {
    const int64_t d = C / H, C3 = 3 * C;
    cdn_shapes s = {{B, H, T, d}, {T * C3, d, C3, 1}, {B, H, d, T}, {T * C3, d, 1, C3},
                    {B, H, T, d}, {T * C, d, C, 1},   {B, H, T, T}, {H * T * T, T * T, T, 1},
                    {H * T * T, T * T, 1, T},         {B, H, T, 1}, {H * T, T, 1, 1},
                    {H * T * d, T * d, d, 1},         {1, 1, 1, 1}};
    return s;
}

/* scale * Q K^T (virtual f32). */
static cudnnBackendDescriptor_t g_scores(cdn_graph *g, const cdn_shapes &s, cudnnBackendDescriptor_t q,
                                         cudnnBackendDescriptor_t kt, cudnnBackendDescriptor_t scale) {
    const cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
    cudnnBackendDescriptor_t s0 = g_tensor(g, 0, f32, s.s, s.s_st);
    g_matmul(g, q, kt, s0);
    cudnnBackendDescriptor_t s1 = g_tensor(g, 0, f32, s.s, s.s_st);
    g_pointwise(g, CUDNN_POINTWISE_MUL, f32, s0, scale, NULL, s1);
    return s1;
}

/* x where row >= col, -inf elsewhere (the mask as cudnn-frontend's causal score modifier
 * writes it: two index generators, a comparison, a select). */
static cudnnBackendDescriptor_t g_causal(cdn_graph *g, const cdn_shapes &s, cudnnBackendDescriptor_t x,
                                         cudnnBackendDescriptor_t neg_inf) {
    const cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
    cudnnBackendDescriptor_t row = g_tensor(g, 0, CUDNN_DATA_INT32, s.s, s.s_st);
    g_pointwise(g, CUDNN_POINTWISE_GEN_INDEX, f32, x, NULL, NULL, row, 2);
    cudnnBackendDescriptor_t col = g_tensor(g, 0, CUDNN_DATA_INT32, s.s, s.s_st);
    g_pointwise(g, CUDNN_POINTWISE_GEN_INDEX, f32, x, NULL, NULL, col, 3);
    cudnnBackendDescriptor_t keep = g_tensor(g, 0, CUDNN_DATA_BOOLEAN, s.s, s.s_st);
    g_pointwise(g, CUDNN_POINTWISE_CMP_GE, CUDNN_DATA_BOOLEAN, row, col, NULL, keep);
    cudnnBackendDescriptor_t y = g_tensor(g, 0, f32, s.s, s.s_st);
    g_pointwise(g, CUDNN_POINTWISE_BINARY_SELECT, f32, x, neg_inf, keep, y);
    return y;
}

static void build_forward(cdn_graph *g, cudnnDataType_t io, const cdn_shapes &s) {
    const cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
    cudnnBackendDescriptor_t q = g_tensor(g, U_Q, io, s.qkv, s.qkv_st);
    cudnnBackendDescriptor_t kt = g_tensor(g, U_K, io, s.t, s.t_st);
    cudnnBackendDescriptor_t v = g_tensor(g, U_V, io, s.qkv, s.qkv_st);
    cudnnBackendDescriptor_t o = g_tensor(g, U_O, io, s.o, s.o_st);
    cudnnBackendDescriptor_t stats = g_tensor(g, U_STATS, f32, s.row, s.row_st);
    cudnnBackendDescriptor_t scale = g_tensor(g, U_SCALE, f32, s.one, s.one, true);
    cudnnBackendDescriptor_t neg_inf = g_tensor(g, U_NEG_INF, f32, s.one, s.one, true);
    cudnnBackendDescriptor_t sc = g_causal(g, s, g_scores(g, s, q, kt, scale), neg_inf);
    /* softmax with its statistics */
    cudnnBackendDescriptor_t mx = g_tensor(g, 0, f32, s.row, s.row_st);
    g_reduce(g, CUDNN_REDUCE_TENSOR_MAX, sc, mx);
    cudnnBackendDescriptor_t sub = g_tensor(g, 0, f32, s.s, s.s_st);
    g_pointwise(g, CUDNN_POINTWISE_SUB, f32, sc, mx, NULL, sub);
    cudnnBackendDescriptor_t e = g_tensor(g, 0, f32, s.s, s.s_st);
    g_pointwise(g, CUDNN_POINTWISE_EXP, f32, sub, NULL, NULL, e);
    cudnnBackendDescriptor_t sum = g_tensor(g, 0, f32, s.row, s.row_st);
    g_reduce(g, CUDNN_REDUCE_TENSOR_ADD, e, sum);
    cudnnBackendDescriptor_t lg = g_tensor(g, 0, f32, s.row, s.row_st);
    g_pointwise(g, CUDNN_POINTWISE_LOG, f32, sum, NULL, NULL, lg);
    g_pointwise(g, CUDNN_POINTWISE_ADD, f32, mx, lg, NULL, stats);
    cudnnBackendDescriptor_t p = g_tensor(g, 0, io, s.s, s.s_st); /* P in the io type for the PV product */
    g_pointwise(g, CUDNN_POINTWISE_DIV, f32, e, sum, NULL, p);
    g_matmul(g, p, v, o);
}

static void build_backward(cdn_graph *g, cudnnDataType_t io, const cdn_shapes &s) {
    const cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
    cudnnBackendDescriptor_t q = g_tensor(g, U_Q, io, s.qkv, s.qkv_st);
    cudnnBackendDescriptor_t kt = g_tensor(g, U_K, io, s.t, s.t_st);
    cudnnBackendDescriptor_t vt = g_tensor(g, U_V, io, s.t, s.t_st);
    cudnnBackendDescriptor_t o = g_tensor(g, U_O, io, s.o, s.o_st);
    cudnnBackendDescriptor_t d_o = g_tensor(g, U_DO, io, s.o, s.o_st);
    cudnnBackendDescriptor_t stats = g_tensor(g, U_STATS, f32, s.row, s.row_st);
    cudnnBackendDescriptor_t dq = g_tensor(g, U_DQ, io, s.qkv, s.qkv_st);
    cudnnBackendDescriptor_t dk = g_tensor(g, U_DK, io, s.qkv, s.qkv_st);
    cudnnBackendDescriptor_t dv = g_tensor(g, U_DV, io, s.qkv, s.qkv_st);
    cudnnBackendDescriptor_t scale = g_tensor(g, U_SCALE, f32, s.one, s.one, true);
    cudnnBackendDescriptor_t neg_inf = g_tensor(g, U_NEG_INF, f32, s.one, s.one, true);
    cudnnBackendDescriptor_t one = g_tensor(g, U_ONE, f32, s.one, s.one, true);
    /* Dq = rowsum(dO O), kept in the workspace */
    const int64_t doo_st[4] = {s.o[1] * s.o[2] * s.o[3], s.o[2] * s.o[3], s.o[1] * s.o[3], 1};
    cudnnBackendDescriptor_t doo = g_tensor(g, 0, f32, s.o, doo_st);
    g_pointwise(g, CUDNN_POINTWISE_MUL, f32, d_o, o, NULL, doo);
    cudnnBackendDescriptor_t dsum0 = g_tensor(g, 0, f32, s.row, s.row_st);
    g_reduce(g, CUDNN_REDUCE_TENSOR_ADD, doo, dsum0);
    cudnnBackendDescriptor_t dsum = g_tensor(g, U_DQ_SUM, f32, s.row, s.row_st);
    g_pointwise(g, CUDNN_POINTWISE_MUL, f32, dsum0, one, NULL, dsum);
    /* P = exp(causal(S - stats)) (the frontend's order: the mask after the subtraction); dV = P^T dO */
    cudnnBackendDescriptor_t sub = g_tensor(g, 0, f32, s.s, s.s_st);
    g_pointwise(g, CUDNN_POINTWISE_SUB, f32, g_scores(g, s, q, kt, scale), stats, NULL, sub);
    cudnnBackendDescriptor_t p = g_tensor(g, 0, f32, s.s, s.s_st);
    g_pointwise(g, CUDNN_POINTWISE_EXP, f32, g_causal(g, s, sub, neg_inf), NULL, NULL, p);
    cudnnBackendDescriptor_t pt = g_tensor(g, 0, io, s.s, s.st_t);
    g_reshape(g, p, pt);
    g_matmul(g, pt, d_o, dv);
    /* dS = P (dO V^T - Dq) scale */
    cudnnBackendDescriptor_t dp = g_tensor(g, 0, f32, s.s, s.s_st);
    g_matmul(g, d_o, vt, dp);
    cudnnBackendDescriptor_t dp2 = g_tensor(g, 0, f32, s.s, s.s_st);
    g_pointwise(g, CUDNN_POINTWISE_SUB, f32, dp, dsum, NULL, dp2);
    cudnnBackendDescriptor_t ds0 = g_tensor(g, 0, f32, s.s, s.s_st);
    g_pointwise(g, CUDNN_POINTWISE_MUL, f32, dp2, p, NULL, ds0);
    cudnnBackendDescriptor_t ds = g_tensor(g, 0, f32, s.s, s.s_st);
    g_pointwise(g, CUDNN_POINTWISE_MUL, f32, ds0, scale, NULL, ds);
    /* dK = dS^T Q */
    cudnnBackendDescriptor_t dst = g_tensor(g, 0, io, s.s, s.st_t);
    g_reshape(g, ds, dst);
    g_matmul(g, dst, q, dk);
    /* dQ = dS K, accumulated in f32 in the workspace, then cast */
    cudnnBackendDescriptor_t k = g_tensor(g, 0, io, s.qkv, s.qkv_st);
    g_reshape(g, kt, k);
    cudnnBackendDescriptor_t acc = g_tensor(g, U_DQ_ACC, f32, s.qkv, s.acc_st);
    g_matmul(g, ds, k, acc);
    g_pointwise(g, CUDNN_POINTWISE_IDENTITY, f32, acc, NULL, NULL, dq);
}

/* ---- plans --------------------------------------------------------------------------------- */

static void plan_release(const cdn_api *a, cdn_plan *p) {
    for (int k = p->n_descs - 1; k >= 0; k--) a->desc_destroy(p->descs[k]);
    p->n_descs = 0;
    p->plan = NULL;
}

static size_t align256(size_t n) { return (n + 255) / 256 * 256; }

/* The f32 tensors the backward graph keeps in the workspace, after cuDNN's own part. */
static size_t dq_sum_bytes(const cdn_plan *p) { return align256((size_t)(p->B * p->H * p->T) * 4); }

/* Builds p's graph and plan; on failure p->ok = -1 with the reason in p->why. */
static void plan_build(dsc_cuda_cudnn_t *cd, cdn_plan *p) {
    const cdn_api *a = &cd->api;
    cdn_graph g;
    memset(&g, 0, sizeof g);
    g.a = a, g.p = p, g.next_uid = U_VIRT;
    const cudnnDataType_t io = p->dt == DSC_BF16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_HALF;
    const cdn_shapes s = shapes_of(p->B, p->T, p->C, p->H);
    if (p->backward) build_backward(&g, io, s);
    else build_forward(&g, io, s);
    cudnnBackendDescriptor_t og = g_desc(&g, CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
    g_set(&g, og, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, g.n_ops, g.ops, "graph ops");
    g_set(&g, og, 800 /* CUDNN_ATTR_OPERATIONGRAPH_HANDLE */, CUDNN_TYPE_HANDLE, 1, &cd->handle, "graph handle");
    g_finalize(&g, og, "the operation graph");
    cudnnBackendDescriptor_t heur = g_desc(&g, CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
    const cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
    g_set(&g, heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &og, "heur graph");
    g_set(&g, heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode, "heur mode");
    g_finalize(&g, heur, "the heuristics");
    int64_t n_cfg = 0;
    if (g.st == CUDNN_STATUS_SUCCESS) {
        const cudnnStatus_t st = a->get_attr(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0,
                                             &n_cfg, NULL);
        if (st != CUDNN_STATUS_SUCCESS) g_fail(&g, st, "counting the heuristics' results");
    }
    if (g.st == CUDNN_STATUS_SUCCESS && n_cfg == 0) g_fail(&g, CUDNN_STATUS_NOT_SUPPORTED, "the heuristics (no engine)");
    if (n_cfg > 8) n_cfg = 8;
    cudnnBackendDescriptor_t cfgs[8];
    for (int64_t k = 0; k < n_cfg; k++) cfgs[k] = g_desc(&g, CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
    int64_t got = 0;
    if (g.st == CUDNN_STATUS_SUCCESS) {
        const cudnnStatus_t st = a->get_attr(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                                             n_cfg, &got, cfgs);
        if (st != CUDNN_STATUS_SUCCESS) g_fail(&g, st, "reading the heuristics' results");
    }
    /* the first configuration that finalizes into a plan */
    cudnnStatus_t last = CUDNN_STATUS_NOT_SUPPORTED;
    for (int64_t k = 0; g.st == CUDNN_STATUS_SUCCESS && k < got && !p->plan; k++) {
        cudnnBackendDescriptor_t plan = g_desc(&g, CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
        if (!plan) break;
        last = a->set_attr(plan, (cudnnBackendAttributeName_t)400 /* CUDNN_ATTR_EXECUTION_PLAN_HANDLE */,
                           CUDNN_TYPE_HANDLE, 1, &cd->handle);
        if (last == CUDNN_STATUS_SUCCESS)
            last = a->set_attr(plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                               &cfgs[k]);
        if (last == CUDNN_STATUS_SUCCESS) last = a->finalize(plan);
        if (last == CUDNN_STATUS_SUCCESS) p->plan = plan;
    }
    if (g.st == CUDNN_STATUS_SUCCESS && !p->plan) g_fail(&g, last, "finalizing an execution plan (every engine)");
    int64_t ws = 0, n_ws = 0;
    if (g.st == CUDNN_STATUS_SUCCESS) {
        const cudnnStatus_t st =
                a->get_attr(p->plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &n_ws, &ws);
        if (st != CUDNN_STATUS_SUCCESS) g_fail(&g, st, "the plan's workspace size");
    }
    if (g.st != CUDNN_STATUS_SUCCESS) {
        char detail[256] = "";
        if (a->last_error) a->last_error(detail, sizeof detail);
        for (char *c = detail; *c; c++)
            if (*c == '\n') *c = ' ';
        snprintf(p->why, sizeof p->why, "cuDNN %zu refused the %s graph B%lld T%lld C%lld H%lld at %s: %s%s%s",
                 cd->version, p->backward ? "backward" : "forward", (long long)p->B, (long long)p->T,
                 (long long)p->C, (long long)p->H, g.where, a->error_string(g.st), detail[0] ? "; " : "", detail);
        plan_release(a, p);
        p->ok = -1;
        return;
    }
    p->plan_ws = align256((size_t)ws);
    p->ws_bytes = p->plan_ws;
    if (p->backward) p->ws_bytes += dq_sum_bytes(p) + align256((size_t)(p->B * p->T * p->C) * 4);
    p->scale = (float)(1.0 / sqrt((double)(p->C / p->H)));
    p->neg_inf = -INFINITY;
    p->one = 1.0f;
    p->ok = 1;
}

static bool args_ok(dsc_dtype_t dt, int64_t B, int64_t T, int64_t C, int64_t H) {
    if (dt != DSC_BF16 && dt != DSC_F16) return false;
    if (B <= 0 || T <= 0 || H <= 0 || C % H) return false;
    const int64_t hd = C / H;
    return hd % 8 == 0 && hd <= 128;
}

static cdn_plan *plan_get(dsc_cuda_cudnn_t *cd, bool backward, dsc_dtype_t dt, int64_t B, int64_t T, int64_t C,
                          int64_t H) {
    for (int k = 0; k < cd->n_plans; k++) {
        cdn_plan *p = &cd->plans[k];
        if (p->backward == (int)backward && p->dt == (int)dt && p->B == B && p->T == T && p->C == C && p->H == H)
            return p;
    }
    /* a full cache drops its oldest plan (a shape that recurs is rebuilt) */
    if (cd->n_plans == CDN_MAX_PLANS) {
        plan_release(&cd->api, &cd->plans[0]);
        memmove(&cd->plans[0], &cd->plans[1], sizeof cd->plans[0] * (CDN_MAX_PLANS - 1));
        cd->n_plans--;
    }
    cdn_plan *p = &cd->plans[cd->n_plans++];
    memset(p, 0, sizeof *p);
    p->backward = backward, p->dt = (int)dt, p->B = B, p->T = T, p->C = C, p->H = H;
    plan_build(cd, p);
    return p;
}

static int cdn_code(cudnnStatus_t st) { return st == CUDNN_STATUS_SUCCESS ? 0 : 2000 + (int)st; }

/* Runs plan p with the (uid, pointer) pairs given. */
static int plan_run(dsc_cuda_cudnn_t *cd, cdn_plan *p, int n, const int64_t *uids, void *const *ptrs, void *ws) {
    const cdn_api *a = &cd->api;
    cudnnBackendDescriptor_t vp = NULL;
    cudnnStatus_t st = a->desc_create(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &vp);
    if (st == CUDNN_STATUS_SUCCESS)
        st = a->set_attr(vp, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n, uids);
    if (st == CUDNN_STATUS_SUCCESS)
        st = a->set_attr(vp, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, n, ptrs);
    if (st == CUDNN_STATUS_SUCCESS) st = a->set_attr(vp, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &ws);
    if (st == CUDNN_STATUS_SUCCESS) st = a->finalize(vp);
    if (st == CUDNN_STATUS_SUCCESS) st = a->execute(cd->handle, p->plan, vp);
    if (vp) a->desc_destroy(vp);
    if (st != CUDNN_STATUS_SUCCESS) {
        char detail[256] = "";
        if (a->last_error) a->last_error(detail, sizeof detail);
        snprintf(cd->message, sizeof cd->message, "cuDNN %s of B%lld T%lld C%lld H%lld failed: %s %s",
                 p->backward ? "backward" : "forward", (long long)p->B, (long long)p->T, (long long)p->C,
                 (long long)p->H, a->error_string(st), detail);
    }
    return cdn_code(st);
}

/* ---- the entries ----------------------------------------------------------------------------- */

extern "C" dsc_cuda_cudnn_t *dsc_cuda_cudnn_create(void *stream, char *err, size_t err_len) {
    const char *name = "libcudnn.so.9";
    void *lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        const char *e = dlerror();
        snprintf(err, err_len, "cuDNN 9 is not installed where the loader looks (dlopen %s: %s)", name,
                 e ? e : "not found");
        return NULL;
    }
    dsc_cuda_cudnn_t *cd = (dsc_cuda_cudnn_t *)calloc(1, sizeof *cd);
    if (!cd) {
        dlclose(lib);
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    cdn_api *a = &cd->api;
    a->lib = lib;
    struct {
        void **slot;
        const char *sym;
    } syms[] = {{(void **)&a->get_version, "cudnnGetVersion"},
                {(void **)&a->error_string, "cudnnGetErrorString"},
                {(void **)&a->last_error, "cudnnGetLastErrorString"},
                {(void **)&a->create, "cudnnCreate"},
                {(void **)&a->destroy, "cudnnDestroy"},
                {(void **)&a->set_stream, "cudnnSetStream"},
                {(void **)&a->desc_create, "cudnnBackendCreateDescriptor"},
                {(void **)&a->desc_destroy, "cudnnBackendDestroyDescriptor"},
                {(void **)&a->set_attr, "cudnnBackendSetAttribute"},
                {(void **)&a->get_attr, "cudnnBackendGetAttribute"},
                {(void **)&a->finalize, "cudnnBackendFinalize"},
                {(void **)&a->execute, "cudnnBackendExecute"}};
    for (size_t k = 0; k < sizeof syms / sizeof syms[0]; k++) {
        *syms[k].slot = dlsym(lib, syms[k].sym);
        if (!*syms[k].slot) {
            snprintf(err, err_len, "%s has no %s (cuDNN 9 needed)", name, syms[k].sym);
            dlclose(lib);
            free(cd);
            return NULL;
        }
    }
    cd->version = a->get_version();
    cudnnStatus_t st = cd->version >= 90000 ? a->create(&cd->handle) : CUDNN_STATUS_VERSION_MISMATCH;
    if (st == CUDNN_STATUS_SUCCESS) st = a->set_stream(cd->handle, (cudaStream_t)stream);
    if (st != CUDNN_STATUS_SUCCESS) {
        snprintf(err, err_len, "cuDNN %zu: making a handle failed: %s", cd->version, a->error_string(st));
        if (cd->handle) a->destroy(cd->handle);
        free(cd); /* the library stays loaded (see dsc_cuda_cudnn_destroy) */
        return NULL;
    }
    return cd;
}

extern "C" void dsc_cuda_cudnn_destroy(dsc_cuda_cudnn_t *cd) {
    if (!cd) return;
    for (int k = 0; k < cd->n_plans; k++) plan_release(&cd->api, &cd->plans[k]);
    if (cd->handle) cd->api.destroy(cd->handle);
    /* The library is not dlclose'd: cuDNN loads its own sub-libraries (graph, engines, NVRTC)
     * and keeps per-thread state, and does not document unloading while the process's CUDA
     * context lives; the loader's reference keeps one copy per process, and a later
     * dsc_cuda_cudnn_create gets the same one back. */
    free(cd);
}

extern "C" const char *dsc_cuda_cudnn_message(const dsc_cuda_cudnn_t *cd) { return cd ? cd->message : ""; }

extern "C" size_t dsc_cuda_cudnn_version(const dsc_cuda_cudnn_t *cd) { return cd ? cd->version : 0; }

extern "C" int dsc_cuda_cudnn_attention_prepare(dsc_cuda_cudnn_t *cd, bool backward, dsc_dtype_t dt, int64_t B,
                                                int64_t T, int64_t C, int64_t H, size_t *ws_bytes) {
    if (!cd || !ws_bytes) return 1;
    if (!args_ok(dt, B, T, C, H)) {
        snprintf(cd->message, sizeof cd->message,
                 "cuDNN attention takes bf16/f16 with a head size that is a multiple of 8 up to 128 "
                 "(got %s, C %lld, H %lld)",
                 dsc_dtype_name(dt), (long long)C, (long long)H);
        return 1;
    }
    cdn_plan *p = plan_get(cd, backward, dt, B, T, C, H);
    if (p->ok != 1) {
        snprintf(cd->message, sizeof cd->message, "%s", p->why);
        return 2000 + (int)CUDNN_STATUS_NOT_SUPPORTED;
    }
    *ws_bytes = p->ws_bytes;
    return 0;
}

static bool aligned16(const void *p) { return (uintptr_t)p % 16 == 0; }

extern "C" int dsc_cuda_cudnn_attention(dsc_cuda_cudnn_t *cd, dsc_dtype_t dt, int64_t B, int64_t T, int64_t C,
                                        int64_t H, const void *qkv, void *out, void *lse, void *ws, size_t ws_bytes) {
    size_t need = 0;
    if (int rc = dsc_cuda_cudnn_attention_prepare(cd, false, dt, B, T, C, H, &need)) return rc;
    if (ws_bytes < need || (need && !ws) || !aligned16(qkv) || !aligned16(out) || !aligned16(lse)) return 1;
    cdn_plan *p = plan_get(cd, false, dt, B, T, C, H);
    const size_t es = dsc_dtype_size(dt);
    const int64_t uids[] = {U_Q, U_K, U_V, U_O, U_STATS, U_SCALE, U_NEG_INF};
    void *const ptrs[] = {(void *)qkv, (char *)qkv + C * es, (char *)qkv + 2 * C * es, out, lse, &p->scale,
                          &p->neg_inf};
    return plan_run(cd, p, 7, uids, ptrs, ws);
}

extern "C" int dsc_cuda_cudnn_attention_backward(dsc_cuda_cudnn_t *cd, dsc_dtype_t dt, int64_t B, int64_t T,
                                                 int64_t C, int64_t H, const void *qkv, const void *out,
                                                 const void *lse, const void *dout, void *dqkv, void *ws,
                                                 size_t ws_bytes) {
    size_t need = 0;
    if (int rc = dsc_cuda_cudnn_attention_prepare(cd, true, dt, B, T, C, H, &need)) return rc;
    if (ws_bytes < need || !ws || !aligned16(qkv) || !aligned16(out) || !aligned16(lse) || !aligned16(dout) ||
        !aligned16(dqkv))
        return 1;
    cdn_plan *p = plan_get(cd, true, dt, B, T, C, H);
    const size_t es = dsc_dtype_size(dt);
    char *w = (char *)ws;
    const int64_t uids[] = {U_Q,  U_K,  U_V,  U_O,     U_STATS,   U_DO,     U_DQ,
                            U_DK, U_DV, U_SCALE, U_NEG_INF, U_ONE, U_DQ_SUM, U_DQ_ACC};
    void *const ptrs[] = {(void *)qkv,
                          (char *)qkv + C * es,
                          (char *)qkv + 2 * C * es,
                          (void *)out,
                          (void *)lse,
                          (void *)dout,
                          dqkv,
                          (char *)dqkv + C * es,
                          (char *)dqkv + 2 * C * es,
                          &p->scale,
                          &p->neg_inf,
                          &p->one,
                          w + p->plan_ws,
                          w + p->plan_ws + dq_sum_bytes(p)};
    return plan_run(cd, p, 14, uids, ptrs, ws);
}

#endif
