#!/usr/bin/python3
"""Differential fuzzing of the C Jinja engine against jinja2 (configured as HF transformers).

  /usr/bin/python3 tests/chat/fuzz_engine.py SEED COUNT > /tmp/fuzz.json
  (tests/chat/goldens/fuzz.json, checked by test_chat_template, is: fuzz_engine.py 4242 300)
  EDGELLM_CHAT_EXTRA_GOLDENS=/tmp/fuzz.json build/tests/test_chat_template   (run from tests/)

Writes random templates (expressions, filters, tests, methods, loops, macros, namespaces, whitespace
control) with their jinja2 renders in the engine-golden format. Known, accepted differences are skipped:
printing generators / iterators (Python prints an address) and Markup inside containers.
"""
import copy
import json
import os
import random
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_chat_goldens import render  # noqa: E402

STRS = ["''", "'a'", "'Hello World'", "' pad '", "'x,y,,z'", "'\\n\\nq\\n'", "'h\u00e9llo'", "'\u4f60\u597d'",
        "'it\\'s'", "'a\"b'", "'<think>t</think>r'", "'12'", "'ABC def'", "'\\t'", "'a\\nb'"]
ATOMS = ["1", "0", "-3", "2.5", "0.1", "1e3", "true", "false", "none", "x", "s", "l", "d", "messages",
         "messages[0]", "messages[0].content", "messages[-1].role", "undefined_thing", "[1, 'a', none]",
         "{'k': 'v', 'n': 2}", "(1, 2)", "[]", "{}", "ns.v", "it", "loop.index", "tools", "messages[1].content",
         "messages[2].content", "messages[2].content[0].text", "messages[3].tool_calls[0].function.arguments",
         "d.items() | list", "d.keys() | list", "d.get('b')", "d.get('zz', 'dflt')", "messages | length",
         "tools[0].function", "f", "-0.5", "1e-7", "123456789", "(messages | last).role", "range(4) | list",
         "'%s-%d' % ('a', 3)", "'{}:{}'.format('k', 1)", "messages[2].content | map(attribute='type') | join(',')",
         "messages[3].tool_calls | length", "'\u00e9\u00df\u03a3'"] + STRS
FILTERS = ["trim", "length", "upper", "lower", "title", "capitalize", "string", "int", "float", "abs", "first",
           "last", "list", "sort", "unique | list", "tojson", "join(',')", "join", "default('D')",
           "default('E', true)", "replace('a', 'b')", "round", "round(1)", "indent(2)", "wordcount",
           "items | list", "sum", "min", "max", "trim('x')", "map('string') | list", "select | list",
           "reject | list", "tojson(indent=1)", "dictsort", "count", "e", "selectattr('role') | list",
           "map(attribute='role') | join('+')", "rejectattr('content', 'equalto', 'hello') | list",
           "sort(attribute='role') | map(attribute='content') | list", "batch(2) | list" if False else "center(9)"]
TESTS = ["defined", "undefined", "none", "string", "number", "integer", "float", "mapping", "iterable",
         "sequence", "boolean", "true", "false", "odd", "even", "divisibleby(2)", "equalto 1", "in [1, 'a']",
         "lower", "upper", "callable", "sameas none", "eq('a')", "gt(1)"]
METHODS = ["strip()", "lstrip()", "rstrip('\\n')", "split()", "split(',')", "rsplit(',', 1)", "startswith('h')",
           "endswith('d')", "upper()", "lower()", "title()", "capitalize()", "replace('l', 'L')", "find('l')",
           "count('l')", "format(1, 2)", "splitlines()", "isdigit()", "split('</think>')[-1]", "strip('\\n')",
           "split('\\n')[0]", "startswith(('a', 'H'))"]
OPS = ["+", "-", "*", "/", "//", "%", "**", "~", "==", "!=", "<", ">", "<=", ">=", "and", "or", "in", "not in"]
WS = ["", " ", "\n", "  \n  ", "\n\n", "\t", " x \n", "\n    ", "  "]


def expr(d=0):
    r = random.random()
    if d > 3 or r < 0.3:
        return random.choice(ATOMS)
    if r < 0.45:
        return f"{expr(d + 1)} | {random.choice(FILTERS)}"
    if r < 0.55:
        return f"{expr(d + 1)} is {'not ' if random.random() < 0.3 else ''}{random.choice(TESTS)}"
    if r < 0.65:
        return f"{random.choice(STRS + ['s', 'messages[0].content', 'messages[-1].content'])}.{random.choice(METHODS)}"
    if r < 0.8:
        return f"({expr(d + 1)} {random.choice(OPS)} {expr(d + 1)})"
    if r < 0.85:
        return f"not {expr(d + 1)}"
    if r < 0.9:
        return f"({expr(d + 1)} if {expr(d + 1)} else {expr(d + 1)})"
    if r < 0.95:
        return (f"{random.choice(['l', 'messages', STRS[2], '[1,2,3,4]'])}"
                f"[{random.choice(['1', '-1', '1:', ':2', '::-1', '::2', '5', '-2:'])}]")
    return f"[{expr(d + 1)}, {expr(d + 1)}]"


