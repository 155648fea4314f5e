/* Embedding lookup and its backward on CUDA.
 *
 * Backward, dtable[ids[i], :] += dout[i, :], with a workspace (dsc_cuda_embedding_backward_ws):
 *  1. the positions 0..n-1 are sorted by id (a stable LSD radix sort, 8 bits a pass, no
 *     atomics: a block ranks equal digits by counting them in shared memory), which gives
 *     every id's positions in increasing order, each id one segment of the sorted list;
 *  2. the sorted list is cut into windows of 32 entries (a warp each, per tile of columns);
 *     a piece is the part of a segment inside one window. A warp sums each of its pieces'
 *     rows in position order in f32 (double for f64), starting from dtable's row for a
 *     segment's first piece and from 0 for the others; a segment of one piece is stored
 *     (rounded once) at once, the pieces of longer segments go to the workspace;
 *  3. the warp of a long segment's last window adds its pieces in window order and stores
 *     the row, rounded once.
 * So an id that falls inside one window (most of GPT-2's 65,536 tokens: it has about 15,000
 * distinct ones) is summed exactly as the CPU does (dtable + rows in position order, one
 * rounding: the 16-bit CPU kernels' order, and the f32 one's); a longer one in fixed groups
 * of consecutive positions. The order depends only on the ids: the same bits run after run.
 *
 * Why: the one-pass kernel (each thread a column of a vocabulary range, walking all ids) took
 * 2.16 ms per call on an H100 at GPT-2 d12 B 64 (65,536 ids, 768 columns), 35 ms of an
 * optimizer step; sorted, the work is one read of dout and of the touched rows. */
#include "ops/cuda/cuda_common.cuh"

/* ---- forward and the workspace-less backward -------------------------------------------- */

template <typename T>
__global__ void k_embedding(int64_t n_ids, int64_t n_cols, const int32_t *ids, const T *table, T *out) {
    DSC_GRID_STRIDE(i, n_ids * n_cols) {
        const int64_t r = i / n_cols, j = i % n_cols;
        out[i] = table[(int64_t)ids[r] * n_cols + j];
    }
}
/* blockIdx.y picks a vocabulary range, blockIdx.x a column block; each thread walks every id
 * in order and adds the rows whose id falls in its range (rounding after each row): no
 * workspace, no atomics, slow (kept for callers without a workspace). */
#define EMB_RANGES 64
template <typename T>
__global__ void k_embedding_backward(int64_t n_ids, int64_t n_cols, int64_t v_per, const int32_t *ids, const T *dout,
                                     T *dtable) {
    const int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const int64_t v0 = (int64_t)blockIdx.y * v_per, v1 = v0 + v_per;
    if (j >= n_cols) return;
    for (int64_t i = 0; i < n_ids; i++) {
        const int64_t id = ids[i];
        if (id < v0 || id >= v1) continue;
        const int64_t d = id * n_cols + j;
        st(dtable, d, ld(dtable, d) + ld(dout, i * n_cols + j));
    }
}
template <typename T> static int embedding_t(cudaStream_t s, int64_t n_ids, int64_t n_cols, int64_t n_vocab, const int32_t *ids, const void *src, void *dst) {
    if (n_vocab < 0) {
        DSC_LAUNCH_FLAT(dsc_grid(n_ids * n_cols, 256), 256, s, k_embedding<T>)(n_ids, n_cols, ids, (const T *)src, (T *)dst);
    } else {
        const int64_t ranges = n_vocab < EMB_RANGES ? (n_vocab > 0 ? n_vocab : 1) : EMB_RANGES;
        const int64_t v_per = (n_vocab + ranges - 1) / ranges;
        dim3 grid((unsigned)((n_cols + 127) / 128), (unsigned)ranges);
        DSC_LAUNCH_FLAT(grid, 128, s, k_embedding_backward<T>)(n_ids, n_cols, v_per, ids, (const T *)src, (T *)dst);
    }
    DSC_CUDA_LAUNCHED();
}
extern "C" int dsc_cuda_embedding(void *stream, dsc_dtype_t dt, int64_t n_ids, int64_t n_cols, const int32_t *ids,
                                  const void *table, void *out) {
    if (n_ids <= 0 || n_cols <= 0) return 0;
    return DSC_DISPATCH(dt, embedding_t, DSC_STREAM(stream), n_ids, n_cols, -1, ids, table, out);
}
extern "C" int dsc_cuda_embedding_backward(void *stream, dsc_dtype_t dt, int64_t n_ids, int64_t n_cols,
                                           int64_t n_vocab, const int32_t *ids, const void *dout, void *dtable) {
    if (n_ids <= 0 || n_cols <= 0 || n_vocab <= 0) return 0;
    return DSC_DISPATCH(dt, embedding_t, DSC_STREAM(stream), n_ids, n_cols, n_vocab, ids, dout, dtable);
}

