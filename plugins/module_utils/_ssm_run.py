# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The rules of ssm_run_playbook, as plain values in and plain values out.

PRIVATE to the mlops.deploy collection (the leading ``_`` says so): no stability
promise to other collections. Used by the ``ssm_run_playbook`` module and action
plugin through ``_ssm_rollout``, which is the only part that talks to AWS.

What is here: target resolution rules, batch planning, the parameters of
AWS-ApplyAnsiblePlaybooks (ExtraVariables and SourceInfo included), status folding
(every status and StatusDetails AWS has), the adaptive poll schedule, PLAY RECAP
parsing and the messages a user reads. Shapes and enums follow botocore's SSM model
(botocore/data/ssm/2014-11-06/service-2.json).
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from urllib.parse import quote, urlparse

# --------------------------------------------------------------------- AWS limits

# SendCommand: InstanceIds (and the values of one Targets entry) hold at most 50.
SEND_INSTANCE_IDS_MAX = 50
# ListCommands / ListCommandInvocations: MaxResults 1..50.
LIST_PAGE_MAX = 50
# DescribeInstanceInformation: MaxResults 5..50, a filter holds at most 100 values.
DESCRIBE_INFO_PAGE_MAX = 50
DESCRIBE_INFO_FILTER_VALUES_MAX = 50
# SendCommand TimeoutSeconds (the delivery timeout): 30..2592000.
DELIVERY_TIMEOUT_MIN = 30
DELIVERY_TIMEOUT_MAX = 2592000
COMMENT_MAX = 100

DEFAULT_DOCUMENT = "AWS-ApplyAnsiblePlaybooks"
ANSIBLE_STEP = "runShellScript"

# Patterns from botocore's SSM model and from the AWS-ApplyAnsiblePlaybooks document.
INSTANCE_ID = re.compile(r"(^i-(\w{8}|\w{17})$)|(^mi-\w{17}$)", re.ASCII)
MAX_CONCURRENCY = re.compile(r"^([1-9][0-9]*|[1-9][0-9]%|[1-9]%|100%)$")
MAX_ERRORS = re.compile(r"^([1-9][0-9]*|[0]|[1-9][0-9]%|[0-9]%|100%)$")
DOCUMENT_NAME = re.compile(r"^[a-zA-Z0-9_\-.:/]{3,128}$")
# AWS-ApplyAnsiblePlaybooks, parameter ExtraVariables, allowedPattern (current version;
# older versions of the document have no quoted form at all).
EXTRA_VARIABLES_ALLOWED = re.compile(
    r"^$|^\w+\=(([^\s|:();&]+)|('[^|:();&]+'))(\s+\w+\=(([^\s|:();&]+)|('[^|:();&]+')))*$", re.ASCII
)
# AWS-ApplyAnsiblePlaybooks, parameter PlaybookFile, allowedPattern.
PLAYBOOK_FILE_ALLOWED = re.compile(r"[(a-z_A-Z0-9\-\.)/]+(.yml|.yaml)$")
EXTRA_VAR_NAME = re.compile(r"^\w+$", re.ASCII)
# Refused inside an ExtraVariables value: what AWS's pattern refuses (white space,
# | : ; & ( )), and what the document's shell line (-e "{{ExtraVariables}}") would
# interpret or Ansible's key=value parser would choke on (" ' ` $ \).
EXTRA_VALUE_FORBIDDEN = re.compile(r"[\s|:;&()\"'`$\\]")
TAG_TARGET = re.compile(r"^tag:(?P<key>[^=]+)=(?P<values>.*)$")

BUNDLE_HINT = (
    "put structured data (image URIs with tags or digests, URLs, lists, JSON) in the release "
    "bundle's vars file and pass only simple words in extra_vars"
)


class SsmRunError(Exception):
    """A failure to report to the user as it is: the message says what to fix.
    ``result``: return values that say more (the offline instances of a pre-flight)."""

    def __init__(self, msg: str, **result: object) -> None:
        super().__init__(msg)
        self.result = result


# ------------------------------------------------------------------------ targets


def check_instance_ids(instance_ids: list) -> list[str]:
    """Validated instance IDs, duplicates dropped, order kept."""
    seen = []
    bad = []
    for value in instance_ids:
        text = str(value).strip()
        if not INSTANCE_ID.match(text):
            bad.append(text)
        elif text not in seen:
            seen.append(text)
    if bad:
        raise SsmRunError(
            "not an EC2 or managed instance ID: %s (expected i-0123456789abcdef0, i-01234567 or "
            "mi-0123456789abcdef0)" % ", ".join(repr(b) for b in bad)
        )
    if not seen:
        raise SsmRunError("instance_ids is empty: give at least one instance ID")
    return seen


