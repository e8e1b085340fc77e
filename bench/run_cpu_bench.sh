#!/usr/bin/env bash
# edgellm vs llama.cpp on this CPU, same weights on both sides: random-weight checkpoints of real shapes
# (`edgellm synth`), edgellm engines vs GGUF files written by our own exporter (`edgellm export --format
# gguf`), pp512 (prefill) and tg128 (decode) at 2 threads, plus the machine's streaming-read bandwidth.
# llama.cpp runs through npm node-llama-cpp 3.21.1 (prebuilt CPU binaries, bench/llamacpp) with flash
# attention on and a persistent thread pool attached (bench/llamacpp/tp_shim.c), as llama-bench runs it.
#
#   bench/run_cpu_bench.sh [--shapes "qwen3-0.6b llama3.2-1b"] [--pairs "bf16:f16 int8_sq:q8_0 int4_awq:q4_0"]
#                          [--threads 2] [--pp 512] [--tg 128] [--reps 5] [--layers N] [--work DIR]
#                          [--edgellm build/edgellm] [--membw build/bench_membw] [--out FILE.md]
#                          [--calib-samples 16] [--calib-seq-len 128] [--head-quant auto|none]
#
# --head-quant auto (default): quantized pairs also quantize the output head (--lm-head-quantization int8 for
# int8_sq, int4_awq for int4_awq/int4_rtn, the format itself for fp8/nvfp4), as llama.cpp's Q8_0/Q4_0 files quantize theirs (tied
# models: the embedding table; the int4 head is plain RTN in the AWQ layout); none keeps edgellm's head in bf16.
#
# A pair is EDGELLM_FORMAT:GGUF_TYPE. EDGELLM_FORMAT "bf16"/"fp16"/"fp32" exports with --dtype, anything
# else with --quantization (and the calibration flags when `edgellm export --help` lists them: speed does
# not depend on calibration quality, so a small calibration set keeps the run short). A pair whose export
# fails (format not available yet) is reported as "n/a" and the run goes on. Checkpoints, exports,
# engines and GGUFs are cached in --work (default /tmp/edgellm-cpu-bench) and reused by later runs.
# Decode GB/s is also given as a fraction of the streaming-read bandwidth measured in the same run
# (`edgellm bench --membw` around edgellm's runs, bench_membw right before each llama.cpp run).
# Output: a markdown table on stdout and in --out (default WORK/results.md), raw JSON in WORK/results.jsonl.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
EDGELLM="$ROOT/build/edgellm"
MEMBW="$ROOT/build/bench_membw"
WORK=/tmp/edgellm-cpu-bench
SHAPES="qwen3-0.6b llama3.2-1b"
PAIRS="bf16:f16 int8_sq:q8_0 int4_awq:q4_0"
THREADS=2 PP=512 TG=128 REPS=5 LAYERS="" OUT="" CALIB_SAMPLES=16 CALIB_SEQ=128 HEADQ=auto
while [ $# -gt 0 ]; do
  case "$1" in
    --shapes) SHAPES="$2"; shift 2 ;;
    --pairs) PAIRS="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --pp) PP="$2"; shift 2 ;;
    --tg) TG="$2"; shift 2 ;;
    --reps) REPS="$2"; shift 2 ;;
    --layers) LAYERS="$2"; shift 2 ;;
    --work) WORK="$2"; shift 2 ;;
    --edgellm) EDGELLM="$2"; shift 2 ;;
    --membw) MEMBW="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --calib-samples) CALIB_SAMPLES="$2"; shift 2 ;;
    --calib-seq-len) CALIB_SEQ="$2"; shift 2 ;;
    --head-quant) HEADQ="$2"; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "run_cpu_bench.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
OUT="${OUT:-$WORK/results.md}"
mkdir -p "$WORK"
JSONL="$WORK/results.jsonl"
: > "$JSONL"
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

[ -x "$EDGELLM" ] || { echo "run_cpu_bench.sh: $EDGELLM not found (build first)" >&2; exit 1; }
command -v node >/dev/null || { echo "run_cpu_bench.sh: node not found" >&2; exit 1; }
[ -d "$ROOT/bench/llamacpp/node_modules/node-llama-cpp" ] ||
  { echo "run_cpu_bench.sh: cd bench/llamacpp && npm ci --omit=optional   (node-llama-cpp missing)" >&2; exit 1; }
