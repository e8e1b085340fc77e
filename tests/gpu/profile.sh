#!/usr/bin/env bash
# tests/gpu/profile.sh - decode / prefill tok/s of `edgellm synth` checkpoints on the CUDA backend at the
# issue's points (batch 1 prompt 128 and 2048 = decode at context ~128 and ~2048; batch 8 prompt 512), for
# bf16 and each format in $QUANTS (e.g. QUANTS="int4_rtn fp8"), then (NCU=1, default) the per-kernel GPU
# time of a few bf16 decode steps (Nsight Compute, one metric), so launch gaps show against kernel time.
# FORMATS replaces the list (default "bf16 $QUANTS"); NCU_FORMATS: the formats profiled with ncu (default bf16).
# Usage: BUILD=... OUT=... [QUANTS=...] [FORMATS=...] [NCU=0] [NCU_FORMATS=...] tests/gpu/profile.sh [shape ...]
#   (after tests/gpu/run.sh built $BUILD)
set -u -o pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${OUT:-$ROOT/gpu-out}
BUILD=${BUILD:-/tmp/edgellm-build-gpu}
E=$BUILD/edgellm
mkdir -p "$OUT"
for shape in "${@:-llama3.2-1b}"; do
  S=/tmp/prof-$shape
  "$E" synth --shape "$shape" --dtype bf16 --output $S.hf --overwrite >/dev/null || { echo "profile: synth $shape failed"; continue; }
  for q in ${FORMATS:-bf16 ${QUANTS:-}}; do
    qa=""; [ $q != bf16 ] && qa="--quantization $q --calib-samples 16 --calib-seq-len 128 --calib-backend ${CALIB_BACKEND:-cuda}"
    t0=$(date +%s)
    if ! "$E" export --model $S.hf --output $S.exp $qa --overwrite >/dev/null ||
       ! "$E" build --input $S.exp --engine $S.eng --backend cuda --max-batch-size 8 --max-input-len 2048 \
           --max-kv-cache-capacity 4096 --overwrite >/dev/null; then echo "profile: $shape $q export/build failed"; continue; fi
    rm -rf $S.exp
    echo "=== $shape $q (export + build $(( $(date +%s) - t0 )) s)"
    for args in "--prompt-len 128 --gen-len 128" "--prompt-len 2048 --gen-len 128" "--prompt-len 512 --gen-len 64 --batch 8"; do
      echo "--- bench $args"; timeout 200 "$E" bench --engine $S.eng $args --reps 2 2>&1 | grep -vE '^\s*$'
    done
    if [[ " ${NCU_FORMATS:-bf16} " == *" $q "* ]] && [ "${NCU:-1}" = 1 ] && command -v ncu >/dev/null; then
      echo "=== $shape $q ncu (prompt 16, 3 decode steps)"
      timeout 240 ncu --clock-control none --metrics gpu__time_duration.sum --csv --print-units base \
        "$E" bench --engine $S.eng --prompt-len 16 --gen-len 3 --reps 1 > "$OUT/ncu-$shape-$q.csv" 2>/dev/null
      python3 - "$OUT/ncu-$shape-$q.csv" <<'PY'
import csv, sys, collections
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10]
if not rows: print("ncu: no rows"); sys.exit()
h = rows[0]; ki = h.index("Kernel Name"); vi = h.index("Metric Value")
ks = []
for r in rows[1:]:
    try: ks.append((r[ki].split("(")[0][:60], float(r[vi].replace(",", ""))))
    except ValueError: pass
emb = [i for i, k in enumerate(ks) if "k_embed" in k[0]]
last = ks[emb[-1]:] if emb else ks
print(f"last decode step: {len(last)} kernels, {sum(v for _, v in last)/1e3:.1f} us of kernel time")
t = collections.defaultdict(lambda: [0, 0.0])
for k, v in last: t[k][0] += 1; t[k][1] += v
for k, (n, v) in sorted(t.items(), key=lambda x: -x[1][1])[:16]:
    print(f"{v/1e3:10.1f} us {n:6d} x  {v/n/1e3:8.2f} us  {k}")
PY
    fi
    rm -rf $S.eng
  done
  rm -rf $S.hf
done
