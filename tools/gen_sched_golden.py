#!/usr/bin/env python3
"""Golden LR / momentum sequences for dsc's DeepSpeed schedulers (tests/unit/test_sched.c).

DeepSpeed itself is NOT installed here. This script re-implements, in float64 Python, the
scheduler formulas of DeepSpeed's deepspeed/runtime/lr_schedules.py as restated in
/work/shared/reference/deepspeed_spec.md §2 (DeepSpeed commit edaa7221, v0.19.6 dev head),
keeping DeepSpeed's operation order and int->float conversions so that the sequences are
what DeepSpeed's Python computes. It models the optimizer as a list of param groups and
replays DeepSpeed's stepping: construction at last_batch_iteration = -1 writes the initial
values (row 0), then each step() writes row k (it = k - 1).

Checks done here before writing anything:
  * every worked example of spec §2 (to the digits printed in the spec);
  * where torch has an equivalent, a cross-check against torch.optim.lr_scheduler.LambdaLR
    (LRRangeTest, WarmupLR, WarmupDecayLR, WarmupCosineLR) to 1e-12 relative. The DeepSpeed
    formulas stay the reference; torch only confirms the step counting (torch's epoch e is
    DeepSpeed's it = e - 1) and the shapes.

Output: tests/golden/sched/cases.txt (manifest: parameters of each case) and one
<case>.f64 per case: little-endian float64, row-major, (steps + 1) rows; columns are the lr of
each param group, then (when the scheduler writes momentum) beta1 of each group.

Usage: python3 tools/gen_sched_golden.py [--out tests/golden/sched]
"""
import argparse
import math
import os
import struct
import sys

STEPS = 2000


# ---------------------------------------------------------------------------------------
# Re-implementation of DeepSpeed's schedulers (spec §2). Each class exposes
#   init_values() -> (lrs, moms or None)   values written by the constructor at it = -1
#   values(it)    -> (lrs, moms or None)   values written by step() reaching `it`
# ---------------------------------------------------------------------------------------

def per_group(value, n, name):
    """DeepSpeed's _format_param: broadcast a scalar or check a per-group list."""
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError("expected {} value for {}, got {}".format(n, name, len(value)))
        return list(value)
    return [value] * n


class LRRangeTest:
    def __init__(self, groups, lr_range_test_min_lr=1e-3, lr_range_test_step_size=2000,
                 lr_range_test_step_rate=1.0, lr_range_test_staircase=False, last_batch_iteration=-1):
        n = len(groups)
        self.min_lr = per_group(lr_range_test_min_lr, n, "lr_range_test_min_lr")
        if not isinstance(lr_range_test_step_size, int) or lr_range_test_step_size <= 0:
            raise ValueError("lr_range_test_step_size must be a positive integer")
        self.size = lr_range_test_step_size
        self.rate = lr_range_test_step_rate
        self.stair = lr_range_test_staircase

    def init_values(self):
        return list(self.min_lr), None

    def values(self, it):
        if self.stair:
            interval = math.floor(float(it + 1) / self.size)
        else:
            interval = float(it + 1) / self.size
        inc = 1 + self.rate * interval
        return [m * inc for m in self.min_lr], None


