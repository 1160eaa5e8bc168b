"""A small, honest evaluator for the Terraform subset used in infra/*.tf.

It reads the .tf files with python-hcl2 (kept in .venv/python-hcl2, see tools/venv.sh) and
evaluates HCL expressions: literals, templates with ${...} interpolation, var./local./
each./count. references, data sources (aws_caller_identity, aws_partition,
aws_iam_policy_document), references to resources created by a deployer (their
attributes are given back by it), indexing, the operators (! - * / % + - < > <= >= == !=
&& || ?:), list/object literals, for expressions, and a handful of functions.

Anything outside that subset raises Unsupported: the caller must fail loudly rather than
guess. Errors Terraform itself would report (a failed regex, a missing key) raise
EvalError, which can() catches as Terraform does.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import re
import sys
from pathlib import Path

_HCL2_DIR = Path(__file__).resolve().parent.parent / ".venv" / "python-hcl2"
if _HCL2_DIR.is_dir():
    sys.path.insert(0, str(_HCL2_DIR))
import hcl2  # noqa: E402  (python-hcl2 >= 8: expressions kept as HCL text)


def _slice(l, start, end):
    if not (isinstance(start, int) and isinstance(end, int) and 0 <= start <= end <= len(l)):
        raise EvalError(f"slice({start}, {end}) of a list of length {len(l)}")
    return l[start:end]


def _split(sep, s):
    if not isinstance(sep, str) or not isinstance(s, str) or not sep:
        raise EvalError("split() takes a non-empty separator and a string")
    return s.split(sep)


class TfSet(list):
    """A set of strings, in Terraform's (lexical) order: what for_each takes besides maps."""


def _toset(l):
    if not all(isinstance(x, str) for x in l):
        raise Unsupported("toset() of other than strings")
    return TfSet(sorted(dict.fromkeys(l)))


def _flatten(l):
    out = []
    for x in l:
        out.extend(_flatten(x) if isinstance(x, list) else [x])
    return out


def _range(*args):
    if not 1 <= len(args) <= 3 or not all(isinstance(a, int) for a in args):
        raise Unsupported("range() with other than 1-3 whole numbers")
    return list(range(*args))


class Unsupported(Exception):
    """The .tf uses something this evaluator does not implement."""


class EvalError(Exception):
    """An error Terraform would report too (can() turns it into false)."""


class NotCreated(Exception):
    """A reference to a resource the deployer has not created (yet)."""


# --------------------------------------------------------------------------------------
# Parsing HCL expression text into a small AST of tuples
# --------------------------------------------------------------------------------------

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_KEYWORDS = {"true": True, "false": False, "null": None}


