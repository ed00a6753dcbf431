"""amazon.aws's options for a module that needs AWS only sometimes (``_aws_options``)."""

from __future__ import annotations

import pytest
from ansible_collections.amazon.aws.plugins.module_utils.modules import aws_argument_spec

from ansible_collections.mlops.deploy.plugins.module_utils._aws_options import may_hold_aws_options, with_aws_options

OWN = {"src": {"type": "str", "required": True, "aliases": ["compose_file"]}, "pull": {"type": "bool"}}


@pytest.mark.parametrize(
    ("raw", "holds"),
    [
        # What Ansible passes for a task with only the module's own options.
        ({"src": "/r/c.yml", "_ansible_check_mode": False, "_ansible_diff": False}, False),
        ({"compose_file": "/r/c.yml", "pull": True}, False),
        # module_defaults for group/mlops.deploy.aws add region and profile.
        ({"src": "/r/c.yml", "region": "eu-west-1", "profile": "prod"}, True),
        ({"src": "/r/c.yml", "aws_region": "eu-west-1"}, True),
        # A misspelt option is for AnsibleModule to refuse, with every option listed.
        ({"src": "/r/c.yml", "pul": True}, True),
        # Arguments not known (ansible-test's introspection of the spec): the whole spec.
        (None, True),
    ],
)
def test_the_aws_options_are_read_when_the_task_may_pass_one(raw, holds):
    assert may_hold_aws_options(raw, OWN) is holds


def test_the_aws_options_are_amazon_aws_own_beside_the_module_own():
    spec = with_aws_options(OWN)
    assert spec == {**aws_argument_spec(), **OWN}
    assert {"region", "profile", "endpoint_url", "access_key", "secret_key"} <= set(spec)
    assert spec["secret_key"]["no_log"] is True
