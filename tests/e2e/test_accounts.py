"""test_accounts.py - signup, login, logout, sessions, CSRF, anti-bot and
flash messages through the real `echobot serve` (issue 3).

Most tests share one server started with ECHO_ANTIBOT_MIN_MS=0 so that forms
can be sent at once; the anti-bot timing and the Secure cookie flag get a
server of their own with the defaults (2 s) and ECHO_COOKIE_SECURE=1. The
last test kills a server with SIGKILL in the middle of signups.
"""
import html
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid

import pytest
import requests

sys.path.insert(0, os.path.dirname(__file__))
from http_server import ECHOBOT, Server, clean_env, db_path, field, flashes, sql  # noqa: E402


@pytest.fixture(scope="module")
def srv():
    s = Server(env={"ECHO_ANTIBOT_MIN_MS": "0"})
    yield s
    s.stop()





def form_fields(client, server, path):
    r = client.get(server.base + path)
    assert r.status_code == 200, r.text
    return {"csrf_token": field(r.text, "csrf_token"), "form_ts": field(r.text, "form_ts"),
            "website": ""}


def unique(prefix="u"):
    return prefix + uuid.uuid4().hex[:10]


def signup(client, server, username, email, password="password123", confirm=None, **extra):
    data = form_fields(client, server, "/signup")
    data.update(username=username, email=email, password=password,
                confirm_password=password if confirm is None else confirm)
    data.update(extra)
    return client.post(server.base + "/signup", data=data, allow_redirects=False)


def login(client, server, username, password="password123", remember=False, next_=None,
          **extra):
    path = "/login" + ("?next=" + requests.utils.quote(next_, safe="") if next_ else "")
    data = form_fields(client, server, path)
    data.update(username=username, password=password)
    if remember:
        data["remember"] = "1"
    if next_ is not None:
        data["next"] = next_
    data.update(extra)
    return client.post(server.base + "/login", data=data, allow_redirects=False)


def logout(client, server):
    r = client.get(server.base + "/")
    token = field(r.text, "csrf_token")
    return client.post(server.base + "/logout", data={"csrf_token": token},
                       allow_redirects=False)


def logged_in_as(client, server):
    r = client.get(server.base + "/")
    m = re.search(r'<span class="nav-user-name">([^<]*)</span>', r.text)
    return html.unescape(m.group(1)) if m else None



def test_signup_logout_login_flow(srv):
    c = requests.Session()
    name = unique("Flow")
    r = signup(c, srv, name, f"{name}@Example.com")
    assert r.status_code == 303 and r.headers["Location"] == "/"
    page = c.get(srv.base + "/").text
    assert any("Welcome to Echo, " + name in f for f in flashes(page))
    # Flashes are shown once.
    assert flashes(c.get(srv.base + "/").text) == []
    assert logged_in_as(c, srv) == name
    r = logout(c, srv)
    assert r.status_code == 303
    page = c.get(srv.base + "/").text
    assert "You have been logged out." in flashes(page)
    assert logged_in_as(c, srv) is None
    # Log in by username in another case, then by email in another case.
    r = login(c, srv, name.upper())
    assert r.status_code == 303 and r.headers["Location"] == "/"
    assert logged_in_as(c, srv) == name
    last = sql(srv, "SELECT last_login_at FROM users WHERE username = ?", (name,))[0][0]
    assert abs(last - time.time()) < 60
    r = c.get(srv.base + "/profile")
    assert r.status_code == 200 and name in r.text
    logout(c, srv)
    r = login(c, srv, f"{name}@example.COM")
    assert r.status_code == 303
    assert logged_in_as(c, srv) == name
    logout(c, srv)
    assert logged_in_as(c, srv) is None
    # Stored: an Argon2id hash, never the password.
    h = sql(srv, "SELECT password_hash FROM users WHERE username = ?", (name,))[0][0]
    assert h.startswith("$argon2id$")


