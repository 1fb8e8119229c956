"""test_chat.py - the realtime chat (issue 6) end to end: the real
`echobot serve` (ASan build) with a tiny random-weight model, Debian's
python3-socketio as the client on both transports (polling then upgrade,
and WebSocket only), accounts made through the real signup form.

Servers: `srv` answers at most 12 tokens (quick turns); `slow` answers up
to 400 tokens (tens of seconds in the ASan build), so that Stop, a dropped
tab, an overlapping message or a cleared discussion surely land mid-answer;
`tiny` answers 1 token for back-to-back turns. Each is stopped with SIGTERM
and must exit 0 (LeakSanitizer turns a leak into a failure).

No timing is asserted: waits are generous and only bound a hang.

Two regression tests guard behaviour outside the chat module: message ids
are never reused after a clear (migration 002), and a \u0000 in Socket.IO
JSON closes only that client (the packet decoder refuses NUL).
"""
import os
import re
import signal
import socket
import sys
import time

import pytest
import websocket

sys.path.insert(0, os.path.dirname(__file__))
import chat_util as cu  # noqa: E402
from chat_util import TIMEOUT, ChatClient, ChatServer  # noqa: E402

BOTH = [("polling", "websocket"), ("websocket",)]
BOTH_IDS = ["polling+upgrade", "websocket"]
# Long-polling only, too: several packets per poll answer.
ALL = BOTH + [("polling",)]
ALL_IDS = BOTH_IDS + ["polling-only"]
FINISH = {"stop", "length", "cancelled", "error"}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return cu.make_model(tmp_path_factory.mktemp("chat-model"))


def _server(model, **kw):
    s = ChatServer(model, **kw)
    yield s
    rc = s.stop()
    out = s.output()
    s.cleanup()
    assert rc == 0, "echobot exited with %s:\n%s" % (rc, out[-6000:])


@pytest.fixture(scope="module")
def srv(model):
    yield from _server(model, max_tokens=12)


@pytest.fixture(scope="module")
def slow(model):
    yield from _server(model, max_tokens=400)


@pytest.fixture(scope="module")
def tiny(model):
    yield from _server(model, max_tokens=1)


@pytest.fixture
def servers():
    """Makes servers of a test's own; their folders go at teardown (after
    the test has read their database)."""
    made = []

    def make(*args, **kw):
        made.append(ChatServer(*args, **kw))
        return made[-1]
    yield make
    for s in made:
        s.cleanup()


def assert_end(end, answer_id):
    assert set(end) >= {"id", "finish_reason", "prompt_tokens", "completion_tokens",
                        "tokens_per_second"}, end
    assert end["id"] == answer_id
    assert end["finish_reason"] in FINISH
    assert isinstance(end["prompt_tokens"], int) and end["prompt_tokens"] > 0
    assert isinstance(end["completion_tokens"], int) and end["completion_tokens"] >= 0
    assert isinstance(end["tokens_per_second"], (int, float)) and end["tokens_per_second"] >= 0
    assert round(end["tokens_per_second"], 1) == end["tokens_per_second"]


def stored(server, session):
    """The discussion as the chat page shows it."""
    return cu.page_messages(cu.chat_page(server, session))


def first_chunk(client, answer_id):
    client.wait_for(lambda ev: client.chunks_of(answer_id))


def accepted(client, message, timeout=TIMEOUT):
    """Sends until accepted: right after a cancel, the previous answer may
    still be ending (the ack then says so)."""
    end = time.time() + timeout
    while True:
        ack = client.send(message)
        if ack.get("ok"):
            return ack
        assert "previous message" in ack["error"], ack
        assert time.time() < end, ack
        time.sleep(0.1)


# ---- connecting ----

@pytest.mark.parametrize("transports", BOTH, ids=BOTH_IDS)
@pytest.mark.parametrize("cookie", [None, "echo_session=" + "A" * 43, "echo_session=garbage",
                                    "echo_csrf=" + "A" * 43],
                         ids=["no-cookie", "unknown-session", "garbage", "csrf-cookie-only"])
def test_connect_refused_without_login(srv, transports, cookie):
    assert cu.connect_errors(srv, cookie, transports) == [{"message": "unauthorized"}]
    assert srv.healthy()


