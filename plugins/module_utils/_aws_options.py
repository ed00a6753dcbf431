# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""amazon.aws's AWS connection options for a module that needs AWS only sometimes.

PRIVATE to the mlops.deploy collection (the leading ``_`` says so): no stability
promise to other collections.

``compose_deploy`` talks to AWS only for an ``s3://`` source (then it is an
``AnsibleAWSModule``, which adds these options itself). Otherwise it is a plain
``AnsibleModule`` that still accepts the AWS options (``module_defaults`` for
``group/mlops.deploy.aws`` set them on every module of the group) and ignores them.
The options are amazon.aws's own ``aws_argument_spec()`` (one definition, no copy);
reading it loads boto3 (a tenth of a second or more), so it is read only when the
task's arguments may hold one: when they are not known, or name something outside the
module's own options.
"""

from __future__ import annotations


def may_hold_aws_options(raw: dict | None, own_spec: dict) -> bool:
    """Whether the task's arguments (``_load_params()``; None when not known) may hold an
    AWS option: not known, or a key that is none of the module's own options or aliases."""
    if raw is None:
        return True
    own = set(own_spec)
    for spec in own_spec.values():
        own.update(spec.get("aliases") or [])
    return any(key not in own and not key.startswith("_ansible_") for key in raw)


def with_aws_options(own_spec: dict) -> dict:
    """The module's own options plus amazon.aws's AWS connection options."""
    from ansible_collections.amazon.aws.plugins.module_utils.modules import aws_argument_spec

    return dict(aws_argument_spec(), **own_spec)
