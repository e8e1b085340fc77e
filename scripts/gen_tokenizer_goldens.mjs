#!/usr/bin/env node
// gen_tokenizer_goldens.mjs - golden ids / decodes from HF tokenizers 0.22 (native, @anush008/tokenizers)
// for tests/unit/test_tokenizer.c.
//
//   (cd scripts/tokenizer-ref && npm ci)            # pinned @anush008/tokenizers
//   node scripts/gen_tokenizer_goldens.mjs          # from the repo root
//
// Reads the tokenizers the test uses (tests/fixtures/tokenizers/<name>/tokenizer.json.xz or
// tokenizer.overlay.json, and the model fixtures), builds the shared text set (Moby Dick and SOTU slices from /work/shared/data or
// $EDGELLM_DATA, plus a seeded unicode torture set) and writes
//   tests/fixtures/tokenizers/texts.jsonl.xz          one JSON string per line
//   tests/fixtures/tokenizers/<name>/goldens.jsonl.xz one object per text line:
//     {"ids": [...]}                 encode(text, add_special_tokens=false)
//     "sp": [...]                    encode(text, true), only on every 10th line and when it differs
//     "dec": "..."                   decode(ids, false), only when it differs from the text
//     "dsk": "..."                   decode(ids, true), only when it differs from decode(ids, false)
//     "cut": "..."                   decode(ids without the last id, false), torture lines only
//   followed by RANDOM_DECODES lines {"rid": [...], "rdec": decode(rid, false), "rdsk": decode(rid, true)}
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const require = createRequire(join(here, 'tokenizer-ref', 'package.json'));
const { Tokenizer } = require('@anush008/tokenizers');

const dataDir = process.env.EDGELLM_DATA || '/work/shared/data';
const fixDir = join(root, 'tests', 'fixtures', 'tokenizers');
const RANDOM_DECODES = 400;

export const TOKENIZERS = {
  'stories260K': join(root, 'tests/fixtures/models/stories260K-hf/tokenizer.json'),
  'sotu-qwen3': join(root, 'tests/fixtures/models/sotu-qwen3/tokenizer.json'),
  'qwen3': join(fixDir, 'qwen3/tokenizer.json.xz'),
  'llama3': join(fixDir, 'llama3/tokenizer.json.xz'),
  'llama3_1': join(fixDir, 'llama3_1/tokenizer.overlay.json'), // llama3's file with these keys replaced
  'gemma3': join(fixDir, 'gemma3/tokenizer.json.xz'),
  'deepseek_v3': join(fixDir, 'deepseek_v3/tokenizer.json.xz'),
  'llama2': join(fixDir, 'llama2/tokenizer.json.xz'),
};

