#!/bin/sh
# Issue 21 item 3: dsc train's output. On an 80-column terminal (a pseudo-terminal made with
# python3's pty module) the progress bar is one updating line no wider than 79 columns and no
# log line shares its line; without a terminal, with --no-progress and under mpirun the output
# has plain lines and no carriage return; the validation loss reaches the csv and tensorboard
# monitors and `dsc plot`. Usage: train_output.sh DSC [MPIEXEC]
set -u
DSC=$1
MPIEXEC=${2:-}
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
command -v python3 > /dev/null || { echo "PASS (skipped: no python3 for the pseudo-terminal)"; exit 0; }
small="--layers 1 --embd 32 --heads 2 --context 16 --data README.md"
cr=$(printf '\r')

# Runs a command on an 80x24 pseudo-terminal; its output (stdout and stderr) goes to stdout.
cat > "$d/pty.py" <<'EOF'
import fcntl, os, struct, subprocess, sys, termios
master, slave = os.openpty()
fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
p = subprocess.Popen(sys.argv[1:], stdin=slave, stdout=slave, stderr=slave, close_fds=True)
os.close(slave)
out = b""
while True:
    try:
        chunk = os.read(master, 65536)
    except OSError:  # EIO: the terminal's last writer has gone
        break
    if not chunk:
        break
    out += chunk
sys.stdout.buffer.write(out)
sys.exit(p.wait())
EOF
# Checks a terminal transcript: every frame of the bar (a carriage-return-separated piece that
# holds "tok/s ETA") is a whole frame of at most 79 columns, and what each line finally shows
# (carriage returns and erase-to-end-of-line played as a terminal plays them) is a frame alone
# or text without one: no log line glued onto the bar. Prints the number of lines with frames.
cat > "$d/frames.py" <<'EOF'
import re, sys
text = open(sys.argv[1], "rb").read().decode("utf-8", "replace").replace("\r\n", "\n")
frame = re.compile(r"^\[[=> ]*\] \d+/\d+ loss [0-9.]+ lr [0-9.e+-]+ \d+ tok/s ETA \d+:\d\d$")
lines = 0
for line in text.split("\n"):
    pieces = line.split("\r")
    shown = ""
    for p in pieces:  # \r: back to column 0; ESC[K: erase from the cursor on
        cursor = 0
        for k, part in enumerate(p.split("\x1b[K")):
            shown = shown[:cursor] + part + shown[cursor + len(part):]
            cursor += len(part)
            if k < p.count("\x1b[K"):
                shown = shown[:cursor]
    bars = [p.replace("\x1b[K", "") for p in pieces if "tok/s ETA" in p]
    if not bars:
        continue
    lines += 1
    for b in bars:
        if not frame.match(b):
            sys.exit("FAIL: a frame shares its text with something else: %r" % b)
        if len(b) > 79:
            sys.exit("FAIL: a frame of %d columns on an 80-column terminal: %r" % (len(b), b))
    if "tok/s ETA" in shown and not frame.match(shown):
        sys.exit("FAIL: the terminal shows a frame and other text on one line: %r" % shown)
print(lines)
EOF

# 1. A terminal: one updating line (no evaluation, nothing else printed during the steps).
python3 "$d/pty.py" "$DSC" train $small --steps 40 --eval-every 0 > "$d/tty.txt" 2>&1 || fail "training on a pty: $(tail -3 "$d/tty.txt")"
n=$(python3 "$d/frames.py" "$d/tty.txt") || fail "$n"
[ "$n" = 1 ] || fail "the bar is on $n lines, want 1: $(cat -A "$d/tty.txt" | tail -5)"
grep -q "40/40 loss" "$d/tty.txt" || fail "no final frame 40/40"
# ... with a log line from the library every step (wall_clock_breakdown) and a validation
# line: each on a line of its own, never glued to the bar.
printf '%s\n' '{"train_micro_batch_size_per_gpu": 4, "wall_clock_breakdown": true}' > "$d/timers.json"
python3 "$d/pty.py" "$DSC" train $small --config "$d/timers.json" --steps 12 --eval-every 6 > "$d/tty2.txt" 2>&1 || fail "training with timers on a pty"
n=$(python3 "$d/frames.py" "$d/tty2.txt") || fail "$n"
grep -Eq "^(.*\[K)?\[dsc INFO\] \[Rank 0\] time \(ms\) \| fwd:" "$d/tty2.txt" || fail "no timer line at the start of a line"
grep -Eq "^(.*\[K)?step +6/12 \| val loss [0-9.]+" "$d/tty2.txt" || fail "no validation line at the start of a line"

