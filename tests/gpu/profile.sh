#!/usr/bin/env bash
# tests/gpu/profile.sh - per-kernel GPU time of a few decode steps (Nsight Compute, one metric) and the
# decode tok/s of the same engine, so the gap between the two (launch overhead) is visible.
# Usage: BUILD=... OUT=... tests/gpu/profile.sh [shape ...]   (after tests/gpu/run.sh built $BUILD)
set -u -o pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${OUT:-$ROOT/gpu-out}
BUILD=${BUILD:-/tmp/edgellm-build-gpu}
E=$BUILD/edgellm
mkdir -p "$OUT"
for shape in "${@:-llama3.2-1b}"; do
  S=/tmp/prof-$shape
  "$E" synth --shape "$shape" --dtype bf16 --output $S.hf --overwrite >/dev/null &&
  "$E" export --model $S.hf --output $S.exp --overwrite >/dev/null && rm -rf $S.hf &&
  "$E" build --input $S.exp --engine $S.eng --backend cuda --max-batch-size 8 --max-input-len 2048 \
      --max-kv-cache-capacity 4096 --overwrite >/dev/null && rm -rf $S.exp || { echo "profile: $shape build failed"; continue; }
  echo "=== $shape bench"
  for args in "--prompt-len 128 --gen-len 128" "--prompt-len 2048 --gen-len 128" "--prompt-len 512 --gen-len 64 --batch 8"; do
    echo "--- bench $args"; timeout 200 "$E" bench --engine $S.eng $args --reps 2 2>&1 | grep -vE '^\s*$'
  done
  if command -v ncu >/dev/null; then
    echo "=== $shape ncu (prompt 16, 3 decode steps)"
    timeout 240 ncu --clock-control none --metrics gpu__time_duration.sum --csv --print-units base \
      "$E" bench --engine $S.eng --prompt-len 16 --gen-len 3 --reps 1 > "$OUT/ncu-$shape.csv" 2>/dev/null
    python3 - "$OUT/ncu-$shape.csv" <<'PY'
import csv, sys, collections
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10]
if not rows: print("ncu: no rows"); sys.exit()
h = rows[0]; ki = h.index("Kernel Name"); vi = h.index("Metric Value")
t = collections.defaultdict(lambda: [0, 0.0])
for r in rows[1:]:
    try: v = float(r[vi].replace(",", ""))
    except ValueError: continue
    k = r[ki].split("(")[0][:60]; t[k][0] += 1; t[k][1] += v
tot = sum(v[1] for v in t.values())
print(f"kernels {sum(v[0] for v in t.values())}, total {tot/1e3:.1f} us (prefill + 3 steps)")
for k, (n, v) in sorted(t.items(), key=lambda x: -x[1][1])[:25]:
    print(f"{v/1e3:10.1f} us {n:6d} x  {v/n/1e3:8.2f} us  {k}")
PY
  fi
  rm -rf $S.eng
done
