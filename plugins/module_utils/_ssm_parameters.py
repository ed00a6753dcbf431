# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""SSM Parameter Store calls and small helpers shared by deploy_lock and release_record.

PRIVATE to the mlops.deploy collection (the leading ``_`` says so): no stability
promise to other collections.

``ParameterStore`` is the only place that calls AWS: each method is one API call
(or one paginated listing) with ``aws_retry=True`` on a client wrapped by
``AWSRetry.jittered_backoff`` (AnsibleAWSModule.client does the wrapping), and it
answers with plain dicts; the error codes that are answers rather than failures
(ParameterNotFound, ParameterAlreadyExists) become return values.
"""

from __future__ import annotations

import getpass
import os
import re
import socket
from datetime import UTC, datetime

# A standard-tier parameter value holds at most 4 KB.
STANDARD_VALUE_MAX = 4096
HISTORY_PAGE_MAX = 50  # GetParameterHistory's MaxResults limit
_NAME_PART = re.compile(r"^[A-Za-z0-9_.-]+$")
_PARAMETER_NAME = re.compile(r"^/?[A-Za-z0-9_./-]+$")


class ParameterError(Exception):
    """A failure to report as it is: the message says what is wrong and what to do."""


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ClientError (None for anything else)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return (response.get("Error") or {}).get("Code")
    return None


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
    return datetime.now(UTC)


def iso_utc(moment: datetime, milliseconds: bool = False) -> str:
    """``2026-11-21T10:00:00Z`` (UTC), or ``2026-11-21T10:00:00.123Z`` with ``milliseconds``."""
    moment = moment.astimezone(UTC)
    if milliseconds:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (moment.microsecond // 1000)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text) -> datetime | None:
    """A datetime from ISO 8601 text (naive means UTC), or None when it is not one."""
    if isinstance(text, datetime):
        return text if text.tzinfo else text.replace(tzinfo=UTC)
    if not isinstance(text, str) or not text:
        return None
    value = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


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
    """SSM parameters through a boto3 ``ssm`` client wrapped with AWSRetry."""

    def __init__(self, client):
        self.client = client

    def get(self, name: str) -> dict | None:
        """The parameter's latest version, or None when it does not exist."""
        try:
            response = self.client.get_parameter(Name=name, aws_retry=True)
        except Exception as exc:  # only ParameterNotFound is an answer
            if error_code(exc) == "ParameterNotFound":
                return None
            raise
        return _parameter(response["Parameter"])

    def create(self, name: str, value: str, description: str) -> int | None:
        """Create the parameter if it does not exist (Overwrite=False): its version, or None
        when it already existed - SSM decides atomically, so one caller of many wins."""
        try:
            response = self.client.put_parameter(
                Name=name, Value=value, Type="String", Overwrite=False, Description=description, aws_retry=True
            )
        except Exception as exc:  # only ParameterAlreadyExists is an answer
            if error_code(exc) == "ParameterAlreadyExists":
                return None
            raise
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
        except Exception as exc:  # only ParameterNotFound is an answer
            if error_code(exc) == "ParameterNotFound":
                return False
            raise
        return True

    def history(self, name: str) -> list[dict]:
        """Every version still held (SSM keeps the last 100), in the API's order (oldest first)."""
        items: list[dict] = []
        for page in history_pages(self.client.get_parameter_history, name):
            items.extend(_parameter(raw) for raw in page)
        return items

    def names_under(self, path: str) -> list[str]:
        """Names of the parameters directly under ``path`` (one level)."""
        names: list[str] = []
        params = {"Path": path, "Recursive": False, "MaxResults": 10}
        while True:
            response = self.client.get_parameters_by_path(aws_retry=True, **params)
            names.extend(item["Name"] for item in response.get("Parameters", []))
            token = response.get("NextToken")
            if not token or token == params.get("NextToken"):
                return sorted(names)
            params["NextToken"] = token


def history_pages(fetch, name: str):
    """Pages (lists of raw items) of GetParameterHistory, following NextToken to the end.

    A ParameterNotFound answer is an empty history.
    """
    params = {"Name": name, "MaxResults": HISTORY_PAGE_MAX}
    while True:
        try:
            response = fetch(aws_retry=True, **params)
        except Exception as exc:  # only ParameterNotFound is an answer
            if error_code(exc) == "ParameterNotFound":
                return
            raise
        yield response.get("Parameters", [])
        token = response.get("NextToken")
        if not token or token == params.get("NextToken"):
            return
        params["NextToken"] = token
