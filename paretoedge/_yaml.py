"""YAML and plain documents read with limits: size, nesting depth, alias expansion.

A study file comes from a user (or, through the HTTP API, from anyone holding the token),
and PyYAML's ``safe_load`` is safe only against code execution: a recursive anchor, a
"billion laughs" document (aliases of aliases, tiny on disk, billions of nodes once
expanded) or 5,000 nested brackets still exhaust memory or the interpreter's stack in
whatever walks the result. This module composes the YAML node graph itself and refuses,
before anything is constructed:

- more than :data:`MAX_BYTES` bytes, bytes that are not UTF-8 text (NULs, invalid
  sequences, a UTF-16 file);
- nesting deeper than :data:`MAX_DEPTH` (counted through aliases);
- an alias to a node that is still open (a recursive anchor);
- a document that, with every alias expanded, would hold more than :data:`MAX_NODES`
  nodes and scalar characters;
- duplicate keys in a mapping (PyYAML silently keeps the last one).

The expanded size is computed while composing: PyYAML composes a node's children before
the node, and an alias may only name a finished node, so each node's expanded weight and
depth are known from its children's in constant work per edge. A refusal therefore costs
no more than reading the file once.

:func:`check_document` applies the same depth and size limits to data that did not come
from YAML (a JSON body of the HTTP API, a document after ``--set`` overrides).

Every refusal is a :class:`~paretoedge.errors.ConfigError` naming the source, with a
one-line reason.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from paretoedge.errors import ConfigError

#: Largest YAML text accepted (a study file is a few kilobytes).
MAX_BYTES = 256 * 1024
#: Deepest nesting of mappings and lists (a study file nests four or five levels).
MAX_DEPTH = 32
#: Most nodes plus scalar characters once every alias is expanded.
MAX_NODES = 200_000
#: Most aliases in one document.
MAX_ALIASES = 1_000


class YAMLSyntaxError(ConfigError):
    """The text is not valid YAML (as opposed to valid YAML refused by a limit)."""


class _LimitedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with the limits of this module checked during composition."""

    def __init__(self, stream: str, source: str, field: str) -> None:
        super().__init__(stream)
        self._source = source
        self._field = field
        self._depth = 0
        self._open: list[str] = []
        self._aliases = 0
        # id(node) -> (expanded weight, expanded depth); nodes stay alive in the document.
        self._size: dict[int, tuple[int, int]] = {}

    def _refuse(self, why: str) -> ConfigError:
        return ConfigError(self._field, self._source, why)

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        if self.check_event(AliasEvent):
            anchor = self.peek_event().anchor
            if anchor in self._open:
                raise self._refuse(f"YAML without recursive aliases (*{anchor} inside &{anchor})")
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise self._refuse(f"YAML with at most {MAX_ALIASES} aliases")
            node: Node = super().compose_node(parent, index)
            return node
        anchor = self.peek_event().anchor
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise self._refuse(f"YAML nested at most {MAX_DEPTH} levels deep")
        if anchor is not None:
            self._open.append(anchor)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
            if anchor is not None:
                self._open.pop()
        self._measure(node)
        return node

    def _measure(self, node: Node) -> None:
        if isinstance(node, ScalarNode):
            weight, depth = 1 + len(node.value), 1
        else:
            if isinstance(node, MappingNode):
                children = [n for pair in node.value for n in pair]
                self._no_duplicate_keys(node)
            else:
                assert isinstance(node, SequenceNode)
                children = list(node.value)
            sizes = [self._size[id(c)] for c in children]
            weight = 1 + sum(w for w, _ in sizes)
            depth = 1 + max((d for _, d in sizes), default=0)
        if depth > MAX_DEPTH:
            raise self._refuse(f"YAML nested at most {MAX_DEPTH} levels deep (aliases expanded)")
        if weight > MAX_NODES:
            raise self._refuse(
                f"YAML of at most {MAX_NODES:,} nodes and characters once aliases are expanded"
            )
        self._size[id(node)] = (weight, depth)

    def _no_duplicate_keys(self, node: MappingNode) -> None:
        seen: set[tuple[str, str]] = set()
        for key, _ in node.value:
            if isinstance(key, ScalarNode):
                ident = (key.tag, key.value)
                if ident in seen:
                    line = key.start_mark.line + 1
                    raise self._refuse(
                        f"each key once (duplicate key {key.value!r} on line {line})"
                    )
                seen.add(ident)


