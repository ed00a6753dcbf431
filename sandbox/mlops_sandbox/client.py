"""Python helper for the sandbox's control endpoint (``/_sandbox`` on the SSM service).

For tests and benchmarks: create the instances a test needs and remove them, switch
faults, read and reset the per-action SSM call counters. Standard library only::

    from mlops_sandbox.client import Sandbox

    sb = Sandbox()                                     # MLOPS_SANDBOX_* / .sandbox/env settings
    with sb.fleet("simulated", 1000, name="bench", env="test",
                  duration={"kind": "uniform", "low": 5, "high": 30}, failure_share=0.02) as fleet:
        ids = [i["instance_id"] for i in fleet]
        sb.reset_calls()
        ...                                            # run the code under test
        print(sb.calls()["calls"])                     # {"SendCommand": 20, "ListCommandInvocations": 41, ...}

    sb.throttle(0.3)                                   # 30% of SSM calls answer ThrottlingException
    sb.offline([iid]); sb.online([iid])                # the agent stops / resumes answering
    sb.kill([iid], on="start", after=2)                # crash 2 s after its next invocation starts
    sb.delay_delivery(40, [iid])                       # deliveries to it wait 40 s
    sb.clear_faults()
    with sb.timing(connection_lost_after=10, latency=[0.02, 0.08], list_lag=2):
        ...                                            # AWS's timing, faster or slower, then back
"""

from __future__ import annotations

import contextlib
import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator

from .config import Config


class SandboxControlError(RuntimeError):
    """The control endpoint refused or failed; the message is the service's."""


