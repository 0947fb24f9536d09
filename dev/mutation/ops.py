"""The mutation operators of `dev/mutation/runner.py`: which small changes are made to a module's syntax tree.

A mutant is one change at one place. Mutants are found by walking the tree in
`ast.walk` order, so the same source always yields the same list, and a mutant
is rebuilt from its source and its index alone (the worker process does that
instead of receiving code). Nothing here touches a file: a mutant exists only
as a compiled code object.

Operators (the names are those shown in reports and in dev/mutation/equivalent.txt):

- comparisons: each of < <= > >= to its boundary twin and its negation, == <-> !=, in <-> not in,
  is <-> is not
- arithmetic: + <-> -, * <-> /, // -> /, % -> //, ** -> * (also in `x += ...`)
- a term dropped from a sum (`a + b` -> `a`, `b`)
- constants: n -> n+1 and n -> 0, True <-> False, a string -> "" ("" -> "XX"), a numeric string -> +1
- and <-> or, `not x` -> `x`
- `return x` -> `return None`
- a statement inside a function removed (replaced by `pass`)
- a keyword argument of a call dropped; the last positional one when a call has two or more

Docstrings, annotations, imports and the constant parts of f-strings are left alone.
"""
from __future__ import annotations

import ast
import re
from collections import deque
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Callable, Deque, Dict, FrozenSet, Iterator, List, Optional, Tuple

COMPARE_SWAPS = {
    ast.Lt: (ast.LtE, ast.GtE), ast.LtE: (ast.Lt, ast.Gt), ast.Gt: (ast.GtE, ast.LtE), ast.GtE: (ast.Gt, ast.Lt),
    ast.Eq: (ast.NotEq,), ast.NotEq: (ast.Eq,), ast.In: (ast.NotIn,), ast.NotIn: (ast.In,),
    ast.Is: (ast.IsNot,), ast.IsNot: (ast.Is,),
}
ARITHMETIC_SWAPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult,
                    ast.FloorDiv: ast.Div, ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult}
SYMBOLS = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=", ast.In: "in",
           ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not", ast.Add: "+", ast.Sub: "-", ast.Mult: "*",
           ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**", ast.And: "and", ast.Or: "or"}
REMOVABLE_STATEMENTS = (ast.Expr, ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Raise, ast.Assert, ast.Delete)
_NUMERIC_STRING = re.compile(r"-?\d+(\.\d+)?")


@dataclass(frozen=True)
class Mutant:
    module: str        # path relative to the repository, e.g. chalicelib/pricing.py
    index: int         # the mutated node's position in ast.walk order
    op: str            # what the mutation does, e.g. "< -> <="
    line: int
    end_line: int
    col: int

    @property
    def key(self) -> str:
        """How reports and dev/mutation/equivalent.txt name this mutant."""
        return f"{self.module}:{self.line}:{self.col}:{self.op}"


Apply = Callable[[], None]


Slot = Tuple[int, str, Optional[int]]  # a node's parent (its walk index), the parent's field, the position in it


@dataclass(frozen=True)
class _Analysis:
    """What a source's tree looks like, by walk index: made once per source, shared by every parse of it."""
    slots: Tuple[Optional[Slot], ...]   # where each node hangs (None for the module itself)
    mutable: Tuple[int, ...]            # in walk order, the nodes with a place in the source, but not
                                        # docstrings, annotations, imports or f-string text
    in_function: FrozenSet[int]         # inside a function's body


class _Tree:
    """A fresh parse of a source, whose nodes are reached by their `ast.walk` index.

    Each mutant starts from its own parse, since a mutation changes the tree in place; the analysis of the source
    is shared, so reaching the one node a mutant changes costs a walk down its parents, not a walk of the module.
    """

    def __init__(self, source: str) -> None:
        self.root = ast.parse(source)
        self.analysis = _analyse(source)
        self._nodes: Dict[int, ast.AST] = {0: self.root}

    def node(self, index: int) -> ast.AST:
        if index not in self._nodes:
            parent, field, i = self.analysis.slots[index]
            value = getattr(self.node(parent), field)
            self._nodes[index] = value if i is None else value[i]
        return self._nodes[index]

    def replace(self, index: int, new: ast.AST) -> None:
        parent, field, i = self.analysis.slots[index]
        ast.fix_missing_locations(ast.copy_location(new, self.node(index)))
        if i is None:
            setattr(self.node(parent), field, new)
        else:
            getattr(self.node(parent), field)[i] = new


@lru_cache(maxsize=32)
def _analyse(source: str) -> _Analysis:
    # ast.walk's order, breadth first, noting where each node hangs. (Operator and context nodes are shared
    # objects in a parsed tree, so a node's id does not tell its place; they have no position and are never mutated.)
    nodes: List[ast.AST] = []
    slots: List[Optional[Slot]] = []
    todo: Deque[Tuple[ast.AST, Optional[Slot]]] = deque([(ast.parse(source), None)])
    while todo:
        node, slot = todo.popleft()
        index = len(nodes)
        nodes.append(node)
        slots.append(slot)
        for field, value in ast.iter_fields(node):
            if isinstance(value, ast.AST):
                todo.append((value, (index, field, None)))
            elif isinstance(value, list):
                todo.extend((child, (index, field, i)) for i, child in enumerate(value) if isinstance(child, ast.AST))
    position = {id(node): i for i, node in enumerate(nodes) if hasattr(node, "lineno")}
    skipped: set = set()

    def skip(tree: Optional[ast.AST]) -> None:
        if tree is not None:
            skipped.update(position[id(n)] for n in ast.walk(tree) if id(n) in position)

    inside: set = set()
    for node in nodes:
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body:
            first = body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                skip(first)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            skip(node.returns)
            for statement in node.body:
                inside.update(position[id(n)] for n in ast.walk(statement) if id(n) in position)
        elif isinstance(node, ast.arg):
            skip(node.annotation)
        elif isinstance(node, ast.AnnAssign):
            skip(node.annotation)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            skip(node)
        elif isinstance(node, ast.JoinedStr):
            skipped.update(position[id(v)] for v in node.values if isinstance(v, ast.Constant))
            for value in node.values:
                if isinstance(value, ast.FormattedValue):
                    skip(value.format_spec)
    return _Analysis(tuple(slots), tuple(sorted(set(position.values()) - skipped)), frozenset(inside))


