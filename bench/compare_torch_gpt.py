#!/usr/bin/env python3
"""Times one training step (forward, backward, AdamW) of the same GPT in PyTorch and in dsc,
in the same run, on the same machine, with the same thread count.

The torch model mirrors dsc's GPT-2 (include/dsc/gpt.h): learned positions, pre-LayerNorm
blocks, GELU (tanh), tied LM head, no dropout, fp32. Tokens are random (both sides), so only
speed is compared. dsc is timed through `dsc train` on a generated text file whose vocabulary
has the same size.

usage: compare_torch_gpt.py --dsc build/dsc [--layers 4 --heads 4 --embd 128 --context 64
                            --batch 16 --vocab 88 --steps 30 --threads 1]
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
    ap.add_argument("--dsc", required=True)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--embd", type=int, default=128)
    ap.add_argument("--context", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--vocab", type=int, default=88)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    try:
        import torch
        import torch.nn as nn
        import torch.nn.functional as F
    except ImportError as e:
        print(f"SKIP: PyTorch is not importable ({e}); install Debian's python3-torch")
        return 0
    torch.set_num_threads(a.threads)
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
    torch_ms = times[len(times) // 2] * 1e3

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
            f.write('{"train_batch_size": %d, "gradient_clipping": 1.0, '
                    '"optimizer": {"type": "AdamW", "params": {"lr": 0.001, "weight_decay": 0.01}}}' % a.batch)
        env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), OPENBLAS_NUM_THREADS=str(a.threads))
        out = subprocess.run([a.dsc, "train", "--config", cfg, "--data", path, "--steps", str(a.steps + 10),
                              "--layers", str(a.layers), "--heads", str(a.heads), "--embd", str(a.embd),
                              "--context", str(a.context), "--eval-every", "0"],
                             capture_output=True, text=True, env=env, check=True).stdout
    # Time per step from the steps after the first 10 (warm-up): "| <t> s" at each 10th step.
    stamps = {int(m.group(1)): float(m.group(2)) for m in re.finditer(r"step +(\d+)/\d+ .*\| ([0-9.]+) s", out)}
    last = max(stamps)
    dsc_ms = (stamps[last] - stamps[10]) / (last - 10) * 1e3
    tokens = a.batch * a.context
    print(f"GPT {a.layers} layers, {a.heads} heads, width {a.embd}, context {a.context}, vocab {a.vocab}, "
          f"batch {a.batch}, {a.threads} thread(s), torch {torch.__version__}")
    print(f"  torch  {torch_ms:8.1f} ms/step  {tokens / torch_ms * 1e3:8.0f} tokens/s  (median of {a.steps})")
    print(f"  dsc    {dsc_ms:8.1f} ms/step  {tokens / dsc_ms * 1e3:8.0f} tokens/s  (mean of steps 11-{last})")
    print(f"  dsc / torch time: {dsc_ms / torch_ms:.2f}")
    return 0

if __name__ == "__main__":
    sys.exit(main())
