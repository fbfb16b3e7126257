"""Read the environment decorators of a Metaflow flow file, statically.

Usage: python3 read_flow.py <flow.py>

Part of @prebuilt/metaflow. Never imports the flow or Metaflow: it parses the file with the
standard `ast` module and evaluates only literals, module-level (and class-level) constants and
simple expressions. Base flows and decorator values imported from the flow's own modules (the files
Python imports for `python flow.py`, under the flow file's directory) are read the same way
(`Project`); values from any other module are refused, never looked for elsewhere; what comes
from one of them carries `"file"` (its path from the flow's directory), and so does an error, with
`"module"` and `"chain"` (the imports that reached it). Prints one JSON object to stdout:

  {"ok": true, "hostPython": "3.11.7", "flow": {...}, "flowDecorators": [...], "imports": [...], "steps": [...]}
  {"ok": false, "error": {"kind": ..., "message": ..., "line": ..., "step": ...}}

and exits 0 in both cases; any other exit status means the reader itself failed. `imports` (of the
module, and of each step's function body) lists the absolute imports as written, for `prebuilt
profile`: {"module": "a.b", "names": null | ["x", "*"], "line": 3, "optional": false}.
"""

import ast
import json
import os
import re
import stat
import sys

# Decorators prebuilt reads, and the arguments it evaluates for each.
ENV_STEP_DECORATORS = {
    "conda": ("packages", "libraries", "python", "disabled"),
    "pypi": ("packages", "python", "disabled"),
}
ENV_FLOW_DECORATORS = {
    "conda_base": ("packages", "libraries", "python", "disabled"),
    "pypi_base": ("packages", "python", "disabled"),
}
REMOTE_DECORATORS = ("kubernetes", "batch")
# @resources(gpu=N) asks the step's @kubernetes/@batch (static or attached) for GPUs too.
RESOURCE_DECORATORS = ("resources",)
# Metaflow's Config (a class attribute `cfg = Config("name", default="cfg.json")`) and config_expr:
# values known only when Metaflow runs the flow (its config files, --config, --config-value).
CONFIG_NAMES = ("Config", "config_expr")
KNOWN_NAMES = set(ENV_STEP_DECORATORS) | set(ENV_FLOW_DECORATORS) | set(REMOTE_DECORATORS) | set(RESOURCE_DECORATORS) | {"step", "FlowSpec"} | set(CONFIG_NAMES)


class ReadError(Exception):
    def __init__(self, kind, message, line=None, step=None, module=None):
        Exception.__init__(self, message)
        self.kind = kind
        self.message = message
        self.line = line
        self.step = step
        self.module = module  # the Module the line is in (None: the flow file)


class Dynamic(Exception):
    """A value that cannot be known without running the flow (`config`: it comes from a Metaflow Config)."""

    def __init__(self, node, why, config=False):
        Exception.__init__(self, why)
        self.line = getattr(node, "lineno", None)
        self.why = why
        self.config = config


def describe(node):
    try:
        text = ast.unparse(node)  # Python 3.9+
    except Exception:
        return type(node).__name__
    return text if len(text) <= 60 else text[:57] + "..."


# Methods that change a dict or list in place: a constant they are called on is changed by code.
MUTATORS = ("update", "setdefault", "pop", "popitem", "clear", "append", "extend", "insert", "remove", "sort", "reverse", "__setitem__", "__delitem__", "__ior__")


def mutated_name(node):
    """The name whose value `node` changes in place (`X[k] = v`, `del X[k]`, `X.a = v`, `X.update(...)`), else None."""
    if isinstance(node, (ast.Subscript, ast.Attribute)) and isinstance(node.ctx, (ast.Store, ast.Del)):
        target = node
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in MUTATORS:
        target = node.func.value
    else:
        return None
    while isinstance(target, (ast.Subscript, ast.Attribute)):
        target = target.value
    return target.id if isinstance(target, ast.Name) else None


