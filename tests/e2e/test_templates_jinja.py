"""test_templates_jinja.py - Echo's templates rendered by the real Jinja2.

The C engine (src/tmpl/) is Jinja2-compatible for a subset; rendering every
template with Jinja2 itself against the sample contexts of jinja_pages.py
(which follow docs/TEMPLATES.md) proves, independently of the C code:
  - every template parses, every sample context renders;
  - the markup is balanced and CSP-clean (no inline script/style/handlers);
  - user data is escaped everywhere (text and attributes);
  - login-state navigation, flashes, forms (CSRF, anti-bot, kept values,
    errors), chat, profile and error pages carry what the contract promises;
  - the templates use only what the C engine implements (no function calls
    other than macros, only the filters and tests it has).
Then it serves the rendered pages (with the real CSP header) and takes
screenshots with headless chromium at desktop and phone sizes, light and dark,
into tests/artifacts/screens/ for people to look at.

Needs Debian's python3-jinja2 and chromium (scripts/bootstrap.sh test).
"""
import html.parser
import http.server
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import threading

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import jinja_pages  # noqa: E402  (the helper next to this file)

ROOT = jinja_pages.ROOT
TEMPLATES = jinja_pages.TEMPLATES
ARTIFACTS = os.path.join(ROOT, "tests", "artifacts")
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:")
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
        "source", "track", "wbr"}

ENV = jinja_pages.make_env()


def all_templates():
    out = []
    for dirpath, _, files in os.walk(TEMPLATES):
        for f in files:
            if f.endswith(".html"):
                out.append(os.path.relpath(os.path.join(dirpath, f), TEMPLATES))
    return sorted(out)


def render(name):
    return jinja_pages.render(ENV, name)


