#!/usr/bin/env python3
"""Interoperability of dsc's safetensors files with the Hugging Face `safetensors` package.

    check_safetensors.py <st_interop_helper> <work_dir>

1. dsc writes (st_interop_helper write); safetensors.numpy.load_file reads: names, shapes,
   dtypes, values and metadata must match what dsc was asked to write. numpy has no
   bfloat16, so the bf16 file is read with safetensors.deserialize (raw bytes) instead.
2. safetensors.numpy.save_file writes; dsc reads (st_interop_helper read): same checks.

Prints "SKIP: <reason>" and exits 77 (ctest's skip code) when numpy or safetensors is
missing; under CI (CI=true) that is a failure instead (interop_skip.py).
"""
import os
import subprocess
import sys

from interop_skip import skip

try:
    import numpy as np
except ImportError as e:  # pragma: no cover
    skip(f"numpy is not importable by {sys.executable} ({e})")
try:
    import safetensors
    from safetensors.numpy import load_file, save_file
except ImportError as e:
    skip(f"the safetensors package is not importable by {sys.executable} ({e}); pip install safetensors")

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print(f"FAIL: {what}")


def expected_main():
    i = np.arange
    return {
        "f32": (i(105, dtype=np.float64) * 0.5 - 10.0).astype(np.float32).reshape(3, 5, 7),
        "f16": ((i(21) % 50) * 0.25 - 3.0).astype(np.float16).reshape(7, 3),
        "i32": (i(11, dtype=np.int64) ** 2 - 50).astype(np.int32),
        "f64": (i(6, dtype=np.float64) / 3.0).reshape(2, 3),
        "scalar": np.array(3.5, dtype=np.float32),
        "empty": np.zeros((0, 4), dtype=np.float32),
        "w@10:14": (10.0 + i(4)).astype(np.float32),
    }


def dsc_writes(helper, work):
    subprocess.run([helper, "write", work], check=True)
    main_path = os.path.join(work, "interop_main.safetensors")
    got = load_file(main_path)
    want = expected_main()
    check(sorted(got) == sorted(want), f"names {sorted(got)} != {sorted(want)}")
    for name, w in want.items():
        g = got.get(name)
        if g is None:
            continue
        check(g.dtype == w.dtype, f"{name}: dtype {g.dtype} != {w.dtype}")
        check(g.shape == w.shape, f"{name}: shape {g.shape} != {w.shape}")
        check(np.array_equal(g, w), f"{name}: values differ")
    with safetensors.safe_open(main_path, framework="np") as f:
        meta = f.metadata()
    check(meta == {"format": "pt", "producer": "dsc"}, f"metadata {meta}")

    bf_path = os.path.join(work, "interop_bf16.safetensors")
    with open(bf_path, "rb") as fh:
        entries = dict(safetensors.deserialize(fh.read()))
    check(sorted(entries) == ["bf16", "f32b"], f"bf16 file names {sorted(entries)}")
    bf = entries.get("bf16", {})
    check(str(bf.get("dtype")).upper() in ("BF16", "BFLOAT16"), f"bf16 dtype {bf.get('dtype')}")
    check(list(bf.get("shape", [])) == [4, 6], f"bf16 shape {bf.get('shape')}")
    raw = np.frombuffer(bytes(bf.get("data", b"")), dtype="<u2").astype(np.uint32) << 16
    vals = raw.view(np.float32)
    check(np.array_equal(vals, (np.arange(24) - 12) * 0.5), "bf16 values differ")
    f32b = entries.get("f32b", {})
    check(np.array_equal(np.frombuffer(bytes(f32b.get("data", b"")), dtype="<f4"), [1.0, 2.0]), "f32b values")


def python_writes(helper, work):
    rng = np.random.default_rng(1234)
    tensors = {
        "weight": rng.standard_normal((4, 5, 3)).astype(np.float32),
        "half": rng.standard_normal((3, 7)).astype(np.float16),
        "ids": rng.integers(-1000, 1000, size=(9,)).astype(np.int32),
        "dbl": rng.standard_normal((2, 2)),
        "zero": np.zeros((0,), dtype=np.float32),
    }
    path = os.path.join(work, "from_python.safetensors")
    save_file(tensors, path, metadata={"format": "np", "who": "python"})
    out = subprocess.run([helper, "read", path], check=True, capture_output=True, text=True).stdout
    seen = {}
    meta = {}
    for line in out.splitlines():
        parts = line.split(" ")
        if parts[0] == "meta":
            meta[parts[1]] = " ".join(parts[2:])
            continue
        seen[parts[0]] = (parts[1], parts[2], [float(x) for x in parts[3:]])
    check(meta == {"format": "np", "who": "python"}, f"dsc read metadata {meta}")
    names = {np.float32: "F32", np.float16: "F16", np.int32: "I32", np.float64: "F64"}
    check(sorted(seen) == sorted(tensors), f"dsc read names {sorted(seen)}")
    for name, t in tensors.items():
        if name not in seen:
            continue
        dt, shape, vals = seen[name]
        check(dt == names[t.dtype.type], f"{name}: dsc read dtype {dt}")
        check(shape == "[" + ",".join(str(d) for d in t.shape) + "]", f"{name}: dsc read shape {shape}")
        check(np.array_equal(np.array(vals, dtype=np.float64), t.astype(np.float64).reshape(-1)),
              f"{name}: dsc read values differ")


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    helper, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    dsc_writes(helper, work)
    python_writes(helper, work)
    print(f"check_safetensors: safetensors {safetensors.__version__}, numpy {np.__version__}: "
          f"{'FAILED' if failures else 'ok'} ({len(failures)} failures)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
