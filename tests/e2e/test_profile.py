"""test_profile.py - the profile page, pictures, feedback, the profile cache
and the rate limits through the real `echobot serve` (issue 7).

Most tests share one server with ECHO_ANTIBOT_MIN_MS=0 and
ECHO_RATELIMIT_ENABLED=0 so that forms can be sent at once; the rate-limit
tests get servers of their own with the limits on (the issue's defaults, or
a setting under test). Test pictures are PNG files written by hand (zlib).
"""
import html
import os
import re
import struct
import sys
import time
import uuid
import zlib

import pytest
import requests

sys.path.insert(0, os.path.dirname(__file__))
from http_server import (ECHOBOT, Server, clean_env, field, flashes,  # noqa: E402
                         free_port, sql)

import subprocess  # noqa: E402

FAST = {"ECHO_ANTIBOT_MIN_MS": "0", "ECHO_RATELIMIT_ENABLED": "0"}


@pytest.fixture(scope="module")
def srv():
    s = Server(env=FAST)
    yield s
    s.stop()





def unique(prefix="p"):
    return prefix + uuid.uuid4().hex[:10]



def signup(client, server, name, password="password123"):
    page = client.get(server.base + "/signup").text
    data = {"csrf_token": field(page, "csrf_token"), "form_ts": field(page, "form_ts"),
            "website": "", "username": name, "email": f"{name}@example.com",
            "password": password, "confirm_password": password}
    r = client.post(server.base + "/signup", data=data, allow_redirects=False)
    assert r.status_code == 303, r.text
    return name


def login(client, server, name, password="password123"):
    page = client.get(server.base + "/login").text
    data = {"csrf_token": field(page, "csrf_token"), "form_ts": field(page, "form_ts"),
            "website": "", "username": name, "password": password}
    return client.post(server.base + "/login", data=data, allow_redirects=False)


def new_user(server):
    c = requests.Session()
    return c, signup(c, server, unique())


def profile_page(client, server):
    r = client.get(server.base + "/profile", allow_redirects=False)
    assert r.status_code == 200, r.status_code
    return r.text


def csrf(client, server):
    return field(profile_page(client, server), "csrf_token")


def post_profile(client, server, token=None, files=None, **data):
    data["csrf_token"] = csrf(client, server) if token is None else token
    return client.post(server.base + "/profile", data=data, files=files, allow_redirects=False)


def shown(page):
    """(name, email, message count, avatar url) of the profile card."""
    name = re.search(r'<h2 class="profile-name">([^<]*)</h2>', page).group(1)
    email = re.search(r'<p class="profile-email">([^<]*)</p>', page).group(1)
    count = re.search(r"<dt>Messages</dt>\s*<dd>(\d+)</dd>", page).group(1)
    avatar = re.search(r'<img class="avatar avatar-xl" src="([^"]*)"', page).group(1)
    return html.unescape(name), html.unescape(email), int(count), html.unescape(avatar)


def field_errors(page):
    out = []
    for block in re.findall(r'<ul class="field-errors"[^>]*>(.*?)</ul>', page, re.S):
        out += [html.unescape(t) for t in re.findall(r"<li>([^<]*)</li>", block)]
    return out


def png(width, height, rgb=(200, 40, 40)):
    """A valid truecolour PNG written by hand."""
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))
    row = b"\x00" + bytes(rgb) * width
    raw = row * height
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def avatar_files(server):
    d = os.path.join(server.dir, "instance", "avatars")
    return sorted(f for f in os.listdir(d) if not f.startswith("."))


# ---- the page ---------------------------------------------------------------