class Sandbox:
    """The sandbox's control API. ``account``: the account whose SSM calls ``throttle``
    throttles and ``calls``/``reset_calls`` count (None: every account's), so tests in
    different accounts can share the sandbox at once."""

    def __init__(self, url: str | None = None, timeout: float = 900, account: str | None = None) -> None:
        self.url = (url or os.environ.get("MLOPS_SANDBOX_CONTROL_URL") or Config().control_url).rstrip("/")
        self.timeout = timeout
        self.account = account

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(  # noqa: S310 - the sandbox's own local URL
            f"{self.url}{path}", data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310
                return json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read()).get("error") or str(exc)
            except ValueError:
                message = str(exc)
            raise SandboxControlError(f"{method} {path}: {message}") from None
        except OSError as exc:
            raise SandboxControlError(
                f"the sandbox's SSM service does not answer at {self.url} ({exc}); is it up (`make sandbox-up`)?"
            ) from None

    def health(self) -> dict:
        return self._call("GET", "/health")

    # -- instances -------------------------------------------------------------------------
    def add_instances(
        self,
        kind: str,
        count: int,
        name: str,
        env: str = "test",
        tags: dict[str, str] | None = None,
        *,
        duration: dict | float | None = None,
        failure_share: float = 0.0,
        failure_code: int = 1,
        output_lines: int = 0,
        seed: int | None = None,
        wait: bool = True,
        account: str | None = None,
    ) -> list[dict]:
        """Launch ``count`` instances of ``kind`` (full | light | simulated) tagged Name=name, env=env.

        ``duration``, ``failure_share``, ``failure_code``, ``output_lines`` and ``seed`` shape
        simulated instances (see ``mlops_sandbox.ssm.simulated``). Container instances are
        Online when this returns (``wait``). ``account``: a name or id of the sandbox's
        accounts (``MLOPS_SANDBOX_ACCOUNTS``: dev, staging, prod), default moto's default one.
        """
        body = {"kind": kind, "count": count, "name": name, "env": env, "tags": tags or {}, "wait": wait}
        if account:
            body["account"] = account
        if kind == "simulated":
            body.update(
                duration=duration,
                failure_share=failure_share,
                failure_code=failure_code,
                output_lines=output_lines,
                seed=seed,
            )
        return self._call("POST", "/instances", body)["instances"]

    def remove_instances(
        self,
        name: str | None = None,
        env: str | None = None,
        kind: str | None = None,
        ids: list[str] | None = None,
        account: str | None = None,
    ) -> list[str]:
        body = {
            k: v
            for k, v in {"name": name, "env": env, "kind": kind, "instance_ids": ids, "account": account}.items()
            if v
        }
        return self._call("POST", "/instances/remove", body)["removed"]

    def instances(
        self, name: str | None = None, env: str | None = None, kind: str | None = None, account: str | None = None
    ) -> list[dict]:
        wanted = {"name": name, "env": env, "kind": kind, "account": account}
        query = "&".join(f"{k}={v}" for k, v in wanted.items() if v)
        return self._call("GET", "/instances" + (f"?{query}" if query else ""))["instances"]

    def ensure_instances(self, kind: str, count: int, name: str, env: str, account: str | None = None) -> list[dict]:
        """At least ``count`` running instances of ``kind`` tagged name/env in ``account`` (restarted, then added)."""
        body = {"kind": kind, "count": count, "name": name, "env": env}
        if account:
            body["account"] = account
        return self._call("POST", "/instances/ensure", body)["instances"]

    @contextlib.contextmanager
    def fleet(self, kind: str, count: int, name: str, env: str = "test", **options) -> Iterator[list[dict]]:
        """Instances for the duration of a ``with`` block, removed afterwards whatever happens."""
        try:
            yield self.add_instances(kind, count, name, env, **options)
        finally:
            self.remove_instances(name=name, env=env)

    # -- faults ---------------------------------------------------------------------------------
    def faults(self) -> dict:
        return self._call("GET", "/faults")

    def throttle(
        self, share: float, actions: list[str] | None = None, limit: int | None = None, seed: int | None = None
    ) -> dict:
        """Answer ``share`` (0..1) of SSM calls (of ``actions``, default all; of this client's
        account, when it has one) with ThrottlingException."""
        return self._call(
            "POST",
            "/faults/throttle",
            {"share": share, "actions": actions, "limit": limit, "seed": seed, "account": self.account},
        )

    def offline(self, ids: list[str]) -> list[str]:
        return self._call("POST", "/faults/offline", {"instance_ids": ids})["offline"]

    def online(self, ids: list[str]) -> list[str]:
        return self._call("POST", "/faults/online", {"instance_ids": ids})["online"]

    def kill(self, ids: list[str], on: str = "now", after: float = 0.0) -> list[str]:
        return self._call("POST", "/faults/kill", {"instance_ids": ids, "on": on, "after": after})["killed"]

    def delay_delivery(self, seconds: float, ids: list[str] | None = None) -> dict:
        return self._call("POST", "/faults/delay", {"seconds": seconds, "instance_ids": ids})

    def clear_faults(self) -> dict:
        return self._call("POST", "/faults/clear", {})

    # -- AWS's timing (ssm/timing.py) -------------------------------------------------------------
    def settings(self, **changes) -> dict:
        """The SSM service's timing; with keyword arguments (``connection_lost_after``,
        ``latency=[low, high]``, ``list_lag``), change those first."""
        if changes:
            return self._call("POST", "/settings", changes)
        return self._call("GET", "/settings")

    def reset_settings(self) -> dict:
        """Back to the service's start-up settings (AWS's, unless the environment said otherwise)."""
        return self._call("POST", "/settings/reset", {})

    @contextlib.contextmanager
    def timing(self, **changes) -> Iterator[dict]:
        """These settings for the duration of a ``with`` block, the previous ones back afterwards."""
        before = {k: v for k, v in self.settings().items() if k != "start"}
        try:
            yield self.settings(**changes)
        finally:
            self.settings(**before)

    # -- API call counters -------------------------------------------------------------------------
    def calls(self) -> dict:
        """``{"calls": {action: n}, "throttled": {action: n}, "total": n}`` since the last reset
        (of this client's account, when it has one)."""
        return self._call("GET", "/calls" + (f"?account={self.account}" if self.account else ""))

    def call_log(self, since: float | None = None) -> list[dict]:
        """The call log of every component (``mlops_sandbox.calls``), oldest first, identities resolved."""
        return self._call("GET", "/calls/log" + (f"?since={since}" if since is not None else ""))["calls"]

    def reset_calls(self) -> dict:
        """Reset the counters (of this client's account, when it has one); returns what they were."""
        return self._call("POST", "/calls/reset", {"account": self.account})