/* ---- 1. the stable radix sort of the positions by id ------------------------------------- */

#define RS_THREADS 256 /* one digit per thread */
#define RS_TILE 512    /* positions per block: two rounds of RS_THREADS */
#define EMB_WIN DSC_CUDA_EMB_WINDOW

/* counts[d * n_blocks + b] = how many keys of block b's tile have digit d. Each round the
 * block's digits go to shared memory and thread t counts the ones equal to t. */
__global__ void __launch_bounds__(RS_THREADS) k_rs_count(int64_t n, const uint32_t *keys, int shift, int32_t *counts) {
    __shared__ int sd[RS_THREADS];
    const int t = threadIdx.x;
    const int64_t b = blockIdx.x, lo = b * RS_TILE, hi = lo + RS_TILE < n ? lo + RS_TILE : n;
    int mine = 0;
    for (int64_t base = lo; base < hi; base += RS_THREADS) {
        const int64_t e = base + t;
        __syncthreads(); /* the previous round's readers are done */
        sd[t] = e < hi ? (int)((keys[e] >> shift) & 255u) : -1;
        __syncthreads();
        for (int j = 0; j < RS_THREADS; j++) mine += sd[j] == t;
    }
    counts[(int64_t)t * gridDim.x + b] = mine;
}

/* In place exclusive prefix sum of m ints, one block of 1024 threads: thread t its share in
 * order, the shares' totals scanned through the warps. */
__global__ void __launch_bounds__(1024) k_rs_scan(int64_t m, int32_t *a) {
    __shared__ int warp_tot[32];
    const int t = threadIdx.x, lane = t & 31, warp = t >> 5;
    const int64_t per = (m + 1023) / 1024, lo = t * per < m ? t * per : m, hi = lo + per < m ? lo + per : m;
    int s = 0;
    for (int64_t i = lo; i < hi; i++) s += a[i];
    int incl = s; /* inclusive scan across the warp */
    for (int o = 1; o < 32; o <<= 1) {
        const int y = __shfl_sync(0xffffffffu, incl, lane >= o ? lane - o : lane);
        if (lane >= o) incl += y;
    }
    if (lane == 31) warp_tot[warp] = incl;
    __syncthreads();
    int before = 0;
    for (int w = 0; w < warp; w++) before += warp_tot[w];
    int run = before + incl - s;
    for (int64_t i = lo; i < hi; i++) {
        const int c = a[i];
        a[i] = run;
        run += c;
    }
}

/* Block b moves its tile's (key, position) pairs to offsets[digit * n_blocks + b] + the rank of
 * the key among the equal digits before it: stable. vals NULL: the positions are the indices. */
__global__ void __launch_bounds__(RS_THREADS) k_rs_scatter(int64_t n, const uint32_t *keys, const int32_t *vals,
                                                           int shift, const int32_t *offsets, uint32_t *keys_out,
                                                           int32_t *vals_out) {
    __shared__ int sd[RS_THREADS], base[RS_THREADS];
    const int t = threadIdx.x;
    const int64_t b = blockIdx.x, lo = b * RS_TILE, hi = lo + RS_TILE < n ? lo + RS_TILE : n;
    base[t] = offsets[(int64_t)t * gridDim.x + b];
    for (int64_t r0 = lo; r0 < hi; r0 += RS_THREADS) {
        const int64_t e = r0 + t;
        const uint32_t key = e < hi ? keys[e] : 0u;
        const int32_t val = e < hi ? (vals ? vals[e] : (int32_t)e) : 0;
        const int d = e < hi ? (int)((key >> shift) & 255u) : -1;
        __syncthreads(); /* base[] of the previous round is updated, sd[] free */
        sd[t] = d;
        __syncthreads();
        int rank = 0, cnt = 0;
        for (int j = 0; j < RS_THREADS; j++) {
            const int v = sd[j];
            rank += (j < t) & (v == d);
            cnt += v == t;
        }
        if (d >= 0) {
            const int64_t o = base[d] + rank;
            keys_out[o] = key;
            vals_out[o] = val;
        }
        __syncthreads(); /* every base[d] read */
        base[t] += cnt;
    }
}

/* ---- 2. and 3. the per-id sums over the sorted list -------------------------------------- */

/* This lane's N elements of row `row` in column tile ct: VEC one 16-byte group (group
 * ct * 32 + lane), else columns ct * 32 N + lane + 32 k, k < N. */
