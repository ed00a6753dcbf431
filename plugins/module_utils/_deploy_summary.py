# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The report an instance prints at the end of the bundle's deploy playbook, written and read.

PRIVATE to the mlops.deploy collection (the leading ``_`` says so): no stability
promise to other collections. Used by the ``deploy_summary`` filters (on the instance,
and on the controller to read it back) and by ``_failure_report``.

The report is one line, ``MLOPS_DEPLOY_SUMMARY <json>``: ``{env, release, endpoints,
failures}``. ``failures`` says what failed, one entry per failed endpoint (or one for
the step that failed before the endpoints): ``{step, task, endpoint, msg, logs}``, the
module's reason in ``msg`` and the containers' last log lines in ``logs``.
"""

from __future__ import annotations

import json
import re

MARK = "MLOPS_DEPLOY_SUMMARY"
LOG_LINES_KEPT = 20  # last log lines per container carried in the report
# What the deploy playbook's steps are called in a report, by the module that runs them.
STEPS = {
    "mlops.deploy.release_verify": "bundle check",
    "mlops.deploy.ecr_login": "ECR login",
    "mlops.deploy.compose_deploy": "deploy",
    "ansible.builtin.assert": "arguments check",
}
# ... and by the task's name, for the output of a bundle that printed no report.
_STEPS_BY_TASK = (
    ("refuse a bundle", "bundle check"),
    ("log in to", "ECR login"),
    ("deploy each endpoint", "deploy"),
    ("check what was asked", "arguments check"),
)
_LOG_HEADER = re.compile(r"^--- last \d+ log lines of (?P<name>\S+):$")


def step_name(action: str | None = None, task: str | None = None) -> str | None:
    """``"deploy"`` for compose_deploy (or a task named so); else the task's name."""
    if action in STEPS:
        return STEPS[action]
    lowered = str(task or "").lower()
    for start, step in _STEPS_BY_TASK:
        if lowered.startswith(start):
            return step
    return re.sub(r"\s*\(.*\)$", "", str(task or "")).strip() or None


def split_message(msg: str | None) -> tuple[str, list[tuple[str, list[str]]]]:
    """A module's ``msg`` as ``(reason, logs)``: compose_deploy ends it with sections
    ``--- last N log lines of <container>:``; ``logs`` is ``[(container, lines)]``."""
    reason, logs, current = [], [], None
    for line in str(msg or "").splitlines():
        header = _LOG_HEADER.match(line.strip())
        if header:
            current = (header.group("name"), [])
            logs.append(current)
        elif current is not None:
            current[1].append(line)
        elif line.strip():
            reason.append(line.strip())
    return " ".join(reason), logs


def _failure(step, task, endpoint, result):
    reason, logs = split_message(result.get("msg"))
    kept = result.get("logs") if isinstance(result.get("logs"), dict) else dict(logs)
    return {
        "step": step,
        "task": task,
        "endpoint": endpoint,
        "msg": reason or "failed",
        "logs": {name: [str(line) for line in lines or []][-LOG_LINES_KEPT:] for name, lines in sorted(kept.items())},
    }


def deploy_failures(failed_result: dict, failed_task: dict | None = None) -> list[dict]:
    """What failed in the deploy playbook, from its ``rescue:`` (``ansible_failed_result``
    and ``ansible_failed_task``): one entry per failed item of a looped task (the
    endpoint it deployed), else one for the task."""
    failed_task = failed_task or {}
    task = failed_task.get("name")
    step = step_name(failed_task.get("action"), task)
    items = [r for r in (failed_result or {}).get("results") or [] if isinstance(r, dict) and r.get("failed")]
    if not items:
        return [_failure(step, task, None, failed_result or {})]
    found = []
    for item in items:
        endpoint = item.get("endpoint") if isinstance(item.get("endpoint"), dict) else {}
        found.append(_failure(step, task, endpoint.get("name") or item.get("item"), item))
    return found


def parse_summary(line: str | None) -> dict | None:
    """The report in one line of ansible-playbook output, or None when the line holds
    none: printed as it is (``MLOPS_DEPLOY_SUMMARY {...}``, the YAML callback) or inside
    a JSON result (``"msg": "MLOPS_DEPLOY_SUMMARY {...}"``, escaped once more)."""
    text = str(line or "")
    at = text.find(MARK)
    if at < 0:
        return None
    decoder = json.JSONDecoder()
    if at > 0 and text[at - 1] == '"':  # inside a JSON string: read the string back first
        try:
            text = decoder.raw_decode(text[at - 1 :])[0]
        except ValueError:
            return None
        at = 0
    try:
        report = decoder.raw_decode(text[at + len(MARK) :].lstrip())[0]
    except ValueError:
        return None
    return report if isinstance(report, dict) else None
