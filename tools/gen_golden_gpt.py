#!/usr/bin/python3
"""Golden data for dsc's tiny GPT-2 (DSC_GPT_CONFIG_TINY), from PyTorch.

Writes tests/golden/gpt/gpt_tiny.gold, read by tests/unit/test_gpt_golden.c through
tests/common/golden.{h,c}. Run with Debian's interpreter: /usr/bin/python3 tools/gen_golden_gpt.py.
Deterministic: two runs give byte-identical files. The file format is the one documented
in tools/gen_golden_ops.py and tests/common/golden.h (named float32/int32/float64 arrays).

The model is written here in plain torch to match src/nn/gpt.c exactly:
  x = wte[tokens] + wpe[0..T)
  per layer l:  h = ln_1(x); h = h @ c_attn.W^T + c_attn.b          (W: [3C, C], Linear layout)
                h = causal self-attention over q, k, v = split(h, C), n_head heads
                x = x + (h @ attn.c_proj.W^T + attn.c_proj.b)
                x = x + c_proj(gelu_tanh(c_fc(ln_2(x))))            (c_fc: [4C, C], c_proj: [C, 4C])
  logits = ln_f(x) @ wte^T                                           (tied LM head)
  loss = cross_entropy(logits, targets, ignore_index=-1), mean over non-ignored positions
LayerNorm eps 1e-5, no dropout. dsc ignores every negative target; PyTorch only its
ignore_index, so negative targets are mapped to -1 for PyTorch (the file keeps the raw
values, including one -3, so the C side checks that any negative target is ignored).

Parameters: GPT-2's initialisation with torch.manual_seed (N(0, 0.02) weights and
embeddings, residual projections N(0, 0.02/sqrt(2 n_layer))), except that biases and
LayerNorm parameters, which GPT-2 starts at constants (0 and 1), are perturbed
(bias ~ N(0, 0.02), LayerNorm weight ~ 1 + N(0, 0.1)) so that every parameter influences
the output and a bias applied on the wrong axis cannot hide behind a zero.

Records:
  param/<name>        float32, each parameter in dsc's declaration order and shape
  <case>/tokens       int32 [B, T]
  <case>/targets      int32 [B, T] (a few negative: ignored)
  <case>/logits       float32 [B, T, V]
  <case>/loss         float32 [1]
  <case>/grad/<name>  float32, d loss / d parameter, every parameter
  config              float64 [7]: n_layer, n_head, n_embd, vocab, block_size, dropout, ln_eps
  train/losses        float32 [31]: losses of 30 plain SGD steps (lr 0.1) on case "b4t32",
                      then the loss after the last step (float64; PyTorch's float32 run stays
                      within 1e-6 of it, the C test allows 1e-4)
with cases "b4t32" (B=4, T=32) and "b1t17" (B=1, T=17).

Expected values are computed in float64 from the float32 parameters and rounded to
float32; this script checks that PyTorch's own float32 forward/backward meets the C
test's bound (|err| <= 1e-5 * max(|got|, |want|, FLOOR_FRAC * max|want|)) on every array.
"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_golden_ops import FLOOR_FRAC, REL_TOL, GoldenWriter, worst_rel_err  # noqa: E402

N_LAYER, N_HEAD, N_EMBD, VOCAB, BLOCK = 2, 4, 64, 65, 32
LN_EPS = 1e-5
SGD_LR, SGD_STEPS = 0.1, 30


def param_specs():
    """(name, shape, init) in dsc's declaration order (src/nn/gpt.c, src/nn/layers.c)."""
    c = N_EMBD
    std, proj_std = 0.02, 0.02 / math.sqrt(2 * N_LAYER)
    p = [("wte.weight", (VOCAB, c), ("normal", std)), ("wpe.weight", (BLOCK, c), ("normal", std))]
    for l in range(N_LAYER):
        h = "h.%d." % l
        p += [
            (h + "ln_1.weight", (c,), ("ln_w",)),
            (h + "ln_1.bias", (c,), ("bias",)),
            (h + "attn.c_attn.weight", (3 * c, c), ("normal", std)),
            (h + "attn.c_attn.bias", (3 * c,), ("bias",)),
            (h + "attn.c_proj.weight", (c, c), ("normal", proj_std)),
            (h + "attn.c_proj.bias", (c,), ("bias",)),
            (h + "ln_2.weight", (c,), ("ln_w",)),
            (h + "ln_2.bias", (c,), ("bias",)),
            (h + "mlp.c_fc.weight", (4 * c, c), ("normal", std)),
            (h + "mlp.c_fc.bias", (4 * c,), ("bias",)),
            (h + "mlp.c_proj.weight", (c, 4 * c), ("normal", proj_std)),
            (h + "mlp.c_proj.bias", (c,), ("bias",)),
        ]
    p += [("ln_f.weight", (c,), ("ln_w",)), ("ln_f.bias", (c,), ("bias",))]
    return p


def init_params(seed):
    torch.manual_seed(seed)
    params = {}
    for name, shape, init in param_specs():
        if init[0] == "normal":
            t = torch.randn(*shape, dtype=torch.float64) * init[1]
        elif init[0] == "ln_w":
            t = 1.0 + 0.1 * torch.randn(*shape, dtype=torch.float64)
        else:
            t = 0.02 * torch.randn(*shape, dtype=torch.float64)
        params[name] = t.float()  # the stored values are float32
    return params


