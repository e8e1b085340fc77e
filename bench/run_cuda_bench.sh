#!/usr/bin/env bash
# edgellm vs llama.cpp on one NVIDIA GPU, same weights on both sides (issue 5: every GPU figure as a ratio against
# llama.cpp measured in the same run, and as a fraction of the bandwidth a device-to-device copy reaches in it):
# random-weight checkpoints of real shapes (`edgellm synth`), CUDA engines vs GGUF files written by our own
# exporter (`edgellm export --format gguf`), prefill of PP tokens and decode of TG tokens from an empty cache (as
# llama-bench's pp / tg tests), batch 1; prefill also as TFLOP/s and a fraction of the bf16 GEMM rate of the same
# run. llama.cpp is llama-bench of the release node-llama-cpp 3.21.1 pins, built for sm_90 by
# `bench/llamacpp_cuda.sh build` (full offload, flash attention on, its CUDA graphs).
#
#   bench/run_cuda_bench.sh [--shapes "qwen3-0.6b llama3.2-1b"] [--pairs "bf16:f16 fp8:q8_0 int4_awq:q4_0"]
#                           [--pp 512] [--tg 128] [--reps 3] [--work DIR] [--edgellm BUILD/edgellm]
#                           [--bench-cuda BUILD/bench_cuda] [--out FILE.md] [--backend cuda] [--depth D]
# --depth D (e.g. 2048) adds decode at context D: tgTG after a D-token prompt (edgellm) / llama-bench -d D.
# (--backend cpu: a smoke test of the script itself on a machine without a GPU; the ceilings still come from
# bench_cuda, so it needs a stand-in that prints them)
#
# Pairs are EDGELLM_FORMAT:GGUF_TYPE; quantized formats also quantize the output head as the GGUF types do
# (fp8: fp8, int8_sq: int8, int4_awq / int4_rtn: int4_awq) and calibrate on 16 x 128 tokens (speed does not depend
# on calibration quality), on the GPU (--calib-backend cuda; CALIB_BACKEND=cpu overrides). Files are deleted after
# each pair (an 8B shape needs ~50 GB of disk at once).
# Output: one markdown row per pair on stdout and in --out (default WORK/results.md).
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
EDGELLM="$ROOT/build/edgellm"
BENCH_CUDA="$ROOT/build/bench_cuda"
WORK=/tmp/edgellm-cuda-bench
SHAPES="qwen3-0.6b llama3.2-1b"
PAIRS="bf16:f16 fp8:q8_0 int4_awq:q4_0"
PP=512 TG=128 REPS=3 OUT="" BACKEND=cuda DEPTH=0
while [ $# -gt 0 ]; do
  case "$1" in
    --shapes) SHAPES="$2"; shift 2 ;;
    --pairs) PAIRS="$2"; shift 2 ;;
    --pp) PP="$2"; shift 2 ;;
    --tg) TG="$2"; shift 2 ;;
    --reps) REPS="$2"; shift 2 ;;
    --work) WORK="$2"; shift 2 ;;
    --edgellm) EDGELLM="$2"; shift 2 ;;
    --bench-cuda) BENCH_CUDA="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --backend) BACKEND="$2"; shift 2 ;;
    --depth) DEPTH="$2"; shift 2 ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) echo "run_cuda_bench.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
OUT=${OUT:-$WORK/results.md}
mkdir -p "$WORK"
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

ceil=$("$BENCH_CUDA" --gemm 2>&1)
copy=$(echo "$ceil" | sed -n 's/^copy .*, \([0-9.]*\) GB\/s.*/\1/p')
gemm=$(echo "$ceil" | sed -n 's/^gemm .*cuBLASLt alone.*, \([0-9.]*\) TFLOP\/s.*/\1/p')
[ -n "$copy" ] && [ -n "$gemm" ] || { echo "run_cuda_bench.sh: bench_cuda --gemm gave no copy / GEMM figure" >&2; exit 1; }
{
  echo "GPU: $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1); device-to-device copy" \
    "$copy GB/s (read + write), cuBLASLt bf16 8192^3 GEMM $gemm TFLOP/s; $(date -u +'%F %H:%M UTC'); batch 1," \
    "pp$PP, tg$TG from an empty cache, medians of $REPS (llama.cpp: means)"
  echo
  echo "| model | edgellm | llama.cpp | pp$PP edgellm | pp$PP llama.cpp | pp ratio | tg$TG edgellm | tg$TG llama.cpp |" \
    "tg ratio | decode GB/s edgellm (% of copy) | prefill TFLOP/s edgellm (% of GEMM) | TTFT ms / peak MiB edgellm |" \
    "$([ "$DEPTH" -gt 0 ] && echo "tg$TG @ d$DEPTH edgellm | tg$TG @ d$DEPTH llama.cpp | ratio |")"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |$([ "$DEPTH" -gt 0 ] && echo " --- | --- | --- |")"
} | tee "$OUT"

