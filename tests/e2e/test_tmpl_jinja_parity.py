"""Byte-for-byte parity of Echo's template engine with Jinja2.

Each case is rendered twice: by Jinja2 (Debian's python3-jinja2, configured
as Echo's engine behaves: autoescape on, ChainableUndefined, the default
whitespace settings, and the application's three custom filters) and by
`echobot tmpl render DIR NAME CONTEXT.json`. The outputs must be identical;
for error cases both must fail.

Needs: ECHOBOT (path of the built binary), /usr/bin/python3 with jinja2.
"""
import datetime as _dt
import json
import os
import subprocess

import jinja2
import pytest

ECHOBOT = os.environ.get("ECHOBOT", "build/test/src/app/echobot")


def underscore_separate(value):
    return " ".join(str(value).split("_"))


def get_att(obj, name):
    if isinstance(obj, dict):
        return obj[name] if name in obj else jinja2.ChainableUndefined(name=name)
    return getattr(obj, name, jinja2.ChainableUndefined(name=name))


def datetime_filter(value, format="%Y-%m-%d %H:%M"):
    if value is None or isinstance(value, jinja2.Undefined):
        return ""
    if isinstance(value, (int, float)):
        when = _dt.datetime.fromtimestamp(value, _dt.timezone.utc).replace(tzinfo=None)
    else:
        when = _dt.datetime.fromisoformat(value)
    return when.strftime(format)


def jinja_render(folder, name, ctx):
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(folder)), autoescape=True,
                             undefined=jinja2.ChainableUndefined)
    env.filters["underscore_separate"] = underscore_separate
    env.filters["get_att"] = get_att
    env.filters["datetime"] = datetime_filter
    return env.get_template(name).render(**ctx)


CTX = {
    "name": "<World & 'you'>",
    "xs": [1, 2, 3],
    "d": {"a": 1, "b": "<x>"},
    "s": "héllo wörld",
    "n": None,
    "t": True,
    "f": 2.5,
    "m": "<i>",
    "items": [{"title": "A", "n": 3}, {"title": "b", "n": 1}, {"title": "C", "n": 2}],
    "user": {"name": "Ann <admin>", "roles": ["a", "b"]},
    "rows": [{"id": 1, "created_at": "2024-01-02T03:04:05"}, {"id": 2, "created_at": 1700000000}],
    "cols": ["id", "created_at"],
    "msgs": [["error", "Bad <input>"], ["info", "ok"]],
    "long": "Grüße aus Köln am Rhein",
    "greek": "ΟΔΟΣ ΣΟΦΟΣ",
    "nums": [1, 2.5, -3],
}

