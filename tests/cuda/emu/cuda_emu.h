/* A small CPU emulator of the CUDA subset the kernels in this folder use, so that their
 * logic (indexing, barriers, warp shuffles, reduction orders, bit-exactness claims) runs and
 * is tested on machines without a GPU (CI): cmake/cuda.cmake builds the same .cu sources
 * with the host C++ compiler against this header (DSC_CUDA_EMU) into dsc_cuda_emu.
 *
 * Model: a launch runs its blocks one after another; the threads of a block are coroutines
 * (a register-saving stack switch, x86-64 System V) on one OS thread, switched at __syncthreads (all threads of the block) and at
 * warp shuffles (the 32 lanes of a warp exchange values, then continue). __shared__ arrays
 * become function statics: shared by the threads of the running block. Memory calls are
 * malloc/memcpy (device memory is host memory). Not emulated: timing, memory limits, the
 * GPU's own libm (host expf/logf/tanhf stand in), FMA contraction (none on the host). */
#ifndef DSC_OPS_CUDA_EMU_H
#define DSC_OPS_CUDA_EMU_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
typedef struct dsc_emu_stream *cudaStream_t;
typedef struct dsc_emu_event *cudaEvent_t;
typedef enum cudaError { cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorMemoryAllocation = 2 } cudaError_t;

#if !defined(__x86_64__)
#error "cuda_emu.h: the coroutine switch is written for x86-64"
#endif

/* dsc_emu_switch(&save_sp, next_sp): saves the callee-saved registers on this stack, stores
 * the stack pointer in save_sp, and resumes the stack next_sp (no signal-mask system call,
 * unlike swapcontext: the emulator switches millions of times). */
extern "C" void dsc_emu_switch(void **save_sp, void *next_sp);
__asm__(".text\n"
        ".weak dsc_emu_switch\n"
        ".type dsc_emu_switch,@function\n"
        "dsc_emu_switch:\n"
        "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
        "  movq %rsp, (%rdi)\n"
        "  movq %rsi, %rsp\n"
        "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
        "  ret\n"
        ".size dsc_emu_switch, .-dsc_emu_switch\n");

