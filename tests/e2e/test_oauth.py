"""test_oauth.py - Sign in with Google (issue 10) through the real `echobot
serve` against the fake OpenID provider of fake_oidc.py.

Covered: the first sign-in creates a user (no password, username from the
name), the second logs into the same user, linking to an existing account
with the same email only after its password (wrong password, cancel, too
many tries), every failure of the issue (denied consent, wrong or replayed
state, a replayed code, a provider that hangs or answers too much or no
JSON, a bad or missing signature, HS256, an expired token, wrong aud / iss /
nonce, an unverified email, an unknown key), key rotation, and the profile
(linked account shown, unlink only with a password). After every failure the
person is on /login with a message and no logged-in session exists.
"""
import html
import os
import re
import sys
import time
import urllib.parse
import uuid

import pytest
import requests

sys.path.insert(0, os.path.dirname(__file__))
from fake_oidc import FakeProvider  # noqa: E402
from http_server import Server, field, flashes, sql  # noqa: E402


@pytest.fixture(scope="module")
def fake():
    f = FakeProvider()
    yield f
    f.stop()


@pytest.fixture(scope="module")
def srv(fake):
    s = Server(env=fake.env(ECHO_ANTIBOT_MIN_MS="0"))
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def reset(fake):
    fake.reset()
    yield
    fake.reset()





def logged_in_as(client, server):
    r = client.get(server.base + "/")
    m = re.search(r'<span class="nav-user-name">([^<]*)</span>', r.text)
    return html.unescape(m.group(1)) if m else None


def user_sessions(server):
    return sql(server, "SELECT count(*) FROM sessions WHERE user_id IS NOT NULL")[0][0]


def new_user(fake, name="Ada Lovelace", email=None, verified=True):
    sub = str(uuid.uuid4().int)[:21]
    fake.user = {"sub": sub, "email": email or f"g{uuid.uuid4().hex[:10]}@example.com",
                 "email_verified": verified, "name": name}
    return fake.user


def start(client, server, next_=None):
    """GET /login/google: Echo's redirect to the provider."""
    path = "/login/google" + ("?next=" + urllib.parse.quote(next_, safe="") if next_ else "")
    r = client.get(server.base + path, allow_redirects=False)
    assert r.status_code == 302, r.text
    assert r.headers.get("Cache-Control") == "no-store"
    return r.headers["Location"]


def consent(client, location):
    """The provider's consent page: a redirect back to Echo's callback."""
    r = client.get(location, allow_redirects=False)
    assert r.status_code == 302, r.text
    return r.headers["Location"]


def sign_in(client, server, next_=None):
    """The whole round trip; the callback's answer (not followed)."""
    callback = consent(client, start(client, server, next_))
    return client.get(callback, allow_redirects=False)


def assert_failed(client, server, r, message, before):
    """A failure: back to /login with the message, nobody logged in."""
    assert r.status_code == 302, r.text
    assert r.headers["Location"] == "/login"
    page = client.get(server.base + "/login")
    assert page.status_code == 200
    assert any(message in f for f in flashes(page.text)), flashes(page.text)
    assert logged_in_as(client, server) is None
    # No logged-in session was made, for this browser or anyone.
    assert user_sessions(server) == before


def test_redirect_to_provider_carries_pkce_state_nonce(srv, fake):
    c = requests.Session()
    loc = start(c, srv)
    url = urllib.parse.urlsplit(loc)
    assert loc.startswith(fake.base + "/auth?")
    q = dict(urllib.parse.parse_qsl(url.query))
    assert q["response_type"] == "code"
    assert q["client_id"] == fake.client_id
    assert q["redirect_uri"] == srv.base + "/login/google/callback"
    assert set(q["scope"].split()) == {"openid", "email", "profile"}
    assert q["code_challenge_method"] == "S256"
    assert len(q["state"]) >= 43 and len(q["nonce"]) >= 43 and len(q["code_challenge"]) == 43
    # Fresh values every time.
    q2 = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(start(c, srv)).query))
    assert q2["state"] != q["state"] and q2["nonce"] != q["nonce"]
    # The secret never leaves for the browser.
    assert fake.client_secret not in loc


