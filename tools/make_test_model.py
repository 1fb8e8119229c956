#!/usr/bin/python3
"""make_test_model.py - write Qwen2-architecture models with random weights.

Echo's engine is tested against models it can make itself (the real
Qwen2.5-1.5B-Instruct cannot be downloaded here). This tool writes:

  * GGUF v3 files laid out exactly as llama.cpp writes Qwen2 (tensor names,
    qwen2.* metadata, tokenizer.ggml.* vocabulary), with 2-D weights in F32,
    F16, BF16, Q8_0 or Q4_0 (block layouts and rounding bit-exact with ggml's
    reference quantizers), Q4_K or Q6_K (ggml's block layouts; a simpler
    choice of scales than ggml's search), or the q4_k_m mix of llama.cpp
    (Q6_K for the embedding/output and some attn_v/ffn_down, Q4_K elsewhere,
    Q8_0 where a row is not whole super-blocks), and norms/biases in F32;
  * the Hugging Face folder layout of Qwen/Qwen2.5-1.5B-Instruct: config.json,
    BF16 model.safetensors (or shards + model.safetensors.index.json),
    tokenizer.json, tokenizer_config.json, generation_config.json.

Sizes: "tiny" (2 layers, hidden 64, 4 query heads sharing 2 KV heads, FFN 160)
for correctness tests, "small" (hidden 256, FFN 384: rows of whole k-quant
super-blocks) for the k-quant tests, and "full" (the Qwen2.5-1.5B shapes) for
benchmarks.
The vocabulary is the real Qwen2 one, copied from
../shared/testdata/qwen2-vocab/ggml-vocab-qwen2.gguf when present (with the
Qwen2.5 names of the added tokens 151646-151664), otherwise a small synthetic
byte-level BPE vocabulary with the same special tokens.

Weights depend only on --seed and the shapes, so the same seed gives the same
model in every format (before each format's rounding).

Usage:
  make_test_model.py gguf OUT.gguf [--size tiny|small|full] [--type q8_0] [--seed N]
      types: f32 f16 bf16 q8_0 q4_0 q4_k q6_k q4_k_m
  make_test_model.py hf OUTDIR [--size tiny|small|full] [--shards N] [--seed N]
  make_test_model.py tiny-set OUTDIR      # every tiny variant the tests use
Common options: --vocab PATH|synthetic, --untied (write a separate output
matrix), --context N.

Run with Debian's /usr/bin/python3 (needs numpy only).
"""

import argparse
import json
import os
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_VOCAB = os.path.normpath(
    os.path.join(HERE, "..", "..", "shared", "testdata", "qwen2-vocab", "ggml-vocab-qwen2.gguf"))

QWEN_PRETOKENIZER_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+")

# The added tokens of Qwen2.5 (ids, text, special). llama.cpp marks the
# special ones CONTROL (3) and the others USER_DEFINED (4).
QWEN25_ADDED = [
    (151643, "<|endoftext|>", True), (151644, "<|im_start|>", True), (151645, "<|im_end|>", True),
    (151646, "<|object_ref_start|>", True), (151647, "<|object_ref_end|>", True),
    (151648, "<|box_start|>", True), (151649, "<|box_end|>", True),
    (151650, "<|quad_start|>", True), (151651, "<|quad_end|>", True),
    (151652, "<|vision_start|>", True), (151653, "<|vision_end|>", True),
    (151654, "<|vision_pad|>", True), (151655, "<|image_pad|>", True),
    (151656, "<|video_pad|>", True), (151657, "<tool_call>", False),
    (151658, "</tool_call>", False), (151659, "<|fim_prefix|>", False),
    (151660, "<|fim_middle|>", False), (151661, "<|fim_suffix|>", False),
    (151662, "<|fim_pad|>", False), (151663, "<|repo_name|>", False),
    (151664, "<|file_sep|>", False),
]

CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if loop.first and messages[0]['role'] != 'system' %}"
    "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}")

SIZES = {
    # hidden, layers, heads, kv_heads, ffn, context
    "tiny": dict(hidden=64, layers=2, heads=4, kv_heads=2, ffn=160, context=1024),
    # whole 256-element super-blocks for the k-quants, except the FFN's 384
    # (ffn_down falls back to Q8_0 in a q4_k_m file, as in llama.cpp)
    "small": dict(hidden=256, layers=2, heads=4, kv_heads=2, ffn=384, context=1024),
    "full": dict(hidden=1536, layers=28, heads=12, kv_heads=2, ffn=8960, context=32768),
}

# ---- GGUF constants ------------------------------------------------------------

