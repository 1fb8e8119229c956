"""test_admin.py - the admin panel (issue 8) through the real `echobot serve`:
access control (visitors to login, non-admins 403 on every /admin URL), CSRF
on every change, the generic entity views (users, roles, pictures,
feedback, messages: list, filter, sort, paginate, export, create, edit,
deactivate, delete), the last-admin rule, the audit log, and the dashboard
with its charts (SVG with one point per day, PNG, CSV, DateRange errors).

One server for the module (anti-bot delay and rate limits off); the first
admin is made with `echobot user create --admin`, as a person would.
"""
import csv
import html
import io
import os
import re
import struct
import subprocess
import sys
import time
import uuid
import zlib

import pytest
import requests

sys.path.insert(0, os.path.dirname(__file__))
from http_server import ECHOBOT, Server, clean_env, db_path, field, flashes, sql  # noqa: E402

FAST = {"ECHO_ANTIBOT_MIN_MS": "0", "ECHO_RATELIMIT_ENABLED": "0"}
PASSWORD = "password123"


@pytest.fixture(scope="module")
def srv():
    s = Server(env=FAST)
    yield s
    s.stop()





def unique(prefix="a"):
    return prefix + uuid.uuid4().hex[:10]



def errors(page):
    out = []
    for block in re.findall(r'<ul class="field-errors"[^>]*>(.*?)</ul>', page, re.S):
        out += [html.unescape(t) for t in re.findall(r"<li>([^<]*)</li>", block)]
    for block in re.findall(r'<div class="form-alert"[^>]*>(.*?)</div>', page, re.S):
        out += [html.unescape(t) for t in re.findall(r"<p>([^<]*)</p>", block)]
    return out


def signup(server, name=None):
    c = requests.Session()
    name = name or unique("u")
    page = c.get(server.base + "/signup").text
    data = {"csrf_token": field(page, "csrf_token"), "form_ts": field(page, "form_ts"),
            "website": "", "username": name, "email": f"{name}@example.com",
            "password": PASSWORD, "confirm_password": PASSWORD}
    r = c.post(server.base + "/signup", data=data, allow_redirects=False)
    assert r.status_code == 303, r.text
    return c, name


def login(server, name):
    c = requests.Session()
    page = c.get(server.base + "/login").text
    data = {"csrf_token": field(page, "csrf_token"), "form_ts": field(page, "form_ts"),
            "website": "", "username": name, "password": PASSWORD}
    r = c.post(server.base + "/login", data=data, allow_redirects=False)
    assert r.status_code == 303, r.text
    return c


def make_admin(server, name=None):
    """An admin account made from the shell, then logged in."""
    name = name or unique("adm")
    r = subprocess.run([os.path.abspath(ECHOBOT), "user", "create", "--username", name,
                        "--email", f"{name}@example.com", "--admin",
                        "--database", db_path(server)],
                       input=PASSWORD + "\n", capture_output=True, text=True,
                       env=clean_env(FAST), timeout=60)
    assert r.returncode == 0, r.stderr
    return login(server, name), name


def user_id(server, name):
    return sql(server, "SELECT id FROM users WHERE username = ?", (name,))[0][0]


def token(client, server, path="/admin/users"):
    r = client.get(server.base + path)
    assert r.status_code == 200, (path, r.status_code)
    return field(r.text, "csrf_token")


def post(client, server, path, data=None, files=None, csrf=None):
    data = dict(data or {})
    data["csrf_token"] = token(client, server) if csrf is None else csrf
    return client.post(server.base + path, data=data, files=files, allow_redirects=False)


def audit_rows(server, entity, entity_id):
    return sql(server, "SELECT action, actor_name, before_json, after_json FROM audit_log"
               " WHERE entity = ? AND entity_id = ? ORDER BY id", (entity, entity_id))


def png(width, height, rgb=(200, 40, 40)):
    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


ADMIN_GETS = ["/admin", "/admin/users", "/admin/users/export", "/admin/users/new",
              "/admin/users/1/edit", "/admin/users/1/delete", "/admin/roles", "/admin/roles/new",
              "/admin/roles/1/edit", "/admin/roles/1/delete", "/admin/pictures",
              "/admin/pictures/new", "/admin/pictures/1/delete", "/admin/feedback",
              "/admin/feedback/1/delete", "/admin/messages", "/admin/messages/1/delete",
              "/admin/audit", "/admin/audit/export", "/admin/charts/signups.svg",
              "/admin/charts/messages.png", "/admin/charts/lengths.csv"]
ADMIN_POSTS = ["/admin/users/new", "/admin/users/1/edit", "/admin/users/1/delete",
               "/admin/users/1/deactivate", "/admin/users/1/activate", "/admin/roles/new",
               "/admin/roles/1/edit", "/admin/roles/1/delete", "/admin/pictures/new",
               "/admin/pictures/1/delete", "/admin/feedback/1/delete",
               "/admin/messages/1/delete"]


