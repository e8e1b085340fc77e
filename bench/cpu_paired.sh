#!/usr/bin/env bash
# cpu_paired.sh - edgellm vs llama.cpp decode (tg) in interleaved rounds, each round bracketed by two
# streaming-read bandwidth samples, so the two sides are compared in the same memory-bandwidth state.
#
# Why: this kind of VM switches between a ~45-50 and a ~85 GB/s streaming-read state from one minute to the
# next (bench/README.md), and decode at batch 1 is bandwidth-bound on both sides: a ratio taken from two runs a
# minute apart mostly measures which state each run caught. Here a round is: bandwidth sample, side A, side B,
# bandwidth sample (A / B alternate between rounds); a round counts only when both samples lie in the same state
# (within 15% of each other), and the ratio is the median over the counted rounds of each state.
#
#   bench/cpu_paired.sh ENGINE_DIR MODEL.gguf [--rounds 8] [--tg 128] [--threads 2]
#                       [--edgellm build/edgellm] [--membw build/bench_membw] [--label NAME]
#
# ENGINE_DIR / MODEL.gguf: e.g. the cached pair of bench/run_cpu_bench.sh (WORK=/tmp/edgellm-cpu-bench:
# qwen3-0.6b.bf16.engine and qwen3-0.6b.f16.gguf). Both sides generate --tg tokens from an empty cache (a
# 1-token prompt: llama-bench's tg), one repetition per round, llama.cpp with flash attention on and the
# persistent thread pool (bench/llamacpp/tp_shim.c) as run_cpu_bench.sh runs it.
# Output: one line per round on stderr, one markdown row per state on stdout: label, GGUF, state, rounds, bandwidth
# (GB/s, median of the rounds' higher samples), tok/s of edgellm and llama.cpp, ratio (median of the rounds'
# ratios), decode GB/s and its % of that bandwidth for edgellm (its `bench` figure: weights + KV per token) and
# llama.cpp (the GGUF's size per token).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
EDGELLM="$ROOT/build/edgellm" MEMBW="$ROOT/build/bench_membw"
ROUNDS=8 TG=128 THREADS=2 LABEL=""
[ $# -ge 2 ] || { sed -n '2,21p' "$0" >&2; exit 2; }
ENG=$1 GGUF=$2
shift 2
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2 ;;
    --tg) TG="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --edgellm) EDGELLM="$2"; shift 2 ;;
    --membw) MEMBW="$2"; shift 2 ;;
    --label) LABEL="$2"; shift 2 ;;
    *) echo "cpu_paired.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -d "$ENG" ] || { echo "cpu_paired.sh: no engine directory $ENG" >&2; exit 1; }
[ -f "$GGUF" ] || { echo "cpu_paired.sh: no GGUF file $GGUF" >&2; exit 1; }
[ -x "$EDGELLM" ] || { echo "cpu_paired.sh: $EDGELLM not found (build first)" >&2; exit 1; }
[ -x "$MEMBW" ] || { echo "cpu_paired.sh: $MEMBW not found (build the bench_membw target)" >&2; exit 1; }
[ -d "$ROOT/bench/llamacpp/node_modules/node-llama-cpp" ] ||
  { echo "cpu_paired.sh: cd bench/llamacpp && npm ci --omit=optional   (node-llama-cpp missing)" >&2; exit 1; }
TMP=$(mktemp -d /tmp/edgellm-paired.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
SHIM="$TMP/tp_shim.so"
cc -O2 -shared -fPIC -o "$SHIM" "$ROOT/bench/llamacpp/tp_shim.c" -ldl
LABEL=${LABEL:-$(basename "$ENG")}

bw() { "$MEMBW" 1024 5 "$THREADS" | sed -n "s/^membw $THREADS threads*: *\([0-9.]*\) GB\/s.*/\1/p" | head -1; }
side_e() {
  "$EDGELLM" bench --engine "$ENG" --prompt-len 1 --gen-len "$TG" --threads "$THREADS" --reps 1 --json 2>"$TMP/e.log" |
    grep '^{' | tail -1 |
    "$PY" -c 'import json,sys; j=json.load(sys.stdin); print(j["decode_tok_s"]["median"], j.get("decode_gb_s") or 0)'
}
side_l() {
  node "$ROOT/bench/llamacpp/llamacpp_bench.mjs" "$GGUF" --threads "$THREADS" --pp 16 --tg "$TG" --reps 1 --fa on \
    --shim "$SHIM" 2>"$TMP/l.log" | grep '^{' | tail -1 |
    "$PY" -c 'import json,sys; print(json.load(sys.stdin)["tg_tok_s"]["median"])'
}
: > "$TMP/rounds"
for r in $(seq 1 "$ROUNDS"); do
  b0=$(bw)
  if [ $((r % 2)) = 1 ]; then e=$(side_e); l=$(side_l); else l=$(side_l); e=$(side_e); fi
  b1=$(bw)
  [ -n "$e" ] && [ -n "$l" ] && [ -n "$b0" ] && [ -n "$b1" ] ||
    { echo "cpu_paired.sh: round $r failed: $(tail -1 "$TMP/e.log") $(tail -1 "$TMP/l.log")" >&2; exit 1; }
  echo "round $r: bandwidth $b0 / $b1 GB/s, edgellm ${e% *} tok/s (${e#* } GB/s), llama.cpp $l tok/s" >&2
  echo "$b0 $b1 $e $l" >> "$TMP/rounds"
done
# llama.cpp's bytes per token: the GGUF's size (every tensor read once per token; a tied embedding is read as the
# output matrix; the f16 KV of a 128-token generation adds < 1% and is not counted)
"$PY" - "$TMP/rounds" "$LABEL" "$(basename "$GGUF")" "$(stat -c %s "$GGUF")" <<'EOF'
import statistics as st, sys
rows = [tuple(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]  # b0 b1 e_tok e_gb l_tok
label, gguf, gbytes = sys.argv[2], sys.argv[3], float(sys.argv[4])
# states: the rounds whose two samples agree (within 15%), split at the geometric mean of the highest and the
# lowest of them when those differ by more than 25% (this VM: ~45-50 and ~85 GB/s), else one state
same = [r for r in rows if abs(r[0] - r[1]) <= 0.15 * max(r[0], r[1])]
out = {"mixed (not counted)": [r for r in rows if r not in same]}
if same:
    hi, lo = max(max(r[:2]) for r in same), min(max(r[:2]) for r in same)
    cut = (hi * lo) ** 0.5 if hi > 1.25 * lo else 0.0
    for r in same:
        out.setdefault("high" if cut and max(r[:2]) > cut else "low" if cut else "one state", []).append(r)
for state in ("high", "low", "one state", "mixed (not counted)"):
    rs = out.get(state)
    if not rs:
        continue
    bwm = st.median([max(r[:2]) for r in rs])
    em, lm = st.median([r[2] for r in rs]), st.median([r[4] for r in rs])
    egb, lgb = st.median([r[3] for r in rs]), lm * gbytes / 1e9
    ratio = st.median([r[2] / r[4] for r in rs])
    print(f"| {label} | {gguf} | {state} | {len(rs)} | {bwm:.1f} | {em:.2f} | {lm:.2f} | {ratio:.2f}x | "
          f"{egb:.1f} ({100 * egb / bwm:.0f}%) | {lgb:.1f} ({100 * lgb / bwm:.0f}%) |")
EOF