class Scope:
    """Simple name bindings of a module or class body: name -> [(line, value node or None)].

    A None node means the name is bound in a way that is not a plain constant assignment
    (import, def, for, augmented assignment, ...).
    """

    def __init__(self, body, parent=None):
        self.parent = parent
        self.bindings = {}
        self.imports = {}  # name -> (module as written, line) of a module-level import binding it
        for stmt in body:
            self._collect(stmt)

    def _bind(self, name, line, node):
        self.bindings.setdefault(name, []).append((line, node))

    def _bind_targets(self, target, line):
        for sub in ast.walk(target):
            if isinstance(sub, ast.Name):
                self._bind(sub.id, line, None)

    def _collect(self, stmt):
        line = stmt.lineno
        if isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                if isinstance(target, ast.Name):
                    self._bind(target.id, line, stmt.value)
                else:
                    self._bind_targets(target, line)
        elif isinstance(stmt, ast.AnnAssign):
            if isinstance(stmt.target, ast.Name):
                if stmt.value is not None:  # a bare annotation binds nothing
                    self._bind(stmt.target.id, line, stmt.value)
            else:
                self._bind_targets(stmt.target, line)
        elif isinstance(stmt, ast.AugAssign):
            self._bind_targets(stmt.target, line)
        elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            self._bind(stmt.name, line, None)
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            module = stmt.module or "" if isinstance(stmt, ast.ImportFrom) else None
            for alias in stmt.names:
                name = (alias.asname or alias.name).split(".")[0]
                self._bind(name, line, None)
                written = "." * stmt.level + module if module is not None else alias.name
                self.imports.setdefault(name, (written, line))
        else:
            # Names bound any other way (for, with, if, try, match, del, :=) are not constants we can know,
            # nor are those whose value code changes (`X["k"] = v` in a loop, `X.update(...)`).
            for sub in ast.walk(stmt):
                if isinstance(sub, ast.Name) and isinstance(sub.ctx, (ast.Store, ast.Del)):
                    self._bind(sub.id, sub.lineno, None)
                elif mutated_name(sub) is not None:
                    self._bind(mutated_name(sub), sub.lineno, None)
                elif isinstance(sub, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
                    self._bind(sub.name, sub.lineno, None)
                elif isinstance(sub, (ast.Import, ast.ImportFrom)):
                    for alias in sub.names:
                        self._bind((alias.asname or alias.name).split(".")[0], sub.lineno, None)

    def lookup(self, name, before_line):
        """The binding in effect for a use at `before_line`, searching outwards."""
        entries = self.bindings.get(name)
        if entries:
            if any(node is None for _, node in entries):
                return ("unknown", entries, self)
            earlier = [entry for entry in entries if entry[0] < before_line]
            if earlier:
                return ("value", earlier[-1][1], self)
            if self.parent is not None:
                outer = self.parent.lookup(name, before_line)
                if outer[0] != "missing":
                    return outer
            return ("later", entries[0][0])
        if self.parent is not None:
            return self.parent.lookup(name, before_line)
        return ("missing", None)


def unbound_why(name, entries, where):
    """Why `name`, bound in `where` by `entries` [(line, value node or None)], is not a constant prebuilt can read."""
    lines = [line for line, _ in entries]
    if len(lines) > 1:
        return (
            "'%s' is bound or changed more than once%s (lines %s), not only by `%s = value`: prebuilt reads a name "
            "assigned a value, or imported once from the flow's own modules, that no code changes; give each value "
            "its own name (`ALL = {**BASE, \"x\": \"1\"}`)"
            % (name, where, ", ".join(str(line) for line in lines), name)
        )
    return (
        "'%s' is bound%s at line %d by code (a def, class, loop, if, with, try, augmented assignment or an import "
        "inside one), not by `%s = value`: prebuilt does not run code; assign the value once at the top level"
        % (name, where, lines[0], name)
    )


# Bounds of what a flow file can make the reader build. A decorator argument is a few package names
# and versions; without bounds a few lines (a string or list doubled forty times, a format width of
# 3 000 000 000, a sum of constants that each name the one before twice) held gigabytes or ran for
# minutes — and everything read is printed to the CLI on stdout.
# The most a value may weigh: characters of its strings, plus one for each other item and key.
MAX_VALUE_SIZE = 1 << 20
# The most evaluation steps (expressions evaluated, items weighed) reading one file may take.
MAX_STEPS = 200000
# The most all decorator arguments of a file may weigh together (each within MAX_VALUE_SIZE).
MAX_TOTAL_SIZE = 16 << 20
# The largest integer, in bits.
MAX_INT_BITS = 256
DIGITS = re.compile(r"\d+")


class Evaluator:
    def __init__(self, names=None, module=None):
        self.names = names
        self.module = module  # the Module whose code it evaluates (its imports of values are followed through its Project)
        self.active = set()
        self.steps = 0
        self.total = 0

    def config_source(self, node, scope, line):
        """'the Metaflow Config ...' when `node` reads a Config or calls config_expr, else None."""
        if self.names is None:
            return None
        for sub in ast.walk(node):
            if isinstance(sub, ast.Call) and self.names.resolve(sub.func) == "config_expr":
                return "config_expr(...), a value of a Metaflow Config"
            if isinstance(sub, ast.Call) and self.names.resolve(sub.func) == "Config":
                return "a Metaflow Config"
            if isinstance(sub, ast.Name):
                found = scope.lookup(sub.id, line)
                if found[0] == "value" and isinstance(found[1], ast.Call) and self.names.resolve(found[1].func) == "Config":
                    name = found[1].args[0] if found[1].args else None
                    label = repr(name.value) if isinstance(name, ast.Constant) and isinstance(name.value, str) else sub.id
                    return "a value of the Metaflow Config %s (line %d)" % (label, found[1].lineno)
        return None

    def not_readable(self, node, scope, line, why):
        """Dynamic for `node`; when it reads a Metaflow Config, saying so."""
        source = self.config_source(node, scope, line)
        if source is not None:
            return Dynamic(node, "'%s' is %s, known only when Metaflow runs the flow" % (describe(node), source), config=True)
        return Dynamic(node, why)

    def argument(self, node, scope, line):
        """A decorator argument's value, counted against what the whole file's arguments may weigh."""
        value = self.eval(node, scope, line)
        self.total += self.weight(node, value)
        if self.total > MAX_TOTAL_SIZE:
            raise Dynamic(node, "the decorator arguments of this file are larger than %d characters together" % MAX_TOTAL_SIZE)
        return value

    def step(self, node):
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise Dynamic(node, "evaluating it takes too many steps (more than %d): constants that each repeat the one before" % MAX_STEPS)

    def eval(self, node, scope, line, module_ok=False):
        """The value of `node`; a Module (`import settings`) only with `module_ok` (the owner of an attribute)."""
        self.step(node)
        method = getattr(self, "_" + type(node).__name__, None)
        if method is None:
            raise self.not_readable(node, scope, line, "'%s' is not a literal, a constant or a simple expression" % describe(node))
        value = self.bounded(node, method(node, scope, line))
        if isinstance(value, Module) and not module_ok:
            raise Dynamic(node, "'%s' is the module %s (%s), not a value: name one of its constants (%s.NAME)" % (describe(node), value.name, value.display, describe(node)))
        return value

    def bounded(self, node, value):
        """`value`, when it weighs at most MAX_VALUE_SIZE and its integers have at most MAX_INT_BITS bits."""
        self.weight(node, value)
        return value

    def weight(self, node, value):
        """What `value` weighs (characters of its strings, one for each other item); too large is Dynamic."""
        if isinstance(value, str):
            size = len(value)
        elif isinstance(value, (list, dict)):
            size = 0
            pending = [value]
            while pending:
                item = pending.pop()
                self.step(node)
                if isinstance(item, str):
                    size += len(item)
                elif isinstance(item, list):
                    size += 1
                    pending.extend(item)
                elif isinstance(item, dict):
                    size += 1
                    pending.extend(item.keys())
                    pending.extend(item.values())
                else:
                    self.bounded(node, item)
                    size += 1
                if size > MAX_VALUE_SIZE:
                    break
        elif isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
            raise Dynamic(node, "'%s' is a number larger than %d bits" % (describe(node), MAX_INT_BITS))
        else:
            return 1
        if size > MAX_VALUE_SIZE:
            raise Dynamic(node, "'%s' is larger than %d characters" % (describe(node), MAX_VALUE_SIZE))
        return size

    def _Constant(self, node, scope, line):
        if isinstance(node.value, (str, int, float, bool)) or node.value is None:
            return node.value
        raise Dynamic(node, "%r is not a supported literal" % (node.value,))

    def _Name(self, node, scope, line):
        found = scope.lookup(node.id, line)
        if found[0] == "missing":
            project = self.module.project if self.module is not None else None
            star = project.star_value(self.module, node.id, line, node) if project is not None else MISSING
            if star is not MISSING:
                return star
            raise Dynamic(node, "'%s' is not defined in this file" % node.id)
        if found[0] == "later":
            raise Dynamic(node, "'%s' is only assigned later (line %d)" % (node.id, found[1]))
        if found[0] == "unknown":
            return self.imported(node, found[1], found[2], line)
        value_node, owner = found[1], found[2]
        key = (id(owner), node.id, value_node.lineno)
        if key in self.active:
            raise Dynamic(node, "'%s' refers to itself" % node.id)
        self.active.add(key)
        try:
            return self.eval(value_node, owner, value_node.lineno, module_ok=True)
        except Dynamic as inner:
            raise Dynamic(node, "'%s' (line %s): %s" % (node.id, value_node.lineno, inner.why), inner.config)
        finally:
            self.active.discard(key)

    def imported(self, node, entries, owner, line):
        """The value of a name `owner` binds other than by `NAME = value`: one top-level import of the flow's own modules."""
        name = node.id
        module_level = owner.parent is None and self.module is not None and self.module.project is not None
        if len(entries) == 1 and name in owner.imports and module_level:
            at = entries[0][0]
            if at >= line:
                raise Dynamic(node, "'%s' is only imported later (line %d)" % (name, at))
            return self.module.project.imported_value(self.module, name, at, node)
        if name in owner.imports and len(entries) == 1:
            raise Dynamic(
                node,
                "'%s' is imported in the class body (line %d); prebuilt follows imports at the top level of a module: "
                "move the import to the top of the file" % (name, entries[0][0]),
            )
        raise Dynamic(node, unbound_why(name, entries, "" if self.module is None or self.module.main else " in " + self.module.display))

    def _Attribute(self, node, scope, line):
        if self.config_source(node, scope, line) is not None:
            raise self.not_readable(node, scope, line, "")
        owner = self.eval(node.value, scope, line, module_ok=True)
        if not isinstance(owner, Module):
            raise Dynamic(node, "'%s' reads an attribute of a value, which cannot be evaluated without running the flow" % describe(node))
        return owner.project.member_value(owner, node.attr, self.module, node.lineno, node)

    def _Dict(self, node, scope, line):
        out = {}
        for key, value in zip(node.keys, node.values):
            if key is None:
                spread = self.eval(value, scope, line)
                if not isinstance(spread, dict):
                    raise Dynamic(value, "'**%s' is not a dict" % describe(value))
                out.update(spread)
            else:
                k = self.eval(key, scope, line)
                if not isinstance(k, (str, int, float, bool)) and k is not None:
                    raise Dynamic(key, "'%s' cannot be a dict key" % describe(key))
                out[k] = self.eval(value, scope, line)
        return out

    def _List(self, node, scope, line):
        out = []
        for elt in node.elts:
            if isinstance(elt, ast.Starred):
                spread = self.eval(elt.value, scope, line)
                if not isinstance(spread, list):
                    raise Dynamic(elt, "'*%s' is not a list or tuple" % describe(elt.value))
                out.extend(spread)
            else:
                out.append(self.eval(elt, scope, line))
        return out

    _Tuple = _List

    def _BinOp(self, node, scope, line):
        left = self.eval(node.left, scope, line)
        right = self.eval(node.right, scope, line)
        op = type(node.op).__name__
        both_numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (left, right))
        if op == "Add" and (
            (isinstance(left, str) and isinstance(right, str))
            or (isinstance(left, list) and isinstance(right, list))
            or both_numbers
        ):
            return left + right
        if op == "BitOr" and isinstance(left, dict) and isinstance(right, dict):
            merged = dict(left)
            merged.update(right)
            return merged
        if op in ("Sub", "Mult") and both_numbers:
            return left - right if op == "Sub" else left * right
        raise Dynamic(node, "'%s' is not a supported expression" % describe(node))

    def _UnaryOp(self, node, scope, line):
        value = self.eval(node.operand, scope, line)
        if isinstance(node.op, ast.USub) and isinstance(value, (int, float)) and not isinstance(value, bool):
            return -value
        if isinstance(node.op, ast.UAdd) and isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
        raise Dynamic(node, "'%s' is not a supported expression" % describe(node))

    def _JoinedStr(self, node, scope, line):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value))
            elif isinstance(value, ast.FormattedValue):
                inner = self.eval(value.value, scope, line)
                if not isinstance(inner, (str, int, float, bool)) and inner is not None:
                    raise Dynamic(value, "'%s' in an f-string is not a string or number" % describe(value.value))
                if value.conversion == ord("r"):
                    inner = repr(inner)
                elif value.conversion == ord("a"):
                    inner = ascii(inner)
                spec = ""
                if value.format_spec is not None:
                    spec = self._JoinedStr(value.format_spec, scope, line)
                # A width or precision is the size of what format() makes: bound it before making it.
                if any(int(digits) > MAX_VALUE_SIZE for digits in DIGITS.findall(spec)):
                    raise Dynamic(value, "'%s' would be larger than %d characters" % (describe(node), MAX_VALUE_SIZE))
                parts.append(format(inner, spec))
                if sum(len(part) for part in parts) > MAX_VALUE_SIZE:
                    raise Dynamic(node, "'%s' is larger than %d characters" % (describe(node), MAX_VALUE_SIZE))
            else:
                raise Dynamic(value, "unsupported f-string part")
        return "".join(parts)

    def _Call(self, node, scope, line):
        # dict(a="1", **X) and str(3.11) are common enough in decorator arguments.
        if isinstance(node.func, ast.Name) and scope.lookup(node.func.id, line)[0] == "missing":
            if node.func.id == "dict" and not node.args:
                out = {}
                for kw in node.keywords:
                    value = self.eval(kw.value, scope, line)
                    if kw.arg is None:
                        if not isinstance(value, dict):
                            raise Dynamic(kw.value, "'**%s' is not a dict" % describe(kw.value))
                        out.update(value)
                    else:
                        out[kw.arg] = value
                return out
            if node.func.id == "str" and len(node.args) == 1 and not node.keywords:
                value = self.eval(node.args[0], scope, line)
                if isinstance(value, (str, int, float, bool)) or value is None:
                    return str(value)
        raise self.not_readable(node, scope, line, "'%s' is a call, which cannot be evaluated without running the flow" % describe(node))