# ---- access ---------------------------------------------------------------------

def test_visitor_is_sent_to_login(srv):
    for path in ADMIN_GETS:
        r = requests.get(srv.base + path, allow_redirects=False)
        assert r.status_code in (302, 303), path
        assert r.headers["Location"].startswith("/login?next="), path


def test_non_admin_gets_403_everywhere(srv):
    make_admin(srv)  # so that ids 1.. exist
    c, name = signup(srv)
    page = c.get(srv.base + "/profile").text
    assert 'href="/admin"' not in page  # no Admin link for them
    csrf = field(page, "csrf_token")
    count = sql(srv, "SELECT count(*) FROM audit_log")[0][0]
    for path in ADMIN_GETS:
        assert c.get(srv.base + path, allow_redirects=False).status_code == 403, path
    for path in ADMIN_POSTS:
        r = c.post(srv.base + path, data={"csrf_token": csrf, "username": "x", "user_id": "1",
                                          "name": "admin"}, allow_redirects=False)
        assert r.status_code == 403, path
    assert sql(srv, "SELECT count(*) FROM audit_log")[0][0] == count
    # Granting the role opens the panel (roles are read per request).
    sql(srv, "INSERT INTO roles (user_id, name, created_at) VALUES (?, 'admin', 0)",
        (user_id(srv, name),))
    r = c.get(srv.base + "/admin")
    assert r.status_code == 200
    assert 'href="/admin"' in r.text


def test_csrf_required_on_every_change(srv):
    c, admin = make_admin(srv)
    _, victim = signup(srv)
    vid = user_id(srv, victim)
    before = sql(srv, "SELECT username, is_active FROM users WHERE id = ?", (vid,))
    roles_before = sql(srv, "SELECT count(*) FROM roles")[0][0]
    count = sql(srv, "SELECT count(*) FROM audit_log")[0][0]
    bad = {"username": "changed" + victim, "email": f"x{victim}@example.com", "user_id": str(vid),
           "name": "moderator", "is_active": "1"}
    for path in [p.replace("/1/", f"/{vid}/") for p in ADMIN_POSTS]:
        for csrf in ("", "wrong-token"):
            data = dict(bad)
            if csrf:
                data["csrf_token"] = csrf
            r = c.post(srv.base + path, data=data, allow_redirects=False)
            assert r.status_code == 400, (path, csrf, r.status_code)
    assert sql(srv, "SELECT username, is_active FROM users WHERE id = ?", (vid,)) == before
    assert sql(srv, "SELECT count(*) FROM roles")[0][0] == roles_before
    assert sql(srv, "SELECT count(*) FROM audit_log")[0][0] == count


# ---- users ------------------------------------------------------------------------

