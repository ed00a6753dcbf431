# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The options of ssm_run_playbook: its argument spec (shared by the module and its
action plugin), the options as one typed value, their checks, and the document's
Parameters they make.

PRIVATE to the mlops.deploy collection (the leading ``_`` says so): no stability
promise to other collections. The defaults live in ``argument_spec()`` only:
``RolloutOptions.from_params`` takes the parameters as the spec validated them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from ansible_collections.mlops.deploy.plugins.module_utils import _elbv2_batches as elbv2
from ansible_collections.mlops.deploy.plugins.module_utils import _ssm_run as rules


def argument_spec() -> dict:
    """The module's own options (AWS connection options come from amazon.aws)."""
    return {
        "instance_ids": {"type": "list", "elements": "str"},
        "targets": {"type": "list", "elements": "str"},
        "inventory_hosts": {"type": "list", "elements": "raw"},
        "document_name": {"type": "str", "default": rules.DEFAULT_DOCUMENT},
        "document_version": {"type": "str"},
        "playbook_url": {"type": "str"},
        "playbook_file": {"type": "str"},
        "extra_vars": {"type": "dict", "default": {}},
        "install_dependencies": {"type": "bool", "default": False},
        "verbose": {"type": "int", "default": 1, "choices": [1, 2, 3, 4]},
        "execution_timeout": {"type": "int"},
        "parameters": {"type": "dict"},
        "comment": {"type": "str"},
        "max_concurrency": {"type": "str", "default": "50"},
        "max_errors": {"type": "str", "default": "0"},
        "batches": {"type": "list", "elements": "raw", "default": []},
        "delivery_timeout": {"type": "int"},
        "cloudwatch_log_group": {"type": "str"},
        "timeout": {"type": "int", "default": 3600},
        "poll_max_interval": {"type": "float", "default": 5.0},
        "host_check_interval": {"type": "float", "default": 60.0},
        "skip_offline": {"type": "bool", "default": False},
        "tail_lines": {"type": "int", "default": 20},
        "output_filter": {"type": "str"},
        "target_groups": {"type": "list", "elements": "dict", "default": [], "options": elbv2.argument_spec()},
    }


SPEC_RULES = {
    "mutually_exclusive": [["instance_ids", "targets", "inventory_hosts"]],
    "required_one_of": [["instance_ids", "targets", "inventory_hosts"]],
}
DEFAULT_COMMENT = "mlops.deploy.ssm_run_playbook"
# The shortest wait between two looks at the running instances' agents and EC2 states.
HOST_CHECK_INTERVAL_MIN = 5


