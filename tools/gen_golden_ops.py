#!/usr/bin/python3
"""Golden data for every op of include/dsc/ops.h, from PyTorch.

Writes tests/golden/ops/ops.gold, read by tests/unit/test_ops_golden.c through
tests/common/golden.{h,c}. Run with Debian's interpreter: /usr/bin/python3 tools/gen_golden_ops.py
(`make golden` runs every tools/gen_*.py). The output is deterministic: running the script
twice gives byte-identical files.

Golden file format (version 1, all integers little-endian):

    magic     8 bytes  b"DSCGOLD1"
    version   u32      1
    count     u32      number of records
    count records, each:
      name_len  u32      1..255
      name      name_len bytes, printable ASCII, no NUL; unique within the file
      dtype     u32      0 = float32, 1 = int32, 2 = float64
      ndim      u32      1..4
      shape     ndim x i64, each >= 0
      data      prod(shape) elements of dtype, row-major, little-endian
    nothing after the last record

Cases. Each op case is a group of records named "<op>.<variant>/<field>":

    x0, x1, ...  the op's inputs in argument order (float32, or int32 for ids/targets)
    args         float64 scalars of the call (transpose flags, scale, eps, heads, ...)
    R            float32, the shape of out: the upstream gradient
    out          float32, the expected output
    dx0, dx1,... float32, expected d(sum(out * R))/d(x_i) for each differentiable input;
                 an input without a dx record is not differentiable (ids, targets)

Expected values are computed in float64 from the float32 inputs (so they are the exact
answer to within f64 rounding) and then rounded to float32. The C test runs dsc in f32
and compares with |got - want| <= 1e-5 * max(|got|, |want|, FLOOR_FRAC * max|want|)
where max|want| is over the whole array: an element-wise 1e-5 relative bound, except
that elements far below the array's magnitude (results of cancellation) are held to an
absolute 1e-5 * FLOOR_FRAC * max|want|. This script checks that PyTorch's own float32
computation meets the same bound on every array (printed as "torch f32 worst"), so the
bound is attainable by a correct f32 implementation; a wrong formula gives errors of
order 1.

Casts (f32 -> bf16/f16/f64 -> f32) are exact operations: expected values come from
PyTorch's own conversion (round to nearest even) and must match bit for bit.
"""
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

FLOOR_FRAC = 1e-1  # keep in sync with GOLDEN_FLOOR_FRAC in tests/common/golden.h
REL_TOL = 1e-5

MAGIC = b"DSCGOLD1"
VERSION = 1
DT_F32, DT_I32, DT_F64 = 0, 1, 2


# ---- writer (shared with gen_golden_gpt.py) ------------------------------------------


