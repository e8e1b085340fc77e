#!/usr/bin/env bash
# tests/gpu/ab.sh - A/B of one environment variable on batch-1 decode: for each shape and format, one engine
# (synth -> export -> build --backend cuda), then `edgellm bench` (prompt PROMPT (128), gen 128) once per value.
# Usage: BUILD=... VAR=EDGELLM_FG_WARP VALUES="0 1" FORMATS="bf16 int4_rtn" [PROMPT=128] [LAYERS=N] [CALIB_BACKEND=cpu]
#   tests/gpu/ab.sh shape...
#   VALUES="A=1 A=1,B=2": each value a comma-separated list of assignments (VAR unused)
set -u -o pipefail
BUILD=${BUILD:-/tmp/edgellm-build-gpu}
PROMPT=${PROMPT:-128}
E=$BUILD/edgellm
for shape in "$@"; do
  S=/tmp/ab-$shape
  "$E" synth --shape "$shape" --dtype bf16 ${LAYERS:+--layers $LAYERS} --output $S.hf --overwrite >/dev/null || { echo "ab: synth $shape failed"; continue; }
  for q in ${FORMATS:-bf16}; do
    qa=""; [ $q != bf16 ] && qa="--quantization $q --calib-samples 16 --calib-seq-len 128 --calib-backend ${CALIB_BACKEND:-cuda}"
    # nvfp4: no GPTQ Hessians (block-scale search only; the Hessians took > 5 min on the device's CPU at 1B)
    EDGELLM_CALIB_MEM_MB=$([ $q = nvfp4 ] && echo 1) "$E" export --model $S.hf --output $S.exp $qa --overwrite >/dev/null &&
      "$E" build --input $S.exp --engine $S.eng --backend cuda --max-batch-size 1 --max-input-len $((PROMPT + 128)) \
        --max-kv-cache-capacity $((PROMPT + 384)) --overwrite >/dev/null || { echo "ab: $shape $q export/build failed"; continue; }
    rm -rf $S.exp
    for v in ${VALUES:-0 1}; do
      # a value with '=' is a comma-separated list of assignments (several variables at once)
      if [[ $v == *=* ]]; then IFS=, read -r -a asg <<< "$v"; else asg=("${VAR:-EDGELLM_FG_WARP}=$v"); fi
      r=$(env "${asg[@]}" timeout 120 "$E" bench --engine $S.eng --prompt-len $PROMPT --gen-len 128 --reps 2 2>&1 |
          grep -E '^decode' | tr '\n' ' ')
      echo "ab $shape $q ${asg[*]}: $r"
    done
    rm -rf $S.eng
  done
  rm -rf $S.hf
done
