# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""A one-off ECS task as the API shows it: what to send, what came back, what it means.

PRIVATE to the mlops.deploy collection (the leading ``_`` says so): no stability
promise to other collections. Used by ``ecs_run_task`` (through ``_ecs_task_run``).

Plain values in, plain values out: the functions take the option values and the dicts
boto3 returns for DescribeTaskDefinition / DescribeTasks, and return the RunTask request,
the awslogs stream of a container, a task folded to what a person follows (status, each
container's exit code), the lines to print when it changes, and the verdict (did the job
succeed, and if not, why, in one sentence). Nothing here talks to AWS.
"""

from __future__ import annotations

import re
from datetime import datetime

# The task lifecycle, in order (AWS's task-lifecycle page).
STATUSES = (
    "PROVISIONING",
    "PENDING",
    "ACTIVATING",
    "RUNNING",
    "DEACTIVATING",
    "STOPPING",
    "DEPROVISIONING",
    "STOPPED",
    "DELETED",
)
TERMINAL = ("STOPPED", "DELETED")
# stoppedReason prefixes of a task that never ran its containers.
START_FAILURES = (
    "CannotPullContainerError",
    "CannotPullImageManifestError",
    "ResourceInitializationError",
    "CannotCreateContainerError",
    "CannotStartContainerError",
    "CannotInspectContainerError",
    "ResourceNotFoundException",
    "InternalError",
    "TaskFailedToStart",
)
STOP_CODE_MEANINGS = {
    "TaskFailedToStart": "the task failed to start",
    "EssentialContainerExited": "an essential container exited",
    "UserInitiated": "someone stopped it (StopTask)",
    "ServiceSchedulerInitiated": "the service scheduler stopped it",
    "SpotInterruption": "Fargate Spot capacity was reclaimed",
    "TerminationNotice": "its capacity was terminated",
}
LAUNCH_TYPES = ("FARGATE", "EC2", "EXTERNAL")
# The placement options of a task (ecs_run_task, eventbridge_ecs_target), documented by the
# doc fragment mlops.deploy.ecs_placement.
PLACEMENT_SPEC = {
    "launch_type": {"type": "str", "choices": list(LAUNCH_TYPES)},
    "capacity_provider_strategy": {
        "type": "list",
        "elements": "dict",
        "options": {
            "capacity_provider": {"type": "str", "required": True},
            "weight": {"type": "int"},
            "base": {"type": "int"},
        },
    },
    "platform_version": {"type": "str"},
    "network_configuration": {
        "type": "dict",
        "options": {
            "subnets": {"type": "list", "elements": "str", "required": True},
            "security_groups": {"type": "list", "elements": "str", "default": []},
            "assign_public_ip": {"type": "bool", "default": False},
        },
    },
}
# Exit codes of a container that ECS stopped (SIGKILL, SIGTERM).
STOPPED_EXIT_CODES = (137, 143)
STARTED_BY_MAX = 36
TAGS_MAX = 50
_FAMILY = r"[A-Za-z0-9_-]{1,255}"
_TASK_DEFINITION = re.compile(r"^(arn:aws[a-z-]*:ecs:[a-z0-9-]+:\d{12}:task-definition/)?%s(:\d+)?$" % _FAMILY)
_CONTAINER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class TaskError(Exception):
    """Bad input or a task that cannot be run as asked; the message says what to fix."""


# ------------------------------------------------------------------------ names


def task_id(task_arn):
    """``arn:aws:ecs:r:1:task/cluster/0123abcd...`` (or the old form without the cluster) -> the id."""
    return (task_arn or "").rsplit("/", 1)[-1]


def cluster_name(cluster):
    """A cluster ARN or name -> its name."""
    return (cluster or "default").rsplit("/", 1)[-1]


def check_task_definition(value):
    """A task definition reference: ``family``, ``family:revision`` or its ARN."""
    if not value or not _TASK_DEFINITION.match(value):
        raise TaskError(
            "task_definition %r is not a family, family:revision or task definition ARN (letters, digits, "
            "'-' and '_', e.g. train or train:7)" % (value,)
        )
    return value


def log_settings(definition):
    """The awslogs settings of a container definition: group, region, prefix; None when the
    container does not log to CloudWatch (another driver, or none)."""
    config = definition.get("logConfiguration") or {}
    if config.get("logDriver") != "awslogs":
        return None
    options = config.get("options") or {}
    return {
        "group": options.get("awslogs-group"),
        "region": options.get("awslogs-region"),
        "prefix": options.get("awslogs-stream-prefix"),
    }


def stream_name(settings, container, task_arn, runtime_id=None):
    """The awslogs stream of a task's container: ``<prefix>/<container>/<task id>``; without a
    prefix the stream is named after the container's runtime (Docker) id, known once it runs."""
    if not settings:
        return None
    if settings.get("prefix"):
        return "%s/%s/%s" % (settings["prefix"], container, task_id(task_arn))
    return runtime_id or None