GGUF_U8, GGUF_I8, GGUF_U16, GGUF_I16, GGUF_U32, GGUF_I32, GGUF_F32, GGUF_BOOL = range(8)
GGUF_STR, GGUF_ARR, GGUF_U64, GGUF_I64, GGUF_F64 = 8, 9, 10, 11, 12
SCALAR_FMT = {GGUF_U8: "B", GGUF_I8: "b", GGUF_U16: "H", GGUF_I16: "h", GGUF_U32: "I",
              GGUF_I32: "i", GGUF_F32: "f", GGUF_BOOL: "?", GGUF_U64: "Q", GGUF_I64: "q",
              GGUF_F64: "d"}

T_F32, T_F16, T_Q4_0, T_Q8_0, T_Q4_K, T_Q6_K, T_BF16 = 0, 1, 2, 8, 12, 14, 30
T_Q4_K_M = -1  # a mix, not a tensor type: see q4_k_m_type
TYPE_BY_NAME = {"f32": T_F32, "f16": T_F16, "q4_0": T_Q4_0, "q8_0": T_Q8_0, "bf16": T_BF16,
                "q4_k": T_Q4_K, "q6_k": T_Q6_K, "q4_k_m": T_Q4_K_M}
# general.file_type (llama_ftype): 15 is MOSTLY_Q4_K_M, 18 MOSTLY_Q6_K, 14 MOSTLY_Q4_K_S
FILE_TYPE = {T_F32: 0, T_F16: 1, T_Q4_0: 2, T_Q8_0: 7, T_BF16: 32, T_Q4_K: 14, T_Q6_K: 18,
             T_Q4_K_M: 15}
ALIGNMENT = 32


# ---- quantization (bit-exact with ggml's *_ref quantizers) ------------------------

def round_away(x):
    """C's roundf: halves round away from zero (numpy's round is half-to-even)."""
    return np.sign(x) * np.floor(np.abs(x) + np.float32(0.5))


def quantize_q8_0(x):
    """ggml quantize_row_q8_0_ref: per 32 values a fp16 scale d = amax/127 and
    int8 q = roundf(x / d) (computed as x * (1/d) in float32)."""
    b = x.astype(np.float32).reshape(-1, 32)
    amax = np.max(np.abs(b), axis=1)
    d = (amax / np.float32(127.0)).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(d != 0, np.float32(1.0) / d, np.float32(0.0)).astype(np.float32)
    q = round_away(b * inv[:, None]).astype(np.int8)
    out = np.empty((b.shape[0], 34), dtype=np.uint8)
    out[:, 0:2] = d.astype(np.float16).view(np.uint8).reshape(-1, 2)
    out[:, 2:] = q.view(np.uint8)
    return out.reshape(-1)


def quantize_q4_0(x):
    """ggml quantize_row_q4_0_ref: d = (value of largest magnitude) / -8,
    q = min(15, (int8)(x/d + 8.5)); byte j holds element j in the low nibble
    and element j+16 in the high nibble."""
    b = x.astype(np.float32).reshape(-1, 32)
    idx = np.argmax(np.abs(b), axis=1)  # first index of the max, as ggml's strict '<'
    mx = b[np.arange(b.shape[0]), idx]
    d = (mx / np.float32(-8.0)).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(d != 0, np.float32(1.0) / d, np.float32(0.0)).astype(np.float32)
    v = b * inv[:, None] + np.float32(8.5)
    q = np.minimum(15, np.trunc(v).astype(np.int32)).astype(np.uint8)
    out = np.empty((b.shape[0], 18), dtype=np.uint8)
    out[:, 0:2] = d.astype(np.float16).view(np.uint8).reshape(-1, 2)
    out[:, 2:] = q[:, :16] | (q[:, 16:] << 4)
    return out.reshape(-1)


def _fp16_round(v):
    """float32 values as the fp16 a block stores, back in float32."""
    return v.astype(np.float16).astype(np.float32)