# One template each, rendered with CTX.
SINGLE = [
    "Hello {{ name }}!",
    "<a href=\"{{ name }}\" title='{{ name }}'>{{ name }}</a>",
    "{{ xs }}|{{ d }}|{{ n }}|{{ t }}|{{ f }}|{{ (1, 'a') }}|{{ ('x',) }}",
    "{{ 0.1 + 0.2 }} {{ 1e16 }} {{ 1e15 }} {{ 1e-5 }} {{ 100.0 }} {{ -0.0 }} {{ 2 ** 0.5 }}",
    "{% for x in xs %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}"
    "{{ loop.length }}{{ loop.revindex }}{{ loop.revindex0 }},{% endfor %}",
    "{% for x in [] %}a{% else %}empty{% endfor %}",
    "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}",
    "{% for a, b in [[1, 2], [3, 4]] %}{{ a }}-{{ b }} {% endfor %}",
    "{% for i in items if i.n > 1 %}{{ i.title }}{{ loop.length }}{% endfor %}",
    "{% set x = 0 %}{% for i in [1, 2] %}{{ x }}{% set x = x + i %}{{ x }}{% endfor %}{{ x }}",
    "{% for i in [1, 2] %}[{{ y }}]{% set y = i %}{% endfor %}[{{ y }}]",
    "{% if n %}a{% elif xs %}b{% else %}c{% endif %}",
    "  {%- if true -%}  x  {%- endif -%}  y",
    "a\n  {{- 1 -}}\n  b  {#- c -#}  d",
    "{{ 1 }} {{- 2 }} {{ 3 -}} {{ 4 }}",
    "line1\n{% if true %}\nline2\n{% endif %}\nline3\n",
    "<ul>\n{% for x in [1, 2] -%}\n  <li>{{ x }}</li>\n{% endfor -%}\n</ul>\n",
    "<ul>\n  {%- for x in [1, 2] %}\n  <li>{{ x }}</li>\n  {%- endfor %}\n</ul>",
    "a\r\nb\rc\n\n",
    "{% raw %}{{ x }}{% if %}{% endraw %}|a {%- raw -%}  {{ b }}  {%- endraw -%} c",
    "{{ 1 + 2 * 3 }} {{ 7 // 2 }} {{ 7 % 3 }} {{ 7 / 2 }} {{ 2 ** 3 ** 2 }} {{ -2 ** 2 }}",
    "{{ -7 // 2 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ -7.5 % 2 }} {{ 7.0 // 2 }} {{ true + 1 }}",
    "{{ 'a' ~ 1 ~ none ~ true ~ 1.5 }}|{{ name ~ m }}",
    "{{ 'ab' * 3 }} {{ [0] * 2 }} {{ [1] + [2] }} {{ 'a' + 'b' }}",
    "{{ 1 < 2 < 3 }}{{ 1 < 3 < 2 }}{{ 1 == 1.0 }}{{ 'a' != 'b' }}{{ [1, 2] < [1, 3] }}",
    "{{ 0 or 'x' }} {{ 'a' and 'b' }} [{{ '' and 'b' }}] {{ not 0 }} {{ n or none }}",
    "{{ 1 in xs }}{{ 5 not in xs }}{{ 'a' in d }}{{ 'ell' in 'hello' }}{{ 'x' in nothing }}",
    "{{ 'y' if t else 'n' }} [{{ 'y' if n }}] {{ 1 if n else 2 if t else 3 }}",
    "{{ xs[0] }}{{ xs[-1] }}{{ d['a'] }}{{ d.b }}{{ xs[1:] }}{{ s[::-1] }}{{ s[1:3] }}{{ xs.1 }}",
    "[{{ nothing }}{{ nothing.x.y }}{{ d.zz.yy }}{{ xs[10] }}]{{ nothing is defined }}{{ xs is defined }}",
    "{{ name|upper }}|{{ name|lower }}|{{ s|title }}|{{ s|capitalize }}|{{ '  x  '|trim }}",
    "{{ 'straße'|upper }} {{ greek|lower }} {{ 'İx'|lower }} {{ 'ǆx'|capitalize }} {{ 'ßa'|title }}",
    "{{ 'hello-world (foo) [bar]x {baz} <q>'|title }} {{ \"they're\".title() }}",
    "{{ xs|join(', ') }}|{{ items|map(attribute='title')|join('-') }}|{{ items|join(',', 'n') }}",
    "{{ [name, m]|join('|') }}",
    "{{ 'hello world foo bar'|truncate(9) }}|{{ 'hello'|truncate(9) }}|{{ long|truncate(7, true) }}"
    "|{{ long|truncate(12, false, '…') }}|{{ long|truncate(10, leeway=0) }}",
    "{{ '3'|int + 1 }}|{{ 'x'|int(7) }}|{{ '4.9'|int }}|{{ '1.5'|float }}|{{ ' 12 '|int }}|{{ '0x1A'|int(0, 16) }}"
    "|{{ '1_000'|int }}|{{ none|int }}|{{ 'nan'|float }}|{{ '-inf'|float }}",
    "{{ 2.5|round }}|{{ 3.5|round }}|{{ 3.14159|round(2) }}|{{ 2.675|round(2) }}|{{ 3|round }}"
    "|{{ 2.1|round(0, 'ceil') }}|{{ 2.9|round(0, 'floor') }}|{{ 1250|round(-2) }}|{{ 1350|round(-2) }}",
    "{{ d|tojson }}|{{ name|tojson }}|{{ [1, 'é😀', none, true, 1.5]|tojson }}|{{ {'b': [], 'a': {'c': 1}}|tojson(2) }}",
    "<script>var u = {{ user|tojson }};</script>",
    "{{ xs|first }}{{ xs|last }}{{ xs|length }}{{ s|length }}{{ d|count }}{{ 'ab'|list }}{{ d|list }}",
    "{{ items|sort(attribute='title')|map(attribute='title')|list }}",
    "{{ items|sort(attribute='n', reverse=true)|map(attribute='n')|list }}",
    "{{ ['b', 'A', 'c']|sort }}{{ ['b', 'A', 'c']|sort(case_sensitive=true) }}{{ ['b', 'A', 'c']|sort(reverse=true) }}",
    "{{ d|dictsort }}{{ {'b': 1, 'A': 3}|dictsort(by='value', reverse=true) }}",
    "{{ x|default('dflt') }}|{{ ''|default('e') }}|{{ ''|default('e', true) }}|{{ none|d('n', true) }}",
    "{{ name|e }}|{{ name|safe }}|{{ name|e|e }}|{{ m|safe|upper }}|{{ m|safe|title }}",
    "{{ 'created_at'|underscore_separate }}|{{ d|get_att('b') }}|[{{ d|get_att('q') }}]",
    "<table><tr>{% for c in cols %}<th>{{ c|underscore_separate|title }}</th>{% endfor %}</tr>\n"
    "{% for r in rows %}<tr>{% for c in cols %}<td>{{ r|get_att(c) }}</td>{% endfor %}</tr>\n{% endfor %}</table>",
    "{{ rows[0].created_at|datetime }}|{{ rows[1].created_at|datetime('%d/%m/%Y %H:%M:%S') }}"
    "|{{ '2023-12-25'|datetime('%b %d, %Y (%A)') }}|{{ none|datetime }}",
    "{% set a, b = 1, 2 %}{{ a }}{{ b }}",
    "{% set ns = namespace(n=0) %}{% for x in xs %}{% set ns.n = ns.n + x %}{% endfor %}{{ ns.n }}",
    "{% set v %}<b>{{ name }}</b>{% endset %}{{ v }}|{% set up | upper %}abc{{ name }}{% endset %}{{ up }}",
    "{% filter upper %}hi {{ name }}{% endfilter %}",
    "{% set a = 5 %}{% with a = 1, b = a %}{{ a }}{{ b }}{% endwith %}{{ a }}",
    "{% autoescape false %}{{ name }}{% endautoescape %}{{ name }}",
    "{% macro f(a, b='B', c=none) %}[{{ a }}|{{ b }}|{{ c }}]{% endmacro %}{{ f(1) }}{{ f(1, 2) }}"
    "{{ f(1, c=3) }}{{ f(b=5) }}",
    "{% macro f() %}{{ varargs }}{{ kwargs }}{% endmacro %}{{ f(1, 2, x=3) }}",
    "{% macro w() %}<div>{{ caller() }}</div>{% endmacro %}{% call w() %}in {{ name }}{% endcall %}",
    "{% macro w() %}{% for i in [1, 2] %}{{ caller(i) }}{% endfor %}{% endmacro %}"
    "{% call(x) w() %}<{{ x }}>{% endcall %}",
    "{% macro m() %}<i>{% endmacro %}{{ m() }}{{ m()|e }}{{ m()|length }}",
    "{{ range(3)|list }}{{ range(1, 10, 3)|list }}{{ dict(a=1, b=2) }}",
    "{{ 'a,b,,c'.split(',') }}{{ ' a  b '.split() }}{{ '  x '.strip() }}{{ 'abc'.upper() }}"
    "{{ 'abc'.startswith('a') }}{{ 'a-b'.replace('-', '+') }}{{ '-'.join(['x', 'y']) }}",
    "{{ 42 is divisibleby 3 }}{{ 3 is odd }}{{ 4 is even }}{{ none is none }}{{ 'x' is string }}"
    "{{ 1 is number }}{{ xs is sequence }}{{ d is mapping }}{{ 'abc' is lower }}{{ 2 is eq 2 }}",
    "{{ nums|sum }}{{ nums|min }}{{ nums|max }}{{ [3, 1, 3]|unique|list }}{{ xs|reverse|list }}{{ 'abc'|reverse }}",
    "{{ xs|select('odd')|list }}{{ xs|reject('odd')|list }}{{ items|selectattr('n', 'gt', 1)|map(attribute='title')|list }}",
    "{{ 'a b&c/d'|urlencode }}|{{ {'a': 'b c', 'd': '&'}|urlencode }}|{{ 'one two  three'|wordcount }}",
    "{{ xs|batch(2)|list }}{{ xs|batch(2, 0)|list }}{{ -3|abs }}{{ d|items|list }}",
    "<input{{ {'type': 'text', 'value': name, 'id': none}|xmlattr }}>",
    "{% for x in xs %}{{ loop.cycle('odd', 'even') }}:{{ loop.previtem }}-{{ loop.nextitem }};{% endfor %}",
    "{{ name|replace('&', 'and') }}|{{ name|replace('<', '<b>'|safe) }}|{{ 'aaa'|replace('a', 'b', 2) }}",
    "{{ '\\u00e9\\x41\\n\\t\\\\' }}|{{ \"it's\" }}|{{ 'a' 'b' }}",
    "{{ 1_000 }} {{ 0x1f }} {{ 0b101 }} {{ 0o17 }} {{ 1.5e3 }} {{ 1E2 }}",
    "{{ {'a': {'b': 1}} }} {{ [[1, 2], [3]] }} {{ () }} {{ {} }} {{ [] }}",
    "{{ ['a\\nb', \"q'\", 'q\"', '\\x01'] }}",
]