def test_logged_in_user_is_sent_home(srv):
    c = requests.Session()
    name = unique()
    assert signup(c, srv, name, f"{name}@example.com").status_code == 303
    for path in ("/signup", "/login"):
        r = c.get(srv.base + path, allow_redirects=False)
        assert r.status_code == 302 and r.headers["Location"] == "/"


def test_duplicates_case_insensitive(srv):
    name = unique("Dup")
    assert signup(requests.Session(), srv, name, f"{name}@example.com").status_code == 303
    r = signup(requests.Session(), srv, name.swapcase(), f"other{name}@example.com")
    assert r.status_code == 400
    assert "This username is already taken." in html.unescape(r.text)
    r = signup(requests.Session(), srv, unique(), f"{name.upper()}@EXAMPLE.com")
    assert r.status_code == 400
    assert "An account with this email address already exists." in html.unescape(r.text)
    assert sql(srv, "SELECT count(*) FROM users WHERE username = ? COLLATE NOCASE",
               (name,))[0][0] == 1


def test_form_errors_keep_values_not_passwords(srv):
    c = requests.Session()
    name = unique()
    r = signup(c, srv, name, f"{name}@example.com", password="short7!")
    assert r.status_code == 400
    text = html.unescape(r.text)
    assert "8 to 128 characters" in text
    assert field(r.text, "username") == name
    assert field(r.text, "email") == f"{name}@example.com"
    assert "short7!" not in text
    r = signup(c, srv, name, f"{name}@example.com", password="long enough 1",
               confirm="long enough 2")
    assert r.status_code == 400 and "do not match" in r.text
    assert "long enough" not in r.text
    r = signup(c, srv, "ab", "not-an-email", password="x" * 129)
    assert r.status_code == 400
    text = html.unescape(r.text)
    assert "3 to 32" in text and "valid email" in text and "8 to 128" in text
    assert sql(srv, "SELECT count(*) FROM users WHERE username = ?", (name,))[0][0] == 0


def test_login_failures_share_one_message(srv):
    c = requests.Session()
    name = unique()
    assert signup(c, srv, name, f"{name}@example.com").status_code == 303
    logout(c, srv)
    r1 = login(c, srv, name, "wrong password")
    r2 = login(c, srv, unique("nobody"), "wrong password")
    for r in (r1, r2):
        assert r.status_code == 400
        assert "Invalid username or password." in r.text
        assert "echo_session" not in r.headers.get("Set-Cookie", "")
    # The typed name comes back, the password does not.
    assert field(r1.text, "username") == name
    assert "wrong password" not in r1.text
    r = login(c, srv, "", "")
    assert r.status_code == 400 and "Enter your username" in r.text
    assert logged_in_as(c, srv) is None


def test_csrf_missing_forged_or_foreign(srv):
    a = requests.Session()
    name = unique()
    data = form_fields(a, srv, "/signup")
    data.update(username=name, email=f"{name}@example.com", password="password123",
                confirm_password="password123")
    for token in (None, "", "A" * 54, data["csrf_token"][:-1],
                  data["csrf_token"][:10] + ("B" if data["csrf_token"][10] != "B" else "C")
                  + data["csrf_token"][11:]):
        d = dict(data)
        if token is None:
            del d["csrf_token"]
        else:
            d["csrf_token"] = token
        r = a.post(srv.base + "/signup", data=d, allow_redirects=False)
        assert r.status_code == 400, token
        assert "reload the page" in r.text
    # A token taken from another visitor is bound to their cookie.
    b = requests.Session()
    other = form_fields(b, srv, "/signup")
    d = dict(data, csrf_token=other["csrf_token"])
    assert a.post(srv.base + "/signup", data=d, allow_redirects=False).status_code == 400
    # Without any cookie there is nothing a token could be bound to.
    assert requests.post(srv.base + "/signup", data=data,
                         allow_redirects=False).status_code == 400
    assert sql(srv, "SELECT count(*) FROM users WHERE username = ?", (name,))[0][0] == 0
    # With its own token the same form goes through.
    assert a.post(srv.base + "/signup", data=data, allow_redirects=False).status_code == 303
    # Logout needs the session's token too; without it the session stays.
    r = a.post(srv.base + "/logout", data={}, allow_redirects=False)
    assert r.status_code == 400
    r = a.post(srv.base + "/logout", data={"csrf_token": other["csrf_token"]},
               allow_redirects=False)
    assert r.status_code == 400
    assert logged_in_as(a, srv) == name
    # A JSON client may send the token in a header instead.
    token = field(a.get(srv.base + "/").text, "csrf_token")
    r = a.post(srv.base + "/logout", headers={"X-CSRF-Token": token}, allow_redirects=False)
    assert r.status_code == 303
    assert logged_in_as(a, srv) is None


