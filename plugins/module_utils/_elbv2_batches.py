# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""A batch's instances leave their ALB target groups before the deploy and rejoin them
after it, for ssm_run_playbook's ``target_groups`` option.

PRIVATE to the mlops.deploy collection (the leading ``_`` says so): no stability
promise to other collections.

Per batch (``BatchTraffic``): ``take_out`` deregisters the batch's instances that are
registered (with the port of the endpoint) and waits until DescribeTargetHealth no longer
shows them (draining done), bounded by the target group's ``deregistration_delay`` (or the
option); ``put_back`` registers them (and any instance of the batch that was not there
yet) and waits until each is ``healthy``, bounded too. The decisions are plain functions
of DescribeTargetGroups / DescribeTargetGroupAttributes / DescribeTargetHealth answers
(unit-tested on recorded payloads); the calls are ``Elbv2Api``'s (retries and paginators
as amazon.aws does them).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code

from ansible_collections.mlops.deploy.plugins.module_utils._ssm_run import SsmRunError

# Seconds allowed beyond deregistration_delay for AWS to report a target gone.
DRAIN_MARGIN = 30
HEALTHY_TIMEOUT = 300
POLL_FIRST, POLL_MAX = 0.5, 5.0
# DescribeTargetHealth: targets that will not become healthy by waiting.
HOPELESS_REASONS = ("Target.NotInUse", "Target.InvalidState", "Target.IpUnusable")
NOT_REGISTERED = "Target.NotRegistered"  # the Reason of a target that is not (or no more) registered
HEALTHY = "healthy"


def argument_spec() -> dict:
    """The suboptions of ssm_run_playbook's ``target_groups``."""
    return {
        "target_group": {"type": "str", "required": True},
        "port": {"type": "int"},
        "drain_timeout": {"type": "int"},
        "healthy_timeout": {"type": "int", "default": HEALTHY_TIMEOUT},
    }


@dataclass
class TargetGroup:
    """One target group as resolved: its ARN, name, the port the instances are registered
    with, and the bounds of the two waits (seconds)."""

    arn: str
    name: str
    port: int
    drain_timeout: int
    healthy_timeout: int
    deregistration_delay: int | None = None

    @property
    def label(self) -> str:
        return "tg/%s" % self.name

    def targets(self, instance_ids: list[str]) -> list[dict]:
        return [{"Id": i, "Port": self.port} for i in instance_ids]


# ------------------------------------------------------------------ plain functions


def check_options(entries: list[dict] | None) -> list[dict]:
    """The ``target_groups`` entries, refused when unusable (before anything is sent)."""
    entries = entries or []
    seen = set()
    for entry in entries:
        ref = (entry.get("target_group") or "").strip()
        if not ref:
            raise SsmRunError("target_groups: each entry needs target_group, a target group's ARN or name")
        port = entry.get("port")
        if port is not None and not 1 <= port <= 65535:
            raise SsmRunError("target_groups: port %s of %s must be 1 to 65535" % (port, ref))
        drain = entry.get("drain_timeout")
        if drain is not None and drain < 0:
            raise SsmRunError("target_groups: drain_timeout of %s must be 0 or more, not %s" % (ref, drain))
        healthy = entry.get("healthy_timeout")
        if healthy is not None and healthy < 1:
            raise SsmRunError("target_groups: healthy_timeout of %s must be 1 or more, not %s" % (ref, healthy))
        key = (ref, port)
        if key in seen:
            raise SsmRunError("target_groups: %s is given twice with the same port" % ref)
        seen.add(key)
    return entries


def group_query(ref: str) -> dict:
    """DescribeTargetGroups' arguments for an ARN or a name."""
    return {"TargetGroupArns": [ref]} if ref.startswith("arn:") else {"Names": [ref]}


def deregistration_delay(attributes: list[dict]) -> int | None:
    """``deregistration_delay.timeout_seconds`` from DescribeTargetGroupAttributes."""
    for attribute in attributes:
        if attribute.get("Key") == "deregistration_delay.timeout_seconds":
            return int(attribute["Value"])
    return None


def resolve(entry: dict, described: dict, attributes: list[dict]) -> TargetGroup:
    """A ``target_groups`` entry with its DescribeTargetGroups item and attributes."""
    ref = entry["target_group"]
    if described.get("TargetType", "instance") != "instance":
        raise SsmRunError(
            "target group %s has target type %s; only target groups of instances can follow the batches"
            % (ref, described.get("TargetType"))
        )
    port = entry.get("port") or described.get("Port")
    if not port:
        raise SsmRunError("target group %s has no port of its own; set target_groups[].port" % ref)
    delay = deregistration_delay(attributes)
    drain = entry.get("drain_timeout")
    if drain is None:
        drain = (delay if delay is not None else 300) + DRAIN_MARGIN
    return TargetGroup(
        arn=described["TargetGroupArn"],
        name=described["TargetGroupName"],
        port=int(port),
        drain_timeout=int(drain),
        healthy_timeout=int(entry.get("healthy_timeout") or HEALTHY_TIMEOUT),
        deregistration_delay=delay,
    )