def test_first_sign_in_creates_user_second_logs_in(srv, fake):
    u = new_user(fake, name="Émile Zola-Müller")
    c = requests.Session()
    r = sign_in(c, srv, next_="/profile")
    assert r.status_code == 302 and r.headers["Location"] == "/profile"
    page = c.get(srv.base + "/profile").text
    name = html.unescape(re.search(r'<span class="nav-user-name">([^<]*)</span>', page).group(1))
    assert "Welcome to Echo, " + name + "! Your account is ready." in flashes(page)
    assert name and name.startswith("Emile_Zola_Muller")
    row = sql(srv, "SELECT id, email, password_hash FROM users WHERE username = ?", (name,))[0]
    assert row[1] == u["email"] and row[2] is None
    ident = sql(srv, "SELECT provider, subject, user_id, email FROM oauth_identities"
                     " WHERE subject = ?", (u["sub"],))
    assert ident == [("google", u["sub"], row[0], u["email"])]
    assert "Linked accounts" in page and u["email"] in page
    # No password: unlinking is not offered, and refused when asked anyway.
    assert "/profile/google/unlink" not in page
    r = c.post(srv.base + "/profile/google/unlink",
               data={"csrf_token": field(page, "csrf_token")}, allow_redirects=False)
    assert r.status_code == 303
    assert sql(srv, "SELECT count(*) FROM oauth_identities WHERE subject = ?",
               (u["sub"],))[0][0] == 1

    # A second sign-in, from another browser, is the same user.
    c2 = requests.Session()
    r = sign_in(c2, srv)
    assert r.status_code == 302 and r.headers["Location"] == "/"
    page = c2.get(srv.base + "/").text
    assert "Welcome back, " + name + "!" in flashes(page)
    assert logged_in_as(c2, srv) == name
    assert sql(srv, "SELECT count(*) FROM users WHERE email = ?", (u["email"],))[0][0] == 1


def test_username_made_unique(srv, fake):
    names = []
    for _ in range(3):
        new_user(fake, name="Grace Hopper")
        c = requests.Session()
        assert sign_in(c, srv).headers["Location"] == "/"
        names.append(logged_in_as(c, srv))
    assert len(set(names)) == 3
    assert all(n.startswith("Grace_Hopper") for n in names)
    # No usable name: the email's local part.
    new_user(fake, name="☃☃", email=f"x.{uuid.uuid4().hex[:6]}@example.com")
    c = requests.Session()
    sign_in(c, srv)
    assert logged_in_as(c, srv).startswith("x_")


def test_set_password_then_unlink(srv, fake):
    new_user(fake, name="Pass Later")
    c = requests.Session()
    sign_in(c, srv)
    page = c.get(srv.base + "/profile").text
    assert 'name="current_password"' not in page
    r = c.post(srv.base + "/profile", data={
        "csrf_token": field(page, "csrf_token"), "action": "password",
        "new_password": "a new password 1", "confirm_password": "a new password 1"},
        allow_redirects=False)
    assert r.status_code == 303
    page = c.get(srv.base + "/profile").text
    assert 'name="current_password"' in page and "/profile/google/unlink" in page
    r = c.post(srv.base + "/profile/google/unlink",
               data={"csrf_token": field(page, "csrf_token")}, allow_redirects=False)
    assert r.status_code == 303
    page = c.get(srv.base + "/profile").text
    assert "Your Google account is no longer linked." in flashes(page)
    assert sql(srv, "SELECT count(*) FROM oauth_identities WHERE subject = ?",
               (fake.user["sub"],))[0][0] == 0
    # Without CSRF nothing happens.
    r = c.post(srv.base + "/profile/google/unlink", data={}, allow_redirects=False)
    assert r.status_code == 400


def signup(client, server, username, email, password="password123"):
    r = client.get(server.base + "/signup")
    data = {"csrf_token": field(r.text, "csrf_token"), "form_ts": field(r.text, "form_ts"),
            "website": "", "username": username, "email": email, "password": password,
            "confirm_password": password}
    r = client.post(server.base + "/signup", data=data, allow_redirects=False)
    assert r.status_code == 303, r.text
    client.post(server.base + "/logout", data={
        "csrf_token": field(client.get(server.base + "/").text, "csrf_token")})


