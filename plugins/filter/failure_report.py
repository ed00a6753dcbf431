# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What a failed release prints: the registered results of its tasks in, a short block
of lines out (none when nothing failed). The logic is ``module_utils/_failure_report.py``;
the documentation of each filter is in the YAML file of its name beside this one."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.mlops.deploy.plugins.module_utils import _failure_report as report


def _release(release: object, name: str) -> dict:
    if not isinstance(release, dict):
        raise AnsibleFilterError(
            "%s: release must be a dict {id, env, endpoints}, not %s" % (name, type(release).__name__)
        )
    return release


def _result(result: object, name: str, what: str) -> dict:
    if result is None:
        return {}
    if not isinstance(result, dict):
        raise AnsibleFilterError(
            "%s: expects the registered result of %s, not %s" % (name, what, type(result).__name__)
        )
    return result


def rollout_report(rollout: dict, release: dict, rollback: dict | None = None, back_to: str | None = None) -> list:
    return report.rollout_lines(
        _release(release, "rollout_report"),
        _result(rollout, "rollout_report", "mlops.deploy.ssm_run_playbook"),
        _result(rollback, "rollout_report", "the rollback's mlops.deploy.ssm_run_playbook") or None,
        back_to or None,
    )


def lock_report(lock: dict, release: dict) -> list:
    return report.lock_lines(_release(release, "lock_report"), _result(lock, "lock_report", "mlops.deploy.deploy_lock"))


def tests_report(tests: dict, release: dict) -> list:
    return report.tests_lines(
        _release(release, "tests_report"), _result(tests, "tests_report", "mlops.deploy.endpoint_test")
    )


class FilterModule:
    def filters(self) -> dict:
        return {"rollout_report": rollout_report, "lock_report": lock_report, "tests_report": tests_report}
