#!/usr/bin/env python3
"""Compiled PyTorch GPT-2 training throughput: the reference row beside bench/gpt2_gpu.c.

The setting of the anchor runs (/work/shared/reference/anchor_runs.md section 1, issue 17):
GPT-2 (tied embeddings, pre-LayerNorm, GELU tanh, no dropout, flash attention through
F.scaled_dot_product_attention(is_causal=True)), T = 1024, 524,288 tokens per optimizer
step (--batch B x gradient accumulation), bf16 autocast over fp32 parameters,
torch.compile, fused AdamW (betas 0.9/0.95, eps 1e-8, lr 6e-4 constant, weight decay 0.1
on 2-D tensors only), gradient clipping 1.0, random tokens uniform over 0..50256 made on
the host and copied to the GPU as a data loader would.

Each timed step covers every micro-step, the clip and the update, between two
torch.cuda.synchronize() calls. The row gives the median and minimum over the steps after
the first (which holds the compilation), tok/s from the median, MFU with llm.c's
FLOPs/token 6 N + 6 L C T (N with the vocabulary padded to 50304: 803,478,528 for d12)
against 989.4 TFLOP/s, and torch.cuda.max_memory_allocated.

Exit status: 0, 1 (an error), 2 (usage), 3 (out of memory).

Usage (on a machine with a GPU and torch 2.x):
    python3 tools/torch_gpt2_ref.py [--model d12] [--batch 64] [--steps 10]
        [--tokens-per-step 524288] [--context 1024] [--no-compile] [--max-seconds S]
Only torch is needed (no numpy).
"""
import argparse
import math
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

PEAK_FLOPS = 989.4e12  # H100 SXM dense bf16
PRESETS = {  # the depth presets of `dsc train --model` (layers, heads, width)
    "gpt2-tiny": (2, 4, 64), "d6": (6, 6, 384), "d12": (12, 12, 768),
    "d24": (24, 16, 1024), "d36": (36, 20, 1280), "d48": (48, 25, 1600),
}
ANCHORS = {"d12": ("PyTorch torch.compile B64 464,379 tok/s", 464379.0),
           "d24": ("llm.c+cuDNN B32 184,808 tok/s", 184808.0)}


class Block(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.ln_1 = nn.LayerNorm(width)
        self.c_attn = nn.Linear(width, 3 * width)
        self.c_proj = nn.Linear(width, width)
        self.ln_2 = nn.LayerNorm(width)
        self.c_fc = nn.Linear(width, 4 * width)
        self.mlp_proj = nn.Linear(4 * width, width)

    def forward(self, x):
        b, t, c = x.shape
        qkv = self.c_attn(self.ln_1(x)).view(b, t, 3, self.heads, c // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [b, heads, t, head size]
        att = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.c_proj(att.transpose(1, 2).reshape(b, t, c))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, layers, heads, width, vocab, context):
        super().__init__()
        self.wte = nn.Embedding(vocab, width)
        self.wpe = nn.Embedding(context, width)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(width)
        # GPT-2's initialisation; the residual projections scaled by 1/sqrt(2 L)
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif p.dim() == 1:
                nn.init.ones_(p)
            else:
                std = 0.02 / math.sqrt(2 * layers) if name.endswith(("c_proj.weight", "mlp_proj.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)

    def forward(self, idx, targets):
        t = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(t, device=idx.device))
        for block in self.blocks:
            x = block(x)
        logits = F.linear(self.ln_f(x), self.wte.weight)  # the LM head is tied to wte
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1))