def _constant_mutations(tree: _Tree, index: int, node: ast.Constant) -> Iterator[Tuple[str, Apply]]:
    value = node.value

    def to(new: object) -> Apply:
        return lambda: tree.replace(index, ast.Constant(new))

    if isinstance(value, bool):
        yield f"{value} -> {not value}", to(not value)
    elif isinstance(value, (int, float)):
        yield f"{value!r} -> {value + 1!r}", to(value + 1)
        if value != 0:
            yield f"{value!r} -> 0", to(type(value)(0))
    elif isinstance(value, str):
        if value == "":
            yield "'' -> 'XX'", to("XX")
            return
        yield "str -> ''", to("")
        if _NUMERIC_STRING.fullmatch(value):
            bumped = str(Decimal(value) + 1)
            yield f"'{value}' -> '{bumped}'", to(bumped)


def _call_mutations(tree: _Tree, node: ast.Call) -> Iterator[Tuple[str, Apply]]:
    for keyword in node.keywords:
        if keyword.arg is not None:
            yield f"drop arg {keyword.arg}=", (lambda k=keyword: node.keywords.remove(k))
    positional = node.args
    if len(positional) >= 2 and not any(isinstance(a, ast.Starred) for a in positional):
        yield f"drop arg {len(positional)}", positional.pop


def _mutations_of(tree: _Tree, index: int, node: ast.AST) -> Iterator[Tuple[str, Apply]]:
    if isinstance(node, ast.Compare):
        for k, op in enumerate(node.ops):
            for new in COMPARE_SWAPS.get(type(op), ()):
                suffix = f" [{k + 1}]" if len(node.ops) > 1 else ""

                def swap(k: int = k, new: type = new) -> None:
                    node.ops[k] = new()
                yield f"{SYMBOLS[type(op)]} -> {SYMBOLS[new]}{suffix}", swap
    elif isinstance(node, (ast.BinOp, ast.AugAssign)):
        new_op = ARITHMETIC_SWAPS.get(type(node.op))
        if new_op is not None:
            yield f"{SYMBOLS[type(node.op)]} -> {SYMBOLS[new_op]}", (lambda: setattr(node, "op", new_op()))
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            yield "drop + left term", (lambda: tree.replace(index, node.right))
            yield "drop + right term", (lambda: tree.replace(index, node.left))
    elif isinstance(node, ast.Constant):
        yield from _constant_mutations(tree, index, node)
    elif isinstance(node, ast.BoolOp):
        new_op = ast.Or if isinstance(node.op, ast.And) else ast.And
        yield f"{SYMBOLS[type(node.op)]} -> {SYMBOLS[new_op]}", (lambda: setattr(node, "op", new_op()))
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        yield "drop not", (lambda: tree.replace(index, node.operand))
    elif isinstance(node, ast.Call):
        yield from _call_mutations(tree, node)
    if isinstance(node, ast.Return) and node.value is not None \
            and not (isinstance(node.value, ast.Constant) and node.value.value is None):
        yield "return None", (lambda: setattr(node, "value", ast.copy_location(ast.Constant(None), node)))
    if isinstance(node, REMOVABLE_STATEMENTS) and index in tree.analysis.in_function:
        yield "drop statement", (lambda: tree.replace(index, ast.Pass()))


def _candidates(tree: _Tree) -> Iterator[Tuple[int, ast.AST, str, Apply]]:
    for index in tree.analysis.mutable:
        node = tree.node(index)
        for op, apply in _mutations_of(tree, index, node):
            yield index, node, op, apply


def mutants(module: str, source: str) -> List[Mutant]:
    """Every mutant of `source` (the file `module`, relative to the repository)."""
    tree = _Tree(source)
    found, seen = [], {}
    for index, node, op, _ in _candidates(tree):
        # Nested nodes can start at the same place (`a + b + c`): number the repeats so every key is unique.
        place = (node.lineno, node.col_offset, op)
        seen[place] = seen.get(place, 0) + 1
        label = op if seen[place] == 1 else f"{op} #{seen[place]}"
        found.append(Mutant(module, index, label, node.lineno, node.end_lineno or node.lineno, node.col_offset))
    return found


def mutated_tree(source: str, mutant: Mutant) -> ast.Module:
    """The syntax tree of `source` with `mutant` applied (a fresh parse: the source on disk is never changed)."""
    tree = _Tree(source)
    index = mutant.index
    if index in tree.analysis.mutable:
        for op, apply in _mutations_of(tree, index, tree.node(index)):
            if mutant.op.split(" #")[0] == op:
                apply()
                return tree.root
    raise LookupError(f"{mutant.key} is not a mutant of this source")


def mutated_code(source: str, mutant: Mutant, filename: str):
    return compile(mutated_tree(source, mutant), filename, "exec", dont_inherit=True)
