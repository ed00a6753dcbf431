"""Every AWS call the sandbox answers, with the calling identity: one JSON line per call.

Each component that answers AWS calls records them here: moto (``moto_record.py``, a
WSGI middleware around moto's app), the SSM service (the Run Command and ECR image
actions it answers itself; what it forwards to moto is recorded by moto, once) and the
registry standing in for ECR (``registry_proxy.py``: docker pulls and pushes as the ECR
actions they are). Tests read the log to prove IAM policies against what really ran
(``iam_actions.py`` maps an entry to the IAM actions and resources AWS would evaluate).

The interface (stable; other components record through it)::

    record(config, *, source, service, operation, access_key, principal=None, account=None,
           region=None, resources=(), status=200, error=None, detail=None) -> dict
    read(config, since=None, *, resolve=True) -> list[dict]   # oldest first
    clear(config)                                             # empties the log (in place)
    identity_of(config, access_key) -> dict | None            # {"principal", "account"}
    remember_identity(config, access_key, principal, account) # the look-up table read() uses
    scope_of(authorization) -> Scope | None                   # SigV4 Credential=AKID/date/region/service/aws4_request

``<state_dir>/calls.jsonl`` holds one object per line:

- ``ts`` (epoch seconds, float) and ``time`` (ISO 8601, UTC);
- ``source``: ``moto`` | ``ssm`` | ``registry`` | another component's name;
- ``service``: the IAM service prefix (= SigV4 signing name): ``s3``, ``ssm``, ``ecr``, ``logs``...;
- ``operation``: the API operation (``ListObjectsV2``, ``SendCommand``, ``BatchGetImage``...);
- ``access_key``: the SigV4 access key id of the request (None when unsigned);
- ``principal``: the caller's ARN -- an IAM user ``arn:aws:iam::<acct>:user/<name>``, or an
  STS session ``arn:aws:sts::<acct>:assumed-role/<role>/<session>`` -- when known at record
  time (moto resolves it from its IAM/STS backends); ``read`` fills it in from the identity
  table otherwise; None for an unknown key (the sandbox's default ``testing`` key);
- ``account``, ``region``: the caller's account and the request's region (SigV4 scope);
- ``resources``: the ARNs the call acts on, where derivable (S3 bucket/object, SSM
  parameter or document, ECR repository, log group/stream, IAM role, ECS cluster/task
  definition, EC2 instance...). Where an operation acts on resources in different roles,
  the order is documented in ``iam_actions.py`` (e.g. CopyObject: destination, source);
- ``status`` (HTTP status answered) and ``error`` (the AWS error code, or None);
- ``detail`` (optional object): facts the IAM mapping needs beyond resources.

Writes are one ``write(2)`` of a whole line on a file opened ``O_APPEND`` under an
exclusive ``flock``: safe from many threads and processes at once. The sandbox's own calls
(its services talking to moto with ``INTERNAL_ACCESS_KEY``) are not AWS calls a client
made and are never recorded.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FILE = "calls.jsonl"
IDENTITIES = "identities.jsonl"
# What the sandbox's own components sign their moto calls with (control plane, log writer,
# ECR image look-ups): never recorded, so the log holds only what clients asked.
INTERNAL_ACCESS_KEY = "SANDBOXINTERNAL00000"

_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/(\d{8})/([^/,\s]+)/([^/,\s]+)/aws4_request")


@dataclass(frozen=True)
class Scope:
    """What a SigV4 ``Authorization`` header (or ``X-Amz-Credential``) says about the caller."""

    access_key: str
    date: str
    region: str
    service: str


def scope_of(authorization: str | None) -> Scope | None:
    """The credential scope of a SigV4 ``Authorization`` header or ``X-Amz-Credential`` value."""
    if not authorization:
        return None
    match = _CREDENTIAL.search(authorization)
    if match is None:
        # A presigned URL's X-Amz-Credential is the scope alone (AKID/date/region/service/aws4_request).
        parts = authorization.strip().split("/")
        if len(parts) == 5 and parts[4] == "aws4_request":
            return Scope(*parts[:4])
        return None
    return Scope(*match.groups())


def path(config) -> Path:
    return Path(config.state_dir) / FILE


def _identities_path(config) -> Path:
    return Path(config.state_dir) / IDENTITIES


def _append(file: Path, entry: dict) -> None:
    line = (json.dumps(entry, separators=(",", ":"), default=str) + "\n").encode()
    file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            os.write(fd, line)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def record(
    config,
    *,
    source: str,
    service: str,
    operation: str,
    access_key: str | None,
    principal: str | None = None,
    account: str | None = None,
    region: str | None = None,
    resources: Iterable[str] = (),
    status: int = 200,
    error: str | None = None,
    detail: dict[str, Any] | None = None,
) -> dict | None:
    """Append one call to the log; returns the entry (None for the sandbox's own calls)."""
    if access_key == INTERNAL_ACCESS_KEY:
        return None
    now = time.time()
    entry = {
        "ts": round(now, 6),
        "time": datetime.datetime.fromtimestamp(now, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "source": source,
        "service": service,
        "operation": operation,
        "access_key": access_key,
        "principal": principal,
        "account": account,
        "region": region,
        "resources": [str(r) for r in resources],
        "status": int(status),
        "error": error,
    }
    if detail:
        entry["detail"] = detail
    _append(path(config), entry)
    return entry


def _lines(file: Path) -> list[dict]:
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        return []
    out = []
    for line in raw.splitlines():
        with contextlib.suppress(ValueError):  # a line being written right now is whole or absent
            out.append(json.loads(line))
    return out


def remember_identity(config, access_key: str, principal: str | None, account: str | None) -> None:
    """Say who an access key belongs to (moto does, for every key it issues or resolves)."""
    if access_key and principal and access_key != INTERNAL_ACCESS_KEY:
        _append(_identities_path(config), {"access_key": access_key, "principal": principal, "account": account})


def identities(config) -> dict[str, dict]:
    """access key -> {"principal", "account"}, the last word on each key winning."""
    return {
        e["access_key"]: {"principal": e["principal"], "account": e.get("account")}
        for e in _lines(_identities_path(config))
    }


def identity_of(config, access_key: str | None) -> dict | None:
    """{"principal", "account"} of an access key, from the table; None when unknown."""
    if not access_key:
        return None
    return identities(config).get(access_key)


def read(config, since: float | None = None, *, resolve: bool = True) -> list[dict]:
    """The recorded calls, oldest first; ``since`` (epoch seconds) keeps the later ones.

    ``resolve`` fills ``principal``/``account`` of entries recorded without them (by the
    SSM service or the registry) from the identity table."""
    entries = _lines(path(config))
    if since is not None:
        entries = [e for e in entries if e.get("ts", 0) >= since]
    if resolve and any(e.get("principal") is None and e.get("access_key") for e in entries):
        table = identities(config)
        for entry in entries:
            known = table.get(entry.get("access_key") or "")
            if entry.get("principal") is None and known:
                entry["principal"] = known["principal"]
                entry["account"] = entry.get("account") or known["account"]
    entries.sort(key=lambda e: e.get("ts", 0))
    return entries


def clear(config) -> None:
    """Empty the log in place (writers holding it open keep appending to the same file)."""
    file = path(config)
    with contextlib.suppress(FileNotFoundError):
        fd = os.open(file, os.O_WRONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