class OneCycle:
    def __init__(self, groups, cycle_min_lr, cycle_max_lr, decay_lr_rate=0., cycle_first_step_size=2000,
                 cycle_second_step_size=None, cycle_first_stair_count=0, cycle_second_stair_count=None,
                 decay_step_size=0, cycle_momentum=True, cycle_min_mom=0.8, cycle_max_mom=0.9, decay_mom_rate=0.,
                 last_batch_iteration=-1, has_betas=True, ds_betas=True):
        n = len(groups)
        s1 = float(cycle_first_step_size)
        s2 = float(cycle_second_step_size) if cycle_second_step_size is not None else s1
        if s1 <= 0 or s2 < 0:
            raise ValueError("bad cycle step sizes")
        self.s1, self.s2 = s1, s2
        self.total = s1 + s2
        self.ratio = s1 / self.total
        self.stairs1 = cycle_first_stair_count
        self.stairs2 = cycle_first_stair_count if cycle_second_stair_count is None else cycle_second_stair_count
        self.dss = decay_step_size
        self.skip_lr = math.isclose(decay_step_size, 0) or math.isclose(decay_lr_rate, 0)
        self.skip_mom = math.isclose(decay_step_size, 0) or math.isclose(decay_mom_rate, 0)
        self.lo = per_group(cycle_min_lr, n, "cycle_min_lr")
        self.hi = per_group(cycle_max_lr, n, "cycle_max_lr")
        self.dlr = decay_lr_rate
        self.mom = cycle_momentum and has_betas
        self.ds_betas = ds_betas
        if self.mom:
            self.mlo = per_group(cycle_min_mom, n, "cycle_min_mom")
            self.mhi = per_group(cycle_max_mom, n, "cycle_max_mom")
            self.dmr = decay_mom_rate

    def scale(self, it):
        b = it + 1
        cycle = math.floor(1 + b / self.total)
        x = 1. + b / self.total - cycle
        if x <= self.ratio:
            sf, stairs = x / self.ratio, self.stairs1
        else:
            sf, stairs = (x - 1) / (self.ratio - 1), self.stairs2
        if stairs > 0:
            c = b % self.total
            if c <= self.s1:
                pos = c * stairs / self.s1
            else:
                pos = (self.total - c) * stairs / self.s2
            sf = math.floor(pos) / stairs
        return sf

    def init_values(self):
        lrs = list(self.lo)
        if not self.mom:
            return lrs, None
        if self.ds_betas:  # DeepSpeed writes (cycle_min_mom, 0.99) at construction
            return lrs, list(self.mlo)
        return lrs, self.values(-1)[1]

    def values(self, it):
        if it < self.total:
            sf = self.scale(it)
            lrs = [lo + (hi - lo) * sf for lo, hi in zip(self.lo, self.hi)]
            moms = [hi - (hi - lo) * sf for lo, hi in zip(self.mlo, self.mhi)] if self.mom else None
            return lrs, moms
        d = it - self.total + 1
        if self.skip_lr:
            lrs = list(self.lo)
        else:
            f = 1 + self.dlr * (d / self.dss)
            lrs = [lo / f for lo in self.lo]
        moms = None
        if self.mom:
            if self.skip_mom:
                moms = list(self.mhi)
            else:
                f = 1 + self.dmr * (d / self.dss)
                moms = [hi * f for hi in self.mhi]
        return lrs, moms


class WarmupLR:
    decay = False

    def __init__(self, groups, warmup_min_lr=0.0, warmup_max_lr=None, warmup_num_steps=1000, warmup_type="log",
                 last_batch_iteration=-1, total_num_steps=None):
        if not isinstance(warmup_num_steps, int) or warmup_num_steps <= 0:
            raise ValueError("warmup_num_steps must be a positive integer")
        n = len(groups)
        if warmup_max_lr is None:
            warmup_max_lr = [g["lr"] for g in groups]
        self.lo = per_group(warmup_min_lr, n, "min_lr")
        self.hi = per_group(warmup_max_lr, n, "max_lr")
        self.delta = [h - l for h, l in zip(self.hi, self.lo)]
        self.W = max(2, warmup_num_steps)
        self.wtype = warmup_type if warmup_type in ("log", "linear") else "log"
        self.inv_log = 1.0 / math.log(self.W)
        self.total = total_num_steps

    def warm(self, it):
        if self.wtype == "log":
            return self.inv_log * math.log(it + 1)
        return it / self.W

    def gamma(self, it):
        if it < self.W:
            return self.warm(it)
        if not self.decay:
            return 1.0
        return max(0.0, float(self.total - it) / float(max(1.0, self.total - self.W)))

    def init_values(self):
        return self.values(-1)

    def values(self, it):
        if it < 0:
            return list(self.lo), None
        g = self.gamma(it)
        return [lo + d * g for lo, d in zip(self.lo, self.delta)], None


class WarmupDecayLR(WarmupLR):
    decay = True

    def __init__(self, groups, total_num_steps, warmup_min_lr=0.0, warmup_max_lr=0.001, warmup_num_steps=1000,
                 warmup_type="log", last_batch_iteration=-1):
        super().__init__(groups, warmup_min_lr, warmup_max_lr, warmup_num_steps, warmup_type, last_batch_iteration,
                         total_num_steps)


