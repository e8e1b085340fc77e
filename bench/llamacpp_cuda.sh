#!/usr/bin/env bash
# llama.cpp's CUDA llama-bench as the same-run peer of edgellm's GPU benchmarks (issue 5: each GPU figure as a
# ratio against llama.cpp measured in the same run). The peer is llama.cpp as pinned by npm node-llama-cpp
# 3.21.1 (bench/llamacpp): its bundled source (llama/gitRelease.bundle, release in llama/llama.cpp.info.json)
# plus the patch node-llama-cpp applies to it, built for sm_90 only (H100 / H200). llama.cpp is MIT licensed;
# it is built from the npm package at bench time, nothing of it is vendored into this repository.
#
#   bench/llamacpp_cuda.sh build [--jobs N] [--arch 90-real] [--src DIR] [--build DIR] [--out FILE]
#       On a machine with the CUDA 13 toolkit (no GPU needed): clone + patch + configure + build llama-bench,
#       package it as .gpu-peer/llama-cuda.tar.xz (llama-bench, ggml/llama linked in statically; libgomp
#       bundled as a fallback). libcudart / libcublas / libcublasLt / libcuda come from the GPU machine.
#       Defaults: --jobs 2, --src /tmp/llamacpp-src, --build /tmp/llamacpp-build.
#
#   bench/llamacpp_cuda.sh run [--json FILE] [--reps N] [--depth D] [--tar FILE] GGUF [PROMPTS] [GENS] [-- ARGS]
#       On the GPU machine: unpack the tarball to /tmp/llama-cuda (again when the tarball is newer), find the
#       CUDA 13 libraries (LLAMA_CUDA_LIBDIR, else /usr/local/cuda/lib64, else a Python site-packages
#       nvidia/*/lib), check that llama-bench sees a CUDA device, then run
#         llama-bench -m GGUF -ngl 99 -fa 1 -p PROMPTS -n GENS -d D -r N -o md
#       PROMPTS / GENS / D are llama-bench lists ("512,2048"; default 512 / 128 / 0, reps 3). -d D runs each
#       test after a D-token prefill of the KV cache (decode at context 2048: GENS 128, --depth 2048; PROMPTS 0
#       skips the prompt test). --json FILE also writes llama-bench's JSON (one object per test: avg_ts /
#       stddev_ts in tok/s, samples_ts, n_prompt, n_gen, n_depth, gpu_info, build_commit) to FILE; the markdown
#       table still goes to the terminal. ARGS after -- go to llama-bench unchanged (e.g. -ub 2048).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
NLC="$ROOT/bench/llamacpp/node_modules/node-llama-cpp/llama"
TARBALL="$ROOT/.gpu-peer/llama-cuda.tar.xz"
DEST=/tmp/llama-cuda
die() { echo "llamacpp_cuda.sh: $*" >&2; exit 1; }
usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit "${1:-0}"; }