class Names:
    """What the module's imports make of a decorator or base-class expression."""

    def __init__(self, tree):
        self.direct = {}  # local name -> metaflow attribute name
        self.modules = set()  # local names bound to the metaflow module
        self.star = False
        for stmt in tree.body:
            self._scan(stmt)

    def _scan(self, stmt):
        if isinstance(stmt, ast.ImportFrom) and stmt.level == 0 and stmt.module == "metaflow":
            for alias in stmt.names:
                if alias.name == "*":
                    self.star = True
                else:
                    self.direct[alias.asname or alias.name] = alias.name
        elif isinstance(stmt, ast.Import):
            for alias in stmt.names:
                if alias.name == "metaflow" and alias.asname:
                    self.modules.add(alias.asname)
                elif alias.name.split(".")[0] == "metaflow" and not alias.asname:
                    self.modules.add("metaflow")
        elif isinstance(stmt, (ast.If, ast.Try)):
            for sub in ast.iter_child_nodes(stmt):
                if isinstance(sub, ast.stmt):
                    self._scan(sub)
            for handler in getattr(stmt, "handlers", []):
                for sub in handler.body:
                    self._scan(sub)

    def resolve(self, node):
        """The metaflow name (`conda`, `step`, `FlowSpec`, ...) an expression refers to, or None."""
        if isinstance(node, ast.Call):
            node = node.func
        if isinstance(node, ast.Name):
            if node.id in self.direct:
                return self.direct[node.id]
            if self.star and node.id in KNOWN_NAMES:
                return node.id
            return None
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in self.modules:
            return node.attr
        return None


# @kubernetes' placement (where its pods run): read for `prebuilt prepull`, which warms those nodes.
# Like `image`, a computed value is marked (with why), not refused: only prepull needs it.
PLACEMENT_ARGS = {"kubernetes": ("node_selector", "tolerations", "compute_pool", "gpu_vendor")}