class WarmupCosineLR:
    def __init__(self, groups, total_num_steps, warmup_min_ratio=0.0, warmup_num_steps=1000, cos_min_ratio=0.0001,
                 warmup_type="log", last_batch_iteration=-1):
        if not isinstance(warmup_num_steps, int) or warmup_num_steps <= 0:
            raise ValueError("warmup_num_steps must be a positive integer")
        self.total = total_num_steps
        self.wmin = warmup_min_ratio
        self.cmin = cos_min_ratio
        self.W = max(2, warmup_num_steps)
        self.wtype = warmup_type if warmup_type in ("log", "linear") else "log"
        self.inv_log = 1.0 / math.log(self.W)
        self.org = [g["lr"] for g in groups]

    def ratio(self, it):
        if it < self.W:
            r = self.inv_log * math.log(it + 1) if self.wtype == "log" else it / self.W
            return self.wmin + r * (1. - self.wmin)
        real_last = it - self.W + 1
        real_total = max(1, self.total - self.W)
        q = min(1.0, real_last / real_total)
        r = (1 + math.cos(math.pi * q)) / 2
        return max(0.0, self.cmin + (1. - self.cmin) * r)

    def init_values(self):
        return self.values(-1)

    def values(self, it):
        if it < 0:
            return [0.0 for _ in self.org], None
        r = self.ratio(it)
        return [o * r for o in self.org], None


CLASSES = {"LRRangeTest": LRRangeTest, "OneCycle": OneCycle, "WarmupLR": WarmupLR,
           "WarmupDecayLR": WarmupDecayLR, "WarmupCosineLR": WarmupCosineLR}


def build(case):
    groups = [{"lr": lr} for lr in case["base_lrs"]]
    kw = dict(case["params"])
    if case["type"] == "OneCycle":
        kw["has_betas"] = case.get("has_betas", True)
        kw["ds_betas"] = case.get("ds_betas", True)
    return CLASSES[case["type"]](groups, **kw)


def run(case, steps=STEPS):
    """Rows: construction, then after each of `steps` step() calls. Mirrors the optimizer's
    param groups, so a construction with last_batch_iteration != -1 leaves the base lrs."""
    s = build(case)
    it = case["params"].get("last_batch_iteration", -1)
    if it == -1:
        lrs, moms = s.init_values()
    else:
        lrs, moms = list(case["base_lrs"]), None
    rows = [(lrs, moms)]
    for _ in range(steps):
        it += 1
        rows.append(s.values(it))
    return rows


# ---------------------------------------------------------------------------------------
# The cases (>= 3 per scheduler, 2,000 steps each)
# ---------------------------------------------------------------------------------------

