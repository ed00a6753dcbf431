# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Test-side callback: every task result of a run, one JSON line each, in the file
``MLOPS_RECORD_RESULTS`` names. The release flow e2e tests keep them beside the run's
output (``.build/test-logs/release-flow/``) and assert on them; the failure formatter's
unit fixtures were cut from such recordings."""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: record_results
    type: aggregate
    short_description: every task result as a JSON line (tests only)
    description: Writes each task result to the file named by MLOPS_RECORD_RESULTS.
    requirements: [enabled in callbacks_enabled]
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "record_results"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._path = os.environ.get("MLOPS_RECORD_RESULTS")
        self._began = time.monotonic()
        self._task_began = {}

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._task_began[task._uuid] = time.monotonic()

    def v2_playbook_on_handler_task_start(self, task):
        self._task_began[task._uuid] = time.monotonic()

    def _record(self, status, result):
        if not self._path:
            return
        skipped = {"skipped": True} if status == "skipped" else {}
        began = self._task_began.get(result.task._uuid, self._began)
        entry = {
            "status": status,
            "host": result.host.get_name(),
            "task": result.task.get_name(),
            "action": result.task.action,
            # Where a run's time goes: when the task started (seconds into the run) and
            # how long it took until this result.
            "started": round(began - self._began, 2),
            "seconds": round(time.monotonic() - began, 2),
            # A callback's copy of a result lacks the status keys the registered one has.
            "result": dict(result.result, failed=status in ("failed", "ignored"), **skipped),
        }
        with open(self._path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry, default=str, sort_keys=True) + "\n")

    def v2_runner_on_ok(self, result):
        self._record("ok", result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record("ignored" if ignore_errors else "failed", result)

    def v2_runner_on_skipped(self, result):
        self._record("skipped", result)
