#!/usr/bin/env python3
"""Times one training step (forward, backward, AdamW) of the same GPT in PyTorch and in dsc,
in the same run, on the same machine, with the same thread count.

The torch model mirrors dsc's GPT-2 (include/dsc/gpt.h): learned positions, pre-LayerNorm
blocks, GELU (tanh), tied LM head, no dropout, fp32. Tokens are random (both sides), so only
speed is compared. dsc is timed through `dsc train` on a generated text file whose vocabulary
has the same size.

Threads: both sides run as a user would run them with OMP_NUM_THREADS=N and nothing else set.
For torch that means torch.set_num_threads(N) and OpenBLAS (its BLAS here) with N threads:
OpenBLAS reads OMP_NUM_THREADS at load time, so the variable is set before torch is imported
(without it, torch "at 1 thread" ran its matmuls on every core of the machine). For dsc it
means N OpenMP threads and the dsc tool's default of one OpenBLAS thread: dsc splits each
large gemm over its own OpenMP team (src/ops/cpu/cpu_basic.c). An OPENBLAS_NUM_THREADS in
the caller's environment is removed for both.

--only torch|dsc runs one side, for timing the two as separate processes side by side.
--torch-blas-threads / --dsc-blas-threads override the OpenBLAS thread counts (e.g. 1 for
torch at 2 threads: one pool instead of two; or the earlier dsc setting, equal to --threads).

usage: compare_torch_gpt.py --dsc build/dsc [--layers 4 --heads 4 --embd 128 --context 64
                            --batch 16 --vocab 88 --steps 30 --threads 1 --only torch|dsc
                            --torch-blas-threads N --dsc-blas-threads N]
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dsc", help="the dsc binary (build/dsc); needed unless --only torch")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--embd", type=int, default=128)
    ap.add_argument("--context", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--vocab", type=int, default=88)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", choices=["torch", "dsc"])
    ap.add_argument("--torch-blas-threads", type=int, help="OpenBLAS threads for torch (default: --threads)")
    ap.add_argument("--dsc-blas-threads", type=int, help="OPENBLAS_NUM_THREADS for dsc (default: unset, i.e. 1)")
    a = ap.parse_args()
    if a.only != "torch" and not a.dsc:
        ap.error("--dsc is required unless --only torch")
    os.environ["OMP_NUM_THREADS"] = str(a.threads)
    os.environ.pop("OPENBLAS_NUM_THREADS", None)
    if a.torch_blas_threads and a.only != "dsc":  # read by OpenBLAS when torch loads it
        os.environ["OPENBLAS_NUM_THREADS"] = str(a.torch_blas_threads)
    print(f"GPT {a.layers} layers, {a.heads} heads, width {a.embd}, context {a.context}, vocab {a.vocab}, "
          f"batch {a.batch}, {a.threads} thread(s)")
    tokens = a.batch * a.context
    torch_ms = dsc_ms = None
    if a.only != "dsc":
        torch_ms = run_torch(a)
        if torch_ms is None:
            return 0
        print(f"  torch  {torch_ms:8.1f} ms/step  {tokens / torch_ms * 1e3:8.0f} tokens/s  (median of {a.steps})")
    if a.only != "torch":
        dsc_ms, n = run_dsc(a)
        print(f"  dsc    {dsc_ms:8.1f} ms/step  {tokens / dsc_ms * 1e3:8.0f} tokens/s  (median of {n})")
    if torch_ms and dsc_ms:
        print(f"  dsc / torch time: {dsc_ms / torch_ms:.2f}")
    return 0

def run_torch(a):
    try:
        import torch
        import torch.nn as nn
        import torch.nn.functional as F
    except ImportError as e:
        print(f"SKIP: PyTorch is not importable ({e}); install Debian's python3-torch")
        return None
    torch.set_num_threads(a.threads)
    print(f"  torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    torch.manual_seed(0)

    class Block(nn.Module):
        def __init__(s, c, h):
            super().__init__()
            s.h = h
            s.ln_1, s.ln_2 = nn.LayerNorm(c), nn.LayerNorm(c)
            s.c_attn, s.c_proj = nn.Linear(c, 3 * c), nn.Linear(c, c)
            s.c_fc, s.mlp_proj = nn.Linear(c, 4 * c), nn.Linear(4 * c, c)
        def forward(s, x):
            b, t, c = x.shape
            q, k, v = s.c_attn(s.ln_1(x)).split(c, dim=2)
            q, k, v = (z.view(b, t, s.h, c // s.h).transpose(1, 2) for z in (q, k, v))
            att = (q @ k.transpose(-2, -1)) / (k.shape[-1] ** 0.5)
            mask = torch.ones(t, t, dtype=torch.bool).tril()
            att = att.masked_fill(~mask, float("-inf")).softmax(-1)
            y = (att @ v).transpose(1, 2).reshape(b, t, c)
            x = x + s.c_proj(y)
            return x + s.mlp_proj(F.gelu(s.c_fc(s.ln_2(x)), approximate="tanh"))

    class GPT(nn.Module):
        def __init__(s):
            super().__init__()
            s.wte, s.wpe = nn.Embedding(a.vocab, a.embd), nn.Embedding(a.context, a.embd)
            s.h = nn.ModuleList(Block(a.embd, a.heads) for _ in range(a.layers))
            s.ln_f = nn.LayerNorm(a.embd)
        def forward(s, idx, tgt):
            x = s.wte(idx) + s.wpe(torch.arange(idx.shape[1]))
            for blk in s.h:
                x = blk(x)
            logits = s.ln_f(x) @ s.wte.weight.t()
            return F.cross_entropy(logits.view(-1, a.vocab), tgt.view(-1))

    model = GPT()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    idx = torch.randint(0, a.vocab, (a.batch, a.context))
    tgt = torch.randint(0, a.vocab, (a.batch, a.context))
    times = []
    for step in range(a.steps + 3):
        t0 = time.perf_counter()
        loss = model(idx, tgt)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step >= 3:
            times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2] * 1e3

def run_dsc(a):
    # dsc: a text of `vocab` distinct characters, the same sizes, the same optimizer.
    with tempfile.TemporaryDirectory() as d:
        chars = [chr(33 + i) for i in range(a.vocab)]
        import random
        rnd = random.Random(0)
        text = "".join(rnd.choice(chars) for _ in range(200000))
        path = os.path.join(d, "text.txt")
        with open(path, "w") as f:
            f.write(text)
        cfg = os.path.join(d, "ds.json")
        with open(cfg, "w") as f:
            f.write('{"train_batch_size": %d, "gradient_clipping": 1.0, "wall_clock_breakdown": true, '
                    '"optimizer": {"type": "AdamW", "params": {"lr": 0.001, "weight_decay": 0.01}}}' % a.batch)
        env = dict(os.environ)  # OMP_NUM_THREADS = threads, no OPENBLAS_NUM_THREADS (see the top)
        env.pop("OPENBLAS_NUM_THREADS", None)
        if a.dsc_blas_threads:
            env["OPENBLAS_NUM_THREADS"] = str(a.dsc_blas_threads)
        out = subprocess.run([a.dsc, "train", "--config", cfg, "--data", path, "--steps", str(a.steps + 10),
                              "--layers", str(a.layers), "--heads", str(a.heads), "--embd", str(a.embd),
                              "--context", str(a.context), "--eval-every", "0"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                             check=True).stdout
    # Per step: the engine's wall-clock breakdown (DeepSpeed's "time (ms) | fwd: .. | bwd: .. |
    # step: .." line, printed every step), fwd + bwd + step, as the torch loop times model
    # forward + backward + clip + step; the median over the steps after the first 10.
    per_step = [float(m.group(1)) + float(m.group(2)) + float(m.group(3)) for m in
                re.finditer(r"time \(ms\) \| fwd: ([0-9.]+) \| bwd: ([0-9.]+) \|.*\| step: ([0-9.]+)", out)]
    per_step = sorted(per_step[10:])
    if not per_step:
        sys.exit("compare_torch_gpt.py: no wall-clock breakdown lines in the dsc output")
    return per_step[len(per_step) // 2], len(per_step)

if __name__ == "__main__":
    sys.exit(main())