def quantize_q4_k(x):
    """Q4_K blocks of 256 (ggml's block_q4_K layout: fp16 d, fp16 dmin, 12
    bytes of 6-bit sub-block scales and mins, 128 bytes of nibbles) with a
    plain rule per sub-block of 32 (ggml searches for a better scale; the
    file format is the same): min m = max(0, -min x), scale s = (max x + m) / 15,
    both quantized to 6 bits against the block's largest, q = round((x + dmin*m)
    / (d*s)) clamped to 0..15; value = d*s*q - dmin*m."""
    b = x.astype(np.float32).reshape(-1, 8, 32)
    nb = b.shape[0]
    mins = np.maximum(np.float32(0), -b.min(axis=2))
    scales = (b.max(axis=2) + mins) / np.float32(15)
    scales = np.maximum(scales, np.float32(0))
    max_s, max_m = scales.max(axis=1), mins.max(axis=1)
    d = _fp16_round(max_s / np.float32(63))
    dmin = _fp16_round(max_m / np.float32(63))
    with np.errstate(divide="ignore", invalid="ignore"):
        ls = np.where(d[:, None] > 0, np.rint(scales / d[:, None]), 0)
        lm = np.where(dmin[:, None] > 0, np.rint(mins / dmin[:, None]), 0)
    ls = np.clip(ls, 0, 63).astype(np.int64)
    lm = np.clip(lm, 0, 63).astype(np.int64)
    step = (d[:, None] * ls).astype(np.float32)
    off = (dmin[:, None] * lm).astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(step[:, :, None] > 0, np.rint((b + off[:, :, None]) / step[:, :, None]), 0)
    q = np.clip(q, 0, 15).astype(np.uint8)
    sc = np.zeros((nb, 12), dtype=np.int64)
    for j in range(8):
        if j < 4:
            sc[:, j] |= ls[:, j]
            sc[:, j + 4] |= lm[:, j]
        else:
            sc[:, j + 4] |= (ls[:, j] & 0xF) | ((lm[:, j] & 0xF) << 4)
            sc[:, j - 4] |= (ls[:, j] >> 4) << 6
            sc[:, j] |= (lm[:, j] >> 4) << 6
    out = np.empty((nb, 144), dtype=np.uint8)
    out[:, 0:2] = d.astype(np.float16).view(np.uint8).reshape(-1, 2)
    out[:, 2:4] = dmin.astype(np.float16).view(np.uint8).reshape(-1, 2)
    out[:, 4:16] = sc.astype(np.uint8)
    flat = q.reshape(nb, 256)
    # per 64 elements, 32 bytes: element l in the low nibble, l + 32 in the high one
    for i in range(4):
        out[:, 16 + 32 * i:48 + 32 * i] = flat[:, 64 * i:64 * i + 32] | \
            (flat[:, 64 * i + 32:64 * i + 64] << 4)
    return out.reshape(-1)


def quantize_q6_k(x):
    """Q6_K blocks of 256 (ggml's block_q6_K: ql[128] low nibbles, qh[64] high
    bit pairs, 16 int8 scales, fp16 d). Per group of 16 the scale maps the
    element of largest magnitude to -32 (as Q4_0 does); the 16 scales are
    quantized to int8 against the largest (d = its value / -128); q = round(x /
    (d*scale)) clamped to -32..31, stored as q + 32."""
    b = x.astype(np.float32).reshape(-1, 16, 16)
    nb = b.shape[0]
    idx = np.argmax(np.abs(b), axis=2)
    mx = np.take_along_axis(b, idx[:, :, None], axis=2)[:, :, 0]
    gs = mx / np.float32(-32)
    gidx = np.argmax(np.abs(gs), axis=1)
    gmax = gs[np.arange(nb), gidx]
    d = _fp16_round(gmax / np.float32(-128))
    with np.errstate(divide="ignore", invalid="ignore"):
        sc = np.where(d[:, None] != 0, np.rint(gs / d[:, None]), 0)
    sc = np.clip(sc, -128, 127).astype(np.int64)
    step = (d[:, None] * sc).astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(step[:, :, None] != 0, np.rint(b / step[:, :, None]), 0)
    L = (np.clip(q, -32, 31) + 32).astype(np.int64).reshape(nb, 256)
    out = np.empty((nb, 210), dtype=np.uint8)
    for h in range(2):
        j = 128 * h
        q1, q2 = L[:, j:j + 32], L[:, j + 32:j + 64]
        q3, q4 = L[:, j + 64:j + 96], L[:, j + 96:j + 128]
        out[:, 64 * h:64 * h + 32] = ((q1 & 0xF) | ((q3 & 0xF) << 4)).astype(np.uint8)
        out[:, 64 * h + 32:64 * h + 64] = ((q2 & 0xF) | ((q4 & 0xF) << 4)).astype(np.uint8)
        out[:, 128 + 32 * h:160 + 32 * h] = ((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) |
                                             ((q4 >> 4) << 6)).astype(np.uint8)
    out[:, 192:208] = sc.astype(np.int8).view(np.uint8)
    out[:, 208:210] = d.astype(np.float16).view(np.uint8).reshape(-1, 2)
    return out.reshape(-1)