class _Parser:
    def __init__(self, text: str):
        self.s = text
        self.i = 0

    # -- helpers
    def ws(self, newlines=True):
        while self.i < len(self.s):
            c = self.s[self.i]
            if c in " \t\r" or (newlines and c == "\n"):
                self.i += 1
            elif self.s.startswith("#", self.i) or self.s.startswith("//", self.i):
                while self.i < len(self.s) and self.s[self.i] != "\n":
                    self.i += 1
            else:
                break

    def peek(self, tok):
        self.ws()
        return self.s.startswith(tok, self.i)

    def accept(self, tok):
        if self.peek(tok):
            self.i += len(tok)
            return True
        return False

    def expect(self, tok):
        if not self.accept(tok):
            raise Unsupported(f"expected {tok!r} at {self.s[self.i:self.i + 30]!r} in {self.s!r}")

    def peek_word(self, word):
        self.ws()
        m = _IDENT.match(self.s, self.i)
        return bool(m) and m.group(0) == word

    # -- grammar
    def parse(self):
        e = self.expr()
        self.ws()
        if self.i != len(self.s):
            raise Unsupported(f"unparsed text {self.s[self.i:]!r} in {self.s!r}")
        return e

    def expr(self):
        cond = self.binary(0)
        if self.accept("?"):
            a = self.expr()
            self.expect(":")
            b = self.expr()
            return ("cond", cond, a, b)
        return cond

    _LEVELS = [["||"], ["&&"], ["==", "!="], ["<=", ">=", "<", ">"], ["+", "-"], ["*", "/", "%"]]

    def binary(self, level):
        if level == len(self._LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        while True:
            self.ws()
            op = next((o for o in self._LEVELS[level] if self.s.startswith(o, self.i)), None)
            if op is None or self.s.startswith("=>", self.i):
                return left
            self.i += len(op)
            right = self.binary(level + 1)
            left = ("op", op, left, right)

    def unary(self):
        if self.accept("!"):
            return ("not", self.unary())
        if self.peek("-") and not self.peek("->"):
            self.i += 1
            return ("neg", self.unary())
        return self.postfix(self.primary())

    def postfix(self, node):
        while True:
            if self.peek("[*]") or self.peek(".*"):
                raise Unsupported(f"splat expressions in {self.s!r}")
            if self.peek("."):
                self.i += 1
                self.ws()
                m = _IDENT.match(self.s, self.i)
                if m:
                    self.i = m.end()
                    node = ("attr", node, m.group(0))
                    continue
                m = re.compile(r"[0-9]+").match(self.s, self.i)
                if m:
                    self.i = m.end()
                    node = ("index", node, ("lit", int(m.group(0))))
                    continue
                raise Unsupported(f"bad attribute access in {self.s!r}")
            if self.peek("["):
                self.i += 1
                idx = self.expr()
                self.expect("]")
                node = ("index", node, idx)
                continue
            return node

    def primary(self):
        self.ws()
        if self.i >= len(self.s):
            raise Unsupported(f"unexpected end of {self.s!r}")
        c = self.s[self.i]
        if c == '"':
            return self.template()
        if self.s.startswith("<<", self.i):
            raise Unsupported(f"heredoc in {self.s!r}")
        if c == "(":
            self.i += 1
            e = self.expr()
            self.expect(")")
            return e
        if c == "[":
            self.i += 1
            if self.peek_word("for"):
                return self.for_expr("]")
            items = []
            while not self.accept("]"):
                items.append(self.expr())
                if not self.accept(","):
                    self.expect("]")
                    break
            return ("list", items)
        if c == "{":
            self.i += 1
            if self.peek_word("for"):
                return self.for_expr("}")
            items = []
            while not self.accept("}"):
                key = self.object_key()
                if not (self.accept("=") or self.accept(":")):
                    raise Unsupported(f"expected = in object in {self.s!r}")
                items.append((key, self.expr()))
                self.accept(",")
            return ("object", items)
        m = _NUMBER.match(self.s, self.i)
        if m:
            self.i = m.end()
            txt = m.group(0)
            return ("lit", float(txt) if any(x in txt for x in ".eE") else int(txt))
        m = _IDENT.match(self.s, self.i)
        if m:
            self.i = m.end()
            name = m.group(0)
            if name in _KEYWORDS:
                return ("lit", _KEYWORDS[name])
            if self.peek("("):
                self.i += 1
                args = []
                while not self.accept(")"):
                    args.append(self.expr())
                    if self.accept("..."):
                        raise Unsupported(f"argument expansion in {self.s!r}")
                    if not self.accept(","):
                        self.expect(")")
                        break
                return ("call", name, args)
            return ("ref", name)
        raise Unsupported(f"cannot parse {self.s[self.i:self.i + 30]!r} in {self.s!r}")

    def object_key(self):
        self.ws()
        if self.s[self.i] == '"':
            return self.template()
        if self.s[self.i] == "(":
            self.i += 1
            e = self.expr()
            self.expect(")")
            return e
        m = _IDENT.match(self.s, self.i)
        if not m:
            raise Unsupported(f"bad object key in {self.s!r}")
        self.i = m.end()
        return ("lit", m.group(0))

    def for_expr(self, close):
        self.i += 3  # "for"
        names = []
        while True:
            self.ws()
            m = _IDENT.match(self.s, self.i)
            if not m:
                raise Unsupported(f"bad for expression in {self.s!r}")
            self.i = m.end()
            names.append(m.group(0))
            if not self.accept(","):
                break
        if not self.peek_word("in"):
            raise Unsupported(f"expected 'in' in {self.s!r}")
        self.i += 2
        coll = self.expr()
        self.expect(":")
        key = None
        val = self.expr()
        if close == "}":
            self.expect("=>")
            key, val = val, self.expr()
            if self.accept("..."):
                raise Unsupported(f"grouping for expression in {self.s!r}")
        cond = None
        if self.peek_word("if"):
            self.i += 2
            cond = self.expr()
        self.expect(close)
        return ("for", names, coll, key, val, cond)

    def template(self):
        """A quoted template: literal parts and ${...} interpolations."""
        assert self.s[self.i] == '"'
        self.i += 1
        parts, buf = [], []
        while True:
            if self.i >= len(self.s):
                raise Unsupported(f"unterminated string in {self.s!r}")
            c = self.s[self.i]
            if c == '"':
                self.i += 1
                break
            if c == "\\":
                nxt = self.s[self.i + 1]
                esc = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}
                if nxt not in esc:
                    raise Unsupported(f"escape \\{nxt} in {self.s!r}")
                buf.append(esc[nxt])
                self.i += 2
            elif self.s.startswith("$${", self.i) or self.s.startswith("%%{", self.i):
                buf.append(self.s[self.i + 1:self.i + 3])
                self.i += 3
            elif self.s.startswith("%{", self.i):
                raise Unsupported(f"template directive in {self.s!r}")
            elif self.s.startswith("${", self.i):
                if buf:
                    parts.append(("lit", "".join(buf)))
                    buf = []
                self.i += 2
                self.accept("~")
                e = self.expr()
                self.accept("~")
                self.expect("}")
                parts.append(("interp", e))
            else:
                buf.append(c)
                self.i += 1
        if buf or not parts:
            parts.append(("lit", "".join(buf)))
        return ("template", parts)


