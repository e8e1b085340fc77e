// GGUF interop check: exports each fixture model with `edgellm export --format gguf`, loads the file in
// llama.cpp (npm node-llama-cpp 3.21.1, prebuilt CPU binaries), runs greedy decoding from the reference
// prompts' input ids (token ids, no text) and compares the generated ids with the reference greedy ids
// (reference.safetensors promptN.greedy_ids, which edgellm's own engine reproduces exactly: tests/e2e).
// For models with a tokenizer.json it also checks that llama.cpp tokenizes a few texts (no special tokens)
// into the same ids as `edgellm tokenize` (added tokens matched, no BOS), i.e. that the tokenizer metadata is right.
//
//   node bench/llamacpp/check_gguf.mjs --edgellm build/edgellm --fixtures tests/fixtures/models --tmp DIR
//        [--models tiny-llama,tiny-qwen2,...] [--quant f16|bf16|f32|q8_0|q4_0] [--report-only] [--threads 2]
//
// Every prompt is also scored at the distribution level: mean over its positions of KL(softmax(reference
// logits) || llama.cpp's next-token probabilities). Pass: f16/bf16/f32 = greedy ids identical and KL < 1e-4;
// q8_0 / q4_0 (lossy, greedy paths may diverge on these tiny models) = KL < 5e-3 / 0.15.
// Exit 0: every check passed (or --report-only), 1: a mismatch or a load failure, 77: node-llama-cpp is
// not installed (the ctest test is then SKIPPED; install with `npm ci --omit=optional` in bench/llamacpp).
// Prints one JSON line per model/prompt and a summary line.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { pathToFileURL, fileURLToPath } from "node:url";
import { spawnSync } from "node:child_process";

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const opt = (name, def) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 && i + 1 < args.length ? args[i + 1] : def;
};
const flag = (name) => args.includes(`--${name}`);
const edgellm = opt("edgellm", process.env.EDGELLM_CLI ?? "build/edgellm");
const fixtures = opt("fixtures", "tests/fixtures/models");
const tmp = opt("tmp", process.env.EDGELLM_TMP ?? "/tmp");
const quant = opt("quant", "f16");
const threads = Number(opt("threads", "2"));
const models = opt("models", "tiny-llama,tiny-qwen2,tiny-qwen3,sotu-qwen3,stories260K-hf").split(",");

function resolveNlc() {
    const dirs = [process.env.NLC_MODULES, path.join(here, "node_modules"), ...(process.env.NODE_PATH ?? "").split(path.delimiter)];
    for (const d of dirs.filter(Boolean)) {
        try { return createRequire(path.join(path.resolve(d), "_")).resolve("node-llama-cpp"); } catch { /* next */ }
    }
    return null;
}
const nlcEntry = resolveNlc();
if (!nlcEntry) {
    console.log("SKIP: node-llama-cpp not installed (cd bench/llamacpp && npm ci --omit=optional)");
    process.exit(77);
}
let nlc;
try {
    nlc = await import(pathToFileURL(nlcEntry).href);
} catch (e) {
    console.log(`SKIP: node-llama-cpp does not load here: ${e.message}`);
    process.exit(77);
}

// minimal safetensors reader for the I32 reference tensors
function readSafetensors(file) {
    const buf = fs.readFileSync(file);
    const n = Number(buf.readBigUInt64LE(0));
    const hdr = JSON.parse(buf.subarray(8, 8 + n).toString("utf8"));
    const out = {};
    for (const [k, v] of Object.entries(hdr)) {
        if (k === "__metadata__" || (v.dtype !== "I32" && v.dtype !== "F32")) continue;
        const [b, e] = v.data_offsets;
        const bytes = buf.subarray(8 + n + b, 8 + n + e);
        const ab = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length);
        out[k] = v.dtype === "I32" ? Array.from(new Int32Array(ab)) : { shape: v.shape, data: new Float32Array(ab) };
    }
    return out;
}

let llama;
try {
    llama = await nlc.getLlama({ gpu: false, build: "never", logLevel: nlc.LlamaLogLevel.error, logger: (lvl, msg) => {
        if (lvl === "error" || lvl === "fatal") process.stderr.write(`[llama.cpp] ${msg}\n`);
    } });
} catch (e) {
    console.log(`SKIP: no usable llama.cpp binary in node-llama-cpp: ${e.message}`);
    process.exit(77);
}

const lossless = ["f16", "fp16", "bf16", "f32", "fp32"].includes(quant);
// measured 2026-11-28 (per prompt): q8_0 <= 5e-4, q4_0 <= 0.08; Q4_0 with swapped nibbles: >= 0.30 (tiny models,
// near-uniform logits) and 6.6 (sotu-qwen3)
const klMax = { q8_0: 5e-3, q4_0: 0.15 };
if (!lossless && !(quant in klMax)) { console.error(`unknown --quant ${quant}`); process.exit(2); }
const texts = ["The state of the Union is strong.", "Once upon a time, there was a little girl named Lily.",
    "  Hello\n\nworld!! 1234 don't it's", "\u00dcn\u00efc\u00f6d\u00e9 na\u00efve caf\u00e9 \u2014 2021\ttabs\r\n",
    "<|im_start|>user\nhi<|im_end|>"];