def to_bf16(x):
    """float32 -> bfloat16 bits with round-to-nearest-even (as torch and ggml)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounding = ((u >> 16) & 1) + np.uint32(0x7FFF)
    return ((u + rounding) >> 16).astype(np.uint16)


def encode_tensor(x, ttype):
    if ttype == T_F32:
        return np.ascontiguousarray(x, dtype=np.float32).view(np.uint8).reshape(-1)
    if ttype == T_F16:
        return x.astype(np.float16).view(np.uint8).reshape(-1)
    if ttype == T_BF16:
        return to_bf16(x).view(np.uint8).reshape(-1)
    if ttype == T_Q8_0:
        return quantize_q8_0(x)
    if ttype == T_Q4_0:
        return quantize_q4_0(x)
    if ttype == T_Q4_K:
        return quantize_q4_k(x)
    if ttype == T_Q6_K:
        return quantize_q6_k(x)
    raise ValueError("unknown tensor type %d" % ttype)


def tensor_nbytes(n_elements, ttype):
    return {T_F32: 4 * n_elements, T_F16: 2 * n_elements, T_BF16: 2 * n_elements,
            T_Q8_0: n_elements // 32 * 34, T_Q4_0: n_elements // 32 * 18,
            T_Q4_K: n_elements // 256 * 144, T_Q6_K: n_elements // 256 * 210}[ttype]


def use_more_bits(layer, n_layers):
    """llama.cpp's rule for which layers of a q4_k_m file get Q6_K in attn_v
    and ffn_down: the first and last eighth, and every third in between."""
    return layer < n_layers // 8 or layer >= 7 * n_layers // 8 or \
        (layer - n_layers // 8) % 3 == 2


def q4_k_m_type(gguf_name, cols, n_layers, tied):
    """The type llama.cpp's q4_k_m quantization gives a matrix: Q6_K for the
    output (the embedding when tied) and for attn_v/ffn_down of the
    use_more_bits layers, Q4_K elsewhere; a row length that is not a multiple
    of 256 falls back to Q8_0 (llama.cpp uses Q5_0/Q8_0; Echo has no Q5_0)."""
    if gguf_name == "output.weight" or (tied and gguf_name == "token_embd.weight"):
        t = T_Q6_K
    elif gguf_name.endswith("attn_v.weight") or gguf_name.endswith("ffn_down.weight"):
        layer = int(gguf_name.split(".")[1])
        t = T_Q6_K if use_more_bits(layer, n_layers) else T_Q4_K
    else:
        t = T_Q4_K
    return t if cols % 256 == 0 else T_Q8_0


# ---- minimal GGUF reader (only to copy the vocabulary) ------------------------------

class GGUFMeta:
    def __init__(self, path):
        with open(path, "rb") as f:
            self.buf = f.read()
        self.off = 0
        if self.buf[:4] != b"GGUF":
            raise ValueError("%s: not a GGUF file" % path)
        self.off = 4
        version = self._u("I")
        if version not in (2, 3):
            raise ValueError("%s: GGUF version %d" % (path, version))
        self._u("Q")  # tensor count
        n_kv = self._u("Q")
        self.kv = {}
        for _ in range(n_kv):
            key = self._s()
            vtype = self._u("I")
            self.kv[key] = (vtype, self._value(vtype))

    def _u(self, fmt):
        v = struct.unpack_from("<" + fmt, self.buf, self.off)[0]
        self.off += struct.calcsize("<" + fmt)
        return v

    def _s(self):
        n = self._u("Q")
        v = self.buf[self.off:self.off + n]
        self.off += n
        return v.decode("utf-8")

    def _value(self, vtype):
        if vtype == GGUF_STR:
            return self._s()
        if vtype == GGUF_ARR:
            etype = self._u("I")
            n = self._u("Q")
            if etype == GGUF_STR:
                return (etype, [self._s() for _ in range(n)])
            fmt = SCALAR_FMT[etype]
            size = struct.calcsize("<" + fmt)
            arr = list(struct.unpack_from("<%d%s" % (n, fmt), self.buf, self.off))
            self.off += n * size
            return (etype, arr)
        return self._u(SCALAR_FMT[vtype])


# ---- vocabulary ---------------------------------------------------------------------

def bytes_to_unicode():
    """GPT-2's reversible byte -> printable code point mapping."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


