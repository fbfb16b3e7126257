"""Read the environment decorators of a Metaflow flow file, statically.

Usage: python3 read_flow.py <flow.py>

Part of @prebuilt/metaflow. Never imports the flow or Metaflow: it parses the file with the
standard `ast` module and evaluates only literals, module-level (and class-level) constants and
simple expressions. Prints one JSON object to stdout:

  {"ok": true, "hostPython": "3.11.7", "flow": {...}, "flowDecorators": [...], "imports": [...], "steps": [...]}
  {"ok": false, "error": {"kind": ..., "message": ..., "line": ..., "step": ...}}

and exits 0 in both cases; any other exit status means the reader itself failed. `imports` (of the
module, and of each step's function body) lists the absolute imports as written, for `prebuilt
profile`: {"module": "a.b", "names": null | ["x", "*"], "line": 3, "optional": false}.
"""

import ast
import json
import re
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
    def __init__(self, kind, message, line=None, step=None):
        Exception.__init__(self, message)
        self.kind = kind
        self.message = message
        self.line = line
        self.step = step


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
            # Names bound any other way (for, with, if, try, match, del, :=) are not constants we can know.
            for sub in ast.walk(stmt):
                if isinstance(sub, ast.Name) and isinstance(sub.ctx, (ast.Store, ast.Del)):
                    self._bind(sub.id, sub.lineno, None)
                elif isinstance(sub, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
                    self._bind(sub.name, sub.lineno, None)
                elif isinstance(sub, (ast.Import, ast.ImportFrom)):
                    for alias in sub.names:
                        self._bind((alias.asname or alias.name).split(".")[0], sub.lineno, None)

    def imported_from(self, name):
        """(module, line) when `name` is bound by an import in this scope (or, unbound here, an outer one)."""
        if name in self.imports:
            return self.imports[name]
        if name in self.bindings or self.parent is None:
            return None
        return self.parent.imported_from(name)

    def lookup(self, name, before_line):
        """The binding in effect for a use at `before_line`, searching outwards."""
        entries = self.bindings.get(name)
        if entries:
            if any(node is None for _, node in entries):
                return ("unknown", None)
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
    def __init__(self, names=None):
        self.names = names
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

    def eval(self, node, scope, line):
        self.step(node)
        method = getattr(self, "_" + type(node).__name__, None)
        if method is None:
            raise self.not_readable(node, scope, line, "'%s' is not a literal, a constant or a simple expression" % describe(node))
        return self.bounded(node, method(node, scope, line))

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
            raise Dynamic(node, "'%s' is not defined in this file" % node.id)
        if found[0] == "later":
            raise Dynamic(node, "'%s' is only assigned later (line %d)" % (node.id, found[1]))
        if found[0] == "unknown":
            imported = scope.imported_from(node.id)
            if imported is not None:
                raise Dynamic(
                    node,
                    "'%s' is imported from %s (line %d), and prebuilt reads the flow file alone: define it in the flow file"
                    % (node.id, imported[0], imported[1]),
                )
            raise Dynamic(node, "'%s' is not a constant (it is imported, computed or reassigned)" % node.id)
        value_node, owner = found[1], found[2]
        key = (id(owner), node.id, value_node.lineno)
        if key in self.active:
            raise Dynamic(node, "'%s' refers to itself" % node.id)
        self.active.add(key)
        try:
            return self.eval(value_node, owner, value_node.lineno)
        except Dynamic as inner:
            raise Dynamic(node, "'%s' (line %s): %s" % (node.id, value_node.lineno, inner.why), inner.config)
        finally:
            self.active.discard(key)

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
PLACEMENT_ARGS = {"kubernetes": ("node_selector", "tolerations")}


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


def imported_bases(tree, cls):
    """The bases of `cls` that a module-level import binds: [(name as written, module, import line)]."""
    imports = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.ImportFrom) and stmt.module:
            for alias in stmt.names:
                imports[alias.asname or alias.name] = ("." * stmt.level + stmt.module, stmt.lineno)
        elif isinstance(stmt, ast.Import):
            for alias in stmt.names:
                imports[alias.asname or alias.name.split(".")[0]] = (alias.name, stmt.lineno)
    out = []
    for base in cls.bases:
        root = base
        while isinstance(root, ast.Attribute):
            root = root.value
        if isinstance(root, ast.Name) and root.id in imports:
            module, line = imports[root.id]
            out.append((describe(base), module, line))
    return out


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


