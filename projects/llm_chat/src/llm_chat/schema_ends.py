"""Recursive `$ref`s that cannot end. A reference whose schema only recurses (`{"anyOf":
[{"$ref": "#"}]}`, a required property or a non-empty array of the schema itself) compiles to a
grammar rule no finite text completes: the decoder then has no token to allow (a failed
generation, a 500) or writes `{"a": {"a": ...` until max_tokens, never valid JSON. An optional
use is no safer: the mask allows a prefix that enters the rule, which then cannot end. So each
reference must name a schema some finite JSON value matches (as a grammar's productive symbols
are found: from the leaves up, linear in the schema's size, no recursion along references)."""

import re
from typing import Any

from llm_chat.tool_schemas import subschemas

_MISSING = object()
# A JSON pointer's array index (RFC 6901): `0` or ASCII digits without a leading zero. `00`
# and `²` (which str.isdigit() takes) name the same item as `0` and `2` in other spellings,
# each of which cost a rebuild of the item; xgrammar refuses them anyway.
_INDEX = re.compile(r"0|[1-9][0-9]*")


class _BadIndexError(ValueError):
    def __init__(self, ref: str, part: str) -> None:
        super().__init__(part)
        self.ref, self.part = ref, part


def check_ends(schema: Any) -> None:
    """Raises ValueError naming the first `$ref` (with its location) whose schema no finite JSON
    value matches. Models what the grammar requires: required properties, minItems, minProperties
    and one branch of anyOf; a reference that does not resolve is left to the grammar compiler."""
    if not isinstance(schema, dict):
        return
    graph = _Graph(schema)
    found = list(_references(schema))
    for ref, where in found:
        try:
            graph.ref(ref)  # resolved here, so the first bad pointer is named with its place
        except _BadIndexError as bad:
            raise ValueError(
                f"`$ref` at {where or 'the top level'}: `{ref}` indexes an array with "
                f"`{bad.part}`; an index is 0 or ASCII digits without a leading zero"
            ) from None
    try:
        graph.build()
    except _BadIndexError as bad:  # a reference inside a schema reached only through another
        raise ValueError(
            f"`$ref` `{bad.ref}` indexes an array with `{bad.part}`; an index is 0 or ASCII "
            "digits without a leading zero"
        ) from None
    ends = graph.ends()
    for ref, where in found:
        if not ends[graph.refs[ref]]:
            at = where or "the top level"
            if graph.targets[ref] is False:
                why = "names the schema `false`, which no JSON value matches"
            else:
                why = "recurses with no way to end (no finite JSON value matches it)"
            raise ValueError(f"`$ref` at {at}: `{ref}` {why}")


def _references(schema: dict[str, Any]):
    """(reference, location) of each `$ref`, depth first in the keywords' order."""
    stack: list[tuple[Any, str]] = [(schema, "")]
    while stack:
        node, where = stack.pop()
        if isinstance(node, dict):
            if isinstance(ref := node.get("$ref"), str):
                yield ref, where
            stack.extend(reversed(list(subschemas(node, where))))