def test_create_edit_deactivate_delete_user(srv):
    c, admin = make_admin(srv)
    name = unique("new")
    r = post(c, srv, "/admin/users/new", {"username": name, "email": f"{name}@example.com",
                                          "password": PASSWORD, "roles": ["moderator", "user"],
                                          "is_active": "1"})
    assert r.status_code == 303, r.text
    assert r.headers["Location"] == "/admin/users"
    uid = user_id(srv, name)
    assert f"User {uid} created." in flashes(c.get(srv.base + "/admin/users").text)
    assert sorted(x[0] for x in sql(srv, "SELECT name FROM roles WHERE user_id = ?", (uid,))) \
        == ["moderator", "user"]
    # The new account logs in with its password.
    person = login(srv, name)
    assert person.get(srv.base + "/profile").status_code == 200
    rows = audit_rows(srv, "users", uid)
    assert rows[0][0] == "create" and rows[0][1] == admin and rows[0][2] is None
    assert '"username":"%s"' % name in rows[0][3]
    assert "password" not in rows[0][3].replace("has_password", "")

    # Bad input: every field's message, nothing stored.
    r = post(c, srv, "/admin/users/new", {"username": "x", "email": "nope", "password": "short"})
    assert r.status_code == 400
    errs = errors(r.text)
    assert any("username" in e.lower() for e in errs)
    assert "Enter a valid email address." in errs
    assert any("8" in e for e in errs)
    # A tampered role checkbox is refused, not dropped.
    other = unique("new")
    r = post(c, srv, "/admin/users/new", {"username": other, "email": f"{other}@example.com",
                                          "password": PASSWORD, "roles": ["user", "superuser"],
                                          "is_active": "1"})
    assert r.status_code == 400
    assert any("Only admin, user and moderator" in e for e in errors(r.text))
    assert not sql(srv, "SELECT id FROM users WHERE username = ?", (other,))
    r = post(c, srv, f"/admin/users/{uid}/edit", {"username": name, "email": f"{name}@example.com",
                                                  "roles": ["admin", "superuser"],
                                                  "is_active": "1"})
    assert r.status_code == 400
    assert [x[0] for x in sql(srv, "SELECT name FROM roles WHERE user_id = ? ORDER BY name",
                              (uid,))] == ["moderator", "user"]
    r = post(c, srv, "/admin/users/new", {"username": name.upper(), "email": "o@example.com",
                                          "password": PASSWORD})
    assert r.status_code == 400 and "This username is already taken." in errors(r.text)

    # Edit: the form starts from the row; the password is optional.
    page = c.get(srv.base + f"/admin/users/{uid}/edit").text
    assert field(page, "username") == name
    assert re.search(r'value="moderator" checked', page)
    r = post(c, srv, f"/admin/users/{uid}/edit", {"username": name + "x",
                                                  "email": f"{name}@example.com",
                                                  "password": "", "roles": ["user"],
                                                  "is_active": "1"})
    assert r.status_code == 303, r.text
    assert sql(srv, "SELECT username FROM users WHERE id = ?", (uid,))[0][0] == name + "x"
    assert [x[0] for x in sql(srv, "SELECT name FROM roles WHERE user_id = ?", (uid,))] == ["user"]
    last = audit_rows(srv, "users", uid)[-1]
    assert last[0] == "update" and '"moderator"' in last[2] and '"moderator"' not in last[3]
    # Still logged in (password unchanged, still active).
    assert person.get(srv.base + "/profile", allow_redirects=False).status_code == 200

    # Deactivate: the person's session ends at once.
    r = post(c, srv, f"/admin/users/{uid}/deactivate")
    assert r.status_code == 303
    assert sql(srv, "SELECT is_active FROM users WHERE id = ?", (uid,))[0][0] == 0
    assert person.get(srv.base + "/profile", allow_redirects=False).status_code in (302, 303)
    assert sql(srv, "SELECT count(*) FROM sessions WHERE user_id = ?", (uid,))[0][0] == 0
    assert audit_rows(srv, "users", uid)[-1][0] == "deactivate"
    r = post(c, srv, f"/admin/users/{uid}/activate")
    assert r.status_code == 303
    assert sql(srv, "SELECT is_active FROM users WHERE id = ?", (uid,))[0][0] == 1

    # Delete: a confirmation page, then everything of the user goes.
    person = login(srv, name + "x")
    sql(srv, "INSERT INTO messages (user_id, role, content, created_at) VALUES (?, 'user', 'hi', 1)",
        (uid,))
    sql(srv, "INSERT INTO feedback (user_id, content, created_at) VALUES (?, 'fb', 1)", (uid,))
    r = post(c, srv, "/admin/pictures/new", {"user_id": str(uid)},
             files={"picture": ("p.png", png(40, 30), "image/png")})
    assert r.status_code == 303, r.text
    path = sql(srv, "SELECT path FROM pictures WHERE user_id = ?", (uid,))[0][0]
    files = [os.path.join(srv.dir, "instance", path + s) for s in ("-256.webp", "-64.webp")]
    assert all(os.path.exists(f) for f in files)
    page = c.get(srv.base + f"/admin/users/{uid}/delete").text
    assert "This cannot be undone." in page and html.escape(name + "x") in page
    assert "<dt>message count</dt><dd>1</dd>" in page
    r = post(c, srv, f"/admin/users/{uid}/delete")
    assert r.status_code == 303
    for table in ("users", "messages", "feedback", "pictures", "roles", "sessions"):
        col = "id" if table == "users" else "user_id"
        assert sql(srv, f"SELECT count(*) FROM {table} WHERE {col} = ?", (uid,))[0][0] == 0, table
    assert not any(os.path.exists(f) for f in files)
    assert person.get(srv.base + "/profile", allow_redirects=False).status_code in (302, 303)
    rows = audit_rows(srv, "users", uid)
    assert rows[-1][0] == "delete" and rows[-1][3] is None and name + "x" in rows[-1][2]
    assert c.get(srv.base + f"/admin/users/{uid}/delete").status_code == 404


