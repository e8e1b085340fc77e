#!/usr/bin/env node
// bench_tokenizer_hf.mjs - the reference for bench/bench_tokenizer.c: HF tokenizers 0.22 (native, via
// @anush008/tokenizers, single thread) encoding Moby Dick with the qwen3 and llama3 tokenizers.
//
//   (cd scripts/tokenizer-ref && npm ci)
//   RAYON_NUM_THREADS=1 node scripts/bench_tokenizer_hf.mjs [--text FILE] [--runs N] [NAME=PATH ...]
//
// Reports load time, whole-text encode MB/s (one call; first run and best of N) and per-line MB/s.
// Per-line numbers include the N-API call overhead of each await.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

process.env.RAYON_NUM_THREADS = process.env.RAYON_NUM_THREADS || '1';
process.env.TOKENIZERS_PARALLELISM = 'false';
const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const require = createRequire(join(here, 'tokenizer-ref', 'package.json'));
const { Tokenizer } = require('@anush008/tokenizers');

const args = process.argv.slice(2);
let textPath = existsSync('/work/shared/data/moby_dick.txt') ? '/work/shared/data/moby_dick.txt'
  : join(root, 'tests/fixtures/data/moby_dick.txt');
let runs = 5;
const toks = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--text') textPath = args[++i];
  else if (args[i] === '--runs') runs = Math.max(1, parseInt(args[++i], 10));
  else if (args[i].includes('=')) { const [n, p] = args[i].split('='); toks.push([n, p]); }
}
if (!toks.length) {
  toks.push(['qwen3', join(root, 'tests/fixtures/tokenizers/qwen3/tokenizer.json.xz')]);
  toks.push(['llama3', join(root, 'tests/fixtures/tokenizers/llama3/tokenizer.json.xz')]);
}

function materialize(path) {
  if (!path.endsWith('.xz')) return path;
  const out = join(mkdtempSync(join(tmpdir(), 'hfbench-')), 'tokenizer.json');
  writeFileSync(out, execFileSync('xz', ['-dc', path], { maxBuffer: 1 << 30 }));
  return out;
}

const text = readFileSync(textPath, 'utf8');
const bytes = Buffer.byteLength(text, 'utf8');
const lines = text.match(/[^\n]*\n|[^\n]+$/g);
console.log(`text: ${textPath} (${(bytes / 1e6).toFixed(2)} MB), HF tokenizers, ${runs} runs`);
for (const [name, p] of toks) {
  const file = materialize(p);
  // process CPU time (user + system, all threads): robust on a busy machine
  const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e3; };
  let t0 = performance.now(), c0 = cpu();
  const tok = Tokenizer.fromFile(file);
  const loadMs = performance.now() - t0, loadCpu = cpu() - c0;
  let first = 0, best = Infinity, bestCpu = Infinity, n = 0;
  for (let r = 0; r < runs; r++) {
    t0 = performance.now();
    c0 = cpu();
    const enc = await tok.encode(text, null, { addSpecialTokens: false });
    const ms = performance.now() - t0;
    bestCpu = Math.min(bestCpu, cpu() - c0);
    n = enc.getIds().length;
    if (r === 0) first = ms;
    best = Math.min(best, ms);
  }
  let lineBest = Infinity, lineCpu = Infinity;
  for (let r = 0; r < runs; r++) {
    t0 = performance.now();
    c0 = cpu();
    for (const l of lines) await tok.encode(l, null, { addSpecialTokens: false });
    lineBest = Math.min(lineBest, performance.now() - t0);
    lineCpu = Math.min(lineCpu, cpu() - c0);
  }
  const mb = bytes / 1e6;
  const f = (ms) => (mb / (ms / 1e3)).toFixed(1);
  console.log(`${name.padEnd(8)} load ${loadMs.toFixed(1).padStart(6)} ms (cpu ${loadCpu.toFixed(1).padStart(6)}) | ` +
    `whole text: ${n} tokens, first ${f(first)} MB/s, best ${f(best)} MB/s (cpu ${f(bestCpu)}) | per line: best ` +
    `${f(lineBest)} MB/s (cpu ${f(lineCpu)})`);
}
