#!/usr/bin/python3
"""qwen2_ref.py - an independent numpy forward pass of Qwen2, the yardstick of
Echo's engine tests.

It reads the same files as the engine (a GGUF with F32/F16/BF16/Q8_0/Q4_0/
Q4_K/Q6_K tensors, also mixed as in a q4_k_m file, or a Hugging Face folder
with BF16 safetensors, single or sharded) with its own parsers, dequantizes
every weight to float64 and runs the model exactly as the Qwen2 paper /
transformers' modeling_qwen2.py define it:

  x = embed[ids]
  per layer: h = rmsnorm(x) ; q,k,v = Wq h + bq, Wk h + bk, Wv h + bv
             rope (NEOX: pairs i and i + d/2, theta from the file)
             causal softmax attention, query head j reads KV head j // (Hq/Hkv)
             x += Wo attn ; x += Wdown (silu(Wgate rmsnorm(x)) * Wup rmsnorm(x))
  logits = (output or embed) @ rmsnorm(x)

Nothing here is shared with the C code or with tools/make_test_model.py, so a
layout mistake on either side shows up as a mismatch.

CLI: qwen2_ref.py MODEL --ids 1,2,3 [--top K] [--all] prints, for the last
position (or every position with --all), the top-K "id:logit" pairs; with
--npy FILE it saves the full logits matrix.
"""

import argparse
import json
import os
import struct
import sys

import numpy as np

# ---- GGUF ---------------------------------------------------------------------------

_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q",
            12: "d"}
# ggml type -> (elements per block, bytes per block)
_BLOCKS = {0: (1, 4), 1: (1, 2), 2: (32, 18), 8: (32, 34), 12: (256, 144), 14: (256, 210),
           30: (1, 2)}
_QUANTIZED = (2, 8, 12, 14)


def _f16(raw):
    return np.frombuffer(raw, dtype="<f2").astype(np.float64)


def _bf16(raw):
    u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
    return u.view(np.float32).astype(np.float64)


def dequantize(raw, ttype, n):
    """Bytes of one tensor -> n float64 values, as ggml's dequantize_row_* do."""
    if ttype == 0:
        return np.frombuffer(raw, dtype="<f4", count=n).astype(np.float64)
    if ttype == 1:
        return _f16(raw[:2 * n])
    if ttype == 30:
        return _bf16(raw[:2 * n])
    if ttype == 8:  # Q8_0: fp16 d, 32 x int8
        blocks = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 34)
        d = blocks[:, :2].copy().view("<f2").astype(np.float64)
        q = blocks[:, 2:].copy().view(np.int8).astype(np.float64)
        return (q * d).reshape(-1)[:n]
    if ttype == 2:  # Q4_0: fp16 d, 16 bytes; low nibbles = first half, high = second
        blocks = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 18)
        d = blocks[:, :2].copy().view("<f2").astype(np.float64)
        qs = blocks[:, 2:]
        lo = (qs & 0x0F).astype(np.float64) - 8.0
        hi = (qs >> 4).astype(np.float64) - 8.0
        return (np.concatenate([lo, hi], axis=1) * d).reshape(-1)[:n]
    if ttype == 12:  # Q4_K: super-blocks of 256 = 8 sub-blocks of 32
        blocks = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 144)
        d = blocks[:, 0:2].copy().view("<f2").astype(np.float64)
        dmin = blocks[:, 2:4].copy().view("<f2").astype(np.float64)
        sc, mn = _q4_k_scales(blocks[:, 4:16].astype(np.int64))
        qs = blocks[:, 16:]
        out = np.empty((blocks.shape[0], 256))
        # ggml's dequantize_row_q4_K: per 64 elements, 32 bytes of qs; low
        # nibbles are sub-block 2i (scale/min 2i), high nibbles sub-block 2i+1.
        for i in range(4):
            q = qs[:, 32 * i:32 * i + 32]
            for half, nib in ((0, q & 0x0F), (1, q >> 4)):
                j = 2 * i + half
                out[:, 32 * j:32 * j + 32] = (d * sc[:, j:j + 1]) * nib - dmin * mn[:, j:j + 1]
        return out.reshape(-1)[:n]
    if ttype == 14:  # Q6_K: ql[128], qh[64], int8 scales[16], fp16 d
        blocks = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 210)
        ql = blocks[:, 0:128].astype(np.int64)
        qh = blocks[:, 128:192].astype(np.int64)
        sc = blocks[:, 192:208].copy().view(np.int8).astype(np.float64)
        d = blocks[:, 208:210].copy().view("<f2").astype(np.float64)
        out = np.empty((blocks.shape[0], 256))
        # ggml's dequantize_row_q6_K: two halves of 128; in each, l < 32 gives
        # elements l, l+32, l+64, l+96 from ql[l], ql[l+32] (low, then high
        # nibbles) and the four 2-bit fields of qh[l]; scale index l/16 + 0,2,4,6.
        for h in range(2):
            L, H = ql[:, 64 * h:64 * h + 64], qh[:, 32 * h:32 * h + 32]
            parts = [(L[:, :32] & 15) | ((H >> 0) & 3) << 4,
                     (L[:, 32:] & 15) | ((H >> 2) & 3) << 4,
                     (L[:, :32] >> 4) | ((H >> 4) & 3) << 4,
                     (L[:, 32:] >> 4) | ((H >> 6) & 3) << 4]
            for k, q in enumerate(parts):
                for l16 in range(2):
                    s = sc[:, 8 * h + 2 * k + l16:8 * h + 2 * k + l16 + 1]
                    seg = slice(128 * h + 32 * k + 16 * l16, 128 * h + 32 * k + 16 * l16 + 16)
                    out[:, seg] = d * s * (q[:, 16 * l16:16 * l16 + 16] - 32)
        return out.reshape(-1)[:n]
    raise ValueError("unsupported tensor type %d" % ttype)


