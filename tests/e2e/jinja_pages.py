"""jinja_pages.py - renders Echo's templates with the real Jinja2, for tests.

The C template engine (src/tmpl/) implements a Jinja2 subset; rendering the
same templates with Jinja2 itself (autoescape on, the default lenient
Undefined) proves their syntax and escaping independently of the C code.
This module holds the environment (with the custom filters of the C engine:
datetime, underscore_separate, get_att), the sample contexts that follow the
context contract of docs/TEMPLATES.md, and a CLI used by the node browser
tests:

    /usr/bin/python3 tests/e2e/jinja_pages.py OUTDIR   # writes OUTDIR/<sample>.html

It is a helper, not a test file (pytest collects only test_*.py).
"""
import datetime as _dt
import os
import sys

import jinja2

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TEMPLATES = os.path.join(ROOT, "templates")

# A fixed clock so rendered dates do not change between runs.
NOW = 1764000000  # 2025-11-24 16:00 UTC


def _datetime(value, fmt="%Y-%m-%d %H:%M"):
    """The C engine's datetime filter: unix seconds -> UTC text."""
    try:
        ts = int(value)
    except (TypeError, ValueError):
        return ""
    return _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).strftime(fmt)


def _underscore_separate(value):
    return str(value).replace("_", " ")


def _get_att(row, name):
    if isinstance(row, dict):
        return row.get(name, "")
    return getattr(row, name, "")


def make_env():
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.Undefined,
    )
    env.filters["datetime"] = _datetime
    env.filters["underscore_separate"] = _underscore_separate
    env.filters["get_att"] = _get_att
    return env


XSS = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'
ATTR_XSS = '" autofocus onfocus="window.__xss=3" x="'

SITE = {"name": "Echo"}
ANTIBOT = {"honeypot_name": "website", "ts_field_name": "form_ts",
           "ts_field_value": "1764000000.9f86d081884c7d659a2feaa0c55ad015"}
CSRF = "csrf-TOKEN-0123456789abcdef"

USER = {"id": 7, "username": "ada", "email": "ada@example.org", "is_admin": False,
        "avatar_url": "", "created_at": NOW - 86400 * 40}
ADMIN = dict(USER, id=1, username="grace", email="grace@example.org", is_admin=True)

MODEL_READY = {"ready": True, "name": "Qwen2.5-1.5B-Instruct",
               "install_command": "make model"}
MODEL_MISSING = {"ready": False, "name": "Qwen2.5-1.5B-Instruct",
                 "install_command": "make model"}

ANSWER_MD = """Here is a quick comparison of **lists** and *tuples* in Python:

| | list | tuple |
|---|---|---|
| mutable | yes | no |
| syntax | `[1, 2]` | `(1, 2)` |

To reverse a list in place:

```python
items = [3, 1, 2]
items.reverse()
print(items)  # a rather long comment that makes this line wider than a phone screen, to check horizontal scrolling
```

1. Lists grow with `append()`.
2. Tuples can be dictionary keys.

> Tip: prefer tuples for fixed records.

More at [the docs](https://docs.python.org/3/tutorial/datastructures.html)."""

MESSAGES = [
    {"id": 1, "role": "user", "content": "What is the difference between a list and a tuple?",
     "created_at": NOW - 3600},
    {"id": 2, "role": "assistant", "content": ANSWER_MD, "created_at": NOW - 3590,
     "finish_reason": "stop", "completion_tokens": 142, "tokens_per_second": 11.84},
    {"id": 3, "role": "user", "content": "Show me " + XSS + "\nas text, please.",
     "created_at": NOW - 600},
    {"id": 4, "role": "assistant",
     "content": "Raw HTML is not rendered: " + XSS + "\n\n[click](javascript:window.__xss=4)",
     "created_at": NOW - 590, "finish_reason": "cancelled", "completion_tokens": 17,
     "tokens_per_second": 9.5},
    {"id": 5, "role": "user", "content": "Write a long essay.", "created_at": NOW - 120},
    {"id": 6, "role": "assistant", "content": "Once upon a time, there was a",
     "created_at": NOW - 110, "finish_reason": "length", "completion_tokens": 8,
     "tokens_per_second": 12.0},
]


def base(user=None, **extra):
    ctx = {"site": SITE, "user": user, "csrf_token": CSRF, "flashes": [], "active": ""}
    ctx.update(extra)
    return ctx