def parse_tag_targets(targets: list[str]) -> list[tuple[str, list[str]]]:
    """``["tag:Name=model-server", "tag:env=prod,staging"]`` -> ``[("Name", ["model-server"]), ...]``.

    Several targets must all match (AND), several values of one tag any (OR), as
    SendCommand's Targets do.
    """
    parsed = []
    for target in targets:
        match = TAG_TARGET.match(str(target).strip())
        values = [v.strip() for v in match.group("values").split(",") if v.strip()] if match else []
        if not match or not match.group("key").strip() or not values:
            raise SsmRunError(
                "cannot read the target %r: write tag:<key>=<value>[,<value>...], for example "
                "tag:Name=model-server or tag:env=prod,staging" % (target,)
            )
        parsed.append((match.group("key").strip(), values))
    if not parsed:
        raise SsmRunError("targets is empty: give at least one tag:<key>=<value>")
    return parsed


def describe_tag_targets(tag_targets: list[tuple[str, list[str]]]) -> str:
    """``tag Name=model-server and tag env=prod or staging``, for messages."""
    return " and ".join("tag %s=%s" % (key, " or ".join(values)) for key, values in tag_targets)


def ec2_filters(tag_targets: list[tuple[str, list[str]]]) -> list[dict]:
    """DescribeInstances filters for running instances with every tag target."""
    filters = [{"Name": "tag:%s" % key, "Values": list(values)} for key, values in tag_targets]
    filters.append({"Name": "instance-state-name", "Values": ["running"]})
    return filters


def ssm_targets(tag_targets: list[tuple[str, list[str]]]) -> list[dict]:
    """SendCommand's Targets for the same tag targets."""
    return [{"Key": "tag:%s" % key, "Values": list(values)} for key, values in tag_targets]


def instance_ids_from_hosts(hosts: list) -> list[str]:
    """Instance IDs from inventory hosts: hostvars (dicts) that hold ``instance_id``,
    as the amazon.aws.aws_ec2 inventory gives them."""
    ids = []
    for number, host in enumerate(hosts, start=1):
        if isinstance(host, str):
            raise SsmRunError(
                "inventory_hosts item %d is the string %r, not a host's variables: pass hostvars, for "
                "example \"{{ groups['model_servers'] | map('extract', hostvars) | list }}\"" % (number, host)
            )
        instance_id = host.get("instance_id") if hasattr(host, "get") else None
        if not instance_id:
            name = host.get("inventory_hostname", "item %d" % number) if hasattr(host, "get") else number
            raise SsmRunError(
                "inventory host %s has no instance_id variable; use the amazon.aws.aws_ec2 inventory "
                "(which sets it) or set instance_id for that host" % (name,)
            )
        ids.append(instance_id)
    if not ids:
        raise SsmRunError("inventory_hosts is empty: the group holds no host")
    return check_instance_ids(ids)


def running_instance_ids(reservations: list[dict]) -> list[str]:
    """Instance IDs from DescribeInstances reservations, order kept."""
    ids = []
    for reservation in reservations:
        for instance in reservation.get("Instances", []):
            state = (instance.get("State") or {}).get("Name", "running")
            if state == "running" and instance["InstanceId"] not in ids:
                ids.append(instance["InstanceId"])
    return ids


def instance_names(reservations: list[dict]) -> dict[str, str]:
    """``{instance_id: Name tag}`` from DescribeInstances reservations."""
    names = {}
    for reservation in reservations:
        for instance in reservation.get("Instances", []):
            for tag in instance.get("Tags", []) or []:
                if tag.get("Key") == "Name":
                    names[instance["InstanceId"]] = tag.get("Value")
    return names


def chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


# ---------------------------------------------------------------------- pre-flight


