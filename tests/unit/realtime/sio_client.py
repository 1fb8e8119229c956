"""A real Socket.IO client (Debian's python3-socketio) against the server that
tests/unit/realtime/test_sio_http.c runs in-process, with the test-only
events on. Usage: sio_client.py PORT MODE; prints OK and exits 0 on success.

Modes:
  polling    polling handshake, then the upgrade to WebSocket; echo with ack
  websocket  WebSocket only; echo with ack and the "echo" event
  pollonly   polling only (no upgrade); several round trips
  refused    no session cookie: the CONNECT must be refused
  two_tabs   two clients of the same user both get echo_user
"""
import sys
import threading
import time

import socketio

PORT = int(sys.argv[1])
MODE = sys.argv[2]
URL = "http://127.0.0.1:%d" % PORT


def client(transports, cookie="uid=7", errors=None):
    c = socketio.Client(reconnection=False)
    got = []
    event = threading.Event()

    @c.on("echo")
    def on_echo(data):
        got.append(data)
        event.set()

    @c.on("connect_error")
    def on_connect_error(data):
        if errors is not None:
            errors.append(data)

    headers = {"Cookie": cookie} if cookie else {}
    c.connect(URL, headers=headers, transports=transports, wait_timeout=5)
    return c, got, event


def check_echo(c, got, event, payload):
    event.clear()
    answer = c.call("echo", payload, timeout=5)
    assert answer == payload, (answer, payload)
    assert event.wait(5), "no echo event"
    assert got[-1] == payload, (got[-1], payload)


def main():
    payload = {"text": "h\u00e9llo \u20ac \U0001F600", "n": [1, 2.5, None, True]}
    if MODE == "polling":
        c, got, ev = client(["polling", "websocket"])
        assert c.transport() == "websocket", c.transport()
        check_echo(c, got, ev, payload)
        c.disconnect()
    elif MODE == "websocket":
        c, got, ev = client(["websocket"])
        assert c.transport() == "websocket", c.transport()
        for i in range(20):
            check_echo(c, got, ev, {"i": i, "s": "x" * (i * 100)})
        c.disconnect()
    elif MODE == "pollonly":
        c, got, ev = client(["polling"])
        assert c.transport() == "polling", c.transport()
        for i in range(5):
            check_echo(c, got, ev, {"i": i})
        c.disconnect()
    elif MODE == "refused":
        for transports in (["polling", "websocket"], ["websocket"]):
            errors = []
            try:
                c, _, _ = client(transports, cookie=None, errors=errors)
            except socketio.exceptions.ConnectionError:
                assert errors == [{"message": "unauthorized"}], errors
            else:
                c.disconnect()
                raise AssertionError("connected without a session")
    elif MODE == "two_tabs":
        a, got_a, ev_a = client(["websocket"])
        b, got_b, ev_b = client(["polling", "websocket"])
        a.emit("echo_user", {"to": "both"})
        assert ev_a.wait(5) and ev_b.wait(5), "not both tabs"
        assert got_a[-1] == got_b[-1] == {"to": "both"}
        a.disconnect()
        b.disconnect()
    else:
        raise SystemExit("unknown mode " + MODE)
    print("OK")


if __name__ == "__main__":
    t0 = time.time()
    main()