SHIM="$WORK/tp_shim.so"
cc -O2 -shared -fPIC -o "$SHIM" "$ROOT/bench/llamacpp/tp_shim.c" -ldl

# --- machine ---------------------------------------------------------------------------------------
CPU="$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1) ($(nproc) CPUs)"
BW=0
if [ -x "$MEMBW" ]; then
  log "streaming-read bandwidth ($MEMBW 1024 10 $THREADS)"
  BW=$("$MEMBW" 1024 10 "$THREADS" | tee "$WORK/membw.txt" | sed -n "s/^membw $THREADS threads*: *\([0-9.]*\) GB\/s.*/\1/p" | head -1)
  [ -n "$BW" ] || BW=0
else
  log "no $MEMBW: bandwidth column left empty (build the bench_membw target)"
fi
echo "{\"kind\":\"machine\",\"cpu\":\"$CPU\",\"membw_gb_s\":$BW,\"threads\":$THREADS}" >> "$JSONL"

# decode as a fraction of the bandwidth of the same run: `edgellm bench --membw` measures it before and after
# its runs (this machine swings between ~50 and ~85 GB/s from minute to minute), and bench_membw runs right
# before each llama.cpp run; the machine-wide sample above is the fallback.
EB_MEMBW=()
if "$EDGELLM" bench --help 2>&1 | grep -q -- --membw; then EB_MEMBW=(--membw); fi
CALIB_ARGS=()
if "$EDGELLM" export --help 2>&1 | grep -q -- --calib-samples; then
  CALIB_ARGS=(--calib-samples "$CALIB_SAMPLES" --calib-seq-len "$CALIB_SEQ")
fi