def parse_expression(text: str):
    return _Parser(text).parse()


# --------------------------------------------------------------------------------------
# Values in python-hcl2's output
# --------------------------------------------------------------------------------------

def _unquote_key(k: str) -> str:
    if len(k) >= 2 and k[0] == '"' and k[-1] == '"':
        return k[1:-1]
    return k


def is_block_list(v) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) and x.get("__is_block__") for x in v)


def body_items(body: dict):
    """(name, value) of a block body, without python-hcl2's __meta__ keys."""
    return [(k, v) for k, v in body.items() if not (k.startswith("__") and k.endswith("__"))]


# --------------------------------------------------------------------------------------
# Functions
# --------------------------------------------------------------------------------------

def _tf_string(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(int(v)) if float(v).is_integer() else repr(v)
    if isinstance(v, str):
        return v
    if v is None:
        raise EvalError("cannot use null in a string")
    raise EvalError(f"cannot convert {type(v).__name__} to string")


def _regex(pattern, s):
    # RE2 and Python agree on the simple patterns used here; (?P<>) etc. are not used.
    m = re.search(pattern, s)
    if not m:
        raise EvalError(f"pattern {pattern!r} did not match {s!r}")
    if m.groupdict():
        return m.groupdict()
    if m.groups():
        return list(m.groups())
    return m.group(0)


class Evaluator:
    """Evaluates values of the parsed module against variables, locals and a resource table."""

    def __init__(self, infra_dir: str, overrides: dict | None = None, data_sources: dict | None = None):
        self.dir = Path(infra_dir)
        self.module = {"variable": {}, "locals": {}, "resource": {}, "data": {}, "output": {}}
        self.files = sorted(self.dir.glob("*.tf"))
        if not self.files:
            raise Unsupported(f"no .tf files in {infra_dir}")
        for f in self.files:
            with open(f, encoding="utf-8") as fh:
                doc = hcl2.load(fh)
            self._collect(doc, f.name)
        self.vars = self._variables(overrides or {})
        self._locals_cache: dict = {}
        self._locals_busy: set = set()
        self.resources: dict = {}  # (type, name) -> instance attrs: dict | list | {key: dict}
        self.data_sources = data_sources or {}  # (type, name) -> attrs for simple data sources

    # -- loading
    def _collect(self, doc, fname):
        for key, blocks in doc.items():
            if key in ("terraform", "provider", "__comments__", "__is_block__"):
                continue
            if key == "variable" or key == "output":
                for b in blocks:
                    for name, body in b.items():
                        self.module[key][_unquote_key(name)] = body
            elif key == "locals":
                for b in blocks:
                    for name, v in body_items(b):
                        if name in self.module["locals"]:
                            raise Unsupported(f"local.{name} defined twice")
                        self.module["locals"][name] = v
            elif key in ("resource", "data"):
                for b in blocks:
                    for rtype, named in b.items():
                        for rname, body in named.items():
                            k = (_unquote_key(rtype), _unquote_key(rname))
                            if k in self.module[key]:
                                raise Unsupported(f"{key} {k} declared twice")
                            self.module[key][k] = dict(body, __file__=fname)
            elif key == "module":
                raise Unsupported(f"module blocks ({fname}) are not supported")
            else:
                raise Unsupported(f"top-level block {key!r} in {fname}")

    def _variables(self, overrides):
        out = {}
        for name, body in self.module["variable"].items():
            if name in overrides:
                out[name] = overrides[name]
            elif "default" in body:
                out[name] = self.value(body["default"], {})
            else:
                raise EvalError(f"variable {name} has no default and no value was given")
        unknown = set(overrides) - set(out)
        if unknown:
            raise EvalError(f"values given for undeclared variables: {sorted(unknown)}")
        # Coerce override strings to the declared type (numbers / bools / lists / maps).
        for name, body in self.module["variable"].items():
            t = self._type_text(body.get("type"))
            v = out[name]
            if name in overrides and isinstance(v, str):
                if t == "number":
                    out[name] = float(v) if "." in v else int(v)
                elif t == "bool":
                    out[name] = {"true": True, "false": False}[v]
                elif t.startswith(("list", "map", "object", "set")):
                    out[name] = json.loads(v)
        return out

    @staticmethod
    def _type_text(t):
        if t is None:
            return "any"
        if isinstance(t, str):
            t = t.strip()
            if t.startswith("${") and t.endswith("}"):
                t = t[2:-1]
            return t
        raise Unsupported(f"variable type {t!r}")

    def check_validations(self):
        """Evaluate every variable's validation blocks, as `terraform plan` would."""
        for name, body in self.module["variable"].items():
            for val in body.get("validation", []):
                ok = self.value(val["condition"], {})
                if ok is not True:
                    raise EvalError(f"variable {name}: {self.value(val['error_message'], {})}")

    # -- values
    def value(self, v, scope):
        """Evaluate a value from python-hcl2's output (attribute value)."""
        if isinstance(v, str):
            if v.startswith('"') and v.endswith('"') and len(v) >= 2:
                return self.eval(parse_expression(v), scope)
            if v.startswith("${") and v.endswith("}"):
                return self.eval(parse_expression(v[2:-1]), scope)
            if v.startswith("<<"):
                raise Unsupported(f"heredoc {v[:30]!r}")
            # python-hcl2 leaves bare identifiers such as a type name as text
            return self.eval(parse_expression(v), scope)
        if isinstance(v, bool) or v is None or isinstance(v, (int, float)):
            return v
        if isinstance(v, list):
            return [self.value(x, scope) for x in v]
        if isinstance(v, dict):
            return {_unquote_key(k): self.value(x, scope) for k, x in body_items(v)}
        raise Unsupported(f"value {v!r}")

    def eval(self, node, scope):
        kind = node[0]
        if kind == "lit":
            return node[1]
        if kind == "template":
            parts = node[1]
            if len(parts) == 1 and parts[0][0] == "interp":
                return self.eval(parts[0][1], scope)
            return "".join(p[1] if p[0] == "lit" else _tf_string(self.eval(p[1], scope)) for p in parts)
        if kind == "list":
            return [self.eval(x, scope) for x in node[1]]
        if kind == "object":
            return {_tf_string(self.eval(k, scope)): self.eval(v, scope) for k, v in node[1]}
        if kind == "cond":
            c = self.eval(node[1], scope)
            if not isinstance(c, bool):
                raise EvalError(f"condition is not a bool: {c!r}")
            return self.eval(node[2] if c else node[3], scope)
        if kind == "not":
            c = self.eval(node[1], scope)
            if not isinstance(c, bool):
                raise EvalError("! needs a bool")
            return not c
        if kind == "neg":
            return -self.eval(node[1], scope)
        if kind == "op":
            return self._op(node[1], node[2], node[3], scope)
        if kind == "call":
            return self._call(node[1], node[2], scope)
        if kind == "for":
            return self._for(node, scope)
        if kind == "index":
            base = self.eval(node[1], scope)
            idx = self.eval(node[2], scope)
            return self._index(base, idx)
        if kind == "attr":
            return self._attr(node, scope)
        if kind == "ref":
            return self._ref_root(node[1], scope)
        raise Unsupported(f"node {kind}")

    def _op(self, op, a, b, scope):
        if op in ("&&", "||"):
            x = self.eval(a, scope)
            if not isinstance(x, bool):
                raise EvalError(f"{op} needs bools, got {x!r}")
            if (op == "&&" and not x) or (op == "||" and x):
                return x
            y = self.eval(b, scope)
            if not isinstance(y, bool):
                raise EvalError(f"{op} needs bools, got {y!r}")
            return y
        x, y = self.eval(a, scope), self.eval(b, scope)
        if op in ("==", "!="):
            num = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (x, y))
            same = x == y if num else (type(x) is type(y) and x == y)
            return same if op == "==" else not same
        for v in (x, y):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise EvalError(f"arithmetic/comparison on {v!r}")
        return {"<": lambda: x < y, ">": lambda: x > y, "<=": lambda: x <= y, ">=": lambda: x >= y,
                "+": lambda: x + y, "-": lambda: x - y, "*": lambda: x * y,
                "/": lambda: x / y, "%": lambda: x % y}[op]()

    def _for(self, node, scope):
        _, names, coll_n, key_n, val_n, cond_n = node
        coll = self.eval(coll_n, scope)
        if isinstance(coll, dict):
            pairs = list(coll.items())
        elif isinstance(coll, list):
            pairs = list(enumerate(coll))
        else:
            raise EvalError(f"for over {coll!r}")
        out_list, out_map = [], {}
        for k, v in pairs:
            inner = dict(scope)
            if len(names) == 2:
                inner[names[0]], inner[names[1]] = k, v
            else:
                inner[names[0]] = v
            if cond_n is not None and self.eval(cond_n, inner) is not True:
                continue
            if key_n is None:
                out_list.append(self.eval(val_n, inner))
            else:
                kk = _tf_string(self.eval(key_n, inner))
                if kk in out_map:
                    raise EvalError(f"duplicate key {kk!r} in for expression")
                out_map[kk] = self.eval(val_n, inner)
        return out_list if key_n is None else out_map

    @staticmethod
    def _index(base, idx):
        if isinstance(base, list):
            if not isinstance(idx, int) or not 0 <= idx < len(base):
                raise EvalError(f"index {idx!r} out of range (length {len(base)})")
            return base[idx]
        if isinstance(base, dict):
            if isinstance(idx, (int, float)) and not isinstance(idx, bool):
                idx = _tf_string(idx)  # map keys are strings: Terraform converts the index
            if idx not in base:
                raise EvalError(f"no key {idx!r} (keys: {sorted(base)})")
            return base[idx]
        raise EvalError(f"cannot index {base!r}")

    def _flatten_ref(self, node):
        """attr chain -> (root name, [attr names]) or None when something else is in it."""
        names = []
        while node[0] == "attr":
            names.append(node[2])
            node = node[1]
        if node[0] != "ref":
            return None, None
        return node[1], list(reversed(names))

    def _attr(self, node, scope):
        root, names = self._flatten_ref(node)
        if root is not None and root not in scope:
            if root == "var":
                if names[0] not in self.vars:
                    raise EvalError(f"undeclared variable var.{names[0]}")
                return self._walk(self.vars[names[0]], names[1:])
            if root == "local":
                return self._walk(self._local(names[0]), names[1:])
            if root == "path":
                if names[0] in ("module", "root"):
                    return self._walk(str(self.dir), names[1:])
                raise Unsupported(f"path.{names[0]}")
            if root == "data":
                return self._walk(self._data(names[0], names[1]), names[2:])
            if root in ("each", "count", "self", "terraform", "module"):
                raise Unsupported(f"{root}.{'.'.join(names)} outside its context")
            if "_" in root or root in self.resource_types():
                # resource reference: TYPE.NAME then the instance/attributes
                return self._walk(self.resource_ref(root, names[0]), names[1:])
        base = self.eval(node[1], scope)
        return self._index_attr(base, node[2])

    @staticmethod
    def _index_attr(base, name):
        if isinstance(base, dict):
            if name not in base:
                raise EvalError(f"no attribute {name!r} (has: {sorted(base)})")
            return base[name]
        raise EvalError(f"attribute {name!r} of {base!r}")

    def _walk(self, v, names):
        for n in names:
            v = self._index_attr(v, n)
        return v

    def _ref_root(self, name, scope):
        if name in scope:
            return scope[name]
        raise Unsupported(f"bare reference {name!r}")

    def resource_types(self):
        return {t for t, _ in self.module["resource"]}

    def resource_ref(self, rtype, rname):
        if (rtype, rname) not in self.module["resource"]:
            raise EvalError(f"reference to undeclared resource {rtype}.{rname}")
        if (rtype, rname) not in self.resources:
            raise NotCreated(f"{rtype}.{rname} is referenced before the deployer created it")
        return self.resources[(rtype, rname)]

    def _local(self, name):
        if name in self._locals_cache:
            return self._locals_cache[name]
        if name not in self.module["locals"]:
            raise EvalError(f"undeclared local.{name}")
        if name in self._locals_busy:
            raise EvalError(f"local.{name} depends on itself")
        self._locals_busy.add(name)
        try:
            v = self.value(self.module["locals"][name], {})
        finally:
            self._locals_busy.discard(name)
        self._locals_cache[name] = v
        return v

    def _data(self, dtype, dname):
        key = (dtype, dname)
        if key not in self.module["data"]:
            raise EvalError(f"undeclared data source data.{dtype}.{dname}")
        body = self.module["data"][key]
        if dtype == "aws_iam_policy_document":
            return self.instances(body, lambda scope: {"json": self.policy_document(body, scope)}, key)
        if key in self.data_sources:
            return self.data_sources[key]
        if dtype in self.data_sources:
            return self.data_sources[dtype]
        raise Unsupported(f"data source {dtype} (no value supplied by the deployer)")

    def instances(self, body, make, key=None):
        """Expand count / for_each of a block: make(scope) per instance."""
        if "count" in body and "for_each" in body:
            raise EvalError(f"{key}: both count and for_each")
        if "count" in body:
            n = self.value(body["count"], {})
            if not isinstance(n, int) or isinstance(n, bool):
                raise EvalError(f"{key}: count is not a number")
            return [make({"count": {"index": i}}) for i in range(n)]
        if "for_each" in body:
            coll = self.value(body["for_each"], {})
            if isinstance(coll, list):
                if not isinstance(coll, TfSet):
                    raise EvalError(f"{key}: for_each over a list (Terraform takes a map or a set: toset())")
                coll = {x: x for x in coll}
            if not isinstance(coll, dict):
                raise EvalError(f"{key}: for_each over {type(coll).__name__}")
            return {k: make({"each": {"key": k, "value": v}}) for k, v in coll.items()}
        return make({})

    # -- IAM policy documents, rendered as the AWS provider does (close enough for use)
    def policy_document(self, body, scope):
        allowed = {"statement", "version"}
        for k, _ in body_items(body):
            if k not in allowed | {"for_each", "count"}:
                raise Unsupported(f"aws_iam_policy_document argument {k!r}")
        doc = {"Version": self.value(body.get("version", '"2012-10-17"'), scope), "Statement": []}
        for st in body.get("statement", []):
            out = {}
            for k, v in body_items(st):
                if k not in {"sid", "effect", "actions", "resources", "principals", "condition", "not_actions", "not_resources"}:
                    raise Unsupported(f"aws_iam_policy_document statement argument {k!r}")
            if "sid" in st:
                out["Sid"] = self.value(st["sid"], scope)
            out["Effect"] = self.value(st.get("effect", '"Allow"'), scope)
            for src, dst in (("actions", "Action"), ("not_actions", "NotAction"),
                             ("resources", "Resource"), ("not_resources", "NotResource")):
                if src in st:
                    vals = self.value(st[src], scope)
                    out[dst] = vals[0] if len(vals) == 1 else sorted(vals)
            if "principals" in st:
                pr = {}
                for p in st["principals"]:
                    ids = self.value(p["identifiers"], scope)
                    pr[self.value(p["type"], scope)] = ids[0] if len(ids) == 1 else ids
                out["Principal"] = pr
            if "condition" in st:
                cond = {}
                for c in st["condition"]:
                    vals = self.value(c["values"], scope)
                    cond.setdefault(self.value(c["test"], scope), {})[self.value(c["variable"], scope)] = (
                        vals[0] if len(vals) == 1 else vals)
                out["Condition"] = cond
            doc["Statement"].append(out)
        return json.dumps(doc)

    # -- functions
    def _call(self, name, args, scope):
        if name == "can":
            if len(args) != 1:
                raise EvalError("can() takes one argument")
            try:
                self.eval(args[0], scope)
                return True
            except EvalError:
                return False
        if name == "try":
            for a in args:
                try:
                    return self.eval(a, scope)
                except EvalError:
                    continue
            raise EvalError("try(): no argument could be evaluated")
        vals = [self.eval(a, scope) for a in args]
        fns = {
            "length": lambda v: len(v),
            "upper": lambda s: s.upper(),
            "lower": lambda s: s.lower(),
            "tostring": lambda v: None if v is None else _tf_string(v),
            "tonumber": lambda v: v if isinstance(v, (int, float)) else (float(v) if "." in v else int(v)),
            "merge": lambda *ms: {k: v for m in ms for k, v in (m or {}).items()},
            "concat": lambda *ls: [x for l in ls for x in l],
            "contains": lambda l, v: v in l,
            "startswith": lambda s, p: s.startswith(p),
            "trimprefix": lambda s, p: s[len(p):] if p and s.startswith(p) else s,
            "alltrue": lambda l: all(x is True for x in l),
            "anytrue": lambda l: any(x is True for x in l),
            "keys": lambda m: sorted(m),
            "values": lambda m: [m[k] for k in sorted(m)],
            "regex": _regex,
            "jsonencode": lambda v: json.dumps(v, separators=(",", ":")),
            "coalesce": lambda *vs: next(v for v in vs if v not in (None, "")),
            "filebase64sha256": lambda p: base64.b64encode(
                hashlib.sha256(self._read_file(p)).digest()).decode(),
            "format": lambda f, *a: self._format(f, a),
            "split": _split,
            "join": lambda sep, l: sep.join(_tf_string(x) for x in l),
            "slice": _slice,
            "distinct": lambda l: [x for i, x in enumerate(l) if x not in l[:i]],
            "flatten": _flatten,
            "range": _range,
            "toset": _toset,
            "floor": lambda n: math.floor(n),
            "sha1": lambda s: hashlib.sha1(s.encode()).hexdigest(),
        }
        if name not in fns:
            raise Unsupported(f"function {name}()")
        try:
            return fns[name](*vals)
        except (EvalError, Unsupported):
            raise
        except Exception as e:  # wrong argument types etc.: Terraform would error too
            raise EvalError(f"{name}(): {e}") from e

    def _read_file(self, p):
        path = Path(p) if os.path.isabs(p) else self.dir / p
        try:
            return path.read_bytes()
        except OSError as e:
            raise EvalError(f"cannot read {path}: {e}") from e

    @staticmethod
    def _format(f, args):
        if re.search(r"%[^sd%]", f):
            raise Unsupported(f"format verb in {f!r}")
        return f.replace("%d", "%s") % tuple(_tf_string(a) for a in args)
