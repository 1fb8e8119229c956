"""test_engine_kquant.py - models with Q4_K and Q6_K weights (the types of the
official Qwen2.5 q4_k_m GGUF files) against the independent numpy reference
(tests/reference/qwen2_ref.py, whose k-quant decoding follows ggml's loops and
shares nothing with the tool that writes the files or with the kernels).

The models are "small" (hidden 256, FFN 384, two layers, synthetic
vocabulary): small-q4_k_m.gguf mixes Q6_K (the tied embedding, layer 0's
attn_v), Q4_K (the other projections) and Q8_0 (ffn_down, whose rows of 384
are not whole super-blocks), with F32 norms, as llama.cpp's q4_k_m does;
small-q4_k and small-q6_k use one k-quant wherever the rows allow.

Tolerances as for the other quantized models (test_engine_logits.py): against
the reference that rounds the inputs of quantized products as the kernels do,
< 1e-3 for at least 3/4 of single tokens and for a prompt's first position (a
value within float rounding of a quantization step may round the other way in
the float64 reference, and the KV cache carries that to every later position);
against the exact reference, < 1.0 and the same top-1 wherever the
reference's top-2 margin exceeds 0.5. Every kernel path (ECHO_KERNELS) runs
them; a path the CPU lacks falls back to the best it has.
"""

import os

import numpy as np
import pytest

from engine_util import engine_logits, make_kquant_models, margin, prompt, reference, run

Q_EMU_TOL = 1e-3
Q_EXACT_TOL = 1.0
MODELS = ["small-q4_k_m.gguf", "small-q4_k.gguf", "small-q6_k.gguf"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return make_kquant_models(tmp_path_factory.mktemp("kmodels"))


@pytest.fixture(scope="module")
def vocab(models):
    return reference(models / "small-q4_k_m.gguf", [0]).shape[1]


def max_diff(a, b):
    return float(np.max(np.abs(a - b)))


def test_mix_is_q4_k_m(models):
    """`echobot model info` lists the file's tensor types: the q4_k_m mix."""
    p = run(["model", "info", models / "small-q4_k_m.gguf"])
    assert p.returncode == 0, p.stderr
    line = [x for x in p.stdout.splitlines() if x.startswith("weights:")][0]
    for part in ("q6_K x 2", "q4_K x 11", "q8_0 x 2", "f32 x 11"):
        assert part in line, line


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("path", ["avx512", "avx2", "scalar"])
def test_kquant_logits(models, tmp_path, vocab, name, path):
    m = models / name
    env = dict(os.environ, ECHO_KERNELS=path)
    singles = [[i % vocab] for i in (3, 42, 77, 100, 150, 200, 255, 300, 333)] + [[vocab - 5]]
    close = 0
    for ids in singles:
        got = engine_logits(tmp_path, m, ids, "--kv", "f32", env=env)
        emu = reference(m, ids, emulate_q8=True)[-1]
        exact = reference(m, ids)[-1]
        assert max_diff(got, exact) < Q_EXACT_TOL
        close += max_diff(got, emu) < Q_EMU_TOL
        if margin(exact) > 0.5:
            assert got.argmax() == exact.argmax()
    assert close >= len(singles) * 3 / 4, close
    # A prompt: every position close to the emulating reference until the
    # first rounding flip (the float64 reference and the float32 kernels may
    # round one activation differently, and the cache carries the difference
    # on), and close to the exact reference everywhere.
    ids = prompt(24, seed=11, vocab=vocab)
    got = engine_logits(tmp_path, m, ids, "--kv", "f32", all_positions=True, env=env)
    emu = reference(m, ids, emulate_q8=True)
    per_pos = np.max(np.abs(got - emu), axis=1)
    assert per_pos[0] < Q_EMU_TOL, per_pos
    exact = reference(m, ids)
    assert max_diff(got, exact) < Q_EXACT_TOL
    clear = [i for i in range(len(ids)) if margin(exact[i]) > 0.5]
    assert len(clear) >= 8
    assert all(got[i].argmax() == exact[i].argmax() for i in clear)


def test_kquant_default_cache_and_pieces(models, tmp_path, vocab):
    """The default F16 KV cache, and a prompt in pieces through the cache."""
    m = models / "small-q4_k_m.gguf"
    ids = prompt(40, seed=3, vocab=vocab)
    exact = reference(m, ids)
    got16 = engine_logits(tmp_path, m, ids, all_positions=True)
    assert max_diff(got16, exact) < Q_EXACT_TOL
    clear = [i for i in range(len(ids)) if margin(exact[i]) > 0.5]
    assert all(got16[i].argmax() == exact[i].argmax() for i in clear)
    whole = engine_logits(tmp_path, m, ids, "--kv", "f32")
    pieces = engine_logits(tmp_path, m, ids, "--kv", "f32", "--pieces", "7,30")
    assert max_diff(pieces, whole) < Q_EMU_TOL


def test_kquant_generate(models):
    """Greedy generation on the mixed model: the ids the logits' argmax gives."""
    m = models / "small-q4_k_m.gguf"
    p = run(["generate", "-m", m, "--prompt-ids", "1,2,3", "-n", "6", "--print-ids",
             "--ignore-eos", "-q", "--temp", "0"])
    assert p.returncode == 0, p.stderr
    ids = [int(x) for x in p.stdout.replace(",", " ").split()]
    assert len(ids) == 6
    seq = [1, 2, 3]
    for i in ids:
        ref = reference(m, seq)[-1]
        if margin(ref) > 0.5:
            assert i == int(ref.argmax())
        seq.append(i)