def test_link_existing_account_needs_password(srv, fake):
    name = "Link" + uuid.uuid4().hex[:8]
    email = name.lower() + "@example.com"
    signup(requests.Session(), srv, name, email)
    new_user(fake, name="Someone Else", email=email.upper())
    c = requests.Session()
    before = user_sessions(srv)
    r = sign_in(c, srv, next_="/profile")
    assert r.status_code == 302 and r.headers["Location"] == "/login/google/link"
    assert user_sessions(srv) == before and logged_in_as(c, srv) is None
    page = c.get(srv.base + "/login/google/link")
    assert page.status_code == 200 and name in page.text
    token = field(page.text, "csrf_token")
    # A wrong password: the page again, nothing linked, nobody logged in.
    r = c.post(srv.base + "/login/google/link", data={"csrf_token": token,
                                                      "password": "wrong password"})
    assert r.status_code == 400 and "not correct" in r.text
    assert sql(srv, "SELECT count(*) FROM oauth_identities WHERE subject = ?",
               (fake.user["sub"],))[0][0] == 0
    assert user_sessions(srv) == before
    # Without the CSRF token: refused before anything.
    r = c.post(srv.base + "/login/google/link", data={"password": "password123"},
               allow_redirects=False)
    assert r.status_code == 400
    r = c.post(srv.base + "/login/google/link", data={"csrf_token": token,
                                                      "password": "password123"},
               allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"] == "/profile"
    assert logged_in_as(c, srv) == name
    uid = sql(srv, "SELECT id FROM users WHERE username = ?", (name,))[0][0]
    assert sql(srv, "SELECT user_id FROM oauth_identities WHERE subject = ?",
               (fake.user["sub"],)) == [(uid,)]
    # From now on the Google account logs straight in; no second account.
    c2 = requests.Session()
    assert sign_in(c2, srv).headers["Location"] == "/"
    assert logged_in_as(c2, srv) == name
    assert sql(srv, "SELECT count(*) FROM users WHERE email = ?", (email,))[0][0] == 1
    # The profile shows it, and with a password it can be unlinked.
    page = c2.get(srv.base + "/profile").text
    assert "/profile/google/unlink" in page


def test_link_cancel_and_too_many_tries(srv, fake):
    name = "Tries" + uuid.uuid4().hex[:8]
    email = name.lower() + "@example.com"
    signup(requests.Session(), srv, name, email)
    new_user(fake, email=email)
    c = requests.Session()
    assert sign_in(c, srv).headers["Location"] == "/login/google/link"
    token = field(c.get(srv.base + "/login/google/link").text, "csrf_token")
    r = c.post(srv.base + "/login/google/link", data={"csrf_token": token, "action": "cancel"},
               allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"] == "/login"
    r = c.get(srv.base + "/login/google/link", allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"] == "/login"

    assert sign_in(c, srv).headers["Location"] == "/login/google/link"
    token = field(c.get(srv.base + "/login/google/link").text, "csrf_token")
    for i in range(4):
        r = c.post(srv.base + "/login/google/link", data={"csrf_token": token,
                                                          "password": f"wrong {i}"})
        assert r.status_code == 400
    r = c.post(srv.base + "/login/google/link", data={"csrf_token": token, "password": "wrong"},
               allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"] == "/login"
    # The right password is no use any more: the pending link is gone.
    r = c.post(srv.base + "/login/google/link", data={"csrf_token": token,
                                                      "password": "password123"},
               allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"] == "/login"
    assert logged_in_as(c, srv) is None
    assert sql(srv, "SELECT count(*) FROM oauth_identities WHERE subject = ?",
               (fake.user["sub"],))[0][0] == 0


@pytest.mark.parametrize("mode,message", [
    ("deny", "cancelled"),
    ("wrong_state", "expired or was already used"),
    ("replay_code", "did not work"),
    ("malformed", "did not work"),
    ("oversized", "did not work"),
    ("bad_signature", "did not work"),
    ("alg_none", "did not work"),
    ("hs256", "did not work"),
    ("expired", "did not work"),
    ("wrong_aud", "did not work"),
    ("wrong_iss", "did not work"),
    ("wrong_nonce", "did not work"),
    ("unverified", "not verified"),
    ("unknown_kid", "did not work"),
])
def test_failures_end_on_login_without_session(srv, fake, mode, message):
    new_user(fake)
    if mode == "replay_code":
        # A code that worked once (for someone) is refused the second time.
        assert sign_in(requests.Session(), srv).headers["Location"] == "/"
        new_user(fake)
    fake.misbehave = mode
    c = requests.Session()
    before = user_sessions(srv)
    users = sql(srv, "SELECT count(*) FROM users")[0][0]
    r = sign_in(c, srv)
    assert_failed(c, srv, r, message, before)
    assert sql(srv, "SELECT count(*) FROM users")[0][0] == users
    assert sql(srv, "SELECT count(*) FROM oauth_identities WHERE subject = ?",
               (fake.user["sub"],))[0][0] == 0


def test_log_has_reason_but_no_secrets(srv, fake):
    new_user(fake)
    fake.misbehave = "wrong_aud"
    c = requests.Session()
    sign_in(c, srv)
    log = srv.output()
    assert "not issued for this client" in log
    assert fake.client_secret not in log
    for code in fake.codes:
        assert code not in log
    for token in fake.access:
        assert token not in log


def test_provider_that_hangs_is_cut_off(srv, fake):
    new_user(fake)
    fake.misbehave = "hang"
    fake.hang_seconds = 8
    c = requests.Session()
    before = user_sessions(srv)
    callback = consent(c, start(c, srv))
    t0 = time.monotonic()
    r = c.get(callback, allow_redirects=False, timeout=30)
    elapsed = time.monotonic() - t0
    # GOOGLE_TIMEOUT=2: the answer comes long before the provider's 8 s.
    assert elapsed < 6, elapsed
    assert_failed(c, srv, r, "did not work", before)
    assert "timed out" in srv.output().lower() or "timeout" in srv.output().lower()


def test_state_is_one_use_and_bound_to_the_browser(srv, fake):
    new_user(fake)
    c = requests.Session()
    callback = consent(c, start(c, srv))
    # Another browser cannot use this callback (its session has no such state).
    other = requests.Session()
    before = user_sessions(srv)
    r = other.get(callback, allow_redirects=False)
    assert_failed(other, srv, r, "expired or was already used", before)
    r = c.get(callback, allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"] == "/"
    name = logged_in_as(c, srv)
    assert name
    c.post(srv.base + "/logout", data={"csrf_token": field(c.get(srv.base + "/").text,
                                                           "csrf_token")})
    # The same callback again: the state was used.
    before = user_sessions(srv)
    r = c.get(callback, allow_redirects=False)
    assert_failed(c, srv, r, "expired or was already used", before)
    # No state, a made-up one, garbage.
    for q in ("", "?state=abc&code=x", "?state=" + "A" * 43 + "&code=x", "?code=x&state=%00"):
        r = c.get(srv.base + "/login/google/callback" + q, allow_redirects=False)
        assert r.status_code in (302, 400)
        if r.status_code == 302:
            assert r.headers["Location"] == "/login"
    assert logged_in_as(c, srv) is None


def test_key_rotation_and_oversized_jwks(srv, fake):
    new_user(fake)
    c = requests.Session()
    assert sign_in(c, srv).headers["Location"] == "/"
    fetched = fake.count("/jwks")
    # Cached: another sign-in does not fetch the keys.
    new_user(fake)
    assert sign_in(requests.Session(), srv).headers["Location"] == "/"
    assert fake.count("/jwks") == fetched
    # New key, new kid: one refetch, and it works.
    fake.rotate()
    new_user(fake)
    c = requests.Session()
    assert sign_in(c, srv).headers["Location"] == "/"
    assert fake.count("/jwks") == fetched + 1
    # Rotated again but the JWKS is oversized: refused.
    fake.rotate()
    fake.misbehave = "oversized_jwks"
    new_user(fake)
    c = requests.Session()
    before = user_sessions(srv)
    assert_failed(c, srv, sign_in(c, srv), "did not work", before)
    assert "more than" in srv.output()


def test_userinfo_gives_the_name_when_the_token_has_none(srv, fake):
    u = new_user(fake)
    fake.user["name"] = None
    fake.userinfo_name = "Info Name"
    c = requests.Session()
    assert sign_in(c, srv).headers["Location"] == "/"
    assert logged_in_as(c, srv).startswith("Info_Name")
    assert fake.count("/userinfo") >= 1
    assert u["sub"]


def test_button_on_login_and_signup(srv):
    c = requests.Session()
    for path in ("/login?next=/profile", "/signup"):
        page = c.get(srv.base + path).text
        assert "Continue with Google" in page
    page = c.get(srv.base + "/login?next=/profile").text
    assert 'href="/login/google?next=%2Fprofile"' in page


def test_disabled_without_client_id():
    s = Server(env={"ECHO_ANTIBOT_MIN_MS": "0"})
    try:
        c = requests.Session()
        for path in ("/login/google", "/login/google/callback?state=x&code=y",
                     "/login/google/link"):
            assert c.get(s.base + path, allow_redirects=False).status_code == 404
        for path in ("/login", "/signup"):
            assert "Continue with Google" not in c.get(s.base + path).text
    finally:
        s.stop()


def test_bad_provider_url_stops_start_up():
    with pytest.raises(RuntimeError) as e:
        Server(env={"GOOGLE_CLIENT_ID": "x", "GOOGLE_CLIENT_SECRET": "y" * 35,
                    "GOOGLE_TOKEN_URL": "http://example.com/token"})
    assert "GOOGLE_TOKEN_URL" in str(e.value)
    with pytest.raises(RuntimeError) as e:
        Server(env={"GOOGLE_CLIENT_ID": "x"})
    assert "GOOGLE_CLIENT_SECRET" in str(e.value)


def test_slow_provider_holds_at_most_half_the_workers(srv, fake):
    """ECHO_THREADS=4 (the default): two callbacks may wait for a hanging
    provider; a third fails at once without calling it, and the site answers."""
    import threading
    fake.misbehave = "hang"
    fake.hang_seconds = 8
    callbacks = []
    for _ in range(3):
        new_user(fake)
        c = requests.Session()
        callbacks.append((c, consent(c, start(c, srv))))
    tokens = fake.count("/token")
    results = {}

    def fresh(i):
        # A new connection each: libmicrohttpd's pool binds a kept-alive
        # connection to the worker that accepted it, which may be a waiting one.
        c = requests.Session()
        c.cookies.update(callbacks[i][0].cookies)
        return c

    def run(i):
        results[i] = fresh(i).get(callbacks[i][1], allow_redirects=False, timeout=30)

    # One after the other, so that each connection is accepted by a free
    # worker (one worker may accept several connections at once).
    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for i, t in enumerate(threads):
        t.start()
        deadline = time.monotonic() + 5
        while fake.count("/token") < tokens + i + 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert fake.count("/token") == tokens + i + 1
    r = fresh(2).get(callbacks[2][1], allow_redirects=False, timeout=30)
    assert r.status_code == 302 and r.headers["Location"] == "/login"
    assert fake.count("/token") == tokens + 2
    assert requests.get(srv.base + "/healthz", timeout=5).status_code == 200
    for t in threads:
        t.join()
    for i in range(2):
        assert results[i].headers["Location"] == "/login"
    assert "too many sign-ins are waiting" in srv.output()


def test_deactivated_account_cannot_sign_in(srv, fake):
    new_user(fake, name="Gone Soon")
    c = requests.Session()
    assert sign_in(c, srv).headers["Location"] == "/"
    sql(srv, "UPDATE users SET is_active = 0 WHERE id = (SELECT user_id FROM oauth_identities"
             " WHERE subject = ?)", (fake.user["sub"],))
    c = requests.Session()
    before = user_sessions(srv)
    assert_failed(c, srv, sign_in(c, srv), "deactivated", before)


def test_link_to_account_without_password_is_refused(srv, fake):
    """Another Google account with the email of an account made by Google
    sign-in: there is no password to confirm with."""
    u = new_user(fake, name="No Pass")
    assert sign_in(requests.Session(), srv).headers["Location"] == "/"
    new_user(fake, email=u["email"])
    c = requests.Session()
    assert sign_in(c, srv).headers["Location"] == "/login/google/link"
    token = field(c.get(srv.base + "/login/google/link").text, "csrf_token")
    r = c.post(srv.base + "/login/google/link", data={"csrf_token": token, "password": ""})
    assert r.status_code == 400 and "has no password yet" in r.text
    assert logged_in_as(c, srv) is None


def test_next_is_kept_and_encoded(srv, fake):
    new_user(fake)
    c = requests.Session()
    r = sign_in(c, srv, next_="/profile?tab=a b")
    assert r.status_code == 302 and r.headers["Location"] == "/profile?tab=a%20b"
    # Another site is never a next.
    new_user(fake)
    c = requests.Session()
    r = sign_in(c, srv, next_="//evil.example/x")
    assert r.headers["Location"] == "/"


def test_sign_in_routes_are_rate_limited_and_short_secrets_work(fake):
    """/login/google and its callback count against ECHO_RATELIMIT_GOOGLE per
    client address; a 24-character client secret (Google's older format) is
    accepted (only SECRET_KEY has a length rule)."""
    s = Server(env=fake.env(ECHO_ANTIBOT_MIN_MS="0", ECHO_RATELIMIT_ENABLED="1",
                            ECHO_RATELIMIT_GOOGLE="2/minute",
                            GOOGLE_CLIENT_SECRET="s" * 24))
    try:
        for path in ("/login/google", "/login/google/callback?state=x&code=y"):
            codes = [requests.get(s.base + path, allow_redirects=False).status_code
                     for _ in range(3)]
            assert 429 not in codes[:2] and codes[2] == 429, (path, codes)
        # The password login keeps its own allowance.
        assert requests.get(s.base + "/login").status_code == 200
    finally:
        s.stop()
