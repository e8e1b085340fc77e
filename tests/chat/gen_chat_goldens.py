#!/usr/bin/python3
"""Renders chat-template goldens with jinja2 configured exactly as HF transformers' apply_chat_template.

Run with the system python (Debian python3-jinja2):  /usr/bin/python3 tests/chat/gen_chat_goldens.py
Reads tests/fixtures/chat_templates/*.json, writes tests/chat/goldens/<name>.json (conversations) and
tests/chat/goldens/engine.json (small templates exercising single engine features).
"""
import json
import os
import sys
from datetime import datetime

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "fixtures", "chat_templates")
OUT = os.path.join(HERE, "goldens")


# ---- transformers' environment (transformers/utils/chat_template_utils.py) -------------------------
class AssistantTracker(Extension):
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_render_assistant", []), [], [], body).set_lineno(lineno)

    def _render_assistant(self, caller):
        return caller()


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(format):
    return datetime.now().strftime(format)


def make_env():
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[AssistantTracker, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


ENV = make_env()


def render(src, messages, agp, extra, bos, eos):
    """-> (rendered, None) or (None, {"type":..., "message":...})"""
    try:
        tpl = ENV.from_string(src)
    except Exception as e:  # compile error
        return None, {"type": "compile:" + type(e).__name__, "message": str(e)}
    kw = dict(extra or {})
    special = {}
    if bos is not None:
        special["bos_token"] = bos
    if eos is not None:
        special["eos_token"] = eos
    try:
        out = tpl.render(
            messages=messages,
            tools=kw.pop("tools", None),
            documents=kw.pop("documents", None),
            add_generation_prompt=agp,
            **special,
            **kw,
        )
        return out, None
    except jinja2.exceptions.TemplateError as e:
        return None, {"type": type(e).__name__, "message": str(e)}
    except Exception as e:
        return None, {"type": type(e).__name__, "message": str(e)}


# ---- conversations ------------------------------------------------------------------------------
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the current weather in a city",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "City name, e.g. \"Paris\""},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                    "days": {"type": "integer", "minimum": 1},
                },
                "required": ["city"],
            },
        },
    },
    {"type": "function", "function": {"name": "now", "description": "Current time — ünïcode", "parameters": {"type": "object", "properties": {}}}},
]

U = lambda t: {"role": "user", "content": t}
A = lambda t: {"role": "assistant", "content": t}
S = lambda t: {"role": "system", "content": t}

CONVS = {
    "user": [U("Hello!")],
    "system_user": [S("You are a helpful assistant."), U("What is 2+2?")],
    "system_user_assistant": [S("Be brief."), U("Hi"), A("Hello! How can I help?")],
    "multi_turn": [U("Hi"), A("Hello."), U("Tell me a joke."), A("Why did the chicken cross the road?"), U("Why?")],
    "system_multi_turn": [S("sys"), U("a"), A("b"), U("c"), A("d"), U("e")],
    "unicode": [S("Réponds en français 🇫🇷"), U("Привет 👋 — 你好, ¿qué tal? \u00e9\u0301"), A("ok ✓ ß")],
    "empty_strings": [S(""), U(""), A(""), U("")],
    "whitespace": [U("  padded \n\n text \t\n"), A("\n\nanswer  \n"), U("\tq")],
    "special_chars": [U("quotes ' \" and \\ backslash {{ not jinja }} {% nor this %} <|im_end|>")],
    "assistant_last": [U("Say hi"), A("hi")],
    "typed_text": [
        {"role": "system", "content": [{"type": "text", "text": "You see images."}]},
        {"role": "user", "content": [{"type": "text", "text": "Describe"}, {"type": "text", "text": " this."}]},
    ],
    "typed_image": [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is in the image?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "A cat."}]},
        {"role": "user", "content": [{"type": "image", "image": "b.png"}, {"type": "image"}, {"type": "text", "text": "And these?"}]},
    ],
    "bad_alternation": [U("one"), U("two")],
    "assistant_first": [A("I start"), U("ok")],
    "tool_calls": [
        S("You can call tools."),
        U("Weather in Paris?"),
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}}
            ],
        },
        {"role": "tool", "content": "{\"temp\": 21}"},
        {"role": "tool", "content": "sunny"},
        A("It is 21°C and sunny."),
        U("Thanks"),
    ],
    "tool_calls_string_args": [
        U("time?"),
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"type": "function", "function": {"name": "now", "arguments": "{}"}},
                {"type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}},
            ],
        },
        {"role": "tool", "content": "12:00"},
    ],
    "tool_calls_multi": [
        U("two calls"),
        {
            "role": "assistant",
            "content": "Calling.",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "now", "arguments": {}}},
                {"id": "c2", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Zürich", "days": 3}}},
            ],
        },
        {"role": "tool", "content": "12:00", "tool_call_id": "c1"},
        {"role": "tool", "content": {"temp": -2.5, "ok": True, "list": [1, None]}, "tool_call_id": "c2"},
    ],
    "think_in_content": [U("2+2?"), A("<think>\nadd them\n</think>\n\n4"), U("3+3?")],
    "think_last": [U("2+2?"), A("<think>\nadd them\n</think>\n\n4")],
    "reasoning_field": [U("q1"), {"role": "assistant", "content": "a1", "reasoning_content": "r1"}, U("q2"),
                        {"role": "assistant", "content": "a2", "reasoning_content": "r2"}],
    "tool_response_user": [U("<tool_response>x</tool_response>"), A("ok"), U("real question")],
    "empty": [],
    "system_only": [S("Only a system prompt.")],
    "long": [U("u%d %s" % (i, "word " * i)) if i % 2 == 0 else A("a%d" % i) for i in range(9)],
}