template <typename T, bool VEC>
__device__ static inline bool emb_cols_ok(int64_t n_cols, int64_t ct, int lane, int k) {
    constexpr int N = 16 / sizeof(T);
    if (VEC) return (ct * 32 + lane) * N < n_cols;
    return ct * 32 * N + lane + 32 * k < n_cols;
}
template <typename T, bool VEC, typename A>
__device__ static inline void emb_load(const T *row, int64_t n_cols, int64_t ct, int lane, A (&v)[16 / sizeof(T)]) {
    constexpr int N = 16 / sizeof(T);
    if (VEC) {
        const int64_t g = ct * 32 + lane;
        if (g * N < n_cols) {
            const dsc_v16<T> q = ((const dsc_v16<T> *)row)[g];
DSC_UNROLL
            for (int k = 0; k < N; k++) v[k] = ld(q.v, k);
        }
    } else {
DSC_UNROLL
        for (int k = 0; k < N; k++) {
            const int64_t j = ct * 32 * N + lane + 32 * k;
            if (j < n_cols) v[k] = ld(row, j);
        }
    }
}
template <typename T, bool VEC, typename A>
__device__ static inline void emb_store(T *row, int64_t n_cols, int64_t ct, int lane, const A (&v)[16 / sizeof(T)]) {
    constexpr int N = 16 / sizeof(T);
    if (VEC) {
        const int64_t g = ct * 32 + lane;
        if (g * N < n_cols) {
            dsc_v16<T> q;
DSC_UNROLL
            for (int k = 0; k < N; k++) st(q.v, k, v[k]);
            ((dsc_v16<T> *)row)[g] = q;
        }
    } else {
DSC_UNROLL
        for (int k = 0; k < N; k++) {
            const int64_t j = ct * 32 * N + lane + 32 * k;
            if (j < n_cols) st(row, j, v[k]);
        }
    }
}
/* A piece's partial: n_cols values of A per slot, this lane's at the same places as its data. */
template <typename T, bool VEC, typename A>
__device__ static inline void emb_part_io(A *slot, int64_t n_cols, int64_t ct, int lane, A (&v)[16 / sizeof(T)],
                                          bool write) {
    constexpr int N = 16 / sizeof(T);
DSC_UNROLL
    for (int k = 0; k < N; k++) {
        const int64_t j = VEC ? (ct * 32 + lane) * N + k : ct * 32 * N + lane + 32 * k;
        if (j < n_cols) {
            if (write) slot[j] = v[k];
            else v[k] = slot[j];
        }
    }
}

#define EMB_WARPS 8 /* warps (windows) per block */
#define EMB_DEPTH 4 /* rows loaded ahead of the adds */
#define EMB_FIN_DEPTH 8 /* window sums loaded ahead in the finish (a frequent token: ~100 windows, serial) */

/* Warp (window w, column tile ct): the pieces of window w (see the top of the file). Slots of
 * the workspace: 2w for a piece that starts the window, 2w + 1 for one that ends it (a piece
 * of a segment longer than its window does one or the other). */
