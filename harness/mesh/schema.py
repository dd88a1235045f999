"""Strict validation of the mesh manifests: Istio CRD schemas (no unknown fields) and kubernetes-validate."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from jsonschema.protocols import Validator

from harness.errors import ManifestError

#: Kubernetes release whose OpenAPI schemas (bundled with kubernetes-validate) judge core resources.
KUBERNETES_VERSION = "1.33"
#: Istio's generated CRDs (istio/istio 1.30.3); see schemas/README.md for provenance.
ISTIO_CRD_PATH = Path(__file__).parent / "schemas" / "istio-crd-all.gen.yaml"
#: The mesh's manifests; one folder per concern (kubernetes, istio, variants, multicluster).
MANIFESTS_DIR = Path(__file__).parent / "manifests"

_YamlLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SUBSCHEMA_KEYS = frozenset({"items", "additionalProperties", "allOf", "anyOf", "oneOf", "not"})
_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
# The metadata fields an authored manifest may set; server-populated ones (uid, ...) have no place here.
_METADATA_SCHEMA = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "maxLength": 253, "pattern": _DNS_SUBDOMAIN},
        "namespace": {"type": "string", "maxLength": 63, "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        "labels": _STRING_MAP,
        "annotations": _STRING_MAP,
        "finalizers": {"type": "array", "items": {"type": "string"}},
    },
}


@dataclass(frozen=True)
class _Problem:
    """One finding: where in the document (dotted field path) and what was expected there."""

    path: str
    expected: str


class _StrictLoader(_YamlLoader):  # type: ignore[misc, valid-type]
    """Safe YAML loader that rejects duplicate mapping keys, as the API server's strict decoding does."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[tuple[str, str], int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key, line = (key_node.tag, key_node.value), key_node.start_mark.line + 1
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key_node.value!r} (first at line {seen[key]})", key_node.start_mark
                )
            seen[key] = line
        return super().construct_mapping(node, deep)


def load_yaml_documents(path: Path) -> list[dict]:
    """Parse a multi-document YAML file into its non-empty documents, each checked for
    apiVersion, kind and metadata.name; raises ManifestError naming the file and the line or
    document index (counting non-empty documents from 0)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ManifestError(f"cannot read manifest: {exc.strerror or exc}", file=path) from exc
    loader = _StrictLoader(text)
    documents: list[dict] = []
    problems: list[str] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            doc = loader.construct_document(node)
            if doc is None:
                continue
            problems += [f"document {len(documents)} (line {node.start_mark.line + 1}): {p.path}: {p.expected}"
                         for p in _shape_problems(doc)]
            documents.append(doc)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else None
        what = ": ".join(part for part in (exc.context, exc.problem) if part)
        raise ManifestError(f"invalid YAML: {what}", file=path, field=where) from exc
    except yaml.YAMLError as exc:
        raise ManifestError(f"invalid YAML: {exc}", file=path) from exc
    finally:
        loader.dispose()
    if problems:
        raise ManifestError(_summary(problems), file=path)
    return documents


def validate_document(doc: dict, *, file: Path, index: int) -> None:
    """Validate one document strictly: Istio kinds (API group ending in istio.io) against the bundled
    CRD schemas with unknown fields rejected, everything else with kubernetes-validate (strict) at
    KUBERNETES_VERSION. Raises ManifestError listing every problem with its field path."""
    problems = _document_problems(doc, index)
    if problems:
        raise ManifestError(_summary(problems), file=file)
    _beyond_schema(doc, file)


def _beyond_schema(doc: dict, file: Path) -> None:
    """What a schema cannot say: a Telemetry's CEL values and names (harness/mesh/telemetry_api.py)."""
    if doc.get("kind") == "Telemetry" and str(doc.get("apiVersion", "")).startswith("telemetry.istio.io/"):
        from harness.mesh.telemetry_api import check_telemetry  # CEL parsing: only for Telemetry documents

        check_telemetry(doc, file=file)