EXTRAS = [
    ("", {}),
    ("think_off", {"enable_thinking": False}),
    ("think_on", {"enable_thinking": True}),
    ("tools", {"tools": TOOLS}),
    ("vision_id", {"add_vision_id": True}),
    ("tools_system", {"tools": TOOLS, "tools_in_user_message": False, "date_string": "26 Jul 2024"}),
]


def template_cases():
    cases = []
    for cname in CONVS:
        for agp in (True, False):
            for ename, extra in EXTRAS:
                if ename and cname not in ("user", "system_user", "multi_turn", "think_in_content", "think_last",
                                            "tool_calls", "reasoning_field", "unicode", "tool_calls_string_args",
                                            "typed_image", "tool_calls_multi"):
                    continue
                cases.append({"id": f"{cname}/{'gen' if agp else 'nogen'}{'/' + ename if ename else ''}",
                              "conversation": cname, "add_generation_prompt": agp, "extra": ename})
    return cases


# ---- engine feature cases ---------------------------------------------------------------------------
M2 = [U("hello"), A("world")]
ENGINE = [
    # whitespace control
    ("ws_trim_blocks", "{% if true %}\nA\n{% endif %}\nB", None),
    ("ws_lstrip_blocks", "x\n    {% if true %}\n    y\n    {% endif %}\nz", None),
    ("ws_minus", "a   {{- 'b' -}}   c\n  {%- if true -%}  d  {%- endif -%}  e", None),
    ("ws_plus", "a\n    {%+ if true %}b{% endif +%}\nc", None),
    ("ws_var_no_trim", "{{ 'a' }}\n{{ 'b' }}\n", None),
    ("ws_comment", "a\n  {# comment #}\nb {#- c -#} c", None),
    ("ws_trailing_newline", "line\n", None),
    ("ws_crlf", "a\r\n{% if true %}\r\nb\r\n{% endif %}\r\n", None),
    ("ws_inline_block", "x {% if true %}y{% endif %} z\n  {% for i in [1,2] %}{{ i }}{% endfor %}  \n", None),
    ("ws_raw", "{% raw %}{{ not }} {% evaluated %}{% endraw %}", None),
    # loops
    ("loop_vars", "{% for m in messages %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}|{% endfor %}", [U("a"), A("b"), U("c")]),
    ("loop_else", "{% for x in [] %}{{ x }}{% else %}empty{% endfor %}", None),
    ("loop_filter_if", "{% for x in range(10) if x is odd %}{{ x }}{{ ',' if not loop.last }}{% endfor %}", None),
    ("loop_dict_items", "{% for k, v in {'a': 1, 'b': [2, 3]}.items() %}{{ k }}={{ v }};{% endfor %}", None),
    ("loop_dict_keys", "{% for k in {'x': 1, 'y': 2} %}{{ k }}{% endfor %}", None),
    ("loop_items_filter", "{% for k, v in messages[0] | items %}{{ k }}:{{ v }} {% endfor %}", None),
    ("loop_break_continue", "{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}{% break %}{% endif %}{{ i }}{% endfor %}", None),
    ("loop_nested", "{% for a in [1,2] %}{% for b in 'xy' %}{{ loop.index }}{{ a }}{{ b }} {% endfor %}{{ loop.index }};{% endfor %}", None),
    ("loop_scope", "{% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{{ x }}{% endfor %}{{ x }}", None),
    ("loop_prev_next_cycle", "{% for i in [1,2,3] %}{{ loop.previtem }}-{{ loop.nextitem }}-{{ loop.cycle('a','b') }} {% endfor %}", None),
    ("loop_reverse_slice", "{% for m in messages[::-1] %}{{ m.content }}{% endfor %}{{ messages[1:] | length }}", None),
    ("loop_unpack_tuple", "{% for a, b in [(1, 2), [3, 4]] %}{{ a + b }}{% endfor %}", None),
    # namespace / set
    ("namespace", "{% set ns = namespace(n=0, s='') %}{% for i in range(4) %}{% set ns.n = ns.n + i %}{% set ns.s = ns.s ~ i %}{% endfor %}{{ ns.n }} {{ ns.s }}", None),
    ("set_block", "{% set x %}inner {{ 1 + 2 }}{% endset %}[{{ x }}]", None),
    ("set_tuple", "{% set a, b = 1, 'two' %}{{ a }}{{ b }}", None),
    # macros
    ("macro_defaults", "{% macro f(a, b='B', c=3) %}{{ a }}-{{ b }}-{{ c }}{% endmacro %}{{ f(1) }} {{ f(1, 2) }} {{ f(1, c=9) }}", None),
    ("macro_varargs", "{% macro g() %}{{ varargs | length }}{{ kwargs }}{% endmacro %}{{ g(1, 2, k='v') }}", None),
    ("macro_recursive_render", "{% macro r(x) %}{% if x is mapping %}{% for k, v in x.items() %}{{ k }}:{{ r(v) }} {% endfor %}{% else %}{{ x }}{% endif %}{% endmacro %}{{ r({'a': {'b': 1}, 'c': 2}) }}", None),
    ("macro_call_block", "{% macro wrap() %}<{{ caller() }}>{% endmacro %}{% call wrap() %}inside{% endcall %}", None),
    # filters
    ("f_trim", "[{{ '  a b \n' | trim }}][{{ 'xxaxx' | trim('x') }}]", None),
    ("f_tojson", "{{ messages | tojson }}|{{ {'a': [1, 2.5, none, true], 'b': 'é\"\\n'} | tojson }}|{{ [] | tojson }}", None),
    ("f_tojson_indent", "{{ {'a': [1, {'b': {}}], 'c': []} | tojson(indent=2) }}\n{{ tools | tojson(indent=4) }}", None),
    ("f_tojson_sort", "{{ {'b': 1, 'a': 2} | tojson(sort_keys=true) }}", None),
    ("f_length", "{{ messages | length }} {{ 'héllo' | length }} {{ {'a':1} | length }} {{ [1,2] | count }}", None),
    ("f_selectattr", "{{ messages | selectattr('role', 'equalto', 'user') | map(attribute='content') | join(',') }}", [U("a"), A("b"), U("c")]),
    ("f_rejectattr", "{{ messages | rejectattr('role', 'equalto', 'user') | list | length }}{{ messages | selectattr('name', 'defined') | list | length }}", [U("a"), A("b"), {"role": "user", "content": "x", "name": "n"}]),
    ("f_select", "{{ [1, 2, 3, 4] | select('odd') | list }} {{ [0, 1, '', 'a'] | select | list }} {{ [1,2,3] | reject('even') | list }}", None),
    ("f_map", "{{ ['a', 'B'] | map('upper') | join }} {{ messages | map(attribute='role') | list }}", None),
    ("f_join", "{{ [1, 2, 3] | join(', ') }} {{ 'abc' | join('-') }}", None),
    ("f_first_last", "{{ [1, 2, 3] | first }}{{ [1, 2, 3] | last }}{{ 'xyz' | first }}", None),
    ("f_case", "{{ 'hello WORLD' | upper }} {{ 'Hello' | lower }} {{ 'hello big-world (x)' | title }} {{ 'hELLO' | capitalize }}", None),
    ("f_replace", "{{ 'aaa' | replace('a', 'b') }} {{ 'aaa' | replace('a', 'b', 2) }}", None),
    ("f_default", "{{ undefined_var | default('dflt') }} {{ '' | default('e', true) }} {{ none | default('n') }} {{ x | d('D') }}", None),
    ("f_string_int_float", "{{ 3 | string }}{{ '42' | int + 1 }} {{ '3.5' | float }} {{ 'x' | int }} {{ 3.9 | int }} {{ 2 | float }}", None),
    ("f_abs_round", "{{ -3 | abs }} {{ 2.567 | round(2) }} {{ 2.5 | round }} {{ 3.5 | round }} {{ 2.1 | round(0, 'ceil') }} {{ 2.9 | round(method='floor') }}", None),
    ("f_reverse_sort_unique", "{{ [3, 1, 2] | sort }} {{ [3, 1, 2] | sort(reverse=true) }} {{ ['b', 'A', 'c'] | sort }} {{ [1, 2, 1, 3] | unique | list }} {{ 'abc' | reverse }} {{ [1, 2] | reverse | list }}", None),
    ("f_sort_attr", "{{ messages | sort(attribute='content') | map(attribute='content') | join }}", [U("b"), A("c"), U("a")]),
    ("f_indent", "{{ 'a\nb\n\nc' | indent(2) }}|{{ 'a\nb' | indent(4, true) }}|{{ 'x\n\ny' | indent(1, blank=true) }}", None),
    ("f_wordcount_safe", "{{ 'hello big world' | wordcount }} {{ '<b>' | safe }} {{ '<a&b>' | e }}", None),
    ("f_min_max_sum", "{{ [3, 1, 2] | min }}{{ [3, 1, 2] | max }}{{ [1, 2, 3] | sum }}", None),
    ("f_items_dictsort", "{{ {'b': 1, 'a': 2} | dictsort }}", None),
    ("f_format", "{{ '%s-%d' | format('a', 3) }} {{ '%s and %s' % ('x', 'y') }} {{ '%.2f' % 3.14159 }}", None),
    # tests
    ("t_tests", "{{ x is defined }}{{ x is undefined }}{{ none is none }}{{ 's' is string }}{{ 1 is number }}{{ 1.5 is integer }}{{ {} is mapping }}{{ [] is iterable }}{{ 'a' is sequence }}{{ true is boolean }}{{ false is false }}{{ true is true }}{{ 3 is odd }}{{ 4 is even }}{{ 9 is divisibleby 3 }}{{ 'a' is in 'abc' }}{{ 1 is equalto 1 }}{{ 1 is number and 1 is not string }}", None),
    ("t_is_not", "{{ messages[0].content is not string }}{{ messages[0].missing is not defined }}", None),
    # operators
    ("op_arith", "{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 4 / 2 }} {{ 2 ** 10 }} {{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 1.5 + 1 }} {{ 0.1 + 0.2 }} {{ 1e20 }} {{ 1e-7 }} {{ 10 ** 16 * 1.0 }} {{ -0.0 }} {{ 3 - 5 }}", None),
    ("op_strings", "{{ 'a' ~ 1 ~ none ~ true }} {{ 'ab' * 3 }} {{ 'x' + 'y' }} {{ [1] + [2] }} {{ 'abc'[1] }} {{ 'abcdef'[1:4] }} {{ 'abcdef'[::2] }} {{ 'abcdef'[-2:] }}", None),
    ("op_compare", "{{ 1 < 2 < 3 }} {{ 'a' < 'b' }} {{ 1 == 1.0 }} {{ 1 != '1' }} {{ [1, 2] == [1, 2] }} {{ 2 >= 3 }} {{ true == 1 }}", None),
    ("op_logic", "{{ true and 'x' }} {{ false or 'y' }} {{ not none }} {{ none or 0 }} {{ 'a' in ['a', 'b'] }} {{ 'z' not in 'abc' }} {{ 'k' in {'k': 1} }}", None),
    ("op_ternary", "{{ 'yes' if messages else 'no' }} {{ 'a' if false }}|{{ ('x' if true else 'y') ~ '!' }}", None),
    ("op_attr_item", "{{ messages[0]['role'] }} {{ messages[0].content }} {{ messages[-1].role }} {{ messages.0.role }} {{ {'a': {'b': 'c'}}.a.b }}", None),
    ("op_neg_filter", "{{ -1 | abs }} {{ - 2 ** 2 }} {{ not true == false }}", None),
    # printing values
    ("print_values", "{{ none }} {{ true }} {{ 1.0 }} {{ 2.50 }} {{ [1, 'a', none, true, 1.5] }} {{ {'k': 'v', 'n': [None]} }} {{ ('t',) }} {{ (1, 2) }} {{ \"it's\" }} {{ ['it\\'s', 'q\"'] }} {{ ['a\\nb', 'é'] }}", None),
    ("print_undefined", "[{{ nothing }}][{{ nothing | length }}]", None),
    # string methods
    ("m_strip", "[{{ '  x  '.strip() }}][{{ 'xxyxx'.strip('x') }}][{{ '\\n\\nx\\n'.lstrip('\\n') }}][{{ 'x  '.rstrip() }}]", None),
    ("m_split", "{{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'a b c'.split(' ', 1) }} {{ 'a,b,c'.rsplit(',', 1) }} {{ 'x</think>y'.split('</think>')[-1] }}", None),
    ("m_starts_ends", "{{ 'hello'.startswith('he') }}{{ 'hello'.endswith('lo') }}{{ 'hello'.startswith(('x', 'h')) }}", None),
    ("m_misc", "{{ 'a-b'.replace('-', '+') }} {{ 'Hi'.lower() }}{{ 'Hi'.upper() }} {{ 'hello world'.title() }} {{ 'hello'.capitalize() }} {{ '{} {}'.format('a', 1) }} {{ '{x}!'.format(x='X') }} {{ 'abcabc'.find('c') }} {{ 'abcabc'.count('bc') }} {{ ', '.join(['a', 'b']) }} {{ 'héllo'.find('l') }}", None),
    ("m_dict", "{{ messages[0].keys() | list }} {{ messages[0].values() | list }} {{ messages[0].get('role') }} {{ messages[0].get('nope', 'dflt') }} {{ messages[0].get('nope') }}", None),
    # globals
    ("g_raise", "{% if messages | length > 1 %}{{ raise_exception('Too many messages: ' ~ messages | length) }}{% endif %}ok", [U("a"), A("b")]),
    ("g_range", "{{ range(3) | list }} {{ range(1, 10, 3) | list }} {{ range(5, 0, -2) | list }}", None),
    ("g_dict", "{{ dict(a=1, b='x') }}", None),
    ("g_vars", "{{ bos_token }}|{{ eos_token }}|{{ add_generation_prompt }}|{{ tools }}|{{ documents }}|{{ custom }}", None),
    ("generation_tag", "{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}{{ m.content }}{% endgeneration %}{% else %}{{ m.content }}{% endif %}{% endfor %}", None),
    # edge cases
    ("x_floats", "{{ 1/3 }} {{ 2.0 ** 0.5 }} {{ 1e16 }} {{ 1e15 }} {{ 123456789012345678.0 }} {{ 0.0001 }} {{ 0.00001 }} {{ 1.5e-5 }} {{ -1.0 }} {{ 100.0 }} {{ 3.14 | string }} {{ [0.1, 1e100, -2.5e-300] }} {{ [1e100, 0.5] | tojson }} {{ 10 / 4 }} {{ 2 ** -1 }} {{ 1 // 0.5 }} {{ 7.5 % 2 }} {{ -7.5 % 2 }}", None),
    ("x_ints", "{{ 7 % -3 }} {{ -7 // -2 }} {{ -3 // 2 }} {{ true + true }} {{ 2 ** 3 ** 2 }} {{ 3 * 'ab' }} {{ (1, 2) + (3,) }} {{ [1] * 3 }} {{ -(3) }} {{ +true }}", None),
    ("x_unicode", "{{ 'h\u00e9llo w\u00f6rld'[1:4] }} {{ '\u00df' | upper }} {{ '\u00c9T\u00c9' | lower }} {{ '\u00e9t\u00e9' | title }} {{ '\u4f60\u597d\u4e16\u754c' | length }} {{ '\u4f60\u597d\u4e16\u754c'[::-1] }} {{ 'a\u3000b\u00a0c'.split() }} {{ '\u00e9' | capitalize }}", None),
    ("x_repr", "{{ ['\\x01', '\\t', 'a\\\\b', '\\u2028', '\\x7f', '\u00e9\U0001F600'] }} {{ {'it\\'s': \"q\\\"\"} }} {{ ['both \\' and \"'] }}", None),
    ("x_ws_start", "   {% if true %}x{% endif %}\n\t{% if true %}\ty{% endif %}\n  z {% if true %}w{% endif %}", None),
    ("x_ws_nested_same_line", "<{% for i in [1,2] %}{% if i > 1 %}\n  {{ i }}\n{% endif %}{% endfor %}>\n  {{- 'tight' }}\n  {#- c #}\n  end", None),
    ("x_ws_raw_minus", "a\n  {% raw -%}\n   {{ x }}  \n  {%- endraw %}\nb", None),
    ("x_ws_multi", "{%- for m in messages -%}\n  [{{ m.role }}]\n  {%- if not loop.last %},\n{% endif -%}\n{%- endfor %}\n\n  tail  \n", None),
    ("x_macro_late_var", "{% set x = 'a' %}{% macro m() %}{{ x }}{% endmacro %}{% set x = 'b' %}{{ m() }}", None),
    ("x_outer_loop", "{% for a in [1, 2] %}{% set outer = loop %}{% for b in [3, 4] %}{{ outer.index }}{{ loop.index }} {% endfor %}{% endfor %}", None),
    ("x_select_in", "{{ messages | selectattr('role', 'in', ['user', 'system']) | list | length }} {{ [1, 2, 3] | select('gt', 1) | list }} {{ [1, 2, 3] | select('==', 2) | list }}", None),
    ("x_misc_exprs", "{{ x | default(none) is none }} {% if not x is defined %}nd{% endif %} {{ 'a' 'b' }} {{ [1, 2, 3][5] }}|{{ {'a': 1}['b'] }}| {{ 1 if 0 else 2 if 0 else 3 }} {{ not 1 == 2 }} {{ (messages | last).content }}", None),
    ("x_set_in_if", "{% if true %}{% set y = 5 %}{% endif %}{{ y }}{% for i in [1] %}{% if true %}{% set z = 1 %}{% endif %}{{ z }}{% endfor %}[{{ z }}]", None),
    ("x_percent", "{{ '%5s|%-5s|%05d|%x' % ('a', 'b', 42, 255) }} {{ '%s' % none }} {{ '%s' % [1] }} {{ '%r' % 'q' }} {{ '100%%' % () }}", None),
    ("x_dict_print", "{{ messages[0] }} {{ {'n': {'x': [1, {'y': none}]}} }} {{ {1: 'a', none: true} }}", None),
    ("x_loop_first_last", "{% for i in range(4) %}{% if loop.first %}F{% elif loop.last %}L{% else %}M{{ loop.revindex }}{% endif %}{% endfor %}", None),
    ("x_tojson_misc", "{{ '{\"a\": 1}' | tojson }} {{ {'a': none, 'b': {'c': []}} | tojson(indent=2) }} {{ [1, [2, []], {}] | tojson(indent=0) }} {{ 'x</script>\\u0001' | tojson }} {{ {'a': 1} | tojson(separators=(',', ':')) }} {{ '\u00e9' | tojson(ensure_ascii=true) }}", None),
    ("x_map_length", "{{ messages | map(attribute='content') | map('length') | list }} {{ messages | map(attribute='nope', default='D') | list }} {{ messages | map(attribute='nope') | list }}", None),
    ("x_strip_methods", "{{ 'x'.center(5, '*') }} {{ '7'.zfill(3) }} {{ 'a.b.c'.rpartition('.') }} {{ 'ab'.removeprefix('a') }} {{ 'abc'.isalpha() }}{{ '12'.isdigit() }}{{ 'ab'.islower() }}{{ 'AB'.isupper() }} {{ 'a\\nb\\r\\nc'.splitlines() }} {{ '  x  '.lstrip() }}| {{ 'Hello World'.swapcase() }}", None),
    ("x_namespace_macro", "{% set ns = namespace(items=[]) %}{% macro add(n, v) %}{% set n.items = n.items + [v] %}{% endmacro %}{{ add(ns, 1) }}{{ add(ns, 2) }}{{ ns.items }}", None),
    ("x_filter_chain_prec", "{{ 'a' ~ 'b' | upper }} {{ -2 | abs }} {{ 1 + 2 | string }} {{ ['x'] | first | upper }} {{ messages | length > 1 }}", None),
    ("x_is_tests2", "{{ 1 is sameas 1 }}{{ none is sameas none }}{{ 3 is gt 2 }}{{ 2 is le 2 }}{{ 'abc' is lower }}{{ 'ABC' is upper }}{{ 1.0 is float }}{{ true is integer }}{{ true is number }}{{ x is callable }}{{ range is callable }}{{ 'f' is iterable }}", None),
    ("x_nested_data", "{% for t in tools %}{{ t.function.name }}:{% for p, d in t.function.parameters.properties.items() %}{{ p }}({{ d.type }}{{ ', enum=' ~ d.enum | join('/') if d.enum }}){{ '*' if p in t.function.parameters.required }} {% endfor %}{% endfor %}", None),
    ("x_dict_get_method_key", "{% set d = {'items': 'I', 'x': 1} %}{{ d['items'] }} {{ d.x }} {{ d.items() | list }}", None),
    ("x_with", "{% with a = 1, b = messages | length %}{{ a + b }}{% endwith %}[{{ a }}]", None),
    ("x_range_print", "{{ range(3) }} {{ range(1, 10, 3) }} {{ range(2) | list }}", None),
    ("x_loop_frames", "{% for i in [1,2] %}[{{ x }}]{% set x = i %}{% endfor %}{% set x = 0 %}{% for i in [1,2] %}[{{ x }}]{% set x = i %}{% endfor %}{{ x }}", None),
    ("x_macro_closure", "{% for i in [1, 2] %}{% macro m() %}<{{ i }}>{% endmacro %}{{ m() }}{% endfor %}", None),
    ("x_call_args", "{% macro list(items) %}{% for it in items %}{{ caller(it, loop.index) }}{% endfor %}{% endmacro %}{% call(x, i) list(['a', 'b']) %}{{ i }}={{ x }};{% endcall %}", None),
    ("err_tojson_ns", "{{ namespace(a=1) | tojson }}", None),
    ("err_none_in", "{{ 'x' in none }}", None),
    ("err_none_length", "{{ none | length }}", None),
    ("err_cmp", "{{ 'a' < 1 }}", None),
    ("err_join_int", "{{ ' '.join(['a', 1]) }}", None),
    ("x_long_concat", "{% set a = 'x' * 2000 %}{% set b = a + 'B' %}{% set c = a + 'C' %}{% set d = b + 'D' %}{% set e = a ~ 'E' %}{{ a | length }} {{ b[-3:] }} {{ c[-3:] }} {{ d[-3:] }} {{ e[-2:] }} {{ b | length }} {{ (b + 'Q')[-2:] }} {{ b[-2:] }}{% set ns = namespace(s='') %}{% for i in range(300) %}{% set ns.s = ns.s + 'abcdefghij' ~ i %}{% set t = ns.s ~ '!' %}{% if loop.last %}{{ t[-3:] }}{% endif %}{% endfor %} {{ ns.s | length }} {{ ns.s[-20:] }}", None),
    ("x_unicode_case", "{{ 'stra\u00dfe' | upper }} {{ '\ufb01ne' | upper }} {{ '\u039f\u0394\u039f\u03a3 \u03a3\u0391\u03a3' | lower }} {{ '\u0130stanbul' | lower }} {{ '\u01c6emal' | title }} {{ '\u01c6emal' | capitalize }} {{ '\u01c6emal'.title() }} {{ '\u00dfa'.capitalize() }} {{ '\u03a3\u0391\u03a3.'.lower() }} {{ 'a\u03a3b'.lower() }} {{ '\u03a3'.lower() }} {{ 'hELLo \u00df'.swapcase() }} {{ '\u00c9COLE \u0152UVRE' | lower }} {{ 'x\u00dfy'.title() }}", None),
    ("x_filter_block", "{% filter upper %}a{{ 'b' }}c{% endfilter %}|{% filter replace('x', 'y') | trim %}  xx {% for i in [1] %}x{% endfor %} {% endfilter %}|{% set t | trim | title %}  hello world {% endset %}{{ t }}", None),
    ("x_loop_changed", "{% for m in ['a', 'a', 'b', 'b', 'a'] %}{% if loop.changed(m) %}[{{ m }}]{% endif %}{% endfor %}", None),
    # errors
    ("err_str_plus_int", "{{ 'a' + 1 }}", None),
    ("err_undefined_attr", "{{ nothing.attr }}", None),
    ("err_list_append", "{% set l = [] %}{{ l.append(1) }}", None),
    ("err_div_zero", "{{ 1 // 0 }}", None),
]