CASES = [
    # LRRangeTest
    dict(name="lrrt_defaults", type="LRRangeTest", base_lrs=[0.001], params={}),
    dict(name="lrrt_spec_continuous", type="LRRangeTest", base_lrs=[0.001],
         params=dict(lr_range_test_min_lr=1e-4, lr_range_test_step_size=100, lr_range_test_step_rate=5.0)),
    dict(name="lrrt_staircase_groups", type="LRRangeTest", base_lrs=[0.001, 0.002],
         params=dict(lr_range_test_min_lr=[1e-3, 5e-4], lr_range_test_step_size=10, lr_range_test_staircase=True)),
    dict(name="lrrt_stair_odd", type="LRRangeTest", base_lrs=[0.01],
         params=dict(lr_range_test_min_lr=0.01, lr_range_test_step_size=37, lr_range_test_step_rate=0.3,
                     lr_range_test_staircase=True)),
    # OneCycle
    dict(name="onecycle_spec", type="OneCycle", base_lrs=[0.001],
         params=dict(cycle_min_lr=1e-4, cycle_max_lr=1e-3, cycle_first_step_size=10, cycle_second_step_size=10,
                     decay_step_size=5, decay_lr_rate=0.5, cycle_min_mom=0.8, cycle_max_mom=0.9,
                     decay_mom_rate=0.1)),
    dict(name="onecycle_asym_stairs_groups", type="OneCycle", base_lrs=[0.001, 0.001],
         params=dict(cycle_min_lr=[1e-4, 2e-5], cycle_max_lr=[1e-3, 4e-4], cycle_first_step_size=300,
                     cycle_second_step_size=700, cycle_first_stair_count=3, cycle_second_stair_count=5,
                     decay_step_size=50, decay_lr_rate=0.1, cycle_min_mom=[0.85, 0.8],
                     cycle_max_mom=[0.95, 0.9])),
    dict(name="onecycle_defaults_no_betas", type="OneCycle", base_lrs=[0.001], has_betas=False,
         params=dict(cycle_min_lr=1e-5, cycle_max_lr=1e-2)),
    dict(name="onecycle_second_zero", type="OneCycle", base_lrs=[0.001],
         params=dict(cycle_min_lr=0.0, cycle_max_lr=1.0, cycle_first_step_size=7, cycle_second_step_size=0,
                     cycle_first_stair_count=2, decay_step_size=3, decay_lr_rate=1.0, decay_mom_rate=0.05)),
    dict(name="onecycle_fixed_betas", type="OneCycle", base_lrs=[0.001], ds_betas=False,
         params=dict(cycle_min_lr=3e-4, cycle_max_lr=3e-3, cycle_first_step_size=333, cycle_second_step_size=444,
                     cycle_first_stair_count=0, cycle_second_stair_count=4, decay_step_size=100,
                     decay_lr_rate=0.25)),
    dict(name="onecycle_momentum_off", type="OneCycle", base_lrs=[0.001],
         params=dict(cycle_min_lr=1e-4, cycle_max_lr=1e-3, cycle_first_step_size=500, cycle_momentum=False,
                     decay_step_size=10, decay_lr_rate=0.01)),
    # WarmupLR
    dict(name="warmuplr_defaults", type="WarmupLR", base_lrs=[0.001], params={}),
    dict(name="warmuplr_spec_linear", type="WarmupLR", base_lrs=[0.001],
         params=dict(warmup_min_lr=0.001, warmup_max_lr=0.01, warmup_num_steps=10, warmup_type="linear")),
    dict(name="warmuplr_one_step_groups", type="WarmupLR", base_lrs=[0.1, 0.2, 0.3],
         params=dict(warmup_min_lr=[0.0, 0.01, 0.02], warmup_num_steps=1)),
    dict(name="warmuplr_log_odd", type="WarmupLR", base_lrs=[0.001],
         params=dict(warmup_min_lr=1e-5, warmup_max_lr=3e-4, warmup_num_steps=777)),
    dict(name="warmuplr_resume_at_99", type="WarmupLR", base_lrs=[0.005],
         params=dict(warmup_max_lr=0.01, warmup_num_steps=500, warmup_type="linear", last_batch_iteration=99)),
    # WarmupDecayLR
    dict(name="warmupdecay_spec_linear", type="WarmupDecayLR", base_lrs=[0.001],
         params=dict(total_num_steps=100, warmup_min_lr=0.0, warmup_max_lr=0.01, warmup_num_steps=10,
                     warmup_type="linear")),
    dict(name="warmupdecay_log", type="WarmupDecayLR", base_lrs=[0.001],
         params=dict(total_num_steps=1500, warmup_num_steps=200)),
    dict(name="warmupdecay_total_lt_warmup_groups", type="WarmupDecayLR", base_lrs=[1e-3, 2e-3],
         params=dict(total_num_steps=50, warmup_max_lr=None, warmup_num_steps=100, warmup_type="linear")),
    dict(name="warmupdecay_defaults", type="WarmupDecayLR", base_lrs=[0.001],
         params=dict(total_num_steps=2000)),
    # WarmupCosineLR
    dict(name="warmupcos_spec_linear", type="WarmupCosineLR", base_lrs=[1e-3],
         params=dict(total_num_steps=100, warmup_num_steps=10, warmup_min_ratio=0.0, cos_min_ratio=1e-4,
                     warmup_type="linear")),
    dict(name="warmupcos_spec_log", type="WarmupCosineLR", base_lrs=[1e-3],
         params=dict(total_num_steps=100, warmup_num_steps=10, warmup_min_ratio=0.1, cos_min_ratio=0.01)),
    dict(name="warmupcos_defaults_groups", type="WarmupCosineLR", base_lrs=[1e-3, 3e-4],
         params=dict(total_num_steps=1800)),
    dict(name="warmupcos_total_le_warmup", type="WarmupCosineLR", base_lrs=[0.02],
         params=dict(total_num_steps=5, warmup_num_steps=10, warmup_type="linear", cos_min_ratio=0.05)),
]


