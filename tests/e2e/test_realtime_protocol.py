"""test_realtime_protocol.py - /socket.io/ of the real `echobot serve`, with
Debian's python3-socketio client and raw HTTP / WebSocket requests.

The server runs with ECHO_TEST_EVENTS=1, which adds test-only events (echo,
echo_user, disconnect_me) and accepts a CONNECT whose auth is
{"test_user": N} when there is no logged-in session, so the protocol is tested
without the chat layer or a model. The chat events themselves are tested by
the chat layer's end-to-end tests.

Covered: refusal without a session (both transports), polling then upgrade,
WebSocket only, two tabs of one user, the Engine.IO error answers (unknown
sid, transport, version, foreign Origin), malformed and oversize payloads
closing only their own client, 200 concurrent idle connections, and a client
vanishing mid-conversation.
"""
import json
import os
import signal
import socket
import subprocess
import tempfile
import time

import pytest
import requests
import socketio
import websocket

ECHOBOT = os.environ.get("ECHOBOT", "build/test/echobot")
SOURCE = os.environ.get("ECHO_SOURCE_DIR", os.getcwd())


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = free_port()
    instance = tempfile.mkdtemp(prefix="echo-rt-")
    env = dict(os.environ)
    env.update({
        "ECHO_HOST": "127.0.0.1",
        "ECHO_PORT": str(port),
        "ECHO_INSTANCE_DIR": instance,
        "ECHO_ENV": "development",
        "ECHO_TEST_EVENTS": "1",
        "ECHO_RATELIMIT_ENABLED": "0",
        "ECHO_ACCESS_LOG": "0",
        "ECHO_LOG_LEVEL": "warn",
    })
    proc = subprocess.Popen([ECHOBOT, "serve"], cwd=SOURCE, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = "http://127.0.0.1:%d" % port
    deadline = time.time() + 30
    while True:
        if proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace")
            pytest.fail("echobot serve exited with %s:\n%s" % (proc.returncode, out))
        try:
            requests.get(base + "/", timeout=1)
            break
        except requests.RequestException:
            if time.time() > deadline:
                proc.kill()
                pytest.fail("echobot serve did not start listening")
            time.sleep(0.1)
    r = requests.get(base + "/socket.io/?EIO=4&transport=polling", timeout=5)
    if r.status_code == 404:
        proc.kill()
        pytest.fail("/socket.io/ is not mounted: the web layer must create the sio_server and "
                    "call sio_mount (see src/realtime/realtime.h)")
    yield {"base": base, "port": port, "proc": proc}
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("echobot serve did not stop on SIGTERM")
    assert rc == 0, proc.stdout.read().decode(errors="replace")


def alive(server):
    """The server still serves HTTP and new Socket.IO clients."""
    assert server["proc"].poll() is None
    c = sio_client(server, ["websocket"], user=99)
    assert c.call("echo", "ping", timeout=5) == "ping"
    c.disconnect()


def sio_client(server, transports, user=None, errors=None, events=None):
    c = socketio.Client(reconnection=False)

    @c.on("connect_error")
    def on_connect_error(data):
        if errors is not None:
            errors.append(data)

    @c.on("echo")
    def on_echo(data):
        if events is not None:
            events.append(data)

    auth = {"test_user": user} if user else None
    c.connect(server["base"], transports=transports, auth=auth, wait_timeout=5)
    return c


def wait_for(pred, timeout=5):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.02)
    return False


# ---- Socket.IO with a real client ----

@pytest.mark.parametrize("transports", [["polling", "websocket"], ["websocket"]])
def test_refused_without_session(server, transports):
    errors = []
    with pytest.raises(socketio.exceptions.ConnectionError):
        sio_client(server, transports, errors=errors)
    assert errors == [{"message": "unauthorized"}]


@pytest.mark.parametrize("transports,final", [
    (["polling", "websocket"], "websocket"),
    (["websocket"], "websocket"),
    (["polling"], "polling"),
])
def test_echo(server, transports, final):
    events = []
    c = sio_client(server, transports, user=5, events=events)
    assert c.transport() == final
    payload = {"text": "h\u00e9llo \u20ac \U0001F600", "list": [1, 2.5, None, True]}
    for i in range(5):
        value = dict(payload, i=i)
        assert c.call("echo", value, timeout=5) == value
    assert wait_for(lambda: len(events) == 5)
    assert events[-1]["i"] == 4
    c.disconnect()