def load_manifests(paths: Iterable[Path]) -> list[dict]:
    """Load and validate every document of every file, in order; the first file with problems
    raises one ManifestError that lists all of that file's problems."""
    documents: list[dict] = []
    for path in paths:
        docs = load_yaml_documents(path)
        problems = [p for index, doc in enumerate(docs) for p in _document_problems(doc, index)]
        if problems:
            raise ManifestError(_summary(problems), file=path)
        for doc in docs:
            _beyond_schema(doc, path)
        documents += docs
    return documents


def default_manifest_paths(include: Sequence[str] = ("kubernetes", "istio")) -> list[Path]:
    """The YAML files of the named manifest folders (kubernetes, istio, variants, multicluster),
    folder by folder in the order given, files sorted by name within a folder."""
    paths: list[Path] = []
    for folder in include:
        directory = MANIFESTS_DIR / folder
        if not directory.is_dir():
            known = sorted(p.name for p in MANIFESTS_DIR.iterdir() if p.is_dir())
            raise ManifestError(f"no manifest folder {folder!r}; known: {', '.join(known)}", file=MANIFESTS_DIR)
        paths += sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml"))
    return paths


def _document_problems(doc: Any, index: int) -> list[str]:
    """Every problem of one document, each line prefixed with its index and kind/name."""
    problems, label = _shape_problems(doc), "?"
    if not problems:
        label = f"{doc['kind']}/{doc['metadata']['name']}"
        group = doc["apiVersion"].rpartition("/")[0]
        problems = _istio_problems(doc) if group.endswith("istio.io") else _kubernetes_problems(doc)
    return [f"document {index} ({label}): {p.path}: {p.expected}" for p in _dedupe(problems)]


def _shape_problems(doc: Any) -> list[_Problem]:
    """What keeps a document from being a Kubernetes object at all (before any schema applies)."""
    if not isinstance(doc, dict):
        expected = f"expected a mapping with apiVersion, kind and metadata, got {_type_name(doc)}"
        return [_Problem("(document)", expected)]
    problems = [_Problem(key, "required, a non-empty string") for key in ("apiVersion", "kind")
                if not isinstance(doc.get(key), str) or not doc[key]]
    metadata = doc.get("metadata")
    if not isinstance(metadata, dict):
        problems.append(_Problem("metadata", "required, a mapping with at least name"))
    elif not isinstance(metadata.get("name"), str) or not metadata["name"]:
        problems.append(_Problem("metadata.name", "required, a non-empty string"))
    return problems


def _istio_problems(doc: dict) -> list[_Problem]:
    group, _, version = doc["apiVersion"].rpartition("/")
    crds = _istio_crds()
    versions = crds.get((group, doc["kind"]))
    if versions is None:
        known = ", ".join(sorted(f"{g}/{k}" for g, k in crds))
        return [_Problem("kind", f"unknown Istio kind {doc['kind']!r} in group {group!r}; known: {known}")]
    if version not in versions:
        known = ", ".join(f"{group}/{v}" for v in sorted(versions))
        return [_Problem("apiVersion", f"{doc['kind']} has no version {version!r}; known: {known}")]
    validator = _istio_validator(group, doc["kind"], version)
    return [p for error in _sorted(validator.iter_errors(doc)) for p in _describe(error)]


def _kubernetes_problems(doc: dict) -> list[_Problem]:
    try:
        canonical = json.dumps(doc, sort_keys=True)
    except (TypeError, ValueError):  # a non-JSON value (a YAML date, say): judge it uncached
        return list(_kubernetes_verdict(doc))
    return list(_cached_kubernetes_verdict(canonical))


@functools.lru_cache(maxsize=1024)
def _cached_kubernetes_verdict(canonical: str) -> tuple[_Problem, ...]:
    """The verdict on a document's JSON text: kubernetes-validate re-reads its schemas on every call
    (~20 ms a document), so an unchanged document is judged once per process."""
    return _kubernetes_verdict(json.loads(canonical))


def _kubernetes_verdict(doc: dict) -> tuple[_Problem, ...]:
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:  # the library stops at a document's first error
        return tuple(_describe(exc))
    except kubernetes_validate.SchemaNotFoundError:
        return (_Problem("apiVersion", f"Kubernetes {KUBERNETES_VERSION} has no kind {doc['kind']!r} "
                                       f"in {doc['apiVersion']!r}"),)
    return ()