@pytest.mark.parametrize("transports", BOTH, ids=BOTH_IDS)
def test_connect_with_session(srv, transports):
    u = cu.signup(srv)
    c = ChatClient(srv, u, transports=transports)
    assert c.sio.connected and c.transport() == "websocket"
    c.disconnect()


def test_connect_refused_after_logout(srv):
    u = cu.signup(srv)
    cookie = "echo_session=" + u.cookies.get("echo_session")
    ChatClient(srv, cookie=cookie, transports=["websocket"]).disconnect()
    token = cu.field(cu.chat_page(srv, u), "csrf_token")
    assert u.post(srv.base + "/logout", data={"csrf_token": token},
                  allow_redirects=False).status_code == 303
    assert cu.connect_errors(srv, cookie, ["websocket"]) == [{"message": "unauthorized"}]


# ---- one answer ----

@pytest.mark.parametrize("transports", ALL, ids=ALL_IDS)
def test_answer_streams_and_is_stored(srv, transports):
    u = cu.signup(srv)
    c = ChatClient(srv, u, transports=transports)
    assert c.transport() == transports[-1]
    text = "Hello <b>Echo</b> & \"friends\"!\nCaf\u00e9, \u20ac and \U0001F600: what is 2 + 2?"
    ack = c.send(text)
    assert set(ack) == {"ok", "id"} and ack["ok"] is True, ack
    assert isinstance(ack["id"], int) and ack["id"] > 0
    n = ack["id"]
    answer, end = c.wait_end(n)
    assert_end(end, n)
    assert end["finish_reason"] in ("stop", "length")
    assert 0 < end["completion_tokens"] <= 12
    if end["finish_reason"] == "length":
        assert end["completion_tokens"] == 12
    time.sleep(0.3)  # a duplicate end would arrive by now
    # Every chunk of the answer precedes its one end, none is empty, and
    # they are whole characters (each one is a valid JSON string).
    names = [name for name, _ in c.answer_events(n)]
    assert names[-1] == "response_end" and names.count("response_end") == 1
    chunks = c.chunks_of(n)
    assert chunks and all(isinstance(x, str) and x for x in chunks)
    assert answer  # random weights may answer only blanks
    # The page renders what was streamed, exactly.
    page = cu.chat_page(srv, u)
    assert "<b>Echo</b>" not in page and "&lt;b&gt;Echo&lt;/b&gt;" in page
    msgs = cu.page_messages(page)
    assert [(r, i) for r, i, _ in msgs][0] == ("user", n)
    assert msgs[0][2] == text
    assert msgs[1][0] == "assistant" and msgs[1][2] == answer
    assert len(msgs) == 2
    if "message_id" in end:
        assert end["message_id"] == msgs[1][1]
    # The database has the counts of the answer.
    rows = srv.db("SELECT role, content, prompt_tokens, completion_tokens, finish_reason,"
                  " tokens_per_second FROM messages WHERE user_id = (SELECT id FROM users"
                  " WHERE username = ?) ORDER BY id", (u.username,))
    assert rows[0][:2] == ("user", text)
    assert rows[1][:5] == ("assistant", answer, end["prompt_tokens"], end["completion_tokens"],
                           end["finish_reason"])
    assert rows[1][5] >= 0
    # The sending tab hears its own message too (the page ignores it).
    assert {"id": n, "content": text} in c.named("user_message")
    c.disconnect()


def test_chunks_concatenate_exactly_over_many_answers(srv):
    """Several answers in a row on one connection: each one's chunks rebuild
    the stored text byte for byte (no lost, doubled or split piece)."""
    u = cu.signup(srv)
    c = ChatClient(srv, u, transports=["websocket"])
    ids = []
    for i in range(3):
        ack = c.send("Tell me a story, part %d." % i)
        assert ack["ok"], ack
        c.wait_end(ack["id"])
        ids.append(ack["id"])
    msgs = stored(srv, u)
    assert [r for r, _, _ in msgs] == ["user", "assistant"] * 3
    for k, n in enumerate(ids):
        assert msgs[2 * k][1] == n
        assert msgs[2 * k + 1][2] == c.text_of(n)
    c.disconnect()


