# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The one-line deploy summary of the release flow, written and read.

The instance-side ``deploy.yml`` (in the release bundle) prints
``MLOPS_DEPLOY_SUMMARY <json>`` with ``deploy_summary`` (what failed from its rescue
with ``deploy_failures``); the release role reads it back from each instance's
``ssm_run_playbook`` result with ``instance_deploy_summaries``. The format and its
parsing are ``module_utils/_deploy_summary.py``. The documentation of each filter is in
the YAML file of its name beside this one.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.mlops.deploy.plugins.module_utils._deploy_summary import deploy_failures, parse_summary


def deploy_summary(results: list, env: str, release: str, failures: list | None = None) -> dict:
    """The summary of a deploy.yml run from its ``compose_deploy`` loop results: per
    endpoint (the loop item's ``name``) that deployed, whether it changed, each service's
    image digest and health, and the services recreated; and ``failures``, what failed
    (``deploy_failures``; an endpoint that failed is there, not in ``endpoints``)."""
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
        if result.get("failed") or result.get("skipped"):
            continue
        services = result.get("services") or []
        endpoints[name] = {
            "changed": bool(result.get("changed")),
            "images": {s["name"]: s.get("digest") for s in services},
            "health": {s["name"]: s.get("health") for s in services},
            "recreated": [a["service"] for a in (result.get("actions") or {}).get("recreated") or []],
        }
    return {"env": env, "release": release, "endpoints": endpoints, "failures": list(failures or [])}


def parse_summary_line(line: str) -> dict | None:
    """The summary in one line of ansible-playbook output, or None when the line holds none
    (as ``debug`` prints it with the JSON or the YAML callback)."""
    return parse_summary(line)


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
        return {
            "deploy_summary": deploy_summary,
            "deploy_failures": deploy_failures,
            "instance_deploy_summaries": instance_deploy_summaries,
        }