def essential(definition):
    return definition.get("essential", True) is not False


def followed_container(task_definition, wanted=None):
    """The container whose log is followed: ``wanted``, or the first essential one."""
    definitions = task_definition.get("containerDefinitions") or []
    names = [d.get("name") for d in definitions]
    if wanted:
        if wanted not in names:
            raise TaskError(
                "follow_container %r is not a container of %s (it has %s)"
                % (wanted, task_definition.get("taskDefinitionArn"), ", ".join(names))
            )
        return wanted
    for definition in definitions:
        if essential(definition):
            return definition.get("name")
    return names[0] if names else None


# --------------------------------------------------------------------- the request


def _environment(name, value):
    if isinstance(value, dict):
        items = sorted(value.items())
    elif isinstance(value, list):
        items = []
        for item in value:
            if not isinstance(item, dict) or "name" not in item:
                raise TaskError(
                    "container_overrides %s: environment entries must be {name: ..., value: ...}, not %r" % (name, item)
                )
            items.append((item["name"], item.get("value", "")))
    else:
        raise TaskError("container_overrides %s: environment must be a mapping of names to values" % name)
    out = []
    for key, val in items:
        if not isinstance(key, str) or not _ENV_NAME.match(key):
            raise TaskError("container_overrides %s: %r is not a valid environment variable name" % (name, key))
        if isinstance(val, (dict, list)):
            raise TaskError("container_overrides %s: environment %s must be a string, not %r" % (name, key, val))
        if isinstance(val, bool):
            val = "true" if val else "false"
        out.append({"name": key, "value": "" if val is None else str(val)})
    return out


def container_overrides(task_definition, overrides):
    """The options' container overrides as RunTask's ``containerOverrides``, each naming a
    container of the task definition (ECS refuses any other)."""
    names = [d.get("name") for d in task_definition.get("containerDefinitions") or []]
    out, seen = [], set()
    for item in overrides or []:
        name = item.get("name")
        if name not in names:
            raise TaskError(
                "container_overrides names %r, which is not a container of %s (it has %s)"
                % (name, task_definition.get("taskDefinitionArn"), ", ".join(names))
            )
        if name in seen:
            raise TaskError("container_overrides names %r twice; give one entry per container" % name)
        seen.add(name)
        entry = {"name": name}
        command = item.get("command")
        if command is not None:
            if not isinstance(command, list) or not all(isinstance(part, str) for part in command):
                raise TaskError("container_overrides %s: command must be a list of strings" % name)
            entry["command"] = command
        if item.get("environment") is not None:
            entry["environment"] = _environment(name, item["environment"])
        for key, field in (("cpu", "cpu"), ("memory", "memory"), ("memory_reservation", "memoryReservation")):
            value = item.get(key)
            if value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < (0 if key == "cpu" else 1):
                raise TaskError("container_overrides %s: %s must be a positive number, not %r" % (name, key, value))
            entry[field] = value
        out.append(entry)
    return out