def test_list_search_sort_paginate_filter_export(srv):
    c, admin = make_admin(srv)
    tag = uuid.uuid4().hex[:6]
    names = [f"zz{tag}{i:02d}" for i in range(30)]
    for i, n in enumerate(names):
        sql(srv, "INSERT INTO users (username, email, is_active, created_at) VALUES (?, ?, 1, ?)",
            (n, f"{n}@example.com" if i != 3 else f"=cmd|calc{tag}@example.com",
             1600000000 + i * 86400))
    r = c.get(srv.base + f"/admin/users?q=zz{tag}")
    assert r.status_code == 200
    assert f"30 users" in r.text
    shown = re.findall(r'<td class="col-username">([^<]*)</td>', r.text)
    assert len(shown) == 25
    # Sort by username ascending, second page, 25 per page.
    r = c.get(srv.base + f"/admin/users?q=zz{tag}&sort=username&dir=asc&page=2")
    assert re.findall(r'<td class="col-username">([^<]*)</td>', r.text) == names[25:]
    # The sort and page links keep the search.
    assert f"q=zz{tag}" in html.unescape(re.search(r'rel="next"|href="([^"]*sort=email[^"]*)"',
                                                   r.text).group(0))
    r = c.get(srv.base + f"/admin/users?q=zz{tag}&sort=username&dir=desc&per_page=50")
    assert re.findall(r'<td class="col-username">([^<]*)</td>', r.text) == names[::-1]
    # Date range filter: the first 5 days of the series.
    r = c.get(srv.base + f"/admin/users?q=zz{tag}&from=2020-09-13&to=2020-09-17&sort=id&dir=asc")
    got = re.findall(r'<td class="col-username">([^<]*)</td>', r.text)
    assert got == names[0:5], got
    # user_id filter.
    uid = user_id(srv, names[7])
    r = c.get(srv.base + f"/admin/users?user_id={uid}")
    assert re.findall(r'<td class="col-username">([^<]*)</td>', r.text) == [names[7]]
    # Bad filters are form errors, not crashes.
    r = c.get(srv.base + "/admin/users?user_id=abc&from=2020-02-30&to=yesterday")
    assert r.status_code == 400
    errs = errors(r.text)
    assert "A user id is a positive number." in errs
    assert errs.count("Enter a date as YYYY-MM-DD.") == 2
    r = c.get(srv.base + "/admin/users?from=2021-01-02&to=2021-01-01")
    assert r.status_code == 400 and "The start date is after the end date." in errors(r.text)
    # Hostile search text is just text (bound, escaped).
    r = c.get(srv.base + "/admin/users", params={"q": "'%_\\\" OR 1=1 --<script>"})
    assert r.status_code == 200 and "<script>" not in r.text and "0 users" in r.text
    # Column headers through underscore_separate.
    assert "last login at" in r.text and "message count" in r.text
    # CSV export of the filtered list: all 30 rows, formula cells defused.
    r = c.get(srv.base + f"/admin/users/export?q=zz{tag}")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in r.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0][:3] == ["id", "username", "email"]
    assert len(rows) == 31
    emails = [row[2] for row in rows[1:]]
    assert f"'=cmd|calc{tag}@example.com" in emails
    assert not any(e.startswith("=") for e in emails)
    assert c.get(srv.base + "/admin/users/export?user_id=-1").status_code == 400
    # The export link keeps the list's order too, and the export follows it.
    page = c.get(srv.base + f"/admin/users?q=zz{tag}&sort=username&dir=desc").text
    export = html.unescape(re.search(r'href="([^"]*/export[^"]*)"', page).group(1))
    assert "sort=username" in export and "dir=desc" in export and f"q=zz{tag}" in export
    rows = list(csv.reader(io.StringIO(c.get(srv.base + export).text)))
    assert [row[1] for row in rows[1:]] == names[::-1]
    # Times in the export are ISO 8601 UTC.
    assert rows[-1][5] == "2020-09-13T12:26:40Z"
    # An unsorted column sorts ascending first, the sorted one flips.
    heads = dict((m[1], html.unescape(m[0])) for m in
                 re.findall(r'<th[^>]*><a href="([^"]*sort=([a-z_]+)[^"]*)">', page))
    assert "dir=asc" in heads["email"] and "dir=asc" in heads["username"]
    page = c.get(srv.base + f"/admin/users?q=zz{tag}&sort=username&dir=asc").text
    heads = dict((m[1], html.unescape(m[0])) for m in
                 re.findall(r'<th[^>]*><a href="([^"]*sort=([a-z_]+)[^"]*)">', page))
    assert "dir=desc" in heads["username"] and "dir=asc" in heads["email"]
    # A page past the end goes to the last page, keeping the filter and order.
    r = c.get(srv.base + f"/admin/users?q=zz{tag}&sort=username&dir=asc&page=999",
              allow_redirects=False)
    assert r.status_code == 302 and "page=2" in r.headers["Location"]
    assert f"q=zz{tag}" in r.headers["Location"] and "sort=username" in r.headers["Location"]
    r = c.get(srv.base + f"/admin/users?q=zz{tag}&page=999")
    assert re.findall(r'<td class="col-username">([^<]*)</td>', r.text) == names[:5][::-1]
    r = c.get(srv.base + "/admin/users?q=nobody-at-all&page=3", allow_redirects=False)
    assert r.status_code == 302 and "&page=" not in r.headers["Location"]
    # One row: singular noun.
    r = c.get(srv.base + f"/admin/users?user_id={uid}")
    assert ">1 user · page 1 of 1<" in r.text


