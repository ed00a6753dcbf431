# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The one error of compose_deploy: what failed, for the user, and the module's result.

PRIVATE to the mlops.deploy collection (the leading ``_`` says so): no stability
promise to other collections. Every ``_compose_*`` module util raises it.
"""

from __future__ import annotations


class DeployError(Exception):
    """A deploy failure: ``msg`` for the user, ``result`` for the module's failed result."""

    def __init__(self, msg: str, result: dict | None = None) -> None:
        super().__init__(msg)
        self.msg = msg
        self.result = result or {}


def command_result(result: dict, *keys: str) -> dict:
    """The parts of a command's result (``cmd``, ``rc``, ``stdout``, ``stderr``) a failure returns."""
    return {key: result[key] for key in (keys or ("cmd", "rc", "stdout", "stderr"))}
