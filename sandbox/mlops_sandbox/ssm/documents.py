"""The SSM documents the sandbox runs, with the parameters, defaults and patterns AWS enforces.

- ``AWS-RunShellScript`` (schema 1.2): one plugin, ``aws:runShellScript``; its output goes
  to CloudWatch streams ``<command>/<instance>/aws-runShellScript/stdout|stderr``.
- ``AWS-ApplyAnsiblePlaybooks`` (schema 2.2): steps ``downloadContent``
  (``aws:downloadContent``) and ``runShellScript`` (``aws:runShellScript``); streams are
  named by step: ``<command>/<instance>/runShellScript/stdout``. The shell step is the
  document's own script: install dependencies when asked, unzip bundles, check the
  playbook exists (exit 2), then ``ansible-playbook -i "localhost," -c local``.

Parameter values are validated as SSM validates them (unknown or missing parameters,
allowedValues, allowedPattern) and substituted into the steps before delivery, as SSM
does, so the agent on the instance only runs plugins.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import SsmError

# Execution timeouts of 1 s .. 48 h, as both documents constrain them.
TIMEOUT_PATTERN = r"([1-9][0-9]{0,4})|(1[0-6][0-9]{4})|(17[0-1][0-9]{3})|(172[0-7][0-9]{2})|(172800)"
# AWS-ApplyAnsiblePlaybooks: key=value pairs separated by spaces; values must not carry
# whitespace or any of | : ( ) ; & unless single-quoted (and even then none of | : ( ) ; &).
EXTRA_VARIABLES_PATTERN = r"^$|^\w+\=(([^\s|:();&]+)|('[^|:();&]+'))(\s+\w+\=(([^\s|:();&]+)|('[^|:();&]+')))*$"
PLAYBOOK_FILE_PATTERN = r"[(a-z_A-Z0-9\-\.)/]+(.yml|.yaml)$"
VERSIONS = ("$DEFAULT", "$LATEST", "1")


@dataclass(frozen=True)
class Parameter:
    type: str  # String | StringList | StringMap
    default: str | list[str] | None = None  # None: required
    allowed_values: tuple[str, ...] = ()
    allowed_pattern: str | None = None


@dataclass(frozen=True)
class Step:
    """One plugin run as delivered to the agent."""

    name: str  # PluginName in the API: the step name (2.x) or the plugin name (1.2)
    action: str  # aws:runShellScript | aws:downloadContent
    inputs: dict
    timeout: int | None = None  # execution timeout of this step, seconds

    @property
    def stream(self) -> str:
        """The step's segment in CloudWatch stream names (``aws:x`` is written ``aws-x``)."""
        return self.name.replace(":", "-")


@dataclass(frozen=True)
class Document:
    name: str
    schema_version: str
    parameters: dict[str, Parameter]
    planner: Callable[[dict[str, list[str] | str]], list[Step]] = field(repr=False)

    def resolve(self, given: dict[str, list[str]] | None) -> dict[str, list[str] | str]:
        """Validated values for every parameter (defaults filled in); InvalidParameters otherwise."""
        given = given or {}
        unknown = sorted(set(given) - set(self.parameters))
        if unknown:
            raise SsmError(
                "InvalidParameters",
                f"Parameters {unknown} are not defined in document {self.name}; it takes {sorted(self.parameters)}",
            )
        values: dict[str, list[str] | str] = {}
        for name, spec in self.parameters.items():
            if name not in given:
                if spec.default is None:
                    raise SsmError("InvalidParameters", f'Parameter "{name}" is required by document {self.name}')
                values[name] = spec.default
                continue
            raw = given[name]
            if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
                raise SsmError("InvalidParameters", f'Parameter "{name}" must be a list of strings')
            if spec.type == "StringList":
                if not raw:
                    raise SsmError("InvalidParameters", f'Parameter "{name}" needs at least one value')
                values[name] = list(raw)
                continue
            if len(raw) != 1:
                raise SsmError("InvalidParameters", f'Parameter "{name}" of type {spec.type} takes exactly one value')
            value = raw[0]
            if spec.type == "StringMap" and value:
                try:
                    if not isinstance(json.loads(value), dict):
                        raise ValueError
                except ValueError:
                    raise SsmError(
                        "InvalidParameters", f'Parameter "{name}" must be a JSON object (StringMap), got {value!r}'
                    ) from None
            if spec.allowed_values and value not in spec.allowed_values:
                raise SsmError(
                    "InvalidParameters",
                    f'Parameter "{name}" has value "{value}" not in allowed values {list(spec.allowed_values)}',
                )
            if spec.allowed_pattern is not None and not re.fullmatch(spec.allowed_pattern, value):
                raise SsmError(
                    "InvalidParameters",
                    f'Parameter "{name}" has value "{value}" not matching the allowed pattern {spec.allowed_pattern}',
                )
            values[name] = value
        return values

    def plan(self, values: dict[str, list[str] | str]) -> list[Step]:
        return self.planner(values)