def test_send_without_ack(srv):
    """An emit without an acknowledgement is answered all the same."""
    u = cu.signup(srv)
    c = ChatClient(srv, u, transports=["websocket"])
    c.sio.emit("send_message", {"message": "no ack wanted"})
    msg = c.wait_for(lambda ev: [d for n, d in ev if n == "user_message"])[0]
    assert msg["content"] == "no ack wanted"
    answer, end = c.wait_end(msg["id"])
    assert_end(end, msg["id"])
    assert stored(srv, u)[1][2] == answer
    # Invalid ones without an ack are dropped quietly; the connection stays.
    c.sio.emit("send_message", {"message": ""})
    c.sio.emit("send_message", "just a string")
    c.sio.emit("stop_generation")
    ack = c.send("still here?")
    assert ack["ok"], ack
    c.wait_end(ack["id"])
    c.disconnect()


def test_back_to_back_turns(tiny):
    """The next message sent the moment response_end arrives is accepted:
    the slot is free before the end is announced."""
    u = cu.signup(tiny)
    c = ChatClient(tiny, u, transports=["websocket"])
    turns = 25
    acks = []

    def on_ack(res):
        with c.cond:
            acks.append(res)
            c.cond.notify_all()

    def on_end(data):
        if len(acks) < turns:
            c.sio.emit("send_message", {"message": "again %d" % len(acks)}, callback=on_ack)
    c.sio.on("response_end", on_end)
    c.sio.emit("send_message", {"message": "start"}, callback=on_ack)
    c.wait_for(lambda ev: len(acks) >= turns or any(not a.get("ok") for a in acks),
               timeout=TIMEOUT * 3)
    assert all(a.get("ok") for a in acks), acks
    c.disconnect()


# ---- refused messages ----

REFUSED = [
    ({"message": ""}, "empty"),
    ({"message": "   \n\t \r\n "}, "empty"),
    ({"message": "x" * 8001}, "too long"),
    ({"message": "\u00e9" * 8001}, "too long"),
    ({"message": "\U0001F600" * 8001}, "too long"),
    ({"message": "x" * 100000}, "too long"),
    ("just a string", "Expected"),
    (42, "Expected"),
    ([{"message": "in a list"}], "Expected"),
    ({"message": 5}, "Expected"),
    ({"message": None}, "Expected"),
    ({"message": ["a"]}, "Expected"),
    ({"text": "wrong key"}, "Expected"),
    (None, "Expected"),
]


@pytest.mark.parametrize("transports", BOTH, ids=BOTH_IDS)
def test_ack_errors(srv, transports):
    u = cu.signup(srv)
    c = ChatClient(srv, u, transports=transports)
    for payload, why in REFUSED:
        if payload is None:
            ack = c.sio.call("send_message", timeout=TIMEOUT)
        else:
            ack = c.sio.call("send_message", payload, timeout=TIMEOUT)
        assert isinstance(ack, dict) and set(ack) == {"ok", "error"}, (payload, ack)
        assert ack["ok"] is False and why in ack["error"], (str(payload)[:40], ack)
        assert len(ack["error"]) < 200
    time.sleep(0.2)
    assert c.events == []
    assert stored(srv, u) == []
    # The connection is still fine.
    ack = c.send("a fine message")
    assert ack["ok"], ack
    c.wait_end(ack["id"])
    assert len(stored(srv, u)) == 2
    c.disconnect()


def test_longest_message_accepted(srv):
    """8000 characters (not bytes) is the limit: this one has 8004 bytes."""
    u = cu.signup(srv)
    c = ChatClient(srv, u, transports=["polling", "websocket"])
    text = "\U0001F600" + "-" * 7998 + "\u00e9"
    assert len(text) == 8000 and len(text.encode()) == 8004
    ack = c.send(text)
    assert ack["ok"], ack
    # Without ../shared the test model's vocabulary is bytes: 8004 tokens,
    # cut to fit the context, so the prompt takes minutes on the ASan build.
    answer, end = c.wait_end(ack["id"], timeout=600)
    assert_end(end, ack["id"])
    msgs = stored(srv, u)
    assert msgs[0][2] == text and msgs[1][2] == answer
    c.disconnect()