namespace dsc_emu {

struct thread_state {
    void *sp;
    dim3 tid;
    int linear;
    bool done;
    int phase; /* barrier generation this thread waits on (or -1) */
};

struct block_state {
    std::vector<thread_state> th;
    std::vector<char *> stacks;
    void *sched_sp;
    int cur;
    dim3 bid, bdim, gdim;
    int n_threads;
    /* __syncthreads */
    int bar_arrived, bar_gen;
    /* warp exchange slots: 8 bytes per lane */
    std::vector<uint64_t> slot;
    std::vector<int> warp_arrived, warp_gen;
    bool flat; /* a DSC_LAUNCH_FLAT launch: no barrier may be reached */
    ~block_state() {
        for (char *p : stacks) free(p);
    }
};

inline block_state &B() {
    static block_state b;
    return b;
}

inline void yield_to_sched() {
    block_state &b = B();
    dsc_emu_switch(&b.th[b.cur].sp, b.sched_sp);
}

/* Wait until every live thread of the block arrived. */
inline void flat_violation() {
    fprintf(stderr, "cuda_emu: __syncthreads or a shuffle in a DSC_LAUNCH_FLAT kernel\n");
    abort();
}

inline void syncthreads() {
    block_state &b = B();
    if (b.flat) flat_violation();
    const int gen = b.bar_gen;
    b.bar_arrived++;
    int live = 0;
    for (auto &t : b.th) live += !t.done;
    if (b.bar_arrived == live) {
        b.bar_arrived = 0;
        b.bar_gen++;
        return;
    }
    while (b.bar_gen == gen) yield_to_sched();
}

/* Wait until the 32 lanes of this thread's warp arrived. */
inline void warp_barrier(int warp) {
    block_state &b = B();
    const int gen = b.warp_gen[warp];
    b.warp_arrived[warp]++;
    int live = 0;
    for (int l = warp * 32; l < warp * 32 + 32 && l < b.n_threads; l++) live += !b.th[l].done;
    if (b.warp_arrived[warp] == live) {
        b.warp_arrived[warp] = 0;
        b.warp_gen[warp]++;
        return;
    }
    while (b.warp_gen[warp] == gen) yield_to_sched();
}

template <typename V> inline V shfl(V v, int src_lane) {
    static_assert(sizeof(V) <= 8, "shuffle of at most 8 bytes");
    block_state &b = B();
    if (b.flat) flat_violation();
    const int me = b.cur, warp = me / 32;
    uint64_t raw = 0;
    memcpy(&raw, &v, sizeof v);
    b.slot[me] = raw;
    warp_barrier(warp);
    V r;
    const uint64_t got = b.slot[warp * 32 + (src_lane & 31)];
    memcpy(&r, &got, sizeof r);
    warp_barrier(warp);
    return r;
}

typedef void (*entry_fn)(void);
inline void *&launch_payload() {
    static void *p;
    return p;
}

template <typename F> struct runner {
    static void entry() {
        F *f = (F *)launch_payload();
        (*f)();
        block_state &b = B();
        b.th[b.cur].done = true;
        /* a finished thread may complete a barrier the others wait on */
        int live = 0;
        for (auto &t : b.th) live += !t.done;
        if (b.bar_arrived > 0 && b.bar_arrived == live) {
            b.bar_arrived = 0;
            b.bar_gen++;
        }
        const int warp = b.cur / 32;
        int wlive = 0;
        for (int l = warp * 32; l < warp * 32 + 32 && l < b.n_threads; l++) wlive += !b.th[l].done;
        if (b.warp_arrived[warp] > 0 && b.warp_arrived[warp] == wlive) {
            b.warp_arrived[warp] = 0;
            b.warp_gen[warp]++;
        }
        dsc_emu_switch(&b.th[b.cur].sp, b.sched_sp); /* never resumed */
        __builtin_unreachable();
    }
};

/* A fresh stack whose first switch enters fn: six zero registers, then fn as the return
 * address, placed so that fn starts with the ABI's alignment (rsp + 8 a multiple of 16). */
inline void *prepare_stack(char *stack, size_t bytes, void (*fn)(void)) {
#if defined(__SANITIZE_ADDRESS__)
    /* a thread that ended by switching away left its frames' redzones poisoned */
    __asan_unpoison_memory_region(stack, bytes);
#endif
    uintptr_t top = ((uintptr_t)(stack + bytes)) & ~(uintptr_t)15;
    void **sp = (void **)(top - 16);
    sp[0] = (void *)fn;
    sp[1] = NULL;
    sp -= 6;
    for (int i = 0; i < 6; i++) sp[i] = NULL;
    return sp;
}

/* Runs f() for every thread of every block, as a plain loop (no barriers). */
template <typename F> inline void run_grid_flat(dim3 grid, dim3 block, F f) {
    block_state &b = B();
    const int nt = (int)(block.x * block.y * block.z);
    b.gdim = grid;
    b.bdim = block;
    b.n_threads = nt;
    b.flat = true;
    b.th.assign(nt, thread_state());
    for (int t = 0; t < nt; t++) b.th[t].tid = dim3(t % block.x, (t / block.x) % block.y, t / (block.x * block.y));
    for (unsigned bz = 0; bz < grid.z; bz++)
        for (unsigned by = 0; by < grid.y; by++)
            for (unsigned bx = 0; bx < grid.x; bx++) {
                b.bid = dim3(bx, by, bz);
                for (int t = 0; t < nt; t++) {
                    b.cur = t;
                    f();
                }
            }
    b.flat = false;
}

/* Runs f() for every thread of every block, threads as coroutines. */
template <typename F> inline void run_grid(dim3 grid, dim3 block, F f) {
    block_state &b = B();
    b.flat = false;
    const int nt = (int)(block.x * block.y * block.z);
    const size_t stack_bytes = 256 * 1024;
    while ((int)b.stacks.size() < nt) b.stacks.push_back((char *)malloc(stack_bytes));
    b.gdim = grid;
    b.bdim = block;
    b.n_threads = nt;
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdangling-pointer" /* reset below, before f goes out of scope */
#endif
    launch_payload() = &f;
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic pop
#endif
    for (unsigned bz = 0; bz < grid.z; bz++)
        for (unsigned by = 0; by < grid.y; by++)
            for (unsigned bx = 0; bx < grid.x; bx++) {
                b.bid = dim3(bx, by, bz);
                b.th.assign(nt, thread_state());
                b.slot.assign(nt + 32, 0);
                b.warp_arrived.assign(nt / 32 + 1, 0);
                b.warp_gen.assign(nt / 32 + 1, 0);
                b.bar_arrived = 0;
                b.bar_gen = 0;
                for (int t = 0; t < nt; t++) {
                    thread_state &ts = b.th[t];
                    ts.linear = t;
                    ts.tid = dim3(t % block.x, (t / block.x) % block.y, t / (block.x * block.y));
                    ts.done = false;
                    ts.sp = prepare_stack(b.stacks[t], stack_bytes, (entry_fn)runner<F>::entry);
                }
                int remaining = nt;
                while (remaining > 0) {
                    remaining = 0;
                    for (int t = 0; t < nt; t++) {
                        if (b.th[t].done) continue;
                        b.cur = t;
                        dsc_emu_switch(&b.sched_sp, b.th[t].sp);
                        remaining += !b.th[t].done;
                    }
                }
            }
    launch_payload() = nullptr;
}

template <typename... P> struct launcher {
    dim3 g, bl;
    void (*k)(P...);
    bool flat;
    template <typename... A> void operator()(A... args) const {
        void (*kk)(P...) = k;
        if (flat) run_grid_flat(g, bl, [=]() { kk(args...); });
        else run_grid(g, bl, [=]() { kk(args...); });
    }
};
template <typename... P> inline launcher<P...> make_launcher(dim3 g, dim3 b, bool flat, void (*k)(P...)) {
    return launcher<P...>{g, b, k, flat};
}

} /* namespace dsc_emu */