for shape in $SHAPES; do
  hf="$WORK/$shape.hf"
  log "synth $shape"
  "$EDGELLM" synth --shape "$shape" --dtype bf16 --output "$hf" --overwrite >/dev/null || { log "synth $shape failed"; continue; }
  if [ ! -f "$hf/tokenizer.json" ] && [ -f "$ROOT/tests/fixtures/models/sotu-qwen3/tokenizer.json" ]; then
    cp "$ROOT/tests/fixtures/models/sotu-qwen3/tokenizer.json" "$ROOT/tests/fixtures/models/sotu-qwen3/tokenizer_config.json" "$hf/"
  fi
  for pair in $PAIRS; do
    efmt="${pair%%:*}" gtype="${pair##*:}" hq=""
    case "$efmt" in int8_sq) hq=int8 ;; int4_awq|int4_rtn) hq=int4_awq ;; fp8|nvfp4) hq=$efmt ;; esac
    case "$efmt" in
      bf16|fp16|fp32) eargs=(--dtype "$efmt") ;;
      *) eargs=(--quantization "$efmt" --calib-samples 16 --calib-seq-len 128 --calib-backend "${CALIB_BACKEND:-$BACKEND}" --lm-head-quantization "$hq") ;;
    esac
    exp="$WORK/$shape.$efmt.export" eng="$WORK/$shape.$efmt.engine" gguf="$WORK/$shape.$gtype.gguf"
    epp="n/a" etg="n/a" egb="n/a" lpp="n/a" ltg="n/a" etd="n/a" ltd="n/a" emem="n/a"
    inmax=$((PP > DEPTH ? PP : DEPTH))
    log "edgellm export + build $shape $efmt"
    if "$EDGELLM" export --model "$hf" --output "$exp" --overwrite "${eargs[@]}" > "$WORK/export.log" 2>&1 &&
       "$EDGELLM" build --input "$exp" --engine "$eng" --backend "$BACKEND" --overwrite --max-batch-size 1 \
         --max-input-len "$inmax" --max-kv-cache-capacity $((inmax + TG)) > "$WORK/build.log" 2>&1; then
      rm -rf "$exp"
      "$EDGELLM" info --engine "$eng" > "$WORK/info.json" 2>/dev/null || true
      pj=$("$EDGELLM" bench --engine "$eng" --prompt-len "$PP" --gen-len 1 --reps "$REPS" --json 2>/dev/null | grep '^{' | tail -1)
      tj=$("$EDGELLM" bench --engine "$eng" --prompt-len 1 --gen-len "$TG" --reps "$REPS" --json 2>/dev/null | grep '^{' | tail -1)
      epp=$(echo "$pj" | python3 -c 'import json,sys; print("%.0f" % json.load(sys.stdin)["prefill_tok_s"]["median"])' 2>/dev/null || echo n/a)
      # TTFT of the PP-token prompt; peak device memory (weights, KV cache, scratch) of that run
      emem=$(echo "$pj" | python3 -c 'import json,sys; j = json.load(sys.stdin)
print("%.1f / %.0f" % (j["ttft_ms"], j["peak_device_memory_bytes"] / 2**20))' 2>/dev/null || echo n/a)
      read -r etg egb < <(echo "$tj" | python3 -c '
import json, sys
j = json.load(sys.stdin)
print("%.1f %.0f" % (j["decode_tok_s"]["median"], j["decode_gb_s"]))' 2>/dev/null || echo "n/a n/a")
      if [ "$DEPTH" -gt 0 ]; then
        etd=$("$EDGELLM" bench --engine "$eng" --prompt-len "$DEPTH" --gen-len "$TG" --reps "$REPS" --json 2>/dev/null |
          grep '^{' | tail -1 | python3 -c 'import json,sys; print("%.1f" % json.load(sys.stdin)["decode_tok_s"]["median"])' \
          2>/dev/null || echo n/a)
      fi
    else
      log "edgellm $shape $efmt: $(cat "$WORK/export.log" "$WORK/build.log" 2>/dev/null | grep . | tail -1)"
    fi
    rm -rf "$exp" "$eng"
    log "gguf export + llama-bench $shape $gtype"
    if "$EDGELLM" export --format gguf --quantization "$gtype" --model "$hf" --output "$gguf" --overwrite \
         > "$WORK/gguf.log" 2>&1; then
      if bash "$ROOT/bench/llamacpp_cuda.sh" run --json "$WORK/llama.json" --reps "$REPS" "$gguf" "$PP" "$TG" \
           > "$WORK/llama.log" 2>&1; then
        read -r lpp ltg < <(python3 -c '
import json, sys
pp = tg = "n/a"
for o in json.load(open(sys.argv[1])):
    if o["n_prompt"] > 0 and o["n_gen"] == 0: pp = "%.0f" % o["avg_ts"]
    if o["n_gen"] > 0 and o["n_prompt"] == 0: tg = "%.1f" % o["avg_ts"]
print(pp, tg)' "$WORK/llama.json" 2>/dev/null || echo "n/a n/a")
      else
        log "llama-bench $shape $gtype failed: $(tail -1 "$WORK/llama.log")"
      fi
      if [ "$DEPTH" -gt 0 ] && bash "$ROOT/bench/llamacpp_cuda.sh" run --json "$WORK/llama_d.json" --reps "$REPS" \
           --depth "$DEPTH" "$gguf" 0 "$TG" >> "$WORK/llama.log" 2>&1; then
        ltd=$(python3 -c 'import json, sys
print(next(("%.1f" % o["avg_ts"] for o in json.load(open(sys.argv[1])) if o["n_gen"] > 0), "n/a"))' \
          "$WORK/llama_d.json" 2>/dev/null || echo n/a)
      fi
    else
      log "gguf export $shape $gtype failed: $(tail -1 "$WORK/gguf.log")"
    fi
    rm -f "$gguf"
    ratio() { python3 -c 'import sys
try: print("%.2fx" % (float(sys.argv[1]) / float(sys.argv[2])))
except (ValueError, ZeroDivisionError): print("n/a")' "$1" "$2"; }
    pct=$(python3 -c 'import sys
try: print("%s (%.0f%%)" % (sys.argv[1], 100 * float(sys.argv[1]) / float(sys.argv[2])))
except ValueError: print("n/a")' "$egb" "$copy")
    # prefill FLOP/s: the layers' matmuls (2 x params per token) + causal attention (q k^T and p v over the
    # average (PP + 1) / 2 positions); the LM head is not counted
    pfl=$(python3 -c '
import json, sys
try:
    c = json.load(open(sys.argv[1]))["config"]
    E, L, H, F = c["hidden_size"], c["num_hidden_layers"], c["num_attention_heads"], c["intermediate_size"]
    KV = c.get("num_key_value_heads", H); D = c.get("head_dim") or E // H
    pp, tps, gemm = int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
    per_tok = L * (2 * (E * H * D + 2 * E * KV * D + H * D * E + 3 * E * F) + 4 * H * D * (pp + 1) / 2)
    t = per_tok * tps / 1e12
    print("%.3g (%.2g%%)" % (t, 100 * t / gemm))
except (OSError, KeyError, ValueError, TypeError):
    print("n/a")' "$WORK/info.json" "$PP" "$epp" "$gemm")
    rm -f "$WORK/info.json"
    dcols=""
    [ "$DEPTH" -gt 0 ] && dcols=" $etd | $ltd | $(ratio "$etd" "$ltd") |"
    echo "| $shape | $efmt | $gtype | $epp | $lpp | $(ratio "$epp" "$lpp") | $etg | $ltg | $(ratio "$etg" "$ltg") | $pct | $pfl | $emem |$dcols" |
      tee -a "$OUT"
  done
  rm -rf "$hf"
done
