"""Commands and their invocations, moving through the statuses AWS gives them.

One lock guards all state. A scheduler thread sends invocations as MaxConcurrency allows,
stops a command that exceeded MaxErrors, times out what was not delivered in time,
expires what never came back, and plays simulated instances. Agents in containers take
their work through ``poll`` (a long poll, as the SSM agent's) and report through
``update``; an invocation is InProgress only once its agent acknowledged it, and is
Delayed while its agent does not answer.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from . import fold, simulated
from .cwlogs import LogWriter, default_group
from .documents import Document, Step
from .faults import Faults
from .instances import Instance, Registry
from .timing import Timing

log = logging.getLogger("mlops_sandbox.ssm.engine")

ACK_TIMEOUT = 10.0  # an offered invocation not acknowledged by then is Delayed and offered again
OUTPUT_CAP = 2 * 1024 * 1024  # characters of each stream kept in memory (CloudWatch gets all)
SIM_LATENCY = 0.2  # seconds from "sent" to "started" on a simulated instance


@dataclass(eq=False)
class Plugin:
    step: Step
    details: str = "Pending"
    code: int = -1
    started: float | None = None
    finished: float | None = None
    stdout: str = ""
    stderr: str = ""

    @property
    def status(self) -> str:
        return fold.PLUGIN_STATUS[self.details]

    @property
    def terminal(self) -> bool:
        return self.details in fold.TERMINAL


@dataclass(eq=False)
class Invocation:
    command: Command
    instance: Instance
    plugins: list[Plugin]
    details: str = "Pending"
    dispatched: float | None = None
    offered: float | None = None
    not_before: float = 0.0
    started: float | None = None
    finished: float | None = None
    cancel: bool = False
    cancel_sent: float | None = None
    sim_scheduled: bool = False

    @property
    def status(self) -> str:
        return fold.INVOCATION_STATUS[self.details]

    @property
    def terminal(self) -> bool:
        return self.details in fold.TERMINAL

    @property
    def instance_id(self) -> str:
        return self.instance.instance_id

    def plugin(self, name: str) -> Plugin | None:
        return next((p for p in self.plugins if p.step.name == name), None)

    @property
    def current(self) -> Plugin:
        """The plugin the invocation-level view reports: the last one that started (or the first)."""
        started = [p for p in self.plugins if p.started is not None]
        return started[-1] if started else self.plugins[0]


@dataclass(eq=False)
class Command:
    id: str
    document: Document
    version: str
    comment: str
    parameters: dict
    instance_ids: list[str]
    targets: list[dict]
    requested: float
    timeout: int
    max_concurrency: str
    max_errors: str
    cloudwatch: dict
    steps: list[Step]
    account: str = ""  # the account of the caller that sent it: only that account's callers see it
    concurrency: int = 50
    errors_allowed: int = 0
    no_targets: bool = False
    cancel_requested: bool = False
    invocations: dict[str, Invocation] = field(default_factory=dict)
    next_index: int = 0
    done: bool = False

    @property
    def expires_after(self) -> float:
        return self.requested + self.timeout + sum(step.timeout or 0 for step in self.steps)

    @property
    def log_group(self) -> str | None:
        if not self.cloudwatch.get("CloudWatchOutputEnabled"):
            return None
        return self.cloudwatch.get("CloudWatchLogGroupName") or default_group(self.document.name)

    def status(self) -> tuple[str, str]:
        details = [inv.details for inv in self.invocations.values()]
        return fold.command_status(
            details, self.errors_allowed, cancel_requested=self.cancel_requested, no_targets=self.no_targets
        )


class Engine:
    def __init__(
        self,
        registry: Registry,
        faults: Faults,
        logs: LogWriter | None,
        timing: Timing,
        on_kill: Callable[[Instance], None] | None = None,
    ) -> None:
        self.registry = registry
        self.lock = registry.lock
        self.faults = faults
        self.logs = logs
        self.timing = timing
        self.on_kill = on_kill
        self.commands: dict[str, Command] = {}
        self.active: dict[str, Command] = {}
        self.by_instance: dict[str, set[Invocation]] = {}
        self.events: list[tuple[float, int, Callable[[float], None]]] = []
        self.seq = itertools.count()
        self.sim_rngs: dict[str, object] = {}
        self.wake = threading.Condition(self.lock)
        self.stopped = False
        self.thread = threading.Thread(target=self._loop, name="ssm-scheduler", daemon=True)

    @property
    def ping_timeout(self) -> float:
        """Seconds of silence before an agent is ConnectionLost (a setting, see timing.py)."""
        return self.timing.connection_lost_after

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        with self.lock:
            self.stopped = True
            self.wake.notify_all()

    # -- the API side ------------------------------------------------------------
    def submit(self, command: Command, instances: list[Instance]) -> None:
        with self.lock:
            for inst in instances:
                plugins = [Plugin(step) for step in command.steps]
                command.invocations[inst.instance_id] = Invocation(command, inst, plugins)
            command.concurrency = fold.concurrency_limit(command.max_concurrency, len(instances))
            command.errors_allowed = fold.error_limit(command.max_errors, len(instances))
            command.no_targets = not instances
            self.commands[command.id] = command
            self.active[command.id] = command
            self.wake.notify_all()

    def cancel(self, command: Command, instance_ids: list[str] | None) -> None:
        now = time.time()
        with self.lock:
            if instance_ids is None:
                command.cancel_requested = True
            for inv in command.invocations.values():
                if inv.terminal or (instance_ids is not None and inv.instance_id not in instance_ids):
                    continue
                inv.cancel = True
                if inv.started is None:
                    self._finish(inv, "Cancelled", now)
                elif inv.instance.kind == "simulated":
                    self._finish(inv, "Cancelled", now, code=137)
                else:
                    inv.details = "Cancelling"
                    for plugin in inv.plugins:
                        if plugin.details == "InProgress":
                            plugin.details = "Cancelling"
                    inv.instance.cond.notify_all()
            self.wake.notify_all()

    def instances_removed(self, instances: list[Instance]) -> None:
        """The instances are gone (terminated): what was not started there cannot be delivered."""
        now = time.time()
        with self.lock:
            for command in self.active.values():
                for inst in instances:
                    inv = command.invocations.get(inst.instance_id)
                    if inv is not None and not inv.terminal and inv.started is None:
                        self._finish(inv, "Undeliverable", now)
            self.wake.notify_all()

    def release_held(self) -> int:
        """Deliveries held by a delay fault go now (the faults were cleared): a delay is
        fixed when a command is sent, so without this a cleared delay still holds the
        invocations sent under it. Returns how many were held."""
        now = time.time()
        held = 0
        with self.lock:
            for command in self.active.values():
                for inv in command.invocations.values():
                    if inv.terminal or inv.started is not None or inv.not_before <= now:
                        continue
                    held += 1
                    inv.not_before = now
                    if inv.instance.kind == "simulated":
                        if inv.sim_scheduled:  # _sim_start runs once: the later event finds it started
                            self._at(now + SIM_LATENCY, lambda t, inv=inv: self._sim_start(inv, t))
                    elif inv.instance.cond is not None:
                        inv.instance.cond.notify_all()
            self.wake.notify_all()
        return held

    def instance_back(self, inst: Instance) -> None:
        with self.lock:
            self.wake.notify_all()
            if inst.cond is not None:
                inst.cond.notify_all()

    # -- the agent side ----------------------------------------------------------
    def poll(self, instance_id: str, wait: float) -> list[dict] | None:
        """Work for an agent: run and cancel messages; waits up to ``wait`` seconds for some."""
        deadline = time.time() + wait
        with self.lock:
            while True:
                inst = self.registry.get(instance_id)
                if inst is None or self.stopped:
                    return None
                now = time.time()
                inst.last_ping = now
                messages, ready_at = self._messages(inst, now)
                if messages or now >= deadline:
                    return messages
                inst.cond.wait(timeout=max(0.01, min(deadline, ready_at) - now))

    def update(self, instance_id: str, report: dict) -> dict:
        """An agent reports progress of one invocation; the answer tells it to go on or stop."""
        now = time.time()
        with self.lock:
            inst = self.registry.get(instance_id)
            command = self.commands.get(report.get("command_id", ""))
            inv = command.invocations.get(instance_id) if command else None
            if inst is None or inv is None or inv.terminal:
                return {"abort": True}
            inst.last_ping = now
            if inv.started is None:
                self._start(inv, now)
            for name, state in (report.get("plugins") or {}).items():
                plugin = inv.plugin(name)
                if plugin is None or plugin.terminal:
                    continue
                if state.get("started") and plugin.started is None:
                    plugin.started = float(state["started"])
                    plugin.details = "Cancelling" if inv.cancel else "InProgress"
                self._output(inv, plugin, state.get("stdout", ""), state.get("stderr", ""))
                if state.get("details") in fold.TERMINAL:
                    plugin.details = state["details"]
                    plugin.code = int(state.get("code", -1))
                    plugin.finished = float(state.get("finished") or now)
                    self._output(inv, plugin, "", "", final=True)
            if report.get("done"):
                self._finish(inv, fold.invocation_details([p.details for p in inv.plugins]), now)
            self.wake.notify_all()
            return {"abort": False, "cancel": inv.cancel}

    # -- internals -----------------------------------------------------------------
    def _messages(self, inst: Instance, now: float) -> tuple[list[dict], float]:
        messages: list[dict] = []
        ready_at = float("inf")
        for inv in list(self.by_instance.get(inst.instance_id, ())):
            if inv.terminal:
                continue
            if inv.started is None:
                if inv.not_before > now:
                    ready_at = min(ready_at, inv.not_before)
                    continue
                if inv.offered is None or now - inv.offered >= ACK_TIMEOUT:
                    inv.offered = now
                    messages.append(self._run_message(inv))
            elif inv.cancel and (inv.cancel_sent is None or now - inv.cancel_sent >= ACK_TIMEOUT):
                inv.cancel_sent = now
                messages.append({"type": "cancel", "command_id": inv.command.id})
        return messages, ready_at

    @staticmethod
    def _run_message(inv: Invocation) -> dict:
        command = inv.command
        return {
            "type": "run",
            "command_id": command.id,
            "instance_id": inv.instance_id,
            "document_name": command.document.name,
            "steps": [
                {"name": s.name, "action": s.action, "inputs": s.inputs, "timeout": s.timeout} for s in command.steps
            ],
        }

    def _start(self, inv: Invocation, now: float) -> None:
        inv.started = now
        inv.details = "Cancelling" if inv.cancel else "InProgress"
        after = self.faults.take_kill(inv.instance_id)
        if after is not None and self.on_kill is not None:
            inst = inv.instance
            timer = threading.Timer(after, self.on_kill, args=(inst,))
            timer.daemon = True
            timer.start()

    def _finish(self, inv: Invocation, details: str, now: float, code: int | None = None) -> None:
        inv.details = details
        inv.finished = now
        for plugin in inv.plugins:
            if plugin.terminal:
                continue
            if plugin.started is not None and code is not None:
                plugin.code = code
            plugin.details = details
            plugin.finished = now if plugin.started is not None else None
            self._output(inv, plugin, "", "", final=True)
        self.by_instance.get(inv.instance_id, set()).discard(inv)
        if inv.instance.cond is not None:
            inv.instance.cond.notify_all()

    def _output(self, inv: Invocation, plugin: Plugin, stdout: str, stderr: str, final: bool = False) -> None:
        if stdout and len(plugin.stdout) < OUTPUT_CAP:
            plugin.stdout += stdout[: OUTPUT_CAP - len(plugin.stdout)]
        if stderr and len(plugin.stderr) < OUTPUT_CAP:
            plugin.stderr += stderr[: OUTPUT_CAP - len(plugin.stderr)]
        group = inv.command.log_group
        if group and self.logs is not None and (stdout or stderr or final):
            prefix = f"{inv.command.id}/{inv.instance_id}/{plugin.step.stream}"
            self.logs.write(group, f"{prefix}/stdout", stdout, final)
            self.logs.write(group, f"{prefix}/stderr", stderr, final)

    def _dispatch(self, inv: Invocation, now: float) -> None:
        inst = inv.instance
        inv.dispatched = now
        if self.registry.get(inv.instance_id) is None:
            self._finish(inv, "Undeliverable", now)
            return
        inv.not_before = now + self.faults.delivery_delay(inv.instance_id)
        if inst.ping_status(now, self.ping_timeout) != "Online":
            inv.details = "Delayed"
        if inst.kind == "simulated":
            self._sim_schedule(inv, now)
        else:
            self.by_instance.setdefault(inv.instance_id, set()).add(inv)
            inst.cond.notify_all()

    def _tick(self, now: float) -> float:
        next_at = now + 30.0
        for command in list(self.active.values()):
            deliver_by = command.requested + command.timeout
            for inv in command.invocations.values():
                if inv.terminal:
                    continue
                if inv.started is None:
                    if now >= deliver_by:
                        self._finish(inv, "DeliveryTimedOut", now)
                        continue
                    next_at = min(next_at, deliver_by)
                    if inv.dispatched is not None and inv.instance.kind != "simulated":
                        if inv.offered is not None and now - inv.offered >= ACK_TIMEOUT:
                            inv.details = "Delayed"
                            inv.instance.cond.notify_all()
                        elif inv.offered is not None:
                            next_at = min(next_at, inv.offered + ACK_TIMEOUT)
                        elif inv.instance.ping_status(now, self.ping_timeout) != "Online":
                            inv.details = "Delayed"
                    elif inv.dispatched is not None and not inv.sim_scheduled:
                        self._sim_schedule(inv, now)
                elif now >= command.expires_after:
                    self._finish(inv, "Cancelled" if inv.cancel else "DeliveryTimedOut", now)
                else:
                    next_at = min(next_at, command.expires_after)
            details = [inv.details for inv in command.invocations.values()]
            if fold.limit_exceeded(details, command.errors_allowed):
                for inv in command.invocations.values():
                    if not inv.terminal and inv.started is None:
                        self._finish(inv, "Terminated", now)
            else:
                self._dispatch_more(command, now)
            if all(inv.terminal for inv in command.invocations.values()):
                command.done = True
                del self.active[command.id]
        while self.events and self.events[0][0] <= now:
            _at, _seq, action = heapq.heappop(self.events)
            action(now)
        if self.events:
            next_at = min(next_at, self.events[0][0])
        return next_at

    def _dispatch_more(self, command: Command, now: float) -> None:
        invocations = list(command.invocations.values())
        in_flight = sum(1 for inv in invocations if inv.dispatched is not None and not inv.terminal)
        while in_flight < command.concurrency and command.next_index < len(invocations):
            inv = invocations[command.next_index]
            command.next_index += 1
            if inv.terminal:
                continue
            self._dispatch(inv, now)
            if not inv.terminal:
                in_flight += 1

    def _loop(self) -> None:
        with self.lock:
            while not self.stopped:
                now = time.time()
                try:
                    next_at = self._tick(now)
                except Exception:  # the scheduler must survive a bug in one command
                    log.exception("scheduler tick failed")
                    next_at = now + 1.0
                self.wake.wait(timeout=max(0.02, next_at - time.time()))

    # -- simulated instances -------------------------------------------------------
    def _at(self, when: float, action: Callable[[float], None]) -> None:
        heapq.heappush(self.events, (when, next(self.seq), action))
        self.wake.notify_all()

    def _sim_schedule(self, inv: Invocation, now: float) -> None:
        inst = inv.instance
        if inst.offline or inst.killed:
            inv.details = "Delayed"
            inv.sim_scheduled = False
            return
        inv.sim_scheduled = True
        self._at(max(now, inv.not_before) + SIM_LATENCY, lambda t: self._sim_start(inv, t))

    def _sim_start(self, inv: Invocation, now: float) -> None:
        if inv.terminal or inv.started is not None:
            return
        inst = inv.instance
        if inst.offline or inst.killed or self.registry.get(inv.instance_id) is None:
            inv.details = "Delayed"
            inv.sim_scheduled = False
            return
        self._start(inv, now)
        self._sim_step(inv, 0, now)

    def _sim_step(self, inv: Invocation, index: int, now: float) -> None:
        plugin = inv.plugins[index]
        inst = inv.instance
        rng = self.sim_rngs.setdefault(inst.instance_id, inst.sim.rng(inst.instance_id))
        result = simulated.outcome(inst.sim, rng, inv.command.document.name, inst.instance_id, plugin.step.name)
        plugin.started = now
        plugin.details = "InProgress"
        limit = plugin.step.timeout
        timed_out = limit is not None and result.duration > limit
        end = now + (limit if timed_out else result.duration)
        self._at(end, lambda t: self._sim_end(inv, index, result, timed_out, t))

    def _sim_end(self, inv: Invocation, index: int, result: simulated.Outcome, timed_out: bool, now: float) -> None:
        inst = inv.instance
        if inv.terminal or inst.killed:
            return  # cancelled, or the machine died with the work: it will expire
        if inst.offline:
            # The agent finished but cannot report until it answers again.
            self._at(now + 0.5, lambda t: self._sim_end(inv, index, result, timed_out, t))
            return
        plugin = inv.plugins[index]
        if timed_out:
            self._output(inv, plugin, result.stdout, "")
            plugin.code, plugin.details = 137, "ExecutionTimedOut"
        else:
            self._output(inv, plugin, result.stdout, result.stderr)
            plugin.code, plugin.details = result.code, ("Success" if result.code == 0 else "Failed")
        plugin.finished = now
        self._output(inv, plugin, "", "", final=True)
        if index + 1 < len(inv.plugins):
            self._sim_step(inv, index + 1, now)
        else:
            self._finish(inv, fold.invocation_details([p.details for p in inv.plugins]), now)
