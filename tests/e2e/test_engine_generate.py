"""test_engine_generate.py - the engine's commands end to end on tiny random
models: greedy generation equals the reference's argmax continuation and is
deterministic, the same seed gives the same text, text prompts and the chat
format, the terminal chat reusing its KV cache, `model info`, `bench`, and
bad input of every kind (ids, context, flags, corrupted GGUF and safetensors
files) giving a clear error and exit status 1 or 2, never a crash.
"""

import json
import shutil
import struct

import numpy as np
import pytest

from engine_util import make_models, reference, run


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return make_models(tmp_path_factory.mktemp("models"))


def ok(p):
    assert p.returncode == 0, p.stderr
    return p


def no_crash(p):
    for marker in ("AddressSanitizer", "runtime error", "Segmentation", "Aborted"):
        assert marker not in p.stderr, p.stderr


def gen_ids(model, ids, *extra):
    p = ok(run(["generate", "-m", model, "--prompt-ids", ",".join(map(str, ids)), "--print-ids",
                "-q"] + list(extra)))
    return [int(x) for x in p.stdout.strip().split(",") if x]


def test_greedy_matches_reference(models):
    m = models / "tiny-f32.gguf"
    prompt = [11, 22, 33, 44]
    got = gen_ids(m, prompt, "--temp", "0", "-n", "6", "--kv", "f32", "--ignore-eos")
    assert len(got) == 6
    # The reference's greedy continuation, recomputing the whole sequence each step.
    seq = list(prompt)
    for _ in range(6):
        seq.append(int(np.argmax(reference(m, seq)[-1])))
    assert got == seq[len(prompt):]


def test_greedy_deterministic(models):
    m = models / "tiny-q8_0.gguf"
    a = gen_ids(m, [5, 6, 7], "--temp", "0", "-n", "24", "--ignore-eos")
    b = gen_ids(m, [5, 6, 7], "--temp", "0", "-n", "24", "--ignore-eos", "-t", "1")
    assert a == b and len(a) == 24


def test_same_seed_same_text(models):
    m = models / "tiny-q8_0.gguf"
    args = ["generate", "-m", m, "-p", "Hello, how are you?", "-n", "24", "--temp", "1.0",
            "--top-k", "0", "--top-p", "1", "--ignore-eos", "-q"]
    a = ok(run(args + ["--seed", "7"])).stdout
    b = ok(run(args + ["--seed", "7"])).stdout
    c = ok(run(args + ["--seed", "8"])).stdout
    assert a == b
    assert a != c
    assert len(a.strip()) > 0


def test_text_and_chat_prompts(models):
    m = models / "tiny-q8_0.gguf"
    p = ok(run(["generate", "-m", m, "-p", "Bonjour 🌍 – ünïcödé", "-n", "8", "--temp", "0"]))
    assert "tokens/s" in p.stderr and "finish:" in p.stderr
    p = ok(run(["generate", "-m", m, "--chat", "--system", "Be brief.", "-p", "Hi", "-n", "4"]))
    # ChatML adds the frame around the message: many more prompt tokens than "Hi".
    n_prompt = int(p.stderr.split("prompt: ")[1].split(" ")[0])
    assert n_prompt > 10
    p = ok(run(["generate", "-m", m, "--special", "-p", "<|im_start|>user", "-n", "2"]))
    special = int(p.stderr.split("prompt: ")[1].split(" ")[0])
    p = ok(run(["generate", "-m", m, "-p", "<|im_start|>user", "-n", "2"]))
    plain = int(p.stderr.split("prompt: ")[1].split(" ")[0])
    assert special < plain  # the marker is one token only when --special


def test_terminal_chat(models):
    m = models / "tiny-q8_0.gguf"
    p = ok(run(["chat", "-m", m, "-n", "6", "--temp", "0"],
               input="Hello there\nAnd a second question\n/reset\nAfter reset\n"))
    stats = [l for l in p.stderr.splitlines() if l.startswith("[prompt")]
    assert len(stats) == 3
    reused = [int(l.split("(")[1].split(" ")[0]) for l in stats]
    assert reused[0] == 0 and reused[1] > 10 and reused[2] == 0
    assert "(conversation forgotten)" in p.stdout


def test_model_info(models):
    p = ok(run(["model", "info", models / "tiny-q8_0.gguf"]))
    assert "qwen2" in p.stdout and "q8_0" in p.stdout and "2, hidden size 64" in p.stdout
    assert "4 query heads, 2 KV heads" in p.stdout
    p = ok(run(["model", "info", models / "tiny-hf-sharded"]))
    assert "Hugging Face folder" in p.stdout and "BF16" in p.stdout
    assert "separate output matrix" in p.stdout