def test_honeypot(srv):
    c = requests.Session()
    name = unique()
    r = signup(c, srv, name, f"{name}@example.com", website="http://spam.example")
    assert r.status_code == 400
    assert "could not be accepted" in r.text
    assert field(r.text, "username") == name
    assert sql(srv, "SELECT count(*) FROM users WHERE username = ?", (name,))[0][0] == 0
    assert "anti-bot: signup form" in srv.output() and "(honeypot)" in srv.output()
    # The honeypot is hidden from people and from the tab order.
    page = c.get(srv.base + "/signup").text
    hp = re.search(r'<div class="hp-field" aria-hidden="true">.*?</div>', page, re.S).group(0)
    assert 'name="website"' in hp and 'tabindex="-1"' in hp
    # A login with the honeypot filled is refused as well.
    r = login(c, srv, name, website="x")
    assert r.status_code == 400 and "could not be accepted" in r.text


def test_forged_or_missing_timestamp(srv):
    c = requests.Session()
    name = unique()
    for ts in ("", "1700000000000", "A" * 54):
        r = signup(c, srv, name, f"{name}@example.com", form_ts=ts)
        assert r.status_code == 400 and "could not be accepted" in r.text
    # A stamp of the login form is no good for the signup form.
    stamp = form_fields(c, srv, "/login")["form_ts"]
    r = signup(c, srv, name, f"{name}@example.com", form_ts=stamp)
    assert r.status_code == 400
    assert sql(srv, "SELECT count(*) FROM users WHERE username = ?", (name,))[0][0] == 0


def test_open_redirect(srv):
    c = requests.Session()
    name = unique()
    assert signup(c, srv, name, f"{name}@example.com").status_code == 303
    logout(c, srv)
    for evil in ("https://evil.example/", "//evil.example/x", "/\\evil.example",
                 "\\\\evil.example", "http:/evil.example", "javascript:alert(1)",
                 "/\t/evil.example", " //evil.example"):
        r = login(c, srv, name, next_=evil)
        assert r.status_code == 303, evil
        assert r.headers["Location"] == "/", (evil, r.headers["Location"])
        logout(c, srv)
    r = login(c, srv, name, next_="/profile?tab=1&x=%41")
    assert r.headers["Location"] == "/profile?tab=1&x=%41"
    logout(c, srv)
    # The login page only carries a safe next= in its hidden field.
    page = c.get(srv.base + "/login?next=" + requests.utils.quote("//evil.example")).text
    assert 'name="next"' not in page
    page = c.get(srv.base + "/login?next=%2Fprofile").text
    assert field(page, "next") == "/profile"