def _profile(user, **extra):
    return {"username": user["username"], "email": user["email"],
            "created_at": user["created_at"], "message_count": 6,
            "avatar_url": user["avatar_url"], **extra}


SIGNUP_ERRORS = {
    "data": {"username": XSS, "email": ATTR_XSS, "password": "hunter2-secret"},
    "errors": {"username": ["Use 3 to 32 letters, digits, dots, dashes or underscores."],
               "email": ["Enter a valid email address.", "This email is already registered."],
               "password": ["Use at least 8 characters."],
               "confirm_password": ["The passwords do not match."]},
    "form_errors": ["Please correct the fields below."],
}

# name -> (template, context). Names become the file names of the CLI output.
SAMPLES = {
    "landing": ("index.html", base(active="home", model=MODEL_READY)),
    "landing_flashes": ("index.html", base(flashes=[
        {"category": "success", "text": "You have been logged out."},
        {"category": "info", "text": "Echo will be down for maintenance at 22:00."},
        {"category": "warning", "text": "Your session is about to expire."},
        {"category": "error", "text": "Something failed: " + XSS},
    ])),
    "signup": ("auth/signup.html", base(active="signup", form=None, antibot=ANTIBOT)),
    "signup_errors": ("auth/signup.html", base(active="signup", form=SIGNUP_ERRORS,
                                               antibot=ANTIBOT)),
    "login": ("auth/login.html", base(active="login", form=None, antibot=ANTIBOT,
                                      next="/profile")),
    "login_error": ("auth/login.html", base(
        active="login", antibot=ANTIBOT, next="/",
        form={"data": {"username": "ada", "remember": "1", "password": "wrong"},
              "errors": {}, "form_errors": ["Wrong username or password."]})),
    "login_google": ("auth/login.html", base(active="login", form=None, antibot=ANTIBOT,
                                             oauth={"google_url": "/login/google?next=%2Fprofile"})),
    "signup_google": ("auth/signup.html", base(active="signup", form=None, antibot=ANTIBOT,
                                               oauth={"google_url": "/login/google"})),
    "google_link": ("auth/google_link.html", base(
        active="login", form=None, link={"email": "ada@gmail.com", "username": "ada" + XSS})),
    "google_link_error": ("auth/google_link.html", base(
        active="login", link={"email": ATTR_XSS + "@gmail.com", "username": "ada"},
        form={"data": {"password": "wrong-secret"},
              "errors": {"password": ["That password is not correct."]}})),
    "error_404": ("error.html", base(error={"code": 404, "title": "Page not found",
                                            "message": "There is nothing at this address."})),
    "error_403_visitor": ("error.html", base(error={
        "code": 403, "title": "Forbidden", "message": "You are not allowed to see this page."})),
    "error_500_user": ("error.html", base(user=USER, error={
        "code": 500, "title": "Server error",
        "message": "Something went wrong on our side. Please try again."})),
    "error_429": ("error.html", base(error={
        "code": 429, "title": "Too many requests",
        "message": "Slow down a little and try again in a second. " + XSS})),
    "error_minimal": ("error.html", {"error": {"code": 400, "title": "Bad request",
                                               "message": "The form could not be read."}}),
    "chat": ("chat.html", base(user=USER, active="home", messages=MESSAGES,
                               model=MODEL_READY, flashes=[
                                   {"category": "success", "text": "Welcome back, ada!"}])),
    "chat_empty": ("chat.html", base(user=USER, active="home", messages=[],
                                     model=MODEL_READY)),
    "chat_no_model": ("chat.html", base(user=ADMIN, active="home", messages=MESSAGES[:2],
                                        model=MODEL_MISSING)),
    "profile": ("profile.html", base(user=USER, active="profile", profile=_profile(USER),
                                     forms=None, antibot=ANTIBOT, flashes=[
                                         {"category": "success",
                                          "text": "Your profile has been updated."}])),
    "profile_google": ("profile.html", base(
        user=USER, active="profile", profile=_profile(USER), forms=None, antibot=ANTIBOT,
        oauth={"enabled": True, "no_password": True, "identities": [
            {"provider": "google", "email": "ada" + XSS + "@gmail.com", "created_at": NOW}]})),
    "profile_google_linked": ("profile.html", base(
        user=USER, active="profile", profile=_profile(USER), forms=None, antibot=ANTIBOT,
        oauth={"enabled": True, "identities": [
            {"provider": "google", "email": "ada@gmail.com", "created_at": NOW}]})),
    "profile_google_none": ("profile.html", base(
        user=USER, active="profile", profile=_profile(USER), forms=None, antibot=ANTIBOT,
        oauth={"enabled": True, "identities": []})),
    "profile_errors": ("profile.html", base(
        user=ADMIN, active="profile",
        profile=_profile(ADMIN, avatar_url="/static/img/logo.svg",
                         email="grace.hopper.with.a.very.long.address@example.org"),
        antibot=ANTIBOT,
        forms={
            "profile": {"data": {"username": "grace" + XSS, "email": ""},
                        "errors": {"username": ["This username is taken."],
                                   "email": ["Enter an email address."]}},
            "password": {"data": {"current_password": "secret-current"},
                         "errors": {"current_password": ["Wrong password."]}},
            "picture": {"form_errors": ["This file is not an image Echo can read."]},
            "feedback": {"data": {"content": "Great app! " + XSS},
                         "errors": {"content": ["Feedback is limited to 2000 characters."]}},
        })),
}

