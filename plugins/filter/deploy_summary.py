# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The one-line deploy summary of the release flow, written and read.

The instance-side ``deploy.yml`` (in the release bundle) prints
``MLOPS_DEPLOY_SUMMARY <json>`` with ``deploy_summary``; the release role reads it back
from each instance's ``ssm_run_playbook`` result with ``instance_deploy_summaries``.
The documentation of each filter is in the YAML file of its name beside this one.
"""

from __future__ import annotations

import json

from ansible.errors import AnsibleFilterError

MARK = "MLOPS_DEPLOY_SUMMARY"
# How `ansible.builtin.debug: msg=...` prints it: `"msg": "MLOPS_DEPLOY_SUMMARY {...}"`
# (the message a JSON string, so the summary inside is escaped once more).
_MSG_KEY = '"msg": '


def deploy_summary(results: list, env: str, release: str) -> dict:
    """The summary of a deploy.yml run from its ``compose_deploy`` loop results: per
    endpoint (the loop item's ``name``), whether it changed, each service's image digest
    and health, and the services recreated."""
    if not isinstance(results, list):
        raise AnsibleFilterError("deploy_summary: expects the loop's results (a list), not %s" % type(results).__name__)
    endpoints = {}
    for result in results:
        endpoint = result.get("endpoint") or {}
        name = endpoint.get("name") if isinstance(endpoint, dict) else None
        if not name:
            raise AnsibleFilterError(
                "deploy_summary: a result has no endpoint.name; loop over the endpoints with loop_var: endpoint"
            )
        services = result.get("services") or []
        endpoints[name] = {
            "changed": bool(result.get("changed")),
            "images": {s["name"]: s.get("digest") for s in services},
            "health": {s["name"]: s.get("health") for s in services},
            "recreated": [a["service"] for a in (result.get("actions") or {}).get("recreated") or []],
        }
    return {"env": env, "release": release, "endpoints": endpoints}


def parse_summary_line(line: str) -> dict | None:
    """The summary in one line of ansible-playbook output, or None when the line holds none.

    Reads the line as ``debug`` prints it (``"msg": "MLOPS_DEPLOY_SUMMARY {...}"``) and as
    a bare ``MLOPS_DEPLOY_SUMMARY {...}``."""
    text = (line or "").strip()
    if _MSG_KEY in text:
        literal = text.split(_MSG_KEY, 1)[1].rstrip(",").strip()
        try:
            text = json.loads(literal)
        except ValueError:
            return None
        if not isinstance(text, str):
            return None
    if MARK not in text:
        return None
    payload = text.split(MARK, 1)[1].strip()
    try:
        summary = json.loads(payload)
    except ValueError:
        return None
    return summary if isinstance(summary, dict) else None


def instance_deploy_summaries(instances: list) -> list[dict]:
    """One entry per instance of an ``ssm_run_playbook`` result (its RV ``instances``):
    ``instance``, ``batch``, ``changed`` and the last summary its output held (None when
    it printed none: it failed before, or its output was not read)."""
    if not isinstance(instances, list):
        raise AnsibleFilterError(
            "instance_deploy_summaries: expects ssm_run_playbook's instances (a list), not %s"
            % type(instances).__name__
        )
    out = []
    for instance in instances:
        summaries = [s for s in map(parse_summary_line, instance.get("output_lines") or []) if s is not None]
        out.append(
            {
                "instance": instance.get("instance_id"),
                "batch": instance.get("batch"),
                "changed": instance.get("changed"),
                "summary": summaries[-1] if summaries else None,
            }
        )
    return out


class FilterModule:
    def filters(self) -> dict:
        return {"deploy_summary": deploy_summary, "instance_deploy_summaries": instance_deploy_summaries}