for shape in $SHAPES; do
  tag="$shape${LAYERS:+-l$LAYERS}"
  hf="$WORK/$tag.hf"
  if [ ! -f "$hf/model.safetensors" ]; then
    log "synth $shape -> $hf"
    "$EDGELLM" synth --shape "$shape" --dtype bf16 --output "$hf" --overwrite ${LAYERS:+--layers "$LAYERS"} >&2
  fi
  # calibrated formats (int8_sq, int4_awq, ...) need a tokenizer to encode the calibration text; the random
  # checkpoint gets sotu-qwen3's (4096 ids, all < vocab_size). Speed does not depend on it.
  if [ ! -f "$hf/tokenizer.json" ] && [ -f "$ROOT/tests/fixtures/models/sotu-qwen3/tokenizer.json" ]; then
    cp "$ROOT/tests/fixtures/models/sotu-qwen3/tokenizer.json" "$ROOT/tests/fixtures/models/sotu-qwen3/tokenizer_config.json" "$hf/"
  fi
  for pair in $PAIRS; do
    efmt="${pair%%:*}" gtype="${pair##*:}"
    hq=""
    if [ "$HEADQ" = auto ]; then
      case "$efmt" in int8_sq) hq=int8 ;; int4_awq|int4_rtn) hq=int4_awq ;; fp8|nvfp4) hq=$efmt ;; esac
    fi
    esuf=$efmt; [ -n "$hq" ] && esuf="$efmt-head-$hq"
    exp="$WORK/$tag.$esuf.export" eng="$WORK/$tag.$esuf.engine" gguf="$WORK/$tag.$gtype.gguf"
    ejson="null" etjson="null" ljson="null" enote="" lnote=""
    # edgellm: export -> build -> bench
    if [ ! -f "$eng/.complete" ]; then
      case "$efmt" in
        bf16|fp16|fp32) eargs=(--dtype "$efmt") ;;
        *) eargs=(--quantization "$efmt" "${CALIB_ARGS[@]}") ;;
      esac
      [ -n "$hq" ] && eargs+=(--lm-head-quantization "$hq")
      log "edgellm export $tag $efmt"
      if "$EDGELLM" export --model "$hf" --output "$exp" --overwrite "${eargs[@]}" > "$WORK/$tag.$efmt.export.log" 2>&1 &&
         "$EDGELLM" build --input "$exp" --engine "$eng" --overwrite --max-batch-size 1 --max-input-len "$PP" \
           --max-kv-cache-capacity $((PP + TG)) > "$WORK/$tag.$efmt.build.log" 2>&1; then
        touch "$eng/.complete"
        rm -rf "$exp"
      else
        enote="export/build failed: $(cat "$WORK/$tag.$efmt.export.log" "$WORK/$tag.$efmt.build.log" 2>/dev/null | grep . | tail -1 || true)"
        log "$enote"
      fi
    fi
    if [ -f "$eng/.complete" ]; then
      log "edgellm bench $tag $efmt (pp$PP tg$TG, $THREADS threads, $REPS reps)"
      if out=$("$EDGELLM" bench --engine "$eng" --prompt-len "$PP" --gen-len "$TG" --threads "$THREADS" --reps "$REPS" --json "${EB_MEMBW[@]}" 2>"$WORK/$tag.$efmt.bench.log"); then
        ejson=$(echo "$out" | grep '^{' | tail -1 || true); [ -n "$ejson" ] || ejson=null
        "$EDGELLM" info --engine "$eng" > "$WORK/$tag.$efmt.info.json" 2>/dev/null || true
      else
        enote="bench failed: $(tail -1 "$WORK/$tag.$efmt.bench.log" || true)"
      fi
      # tg as llama-bench (and llamacpp_bench.mjs) measures it: TG tokens from an empty cache (a 1-token prompt)
      log "edgellm bench $tag $efmt (tg$TG from an empty cache)"
      if out=$("$EDGELLM" bench --engine "$eng" --prompt-len 1 --gen-len "$TG" --threads "$THREADS" --reps "$REPS" --json "${EB_MEMBW[@]}" 2>>"$WORK/$tag.$efmt.bench.log"); then
        etjson=$(echo "$out" | grep '^{' | tail -1 || true); [ -n "$etjson" ] || etjson=null
      fi
    fi
    # llama.cpp: GGUF from our exporter (same weights) -> node-llama-cpp
    if [ ! -f "$gguf" ]; then
      log "edgellm export --format gguf $tag $gtype"
      "$EDGELLM" export --format gguf --quantization "$gtype" --model "$hf" --output "$gguf" --overwrite \
        > "$WORK/$tag.$gtype.gguf.log" 2>&1 || lnote="gguf export failed: $(tail -1 "$WORK/$tag.$gtype.gguf.log" || true)"
    fi
    lbw=0
    if [ -f "$gguf" ]; then
      if [ -x "$MEMBW" ]; then
        lbw=$("$MEMBW" 1024 5 "$THREADS" | sed -n "s/^membw $THREADS threads*: *\([0-9.]*\) GB\/s.*/\1/p" | head -1)
        [ -n "$lbw" ] || lbw=0
      fi
      log "llama.cpp bench $tag $gtype (bandwidth just before: $lbw GB/s)"
      if out=$(node "$ROOT/bench/llamacpp/llamacpp_bench.mjs" "$gguf" --threads "$THREADS" --pp "$PP" --tg "$TG" \
               --reps "$REPS" --fa on --shim "$SHIM" 2>"$WORK/$tag.$gtype.llamacpp.log"); then
        ljson=$(echo "$out" | grep '^{' | tail -1 || true); [ -n "$ljson" ] || ljson=null
      else
        lnote="llama.cpp failed: $(tail -1 "$WORK/$tag.$gtype.llamacpp.log" || true)"
      fi
    fi
    $PY - "$tag" "$esuf" "$gtype" "$gguf" "$WORK/$tag.$efmt.info.json" "$ejson" "$ljson" "$enote" "$lnote" "$PP" "$TG" "$lbw" "$etjson" >> "$JSONL" <<'EOF'