def test_two_tabs(server):
    ea, eb = [], []
    a = sio_client(server, ["websocket"], user=6, events=ea)
    b = sio_client(server, ["polling", "websocket"], user=6, events=eb)
    other_events = []
    other = sio_client(server, ["websocket"], user=7, events=other_events)
    a.emit("echo_user", {"to": "both"})
    assert wait_for(lambda: ea and eb)
    assert ea == eb == [{"to": "both"}]
    time.sleep(0.2)
    assert other_events == []
    for c in (a, b, other):
        c.disconnect()


def test_server_disconnect(server):
    c = sio_client(server, ["websocket"], user=8)
    c.emit("disconnect_me")
    assert wait_for(lambda: not c.connected)
    alive(server)


# ---- raw Engine.IO ----

def handshake(server, headers=None):
    r = requests.get(server["base"] + "/socket.io/?EIO=4&transport=polling",
                     headers=headers or {}, timeout=5)
    assert r.status_code == 200, r.text
    assert r.text[0] == "0"
    info = json.loads(r.text[1:])
    assert info["upgrades"] == ["websocket"]
    assert info["pingInterval"] == 25000 and info["pingTimeout"] == 20000
    assert info["maxPayload"] == 1000000
    assert len(info["sid"]) == 20
    return info["sid"]


def url(server, sid=None, transport="polling"):
    u = server["base"] + "/socket.io/?EIO=4&transport=" + transport
    return u + ("&sid=" + sid if sid else "")


def test_error_answers(server):
    r = requests.get(url(server, "AAAAAAAAAAAAAAAAAAAA"), timeout=5)
    assert r.status_code == 400
    assert r.json() == {"code": 1, "message": "Session ID unknown"}
    r = requests.get(server["base"] + "/socket.io/?EIO=4&transport=smoke", timeout=5)
    assert r.status_code == 400
    assert r.json() == {"code": 0, "message": "Transport unknown"}
    r = requests.get(server["base"] + "/socket.io/?EIO=3&transport=polling", timeout=5)
    assert r.status_code == 400
    assert r.json()["code"] == 5
    r = requests.get(url(server), headers={"Origin": "http://evil.example"}, timeout=5)
    assert r.status_code == 403
    assert "Access-Control-Allow-Origin" not in r.headers
    # The page's own origin is fine.
    handshake(server, {"Origin": server["base"]})
    # Cross-site WebSocket hijacking is refused before the upgrade.
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        websocket.create_connection(url(server, transport="websocket").replace("http", "ws"),
                                    origin="http://evil.example", timeout=5)
    assert e.value.status_code == 403


def test_polling_by_hand(server):
    sid = handshake(server)
    r = requests.post(url(server, sid), data=b'40{"test_user":3}', timeout=5)
    assert r.text == "ok"
    r = requests.get(url(server, sid), timeout=5)
    assert r.text.startswith('40{"sid":')
    r = requests.post(url(server, sid), data='421["echo","a"]\x1e422["echo","b"]'.encode(),
                      timeout=5)
    assert r.text == "ok"
    r = requests.get(url(server, sid), timeout=5)
    assert r.text.split("\x1e") == ['431["a"]', '42["echo","a"]', '432["b"]', '42["echo","b"]']
    requests.post(url(server, sid), data=b"1", timeout=5)
    assert requests.get(url(server, sid), timeout=5).status_code == 400


