#!/usr/bin/env bash
# tests/gpu/ktrace.sh - where batch-1 decode time goes inside the CUDA graph: for each shape and format one engine
# (synth -> export -> build --backend cuda), `edgellm bench` under the CUPTI injection library of ktrace.c, then per
# kernel its share of the critical path over the decode steps: sorted by end time, kernel i is charged
# end_i - end_{i-1} (with programmatic dependent launch a kernel starts before its predecessor ends, so its own
# duration includes the wait; the end-to-end deltas add up to the wall time). Also its mean duration and grid.
# Usage: BUILD=... OUT=... [FORMATS="bf16 int4_rtn"] [PROMPT=16] [GEN=64] [LAYERS=N] tests/gpu/ktrace.sh shape...
set -u -o pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-/tmp/edgellm-build-gpu}
OUT=${OUT:-$ROOT/gpu-out}
CUDA=${CUDA:-/usr/local/cuda}
E=$BUILD/edgellm
mkdir -p "$OUT"
LIB=$BUILD/libktrace.so
cc -std=c11 -O2 -shared -fPIC -o "$LIB" "$ROOT/tests/gpu/ktrace.c" -I"$CUDA/include" -L"$CUDA/lib64" -lcupti \
  -Wl,-rpath,"$CUDA/lib64" || { echo "ktrace: cannot build $LIB"; exit 1; }
for shape in "$@"; do
  S=/tmp/kt-$shape
  "$E" synth --shape "$shape" --dtype bf16 ${LAYERS:+--layers $LAYERS} --output $S.hf --overwrite >/dev/null || { echo "ktrace: synth $shape failed"; continue; }
  for q in ${FORMATS:-bf16 int4_rtn}; do
    qa=""; [ $q != bf16 ] && qa="--quantization $q --calib-samples 16 --calib-seq-len 128 --calib-backend ${CALIB_BACKEND:-cuda}"
    if ! "$E" export --model $S.hf --output $S.exp $qa --overwrite >/dev/null ||
       ! "$E" build --input $S.exp --engine $S.eng --backend cuda --max-batch-size 1 --max-input-len 256 \
           --max-kv-cache-capacity 512 --overwrite >/dev/null; then echo "ktrace: $shape $q export/build failed"; continue; fi
    rm -rf $S.exp
    csv="$OUT/ktrace-$shape-$q.csv"
    CUDA_INJECTION64_PATH=$LIB EDGELLM_KTRACE=$csv timeout 120 "$E" bench --engine $S.eng \
      --prompt-len ${PROMPT:-16} --gen-len ${GEN:-64} --reps 1 2>&1 | grep -E '^decode'
    python3 - "$csv" "$shape $q" <<'PY'
import collections, csv, sys
ks = []
for r in csv.reader(open(sys.argv[1])):
    if len(r) < 5: continue
    n = r[4]
    n = n[5:] if n.startswith("void ") else n
    ks.append((int(r[0]), int(r[1]), n.split("(")[0][:80] + " " + r[2]))
if len(ks) < 4: print("ktrace: no kernels recorded"); sys.exit()
ks.sort(key=lambda k: k[1])
ks = ks[len(ks) // 2:]  # the second half of the run: decode steps
tot = ks[-1][1] - ks[0][1]
crit = collections.defaultdict(int); dur = collections.defaultdict(int); cnt = collections.Counter()
for i in range(1, len(ks)):
    n = ks[i][2]
    crit[n] += ks[i][1] - ks[i - 1][1]; dur[n] += ks[i][1] - ks[i][0]; cnt[n] += 1
print(f"=== {sys.argv[2]}: {len(ks)} kernels over {tot / 1e3:.0f} us")
print(" share  crit/launch   duration  launches  kernel grid")
for n, c in sorted(crit.items(), key=lambda x: -x[1])[:16]:
    print(f"{c / tot * 100:5.1f}%  {c / cnt[n] / 1e3:8.2f} us  {dur[n] / cnt[n] / 1e3:6.2f} us  {cnt[n]:8d}  {n}")
PY
    rm -rf $S.eng
  done
  rm -rf $S.hf
done
