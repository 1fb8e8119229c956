"""test_engine_pull.py - `echobot model pull` against a local HTTP server (on
127.0.0.1, a free port, stopped by the test) serving a tiny model: a verified
download, --if-missing, an interrupted download that resumes with a Range
request, a server that ignores ranges, a corrupted file rejected by SHA-256
(and deleted), HTTP errors, an unreachable server failing fast, and the
settings ECHO_MODEL_URL / ECHO_MODEL_SHA256 / ECHO_MODEL as defaults.
"""

import hashlib
import http.server
import os
import subprocess
import threading
import time

import pytest

from engine_util import ECHOBOT, TOOL


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "echo-test/1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        st = self.server.state
        st["requests"].append(self.headers.get("Range"))
        if self.path != "/model.gguf":
            self.send_error(404, "no such model")
            return
        data = st["data"]
        if st.get("corrupt"):
            data = bytearray(data)
            data[len(data) // 3] ^= 0xFF
            data = bytes(data)
        start = 0
        rng = self.headers.get("Range")
        if rng and not st.get("ignore_range"):
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", "bytes */%d" % len(data))
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1,
                                                                  len(data)))
        else:
            self.send_response(200)
        body = data[start:]
        if st.get("linked_etag"):
            # As the Hugging Face hub does for files stored in Git LFS.
            self.send_header("X-Linked-Etag", '"%s"' % st["linked_etag"])
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        cut = st.pop("cut_after", None)
        if cut is not None:
            # Send part of the body, then drop the connection.
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            st["sent"].append(cut)
            return
        self.wfile.write(body)
        st["sent"].append(len(body))


@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("src") / "model.gguf"
    subprocess.run(["/usr/bin/python3", TOOL, "gguf", str(path), "--type", "q8_0", "--vocab",
                    "synthetic"], check=True, stderr=subprocess.DEVNULL)
    return path.read_bytes()


@pytest.fixture
def server(model_bytes):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.state = {"data": model_bytes, "requests": [], "sent": []}
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    srv.url = "http://127.0.0.1:%d/model.gguf" % srv.server_address[1]
    yield srv
    srv.shutdown()
    srv.server_close()


def pull(tmp_path, *args, env=None):
    e = dict(os.environ)
    for k in ("ECHO_MODEL", "ECHO_MODEL_URL", "ECHO_MODEL_SHA256"):
        e.pop(k, None)
    e.update(env or {})
    return subprocess.run([ECHOBOT, "model", "pull", "--no-progress"] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path, env=e)


def sha(data):
    return hashlib.sha256(data).hexdigest()


def test_download_verified(server, model_bytes, tmp_path):
    out = tmp_path / "models" / "m.gguf"
    p = pull(tmp_path, "--url", server.url, "--out", out, "--sha256", sha(model_bytes))
    assert p.returncode == 0, p.stderr
    assert out.read_bytes() == model_bytes
    assert not (tmp_path / "models" / "m.gguf.part").exists()
    assert "verified" in p.stderr
    # The file is a model the engine opens.
    info = subprocess.run([ECHOBOT, "model", "info", str(out)], capture_output=True, text=True)
    assert info.returncode == 0 and "qwen2" in info.stdout
    # Upper-case digests are fine too; --if-missing then does nothing at all.
    n = len(server.state["requests"])
    p = pull(tmp_path, "--url", server.url, "--out", out, "--sha256",
             sha(model_bytes).upper(), "--if-missing")
    assert p.returncode == 0 and p.stderr == ""
    assert len(server.state["requests"]) == n


def test_interrupted_download_resumes(server, model_bytes, tmp_path):
    out = tmp_path / "m.gguf"
    part = tmp_path / "m.gguf.part"
    half = len(model_bytes) // 2
    server.state["cut_after"] = half
    p = pull(tmp_path, "--url", server.url, "--out", out, "--sha256", sha(model_bytes))
    assert p.returncode == 1
    assert "resume" in p.stderr
    assert not out.exists()
    assert part.stat().st_size == half
    p = pull(tmp_path, "--url", server.url, "--out", out, "--sha256", sha(model_bytes))
    assert p.returncode == 0, p.stderr
    assert server.state["requests"][-1] == "bytes=%d-" % half
    assert server.state["sent"][-1] == len(model_bytes) - half
    assert out.read_bytes() == model_bytes
    assert not part.exists()


