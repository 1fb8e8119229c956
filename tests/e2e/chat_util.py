"""chat_util.py - what the chat's end-to-end tests share (issue 6): a tiny
model, a real `echobot serve` run from the repository root with it, signing
up through the real form, and a python-socketio client that records the
chat events.

The server runs with ECHO_ANTIBOT_MIN_MS=0 (forms may be sent at once) and
its own instance folder; stop() sends SIGTERM and returns the exit status,
which is not 0 when LeakSanitizer found a leak (the test binary is the ASan
build), so every test module asserts it.
"""
import html
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import requests
import socketio

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from http_server import field  # noqa: E402,F401  (used here and by the chat tests)

SOURCE = os.environ.get("ECHO_SOURCE_DIR",
                        os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..")))
ECHOBOT = os.environ.get("ECHOBOT", os.path.join(SOURCE, "build", "test", "src", "app", "echobot"))
TOOL = os.path.join(SOURCE, "tools", "make_test_model.py")

# Generous: the ASan build on a loaded 2-core machine.
TIMEOUT = 60


def make_model(out_dir, context=4096):
    """A tiny random-weight Qwen2 model (gibberish answers; the real Qwen2
    vocabulary when ../shared has it, so answers are multi-byte UTF-8).
    A context of 4096 (ECHO_CONTEXT's default cap) leaves room for an
    8000-character message. Returns its path."""
    path = os.path.join(str(out_dir), "tiny-q8_0.gguf")
    subprocess.run(["/usr/bin/python3", TOOL, "--size", "tiny", "--type", "q8_0",
                    "--context", str(context), "gguf", path],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECHO_") and k != "SECRET_KEY"}
    env.update({"ECHO_ENV": "development", "ECHO_LOG_LEVEL": "info", "ECHO_ACCESS_LOG": "0",
                "ECHO_ANTIBOT_MIN_MS": "0", "ECHO_MODEL_THREADS": "1",
                "ECHO_RATELIMIT_ENABLED": "0"})
    env.update(extra)
    return env


class ChatServer:
    """One `echobot serve` in the repository root (templates/ and static/ are
    read from there) with a fresh instance folder."""

    def __init__(self, model, max_tokens=64, env=None):
        self.dir = tempfile.mkdtemp(prefix="echo-chat-e2e-")
        self.instance = os.path.join(self.dir, "instance")
        self.port = free_port()
        self.base = "http://127.0.0.1:%d" % self.port
        extra = {"ECHO_MODEL": model, "ECHO_MAX_TOKENS": str(max_tokens)}
        extra.update(env or {})
        self.log_path = os.path.join(self.dir, "server.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [os.path.abspath(ECHOBOT), "serve", "--host", "127.0.0.1", "--port", str(self.port),
             "--instance", self.instance],
            cwd=SOURCE, env=clean_env(extra), stdout=self.log, stderr=subprocess.STDOUT)
        self.returncode = None
        deadline = time.time() + TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("echobot exited with %s:\n%s"
                                   % (self.proc.returncode, self.output()))
            try:
                if requests.get(self.base + "/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.time() > deadline:
                self.proc.kill()
                raise RuntimeError("echobot did not become healthy:\n" + self.output())
            time.sleep(0.1)

    def output(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def healthy(self):
        return (self.proc.poll() is None
                and requests.get(self.base + "/healthz", timeout=10).status_code == 200)

    def stop(self):
        """SIGTERM, then the exit status (0 unless something, e.g. a leak,
        went wrong). The instance folder stays for db()."""
        if self.returncode is None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=TIMEOUT)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.returncode = self.proc.returncode
            self.log.close()
        return self.returncode

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def db(self, query, args=()):
        con = sqlite3.connect(os.path.join(self.instance, "echo.db"), timeout=10)
        try:
            return con.execute(query, args).fetchall()
        finally:
            con.close()



def unique(prefix="chat"):
    return prefix + uuid.uuid4().hex[:10]


def signup(server, name=None):
    """A new account through the real signup form; returns the logged-in
    requests.Session (its echo_session cookie authenticates Socket.IO)."""
    name = name or unique()
    s = requests.Session()
    page = s.get(server.base + "/signup", timeout=TIMEOUT).text
    data = {"csrf_token": field(page, "csrf_token"), "form_ts": field(page, "form_ts"),
            "website": "", "username": name, "email": name + "@example.com",
            "password": "password123", "confirm_password": "password123"}
    r = s.post(server.base + "/signup", data=data, allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 303, r.text
    assert s.cookies.get("echo_session")
    s.username = name
    return s


def chat_page(server, session):
    r = session.get(server.base + "/", timeout=TIMEOUT)
    assert r.status_code == 200
    return r.text


def page_messages(page):
    """The discussion as the server renders it: [(role, id, content)]."""
    out = []
    for m in re.finditer(r'<li class="msg msg-(user|assistant)" data-id="(\d+)">(.*?)</li>',
                         page, re.S):
        c = re.search(r'<div class="msg-content[^"]*"[^>]*>(.*?)</div>', m.group(3), re.S)
        out.append((m.group(1), int(m.group(2)), html.unescape(c.group(1))))
    return out


def clear_discussion(server, session):
    token = field(chat_page(server, session), "csrf_token")
    r = session.post(server.base + "/clear_discussion", data={"csrf_token": token},
                     allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 303 and r.headers["Location"] == "/", r.text
    return r


def connect_errors(server, cookie=None, transports=("polling", "websocket")):
    """Connects with a cookie that must be refused; returns the
    connect_error payloads. (python-socketio's connect(wait=True) would sit
    out its whole wait_timeout after a refusal.)"""
    c = socketio.Client(reconnection=False)
    cond = threading.Condition()
    errors = []

    def on_error(data=None):
        with cond:
            errors.append(data)
            cond.notify_all()
    c.on("connect_error", on_error)
    c.on("connect", lambda: on_error("connected"))
    try:
        c.connect(server.base, headers={"Cookie": cookie} if cookie else {},
                  transports=list(transports), wait=False)
        with cond:
            cond.wait_for(lambda: errors, timeout=TIMEOUT)
    except socketio.exceptions.ConnectionError as e:
        errors.append(("ConnectionError", str(e)))
    finally:
        c.disconnect()
    return errors


class ChatClient:
    """A python-socketio client logged in with a session's cookie, recording
    response_chunk / response_end / user_message in arrival order."""

    def __init__(self, server, session=None, transports=("polling", "websocket"),
                 cookie=None):
        self.events = []  # (name, data)
        # Where each answer's events start: ids of messages are reused after
        # a discussion is cleared (see the report), so an answer's events are
        # looked for after its own send.
        self.since = {}
        self.cond = threading.Condition()
        self.errors = []
        self.sio = socketio.Client(reconnection=False)
        for name in ("response_chunk", "response_end", "user_message"):
            self.sio.on(name, self._recorder(name))
        self.sio.on("connect_error", self._on_connect_error)
        self.sio.on("disconnect", self._recorder("disconnect"))
        if cookie is None and session is not None:
            cookie = "echo_session=" + session.cookies.get("echo_session")
        headers = {"Cookie": cookie} if cookie else {}
        self.sio.connect(server.base, headers=headers, transports=list(transports),
                         wait_timeout=TIMEOUT)

    def _recorder(self, name):
        def record(data=None):
            with self.cond:
                self.events.append((name, data))
                self.cond.notify_all()
        return record

    def _on_connect_error(self, data):
        self.errors.append(data)

    def transport(self):
        return self.sio.transport()

    def send(self, message, timeout=TIMEOUT):
        """send_message with an ack; returns the ack."""
        start = len(self.events)
        ack = self.sio.call("send_message", message if not isinstance(message, str)
                            else {"message": message}, timeout=timeout)
        if isinstance(ack, dict) and ack.get("ok"):
            self.since[ack["id"]] = start
        return ack

    def emit_send(self, message, acks):
        """send_message without waiting: the ack is appended to acks."""
        start = len(self.events)

        def on_ack(res):
            with self.cond:
                if isinstance(res, dict) and res.get("ok"):
                    self.since[res["id"]] = start
                acks.append(res)
                self.cond.notify_all()
        self.sio.emit("send_message", {"message": message}, callback=on_ack)

    def stop(self, timeout=TIMEOUT):
        return self.sio.call("stop_generation", timeout=timeout)

    def wait_for(self, pred, timeout=TIMEOUT):
        """Waits until pred(events) is true; returns its value."""
        end = time.time() + timeout
        with self.cond:
            while True:
                v = pred(self.events)
                if v:
                    return v
                left = end - time.time()
                if left <= 0:
                    raise AssertionError("timed out; events so far: %r" % (self.events[-20:],))
                self.cond.wait(left)

    def wait_end(self, answer_id, timeout=TIMEOUT):
        """Waits for response_end of answer_id; returns (text, end)."""
        def done(ev):
            for name, d in ev[self.since.get(answer_id, 0):]:
                if name == "response_end" and d["id"] == answer_id:
                    return d
            return None
        end = self.wait_for(done, timeout)
        return self.text_of(answer_id), end

    def answer_events(self, answer_id):
        """The response_chunk/response_end events of the answer to answer_id."""
        with self.cond:
            return [(n, d) for n, d in self.events[self.since.get(answer_id, 0):]
                    if n.startswith("response_") and d["id"] == answer_id]

    def chunks_of(self, answer_id):
        return [d["text"] for n, d in self.answer_events(answer_id) if n == "response_chunk"]

    def text_of(self, answer_id):
        return "".join(self.chunks_of(answer_id))

    def named(self, name):
        with self.cond:
            return [d for n, d in self.events if n == name]

    def disconnect(self):
        self.sio.disconnect()