def read(path):
    try:
        with open(path, "rb") as handle:
            source = handle.read()
    except OSError as error:
        raise ReadError("io", "cannot read the flow file: %s" % (error.strerror or error))
    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as error:
        raise ReadError("syntax", "Python syntax error: %s" % error.msg, error.lineno)
    except ValueError as error:  # e.g. null bytes
        raise ReadError("syntax", "not a Python source file: %s" % error)

    names = Names(tree)
    module_scope = Scope(tree.body)
    classes = {stmt.name: stmt for stmt in tree.body if isinstance(stmt, ast.ClassDef)}

    # FlowSpec subclasses: a base resolving to metaflow.FlowSpec, or a FlowSpec class of this file.
    flow_classes = {}
    for name, cls in classes.items():
        for base in cls.bases:
            if names.resolve(base) == "FlowSpec":
                flow_classes[name] = None
            elif isinstance(base, ast.Name) and base.id in flow_classes and base.id != name:
                flow_classes[name] = base.id
            else:
                continue
            break

    def chain(name):
        out = []
        while name is not None and name not in out:
            out.append(name)
            name = flow_classes.get(name)
        return list(reversed(out))

    # The class the file runs: instantiated under `if __name__ == "__main__":`.
    instantiated = []
    for stmt in tree.body:
        if is_main_guard(stmt):
            for sub in ast.walk(stmt):
                if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name) and sub.func.id in classes:
                    if sub.func.id not in [n for n, _ in instantiated]:
                        instantiated.append((sub.func.id, sub.lineno))
    run = [(n, line) for n, line in instantiated if n in flow_classes]
    if len(run) > 1:
        raise ReadError(
            "ambiguous-flow",
            "the file runs more than one FlowSpec class under `if __name__ == \"__main__\"`: %s"
            % ", ".join("%s (line %d)" % item for item in run),
            run[1][1],
        )
    if len(run) == 1:
        flow_name = run[0][0]
    else:
        not_flows = [(n, line) for n, line in instantiated if n not in flow_classes]
        if not flow_classes and not_flows:
            name, line = not_flows[0]
            imported = imported_bases(tree, classes[name])
            if imported:
                base, module, import_line = imported[0]
                raise ReadError(
                    "imported-flow",
                    "class %s, run under `if __name__ == \"__main__\"`, derives from %s, imported from %s (line %d): "
                    "prebuilt reads the flow file alone, so it cannot see the steps and decorators of a base flow "
                    "defined in another module" % (name, base, module, import_line),
                    line,
                )
            raise ReadError(
                "no-flow",
                "class %s, run under `if __name__ == \"__main__\"`, is not a subclass of metaflow's FlowSpec "
                "that this file defines or imports (its base classes come from elsewhere)" % name,
                line,
            )
        bases = set(v for v in flow_classes.values() if v is not None)
        leaves = [n for n in flow_classes if n not in bases]
        if not leaves:
            raise ReadError("no-flow", "no FlowSpec subclass found (expected `class MyFlow(FlowSpec)` with `from metaflow import FlowSpec`)")
        if len(leaves) > 1:
            raise ReadError(
                "ambiguous-flow",
                "more than one FlowSpec subclass and none is run under `if __name__ == \"__main__\"`: %s"
                % ", ".join("%s (line %d)" % (n, classes[n].lineno) for n in leaves),
                classes[leaves[1]].lineno,
            )
        flow_name = leaves[0]

    evaluator = Evaluator(names)

    # Flow-level decorators, inherited from in-file base flows as Metaflow does.
    flow_decorators = []
    seen_flow = {}
    for cls_name in chain(flow_name):
        cls = classes[cls_name]
        for deco in cls.decorator_list:
            kind = names.resolve(deco)
            if kind not in ENV_FLOW_DECORATORS:
                continue
            if kind in seen_flow:
                raise ReadError(
                    "duplicate-decorator",
                    "@%s is applied more than once to the flow (lines %d and %d); Metaflow allows it once"
                    % (kind, seen_flow[kind], deco.lineno),
                    deco.lineno,
                )
            seen_flow[kind] = deco.lineno
            args = decorator_args(deco, ENV_FLOW_DECORATORS[kind], module_scope, evaluator, kind, None)
            check_types(kind, args, None)
            flow_decorators.append({"name": kind, "line": deco.lineno, "args": args})

    # Steps, in source order (base flows first; an override keeps its place).
    steps = {}
    for cls_name in chain(flow_name):
        cls = classes[cls_name]
        class_scope = Scope(cls.body, module_scope)
        for item in cls.body:
            if not isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            kinds = [names.resolve(deco) for deco in item.decorator_list]
            if "step" not in kinds:
                continue
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
                args = decorator_args(deco, wanted, class_scope, evaluator, kind, item.name)
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
            steps[item.name] = {
                "name": item.name,
                "line": item.lineno,
                "decorators": decorators,
                "imports": collect_imports(item.body, []),
            }

    if not steps:
        raise ReadError(
            "no-steps",
            "flow %s has no @step methods" % flow_name,
            classes[flow_name].lineno,
        )

    return {
        "ok": True,
        "hostPython": "%d.%d.%d" % sys.version_info[:3],
        "flow": {"name": flow_name, "line": classes[flow_name].lineno},
        "flowDecorators": flow_decorators,
        "imports": collect_imports(tree.body, [], into_functions=False),
        "steps": list(steps.values()),
    }


def failure(kind, message, line=None, step=None):
    return {
        "ok": False,
        "hostPython": "%d.%d.%d" % sys.version_info[:3],
        "error": {"kind": kind, "message": message, "line": line, "step": step},
    }


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: read_flow.py <flow.py>\n")
        return 64
    try:
        text = json.dumps(read(argv[1]), allow_nan=False)
    except ReadError as error:
        text = json.dumps(failure(error.kind, error.message, error.line, error.step))
    except ValueError as error:  # a value JSON cannot carry, e.g. an infinite float
        text = json.dumps(failure("invalid-value", "a decorator value cannot be represented: %s" % error))
    except RecursionError:
        text = json.dumps(failure("dynamic-value", "an expression is nested too deeply to read"))
    sys.stdout.write(text)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    if sys.version_info < (3, 8):
        sys.stderr.write("prebuilt needs Python 3.8 or newer to read flow files; this is %s\n" % sys.version.split()[0])
        sys.exit(3)
    sys.exit(main(sys.argv))