# cases whose JSON input text matters (int vs float literals): passed to the C side verbatim
JSON_TEXT = {
    "x_json_numbers": (
        '[{"role": "user", "content": "x", "n": 1.0, "m": 2, "f": 1e2, "big": 12345678901234567, "neg": -0.0, "s": 2.50}]',
        '{"temperature": 1.0, "top_k": 40, "args": {"a": 0.5, "b": 3.0, "c": -0, "d": [1, 1.0, 1E-3]}}',
    ),
}
ENGINE.append(("x_json_numbers", "{% set m = messages[0] %}{{ m.n }} {{ m.m }} {{ m.f }} {{ m.big }} {{ m.neg }} {{ m.s }} "
               "{{ temperature }} {{ top_k }} {{ args }} {{ args | tojson }} {{ messages | tojson }} {{ m.n is float }}"
               "{{ m.m is integer }} {{ m.big + 1 }}", None))


def engine_cases():
    out = []
    for name, src, msgs in ENGINE:
        msgs = msgs if msgs is not None else M2
        extra = {"custom": "C", "tools": TOOLS[:1]} if name in ("g_vars", "f_tojson_indent", "x_nested_data") else {}
        texts = JSON_TEXT.get(name)
        if texts:
            msgs, extra = json.loads(texts[0]), json.loads(texts[1])
        r, err = render(src, msgs, True, extra, "<s>", "</s>")
        case = {"id": name, "template": src, "messages": msgs, "add_generation_prompt": True, "extra": extra,
                "bos_token": "<s>", "eos_token": "</s>"}
        if texts:
            case["messages_json"], case["extra_json"] = texts
        if err:
            case["error"] = err
        else:
            case["rendered"] = r
        out.append(case)
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    for fn in sorted(os.listdir(FIX)):
        if not fn.endswith(".json"):
            continue
        t = json.load(open(os.path.join(FIX, fn)))
        cases = []
        extras = dict(EXTRAS)
        for c in template_cases():
            r, err = render(t["chat_template"], CONVS[c["conversation"]], c["add_generation_prompt"], extras[c["extra"]],
                            t.get("bos_token"), t.get("eos_token"))
            c = dict(c)
            if err:
                c["error"] = err
            else:
                c["rendered"] = r
            cases.append(c)
        nerr = sum(1 for c in cases if "error" in c)
        doc = {"template": t["name"], "conversations": CONVS, "extras": extras, "cases": cases}
        with open(os.path.join(OUT, t["name"] + ".json"), "w") as f:
            json.dump(doc, f, ensure_ascii=False, separators=(",", ":"))
        print(f"{t['name']}: {len(cases)} cases ({nerr} expected errors)")
    cases = engine_cases()
    with open(os.path.join(OUT, "engine.json"), "w") as f:
        json.dump({"cases": cases}, f, ensure_ascii=False, indent=0)
    print(f"engine: {len(cases)} cases ({sum(1 for c in cases if 'error' in c)} expected errors)")


if __name__ == "__main__":
    sys.exit(main())