def test_bench_json(models):
    p = ok(run(["bench", "-m", models / "tiny-q8_0.gguf", "-p", "16", "-n", "8", "-r", "2",
                "--bw-mib", "64", "--json"]))
    rows = [json.loads(l) for l in p.stdout.splitlines()]
    tests = {r["test"]: r for r in rows}
    assert tests["pp16"]["tokens_per_second"] > 0
    assert tests["tg8"]["tokens_per_second"] > 0
    assert tests["tg8"]["bytes_per_token"] > 0
    assert tests["memory"]["peak_rss_bytes"] > 0
    p = ok(run(["bench", "model", "-m", models / "tiny-q8_0.gguf", "-p", "8", "-n", "4", "-r",
                "1", "--bw-mib", "64"]))
    assert "| pp8" in p.stdout and "bandwidth limit" in p.stdout


def test_bench_batch_depth_ttft(models):
    """Continuous batching, generation at depth and the second turn's time to
    first token, as bench reports them (figures are not checked, only that
    each test ran and what it says about itself)."""
    p = ok(run(["bench", "-m", models / "tiny-q8_0.gguf", "-p", "0", "-n", "6", "-r", "2",
                "--bw-mib", "0", "--batch", "1,3", "--batch-prompt", "12",
                "--depth", "0,40", "--ttft", "50", "--ttft-new", "5", "--json"]))
    tests = {r["test"]: r for r in map(json.loads, p.stdout.splitlines())}
    for name in ("tg6x1", "tg6x3", "tg6@d0", "tg6@d40"):
        assert tests[name]["tokens_per_second"] > 0, name
    assert tests["tg6x3"]["batch"] == 3 and tests["tg6x3"]["prompt_tokens"] == 12
    assert tests["tg6x3"]["speedup"] > 0 and tests["tg6x1"]["speedup"] == 1
    assert tests["tg6@d40"]["depth"] == 40
    t = tests["ttft"]
    assert t["history_tokens"] == 50 and t["new_tokens"] == 5
    assert t["reused_tokens"] == 50  # the history came from the conversation's cache
    assert 0 < t["best"] <= t["seconds"] + 1e-9
    p = ok(run(["bench", "-m", models / "tiny-q8_0.gguf", "-p", "0", "-n", "4", "-r", "1",
                "--bw-mib", "0", "--batch", "2", "--ttft", "20"]))
    assert "| tg4x2" in p.stdout and "ttft (second turn)" in p.stdout
    # Bad lists and tests that do not fit the context are refused up front.
    for bad in (["--batch", "0"], ["--batch", "1,,2"], ["--batch", "x"], ["--depth", "-1"],
                ["--batch", ",".join(["1"] * 17)]):
        p = run(["bench", "-m", models / "tiny-q8_0.gguf"] + bad)
        assert p.returncode == 2 and "bad list" in p.stderr, bad
    p = run(["bench", "-m", models / "tiny-q8_0.gguf", "--ctx", "64", "-p", "8", "-n", "4",
             "--depth", "100"])
    assert p.returncode == 1 and "raise --ctx" in p.stderr


def test_help():
    for cmd in (["generate"], ["chat"], ["logits"], ["bench"], ["model"]):
        p = run(cmd + ["--help"])
        assert p.returncode == 0 and "usage" in p.stdout, cmd


def test_bad_arguments(models):
    m = models / "tiny-q8_0.gguf"
    p = run(["generate", "-m", m, "--prompt-ids", "1,99999999", "-n", "2"])
    assert p.returncode == 1 and "outside the vocabulary" in p.stderr
    p = run(["generate", "-m", m, "--prompt-ids", "1,2,x", "-n", "2"])
    assert p.returncode == 2 and "bad token id" in p.stderr
    p = run(["generate", "-m", m, "--ctx", "8", "--prompt-ids", "1,2,3,4,5,6,7,8,9,10"])
    assert p.returncode == 1 and "context" in p.stderr
    p = run(["logits", "-m", m, "--ctx", "4", "1", "2", "3", "4", "5"])
    assert p.returncode == 1 and "context" in p.stderr
    p = run(["generate", "-m", m, "-p", "x", "--temp", "-1"])
    assert p.returncode == 2
    p = run(["generate", "-m", m, "-p", "x", "--kv", "q4"])
    assert p.returncode == 2
    p = run(["generate", "-m", m])
    assert p.returncode == 2
    p = run(["generate", "-m", models / "missing.gguf", "-p", "x"])
    assert p.returncode == 1 and "No such file" in p.stderr and "model pull" in p.stderr
    p = run(["logits", "-m", m])
    assert p.returncode == 2


# ---- corrupted files --------------------------------------------------------------------