def network_configuration(network):
    """The options' network configuration as RunTask's ``awsvpcConfiguration``."""
    if not network:
        return None
    subnets = network.get("subnets") or []
    if not subnets:
        raise TaskError("network_configuration.subnets must list at least one subnet (awsvpc needs one)")
    public = network.get("assign_public_ip")
    return {
        "awsvpcConfiguration": {
            "subnets": list(subnets),
            "securityGroups": list(network.get("security_groups") or []),
            "assignPublicIp": "ENABLED" if public else "DISABLED",
        }
    }


def check_options(params):
    """What can be wrong with the options alone, before any AWS call."""
    timeout = params.get("timeout")
    if timeout is not None and timeout <= 0:
        raise TaskError("timeout must be a positive number of seconds, not %s" % timeout)
    if params.get("poll_max_interval") is not None and params["poll_max_interval"] < 1:
        raise TaskError("poll_max_interval must be at least 1 second, not %s" % params["poll_max_interval"])
    if params.get("tail_lines") is not None and params["tail_lines"] < 0:
        raise TaskError("tail_lines must be 0 or more, not %s" % params["tail_lines"])
    started_by = params.get("started_by")
    if started_by is not None and not 1 <= len(started_by) <= STARTED_BY_MAX:
        raise TaskError(
            "started_by must be 1 to %d characters (ECS's limit), not %d" % (STARTED_BY_MAX, len(started_by))
        )
    if len(params.get("tags") or {}) > TAGS_MAX:
        raise TaskError("ECS takes at most %d tags" % TAGS_MAX)
    if params.get("task_arn"):
        if not re.match(r"^arn:aws[a-z-]*:ecs:[a-z0-9-]+:\d{12}:task/\S+$", params["task_arn"]):
            raise TaskError(
                "task_arn %r is not an ECS task ARN (arn:aws:ecs:<region>:<account>:task/...)" % params["task_arn"]
            )
    else:
        check_task_definition(params.get("task_definition"))


def run_task_request(params, task_definition):
    """RunTask's parameters from the options and the resolved task definition."""
    request = {
        "cluster": params.get("cluster") or "default",
        "taskDefinition": task_definition["taskDefinitionArn"],
        "count": 1,
    }
    if params.get("launch_type"):
        request["launchType"] = params["launch_type"]
    strategy = params.get("capacity_provider_strategy")
    if strategy:
        request["capacityProviderStrategy"] = [
            dict(
                {"capacityProvider": item["capacity_provider"]},
                **{k: item[s] for k, s in (("weight", "weight"), ("base", "base")) if item.get(s) is not None},
            )
            for item in strategy
        ]
    for option, field in (("platform_version", "platformVersion"), ("started_by", "startedBy"), ("group", "group")):
        if params.get(option):
            request[field] = params[option]
    network = network_configuration(params.get("network_configuration"))
    if network:
        request["networkConfiguration"] = network
    elif task_definition.get("networkMode") == "awsvpc":
        raise TaskError(
            "%s uses the awsvpc network mode (as Fargate does): give network_configuration.subnets "
            "(and security_groups)" % task_definition["taskDefinitionArn"]
        )
    overrides = container_overrides(task_definition, params.get("container_overrides"))
    if overrides:
        request["overrides"] = {"containerOverrides": overrides}
    tags = params.get("tags") or {}
    if tags:
        request["tags"] = [{"key": str(k), "value": str(v)} for k, v in sorted(tags.items())]
    if params.get("propagate_tags"):
        request["propagateTags"] = params["propagate_tags"]
    return request


# -------------------------------------------------------------------------- folding


def _iso(value):
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _seconds(start, end):
    if isinstance(start, datetime) and isinstance(end, datetime):
        return round((end - start).total_seconds(), 3)
    return None