do_build() {
  local jobs=2 arch=90-real src=/tmp/llamacpp-src bld=/tmp/llamacpp-build out="$TARBALL"
  while [ $# -gt 0 ]; do
    case "$1" in
      --jobs) jobs="$2"; shift 2 ;;
      --arch) arch="$2"; shift 2 ;;
      --src) src="$2"; shift 2 ;;
      --build) bld="$2"; shift 2 ;;
      --out) out="$2"; shift 2 ;;
      *) die "build: unknown option $1" ;;
    esac
  done
  [ -f "$NLC/gitRelease.bundle" ] ||
    die "no $NLC/gitRelease.bundle (cd bench/llamacpp && npm ci --omit=optional)"
  command -v nvcc >/dev/null || die "nvcc not on PATH (CUDA toolkit needed to build)"
  local t0 tag
  t0=$(date +%s)
  tag=$(sed -n 's/.*"tag": *"\([^"]*\)".*/\1/p' "$NLC/llama.cpp.info.json")
  # the bundle's commit plus node-llama-cpp's patches, which it applies before building (dist/bindings/utils/
  # applyLlamaCppRepoPatches.js: git apply --ignore-whitespace, unless the source already has the fix);
  # an existing clone at that commit with the patches applied is reused (an incremental rebuild)
  local want p
  want=$(git bundle list-heads "$NLC/gitRelease.bundle" | awk '$2 == "HEAD" { print $1 }')
  if [ "$(git -C "$src" rev-parse HEAD 2>/dev/null)" != "$want" ] || [ ! -f "$src/.nlc-patched" ]; then
    rm -rf "$src"
    git clone -q "$NLC/gitRelease.bundle" "$src"
    for p in "$NLC"/patches/*.diff; do
      [ -f "$p" ] || continue
      if git -C "$src" apply --check --ignore-whitespace "$p" 2>/dev/null; then
        git -C "$src" apply --ignore-whitespace "$p"
        echo "applied node-llama-cpp patch ${p##*/}"
      else
        echo "node-llama-cpp patch ${p##*/} does not apply (already in the source?); skipped"
      fi
    done
    touch "$src/.nlc-patched"
  else
    echo "reusing $src (commit $want, patches applied)"
  fi
  # sm_90 only (what a native build on an H100/H200 picks; no PTX: the GPU machine runs the same CUDA);
  # GGML_NATIVE=OFF: the CPU code targets AVX2/FMA/F16C, not this build machine's CPU; static ggml/llama in
  # llama-bench; no OpenSSL (no downloads) and no NCCL (one GPU). Everything else at llama.cpp's defaults
  # (flash-attention kernels compiled, CUDA graphs on, cuBLAS for large batches).
  cmake -S "$src" -B "$bld" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES="$arch" -DGGML_NATIVE=OFF -DBUILD_SHARED_LIBS=OFF -DLLAMA_OPENSSL=OFF \
    -DGGML_CUDA_NCCL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
    -DLLAMA_BUILD_APP=OFF -DGGML_CCACHE=OFF
  ninja -C "$bld" -j "$jobs" llama-bench
  local stage
  stage=$(mktemp -d)
  mkdir -p "$stage/llama-cuda/bin" "$stage/llama-cuda/lib"
  cp "$bld/bin/llama-bench" "$stage/llama-cuda/bin/"
  strip --strip-unneeded "$stage/llama-cuda/bin/llama-bench"
  # libgomp (ggml's CPU threads) is the one NEEDED library besides glibc / libstdc++ / CUDA that a bare
  # image may lack; `run` puts it on the library path only when the system has none
  cp -L "$(gcc -print-file-name=libgomp.so.1)" "$stage/llama-cuda/lib/"
  {
    echo "llama.cpp release $tag (node-llama-cpp $(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' \
      "$NLC/../package.json" | head -1)), commit $(git -C "$src" rev-parse HEAD)"
    echo "node-llama-cpp patches: $(for p in "$NLC"/patches/*.diff; do [ -f "$p" ] && printf '%s ' "${p##*/}"; done)"
    echo "built $(date -u +'%F %H:%M UTC') on $(. /etc/os-release && echo "$PRETTY_NAME"), nvcc $(nvcc --version | sed -n 's/.*release \([^,]*\),.*/\1/p')"
    echo "CUDA architectures $arch; cmake cache:"
    grep -E '^(GGML_CUDA[A-Z_]*|GGML_NATIVE|GGML_AVX2|GGML_OPENMP|BUILD_SHARED_LIBS|CMAKE_CUDA_ARCHITECTURES)[:=]' \
      "$bld/CMakeCache.txt" | sed 's/^/  /'
    echo "NEEDED:"
    objdump -p "$stage/llama-cuda/bin/llama-bench" | sed -n 's/^ *NEEDED *//p' | sed 's/^/  /'
  } > "$stage/llama-cuda/BUILDINFO"
  mkdir -p "$(dirname "$out")"
  tar -C "$stage" -cf - llama-cuda | xz -9e -T"$jobs" > "$out"
  rm -rf "$stage"
  echo "wrote $out ($(du -h "$out" | cut -f1)) in $(( $(date +%s) - t0 )) s"
}