def test_profile_needs_login(srv):
    r = requests.get(srv.base + "/profile", allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"] == "/login?next=/profile"


def test_profile_shows_data_and_default_avatar(srv):
    c, name = new_user(srv)
    page = profile_page(c, srv)
    uid = sql(srv, "SELECT id FROM users WHERE username = ?", (name,))[0][0]
    n, e, count, avatar = shown(page)
    assert (n, e, count) == (name, f"{name}@example.com", 0)
    assert re.fullmatch(r"/media/avatars/default/%d\.svg\?v=[0-9a-f]{16}" % uid, avatar)
    assert "Member since" in page and time.strftime("%Y-%m-%d", time.gmtime()) in page
    # The nav shows the same picture.
    assert f'class="avatar avatar-xs" src="{html.escape(avatar)}"' in page.replace("&amp;", "&") \
        or f'class="avatar avatar-xs" src="{avatar}"' in html.unescape(page)
    assert page.count(avatar.split("?")[0]) >= 2
    r = c.get(srv.base + avatar)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("image/svg+xml")
    assert r.text.lstrip().startswith("<svg") and name[0].upper() in r.text
    assert "max-age" in r.headers["Cache-Control"] and r.headers["ETag"]
    r2 = c.get(srv.base + avatar, headers={"If-None-Match": r.headers["ETag"]})
    assert r2.status_code == 304 and not r2.content
    # Visitors and made-up ids get nothing.
    assert requests.get(srv.base + avatar).status_code == 404
    for bad in ("999999.svg", "0.svg", "01.svg", "1.png", "x.svg", "1.svg.svg"):
        assert c.get(srv.base + "/media/avatars/default/" + bad).status_code == 404, bad


def test_update_details_is_visible_at_once(srv):
    c, name = new_user(srv)
    assert shown(profile_page(c, srv))[0] == name  # now in the cache
    new = unique("New")
    r = post_profile(c, srv, action="profile", username=new, email=f"{new}@Example.org")
    assert r.status_code == 303 and r.headers["Location"] == "/profile"
    page = profile_page(c, srv)
    assert shown(page)[:2] == (new, f"{new}@Example.org")
    assert "Your profile has been updated." in flashes(page)
    assert sql(srv, "SELECT username FROM users WHERE username = ?", (new,)) == [(new,)]
    # The default picture's URL follows the name (its initials).
    r = c.get(srv.base + shown(page)[3])
    assert r.status_code == 200 and new[0].upper() in r.text


def test_update_details_conflicts_and_invalid_values(srv):
    c, name = new_user(srv)
    _, other = new_user(srv)
    cases = [
        (dict(username=other.upper(), email=f"{name}@example.com"), "This username is already taken."),
        (dict(username=name, email=f"{other}@EXAMPLE.com"),
         "An account with this email address already exists."),
        (dict(username="a b", email=f"{name}@example.com"),
         "A username is 3 to 32 letters, digits, dots, dashes or underscores."),
        (dict(username="ab", email=f"{name}@example.com"),
         "A username is 3 to 32 letters, digits, dots, dashes or underscores."),
        (dict(username=name, email="not-an-email"), "Enter a valid email address."),
        (dict(username="", email=""), "Choose a username."),
        (dict(username="x" * 10000, email="<script>@x"), "Enter a valid email address."),
    ]
    for data, message in cases:
        r = post_profile(c, srv, action="profile", **data)
        assert r.status_code == 400, data
        assert message in field_errors(r.text), (data, field_errors(r.text))
        # What was typed comes back (escaped).
        assert field(r.text, "username") == data["username"]
        assert "<script>@x" not in r.text
    assert shown(profile_page(c, srv))[:2] == (name, f"{name}@example.com")


def test_other_users_data_never_shown(srv):
    a, an = new_user(srv)
    b, bn = new_user(srv)
    for _ in range(3):
        assert shown(profile_page(a, srv))[0] == an
        assert shown(profile_page(b, srv))[0] == bn


def test_password_change_revokes_other_sessions(srv):
    c, name = new_user(srv)
    other = requests.Session()
    assert login(other, srv, name).status_code == 303
    assert other.get(srv.base + "/profile", allow_redirects=False).status_code == 200
    bad = [
        (dict(current_password="wrong-password", new_password="newpassword1",
              confirm_password="newpassword1"), "Your current password is not correct."),
        (dict(current_password="", new_password="newpassword1",
              confirm_password="newpassword1"), "Enter your current password."),
        (dict(current_password="password123", new_password="short",
              confirm_password="short"), None),
        (dict(current_password="password123", new_password="x" * 129,
              confirm_password="x" * 129), None),
        (dict(current_password="password123", new_password="newpassword1",
              confirm_password="newpassword2"), "The two passwords do not match."),
    ]
    for data, message in bad:
        r = post_profile(c, srv, action="password", **data)
        assert r.status_code == 400, data
        errors = field_errors(r.text)
        assert errors and (message is None or message in errors), errors
        for v in data.values():  # passwords are never sent back
            if v:
                assert f'value="{v}"' not in r.text
    assert other.get(srv.base + "/profile", allow_redirects=False).status_code == 200
    r = post_profile(c, srv, action="password", current_password="password123",
                     new_password="newpassword1", confirm_password="newpassword1")
    assert r.status_code == 303
    page = profile_page(c, srv)  # this session goes on
    assert any("password has been changed" in f for f in flashes(page))
    r = other.get(srv.base + "/profile", allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"].startswith("/login")
    assert login(requests.Session(), srv, name).status_code == 400
    assert login(requests.Session(), srv, name, "newpassword1").status_code == 303


def test_picture_upload_served_as_webp(srv):
    c, name = new_user(srv)
    before = avatar_files(srv)
    r = post_profile(c, srv, action="picture",
                     files={"picture": ("me.png", png(300, 200), "image/png")})
    assert r.status_code == 303, r.text
    page = profile_page(c, srv)
    assert "Your profile picture has been updated." in flashes(page)
    url = shown(page)[3]
    m = re.fullmatch(r"/media/avatars/([0-9a-f]{32})-256\.webp", url)
    assert m, url
    pid = m.group(1)
    assert f'src="/media/avatars/{pid}-64.webp"' in page  # the nav
    for size in (256, 64):
        r = requests.get(srv.base + f"/media/avatars/{pid}-{size}.webp")
        assert r.status_code == 200 and r.headers["Content-Type"] == "image/webp"
        assert r.content[:4] == b"RIFF" and r.content[8:12] == b"WEBP"
        assert "max-age" in r.headers["Cache-Control"] and r.headers.get("ETag")
        r2 = requests.get(srv.base + f"/media/avatars/{pid}-{size}.webp",
                          headers={"If-None-Match": r.headers["ETag"]})
        assert r2.status_code == 304
    assert sorted(set(avatar_files(srv)) - set(before)) == [f"{pid}-256.webp", f"{pid}-64.webp"]
    rows = sql(srv, "SELECT p.path, p.mime, p.width FROM pictures p JOIN users u "
               "ON u.id = p.user_id WHERE u.username = ?", (name,))
    assert rows == [(f"avatars/{pid}", "image/webp", 256)]


def test_bad_pictures_refused_nothing_stored(srv):
    c, name = new_user(srv)
    good = png(64, 64)
    cases = [
        ("text.png", b"this is not a picture at all\n" * 10, "image/png"),
        ("empty.png", b"", "image/png"),
        ("cut.png", good[: len(good) // 2], "image/png"),
        ("strip.png", png(2000, 10), "image/png"),
        ("page.svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',
         "image/svg+xml"),
    ]
    before = avatar_files(srv)
    for fname, data, ctype in cases:
        r = post_profile(c, srv, action="picture", files={"picture": (fname, data, ctype)})
        assert r.status_code == 400, fname
        errors = field_errors(r.text)
        assert len(errors) == 1 and errors[0], (fname, errors)
    # No file chosen at all.
    r = post_profile(c, srv, action="picture")
    assert r.status_code == 400 and "Choose a picture to upload." in field_errors(r.text)
    assert avatar_files(srv) == before
    assert sql(srv, "SELECT COUNT(*) FROM pictures p JOIN users u ON u.id = p.user_id "
               "WHERE u.username = ?", (name,)) == [(0,)]
    assert "/media/avatars/default/" in shown(profile_page(c, srv))[3]


def test_avatar_names_checked(srv):
    for name in ("x.webp", "0" * 32 + "-128.webp", "0" * 32 + "-256.png", "A" * 32 + "-64.webp",
                 "0" * 31 + "-64.webp", "0" * 32 + "-64.webp", "..", ".hidden-64.webp"):
        r = requests.get(srv.base + "/media/avatars/" + name)
        assert r.status_code == 404, name


def test_unknown_action_and_missing_csrf(srv):
    c, name = new_user(srv)
    assert post_profile(c, srv, action="nothing").status_code == 400
    for action in ("profile", "password", "picture"):
        r = c.post(srv.base + "/profile", data={"action": action, "username": "zzz" + name,
                                                "email": "z@example.com"},
                   allow_redirects=False)
        assert r.status_code == 400, action
    r = c.post(srv.base + "/feedback", data={"content": "hello"}, allow_redirects=False)
    assert r.status_code == 400
    assert shown(profile_page(c, srv))[0] == name
    assert sql(srv, "SELECT COUNT(*) FROM feedback f JOIN users u ON u.id = f.user_id "
               "WHERE u.username = ?", (name,)) == [(0,)]


# ---- feedback -----------------------------------------------------------------


def feedback(client, server, content, **extra):
    page = profile_page(client, server)
    data = {"csrf_token": field(page, "csrf_token"), "form_ts": field(page, "form_ts"),
            "website": "", "content": content}
    data.update(extra)
    return client.post(server.base + "/feedback", data=data, allow_redirects=False)


def test_feedback_stored(srv):
    c, name = new_user(srv)
    text = "Great app! ü 'quotes' <b>bold</b> ; DROP TABLE users; --"
    r = feedback(c, srv, text)
    assert r.status_code == 303 and r.headers["Location"] == "/profile"
    assert "Thank you for your feedback!" in flashes(profile_page(c, srv))
    r = feedback(c, srv, "é" * 2000)  # 2000 characters, 4000 bytes
    assert r.status_code == 303
    rows = sql(srv, "SELECT f.content FROM feedback f JOIN users u ON u.id = f.user_id "
               "WHERE u.username = ? ORDER BY f.id", (name,))
    assert rows == [(text,), ("é" * 2000,)]


def test_feedback_refused(srv):
    c, name = new_user(srv)
    for content, extra, message in [
        ("", {}, "Write your feedback first."),
        ("   \n ", {}, "Write your feedback first."),
        ("x" * 2001, {}, "Feedback is at most 2000 characters."),
        ("<i>spam</i>", {"website": "http://spam.example"}, None),
        ("no stamp", {"form_ts": ""}, None),
        ("forged stamp", {"form_ts": "1.abc"}, None),
    ]:
        r = feedback(c, srv, content, **extra)
        assert r.status_code == 400, content
        if message:
            assert message in field_errors(r.text)
        else:
            assert "could not be accepted" in r.text
        assert "<i>spam</i>" not in r.text
    assert sql(srv, "SELECT COUNT(*) FROM feedback f JOIN users u ON u.id = f.user_id "
               "WHERE u.username = ?", (name,)) == [(0,)]
    r = requests.post(srv.base + "/feedback", data={"content": "x"}, allow_redirects=False)
    assert r.status_code == 400  # no CSRF binding at all


# ---- the cache -------------------------------------------------------------------


def test_cache_serves_then_invalidates(srv):
    c, name = new_user(srv)
    uid = sql(srv, "SELECT id FROM users WHERE username = ?", (name,))[0][0]
    assert shown(profile_page(c, srv))[2] == 0
    now = int(time.time())
    sql(srv, "INSERT INTO messages (user_id, role, content, created_at) VALUES (?, 'user', 'a', ?),"
        " (?, 'assistant', 'b', ?)", (uid, now, uid, now))
    # Written behind the app's back: the cached count (30 s) is still shown.
    assert shown(profile_page(c, srv))[2] == 0
    # Any change of the user's own drops the entry at once.
    r = post_profile(c, srv, action="profile", username=name, email=f"{name}@example.net")
    assert r.status_code == 303
    assert shown(profile_page(c, srv))[1:3] == (f"{name}@example.net", 2)
    # So does clearing the discussion (chat.c's route).
    r = c.post(srv.base + "/clear_discussion", data={"csrf_token": csrf(c, srv)},
               allow_redirects=False)
    assert r.status_code == 303
    assert shown(profile_page(c, srv))[2] == 0


# ---- rate limits -------------------------------------------------------------------


@pytest.fixture(scope="module")
def limited():
    s = Server(env={"ECHO_ANTIBOT_MIN_MS": "0", "ECHO_RATELIMIT_ENABLED": "1"})
    yield s
    s.stop()


def test_login_limit_429_and_recovery(limited):
    time.sleep(1.1)
    c = requests.Session()
    r1 = c.post(limited.base + "/login", data={}, allow_redirects=False)
    r2 = c.post(limited.base + "/login", data={}, allow_redirects=False)
    assert r1.status_code == 400  # through the limit, refused for its missing token
    assert r1.headers["X-RateLimit-Limit"] == "1"
    assert r2.status_code == 429
    assert int(r2.headers["Retry-After"]) >= 1
    assert r2.headers["X-RateLimit-Limit"] == "1" and r2.headers["X-RateLimit-Remaining"] == "0"
    assert int(r2.headers["X-RateLimit-Reset"]) >= 1
    assert "Too many requests" in r2.text and "<html" in r2.text.lower()
    r3 = c.post(limited.base + "/login", data={}, headers={"Accept": "application/json"})
    assert r3.status_code == 429 and r3.headers["Content-Type"].startswith("application/json")
    time.sleep(1.1)
    assert c.get(limited.base + "/login").status_code == 200


@pytest.mark.parametrize("path,method,limit", [
    ("/", "GET", 5), ("/signup", "GET", 1), ("/login", "GET", 1), ("/logout", "POST", 3),
    ("/feedback", "POST", 1), ("/profile", "GET", 5), ("/clear_discussion", "POST", 1)])
def test_each_limit_of_the_table(limited, path, method, limit):
    time.sleep(1.1)  # every allowance is full again
    statuses = [requests.request(method, limited.base + path, allow_redirects=False).status_code
                for _ in range(limit + 1)]
    assert 429 not in statuses[:limit], statuses
    assert statuses[limit] == 429, statuses
    time.sleep(1.1)
    assert requests.request(method, limited.base + path,
                            allow_redirects=False).status_code != 429


def test_forwarded_for_ignored_and_static_unlimited(limited):
    time.sleep(1.1)
    codes = [requests.post(limited.base + "/login", allow_redirects=False,
                           headers={"X-Forwarded-For": f"10.0.0.{i}"}).status_code
             for i in range(3)]
    assert codes[0] != 429 and codes[1:] == [429, 429]
    codes = [requests.get(limited.base + "/media/avatars/" + "0" * 32 + "-64.webp").status_code
             for _ in range(10)]
    assert codes == [404] * 10
    assert requests.get(limited.base + "/healthz").status_code != 429


def test_limit_setting_changes_the_rule():
    s = Server(env={"ECHO_RATELIMIT_LOGIN": "3 per minute", "ECHO_RATELIMIT_ENABLED": "1"})
    try:
        codes = [requests.post(s.base + "/login", allow_redirects=False).status_code
                 for _ in range(4)]
        assert 429 not in codes[:3] and codes[3] == 429
        r = requests.post(s.base + "/login", allow_redirects=False)
        assert r.headers["X-RateLimit-Limit"] == "3" and int(r.headers["Retry-After"]) > 1
    finally:
        s.stop()


@pytest.mark.parametrize("value", ["0/second", "5/fortnight", "abc", "-1/minute", "1/"])
def test_bad_limit_setting_stops_start_up(tmp_path, value):
    env = clean_env({"ECHO_RATELIMIT_FEEDBACK": value, "ECHO_RATELIMIT_ENABLED": "1"})
    p = subprocess.run([os.path.abspath(ECHOBOT), "serve", "--host", "127.0.0.1", "--port", str(free_port()),
                        "--instance", str(tmp_path / "instance")],
                       cwd=os.environ.get("ECHO_SOURCE_DIR", os.getcwd()), env=env,
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0
    assert "ECHO_RATELIMIT_FEEDBACK" in p.stdout + p.stderr