def test_message_longer_than_the_context(model, servers):
    """Within 8000 characters but more tokens than the context holds (here
    1024): the engine cuts the middle of the message to fit; the message is
    stored whole and answered."""
    s = servers(model, max_tokens=12, env={"ECHO_CONTEXT": "1024"})
    try:
        u = cu.signup(s)
        c = ChatClient(s, u, transports=["websocket"])
        text = ("w\u00f6rd " * 1600)[:8000]
        ack = c.send(text)
        assert ack["ok"], ack
        answer, end = c.wait_end(ack["id"])
        assert_end(end, ack["id"])
        assert 900 < end["prompt_tokens"] <= 1024 - 12
        msgs = stored(s, u)
        assert msgs[0][2] == text and msgs[1][2] == answer
        c.disconnect()
    finally:
        rc = s.stop()
    assert rc == 0, s.output()[-6000:]


def test_overlapping_message_refused(slow):
    u = cu.signup(slow)
    c = ChatClient(slow, u, transports=["websocket"])
    first = c.send("Write a long essay.")
    assert first["ok"], first
    second = c.send("And another one.")
    assert second["ok"] is False and "previous message" in second["error"], second
    # A second tab of the same person is refused as well...
    tab = ChatClient(slow, u, transports=["polling", "websocket"])
    third = tab.send("From the other tab.")
    assert third["ok"] is False, third
    # ...while another person chats at the same time.
    v = cu.signup(slow)
    other = ChatClient(slow, v, transports=["websocket"])
    ok = other.send("Hello from someone else.")
    assert ok["ok"], ok
    first_chunk(other, ok["id"])
    assert other.stop() == {"ok": True}
    other.wait_end(ok["id"])
    assert c.stop() == {"ok": True}
    _, end = c.wait_end(first["id"])
    assert end["finish_reason"] == "cancelled"
    # Only the accepted message was stored; the slot is free again.
    assert [m[2] for m in stored(slow, u) if m[0] == "user"] == ["Write a long essay."]
    again = accepted(c, "Now a short one.")
    c.stop()
    c.wait_end(again["id"])
    for x in (c, tab, other):
        x.disconnect()


# ---- stopping ----

@pytest.mark.parametrize("transports", ALL, ids=ALL_IDS)
def test_stop_generation(slow, transports):
    u = cu.signup(slow)
    c = ChatClient(slow, u, transports=transports)
    assert c.stop() == {"ok": False}  # nothing to stop yet
    ack = c.send("Count to one thousand, slowly.")
    assert ack["ok"], ack
    first_chunk(c, ack["id"])
    assert c.stop() == {"ok": True}
    answer, end = c.wait_end(ack["id"])
    assert_end(end, ack["id"])
    assert end["finish_reason"] == "cancelled"
    assert 0 < end["completion_tokens"] < 400
    time.sleep(0.3)
    assert [nm for nm, _ in c.answer_events(ack["id"])].count("response_end") == 1
    # The partial answer is stored as streamed, marked as stopped.
    msgs = stored(slow, u)
    assert msgs[1][0] == "assistant" and msgs[1][2] == answer
    assert 'class="msg-note">Stopped<' in cu.chat_page(slow, u)
    rows = slow.db("SELECT finish_reason, completion_tokens FROM messages WHERE id = ?",
                   (msgs[1][1],))
    assert rows == [("cancelled", end["completion_tokens"])]
    assert c.stop() == {"ok": False}
    c.disconnect()


def test_stop_right_after_send(slow):
    """Stop pressed before the answer has started (maybe before the message
    reached the engine): the end says cancelled and what is stored matches
    what was streamed (possibly nothing)."""
    u = cu.signup(slow)
    c = ChatClient(slow, u, transports=["websocket"])
    for i in range(3):
        acks = []
        c.emit_send("quick %d" % i, acks)
        c.sio.emit("stop_generation")
        c.wait_for(lambda ev: acks)
        if not acks[0]["ok"]:
            # Stopped before it was stored: refused through the ack, nothing kept.
            assert acks[0]["error"]
            continue
        answer, end = c.wait_end(acks[0]["id"])
        assert end["finish_reason"] == "cancelled"
        msgs = stored(slow, u)
        assert msgs[-1][0] in ("user", "assistant")
        if answer:
            assert msgs[-1][2] == answer and msgs[-2][1] == acks[0]["id"]
        else:
            assert msgs[-1] == ("user", acks[0]["id"], "quick %d" % i)
    c.disconnect()


