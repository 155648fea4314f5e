#!/usr/bin/python3
"""Times torch.optim.Adam on the CPU on the sizes and thread counts of bench/optim_cpu.c, for
the comparison table in docs/performance.md ("CPU optimizer step").

    /usr/bin/python3 bench/compare_torch_adam.py [--sizes 16,64,256] [--threads 1,2] [--dsc build/bench/optim_cpu]

Variants: foreach=True (multi-tensor), foreach=False (single-tensor, the loop DeepSpeed's
"5-7x faster than torch Adam" claim was measured against) and fused=True when this torch
supports it on CPU (torch >= 2.4; Debian's 1.13 does not: the variant is reported as
unsupported). Parameters are fp32 tensors of 4 Mi elements each (16M = 4 tensors, 256M = 64),
the layout of the CPU anchor in shared/reference/anchor_runs.md §2; gradients are random,
weight decay 0, default hyper-parameters. Each figure is the median of several steps after one
warm-up step. Bytes per parameter: 28 (read p, g, m, v; write p, m, v), the minimum; the
multi-tensor path moves more (temporaries for sqrt(v) and the denominator).

With --dsc PATH, runs dsc's benchmark binary with the same sizes and threads afterwards and
prints the ratio of the two Adam step times (dsc's figure is AdamW with weight decay, the
same pass).
"""
import argparse
import subprocess
import sys
import time

import torch

CHUNK = 4 << 20


def make(n):
    params, grads = [], []
    left = n
    gen = torch.Generator().manual_seed(0)
    while left > 0:
        k = min(CHUNK, left)
        p = torch.nn.Parameter(torch.rand(k, generator=gen) - 0.5)
        p.grad = torch.rand(k, generator=gen) - 0.5
        params.append(p)
        left -= k
    return params


def time_variant(params, reps, **kw):
    try:
        opt = torch.optim.Adam(params, lr=1e-4, **kw)
        opt.step()  # warm-up, creates the state
    except (RuntimeError, TypeError, ValueError) as e:
        return None, str(e).split("\n")[0][:80]
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        opt.step()
        ts.append(time.perf_counter() - t0)
    del opt
    ts.sort()
    return ts[len(ts) // 2], None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="16,64,256", help="sizes in Mi parameters")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--dsc", default=None, help="path of dsc's bench/optim_cpu binary")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    threads = [int(t) for t in args.threads.split(",")]
    print("torch %s, CPU Adam step, fp32, tensors of 4 Mi elements, 28 B/param" % torch.__version__)
    print("%7s %3s | %-14s %9s %9s %8s" % ("params", "thr", "variant", "ms/step", "Gparam/s", "GB/s"))
    results = {}
    for sm in sizes:
        n = sm << 20
        reps = 5 if sm <= 64 else 3
        params = make(n)
        for nt in threads:
            torch.set_num_threads(nt)
            for name, kw in (("foreach=True", dict(foreach=True)), ("foreach=False", dict(foreach=False)),
                             ("fused=True", dict(fused=True))):
                t, err = time_variant(params, reps, **kw)
                if t is None:
                    print("%6dM %3d | %-14s unsupported: %s" % (sm, nt, name, err))
                    continue
                results[(sm, nt, name)] = t
                print("%6dM %3d | %-14s %9.1f %9.3f %8.2f" % (sm, nt, name, t * 1e3, n / t * 1e-9, 28.0 * n / t * 1e-9))
                sys.stdout.flush()
        del params
    if args.dsc:
        cmd = [args.dsc, "-t", ",".join(str(t) for t in threads)] + [str(s) for s in sizes]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        print(out)
        print("%7s %3s | %9s | %s" % ("params", "thr", "dsc ms", "torch ms / dsc ms"))
        for line in out.splitlines():
            f = line.split()
            if len(f) > 3 and f[0].endswith("M") and f[0][:-1].isdigit() and f[2] == "|":
                sm, nt, dsc_ms = int(f[0][:-1]), int(f[1]), float(f[3])
                ratios = ["%s %.2fx" % (v, results[(sm, nt, v)] * 1e3 / dsc_ms)
                          for v in ("foreach=True", "foreach=False", "fused=True") if (sm, nt, v) in results]
                print("%6dM %3d | %9.2f | %s" % (sm, nt, dsc_ms, ", ".join(ratios)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
