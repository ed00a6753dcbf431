# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Following the commands of one batch until every invocation is terminal.

PRIVATE to the mlops.deploy collection (the leading ``_`` says so): no stability
promise to other collections.

``Follower.follow`` polls; each poll is one ``Poll`` value. *Watchers* plug in per
poll: a watcher is a callable ``watcher(poll) -> {instance_id: reason}`` naming the
instances not worth waiting for any more (an instance whose SSM agent stopped
answering while its invocation is still InProgress, say: ``_ssm_watch.HostWatcher``).
The follower keeps them in ``lost``, cancels their invocations at once, and ends the
wait (outcome ``"lost"``) once every invocation still running is a lost instance's; the
rollout then reports each of them as a failure, with why.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code

from ansible_collections.mlops.deploy.plugins.module_utils import _ssm_run as rules
from ansible_collections.mlops.deploy.plugins.module_utils._ssm_api import SsmApi

# Seconds after sending during which missing invocations are expected (SSM creates them).
MISSING_GRACE = 5.0

DONE, TIMEOUT, LOST = "done", "timeout", "lost"

# A command of more than EARLY_READ_PAGES pages is read while it runs, once at most
# EARLY_READ_LEFT of its invocations are left: at its end, only the invocations still
# running then are read (one call each, side by side), not every page one after the other.
# Reading earlier shortens the wait after the last one ends and costs one call more for
# each instance still running when its page is read: at 35 left, a 1,000-instance command
# ending at 40 a second costs about 10 calls more and is known within a second (bench/).
EARLY_READ_PAGES = 4
EARLY_READ_LEFT = 35


@dataclass
class Poll:
    """What one poll saw. ``running`` lists the instances not terminal yet when the
    poll read every invocation (one page); when it read the commands' counters, the
    instances of the commands not over yet (some of them may be done)."""

    number: int
    elapsed: float
    done: bool
    phrase: str | None
    completed: int
    running: list[str] | None = None
    invocations: list[dict] = field(default_factory=list)


Watcher = Callable[[Poll], dict]