# Several templates: (templates, main name, context).
LAYOUT = (
    "<!doctype html>\n<html><head><title>{% block title %}Site{% endblock %}</title></head>\n<body>\n"
    "{% block nav %}<nav>{{ user.name }}</nav>{% endblock %}\n"
    "{%- for cat, m in msgs %}\n  <div class=\"{{ cat }}\">{{ m }}</div>\n{%- endfor %}\n"
    "{% block content %}{% endblock %}\n<footer>{% block footer %}(c){% endblock %}</footer>\n</body></html>\n"
)
MID = (
    "{% extends \"base.html\" %}\n{% block title %}Mid - {{ super() }}{% endblock %}\n"
    "{% block content %}<main>{% block main %}mid main{% endblock %}</main>{% endblock %}\n"
)
LEAF = (
    "{% extends \"layout/mid.html\" %}\n{% set page = \"leaf\" %}\n"
    "{% block title %}Leaf | {{ super() }}{% endblock %}\n"
    "{% block main %}{{ super() }} + leaf {{ page }}{% include \"part.html\" %}{% endblock %}\n"
    "{% block footer %}{{ super() }}{{ super() }}{% endblock %}\n"
)
FORMS = (
    "{% macro field(name, label='', type='text', value='') -%}\n"
    "<label>{{ label or name|title }}</label><input type=\"{{ type }}\" name=\"{{ name }}\" value=\"{{ value }}\""
    "{% for k, v in kwargs.items() %} {{ k }}=\"{{ v }}\"{% endfor %}>\n{%- endmacro %}\n"
    "{% macro button(text) %}<button>{{ text }}</button>{% endmacro %}\n{% set version = 3 %}\n"
)
T = {"base.html": LAYOUT, "layout/mid.html": MID, "main.html": LEAF,
     "part.html": "<p>part {{ page }} {{ user.name }}</p>\n", "forms.html": FORMS}

