# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""SSM Parameter Store calls and small helpers shared by deploy_lock and release_record.

PRIVATE to the mlops.deploy collection (the leading ``_`` says so): no stability
promise to other collections.

``ParameterStore`` is the only place that calls AWS: each method is one API call
with ``aws_retry=True`` (or one paginated listing, retried whole) on a client wrapped by
``AWSRetry.jittered_backoff`` (``ParameterStore.connect`` makes it), and it
answers with plain dicts; the error codes that are answers rather than failures
(ParameterNotFound, ParameterAlreadyExists) become return values.
"""

from __future__ import annotations

import getpass
import os
import re
import socket
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code

# A standard-tier parameter value holds at most 4 KB.
STANDARD_VALUE_MAX = 4096
HISTORY_PAGE_MAX = 50  # GetParameterHistory's MaxResults limit
_NAME_PART = re.compile(r"^[A-Za-z0-9_.-]+$")
_PARAMETER_NAME = re.compile(r"^/?[A-Za-z0-9_./-]+$")


class ParameterError(Exception):
    """A failure to report as it is: the message says what is wrong and what to do."""


# ---------------------------------------------------------------- names, time


def check_name_part(value: str, what: str) -> str:
    """One part of a parameter path (an environment, an endpoint)."""
    if not value or not _NAME_PART.match(value):
        raise ParameterError(
            "%s %r cannot be part of an SSM parameter name: use letters, digits, '.', '-' and '_' only" % (what, value)
        )
    return value


def check_parameter_name(name: str) -> str:
    if not name or not _PARAMETER_NAME.match(name) or "//" in name or len(name) > 1011:
        raise ParameterError(
            "%r is not a valid SSM parameter name: a path like /mlops/prod/deploy-lock of letters, digits "
            "and . - _ /" % (name,)
        )
    lowered = name.lower().lstrip("/")
    if lowered.startswith(("aws", "ssm")):
        raise ParameterError("SSM parameter names cannot start with 'aws' or 'ssm': %s" % name)
    return name


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso_utc(moment: datetime, milliseconds: bool = False) -> str:
    """``2026-11-21T10:00:00Z`` (UTC), or ``2026-11-21T10:00:00.123Z`` with ``milliseconds``."""
    moment = moment.astimezone(timezone.utc)
    if milliseconds:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (moment.microsecond // 1000)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text) -> datetime | None:
    """A datetime from ISO 8601 text (naive means UTC), or None when it is not one."""
    if isinstance(text, datetime):
        return text if text.tzinfo else text.replace(tzinfo=timezone.utc)
    if not isinstance(text, str) or not text:
        return None
    value = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def human_age(seconds: float) -> str:
    """``45s``, ``12m 5s``, ``3h 2m``, ``2d 4h``."""
    seconds = int(max(0, seconds))
    if seconds < 60:
        return "%ds" % seconds
    if seconds < 3600:
        return "%dm %ds" % (seconds // 60, seconds % 60)
    if seconds < 86400:
        return "%dh %dm" % (seconds // 3600, seconds % 3600 // 60)
    return "%dd %dh" % (seconds // 86400, seconds % 86400 // 3600)


def default_identity() -> str:
    """``user@host`` of the process (what a CI runner is when nothing better is given)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry for the uid (containers)
        user = "uid%d" % os.getuid()
    return "%s@%s" % (user, socket.gethostname())


def check_value_size(name: str, value: str, what: str) -> None:
    size = len(value.encode("utf-8"))
    if size > STANDARD_VALUE_MAX:
        raise ParameterError(
            "the %s for %s is %d bytes, over the %d bytes a standard SSM parameter value holds; "
            "shorten it (fewer or shorter digests, a shorter extra)" % (what, name, size, STANDARD_VALUE_MAX)
        )


# ---------------------------------------------------------------- the calls


def _parameter(raw: dict) -> dict:
    """The fields of a Parameter / ParameterHistory item that the modules use."""
    return {
        "name": raw.get("Name"),
        "value": raw.get("Value"),
        "version": raw.get("Version"),
        "last_modified": parse_iso(raw.get("LastModifiedDate")),
        "last_modified_user": raw.get("LastModifiedUser"),
    }


class ParameterStore:
    """SSM parameters through a boto3 ``ssm`` client wrapped with AWSRetry: single calls
    with ``aws_retry=True``, listings through boto3's paginators, each retried whole."""

    def __init__(self, client: Any, retry: Callable[[Callable], Callable] | None = None) -> None:
        self.client = client
        self._retry = retry or (lambda function: function)

    @classmethod
    def connect(cls, client: Callable[..., Any]) -> ParameterStore:
        """From a client factory ``client(service, retry_decorator=...)`` (``AnsibleAWSModule.client``)."""
        from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

        retry = AWSRetry.jittered_backoff(retries=10)
        return cls(client("ssm", retry_decorator=retry), retry)

    def get(self, name: str) -> dict | None:
        """The parameter's latest version, or None when it does not exist."""
        try:
            response = self.client.get_parameter(Name=name, aws_retry=True)
        except is_boto3_error_code("ParameterNotFound"):
            return None
        return _parameter(response["Parameter"])

    def create(self, name: str, value: str, description: str) -> int | None:
        """Create the parameter if it does not exist (Overwrite=False): its version, or None
        when it already existed - SSM decides atomically, so one caller of many wins."""
        try:
            response = self.client.put_parameter(
                Name=name, Value=value, Type="String", Overwrite=False, Description=description, aws_retry=True
            )
        except is_boto3_error_code("ParameterAlreadyExists"):
            return None
        return response.get("Version")

    def put(self, name: str, value: str, description: str) -> int:
        """Create or overwrite; the new version."""
        response = self.client.put_parameter(
            Name=name, Value=value, Type="String", Overwrite=True, Description=description, aws_retry=True
        )
        return response.get("Version")

    def delete(self, name: str) -> bool:
        """Delete; False when it was already gone."""
        try:
            self.client.delete_parameter(Name=name, aws_retry=True)
        except is_boto3_error_code("ParameterNotFound"):
            return False
        return True

    def history(self, name: str) -> list[dict]:
        """Every version still held (SSM keeps the last 100), in the API's order (oldest
        first); none for a parameter that does not exist."""

        def listing() -> list[dict]:
            pages = self.client.get_paginator("get_parameter_history").paginate(
                Name=name, PaginationConfig={"PageSize": HISTORY_PAGE_MAX}
            )
            try:
                return pages.build_full_result().get("Parameters", [])
            except is_boto3_error_code("ParameterNotFound"):
                return []

        return [_parameter(raw) for raw in self._retry(listing)()]

    def names_under(self, path: str) -> list[str]:
        """Names of the parameters directly under ``path`` (one level)."""

        def listing() -> list[dict]:
            pages = self.client.get_paginator("get_parameters_by_path").paginate(
                Path=path, Recursive=False, PaginationConfig={"PageSize": 10}
            )
            return pages.build_full_result().get("Parameters", [])

        return sorted(item["Name"] for item in self._retry(listing)())
