#!/usr/bin/env python3
"""TensorBoard interop: dsc's event files read by TensorBoard's own EventAccumulator.

usage: check_tensorboard.py TB_INTEROP_HELPER OUTPUT_DIR

Runs the C helper (tests/interop/tb_interop_helper.c), which writes an event file through
dsc_monitor and prints every scalar it wrote as "tag step value", then loads the directory
with tensorboard.backend.event_processing.event_accumulator.EventAccumulator and compares
tags, steps and values (float32, as SummaryWriter.add_scalar stores them). Without the
tensorboard package it prints "SKIP: <reason>" and exits 77 (ctest counts it as skipped);
under CI (CI=true) that is a failure instead (interop_skip.py).
"""
import os
import re
import shutil
import socket
import struct
import subprocess
import sys

from interop_skip import skip


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    try:
        from tensorboard.backend.event_processing import event_accumulator
    except Exception as e:  # ImportError, or a broken install
        skip("the tensorboard Python package is not importable by %s (%s); pip install tensorboard to run this check"
             % (sys.executable, e))
    helper, out = sys.argv[1], sys.argv[2]
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    run = subprocess.run([helper, out], capture_output=True, text=True)
    if run.returncode != 0:
        print("FAIL: helper exited with %d: %s" % (run.returncode, run.stderr))
        return 1
    expected, path = {}, None
    for line in run.stdout.splitlines():
        if line.startswith("FILE "):
            path = line[5:]
            continue
        tag, step, value = line.split(" ")
        expected.setdefault(tag, []).append((int(step), float(value)))
    log_dir = os.path.join(out, "interop_job")
    name = os.path.basename(path or "")
    pattern = r"events\.out\.tfevents\.\d{10}\.%s\.\d+\.\d+$" % re.escape(socket.gethostname())
    if os.path.dirname(path or "") != log_dir or not re.match(pattern, name):
        print("FAIL: event file %r is not %s/<%s>" % (path, log_dir, pattern))
        return 1

    acc = event_accumulator.EventAccumulator(log_dir, size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    tags = sorted(acc.Tags()["scalars"])
    if tags != sorted(expected):
        print("FAIL: tags %s, expected %s" % (tags, sorted(expected)))
        return 1
    failures = 0
    for tag, want in expected.items():
        got = acc.Scalars(tag)
        if len(got) != len(want):
            print("FAIL: %s: %d events, expected %d" % (tag, len(got), len(want)))
            failures += 1
            continue
        for ev, (step, value) in zip(got, want):
            f32 = struct.unpack("<f", struct.pack("<f", value))[0]
            if ev.step != step or ev.value != f32 or not ev.wall_time > 1.5e9:
                print("FAIL: %s: got (step %d, value %r, wall_time %r), expected (%d, %r)"
                      % (tag, ev.step, ev.value, ev.wall_time, step, f32))
                failures += 1
    if failures:
        return 1
    n = sum(len(v) for v in expected.values())
    print("OK: TensorBoard's EventAccumulator read %d scalars in %d tags from %s" % (n, len(expected), name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
