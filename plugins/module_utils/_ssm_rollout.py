# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What ssm_run_playbook does, given an ``SsmApi``: resolve targets, pre-flight, plan
batches, send, follow, final states, CloudWatch output, stop at the first failure.

PRIVATE to the mlops.deploy collection (the leading ``_`` says so): no stability
promise to other collections.

Two callers run a ``Rollout`` with the same validated options (``_ssm_options``) and
the same ``SsmApi`` (``_ssm_api.connect``):
- the action plugin ``ssm_run_playbook`` (controller side, in-process, so that it
  can print one line per state change while it waits);
- the module ``ssm_run_playbook`` itself, when it is run without its action plugin.

``Rollout.run()`` strings the steps together; each step is a function or method with
explicit inputs, unit-tested on recorded SSM answers. Following one batch is the
``_ssm_follow.Follower``'s (where per-poll watchers plug in), reading CloudWatch
output ``_ssm_output.CommandOutput``'s. Every AWS call is one method of ``SsmApi``;
everything it returns goes through the plain functions of ``_ssm_run``. With
``target_groups``, each batch leaves its ALB target groups before it is sent and rejoins
them once it succeeded (``_elbv2_batches.BatchTraffic``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ansible_collections.mlops.deploy.plugins.module_utils import _elbv2_batches as elbv2
from ansible_collections.mlops.deploy.plugins.module_utils import _ssm_run as rules
from ansible_collections.mlops.deploy.plugins.module_utils._cloudwatch_logs import ssm_step_name
from ansible_collections.mlops.deploy.plugins.module_utils._ssm_api import SsmApi
from ansible_collections.mlops.deploy.plugins.module_utils._ssm_follow import TIMEOUT, Follower, Watcher
from ansible_collections.mlops.deploy.plugins.module_utils._ssm_options import (
    RolloutOptions,
    document_parameters,
    send_call,
)
from ansible_collections.mlops.deploy.plugins.module_utils._ssm_output import CommandOutput
from ansible_collections.mlops.deploy.plugins.module_utils._ssm_watch import HostWatcher

# How long a cancelled command is followed for its invocations to land on Cancelled.
CANCEL_GRACE = 30.0
# Outcomes of an instance whose deploy succeeded (or was never sent) but whose target group did not follow.
DRAIN_TIMED_OUT = "drain_timed_out"
UNHEALTHY_IN_TARGET_GROUP = "unhealthy_in_target_group"


@dataclass
class Targets:
    """The instances resolved: IDs in order, their Name tags (tag targets only) and the
    parsed tag targets (None when given as IDs or inventory hosts)."""

    instance_ids: list[str]
    names: dict[str, str]
    tag_targets: list[tuple[str, list[str]]] | None = None


# ------------------------------------------------------------------ the steps, plain


def resolve_targets(
    api: SsmApi,
    instance_ids: list[str] | None = None,
    inventory_hosts: list | None = None,
    targets: list[str] | None = None,
) -> Targets:
    """The instances to run on, from exactly one of the three ways to name them; fails
    when tags match no running instance."""
    if instance_ids is not None:
        return Targets(rules.check_instance_ids(instance_ids), {})
    if inventory_hosts is not None:
        return Targets(rules.instance_ids_from_hosts(inventory_hosts), {})
    tag_targets = rules.parse_tag_targets(targets or [])
    reservations = api.describe_instances(rules.ec2_filters(tag_targets))
    ids = rules.running_instance_ids(reservations)
    if not ids:
        raise rules.SsmRunError(
            "no running instance has %s in %s; check the tag, the region and the profile"
            % (rules.describe_tag_targets(tag_targets), api.region or "the configured region")
        )
    return Targets(ids, rules.instance_names(reservations), tag_targets)


def preflight(api: SsmApi, instance_ids: list[str], skip_offline: bool) -> tuple[list[str], list[dict]]:
    """``(online, offline)`` from what SSM knows of their agents (``SsmApi.agents``); fails
    when an instance is offline (unless ``skip_offline``) or when none is online."""
    online, offline = rules.preflight(instance_ids, api.agents(instance_ids))
    if offline and not skip_offline:
        raise rules.SsmRunError(rules.offline_message(offline, len(instance_ids)), offline=offline)
    if not online:
        raise rules.SsmRunError(
            "every target instance is offline, nothing to run on: %s" % ", ".join(o["instance_id"] for o in offline),
            offline=offline,
        )
    return online, offline


def send(
    api: SsmApi,
    call: dict,
    batch: list[str],
    by_tags: list | None,
    on_sent: Callable[[str], None] | None = None,
) -> list[dict]:
    """SendCommand for one batch: ``call`` (``_ssm_options.send_call``) with the tag
    targets when given, else the batch's IDs 50 a call; ``on_sent(command_id)`` as soon
    as each is sent. Returns one ``{"command_id", "instance_ids", "requested"}`` per
    command sent."""
    if by_tags:
        groups = [(None, batch)]
    else:
        groups = [(chunk, chunk) for chunk in rules.chunks(batch, rules.SEND_INSTANCE_IDS_MAX)]
    sends = []
    for instance_ids, expected in groups:
        params = dict(call)
        if instance_ids is None:
            params["Targets"] = rules.ssm_targets(by_tags)
        else:
            params["InstanceIds"] = instance_ids
        command = api.send_command(**params)
        if on_sent:
            on_sent(command["CommandId"])
        requested = command.get("RequestedDateTime")
        sends.append(
            {
                "command_id": command["CommandId"],
                "instance_ids": expected,
                "requested": rules.iso_utc(requested) if requested is not None else None,
            }
        )
    return sends


def statuses_now(api: SsmApi, sends: list[dict]) -> dict[str, str | None]:
    """Where each instance has got to (its invocation's Status), e.g. when the wait ended."""
    seen = {}
    for sent in sends:
        for invocation in api.list_invocations(sent["command_id"]):
            seen[invocation["InstanceId"]] = invocation.get("Status")
    return seen


def instance_states(
    batch: list[str],
    number: int,
    invocations: list[dict],
    names: dict[str, str],
    tail_lines: int,
    log_group: str | None,
    snapshot: dict | None,
) -> list[dict]:
    """One result entry per instance of a batch, from its invocations (Details=true).

    The entries carry ``_truncated`` and ``_step`` for the CloudWatch reads that follow
    (``finish_states`` removes them)."""
    details = {inv["InstanceId"]: rules.invocation_details(inv, tail_lines) for inv in invocations}
    fold = rules.fold_statuses(batch, invocations, commands_done=True)
    states = []
    for instance_id, folded in fold["instances"].items():
        state = dict(folded)
        info = details.get(instance_id, {"response_code": None, "duration": None})
        state.update(
            {
                "batch": number,
                "instance_name": names.get(instance_id),
                "response_code": info.get("response_code"),
                "duration": info.get("duration"),
                "stdout_tail": info.get("stdout_tail", []),
                "stderr_tail": info.get("stderr_tail", []),
                "log_stream": None,
                "changed": rules.recap_changed(info.get("recap")),
                "_truncated": info.get("truncated", False),
                "_step": info.get("step") or rules.ANSIBLE_STEP,
            }
        )
        if log_group and state["command_id"]:
            state["log_stream"] = "%s/%s/%s/stdout" % (state["command_id"], instance_id, ssm_step_name(state["_step"]))
        if snapshot is not None:
            state["status_at_timeout"] = snapshot.get(instance_id)
        states.append(state)
    return states


def finish_states(states: list[dict]) -> list[dict]:
    """Drop the keys only the CloudWatch reads use."""
    for state in states:
        state.pop("_truncated", None)
        state.pop("_step", None)
    return states


def not_started(batches: list[list[str]], first: int, names: dict[str, str]) -> tuple[list[dict], list[dict]]:
    """Batches ``first`` and later, never sent: their ``batches`` entries and their
    instances' result entries."""
    entries, states = [], []
    for number, batch in enumerate(batches[first - 1 :], start=first):
        entries.append({"batch": number, "instance_ids": batch, "command_ids": [], "status": "not_started"})
        for instance_id in batch:
            states.append(
                {
                    "instance_id": instance_id,
                    "instance_name": names.get(instance_id),
                    "batch": number,
                    "command_id": None,
                    "status": None,
                    "status_details": None,
                    "outcome": rules.NOT_STARTED,
                    "response_code": None,
                    "duration": None,
                    "stdout_tail": [],
                    "stderr_tail": [],
                    "log_stream": None,
                    "changed": False,
                }
            )
    return entries, states


def changed(states: list[dict], ansible: bool) -> bool:
    """Whether the run changed anything: the plays' recaps say (an instance whose recap is
    unknown counts as changed); for another document, whether it ran anywhere."""
    ran = [s for s in states if s["command_id"] and s["response_code"] not in (None, -1)]
    if not ansible:
        return bool(ran)
    return any(s["changed"] is not False for s in ran)


def mark_lost(states: list[dict], lost: dict[str, str]) -> None:
    """The instances a watcher gave up on, whose invocations did not end by themselves:
    outcome ``lost``, and why in ``lost_reason``."""
    for state in states:
        reason = lost.get(state["instance_id"])
        if reason and state["outcome"] in (rules.UNFINISHED, rules.NO_INVOCATION, "cancelled", None):
            state["outcome"] = rules.LOST
            state["lost_reason"] = reason


def timeout_failure(timeout: int, failed: list[dict], number: int, total: int, later: int) -> str:
    """``msg`` when the wait for batch ``number`` ended before every invocation did."""
    reached = ", ".join(
        "%s %s" % (s["instance_id"], s.get("status_at_timeout") or "no invocation") for s in failed[:20]
    )
    head = "timed out after %ss (timeout) waiting for batch %d/%d" % (timeout, number, total)
    return "%s; the command was cancelled. Where each unfinished instance had got to: %s%s" % (
        head,
        reached,
        "" if not later else "; %d instances in later batches were never sent" % later,
    )


def stop_note(stopped: list[dict], in_batch: int) -> str:
    """The end of the message of a batch stopped before it was sent (draining too long)."""
    later = len(stopped) - in_batch
    return "; nothing was sent to the batch, its instances were registered again%s" % (
        "" if not later else "; %d instances in later batches were never sent" % later
    )


def success_message(document: str, instances: int, batches: int, check_mode: bool) -> str:
    return "%s succeeded on %d instance%s in %d batch%s%s" % (
        document,
        instances,
        "" if instances == 1 else "s",
        batches,
        "" if batches == 1 else "es",
        " (check mode: --check on the instances)" if check_mode else "",
    )


# ------------------------------------------------------------------------ the rollout


class Rollout:
    """Runs the batches one after the other and builds the result."""

    def __init__(
        self,
        api: SsmApi,
        options: RolloutOptions,
        check_mode: bool = False,
        report: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        watchers: list[Watcher] | None = None,
    ) -> None:
        self.api = api
        self.options = options
        self.check_mode = check_mode
        self.report = report
        self.clock = clock
        self.sleep = sleep
        if watchers is None:
            watchers = [HostWatcher(api, clock, options.host_check_interval)]
        self.follower = Follower(api, clock, sleep, report, options.poll_max_interval, watchers)
        self.sent: list[str] = []  # command IDs, as soon as each is sent

    def partial(self) -> dict:
        """What a caller returns when the run stopped on an error: the commands already sent."""
        return {"changed": bool(self.sent), "command_ids": list(self.sent)}

    def aws_error_message(self, detail: str | None = None) -> str:
        text = "an AWS call failed in %s" % (self.api.region or "the configured region")
        if detail:
            text += ": %s" % detail
        if self.sent:
            text += (
                "; commands %s were already sent and may still be running: follow them with "
                "aws ssm list-command-invocations --command-id <id>, or stop them with aws ssm cancel-command"
                % ", ".join(self.sent)
            )
        return text

    # -- the whole

    def run(self) -> tuple[dict, str | None]:
        """Returns ``(result, failure_message_or_None)``."""
        opts = self.options
        opts.check()
        document, parameters = document_parameters(opts, self.api.region, self.check_mode)
        targets = resolve_targets(self.api, opts.instance_ids, opts.inventory_hosts, opts.targets)
        online, offline = preflight(self.api, targets.instance_ids, opts.skip_offline)
        batches = rules.plan_batches(online, opts.batches)
        # Tags go to SSM as they are only when SSM would target exactly the same
        # instances in one go: max_concurrency and max_errors then hold fleet-wide.
        by_tags = targets.tag_targets if (targets.tag_targets and len(batches) == 1 and not offline) else None
        result = {
            "changed": False,
            "document_name": document,
            "check_mode": self.check_mode,
            "command_ids": [],
            "batches": [],
            "instances": [],
            "skipped_instances": [dict(o, outcome=rules.SKIPPED) for o in offline],
            "timed_out": False,
        }
        if self.check_mode and not opts.ansible:
            # Only AWS-ApplyAnsiblePlaybooks has a dry run (Check=True); others are not sent.
            return self.not_sent(result, document, batches, len(online), len(offline)), None
        traffic = None
        if opts.target_groups and not self.check_mode:
            traffic = elbv2.BatchTraffic.resolve(
                elbv2.Elbv2Api(self.api.elbv2, self.api.retry),
                opts.target_groups,
                clock=self.clock,
                sleep=self.sleep,
                report=self.report,
            )
        call = send_call(document, parameters, opts)
        states, failure = self.roll_out(result, call, batches, by_tags, targets.names, traffic)
        result["instances"] = states
        result["summary"] = rules.summarize(states + result["skipped_instances"])
        result["changed"] = changed(states, opts.ansible)
        if failure is None:
            result["msg"] = success_message(document, len(states), len(batches), self.check_mode)
        return result, failure

    def not_sent(self, result: dict, document: str, batches: list[list[str]], online: int, offline: int) -> dict:
        """Check mode for a document without a dry run: the plan, nothing sent."""
        result["batches"] = [
            {"batch": n, "instance_ids": b, "command_ids": [], "status": "not_sent_check_mode"}
            for n, b in enumerate(batches, start=1)
        ]
        for entry in result["batches"]:
            self.plan_traffic(entry, len(batches))
        result["changed"] = True
        result["summary"] = {"total": online, "would_run": online, "skipped": offline}
        result["msg"] = "check mode: %s would run on %d instance%s in %d batch%s; nothing was sent" % (
            document,
            online,
            "" if online == 1 else "s",
            len(batches),
            "" if len(batches) == 1 else "es",
        )
        return result

    def plan_traffic(self, entry: dict, total: int) -> None:
        """Check mode with target groups: what would happen to the batch, said and
        returned; no elbv2 call is made."""
        groups = self.options.target_groups
        if not groups:
            return
        entry["target_groups"] = elbv2.plan(groups, entry["instance_ids"])
        if self.report:
            for planned in entry["target_groups"]:
                self.report(
                    "batch %d/%d: check mode: %s would leave %s (draining) before the deploy and rejoin it after"
                    % (entry["batch"], total, elbv2.instance_list(entry["instance_ids"]), planned["target_group"])
                )

    def roll_out(
        self,
        result: dict,
        call: dict,
        batches: list[list[str]],
        by_tags: list | None,
        names: dict[str, str],
        traffic: elbv2.BatchTraffic | None = None,
    ) -> tuple[list[dict], str | None]:
        """Each batch in turn, stopping at the first that fails or when time runs out.
        Fills ``result["batches"]`` and ``result["command_ids"]``; returns the instances'
        entries and the failure message (None on success)."""
        timeout = self.options.timeout
        deadline = self.clock() + timeout
        states: list[dict] = []
        for number, batch in enumerate(batches, start=1):
            if number > 1 and self.clock() >= deadline:
                # Out of time between two batches: the next one is not sent.
                result["timed_out"] = True
                entries, stopped = not_started(batches, number, names)
                result["batches"].extend(entries)
                states.extend(stopped)
                return states, (
                    "timed out after %ss (timeout) with batch %d/%d done; the %d instances of the later batches "
                    "were never sent the command" % (timeout, number - 1, len(batches), len(stopped))
                )
            entry = {"batch": number, "instance_ids": batch, "command_ids": [], "status": "running"}
            result["batches"].append(entry)
            label = "batch %d/%d" % (number, len(batches))
            steps: list[elbv2.Step] = []
            if traffic:
                steps, drain_failure = traffic.take_out(batch, label)
                if drain_failure:
                    stopped = self.stop_draining(result, entry, traffic, steps, batches, number, names)
                    return states + stopped, drain_failure + stop_note(stopped, len(batch))
            elif self.check_mode:
                self.plan_traffic(entry, len(batches))
            sends = send(self.api, call, batch, by_tags, on_sent=self.sent.append)
            entry["command_ids"] = [s["command_id"] for s in sends]
            result["command_ids"].extend(entry["command_ids"])
            snapshot, lost = self.follow(sends, batch, deadline, (number, len(batches)))
            if snapshot is not None:
                result["timed_out"] = True
            batch_states = self.final_states(sends, batch, number, names, snapshot)
            mark_lost(batch_states, lost)
            states.extend(batch_states)
            failed = [s for s in batch_states if s["outcome"] != "success"]
            traffic_failure = None
            if traffic and not failed and snapshot is None:
                unhealthy, traffic_failure = traffic.put_back(batch, label, steps)
                for state in batch_states:
                    if state["instance_id"] in unhealthy:
                        state["outcome"] = UNHEALTHY_IN_TARGET_GROUP
                        state["reason"] = unhealthy[state["instance_id"]]
                failed = [s for s in batch_states if s["outcome"] != "success"]
            elif traffic:
                # A failed batch stays out of service; a rollback that restores it puts it back.
                for step in steps:
                    step.left_out = list(batch)
            if steps:
                entry["target_groups"] = [step.as_dict() for step in steps]
            entry["status"] = "timed_out" if snapshot is not None else ("failed" if failed else "success")
            if failed or snapshot is not None:
                entries, later = not_started(batches, number + 1, names)
                result["batches"].extend(entries)
                states.extend(later)
                if snapshot is not None:
                    message = timeout_failure(timeout, failed, number, len(batches), len(later))
                elif traffic_failure:
                    message = traffic_failure + (
                        "" if not later else "; %d instances in later batches were never sent" % len(later)
                    )
                else:
                    message = rules.failure_message(failed, number, len(batches), len(later))
                if traffic and not traffic_failure:
                    message += "; the batch's instances stay out of %s" % ", ".join(g.label for g in traffic.groups)
                return states, message
        return states, None

    def stop_draining(
        self,
        result: dict,
        entry: dict,
        traffic: elbv2.BatchTraffic,
        steps: list[elbv2.Step],
        batches: list[list[str]],
        number: int,
        names: dict[str, str],
    ) -> list[dict]:
        """A batch whose instances did not drain in time: nothing is sent to it, they are
        registered again (untouched, they still serve the release they had), later
        batches are not started. Returns the entries of this batch's and later instances."""
        traffic.restore(steps)
        entry["status"] = "failed"
        entry["target_groups"] = [step.as_dict() for step in steps]
        entries, stopped = not_started(batches, number, names)
        result["batches"].extend(entries[1:])
        for state in stopped:
            if state["batch"] == number:
                state["outcome"] = DRAIN_TIMED_OUT
                state["reason"] = "did not leave its target group in time; nothing was sent to it"
        return stopped

    def follow(
        self, sends: list[dict], batch: list[str], deadline: float, label: tuple
    ) -> tuple[dict | None, dict[str, str]]:
        """Follow one batch to its end: every invocation over, or only those of instances a
        watcher gave up on left (the follower cancelled those). When the rollout's timeout
        comes first, the commands are cancelled and followed a little longer. Returns
        where each instance had got to at the timeout (None when it did not come) and the
        instances given up on, with why."""
        outcome = self.follower.follow(sends, batch, deadline, label=label)
        lost = dict(self.follower.lost)
        if outcome != TIMEOUT:
            return None, lost
        snapshot = statuses_now(self.api, sends)
        for sent in sends:
            self.api.cancel_command(sent["command_id"])
        self.follower.follow(sends, batch, self.clock() + CANCEL_GRACE, label=label)
        return snapshot, lost

    def final_states(
        self, sends: list[dict], batch: list[str], number: int, names: dict[str, str], snapshot: dict | None
    ) -> list[dict]:
        """Each instance's entry once the batch is over: its invocation (with output),
        completed from CloudWatch Logs when a log group is set."""
        invocations = []
        for sent in sends:
            listed = self.follower.finished.pop(sent["command_id"], None)
            if listed is None or snapshot is not None:
                listed = self.api.list_invocations(sent["command_id"], details=True)
            invocations.extend(listed)
        opts = self.options
        states = instance_states(
            batch, number, invocations, names, opts.tail_lines, opts.cloudwatch_log_group, snapshot
        )
        if opts.cloudwatch_log_group:
            output = CommandOutput(self.api.logs, self.api.region, opts.cloudwatch_log_group, self.clock, self.sleep)
            output.tails(states, opts.tail_lines)
            if opts.ansible:
                output.recaps(states)
            if opts.output_filter:
                output.matches(states, opts.output_filter)
        return finish_states(states)