def preflight(instance_ids: list[str], information: list[dict]) -> tuple[list[str], list[dict]]:
    """Split targets into ``(online, offline)`` from DescribeInstanceInformation.

    ``information`` is the InstanceInformationList. ``offline`` is a list of
    ``{"instance_id", "reason"}``: not managed by SSM at all, or PingStatus other
    than Online (ConnectionLost, Inactive).
    """
    by_id = {info["InstanceId"]: info for info in information}
    online, offline = [], []
    for instance_id in instance_ids:
        info = by_id.get(instance_id)
        if info is None:
            offline.append({"instance_id": instance_id, "ping_status": None, "reason": "not managed by SSM"})
        elif info.get("PingStatus") != "Online":
            offline.append(
                {
                    "instance_id": instance_id,
                    "ping_status": info.get("PingStatus"),
                    "reason": "SSM agent %s" % _ping_words(info.get("PingStatus")),
                }
            )
        else:
            online.append(instance_id)
    return online, offline


def _ping_words(status: str | None) -> str:
    return {
        "ConnectionLost": "lost its connection (PingStatus ConnectionLost)",
        "Inactive": "is inactive (PingStatus Inactive)",
    }.get(status, "is not online (PingStatus %s)" % status)


def offline_message(offline: list[dict], total: int) -> str:
    names = ", ".join("%s (%s)" % (item["instance_id"], item["reason"]) for item in offline)
    return (
        "%d of %d target instances cannot receive commands: %s. Nothing was sent. Is the instance "
        "running, the SSM agent started, and an instance profile with AmazonSSMManagedInstanceCore "
        "attached? Set skip_offline=true to run on the others and report these as skipped."
        % (len(offline), total, names)
    )


# ------------------------------------------------------------------------ batches


def _batch_size(entry: object, total: int) -> int:
    """One entry of ``batches``: a count, or a percentage of the whole fleet."""
    text = str(entry).strip()
    if isinstance(entry, bool):
        raise SsmRunError("batches entry %r is neither a count nor a percentage" % (entry,))
    if text.endswith("%"):
        number = text[:-1].strip()
        if not number.isdigit() or not 0 < int(number) <= 100:
            raise SsmRunError("batches entry %r: a percentage must be between 1%% and 100%%" % (entry,))
        # As Ansible's `serial`: the integer part of the share, at least one.
        return max(1, int(int(number) / 100.0 * total))
    if not text.isdigit() or int(text) < 1:
        raise SsmRunError(
            "batches entry %r is neither a count (1, 5) nor a percentage of the fleet ('25%%')" % (entry,)
        )
    return int(text)


def check_batches(batches: list | None) -> None:
    """Refuse a bad ``batches`` list before anything is resolved or sent."""
    for entry in batches or []:
        _batch_size(entry, 100)


def plan_batches(instance_ids: list[str], batches: list | None = None) -> list[list[str]]:
    """Split the fleet into rolling batches, the way the play keyword ``serial`` does.

    Each entry is the size of one batch: a count, or a percentage of the whole fleet
    (not of what is left), rounded down but at least one. The last entry repeats until
    every instance has a batch. ``[1, "25%", "100%"]`` on 100 instances gives 1, 25
    and 74 instances; ``[1, "25%"]`` gives 1, 25, 25, 25, 24. No entry: one batch.
    """
    ids = list(instance_ids)
    if not batches:
        return [ids] if ids else []
    sizes = [_batch_size(entry, len(ids)) for entry in batches]
    planned, start, index = [], 0, 0
    while start < len(ids):
        size = sizes[min(index, len(sizes) - 1)]
        planned.append(ids[start : start + size])
        start += size
        index += 1
    return planned


# --------------------------------------------------------------------- parameters