def _q4_k_scales(q):
    """ggml's get_scale_min_k4 for j = 0..7 over the 12 scale bytes of each block."""
    sc = np.empty((q.shape[0], 8), dtype=np.float64)
    mn = np.empty((q.shape[0], 8), dtype=np.float64)
    for j in range(8):
        if j < 4:
            sc[:, j] = q[:, j] & 63
            mn[:, j] = q[:, j + 4] & 63
        else:
            sc[:, j] = (q[:, j + 4] & 0xF) | ((q[:, j - 4] >> 6) << 4)
            mn[:, j] = (q[:, j + 4] >> 4) | ((q[:, j] >> 6) << 4)
    return sc, mn


class GGUF:
    def __init__(self, path):
        with open(path, "rb") as f:
            self.buf = f.read()
        if self.buf[:4] != b"GGUF":
            raise ValueError("not a GGUF file")
        self.off = 4
        version = self._u("I")
        if version not in (2, 3):
            raise ValueError("GGUF version %d" % version)
        n_tensors, n_kv = self._u("Q"), self._u("Q")
        self.kv = {}
        for _ in range(n_kv):
            key = self._s()
            self.kv[key] = self._value(self._u("I"))
        self.tensors = {}
        for _ in range(n_tensors):
            name = self._s()
            n_dims = self._u("I")
            dims = [self._u("Q") for _ in range(n_dims)]
            ttype, off = self._u("I"), self._u("Q")
            self.tensors[name] = (dims, ttype, off)
        align = self.kv.get("general.alignment", 32)
        self.data = (self.off + align - 1) // align * align

    def _u(self, fmt):
        v = struct.unpack_from("<" + fmt, self.buf, self.off)[0]
        self.off += struct.calcsize("<" + fmt)
        return v

    def _s(self):
        n = self._u("Q")
        s = self.buf[self.off:self.off + n].decode("utf-8")
        self.off += n
        return s

    def _value(self, t):
        if t == 8:
            return self._s()
        if t == 9:
            et, n = self._u("I"), self._u("Q")
            return [self._value(et) for _ in range(n)] if et in (8, 9) else \
                [self._u(_SCALARS[et]) for _ in range(n)]
        return self._u(_SCALARS[t])

    def quantized(self, name):
        """True for Q8_0/Q4_0/Q4_K/Q6_K tensors (the engine multiplies them with
        activations quantized per block of 32; see Model.emulate_q8_activations)."""
        return self.tensors[name][1] in _QUANTIZED

    def tensor(self, name):
        """float64 array with numpy shape = reversed GGUF dims ([rows, cols])."""
        dims, ttype, off = self.tensors[name]
        n = int(np.prod(dims))
        per, size = _BLOCKS[ttype]
        nbytes = n // per * size
        start = self.data + off
        vals = dequantize(self.buf[start:start + nbytes], ttype, n)
        return vals.reshape(list(reversed(dims)))


# ---- safetensors ----------------------------------------------------------------------------

