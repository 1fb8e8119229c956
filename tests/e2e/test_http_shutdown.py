"""End-to-end tests of `echobot serve` as a process: --help and bad flags, a
port already taken, a template syntax error at start-up, and the graceful
stop on SIGTERM and SIGINT with requests in flight (they finish, new
connections are refused, the exit status is 0)."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import requests

from http_server import ECHOBOT, SOURCE, Server, clean_env


def run(args, cwd=None, timeout=30):
    return subprocess.run([os.path.abspath(ECHOBOT)] + args, cwd=cwd, env=clean_env(),
                          capture_output=True, text=True, timeout=timeout)


def test_help_and_bad_flags():
    r = run(["serve", "--help"])
    assert r.returncode == 0
    assert "--host" in r.stdout and "--port" in r.stdout and "--instance" in r.stdout
    r = run(["serve", "--bogus"])
    assert r.returncode == 2 and "unknown option" in r.stderr
    r = run(["serve", "--port"])
    assert r.returncode == 2 and "needs a value" in r.stderr
    r = run(["serve", "--port", "99999"])
    assert r.returncode == 1 and "ECHO_PORT" in r.stderr
    r = run(["--help"])
    assert "serve" in r.stdout


def test_port_in_use():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        tmp = tempfile.mkdtemp()
        try:
            os.symlink(os.path.join(SOURCE, "templates"), os.path.join(tmp, "templates"))
            os.makedirs(os.path.join(tmp, "static"))
            r = run(["serve", "--port", str(port), "--instance", os.path.join(tmp, "i")], cwd=tmp)
        finally:
            shutil.rmtree(tmp)
        assert r.returncode == 1
        assert "already in use" in r.stderr


def test_template_error_stops_startup():
    tmp = tempfile.mkdtemp()
    try:
        shutil.copytree(os.path.join(SOURCE, "templates"), os.path.join(tmp, "templates"))
        with open(os.path.join(tmp, "templates", "broken.html"), "w") as f:
            f.write("line one\n{% if x %}\nunclosed\n")
        os.makedirs(os.path.join(tmp, "static"))
        r = run(["serve", "--port", "1", "--instance", os.path.join(tmp, "i")], cwd=tmp)
        assert r.returncode == 1
        assert "broken.html" in r.stderr, r.stderr
    finally:
        shutil.rmtree(tmp)


def test_missing_static_folder_is_an_error():
    tmp = tempfile.mkdtemp()
    try:
        os.symlink(os.path.join(SOURCE, "templates"), os.path.join(tmp, "templates"))
        r = run(["serve", "--port", "1", "--instance", os.path.join(tmp, "i")], cwd=tmp)
        assert r.returncode == 1 and "static" in r.stderr
    finally:
        shutil.rmtree(tmp)


def graceful(sig):
    srv = Server()
    try:
        results = {}

        def slow():
            try:
                r = requests.get(srv.base + "/_test/slow?ms=1500", timeout=20)
                results["status"] = r.status_code
                results["text"] = r.text
                results["connection"] = r.headers.get("connection")
            except Exception as e:  # reported below
                results["error"] = repr(e)

        t = threading.Thread(target=slow)
        t.start()
        time.sleep(0.4)
        t0 = time.time()
        srv.signal(sig)
        time.sleep(0.3)
        # Stopped accepting: a new connection is refused while the slow
        # request is still being answered.
        refused = False
        try:
            socket.create_connection(("127.0.0.1", srv.port), timeout=1).close()
        except OSError:
            refused = True
        assert srv.proc.poll() is None, "exited before the request in flight finished"
        t.join(timeout=20)
        code = srv.wait(timeout=20)
        assert results.get("status") == 200, results
        assert results["text"] == "slept 1500 ms\n"
        assert results["connection"] == "close"
        assert refused
        assert code == 0, srv.output()
        assert time.time() - t0 < 15
        out = srv.output()
        assert "finishing requests in flight" in out and "stopped" in out
    finally:
        srv.stop()


def test_graceful_sigterm():
    graceful(signal.SIGTERM)


def test_graceful_sigint():
    graceful(signal.SIGINT)


def test_stop_with_waiting_long_poll():
    """A deferred request still waiting at shutdown is closed, not waited for."""
    srv = Server()
    try:
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.sendall(b"GET /_test/defer?ms=60000 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.3)
        t0 = time.time()
        srv.signal(signal.SIGTERM)
        assert srv.wait(timeout=20) == 0, srv.output()
        assert time.time() - t0 < 5
        s.settimeout(5)
        try:
            assert s.recv(100) == b""  # closed without an answer
        except ConnectionResetError:
            pass
        s.close()
    finally:
        srv.stop()