def format_extra_vars(extra_vars: dict | None) -> str:
    """``{"env": "prod", "release": "r42"}`` -> ``"env=prod release=r42"``, or an error
    that names the variable and says what to do.

    AWS-ApplyAnsiblePlaybooks pastes this string into ``ansible-playbook -e "..."``
    on the instance, and refuses (allowedPattern) values with white space or any of
    ``| : ; & ( )``. The quotes, ``$``, backquote and backslash are refused too: the
    shell line would expand them. Values reach the playbook as strings (booleans as
    ``true``/``false``).
    """
    if not extra_vars:
        return ""
    pairs = []
    for name, value in extra_vars.items():
        if not EXTRA_VAR_NAME.match(str(name)):
            raise SsmRunError(
                "extra_vars name %r: ExtraVariables accepts only letters, digits and _ in names" % (name,)
            )
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (int, float)):
            text = str(value)
        elif isinstance(value, str):
            text = value
        elif value is None:
            raise SsmRunError("extra_vars.%s has no value; ExtraVariables cannot carry an empty value" % name)
        else:
            kind = "list" if isinstance(value, (list, tuple)) else "dict" if isinstance(value, dict) else "structure"
            raise SsmRunError(
                "extra_vars.%s is a %s: ExtraVariables carries only simple key=value words; %s"
                % (name, kind, BUNDLE_HINT)
            )
        if text == "":
            raise SsmRunError("extra_vars.%s is empty; ExtraVariables cannot carry an empty value" % name)
        bad = sorted(set(EXTRA_VALUE_FORBIDDEN.findall(text)))
        if bad:
            shown = " ".join(_char_name(c) for c in bad)
            raise SsmRunError(
                "extra_vars.%s cannot carry %s through AWS-ApplyAnsiblePlaybooks' ExtraVariables (value %s; "
                "no white space or | : ; & ( ) and no quotes, $, ` or \\ in values); %s"
                % (name, shown, text, BUNDLE_HINT)
            )
        pairs.append("%s=%s" % (name, text))
    line = " ".join(pairs)
    if not EXTRA_VARIABLES_ALLOWED.match(line):  # the checks above are stricter; belt and braces
        raise SsmRunError("extra_vars %r do not match AWS's ExtraVariables pattern; %s" % (line, BUNDLE_HINT))
    return line


def _char_name(char: str) -> str:
    names = {" ": "a space", "\t": "a tab", "\n": "a newline"}
    return names.get(char, "white space" if char.isspace() else char)


def s3_https_url(url: str, region: str | None) -> str:
    """``s3://bucket/key`` -> ``https://bucket.s3.<region>.amazonaws.com/key`` (the form
    SourceInfo's path takes). https:// URLs are returned as they are."""
    parsed = urlparse(url)
    if parsed.scheme == "https" and parsed.netloc and parsed.path not in ("", "/"):
        return url
    if parsed.scheme != "s3" or not parsed.netloc or parsed.path in ("", "/"):
        raise SsmRunError(
            "playbook_url %r: give s3://<bucket>/<key> or an https:// URL of an S3 object, for example "
            "s3://my-releases/releases/prod/r42.zip" % (url,)
        )
    if not region:
        raise SsmRunError("playbook_url %s is an s3:// URL and no region is set; set region" % url)
    key = parsed.path.lstrip("/")
    return "https://%s.s3.%s.amazonaws.com/%s" % (parsed.netloc, region, quote(key, safe="/~-._"))


def playbook_file_for(url: str, playbook_file: str | None) -> str:
    """The PlaybookFile parameter: given, or the URL's file name for a .yml/.yaml."""
    path = urlparse(url).path
    name = path.rsplit("/", 1)[-1]
    if not playbook_file:
        if name.endswith((".yml", ".yaml")):
            playbook_file = name
        else:
            raise SsmRunError(
                "playbook_url %s is not a .yml file (a .zip bundle?): set playbook_file to the playbook's "
                "path inside the bundle, for example deploy.yml" % url
            )
    if not PLAYBOOK_FILE_ALLOWED.fullmatch(playbook_file):
        raise SsmRunError(
            "playbook_file %r: AWS-ApplyAnsiblePlaybooks takes a relative path of letters, digits, "
            "_ - . / ( ) ending in .yml or .yaml" % (playbook_file,)
        )
    return playbook_file


def ansible_parameters(
    playbook_url: str,
    region: str | None,
    playbook_file: str | None = None,
    extra_vars: dict | None = None,
    install_dependencies: bool = False,
    verbose: int = 1,
    execution_timeout: int | None = None,
    check: bool = False,
) -> dict[str, list[str]]:
    """SendCommand Parameters for AWS-ApplyAnsiblePlaybooks."""
    source = s3_https_url(playbook_url, region)
    params = {
        "SourceType": ["S3"],
        "SourceInfo": [json.dumps({"path": source})],
        "InstallDependencies": ["True" if install_dependencies else "False"],
        "PlaybookFile": [playbook_file_for(source, playbook_file)],
        # The document's own default; an empty value would give ansible-playbook -e "".
        "ExtraVariables": [format_extra_vars(extra_vars) or "SSM=True"],
        "Check": ["True" if check else "False"],
        "Verbose": ["-" + "v" * int(verbose)],
    }
    if execution_timeout is not None:
        params["TimeoutSeconds"] = [str(int(execution_timeout))]
    return params