def gpt_forward(p, tokens, targets):
    """p: name -> tensor (float32 or float64, requires_grad). Returns logits, loss."""
    b, t = tokens.shape
    c, nh = N_EMBD, N_HEAD
    hs = c // nh
    tok = tokens.long()
    x = p["wte.weight"][tok] + p["wpe.weight"][torch.arange(t)]

    def ln(x, pre):
        return F.layer_norm(x, (c,), p[pre + ".weight"], p[pre + ".bias"], LN_EPS)

    def linear(x, pre):
        return x @ p[pre + ".weight"].t() + p[pre + ".bias"]

    mask = torch.ones(t, t, dtype=torch.bool).tril()
    for l in range(N_LAYER):
        h = "h.%d." % l
        qkv = linear(ln(x, h + "ln_1"), h + "attn.c_attn")
        q, k, v = qkv.split(c, dim=2)
        q = q.reshape(b, t, nh, hs).transpose(1, 2)
        k = k.reshape(b, t, nh, hs).transpose(1, 2)
        v = v.reshape(b, t, nh, hs).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)
        att = torch.softmax(att.masked_fill(~mask, float("-inf")), dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, c)
        x = x + linear(y, h + "attn.c_proj")
        m = linear(ln(x, h + "ln_2"), h + "mlp.c_fc")
        x = x + linear(F.gelu(m, approximate="tanh"), h + "mlp.c_proj")
    logits = ln(x, "ln_f") @ p["wte.weight"].t()
    tg = targets.long().clone()
    tg[tg < 0] = -1  # dsc ignores every negative target
    loss = F.cross_entropy(logits.reshape(-1, VOCAB), tg.reshape(-1), ignore_index=-1)
    return logits, loss


def forward_backward(params32, tokens, targets, dtype):
    p = {k: v.to(dtype).clone().requires_grad_(True) for k, v in params32.items()}
    logits, loss = gpt_forward(p, tokens, targets)
    loss.backward()
    return logits.detach(), loss.detach().reshape(1), {k: v.grad.detach() for k, v in p.items()}


def make_batch(gen, b, t):
    """Sequences that follow a fixed random successor table (a learnable bigram), starting
    at random tokens; targets are the next token. A few targets are negative (ignored)."""
    succ = torch.randperm(VOCAB, generator=gen)
    seq = torch.empty(b, t + 1, dtype=torch.int64)
    seq[:, 0] = torch.randint(0, VOCAB, (b,), generator=gen)
    for i in range(t):
        seq[:, i + 1] = succ[seq[:, i]]
    tokens = seq[:, :t].to(torch.int32)
    targets = seq[:, 1:].to(torch.int32).clone()
    return tokens, targets


def main():
    torch.set_num_threads(1)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.path.join(root, "tests", "golden", "gpt", "gpt_tiny.gold")
    w = GoldenWriter()
    w.f64("config", np.array([N_LAYER, N_HEAD, N_EMBD, VOCAB, BLOCK, 0.0, LN_EPS]))
    params = init_params(1337)
    for name, _, _ in param_specs():
        w.f32("param/" + name, params[name])

    gen = torch.Generator().manual_seed(4242)
    tok4, tg4 = make_batch(gen, 4, 32)
    tg4[0, 5] = -1
    tg4[1, 0] = -1
    tg4[2, 31] = -1
    tg4[3, 17] = -3  # any negative target is ignored by dsc_gpt_forward
    tok1, tg1 = make_batch(gen, 1, 17)
    tg1[0, 3] = -1
    worst_all = 0.0
    for case, tokens, targets in (("b4t32", tok4, tg4), ("b1t17", tok1, tg1)):
        w.i32(case + "/tokens", tokens)
        w.i32(case + "/targets", targets)
        logits, loss, grads = forward_backward(params, tokens, targets, torch.float64)
        logits32, loss32, grads32 = forward_backward(params, tokens, targets, torch.float32)
        w.f32(case + "/logits", logits.float())
        w.f32(case + "/loss", loss.float())
        errs = {"logits": worst_rel_err(logits32, logits.float()), "loss": worst_rel_err(loss32, loss.float())}
        for name, _, _ in param_specs():
            w.f32(case + "/grad/" + name, grads[name].float())
            errs[name] = worst_rel_err(grads32[name], grads[name].float())
        print("case %s: loss %.6f" % (case, float(loss)))
        for k, e in errs.items():
            print("  %-28s torch f32 worst %.2e" % (k, e))
        worst = max(errs.values())
        worst_all = max(worst_all, worst)
        if worst > REL_TOL:
            sys.exit("gen_golden_gpt: torch f32 misses the test's bound (%.3e > %.1e)" % (worst, REL_TOL))

    # The training check's reference trajectory: plain SGD on one batch, in float64.
    p = {k: v.double().clone().requires_grad_(True) for k, v in params.items()}
    losses = []
    for step in range(SGD_STEPS + 1):
        _, loss = gpt_forward(p, tok4, tg4)
        losses.append(float(loss))
        if step == SGD_STEPS:
            break
        for v in p.values():
            v.grad = None
        loss.backward()
        with torch.no_grad():
            for v in p.values():
                v -= SGD_LR * v.grad
    w.f32("train/losses", np.array(losses))
    print("SGD lr %.2f: loss %.4f -> %.4f after %d steps (%.0f%% lower)" %
          (SGD_LR, losses[0], losses[-1], SGD_STEPS, 100 * (1 - losses[-1] / losses[0])))
    if losses[-1] > 0.5 * losses[0]:
        sys.exit("gen_golden_gpt: the batch is not learnable enough for the training check")

    size = w.write(path)
    print("gen_golden_gpt: %d records, %d bytes -> %s (torch f32 worst %.2e, floor %.0e)" %
          (len(w.records), size, os.path.relpath(path, root), worst_all, FLOOR_FRAC))


if __name__ == "__main__":
    main()