def states(descriptions: list[dict], port: int) -> dict[str, dict]:
    """``{instance_id: {"state", "reason", "description"}}`` of the targets on ``port``
    (DescribeTargetHealth's TargetHealthDescriptions)."""
    found = {}
    for item in descriptions:
        target = item.get("Target") or {}
        if target.get("Port") not in (None, port):
            continue
        health = item.get("TargetHealth") or {}
        found[target["Id"]] = {
            "state": health.get("State"),
            "reason": health.get("Reason"),
            "description": health.get("Description"),
        }
    return found


def registered(descriptions: list[dict], port: int, instance_ids: list[str]) -> list[str]:
    """Which of ``instance_ids`` the target group holds on ``port`` (draining included)."""
    seen = states(descriptions, port)
    return [i for i in instance_ids if i in seen and seen[i]["reason"] != NOT_REGISTERED]


def still_there(descriptions: list[dict], port: int, instance_ids: list[str]) -> dict[str, dict]:
    """The instances not gone yet after their deregistration (``draining`` mostly)."""
    seen = states(descriptions, port)
    return {i: seen[i] for i in instance_ids if i in seen and seen[i]["reason"] != NOT_REGISTERED}


def not_healthy(descriptions: list[dict], port: int, instance_ids: list[str]) -> dict[str, dict]:
    """The instances not ``healthy`` yet after their registration (absent: not registered)."""
    seen = states(descriptions, port)
    missing = {"state": None, "reason": None, "description": "not in DescribeTargetHealth's answer"}
    return {i: seen.get(i, missing) for i in instance_ids if seen.get(i, missing)["state"] != HEALTHY}


def hopeless(waiting: dict[str, dict]) -> dict[str, dict]:
    """Those of ``not_healthy``'s that waiting will not help (e.g. the target group is not
    used by any load balancer: Target.NotInUse)."""
    return {i: s for i, s in waiting.items() if s.get("reason") in HOPELESS_REASONS}


def describe_state(state: dict) -> str:
    """``unhealthy (Target.ResponseCodeMismatch: Health checks failed with these codes: [503])``."""
    words = state.get("state") or "absent"
    details = ": ".join(x for x in (state.get("reason"), state.get("description")) if x)
    return "%s (%s)" % (words, details) if details else words


def plan(groups: list[TargetGroup] | list[dict], batch: list[str]) -> list[dict]:
    """What check mode says would happen to a batch, per target group (nothing is called)."""
    planned = []
    for group in groups:
        if isinstance(group, TargetGroup):
            name, port = group.label, group.port
        else:
            name, port = group["target_group"], group.get("port")
        planned.append(
            {
                "target_group": name,
                "port": port,
                "would_take_out": list(batch),
                "would_put_back": list(batch),
            }
        )
    return planned


def instance_list(ids: list[str], most: int = 5) -> str:
    shown = ", ".join(ids[:most])
    return shown + (" and %d more" % (len(ids) - most) if len(ids) > most else "")


# ------------------------------------------------------------------------ the calls


class Elbv2Api:
    """Each elbv2 call of the rollout; ``client`` is amazon.aws's retrying client (single
    calls pass ``aws_retry=True``), ``retry`` decorates the paginated listings."""

    def __init__(self, client: Any, retry: Callable[[Callable], Callable] | None = None) -> None:
        self.client = client
        self._retry = retry or (lambda function: function)

    def target_group(self, ref: str) -> dict:
        def listing() -> dict:
            pages = self.client.get_paginator("describe_target_groups").paginate(**group_query(ref))
            return pages.build_full_result()

        try:
            found = self._retry(listing)().get("TargetGroups", [])
        except is_boto3_error_code(["TargetGroupNotFound", "ValidationError"]) as exc:
            code = exc.response["Error"]["Code"]
            raise SsmRunError(
                "target group %s was not found (%s); check its name or ARN, the region and the profile" % (ref, code)
            ) from None
        if not found:
            raise SsmRunError("target group %s was not found; check its name or ARN, the region and the profile" % ref)
        return found[0]

    def attributes(self, arn: str) -> list[dict]:
        return self.client.describe_target_group_attributes(aws_retry=True, TargetGroupArn=arn).get("Attributes", [])

    def health(self, arn: str, targets: list[dict] | None = None) -> list[dict]:
        params = {"TargetGroupArn": arn}
        if targets:
            params["Targets"] = targets
        return self.client.describe_target_health(aws_retry=True, **params).get("TargetHealthDescriptions", [])

    def deregister(self, arn: str, targets: list[dict]) -> None:
        self.client.deregister_targets(aws_retry=True, TargetGroupArn=arn, Targets=targets)

    def register(self, arn: str, targets: list[dict]) -> None:
        self.client.register_targets(aws_retry=True, TargetGroupArn=arn, Targets=targets)


# ------------------------------------------------------------------------ the batches


