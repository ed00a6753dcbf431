"""IAM policy evaluation, as AWS does it for the parts the collection's policies use.

``allows(documents, action, resource, context)``: an explicit ``Deny`` wins, then any
``Allow`` whose Action/NotAction, Resource/NotResource and Condition all match; nothing
matching is an implicit deny. Actions match case-insensitively with ``*``/``?``
wildcards, resources case-sensitively. Conditions: the String*, Arn* and Bool operators,
with ``IfExists``, and ``ForAnyValue:``/``ForAllValues:`` over list values; a key absent
from the context fails every operator but the negated ones (as on AWS).
``trusts(document, principal, action, context)`` does the same for a role's trust policy,
matching ``Principal`` (``AWS``, ``Service``, ``Federated``).

Not moto's enforcement, which scopes resources for a few services only: this is the
evaluation the IAM proof relies on, tested on its own (sandbox/tests/test_iam.py).
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Iterable


def _as_list(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


@functools.lru_cache(maxsize=4096)
def _glob(pattern: str, case: bool) -> re.Pattern:
    return re.compile(fnmatch.translate(pattern), 0 if case else re.IGNORECASE)


def wildcard_match(pattern: str, value: str, case_sensitive: bool = True) -> bool:
    """IAM's ``*`` (any run) and ``?`` (one character); no character classes."""
    escaped = pattern.replace("[", "[[]")
    return bool(_glob(escaped, case_sensitive).match(value))


def _string_op(op: str, want: str, have: str) -> bool:
    if op in ("StringEquals", "ArnEquals"):
        return want == have
    if op == "StringEqualsIgnoreCase":
        return want.lower() == have.lower()
    if op in ("StringLike", "ArnLike"):
        return wildcard_match(want, have)
    if op == "Bool":
        return want.lower() == str(have).lower()
    raise ValueError(f"condition operator {op} is not supported by this evaluator")


NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotLike": "StringLike",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
}


def _condition_holds(operator: str, key: str, wanted, context: dict) -> bool:
    qualifier = ""
    if ":" in operator and operator.split(":", 1)[0] in ("ForAnyValue", "ForAllValues"):
        qualifier, operator = operator.split(":", 1)
    if_exists = operator.endswith("IfExists")
    operator = operator.removesuffix("IfExists")
    present = key in context
    if not present:
        return if_exists or operator in NEGATED or qualifier == "ForAllValues"
    have_values = [str(v) for v in _as_list(context[key])]
    wants = [str(w) for w in _as_list(wanted)]
    negated = operator in NEGATED
    base = NEGATED.get(operator, operator)

    def one(have: str) -> bool:
        hit = any(_string_op(base, w, have) for w in wants)
        return not hit if negated else hit

    if qualifier == "ForAllValues":
        return all(one(h) for h in have_values)
    if qualifier == "ForAnyValue" or len(have_values) != 1:
        return any(one(h) for h in have_values)
    return one(have_values[0])


def conditions_hold(condition: dict | None, context: dict) -> bool:
    for operator, keys in (condition or {}).items():
        for key, wanted in keys.items():
            if not _condition_holds(operator, key, wanted, context):
                return False
    return True


def _statements(documents: Iterable[dict]) -> list[dict]:
    return [s for doc in documents for s in _as_list(doc.get("Statement"))]


def _action_matches(statement: dict, action: str) -> bool:
    if "NotAction" in statement:
        return not any(wildcard_match(p, action, False) for p in _as_list(statement["NotAction"]))
    return any(wildcard_match(p, action, False) for p in _as_list(statement.get("Action")))


def _resource_matches(statement: dict, resource: str) -> bool:
    if "NotResource" in statement:
        return not any(wildcard_match(p, resource) for p in _as_list(statement["NotResource"]))
    return any(p == "*" or wildcard_match(p, resource) for p in _as_list(statement.get("Resource")))


def matching(documents: Iterable[dict], action: str, resource: str, context: dict | None = None) -> list[dict]:
    """The statements that apply to (action, resource) in this context."""
    context = context or {}
    return [
        s
        for s in _statements(documents)
        if _action_matches(s, action)
        and _resource_matches(s, resource)
        and conditions_hold(s.get("Condition"), context)
    ]


def allows(documents: Iterable[dict], action: str, resource: str, context: dict | None = None) -> bool:
    found = matching(list(documents), action, resource, context)
    if any(s.get("Effect") == "Deny" for s in found):
        return False
    return any(s.get("Effect") == "Allow" for s in found)


def _principal_matches(statement: dict, principal: dict[str, str]) -> bool:
    declared = statement.get("Principal")
    if declared == "*":
        return True
    if not isinstance(declared, dict):
        return False
    return any(wildcard_match(p, value) for kind, value in principal.items() for p in _as_list(declared.get(kind)))


def trusts(document: dict, principal: dict[str, str], action: str, context: dict | None = None) -> bool:
    """Whether a trust policy lets ``principal`` (e.g. ``{"Federated": <provider arn>}``) take ``action``."""
    context = context or {}
    found = [
        s
        for s in _statements([document])
        if _principal_matches(s, principal)
        and _action_matches(s, action)
        and conditions_hold(s.get("Condition"), context)
    ]
    if any(s.get("Effect") == "Deny" for s in found):
        return False
    return any(s.get("Effect") == "Allow" for s in found)