# ---------------------------------------------------------------------------------------
# Spec §2 worked examples (printed digits) and torch cross-checks
# ---------------------------------------------------------------------------------------

def case_named(name):
    return next(c for c in CASES if c["name"] == name)


def at(case, it, col="lr", group=0):
    rows = run(case, steps=max(it + 2, 1))
    lrs, moms = rows[it + 1]
    return lrs[group] if col == "lr" else moms[group]


def near(got, want, digits_rel=1e-4, what=""):
    ok = abs(got - want) <= digits_rel * max(abs(want), 1e-300) or got == want
    if not ok:
        raise AssertionError("spec example {}: got {!r}, want {!r}".format(what, got, want))


def check_spec_examples():
    c = dict(type="LRRangeTest", base_lrs=[1.0],
             params=dict(lr_range_test_min_lr=1e-3, lr_range_test_step_size=10, lr_range_test_step_rate=1.0))
    cs = dict(c, params=dict(c["params"], lr_range_test_staircase=True))
    for it, cont, stair in [(-1, .001, .001), (0, .0011, .001), (4, .0015, .001), (9, .002, .002), (19, .003, .003),
                            (29, .004, .004)]:
        near(at(c, it), cont, 1e-12, "LRRT cont %d" % it)
        near(at(cs, it), stair, 1e-12, "LRRT stair %d" % it)
    c = dict(type="LRRangeTest", base_lrs=[1.0],
             params=dict(lr_range_test_min_lr=1e-4, lr_range_test_step_size=100, lr_range_test_step_rate=5))
    for it, want in [(0, 1.05e-4), (99, 6.0e-4), (199, 1.1e-3)]:
        near(at(c, it), want, 1e-12, "LRRT 2nd %d" % it)

    oc = case_named("onecycle_spec")
    table = [(-1, 1.0e-4, 0.8), (0, 1.9e-4, 0.89), (4, 5.5e-4, 0.85), (8, 9.1e-4, 0.81), (9, 1.0e-3, 0.80),
             (10, 9.1e-4, 0.81), (18, 1.9e-4, 0.89), (19, 1.0e-4, 0.90), (20, 9.0909e-5, 0.918),
             (24, 6.6667e-5, 0.99), (29, 5.0e-5, 1.08)]
    for it, lr, mom in table:
        near(at(oc, it), lr, 1e-4, "OneCycle lr %d" % it)
        near(at(oc, it, "mom"), mom, 1e-9, "OneCycle mom %d" % it)
    st = dict(type="OneCycle", base_lrs=[1.0], params=dict(cycle_min_lr=0.0, cycle_max_lr=1.0,
              cycle_first_step_size=10, cycle_second_step_size=10, cycle_first_stair_count=2))
    want = {**{i: 0.0 for i in range(0, 4)}, **{i: 0.5 for i in range(4, 9)}, 9: 1.0,
            **{i: 0.5 for i in range(10, 15)}, **{i: 0.0 for i in range(15, 20)}}
    for it, v in want.items():
        near(at(st, it), v, 1e-12, "OneCycle stairs %d" % it)
    asym = dict(type="OneCycle", base_lrs=[1.0], params=dict(cycle_min_lr=0.0, cycle_max_lr=1.0,
                cycle_first_step_size=4, cycle_second_step_size=12))
    for it, v in [(0, 0.25), (2, 0.75), (3, 1.0), (4, 0.91667), (10, 0.41667), (15, 0.0)]:
        near(at(asym, it), v, 1e-4, "OneCycle asym %d" % it)

    wl = dict(type="WarmupLR", base_lrs=[1.0],
              params=dict(warmup_min_lr=0.0, warmup_max_lr=0.01, warmup_num_steps=10, warmup_type="log"))
    for it, v in [(-1, 0.0), (0, 0.0), (1, 0.0030103), (2, 0.0047712), (5, 0.0077815), (9, 0.01), (10, 0.01),
                  (50, 0.01)]:
        near(at(wl, it), v, 1e-4, "WarmupLR log %d" % it)
    wl = dict(type="WarmupLR", base_lrs=[1.0],
              params=dict(warmup_min_lr=0.001, warmup_max_lr=0.01, warmup_num_steps=10, warmup_type="linear"))
    for it, v in [(-1, 0.001), (0, 0.001), (1, 0.0019), (5, 0.0055), (9, 0.0091), (10, 0.01)]:
        near(at(wl, it), v, 1e-9, "WarmupLR linear %d" % it)
    wl = dict(type="WarmupLR", base_lrs=[1.0], params=dict(warmup_min_lr=0.0, warmup_max_lr=1.0,
              warmup_num_steps=1))
    near(at(wl, 0), 0.0, 1e-12, "WarmupLR W=1 it 0")
    near(at(wl, 1), 1.0, 1e-12, "WarmupLR W=1 it 1")

    wd = case_named("warmupdecay_spec_linear")
    for it, v in [(0, 0.0), (5, 0.005), (9, 0.009), (10, 0.01), (11, 0.0098889), (55, 0.005), (99, 1.1111e-4),
                  (100, 0.0), (150, 0.0)]:
        near(at(wd, it), v, 1e-4, "WarmupDecayLR linear %d" % it)
    wd = dict(type="WarmupDecayLR", base_lrs=[1.0], params=dict(total_num_steps=100, warmup_min_lr=0.0,
              warmup_max_lr=1e-3, warmup_num_steps=10, warmup_type="log"))
    for it, v in [(0, 0.0), (1, 3.0103e-4), (9, 1e-3), (10, 1e-3), (50, 5.5556e-4)]:
        near(at(wd, it), v, 1e-4, "WarmupDecayLR log %d" % it)

    wc = case_named("warmupcos_spec_linear")
    for it, v in [(-1, 0.0), (0, 0.0), (5, 5e-4), (9, 9e-4), (10, 9.99695e-4), (11, 9.98782e-4), (54, 5.0005e-4),
                  (55, 4.82602e-4), (100, 1e-7), (109, 1e-7), (110, 1e-7), (200, 1e-7)]:
        near(at(wc, it), v, 1e-5, "WarmupCosineLR linear %d" % it)
    wc = case_named("warmupcos_spec_log")
    for it, v in [(0, 1e-4), (1, 3.70927e-4), (9, 1e-3), (10, 9.99698e-4), (55, 4.87725e-4), (100, 1e-5)]:
        near(at(wc, it), v, 1e-5, "WarmupCosineLR log %d" % it)