class Follower:
    """Follows the commands of one batch until every invocation is terminal.

    One page of invocations (one command, at most 50 instances): polls
    ListCommandInvocations, which gives every instance's Status at each poll.
    Bigger: polls ListCommands (one call for up to 50 commands), whose counters say
    how many invocations completed, and lists each command's invocations (50 a page)
    once, when that command is over; a command of more than ``EARLY_READ_PAGES`` pages is
    listed once ``EARLY_READ_LEFT`` or fewer are left, and at its end only the ones still
    running then are read. The delay between polls comes from ``_ssm_run.PollSchedule``.
    """

    def __init__(
        self,
        api: SsmApi,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        report: Callable[[str], None] | None = None,
        poll_max_interval: float = 5.0,
        watchers: list[Watcher] | None = None,
    ) -> None:
        self.api = api
        self.clock = clock
        self.sleep = sleep
        self.report = report
        self.poll_max_interval = poll_max_interval
        self.watchers = list(watchers or [])
        self.polls = 0
        self.finished: dict[str, list[dict]] = {}  # command ID -> its invocations (Details), once it is over
        self.lost: dict[str, str] = {}  # instance ID -> why a watcher gave up on it
        self.owners: dict[str, str] = {}  # instance ID -> the command that targets it
        self.left: dict[str, tuple[int, list[str]]] = {}  # open command -> (invocations not done, its instances)
        self.early: dict[str, tuple[int, dict[str, dict], list[str]]] = {}  # read early: (targets, over, running)

    def follow(self, sends: list[dict], expected: list[str], deadline: float, label: tuple | None = None) -> str:
        """Poll until done, ``deadline`` (clock time) or every running instance lost.
        Returns ``"done"``, ``"timeout"`` or ``"lost"``.

        In the ListCommands mode, the invocations of each command are listed (with their
        output) as soon as that command is over, and kept in ``self.finished``: when the
        last one ends, only its own command remains to be read.
        """
        self.lost, self.left, self.early = {}, {}, {}
        command_ids = [send["command_id"] for send in sends]
        self.owners = {}
        for sent in sends:
            for instance_id in sent.get("instance_ids") or (expected if len(sends) == 1 else []):
                self.owners[instance_id] = sent["command_id"]
        invoked_after = min((send.get("requested") for send in sends if send.get("requested")), default=None)
        one_page = len(command_ids) == 1 and len(expected) <= rules.LIST_PAGE_MAX
        schedule = rules.PollSchedule(cap=self.poll_max_interval)
        started = polled = self.clock()
        delay, last_phrase = schedule.floor, None
        while True:
            # The schedule's delay runs from the start of the last poll: a poll that took
            # long (a command's every page, read near its end) is not followed by a full wait.
            self.sleep(max(0.0, min(delay - (self.clock() - polled), deadline - self.clock())))
            polled = self.clock()
            self.polls += 1
            elapsed = self.clock() - started
            try:
                poll = self.poll(command_ids, expected, one_page, invoked_after, elapsed)
            except is_boto3_error_code("InvalidCommandId"):
                # Right after SendCommand, SSM may not know the command yet.
                if self.clock() - started > MISSING_GRACE:
                    raise
                poll = Poll(self.polls, elapsed, False, last_phrase, schedule.completed)
            if self.report and label and poll.phrase and poll.phrase != last_phrase:
                self.report(rules.progress_line(label[0], label[1], len(expected), poll.phrase, self.clock() - started))
            last_phrase = poll.phrase
            if poll.done:
                return DONE
            if self.watch(poll):
                return LOST
            if self.clock() >= deadline:
                return TIMEOUT
            delay = schedule.observe(self.clock(), poll.completed, len(expected))

    def watch(self, poll: Poll) -> bool:
        """Ask each watcher about this poll; the instances newly given up on have their
        invocations cancelled. True when only lost instances' invocations are left."""
        for watcher in self.watchers:
            found = {k: v for k, v in (watcher(poll) or {}).items() if k not in self.lost}
            self.lost.update(found)
            self.cancel(sorted(found))
        if not self.lost:
            return False
        if self.left:  # the counters' mode: per open command, no more left than lost
            return all(
                count <= sum(1 for i in instance_ids if i in self.lost) for count, instance_ids in self.left.values()
            )
        return bool(poll.running) and all(instance_id in self.lost for instance_id in poll.running)

    def cancel(self, instance_ids: list[str]) -> None:
        """CancelCommand for these instances' invocations, one call per command."""
        by_command: dict[str, list[str]] = {}
        for instance_id in instance_ids:
            if instance_id in self.owners:
                by_command.setdefault(self.owners[instance_id], []).append(instance_id)
        for command_id, ids in by_command.items():
            self.api.cancel_command(command_id, ids)

    def poll(
        self, command_ids: list[str], expected: list[str], one_page: bool, invoked_after: str | None, elapsed: float
    ) -> Poll:
        """One poll of the batch's commands."""
        if one_page:
            invocations = self.api.list_invocations(command_ids[0])
            fold = rules.fold_statuses(expected, invocations)
            if not fold["done"] and only_missing_left(fold, invocations, elapsed):
                over = rules.commands_terminal(self.api.list_commands(command_ids), command_ids)
                fold = rules.fold_statuses(expected, invocations, over)
            states = fold["instances"].values()
            return Poll(
                self.polls,
                elapsed,
                fold["done"],
                rules.status_phrase(fold["counts"]),
                sum(1 for s in states if s["outcome"] is not None),
                running=[s["instance_id"] for s in states if s["outcome"] is None],
                invocations=invocations,
            )
        commands = self.api.list_commands(command_ids, invoked_after)
        counters = rules.command_counts(commands)
        self.left = {}
        for command in commands:
            cid = command["CommandId"]
            if cid not in self.finished and rules.commands_terminal([command], [cid]):
                self.finished[cid] = self.read_over(cid)
            elif cid not in self.finished:
                targets = int(command.get("TargetCount") or 0)
                left = targets - int(command.get("CompletedCount") or 0)
                self.left[cid] = (left, [i for i, owner in self.owners.items() if owner == cid])
                big = targets > EARLY_READ_PAGES * rules.LIST_PAGE_MAX
                if big and left <= EARLY_READ_LEFT and cid not in self.early:
                    self.read_early(cid, targets)
        return Poll(
            self.polls,
            elapsed,
            rules.commands_terminal(commands, command_ids),
            rules.counters_phrase(counters),
            counters["completed"],
            running=[i for entry in self.left.values() for i in entry[1]],
        )

    def read_early(self, command_id: str, targets: int) -> None:
        """Every page of a command near its end: the invocations over are kept, the
        instances of the others noted."""
        over, running = {}, []
        for entry in self.api.list_invocations(command_id, details=True):
            if entry.get("Status") in rules.RUNNING_STATUSES:
                running.append(entry["InstanceId"])
            else:
                over[entry["InstanceId"]] = entry
        self.early[command_id] = (targets, over, running)

    def read_over(self, command_id: str) -> list[dict]:
        """The invocations of a command that is over: those read early and the ones still
        running then, one call each; every page when it was not read early, or when the
        early read did not list every target (SSM still creating them)."""
        if command_id not in self.early:
            return self.api.list_invocations(command_id, details=True)
        targets, over, running = self.early.pop(command_id)
        if len(over) + len(running) < targets:
            return self.api.list_invocations(command_id, details=True)
        return list(over.values()) + self.api.invocations_of(command_id, running)


def only_missing_left(fold: dict, invocations: list[dict], elapsed: float) -> bool:
    """Every instance is over or has no invocation, and some have none: ask whether the
    command is over (not in the first seconds, while SSM creates them)."""
    states = fold["instances"].values()
    waiting = all(s["outcome"] is not None or s["status"] is None for s in states)
    return waiting and (bool(invocations) or elapsed > MISSING_GRACE)
