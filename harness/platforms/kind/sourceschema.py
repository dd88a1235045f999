"""JSON schemas derived from the sources that istioctl and kind decode with, never written by hand.

Two readers turn declarations into closed JSON schemas (an unknown field is an error, as it is for the
tools): `proto_definitions` reads proto3 messages and enums and maps them as protobuf's JSON mapping
does (protojson: a field is named by its json_name, lowerCamelCase by default, or by its proto name;
enums by name or number; the well-known wrapper types as their scalar); `go_definitions` reads Go
structs and their `json` tags as encoding/json does (an embedded struct or `,inline` flattens, `-`
is skipped). Types from elsewhere are resolved through an `externals` table the caller supplies
(Kubernetes definitions, Istio CRD schemas); a type that resolves nowhere is an error at build time,
so nothing is left silently open. The sources are in ./upstream (README there says where from).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

Schema = dict[str, Any]

_INT = {"anyOf": [{"type": "integer"}, {"type": "string", "pattern": r"^-?[0-9]+$"}]}  # protojson takes both
_UINT = {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": r"^[0-9]+$"}]}
_FLOAT = {"anyOf": [{"type": "number"}, {"enum": ["NaN", "Infinity", "-Infinity"]}]}
PROTO_SCALARS: dict[str, Schema] = {
    "string": {"type": "string"}, "bytes": {"type": "string"}, "bool": {"type": "boolean"},
    "int32": _INT, "sint32": _INT, "sfixed32": _INT, "int64": _INT, "sint64": _INT, "sfixed64": _INT,
    "uint32": _UINT, "fixed32": _UINT, "uint64": _UINT, "fixed64": _UINT, "double": _FLOAT, "float": _FLOAT,
}
WELL_KNOWN: dict[str, Schema] = {
    "google.protobuf.BoolValue": {"type": "boolean"},
    "google.protobuf.StringValue": {"type": "string"},
    "google.protobuf.BytesValue": {"type": "string"},
    "google.protobuf.Int32Value": _INT, "google.protobuf.Int64Value": _INT,
    "google.protobuf.UInt32Value": _UINT, "google.protobuf.UInt64Value": _UINT,
    "google.protobuf.DoubleValue": _FLOAT, "google.protobuf.FloatValue": _FLOAT,
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$"},  # protojson: "1.5s"
    "google.protobuf.Timestamp": {"type": "string"},
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array"},
    "google.protobuf.Any": {"type": "object", "required": ["@type"]},
    "google.protobuf.Empty": {"type": "object", "additionalProperties": False},
}


class SourceSchemaError(ValueError):
    """A declaration the readers cannot map (a bug in the source copy or in this module)."""


def ref(name: str) -> Schema:
    return {"$ref": f"#/$defs/{name}"}


def closed(properties: Mapping[str, Schema], json_names: list[str]) -> Schema:
    """An object with exactly these fields; `x-json-names` is what an error lists as expected."""
    return {"type": "object", "additionalProperties": False, "properties": dict(properties),
            "x-json-names": sorted(json_names)}


# -- proto3 ----------------------------------------------------------------------------------------


@dataclass
class _ProtoField:
    name: str
    type: str
    repeated: bool = False
    map_value: str | None = None  # map<K, V>: `type` is K
    json_name: str | None = None


@dataclass
class _Message:
    full_name: str
    fields: list[_ProtoField] = field(default_factory=list)
    oneofs: list[list[str]] = field(default_factory=list)


_PROTO_TOKEN = re.compile(r'"[^"]*"|\'[^\']*\'|[A-Za-z_.][\w.]*|-?\d+|[{}\[\]<>;=,()]')


def _proto_tokens(text: str) -> list[str]:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    return _PROTO_TOKEN.findall(text)


def lower_camel(name: str) -> str:
    """protoc's default json_name: underscores dropped, the letter after each one upper-cased."""
    parts = name.split("_")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