@pytest.mark.parametrize("body,status", [
    (b"9garbage", 400),                 # unknown Engine.IO packet type
    (b"4\xff\xfe", 400),                 # invalid UTF-8
    (b"", 400),                          # empty payload
    (b'42["echo"', 200),                 # malformed Socket.IO JSON
    (b'42["connect"]', 200),             # reserved event name
    (b'451-["x",{"_placeholder":true,"num":0}]', 200),  # binary Socket.IO
])
def test_malformed_closes_only_that_client(server, body, status):
    events = []
    bystander = sio_client(server, ["polling", "websocket"], user=10, events=events)
    sid = handshake(server)
    requests.post(url(server, sid), data=b'40{"test_user":11}', timeout=5)
    requests.get(url(server, sid), timeout=5)
    r = requests.post(url(server, sid), data=body, timeout=5)
    assert r.status_code == status
    r = requests.get(url(server, sid), timeout=5)
    assert r.status_code == 400 or r.text.endswith("1")
    assert requests.get(url(server, sid), timeout=5).status_code == 400
    assert bystander.call("echo", "still here", timeout=5) == "still here"
    bystander.disconnect()
    alive(server)


def test_oversize_payloads(server):
    sid = handshake(server)
    r = requests.post(url(server, sid), data=b"4" + b"a" * 1000000, timeout=10)
    assert r.status_code == 413
    assert requests.get(url(server, sid), timeout=5).status_code == 400
    # Over WebSocket: close 1009.
    ws = websocket.create_connection(url(server, transport="websocket").replace("http", "ws"),
                                     timeout=5)
    assert ws.recv().startswith("0{")
    ws.send("4" + "a" * 1000001)
    frame = ws.recv_frame()
    while frame.opcode != websocket.ABNF.OPCODE_CLOSE:
        frame = ws.recv_frame()
    assert int.from_bytes(frame.data[:2], "big") == 1009
    ws.close()
    alive(server)


def test_malformed_websocket_frames(server):
    ws_url = url(server, transport="websocket").replace("http", "ws")
    # Invalid UTF-8 in a text frame.
    ws = websocket.create_connection(ws_url, timeout=5)
    assert ws.recv().startswith("0{")
    ws.send(b"4\xff", opcode=websocket.ABNF.OPCODE_TEXT)
    frame = ws.recv_frame()
    assert frame.opcode == websocket.ABNF.OPCODE_CLOSE
    assert int.from_bytes(frame.data[:2], "big") == 1007
    ws.close()
    # A malformed Socket.IO packet.
    ws = websocket.create_connection(ws_url, timeout=5)
    ws.recv()
    ws.send('40{"test_user":12}')
    assert ws.recv().startswith('40{"sid"')
    ws.send("42[oops")
    with pytest.raises(websocket.WebSocketConnectionClosedException):
        while True:
            ws.recv()
    alive(server)


def test_vanishing_client(server):
    """A client that drops its TCP connection mid-conversation (no close
    frame, no DISCONNECT), on each transport."""
    ws = websocket.create_connection(url(server, transport="websocket").replace("http", "ws"),
                                     timeout=5)
    ws.recv()
    ws.send('40{"test_user":13}')
    ws.recv()
    ws.send('42["echo","bye"]')
    ws.sock.shutdown(socket.SHUT_RDWR)
    ws.sock.close()
    # A long-poll GET whose client goes away while it is held.
    sid = handshake(server)
    requests.post(url(server, sid), data=b'40{"test_user":14}', timeout=5)
    requests.get(url(server, sid), timeout=5)
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(url(server, sid), timeout=0.3)
    time.sleep(0.3)  # the server notices the hang-up (it watches held sockets)
    # The session's poll slot is free again: a new GET is held, not refused.
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(url(server, sid), timeout=0.5)
    time.sleep(0.2)
    alive(server)


def test_200_idle_connections(server):
    ws_url = url(server, transport="websocket").replace("http", "ws")
    conns = []
    try:
        for i in range(200):
            ws = websocket.create_connection(ws_url, timeout=10)
            assert ws.recv().startswith("0{")
            ws.send('40{"test_user":%d}' % (1000 + i))
            conns.append(ws)
        for ws in conns:
            assert ws.recv().startswith('40{"sid"')
        time.sleep(2)  # idle
        for i, ws in enumerate(conns):
            ws.send('4210["echo",%d]' % i)
        for i, ws in enumerate(conns):
            assert ws.recv() == "4310[%d]" % i
            assert ws.recv() == '42["echo",%d]' % i
    finally:
        for ws in conns:
            ws.close()
    alive(server)