MULTI = [
    (T, "main.html", CTX),
    ({**T, "main.html": "{% import \"forms.html\" as forms %}{{ forms.field('user_name', value=user.name, "
                        "required='yes') }}{{ forms.button('Go') }}{{ forms.version }}"}, "main.html", CTX),
    ({**T, "main.html": "{% from \"forms.html\" import field, button as b %}{{ field('email', 'E-mail', "
                        "type='email') }}{{ b('<ok>') }}"}, "main.html", CTX),
    ({"main.html": "{% include \"missing.html\" ignore missing %}x{% include [\"nope.html\", \"part.html\"] %}",
      "part.html": "P{{ page }}"}, "main.html", {"page": 1}),
    ({"main.html": "{% extends \"b.html\" %}{% block a %}{{ super() }}|{{ super() }}{% endblock %}",
      "b.html": "[{% block a %}B{% block inner %}i{% endblock %}{% endblock %}]"}, "main.html", {}),
    ({"main.html": "{% extends \"b.html\" %}{% block inner %}I2{% endblock %}",
      "b.html": "[{% block a %}B{% block inner %}i{% endblock %}{% endblock %}]"}, "main.html", {}),
    ({"main.html": "pre{% extends \"b.html\" %}X{% if true %}Y{% endif %}{% set v = 5 %}"
                   "{% block a %}ca{{ w }}{{ super() }}{% endblock %}",
      "b.html": "B[{% block a %}ba{% endblock %}]{{ v }}{% set w = 2 %}"}, "main.html", {}),
    ({"main.html": "{% if x %}{% extends 'b.html' %}{% endif %}X{% block a %}ca{% endblock %}",
      "b.html": "{% block a %}ba{% endblock %}"}, "main.html", {"x": 0}),
    ({"main.html": "{% if x %}{% extends 'b.html' %}{% endif %}X{% block a %}ca{% endblock %}",
      "b.html": "{% block a %}ba{% endblock %}"}, "main.html", {"x": 1}),
    ({"main.html": "{% for i in [1, 2] %}{% block a scoped %}[{{ i }}]{% endblock %}{% endfor %}"
                   "{% for i in [1, 2] %}{% block b %}[{{ i }}]{% endblock %}{% endfor %}"}, "main.html", {}),
    ({"main.html": "{% set t = 3 %}{% for i in [1, 2] %}{% include \"i.html\" %}{% endfor %}[{{ z }}]",
      "i.html": "{{ i }}{{ t }}{% set z = 1 %}"}, "main.html", {}),
    ({"main.html": "{% import \"m.html\" as m %}{{ m.f(1) }}|{{ m.f(1, 2, 3, x=4) }}|{{ m.t }}",
      "m.html": "{% set t = 3 %}{% macro f(a, b=a~1) %}{{a}}{{b}}{{t}}{{g}}{{ varargs }}{{ kwargs }}{% endmacro %}"},
     "main.html", {"g": 7}),
    ({"main.html": "{% import \"m.html\" as m with context %}{{ m.f() }}",
      "m.html": "{% macro f() %}{{ g }}{% endmacro %}"}, "main.html", {"g": 7}),
    ({"main.html": "{% from \"m.html\" import nothere %}[{{ nothere }}]", "m.html": "x"}, "main.html", {}),
    ({"main.html": "{% extends 'b.html' %}{% block title %}Home <{{ n }}>{% endblock %}",
      "b.html": "<title>{% block title %}{% endblock %}</title><h1>{{ self.title() }}</h1>"},
     "main.html", {"n": 1}),
    ({"main.html": "{% extends 'b.html' %}{% set x %}abc<{{ 1 }}>{% endset %}{% macro m() %}M{% endmacro %}"
                   "{% set y = m() %}{% block a %}[{{ x }}{{ y }}]{% endblock %}",
      "b.html": "{% block a %}{% endblock %}{{ x }}{{ y }}"}, "main.html", {}),
]

