"""Starting and stopping a real `echobot serve` for the HTTP end-to-end tests.

Each server runs in its own temporary folder: templates/ points at the
repository's templates, static/ is a folder the test fills (so that caching
and traversal tests control every file), instance/ is fresh, and no .env of a
developer is read. Servers listen on 127.0.0.1 on a free port and are always
stopped by the test that started them.
"""
import html
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time

ECHOBOT = os.environ.get("ECHOBOT", "build/test/src/app/echobot")
SOURCE = os.environ.get("ECHO_SOURCE_DIR", os.getcwd())


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECHO_") and k != "SECRET_KEY"}
    env["ECHO_ENV"] = "development"
    env["ECHO_LOG_LEVEL"] = "info"
    # The per-IP rate limits (tested in test_profile.py) would throttle tests
    # that sign up and log in many times a second from one address.
    env["ECHO_RATELIMIT_ENABLED"] = "0"
    if extra:
        env.update(extra)
    return env


class Server:
    """One echobot serve process in a scratch folder."""

    def __init__(self, env=None, args=(), templates=None, static_dir=None, static_files=None,
                 test_routes=True):
        self.dir = tempfile.mkdtemp(prefix="echo-http-e2e-")
        os.symlink(templates or os.path.join(SOURCE, "templates"), os.path.join(self.dir, "templates"))
        self.static = os.path.join(self.dir, "static")
        if static_dir:
            os.symlink(static_dir, self.static)
        else:
            os.makedirs(self.static)
        for rel, data in (static_files or {}).items():
            path = os.path.join(self.static, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data if isinstance(data, bytes) else data.encode())
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        cmd = [os.path.abspath(ECHOBOT), "serve", "--host", "127.0.0.1", "--port", str(self.port),
               "--instance", os.path.join(self.dir, "instance")]
        if test_routes:
            cmd.append("--test-routes")
        cmd += list(args)
        self.log_path = os.path.join(self.dir, "server.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, cwd=self.dir, env=clean_env(env), stdout=self.log,
                                     stderr=subprocess.STDOUT)
        self._wait_ready()

    def _wait_ready(self, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"echobot exited with {self.proc.returncode}:\n{self.output()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("echobot did not start listening:\n" + self.output())

    def output(self):
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=20):
        return self.proc.wait(timeout=timeout)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return self.proc.returncode


def raw_request(port, data, timeout=10, read_all=True):
    """Sends raw bytes and returns everything the server answers until it
    closes or stops sending (for requests that `requests` would rewrite)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while True:
            try:
                b = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if not b:
                break
            chunks.append(b)
            if not read_all and b"\r\n\r\n" in b"".join(chunks):
                break
        return b"".join(chunks)


def parse_response(raw):
    """(status, headers dict with lower-case names, body bytes) of the first
    response in raw."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers.setdefault(k.strip().lower(), v.strip())
    if "content-length" in headers:
        body = body[: int(headers["content-length"])]
    return status, headers, body


# ---- helpers shared by the page tests (accounts, profile, admin, oauth, chat) ----

def db_path(server):
    """The SQLite file of a running Server."""
    return os.path.join(server.dir, "instance", "echo.db")


def sql(server, query, args=()):
    """Runs one statement on a Server's database (committed) and returns its rows."""
    con = sqlite3.connect(db_path(server), timeout=10)
    try:
        rows = con.execute(query, args).fetchall()
        con.commit()
        return rows
    finally:
        con.close()


def field(page, name):
    """The value attribute of the <input name=...> of a page (unescaped)."""
    for tag in re.findall(r"<input\b[^>]*>", page, re.S):
        if re.search(r'\bname="%s"' % re.escape(name), tag):
            m = re.search(r'\bvalue="([^"]*)"', tag)
            return html.unescape(m.group(1)) if m else None
    return None


def flashes(page):
    """The texts of a page's flash messages (unescaped)."""
    return [html.unescape(t) for t in re.findall(r'<p class="flash-text">([^<]*)</p>', page)]