def tag(body):
    a = random.choice(["", "-", "", "+"])
    b = random.choice(["", "-", "", "+"])
    return "{%" + a + " " + body + " " + b + "%}"


def out(e):
    return "{{" + random.choice(["", "-"]) + " " + e + " " + random.choice(["", "-"]) + "}}"


def block(d=0):
    r = random.random()
    w = random.choice(WS)
    if d > 2 or r < 0.3:
        return w + out(expr()) + random.choice(WS)
    if r < 0.45:
        return (w + tag(f"if {expr()}") + block(d + 1) + random.choice(["", tag(f"elif {expr()}") + block(d + 1)])
                + random.choice(["", tag("else") + block(d + 1)]) + tag("endif") + random.choice(WS))
    if r < 0.62:
        it = random.choice(["messages", "l", "d", "d.items()", "s", "range(3)", "[]", "messages | selectattr('role', 'equalto', 'user')",
                            "l if l", "messages[2].content", "messages[::-1]", "tools", "messages[3].tool_calls"])
        tgt = "k, v" if it == "d.items()" else "it"
        cond = random.choice(["", "", f" if {expr()}"])
        body = block(d + 1) + random.choice(["{{ loop.index }}{{ loop.last }}", out("loop.revindex ~ loop.first"), "", "{{ loop.previtem }}"])
        ctl = random.choice(["", "", tag("if loop.index > 1") + tag("break") + tag("endif"), tag("if loop.first") + tag("continue") + tag("endif") + "C"])
        return (w + tag(f"for {tgt} in {it}{cond}") + ctl + body + random.choice(["", tag("else") + "E"]) + tag("endfor")
                + random.choice(WS))
    if r < 0.72:
        return w + tag(f"set ns.v = {expr()}") + block(d + 1)
    if r < 0.78:
        return w + tag(f"set v2 = {expr()}") + out("v2") + block(d + 1)
    if r < 0.84:
        return w + tag("set sb") + block(d + 1) + tag("endset") + out("sb | length") + out("sb")
    if r < 0.9:
        return (w + tag("macro mm(a, b='B')") + block(d + 1) + out("a ~ b") + tag("endmacro") + out(f"mm({expr()})")
                + random.choice(["", out("mm(1, b=2)")]))
    if r < 0.95:
        return w + "{#" + random.choice(["-", ""]) + " c " + random.choice(["-", ""]) + "#}" + random.choice(WS)
    return w + random.choice(["text", "{% raw %}{{ raw }}{% endraw %}", "a\n  b"]) + random.choice(WS)


def main():
    seed = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 500
    random.seed(seed)
    msgs = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": " w\u00f6rld\n"},
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What's <this>?"}]},
            {"role": "assistant", "content": "", "tool_calls": [
                {"type": "function", "function": {"name": "get", "arguments": {"q": "x", "n": 2.5, "deep": {"a": [1, None]}}}}]},
            {"role": "tool", "content": "{\"ok\": true}"}]
    extra = {"x": 5, "s": " Hi \u00e9 ", "l": [3, 1, 2], "d": {"b": 1, "a": [True, None]}, "f": 0.25,
             "tools": [{"function": {"name": "f", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}]}
    cases = []
    skipped = 0
    for i in range(n):
        t = "{% set ns = namespace(v=0) %}" + "".join(block() for _ in range(random.randint(1, 3)))
        r, e = render(t, copy.deepcopy(msgs), True, copy.deepcopy(extra), "<s>", "</s>")
        if r is not None and ("<generator object" in r or "iterator object" in r or "Markup(" in r):
            skipped += 1
            continue
        c = {"id": f"fuzz{seed}_{i}", "template": t, "add_generation_prompt": True}
        if e:
            if e["type"].startswith("compile:"):
                c["compile_error"] = True
            c["error"] = e
        else:
            c["rendered"] = r
        cases.append(c)
    json.dump({"seed": seed, "messages": msgs, "extra": extra, "bos_token": "<s>", "eos_token": "</s>", "cases": cases},
              sys.stdout, ensure_ascii=False, indent=0)
    print(f"{len(cases)} cases ({sum('error' in c for c in cases)} errors, {skipped} skipped)", file=sys.stderr)


if __name__ == "__main__":
    main()