class _ProtoFile:
    def __init__(self, text: str) -> None:
        self.tokens = _proto_tokens(text)
        self.pos = 0
        self.package = ""
        self.messages: dict[str, _Message] = {}
        self.enums: dict[str, list[str]] = {}
        self._parse_file()

    def _next(self) -> str:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def _expect(self, wanted: str) -> None:
        token = self._next()
        if token != wanted:
            raise SourceSchemaError(f"proto: expected {wanted!r}, got {token!r} at token {self.pos}")

    def _skip_statement(self) -> None:
        depth = 0
        while True:
            token = self._next()
            if token in "{[(":
                depth += 1
            elif token in "}])":
                depth -= 1
            elif token == ";" and depth == 0:
                return

    def _parse_file(self) -> None:
        while self.pos < len(self.tokens):
            token = self._next()
            if token == "package":
                self.package = self._next()
                self._expect(";")
            elif token == "message":
                self._parse_message(self.package)
            elif token == "enum":
                self._parse_enum(self.package)
            elif token in ("syntax", "import", "option"):
                self._skip_statement()
            elif token != ";":
                raise SourceSchemaError(f"proto: unexpected {token!r} at file level")

    def _parse_enum(self, scope: str) -> None:
        name = f"{scope}.{self._next()}"
        self._expect("{")
        values: list[str] = []
        while (token := self._next()) != "}":
            if token in ("option", "reserved"):
                self._skip_statement()
            elif token != ";":
                values.append(token)
                self._skip_statement()
        self.enums[name] = values

    def _parse_message(self, scope: str) -> None:
        message = _Message(f"{scope}.{self._next()}")
        self.messages[message.full_name] = message
        self._expect("{")
        while (token := self._next()) != "}":
            if token == "message":
                self._parse_message(message.full_name)
            elif token == "enum":
                self._parse_enum(message.full_name)
            elif token == "oneof":
                self._next()
                self._expect("{")
                group = []
                while (inner := self._next()) != "}":
                    if inner == "option":
                        self._skip_statement()
                        continue
                    group.append(self._parse_field(inner, message))
                message.oneofs.append(group)
            elif token in ("reserved", "option", "extensions"):
                self._skip_statement()
            elif token != ";":
                self._parse_field(token, message)

    def _parse_field(self, first: str, message: _Message) -> str:
        repeated = first == "repeated"
        if first in ("repeated", "optional"):
            first = self._next()
        entry = _ProtoField(name="", type=first, repeated=repeated)
        if first == "map":
            self._expect("<")
            entry.type = self._next()
            self._expect(",")
            entry.map_value = self._next()
            self._expect(">")
        entry.name = self._next()
        self._expect("=")
        self._next()  # the field number
        token = self._next()
        if token == "[":
            options = []
            while (option := self._next()) != "]":
                options.append(option)
            for index, option in enumerate(options):
                if option == "json_name" and index + 2 < len(options):
                    entry.json_name = options[index + 2].strip("\"'")
            token = self._next()
        if token != ";":
            raise SourceSchemaError(f"proto: expected ';' after field {entry.name} of {message.full_name}")
        message.fields.append(entry)
        return entry.name


def proto_definitions(texts: list[str], externals: Mapping[str, Schema]) -> dict[str, Schema]:
    """Every message and enum of the given proto files as `$defs` entries named by their full names."""
    files = [_ProtoFile(text) for text in texts]
    messages = {name: m for f in files for name, m in f.messages.items()}
    enums = {name: values for f in files for name, values in f.enums.items()}

    def resolve(type_name: str, scope: str) -> Schema:
        if type_name in PROTO_SCALARS:
            return PROTO_SCALARS[type_name]
        absolute = type_name.lstrip(".")
        candidates = [] if type_name.startswith(".") else [
            ".".join(scope.split(".")[:cut] + [absolute]) for cut in range(scope.count(".") + 1, 0, -1)]
        for candidate in [*candidates, absolute]:
            if candidate in messages or candidate in enums:
                return ref(candidate)
            if candidate in WELL_KNOWN:
                return WELL_KNOWN[candidate]
            if candidate in externals:
                return externals[candidate]
        raise SourceSchemaError(f"proto: type {type_name} (in {scope}) resolves to no message, enum or external")

    defs: dict[str, Schema] = {name: {"anyOf": [{"enum": values}, {"type": "integer"}]}
                               for name, values in enums.items()}
    for name, message in messages.items():
        if name in externals:  # a message with its own JSON form (e.g. IntOrString)
            defs[name] = externals[name]
            continue
        properties: dict[str, Schema] = {}
        json_names: list[str] = []
        for entry in message.fields:
            schema = resolve(entry.type if entry.map_value is None else entry.map_value, name)
            if entry.map_value is not None:
                schema = {"type": "object", "additionalProperties": schema}
            elif entry.repeated:
                schema = {"type": "array", "items": schema}
            json_name = entry.json_name or lower_camel(entry.name)
            properties[json_name] = properties[entry.name] = schema
            json_names.append(json_name)
        defs[name] = closed(properties, json_names)
        exclusive = [{"required": [a, b]} for group in message.oneofs for x, y in itertools.combinations(group, 2)
                     for a in {x, _json_of(message, x)} for b in {y, _json_of(message, y)}]
        if exclusive:
            defs[name]["not"] = {"anyOf": exclusive}
    return defs