def test_last_admin_protection(srv):
    # A server of its own: exactly one admin.
    s = Server(env=FAST)
    try:
        c, admin = make_admin(s)
        aid = user_id(s, admin)
        role_id = sql(s, "SELECT id FROM roles WHERE user_id = ? AND name = 'admin'", (aid,))[0][0]
        r = post(c, s, f"/admin/users/{aid}/delete")
        assert r.status_code == 400 and any("last admin" in e for e in errors(r.text))
        r = post(c, s, f"/admin/users/{aid}/edit", {"username": admin,
                                                    "email": f"{admin}@example.com",
                                                    "roles": ["user"], "is_active": "1"})
        assert r.status_code == 400 and any("last admin" in e for e in errors(r.text))
        r = post(c, s, f"/admin/users/{aid}/deactivate")
        assert r.status_code == 303
        assert any("last admin" in f for f in flashes(c.get(s.base + "/admin/users").text))
        r = post(c, s, f"/admin/roles/{role_id}/delete")
        assert r.status_code == 400
        r = post(c, s, f"/admin/roles/{role_id}/edit", {"user_id": str(aid), "name": "user"})
        assert r.status_code == 400 and any("last admin" in e for e in errors(r.text))
        assert sql(s, "SELECT is_active FROM users WHERE id = ?", (aid,))[0][0] == 1
        assert sql(s, "SELECT name FROM roles WHERE id = ?", (role_id,))[0][0] == "admin"
        assert sql(s, "SELECT count(*) FROM audit_log")[0][0] == 0
        # With a second admin, the first may step down (even themselves).
        c2, admin2 = make_admin(s)
        r = post(c, s, f"/admin/users/{aid}/edit", {"username": admin,
                                                    "email": f"{admin}@example.com",
                                                    "roles": ["user"], "is_active": "1"})
        assert r.status_code == 303
        assert c.get(s.base + "/admin", allow_redirects=False).status_code == 403
        # And the remaining one cannot delete themselves.
        aid2 = user_id(s, admin2)
        assert post(c2, s, f"/admin/users/{aid2}/delete").status_code == 400
    finally:
        s.stop()


# ---- roles, pictures, feedback, messages ---------------------------------------------

def test_roles_create_edit_delete(srv):
    c, admin = make_admin(srv)
    _, person = signup(srv)
    pid = user_id(srv, person)
    r = post(c, srv, "/admin/roles/new", {"user_id": str(pid), "name": "moderator"})
    assert r.status_code == 303, r.text
    rid = sql(srv, "SELECT id FROM roles WHERE user_id = ? AND name = 'moderator'", (pid,))[0][0]
    r = post(c, srv, "/admin/roles/new", {"user_id": str(pid), "name": "moderator"})
    assert r.status_code == 400 and "This user holds this role already." in errors(r.text)
    r = post(c, srv, "/admin/roles/new", {"user_id": "999999999", "name": "beta_tester"})
    assert r.status_code == 400 and "There is no user with this id." in errors(r.text)
    for bad in ("Admin", "x", "a" * 33, "no-dash", "ünï"):
        r = post(c, srv, "/admin/roles/new", {"user_id": str(pid), "name": bad})
        assert r.status_code == 400, bad
    r = post(c, srv, "/admin/roles/new", {"user_id": "no such one", "name": "beta_tester"})
    assert r.status_code == 400 and "Enter a username or the id of a user." in errors(r.text)
    r = post(c, srv, "/admin/roles/new", {"user_id": unique("nobody"), "name": "beta_tester"})
    assert r.status_code == 400 and "There is no user with this username." in errors(r.text)
    # The form offers the known roles and the users; a username is resolved to the id.
    page = c.get(srv.base + "/admin/roles/new").text
    assert '<option value="moderator">' in page and '<input class="input" id="f-name"' in page
    assert re.search(r'<option value="%s">#%d</option>' % (re.escape(person), pid), page)
    r = post(c, srv, "/admin/roles/new", {"user_id": person, "name": "beta_tester"})
    assert r.status_code == 303, r.text
    assert sql(srv, "SELECT count(*) FROM roles WHERE user_id = ? AND name = 'beta_tester'",
               (pid,))[0][0] == 1
    page = c.get(srv.base + f"/admin/roles?user_id={pid}").text
    assert "beta_tester" in page and "moderator" in page
    r = post(c, srv, f"/admin/roles/{rid}/edit", {"user_id": str(pid), "name": "editor"})
    assert r.status_code == 303
    assert sql(srv, "SELECT name FROM roles WHERE id = ?", (rid,))[0][0] == "editor"
    r = post(c, srv, f"/admin/roles/{rid}/delete")
    assert r.status_code == 303
    assert sql(srv, "SELECT count(*) FROM roles WHERE id = ?", (rid,))[0][0] == 0
    assert [a[0] for a in audit_rows(srv, "roles", rid)] == ["create", "update", "delete"]
    assert c.get(srv.base + "/admin/roles/99999999/edit").status_code == 404
    assert c.get(srv.base + "/admin/roles/abc/edit").status_code == 404