// ---- seeded PRNG -------------------------------------------------------------------------------
function mulberry32(a) {
  return function () {
    a |= 0; a = (a + 0x6D2B79F5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rnd = mulberry32(20260611);
const pick = (a) => a[Math.floor(rnd() * a.length)];
const rint = (lo, hi) => lo + Math.floor(rnd() * (hi - lo + 1));

// ---- text sources ------------------------------------------------------------------------------
function mobyLines() {
  const lines = readFileSync(join(dataDir, 'moby_dick.txt'), 'utf8').split('\n');
  const out = [];
  // single lines (leading/trailing spaces kept), 11,000 non-empty ones spread over the book
  const nonEmpty = lines.filter((l) => l.trim().length > 0);
  const step = nonEmpty.length / 11000;
  for (let i = 0; i < 11000; i++) out.push(nonEmpty[Math.floor(i * step)]);
  // 800 paragraph chunks of 2-6 raw lines joined by "\n" (blank lines included)
  for (let i = 0; i < 800; i++) {
    const s = Math.floor((i * (lines.length - 8)) / 800);
    out.push(lines.slice(s, s + rint(2, 6)).join('\n'));
  }
  return out;
}

function sotuLines() {
  const text = readFileSync(join(dataDir, 'sotu_1790_2005.txt'), 'utf8');
  const sents = text.split(/(?<=[.!?])\s+/).filter((s) => s.length > 0);
  const out = [];
  const step = sents.length / 5300;
  for (let i = 0; i < 5300; i++) out.push(sents[Math.floor(i * step)]);
  for (let i = 0; i < 400; i++) {
    const s = Math.floor((i * (sents.length - 10)) / 400);
    out.push(sents.slice(s, s + rint(2, 5)).join(pick([' ', '\n', '\n\n', '  ', '\r\n'])));
  }
  return out;
}

const SCRIPTS = [
  '你好，世界！今天天气很好。', '我们在北京大学学习人工智能和自然语言处理。', '東京都渋谷区で寿司を食べました。',
  'カタカナとひらがなの混在テキスト', '한국어 문장도 포함합니다. 안녕하세요!', 'مرحبا بالعالم، كيف حالك اليوم؟',
  'السَّلَامُ عَلَيْكُمْ وَرَحْمَةُ اللهِ', 'שלום עולם, מה שלומך?', 'בְּרֵאשִׁית בָּרָא אֱלֹהִים',
  'नमस्ते दुनिया, आप कैसे हैं?', 'संस्कृतम् भाषा क्षत्रिय', 'สวัสดีชาวโลก ภาษาไทยไม่มีช่องว่าง',
  'Привет, мир! Съешь же ещё этих мягких французских булок.', 'Ελληνικά: Καλημέρα κόσμε, ΑΒΓΔ αβγδ ς',
  'Ünïcödé façade naïve coöperate résumé Ångström', 'Zürich Straße ÄÖÜ äöü ß ẞ', 'ǅemal ǈubljana ﬁne ﬂow ﬀ',
  'Tiếng Việt có dấu: Người Việt Nam', 'ქართული ენა', 'Հայերեն լեզու', 'አማርኛ ቋንቋ', 'ᚠᛇᚻ᛫ᛒᛦᚦ runes',
  '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕞𝕒𝕥𝕙 𝟙𝟚𝟛', 'Ⅻ ⅷ ① ⑳ ¼ ½ ¾ ² ³', '٠١٢٣٤٥٦٧٨٩ ۰۱۲۳ ०१२३४५ ๑๒๓',
];
const COMBINING = ['e\u0301', 'a\u0308', 'n\u0303', 'o\u0302\u0323', 'A\u030A', 'i\u0307', '\u1100\u1161\u11A8',
  'Z\u0351\u036B\u0343\u036A\u0302\u036B\u033D\u034F\u0334\u0319\u0324\u031E', 'e\u0301\u0301\u0301', '\u0915\u094D\u0937'];
const EMOJI = ['🙂', '😀😃😄', '👍🏽', '👩‍💻', '👨‍👩‍👧‍👦', '🏳️‍🌈', '🇺🇸', '🇯🇵🇫🇷🇩🇪', '❤️', '✌🏿', '🧑🏻‍🤝‍🧑🏾',
  '🤖🚀✨', '©®™', '☃︎', '🫠🫥', '⚽️⚾️'];
const SPECIAL_LIKE = ['<|im_start|>', '<|im_end|>', '<|endoftext|>', '<s>', '</s>', '<unk>', '<pad>', '<|im_',
  '<|im_start', 'im_start|>', '<|begin_of_text|>', '<|eot_id|>', '<|start_header_id|>', '<bos>', '<eos>',
  '<start_of_turn>', '<end_of_turn>', '<｜begin▁of▁sentence｜>', '<｜User｜>', '<think>', '</think>',
  '<tool_call>', '<0x41>', '<0xFF>', '[INST]', '<<SYS>>', '<|', '|>', '< s >', '<s><s>', '</s></s>', '<mask>',
  '<unused0>', '<image_soft_token>', '▁', '▁▁hello', 'Ġ', 'Ċ', '##ing'];
const WS = [' ', '  ', '   ', '\t', '\t\t', '\n', '\n\n', '\r\n', '\r', ' \n ', '\u00A0', '\u3000', '\u2009', '\u200B',
  '\u0085', '\u2028', ' \t \n', '\v', '\f', '        '];
const WORDS = ['the', 'The', 'don\'t', "I'm", "we'll", "they've", "you're", "it's", "He'd", 'CAPS', 'MiXeD', 'x',
  'hello', 'world', 'tokenization', 'antidisestablishmentarianism', 'co-operate', 'e-mail', 'U.S.A.', 'Mr.',
  'foo_bar', 'camelCaseWord', 'snake_case_word', 'http://example.com/a?b=c&d=e', 'user@example.org', '#hashtag',
  '@mention', '$100.00', '3.14159', '1,234,567', '2026-06-11', '12:34:56', '+1-555-0100', '0x1F', '100%', '...',
  '!!!', '???', '—', '–', '…', '«quote»', '"double"', "'single'", '(paren)', '[bracket]', '{brace}', 'a/b\\c',
  '<html>', '</div>', '&amp;', '=>', '!=', '==', '+=', ';', '::', '->', '~', '^', '`code`', '*bold*', '_it_'];
const DIGITS = ['0', '7', '42', '123', '1234', '12345', '123456789', '00000000', '3.0', '1e10', '٣٤٥', '१२३', '１２３'];

function tortureLines(n) {
  const out = [];
  // fixed lines first
  for (const s of SCRIPTS) out.push(s);
  for (const s of SPECIAL_LIKE) { out.push(s); out.push(`Hello ${s} world`); out.push(`${s}${s}`); out.push(` ${s}\n`); }
  out.push('<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n');
  out.push('<s>[INST] What is 2+2? [/INST] 4 </s><s>[INST] and 3+3? [/INST]');
  out.push('<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>');
  out.push('<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n');
  for (const w of WS) { out.push(w); out.push(`a${w}b`); out.push(`${w}lead`); out.push(`trail${w}`); }
  out.push(''); out.push(' '); out.push('a'); out.push('\n'.repeat(40)); out.push(' '.repeat(100)); out.push('\t'.repeat(17));
  out.push('a'.repeat(300)); out.push('ab'.repeat(400)); out.push('9'.repeat(257)); out.push('x' + 'y'.repeat(1000));
  out.push('Supercalifragilisticexpialidocious'.repeat(12)); out.push('🙂'.repeat(64)); out.push('你'.repeat(200));
  out.push('ᚠ'.repeat(50)); out.push('-'.repeat(120)); out.push('=_'.repeat(80)); out.push('é'.repeat(90));
  for (const e of EMOJI) { out.push(e); out.push(`x${e}y`); out.push(`${e} ${e}`); }
  for (const c of COMBINING) { out.push(c); out.push(`word${c}word ${c}`); }
  for (const d of DIGITS) { out.push(d); out.push(`abc${d}def`); out.push(`${d} ${d}`); }
  const frags = [SCRIPTS, COMBINING, EMOJI, SPECIAL_LIKE, WS, WORDS, WORDS, WORDS, DIGITS];
  while (out.length < n) {
    const k = rint(1, 14);
    let s = '';
    for (let i = 0; i < k; i++) {
      const f = pick(frags);
      s += pick(f);
      if (rnd() < 0.6) s += pick([' ', ' ', ' ', '', '\n', '  ', '\t']);
    }
    if (rnd() < 0.1) s = ' ' + s;
    if (rnd() < 0.1) s = s.toUpperCase();
    out.push(s);
  }
  return out;
}

function xzRead(path) {
  if (path.endsWith('.overlay.json')) {
    // {"base": "<fixture name>", "<top-level key>": value, ...}: the base tokenizer.json with keys replaced
    const ov = JSON.parse(readFileSync(path, 'utf8'));
    const base = JSON.parse(xzRead(join(fixDir, ov.base, 'tokenizer.json.xz')).toString('utf8'));
    for (const [k, v] of Object.entries(ov)) if (k !== 'base') base[k] = v;
    return Buffer.from(JSON.stringify(base));
  }
  if (!path.endsWith('.xz')) return readFileSync(path);
  return execFileSync('xz', ['-dc', path], { maxBuffer: 1 << 30 });
}

function xzWrite(path, text) {
  const tmp = join(mkdtempSync(join(tmpdir(), 'gold-')), 'f');
  writeFileSync(tmp, text);
  execFileSync('xz', ['-9e', '-T1', '-f', tmp]);
  writeFileSync(path, readFileSync(tmp + '.xz'));
}

async function main() {
  // arguments: names of TOKENIZERS to (re)generate (default: all), or NAME=DIR for an extra tokenizer
  // DIR/tokenizer.json whose goldens go to DIR/goldens.jsonl.xz (see EDGELLM_TOKENIZER_EXTRA in the test)
  const only = [], extraOut = {};
  for (const a of process.argv.slice(2)) {
    if (a.includes('=')) {
      const [n, d] = a.split('=');
      TOKENIZERS[n] = join(d, 'tokenizer.json');
      extraOut[n] = join(d, 'goldens.jsonl.xz');
      only.push(n);
    } else only.push(a);
  }
  const moby = mobyLines(), sotu = sotuLines(), tort = tortureLines(3000);
  const texts = [...moby, ...sotu, ...tort];
  const tortStart = moby.length + sotu.length;
  xzWrite(join(fixDir, 'texts.jsonl.xz'), texts.map((t) => JSON.stringify(t)).join('\n') + '\n');
  console.log(`texts: ${texts.length} (moby ${moby.length}, sotu ${sotu.length}, torture ${tort.length})`);
  for (const [name, path] of Object.entries(TOKENIZERS)) {
    if (only.length && !only.includes(name)) continue;
    if (!existsSync(path)) { console.log(`skip ${name}: ${path} missing`); continue; }
    const dir = mkdtempSync(join(tmpdir(), 'tok-'));
    writeFileSync(join(dir, 'tokenizer.json'), xzRead(path));
    const tok = Tokenizer.fromFile(join(dir, 'tokenizer.json'));
    const lines = [];
    for (let i = 0; i < texts.length; i++) {
      const text = texts[i];
      const ids = (await tok.encode(text, null, { addSpecialTokens: false })).getIds();
      const o = { ids };
      if (i % 10 === 0) {
        const sp = (await tok.encode(text, null, { addSpecialTokens: true })).getIds();
        if (JSON.stringify(sp) !== JSON.stringify(ids)) o.sp = sp;
      }
      const dec = await tok.decode(ids, false);
      if (dec !== text) o.dec = dec;
      const dsk = await tok.decode(ids, true);
      if (dsk !== dec) o.dsk = dsk;
      if (i >= tortStart && ids.length > 1) o.cut = await tok.decode(ids.slice(0, ids.length - 1), false);
      lines.push(JSON.stringify(o));
    }
    // then random id sequences (half biased to ids < 300: bytes, specials): decode with and without skip
    const vocab = tok.getVocabSize(true);
    const r2 = mulberry32(777 + name.length);
    for (let k = 0; k < RANDOM_DECODES; k++) {
      const n = 1 + (k % 24);
      const rid = [];
      for (let j = 0; j < n; j++) rid.push(r2() < 0.5 ? Math.floor(r2() * 300) : Math.floor(r2() * vocab));
      lines.push(JSON.stringify({ rid, rdec: await tok.decode(rid, false), rdsk: await tok.decode(rid, true) }));
    }
    const outPath = extraOut[name] || join(fixDir, name, 'goldens.jsonl.xz');
    mkdirSync(dirname(outPath), { recursive: true });
    xzWrite(outPath, lines.join('\n') + '\n');
    console.log(`${name}: ${lines.length} lines`);
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