def _json_of(message: _Message, proto_name: str) -> str:
    entry = next(f for f in message.fields if f.name == proto_name)
    return entry.json_name or lower_camel(entry.name)


# -- Go structs ------------------------------------------------------------------------------------

_GO_STRUCT = re.compile(r"^type (\w+) struct \{\n(.*?)^\}", re.S | re.M)
_GO_STRING_TYPE = re.compile(r"^type (\w+) string$", re.M)
_GO_CONST = re.compile(r"^\s*\w+\s+(\w+)\s*=\s*\"([^\"]*)\"", re.M)
_GO_FIELD = re.compile(r"^\s*(?P<decl>[^`]+?)\s*(?:`(?P<tag>[^`]*)`)?\s*$")
GO_BUILTINS: dict[str, Schema] = {
    "string": {"type": "string"}, "bool": {"type": "boolean"}, "any": {}, "interface{}": {},
    "int": {"type": "integer"}, "int32": {"type": "integer"}, "int64": {"type": "integer"},
    "uint32": {"type": "integer", "minimum": 0}, "uint64": {"type": "integer", "minimum": 0},
    "float64": {"type": "number"}, "json.RawMessage": {},
}


@dataclass(frozen=True)
class _GoField:
    json_name: str  # "" for an embedded (inlined) struct
    type: str


def _go_structs(text: str) -> dict[str, list[_GoField]]:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"(?m)^\s*//.*$", "", text)
    structs: dict[str, list[_GoField]] = {}
    for name, body in _GO_STRUCT.findall(text):
        fields = []
        for line in body.splitlines():
            match = _GO_FIELD.match(line)
            if not line.strip() or match is None:
                continue
            decl = match.group("decl").split()
            tag = re.search(r'json:"([^"]*)"', match.group("tag") or "")
            json_name, *options = (tag.group(1) if tag else "").split(",")
            if json_name == "-":
                continue
            if "inline" in options or (len(decl) == 1 and not json_name):  # embedded: fields are the parent's
                fields.append(_GoField("", decl[-1]))
            else:  # an embedded struct with a tag name is a field of that name (encoding/json)
                fields.append(_GoField(json_name or decl[0], decl[-1]))
        structs[name] = fields
    return structs


def go_definitions(text: str, prefix: str, externals: Mapping[str, Schema],
                   overrides: Mapping[tuple[str, str], Schema] | None = None) -> dict[str, Schema]:
    """Every struct of a Go file as `$defs` entries named `<prefix>.<Struct>`; named string types with
    constants become enums. `overrides[(struct, json field)]` replaces a field's schema (json.RawMessage
    whose real type is a proto message; `any` that takes a scalar)."""
    structs = _go_structs(text)
    string_types = set(_GO_STRING_TYPE.findall(text))
    constants: dict[str, list[str]] = {}
    for type_name, value in _GO_CONST.findall(text):
        constants.setdefault(type_name, []).append(value)

    def resolve(go_type: str, where: str) -> Schema:
        go_type = go_type.lstrip("*")
        if go_type.startswith("[]"):
            return {"type": "array", "items": resolve(go_type[2:], where)}
        if go_type.startswith("map[string]"):
            return {"type": "object", "additionalProperties": resolve(go_type[len("map[string]"):], where)}
        if go_type in GO_BUILTINS:
            return GO_BUILTINS[go_type]
        if go_type in externals:
            return externals[go_type]
        if go_type in structs:
            return ref(f"{prefix}.{go_type}")
        if go_type in string_types:
            return {"enum": constants[go_type]} if go_type in constants else {"type": "string"}
        raise SourceSchemaError(f"go: type {go_type} (in {where}) resolves to no struct, builtin or external")

    def flatten(name: str) -> tuple[dict[str, Schema], list[str]]:
        properties: dict[str, Schema] = {}
        names: list[str] = []
        for entry in structs[name]:
            if not entry.json_name:
                inner = entry.type.lstrip("*").rpartition(".")[2] if entry.type not in externals else None
                if inner in structs:
                    more, more_names = flatten(inner)
                    properties.update(more)
                    names += more_names
                    continue
                inline = externals.get(entry.type, {})
                properties.update(inline.get("properties", {}))
                names += list(inline.get("properties", {}))
                continue
            properties[entry.json_name] = (overrides or {}).get((name, entry.json_name)) or resolve(entry.type, name)
            names.append(entry.json_name)
        return properties, names

    return {f"{prefix}.{name}": closed(*flatten(name)) for name in structs}
