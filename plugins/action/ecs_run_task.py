# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Controller side of mlops.deploy.ecs_run_task: runs the task in-process and prints its
status changes and the followed container's log lines as they arrive.

A module's output reaches the controller only when it ends; a training task runs for
minutes or hours, so the action plugin does the module's work itself, with the same
pieces: the options validated against the module's argument spec and amazon.aws's (task
``environment:`` and ``module_defaults`` applied), clients from amazon.aws's
``AWSPluginBase``, and ``_ecs_task_run.TaskRun``, the same call the module's ``main()``
makes.
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

from ansible_collections.mlops.deploy.plugins.module_utils._ecs_task import TaskError
from ansible_collections.mlops.deploy.plugins.module_utils._ecs_task_run import (
    SPEC_RULES,
    EcsApi,
    TaskRun,
    argument_spec,
    retry_decorator,
)
from ansible_collections.mlops.deploy.plugins.plugin_utils._aws_action import (
    Connection,
    task_environment,
    validated_options,
)

display = Display()


class ActionModule(ActionBase):
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        if not HAS_BOTO3:
            raise AnsibleActionFail("ecs_run_task needs boto3 and botocore on the controller (pip install boto3)")
        with task_environment(self):
            params = validated_options(self, argument_spec(), SPEC_RULES)
            connection = Connection(params)
            retry = retry_decorator()
            api = EcsApi(
                connection.client("ecs", retry_decorator=retry),
                lambda region: connection.client(
                    "logs", retry_decorator=retry, **({"region": region} if region else {})
                ),
                connection.region,
            )
            run = TaskRun(api, params, self._task.check_mode, report=display.display)
            try:
                outcome, failure = run.run()
            except TaskError as exc:
                result.update(failed=True, msg=str(exc), **run.partial())
                return result
            except (ClientError, BotoCoreError) as exc:
                result.update(failed=True, msg="ECS call failed: %s" % to_native(exc), **run.partial())
                return result
        result.update(outcome)
        if failure:
            result.update(failed=True, msg=failure)
        return result
