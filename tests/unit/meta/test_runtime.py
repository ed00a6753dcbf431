"""meta/runtime.yml: every AWS module of the collection is in the ``aws`` action group, so
``module_defaults: {group/mlops.deploy.aws: {region: ..., profile: ...}}`` reaches it."""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
MODULES = ROOT / "plugins" / "modules"


def uses_ansible_aws_module(path: Path) -> bool:
    """Whether the module builds an AnsibleAWSModule (imported from amazon.aws and called)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    imported = any(
        isinstance(node, ast.ImportFrom) and any(alias.name == "AnsibleAWSModule" for alias in node.names)
        for node in ast.walk(tree)
    )
    called = any(
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "AnsibleAWSModule"
        for node in ast.walk(tree)
    )
    return imported and called


def aws_modules() -> list[str]:
    return sorted(path.stem for path in MODULES.glob("*.py") if uses_ansible_aws_module(path))


def test_the_scan_finds_the_aws_modules_and_only_them():
    found = aws_modules()
    # A module known to be one, and one known not to be (release_bundle zips files locally).
    assert "ssm_run_playbook" in found
    assert "ecr_image_info" in found
    assert "release_bundle" not in found
    assert len(found) >= 9


def test_every_aws_module_is_in_the_aws_action_group():
    groups = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())["action_groups"]
    missing = sorted(set(aws_modules()) - set(groups["aws"]))
    assert missing == [], "add %s to action_groups.aws in meta/runtime.yml" % ", ".join(missing)


def test_the_aws_group_names_only_modules_that_exist():
    groups = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())["action_groups"]
    assert sorted(set(groups["aws"]) - {path.stem for path in MODULES.glob("*.py")}) == []