def test_session_cookie_flags(srv):
    c = requests.Session()
    name = unique()
    r = signup(c, srv, name, f"{name}@example.com")
    cookie = r.headers["Set-Cookie"]
    assert "echo_session=" in cookie
    session_part = cookie[cookie.index("echo_session="):]
    assert "HttpOnly" in session_part and "SameSite=Lax" in session_part
    assert "Path=/" in session_part and "Secure" not in session_part
    assert "Max-Age" not in session_part  # gone when the browser closes
    value = re.search(r"echo_session=([A-Za-z0-9_-]+)", cookie).group(1)
    assert len(value) == 43
    # Only the SHA-256 is stored.
    assert sql(srv, "SELECT count(*) FROM sessions WHERE hex(id_hash) LIKE ?",
               ("%",))[0][0] >= 1
    import base64
    import hashlib
    raw = base64.urlsafe_b64decode(value + "=")
    rows = sql(srv, "SELECT user_id, expires_at - created_at FROM sessions WHERE id_hash = ?",
               (hashlib.sha256(raw).digest(),))
    assert len(rows) == 1 and rows[0][1] == 86400
    assert sql(srv, "SELECT count(*) FROM sessions WHERE id_hash = ?", (raw,))[0][0] == 0
    logout(c, srv)
    r = login(c, srv, name, remember=True)
    part = r.headers["Set-Cookie"][r.headers["Set-Cookie"].index("echo_session="):]
    assert "Max-Age=2592000" in part
    # A new id on every login (no fixation).
    new_value = re.search(r"echo_session=([A-Za-z0-9_-]+)", r.headers["Set-Cookie"]).group(1)
    assert new_value != value
    # The pre-session CSRF cookie is HttpOnly and SameSite too.
    v = requests.get(srv.base + "/login")
    pre = v.headers["Set-Cookie"]
    assert pre.startswith("echo_csrf=") and "HttpOnly" in pre and "SameSite=Lax" in pre
    # Pages without a form set no cookie.
    assert "Set-Cookie" not in requests.get(srv.base + "/healthz").headers


def test_fixation_planted_session_is_replaced(srv):
    name = unique()
    assert signup(requests.Session(), srv, name, f"{name}@example.com").status_code == 303
    # The attacker gets a real (anonymous) session id: log out of an own
    # account, which leaves a session carrying the "logged out" flash.
    attacker = requests.Session()
    own = unique()
    assert signup(attacker, srv, own, f"{own}@example.com").status_code == 303
    logout(attacker, srv)
    planted = attacker.cookies.get("echo_session")
    assert planted and len(planted) == 43
    # ...and plants it in the victim's browser.
    victim = requests.Session()
    victim.cookies.set("echo_session", planted, domain="127.0.0.1", path="/")
    r = login(victim, srv, name)
    assert r.status_code == 303
    new = re.search(r"echo_session=([A-Za-z0-9_-]+)", r.headers["Set-Cookie"]).group(1)
    assert new != planted
    assert logged_in_as(victim, srv) == name
    assert logged_in_as(attacker, srv) is None


def test_revoked_session_no_longer_works(srv):
    c = requests.Session()
    name = unique()
    assert signup(c, srv, name, f"{name}@example.com").status_code == 303
    stolen = c.cookies.get("echo_session")
    thief = requests.Session()
    thief.cookies.set("echo_session", stolen, domain="127.0.0.1", path="/")
    assert logged_in_as(thief, srv) == name
    logout(c, srv)
    assert logged_in_as(thief, srv) is None
    # A password change from the command line ends every session.
    login(c, srv, name)
    assert logged_in_as(c, srv) == name
    p = subprocess.run([os.path.abspath(ECHOBOT), "user", "set-password", name,
                        "--database", db_path(srv)], input="a new password\n", text=True,
                       capture_output=True, cwd=srv.dir, env=clean_env(), timeout=60)
    assert p.returncode == 0, p.stderr
    assert "1 session logged out" in p.stdout
    assert logged_in_as(c, srv) is None
    assert login(c, srv, name, "password123").status_code == 400
    assert login(c, srv, name, "a new password").status_code == 303


def test_deactivated_account(srv):
    c = requests.Session()
    name = unique()
    assert signup(c, srv, name, f"{name}@example.com").status_code == 303
    sql(srv, "UPDATE users SET is_active = 0 WHERE username = ?", (name,))
    assert logged_in_as(c, srv) is None
    r = login(c, srv, name)
    assert r.status_code == 400 and "deactivated" in r.text
    r = login(c, srv, name, "wrong password")
    assert r.status_code == 400 and "Invalid username or password." in r.text


