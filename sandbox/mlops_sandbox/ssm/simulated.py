"""Simulated instances: no container; the service plays their agent.

An invocation sent to one starts after the delivery latency and ends after a duration
drawn from the instance's distribution, failing for a configurable share of runs. Their
output looks like what the document would print, so API answers have the same shape as
for real instances.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

KINDS = ("fixed", "uniform", "normal", "lognormal", "exponential")


@dataclass(frozen=True)
class Distribution:
    """Seconds an invocation runs. ``spec`` examples::

    {"kind": "fixed", "seconds": 5}
    {"kind": "uniform", "low": 2, "high": 20}
    {"kind": "normal", "mean": 30, "stddev": 5}           (clipped at 0)
    {"kind": "lognormal", "median": 20, "sigma": 0.5}
    {"kind": "exponential", "mean": 10}
    """

    kind: str = "fixed"
    args: dict = field(default_factory=lambda: {"seconds": 1.0})

    _REQUIRED = {  # class constant (no annotation: not a field)
        "fixed": ("seconds",),
        "uniform": ("low", "high"),
        "normal": ("mean", "stddev"),
        "lognormal": ("median", "sigma"),
        "exponential": ("mean",),
    }

    @classmethod
    def from_spec(cls, spec: dict | float | int | None) -> Distribution:
        if spec is None:
            return cls()
        if isinstance(spec, (int, float)):
            return cls("fixed", {"seconds": float(spec)})
        if not isinstance(spec, dict) or spec.get("kind") not in KINDS:
            raise ValueError(
                f"duration must be a number of seconds or {{'kind': one of {list(KINDS)}, ...}}, got {spec!r}"
            )
        kind = spec["kind"]
        missing = [k for k in cls._REQUIRED[kind] if k not in spec]
        if missing:
            raise ValueError(f"duration of kind {kind} needs {', '.join(cls._REQUIRED[kind])}; missing {missing}")
        try:
            args = {k: float(spec[k]) for k in cls._REQUIRED[kind]}
        except (TypeError, ValueError):
            raise ValueError(f"duration parameters must be numbers, got {spec!r}") from None
        if any(v < 0 for v in args.values()) or (kind == "uniform" and args["low"] > args["high"]):
            raise ValueError(f"duration parameters must be >= 0 (and low <= high), got {spec!r}")
        return cls(kind, args)

    def spec(self) -> dict:
        return {"kind": self.kind, **self.args}

    def draw(self, rng: random.Random) -> float:
        a = self.args
        if self.kind == "fixed":
            return a["seconds"]
        if self.kind == "uniform":
            return rng.uniform(a["low"], a["high"])
        if self.kind == "normal":
            return max(0.0, rng.gauss(a["mean"], a["stddev"]))
        if self.kind == "lognormal":
            return rng.lognormvariate(math.log(max(a["median"], 1e-6)), a["sigma"])
        return rng.expovariate(1.0 / a["mean"]) if a["mean"] > 0 else 0.0


@dataclass(frozen=True)
class SimSpec:
    duration: Distribution = field(default_factory=Distribution)
    failure_share: float = 0.0
    failure_code: int = 1
    output_lines: int = 0  # extra stdout lines per run, to exercise truncation and log volume
    seed: int | None = None

    @classmethod
    def from_request(cls, body: dict) -> SimSpec:
        share = float(body.get("failure_share", 0.0))
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"failure_share must be between 0 and 1, got {share}")
        return cls(
            duration=Distribution.from_spec(body.get("duration")),
            failure_share=share,
            failure_code=int(body.get("failure_code", 1)),
            output_lines=int(body.get("output_lines", 0)),
            seed=None if body.get("seed") is None else int(body["seed"]),
        )

    def to_dict(self) -> dict:
        return {
            "duration": self.duration.spec(),
            "failure_share": self.failure_share,
            "failure_code": self.failure_code,
            "output_lines": self.output_lines,
            "seed": self.seed,
        }

    def rng(self, instance_id: str) -> random.Random:
        return random.Random(f"{self.seed}:{instance_id}" if self.seed is not None else None)


@dataclass(frozen=True)
class Outcome:
    duration: float
    code: int
    stdout: str
    stderr: str


def outcome(spec: SimSpec, rng: random.Random, document: str, instance_id: str, step: str) -> Outcome:
    """What one simulated run of ``step`` does: how long, which exit code, what it prints."""
    duration = spec.duration.draw(rng)
    failed = rng.random() < spec.failure_share
    code = spec.failure_code if failed else 0
    filler = "".join(f"simulated output line {n} of {spec.output_lines}\n" for n in range(1, spec.output_lines + 1))
    if document == "AWS-ApplyAnsiblePlaybooks" and step == "runShellScript":
        task = (
            'fatal: [localhost]: FAILED! => {"changed": false, "msg": "simulated failure"}'
            if failed
            else "changed: [localhost]"
        )
        stdout = (
            "Running Ansible in /var/lib/amazon/ssm/downloads\n"
            "PLAY [localhost] ***************************************************************\n\n"
            "TASK [Gathering Facts] *********************************************************\n"
            "ok: [localhost]\n\n"
            "TASK [simulated deploy] ********************************************************\n"
            f"{task}\n{filler}\n"
            "PLAY RECAP *********************************************************************\n"
            f"localhost                  : ok={1 if failed else 2}    changed={0 if failed else 1}    "
            f"unreachable=0    failed={1 if failed else 0}    skipped=0    rescued=0    ignored=0\n"
        )
        stderr = "Installing and/or updating required tools: Ansible, wget, unzip ...\n"
    elif step == "downloadContent":
        return Outcome(0.0, 0, f"Content downloaded to /var/lib/amazon/ssm/{instance_id}/downloads\n", "")
    else:
        stdout = f"simulated run on {instance_id}\n{filler}"
        stderr = f"simulated failure (exit {code})\n" if failed else ""
    return Outcome(duration, code, stdout, stderr)
