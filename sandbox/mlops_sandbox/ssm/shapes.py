"""Server-side validation of requests against botocore's SSM service model.

botocore checks only part of a request on the client (required members, types, minimums);
AWS checks the rest on the server and answers ``ValidationException`` with a message
that names each failing member. The model shipped with botocore is the authority for
lengths, ranges, patterns and enum values, so nothing here restates them.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import botocore.session
from botocore.model import OperationModel, Shape

from .errors import SsmError

# Java character classes the model uses that Python's ``re`` does not know.
_JAVA_CLASSES = {r"\p{L}": r"\w", r"\p{N}": r"\d", r"\p{Z}": r"\s"}


@functools.lru_cache(maxsize=1)
def service_model():
    return botocore.session.get_session().get_service_model("ssm")


def operation(name: str) -> OperationModel:
    return service_model().operation_model(name)


@functools.lru_cache(maxsize=256)
def _pattern(pattern: str) -> re.Pattern[str]:
    for java, python in _JAVA_CLASSES.items():
        pattern = pattern.replace(java, python)
    return re.compile(pattern)


def _path(parent: str, member: str) -> str:
    # AWS names members in camelCase in these messages: 'maxConcurrency', 'targets.1.member.key'.
    member = member[:1].lower() + member[1:]
    return f"{parent}.{member}" if parent else member


def _check(shape: Shape, value: Any, path: str, problems: list[str]) -> None:
    meta = shape.metadata
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            problems.append(f"Value at '{path}' failed to satisfy constraint: Member must be a structure")
            return
        for name in shape.required_members:
            if value.get(name) is None:
                problems.append(
                    f"Value null at '{_path(path, name)}' failed to satisfy constraint: Member must not be null"
                )
        for name, member_value in value.items():
            member = shape.members.get(name)
            if member is not None and member_value is not None:
                _check(member, member_value, _path(path, name), problems)
        return
    if kind == "list":
        if not isinstance(value, list):
            problems.append(f"Value at '{path}' failed to satisfy constraint: Member must be a list")
            return
        _length(value, meta, path, problems)
        for index, item in enumerate(value, start=1):
            _check(shape.member, item, f"{path}.{index}.member", problems)
        return
    if kind == "map":
        if not isinstance(value, dict):
            problems.append(f"Value at '{path}' failed to satisfy constraint: Member must be a map")
            return
        _length(value, meta, path, problems)
        for key, item in value.items():
            _check(shape.key, key, f"{path}.key", problems)
            _check(shape.value, item, f"{path}.{key}", problems)
        return
    if kind == "string":
        if not isinstance(value, str):
            problems.append(f"Value '{value}' at '{path}' failed to satisfy constraint: Member must be a string")
            return
        _length(value, meta, path, problems)
        if "pattern" in meta and not _pattern(meta["pattern"]).search(value):
            problems.append(
                f"Value '{value}' at '{path}' failed to satisfy constraint: "
                f"Member must satisfy regular expression pattern: {meta['pattern']}"
            )
        if shape.enum and value not in shape.enum:
            problems.append(
                f"Value '{value}' at '{path}' failed to satisfy constraint: "
                f"Member must satisfy enum value set: [{', '.join(shape.enum)}]"
            )
        return
    if kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"Value '{value}' at '{path}' failed to satisfy constraint: Member must be a number")
            return
        if "min" in meta and value < meta["min"]:
            problems.append(
                f"Value '{value}' at '{path}' failed to satisfy constraint: "
                f"Member must have value greater than or equal to {meta['min']}"
            )
        if "max" in meta and value > meta["max"]:
            problems.append(
                f"Value '{value}' at '{path}' failed to satisfy constraint: "
                f"Member must have value less than or equal to {meta['max']}"
            )
        return
    if kind == "boolean" and not isinstance(value, bool):
        problems.append(f"Value '{value}' at '{path}' failed to satisfy constraint: Member must be a boolean")


def _length(value: Any, meta: dict, path: str, problems: list[str]) -> None:
    shown = value if isinstance(value, str) else "[" + ", ".join(map(str, value)) + "]"
    if "min" in meta and len(value) < meta["min"]:
        problems.append(
            f"Value '{shown}' at '{path}' failed to satisfy constraint: "
            f"Member must have length greater than or equal to {meta['min']}"
        )
    if "max" in meta and len(value) > meta["max"]:
        problems.append(
            f"Value '{shown}' at '{path}' failed to satisfy constraint: "
            f"Member must have length less than or equal to {meta['max']}"
        )


def valid_instance_id(value: str) -> bool:
    pattern = service_model().shape_for("InstanceId").metadata["pattern"]
    return bool(_pattern(pattern).search(value))


def validate(action: str, request: dict) -> None:
    """Raise ``ValidationException`` as AWS words it when ``request`` breaks the model."""
    problems: list[str] = []
    _check(operation(action).input_shape, request, "", problems)
    if problems:
        count = len(problems)
        noun = "error" if count == 1 else "errors"
        raise SsmError("ValidationException", f"{count} validation {noun} detected: " + "; ".join(problems))