def llmc_flops_per_token(layers, width, vocab, context):
    vp = (vocab + 127) // 128 * 128
    n = vp * width + context * width + layers * (12 * width * width + 13 * width) + 2 * width
    return 6 * n + 6 * layers * width * context


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="d12", choices=sorted(PRESETS))
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--tokens-per-step", type=int, default=524288)
    ap.add_argument("--context", type=int, default=1024)
    ap.add_argument("--vocab", type=int, default=50257)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-compile", action="store_true", help="eager mode (the anchor's eager run OOMs at B 64)")
    ap.add_argument("--max-seconds", type=float, default=0,
                    help="stop after the step that passes S seconds (compilation included), once 2 steps ran")
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu (a smoke test of the script at a tiny shape)")
    a = ap.parse_args()
    if a.tokens_per_step % (a.batch * a.context) or a.steps < 1:
        print(f"torch_gpt2_ref: --tokens-per-step {a.tokens_per_step} is not a multiple of B x T = "
              f"{a.batch} x {a.context} (or --steps < 1)", file=sys.stderr)
        return 2
    on_gpu = a.device != "cpu"
    if on_gpu and not torch.cuda.is_available():
        print("torch_gpt2_ref: no CUDA device visible to torch", file=sys.stderr)
        return 1
    sync = torch.cuda.synchronize if on_gpu else (lambda: None)
    ga = a.tokens_per_step // (a.batch * a.context)
    layers, heads, width = PRESETS[a.model]
    dev = torch.device(a.device)
    torch.manual_seed(a.seed)
    model = GPT(layers, heads, width, a.vocab, a.context).to(dev)
    n_params = sum(p.numel() for p in model.parameters())
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=6e-4, betas=(0.9, 0.95), eps=1e-8, fused=on_gpu)
    step_model = model if a.no_compile else torch.compile(model)
    gen = torch.Generator().manual_seed(a.seed)
    device_name = torch.cuda.get_device_name(dev) if on_gpu else "cpu"
    print(f"torch_gpt2_ref: {a.model} on {device_name}: torch {torch.__version__}, {layers} layers, {heads} heads, "
          f"width {width}, vocab {a.vocab}, T {a.context}, {n_params} parameters; B {a.batch} x GA {ga} = "
          f"{a.tokens_per_step} tokens/step; bf16 autocast, {'eager' if a.no_compile else 'torch.compile'}",
          file=sys.stderr, flush=True)

    times, loss = [], float("nan")
    start = time.perf_counter()
    try:
        for s in range(a.steps):
            sync()
            t0 = time.perf_counter()
            for _ in range(ga):
                tokens = torch.randint(0, a.vocab, (a.batch, a.context + 1), generator=gen, dtype=torch.int64)
                tokens = tokens.to(dev, non_blocking=False)
                x, y = tokens[:, :-1], tokens[:, 1:]
                with torch.autocast(device_type=dev.type, dtype=torch.bfloat16):
                    l = step_model(x, y)
                (l / ga).backward()
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            sync()
            times.append(time.perf_counter() - t0)
            loss = l.item()  # the last micro-batch's, as dsc prints; outside the timer
            print(f"torch_gpt2_ref: step {s + 1}/{a.steps}: {times[-1] * 1e3:.1f} ms, loss {loss:.4f}, "
                  f"grad norm {norm.item():.3f}", file=sys.stderr, flush=True)
            if a.max_seconds > 0 and s >= 1 and time.perf_counter() - start > a.max_seconds and s + 1 < a.steps:
                print(f"torch_gpt2_ref: stopping after step {s + 1} of {a.steps}: --max-seconds {a.max_seconds:g} "
                      "passed", file=sys.stderr)
                break
    except torch.cuda.OutOfMemoryError as e:  # torch.OutOfMemoryError in torch >= 2.5 is the same class
        print(f"torch_gpt2_ref: out of memory on {device_name} ({a.model}) at B {a.batch}: {e}", file=sys.stderr)
        return 3

    timed = times[1:] if len(times) > 1 else times
    med = statistics.median(timed)
    tok_s = a.tokens_per_step / med
    mfu = tok_s * llmc_flops_per_token(layers, width, a.vocab, a.context) / PEAK_FLOPS
    peak_mib = torch.cuda.max_memory_allocated(dev) / 1048576 if on_gpu else float("nan")
    anchor = ANCHORS.get(a.model)
    anchor_cell = f"{anchor[0]} (ours {tok_s / anchor[1]:.3f}x)" if anchor else "-"
    mode = "eager" if a.no_compile else "compile"
    print("| system | device | model | B | GA | T | steps timed | ms/step median | ms/step min | tok/s | MFU vs 989.4 TF "
          "| peak device MiB | loss (last micro-batch) | anchor (H100) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    print(f"| torch {torch.__version__} bf16 autocast {mode} | {device_name} | {a.model} | {a.batch} | {ga} | "
          f"{a.context} | {len(timed)} of {len(times)} | {med * 1e3:.1f} | {min(timed) * 1e3:.1f} | {tok_s:.0f} | "
          f"{100 * mfu:.1f} % | {peak_mib:.0f} | {loss:.4f} | {anchor_cell} |")
    print(f"RESULT system=torch model={a.model} batch={a.batch} ga={ga} ms_median={med * 1e3:.3f} tok_s={tok_s:.1f} "
          f"peak_mib={peak_mib:.0f} loss={loss:.4f}")
    return 0 if math.isfinite(loss) else 1


if __name__ == "__main__":
    sys.exit(main())