#define threadIdx (dsc_emu::B().th[dsc_emu::B().cur].tid)
#define blockIdx (dsc_emu::B().bid)
#define blockDim (dsc_emu::B().bdim)
#define gridDim (dsc_emu::B().gdim)
#define __syncthreads() dsc_emu::syncthreads()
template <typename V> inline V __shfl_xor_sync(unsigned, V v, int mask) {
    return dsc_emu::shfl(v, (dsc_emu::B().cur & 31) ^ mask);
}
template <typename V> inline V __shfl_sync(unsigned, V v, int src) { return dsc_emu::shfl(v, src); }

#define DSC_LAUNCH(grid, block, stream, ...) \
    ((void)(stream), dsc_emu::make_launcher(dim3(grid), dim3(block), false, __VA_ARGS__))
#define DSC_LAUNCH_FLAT(grid, block, stream, ...) \
    ((void)(stream), dsc_emu::make_launcher(dim3(grid), dim3(block), true, __VA_ARGS__))

static inline float __uint_as_float(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline uint32_t __float_as_uint(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static inline float __int_as_float(int32_t i) {
    float f;
    memcpy(&f, &i, 4);
    return f;
}
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fmul_rn(float a, float b) { return a * b; }

static inline cudaError_t cudaGetLastError(void) { return cudaSuccess; }
static inline const char *cudaGetErrorString(cudaError_t e) { return e ? "emulated error" : "no error"; }
static inline cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t) {
    memset(p, v, n);
    return cudaSuccess;
}

#endif
