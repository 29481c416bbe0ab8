"""Check the KubeRay manifests against the operator's CustomResourceDefinitions, offline.

Usage: python docker/k8s/validate.py CRD_DIR [MANIFEST ...]

CRD_DIR holds KubeRay's ``ray.io_rayclusters.yaml`` and ``ray.io_rayjobs.yaml`` (from
``ray-operator/config/crd/bases`` of the KubeRay release you deploy). Every ray.io document
of the manifests is validated with ``jsonschema`` against the CRD's ``openAPIV3Schema``, and
every field must be declared in that schema (the API server would silently drop an unknown
field, so a typo would otherwise pass). Documents of other kinds (the PersistentVolumeClaim)
only get the YAML check. Exit status 1 lists every problem.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import yaml


def _schemas(crd_dir: Path) -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for path in sorted(crd_dir.glob("ray.io_*.yaml")):
        crd = yaml.safe_load(path.read_text())
        kind = crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version.get("served"):
                out[(f"ray.io/{version['name']}", kind)] = version["schema"]["openAPIV3Schema"]
    return out


def _unknown_fields(doc: Any, schema: dict[str, Any], where: str) -> Iterator[str]:
    if isinstance(doc, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        if schema.get("x-kubernetes-preserve-unknown-fields") or (props is None and not extra):
            return
        for key, value in doc.items():
            if props is not None and key in props:
                yield from _unknown_fields(value, props[key], f"{where}.{key}")
            elif isinstance(extra, dict):
                yield from _unknown_fields(value, extra, f"{where}.{key}")
            else:
                yield f"{where}.{key}: not a field of the CRD schema"
    elif isinstance(doc, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(doc):
            yield from _unknown_fields(item, schema["items"], f"{where}[{i}]")


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    schemas = _schemas(Path(argv[0]))
    here = Path(__file__).parent
    manifests = [Path(p) for p in argv[1:]] or sorted(here.glob("*.yaml"))
    problems: list[str] = []
    checked = 0
    for path in manifests:
        for n, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if not doc:
                continue
            key = (doc.get("apiVersion", ""), doc.get("kind", ""))
            if not key[0].startswith("ray.io/"):
                continue
            schema = schemas.get(key)
            if schema is None:
                problems.append(f"{path}#{n}: no CRD for {key}")
                continue
            checked += 1
            validator = jsonschema.Draft7Validator(schema)
            for err in validator.iter_errors(doc):
                loc = ".".join(str(p) for p in err.absolute_path)
                problems.append(f"{path}#{n} {key[1]} {loc}: {err.message}")
            for msg in _unknown_fields(doc, schema, key[1]):
                problems.append(f"{path}#{n} {msg}")
    for p in problems:
        print(p)
    print(f"{checked} ray.io documents checked, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