fs.mkdirSync(tmp, { recursive: true });
let failures = 0, total = 0, matched = 0, greedyMatched = 0, tokTotal = 0, tokMatched = 0;
for (const m of models) {
    const dir = path.join(fixtures, m);
    const gguf = path.join(tmp, `${m}.${quant}.gguf`);
    const ex = spawnSync(edgellm, ["export", "--format", "gguf", "--quantization", quant, "--model", dir,
        "--output", gguf, "--overwrite"], { encoding: "utf8" });
    if (ex.status !== 0) {
        console.log(JSON.stringify({ model: m, quant, error: `export failed: ${ex.stderr.trim()}` }));
        failures++;
        continue;
    }
    const ref = readSafetensors(path.join(dir, "reference.safetensors"));
    let model, ctx;
    try {
        model = await llama.loadModel({ modelPath: gguf, gpuLayers: 0 });
        const prompts = Object.keys(ref).filter(k => k.endsWith(".input_ids")).map(k => k.split(".")[0]).sort();
        const need = Math.max(...prompts.map(p => ref[`${p}.input_ids`].length + ref[`${p}.greedy_ids`].length));
        if (!prompts.every(p => ref[`${p}.logits`])) throw new Error("reference.safetensors lacks promptN.logits");
        ctx = await model.createContext({ contextSize: Math.max(64, need + 8), sequences: 1, threads,
            batchSize: Math.max(64, need + 8) });
        const seq = ctx.getSequence();
        for (const p of prompts) {
            const input = ref[`${p}.input_ids`], want = ref[`${p}.greedy_ids`];
            await seq.clearHistory();
            const gen = [];
            const greedy = { token: true, options: { temperature: 0 } };
            let res = await seq.controlledEvaluate(input.map((t, i) => (i === input.length - 1 ? [t, { generateNext: greedy }] : t)));
            let next = res[input.length - 1]?.next?.token;
            while (next !== undefined && gen.length < want.length) {
                gen.push(next);
                if (gen.length === want.length) break;
                res = await seq.controlledEvaluate([[next, { generateNext: greedy }]]);
                next = res[0]?.next?.token;
            }
            let firstDiff = gen.findIndex((t, i) => t !== want[i]);
            if (firstDiff < 0 && gen.length !== want.length) firstDiff = gen.length;
            const greedyOk = firstDiff < 0;
            // next-token distribution at every prompt position vs the reference logits: KL(ref || llama.cpp)
            await seq.clearHistory();
            const full = { probabilities: true, options: { temperature: 1, topK: 0, topP: 1, minP: 0 } };
            const pr = await seq.controlledEvaluate(input.map(t => [t, { generateNext: full }]));
            const L = ref[`${p}.logits`], V = L.shape[1];
            let kl = 0, top1 = 0;
            for (let i = 0; i < input.length; i++) {
                const row = L.data.subarray(i * V, (i + 1) * V), probs = pr[i].next.probabilities;
                let mx = -Infinity, am = 0;
                for (let v = 0; v < V; v++) if (row[v] > mx) { mx = row[v]; am = v; }
                let z = 0;
                for (let v = 0; v < V; v++) z += Math.exp(row[v] - mx);
                for (let v = 0; v < V; v++) {
                    const pv = Math.exp(row[v] - mx) / z;
                    if (pv > 0) kl += pv * Math.log(pv / Math.max(probs.get(v) ?? 0, 1e-12));
                }
                if (probs.entries().next().value[0] === am) top1++;
            }
            kl /= input.length;
            // lossless types must reproduce the greedy ids; quantized ones must stay close in distribution
            // (a layout error - wrong permutation, nibble order, scale - gives KL >> 1)
            const ok = lossless ? greedyOk && kl < 1e-4 : kl < klMax[quant];
            total++;
            if (ok) matched++; else failures++;
            if (greedyOk) greedyMatched++;
            console.log(JSON.stringify({ model: m, quant, prompt: p, n_input: input.length, n_gen: want.length, match: ok,
                greedy_match: greedyOk, first_diff: greedyOk ? null : firstDiff, mean_kl: +kl.toExponential(3),
                top1: `${top1}/${input.length}`, llamacpp: gen, reference: want }));
        }
        // tokenizer metadata: llama.cpp's tokenization of text = edgellm's (no special tokens)
        if (fs.existsSync(path.join(dir, "tokenizer.json"))) {
            const r = spawnSync(edgellm, ["tokenize", "--tokenizer", dir],
                { input: texts.map(t => JSON.stringify({ text: t })).join("\n") + "\n", encoding: "utf8" });
            const ours = r.status === 0 ? r.stdout.trim().split("\n").map(l => JSON.parse(l).ids) : [];
            texts.forEach((t, i) => {
                const lc = Array.from(model.tokenize(t, true)); // true: special tokens in the text are matched, as HF does
                const ok = JSON.stringify(lc) === JSON.stringify(ours[i]);
                tokTotal++;
                if (ok) tokMatched++; else failures++;
                if (!ok) console.log(JSON.stringify({ model: m, tokenize: t, match: false, llamacpp: lc, edgellm: ours[i] ?? null }));
            });
            console.log(JSON.stringify({ model: m, quant, tokenize_texts: texts.length, note: "tokenization checked" }));
        }
    } catch (e) {
        console.log(JSON.stringify({ model: m, quant, error: `llama.cpp: ${e.message}` }));
        failures++;
    } finally {
        await ctx?.dispose();
        await model?.dispose();
    }
}
console.log(JSON.stringify({ summary: true, quant, prompts: total, prompts_passed: matched, greedy_identical: greedyMatched,
    tokenize_texts: tokTotal, tokenize_matched: tokMatched, failures, llama_cpp: llama.llamaCppRelease,
    node_llama_cpp: JSON.parse(fs.readFileSync(path.join(path.dirname(nlcEntry), "..", "package.json"), "utf8")).version }));
await llama.dispose();
process.exit(failures && !flag("report-only") ? 1 : 0);