template <typename T, bool VEC>
__global__ void __launch_bounds__(32 * EMB_WARPS) k_emb_pieces(int64_t n, int64_t n_cols, const uint32_t *skeys,
                                                               const int32_t *spos, const T *dout, T *dtable,
                                                               typename dsc_acc<T>::type *part) {
    typedef typename dsc_acc<T>::type A;
    constexpr int N = 16 / sizeof(T);
    const int lane = threadIdx.x & 31;
    const int64_t w = (int64_t)blockIdx.x * EMB_WARPS + (threadIdx.x >> 5), ct = blockIdx.y, i0 = w * EMB_WIN;
    if (i0 >= n) return; /* a whole warp leaves */
    const int cnt = n - i0 < EMB_WIN ? (int)(n - i0) : EMB_WIN;
    const int64_t i = i0 + lane;
    const int key = lane < cnt ? (int)skeys[i] : -1, pos = lane < cnt ? spos[i] : 0;
    /* segment starts and ends (-1: no neighbour) */
    int prev = __shfl_sync(0xffffffffu, key, lane > 0 ? lane - 1 : 0), next = __shfl_sync(0xffffffffu, key, lane < 31 ? lane + 1 : 31);
    if (lane == 0) prev = i0 > 0 ? (int)skeys[i0 - 1] : -1;
    if (lane == cnt - 1) next = i0 + cnt < n ? (int)skeys[i0 + cnt] : -1;
    const int seg_start = lane < cnt && key != prev, seg_end = lane < cnt && key != next;
    A acc[N] = {};
    bool piece_whole = false; /* the current piece started its segment */
    int piece_lane = 0;       /* the lane the current piece started at */
    for (int l0 = 0; l0 < cnt; l0 += EMB_DEPTH) {
        A rows[EMB_DEPTH][N] = {};
DSC_UNROLL
        for (int u = 0; u < EMB_DEPTH; u++) {
            const int p = __shfl_sync(0xffffffffu, pos, (l0 + u) & 31);
            if (l0 + u < cnt) emb_load<T, VEC>(dout + (int64_t)p * n_cols, n_cols, ct, lane, rows[u]);
        }
DSC_UNROLL
        for (int u = 0; u < EMB_DEPTH; u++) {
            const int l = l0 + u;
            const int kl = __shfl_sync(0xffffffffu, key, l & 31), sl = __shfl_sync(0xffffffffu, seg_start, l & 31);
            const int el = __shfl_sync(0xffffffffu, seg_end, l & 31);
            if (l >= cnt) continue;
            if (l == 0 || sl) { /* a piece starts */
                piece_whole = sl;
                piece_lane = l;
                for (int k = 0; k < N; k++) acc[k] = 0;
                if (sl) emb_load<T, VEC>(dtable + (int64_t)kl * n_cols, n_cols, ct, lane, acc);
            }
            for (int k = 0; k < N; k++)
                if (emb_cols_ok<T, VEC>(n_cols, ct, lane, k)) acc[k] += rows[u][k];
            if (l == cnt - 1 || el) { /* the piece ends */
                if (piece_whole && el) emb_store<T, VEC>(dtable + (int64_t)kl * n_cols, n_cols, ct, lane, acc);
                else emb_part_io<T, VEC>(part + (2 * w + (piece_lane == 0 ? 0 : 1)) * n_cols, n_cols, ct, lane, acc, true);
            }
        }
    }
}

/* Warp (window w, column tile ct): when window w holds the last piece of a segment that began
 * in an earlier window, adds the segment's pieces in window order and stores the row. */
template <typename T, bool VEC>
__global__ void __launch_bounds__(32 * EMB_WARPS) k_emb_finish(int64_t n, int64_t n_cols, const uint32_t *skeys,
                                                               T *dtable, const typename dsc_acc<T>::type *part) {
    typedef typename dsc_acc<T>::type A;
    constexpr int N = 16 / sizeof(T);
    const int lane = threadIdx.x & 31;
    const int64_t w = (int64_t)blockIdx.x * EMB_WARPS + (threadIdx.x >> 5), ct = blockIdx.y, i0 = w * EMB_WIN;
    if (w == 0 || i0 >= n) return;
    const uint32_t key = skeys[i0];
    if (skeys[i0 - 1] != key) return; /* window w starts a segment */
    const int64_t last = i0 + EMB_WIN < n ? i0 + EMB_WIN - 1 : n - 1;
    if (skeys[last] == key && last + 1 < n && skeys[last + 1] == key) return; /* it goes on */
    int64_t lo = 0, hi = i0; /* the segment's first entry: the first index with this key */
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        if (skeys[mid] < key) lo = mid + 1;
        else hi = mid;
    }
    const int64_t w0 = lo / EMB_WIN;
    A acc[N] = {}, more[EMB_FIN_DEPTH][N] = {};
    emb_part_io<T, VEC>((A *)part + (2 * w0 + (lo % EMB_WIN == 0 ? 0 : 1)) * n_cols, n_cols, ct, lane, acc, false);
    for (int64_t v0 = w0 + 1; v0 <= w; v0 += EMB_FIN_DEPTH) {
DSC_UNROLL
        for (int u = 0; u < EMB_FIN_DEPTH; u++)
            if (v0 + u <= w) emb_part_io<T, VEC>((A *)part + 2 * (v0 + u) * n_cols, n_cols, ct, lane, more[u], false);
DSC_UNROLL
        for (int u = 0; u < EMB_FIN_DEPTH; u++)
            if (v0 + u <= w)
                for (int k = 0; k < N; k++)
                    if (emb_cols_ok<T, VEC>(n_cols, ct, lane, k)) acc[k] += more[u][k];
    }
    emb_store<T, VEC>(dtable + (int64_t)key * n_cols, n_cols, ct, lane, acc);
}

/* ---- workspace and entry ------------------------------------------------------------------ */

static inline size_t emb_align(size_t b) { return (b + 255) & ~(size_t)255; }
static inline int64_t emb_blocks(int64_t n) { return (n + RS_TILE - 1) / RS_TILE; }
static inline int64_t emb_windows(int64_t n) { return (n + EMB_WIN - 1) / EMB_WIN; }