class Vocab:
    """tokens (list of str), token types, merges, and the special ids."""

    def __init__(self, tokens, types, merges, source):
        self.tokens, self.types, self.merges, self.source = tokens, types, merges, source
        self.eos = self.tokens.index("<|im_end|>")
        self.eot = self.tokens.index("<|endoftext|>")
        self.added = [(i, t, s) for (i, t, s) in QWEN25_ADDED if i < len(tokens)
                      and tokens[i] == t]

    @staticmethod
    def real(path):
        meta = GGUFMeta(path)
        tokens = list(meta.kv["tokenizer.ggml.tokens"][1][1])
        types = list(meta.kv["tokenizer.ggml.token_type"][1][1])
        merges = list(meta.kv["tokenizer.ggml.merges"][1][1])
        for tid, text, special in QWEN25_ADDED:
            if tid < len(tokens):
                tokens[tid] = text
                types[tid] = 3 if special else 4
        return Vocab(tokens, types, merges, path)

    @staticmethod
    def synthetic():
        """256 byte tokens, merges learned from a fixed English/code sample, and
        the three ChatML control tokens at the end (the model's vocab size is a
        multiple of 32 plus padding tokens, as real models pad theirs)."""
        b2u = bytes_to_unicode()
        tokens = [b2u[b] for b in range(256)]
        sample = ("the quick brown fox jumps over the lazy dog. hello world! "
                  "def main():\n    return 0\n  the model says hello to the user, "
                  "and the user says hello back. you are a helpful assistant.\n") * 4
        words = [[b2u[b] for b in w.encode("utf-8")]
                 for w in sample.replace("\n", " \n").split(" ") if w]
        words = [["Ġ"] + w if i else w for i, w in enumerate(words)]
        merges = []
        for _ in range(200):
            counts = {}
            for w in words:
                for a, b in zip(w, w[1:]):
                    counts[(a, b)] = counts.get((a, b), 0) + 1
            if not counts:
                break
            (a, b), c = max(counts.items(), key=lambda kv: (kv[1], kv[0]))
            if c < 2:
                break
            merges.append(a + " " + b)
            tokens.append(a + b)
            new_words = []
            for w in words:
                out, i = [], 0
                while i < len(w):
                    if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                        out.append(a + b)
                        i += 2
                    else:
                        out.append(w[i])
                        i += 1
                new_words.append(out)
            words = new_words
        types = [1] * len(tokens)
        for text in ("<|endoftext|>", "<|im_start|>", "<|im_end|>"):
            tokens.append(text)
            types.append(3)
        while len(tokens) % 64:
            tokens.append("[PAD%d]" % len(tokens))
            types.append(4)
        v = Vocab(tokens, types, merges, "synthetic")
        base = v.eot
        v.added = [(base + k, t, True) for k, t in
                   enumerate(("<|endoftext|>", "<|im_start|>", "<|im_end|>"))]
        return v


def load_vocab(spec):
    if spec == "synthetic":
        return Vocab.synthetic()
    if spec is None:
        return Vocab.real(DEFAULT_VOCAB) if os.path.exists(DEFAULT_VOCAB) else Vocab.synthetic()
    return Vocab.real(spec)


# ---- weights --------------------------------------------------------------------------

class Shapes:
    def __init__(self, size, vocab_size, context=None):
        s = dict(SIZES[size])
        if context:
            s["context"] = context
        self.__dict__.update(s)
        self.vocab = vocab_size
        self.head_dim = self.hidden // self.heads
        self.kv_dim = self.head_dim * self.kv_heads


def hf_tensor_list(sh, untied):
    """(hf name, gguf name, hf shape, is_matrix) in llama.cpp's order."""
    out = [("model.embed_tokens.weight", "token_embd.weight", (sh.vocab, sh.hidden), True)]
    for i in range(sh.layers):
        p, g = "model.layers.%d." % i, "blk.%d." % i
        out += [
            (p + "input_layernorm.weight", g + "attn_norm.weight", (sh.hidden,), False),
            (p + "self_attn.q_proj.weight", g + "attn_q.weight", (sh.hidden, sh.hidden), True),
            (p + "self_attn.q_proj.bias", g + "attn_q.bias", (sh.hidden,), False),
            (p + "self_attn.k_proj.weight", g + "attn_k.weight", (sh.kv_dim, sh.hidden), True),
            (p + "self_attn.k_proj.bias", g + "attn_k.bias", (sh.kv_dim,), False),
            (p + "self_attn.v_proj.weight", g + "attn_v.weight", (sh.kv_dim, sh.hidden), True),
            (p + "self_attn.v_proj.bias", g + "attn_v.bias", (sh.kv_dim,), False),
            (p + "self_attn.o_proj.weight", g + "attn_output.weight", (sh.hidden, sh.hidden), True),
            (p + "post_attention_layernorm.weight", g + "ffn_norm.weight", (sh.hidden,), False),
            (p + "mlp.gate_proj.weight", g + "ffn_gate.weight", (sh.ffn, sh.hidden), True),
            (p + "mlp.up_proj.weight", g + "ffn_up.weight", (sh.ffn, sh.hidden), True),
            (p + "mlp.down_proj.weight", g + "ffn_down.weight", (sh.hidden, sh.ffn), True),
        ]
    out.append(("model.norm.weight", "output_norm.weight", (sh.hidden,), False))
    if untied:
        out.append(("lm_head.weight", "output.weight", (sh.vocab, sh.hidden), True))
    return out


