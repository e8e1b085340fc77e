#!/usr/bin/env bash
# tests/gpu/att_timing.sh - where decode attention's time goes, phase by phase: a second build with
# -DEDGELLM_ATT_TIMING (k_attn records clock64() at its phase boundaries in block (0,0,0)), then `edgellm bench`
# on a synthetic checkpoint; at exit the library prints mean cycles per phase by the positions of the split
# (stderr, "att_timing:"). Usage: BUILD_T=/tmp/edgellm-build-att [FORMATS=bf16] [CHUNKS="64 16"] [LAYERS=N]
#   tests/gpu/att_timing.sh shape...
set -u -o pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=${BUILD_T:-/tmp/edgellm-build-att}
D=/tmp/edgellm-deps PKGCFG="" # the dependencies tests/gpu/run.sh unpacked from .gpu-debs, if it did
if [ -d $D/usr/lib/x86_64-linux-gnu/pkgconfig ]; then
  L=$D/usr/lib/x86_64-linux-gnu
  export PKG_CONFIG_PATH=$L/pkgconfig:$D/usr/share/pkgconfig LD_LIBRARY_PATH=$L${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  export CFLAGS="-I$D/usr/include ${CFLAGS:-}" LIBRARY_PATH=$L${LIBRARY_PATH:+:$LIBRARY_PATH}
  command -v pkg-config >/dev/null || PKGCFG="-DPKG_CONFIG_EXECUTABLE=$D/usr/bin/pkgconf"
fi
cmake -S "$ROOT" -B "$B" -DEDGELLM_CUDA=ON -DEDGELLM_CUDA_ARCHS=90 -DCMAKE_BUILD_TYPE=Release $PKGCFG \
  -DCMAKE_CUDA_FLAGS=-DEDGELLM_ATT_TIMING >/dev/null && cmake --build "$B" -j"$(nproc)" --target edgellm_cli 2>&1 |
  grep -E 'error|warning' ; E=$B/edgellm
[ -x "$E" ] || { echo "att_timing: build failed"; exit 1; }
for shape in "${@:-llama3.2-1b}"; do
  S=/tmp/att-$shape
  "$E" synth --shape "$shape" --dtype bf16 ${LAYERS:+--layers $LAYERS} --output $S.hf --overwrite >/dev/null || continue
  for q in ${FORMATS:-bf16}; do
    qa=""; [ $q != bf16 ] && qa="--quantization $q --calib-samples 16 --calib-seq-len 128 --calib-backend ${CALIB_BACKEND:-cuda}"
    "$E" export --model $S.hf --output $S.exp $qa --overwrite >/dev/null &&
      "$E" build --input $S.exp --engine $S.eng --backend cuda --max-batch-size 1 --max-input-len 256 \
        --max-kv-cache-capacity 512 --overwrite >/dev/null || { echo "att_timing: $shape $q failed"; continue; }
    for ch in ${CHUNKS:-64 16}; do
      echo "=== $shape $q EDGELLM_ATT_CHUNK=$ch (prompt 16, 64 steps)"
      EDGELLM_ATT_CHUNK=$ch timeout 60 "$E" bench --engine $S.eng --prompt-len 16 --gen-len 64 --reps 1 2>&1 |
        grep -E '^decode:|att_timing'
    done
    rm -rf $S.exp $S.eng
  done
  rm -rf $S.hf
done