def test_metacharacters_and_10kb_values_escaped(srv):
    c = requests.Session()
    nasty = "'\"><script>alert(1)</script>; DROP TABLE users; --"
    big = ("<b>x</b>" * 1300)[:10240]
    r = signup(c, srv, nasty, nasty + "@example.com")
    assert r.status_code == 400
    assert "<script>alert(1)</script>" not in r.text
    assert field(r.text, "username") == nasty
    r = signup(c, srv, big, big, password=big, confirm=big)
    assert r.status_code == 400
    assert "<b>x</b>" not in r.text and field(r.text, "username") == big
    r = login(c, srv, big, big)
    assert r.status_code == 400 and "<b>x</b>" not in r.text
    assert field(r.text, "username") == big
    # A legal email full of metacharacters is stored as typed and works.
    name = unique("meta.")
    email = f"o'neil+{name}%_*{{}}|@x-y.example.com"
    r = signup(c, srv, name, email)
    assert r.status_code == 303, r.text
    assert sql(srv, "SELECT email FROM users WHERE username = ?", (name,)) == [(email,)]
    logout(c, srv)
    assert login(c, srv, email).status_code == 303
    assert sql(srv, "PRAGMA integrity_check")[0][0] == "ok"


def test_methods(srv):
    assert requests.get(srv.base + "/logout", allow_redirects=False).status_code == 405
    assert requests.delete(srv.base + "/login", allow_redirects=False).status_code == 405
    # Logging out without a session just goes home (with a valid token).
    c = requests.Session()
    token = field(c.get(srv.base + "/login").text, "csrf_token")
    r = c.post(srv.base + "/logout", data={"csrf_token": token}, allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"] == "/"


@pytest.fixture(scope="module")
def strict():
    s = Server(env={"ECHO_COOKIE_SECURE": "1"})
    yield s
    s.stop()


def test_too_fast_submission_and_secure_cookie(strict):
    # Cookies are Secure on this server, so `requests` would not send them
    # back over http: carry the pre-session cookie by hand.
    r = requests.get(strict.base + "/signup")
    pre = r.headers["Set-Cookie"]
    assert pre.startswith("echo_csrf=") and "Secure" in pre
    cookie = pre.split(";")[0]
    name = unique()
    data = {"csrf_token": field(r.text, "csrf_token"), "form_ts": field(r.text, "form_ts"),
            "website": "", "username": name, "email": f"{name}@example.com",
            "password": "password123", "confirm_password": "password123"}
    r = requests.post(strict.base + "/signup", data=data, headers={"Cookie": cookie},
                      allow_redirects=False)
    assert r.status_code == 400 and "could not be accepted" in r.text
    assert "(too fast)" in strict.output()
    # The same form two seconds after it was shown is accepted.
    time.sleep(2.1)
    r = requests.post(strict.base + "/signup", data=data, headers={"Cookie": cookie},
                      allow_redirects=False)
    assert r.status_code == 303, r.text
    set_cookie = r.headers["Set-Cookie"]
    part = set_cookie[set_cookie.index("echo_session="):]
    assert "Secure" in part and "HttpOnly" in part and "SameSite=Lax" in part


def test_kill9_during_signups_loses_no_committed_user():
    s = Server(env={"ECHO_ANTIBOT_MIN_MS": "0", "ECHO_LOG_LEVEL": "warn"})
    done = []
    stop = threading.Event()

    def worker(k):
        n = 0
        while not stop.is_set():
            c = requests.Session()
            name = f"k{k}_{n}"
            n += 1
            try:
                r = signup(c, s, name, f"{name}@example.com")
            except requests.RequestException:
                return
            if r.status_code == 303:
                done.append(name)

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(3.0)
        s.signal(signal.SIGKILL)
        stop.set()
        s.wait()
        for t in threads:
            t.join(timeout=30)
        assert len(done) >= 3, "too few signups to mean anything"
        con = sqlite3.connect(db_path(s))
        try:
            names = {row[0] for row in con.execute("SELECT username FROM users")}
            missing = [n for n in done if n not in names]
            assert missing == []
            assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert con.execute("PRAGMA foreign_key_check").fetchall() == []
        finally:
            con.close()
        print(f"\n{len(done)} signups answered before SIGKILL, all stored")
    finally:
        s.stop()