def _read_safetensors(path, out):
    with open(path, "rb") as f:
        buf = f.read()
    (hlen,) = struct.unpack_from("<Q", buf, 0)
    header = json.loads(buf[8:8 + hlen])
    base = 8 + hlen
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        raw = buf[base + a:base + b]
        if info["dtype"] == "BF16":
            vals = _bf16(raw)
        elif info["dtype"] == "F16":
            vals = _f16(raw)
        elif info["dtype"] == "F32":
            vals = np.frombuffer(raw, dtype="<f4").astype(np.float64)
        else:
            raise ValueError("dtype %s" % info["dtype"])
        out[name] = vals.reshape(info["shape"])


# ---- the model ------------------------------------------------------------------------------------

def quantize_q8_activations(x):
    """Rounds activations as Echo's (and ggml's) quantized matrix products do
    before the integer dot products: per block of 32 values of a row, in
    float32, scale d = max|x| / 127 and q = round-half-even(x * (1/d)); returns
    q * d. Used only when emulating the kernels' numerics."""
    x32 = np.asarray(x, dtype=np.float32)
    shape = x32.shape
    b = x32.reshape(-1, 32)
    d = (np.max(np.abs(b), axis=1) / np.float32(127.0)).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(d != 0, np.float32(1.0) / d, np.float32(0.0)).astype(np.float32)
    q = np.clip(np.rint(b * inv[:, None]), -127, 127)
    return (q.astype(np.float64) * d[:, None].astype(np.float64)).reshape(shape)