@pytest.mark.parametrize("transports", ALL, ids=ALL_IDS)
def test_disconnect_mid_answer(slow, transports):
    u = cu.signup(slow)
    c = ChatClient(slow, u, transports=transports)
    ack = c.send("Tell me everything.")
    assert ack["ok"], ack
    first_chunk(c, ack["id"])
    c.disconnect()
    assert slow.healthy()
    # The answer was cancelled and stored as such; a new tab chats again.
    again = ChatClient(slow, u, transports=transports)
    n = accepted(again, "I am back.")["id"]
    first_chunk(again, n)
    assert again.stop() == {"ok": True}
    again.wait_end(n)
    rows = slow.db("SELECT finish_reason FROM messages WHERE role = 'assistant' AND user_id ="
                   " (SELECT id FROM users WHERE username = ?) ORDER BY id", (u.username,))
    assert rows[0] == ("cancelled",)
    again.disconnect()


def test_connection_dropped_mid_answer(slow):
    """The TCP connection vanishes (no close frame, no DISCONNECT) while the
    answer streams: the server notices, cancels, and stays healthy."""
    u = cu.signup(slow)
    cookie = "echo_session=" + u.cookies.get("echo_session")
    ws = websocket.create_connection(
        slow.base.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket",
        cookie=cookie, timeout=TIMEOUT)
    assert ws.recv().startswith("0{")
    ws.send("40")
    assert ws.recv().startswith('40{"sid"')
    ws.send('421["send_message",{"message":"Go on and on."}]')
    got = ""
    while '42["response_chunk"' not in got:
        got = ws.recv()
    ws.sock.shutdown(socket.SHUT_RDWR)
    ws.sock.close()
    assert slow.healthy()
    c = ChatClient(slow, u, transports=["websocket"])
    n = accepted(c, "Anyone there?")["id"]
    c.stop()
    c.wait_end(n)
    c.disconnect()
    assert slow.healthy()


# ---- two tabs ----

def test_two_tabs_get_the_stream(slow):
    u = cu.signup(slow)
    a = ChatClient(slow, u, transports=["websocket"])
    b = ChatClient(slow, u, transports=["polling", "websocket"])
    stranger = ChatClient(slow, cu.signup(slow), transports=["websocket"])
    text = "Both tabs should see this."
    ack = a.send(text)
    assert ack["ok"], ack
    n = ack["id"]
    assert b.wait_for(lambda ev: [d for nm, d in ev if nm == "user_message"]) == \
        [{"id": n, "content": text}]
    first_chunk(b, n)
    # Stop from the other tab stops the answer for both.
    assert b.stop() == {"ok": True}
    text_a, end_a = a.wait_end(n)
    text_b, end_b = b.wait_end(n)
    assert end_a == end_b and end_a["finish_reason"] == "cancelled"
    assert text_a == text_b and text_a == stored(slow, u)[1][2]
    # Closing the tab that did not ask leaves the answer running.
    n2 = accepted(a, "Second question.")["id"]
    first_chunk(b, n2)
    b.disconnect()
    before = len(a.chunks_of(n2))
    a.wait_for(lambda ev: len(a.chunks_of(n2)) > before + 2)
    assert "response_end" not in [nm for nm, _ in a.answer_events(n2)]
    assert a.stop() == {"ok": True}
    a.wait_end(n2)
    assert stranger.events == []
    a.disconnect()
    stranger.disconnect()


# ---- clearing and the second turn ----

def test_second_turn_uses_the_history(srv):
    u = cu.signup(srv)
    c = ChatClient(srv, u, transports=["websocket"])
    a1 = c.send("My name is Ada.")
    _, e1 = c.wait_end(a1["id"])
    a2 = c.send("What is my name?")
    _, e2 = c.wait_end(a2["id"])
    assert e2["prompt_tokens"] > e1["prompt_tokens"] + e1["completion_tokens"] // 2
    assert len(stored(srv, u)) == 4
    c.disconnect()
    # The profile (cached for 30 s) counts the new messages at once.
    page = u.get(srv.base + "/profile").text
    assert re.search(r"<dt>Messages</dt>\s*<dd>4</dd>", page), page