def raw_parameters(parameters: dict | None) -> dict[str, list[str]]:
    """Any other document's parameters: values as lists of strings, as SendCommand wants."""
    out = {}
    for name, value in (parameters or {}).items():
        if isinstance(value, (list, tuple)):
            out[str(name)] = [_param_text(v) for v in value]
        else:
            out[str(name)] = [_param_text(value)]
    return out


def _param_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def check_rollout_limits(max_concurrency: str | None, max_errors: str | None) -> None:
    for name, value, pattern in (
        ("max_concurrency", max_concurrency, MAX_CONCURRENCY),
        ("max_errors", max_errors, MAX_ERRORS),
    ):
        if value is not None and not pattern.match(str(value)):
            raise SsmRunError(
                "%s %r: give a count (%s) or a percentage (10%%)"
                % (name, value, "1, 50" if name == "max_concurrency" else "0, 5")
            )


# ---------------------------------------------------------------- status folding

# Invocation Status values (CommandInvocationStatus) that are not terminal.
RUNNING_STATUSES = ("Pending", "InProgress", "Delayed", "Cancelling")
# Command Status values (CommandStatus) that are terminal.
COMMAND_TERMINAL = ("Success", "Cancelled", "Failed", "TimedOut")

# StatusDetails (spaces and case ignored) of a terminal invocation -> outcome.
DETAIL_OUTCOMES = {
    "success": "success",
    "failed": "failed",
    "executiontimedout": "execution_timed_out",
    "deliverytimedout": "delivery_timed_out",
    "timedout": "timed_out",
    "cancelled": "cancelled",
    "undeliverable": "undeliverable",
    "terminated": "terminated",
    "accessdenied": "access_denied",
    "invalidplatform": "invalid_platform",
}
STATUS_OUTCOMES = {
    "Success": "success",
    "Failed": "failed",
    "TimedOut": "timed_out",
    "Cancelled": "cancelled",
}
# Outcomes of instances that have no (finished) invocation.
NO_INVOCATION = "no_invocation"
NOT_STARTED = "not_started"
SKIPPED = "skipped"
UNFINISHED = "unfinished"
LOST = "lost"  # its agent went silent or it stopped running mid-invocation (_ssm_watch)
# Words for messages.
OUTCOME_WORDS = {
    "success": "Success",
    "failed": "Failed",
    "execution_timed_out": "Execution Timed Out",
    "delivery_timed_out": "Delivery Timed Out",
    "timed_out": "Timed Out",
    "cancelled": "Cancelled",
    "undeliverable": "Undeliverable",
    "terminated": "Terminated (the command reached max_errors)",
    "access_denied": "Access Denied",
    "invalid_platform": "Invalid Platform",
    NO_INVOCATION: "no invocation (targeted, never ran)",
    UNFINISHED: "unfinished (still running when the wait ended)",
    LOST: "lost (its SSM agent went silent or it stopped running; its invocation was cancelled)",
    NOT_STARTED: "not started (an earlier batch failed)",
    SKIPPED: "skipped (offline)",
}


def squash(text: str | None) -> str:
    """``"Delivery Timed Out"`` and ``"DeliveryTimedOut"`` -> ``"deliverytimedout"``."""
    return "".join(str(text or "").split()).lower()


def invocation_outcome(status: str | None, status_details: str | None = None) -> str | None:
    """The outcome of one invocation from its Status and StatusDetails.

    Non-terminal statuses give ``None``. A terminal invocation is ``success`` only
    when both Status and StatusDetails say Success; StatusDetails, which is finer
    (Undeliverable, Terminated, Delivery/Execution Timed Out...), names the others.
    """
    if status in RUNNING_STATUSES or status is None:
        return None
    detail = squash(status_details)
    if status == "Success":
        return "success" if detail in ("", "success") else DETAIL_OUTCOMES.get(detail, "failed")
    if detail in DETAIL_OUTCOMES and detail != "success":
        return DETAIL_OUTCOMES[detail]
    return STATUS_OUTCOMES.get(status, "failed")