def torch_crosscheck():
    """LambdaLR(base lr 1, lambda = DeepSpeed lr at it = epoch - 1) per group reproduces the
    DeepSpeed sequences; independent closed forms where they exist."""
    try:
        import torch
    except ImportError:
        print("torch not available: cross-check skipped", file=sys.stderr)
        return 0
    checked = 0
    for case in CASES:
        if case["type"] == "OneCycle" or case["params"].get("last_batch_iteration", -1) != -1:
            continue  # no torch equivalent (torch's OneCycleLR is a different schedule)
        rows = run(case)
        ng = len(case["base_lrs"])
        p = case["params"]
        # Independent closed forms written from the spec text (not sharing code with the classes).
        if case["type"] == "LRRangeTest":
            mins = per_group(p.get("lr_range_test_min_lr", 1e-3), ng, "x")
            size, rate = p.get("lr_range_test_step_size", 2000), p.get("lr_range_test_step_rate", 1.0)
            stair = p.get("lr_range_test_staircase", False)

            def lam_for(g):
                return lambda e: mins[g] * (1 + rate * ((e // size) if stair else e / size))
        elif case["type"] in ("WarmupLR", "WarmupDecayLR"):
            lo = per_group(p.get("warmup_min_lr", 0.0), ng, "x")
            default_hi = None if case["type"] == "WarmupLR" else 0.001
            hi = p.get("warmup_max_lr", default_hi)
            hi = list(case["base_lrs"]) if hi is None else per_group(hi, ng, "x")
            W = max(2, p.get("warmup_num_steps", 1000))
            lin = p.get("warmup_type", "log") == "linear"
            T = p.get("total_num_steps")

            def lam_for(g):
                def lam(e):
                    it = e - 1
                    if it < 0:
                        return lo[g]
                    if it < W:
                        gam = it / W if lin else math.log(it + 1) / math.log(W)
                    elif T is None:
                        gam = 1.0
                    else:
                        gam = max(0.0, (T - it) / max(1.0, T - W))
                    return lo[g] + (hi[g] - lo[g]) * gam
                return lam
        else:  # WarmupCosineLR
            W = max(2, p.get("warmup_num_steps", 1000))
            lin = p.get("warmup_type", "log") == "linear"
            T, wmin, cmin = p["total_num_steps"], p.get("warmup_min_ratio", 0.0), p.get("cos_min_ratio", 1e-4)
            base = case["base_lrs"]

            def lam_for(g):
                def lam(e):
                    it = e - 1
                    if it < 0:
                        return 0.0
                    if it < W:
                        r = it / W if lin else math.log(it + 1) / math.log(W)
                        r = wmin + r * (1 - wmin)
                    else:
                        q = min(1.0, (it - W + 1) / max(1, T - W))
                        r = max(0.0, cmin + (1 - cmin) * 0.5 * (1 + math.cos(math.pi * q)))
                    return base[g] * r
                return lam
        params = [torch.nn.Parameter(torch.zeros(1, dtype=torch.float64)) for _ in range(ng)]
        opt = torch.optim.SGD([{"params": [q], "lr": 1.0} for q in params], lr=1.0)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, [lam_for(g) for g in range(ng)])
        for k in range(len(rows)):
            for g in range(ng):
                got, want = opt.param_groups[g]["lr"], rows[k][0][g]
                if not (abs(got - want) <= 1e-12 * max(abs(want), abs(got), 1e-300)):
                    raise AssertionError("torch cross-check {} row {} group {}: torch {!r} vs {!r}".format(
                        case["name"], k, g, got, want))
            opt.step()
            sched.step()
        checked += 1
    return checked


# ---------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------

def fmt_value(v):
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, int):
        return str(v)
    return repr(float(v))


def write(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    lines = ["# Generated by tools/gen_sched_golden.py (DeepSpeed formulas re-implemented from spec §2;",
             "# DeepSpeed not installed). Do not edit. One block per case:",
             "#   case NAME / type T / groups N / base_lrs v... / has_betas 0|1 / ds_betas 0|1",
             "#   num NAME V | list NAME V... | str NAME S | null NAME      (scheduler.params)",
             "#   rows R / cols C / momentum 0|1 / file F / end",
             "# F: little-endian float64, R x C row-major; row 0 = construction, row k = after k steps;",
             "# columns: lr per group, then beta1 per group when momentum is 1."]
    total = 0
    for case in CASES:
        rows = run(case)
        ng = len(case["base_lrs"])
        has_mom = rows[0][1] is not None or rows[1][1] is not None
        for lrs, moms in rows[1:]:
            assert (moms is not None) == has_mom
        data = []
        for lrs, moms in rows:
            data.extend(lrs)
            if has_mom:
                data.extend(moms if moms is not None else [float("nan")] * ng)
        fname = case["name"] + ".f64"
        with open(os.path.join(out_dir, fname), "wb") as f:
            f.write(struct.pack("<%dd" % len(data), *data))
        total += 8 * len(data)
        lines.append("case " + case["name"])
        lines.append("type " + case["type"])
        lines.append("groups %d" % ng)
        lines.append("base_lrs " + " ".join(fmt_value(v) for v in case["base_lrs"]))
        lines.append("has_betas %d" % (1 if case.get("has_betas", True) else 0))
        lines.append("ds_betas %d" % (1 if case.get("ds_betas", True) else 0))
        for k, v in case["params"].items():
            if v is None:
                lines.append("null " + k)
            elif isinstance(v, str):
                lines.append("str %s %s" % (k, v))
            elif isinstance(v, (list, tuple)):
                lines.append("list %s %s" % (k, " ".join(fmt_value(x) for x in v)))
            else:
                lines.append("num %s %s" % (k, fmt_value(v)))
        lines.append("rows %d" % len(rows))
        lines.append("cols %d" % (ng * (2 if has_mom else 1)))
        lines.append("momentum %d" % (1 if has_mom else 0))
        lines.append("file " + fname)
        lines.append("end")
    with open(os.path.join(out_dir, "cases.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "golden", "sched"))
    args = ap.parse_args()
    check_spec_examples()
    n = torch_crosscheck()
    total = write(args.out)
    print("gen_sched_golden: %d cases x %d steps, %d bytes of sequences, %d cases cross-checked with torch"
          % (len(CASES), STEPS, total, n))


if __name__ == "__main__":
    main()