# ---- the admin panel (issue 8) ----
ADMIN_MENU = [{"name": n, "title": t} for n, t in (
    ("users", "Users"), ("roles", "Roles"), ("pictures", "Pictures"), ("feedback", "Feedback"),
    ("messages", "Messages"), ("audit", "Audit log"))]
ADMIN_USERS = {"name": "users", "title": "Users", "singular": "user", "searchable": True,
               "dated": True, "creatable": True, "editable": True, "deletable": True,
               "deactivatable": True}
ADMIN_USER_COLUMNS = [
    {"name": "id", "sortable": True, "sorted": "", "sort_url": "/admin/users?sort=id&dir=desc",
     "cell": "text"},
    {"name": "username", "sortable": True, "sorted": "asc",
     "sort_url": "/admin/users?q=a&sort=username&dir=desc", "cell": "text"},
    {"name": "roles", "sortable": False, "cell": "list"},
    {"name": "is_active", "sortable": False, "cell": "bool"},
    {"name": "created_at", "sortable": True, "sorted": "", "cell": "time",
     "sort_url": "/admin/users?sort=created_at&dir=desc"},
    {"name": "last_login_at", "sortable": False, "cell": "time"},
    {"name": "picture", "sortable": False, "cell": "image"},
    {"name": "changes", "sortable": False, "cell": "lines"},
    {"name": "before", "sortable": False, "cell": "json"},
]
ADMIN_USER_ROWS = [
    {"id": 1, "username": "grace", "roles": ["admin"], "is_active": True, "created_at": NOW,
     "last_login_at": None, "picture": "/static/img/logo.svg",
     "changes": ["is_active: true -> false", XSS], "before": '{"a":"' + XSS + '"}'},
    {"id": 2, "username": XSS, "roles": [], "is_active": False, "created_at": NOW - 86400,
     "last_login_at": NOW, "picture": "", "changes": [], "before": None},
]
ADMIN_PAGER = {"page": 1, "pages": 3, "per_page": 25, "total": 60,
               "next_url": "/admin/users?per_page=25&page=2",
               "sizes": [{"size": 25, "url": "/admin/users?per_page=25", "current": True},
                         {"size": 50, "url": "/admin/users?per_page=50", "current": False}]}
ADMIN_USER_FIELDS = [
    {"name": "username", "label": "Username", "type": "text", "hint": "3 to 32", "required": True},
    {"name": "email", "label": "Email", "type": "email", "hint": "", "required": True},
    {"name": "password", "label": "Password", "type": "password", "hint": "", "required": False},
    {"name": "roles", "label": "Roles", "type": "roles", "hint": "", "required": False},
    {"name": "is_active", "label": "Active", "type": "checkbox", "hint": "", "required": False},
    {"name": "user_id", "label": "User id", "type": "number", "hint": "", "required": True},
    {"name": "owner", "label": "User", "type": "user", "hint": "A username or a user id.",
     "required": True},
    {"name": "name", "label": "Role", "type": "role", "hint": "admin, user, moderator",
     "required": True},
    {"name": "picture", "label": "Picture", "type": "file", "hint": "", "required": True},
]
ADMIN_CHARTS = [{"name": n, "title": t, "points": 30, "summary": "12 signups; " + XSS,
                 "svg_url": f"/admin/charts/{n}.svg?from=2025-10-26&to=2025-11-24",
                 "png_url": f"/admin/charts/{n}.png", "csv_url": f"/admin/charts/{n}.csv"}
                for n, t in (("signups", "Signups per day"), ("messages", "Messages per day"),
                             ("lengths", "Answer lengths"))]