def fold_statuses(expected: list[str], invocations: list[dict], commands_done: bool = False) -> dict:
    """Fold ListCommandInvocations entries into one state per targeted instance.

    ``expected`` are the instance IDs the command(s) targeted; ``invocations`` the
    CommandInvocations (any order, several commands together); ``commands_done``
    says whether every command is terminal (ListCommands). Then an expected instance
    without an invocation, or with one still "running", never ran: it is a failure,
    whatever the command's own Status says. Instances AWS targeted that were not
    expected (a tag matched a new instance) are kept, flagged ``unexpected``.

    Returns ``{"instances": {id: state}, "done": bool, "ok": bool, "counts": {Status: n}}``.
    """
    by_id = {}
    for invocation in invocations:
        by_id[invocation["InstanceId"]] = invocation
    order = list(expected) + [i for i in by_id if i not in expected]
    states = {}
    counts = {}
    for instance_id in order:
        invocation = by_id.get(instance_id)
        if invocation is None:
            outcome = NO_INVOCATION if commands_done else None
            state = {
                "instance_id": instance_id,
                "command_id": None,
                "status": None,
                "status_details": None,
                "outcome": outcome,
            }
            label = "NoInvocation" if commands_done else "Pending"
        else:
            outcome = invocation_outcome(invocation.get("Status"), invocation.get("StatusDetails"))
            if outcome is None and commands_done:
                # The command is over and this one is not: never delivered (Pending), or
                # left running when the wait ended (after a cancellation that did not land).
                outcome = NO_INVOCATION if invocation.get("Status") in (None, "Pending") else UNFINISHED
            state = {
                "instance_id": instance_id,
                "command_id": invocation.get("CommandId"),
                "status": invocation.get("Status"),
                "status_details": invocation.get("StatusDetails"),
                "outcome": outcome,
            }
            label = invocation.get("Status") or "Pending"
        if instance_id not in expected:
            state["unexpected"] = True
        states[instance_id] = state
        counts[label] = counts.get(label, 0) + 1
    done = all(s["outcome"] is not None for s in states.values())
    ok = done and all(s["outcome"] == "success" for s in states.values())
    return {"instances": states, "done": done, "ok": ok, "counts": counts}


def command_counts(commands: list[dict]) -> dict[str, int]:
    """Sum ListCommands' counters over the commands of one batch."""
    total = {"target": 0, "completed": 0, "errors": 0, "delivery_timed_out": 0}
    for command in commands:
        total["target"] += int(command.get("TargetCount") or 0)
        total["completed"] += int(command.get("CompletedCount") or 0)
        total["errors"] += int(command.get("ErrorCount") or 0)
        total["delivery_timed_out"] += int(command.get("DeliveryTimedOutCount") or 0)
    return total


def commands_terminal(commands: list[dict], command_ids: list[str]) -> bool:
    """Whether every command in ``command_ids`` is in a terminal Status."""
    status = {c["CommandId"]: c.get("Status") for c in commands}
    return all(status.get(cid) in COMMAND_TERMINAL for cid in command_ids)


def summarize(states: list[dict]) -> dict[str, int]:
    """Counts per outcome over the per-instance results, plus ``total``."""
    summary = {"total": len(states)}
    for state in states:
        key = state.get("outcome") or "running"
        summary[key] = summary.get(key, 0) + 1
    return summary


# ----------------------------------------------------------------------- progress

# Order in which progress lines list the statuses.
STATUS_ORDER = (
    "Success",
    "Failed",
    "TimedOut",
    "Cancelled",
    "NoInvocation",
    "Cancelling",
    "InProgress",
    "Delayed",
    "Pending",
)


def status_phrase(counts: dict[str, int]) -> str:
    """``{"Success": 18, "InProgress": 6, "Pending": 1}`` -> ``18 Success, 6 InProgress, 1 Pending``."""
    keys = [k for k in STATUS_ORDER if counts.get(k)] + sorted(k for k in counts if k not in STATUS_ORDER)
    return ", ".join("%d %s" % (counts[k], k) for k in keys if counts[k])


def counters_phrase(counters: dict[str, int]) -> str:
    """ListCommands counters as a phrase (used when a batch spans more than one page)."""
    running = max(0, counters["target"] - counters["completed"])
    failed = counters["errors"] + counters["delivery_timed_out"]
    text = "%d completed" % counters["completed"]
    if failed:
        text += " (%d Failed or Timed Out)" % failed
    return text + ", %d Pending or InProgress" % running


def progress_line(batch_number: int, batch_total: int, size: int, phrase: str, elapsed: float) -> str:
    """``batch 2/3 (25 instances): 18 Success, 6 InProgress, 1 Pending — 41s``."""
    return "batch %d/%d (%d instance%s): %s \u2014 %ds" % (
        batch_number,
        batch_total,
        size,
        "" if size == 1 else "s",
        phrase,
        int(elapsed),
    )