def _run_shell_script(values: dict) -> list[Step]:
    return [
        Step(
            name="aws:runShellScript",
            action="aws:runShellScript",
            inputs={"runCommand": list(values["commands"]), "workingDirectory": values["workingDirectory"]},
            timeout=int(values["executionTimeout"]),
        )
    ]


def _ansible_script(values: dict) -> list[str]:
    # The document's runShellScript step, parameters substituted before delivery.
    install, playbook = values["InstallDependencies"], values["PlaybookFile"]
    check, extra, verbose = values["Check"], values["ExtraVariables"], values["Verbose"]

    def run(check_flag: str) -> str:
        return (
            f'  ansible-playbook -i "localhost," {check_flag}-c local '
            f'-e "ansible_python_interpreter=${{PYTHON_INTERPRETER}}" -e "{extra}" "{verbose}" "${{PlaybookFile}}"'
        )

    return [
        "#!/bin/bash",
        f'if [[ "{install}" == True ]] ; then',
        '  echo "Installing and/or updating required tools: Ansible, wget, unzip ..." >&2',
        "  missing=''",
        '  for tool in ansible-playbook unzip; do command -v $tool >/dev/null 2>&1 || missing="$missing $tool"; done',
        '  if [ -n "$missing" ] ; then',
        "    if grep -qiE 'debian|ubuntu' /etc/os-release ; then",
        "      apt-get update",
        "      DEBIAN_FRONTEND=noninteractive apt-get install -y ansible wget unzip",
        "    else",
        '      echo "Unsupported operating system. Please install Ansible, wget, and unzip manually." >&2',
        "      exit 1",
        "    fi",
        "  fi",
        "fi",
        'echo "Running Ansible in $(pwd)"',
        "for zip in $(find -iname '*.zip'); do",
        "  unzip -o $zip",
        "done",
        f'PlaybookFile="{playbook}"',
        'if [ ! -f "${PlaybookFile}" ] ; then',
        "  echo \"The specified Playbook file doesn't exist in the downloaded bundle. "
        'Please review the relative path and file name." >&2',
        "  exit 2",
        "fi",
        "PYTHON_INTERPRETER=$(which python3)",
        f'if [[ "{check}" == True ]] ; then',
        run("--check "),
        "else",
        run(""),
        "fi",
    ]


def _apply_ansible_playbooks(values: dict) -> list[Step]:
    source_info = json.loads(values["SourceInfo"]) if values["SourceInfo"] else {}
    return [
        Step(
            name="downloadContent",
            action="aws:downloadContent",
            inputs={"SourceType": values["SourceType"], "SourceInfo": source_info},
        ),
        Step(
            name="runShellScript",
            action="aws:runShellScript",
            inputs={"runCommand": _ansible_script(values), "workingDirectory": ""},
            timeout=int(values["TimeoutSeconds"]),
        ),
    ]


DOCUMENTS = {
    doc.name: doc
    for doc in (
        Document(
            name="AWS-RunShellScript",
            schema_version="1.2",
            parameters={
                "commands": Parameter("StringList"),
                "workingDirectory": Parameter("String", default=""),
                "executionTimeout": Parameter("String", default="3600", allowed_pattern=TIMEOUT_PATTERN),
            },
            planner=_run_shell_script,
        ),
        Document(
            name="AWS-ApplyAnsiblePlaybooks",
            schema_version="2.2",
            parameters={
                "SourceType": Parameter("String", allowed_values=("GitHub", "S3")),
                "SourceInfo": Parameter("StringMap", default=""),
                "InstallDependencies": Parameter("String", default="True", allowed_values=("True", "False")),
                "PlaybookFile": Parameter(
                    "String", default="hello-world-playbook.yml", allowed_pattern=PLAYBOOK_FILE_PATTERN
                ),
                "ExtraVariables": Parameter("String", default="SSM=True", allowed_pattern=EXTRA_VARIABLES_PATTERN),
                "Check": Parameter("String", default="False", allowed_values=("True", "False")),
                "Verbose": Parameter("String", default="-v", allowed_values=("-v", "-vv", "-vvv", "-vvvv")),
                "TimeoutSeconds": Parameter("String", default="3600", allowed_pattern=TIMEOUT_PATTERN),
            },
            planner=_apply_ansible_playbooks,
        ),
    )
}


def get(name: str, version: str | None) -> Document:
    doc = DOCUMENTS.get(name.rsplit("/", 1)[-1])
    if doc is None:
        raise SsmError(
            "InvalidDocument",
            f"Document {name} does not exist in your account (the sandbox runs {', '.join(sorted(DOCUMENTS))})",
        )
    if version is not None and version not in VERSIONS:
        raise SsmError("InvalidDocumentVersion", f"Document {doc.name} has no version {version}")
    return doc