def gguf_layout(path):
    """Offsets of the fields a test may corrupt: {'n_tensors': off, 'tensors':
    [(name, dims_off, n_dims, type_off, offset_off)]}."""
    buf = path.read_bytes()
    off = 8
    n_tensors, n_kv = struct.unpack_from("<QQ", buf, off)
    layout = {"n_tensors": off, "n_kv": off + 8, "tensors": []}
    off += 16
    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

    def skip_value(t, off):
        if t == 8:
            (n,) = struct.unpack_from("<Q", buf, off)
            return off + 8 + n
        if t == 9:
            et, n = struct.unpack_from("<IQ", buf, off)
            off += 12
            if et == 8:
                for _ in range(n):
                    (l,) = struct.unpack_from("<Q", buf, off)
                    off += 8 + l
                return off
            return off + n * sizes[et]
        return off + sizes[t]

    for _ in range(n_kv):
        (klen,) = struct.unpack_from("<Q", buf, off)
        off += 8 + klen
        (t,) = struct.unpack_from("<I", buf, off)
        off = skip_value(t, off + 4)
    for _ in range(n_tensors):
        (nlen,) = struct.unpack_from("<Q", buf, off)
        name = buf[off + 8:off + 8 + nlen].decode()
        off += 8 + nlen
        (n_dims,) = struct.unpack_from("<I", buf, off)
        dims_off = off + 4
        off = dims_off + 8 * n_dims
        layout["tensors"].append((name, dims_off, n_dims, off, off + 4))
        off += 12
    return layout


def corrupt(src, dst, patches=(), cut=None):
    data = bytearray(src.read_bytes())
    for off, raw in patches:
        data[off:off + len(raw)] = raw
    if cut is not None:
        data = data[:cut]
    dst.write_bytes(bytes(data))
    return dst


def expect_refused(model, *extra, status=1):
    p = run(["logits", "-m", model] + list(extra) + ["1", "2"])
    no_crash(p)
    assert p.returncode == status, (p.returncode, p.stderr)
    assert p.stderr.strip(), "no error message"
    return p.stderr


def test_bad_gguf_files(models, tmp_path):
    src = models / "tiny-q8_0.gguf"
    size = src.stat().st_size
    lay = gguf_layout(src)
    bad = tmp_path / "bad.gguf"
    # Truncated anywhere: header, metadata, tensor table, data.
    for cut in (0, 3, 7, 20, 100, 5000, lay["tensors"][0][1], size // 2, size - 1):
        expect_refused(corrupt(src, bad, cut=cut))
    expect_refused(corrupt(src, bad, [(0, b"GGML")]))
    expect_refused(corrupt(src, bad, [(4, struct.pack("<I", 1))]))   # version 1
    expect_refused(corrupt(src, bad, [(4, struct.pack("<I", 77))]))  # unknown version
    # Absurd counts.
    expect_refused(corrupt(src, bad, [(lay["n_tensors"], struct.pack("<Q", 1 << 60))]))
    expect_refused(corrupt(src, bad, [(lay["n_kv"], struct.pack("<Q", (1 << 64) - 1))]))
    name, dims_off, n_dims, type_off, offset_off = lay["tensors"][1]
    # Absurd dimensions, an unknown type, data outside the file, overlapping data.
    expect_refused(corrupt(src, bad, [(dims_off, struct.pack("<Q", 1 << 40))]))
    expect_refused(corrupt(src, bad, [(dims_off + 8, struct.pack("<Q", 1 << 62))]))
    expect_refused(corrupt(src, bad, [(type_off, struct.pack("<I", 1234))]))
    expect_refused(corrupt(src, bad, [(offset_off, struct.pack("<Q", size * 4))]))
    first_offset_off = lay["tensors"][0][4]
    first_offset = struct.unpack_from("<Q", src.read_bytes(), first_offset_off)[0]
    expect_refused(corrupt(src, bad, [(offset_off, struct.pack("<Q", first_offset))]))
    # A tensor whose shape disagrees with the metadata.
    err = expect_refused(corrupt(src, bad, [(dims_off, struct.pack("<Q", 96))]))
    assert name in err or "shape" in err or "block" in err


def test_bad_safetensors(models, tmp_path):
    hf = tmp_path / "hf"
    shutil.copytree(models / "tiny-hf", hf)
    st = hf / "model.safetensors"
    orig = st.read_bytes()
    (hlen,) = struct.unpack_from("<Q", orig, 0)
    header = orig[8:8 + hlen]

    def with_header(h, body=orig[8 + hlen:]):
        st.write_bytes(struct.pack("<Q", len(h)) + h + body)

    with_header(b"{not json" + b" " * 10)
    assert "JSON" in expect_refused(hf)
    with_header(header.replace(b'"BF16"', b'"BX16"', 1))
    assert "dtype" in expect_refused(hf)
    with_header(header.replace(b"model.norm.weight", b"model.norm.weighz"))
    assert "model.norm.weight" in expect_refused(hf)
    with_header(header, orig[8 + hlen:-2])  # data shorter than the header says
    expect_refused(hf)
    st.write_bytes(struct.pack("<Q", 1 << 40) + header)
    assert "header length" in expect_refused(hf)
    st.write_bytes(orig[:5])
    assert "truncated" in expect_refused(hf)
    st.write_bytes(orig)
    (hf / "config.json").write_text("{\"model_type\": \"qwen2\", \"hidden_size\": 64}")
    expect_refused(hf)
    (hf / "config.json").write_text("[]")
    expect_refused(hf)
    (hf / "config.json").unlink()
    expect_refused(hf)