def make_weight(rng_seed, index, name, shape, sh, full):
    """Deterministic random values for one tensor. Norm weights are near 1 and
    biases small; matrices are scaled by 1/sqrt(fan-in) so activations stay
    O(1) and the logits of the tiny model spread over a few units."""
    rng = np.random.default_rng([rng_seed, index])
    if name.endswith("norm.weight"):
        return (1.0 + 0.1 * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)
    if name.endswith(".bias"):
        return (0.1 * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)
    if full:
        std = 0.02
    elif "embed_tokens" in name or "lm_head" in name:
        std = 0.5
    else:
        std = 1.0 / np.sqrt(shape[1])
    return (std * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)


def generate_rows(rng_seed, index, name, shape, sh, full, chunk_rows):
    """Yields (row block) pieces of a tensor; full-size matrices are produced in
    chunks so the biggest one (embedding, 233 M values) never sits in memory."""
    if not full or len(shape) == 1:
        yield make_weight(rng_seed, index, name, shape, sh, full)
        return
    rows = shape[0]
    for start in range(0, rows, chunk_rows):
        n = min(chunk_rows, rows - start)
        rng = np.random.default_rng([rng_seed, index, start])
        yield (0.02 * rng.standard_normal((n, shape[1]), dtype=np.float32)).astype(np.float32)


# ---- GGUF writer ------------------------------------------------------------------------

def _s(text):
    b = text.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def _kv(key, vtype, value):
    out = _s(key) + struct.pack("<I", vtype)
    if vtype == GGUF_STR:
        return out + _s(value)
    if vtype == GGUF_ARR:
        etype, items = value
        out += struct.pack("<IQ", etype, len(items))
        if etype == GGUF_STR:
            return out + b"".join(_s(t) for t in items)
        return out + struct.pack("<%d%s" % (len(items), SCALAR_FMT[etype]), *items)
    return out + struct.pack("<" + SCALAR_FMT[vtype], value)


