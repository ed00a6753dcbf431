# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The release record of an environment's endpoint, kept in one SSM parameter whose
history is the audit trail.

PRIVATE to the mlops.deploy collection (the leading ``_`` says so): no stability
promise to other collections. Used by ``release_record`` and ``release_record_info``.

Each deploy writes the parameter ``/mlops/<env>/releases/<endpoint>`` with a JSON
record; SSM keeps its last 100 versions with their time and IAM writer, which
answers "what ran in prod last Tuesday" and "what do we roll back to".
"""

from __future__ import annotations

import json
import re

from ansible_collections.mlops.deploy.plugins.module_utils._cloudwatch_logs import LogsError, parse_time
from ansible_collections.mlops.deploy.plugins.module_utils._ssm_parameters import (
    ParameterError,
    check_name_part,
    check_parameter_name,
    check_value_size,
    iso_utc,
    parse_iso,
    utcnow,
)

DESCRIPTION = "mlops.deploy release record (its history is the release audit trail)"
RESULTS = ("success", "failed")
# What makes two records the same release event; deployed_by/deployed_at are when and
# by whom it was first recorded.
CONTENT_KEYS = ("release_id", "bundle", "bundle_sha256", "manifest_sha256", "digests", "result", "extra")
RECORD_KEYS = CONTENT_KEYS + ("deployed_by", "deployed_at")
_RELEASE_ID = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_DIGEST = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_S3_URL = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/\S+$")


def record_path(env: str, prefix: str = "/mlops") -> str:
    return "%s/%s/releases" % (prefix.rstrip("/"), check_name_part(env, "env"))


def record_name(env: str | None = None, endpoint: str | None = None, name: str | None = None) -> str:
    """``/mlops/<env>/releases/<endpoint>``, or ``name`` as given."""
    if name:
        return check_parameter_name(name)
    return check_parameter_name("%s/%s" % (record_path(env), check_name_part(endpoint, "endpoint")))


# ------------------------------------------------------------------ writing


def check_release_id(release_id: str) -> str:
    if not release_id or not _RELEASE_ID.match(release_id):
        raise ParameterError(
            "release_id %r must be 1 to 128 letters, digits, '.', '-' or '_' (it names S3 keys and "
            "travels in SSM ExtraVariables)" % (release_id,)
        )
    return release_id


def build_record(
    release_id: str,
    bundle: str | None = None,
    bundle_sha256: str | None = None,
    manifest_sha256: str | None = None,
    digests: dict | None = None,
    result: str = "success",
    deployed_by: str | None = None,
    extra: dict | None = None,
    now=None,
) -> dict:
    """A checked record; raises ParameterError naming the field to fix."""
    check_release_id(release_id)
    if bundle is not None and not _S3_URL.match(bundle):
        raise ParameterError("bundle %r is not an s3://<bucket>/<key> URL" % (bundle,))
    for field, value in (("bundle_sha256", bundle_sha256), ("manifest_sha256", manifest_sha256)):
        if value is not None and not _SHA256.match(value):
            raise ParameterError("%s must be 64 lowercase hexadecimal characters, not %r" % (field, value))
    for service, image in sorted((digests or {}).items()):
        if not isinstance(image, str) or not _DIGEST.match(image):
            raise ParameterError(
                "digests.%s is %r, not an image pinned to a digest (<repository>@sha256:<64 hex>); record "
                "what ran, not a tag" % (service, image)
            )
    if result not in RESULTS:
        raise ParameterError("result must be one of %s, not %r" % (", ".join(RESULTS), result))
    return {
        "release_id": release_id,
        "bundle": bundle,
        "bundle_sha256": bundle_sha256,
        "manifest_sha256": manifest_sha256,
        "digests": dict(sorted((digests or {}).items())),
        "result": result,
        "extra": extra or {},
        "deployed_by": deployed_by,
        "deployed_at": iso_utc(now or utcnow()),
    }


def encode(record: dict) -> str:
    return json.dumps({key: record.get(key) for key in RECORD_KEYS}, sort_keys=True, separators=(",", ":"))


def same_release(a: dict | None, b: dict | None) -> bool:
    """Whether two records describe the same release event (who and when aside)."""
    if not a or not b or not a.get("valid", True):
        return False
    return all(_normal(key, a.get(key)) == _normal(key, b.get(key)) for key in CONTENT_KEYS)


def _normal(key: str, value) -> str:
    if value is None and key in ("digests", "extra"):
        value = {}
    return json.dumps(value, sort_keys=True)


# ------------------------------------------------------------------ reading


def entry(item: dict) -> dict:
    """A history entry from a ParameterStore item: the record's fields, plus the SSM
    version, when (``modified_at``) and by which IAM identity (``modified_by``) it was written."""
    base = {
        "version": item.get("version"),
        "modified_at": iso_utc(item["last_modified"], milliseconds=True) if item.get("last_modified") else None,
        "modified_by": item.get("last_modified_user"),
    }
    try:
        data = json.loads(item.get("value") or "")
    except ValueError:
        data = None
    if not isinstance(data, dict) or not data.get("release_id"):
        return dict(base, valid=False, raw=item.get("value"))
    record = {key: data.get(key) for key in RECORD_KEYS}
    return dict(base, valid=True, **record)


def newest_first(items: list[dict]) -> list[dict]:
    """History entries ordered by SSM version, newest first (the API lists oldest first)."""
    return sorted((entry(item) for item in items), key=lambda e: e.get("version") or 0, reverse=True)


def entry_time_ms(item: dict) -> int | None:
    moment = parse_iso(item.get("modified_at")) or parse_iso(item.get("deployed_at"))
    return int(moment.timestamp() * 1000) if moment else None


def previous_release(history: list[dict]) -> dict | None:
    """What a rollback goes back to: the newest successful record older than the current
    one with another release id (after a failed deploy, the last release that worked)."""
    if not history:
        return None
    current_id = history[0].get("release_id")
    for item in history[1:]:
        if item.get("valid") and item.get("result") == "success" and item.get("release_id") != current_id:
            return item
    return None


def last_successful(history: list[dict]) -> dict | None:
    return next((item for item in history if item.get("valid") and item.get("result") == "success"), None)


def find_release(history: list[dict], release_id: str) -> dict | None:
    """The newest record of ``release_id`` (a successful one when there is one)."""
    matches = [item for item in history if item.get("valid") and item.get("release_id") == release_id]
    return next((item for item in matches if item.get("result") == "success"), matches[0] if matches else None)


def running_at(history: list[dict], at_ms: int) -> dict | None:
    """The record that was current at ``at_ms`` (the newest one written at or before it)."""
    return next((item for item in history if (entry_time_ms(item) or 0) <= at_ms), None)


def in_window(history: list[dict], since_ms: int | None, until_ms: int | None) -> list[dict]:
    """Entries written in [since, until)."""
    kept = []
    for item in history:
        moment = entry_time_ms(item)
        if moment is None:
            continue
        if (since_ms is None or moment >= since_ms) and (until_ms is None or moment < until_ms):
            kept.append(item)
    return kept


def to_ms(value, what: str) -> int | None:
    try:
        return parse_time(value)
    except LogsError as exc:
        raise ParameterError("%s: %s" % (what, exc)) from None


def summarize(name: str, items: list[dict], release_id=None, at=None, since=None, until=None) -> dict:
    """What release_record_info returns for one endpoint's parameter."""
    history = newest_first(items)
    since_ms, until_ms, at_ms = to_ms(since, "since"), to_ms(until, "until"), to_ms(at, "at")
    summary = {
        "name": name,
        "endpoint": name.rstrip("/").rsplit("/", 1)[-1],
        "current": history[0] if history else None,
        "previous": previous_release(history),
        "last_successful": last_successful(history),
        "history": in_window(history, since_ms, until_ms),
        "versions": len(history),
    }
    if release_id is not None:
        summary["release"] = find_release(history, release_id)
    elif at_ms is not None:
        summary["release"] = running_at(history, at_ms)
    return summary


class ReleaseRecorder:
    """Write and read release records through a ParameterStore."""

    def __init__(self, store):
        self.store = store

    def record(self, name: str, record: dict, check_mode: bool = False) -> dict:
        current_item = self.store.get(name)
        current = entry(current_item) if current_item else None
        value = encode(record)
        check_value_size(name, value, "release record")
        if same_release(current, record):
            return {
                "changed": False,
                "record": current,
                "before": current,
                "msg": "%s already records release %s (%s)" % (name, record["release_id"], record["result"]),
            }
        if check_mode:
            written = dict(record, version=None, modified_at=None, modified_by=None, valid=True)
        else:
            version = self.store.put(name, value, DESCRIPTION)
            written = dict(record, version=version, modified_at=record["deployed_at"], modified_by=None, valid=True)
        return {
            "changed": True,
            "record": written,
            "before": current,
            "msg": "%s %s release %s (%s)"
            % ("would record in" if check_mode else "recorded in", name, record["release_id"], record["result"]),
        }

    def query(self, names: list[str], **selection) -> list[dict]:
        return [summarize(name, self.store.history(name), **selection) for name in names]