def decorator_args(deco, wanted, scope, evaluator, kind, step):
    """Evaluate the arguments prebuilt needs from one decorator; returns {arg: {value, line}}."""
    args = {}
    if not isinstance(deco, ast.Call):
        return args
    where = "step '%s'" % step if step else "the flow class"
    if deco.args:
        raise ReadError(
            "invalid-decorator",
            "@%s on %s takes keyword arguments only" % (kind, where),
            deco.args[0].lineno,
            step,
        )
    for kw in deco.keywords:
        try:
            if kw.arg is None:
                spread = evaluator.argument(kw.value, scope, deco.lineno)
                if not isinstance(spread, dict) or not all(isinstance(k, str) for k in spread):
                    raise Dynamic(kw.value, "'**%s' is not a dict of argument names" % describe(kw.value))
                for name, value in spread.items():
                    args[name] = {"value": value, "line": kw.value.lineno}
                continue
            placement = kw.arg in PLACEMENT_ARGS.get(kind, ())
            if kw.arg not in wanted and not placement and (kind in REMOTE_DECORATORS or kind in RESOURCE_DECORATORS):
                continue  # other attributes of @kubernetes/@batch/@resources may be dynamic; they are not ours.
            if placement:
                try:
                    args[kw.arg] = {"value": evaluator.argument(kw.value, scope, deco.lineno), "line": kw.value.lineno}
                except Dynamic as dyn:
                    args[kw.arg] = {"dynamic": True, "line": dyn.line or kw.value.lineno, "why": dyn.why}
                continue
            if kw.arg == "image":
                try:
                    args[kw.arg] = {"value": evaluator.argument(kw.value, scope, deco.lineno), "line": kw.value.lineno}
                except Dynamic:
                    args[kw.arg] = {"dynamic": True, "line": kw.value.lineno}
                continue
            args[kw.arg] = {"value": evaluator.argument(kw.value, scope, deco.lineno), "line": kw.value.lineno}
        except Dynamic as dyn:
            raise ReadError(
                "config-value" if dyn.config else "dynamic-value",
                "the '%s' argument of @%s on %s cannot be read without running the flow: %s"
                % (kw.arg or "**", kind, where, dyn.why),
                dyn.line or kw.value.lineno,
                step,
            )
    if kind in ENV_STEP_DECORATORS or kind in ENV_FLOW_DECORATORS:
        allowed = wanted
        for name, arg in args.items():
            if name not in allowed:
                raise ReadError(
                    "invalid-decorator",
                    "@%s on %s has no argument '%s' (Metaflow accepts: %s)" % (kind, where, name, ", ".join(allowed)),
                    arg["line"],
                    step,
                )
    return args


def check_types(kind, args, step):
    where = "step '%s'" % step if step else "the flow class"
    for name in ("packages", "libraries"):
        arg = args.get(name)
        if arg is None:
            continue
        value = arg["value"]
        if not isinstance(value, dict):
            raise ReadError(
                "invalid-value",
                "'%s' of @%s on %s must be a dict of package name to version spec, not %s"
                % (name, kind, where, type(value).__name__),
                arg["line"],
                step,
            )
        clean = {}
        for pkg, spec in value.items():
            if not isinstance(pkg, str) or not pkg.strip():
                raise ReadError(
                    "invalid-value",
                    "'%s' of @%s on %s has a package name %r that is not a non-empty string" % (name, kind, where, pkg),
                    arg["line"],
                    step,
                )
            if isinstance(spec, bool) or not isinstance(spec, (str, int, float)):
                raise ReadError(
                    "invalid-value",
                    "'%s' of @%s on %s gives package '%s' the version %r; use a string such as \"1.26.4\" or \">=2\""
                    % (name, kind, where, pkg, spec),
                    arg["line"],
                    step,
                )
            clean[pkg] = str(spec)
        arg["value"] = clean
    arg = args.get("python")
    if arg is not None:
        value = arg["value"]
        if value is None or value == "":
            arg["value"] = None
        elif isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ReadError(
                "invalid-value",
                "'python' of @%s on %s must be a version string such as \"3.11\", not %r" % (kind, where, value),
                arg["line"],
                step,
            )
        elif isinstance(value, float) and str(value) in ("3.1", "3.2", "3.3"):
            # Written 3.10 (or 3.20, 3.30): a float literal loses the trailing zero, and Metaflow
            # would ask the solver for python 3.1.
            raise ReadError(
                "invalid-value",
                "'python' of @%s on %s is the number %s: a float drops trailing zeros (3.10 reads as 3.1); "
                "write the version as a string, e.g. python=\"%s0\"" % (kind, where, value, value),
                arg["line"],
                step,
            )
        else:
            arg["value"] = str(value)
    arg = args.get("disabled")
    if arg is not None and arg["value"] is not None:
        value = arg["value"]
        # Metaflow: a decorator is disabled when its value is truthy and not the string "false".
        arg["value"] = bool(value) and str(value).lower() != "false"
    arg = args.get("gpu")
    if arg is not None and arg["value"] is not None:
        value = arg["value"]
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = None
        if isinstance(value, bool) or number is None or not number.is_integer() or number < 0:
            raise ReadError(
                "invalid-value",
                "'gpu' of @%s on %s must be a whole number of GPUs, not %r" % (kind, where, value),
                arg["line"],
                step,
            )
        arg["value"] = int(number)


TRY_NODES = tuple(getattr(ast, name) for name in ("Try", "TryStar") if hasattr(ast, name))


def collect_imports(stmts, out, optional=False, into_functions=True, conditional=False):
    """The absolute imports of `stmts`, in source order, appended to `out`.

    `import a.b` gives {"module": "a.b", "names": None}, `from a import b, c` gives {"module": "a",
    "names": ["b", "c"]}; relative imports (`from . import x`) name the flow's own files, not the
    image's, and are left out. An import anywhere inside a `try` is optional (the code guards it);
    one inside another compound statement (`if TYPE_CHECKING:`, `for`, `with`, `match`) is
    conditional (it may not run). Class bodies run where they are defined; function bodies are
    entered only with `into_functions` (a step's body: its nested helpers run with it; the module's
    functions run only when called).
    """

    def entry(module, names, line):
        found = {"module": module, "names": names, "line": line, "optional": optional}
        if conditional:
            found["conditional"] = True
        return found

    for stmt in stmts:
        if isinstance(stmt, ast.Import):
            for alias in stmt.names:
                out.append(entry(alias.name, None, stmt.lineno))
        elif isinstance(stmt, ast.ImportFrom):
            if stmt.level == 0 and stmt.module:
                out.append(entry(stmt.module, [alias.name for alias in stmt.names], stmt.lineno))
        elif isinstance(stmt, ast.ClassDef):
            collect_imports(stmt.body, out, optional, into_functions, conditional)
        elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if into_functions:
                collect_imports(stmt.body, out, optional, into_functions, conditional)
        else:
            is_try = isinstance(stmt, TRY_NODES)
            inner = optional or is_try
            inner_conditional = conditional or not is_try
            for _, value in ast.iter_fields(stmt):
                if not isinstance(value, list):
                    continue
                for item in value:
                    if isinstance(item, ast.stmt):
                        collect_imports([item], out, inner, into_functions, inner_conditional)
                    elif isinstance(item, ast.AST) and isinstance(getattr(item, "body", None), list):
                        collect_imports(item.body, out, inner, into_functions, inner_conditional)  # except handlers, match cases
    return out


# Bounds of the files read: the flow file and the modules its flow classes come from. Each file is
# read with the Evaluator's bounds of its own (as the flow file is), and these bound how many there are.
# The most bytes one file may have (the flow file's limit too).
MAX_SOURCE_SIZE = 4 << 20
# The most bytes all files read may have together.
MAX_SOURCES_SIZE = 16 << 20
# The most modules read besides the flow file.
MAX_MODULES = 32
# The most modules one chain of imports may pass through (the flow file included).
MAX_IMPORT_DEPTH = 16


