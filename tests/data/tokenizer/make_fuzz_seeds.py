#!/usr/bin/python3
"""make_fuzz_seeds.py - writes the seed inputs of the tokenizer and GGUF fuzz
targets into tests/fuzz/corpus/{gguf,tok_encode,tok_json}/ (committed; run
again only to change them): small GGUF files (a byte-level tokenizer, a model
with F32/Q8_0/F16 tensors in versions 2 and 3), texts for the encoder (first
byte = flags) and tokenizer.json files (optionally followed by a NUL and a
tokenizer_config.json)."""

import json
import struct
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "fuzz" / "corpus"
QWEN2 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
         r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def byte_chars():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    m = dict(zip(bs, cs))
    return [chr(m[b]) for b in range(256)]


def s(x):
    b = x.encode() if isinstance(x, str) else x
    return struct.pack("<Q", len(b)) + b


def kv(key, typ, payload):
    return s(key) + struct.pack("<I", typ) + payload


def arr(elem, items):
    if elem == 8:
        body = b"".join(s(i) for i in items)
    else:
        body = b"".join(struct.pack("<i", i) for i in items)
    return struct.pack("<IQ", elem, len(items)) + body


def gguf(version, kvs, tensors=(), data=b"", align=32):
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs)) + b"".join(kvs)
    for name, dims, typ, off in tensors:
        out += s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", typ, off)
    if tensors:
        out += b"\0" * (-len(out) % align) + data
    return out


def tokenizer_gguf():
    toks = byte_chars() + ["aa", "aaa", "Ġa", "<|im_start|>", "<|im_end|>"]
    types = [1] * 259 + [3, 3]
    return gguf(3, [
        kv("general.architecture", 8, s("qwen2")),
        kv("tokenizer.ggml.model", 8, s("gpt2")),
        kv("tokenizer.ggml.pre", 8, s("qwen2")),
        kv("tokenizer.ggml.tokens", 9, arr(8, toks)),
        kv("tokenizer.ggml.token_type", 9, arr(5, types)),
        kv("tokenizer.ggml.merges", 9, arr(8, ["a a", "aa a", "Ġ a"])),
        kv("tokenizer.ggml.eos_token_id", 4, struct.pack("<I", 260)),
    ])


def model_gguf(version, align):
    kvs = [kv("general.architecture", 8, s("qwen2")), kv("qwen2.block_count", 4, struct.pack("<I", 1))]
    if align != 32:
        kvs.append(kv("general.alignment", 4, struct.pack("<I", align)))
    ob = max(32, align)
    oc = (ob + 68 + align - 1) // align * align
    data = bytes(range(32)) + b"\0" * (ob - 32) + bytes(68) + b"\0" * (oc - ob - 68) + bytes(16)
    return gguf(version, kvs, [("a", (4, 2), 0, 0), ("b", (32, 2), 8, ob), ("c", (8,), 1, oc)], data, align)


def tokenizer_json(extra_added=False, gpt2=False):
    vocab = {c: i for i, c in enumerate(byte_chars())}
    vocab.update({"aa": 256, "aaa": 257, "Ġa": 258})
    added = [{"id": 259, "content": "<|im_start|>", "special": True},
             {"id": 260, "content": "<tool>", "special": False, "lstrip": extra_added,
              "rstrip": extra_added}]
    pre = ({"type": "ByteLevel", "add_prefix_space": False, "use_regex": True} if gpt2 else
           {"type": "Sequence", "pretokenizers": [
               {"type": "Split", "pattern": {"Regex": QWEN2}, "behavior": "Isolated", "invert": False},
               {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False}]})
    return json.dumps({
        "version": "1.0", "added_tokens": added,
        "normalizer": None if gpt2 else {"type": "NFC"},
        "pre_tokenizer": pre, "decoder": {"type": "ByteLevel"},
        "model": {"type": "BPE", "vocab": vocab,
                  "merges": ["a a", ["aa", "a"], "Ġ a"], "ignore_merges": False},
    }, ensure_ascii=False).encode()


def main():
    for d in ("gguf", "tok_encode", "tok_json"):
        (ROOT / d).mkdir(parents=True, exist_ok=True)
    (ROOT / "gguf" / "tokenizer.gguf").write_bytes(tokenizer_gguf())
    (ROOT / "gguf" / "model_v3.gguf").write_bytes(model_gguf(3, 32))
    (ROOT / "gguf" / "model_v2_align64.gguf").write_bytes(model_gguf(2, 64))
    texts = {
        "english": b"\0Hello, y'all! How are you? I'm fine, they'll see.",
        "special": b"\1<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
        "special_plain": b"\0<|im_start|>user\nhi<|endoftext|>",
        "cjk_emoji": "\0你好世界，こんにちは 안녕하세요 🦙👨‍👩‍👧 🇨🇳".encode(),
        "whitespace": b"\0  a \t\t\n\n\r\n   b\n    ",
        "numbers": b"\x003.14159 2024-05-01 1000000 -42",
        "invalid": b"\0ok \xff\xfe \xe4\xbd \xf0\x9f\x98 \xc0\xaf \xed\xa0\x80 end",
        "nfc": "\0e\u0301 \u1112\u1161\u11ab \u1f7d \u212b a\u0323\u0307 <|im_start|>\u0338".encode(),
        "code": b"\0int main(void) {\n    return x->y != NULL ? *p++ : ~0;\n}\n",
    }
    for name, t in texts.items():
        (ROOT / "tok_encode" / name).write_bytes(t)
    (ROOT / "tok_json" / "qwen2_style.json").write_bytes(tokenizer_json())
    (ROOT / "tok_json" / "gpt2_style.json").write_bytes(tokenizer_json(gpt2=True))
    cfg = json.dumps({"eos_token": "<|im_start|>", "pad_token": {"content": "aa"},
                      "added_tokens_decoder": {"261": {"content": "<x>", "special": True}},
                      "chat_template": "{{ messages }}"}).encode()
    (ROOT / "tok_json" / "with_config").write_bytes(tokenizer_json(extra_added=True) + b"\0" + cfg)


if __name__ == "__main__":
    main()