def fold(task, task_definition=None):
    """A DescribeTasks task as the module reports it (plain values, times in ISO 8601)."""
    definitions = {d.get("name"): d for d in (task_definition or {}).get("containerDefinitions") or []}
    containers = []
    for container in task.get("containers") or []:
        definition = definitions.get(container.get("name"), {})
        settings = log_settings(definition)
        containers.append(
            {
                "name": container.get("name"),
                "essential": essential(definition) if definition else None,
                "last_status": container.get("lastStatus"),
                "exit_code": container.get("exitCode"),
                "reason": container.get("reason"),
                "image": container.get("image"),
                "image_digest": container.get("imageDigest"),
                "runtime_id": container.get("runtimeId"),
                "log_group": (settings or {}).get("group"),
                "log_stream": stream_name(
                    settings, container.get("name"), task.get("taskArn"), container.get("runtimeId")
                ),
            }
        )
    return {
        "task_arn": task.get("taskArn"),
        "task_id": task_id(task.get("taskArn")),
        "cluster_arn": task.get("clusterArn"),
        "task_definition_arn": task.get("taskDefinitionArn"),
        "last_status": task.get("lastStatus"),
        "desired_status": task.get("desiredStatus"),
        "stop_code": task.get("stopCode"),
        "stopped_reason": task.get("stoppedReason"),
        "launch_type": task.get("launchType"),
        "started_by": task.get("startedBy"),
        "overrides": task.get("overrides") or {},
        "created_at": _iso(task.get("createdAt")),
        "started_at": _iso(task.get("startedAt")),
        "stopping_at": _iso(task.get("stoppingAt")),
        "stopped_at": _iso(task.get("stoppedAt")),
        "duration": _seconds(task.get("startedAt"), task.get("stoppedAt")),
        "containers": containers,
    }


def status_rank(status):
    """Where a status is in the lifecycle (-1 for one this module does not know)."""
    return STATUSES.index(status) if status in STATUSES else -1


def is_done(task):
    return (task or {}).get("lastStatus") in TERMINAL


def changes(before, after):
    """What a person watching wants to read when the task moved: its status, and each
    container that stopped (with its exit code)."""
    lines = []
    if before is None or before.get("last_status") != after.get("last_status"):
        line = "%s" % after.get("last_status")
        if after.get("last_status") in TERMINAL:
            reason = after.get("stop_code") or ""
            if after.get("stopped_reason"):
                reason += (": " if reason else "") + after["stopped_reason"]
            if reason:
                line += " (%s)" % reason
        lines.append(line)
    old = {c["name"]: c for c in (before or {}).get("containers", [])}
    for container in after.get("containers", []):
        previous = old.get(container["name"], {})
        if container.get("last_status") == "STOPPED" and previous.get("last_status") != "STOPPED":
            if container.get("exit_code") is not None:
                lines.append("container %s exited with code %s" % (container["name"], container["exit_code"]))
            else:
                lines.append(
                    "container %s stopped without an exit code%s"
                    % (container["name"], (": " + container["reason"]) if container.get("reason") else "")
                )
    return lines


# -------------------------------------------------------------------------- verdict


def start_failure(folded):
    """The reason a task never started its containers, or None."""
    reasons = [folded.get("stopped_reason") or ""] + [c.get("reason") or "" for c in folded.get("containers", [])]
    if folded.get("stop_code") == "TaskFailedToStart":
        return folded.get("stopped_reason") or next((r for r in reasons if r), "TaskFailedToStart")
    for reason in reasons:
        if reason.startswith(START_FAILURES):
            return reason
    return None