def read_regular_file(path, limit):
    """At most `limit` bytes of the regular file at `path`; None when it is something else.

    Opened without blocking and checked on the open descriptor: a module found as a file, then
    replaced by a FIFO or a device (a symlink to one) before it is opened, is refused, never read
    (a FIFO hung the reader, /dev/zero fed it to its bound).
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read(limit)
    finally:
        os.close(fd)


def top_level_bindings(tree):
    """name -> [(line, kind, data)] for a module's top-level statements, in source order.

    kind: "class" (data: the ClassDef), "module" (`import a.b` binds `a`; data: the dotted module it
    names), "from" (data: (ImportFrom, imported name)), "star" (under the name "*"; data: the
    ImportFrom), or "other" (a name bound any other way: assignment, def, a compound statement).
    """
    out = {}

    def bind(name, line, kind, data=None):
        out.setdefault(name, []).append((line, kind, data))

    for stmt in tree.body:
        if isinstance(stmt, ast.ClassDef):
            bind(stmt.name, stmt.lineno, "class", stmt)
        elif isinstance(stmt, ast.Import):
            for alias in stmt.names:
                if alias.asname:
                    bind(alias.asname, stmt.lineno, "module", alias.name)
                else:
                    bind(alias.name.split(".")[0], stmt.lineno, "module", alias.name.split(".")[0])
        elif isinstance(stmt, ast.ImportFrom):
            for alias in stmt.names:
                if alias.name == "*":
                    bind("*", stmt.lineno, "star", stmt)
                else:
                    bind(alias.asname or alias.name, stmt.lineno, "from", (stmt, alias.name))
        elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            bind(stmt.name, stmt.lineno, "other")
        else:
            for sub in ast.walk(stmt):
                if isinstance(sub, ast.Name) and isinstance(sub.ctx, (ast.Store, ast.Del)):
                    bind(sub.id, sub.lineno, "other")
                elif isinstance(sub, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
                    bind(sub.name, sub.lineno, "other")
                elif isinstance(sub, (ast.Import, ast.ImportFrom)):
                    for alias in sub.names:
                        bind((alias.asname or alias.name).split(".")[0], sub.lineno, "other")
    return out


class Module:
    """A file read: the flow file (`__main__`) or a module of the flow's directory it imports.

    `display` is the path relative to the flow's directory; `via` is (importing Module, line) of
    the import that first reached it (None for the flow file); `kind` is "file", "package" (an
    `__init__.py`) or "namespace" (a folder without one: nothing to read).
    """

    def __init__(self, path, name, kind, display, via, project=None):
        self.project = project
        self.path = path
        self.name = name
        self.kind = kind
        self.display = display
        self.via = via
        package = name if kind != "file" else name.rpartition(".")[0]
        self.package = package if name != "__main__" and package else None
        self.main = name == "__main__"
        self.tree = ast.Module(body=[], type_ignores=[])
        self.prepare()

    def prepare(self):
        self.names = Names(self.tree)
        self.scope = Scope(self.tree.body)
        self.evaluator = Evaluator(self.names, self)
        self.bindings = top_level_bindings(self.tree)

    def chain(self):
        """The imports that led from the flow file to this module: [{"file", "line"}], outermost first."""
        hops = []
        module = self
        while module.via is not None:
            importer, line = module.via
            hops.append({"file": None if importer.main else importer.display, "line": line})
            module = importer
        return list(reversed(hops))

    def error(self, error):
        """`error` (a ReadError), placed in this module unless it already names one."""
        if error.module is None:
            error.module = self
        return error


class ClassRef:
    def __init__(self, module, node):
        self.module = module
        self.node = node
        self.key = ("class", module.path, node.lineno, node.name)


class ModuleRef:
    def __init__(self, module):
        self.module = module


class External:
    """A base prebuilt does not read: from an installed library, a builtin, or an expression."""

    def __init__(self, written, module_name, importer, line):
        self.written = written
        self.module_name = module_name
        self.importer = importer
        self.line = line
        self.key = ("external", module_name, written)


class FlowSpecRef:
    key = ("flowspec",)


FLOWSPEC = FlowSpecRef()

# What Project.star_value gives when no star import of the module's own modules binds the name.
MISSING = object()


def c3_merge(sequences):
    """Python's C3 linearization of `sequences` (lists of refs), or None when there is none."""
    sequences = [list(seq) for seq in sequences if seq]
    out = []
    while True:
        sequences = [seq for seq in sequences if seq]
        if not sequences:
            return out
        for seq in sequences:
            head = seq[0]
            if not any(head.key in [item.key for item in other[1:]] for other in sequences):
                break
        else:
            return None
        out.append(head)
        for seq in sequences:
            if seq[0].key == head.key:
                del seq[0]


