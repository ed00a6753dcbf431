# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Controller side of mlops.deploy.ssm_run_playbook: runs the rollout in-process and
prints one line per state change while it waits.

Why in-process rather than shipping the module: the wait can last many minutes and
the user wants to see it move. A module's output reaches the controller only when it
ends, so the action plugin does the module's work itself, with the same pieces:
- the options are validated against the module's argument spec plus amazon.aws's
  ``aws_argument_spec()`` (the same env fallbacks: AWS_REGION, AWS_PROFILE, AWS_URL...),
  after the task's ``environment:`` is applied, and ``module_defaults`` (the
  ``group/mlops.deploy.aws`` action group) are already merged into the task's args;
- the boto3 clients come from amazon.aws's ``AWSPluginBase`` (``_aws_connection_info``
  and ``_boto3_conn``, what ``AnsibleAWSModule.client()`` uses), so region, profile,
  endpoint_url, credentials, CA bundle and ``aws_config`` mean the same here;
- the clients and the calls are ``_ssm_api.connect``'s, the work ``_ssm_rollout.Rollout``'s: the
  same two calls the module's ``main()`` makes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

try:
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:
    BotoCoreError = ClientError = None  # reported below, as AnsibleAWSModule would

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible_collections.amazon.aws.plugins.module_utils.botocore import HAS_BOTO3
from ansible_collections.amazon.aws.plugins.module_utils.modules import aws_argument_spec
from ansible_collections.amazon.aws.plugins.plugin_utils.base import AWSPluginBase

from ansible_collections.mlops.deploy.plugins.module_utils._ssm_api import connect
from ansible_collections.mlops.deploy.plugins.module_utils._ssm_options import SPEC_RULES, RolloutOptions, argument_spec
from ansible_collections.mlops.deploy.plugins.module_utils._ssm_rollout import Rollout
from ansible_collections.mlops.deploy.plugins.module_utils._ssm_run import SsmRunError

display = Display()


class _Connection(AWSPluginBase):
    """amazon.aws's client factory for plugins, fed with the validated options."""

    def __init__(self, options: dict) -> None:
        self._options = options

    def get_options(self) -> dict:
        return self._options

    def _do_fail(self, message: str) -> NoReturn:
        raise AnsibleActionFail(message)


@contextmanager
def _environment(values: dict) -> Iterator[None]:
    """The task's ``environment:`` for the duration of the task (this runs in the
    task's own worker process)."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update({key: str(value) for key, value in values.items()})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class ActionModule(ActionBase):
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp: str | None = None, task_vars: dict | None = None) -> dict:
        result = super().run(tmp, task_vars)
        del tmp
        if not HAS_BOTO3:
            raise AnsibleActionFail("ssm_run_playbook needs boto3 and botocore on the controller (pip install boto3)")
        environment = {}
        self._compute_environment_string(environment)
        spec = aws_argument_spec()
        spec.update(argument_spec())
        with _environment(environment):
            _validation, params = self.validate_argument_spec(spec, **SPEC_RULES)
            # Plain values, as the module would receive them (no templating types).
            params = json.loads(json.dumps(params, default=str))
            connection = _Connection(params)
            api = connect(connection.client, connection.region)
            rollout = Rollout(api, RolloutOptions.from_params(params), self._task.check_mode, report=self._progress)
            try:
                outcome, failure = rollout.run()
            except SsmRunError as exc:
                result.update(failed=True, msg=str(exc), **rollout.partial())
                return result
            except (ClientError, BotoCoreError) as exc:
                result.update(failed=True, msg=rollout.aws_error_message(to_native(exc)), **rollout.partial())
                return result
        result.update(outcome)
        if failure:
            result.update(failed=True, msg=failure)
        return result

    @staticmethod
    def _progress(line: str) -> None:
        display.display(line)