def test_clear_discussion(srv):
    u = cu.signup(srv)
    c = ChatClient(srv, u, transports=["polling", "websocket"])
    a1 = c.send("Remember this.")
    _, e1 = c.wait_end(a1["id"])
    a2 = c.send("And this.")
    c.wait_end(a2["id"])
    assert len(stored(srv, u)) == 4
    # Without the CSRF token nothing happens.
    r = u.post(srv.base + "/clear_discussion", data={}, allow_redirects=False)
    assert r.status_code == 400
    assert len(stored(srv, u)) == 4
    cu.clear_discussion(srv, u)
    page = cu.chat_page(srv, u)
    assert "Discussion cleared." in page
    assert cu.page_messages(page) == []
    assert srv.db("SELECT count(*) FROM messages WHERE user_id = (SELECT id FROM users"
                  " WHERE username = ?)", (u.username,)) == [(0,)]
    # The next answer starts fresh: the same first message, the same prompt.
    a3 = c.send("Remember this.")
    _, e3 = c.wait_end(a3["id"])
    assert e3["prompt_tokens"] == e1["prompt_tokens"]
    assert [m[0] for m in stored(srv, u)] == ["user", "assistant"]
    # Clearing an empty discussion says so.
    cu.clear_discussion(srv, u)
    cu.clear_discussion(srv, u)
    assert "There was nothing to clear." in cu.chat_page(srv, u)
    c.disconnect()


def test_clear_during_an_answer(slow):
    u = cu.signup(slow)
    c = ChatClient(slow, u, transports=["websocket"])
    ack = c.send("A long answer, please.")
    first_chunk(c, ack["id"])
    cu.clear_discussion(slow, u)
    _, end = c.wait_end(ack["id"])
    assert end["finish_reason"] == "cancelled"
    # Nothing of the cleared answer comes back later.
    time.sleep(0.5)
    assert stored(slow, u) == []
    n = accepted(c, "Fresh start.")["id"]
    first_chunk(c, n)
    c.stop()
    c.wait_end(n)
    assert [m[2] for m in stored(slow, u) if m[0] == "user"] == ["Fresh start."]
    c.disconnect()


# ---- malformed clients ----

def raw_ws(server, session):
    ws = websocket.create_connection(
        server.base.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket",
        cookie="echo_session=" + session.cookies.get("echo_session"), timeout=TIMEOUT)
    assert ws.recv().startswith("0{")
    ws.send("40")
    assert ws.recv().startswith('40{"sid"')
    return ws


def closed(ws):
    try:
        while True:
            frame = ws.recv_frame()
            if frame.opcode == websocket.ABNF.OPCODE_CLOSE:
                return True
    except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError):
        return True


@pytest.mark.parametrize("packet", [
    '42["send_message",{"message":"unterminated"',
    '42[oops',
    '42{"message":"not an array"}',
    '4-1["send_message",{"message":"x"}]',
    '451-["send_message",{"_placeholder":true,"num":0}]',
    '42["send_message",{"message":"' + "x" * 1000000 + '"}]',
    '9',
], ids=["unterminated", "bad-json", "not-an-array", "bad-ack-id", "binary", "oversize",
        "unknown-type"])
def test_malformed_packet_closes_only_that_client(srv, packet):
    u = cu.signup(srv)
    good = ChatClient(srv, u, transports=["polling", "websocket"])
    bad = raw_ws(srv, u)
    bad.send(packet)
    assert closed(bad)
    ack = good.send("Are you still there?")
    assert ack["ok"], ack
    answer, end = good.wait_end(ack["id"])
    assert_end(end, ack["id"])
    assert stored(srv, u)[-1][2] == answer
    good.disconnect()
    assert srv.healthy()


def test_malformed_packet_mid_answer(slow):
    """The tab that asked sends garbage while its answer streams: it is
    closed, the answer is cancelled, the person's other tab goes on."""
    u = cu.signup(slow)
    other = ChatClient(slow, u, transports=["websocket"])
    bad = raw_ws(slow, u)
    bad.send('421["send_message",{"message":"Talk to me."}]')
    n = other.wait_for(lambda ev: [d for nm, d in ev if nm == "user_message"])[0]["id"]
    first_chunk(other, n)
    bad.send('42["stop_generation"')
    assert closed(bad)
    _, end = other.wait_end(n)
    assert end["finish_reason"] == "cancelled"
    m = accepted(other, "Still here.")["id"]
    other.stop()
    other.wait_end(m)
    other.disconnect()