import json, struct, sys, os
tag, efmt, gtype, gguf, info_path, ej, lj, enote, lnote, pp, tg, lbw, etj = sys.argv[1:14]
pp, tg = int(pp), int(tg)
def gguf_info(path):  # tensor bytes by name + hparams from a GGUF file
    if not os.path.exists(path): return None
    with open(path, "rb") as f: b = f.read(1 << 26)
    o = 8; nt, nkv = struct.unpack_from("<QQ", b, o); o += 16
    def s():
        nonlocal o
        n, = struct.unpack_from("<Q", b, o); o += 8; v = b[o:o + n].decode("utf8", "replace"); o += n; return v
    sizes = {0: 4, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
    def val(t):
        nonlocal o
        if t == 8: return s()
        if t == 9:
            et, n = struct.unpack_from("<IQ", b, o); o += 12
            for _ in range(n): val(et)
            return None
        fmt = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}[t]
        v, = struct.unpack_from("<" + fmt, b, o); o += sizes[t]; return v
    kv = {}
    for _ in range(nkv):
        k = s(); t, = struct.unpack_from("<I", b, o); o += 4; kv[k] = val(t)
    rowb = {0: (1, 4), 1: (1, 2), 30: (1, 2), 8: (32, 34), 2: (32, 18)}
    tens = {}
    for _ in range(nt):
        name = s(); nd, = struct.unpack_from("<I", b, o); o += 4
        ne = struct.unpack_from("<" + "Q" * nd, b, o); o += 8 * nd
        ty, off = struct.unpack_from("<IQ", b, o); o += 12
        n = 1
        for x in ne: n *= x
        bs, bb = rowb.get(ty, (1, 0)); tens[name] = n // bs * bb
    return kv, tens
def med(d, k): return (d or {}).get(k, {}).get("median")
e = json.loads(ej) if ej != "null" else None
et = json.loads(etj) if etj != "null" else None  # tg from an empty cache (1-token prompt), as llama-bench's tg
l = json.loads(lj) if lj != "null" else None
g = gguf_info(gguf)
row = {"kind": "pair", "model": tag, "edgellm": efmt, "llamacpp": gtype, "edgellm_note": enote or None,
       "llamacpp_note": lnote or None, "edgellm_raw": e, "edgellm_tg_raw": et, "llamacpp_raw": l}