@dataclass
class RolloutOptions:
    """ssm_run_playbook's options, as ``argument_spec()`` validated them."""

    instance_ids: list[str] | None
    targets: list[str] | None
    inventory_hosts: list | None
    document_name: str
    document_version: str | None
    playbook_url: str | None
    playbook_file: str | None
    extra_vars: dict
    install_dependencies: bool
    verbose: int
    execution_timeout: int | None
    parameters: dict | None
    comment: str | None
    max_concurrency: str
    max_errors: str
    batches: list
    delivery_timeout: int | None
    cloudwatch_log_group: str | None
    timeout: int
    poll_max_interval: float
    host_check_interval: float
    skip_offline: bool
    tail_lines: int
    output_filter: str | None
    target_groups: list

    @classmethod
    def from_params(cls, params: dict) -> RolloutOptions:
        """From the validated parameters; an option set to null gets the spec's default."""
        spec = argument_spec()
        values = {}
        for f in fields(cls):
            value = params.get(f.name)
            values[f.name] = spec[f.name].get("default") if value is None else value
        return cls(**values)

    @classmethod
    def defaults(cls, **changes: object) -> RolloutOptions:
        """The options of a task that sets only ``changes``."""
        return cls.from_params(changes)

    @property
    def ansible(self) -> bool:
        """Whether the document is AWS-ApplyAnsiblePlaybooks (its recaps say what changed)."""
        return self.document_name == rules.DEFAULT_DOCUMENT

    def check(self) -> None:
        """Refuse options SSM would refuse, before anything is resolved or sent."""
        rules.check_rollout_limits(self.max_concurrency, self.max_errors)
        rules.check_batches(self.batches)
        delivery = self.delivery_timeout
        if delivery is not None and not rules.DELIVERY_TIMEOUT_MIN <= delivery <= rules.DELIVERY_TIMEOUT_MAX:
            raise rules.SsmRunError(
                "delivery_timeout %s: SSM takes %d to %d seconds"
                % (delivery, rules.DELIVERY_TIMEOUT_MIN, rules.DELIVERY_TIMEOUT_MAX)
            )
        for name, low in (("timeout", 1), ("tail_lines", 0)):
            if getattr(self, name) < low:
                raise rules.SsmRunError("%s must be %d or more, not %s" % (name, low, getattr(self, name)))
        if self.poll_max_interval < 0.25:
            raise rules.SsmRunError("poll_max_interval must be 0.25 seconds or more")
        if self.host_check_interval < HOST_CHECK_INTERVAL_MIN:
            raise rules.SsmRunError(
                "host_check_interval must be %d seconds or more, not %s (DescribeInstanceInformation is "
                "a listing: a look every few seconds at a large fleet reaches SSM's rate limits)"
                % (HOST_CHECK_INTERVAL_MIN, self.host_check_interval)
            )
        elbv2.check_options(self.target_groups)
        if self.comment and len(self.comment) > rules.COMMENT_MAX:
            raise rules.SsmRunError(
                "comment is %d characters; SSM takes at most %d" % (len(self.comment), rules.COMMENT_MAX)
            )


def document_parameters(options: RolloutOptions, region: str | None, check_mode: bool) -> tuple[str, dict]:
    """The document and its Parameters from the options; checks every rule first (which
    options go with which document)."""
    document = options.document_name
    if not rules.DOCUMENT_NAME.match(document or ""):
        raise rules.SsmRunError("document_name %r is not a valid SSM document name or ARN" % (document,))
    ansible_only = [
        name
        for name in ("playbook_url", "playbook_file", "execution_timeout")
        if getattr(options, name) not in (None, "")
    ] + (["extra_vars"] if options.extra_vars else [])
    if options.ansible:
        if options.parameters:
            raise rules.SsmRunError(
                "parameters is for other documents; with %s use playbook_url, playbook_file, extra_vars, "
                "install_dependencies, verbose and execution_timeout" % rules.DEFAULT_DOCUMENT
            )
        if not options.playbook_url:
            raise rules.SsmRunError(
                "playbook_url is required with %s: the s3:// (or https://) URL of a playbook .yml or a .zip "
                "bundle" % rules.DEFAULT_DOCUMENT
            )
        timeout = options.execution_timeout
        if timeout is not None and timeout < 1:
            raise rules.SsmRunError("execution_timeout must be a number of seconds, 1 or more")
        return document, rules.ansible_parameters(
            options.playbook_url,
            region,
            options.playbook_file,
            options.extra_vars,
            options.install_dependencies,
            options.verbose,
            timeout,
            check=check_mode,
        )
    if ansible_only:
        raise rules.SsmRunError(
            "%s: for %s only; pass %s's own parameters in parameters"
            % (", ".join(ansible_only), rules.DEFAULT_DOCUMENT, document)
        )
    return document, rules.raw_parameters(options.parameters)


def send_call(document: str, parameters: dict, options: RolloutOptions) -> dict:
    """The SendCommand arguments every batch shares (targets are added per batch)."""
    call = {"DocumentName": document, "Parameters": parameters}
    optional = {
        "DocumentVersion": options.document_version,
        "Comment": options.comment or DEFAULT_COMMENT,
        "MaxConcurrency": options.max_concurrency,
        "MaxErrors": options.max_errors,
        "TimeoutSeconds": options.delivery_timeout,
    }
    call.update({k: v for k, v in optional.items() if v is not None})
    if options.cloudwatch_log_group:
        call["CloudWatchOutputConfig"] = {
            "CloudWatchOutputEnabled": True,
            "CloudWatchLogGroupName": options.cloudwatch_log_group,
        }
    return call
