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

try:
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:
    BotoCoreError = ClientError = None  # reported below, as AnsibleAWSModule would

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible_collections.amazon.aws.plugins.module_utils.botocore import HAS_BOTO3

from ansible_collections.mlops.deploy.plugins.module_utils._ssm_api import connect
from ansible_collections.mlops.deploy.plugins.module_utils._ssm_options import SPEC_RULES, RolloutOptions, argument_spec
from ansible_collections.mlops.deploy.plugins.module_utils._ssm_rollout import Rollout
from ansible_collections.mlops.deploy.plugins.module_utils._ssm_run import SsmRunError
from ansible_collections.mlops.deploy.plugins.plugin_utils._aws_action import (
    Connection,
    task_environment,
    validated_options,
)

display = Display()


class ActionModule(ActionBase):
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp: str | None = None, task_vars: dict | None = None) -> dict:
        result = super().run(tmp, task_vars)
        del tmp
        if not HAS_BOTO3:
            raise AnsibleActionFail("ssm_run_playbook needs boto3 and botocore on the controller (pip install boto3)")
        with task_environment(self):
            params = validated_options(self, argument_spec(), SPEC_RULES)
            connection = Connection(params)
            api = connect(connection.client, connection.region)
            rollout = Rollout(api, RolloutOptions.from_params(params), self._task.check_mode, report=self._progress)
            try:
                outcome, failure = rollout.run()
            except SsmRunError as exc:
                result.update(failed=True, msg=str(exc), **rollout.partial(), **exc.result)
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