class GoldenWriter:
    """Collects named arrays and writes them in the golden format."""

    def __init__(self):
        self.records = []
        self.names = set()

    def add(self, name, array, dtype):
        if isinstance(array, torch.Tensor):
            array = array.detach().cpu().numpy()
        array = np.asarray(array)
        if array.ndim == 0:
            array = array.reshape(1)
        assert 1 <= array.ndim <= 4, (name, array.shape)
        assert 1 <= len(name) <= 255 and name.isascii() and name not in self.names, name
        np_dtype = {DT_F32: "<f4", DT_I32: "<i4", DT_F64: "<f8"}[dtype]
        if dtype == DT_I32:
            assert np.all(array == np.round(array)), name
        self.names.add(name)
        self.records.append((name, dtype, array.astype(np_dtype)))

    def f32(self, name, a):
        self.add(name, a, DT_F32)

    def i32(self, name, a):
        self.add(name, a, DT_I32)

    def f64(self, name, a):
        self.add(name, a, DT_F64)

    def tobytes(self):
        out = [MAGIC, struct.pack("<II", VERSION, len(self.records))]
        for name, dtype, arr in self.records:
            nb = name.encode("ascii")
            out.append(struct.pack("<I", len(nb)))
            out.append(nb)
            out.append(struct.pack("<II", dtype, arr.ndim))
            out.append(struct.pack("<%dq" % arr.ndim, *arr.shape))
            out.append(np.ascontiguousarray(arr).tobytes())
        return b"".join(out)

    def write(self, path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        data = self.tobytes()
        with open(path, "wb") as f:
            f.write(data)
        return len(data)


def worst_rel_err(got, want, floor_frac=FLOOR_FRAC):
    """The C test's metric: max |got - want| / max(|got|, |want|, floor_frac * max|want|)."""
    got = np.asarray(got, dtype=np.float64).ravel()
    want = np.asarray(want, dtype=np.float64).ravel()
    if want.size == 0:
        return 0.0
    finite = np.abs(want[np.isfinite(want)])
    floor = floor_frac * (np.max(finite) if finite.size else 0.0)
    scale = np.maximum(np.maximum(np.abs(got), np.abs(want)), floor)
    with np.errstate(invalid="ignore", divide="ignore"):
        err = np.where((got == want) | (np.isnan(got) & np.isnan(want)), 0.0, np.abs(got - want) / scale)
    err = np.where(np.isnan(err), np.inf, err)
    return float(np.max(err))


# ---- op cases ------------------------------------------------------------------------

gen = torch.Generator().manual_seed(20240611)


def randn(*shape, scale=1.0, shift=0.0):
    return (torch.randn(*shape, generator=gen, dtype=torch.float64) * scale + shift).float()


def uniform(*shape, lo=-1.0, hi=1.0):
    return (torch.rand(*shape, generator=gen, dtype=torch.float64) * (hi - lo) + lo).float()


def randint(lo, hi, *shape):
    return torch.randint(lo, hi, shape, generator=gen, dtype=torch.int64).to(torch.int32)


class Case:
    def __init__(self, name, inputs, fn, args=None, exact=False):
        """inputs: list of (tensor, differentiable). fn(*inputs) -> output tensor (any shape;
        a 0-d result is stored as [1]). exact: compute in float32 (casts) and require
        bit-exact agreement."""
        self.name, self.inputs, self.fn, self.args, self.exact = name, inputs, fn, args, exact


def run_case(case, dtype):
    xs = []
    for t, diff in case.inputs:
        if t.dtype.is_floating_point:
            t = t.to(dtype).clone().requires_grad_(diff)
        else:
            t = t.to(torch.int64)
        xs.append(t)
    out = case.fn(*xs)
    if out.dim() == 0:
        out = out.reshape(1)
    return xs, out


def emit_case(w, case, report):
    name = case.name
    for i, (t, _) in enumerate(case.inputs):
        if t.dtype == torch.int32:
            w.i32("%s/x%d" % (name, i), t)
        else:
            w.f32("%s/x%d" % (name, i), t)
    if case.args is not None:
        w.f64("%s/args" % name, np.array(case.args, dtype=np.float64))
    ref_dtype = torch.float32 if case.exact else torch.float64
    xs, out = run_case(case, ref_dtype)
    R = randn(*out.shape)
    w.f32("%s/R" % name, R)
    w.f32("%s/out" % name, out.detach().float())
    if any(x.requires_grad for x in xs):
        (out * R.to(ref_dtype)).sum().backward()
    grads = {}
    for i, x in enumerate(xs):
        if x.dtype.is_floating_point and x.requires_grad:
            g = x.grad if x.grad is not None else torch.zeros_like(x)
            grads[i] = g.detach().float()
            w.f32("%s/dx%d" % (name, i), grads[i])
    # How close does PyTorch's own float32 computation come to the float64 answer?
    xs32, out32 = run_case(case, torch.float32)
    if any(x.requires_grad for x in xs32):
        (out32 * R).sum().backward()
    errs = [worst_rel_err(out32.detach(), out.detach().float())]
    for i, g in grads.items():
        g32 = xs32[i].grad if xs32[i].grad is not None else torch.zeros_like(xs32[i])
        errs.append(worst_rel_err(g32, g))
    worst = max(errs)
    report.append((name, worst))
    bound = 0.0 if case.exact else REL_TOL
    if worst > bound:
        sys.exit("gen_golden_ops: case %s: torch f32 misses the test's own bound (%.3e > %.1e); "
                 "change the case" % (name, worst, bound))


def attention_ref(qkv, n_head):
    """dsc_attention's definition (include/dsc/ops.h) written in torch."""
    b, t, c3 = qkv.shape
    c = c3 // 3
    hs = c // n_head
    q, k, v = qkv.split(c, dim=2)
    q = q.reshape(b, t, n_head, hs).transpose(1, 2)
    k = k.reshape(b, t, n_head, hs).transpose(1, 2)
    v = v.reshape(b, t, n_head, hs).transpose(1, 2)
    att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)
    mask = torch.ones(t, t, dtype=torch.bool).tril()
    att = att.masked_fill(~mask, float("-inf"))
    att = torch.softmax(att, dim=-1)
    y = att @ v
    return y.transpose(1, 2).reshape(b, t, c)