def write_gguf(path, sh, vocab, ttype, seed, untied, name, sampling=True, mute_stop=False):
    """mute_stop (untied only): the output rows of the stop tokens are zero, so
    their logit is exactly 0 while the top-k (20) of the random logits are all
    well above 0: sampling never ends an answer before its token limit. Chat
    tests that press Stop mid-answer need answers that are still running."""
    full = sh.hidden > 512
    muted = {vocab.eos, vocab.eot} if mute_stop else set()
    tensors = hf_tensor_list(sh, untied)
    kvs = [
        _kv("general.architecture", GGUF_STR, "qwen2"),
        _kv("general.name", GGUF_STR, name),
        _kv("general.file_type", GGUF_U32, FILE_TYPE[ttype]),
        _kv("general.quantization_version", GGUF_U32, 2),
        _kv("general.alignment", GGUF_U32, ALIGNMENT),
        _kv("qwen2.block_count", GGUF_U32, sh.layers),
        _kv("qwen2.context_length", GGUF_U32, sh.context),
        _kv("qwen2.embedding_length", GGUF_U32, sh.hidden),
        _kv("qwen2.feed_forward_length", GGUF_U32, sh.ffn),
        _kv("qwen2.attention.head_count", GGUF_U32, sh.heads),
        _kv("qwen2.attention.head_count_kv", GGUF_U32, sh.kv_heads),
        _kv("qwen2.rope.freq_base", GGUF_F32, 1000000.0),
        _kv("qwen2.attention.layer_norm_rms_epsilon", GGUF_F32, 1e-6),
        _kv("tokenizer.ggml.model", GGUF_STR, "gpt2"),
        _kv("tokenizer.ggml.pre", GGUF_STR, "qwen2"),
        _kv("tokenizer.ggml.tokens", GGUF_ARR, (GGUF_STR, vocab.tokens)),
        _kv("tokenizer.ggml.token_type", GGUF_ARR, (GGUF_I32, vocab.types)),
        _kv("tokenizer.ggml.merges", GGUF_ARR, (GGUF_STR, vocab.merges)),
        _kv("tokenizer.ggml.eos_token_id", GGUF_U32, vocab.eos),
        _kv("tokenizer.ggml.padding_token_id", GGUF_U32, vocab.eot),
        _kv("tokenizer.ggml.bos_token_id", GGUF_U32, vocab.eot),
        _kv("tokenizer.ggml.add_bos_token", GGUF_BOOL, False),
        _kv("tokenizer.chat_template", GGUF_STR, CHAT_TEMPLATE),
    ]
    if sampling:
        kvs += [
            _kv("general.sampling.temp", GGUF_F32, 0.7),
            _kv("general.sampling.top_p", GGUF_F32, 0.8),
            _kv("general.sampling.top_k", GGUF_I32, 20),
            _kv("general.sampling.penalty_repeat", GGUF_F32, 1.1),
        ]
    infos = []
    offset = 0
    layout = []
    for hf_name, g_name, shape, is_matrix in tensors:
        t = ttype if is_matrix else T_F32
        if t == T_Q4_K_M:
            t = q4_k_m_type(g_name, shape[-1], sh.layers, not untied)
        elif t in (T_Q4_K, T_Q6_K) and shape[-1] % 256:
            t = T_Q8_0  # k-quants need rows of whole 256-element super-blocks
        n = int(np.prod(shape))
        size = tensor_nbytes(n, t)
        dims = list(reversed(shape))  # GGUF lists the fastest-varying dimension first
        infos.append(_s(g_name) + struct.pack("<I", len(dims)) +
                     struct.pack("<%dQ" % len(dims), *dims) + struct.pack("<IQ", t, offset))
        layout.append((hf_name, shape, t, offset, size))
        offset += (size + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT
    header = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)) + b"".join(kvs) + \
        b"".join(infos)
    pad = (-len(header)) % ALIGNMENT
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(header + b"\0" * pad)
        base = f.tell()
        for index, (hf_name, shape, t, off, size) in enumerate(layout):
            assert f.tell() == base + off
            chunk_rows = max(1, (1 << 24) // shape[-1])
            written = 0
            row0 = 0
            for rows in generate_rows(seed, index, hf_name, shape, sh, full, chunk_rows):
                if hf_name == "lm_head.weight" and muted:
                    for r in muted:
                        if row0 <= r < row0 + len(rows):
                            rows[r - row0] = 0
                row0 += len(rows)
                data = encode_tensor(rows, t)
                f.write(data.tobytes())
                written += data.size
            assert written == size, (hf_name, written, size)
            f.write(b"\0" * ((-size) % ALIGNMENT))
    os.replace(tmp, path)


# ---- Hugging Face layout ------------------------------------------------------------------

def write_safetensors(path, entries):
    """entries: list of (name, shape, bf16 uint16 array)."""
    header = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape, data in entries:
        header[name] = {"dtype": "BF16", "shape": list(shape),
                        "data_offsets": [offset, offset + data.nbytes]}
        offset += data.nbytes
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((-len(hjson)) % 8)  # the HF writer pads the header to 8 bytes
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(hjson)) + hjson)
        for _, _, data in entries:
            f.write(data.tobytes())
    os.replace(path + ".tmp", path)
    return offset


def tokenizer_json(vocab):
    added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": s} for (i, t, s) in vocab.added]
    added_ids = {i for (i, _, _) in vocab.added}
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                  "use_regex": False}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": QWEN_PRETOKENIZER_REGEX},
             "behavior": "Isolated", "invert": False},
            byte_level]},
        "post_processor": byte_level,
        "decoder": byte_level,
        "model": {
            "type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
            "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False,
            "ignore_merges": False,
            # The vocabulary of the BPE model holds the regular tokens only
            # (added tokens are listed above; padding placeholders are not tokens).
            "vocab": {t: i for i, t in enumerate(vocab.tokens)
                      if i not in added_ids and vocab.types[i] == 1},
            "merges": vocab.merges,
        },
    }


def tokenizer_config_json(vocab):
    return {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": {
            str(i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                     "single_word": False, "special": s} for (i, t, s) in vocab.added},
        "additional_special_tokens": [t for (_, t, s) in vocab.added if s and
                                      t not in ("<|endoftext|>",)],
        "bos_token": None,
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "model_max_length": 131072,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }


