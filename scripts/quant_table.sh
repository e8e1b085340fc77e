#!/usr/bin/env bash
# quant_table.sh - the accuracy table of docs/quantization.md on the full evaluation texts:
# perplexity (window 512) of every quantization format vs the unquantized engine, for sotu-qwen3 on
# sotu_2006_2021.txt and stories260K on a story text. Quantized matmuls run on the scalar reference
# kernels until the SIMD ones land, so this takes a while (minutes per format). stories260K is calibrated
# on text sampled from itself (tests/fixtures/data/stories_calib.txt), sotu-qwen3 on the shipped slice.
#
#   scripts/quant_table.sh [BUILD_DIR] [WORK_DIR]
# env: MODELS (default ../shared/models), DATA (default ../shared/data), THREADS (default 2),
#      FORMATS (default "fp8 int8_sq int4_rtn int4_awq int4_gptq nvfp4"), CALIB_SAMPLES (default 512)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build}
WORK=${2:-$(mktemp -d /tmp/quant_table.XXXXXX)}
E=$BUILD/edgellm
MODELS=${MODELS:-$ROOT/../shared/models}
DATA=${DATA:-$ROOT/../shared/data}
THREADS=${THREADS:-2}
FORMATS=${FORMATS:-"fp8 int8_sq int4_rtn int4_awq int4_gptq nvfp4"}
CALIB_SAMPLES=${CALIB_SAMPLES:-512}
mkdir -p "$WORK"

ppl() { "$E" perplexity --engine "$1" --file "$2" --window 512 --threads "$THREADS" 2>/dev/null | tail -1 |
        sed -E 's/.*"ppl": ([0-9.]+).*/\1/'; }

table() { # model text name [calibration file]
    local model=$1 text=$2 name=$3 calib=${4:-}
    "$E" export --model "$model" --output "$WORK/$name-x-base" --overwrite >/dev/null 2>&1
    "$E" build --input "$WORK/$name-x-base" --engine "$WORK/$name-e-base" --overwrite >/dev/null 2>&1
    local base; base=$(ppl "$WORK/$name-e-base" "$text")
    echo "| $name | unquantized | $base | |"
    for q in $FORMATS; do
        local t0=$SECONDS
        "$E" export --model "$model" --output "$WORK/$name-x-$q" --quantization "$q" --group-size 128 \
            --calib-samples "$CALIB_SAMPLES" --calib-seq-len 512 ${calib:+--calib-file "$calib"} \
            --overwrite >"$WORK/$name-$q.log" 2>&1
        "$E" build --input "$WORK/$name-x-$q" --engine "$WORK/$name-e-$q" --overwrite >>"$WORK/$name-$q.log" 2>&1
        local v; v=$(ppl "$WORK/$name-e-$q" "$text")
        local d; d=$(awk -v a="$v" -v b="$base" 'BEGIN { printf "%+.2f%%", 100 * (a / b - 1) }')
        echo "| $name | $q | $v | $d |   ($((SECONDS - t0)) s)"
    done
}

echo "| model | format | perplexity | vs unquantized |"
echo "| --- | --- | --- | --- |"
table "$MODELS/sotu-qwen3" "$DATA/sotu_2006_2021.txt" sotu-qwen3
table "$MODELS/stories260K-hf" "$ROOT/tests/fixtures/data/stories_small.txt" stories260K \
    "$ROOT/tests/fixtures/data/stories_calib.txt"
