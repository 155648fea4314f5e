#!/usr/bin/env python3
"""The Hugging Face GPT-2 export of `dsc zero-to-fp32` against the Python packages.

    check_hf_gpt2.py numpy|transformers <hf_gpt2_export> <dsc> <work_dir>

Both modes: hf_gpt2_export (tests/interop/hf_gpt2_export.c) trains a tiny GPT (2 layers,
4 heads, width 32, vocabulary 50, context 16) for 3 steps, saves it as `dsc train --save`
does, and records dsc's logits for 2 x 16 tokens; `dsc zero-to-fp32` then exports it with
the default layout (auto, which must pick hf-gpt2) and --hf-config, and with --layout dsc.

numpy: safetensors.numpy reads both files: metadata {"format": "pt"}, the same names, the
  four Conv1D weights of each block exactly the transpose of the dsc layout's, every other
  tensor identical, no lm_head.weight, and config.json's fields.
transformers: GPT2LMHeadModel.from_pretrained loads the export with no missing, unexpected
  or mismatched key; GPT2Model.load_state_dict(file, strict=True) and
  GPT2LMHeadModel.load_state_dict({"transformer." + name: ..., "lm_head.weight": wte},
  strict=True) succeed with every shape equal; lm_head is tied to wte; and the logits of
  the loaded model equal dsc's within 1e-4 (fp32; both compute the same GPT-2).

Prints "SKIP: <reason>" and exits 77 (ctest's skip code) when a package is missing; under CI
(CI=true) that is a failure instead (interop_skip.py).
"""
import json
import os
import shutil
import subprocess
import sys

from interop_skip import skip
mode = sys.argv[1] if len(sys.argv) == 5 else None
if mode not in ("numpy", "transformers"):
    print(__doc__)
    sys.exit(2)
helper, dsc, work = sys.argv[2:5]

try:
    import numpy as np
    from safetensors import safe_open
    from safetensors.numpy import load_file
except ImportError as e:
    skip(f"numpy or safetensors is not importable by {sys.executable} ({e}); pip install numpy safetensors")
if mode == "transformers":
    try:
        import torch
        import transformers
    except ImportError as e:
        skip(f"torch or transformers is not importable by {sys.executable} ({e}); `make test` makes a venv "
             "with them (Debian's python3-torch + tests/interop/requirements.txt), or configure with "
             "-DDSC_HF_PYTHON=<a python that has them>")

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print(f"FAIL: {what}")


CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")

shutil.rmtree(work, ignore_errors=True)
os.makedirs(os.path.join(work, "hf"))
subprocess.run([helper, "save", work], check=True)
ckpt = os.path.join(work, "ckpt")
hf_file = os.path.join(work, "hf", "model.safetensors")
hf_config = os.path.join(work, "hf", "config.json")
raw_file = os.path.join(work, "dsc_layout.safetensors")
res = subprocess.run([dsc, "zero-to-fp32", ckpt, hf_file, "--hf-config", hf_config], check=True,
                     capture_output=True, text=True)
print(res.stdout, end="")
check("layout hf-gpt2 (auto" in res.stdout, "the default layout of a `dsc train` checkpoint is hf-gpt2")
subprocess.run([dsc, "zero-to-fp32", ckpt, raw_file, "--layout", "dsc"], check=True, capture_output=True)
expected = load_file(os.path.join(work, "expected.safetensors"))
with open(hf_config) as f:
    cfg = json.load(f)
want_cfg = {"model_type": "gpt2", "n_layer": 2, "n_head": 4, "n_embd": 32, "vocab_size": 50, "n_positions": 16,
            "activation_function": "gelu_new", "tie_word_embeddings": True, "layer_norm_epsilon": 1e-5}
for k, v in want_cfg.items():
    check(cfg.get(k) == v, f"config.json {k} = {cfg.get(k)!r}, want {v!r}")

if mode == "numpy":
    with safe_open(hf_file, framework="numpy") as f:
        check(f.metadata() == {"format": "pt"}, f"metadata {f.metadata()}")
    hf = load_file(hf_file)
    raw = load_file(raw_file)
    check(sorted(hf) == sorted(raw), "the two layouts hold the same names")
    check(len(hf) == 4 + 12 * 2 and "lm_head.weight" not in hf, f"{len(hf)} tensors: {sorted(hf)}")
    n_t = 0
    for name, a in hf.items():
        r = raw[name]
        if name.endswith(CONV1D):
            n_t += 1
            check(a.shape == (r.shape[1], r.shape[0]), f"{name}: shape {a.shape}, dsc layout {r.shape}")
            check(a.dtype == np.float32 and np.array_equal(a, r.T), f"{name}: not the transpose of the dsc layout")
        else:
            check(a.shape == r.shape and np.array_equal(a, r), f"{name}: differs from the dsc layout")
    check(n_t == 8, f"{n_t} Conv1D weights")
    check(hf["h.0.attn.c_attn.weight"].shape == (32, 96) and hf["h.1.mlp.c_proj.weight"].shape == (128, 32),
          "Conv1D shapes are [in, out]")
else:
    from safetensors.torch import load_file as load_torch
    model, info = transformers.GPT2LMHeadModel.from_pretrained(os.path.join(work, "hf"), output_loading_info=True)
    # transformers before 4.31 lists the attention mask buffers (not parameters) as missing.
    missing = [k for k in info["missing_keys"] if not k.endswith((".attn.bias", ".attn.masked_bias"))]
    check(not missing and not info["unexpected_keys"] and not info["mismatched_keys"], f"from_pretrained: {info}")
    sd = load_torch(hf_file)
    base = transformers.GPT2Model(model.config)
    base_sd = base.state_dict()
    for k, v in sd.items():
        check(k in base_sd and tuple(base_sd[k].shape) == tuple(v.shape), f"{k}: shape {tuple(v.shape)} vs GPT2Model")
    try:
        base.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        check(False, f"GPT2Model.load_state_dict(strict=True): {e}")
    full = {"transformer." + k: v for k, v in sd.items()}
    full["lm_head.weight"] = sd["wte.weight"]
    lm = transformers.GPT2LMHeadModel(model.config)
    try:
        lm.load_state_dict(full, strict=True)
    except RuntimeError as e:
        check(False, f"GPT2LMHeadModel.load_state_dict(strict=True): {e}")
    check(model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr(), "lm_head is not tied to wte")
    model.eval()
    tokens = torch.from_numpy(expected["tokens"].astype(np.int64))
    with torch.no_grad():
        logits = model(tokens).logits.numpy()
    want = expected["logits"]
    diff = float(np.max(np.abs(logits - want)))
    print(f"transformers {transformers.__version__}, torch {torch.__version__}: logits {logits.shape}, "
          f"max |transformers - dsc| = {diff:.3g} (logits up to {float(np.max(np.abs(want))):.3g})")
    check(logits.shape == want.shape and diff < 1e-4, f"logits differ from dsc's by {diff}")

if failures:
    print(f"{len(failures)} check(s) failed")
    sys.exit(1)
print(f"check_hf_gpt2 {mode}: all checks passed")