class Page(html.parser.HTMLParser):
    """Collects elements (tag, attrs, text inside) and checks nesting."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack = []
        self.errors = []
        self.elements = []   # (tag, attrs dict)
        self.scripts = []    # (attrs, body)
        self._script = None
        self.text = []

    def handle_starttag(self, tag, attrs):
        a = {k: (v if v is not None else "") for k, v in attrs}
        self.elements.append((tag, a))
        if tag == "script":
            self._script = [a, ""]
        if tag not in VOID:
            self.stack.append((tag, self.getpos()))

    def handle_startendtag(self, tag, attrs):
        self.elements.append((tag, {k: (v or "") for k, v in attrs}))

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if tag == "script" and self._script is not None:
            self.scripts.append(tuple(self._script))
            self._script = None
        if not self.stack:
            self.errors.append(f"</{tag}> with nothing open at {self.getpos()}")
            return
        open_tag, pos = self.stack.pop()
        if open_tag != tag:
            self.errors.append(f"</{tag}> at {self.getpos()} closes <{open_tag}> from {pos}")

    def handle_data(self, data):
        if self._script is not None:
            self._script[1] += data
        else:
            self.text.append(data)

    def find(self, tag=None, **attrs):
        out = []
        for t, a in self.elements:
            if tag and t != tag:
                continue
            if all(a.get(k.rstrip("_").replace("_", "-")) == v for k, v in attrs.items()):
                out.append(a)
        return out


def parse(markup):
    p = Page()
    p.feed(markup)
    p.close()
    return p


# ---------------------------------------------------------------- syntax --

@pytest.mark.parametrize("template", all_templates())
def test_every_template_compiles(template):
    ENV.get_template(template)


def test_every_template_has_a_sample():
    used = {t for t, _ in jinja_pages.SAMPLES.values()}
    missing = [t for t in all_templates() if t not in used
               and not os.path.basename(t).startswith("_")
               and t != "base.html"]
    assert not missing, f"templates without a sample context: {missing}"


@pytest.mark.parametrize("sample", sorted(jinja_pages.SAMPLES))
def test_sample_renders_balanced_and_csp_clean(sample):
    markup = render(sample)
    page = parse(markup)
    assert not page.errors, page.errors
    assert not page.stack, f"unclosed elements: {page.stack}"
    assert markup.startswith("<!doctype html>")
    for tag, attrs in page.elements:
        assert "style" not in attrs, f"style attribute on <{tag}>"
        for name in attrs:
            assert not name.startswith("on"), f"event handler {name} on <{tag}>"
        for name in ("href", "src", "action"):
            assert not attrs.get(name, "").lower().startswith("javascript:")
        if tag == "style":
            pytest.fail("<style> element")
    for attrs, body in page.scripts:
        assert body.strip() == "", "inline script"
        assert attrs.get("src", "").startswith("/static/"), attrs
    for attrs in page.find("link"):
        assert attrs["href"].startswith("/static/")
    # No Jinja syntax may leak into the output.
    assert "{{" not in markup and "{%" not in markup and "{#" not in markup


@pytest.mark.parametrize("sample", sorted(jinja_pages.SAMPLES))
def test_user_data_is_escaped(sample):
    markup = render(sample)
    assert "<script>window.__xss" not in markup
    assert "<img src=x" not in markup
    assert 'onfocus="window' not in markup
    page = parse(markup)
    assert all(a.get("src", "").startswith("/static/") for a in page.find("script"))
    assert not page.find("img", src="x")
    if jinja_pages.XSS in str(jinja_pages.SAMPLES[sample][1]):
        assert "&lt;script&gt;window.__xss = 1&lt;/script&gt;" in markup


def test_templates_use_only_the_c_engine_subset():
    """src/tmpl/ implements these filters and tests, and calls only macros
    and super(); anything else would render here but fail in the C server."""
    filters = {"escape", "e", "safe", "default", "length", "lower", "upper", "title",
               "capitalize", "trim", "join", "replace", "truncate", "int", "round",
               "tojson", "first", "last", "datetime", "underscore_separate", "get_att"}
    tests = {"defined", "none"}
    for name in all_templates():
        with open(os.path.join(TEMPLATES, name), encoding="utf-8") as f:
            source = f.read()
        code = " ; ".join(re.findall(r"\{[{%](.*?)[}%]\}", source, re.S))
        code = re.sub(r'"[^"]*"', '""', code)
        for flt in re.findall(r"\|\s*([A-Za-z_]\w*)", code):
            assert flt in filters, f"{name}: filter {flt} is not in the C engine"
        for tst in re.findall(r"\bis\s+(?:not\s+)?([A-Za-z_]\w*)", code):
            assert tst in tests, f"{name}: test {tst} is not in the C engine"
        macros = set(re.findall(r"macro\s+(\w+)", source))
        for names in re.findall(r"from\s+\S+\s+import\s+([\w ,]+)", code):
            macros |= {n.strip() for n in names.split(",")}
        calls = re.sub(r"\|\s*\w+", "|", code)  # filter arguments are not calls
        for call in re.findall(r"(?<![\w.])([A-Za-z_]\w*)\s*\(", calls):
            if call in {"super", "if", "in", "and", "or", "not"}:
                continue
            assert call in macros, f"{name}: call of {call}() (only macros and super())"
        assert "{{{" not in source
        for kw in ("{% call", "{%- call", "{% filter", "{% with", "{% raw"):
            assert kw not in source, f"{name}: {kw} is not in the C engine"


# ------------------------------------------------------------ base frame --

def test_visitor_nav_has_login_and_signup_only():
    page = parse(render("landing"))
    hrefs = [a.get("href") for t, a in page.elements if t == "a"]
    assert "/login" in hrefs and "/signup" in hrefs
    assert "/profile" not in hrefs and "/admin" not in hrefs
    assert not page.find("form", action="/logout")


def test_user_nav_has_profile_and_logout_form_with_csrf():
    markup = render("chat")
    page = parse(markup)
    hrefs = [a.get("href") for t, a in page.elements if t == "a"]
    assert "/profile" in hrefs and "/admin" not in hrefs
    assert "/login" not in hrefs
    logout = page.find("form", action="/logout")
    assert logout and logout[0]["method"] == "post"
    m = re.search(r'<form class="nav-logout" method="post" action="/logout">(.*?)</form>',
                  markup, re.S)
    assert f'name="csrf_token" value="{jinja_pages.CSRF}"' in m.group(1)
    assert "ada" in markup


def test_admin_nav_has_admin_link():
    hrefs = [a.get("href") for t, a in parse(render("chat_no_model")).elements if t == "a"]
    assert "/admin" in hrefs


def test_active_page_is_marked():
    page = parse(render("profile"))
    current = [a for t, a in page.elements if a.get("aria-current") == "page"]
    assert [a["href"] for a in current] == ["/profile"]


def test_flashes_show_category_and_escaped_text():
    markup = render("landing_flashes")
    for cat in ("success", "info", "warning", "error"):
        assert f'class="flash flash-{cat}"' in markup
    assert "You have been logged out." in markup
    assert markup.count('data-dismiss="flash"') == 4
    assert 'class="flashes"' not in render("landing")


def test_title_names_page_and_site():
    assert "<title>Sign up · Echo</title>" in render("signup")
    assert "<title>404 Page not found · Echo</title>" in render("error_404")


# ----------------------------------------------------------------- forms --

def post_forms(markup):
    return re.findall(r'<form[^>]*method="post"[^>]*>.*?</form>', markup, re.S)


@pytest.mark.parametrize("sample", sorted(jinja_pages.SAMPLES))
def test_every_post_form_carries_the_csrf_token(sample):
    markup = render(sample)
    for form in post_forms(markup):
        token = jinja_pages.CSRF if "csrf_token" in jinja_pages.SAMPLES[sample][1] else ""
        assert f'<input type="hidden" name="csrf_token" value="{token}">' in form, form[:200]


@pytest.mark.parametrize("sample,action", [("signup", "/signup"), ("login", "/login"),
                                           ("profile", "/feedback")])
def test_antibot_fields(sample, action):
    markup = render(sample)
    form = [f for f in post_forms(markup) if f'action="{action}"' in f][0]
    page = parse(form)
    box = page.find("div", **{"class": "hp-field"})
    assert box and box[0]["aria-hidden"] == "true"
    hp = page.find("input", name="website")
    assert hp and hp[0]["tabindex"] == "-1" and hp[0]["autocomplete"] == "off"
    assert hp[0]["value"] == "" and hp[0]["type"] == "text"
    ts = page.find("input", name="form_ts")
    assert ts and ts[0]["type"] == "hidden"
    assert ts[0]["value"] == jinja_pages.ANTIBOT["ts_field_value"]
    with open(os.path.join(ROOT, "static", "css", "echo.css"), encoding="utf-8") as f:
        css = f.read()
    rule = re.search(r"\.hp-field\s*\{([^}]*)\}", css)
    assert rule and "left: -10000px" in rule.group(1) and "position: absolute" in rule.group(1)


def test_signup_fields_and_names():
    page = parse(render("signup"))
    names = [a["name"] for a in page.find("input") if "name" in a]
    for n in ("csrf_token", "website", "form_ts", "username", "email", "password",
              "confirm_password"):
        assert n in names
    assert page.find("input", name="password")[0]["autocomplete"] == "new-password"


def test_signup_errors_keep_values_but_never_passwords():
    markup = render("signup_errors")
    page = parse(markup)
    user = page.find("input", name="username")[0]
    assert user["value"] == jinja_pages.XSS          # kept, and escaped in the markup
    assert user["aria-invalid"] == "true"
    assert user["aria-describedby"] == "f-username-hint f-username-err"
    assert page.find("input", name="email")[0]["value"] == jinja_pages.ATTR_XSS
    for name in ("password", "confirm_password"):
        assert "value" not in page.find("input", name=name)[0]
    assert "hunter2-secret" not in markup
    assert "This email is already registered." in markup
    assert "The passwords do not match." in markup
    assert 'class="form-alert" role="alert"' in markup


def test_login_keeps_next_and_remember():
    page = parse(render("login"))
    assert page.find("input", name="next")[0]["value"] == "/profile"
    assert "checked" not in page.find("input", name="remember")[0]
    page = parse(render("login_error"))
    assert "checked" in page.find("input", name="remember")[0]
    assert page.find("input", name="username")[0]["value"] == "ada"
    assert "wrong" not in render("login_error").split("<main")[1].split("</main>")[0]
    assert "Wrong username or password." in render("login_error")


# ------------------------------------------------------------------ pages --

def test_error_page():
    markup = render("error_404")
    assert 'class="error-code" aria-hidden="true">404<' in markup
    assert "Page not found" in markup and "There is nothing at this address." in markup
    assert 'href="/"' in markup
    assert 'href="/login"' in render("error_403_visitor").split("<main")[1]
    assert 'href="/login"' not in render("error_500_user").split("<main")[1]


def test_error_page_renders_with_only_the_error():
    markup = render("error_minimal")
    assert "<title>400 Bad request · Echo</title>" in markup
    assert "The form could not be read." in markup


def test_landing_invites_visitors():
    markup = render("landing")
    assert 'href="/signup"' in markup.split("<main")[1]
    assert 'href="/login"' in markup.split("<main")[1]
    assert "Qwen2.5-1.5B-Instruct" in markup


def test_chat_renders_discussion():
    markup = render("chat")
    page = parse(markup)
    items = [a for t, a in page.elements if t == "li" and "msg" in a.get("class", "")]
    assert [a["data-id"] for a in items] == ["1", "2", "3", "4", "5", "6"]
    assert [a["class"] for a in items][:2] == ["msg msg-user", "msg msg-assistant"]
    md = page.find("div", **{"class": "msg-content markdown"})
    assert len(md) == 3 and all("data-markdown" in a for a in md)
    # Markdown stays raw text for chat.js to render; nothing is pre-rendered HTML.
    assert "| mutable | yes | no |" in markup
    assert "142 tokens · 11.8 tok/s" in markup
    assert ">Stopped<" in markup and ">Cut off at the length limit<" in markup
    root = page.find("section", id="chat")[0]
    assert root["data-max-chars"] == "8000" and root["data-model-ready"] == "true"
    assert not page.find("div", **{"class": "banner banner-warning"})
    assert "disabled" not in page.find("textarea", id="message")[0]
    clear = page.find("form", action="/clear_discussion")[0]
    assert clear["method"] == "post" and clear["data-confirm"]
    assert "hidden" in page.find("div", id="empty-state")[0]
    srcs = [a["src"] for a in page.find("script")]
    assert srcs == ["/static/js/site.js", "/static/vendor/socket.io.min.js",
                    "/static/vendor/marked.umd.js", "/static/vendor/purify.min.js",
                    "/static/js/chat-core.js", "/static/js/chat.js"]
    assert '<time data-ts="%d">' % (jinja_pages.NOW - 3600) in markup


def test_chat_without_model_shows_install_banner():
    page = parse(render("chat_no_model"))
    assert page.find("div", **{"class": "banner banner-warning"})[0]["role"] == "alert"
    assert "make model" in render("chat_no_model")
    assert "echobot model pull" in render("chat_no_model")
    assert "disabled" in page.find("textarea", id="message")[0]
    assert "disabled" in page.find("button", id="send")[0]
    assert page.find("section", id="chat")[0]["data-model-ready"] == "false"


def test_chat_empty_state():
    page = parse(render("chat_empty"))
    assert "hidden" not in page.find("div", id="empty-state")[0]
    clear = [a for t, a in page.elements if t == "button" and a.get("type") == "submit"
             and "btn-sm" in a.get("class", "")]
    assert "disabled" in clear[0]


def test_profile_forms():
    markup = render("profile")
    page = parse(markup)
    actions = [(a["action"], a.get("enctype")) for a in page.find("form")]
    assert ("/profile", "multipart/form-data") in actions
    assert ("/feedback", None) in actions and ("/clear_discussion", None) in actions
    kinds = [a["value"] for a in page.find("input", name="action")]
    assert kinds == ["profile", "password", "picture"]
    assert page.find("input", name="username")[0]["value"] == "ada"
    assert page.find("input", name="email")[0]["value"] == "ada@example.org"
    assert page.find("input", name="picture")[0]["type"] == "file"
    assert "image/webp" in page.find("input", name="picture")[0]["accept"]
    fb = page.find("textarea", name="content")[0]
    assert fb["maxlength"] == "2000" and fb["data-counter"] == "2000"
    assert "Member since" in markup and '<time data-ts="' in markup
    assert ">6<" in markup  # message count


def test_profile_errors_per_form():
    markup = render("profile_errors")
    page = parse(markup)
    assert page.find("input", name="email")[0]["value"] == ""   # what was typed, not the old one
    assert "This username is taken." in markup and "Wrong password." in markup
    assert "secret-current" not in markup
    assert "This file is not an image Echo can read." in markup
    assert "Feedback is limited to 2000 characters." in markup
    area = re.search(r'<textarea[^>]*name="content"[^>]*>(.*?)</textarea>', markup, re.S)
    assert area.group(1).startswith("Great app! &lt;script&gt;")
    assert page.find("img", **{"class": "avatar avatar-xl"})[0]["src"] == "/static/img/logo.svg"


def test_referenced_static_files_exist():
    seen = set()
    for sample in jinja_pages.SAMPLES:
        for _, attrs in parse(render(sample)).elements:
            for key in ("src", "href"):
                v = attrs.get(key, "")
                if v.startswith("/static/"):
                    seen.add(v)
    assert seen
    for url in sorted(seen):
        rel = url[len("/static/"):]
        if rel.startswith("vendor/"):
            continue  # copied from node_modules by scripts/bootstrap.sh
        assert os.path.isfile(os.path.join(ROOT, "static", rel)), url


# ----------------------------------------------------------- screenshots --

VENDOR = {
    "marked.umd.js": "node_modules/marked/lib/marked.umd.js",
    "purify.min.js": "node_modules/dompurify/dist/purify.min.js",
    "socket.io.min.js": "tests/e2e/fixtures/fake-socket.io.js",
}


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the repo root, the rendered pages under /pages/, the vendor
    files from node_modules (socket.io replaced by the fake), with the CSP
    header Echo sends."""
    pages_dir = None

    def translate_path(self, path):
        path = path.split("?", 1)[0].split("#", 1)[0]
        if path.startswith("/pages/"):
            return os.path.join(self.pages_dir, os.path.basename(path))
        if path.startswith("/static/vendor/"):
            name = os.path.basename(path)
            if name in VENDOR:
                return os.path.join(ROOT, VENDOR[name])
        return super().translate_path(path)

    def end_headers(self):
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        super().end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site_server():
    pages = tempfile.mkdtemp(prefix="echo-pages-")
    jinja_pages.render_all(pages)
    handler = type("H", (_Handler,), {"pages_dir": pages})
    handler.extensions_map = dict(_Handler.extensions_map, **{".js": "text/javascript",
                                                              ".svg": "image/svg+xml"})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), lambda *a, **k: handler(*a, directory=ROOT, **k))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()
    shutil.rmtree(pages, ignore_errors=True)


