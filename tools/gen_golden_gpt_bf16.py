#!/usr/bin/python3
"""Golden data for one GPT block in bf16, forward and backward, from PyTorch autocast.

Writes tests/golden/gpt/gpt_block_bf16.gold, read by tests/unit/test_gpt_bf16_golden.c
(format: tools/gen_golden_ops.py, tests/common/golden.h). Run with Debian's interpreter:
/usr/bin/python3 tools/gen_golden_gpt_bf16.py. Deterministic (byte-identical reruns).

The model is tools/gen_golden_gpt.py's plain-torch GPT (src/nn/gpt.c's structure) with ONE
transformer block: embeddings, the block, ln_f, the tied head and the cross-entropy. It
runs as DeepSpeed's bf16 engine holds a model, bf16 parameters, under
torch.autocast("cpu", dtype=torch.bfloat16). In PyTorch 1.13 on the CPU that means (checked
by this script): matmuls take bf16 and give bf16 (f32 accumulation); layer_norm, softmax,
gelu and the residual adds take bf16 and give bf16 (f32 arithmetic inside);
cross_entropy is on autocast's f32 list: the loss is f32 from bf16 logits; parameter
gradients are bf16. dsc with bf16 parameters computes the same ops the same way
(src/ops/backend.h: f32 arithmetic, one rounding per output), with these differences:
  - attention: PyTorch rounds the scores q k^T, the scaled scores, the probabilities and
    the output to bf16; dsc computes the attention in f32 from the bf16 qkv and rounds
    only its output (its kernel is f32 inside);
  - GELU: PyTorch evaluates tanh, dsc x * sigmoid(2u) with its own exp (the same function;
    f32 results differ in the last f32 bits, so an output may round the other way);
  - the tied embedding's gradient: PyTorch adds the head's and the lookup's gradients in
    bf16 (rounding twice), dsc adds the lookup's rows into the head's bf16 gradient (f32
    sums per token, one rounding);
  - summation orders inside gemms (MKL-DNN vs OpenBLAS).
Each difference is a rounding at a different place: a few bf16 units of roundoff
(u = 2^-8) per step of the chain, not a different formula.

Tolerance (the C test's bounds, per array, in bf16 units of roundoff u = 2^-8): relative
L2 error ||dsc - torch|| / ||torch|| <= TOL_L2 = 16 u, and the worst element by golden.h's
metric (|got - want| / max(|got|, |want|, FLOOR_FRAC * max|want|)) <= TOL_WORST = 64 u.
Derivation: PyTorch autocast's own distance from the exact (float64) result, measured here
and printed, is 1.4 to 6.1 u in relative L2 and up to ~37 u on single elements (bias
gradients sum 128 rows of bf16 values; elements near the floor cancel). A second correct
bf16 implementation carries its own error of the same size, rounded at other places, so
the two differ by up to about the sum: 12 u (L2), ~74 u worst-case in theory, much less in
practice since most roundings are shared. This script checks that PyTorch autocast itself
meets both bounds against the exact result (the bounds are attainable by a correct bf16
computation); a wrong formula (a missing term, a wrong axis) gives errors of order 1.

Records: config f64 [7]; param/<name> f32 (values exactly representable in bf16, so dsc's
bf16 copy and PyTorch's are the same numbers); tokens, targets i32 [B, T]; logits f32
[B, T, V] (PyTorch's bf16 logits, widened); loss f32 [1]; grad/<name> f32 (PyTorch's bf16
gradients, widened).
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_golden_gpt as G  # noqa: E402
from gen_golden_ops import FLOOR_FRAC, GoldenWriter, worst_rel_err  # noqa: E402

G.N_LAYER = 1  # one transformer block (the rest of the tiny config as gen_golden_gpt.py)
B, T = 4, 32
U_BF16 = 2.0 ** -8  # bf16 unit roundoff
TOL_L2, TOL_WORST = 16 * U_BF16, 64 * U_BF16  # keep in sync with tests/unit/test_gpt_bf16_golden.c


def rel_l2(got, want):
    """||got - want|| / ||want|| over the whole array, in float64."""
    got = np.asarray(got, dtype=np.float64).ravel()
    want = np.asarray(want, dtype=np.float64).ravel()
    n = np.linalg.norm(want)
    return float(np.linalg.norm(got - want) / n) if n > 0 else float(np.linalg.norm(got))


def check_autocast_semantics():
    """The dtype flow the comparison relies on (see the docstring)."""
    x = torch.randn(4, 8).bfloat16()
    w = torch.randn(8, 8).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = {
            "matmul": (x @ w).dtype,
            "layer_norm": torch.nn.functional.layer_norm(x, (8,)).dtype,
            "softmax": torch.softmax(x, -1).dtype,
            "gelu": torch.nn.functional.gelu(x, approximate="tanh").dtype,
            "cross_entropy": torch.nn.functional.cross_entropy(x, torch.tensor([1, 2, 3, 4])).dtype,
        }
    want = {"matmul": torch.bfloat16, "layer_norm": torch.bfloat16, "softmax": torch.bfloat16,
            "gelu": torch.bfloat16, "cross_entropy": torch.float32}
    if got != want:
        sys.exit("gen_golden_gpt_bf16: autocast dtypes %s differ from the documented %s" % (got, want))


def run(params, tokens, targets, mode):
    """mode "autocast": bf16 parameters under autocast; "exact": float64."""
    dtype = torch.bfloat16 if mode == "autocast" else torch.float64
    p = {k: v.to(dtype).clone().requires_grad_(True) for k, v in params.items()}
    if mode == "autocast":
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits, loss = G.gpt_forward(p, tokens, targets)
    else:
        logits, loss = G.gpt_forward(p, tokens, targets)
    loss.backward()
    return logits.detach(), loss.detach().reshape(1), {k: v.grad.detach() for k, v in p.items()}


def main():
    torch.set_num_threads(1)
    check_autocast_semantics()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.path.join(root, "tests", "golden", "gpt", "gpt_block_bf16.gold")
    w = GoldenWriter()
    w.f64("config", np.array([G.N_LAYER, G.N_HEAD, G.N_EMBD, G.VOCAB, G.BLOCK, 0.0, G.LN_EPS]))
    params = {k: v.bfloat16().float() for k, v in G.init_params(2024).items()}  # bf16 values
    for name, _, _ in G.param_specs():
        w.f32("param/" + name, params[name])
    gen = torch.Generator().manual_seed(99)
    tokens, targets = G.make_batch(gen, B, T)
    targets[1, 7] = -1
    w.i32("tokens", tokens)
    w.i32("targets", targets)

    logits, loss, grads = run(params, tokens, targets, "autocast")
    if logits.dtype != torch.bfloat16 or loss.dtype != torch.float32 or grads["wte.weight"].dtype != torch.bfloat16:
        sys.exit("gen_golden_gpt_bf16: unexpected dtypes %s %s %s" % (logits.dtype, loss.dtype, grads["wte.weight"].dtype))
    xlogits, xloss, xgrads = run(params, tokens, targets, "exact")
    w.f32("logits", logits.float())
    w.f32("loss", loss.float())
    errs = {"logits": worst_rel_err(logits.float(), xlogits), "loss": worst_rel_err(loss.float(), xloss)}
    l2 = {"logits": rel_l2(logits.float(), xlogits), "loss": rel_l2(loss.float(), xloss)}
    for name, _, _ in G.param_specs():
        w.f32("grad/" + name, grads[name].float())
        errs[name] = worst_rel_err(grads[name].float(), xgrads[name])
        l2[name] = rel_l2(grads[name].float(), xgrads[name])
    print("loss: autocast %.6f, exact %.6f" % (float(loss), float(xloss)))
    for k, e in errs.items():
        print("  %-28s autocast vs exact: worst %.2e (%.1f u), rel L2 %.2e (%.1f u)" % (k, e, e / U_BF16, l2[k], l2[k] / U_BF16))
    worst, worst_l2 = max(errs.values()), max(l2.values())
    if worst > TOL_WORST or worst_l2 > TOL_L2:
        sys.exit("gen_golden_gpt_bf16: PyTorch autocast misses the test's bounds (worst %.3e, L2 %.3e)" % (worst, worst_l2))
    size = w.write(path)
    print("gen_golden_gpt_bf16: %d records, %d bytes -> %s (autocast vs exact: rel L2 %.1f u, worst %.1f u; "
          "bounds %d u, %d u; floor %.0e)" % (len(w.records), size, os.path.relpath(path, root), worst_l2 / U_BF16,
                                             worst / U_BF16, TOL_L2 / U_BF16, TOL_WORST / U_BF16, FLOOR_FRAC))


if __name__ == "__main__":
    main()