class Project:
    """The flow file and the modules of its directory that its flow classes come from.

    Modules are found as Python finds them for `python flow.py`: the flow file's directory is
    sys.path[0] (a package `a/__init__.py` before a module `a.py` before a namespace folder `a/`).
    A module not found there comes from elsewhere on sys.path (an installed library): it is not
    read. Nothing is executed.
    """

    def __init__(self, path):
        self.root = os.path.realpath(os.path.dirname(os.path.abspath(path)))
        self.size = 0
        self.main = Module(os.path.realpath(path), "__main__", "file", os.path.basename(path), None, self)
        self.main.tree = self.parse(self.main)
        self.main.prepare()
        self.modules = {self.main.path: self.main}
        self.order = []  # modules read besides the flow file, in the order they were reached
        self.stack = [self.main]
        self.reading = []  # (Module, name) of the imported values being read, outermost first
        self.mros = {}

    def parse(self, module):
        what = "the flow file" if module.main else "module %s (%s)" % (module.name, module.display)
        try:
            source = read_regular_file(module.path, MAX_SOURCE_SIZE + 1)
        except OSError as error:
            raise module.error(ReadError("io", "cannot read %s: %s" % (what, error.strerror or error)))
        if source is None:
            raise module.error(ReadError("io", "cannot read %s: it is not a regular file" % what))
        if len(source) > MAX_SOURCE_SIZE:
            raise module.error(ReadError("too-large", "%s is larger than %d bytes" % (what, MAX_SOURCE_SIZE)))
        self.size += len(source)
        if self.size > MAX_SOURCES_SIZE:
            raise module.error(ReadError("too-large", "the flow file and the modules read for its flow are larger than %d bytes together" % MAX_SOURCES_SIZE))
        try:
            return ast.parse(source, filename=module.path)
        except SyntaxError as error:
            prefix = "" if module.main else "%s: " % what
            raise module.error(ReadError("syntax", "%sPython syntax error: %s" % (prefix, error.msg), error.lineno))
        except ValueError as error:  # e.g. null bytes
            raise module.error(ReadError("syntax", "%s is not a Python source file: %s" % (what, error)))
        except (MemoryError, RecursionError):
            # Python's own parser gives up on an expression nested this deep (`- - - … 1`, 200,000
            # deep: MemoryError), and the tree it builds may be too deep to walk: a traceback before.
            raise module.error(ReadError("too-deep", "%s has an expression nested too deeply for Python to parse" % what))

    def find(self, dotted):
        """(path, kind) of module `dotted` under the flow's directory, as Python's path finder looks; None when not there."""
        directory = self.root
        found = None
        parts = dotted.split(".")
        for index, part in enumerate(parts):
            folder = os.path.join(directory, part)
            if os.path.isfile(os.path.join(folder, "__init__.py")):
                found = (os.path.join(folder, "__init__.py"), "package")
            elif os.path.isfile(folder + ".py"):
                if index != len(parts) - 1:
                    return None  # a module, not a package: Python finds no submodule in it
                found = (folder + ".py", "file")
            elif os.path.isdir(folder):
                found = (folder, "namespace")
            else:
                return None
            directory = folder
        return found

    def load(self, dotted, importer, line):
        """The Module `dotted` of the flow's directory (read once), or None when it is not there."""
        found = self.find(dotted)
        if found is None:
            return None
        path, kind = found
        real = os.path.realpath(path)
        if os.path.commonpath([real, self.root]) != self.root:
            raise importer.error(ReadError(
                "outside-module",
                "module %s (%s) is a symlink to %s, outside the flow's directory %s: Metaflow's code package carries "
                "only the files under the flow's directory, so a task would not find it there"
                % (dotted, os.path.relpath(path, self.root), real, self.root),
                line,
            ))
        if real in self.modules:
            return self.modules[real]
        if len(self.modules) > MAX_MODULES:
            raise importer.error(ReadError(
                "too-many-modules",
                "reading the flow's base classes needs more than %d modules (at %s)" % (MAX_MODULES, dotted),
                line,
            ))
        module = Module(real, dotted, kind, os.path.relpath(real, self.root).replace(os.sep, "/"), (importer, line), self)
        if kind != "namespace":
            module.tree = self.parse(module)
            module.prepare()
        self.modules[real] = module
        self.order.append(module)
        return module

    def enter(self, module, importer, line, reading="the flow's base classes", cycles=True):
        """Pushes `module` onto the chain of modules being read for `reading` (True when pushed); a cycle (with
        `cycles`: a module met again) or too deep a chain is a ReadError."""
        if module is self.stack[-1]:
            return False
        if module.main or (cycles and module in self.stack):
            start = self.stack.index(module)
            cycle = " -> ".join(m.display for m in self.stack[start:] + [module])
            raise importer.error(ReadError(
                "import-cycle",
                "the imports of %s form a cycle (%s): Python stops there with an ImportError "
                "(a partially initialized module)" % (reading, cycle),
                line,
            ))
        if len(self.stack) >= MAX_IMPORT_DEPTH:
            raise importer.error(ReadError(
                "too-many-modules",
                "the chain of imports to %s passes through more than %d modules" % (reading, MAX_IMPORT_DEPTH),
                line,
            ))
        self.stack.append(module)
        return True

    def absolute(self, importer, stmt):
        """The absolute module name of `from <stmt.module> import ...` written in `importer`."""
        if stmt.level == 0:
            return stmt.module
        written = "." * stmt.level + (stmt.module or "")
        if importer.package is None:
            if importer.main:
                why = "Metaflow runs the flow file as a script (python %s), where Python refuses it" % importer.display
            else:
                why = "module %s is not in a package, so Python refuses it" % importer.name
            raise importer.error(ReadError(
                "relative-import",
                "'from %s import ...' is a relative import: %s (ImportError: attempted relative import with no known "
                "parent package)" % (written, why),
                stmt.lineno,
            ))
        parts = importer.package.split(".")
        if stmt.level - 1 >= len(parts):
            raise importer.error(ReadError(
                "relative-import",
                "'from %s import ...' goes above the top-level package %s (ImportError: attempted relative import "
                "beyond top-level package)" % (written, parts[0]),
                stmt.lineno,
            ))
        return ".".join(parts[: len(parts) - (stmt.level - 1)] + ([stmt.module] if stmt.module else []))

    def resolve(self, module, node, before):
        """What a base-class expression of `module` (a class statement at line `before`) refers to."""
        if module.names.resolve(node) == "FlowSpec":
            return FLOWSPEC
        if isinstance(node, ast.Name):
            return self.name(module, node.id, before, node.lineno)
        if isinstance(node, ast.Attribute):
            return self.attribute(self.resolve(module, node.value, before), node.attr, module, node.lineno)
        return External(describe(node), None, module, getattr(node, "lineno", None))

    def name(self, module, name, before, line):
        """The binding of `name` in `module` in effect at line `before` (None: once the module has run)."""
        entries = [entry for entry in module.bindings.get(name, []) if before is None or entry[0] < before]
        if not entries:
            star = self.star(module, name, before, line)
            return star if star is not None else External(name, None, module, line)
        at, kind, data = entries[-1]
        if kind == "class":
            return ClassRef(module, data)
        if kind == "module":
            loaded = self.load(data, module, at)
            return ModuleRef(loaded) if loaded is not None else External(name, data, module, at)
        if kind == "from":
            stmt, imported = data
            dotted = self.absolute(module, stmt)
            loaded = self.load(dotted, module, at) if dotted.split(".")[0] != "metaflow" else None
            if loaded is None:
                return External(name, dotted, module, at)
            return self.attribute(ModuleRef(loaded), imported, module, at)
        raise module.error(ReadError(
            "unreadable-base",
            "'%s' is bound at line %d by a statement prebuilt does not follow (it follows class statements and "
            "imports at the top level of a module)" % (name, at),
            at,
        ))

    def star_source(self, module, name, before):
        """(Module, line) of the `from <own module> import *` of `module` (before line `before`) that may give `name`, or None."""
        if name.startswith("_"):
            return None
        for at, _, stmt in reversed(module.bindings.get("*", [])):
            if before is not None and at >= before:
                continue
            dotted = self.absolute(module, stmt)
            loaded = self.load(dotted, module, at) if dotted.split(".")[0] != "metaflow" else None
            if loaded is not None and (name in loaded.bindings or "*" in loaded.bindings):
                return loaded, at
        return None

    def star(self, module, name, before, line):
        """`name` (a base class) from a `from <own module> import *` of `module`, or None."""
        source = self.star_source(module, name, before)
        return self.attribute(ModuleRef(source[0]), name, module, source[1]) if source is not None else None

    def star_value(self, module, name, before, node):
        """`name` (a value) from a `from <own module> import *` of `module`, or MISSING."""
        source = self.star_source(module, name, before)
        return self.member_value(source[0], name, module, source[1], node) if source is not None else MISSING

    def imported_value(self, module, name, at, node):
        """The value (or Module) `name` gets from the top-level import of `module` at line `at` that binds it."""
        kind, data = next((kind, data) for line, kind, data in module.bindings[name] if line == at)
        if kind == "module":
            written, dotted, member = data, data, None
        else:
            stmt, member = data
            written = "." * stmt.level + (stmt.module or "")
            dotted = self.absolute(module, stmt)
        loaded = self.load(dotted, module, at) if dotted.split(".")[0] != "metaflow" else None
        if loaded is None:
            raise Dynamic(
                node,
                "'%s' is imported from %s (line %d), which is not one of the flow's own modules (a file or package under "
                "the flow's directory): prebuilt reads values from those only, not from installed libraries or the "
                "standard library, whose code it would have to run; write the value in the flow file or in a module "
                "beside it" % (name, written, at),
            )
        if member is None:
            return loaded
        try:
            return self.member_value(loaded, member, module, at, node)
        except Dynamic as inner:
            raise Dynamic(node, "'%s' (imported from %s at line %d) → %s" % (name, written, at, inner.why), inner.config)

    def member_value(self, target, name, importer, line, node):
        """`target.name` once module `target` has run: a value, or a Module (a submodule of a package).

        Modules are read as Python leaves them once they have run, so a module may be met again for another
        of its names (`from . import versions` in a package's settings.py); a value met again while it is
        being read is a cycle, which Python stops (ImportError, NameError) and this refuses.
        """
        if target.main:
            raise importer.error(ReadError(
                "import-cycle",
                "module %s is the flow file itself (%s): Python would run it a second time under that name, meeting "
                "its own imports half-done; move the values both need into a module the flow file imports"
                % (target.display[:-3], target.display),
                line,
            ))
        if any(module is target and read == name for module, read in self.reading):
            start = next(index for index, (module, read) in enumerate(self.reading) if module is target and read == name)
            cycle = " -> ".join("%s (%s)" % (read, module.display) for module, read in self.reading[start:] + [(target, name)])
            raise importer.error(ReadError(
                "import-cycle",
                "the values the flow's decorators read form a cycle through their imports (%s): Python stops there "
                "with an ImportError (a partially initialized module)" % cycle,
                line,
            ))
        pushed = self.enter(target, importer, line, "the values the flow's decorators read", cycles=False)
        self.reading.append((target, name))
        try:
            entries = target.scope.bindings.get(name, [])
            if not entries:
                # Not bound by the module itself: its submodule (`from . import versions`), else a star import's name.
                loaded = self.load("%s.%s" % (target.name, name), target, line) if target.kind != "file" else None
                found = self.star_value(target, name, None, node) if loaded is None else loaded
                if found is MISSING:
                    raise Dynamic(node, "module %s (%s) defines no '%s' (ImportError: cannot import name)" % (target.name, target.display, name))
                return found
            if all(value is not None for _, value in entries):
                value = entries[-1][1]  # plain assignments only: the last one holds once the module has run
                try:
                    return target.evaluator.eval(value, target.scope, value.lineno, module_ok=True)
                except Dynamic as inner:
                    raise Dynamic(node, "%s line %d: %s" % (target.display, inner.line or value.lineno, inner.why), inner.config)
            if len(entries) == 1 and name in target.scope.imports:
                return self.imported_value(target, name, entries[0][0], node)
            raise Dynamic(node, unbound_why(name, entries, " in " + target.display))
        finally:
            self.reading.pop()
            if pushed:
                self.stack.pop()

    def attribute(self, owner, attr, importer, line):
        """`owner.attr`: a module's name (or submodule), an external's attribute; a class's attribute is external."""
        if isinstance(owner, External):
            return External("%s.%s" % (owner.written, attr), owner.module_name, owner.importer, owner.line)
        if not isinstance(owner, ModuleRef):
            return External(attr, None, importer, line)
        module = owner.module
        pushed = self.enter(module, importer, line)
        try:
            if attr in module.bindings:
                return self.name(module, attr, None, line)
            star = self.star(module, attr, None, line)
            if star is not None:
                return star
            if module.kind != "file":
                loaded = self.load("%s.%s" % (module.name, attr), importer, line)
                if loaded is not None:
                    return ModuleRef(loaded)
            raise importer.error(ReadError(
                "unreadable-base",
                "module %s (%s) defines no class %s (ImportError: cannot import name)" % (module.name, module.display, attr),
                line,
            ))
        finally:
            if pushed:
                self.stack.pop()

    def mro(self, ref):
        """The method resolution order of a class: [ClassRef | FLOWSPEC | External], the class first."""
        if isinstance(ref, ClassRef):
            if ref.key in self.mros:
                return self.mros[ref.key]
        else:
            return [ref]
        pushed = self.enter(ref.module, ref.module, ref.node.lineno)
        try:
            bases = [self.resolve(ref.module, base, ref.node.lineno) for base in ref.node.bases]
            merged = c3_merge([self.mro(base) for base in bases] + [bases])
        finally:
            if pushed:
                self.stack.pop()
        if merged is None:
            raise ref.module.error(ReadError(
                "invalid-flow",
                "Python cannot order the base classes of %s (TypeError: Cannot create a consistent method resolution order)"
                % ref.node.name,
                ref.node.lineno,
            ))
        self.mros[ref.key] = [ref] + merged
        return self.mros[ref.key]