# ---- no model ----

@pytest.mark.parametrize("kind", ["missing", "broken"])
def test_no_model(tmp_path, servers, kind):
    path = str(tmp_path / "model.gguf")
    if kind == "broken":
        with open(path, "wb") as f:
            f.write(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 64)
    s = servers(path)
    try:
        u = cu.signup(s)
        page = cu.chat_page(s, u)
        assert "The language model is not installed yet" in page
        assert "make model" in page
        assert 'data-model-ready="false"' in page
        assert 'id="message"' in page and "disabled" in page.split('id="message"')[1].split(">")[0]
        c = ChatClient(s, u, transports=["websocket"])
        ack = c.send("Hello?")
        assert ack["ok"] is False and "make model" in ack["error"], ack
        assert c.stop() == {"ok": False}
        time.sleep(0.2)
        assert c.events == []
        assert cu.page_messages(cu.chat_page(s, u)) == []
        # Clearing works without a model too.
        cu.clear_discussion(s, u)
        c.disconnect()
    finally:
        rc = s.stop()
    assert rc == 0, s.output()[-6000:]
    assert ("no model at" if kind == "missing" else "cannot be loaded") in s.output()


# ---- shutdown ----

def test_sigterm_mid_answer_stores_it(model, servers):
    s = servers(model, max_tokens=400)
    try:
        u = cu.signup(s)
        c = ChatClient(s, u, transports=["websocket"])
        ack = c.send("Keep talking until the server stops.")
        first_chunk(c, ack["id"])
        seen = c.text_of(ack["id"])
        s.proc.send_signal(signal.SIGTERM)
        s.proc.wait(timeout=TIMEOUT)
        c.disconnect()
    finally:
        rc = s.stop()
    assert rc == 0, s.output()[-6000:]
    rows = s.db("SELECT role, content, finish_reason FROM messages ORDER BY id")
    assert rows[0] == ("user", "Keep talking until the server stops.", None)
    assert rows[1][0] == "assistant" and rows[1][2] == "cancelled"
    assert rows[1][1].startswith(seen)


def test_message_sent_while_stopping(model, servers):
    """Messages arriving while the server stops are refused or stored as
    cancelled; the server still exits cleanly."""
    s = servers(model, max_tokens=400)
    clients = []
    try:
        users = [cu.signup(s) for _ in range(3)]
        clients = [ChatClient(s, u, transports=["websocket"]) for u in users]
        for i, c in enumerate(clients):
            c.sio.emit("send_message", {"message": "now %d" % i})
        s.proc.send_signal(signal.SIGTERM)
        s.proc.wait(timeout=TIMEOUT)
    finally:
        rc = s.stop()
        for c in clients:
            c.disconnect()
    assert rc == 0, s.output()[-6000:]
    for role, reason in s.db("SELECT role, finish_reason FROM messages"):
        assert role == "user" or reason == "cancelled"


# ---- regressions: message ids, NUL characters ----

def test_ids_are_not_reused_after_clear(srv):
    u = cu.signup(srv)
    a = ChatClient(srv, u, transports=["websocket"])
    b = ChatClient(srv, u, transports=["websocket"])
    first = a.send("Before the clear.")
    a.wait_end(first["id"])
    b.wait_end(first["id"])
    cu.clear_discussion(srv, u)
    second = a.send("After the clear.")
    a.wait_end(second["id"])
    for x in (a, b):
        x.disconnect()
    assert second["id"] > first["id"] + 1


def test_nul_character_closes_only_that_client(srv):
    """A \u0000 inside Socket.IO JSON is refused by the packet decoder (a
    string with a NUL would be cut short by C code further on): that client
    is closed, nothing is stored, and the person's other tab chats on."""
    u = cu.signup(srv)
    good = ChatClient(srv, u, transports=["websocket"])
    bad = raw_ws(srv, u)
    bad.send('42["send_message",{"message":"before\\u0000after"}]')
    assert closed(bad)
    assert not [r for r in stored(srv, u) if "before" in r[2]]
    ack = good.send("Still fine?")
    assert ack["ok"], ack
    good.wait_end(ack["id"])
    good.disconnect()
    assert srv.healthy()