def verdict(folded, followed=None, timed_out=False, timeout=None, stopped=True):
    """(failed, message) of a task that reached STOPPED, or whose wait timed out (``stopped``:
    the task was then stopped with StopTask; a task started elsewhere is left running)."""
    name = folded.get("task_id")
    status = folded.get("last_status")
    if timed_out:
        if not stopped:
            return True, "task %s did not finish within the timeout of %ss (still %s; left running)" % (
                name,
                timeout,
                status,
            )
        return True, "task %s did not finish within the timeout of %ss; it was stopped (StopTask)%s" % (
            name,
            timeout,
            "" if status in TERMINAL else ", last status %s" % status,
        )
    failure = start_failure(folded)
    if failure:
        culprit = next((c["name"] for c in folded.get("containers", []) if c.get("reason") == failure), None)
        return True, "task %s failed to start%s: %s" % (name, " (container %s)" % culprit if culprit else "", failure)
    containers = folded.get("containers", [])
    essentials = [c for c in containers if c.get("essential") is not False]
    failed = [c for c in essentials if c.get("exit_code") not in (0, None)]
    if failed:
        # The one that exited by itself first; those ECS stopped after it (SIGTERM 143,
        # SIGKILL 137) after, as what came with it.
        first = [c for c in failed if c["exit_code"] not in STOPPED_EXIT_CODES] or failed
        message = "task %s failed: essential container %s" % (
            name,
            ", ".join("%s exited with code %s" % (c["name"], c["exit_code"]) for c in first),
        )
        rest = [c for c in failed if c not in first]
        if rest:
            message += "; stopped with it: %s" % ", ".join("%s (%s)" % (c["name"], c["exit_code"]) for c in rest)
        return True, message
    silent = [c for c in essentials if c.get("exit_code") is None]
    if silent:
        first = silent[0]
        return True, "task %s failed: container %s stopped without an exit code%s" % (
            name,
            first["name"],
            (" (%s)" % first["reason"]) if first.get("reason") else "",
        )
    code = folded.get("stop_code")
    if code not in (None, "EssentialContainerExited"):
        return True, "task %s was stopped before it finished: %s (%s)%s" % (
            name,
            code,
            STOP_CODE_MEANINGS.get(code, "stop code"),
            (": " + folded["stopped_reason"]) if folded.get("stopped_reason") else "",
        )
    exit_of = next((c for c in containers if c["name"] == followed), essentials[0] if essentials else None)
    duration = folded.get("duration")
    return False, "task %s succeeded: %s exited with code %s%s" % (
        name,
        exit_of["name"] if exit_of else "every container",
        exit_of.get("exit_code") if exit_of else 0,
        " after %.1fs" % duration if duration is not None else "",
    )


# ------------------------------------------------------------------------- pacing


class Pacing:
    """When to call DescribeTasks and GetLogEvents next (seconds from now).

    Logs: soon after a read that brought lines (output comes in runs), backing off while the
    stream is quiet, never longer than ``log_max``: a line waits at most that long, about half
    of it on average. DescribeTasks: every second until the task runs, then backing off to
    ``describe_max`` while nothing changes; the status is read again soon after the log goes
    quiet (a container that stops printing may have exited) and after every change.
    """

    def __init__(self, log_min=1.5, log_max=3.0, describe_max=10.0):
        self.log_min, self.log_max, self.describe_max = log_min, log_max, describe_max
        self.log_interval = log_min
        self.describe_interval = 1.0
        self._had_lines = False
        self._quiet = False

    def after_logs(self, got_lines):
        if got_lines:
            self.log_interval = self.log_min
            self._had_lines, self._quiet = True, False
        else:
            self.log_interval = min(self.log_interval * 1.5, self.log_max)
            if self._had_lines:
                self._had_lines, self._quiet = False, True
        return self.log_interval

    def log_went_quiet(self):
        """True once after a read found nothing where the one before found lines."""
        quiet, self._quiet = self._quiet, False
        return quiet

    def after_describe(self, changed, status):
        if changed or status not in ("RUNNING",):
            self.describe_interval = 1.0
        else:
            self.describe_interval = min(max(self.describe_interval, 1.0) * 2, self.describe_max)
        return self.describe_interval
