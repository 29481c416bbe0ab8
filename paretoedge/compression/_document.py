"""Versioned documents of configs: ``{"_type", "_version", "_data"}`` (torchao's scheme).

A config (a transform's frozen dataclass, or :class:`~paretoedge.compression.CompressionSpec`
itself) is written as its class name, its version and its fields as JSON values. Reading a
document never imports what it names: the caller passes the allow-list of classes that may
appear at that place (the spec at the top, the section's registered config class under each
section), so a stored or downloaded document cannot make paretoedge run arbitrary code.

Versions: a class declares ``VERSION: ClassVar[int]`` (1 when absent). When the stored form
of a class changes, its ``VERSION`` goes up by one and an upgrade from the old version is
registered with :func:`register_upgrade`; :func:`unpack` applies the upgrades one version at a
time, so every document ever written keeps loading. A document from a *newer* paretoedge is
refused with a :class:`~paretoedge.errors.ConfigError` saying so.

This module imports no torch and nothing of the transforms: it is the format only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from paretoedge.errors import ConfigError, UnknownNameError

DOCUMENT_KEYS = ("_type", "_version", "_data")

Upgrade = Callable[[Mapping[str, Any]], Mapping[str, Any]]

#: ``(type name, version) -> function`` turning that version's ``_data`` into the next one's.
_UPGRADES: dict[tuple[str, int], Upgrade] = {}


def register_upgrade(type_name: str, from_version: int, upgrade: Upgrade) -> None:
    """Register how ``_data`` of ``type_name`` at ``from_version`` becomes ``from_version + 1``.

    Raises:
        RuntimeError: the same step registered twice (a programming error, at import).
    """
    key = (type_name, from_version)
    if key in _UPGRADES:
        raise RuntimeError(f"upgrade of {type_name} from version {from_version} registered twice")
    _UPGRADES[key] = upgrade


def version_of(cls: type) -> int:
    return int(getattr(cls, "VERSION", 1))


def json_value(value: Any) -> Any:
    """``value`` with tuples as lists (recursively), as JSON will hold it."""
    if isinstance(value, tuple | list):
        return [json_value(v) for v in value]
    return value


def _canonical(value: Any) -> Any:
    """``value`` with every number that equals an integer written as that integer (``1.0``
    and ``1`` compare equal in a config, so they must hash alike), mappings and lists
    recursively; booleans stay booleans."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_canonical(v) for v in value]
    return value


def document_digest(document: Mapping[str, Any]) -> str:
    """A stable hex SHA-256 of a versioned document: keys sorted, no whitespace, integral
    numbers as integers. Two documents of equal configs (``==`` on the dataclasses) get the
    same digest; what equal digests prove is only that the canonical JSON was equal."""
    import hashlib
    import json

    text = json.dumps(_canonical(document), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def config_document(config: Any) -> dict[str, Any]:
    """The versioned document of a config dataclass instance (every field written)."""
    cls = type(config)
    data = {f.name: json_value(getattr(config, f.name)) for f in dataclasses.fields(config)}
    return {"_type": cls.__name__, "_version": version_of(cls), "_data": data}


def unpack(where: str, doc: Any, allowed: Mapping[str, type]) -> tuple[type, Mapping[str, Any]]:
    """Check a document against the allow-list and bring its data to the current version.

    Args:
        where: Dotted place of the document, for error messages (``spec``, ``spec.quant``).
        doc: The document as parsed from JSON.
        allowed: Class name -> class of the types this place accepts.

    Returns:
        The class and its ``_data`` at the class's current version.

    Raises:
        ConfigError: not a document, a type not on the allow-list, a version that is not a
            positive integer, newer than this paretoedge knows or without an upgrade path,
            or ``_data`` that is not a mapping.
    """
    if not isinstance(doc, Mapping) or set(doc) != set(DOCUMENT_KEYS):
        shown = sorted(map(str, doc)) if isinstance(doc, Mapping) else type(doc).__name__
        raise ConfigError(where, shown, "a document with exactly the keys _type, _version, _data")
    kind = doc["_type"]
    if not isinstance(kind, str) or kind not in allowed:
        raise ConfigError(f"{where}._type", kind, sorted(allowed))
    cls = allowed[kind]
    current = version_of(cls)
    version = doc["_version"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ConfigError(f"{where}._version", version, f"an integer in [1, {current}]")
    if version > current:
        raise ConfigError(
            f"{where}._version",
            version,
            f"a version <= {current} of {kind} (the document was written by a newer "
            "paretoedge; upgrade paretoedge to read it)",
        )
    data = doc["_data"]
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}._data", data, "a mapping")
    while version < current:
        step = _UPGRADES.get((kind, version))
        if step is None:
            raise ConfigError(
                f"{where}._version", version, f"a version of {kind} this paretoedge can upgrade"
            )
        data = step(data)
        version += 1
    return cls, data


def _field_value(raw: Any, annotation: str) -> Any:
    """A JSON value as the field's type: lists as tuples, integers for float fields."""
    if isinstance(raw, list) and "tuple" in annotation:
        return tuple(tuple(x) if isinstance(x, list) else x for x in raw)
    if "float" in annotation and isinstance(raw, int) and not isinstance(raw, bool):
        return float(raw)
    return raw


def config_from_data(section: str, cls: type, data: Mapping[str, Any]) -> Any:
    """Build the config ``cls`` of ``section`` from its (current-version) ``_data``.

    Fields left out take their defaults; the config's ``__post_init__`` validates the rest
    (strings are not coerced: a document holds typed values, unlike ``--set``).

    Raises:
        ConfigError: an unknown field (naming ``section.field``) or an invalid value.
    """
    known = {f.name: str(f.type) for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for name, raw in data.items():
        if name not in known:
            allowed = (f"{section}.{k}" for k in known)
            raise UnknownNameError(f"{section} key", f"{section}.{name}", allowed)
        kwargs[name] = _field_value(raw, known[name])
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(section, dict(data), f"valid {section} fields ({exc})") from None