def test_complete_part_file(server, model_bytes, tmp_path):
    """A .part that already holds everything: the server answers 416 and the
    checksum decides."""
    out = tmp_path / "m.gguf"
    (tmp_path / "m.gguf.part").write_bytes(model_bytes)
    p = pull(tmp_path, "--url", server.url, "--out", out, "--sha256", sha(model_bytes))
    assert p.returncode == 0, p.stderr
    assert out.read_bytes() == model_bytes


def test_server_ignoring_range(server, model_bytes, tmp_path):
    out = tmp_path / "m.gguf"
    (tmp_path / "m.gguf.part").write_bytes(b"x" * 1000)
    server.state["ignore_range"] = True
    p = pull(tmp_path, "--url", server.url, "--out", out, "--sha256", sha(model_bytes))
    assert p.returncode == 0, p.stderr
    assert out.read_bytes() == model_bytes


def test_corrupted_download_rejected(server, model_bytes, tmp_path):
    out = tmp_path / "m.gguf"
    server.state["corrupt"] = True
    p = pull(tmp_path, "--url", server.url, "--out", out, "--sha256", sha(model_bytes))
    assert p.returncode == 1
    assert "SHA-256 mismatch" in p.stderr
    assert not out.exists()
    assert not (tmp_path / "m.gguf.part").exists()
    # The next pull starts over and succeeds once the server is fixed.
    server.state["corrupt"] = False
    p = pull(tmp_path, "--url", server.url, "--out", out, "--sha256", sha(model_bytes))
    assert p.returncode == 0, p.stderr
    assert server.state["requests"][-1] is None


def test_http_error(server, tmp_path):
    p = pull(tmp_path, "--url", server.url.replace("model.gguf", "nope.gguf"), "--out",
             tmp_path / "m.gguf")
    assert p.returncode == 1 and "404" in p.stderr
    assert not (tmp_path / "m.gguf").exists()


def test_unreachable_fails_fast(tmp_path):
    # A port nothing listens on: bind one, close it, use it.
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    t0 = time.monotonic()
    p = pull(tmp_path, "--if-missing", "--url", "http://127.0.0.1:%d/m.gguf" % port, "--out",
             tmp_path / "m.gguf", "--connect-timeout", "3")
    assert p.returncode == 1
    assert time.monotonic() - t0 < 10
    assert "offline?" in p.stderr


def test_bad_digest_argument(server, tmp_path):
    p = pull(tmp_path, "--url", server.url, "--out", tmp_path / "m.gguf", "--sha256", "abc")
    assert p.returncode == 1 and "64 hex digits" in p.stderr


def test_settings_are_the_defaults(server, model_bytes, tmp_path):
    out = tmp_path / "from-settings.gguf"
    env = {"ECHO_MODEL_URL": server.url, "ECHO_MODEL_SHA256": sha(model_bytes),
           "ECHO_MODEL": str(out)}
    p = pull(tmp_path, env=env)
    assert p.returncode == 0, p.stderr
    assert out.read_bytes() == model_bytes
    env["ECHO_MODEL_SHA256"] = "0" * 64
    out.unlink()
    p = pull(tmp_path, env=env)
    assert p.returncode == 1 and "mismatch" in p.stderr


def test_digest_published_by_the_server(server, model_bytes, tmp_path):
    """Without a pinned digest, the SHA-256 the hub publishes (X-Linked-Etag)
    is checked: a match is kept, a corrupted file is deleted."""
    out = tmp_path / "m.gguf"
    server.state["linked_etag"] = sha(model_bytes)
    p = pull(tmp_path, "--url", server.url, "--out", out)
    assert p.returncode == 0, p.stderr
    assert "published" in p.stderr
    assert out.read_bytes() == model_bytes
    out.unlink()
    server.state["corrupt"] = True
    p = pull(tmp_path, "--url", server.url, "--out", out)
    assert p.returncode == 1
    assert "mismatch" in p.stderr and "published by the server" in p.stderr
    assert not out.exists() and not (tmp_path / "m.gguf.part").exists()
