"""The built collection installs and documents itself from any directory."""

from __future__ import annotations

import os
import subprocess
import tarfile

import yaml

from .conftest import BIN, ROOT


def test_build_install_and_ansible_doc(tmp_path):
    dist = tmp_path / "dist"
    built = subprocess.run(
        [str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(dist), str(ROOT)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    version = yaml.safe_load((ROOT / "galaxy.yml").read_text())["version"]
    tarball = dist / f"mlops-deploy-{version}.tar.gz"
    assert tarball.exists()

    with tarfile.open(tarball) as tar:
        names = tar.getnames()
    assert "plugins/modules/cloudwatch_tail.py" in names
    assert "plugins/module_utils/_cloudwatch_logs.py" in names
    # The sandbox, the tooling and local state stay out of the product.
    for left_out in ("sandbox/", "tools/", ".venv/", ".sandbox/", ".build/", ".ci/"):
        assert not [n for n in names if n.startswith(left_out)], left_out

    installed = tmp_path / "collections"
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(installed)}
    env.pop("ANSIBLE_CONFIG", None)
    install = subprocess.run(
        [str(BIN / "ansible-galaxy"), "collection", "install", "--offline", "-p", str(installed), str(tarball)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env=env,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    assert (installed / "ansible_collections" / "mlops" / "deploy" / "MANIFEST.json").exists()

    # From a directory unrelated to the checkout; amazon.aws comes from the ansible package.
    doc = subprocess.run(
        [str(BIN / "ansible-doc"), "mlops.deploy.cloudwatch_tail"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        cwd=tmp_path,
        env={**env, "ANSIBLE_COLLECTIONS_PATH": f"{installed}"},
    )
    assert doc.returncode == 0, doc.stderr
    assert str(installed) in doc.stdout  # documented from the installed copy, not the checkout
    assert "ssm_command_id" in doc.stdout
    assert "tail_lines" in doc.stdout