SAMPLES.update({
    "admin_dashboard": ("admin/dashboard.html", base(
        user=ADMIN, active="admin", admin_menu=ADMIN_MENU, charts=ADMIN_CHARTS,
        chart_width=1100, chart_height=400,
        totals={"users": 100000, "active_7d": 1234, "messages": 1000000, "feedback": 7,
                "avg_tokens_per_second": 12.5},
        range_form={"data": {"from": "2025-10-26", "to": "2025-11-24"}, "errors": {}})),
    "admin_dashboard_errors": ("admin/dashboard.html", base(
        user=ADMIN, active="admin", admin_menu=ADMIN_MENU, charts=[],
        totals={"users": 1, "active_7d": 0, "messages": 0, "feedback": 0,
                "avg_tokens_per_second": 0},
        range_form={"data": {"from": XSS, "to": "2025-01-01"},
                    "errors": {"from": ["Enter the start date as YYYY-MM-DD."]}})),
    "admin_list": ("admin/list.html", base(
        user=ADMIN, active="admin", admin_menu=ADMIN_MENU, entity=ADMIN_USERS,
        columns=ADMIN_USER_COLUMNS, rows=ADMIN_USER_ROWS, pager=ADMIN_PAGER,
        filter={"data": {"q": XSS, "user_id": "x"}, "errors": {"user_id": ["A user id is a positive number."]}},
        export_url="/admin/users/export?q=a", count_text="60 users",
        flashes=[{"category": "success", "text": "User 3 created."}])),
    "admin_list_empty": ("admin/list.html", base(
        user=ADMIN, active="admin", admin_menu=ADMIN_MENU,
        entity=dict(ADMIN_USERS, name="audit", title="Audit log", searchable=False,
                    creatable=False, editable=False, deletable=False, deactivatable=False),
        columns=ADMIN_USER_COLUMNS[:2], rows=[], filter={"data": {}, "errors": {}}, export_url="/admin/audit/export",
        count_text="0 audit entries",
        pager={"page": 1, "pages": 1, "per_page": 25, "total": 0, "sizes": []})),
    "admin_form": ("admin/form.html", base(
        user=ADMIN, active="admin", admin_menu=ADMIN_MENU, entity=ADMIN_USERS,
        fields=ADMIN_USER_FIELDS, action="/admin/users/2/edit", multipart=True, item_id=2,
        known_roles=["admin", "user", "moderator"],
        user_choices=[{"id": 1, "username": "grace"}, {"id": 2, "username": XSS}],
        form={"data": {"username": XSS, "email": ATTR_XSS, "roles": ["admin"], "is_active": "1",
                       "password": "secret", "owner": ATTR_XSS, "name": XSS},
              "errors": {"username": ["This username is already taken."],
                         "roles": ["Only admin, user and moderator are set here."],
                         "owner": ["There is no user with this username."]},
              "form_errors": ["This would leave no active admin."]})),
    "admin_form_new": ("admin/form.html", base(
        user=ADMIN, active="admin", admin_menu=ADMIN_MENU, entity=ADMIN_USERS,
        fields=ADMIN_USER_FIELDS[:5], action="/admin/users/new", multipart=False, item_id=None,
        known_roles=["admin", "user", "moderator"], form=None)),
    "admin_confirm": ("admin/confirm.html", base(
        user=ADMIN, active="admin", admin_menu=ADMIN_MENU, entity=ADMIN_USERS,
        columns=ADMIN_USER_COLUMNS, row=ADMIN_USER_ROWS[1], item_id=2,
        form={"form_errors": ["The last admin cannot be deleted."]})),
})


def render(env, name):
    template, context = SAMPLES[name]
    return env.get_template(template).render(**context)


def render_all(outdir):
    env = make_env()
    os.makedirs(outdir, exist_ok=True)
    written = []
    for name in SAMPLES:
        path = os.path.join(outdir, name + ".html")
        with open(path, "w", encoding="utf-8") as f:
            f.write(render(env, name))
        written.append(path)
    return written


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.stderr.write("usage: jinja_pages.py OUTDIR\n")
        sys.exit(2)
    for p in render_all(sys.argv[1]):
        print(p)