class Model:
    """Weights as float64 numpy arrays, HF orientation ([out, in]).

    emulate_q8_activations: also round the input of every Q8_0/Q4_0 matrix
    product the way the engine's kernels do (quantize_q8_activations), so
    quantized models can be compared tightly; off, the reference is the
    exact model with dequantized weights.
    f16_kv: round keys (after RoPE) and values to IEEE half precision, as the
    engine's default F16 KV cache stores them."""

    def __init__(self, path, emulate_q8_activations=False, f16_kv=False):
        self.emulate = emulate_q8_activations
        self.f16_kv = f16_kv
        self.quant = set()
        if os.path.isdir(path):
            self._load_hf(path)
        else:
            self._load_gguf(path)
        self.head_dim = self.hidden // self.heads

    def _load_gguf(self, path):
        g = GGUF(path)
        kv = g.kv
        self.hidden = kv["qwen2.embedding_length"]
        self.n_layers = kv["qwen2.block_count"]
        self.heads = kv["qwen2.attention.head_count"]
        self.kv_heads = kv["qwen2.attention.head_count_kv"]
        self.theta = kv.get("qwen2.rope.freq_base", 10000.0)
        self.eps = kv.get("qwen2.attention.layer_norm_rms_epsilon", 1e-6)
        def t(name):
            w = g.tensor(name)
            if g.quantized(name) and w.ndim == 2:
                self.quant.add(id(w))
            return w
        self.embed = t("token_embd.weight")
        self.norm = t("output_norm.weight")
        self.output = t("output.weight") if "output.weight" in g.tensors else self.embed
        self.layers = []
        for i in range(self.n_layers):
            p = "blk.%d." % i
            self.layers.append(dict(
                attn_norm=t(p + "attn_norm.weight"), wq=t(p + "attn_q.weight"),
                bq=t(p + "attn_q.bias"), wk=t(p + "attn_k.weight"), bk=t(p + "attn_k.bias"),
                wv=t(p + "attn_v.weight"), bv=t(p + "attn_v.bias"),
                wo=t(p + "attn_output.weight"), ffn_norm=t(p + "ffn_norm.weight"),
                gate=t(p + "ffn_gate.weight"), up=t(p + "ffn_up.weight"),
                down=t(p + "ffn_down.weight")))

    def _load_hf(self, path):
        with open(os.path.join(path, "config.json")) as f:
            cfg = json.load(f)
        self.hidden = cfg["hidden_size"]
        self.n_layers = cfg["num_hidden_layers"]
        self.heads = cfg["num_attention_heads"]
        self.kv_heads = cfg["num_key_value_heads"]
        self.theta = cfg.get("rope_theta", 10000.0)
        self.eps = cfg.get("rms_norm_eps", 1e-6)
        w = {}
        index = os.path.join(path, "model.safetensors.index.json")
        if os.path.exists(index):
            with open(index) as f:
                files = sorted(set(json.load(f)["weight_map"].values()))
            for name in files:
                _read_safetensors(os.path.join(path, name), w)
        else:
            _read_safetensors(os.path.join(path, "model.safetensors"), w)
        self.embed = w["model.embed_tokens.weight"]
        self.norm = w["model.norm.weight"]
        tied = cfg.get("tie_word_embeddings", False)
        self.output = self.embed if tied else w["lm_head.weight"]
        self.layers = []
        for i in range(self.n_layers):
            p = "model.layers.%d." % i
            self.layers.append(dict(
                attn_norm=w[p + "input_layernorm.weight"],
                wq=w[p + "self_attn.q_proj.weight"], bq=w[p + "self_attn.q_proj.bias"],
                wk=w[p + "self_attn.k_proj.weight"], bk=w[p + "self_attn.k_proj.bias"],
                wv=w[p + "self_attn.v_proj.weight"], bv=w[p + "self_attn.v_proj.bias"],
                wo=w[p + "self_attn.o_proj.weight"],
                ffn_norm=w[p + "post_attention_layernorm.weight"],
                gate=w[p + "mlp.gate_proj.weight"], up=w[p + "mlp.up_proj.weight"],
                down=w[p + "mlp.down_proj.weight"]))

    def _rmsnorm(self, x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * w

    def _mm(self, x, w):
        """x @ w.T, with the kernels' activation rounding when emulating."""
        if self.emulate and id(w) in self.quant:
            x = quantize_q8_activations(x)
        return x @ w.T

    def _rope(self, x, positions):
        """x: [T, heads, d]. NEOX layout: element i pairs with i + d/2."""
        d = x.shape[-1]
        half = d // 2
        inv = self.theta ** (-np.arange(half, dtype=np.float64) * 2.0 / d)
        ang = positions[:, None] * inv[None, :]
        cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        x0, x1 = x[..., :half], x[..., half:]
        return np.concatenate([x0 * cos - x1 * sin, x0 * sin + x1 * cos], axis=-1)

    def logits(self, ids):
        """Logits [T, vocab] for every position of one causal sequence."""
        ids = np.asarray(ids, dtype=np.int64)
        T = len(ids)
        d = self.head_dim
        group = self.heads // self.kv_heads
        pos = np.arange(T, dtype=np.float64)
        mask = np.triu(np.full((T, T), -np.inf), k=1)
        x = self.embed[ids]
        for L in self.layers:
            h = self._rmsnorm(x, L["attn_norm"])
            q = (self._mm(h, L["wq"]) + L["bq"]).reshape(T, self.heads, d)
            k = (self._mm(h, L["wk"]) + L["bk"]).reshape(T, self.kv_heads, d)
            v = (self._mm(h, L["wv"]) + L["bv"]).reshape(T, self.kv_heads, d)
            q, k = self._rope(q, pos), self._rope(k, pos)
            if self.f16_kv:
                k = k.astype(np.float32).astype(np.float16).astype(np.float64)
                v = v.astype(np.float32).astype(np.float16).astype(np.float64)
            out = np.empty((T, self.heads, d))
            for hq in range(self.heads):
                hk = hq // group
                s = q[:, hq, :] @ k[:, hk, :].T / np.sqrt(d) + mask
                s = np.exp(s - s.max(axis=1, keepdims=True))
                s /= s.sum(axis=1, keepdims=True)
                out[:, hq, :] = s @ v[:, hk, :]
            x = x + self._mm(out.reshape(T, -1), L["wo"])
            h = self._rmsnorm(x, L["ffn_norm"])
            g = self._mm(h, L["gate"])
            x = x + self._mm((g / (1.0 + np.exp(-g))) * self._mm(h, L["up"]), L["down"])
        return self._mm(self._rmsnorm(x, self.norm), self.output)


def top_k(row, k):
    order = np.argsort(-row, kind="stable")[:k]
    return [(int(i), float(row[i])) for i in order]


def main(argv):
    ap = argparse.ArgumentParser(description="numpy reference logits of a Qwen2 model")
    ap.add_argument("model")
    ap.add_argument("--ids", required=True, help="comma-separated token ids")
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("--all", action="store_true", help="every position, not only the last")
    ap.add_argument("--npy", help="save the full logits matrix [T, vocab] here")
    ap.add_argument("--emulate-q8", action="store_true",
                    help="round the inputs of Q8_0/Q4_0 products as the engine's kernels do")
    ap.add_argument("--f16-kv", action="store_true",
                    help="round keys and values to half precision (an F16 KV cache)")
    a = ap.parse_args(argv)
    ids = [int(t) for t in a.ids.replace(" ", ",").split(",") if t]
    logits = Model(a.model, a.emulate_q8, a.f16_kv).logits(ids)
    if a.npy:
        np.save(a.npy, logits)
    rows = logits if a.all else logits[-1:]
    for row in rows:
        print(" ".join("%d:%.6f" % p for p in top_k(row, a.top)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