def cross_entropy_ref(logits, targets, ignore_index):
    v = logits.shape[-1]
    flat_t = targets.reshape(-1)
    if bool((flat_t == ignore_index).all()):
        # dsc: "If every target is ignored the loss is 0" (PyTorch gives NaN); gradient 0.
        return (logits * 0).sum()
    return F.cross_entropy(logits.reshape(-1, v), flat_t, ignore_index=ignore_index)


def cast_values(n):
    """Values that exercise f32 -> bf16/f16 rounding: ties (to even), values just off
    ties, f16 subnormals and overflow, signed zeros, infinities, NaN, and ordinary values."""
    special = [
        0.0, -0.0, 1.0, -1.0, 1.00390625,  # 1 + 2^-8: a bf16 tie (round to even -> 1.0)
        1.01171875,  # 1 + 3 * 2^-8: a bf16 tie rounding up to 1 + 2^-6
        1.0 + 2.0**-8 + 2.0**-20,  # just above a bf16 tie
        1.0 + 2.0**-11,  # an f16 tie
        1.0 + 3 * 2.0**-11,  # an f16 tie rounding up
        65504.0, 65520.0,  # f16 max, and the first value that rounds to +inf in f16
        -70000.0, 1e-5, 6e-8, 3e-8, -2.9e-8,  # f16 subnormals / flush to zero
        3.0e38, -3.3e38, 1.17549435e-38, 123.456, -0.333333, float("inf"), float("-inf"), float("nan"),
    ]
    vals = torch.tensor(special, dtype=torch.float32)
    rest = randn(n - len(special), scale=10.0)
    return torch.cat([vals, rest])