def write_hf(outdir, sh, vocab, seed, untied, shards):
    if sh.hidden > 512 and shards < 2:
        shards = 2
    os.makedirs(outdir, exist_ok=True)
    tensors = hf_tensor_list(sh, untied)
    config = {
        "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0,
        "bos_token_id": vocab.eot, "eos_token_id": vocab.eos, "hidden_act": "silu",
        "hidden_size": sh.hidden, "initializer_range": 0.02, "intermediate_size": sh.ffn,
        "max_position_embeddings": sh.context, "max_window_layers": sh.layers,
        "model_type": "qwen2", "num_attention_heads": sh.heads,
        "num_hidden_layers": sh.layers, "num_key_value_heads": sh.kv_heads,
        "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": sh.context,
        "tie_word_embeddings": not untied, "torch_dtype": "bfloat16",
        "transformers_version": "4.43.1", "use_cache": True, "use_sliding_window": False,
        "vocab_size": sh.vocab,
    }
    gen = {"bos_token_id": vocab.eot, "pad_token_id": vocab.eot, "do_sample": True,
           "eos_token_id": [vocab.eos, vocab.eot], "repetition_penalty": 1.1,
           "temperature": 0.7, "top_p": 0.8, "top_k": 20, "transformers_version": "4.37.0"}
    with open(os.path.join(outdir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(outdir, "generation_config.json"), "w") as f:
        json.dump(gen, f, indent=2)
    with open(os.path.join(outdir, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tokenizer_json(vocab), f, ensure_ascii=False)
    with open(os.path.join(outdir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(tokenizer_config_json(vocab), f, indent=2, ensure_ascii=False)

    full = sh.hidden > 512
    groups = [[] for _ in range(shards)]
    # Tensors are dealt to shards in order, like HF's size-based splitting.
    per = (len(tensors) + shards - 1) // shards
    for index, (hf_name, _, shape, _) in enumerate(tensors):
        groups[min(index // per, shards - 1)].append((index, hf_name, shape))
    weight_map, total = {}, 0
    for s, group in enumerate(groups):
        fname = "model.safetensors" if shards == 1 else \
            "model-%05d-of-%05d.safetensors" % (s + 1, shards)
        entries = []
        for index, hf_name, shape in group:
            rows = list(generate_rows(seed, index, hf_name, shape, sh, full,
                                      max(1, (1 << 24) // shape[-1])))
            data = to_bf16(np.concatenate(rows) if len(rows) > 1 else rows[0])
            entries.append((hf_name, shape, data))
            weight_map[hf_name] = fname
        total += write_safetensors(os.path.join(outdir, fname), entries)
        del entries
    if shards > 1:
        with open(os.path.join(outdir, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)


# ---- command line ----------------------------------------------------------------------------

def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["gguf", "hf", "tiny-set"])
    ap.add_argument("out")
    ap.add_argument("--size", choices=sorted(SIZES), default="tiny")
    ap.add_argument("--type", choices=sorted(TYPE_BY_NAME), default="q8_0")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--vocab", default=None, help="vocabulary GGUF, or 'synthetic'")
    ap.add_argument("--untied", action="store_true", help="write a separate output matrix")
    ap.add_argument("--mute-stop", action="store_true",
                    help="(gguf, with --untied) zero the output rows of the stop tokens: "
                         "top-k sampling never ends an answer early (chat tests)")
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--context", type=int, default=None)
    ap.add_argument("--no-sampling-keys", action="store_true",
                    help="leave out the general.sampling.* metadata")
    a = ap.parse_args(argv)

    vocab = load_vocab(a.vocab)
    sh = Shapes(a.size, len(vocab.tokens), a.context)
    name = "echo-test-qwen2-%s" % a.size
    if a.what == "gguf":
        if a.mute_stop and not a.untied:
            ap.error("--mute-stop needs --untied (tied output rows are the embeddings)")
        write_gguf(a.out, sh, vocab, TYPE_BY_NAME[a.type], a.seed, a.untied, name,
                   not a.no_sampling_keys, a.mute_stop)
    elif a.what == "hf":
        write_hf(a.out, sh, vocab, a.seed, a.untied, max(1, a.shards))
    else:
        os.makedirs(a.out, exist_ok=True)
        for t in ("f32", "f16", "bf16", "q8_0", "q4_0"):
            write_gguf(os.path.join(a.out, "tiny-%s.gguf" % t), sh, vocab, TYPE_BY_NAME[t],
                       a.seed, False, name)
        write_gguf(os.path.join(a.out, "tiny-untied-f32.gguf"), sh, vocab, T_F32, a.seed, True,
                   name)
        write_hf(os.path.join(a.out, "tiny-hf"), sh, vocab, a.seed, False, 1)
        write_hf(os.path.join(a.out, "tiny-hf-sharded"), sh, vocab, a.seed, True, 3)
    print("wrote %s (vocab: %s, %d tokens)" % (a.out, vocab.source, len(vocab.tokens)),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