# ------------------------------------------------------------------ poll schedule


class PollSchedule:
    """How long to wait before the next poll, from what the last polls saw.

    - Sub-second at first (``floor``), growing by ``factor`` while nothing changes,
      never above ``cap``: a command that takes ten minutes costs one call every
      ``cap`` seconds, one that takes two seconds is seen within a fraction of one.
    - When invocations complete, the completion rate seen so far gives an estimate
      of when the last one ends (ETA); the next poll comes after a third of it
      (between ``floor`` and ``cap``), so polls thin out while the end is far and
      close in as it nears: the end is seen within about ``floor`` seconds.
    - A completion after a quiet spell drops the delay to ``floor`` (others often
      end together) until the rate is known.

    Pure: ``observe(now, completed, total)`` returns the delay; no clock inside.
    """

    def __init__(self, floor: float = 0.25, factor: float = 1.5, cap: float = 5.0) -> None:
        if floor <= 0 or cap < floor or factor < 1:
            raise SsmRunError("poll schedule: need 0 < floor <= cap and factor >= 1")
        self.floor = float(floor)
        self.factor = float(factor)
        self.cap = float(cap)
        self.delay = self.floor
        self.completed = 0
        self.first = None  # (time, completed) of the first poll that saw a completion

    def observe(self, now: float, completed: int, total: int) -> float:
        progressed = completed > self.completed
        self.completed = completed
        if not progressed:
            self.delay = min(self.cap, self.delay * self.factor)
            return self.delay
        if self.first is None or now <= self.first[0]:
            self.first = self.first or (now, completed)
            self.delay = self.floor
            return self.delay
        rate = (completed - self.first[1]) / (now - self.first[0])
        remaining = max(0, total - completed)
        if rate <= 0 or remaining == 0:
            self.delay = self.floor
        else:
            self.delay = min(self.cap, max(self.floor, remaining / rate / 3.0))
        return self.delay


# ------------------------------------------------------------------ plays' output

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
RECAP_LINE = re.compile(
    r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
    r"\s+failed=(?P<failed>\d+)(?:\s+skipped=(?P<skipped>\d+))?(?:\s+rescued=(?P<rescued>\d+))?"
    r"(?:\s+ignored=(?P<ignored>\d+))?\s*$"
)
# How the SSM agent joins a plugin's stdout and stderr in Output, and cuts it.
OUTPUT_ERROR_MARK = "----------ERROR-------"
OUTPUT_TRUNCATED_MARK = "---Output truncated---"
OUTPUT_KEPT = 2500


def parse_recap(text: str | None) -> dict[str, dict[str, int]] | None:
    """The PLAY RECAP lines of ``ansible-playbook`` output, as ``{host: {ok, changed, ...}}``.

    Only the last recap counts when the text holds several (a bundle that runs
    ansible-playbook twice). Returns ``None`` when there is no recap line (output
    cut short, or not Ansible's).
    """
    if not text:
        return None
    lines = ANSI.sub("", text).splitlines()
    last_header = max((i for i, line in enumerate(lines) if line.startswith("PLAY RECAP")), default=-1)
    recap = {}
    for line in lines[last_header + 1 :]:
        match = RECAP_LINE.match(line.strip())
        if match:
            recap[match.group("host")] = {k: int(v) for k, v in match.groupdict().items() if k != "host" and v}
    return recap or None


def recap_changed(recap: dict | None) -> bool | None:
    """True/False from a parsed recap, None when unknown."""
    if recap is None:
        return None
    return any(host.get("changed", 0) > 0 for host in recap.values())


def split_output(output: str | None) -> tuple[str, str]:
    """A plugin's Output as (stdout, stderr)."""
    text = output or ""
    if OUTPUT_ERROR_MARK in text:
        out, _sep, err = text.partition(OUTPUT_ERROR_MARK)
        return out.rstrip("\n"), err.lstrip("\n")
    return text, ""


def tail(text: str | None, lines: int) -> list[str]:
    """The last ``lines`` lines of ``text`` as a list (ANSI colours removed)."""
    if not text or lines <= 0:
        return []
    return ANSI.sub("", text).rstrip("\n").splitlines()[-lines:]