def test_pictures_upload_list_delete(srv):
    c, admin = make_admin(srv)
    _, person = signup(srv)
    pid = user_id(srv, person)
    r = post(c, srv, "/admin/pictures/new", {"user_id": str(pid)},
             files={"picture": ("x.png", png(64, 48), "image/png")})
    assert r.status_code == 303, r.text
    pic = sql(srv, "SELECT id, path FROM pictures WHERE user_id = ?", (pid,))[0]
    page = c.get(srv.base + f"/admin/pictures?user_id={pid}").text
    thumb = re.search(r'<img class="admin-thumb" src="([^"]*)" width="64" height="64"',
                      page).group(1)
    assert "<th scope=\"col\">picture</th>" in page and "thumbnail" not in page
    r = c.get(srv.base + thumb)
    assert r.status_code == 200 and r.content[:4] == b"RIFF"
    # Not a picture, no file, no such user: form errors, nothing stored.
    r = post(c, srv, "/admin/pictures/new", {"user_id": str(pid)},
             files={"picture": ("x.png", b"not an image at all", "image/png")})
    assert r.status_code == 400 and errors(r.text)
    r = post(c, srv, "/admin/pictures/new", {"user_id": str(pid)},
             files={"picture": ("", b"", "application/octet-stream")})
    assert r.status_code == 400 and "Choose a picture to upload." in errors(r.text)
    r = post(c, srv, "/admin/pictures/new", {"user_id": "99999999"},
             files={"picture": ("x.png", png(10, 10), "image/png")})
    assert r.status_code == 400 and "There is no user with this id." in errors(r.text)
    assert sql(srv, "SELECT count(*) FROM pictures WHERE user_id = ?", (pid,))[0][0] == 1
    r = post(c, srv, f"/admin/pictures/{pic[0]}/delete")
    assert r.status_code == 303
    assert not os.path.exists(os.path.join(srv.dir, "instance", pic[1] + "-256.webp"))
    # Picture ids may be reused after a delete: the last two rows are ours.
    assert [a[0] for a in audit_rows(srv, "pictures", pic[0])][-2:] == ["create", "delete"]


def test_feedback_and_messages_read_only_lists(srv):
    c, admin = make_admin(srv)
    _, person = signup(srv)
    pid = user_id(srv, person)
    evil = '<script>alert("x")</script> & =1+1'
    sql(srv, "INSERT INTO feedback (user_id, content, created_at) VALUES (?, ?, ?)",
        (pid, evil, int(time.time())))
    sql(srv, "INSERT INTO messages (user_id, role, content, created_at) VALUES (?, 'user', ?, ?)",
        (pid, evil, int(time.time())))
    fid = sql(srv, "SELECT id FROM feedback WHERE user_id = ?", (pid,))[0][0]
    mid = sql(srv, "SELECT id FROM messages WHERE user_id = ?", (pid,))[0][0]
    for entity, rid in (("feedback", fid), ("messages", mid)):
        page = c.get(srv.base + f"/admin/{entity}?user_id={pid}").text
        assert "<script>alert" not in page
        assert html.escape(evil, quote=False) in page or "&lt;script&gt;" in page
        assert person in page
        assert f"/admin/{entity}/new" not in page and "/edit" not in page
        assert c.get(srv.base + f"/admin/{entity}/new").status_code in (404, 405)
        rows = list(csv.reader(io.StringIO(c.get(srv.base + f"/admin/{entity}/export?user_id={pid}").text)))
        assert len(rows) == 2
        assert (">1 feedback entry · " if entity == "feedback" else ">1 message · ") in page
        r = post(c, srv, f"/admin/{entity}/{rid}/delete")
        assert r.status_code == 303
        assert audit_rows(srv, entity, rid)[0][0] == "delete"
    assert sql(srv, "SELECT count(*) FROM feedback WHERE id = ?", (fid,))[0][0] == 0
    assert sql(srv, "SELECT count(*) FROM messages WHERE id = ?", (mid,))[0][0] == 0


def test_admin_slash_redirects(srv):
    c, _ = make_admin(srv)
    r = c.get(srv.base + "/admin/", allow_redirects=False)
    assert r.status_code == 301 and r.headers["Location"] == "/admin"
    r = c.get(srv.base + "/admin/?from=2024-01-01&to=2024-01-31", allow_redirects=False)
    assert r.headers["Location"] == "/admin?from=2024-01-01&to=2024-01-31"
    # Still only for admins.
    person, _ = signup(srv)
    assert person.get(srv.base + "/admin/", allow_redirects=False).status_code == 403


