# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What a rollout reads from CloudWatch Logs once a batch is over: the whole tails of
failed instances whose invocation output SSM cut, the PLAY RECAPs SSM cut off, and the
lines matching ``output_filter``.

PRIVATE to the mlops.deploy collection (the leading ``_`` says so): no stability
promise to other collections. The agent uploads output while and after a step runs,
so each read is repeated until it settled (``settle``), at most CLOUDWATCH_SETTLE
seconds. Each method fills per-instance state dicts (``_ssm_rollout.final_states``),
which carry ``_truncated`` and ``_step`` while this runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from ansible_collections.mlops.deploy.plugins.module_utils import _ssm_run as rules
from ansible_collections.mlops.deploy.plugins.module_utils._cloudwatch_logs import LogReader, LogsError

# CloudWatch tails are fetched for at most this many failed instances (the rest come
# from the invocation output), so that a fleet-wide failure stays a few calls.
CLOUDWATCH_TAILS_MAX = 10
# CloudWatch output lags behind the invocation's status: read again for up to this long.
CLOUDWATCH_SETTLE = 15.0


class CommandOutput:
    """The instances' output in one log group, read through ``_cloudwatch_logs.LogReader``."""

    def __init__(
        self,
        logs: Any,
        region: str | None,
        group: str,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.reader = LogReader(logs, region)
        self.group = group
        self.clock = clock
        self.sleep = sleep

    def tails(self, states: list[dict], tail_lines: int) -> None:
        """``stdout_tail``/``stderr_tail`` of failed instances whose invocation output SSM
        cut (it keeps the first 2,500 characters), from their CloudWatch streams, whole."""
        wanted = [s for s in states if s["outcome"] != "success" and s["command_id"] and s["_truncated"]]
        pending = {
            (s["instance_id"], output): s for s in wanted[:CLOUDWATCH_TAILS_MAX] for output in ("stdout", "stderr")
        }

        def read(key: tuple) -> list[str] | None:
            state, output = pending[key], key[1]
            selection = {
                "ssm_command_id": state["command_id"],
                "instance_id": state["instance_id"],
                "step": state["_step"],
                "output": output,
            }
            try:
                events = self.reader.read(self.group, selection, tail_lines=tail_lines)["events"]
            except LogsError:
                return None  # no such stream (yet)
            return [event["message"] for event in events]

        def settled(key: tuple, lines: list[str] | None, before: list[str] | None) -> bool:
            # The stream is whole once it ends with a play recap, or once it stopped growing.
            if key[1] == "stdout" and rules.parse_recap("\n".join(lines or [])):
                return True
            return lines is not None and lines == before

        for key, lines in self.settle(pending, read, settled).items():
            if lines:
                pending[key][key[1] + "_tail"] = rules.tail("\n".join(lines), tail_lines)

    def recaps(self, states: list[dict]) -> None:
        """``changed`` of instances whose PLAY RECAP SSM cut from the invocation output."""
        waiting: dict[str, dict[str, dict]] = {}
        for state in states:
            if state["changed"] is None and state["_truncated"] and state["response_code"] not in (None, -1):
                waiting.setdefault(state["command_id"], {})[state["instance_id"]] = state

        def read(command_id: str) -> dict:
            lines = self._by_instance(command_id, rules.ANSIBLE_STEP, '"unreachable="')
            return {iid: rules.parse_recap("\n".join(found)) for iid, found in lines.items()}

        def settled(command_id: str, recaps: dict, _before: object) -> bool:
            return all(recaps.get(iid) for iid in waiting[command_id])

        for command_id, recaps in self.settle(waiting, read, settled).items():
            for instance_id, state in waiting[command_id].items():
                state["changed"] = rules.recap_changed(recaps.get(instance_id))

    def matches(self, states: list[dict], pattern: str) -> None:
        """``output_lines``: each instance's stdout lines matching ``pattern`` (a CloudWatch
        filter pattern), whatever SSM cut from the invocation output: one FilterLogEvents
        (paged) per command, read again until every instance whose playbook ran has a
        match or the output settled."""
        by_command: dict[str, dict[str, dict]] = {}
        for state in states:
            state["output_lines"] = []
            if state["command_id"]:
                by_command.setdefault(state["command_id"], {})[state["instance_id"]] = state

        def read(command_id: str) -> dict[str, list[str]]:
            step = next(iter(by_command[command_id].values()))["_step"]
            return self._by_instance(command_id, step, pattern)

        def settled(command_id: str, lines: dict, before: dict | None) -> bool:
            ran = [iid for iid, s in by_command[command_id].items() if s["response_code"] == 0]
            return all(lines.get(iid) for iid in ran) or lines == before

        for command_id, lines in self.settle(by_command, read, settled).items():
            for instance_id, state in by_command[command_id].items():
                state["output_lines"] = lines.get(instance_id, [])

    def _by_instance(self, command_id: str, step: str, pattern: str) -> dict[str, list[str]]:
        """``{instance_id: stdout lines matching pattern}`` of one command (no stream yet: {})."""
        selection = {"ssm_command_id": command_id, "step": step, "output": "stdout"}
        try:
            events = self.reader.read(self.group, selection, pattern=pattern)["events"]
        except LogsError:
            return {}
        lines: dict[str, list[str]] = {}
        for event in events:
            parts = (event.get("stream") or "").split("/")
            if len(parts) == 4:
                lines.setdefault(parts[1], []).append(event["message"])
        return lines

    def settle(self, keys: Iterable, read: Callable, settled: Callable) -> dict:
        """Read each key until ``settled(key, value, previous)`` or CLOUDWATCH_SETTLE
        seconds passed; returns the last value read for each."""
        deadline = self.clock() + CLOUDWATCH_SETTLE
        values: dict = {}
        previous: dict = {}
        todo = list(keys)
        while todo:
            for key in todo:
                values[key] = read(key)
            todo = [key for key in todo if not settled(key, values[key], previous.get(key))]
            if not todo or self.clock() >= deadline:
                return values
            previous.update((key, values[key]) for key in todo)
            self.sleep(1.0)
        return values