@dataclass
class Step:
    """How one batch went in one target group (returned in ``batches[].target_groups``)."""

    target_group: str
    target_group_arn: str
    port: int
    taken_out: list[str] = field(default_factory=list)
    drain_waited: float | None = None
    put_back: list[str] = field(default_factory=list)
    healthy_waited: float | None = None
    left_out: list[str] = field(default_factory=list)
    states: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class BatchTraffic:
    """Takes a batch out of its target groups and puts it back."""

    def __init__(
        self,
        api: Elbv2Api,
        groups: list[TargetGroup],
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        report: Callable[[str], None] | None = None,
    ) -> None:
        self.api = api
        self.groups = groups
        self.clock = clock
        self.sleep = sleep
        self.report = report or (lambda line: None)

    @classmethod
    def resolve(cls, api: Elbv2Api, entries: list[dict], **kwargs: Any) -> BatchTraffic:
        groups = []
        for entry in entries:
            described = api.target_group(entry["target_group"])
            groups.append(resolve(entry, described, api.attributes(described["TargetGroupArn"])))
        return cls(api, groups, **kwargs)

    def _wait(self, bound: float, pending: Callable[[], dict[str, dict]], stop_early: Callable[[dict], dict]):
        """Poll ``pending()`` until it is empty, ``stop_early`` names some, or ``bound``
        seconds pass. Returns ``(still_pending, waited)``."""
        start = self.clock()
        delay = POLL_FIRST
        while True:
            waiting = pending()
            waited = round(self.clock() - start, 1)
            if not waiting or stop_early(waiting) or waited >= bound:
                return waiting, waited
            self.sleep(min(delay, max(0.0, bound - waited)))
            delay = min(delay * 2, POLL_MAX)

    def take_out(self, batch: list[str], label: str) -> tuple[list[Step], str | None]:
        """Deregister the batch's registered instances from every target group and wait
        until they are gone. Returns the steps and a failure message (None: all drained)."""
        steps = []
        for group in self.groups:
            step = Step(group.label, group.arn, group.port)
            steps.append(step)
            step.taken_out = registered(self.api.health(group.arn), group.port, batch)
            if not step.taken_out:
                continue
            self.api.deregister(group.arn, group.targets(step.taken_out))
            self.report("%s: %s out of %s (draining)" % (label, instance_list(step.taken_out), group.label))
            left, step.drain_waited = self._wait(
                group.drain_timeout,
                lambda g=group, ids=step.taken_out: still_there(self.api.health(g.arn, g.targets(ids)), g.port, ids),
                lambda waiting: {},
            )
            if left:
                step.states = {i: describe_state(s) for i, s in left.items()}
                return steps, "%s: %s still in %s after %ss (drain_timeout): %s" % (
                    label,
                    instance_list(sorted(left)),
                    group.label,
                    group.drain_timeout,
                    "; ".join("%s %s" % (i, step.states[i]) for i in sorted(left)[:5]),
                )
            drained = (label, instance_list(step.taken_out), group.label, step.drain_waited)
            self.report("%s: %s out of %s (drained in %ss)" % drained)
        return steps, None

    def restore(self, steps: list[Step]) -> None:
        """Register again what ``take_out`` deregistered (the batch was not deployed)."""
        for group, step in zip(self.groups, steps):
            if step.taken_out:
                self.api.register(group.arn, group.targets(step.taken_out))
                step.put_back = list(step.taken_out)

    def put_back(self, batch: list[str], label: str, steps: list[Step]) -> tuple[dict[str, str], str | None]:
        """Register the batch in every target group and wait until each instance is
        ``healthy``. Returns ``{instance_id: why}`` of those that did not become healthy
        (deregistered again: they are left out of service) and a failure message."""
        failed: dict[str, str] = {}
        problems = []
        for group, step in zip(self.groups, steps):
            self.api.register(group.arn, group.targets(batch))
            step.put_back = list(batch)
            waiting, step.healthy_waited = self._wait(
                group.healthy_timeout,
                lambda g=group: not_healthy(self.api.health(g.arn, g.targets(batch)), g.port, batch),
                hopeless,
            )
            if not waiting:
                back = (label, instance_list(batch), group.label, step.healthy_waited)
                self.report("%s: %s back in %s (healthy in %ss)" % back)
                continue
            step.states = {i: describe_state(s) for i, s in waiting.items()}
            step.left_out = sorted(waiting)
            self.api.deregister(group.arn, group.targets(step.left_out))
            why = "after %ss (healthy_timeout %ss)" % (step.healthy_waited, group.healthy_timeout)
            if hopeless(waiting):
                why = "after %ss, and waiting will not help" % step.healthy_waited
            for instance_id in step.left_out:
                failed[instance_id] = "not healthy in %s %s: %s; taken out again" % (
                    group.label,
                    why,
                    step.states[instance_id],
                )
            problems.append(
                "%s not healthy in %s %s: %s"
                % (
                    instance_list(step.left_out),
                    group.label,
                    why,
                    "; ".join("%s %s" % (i, step.states[i]) for i in step.left_out[:5]),
                )
            )
        if not problems:
            return failed, None
        return failed, "%s: %s; they were taken out again and stay out of service" % (label, "; ".join(problems))