# 2. No terminal, --no-progress on a terminal, mpirun: plain lines, no carriage return.
"$DSC" train $small --steps 20 --eval-every 10 > "$d/plain.txt" 2>&1 || fail "training into a file"
grep -q "$cr" "$d/plain.txt" && fail "a carriage return in output that is not a terminal"
grep -Eq '^step +20/20 \| loss [0-9.]+ \| lr' "$d/plain.txt" || fail "no plain step line in a file"
python3 "$d/pty.py" "$DSC" train $small --steps 20 --eval-every 0 --no-progress | tr -d '\r' > /dev/null
python3 "$d/pty.py" "$DSC" train $small --steps 20 --eval-every 0 --no-progress > "$d/nop.txt" 2>&1 || fail "--no-progress"
# the terminal turns each \n into \r\n: only those may appear
python3 -c "import sys; t=open(sys.argv[1],'rb').read(); sys.exit(1 if b'\r' in t.replace(b'\r\n', b'\n') else 0)" "$d/nop.txt" || \
  fail "--no-progress on a terminal still draws with carriage returns"
grep -Eq '^step +20/20 \| loss' "$d/nop.txt" || fail "--no-progress: no plain step line"
if [ -n "$MPIEXEC" ]; then
  python3 "$d/pty.py" $MPIEXEC -np 1 "$DSC" train $small --steps 20 --eval-every 0 > "$d/mpi.txt" 2>&1 || fail "mpirun on a pty: $(tail -3 "$d/mpi.txt")"
  python3 -c "import sys; t=open(sys.argv[1],'rb').read(); sys.exit(1 if b'\r' in t.replace(b'\r\n', b'\n') else 0)" "$d/mpi.txt" || \
    fail "under mpirun the output has carriage returns"
  grep -Eq 'step +20/20 \| loss' "$d/mpi.txt" || fail "mpirun: no plain step line"
fi

# 3. Validation loss in the csv and tensorboard monitors (at the samples seen: 4 per step) and
#    in dsc plot (green over the blue train loss).
printf '%s\n' '{"train_micro_batch_size_per_gpu": 4, "csv_monitor": {"enabled": true, "output_path": "'"$d"'/runs", "job_name": "j"}, "tensorboard": {"enabled": true, "output_path": "'"$d"'/tb", "job_name": "j"}}' > "$d/mon.json"
"$DSC" train $small --config "$d/mon.json" --steps 20 --eval-every 10 > "$d/mon.txt" 2>&1 || fail "training with monitors"
csv="$d/runs/j/Train_Samples_val_loss.csv"
[ -f "$csv" ] || fail "no $csv"
[ "$(sed -n 1p "$csv" | tr -d '\r')" = "step,val_loss" ] || fail "csv header: $(sed -n 1p "$csv")"
[ "$(cut -d, -f1 "$csv" | tr -d '\r' | tail -n +2 | tr '\n' ' ')" = "40 80 " ] || fail "csv steps: $(cat "$csv")"
printed=$(sed -n 's/^step  *20\/20 | val loss \([0-9.]*\)$/\1/p' "$d/mon.txt")
v20=$(sed -n 3p "$csv" | cut -d, -f2 | tr -d '\r')
awk -v a="$printed" -v b="$v20" 'BEGIN { exit !(a != "" && (a - b < 0.00006 && b - a < 0.00006)) }' || fail "csv val loss $v20, printed $printed"
ev=$(ls "$d"/tb/j/events.out.tfevents.* 2>/dev/null | head -1)
[ -n "$ev" ] || fail "no tensorboard event file"
python3 - "$ev" "$v20" <<'EOF' || fail "tensorboard: no Train/Samples/val_loss event holding the csv's value"
import struct, sys
data = open(sys.argv[1], "rb").read()
tag = b"Train/Samples/val_loss"
# the summary value: tag (field 1), then simple_value (field 2, fixed32: key byte 0x15) as float32
want = tag + b"\x15" + struct.pack("<f", float(sys.argv[2]))
sys.exit(0 if data.count(tag) == 2 and want in data else 1)
EOF
"$DSC" plot "$d/runs/j" --out "$d/with.png" > /dev/null || fail "dsc plot"
mkdir "$d/noval" && cp "$d/runs/j/Train_Samples_train_loss.csv" "$d/runs/j/Train_Samples_lr.csv" "$d/noval/"
"$DSC" plot "$d/noval" --out "$d/without.png" > /dev/null || fail "dsc plot without val"
cat > "$d/green.py" <<'EOF'
import struct, sys, zlib
def green(path):
    data = open(path, "rb").read()
    w, h = struct.unpack(">II", data[16:24])
    idat, i = b"", 8
    while i < len(data):
        n, kind = struct.unpack(">I4s", data[i:i + 8])
        if kind == b"IDAT":
            idat += data[i + 8:i + 8 + n]
        i += 12 + n
    raw = zlib.decompress(idat)
    stride = 1 + 3 * w
    px = b"".join(raw[y * stride + 1:(y + 1) * stride] for y in range(h))
    return sum(1 for k in range(0, len(px), 3) if px[k:k + 3] == bytes((44, 160, 44)))
a, b = green(sys.argv[1]), green(sys.argv[2])
print(a, b)
sys.exit(0 if a > 20 and b == 0 else 1)
EOF
g=$(python3 "$d/green.py" "$d/with.png" "$d/without.png") || fail "dsc plot: green (val loss) pixels with/without the val csv: $g"
echo PASS