/* Layout: keys and positions twice (the sort's ping-pong), the digit counts, the partials. */
extern "C" size_t dsc_cuda_embedding_backward_workspace_bytes(dsc_dtype_t dt, int64_t n_ids, int64_t n_cols) {
    if (n_ids <= 0 || n_cols <= 0 || n_ids >= ((int64_t)1 << 31)) return 0;
    const size_t acc = dt == DSC_F64 ? 8 : 4, list = emb_align((size_t)n_ids * 4);
    return 4 * list + emb_align((size_t)emb_blocks(n_ids) * RS_THREADS * 4) +
           (size_t)(2 * emb_windows(n_ids)) * (size_t)n_cols * acc;
}

template <typename T>
static int emb_sorted_t(cudaStream_t s, int64_t n, int64_t n_cols, int64_t n_vocab, const int32_t *ids, const void *dout,
                        void *dtable, char *ws) {
    typedef typename dsc_acc<T>::type A;
    const size_t list = emb_align((size_t)n * 4);
    uint32_t *keys[2] = {(uint32_t *)ws, (uint32_t *)(ws + 2 * list)};
    int32_t *vals[2] = {(int32_t *)(ws + list), (int32_t *)(ws + 3 * list)};
    int32_t *counts = (int32_t *)(ws + 4 * list);
    A *part = (A *)(ws + 4 * list + emb_align((size_t)emb_blocks(n) * RS_THREADS * 4));
    int bits = 0;
    while (bits < 31 && ((int64_t)1 << bits) < n_vocab) bits++;
    const int passes = bits <= 8 ? 1 : (bits + 7) / 8;
    const unsigned nb = (unsigned)emb_blocks(n);
    for (int p = 0; p < passes; p++) {
        const uint32_t *kin = p == 0 ? (const uint32_t *)ids : keys[(p - 1) & 1];
        const int32_t *vin = p == 0 ? NULL : vals[(p - 1) & 1];
        DSC_LAUNCH(nb, RS_THREADS, s, k_rs_count)(n, kin, 8 * p, counts);
        DSC_LAUNCH(1, 1024, s, k_rs_scan)((int64_t)nb * RS_THREADS, counts);
        DSC_LAUNCH(nb, RS_THREADS, s, k_rs_scatter)(n, kin, vin, 8 * p, counts, keys[p & 1], vals[p & 1]);
    }
    const uint32_t *sk = keys[(passes - 1) & 1];
    const int32_t *sp = vals[(passes - 1) & 1];
    constexpr int64_t N = 16 / sizeof(T);
    const bool vec = n_cols % N == 0 && ((uintptr_t)dout & 15) == 0 && ((uintptr_t)dtable & 15) == 0;
    dim3 grid((unsigned)((emb_windows(n) + EMB_WARPS - 1) / EMB_WARPS), (unsigned)((n_cols + 32 * N - 1) / (32 * N)));
    if (vec) {
        DSC_LAUNCH(grid, 32 * EMB_WARPS, s, k_emb_pieces<T, true>)(n, n_cols, sk, sp, (const T *)dout, (T *)dtable, part);
        DSC_LAUNCH(grid, 32 * EMB_WARPS, s, k_emb_finish<T, true>)(n, n_cols, sk, (T *)dtable, part);
    } else {
        DSC_LAUNCH(grid, 32 * EMB_WARPS, s, k_emb_pieces<T, false>)(n, n_cols, sk, sp, (const T *)dout, (T *)dtable, part);
        DSC_LAUNCH(grid, 32 * EMB_WARPS, s, k_emb_finish<T, false>)(n, n_cols, sk, (T *)dtable, part);
    }
    DSC_CUDA_LAUNCHED();
}

extern "C" int dsc_cuda_embedding_backward_ws(void *stream, dsc_dtype_t dt, int64_t n_ids, int64_t n_cols,
                                              int64_t n_vocab, const int32_t *ids, const void *dout, void *dtable,
                                              void *ws, size_t ws_bytes) {
    if (n_ids <= 0 || n_cols <= 0 || n_vocab <= 0) return 0;
    const size_t need = dsc_cuda_embedding_backward_workspace_bytes(dt, n_ids, n_cols);
    if (!ws || need == 0 || ws_bytes < need || ((uintptr_t)ws & 15) != 0)
        return dsc_cuda_embedding_backward(stream, dt, n_ids, n_cols, n_vocab, ids, dout, dtable);
    return DSC_DISPATCH(dt, emb_sorted_t, DSC_STREAM(stream), n_ids, n_cols, n_vocab, ids, dout, dtable, (char *)ws);
}