def is_main_guard(stmt):
    if not isinstance(stmt, ast.If) or not isinstance(stmt.test, ast.Compare):
        return False
    test = stmt.test
    if len(test.ops) != 1 or not isinstance(test.ops[0], ast.Eq):
        return False
    sides = [test.left, test.comparators[0]]
    has_name = any(isinstance(s, ast.Name) and s.id == "__name__" for s in sides)
    has_main = any(isinstance(s, ast.Constant) and s.value == "__main__" for s in sides)
    return has_name and has_main


def run_class(project, classes):
    """The ClassRef of the flow class the flow file runs, and the MRO of every FlowSpec class of the file."""
    main = project.main
    mros, problems = {}, {}
    for name, cls in classes.items():
        try:
            mros[name] = project.mro(ClassRef(main, cls))
        except ReadError as error:
            problems[name] = error
    flows = [name for name in classes if name in mros and FLOWSPEC in mros[name]]

    # The class the file runs: instantiated under `if __name__ == "__main__":`.
    instantiated = []
    for stmt in main.tree.body:
        if is_main_guard(stmt):
            for sub in ast.walk(stmt):
                if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name) and sub.func.id in classes:
                    if sub.func.id not in [n for n, _ in instantiated]:
                        instantiated.append((sub.func.id, sub.lineno))
    run = [(n, line) for n, line in instantiated if n in flows]
    if len(run) > 1:
        raise ReadError(
            "ambiguous-flow",
            "the file runs more than one FlowSpec class under `if __name__ == \"__main__\"`: %s"
            % ", ".join("%s (line %d)" % item for item in run),
            run[1][1],
        )
    if len(run) == 1:
        return run[0][0], mros[run[0][0]]
    not_flows = [(n, line) for n, line in instantiated if n not in flows]
    if not flows and not_flows:
        name, line = not_flows[0]
        if name in problems:
            raise problems[name]
        not_a_flow(name, line, mros[name])
    if not flows and problems:
        raise min(problems.values(), key=lambda error: (error.module is not None and not error.module.main, error.line or 0))
    bases = set(ref.node.name for name in flows for ref in mros[name][1:] if isinstance(ref, ClassRef) and ref.module.main)
    leaves = [n for n in flows if n not in bases]
    if not leaves:
        raise ReadError("no-flow", "no FlowSpec subclass found (expected `class MyFlow(FlowSpec)` with `from metaflow import FlowSpec`)")
    if len(leaves) > 1:
        raise ReadError(
            "ambiguous-flow",
            "more than one FlowSpec subclass and none is run under `if __name__ == \"__main__\"`: %s"
            % ", ".join("%s (line %d)" % (n, classes[n].lineno) for n in leaves),
            classes[leaves[1]].lineno,
        )
    return leaves[0], mros[leaves[0]]


def not_a_flow(name, line, mro):
    """The ReadError for class `name`, run under the main guard, whose bases do not lead to FlowSpec."""
    imported = [ref for ref in mro if isinstance(ref, External) and ref.module_name is not None]
    if imported:
        base = imported[0]
        where = "" if base.importer.main else " (in %s, line %d)" % (base.importer.display, base.line)
        raise ReadError(
            "imported-flow",
            "class %s, run under `if __name__ == \"__main__\"`, derives from %s, imported from %s%s, which is not a "
            "module under the flow's directory: prebuilt reads base flows from the flow's own modules only, so it "
            "cannot see the steps and decorators of a base flow defined in an installed library"
            % (name, base.written, base.module_name, where if where else " (line %d)" % base.line),
            line,
        )
    raise ReadError(
        "no-flow",
        "class %s, run under `if __name__ == \"__main__\"`, is not a subclass of metaflow's FlowSpec "
        "that this file defines or imports (its base classes come from elsewhere)" % name,
        line,
    )