# YAML 1.2 floats: PyYAML follows YAML 1.1, where ``5e-5`` and ``1e30`` (no dot) are strings,
# which the strict study schema would then refuse as "not a number".
_YAML12_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")
_LimitedLoader.add_implicit_resolver("tag:yaml.org,2002:float", _YAML12_FLOAT, list("-+0123456789"))


def decode_text(data: bytes, source: str) -> str:
    """``data`` as UTF-8 text, or a one-line :class:`ConfigError` saying why it is not."""
    if len(data) > MAX_BYTES:
        raise ConfigError("config", source, f"a YAML text of at most {MAX_BYTES:,} bytes")
    head = data[:64]
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or (
        len(head) >= 8 and (set(head[0::2]) == {0} or set(head[1::2]) == {0})
    ):
        raise ConfigError(
            "config", source, "UTF-8 YAML text (this file is UTF-16: save it as UTF-8)"
        )
    if b"\x00" in data:
        raise ConfigError("config", source, "UTF-8 YAML text (the file holds NUL bytes: binary?)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            "config", source, f"UTF-8 YAML text (invalid UTF-8 at byte {exc.start})"
        ) from None
    return text.removeprefix("\ufeff")


def load_yaml(text: str, source: str = "<yaml>", *, field: str = "config") -> Any:
    """Parse one YAML document with the limits of this module.

    Args:
        text: The YAML text.
        source: What the text is (a file path, an override), the value shown in errors.
        field: The field named in errors (``config``, ``--set``).

    Raises:
        YAMLSyntaxError: Not valid YAML (PyYAML's problem and its line, on one line).
        ConfigError: Too large, too deep, recursive, expanding past the limits, or
            duplicate keys.
    """
    if len(text) > MAX_BYTES:
        raise ConfigError(field, source, f"a YAML text of at most {MAX_BYTES:,} characters")
    loader = None
    try:
        # The reader checks the characters already in the constructor.
        loader = _LimitedLoader(text, source, field)
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        where = f" at line {exc.problem_mark.line + 1}" if exc.problem_mark else ""
        problem = exc.problem or exc.context or "malformed YAML"
        raise YAMLSyntaxError(field, source, f"valid YAML ({problem}{where})") from None
    except yaml.YAMLError as exc:
        first = str(exc).strip().splitlines()
        raise YAMLSyntaxError(field, source, f"valid YAML ({first[0] if first else exc})") from None
    finally:
        if loader is not None:
            loader.dispose()


def check_document(data: Any, source: str = "config") -> None:
    """Refuse plain data (mappings, lists, scalars) deeper or larger than the YAML limits.

    Iterative, so a 50,000-deep list is refused instead of overflowing the stack (and a
    structure that contains itself is refused as too deep); shared objects are counted once
    per reference, as they would be once serialised.

    Raises:
        ConfigError: Naming ``source`` and the limit.
    """
    budget = MAX_NODES
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ConfigError(source, "...", f"a document nested at most {MAX_DEPTH} levels deep")
        budget -= 1 + (len(node) if isinstance(node, str) else 0)
        if budget < 0:
            raise ConfigError(
                source, "...", f"a document of at most {MAX_NODES:,} nodes and characters"
            )
        if isinstance(node, Mapping):
            for key, value in node.items():
                budget -= len(key) if isinstance(key, str) else 1
                stack.append((value, depth + 1))
        elif isinstance(node, list | tuple):
            stack.extend((value, depth + 1) for value in node)