def test_audit_log_page(srv):
    c, admin = make_admin(srv)
    _, person = signup(srv)
    post(c, srv, "/admin/roles/new", {"user_id": str(user_id(srv, person)), "name": "tester"})
    aid = user_id(srv, admin)
    page = c.get(srv.base + f"/admin/audit?user_id={aid}").text
    assert "tester" in page and admin in page and ">create<" in page
    assert "/admin/audit/new" not in page
    # A deactivation shows what changed, not a cut JSON text; the whole
    # before/after stays on the page, folded.
    pid = user_id(srv, person)
    assert post(c, srv, f"/admin/users/{pid}/deactivate").status_code == 303
    page = c.get(srv.base + f"/admin/audit?user_id={aid}").text
    row = re.search(r'<tr data-id="\d+">(.*?)</tr>', page, re.S).group(1)
    assert ">deactivate<" in row
    changes = re.search(r'<td class="col-changes">(.*?)</td>', row, re.S).group(1)
    assert [html.unescape(x) for x in re.findall(r"<li>(.*?)</li>", changes)] == \
        ["is_active: true -> false"]
    before = html.unescape(re.search(r'<td class="col-before">.*?<pre>(.*?)</pre>', row,
                                     re.S).group(1))
    assert '"username":"%s"' % person in before and before.endswith("}")
    # The export has the same lines and ISO times.
    rows = list(csv.DictReader(io.StringIO(c.get(srv.base + f"/admin/audit/export?user_id={aid}").text)))
    assert rows[0]["changes"] == "is_active: true -> false"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", rows[0]["created_at"])


# ---- dashboard and charts ---------------------------------------------------------

def day(ts):
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def test_dashboard_and_charts(srv):
    c, admin = make_admin(srv)
    now = int(time.time())
    _, person = signup(srv)
    pid = user_id(srv, person)
    for i in range(5):
        sql(srv, "INSERT INTO messages (user_id, role, content, created_at, completion_tokens,"
            " tokens_per_second) VALUES (?, 'assistant', 'a', ?, ?, 10.0)",
            (pid, now - i * 86400, 20 + i * 30))
    r = c.get(srv.base + "/admin")
    assert r.status_code == 200
    users = sql(srv, "SELECT count(*) FROM users")[0][0]
    assert f'<dd id="total-users">{users}</dd>' in r.text
    assert 'id="chart-signups"' in r.text and 'id="chart-lengths"' in r.text
    assert re.search(r'<img class="chart-img" src="/admin/charts/signups.svg\?from=', r.text)
    # The signups SVG: one point per day of the default 30-day range.
    svg = c.get(srv.base + "/admin/charts/signups.svg")
    assert svg.status_code == 200 and svg.headers["Content-Type"].startswith("image/svg+xml")
    assert svg.text.startswith("<svg")
    assert len(re.findall(r'<[a-z]+ class="pt"', svg.text)) == 30
    assert f'data-label="{day(now)}"' in svg.text
    assert "<title>" in svg.text and "<desc>" in svg.text
    # A range across a year end: one point per day, zeros included.
    svg = c.get(srv.base + "/admin/charts/messages.svg?from=2019-12-20&to=2020-01-10").text
    points = re.findall(r'<[a-z]+ class="pt"[^>]* data-label="([0-9-]+)" data-value="([^"]*)"', svg)
    assert len(points) == 22 and points[0][0] == "2019-12-20" and points[-1][0] == "2020-01-10"
    assert all(float(v) == 0 for _, v in points)
    # The page: charts drawn at the cards' width, no title above the chart's own.
    r = c.get(srv.base + "/admin")
    assert re.search(r'<img class="chart-img"[^>]* width="1100" height="400"', r.text)
    assert "<h2>Signups per day</h2>" not in r.text
    assert 'width="1100" height="400" viewBox="0 0 1100 400"' in \
        c.get(srv.base + "/admin/charts/messages.svg").text
    # A range without data says so; one signup is "1 signup".
    r = c.get(srv.base + "/admin?from=1991-01-01&to=1991-01-10")
    assert "No signups from 1991-01-01 to 1991-01-10." in r.text
    assert "No messages from 1991-01-01 to 1991-01-10." in r.text and "with 0" not in r.text
    sql(srv, "UPDATE users SET created_at = ? WHERE id = ?", (794880000, pid))  # 1995-03-11
    r = c.get(srv.base + "/admin?from=1995-03-01&to=1995-03-20")
    assert "1 signup from 1995-03-01 to 1995-03-20; the busiest day was 1995-03-11 with 1." \
        in r.text and "1 user in total" in r.text
    r = c.get(srv.base + "/admin/charts/signups.csv?from=%s&to=%s" % (day(now - 2 * 86400), day(now)))
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0] == ["date", "count", "cumulative"] and len(rows) == 4
    assert int(rows[-1][2]) == users
    r = c.get(srv.base + "/admin/charts/lengths.csv")
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0] == ["tokens", "count"]
    assert sum(int(x[1]) for x in rows[1:]) >= 5
    r = c.get(srv.base + "/admin/charts/messages.png")
    assert r.status_code == 200 and r.content[:8] == b"\x89PNG\r\n\x1a\n"
    # DateRange errors are shown on the form.
    for q, msg in (("from=2024-02-01&to=2024-01-01", "The start date is after the end date."),
                   ("from=2015-01-01&to=2024-01-01", "A range is at most 5 years."),
                   ("from=2024-13-01", "Enter the start date as YYYY-MM-DD."),
                   ("to=2024-01-1x", "Enter the end date as YYYY-MM-DD.")):
        r = c.get(srv.base + "/admin?" + q)
        assert r.status_code == 400 and msg in errors(r.text), q
        name = "signups.svg?" + q
        assert c.get(srv.base + "/admin/charts/" + name).status_code == 400
    # The page keeps its SVGs for the image requests; a change through the
    # panel drops them, so the admin's own change shows at once.
    c.get(srv.base + "/admin")
    before = c.get(srv.base + "/admin/charts/signups.svg").text
    name = unique("chart")
    r = post(c, srv, "/admin/users/new", {"username": name, "email": f"{name}@example.com",
                                          "password": PASSWORD, "is_active": "1"})
    assert r.status_code == 303
    after = c.get(srv.base + "/admin/charts/signups.svg").text
    total = sql(srv, "SELECT count(*) FROM users")[0][0]
    assert after != before and f"(total {total:,})" in after
    assert c.get(srv.base + "/admin/charts/nothing.svg").status_code == 404
    assert c.get(srv.base + "/admin/charts/signups.exe").status_code == 404


