"""Run Command status rules as plain functions: rates, invocation and command status.

Sources: botocore's SSM model (the enums and their documentation) and the AWS user guide
"Understanding command statuses". Where AWS documents the rule, it is followed here:

- An invocation's ``StatusDetails`` is the fine-grained state; its ``Status`` is one of
  the API enum (``Pending InProgress Delayed Success Cancelled TimedOut Failed Cancelling``):
  Delivery/Execution Timed Out -> ``TimedOut``; Undeliverable -> ``Failed`` (as AWS
  returns it, with ResponseCode -1); Terminated (stopped because the command exceeded
  MaxErrors) -> ``Cancelled``.
- Errors are Failed and Execution Timed Out invocations; they count against MaxErrors.
  Delivery timeouts and Undeliverable do not.
- MaxErrors N: when the (N+1)th error arrives no further invocation is sent; those not
  yet started end Terminated, those running finish.
- Command: Success when every invocation ended and MaxErrors was not exceeded ("this
  status does not mean the command was successfully processed on all targets"): details
  ``Success`` when all succeeded, ``Incomplete`` otherwise. Failed / TimedOut when more
  invocations than MaxErrors failed / timed out. ``NoInstancesInTag`` for tag targets that
  matched nothing.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable

# StatusDetails of an invocation -> its Status.
INVOCATION_STATUS = {
    "Pending": "Pending",
    "InProgress": "InProgress",
    "Delayed": "Delayed",
    "Success": "Success",
    "Failed": "Failed",
    "DeliveryTimedOut": "TimedOut",
    "ExecutionTimedOut": "TimedOut",
    "Cancelling": "Cancelling",
    "Cancelled": "Cancelled",
    "Undeliverable": "Failed",
    "Terminated": "Cancelled",
}
TERMINAL = frozenset(
    {"Success", "Failed", "DeliveryTimedOut", "ExecutionTimedOut", "Cancelled", "Undeliverable", "Terminated"}
)
NOT_STARTED = frozenset({"Pending", "Delayed"})
ERRORS = frozenset({"Failed", "ExecutionTimedOut"})

# Plugin statuses have no Delayed/Cancelling (CommandPluginStatus enum).
PLUGIN_STATUS = {**INVOCATION_STATUS, "Delayed": "Pending", "Cancelling": "InProgress"}

# Status filter values ListCommands / ListCommandInvocations accept (botocore model docs).
COMMAND_FILTER_STATUSES = frozenset(
    {
        "Pending",
        "InProgress",
        "Success",
        "Cancelled",
        "Failed",
        "TimedOut",
        "AccessDenied",
        "DeliveryTimedOut",
        "ExecutionTimedOut",
        "Incomplete",
        "NoInstancesInTag",
        "LimitExceeded",
    }
)
INVOCATION_FILTER_STATUSES = frozenset(
    {
        "Pending",
        "InProgress",
        "Delayed",
        "Success",
        "Cancelled",
        "Failed",
        "TimedOut",
        "AccessDenied",
        "DeliveryTimedOut",
        "ExecutionTimedOut",
        "Undeliverable",
        "InvalidPlatform",
        "Terminated",
    }
)


def concurrency_limit(value: str, targets: int) -> int:
    """MaxConcurrency as a number of invocations running at once (a percentage rounds up, at least 1)."""
    if value.endswith("%"):
        return max(1, math.ceil(targets * int(value[:-1]) / 100))
    return max(1, int(value))


def error_limit(value: str, targets: int) -> int:
    """MaxErrors as the number of errors allowed (10% of 50 targets allows 5; the 6th stops the command)."""
    if value.endswith("%"):
        return math.floor(targets * int(value[:-1]) / 100)
    return int(value)


def error_count(details: Iterable[str]) -> int:
    return sum(1 for d in details if d in ERRORS)


def limit_exceeded(details: Iterable[str], limit: int) -> bool:
    return error_count(details) > limit


def command_status(
    details: list[str], limit: int, *, cancel_requested: bool = False, no_targets: bool = False
) -> tuple[str, str]:
    """(Status, StatusDetails) of a command from the StatusDetails of its invocations."""
    if no_targets:
        return ("Success", "NoInstancesInTag")
    counts = Counter(details)
    open_ = [d for d in details if d not in TERMINAL]
    if open_:
        if cancel_requested or counts["Cancelling"]:
            return ("Cancelling", "Cancelling")
        if all(d == "Pending" for d in details):
            return ("Pending", "Pending")
        if all(d == "Delayed" for d in open_) and not any(d in TERMINAL for d in details):
            return ("InProgress", "Delayed")
        return ("InProgress", "InProgress")
    if cancel_requested and counts["Cancelled"]:
        return ("Cancelled", "Cancelled")
    errors = counts["Failed"] + counts["ExecutionTimedOut"]
    if errors > limit:
        if counts["ExecutionTimedOut"] > counts["Failed"]:
            return ("TimedOut", "ExecutionTimedOut")
        return ("Failed", "Failed")
    if counts["DeliveryTimedOut"] > limit:
        return ("TimedOut", "DeliveryTimedOut")
    counted = [d for d in details if d != "Undeliverable"]
    if counted and all(d == "Success" for d in counted):
        return ("Success", "Success")
    return ("Success", "Incomplete")


def command_counts(details: list[str]) -> dict[str, int]:
    counts = Counter(details)
    return {
        "CompletedCount": sum(n for d, n in counts.items() if d in TERMINAL),
        "ErrorCount": counts["Failed"] + counts["ExecutionTimedOut"],
        "DeliveryTimedOutCount": counts["DeliveryTimedOut"],
    }


def invocation_details(plugin_details: list[str]) -> str:
    """An invocation's StatusDetails from its plugins' once all of them ended."""
    for worst in ("Cancelled", "ExecutionTimedOut", "Failed"):
        if worst in plugin_details:
            return worst
    return "Success"


def matches_status_filter(status: str, details: str, wanted: str) -> bool:
    """ListCommands/ListCommandInvocations Status filter: a Status or a StatusDetails value."""
    return wanted in (status, details)
