"""Request bodies of /api/v1: JSON Schema (the subset we use) and its validator.

The same schema objects go into the OpenAPI document and check each request, so what is
documented is what is enforced.  Supported: ``type`` (object, string, boolean, integer,
array), ``properties``, ``required``, ``additionalProperties: false``, ``enum``,
``minLength``/``maxLength``, ``maxItems`` and ``items``.  Messages name the field.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Schema", "obj", "validate"]

Schema = dict[str, Any]

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "string": (str,), "boolean": (bool,), "array": (list,),
    "integer": (int,),
}


def obj(properties: dict[str, Schema], *, required: tuple[str, ...] = ()) -> Schema:
    """An object schema that refuses unknown fields (a typo is an error, not ignored)."""
    schema: Schema = {"type": "object", "properties": properties,
                      "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    return schema


def _is(value: Any, kind: str) -> bool:
    if kind == "integer" and isinstance(value, bool):
        return False
    return isinstance(value, _TYPES[kind])


def validate(value: Any, schema: Schema, where: str = "the body") -> list[str]:
    """Every way ``value`` breaks ``schema``, as messages a client developer can act on."""
    kind = schema.get("type")
    if kind and not _is(value, kind):
        article = "an" if kind[0] in "aeiou" else "a"
        return [f"{where} must be {article} {kind}"]
    errors: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where} must be one of {', '.join(map(str, schema['enum']))}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            errors.append(f"{where} must not be empty")
        if len(value) > schema.get("maxLength", len(value)):
            errors.append(f"{where} is longer than {schema['maxLength']} characters")
    if isinstance(value, list):
        if len(value) > schema.get("maxItems", len(value)):
            errors.append(f"{where} has more than {schema['maxItems']} items")
        for i, item in enumerate(value):
            errors += validate(item, schema.get("items", {}), f"{where}[{i}]")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                errors.append(f"{_field(where, name)} is required")
        if schema.get("additionalProperties") is False:
            extra = sorted(set(value) - set(props))
            if extra:
                errors.append(f"unknown field(s) {', '.join(extra)}; expected "
                              f"{', '.join(props)}")
        for name, item in value.items():
            if name in props:
                errors += validate(item, props[name], _field(where, name))
    return errors


def _field(where: str, name: str) -> str:
    return f'"{name}"' if where == "the body" else f'{where}."{name}"'