if g:
    kv, tens = g
    arch = kv["general.architecture"]
    L, E, H, KV = (kv[f"{arch}.{k}"] for k in ("block_count", "embedding_length", "attention.head_count", "attention.head_count_kv"))
    HD, FF, V = kv.get(f"{arch}.attention.key_length", E // H), kv[f"{arch}.feed_forward_length"], kv[f"{arch}.vocab_size"]
    tied = "output.weight" not in tens
    wbytes = sum(tens.values()) - (0 if tied else tens.get("token_embd.weight", 0))
    kv_bytes = 2 * L * KV * HD * 2 * (tg / 2)  # f16 K+V read per token, context 0..tg (llama-bench tg starts empty)
    lin = 2 * L * (E * H * HD * 2 + E * KV * HD * 2 + 3 * E * FF)  # q,o + k,v + gate,up,down
    attn = 4 * L * H * HD * (pp + 1) / 2                          # QK^T and PV, causal, per token on average
    flops_tok = lin + attn
    row.update(params_b=(lin / 2 + V * E) / 1e9, gguf_weight_bytes_per_token=wbytes, flops_per_prefill_token=flops_tok)
    if l:
        row["llamacpp_pp"], row["llamacpp_tg"] = med(l, "pp_tok_s"), med(l, "tg_tok_s")
        row["llamacpp_decode_gb_s"] = row["llamacpp_tg"] * (wbytes + kv_bytes) / 1e9
        row["llamacpp_prefill_gflop_s"] = row["llamacpp_pp"] * flops_tok / 1e9
        row["llamacpp_membw_gb_s"] = float(lbw) or None
    if e:
        row["edgellm_pp"], row["edgellm_tg"] = med(e, "prefill_tok_s"), med(e, "decode_tok_s")
        row["edgellm_decode_gb_s"] = e.get("decode_gb_s")
        row["edgellm_prefill_gflop_s"] = row["edgellm_pp"] * flops_tok / 1e9
        row["edgellm_membw_gb_s"] = e.get("membw_gb_s")
        row["edgellm_tg_ctx_pp"] = row["edgellm_tg"]  # decode at KV context pp .. pp + tg
    if et:  # the tg column: same start as llama.cpp's (empty cache)
        row["edgellm_tg"], row["edgellm_decode_gb_s"] = med(et, "decode_tok_s"), et.get("decode_gb_s")
        row["edgellm_membw_gb_s"] = et.get("membw_gb_s") or row.get("edgellm_membw_gb_s")
print(json.dumps(row))
EOF
  done
done

$PY - "$JSONL" "$OUT" "$PP" "$TG" "$REPS" <<'EOF'
import json, sys, datetime
rows = [json.loads(l) for l in open(sys.argv[1])]
out, pp, tg, reps = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
m = next(r for r in rows if r["kind"] == "machine")
bw = m["membw_gb_s"] or None
f = lambda v, d=1: "n/a" if v is None else f"{v:.{d}f}"
ratio = lambda a, b: "n/a" if a is None or b is None or not b else f"{a / b:.2f}x"
pct = lambda g, b=None: "n/a" if g is None or not (b or bw) else f"{100 * g / (b or bw):.0f}%"
L = [f"CPU: {m['cpu']}, {m['threads']} threads; streaming-read bandwidth ({m['threads']} threads, bench_membw): "
     f"{f(bw)} GB/s; {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC; medians of {reps} reps.", "",
     f"| model | edgellm | llama.cpp | pp{pp} edgellm | pp{pp} llama.cpp | pp ratio | tg{tg} edgellm | tg{tg} llama.cpp | tg ratio "
     f"| decode GB/s edgellm (of membw) | decode GB/s llama.cpp (of membw) | prefill GFLOP/s edgellm | prefill GFLOP/s llama.cpp "
     f"| tg{tg} edgellm at context {pp} |",
     "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
notes = []
for r in rows:
    if r["kind"] != "pair": continue
    g = lambda k: r.get(k)
    L.append(f"| {r['model']} | {r['edgellm']} | {r['llamacpp'].upper()} | {f(g('edgellm_pp'))} | {f(g('llamacpp_pp'))} | "
             f"{ratio(g('edgellm_pp'), g('llamacpp_pp'))} | {f(g('edgellm_tg'), 2)} | {f(g('llamacpp_tg'), 2)} | "
             f"{ratio(g('edgellm_tg'), g('llamacpp_tg'))} | {f(g('edgellm_decode_gb_s'))} ({pct(g('edgellm_decode_gb_s'), g('edgellm_membw_gb_s'))}) | "
             f"{f(g('llamacpp_decode_gb_s'))} ({pct(g('llamacpp_decode_gb_s'), g('llamacpp_membw_gb_s'))}) | {f(g('edgellm_prefill_gflop_s'))} | "
             f"{f(g('llamacpp_prefill_gflop_s'))} | {f(g('edgellm_tg_ctx_pp'), 2)} |")
    for k in ("edgellm_note", "llamacpp_note"):
        if r.get(k): notes.append(f"- {r['model']} {r['edgellm']}/{r['llamacpp']}: {r[k]}")
    lr = r.get("llamacpp_raw") or {}
    if lr and "persistent" not in lr.get("threadpool", ""):
        notes.append(f"- {r['model']} {r['llamacpp']}: llama.cpp ran WITHOUT the persistent thread pool ({lr.get('threadpool')})")
L.append("")
L.append("ratio = edgellm / llama.cpp. tg: generation from an empty cache on both sides (llama-bench's tg; edgellm: "
         "`edgellm bench --prompt-len 1`); the last column is edgellm's decode after the pp prompt (context pp .. pp+tg). "
         "Decode GB/s = tok/s x (weight bytes read per token + KV bytes); edgellm's from "
         "`edgellm bench` (KV at context prompt+gen/2), llama.cpp's from the GGUF tensor sizes (tied embeddings read in "
         "full as the output matrix) + f16 KV at context tg/2; 'of membw' = of the streaming-read bandwidth measured in the "
         "same run (edgellm: `edgellm bench --membw`, the higher of before/after; llama.cpp: bench_membw just before), "
         "else of the machine figure above. Prefill GFLOP/s counts the layers' matmuls and causal attention (not the LM head).")
bws = [f"{r['model']} {r['edgellm']}/{r['llamacpp']}: edgellm {f(r.get('edgellm_membw_gb_s'))}, llama.cpp {f(r.get('llamacpp_membw_gb_s'))}"
       for r in rows if r["kind"] == "pair" and (r.get("edgellm_membw_gb_s") or r.get("llamacpp_membw_gb_s"))]
if bws: L.append("Same-run bandwidth (GB/s): " + "; ".join(bws) + ".")
L += notes
text = "\n".join(L) + "\n"
open(out, "w").write(text)
print(text)
EOF