def _resolve(root: dict[str, Any], ref: str) -> Any:
    if not ref.startswith("#"):
        return _MISSING
    node: Any = root
    for part in ref[1:].split("/")[1:]:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list):
            if not _INDEX.fullmatch(part):
                raise _BadIndexError(ref, part)
            if int(part) >= len(node):
                return _MISSING
            node = node[int(part)]
        else:
            return _MISSING
    return node


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class _Graph:
    """An AND/OR graph: a node ends when all its parts do (AND; none: it ends) or one does (OR;
    none: it never does). A reference is an OR node of its target, built from a queue."""

    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.every: list[bool] = []
        self.parts: list[list[int]] = []
        self.refs: dict[str, int] = {}
        self.targets: dict[str, Any] = {}  # what each reference resolved to
        # the node of each schema object by id (the root keeps them alive): many references to
        # one target (or one object reached twice) build its subtree once, keeping this linear
        self._built: dict[int, int] = {}
        self._queue: list[str] = []

    def add(self, every: bool, parts: list[int]) -> int:
        self.every.append(every)
        self.parts.append(parts)
        return len(self.parts) - 1

    def ref(self, ref: str) -> int:
        if ref not in self.refs:
            self.targets[ref] = _resolve(self.root, ref)
            self.refs[ref] = self.add(False, [])
            self._queue.append(ref)
        return self.refs[ref]

    def build(self) -> None:
        while self._queue:
            ref = self._queue.pop()
            target = self.targets[ref]
            part = self.add(True, []) if target is _MISSING else self.schema(target)
            self.parts[self.refs[ref]].append(part)

    def schema(self, schema: Any) -> int:
        if not isinstance(schema, dict):
            return self.add(schema is not False, [])  # the schema `false` matches nothing
        if isinstance(ref := schema.get("$ref"), str):
            return self.ref(ref)  # its siblings only annotate (tool_schemas.check_enforced)
        if (built := self._built.get(id(schema))) is None:
            built = self._built[id(schema)] = self._schema(schema)
        return built

    def _schema(self, schema: dict[str, Any]) -> int:
        parts = []
        for key in ("anyOf", "oneOf"):
            if isinstance(branches := schema.get(key), list) and branches:
                parts.append(self.add(False, [self.schema(b) for b in branches]))
        if isinstance(branches := schema.get("allOf"), list):
            parts += [self.schema(b) for b in branches]
        types = schema.get("type")
        types = [types] if isinstance(types, str) else types if isinstance(types, list) else []
        if kinds := dict.fromkeys(t for t in types if isinstance(t, str)):
            shapes = {"object": self._object, "array": self._array}
            alternatives = [shapes[t](schema) if t in shapes else self.add(True, []) for t in kinds]
            parts.append(self.add(False, alternatives))
        else:  # no type: what either shape requires
            parts += [self._object(schema), self._array(schema)]
        return self.add(True, parts)

    def _object(self, schema: dict[str, Any]) -> int:
        properties = schema.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        required = schema.get("required") if isinstance(schema.get("required"), list) else []
        required = list(dict.fromkeys(name for name in required if isinstance(name, str)))
        parts = [self.schema(properties.get(name, True)) for name in required]
        if _count(schema.get("minProperties")) > len(required):
            # one more property that can end (an approximation where it takes several)
            more = [self.schema(s) for name, s in properties.items() if name not in required]
            for key in ("additionalProperties", "unevaluatedProperties"):
                if isinstance(schema.get(key), dict) or schema.get(key) is True:
                    more.append(self.schema(schema[key]))
            if isinstance(patterns := schema.get("patternProperties"), dict):
                more += [self.schema(s) for s in patterns.values()]
            parts.append(self.add(False, more))
        return self.add(True, parts)

    def _array(self, schema: dict[str, Any]) -> int:
        items = schema.get("items", True)
        prefix = schema.get("prefixItems")
        if isinstance(items, list):  # the older tuple form
            prefix, items = items, schema.get("additionalItems", True)
        prefix = prefix if isinstance(prefix, list) else []
        need = _count(schema.get("minItems"))
        parts = [self.schema(s) for s in prefix[:need]]
        if need > len(prefix):
            parts.append(self.schema(items))
        return self.add(True, parts)

    def ends(self) -> list[bool]:
        """Whether each node ends: from the nodes with nothing to wait for, up to their users."""
        waiting = [len(p) if every else 1 for every, p in zip(self.every, self.parts, strict=True)]
        users: list[list[int]] = [[] for _ in self.parts]
        for node, parts in enumerate(self.parts):
            for part in parts:
                users[part].append(node)
        done = [False] * len(self.parts)
        todo = [node for node, every in enumerate(self.every) if every and not self.parts[node]]
        while todo:
            node = todo.pop()
            if done[node]:
                continue
            done[node] = True
            for user in users[node]:
                waiting[user] -= 1
                if waiting[user] == 0:
                    todo.append(user)
        return done