def at_line(module, line):
    return "line %d" % line if module.main else "%s line %d" % (module.display, line)


def flow_decorators(project, mro):
    """The env decorators of the flow class and its base flows (bases first), each applied once as Metaflow requires."""
    out = []
    seen = {}
    for ref in reversed(mro):
        if not isinstance(ref, ClassRef) or FLOWSPEC not in project.mro(ref):
            continue  # Metaflow refuses a flow decorator on a class that is not a FlowSpec
        module = ref.module
        for deco in ref.node.decorator_list:
            kind = module.names.resolve(deco)
            if kind not in ENV_FLOW_DECORATORS:
                continue
            if kind in seen:
                first = seen[kind]
                if first[0].main and module.main:
                    where = "lines %d and %d" % (first[1], deco.lineno)
                else:
                    where = "%s and %s" % (at_line(*first), at_line(module, deco.lineno))
                raise module.error(ReadError(
                    "duplicate-decorator",
                    "@%s is applied more than once to the flow (%s); Metaflow allows it once" % (kind, where),
                    deco.lineno,
                ))
            seen[kind] = (module, deco.lineno)
            try:
                args = decorator_args(deco, ENV_FLOW_DECORATORS[kind], module.scope, module.evaluator, kind, None)
                check_types(kind, args, None)
            except ReadError as error:
                raise module.error(error)
            out.append(located({"name": kind, "line": deco.lineno, "args": args}, module))
    return out


def located(entry, module):
    """`entry`, with the file it comes from when that is not the flow file."""
    if not module.main:
        entry["file"] = module.display
    return entry


def class_attributes(cls):
    """name -> the last statement of a class body binding it."""
    out = {}
    for stmt in cls.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out[stmt.name] = stmt
        else:
            for sub in ast.walk(stmt):
                if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                    out[sub.id] = stmt
                elif isinstance(sub, ast.alias):
                    out[(sub.asname or sub.name).split(".")[0]] = stmt
    return out


def flow_steps(mro):
    """The steps of the flow: each name as Python's attribute lookup finds it in the MRO, kept when it is a @step.

    In source order, base classes first; an override keeps the place of the method it overrides.
    """
    classes = [ref for ref in mro if isinstance(ref, ClassRef)]
    attributes = [class_attributes(ref.node) for ref in classes]
    order = []
    for ref, attrs in reversed(list(zip(classes, attributes))):
        for item in ref.node.body:
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name not in order:
                order.append(item.name)
    steps = []
    for name in order:
        owner = next(index for index, attrs in enumerate(attributes) if name in attrs)
        item = attributes[owner][name]
        ref = classes[owner]
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and "step" in [ref.module.names.resolve(d) for d in item.decorator_list]:
            try:
                steps.append(located(read_step(ref, item), ref.module))
            except ReadError as error:
                raise ref.module.error(error)
    return steps


def read_step(ref, item):
    """One step: its decorators (evaluated in its class's scope) and the imports of its body."""
    names = ref.module.names
    class_scope = Scope(ref.node.body, ref.module.scope)
    kinds = [names.resolve(deco) for deco in item.decorator_list]
    step_at = kinds.index("step")
    for deco, kind in list(zip(item.decorator_list, kinds))[step_at + 1:]:
        if kind in ENV_STEP_DECORATORS or kind in REMOTE_DECORATORS or kind in RESOURCE_DECORATORS:
            raise ReadError(
                "invalid-decorator",
                "@%s on step '%s' (line %d) is below @step (line %d); Metaflow refuses it when it loads the "
                "flow: move @%s above @step"
                % (kind, item.name, deco.lineno, item.decorator_list[step_at].lineno, kind),
                deco.lineno,
                item.name,
            )
    decorators = []
    seen = {}
    for deco, kind in zip(item.decorator_list, kinds):
        if kind in ENV_STEP_DECORATORS:
            wanted = ENV_STEP_DECORATORS[kind]
        elif kind in REMOTE_DECORATORS:
            wanted = ("gpu", "image")
        elif kind in RESOURCE_DECORATORS:
            wanted = ("gpu",)
        else:
            continue
        if kind in seen:
            raise ReadError(
                "duplicate-decorator",
                "step '%s' has @%s twice (lines %d and %d); Metaflow allows it once"
                % (item.name, kind, seen[kind], deco.lineno),
                deco.lineno,
                item.name,
            )
        seen[kind] = deco.lineno
        args = decorator_args(deco, wanted, class_scope, ref.module.evaluator, kind, item.name)
        check_types(kind, args, item.name)
        decorators.append({"name": kind, "line": deco.lineno, "args": args})
    remotes = [d for d in decorators if d["name"] in REMOTE_DECORATORS]
    if len(remotes) > 1:
        raise ReadError(
            "invalid-decorator",
            "step '%s' has both @kubernetes and @batch; a step runs on one of them" % item.name,
            remotes[1]["line"],
            item.name,
        )
    imports = [located(entry, ref.module) for entry in collect_imports(item.body, [])]
    return {"name": item.name, "line": item.lineno, "decorators": decorators, "imports": imports}


def read(path):
    project = Project(path)
    main = project.main
    classes = {stmt.name: stmt for stmt in main.tree.body if isinstance(stmt, ast.ClassDef)}
    flow_name, mro = run_class(project, classes)
    decorators = flow_decorators(project, mro)
    steps = flow_steps(mro)
    if not steps:
        raise ReadError(
            "no-steps",
            "flow %s has no @step methods" % flow_name,
            classes[flow_name].lineno,
        )
    # What runs when the flow file loads: its module-level imports, then those of the modules it imports.
    imports = collect_imports(main.tree.body, [], into_functions=False)
    for module in project.order:
        imports.extend(located(entry, module) for entry in collect_imports(module.tree.body, [], into_functions=False))
    return {
        "ok": True,
        "hostPython": "%d.%d.%d" % sys.version_info[:3],
        "flow": {"name": flow_name, "line": classes[flow_name].lineno},
        "flowDecorators": decorators,
        "imports": imports,
        "steps": steps,
    }


def failure(error):
    found = {"kind": error.kind, "message": error.message, "line": error.line, "step": error.step}
    module = error.module
    if module is not None and not module.main:
        found["file"] = module.display
        found["module"] = module.name
        found["chain"] = module.chain()
    return {"ok": False, "hostPython": "%d.%d.%d" % sys.version_info[:3], "error": found}


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: read_flow.py <flow.py>\n")
        return 64
    try:
        text = json.dumps(read(argv[1]), allow_nan=False)
    except ReadError as error:
        text = json.dumps(failure(error))
    except ValueError as error:  # a value JSON cannot carry, e.g. an infinite float
        text = json.dumps(failure(ReadError("invalid-value", "a decorator value cannot be represented: %s" % error)))
    except (RecursionError, MemoryError):
        text = json.dumps(failure(ReadError("dynamic-value", "an expression or a chain of classes is nested too deeply to read")))
    sys.stdout.write(text)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    if sys.version_info < (3, 8):
        sys.stderr.write("prebuilt needs Python 3.8 or newer to read flow files; this is %s\n" % sys.version.split()[0])
        sys.exit(3)
    sys.exit(main(sys.argv))
