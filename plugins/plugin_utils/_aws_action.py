# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What the collection's controller-side AWS action plugins share.

PRIVATE to the mlops.deploy collection (the leading ``_`` says so): no stability
promise to other collections. Used by the action plugins ``ssm_run_playbook`` and
``ecs_run_task``, which do their module's work in-process so that they can print progress
while they wait:

- ``validated_options`` checks the task's arguments against the module's argument spec plus
  amazon.aws's ``aws_argument_spec()`` (the same environment fallbacks: AWS_REGION,
  AWS_PROFILE, AWS_URL...), with the task's ``environment:`` applied, and ``module_defaults``
  of the ``group/mlops.deploy.aws`` action group already merged into the arguments;
- ``Connection`` makes boto3 clients with amazon.aws's ``AWSPluginBase`` (what
  ``AnsibleAWSModule.client()`` uses), so region, profile, endpoint_url, credentials, CA
  bundle and ``aws_config`` mean the same as in any AWS module.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager

from ansible.errors import AnsibleActionFail
from ansible_collections.amazon.aws.plugins.module_utils.modules import aws_argument_spec
from ansible_collections.amazon.aws.plugins.plugin_utils.base import AWSPluginBase


class Connection(AWSPluginBase):
    """amazon.aws's client factory for plugins, fed with the validated options."""

    def __init__(self, options):
        self._options = options

    def get_options(self):
        return self._options

    def _do_fail(self, message):
        raise AnsibleActionFail(message)


@contextmanager
def task_environment(action):
    """The task's ``environment:`` for the duration of the task (this runs in the task's own
    worker process)."""
    values = {}
    action._compute_environment_string(values)
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


def validated_options(action, module_spec, spec_rules):
    """The task's arguments checked against the module's spec and amazon.aws's, as plain
    values (no templating types), as the module would receive them. Call it inside
    ``task_environment``."""
    spec = aws_argument_spec()
    spec.update(module_spec)
    _validation, params = action.validate_argument_spec(spec, **spec_rules)
    return json.loads(json.dumps(params, default=str))