def build_cases():
    C = []
    # matmul: every transpose combination on 2-D operands, and a 3-D a.
    M, K, N = 5, 7, 3
    for ta in (False, True):
        for tb in (False, True):
            a = randn(*((K, M) if ta else (M, K)))
            b = randn(*((N, K) if tb else (K, N)))
            C.append(Case("matmul.%s%s" % ("t" if ta else "n", "t" if tb else "n"), [(a, True), (b, True)],
                          lambda a, b, ta=ta, tb=tb: (a.t() if ta else a) @ (b.t() if tb else b),
                          args=[int(ta), int(tb)]))
    for tb in (False, True):
        a = randn(2, 3, 11)
        b = randn(*((13, 11) if tb else (11, 13)))
        C.append(Case("matmul.3d_n%s" % ("t" if tb else "n"), [(a, True), (b, True)],
                      lambda a, b, tb=tb: a @ (b.t() if tb else b), args=[0, int(tb)]))

    # add / sub / mul: equal shapes, b broadcast (a trailing part of a), a broadcast.
    ops = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b}
    for op, f in ops.items():
        C.append(Case("%s.same" % op, [(randn(3, 5, 7), True), (randn(3, 5, 7), True)], f))
        C.append(Case("%s.bcast_b" % op, [(randn(3, 5, 7), True), (randn(5, 7), True)], f))
        C.append(Case("%s.bcast_a" % op, [(randn(7), True), (randn(2, 3, 7), True)], f))
        C.append(Case("%s.bcast_b4d" % op, [(randn(2, 3, 4, 5), True), (randn(3, 4, 5), True)], f))
    # The same tensor on both sides: its gradient is the sum of both paths.
    x = randn(4, 9)
    C.append(Case("mul.self", [(x, True)], lambda x: x * x))

    C.append(Case("bias_add.3d", [(randn(2, 5, 9), True), (randn(9), True)], lambda x, b: x + b))
    C.append(Case("bias_add.2d", [(randn(7, 3), True), (randn(3), True)], lambda x, b: x + b))
    C.append(Case("scale.neg", [(randn(3, 7), True)], lambda x: x * -1.7, args=[-1.7]))
    C.append(Case("scale.third", [(randn(2, 2, 5), True)], lambda x: x * (1.0 / 3.0), args=[1.0 / 3.0]))
    C.append(Case("sum.3d", [(randn(3, 5, 7), True)], lambda x: x.sum()))
    C.append(Case("mean.3d", [(randn(3, 5, 7, shift=0.5), True)], lambda x: x.mean()))
    C.append(Case("mean.1d", [(randn(13), True)], lambda x: x.mean()))

    C.append(Case("reshape.infer", [(randn(3, 4, 5), True)], lambda x: x.reshape(5, -1), args=[5, -1]))
    C.append(Case("reshape.4d", [(randn(6, 10), True)], lambda x: x.reshape(2, 3, 5, 2), args=[2, 3, 5, 2]))
    C.append(Case("view.flat", [(randn(3, 7), True)], lambda x: x.reshape(21), args=[21]))
    C.append(Case("transpose.2d", [(randn(5, 7), True)], lambda x: x.transpose(0, 1).contiguous(), args=[0, 1]))
    C.append(Case("transpose.4d_13", [(randn(2, 3, 4, 5), True)], lambda x: x.transpose(1, 3).contiguous(), args=[1, 3]))
    C.append(Case("transpose.3d_neg", [(randn(3, 4, 5), True)], lambda x: x.transpose(-1, 0).contiguous(), args=[-1, 0]))
    C.append(Case("transpose.4d_12", [(randn(2, 3, 5, 4), True)], lambda x: x.transpose(1, 2).contiguous(), args=[1, 2]))

    wide = torch.cat([randn(77, scale=2.0), torch.tensor([-12.0, -7.5, 7.5, 12.0, 25.0, -25.0, 0.25])])
    C.append(Case("relu.3d", [(randn(3, 5, 7), True)], F.relu))
    rz = randn(4, 6)
    rz[0, :3] = 0.0  # relu'(0) = 0, as PyTorch
    rz[2, 1] = -0.0
    C.append(Case("relu.zeros", [(rz, True)], F.relu))
    C.append(Case("gelu.wide", [(wide.reshape(12, 7), True)], lambda x: F.gelu(x, approximate="tanh")))
    C.append(Case("tanh.wide", [(wide.reshape(7, 12), True)], torch.tanh))

    C.append(Case("softmax.3d", [(randn(3, 5, 7, scale=2.0), True)], lambda x: torch.softmax(x, -1)))
    big = randn(4, 11, scale=3.0)
    big[0] += 80.0  # would overflow exp without subtracting the row max
    big[1] -= 90.0
    big[2, 3] = 60.0  # one dominant entry
    C.append(Case("softmax.large", [(big, True)], lambda x: torch.softmax(x, -1)))
    C.append(Case("softmax.1col", [(randn(5, 1), True)], lambda x: torch.softmax(x, -1)))

    C.append(Case("layernorm.bias", [(randn(3, 5, 13, scale=2.0, shift=0.7), True), (randn(13, shift=1.0), True),
                                     (randn(13), True)],
                  lambda x, w, b: F.layer_norm(x, (13,), w, b, 1e-5), args=[1e-5]))
    C.append(Case("layernorm.nobias", [(randn(7, 9, shift=-1.0), True), (randn(9, shift=1.0), True)],
                  lambda x, w: F.layer_norm(x, (9,), w, None, 1e-5), args=[1e-5]))
    lc = randn(3, 8, shift=0.5)
    lc[1] = 2.5  # a constant row: variance 0, the output is the bias
    C.append(Case("layernorm.const_row", [(lc, True), (randn(8, shift=1.0), True), (randn(8), True)],
                  lambda x, w, b: F.layer_norm(x, (8,), w, b, 1e-5), args=[1e-5]))
    C.append(Case("layernorm.eps", [(randn(4, 6, scale=0.05), True), (randn(6), True), (randn(6), True)],
                  lambda x, w, b: F.layer_norm(x, (6,), w, b, 1e-2), args=[1e-2]))

    ids = torch.tensor([[3, 0, 8, 3, 5], [8, 8, 1, 0, 3], [2, 7, 3, 6, 4]], dtype=torch.int32)  # repeats
    C.append(Case("embedding.2d", [(ids, False), (randn(9, 5), True)], lambda i, t: F.embedding(i, t)))
    C.append(Case("embedding.1d", [(torch.tensor([4, 4, 4, 0], dtype=torch.int32), False), (randn(5, 3), True)],
                  lambda i, t: F.embedding(i, t)))

    # Dropout: only where it is the identity (the mask RNG is dsc's own, not PyTorch's).
    C.append(Case("dropout.eval", [(randn(3, 7), True)], lambda x: x, args=[0.4, 0]))  # p=0.4, eval mode
    C.append(Case("dropout.p0", [(randn(2, 3, 5), True)], lambda x: x, args=[0.0, 1]))  # p=0, training mode

    for (b, t, c, h) in [(2, 7, 12, 3), (1, 5, 15, 5), (3, 4, 6, 1), (2, 1, 8, 2)]:
        C.append(Case("attention.b%dt%dc%dh%d" % (b, t, c, h), [(randn(b, t, 3 * c), True)],
                      lambda x, h=h: attention_ref(x, h), args=[h]))

    logits = randn(3, 5, 7, scale=2.0)
    logits[1, 2] += 40.0  # large logits: needs a stable log-sum-exp
    tg = randint(0, 7, 3, 5)
    tg[0, 1] = -100
    tg[2, 4] = -100
    C.append(Case("cross_entropy.ignore", [(logits, True), (tg, False)],
                  lambda x, t: cross_entropy_ref(x, t, -100), args=[-100]))
    tg2 = torch.tensor([2, 0, 2, 5, 1, 2], dtype=torch.int32)
    C.append(Case("cross_entropy.ignore_class", [(randn(6, 6), True), (tg2, False)],  # ignore_index = 2, a class
                  lambda x, t: cross_entropy_ref(x, t, 2), args=[2]))
    C.append(Case("cross_entropy.2d", [(randn(4, 11), True), (randint(0, 11, 4), False)],
                  lambda x, t: cross_entropy_ref(x, t, -1), args=[-1]))
    C.append(Case("cross_entropy.all_ignored", [(randn(2, 5), True), (torch.full((2,), -1, dtype=torch.int32), False)],
                  lambda x, t: cross_entropy_ref(x, t, -1), args=[-1]))

    C.append(Case("mse.3d", [(randn(3, 5, 7), True), (randn(3, 5, 7), True)], F.mse_loss))
    C.append(Case("mse.1d", [(randn(11), True), (randn(11, shift=0.3), True)], F.mse_loss))

    cv = cast_values(64).reshape(8, 8)
    C.append(Case("cast.bf16", [(cv, True)], lambda x: x.to(torch.bfloat16).to(torch.float32), exact=True))
    C.append(Case("cast.f16", [(cv, True)], lambda x: x.to(torch.float16).to(torch.float32), exact=True))
    C.append(Case("cast.f64", [(randn(3, 5), True)], lambda x: x.to(torch.float64).to(torch.float32), exact=True))
    return C


def main():
    torch.set_num_threads(1)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.path.join(root, "tests", "golden", "ops", "ops.gold")
    w = GoldenWriter()
    report = []
    cases = build_cases()
    for case in cases:
        emit_case(w, case, report)
    size = w.write(path)
    for name, worst in report:
        print("  %-28s torch f32 worst %.2e" % (name, worst))
    print("gen_golden_ops: %d cases, %d records, %d bytes -> %s" % (len(cases), len(w.records), size,
                                                                   os.path.relpath(path, root)))


if __name__ == "__main__":
    main()