@functools.cache
def _istio_crds() -> dict[tuple[str, str], dict[str, dict]]:
    """(group, kind) -> served version -> openAPIV3Schema, read once from the bundled CRD file."""
    with ISTIO_CRD_PATH.open(encoding="utf-8") as stream:
        crds = [crd for crd in yaml.load_all(stream, Loader=_YamlLoader) if crd]
    return {
        (crd["spec"]["group"], crd["spec"]["names"]["kind"]): {
            v["name"]: v["schema"]["openAPIV3Schema"] for v in crd["spec"]["versions"] if v.get("served", True)
        }
        for crd in crds
    }


@functools.cache
def _istio_validator(group: str, kind: str, version: str) -> Validator:
    """A compiled validator for one Istio kind/version: the CRD schema made strict, plus metadata."""
    schema = _strict(_istio_crds()[(group, kind)][version])
    schema["properties"] = {
        **schema["properties"],
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": _METADATA_SCHEMA,
    }
    return jsonschema.Draft7Validator(schema)


def _strict(schema: Any) -> Any:
    """A copy of an OpenAPI v3 schema where every object listing properties rejects unknown fields
    (unless x-kubernetes-preserve-unknown-fields), and `nullable: true` admits null."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _strict(value) if key in _SUBSCHEMA_KEYS else value for key, value in schema.items()}
    if "properties" in schema:
        out["properties"] = {name: _strict(sub) for name, sub in schema["properties"].items()}
        if "additionalProperties" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    if schema.get("nullable") and isinstance(schema.get("type"), str):
        out["type"] = [schema["type"], "null"]
    return out


def _describe(error: jsonschema.ValidationError) -> list[_Problem]:
    """Turn one jsonschema error into problems whose path names the offending field itself."""
    path = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = sorted(error.schema.get("properties", {}))
        expected = f"unknown field; expected one of: {', '.join(known)}" if known else "unknown field"
        return [_Problem(_dotted([*path, key]), expected) for key in error.instance if key not in known]
    if error.validator == "required" and isinstance(error.instance, dict):
        return [_Problem(_dotted([*path, key]), "required field is missing")
                for key in error.validator_value if key not in error.instance]
    return [_Problem(_dotted(path), _expectation(error))]


def _expectation(error: jsonschema.ValidationError) -> str:
    got = f"got {_short(error.instance)}"
    if error.validator == "type":
        wanted = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        return f"expected {' or '.join(map(str, wanted))}, {got}"
    if error.validator == "enum":
        return f"expected one of {', '.join(map(str, error.validator_value))}, {got}"
    if error.validator in ("oneOf", "anyOf"):
        fields = [name for branch in error.validator_value for name in branch.get("required", [])]
        if fields:
            return f"conflicting fields: set at most one of {', '.join(fields)}"
        types = [str(branch["type"]) for branch in error.validator_value if "type" in branch]
        return f"expected {' or '.join(types)}, {got}" if types else f"matches none of the allowed forms, {got}"
    return error.message if len(error.message) <= 200 else error.message[:197] + "..."


def _sorted(errors: Iterable[jsonschema.ValidationError]) -> list[jsonschema.ValidationError]:
    return sorted(errors, key=lambda e: [str(part) for part in e.absolute_path])


def _dedupe(problems: list[_Problem]) -> list[_Problem]:
    return list(dict.fromkeys(problems))


def _dotted(path: Sequence[Any]) -> str:
    """spec.http[0].route[1].weight; keys that contain dots or slashes are quoted: annotations["a.b/c"]."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif "." in str(part) or "/" in str(part):
            text += f'["{part}"]'
        else:
            text += f".{part}" if text else str(part)
    return text or "(document)"


def _summary(problems: list[str]) -> str:
    count = f"{len(problems)} problem" + ("s" if len(problems) != 1 else "")
    return f"{count}:\n  " + "\n  ".join(problems)


def _type_name(value: Any) -> str:
    names = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__)


def _short(value: Any, *, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