def chromium():
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("chromium is not installed (scripts/bootstrap.sh test installs it)")


def screenshot(url, out, width, height, dark=False):
    profile = tempfile.mkdtemp(prefix="echo-chromium-")
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--hide-scrollbars", "--virtual-time-budget=3000",
           f"--user-data-dir={profile}", f"--screenshot={out}",
           f"--window-size={width},{height}"]
    if dark:
        cmd.append("--force-dark-mode")
    try:
        subprocess.run(cmd + [url], check=True, timeout=120, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


SHOTS = [("landing", False), ("landing_flashes", False), ("signup", False),
         ("signup_errors", False), ("login_error", False), ("error_404", False),
         ("chat", False), ("chat_no_model", False), ("chat_empty", False),
         ("profile", False), ("profile_errors", False),
         ("landing", True), ("chat", True), ("signup_errors", True), ("profile", True)]


@pytest.mark.parametrize("sample,dark", SHOTS,
                         ids=[f"{s}-{'dark' if d else 'light'}" for s, d in SHOTS])
def test_screenshot(site_server, sample, dark):
    outdir = os.path.join(ARTIFACTS, "screens")
    os.makedirs(outdir, exist_ok=True)
    for label, (w, h) in (("desktop", (1280, 900)), ("phone", (390, 844))):
        out = os.path.join(outdir, f"{sample}-{label}{'-dark' if dark else ''}.png")
        if os.path.exists(out):
            os.unlink(out)
        screenshot(f"{site_server}/pages/{sample}.html", out, w, h, dark)
        assert png_size(out) == (w, h)
        # A blank or unstyled capture compresses to almost nothing.
        assert os.path.getsize(out) > 8000, f"{out} looks empty"


# -------------------------------------------------------------- contrast --

def _palettes():
    """The light and dark custom properties of echo.css, as {name: #rrggbb}."""
    with open(os.path.join(ROOT, "static", "css", "echo.css"), encoding="utf-8") as f:
        css = f.read()
    light = re.search(r":root\s*\{(.*?)\n\}", css, re.S).group(1)
    dark = re.search(r"prefers-color-scheme:\s*dark\)\s*\{\s*:root\s*\{(.*?)\}", css, re.S).group(1)

    def props(block):
        return dict(re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{6})\s*;", block))
    base = props(light)
    return {"light": base, "dark": dict(base, **props(dark))}


def _luminance(hex_color):
    channels = [int(hex_color[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(a, b):
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


# (text, background) pairs the pages use for normal-size text: WCAG AA 4.5:1.
TEXT_PAIRS = [("text", "bg"), ("text", "surface"), ("text", "surface-2"), ("muted", "bg"),
              ("muted", "surface"), ("muted", "surface-2"), ("accent-text", "surface"),
              ("accent-text", "bg"), ("accent-text", "accent-soft"), ("on-accent", "accent"),
              ("on-accent", "accent-hover"), ("on-user-bubble", "user-bubble"),
              ("danger", "surface"), ("danger", "danger-soft"), ("danger", "bg"),
              ("success", "success-soft"), ("warning", "warning-soft"), ("warning", "bg"),
              ("info", "info-soft"), ("text", "success-soft"), ("text", "danger-soft"),
              ("text", "warning-soft"), ("text", "info-soft"), ("pre-text", "pre-bg"),
              ("text", "code-bg")]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_colour_contrast_meets_wcag_aa(scheme):
    palette = _palettes()[scheme]
    low = []
    for fg, bg in TEXT_PAIRS:
        ratio = contrast(palette[fg], palette[bg])
        if ratio < 4.5:
            low.append(f"--{fg} on --{bg}: {ratio:.2f}")
    assert not low, f"{scheme}: " + ", ".join(low)
    # The focus ring must stand out from what it surrounds (WCAG 1.4.11: 3:1).
    for bg in ("bg", "surface"):
        assert contrast(palette["focus"], palette[bg]) >= 3, f"focus on {bg}"