def iso_utc(moment: object) -> str:
    """A time of the API (datetime, aware or naive UTC) as ``2026-12-03T12:01:02Z``, as
    the InvokedAfter filter wants it and messages show it."""
    if not isinstance(moment, datetime):
        return str(moment)
    if moment.utcoffset() is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def seconds_between(start: object, end: object) -> float | None:
    """Seconds between two datetimes (or ISO strings), None when either is missing."""
    start, end = _as_datetime(start), _as_datetime(end)
    if start is None or end is None:
        return None
    return round(max(0.0, (end - start).total_seconds()), 3)


def _as_datetime(value: object) -> datetime | None:
    if value is None or value == "":
        return None
    if hasattr(value, "timestamp"):
        return value
    text = str(value)
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def invocation_details(invocation: dict, tail_lines: int, step: str = ANSIBLE_STEP) -> dict:
    """What one ListCommandInvocations entry (Details=true) says about its instance:
    response code, duration, output tails and the recap of the play, if any."""
    plugins = invocation.get("CommandPlugins") or []
    wanted = [p for p in plugins if p.get("Name") in (step, "aws:" + step)]
    main = wanted[0] if wanted else (plugins[-1] if plugins else {})
    codes = [p.get("ResponseCode") for p in plugins if p.get("ResponseCode") is not None]
    failing = [c for c in codes if c not in (0, -1)]
    response_code = main.get("ResponseCode")
    if failing and response_code in (0, -1, None):
        response_code = failing[0]
    starts = [p.get("ResponseStartDateTime") for p in plugins if p.get("ResponseStartDateTime")]
    ends = [p.get("ResponseFinishDateTime") for p in plugins if p.get("ResponseFinishDateTime")]
    duration = seconds_between(min(starts, key=_sort_key), max(ends, key=_sort_key)) if starts and ends else None
    stdout, stderr = split_output(main.get("Output"))
    stdout = stdout.replace(OUTPUT_TRUNCATED_MARK, "").rstrip("\n")
    stderr = stderr.replace(OUTPUT_TRUNCATED_MARK, "").rstrip("\n")
    if not wanted and plugins:
        # No step of that name: join every step's output.
        parts = [split_output(p.get("Output")) for p in plugins]
        stdout = "\n".join(p[0] for p in parts if p[0])
        stderr = "\n".join(p[1] for p in parts if p[1])
    return {
        "response_code": response_code,
        "duration": duration,
        "stdout_tail": tail(stdout, tail_lines),
        "stderr_tail": tail(stderr, tail_lines),
        "recap": parse_recap(stdout),
        "step": main.get("Name") or step,
        "truncated": output_truncated(main.get("Output")),
    }


def output_truncated(output: str | None) -> bool:
    """Whether a plugin's Output was cut: SSM keeps its first 2,500 characters."""
    text = output or ""
    return len(text) >= OUTPUT_KEPT - 100 or OUTPUT_TRUNCATED_MARK in text


def _sort_key(value: object) -> float:
    moment = _as_datetime(value)
    return moment.timestamp() if moment is not None else 0.0


# ----------------------------------------------------------------------- messages


def failure_message(failed: list[dict], batch_number: int, batch_total: int, not_started: int, lines: int = 5) -> str:
    """``msg`` when a batch did not end with every invocation Success."""
    parts = []
    for state in failed[:10]:
        what = OUTCOME_WORDS.get(state.get("outcome"), state.get("outcome") or "unknown")
        code = state.get("response_code")
        if state.get("lost_reason"):  # the reason first: "i-... lost its SSM agent (ConnectionLost since ...)"
            what = "%s; its invocation was cancelled" % state["lost_reason"]
        head = "%s %s" % (state["instance_id"], what)
        if code not in (None, -1):
            head += " (rc=%s)" % code
        shown = (state.get("stderr_tail") or [])[-lines:] or (state.get("stdout_tail") or [])[-lines:]
        if shown:
            head += ":\n    " + "\n    ".join(shown)
        parts.append(head)
    more = "" if len(failed) <= 10 else "\n  ... and %d more (see instances)" % (len(failed) - 10)
    text = "%d instance%s failed in batch %d/%d:\n  %s%s" % (
        len(failed),
        "" if len(failed) == 1 else "s",
        batch_number,
        batch_total,
        "\n  ".join(parts),
        more,
    )
    if not_started:
        text += "\nThe rollout stopped: %d instance%s in later batches never received the command." % (
            not_started,
            "" if not_started == 1 else "s",
        )
    return text