# prints the directory that holds NAME (a CUDA 13 library), searching the toolkit and pip's nvidia wheels
find_cuda_lib() {
  local name=$1 d py sp
  for d in ${LLAMA_CUDA_LIBDIR:-} /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu; do
    [ -e "$d/$name" ] && { echo "$d"; return 0; }
  done
  for py in python3 /usr/bin/python3; do
    command -v "$py" >/dev/null || continue
    for sp in $("$py" -c 'import site; print(" ".join(site.getsitepackages() + [site.getusersitepackages()]))' \
               2>/dev/null); do
      [ -d "$sp/nvidia" ] || continue
      d=$(find "$sp/nvidia" -name "$name" -printf '%h\n' 2>/dev/null | head -1)
      [ -n "$d" ] && { echo "$d"; return 0; }
    done
  done
  return 1
}

do_run() {
  local json="" reps=3 depth=0 tar="$TARBALL" extra=() pos=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --json) json="$2"; shift 2 ;;
      --reps) reps="$2"; shift 2 ;;
      --depth) depth="$2"; shift 2 ;;
      --tar) tar="$2"; shift 2 ;;
      --) shift; extra=("$@"); break ;;
      -h|--help) usage ;;
      *) pos+=("$1"); shift ;;
    esac
  done
  if [ ${#pos[@]} -lt 1 ] || [ ${#pos[@]} -gt 3 ]; then usage 2; fi
  local gguf=${pos[0]} prompts=${pos[1]:-512} gens=${pos[2]:-128}
  [ -f "$gguf" ] || die "no GGUF $gguf"
  if [ ! -x "$DEST/bin/llama-bench" ] || { [ -f "$tar" ] && [ "$tar" -nt "$DEST/.unpacked" ]; }; then
    [ -f "$tar" ] || die "no $tar (bench/llamacpp_cuda.sh build makes it)"
    rm -rf "$DEST"
    tar -C "$(dirname "$DEST")" -xJf "$tar"
    touch "$DEST/.unpacked"
    echo "unpacked $tar -> $DEST"
  fi
  head -1 "$DEST/BUILDINFO"
  local libdirs="" name d
  for name in libcudart.so.13 libcublas.so.13 libcublasLt.so.13; do
    d=$(find_cuda_lib "$name") || die "$name not found (set LLAMA_CUDA_LIBDIR)"
    case ":$libdirs:" in *":$d:"*) ;; *) libdirs=${libdirs:+$libdirs:}$d ;; esac
  done
  echo "CUDA libraries from: $libdirs"
  # the bundled libgomp only when the system has none (LD_LIBRARY_PATH would take precedence over it)
  if ! { ldconfig -p 2>/dev/null || /sbin/ldconfig -p 2>/dev/null; } | grep -c 'libgomp\.so\.1 ' >/dev/null; then
    libdirs="$libdirs:$DEST/lib"
    echo "no system libgomp.so.1: using the bundled one"
  fi
  export LD_LIBRARY_PATH="$libdirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  local lb="$DEST/bin/llama-bench"
  if ldd "$lb" | grep -c 'not found' >/dev/null; then
    ldd "$lb" >&2
    die "llama-bench has unresolved libraries (above)"
  fi
  ldd "$lb" | grep -E 'libcudart|libcublas|libcuda\.|libgomp' | sed 's/^[[:space:]]*/  /'
  # a CUDA initialisation failure would leave llama-bench on the CPU backend: refuse to measure that
  local devs
  devs=$("$lb" --list-devices 2>&1) || true
  echo "$devs" | grep -E '^ *CUDA[0-9]' || { echo "$devs" >&2; die "llama-bench sees no CUDA device"; }
  local cmd=("$lb" -m "$gguf" -ngl 99 -fa 1 -p "$prompts" -n "$gens" -d "$depth" -r "$reps" "${extra[@]}")
  echo "+ ${cmd[*]}"
  if [ -n "$json" ]; then
    "${cmd[@]}" -o json -oe md > "$json"
    echo "JSON: $json"
  else
    "${cmd[@]}" -o md
  fi
}

case "${1:-}" in
  build) shift; do_build "$@" ;;
  run) shift; do_run "$@" ;;
  -h|--help|"") usage ;;
  *) die "unknown command $1 (build | run)" ;;
esac
