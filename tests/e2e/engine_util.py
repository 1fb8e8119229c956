"""engine_util.py - what the engine's end-to-end tests share: the echobot
binary, the tiny and small test models (written once per test run by
tools/make_test_model.py) and running `echobot logits` into numpy arrays.
"""

import os
import subprocess
import sys

import numpy as np

SOURCE = os.environ.get("ECHO_SOURCE_DIR",
                        os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..")))
ECHOBOT = os.environ.get("ECHOBOT", os.path.join(SOURCE, "build", "echobot"))
TOOL = os.path.join(SOURCE, "tools", "make_test_model.py")
sys.path.insert(0, os.path.join(SOURCE, "tests", "reference"))

import qwen2_ref  # noqa: E402


def make_models(out_dir, vocab=None):
    """Writes the tiny-set (tiny-{f32,f16,bf16,q8_0,q4_0}.gguf, tiny-untied-f32.gguf,
    tiny-hf, tiny-hf-sharded) into out_dir."""
    cmd = ["/usr/bin/python3", TOOL, "tiny-set", str(out_dir)]
    if vocab:
        cmd += ["--vocab", vocab]
    subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)
    return out_dir


def make_kquant_models(out_dir):
    """Writes small-{q4_k_m,q4_k,q6_k}.gguf (the "small" size: rows of whole
    256-element super-blocks; synthetic vocabulary, so they take a second)
    into out_dir. q4_k_m mixes Q6_K, Q4_K and Q8_0 as llama.cpp's q4_k_m does."""
    for t in ("q4_k_m", "q4_k", "q6_k"):
        subprocess.run(["/usr/bin/python3", TOOL, "gguf", str(out_dir / ("small-%s.gguf" % t)),
                        "--size", "small", "--type", t, "--vocab", "synthetic"], check=True,
                       stderr=subprocess.DEVNULL)
    return out_dir


def run(args, **kw):
    """Runs echobot with args; returns the CompletedProcess (text mode)."""
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 600)
    return subprocess.run([ECHOBOT] + [str(a) for a in args], **kw)


def engine_logits(tmp_path, model, ids, *extra, all_positions=False, env=None):
    """Logits from `echobot logits --out`: [vocab] or [len(ids), vocab]. env:
    the environment of the run (default: this process's)."""
    out = tmp_path / "logits.bin"
    args = ["logits", "-m", model, "--top", "0", "--out", out]
    if all_positions:
        args.append("--all")
    args += list(extra) + [",".join(str(i) for i in ids)]
    p = run(args, env=env)
    assert p.returncode == 0, p.stderr
    v = np.fromfile(out, dtype=np.float32)
    return v.reshape(len(ids), -1) if all_positions else v


_ref_cache = {}


def reference(model, ids, emulate_q8=False, f16_kv=False):
    """Reference logits [len(ids), vocab] of the numpy forward pass."""
    key = (str(model), emulate_q8, f16_kv)
    if key not in _ref_cache:
        _ref_cache[key] = qwen2_ref.Model(str(model), emulate_q8, f16_kv)
    return _ref_cache[key].logits(ids)


def prompt(n, seed, vocab=151643):
    rng = np.random.default_rng(seed)
    return [int(x) for x in rng.integers(0, vocab, n)]


def margin(row):
    """Gap between the best and the second-best logit."""
    top2 = np.sort(row)[-2:]
    return float(top2[1] - top2[0])
