// llama.cpp CPU speed through npm node-llama-cpp 3.21.1 (prebuilt CPU binaries), measured like llama-bench's
// pp512 / tg128: one sequence, random token ids, empty KV cache at the start of every repetition, one
// warmup (a prompt pass + one generated token) first. Used by bench/run_cpu_bench.sh.
//
//   node bench/llamacpp/llamacpp_bench.mjs MODEL.gguf [--threads 2] [--pp 512] [--tg 128] [--reps 5]
//        [--fa on|off|auto] [--shim tp_shim.so]
//
// --shim re-runs this script with LD_PRELOAD=tp_shim.so, which attaches a persistent ggml thread pool to
// the context as llama-bench does (bench/llamacpp/tp_shim.c). Primary numbers are llama.cpp's own decode
// timers (llama_perf_context "prompt eval" / "eval", read and reset after every repetition through
// printTimings; node-llama-cpp synchronizes right after llama_decode, so they time the decode calls as
// llama-bench's timer does); *_wall adds node-llama-cpp's JS/N-API overhead and the sampling of one token
// per decode. Prints one JSON line (min/median/max over repetitions).
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { pathToFileURL, fileURLToPath } from "node:url";
import { spawnSync } from "node:child_process";

const here = path.dirname(fileURLToPath(import.meta.url));
const argv = process.argv.slice(2);
const opt = (name, def) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 && i + 1 < argv.length ? argv[i + 1] : def;
};
const modelPath = argv[0];
if (!modelPath || modelPath.startsWith("--")) {
    console.error("usage: node llamacpp_bench.mjs MODEL.gguf [--threads 2] [--pp 512] [--tg 128] [--reps 5] [--fa on] [--shim tp_shim.so]");
    process.exit(2);
}
const threads = Number(opt("threads", "2")), nPP = Number(opt("pp", "512")), nTG = Number(opt("tg", "128"));
const reps = Number(opt("reps", "5"));
const fa = { on: true, off: false, auto: "auto" }[opt("fa", "on")];
const shim = opt("shim", null);
if (shim && process.env.EDGELLM_TP_SHIM !== path.resolve(shim)) {
    const r = spawnSync(process.execPath, process.argv.slice(1), {
        stdio: "inherit", env: { ...process.env, LD_PRELOAD: path.resolve(shim), EDGELLM_TP_SHIM: path.resolve(shim) } });
    process.exit(r.status ?? 1);
}

function resolveNlc() {
    for (const d of [process.env.NLC_MODULES, path.join(here, "node_modules")].filter(Boolean)) {
        try { return createRequire(path.join(path.resolve(d), "_")).resolve("node-llama-cpp"); } catch { /* next */ }
    }
    console.error("node-llama-cpp not found: cd bench/llamacpp && npm ci --omit=optional");
    process.exit(77);
}
const entry = resolveNlc();
const nlc = await import(pathToFileURL(entry).href);
const perf = [];
const llama = await nlc.getLlama({ gpu: false, build: "never", maxThreads: 0, logLevel: nlc.LlamaLogLevel.info,
    logger: (lvl, msg) => {
        if (msg.includes("llama_perf_context_print")) perf.push(msg);
        else if (lvl === "error" || lvl === "fatal") console.error(msg);
    } });
const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
const ctx = await model.createContext({ contextSize: nPP + nTG, batchSize: nPP, sequences: 1, threads,
    flashAttention: fa, performanceTracking: true });
const seq = ctx.getSequence();
const nVocab = Number(model.fileInfo.tensorInfo?.find(t => t.name === "token_embd.weight")?.dimensions?.[1] ?? 32000);
let rng = 12345;
const randTok = () => (rng = (rng * 1103515245 + 12345) % 2147483648) % nVocab;

async function timers() { // prints llama_perf_context_print lines, then resets the counters
    perf.length = 0;
    await ctx.printTimings();
    const get = (re) => {
        const l = perf.find(s => re.test(s));
        const m = l && l.match(/=\s*([\d.]+) ms \/\s*(\d+)/);
        return m ? { ms: Number(m[1]), n: Number(m[2]) } : null;
    };
    return { prompt: get(/prompt eval time =/), gen: get(/(?<!prompt )eval time =/) };
}
async function prompt() {
    await seq.clearHistory();
    const toks = Array.from({ length: nPP }, randTok);
    await timers();
    const t0 = performance.now();
    await seq.controlledEvaluate(toks.map((t, i) => (i === nPP - 1 ? [t, { generateNext: { token: true } }] : t)));
    const wall = performance.now() - t0;
    return { wall, t: (await timers()).prompt };
}
async function gen(n) {
    await seq.clearHistory();
    await timers();
    const t0 = performance.now();
    for (let i = 0; i < n; i++) await seq.controlledEvaluate([[randTok(), { generateNext: { token: true } }]]);
    const wall = performance.now() - t0;
    return { wall, t: (await timers()).gen };
}
const stats = (xs) => {
    const s = [...xs].sort((a, b) => a - b), k = s.length;
    const med = k % 2 ? s[(k - 1) / 2] : (s[k / 2 - 1] + s[k / 2]) / 2;
    return { min: +s[0].toFixed(2), median: +med.toFixed(2), max: +s[k - 1].toFixed(2) };
};

await prompt(); // warmup
await gen(1);
const pp = [], tg = [];
for (let r = 0; r < reps; r++) pp.push(await prompt());
for (let r = 0; r < reps; r++) tg.push(await gen(nTG));
const tps = (runs, n) => runs.map(x => (x.t ? x.t.n / (x.t.ms / 1000) : NaN));
const tpsWall = (runs, n) => runs.map(x => n / (x.wall / 1000));
console.log(JSON.stringify({
    model: path.resolve(modelPath), file_bytes: fs.statSync(modelPath).size, n_vocab: nVocab, threads,
    threads_used: ctx.currentThreads, pp: nPP, tg: nTG, reps, flash_attention: opt("fa", "on"),
    threadpool: process.env.EDGELLM_TP_SHIM_ATTACHED ? `persistent (tp_shim, ${process.env.EDGELLM_TP_SHIM_ATTACHED} threads)`
        : process.env.EDGELLM_TP_SHIM ? "per-decode (shim preloaded, NOT attached)" : "per-decode (node-llama-cpp default)",
    node_llama_cpp: JSON.parse(fs.readFileSync(path.join(path.dirname(entry), "..", "package.json"), "utf8")).version,
    llama_cpp_release: llama.llamaCppRelease?.release, build: llama.buildType,
    pp_tok_s: stats(tps(pp, nPP)), tg_tok_s: stats(tps(tg, nTG)),
    pp_tok_s_wall: stats(tpsWall(pp, nPP)), tg_tok_s_wall: stats(tpsWall(tg, nTG)),
    system_info: llama.systemInfo.trim(),
}));
await ctx.dispose();
await model.dispose();
await llama.dispose();