ERRORS = [
    "{{ 1 / 0 }}",
    "{{ missing + 1 }}",
    "{{ 'a' + 1 }}",
    "{{ 1 < 'a' }}",
    "{{ [1, 'a']|sort }}",
    "{{ 5|length }}",
    "{{ missing|int }}",
    "{{ missing|tojson }}",
    "{% macro f(a) %}{% endmacro %}{{ f(1, 2) }}",
    "{% macro f(a) %}{% endmacro %}{{ f(b=2) }}",
    "{% for a, b in [[1]] %}{% endfor %}",
    "{{ 'abcdef'|truncate(2) }}",
    "{% if %}",
    "{{ x|nosuchfilter }}",
    "{% for x in y %}",
    "{% endif %}",
    "{{ 1 in 'abc' }}",
    "{% macro outer() %}{% call inner() %}({{ caller() }}){% endcall %}{% endmacro %}"
    "{% macro inner() %}<{{ caller() }}>{% endmacro %}{% call outer() %}X{% endcall %}",
]


def write_case(folder, templates, ctx):
    for rel, text in templates.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="")
    ctx_path = folder / "ctx.json"
    ctx_path.write_text(json.dumps(ctx), encoding="utf-8")
    return ctx_path


def echo_render(folder, name, ctx_path):
    return subprocess.run([ECHOBOT, "tmpl", "render", str(folder / "t"), name, str(ctx_path)],
                          capture_output=True, timeout=60)


def run_case(tmp_path, templates, name, ctx):
    tdir = tmp_path / "t"
    tdir.mkdir()
    ctx_path = write_case(tdir, templates, ctx)
    want = jinja_render(tdir, name, ctx)
    got = echo_render(tmp_path, name, ctx_path)
    assert got.returncode == 0, got.stderr.decode()
    assert got.stdout.decode("utf-8") == want


@pytest.mark.parametrize("src", SINGLE, ids=[f"single{i}" for i in range(len(SINGLE))])
def test_single_template(tmp_path, src):
    run_case(tmp_path, {"main.html": src}, "main.html", CTX)


@pytest.mark.parametrize("case", MULTI, ids=[f"multi{i}" for i in range(len(MULTI))])
def test_several_templates(tmp_path, case):
    templates, name, ctx = case
    run_case(tmp_path, templates, name, ctx)


@pytest.mark.parametrize("src", ERRORS, ids=[f"error{i}" for i in range(len(ERRORS))])
def test_errors_fail_in_both(tmp_path, src):
    tdir = tmp_path / "t"
    tdir.mkdir()
    ctx_path = write_case(tdir, {"main.html": src}, CTX)
    with pytest.raises(Exception):
        jinja_render(tdir, "main.html", CTX)
    got = echo_render(tmp_path, "main.html", ctx_path)
    assert got.returncode != 0
    assert got.stdout == b""
    # The message names the template and a line.
    assert b"main.html:" in got.stderr


def test_syntax_error_reports_position(tmp_path):
    tdir = tmp_path / "t"
    tdir.mkdir()
    (tdir / "bad.html").write_text("line one\n  {% if x %}\n   {{ a + }}\n{% endif %}\n")
    got = subprocess.run([ECHOBOT, "tmpl", "check", str(tdir)], capture_output=True, timeout=60)
    assert got.returncode == 1
    err = got.stderr.decode()
    assert f"{tdir}/bad.html:3:11:" in err
    assert "{{ a + }}" in err and "^" in err