def test_admin_password_change_ends_sessions_and_is_audited(srv):
    c, admin = make_admin(srv)
    c2 = login(srv, admin)  # the admin's other session
    _, name = signup(srv)
    uid = user_id(srv, name)
    person = login(srv, name)
    other = login(srv, name)
    assert person.get(srv.base + "/profile", allow_redirects=False).status_code == 200
    page = c.get(srv.base + f"/admin/users/{uid}/edit").text
    assert "Leave empty to keep it." in page
    assert "Leave empty to keep it." not in c.get(srv.base + "/admin/users/new").text
    new_password = "another-pass-456"
    r = post(c, srv, f"/admin/users/{uid}/edit", {"username": name,
                                                  "email": f"{name}@example.com",
                                                  "password": new_password, "roles": ["user"],
                                                  "is_active": "1"})
    assert r.status_code == 303, r.text
    # Every session of that person ends; the new password works.
    assert sql(srv, "SELECT count(*) FROM sessions WHERE user_id = ?", (uid,))[0][0] == 0
    for cl in (person, other):
        assert cl.get(srv.base + "/profile", allow_redirects=False).status_code in (302, 303)
    hash_ = sql(srv, "SELECT password_hash FROM users WHERE id = ?", (uid,))[0][0]
    action, actor, before, after = audit_rows(srv, "users", uid)[-1]
    assert action == "update" and actor == admin
    assert '"password_changed":true' in after and "password_changed" not in before
    assert hash_ not in after and hash_ not in before
    # A save without a password keeps the sessions and records no change of it.
    c3 = requests.Session()
    page = c3.get(srv.base + "/login").text
    r = c3.post(srv.base + "/login", data={
        "csrf_token": field(page, "csrf_token"), "form_ts": field(page, "form_ts"),
        "website": "", "username": name, "password": new_password}, allow_redirects=False)
    assert r.status_code == 303
    r = post(c, srv, f"/admin/users/{uid}/edit", {"username": name,
                                                  "email": f"{name}@example.com",
                                                  "password": "", "roles": ["user"],
                                                  "is_active": "1"})
    assert r.status_code == 303
    assert c3.get(srv.base + "/profile", allow_redirects=False).status_code == 200
    assert "password_changed" not in audit_rows(srv, "users", uid)[-1][3]
    # An admin setting their own password keeps the session doing it, not the others.
    aid = user_id(srv, admin)
    r = post(c, srv, f"/admin/users/{aid}/edit", {"username": admin,
                                                  "email": f"{admin}@example.com",
                                                  "password": new_password,
                                                  "roles": ["admin"], "is_active": "1"})
    assert r.status_code == 303, r.text
    assert c.get(srv.base + "/admin/users", allow_redirects=False).status_code == 200
    assert c2.get(srv.base + "/admin/users", allow_redirects=False).status_code in (302, 303)
