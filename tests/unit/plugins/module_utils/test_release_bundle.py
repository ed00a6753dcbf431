"""Release bundles: determinism, the manifest, the collection layout, verification."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import zipfile

import pytest

from ansible_collections.mlops.deploy.plugins.module_utils import _release_bundle as rb

SHA_A = hashlib.sha256(b"a\n").hexdigest()
SHA_B = hashlib.sha256(b"b\n").hexdigest()


def write(root, files: dict[str, bytes | str], mode: int = 0o644):
    for name, data in files.items():
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(data.encode() if isinstance(data, str) else data)
        os.chmod(path, mode)


STAGE = {
    "deploy.yml": "- hosts: localhost\n",
    "ansible.cfg": "[defaults]\ncollections_path = ./collections\n",
    "compose/titanic.yml": "services: {api: {image: x}}\n",
    "vars/release.yml": "release_id: r-1\n",
    "bin/run.sh": "#!/bin/sh\necho hi\n",
}


# ------------------------------------------------------------------ manifest


def test_manifest_is_sha256sum_format_sorted():
    text = rb.format_manifest({"b/x": SHA_B, "a": SHA_A})
    assert text == ("%s  a\n%s  b/x\n" % (SHA_A, SHA_B)).encode()
    assert rb.parse_manifest(text) == {"a": SHA_A, "b/x": SHA_B}


def test_manifest_accepts_binary_marker():
    assert rb.parse_manifest(("%s *a\n" % SHA_A).encode()) == {"a": SHA_A}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("%s a\n" % SHA_A[:60], "line 1 is not '<sha256>  <path>'"),
        ("%s  a\n%s  a\n" % (SHA_A, SHA_B), "lists a twice"),
        ("%s  ../etc/passwd\n" % SHA_A, "not a plain relative path"),
        ("%s  /etc/passwd\n" % SHA_A, "not a plain relative path"),
        ("%s  MANIFEST.sha256\n" % SHA_A, "lists itself"),
        ("%s  a\nrubbish\n" % SHA_A, "line 2"),
    ],
)
def test_manifest_lines_that_cannot_be_trusted(text, message):
    with pytest.raises(rb.BundleError, match=message):
        rb.parse_manifest(text.encode())


def test_manifest_not_utf8():
    with pytest.raises(rb.BundleError, match="not UTF-8"):
        rb.parse_manifest(b"\xff\xfe")


@pytest.mark.parametrize("name", ["a\nb", "a\\b", "./a", "a//b", "a/../b", "/a", ""])
def test_member_names_refused(name):
    with pytest.raises(rb.BundleError):
        rb.check_member_name(name, "test")


# ------------------------------------------------------------------ building


def test_same_files_copied_at_other_times_with_other_modes_give_the_same_bytes(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    write(first, STAGE)
    os.chmod(first / "bin/run.sh", 0o755)
    shutil.copytree(first, second)
    # The copy differs in everything but content and the execute bit.
    for path in second.rglob("*"):
        if path.is_file():
            os.utime(path, (1_900_000_000, 1_900_000_000))
            os.chmod(path, 0o700 if path.name == "run.sh" else 0o600)
    one, two = rb.build_bundle(str(first)), rb.build_bundle(str(second))
    assert one["data"] == two["data"]
    assert one["sha256"] == two["sha256"] == hashlib.sha256(one["data"]).hexdigest()
    assert one["manifest_sha256"] == two["manifest_sha256"]


def test_content_change_changes_both_digests(tmp_path):
    write(tmp_path / "a", STAGE)
    write(tmp_path / "b", dict(STAGE, **{"vars/release.yml": "release_id: r-2\n"}))
    one, two = rb.build_bundle(str(tmp_path / "a")), rb.build_bundle(str(tmp_path / "b"))
    assert one["sha256"] != two["sha256"]
    assert one["manifest_sha256"] != two["manifest_sha256"]


def test_zip_entries_are_normalised(tmp_path):
    write(tmp_path, STAGE)
    os.chmod(tmp_path / "bin/run.sh", 0o750)
    bundle = rb.build_bundle(str(tmp_path))
    with zipfile.ZipFile(io.BytesIO(bundle["data"])) as archive:
        infos = archive.infolist()
        names = [info.filename for info in infos]
        assert names == sorted(names)
        assert "MANIFEST.sha256" in names
        assert not [n for n in names if n.endswith("/")]  # no directory entries
        for info in infos:
            assert info.date_time == (1980, 1, 1, 0, 0, 0)
            assert info.create_system == 3
            assert info.extra == b""
            assert info.comment == b""
            mode = info.external_attr >> 16
            assert mode == (0o100755 if info.filename == "bin/run.sh" else 0o100644), info.filename
        manifest = archive.read("MANIFEST.sha256")
        listed = rb.parse_manifest(manifest)
        assert sorted(listed) == bundle["files"] == sorted(STAGE)
        for name, digest in listed.items():
            assert hashlib.sha256(archive.read(name)).hexdigest() == digest
    assert hashlib.sha256(manifest).hexdigest() == bundle["manifest_sha256"]
    assert bundle["size"] == len(bundle["data"])


def test_exclude_and_dest_inside_src(tmp_path):
    write(tmp_path, dict(STAGE, **{"__pycache__/x.pyc": b"\0", "lib/y.pyc": b"\0", "out.zip": b"old"}))
    bundle = rb.build_bundle(str(tmp_path), dest=str(tmp_path / "out.zip"))
    assert "out.zip" not in bundle["files"]
    assert not [n for n in bundle["files"] if n.endswith(".pyc")]
    everything = rb.build_bundle(str(tmp_path), exclude=[])
    assert "lib/y.pyc" in everything["files"]
    assert "out.zip" in everything["files"]


def test_symlinks_are_followed_and_loops_refused(tmp_path):
    write(tmp_path / "real", {"x.yml": "x: 1\n"})
    stage = tmp_path / "stage"
    write(stage, {"deploy.yml": "-\n"})
    os.symlink(tmp_path / "real" / "x.yml", stage / "linked.yml")
    os.symlink(tmp_path / "real", stage / "dir")
    bundle = rb.build_bundle(str(stage))
    assert bundle["files"] == ["deploy.yml", "dir/x.yml", "linked.yml"]
    os.symlink(stage, stage / "loop")
    with pytest.raises(rb.BundleError, match="reached twice through symbolic links"):
        rb.build_bundle(str(stage))


@pytest.mark.parametrize(
    ("files", "extra", "message"),
    [
        ({"MANIFEST.sha256": "x"}, [], "writes its own"),
        ({"a.yml": "x"}, [{"src": "SELF", "dest": "a.yml"}], "a.yml would be in the bundle twice"),
        ({"a.yml": "x"}, [{"src": "SELF", "dest": "../a.yml"}], "not a plain relative path"),
        ({"a.yml": "x"}, [{"src": "/nonexistent/file", "dest": "b.yml"}], "cannot read extra file /nonexistent/file"),
        ({}, [], "nothing to bundle"),
    ],
)
def test_bad_inputs(tmp_path, files, extra, message):
    stage = tmp_path / "stage"
    stage.mkdir()
    write(stage, files)
    write(tmp_path, {"extra.yml": "e"})
    extra = [dict(e, src=str(tmp_path / "extra.yml")) if e["src"] == "SELF" else e for e in extra]
    with pytest.raises(rb.BundleError, match=message):
        rb.build_bundle(str(stage), extra_files=extra)


def test_missing_staging_directory(tmp_path):
    with pytest.raises(rb.BundleError, match="does not exist or is not a directory"):
        rb.build_bundle(str(tmp_path / "nope"))


# -------------------------------------------------------- collection tarball


def collection_tarball(path, files: dict[str, bytes], tamper: str | None = None, link: str | None = None):
    """A tarball shaped like `ansible-galaxy collection build` makes (MANIFEST.json, FILES.json)."""
    listed = [{"name": ".", "ftype": "dir", "chksum_type": None, "chksum_sha256": None, "format": 1}]
    for name in sorted({os.path.dirname(n) for n in files if os.path.dirname(n)}):
        listed.append({"name": name, "ftype": "dir", "chksum_type": None, "chksum_sha256": None, "format": 1})
    for name, data in sorted(files.items()):
        digest = hashlib.sha256(data).hexdigest()
        listed.append({"name": name, "ftype": "file", "chksum_type": "sha256", "chksum_sha256": digest, "format": 1})
    if link:
        digest = hashlib.sha256(files[link]).hexdigest()
        listed.append({"name": "link.txt", "ftype": "file", "chksum_type": "sha256", "chksum_sha256": digest})
    files_json = json.dumps({"files": listed, "format": 1}).encode()
    manifest = {
        "collection_info": {"namespace": "mlops", "name": "deploy", "version": "0.1.0"},
        "file_manifest_file": {
            "name": "FILES.json",
            "ftype": "file",
            "chksum_type": "sha256",
            "chksum_sha256": hashlib.sha256(files_json).hexdigest(),
            "format": 1,
        },
        "format": 1,
    }
    members = {"MANIFEST.json": json.dumps(manifest).encode(), "FILES.json": files_json, **files}
    if tamper:
        members[tamper] = b"tampered"
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755 if name.endswith(".sh") else 0o644
            tar.addfile(info, io.BytesIO(data))
        if link:
            info = tarfile.TarInfo("link.txt")
            info.type = tarfile.SYMTYPE
            info.linkname = link
            tar.addfile(info)
    return str(path)


COLLECTION = {
    "meta/runtime.yml": b"requires_ansible: '>=2.17'\n",
    "plugins/modules/x.py": b"# module\n",
    "tools/run.sh": b"#!/bin/sh\n",
}


def test_collection_installed_like_ansible_galaxy(tmp_path):
    write(tmp_path / "stage", STAGE)
    tarball = collection_tarball(tmp_path / "c.tar.gz", COLLECTION, link="meta/runtime.yml")
    bundle = rb.build_bundle(str(tmp_path / "stage"), collection_tarball=tarball)
    base = "collections/ansible_collections/mlops/deploy/"
    assert bundle["collection"] == {"namespace": "mlops", "name": "deploy", "version": "0.1.0", "path": base[:-1]}
    assert {base + n for n in [*COLLECTION, "MANIFEST.json", "FILES.json", "link.txt"]} <= set(bundle["files"])
    with zipfile.ZipFile(io.BytesIO(bundle["data"])) as archive:
        assert archive.read(base + "link.txt") == COLLECTION["meta/runtime.yml"]  # link stored as its target
        assert archive.getinfo(base + "tools/run.sh").external_attr >> 16 == 0o100755
    other_path = rb.build_bundle(str(tmp_path / "stage"), collection_tarball=tarball, collections_path="lib/")
    assert other_path["collection"]["path"] == "lib/ansible_collections/mlops/deploy"


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("tampered", "plugins/modules/x.py does not match its checksum in FILES.json"),
        ("not a tarball", "cannot read the collection tarball"),
        ("no manifest", "has no MANIFEST.json"),
        ("staged twice", "would be in the bundle twice"),
    ],
)
def test_collection_tarball_refused(tmp_path, kind, message):
    stage = tmp_path / "stage"
    write(stage, STAGE)
    path = tmp_path / "c.tar.gz"
    if kind == "tampered":
        collection_tarball(path, COLLECTION, tamper="plugins/modules/x.py")
    elif kind == "not a tarball":
        path.write_bytes(b"not a tarball")
    elif kind == "no manifest":
        with tarfile.open(path, "w:gz") as tar:
            info = tarfile.TarInfo("README.md")
            tar.addfile(info, io.BytesIO(b""))
    else:
        collection_tarball(path, COLLECTION)
        write(stage, {"collections/ansible_collections/mlops/deploy/meta/runtime.yml": "x"})
    with pytest.raises(rb.BundleError, match=message):
        rb.build_bundle(str(stage), collection_tarball=str(path))


# ---------------------------------------------------------------- verifying


@pytest.fixture
def unzipped(tmp_path):
    """A bundle as SSM leaves it: the zip it downloaded, and its content unzipped beside it."""
    write(tmp_path / "stage", STAGE)
    os.chmod(tmp_path / "stage/bin/run.sh", 0o755)
    bundle = rb.build_bundle(str(tmp_path / "stage"))
    target = tmp_path / "downloads"
    target.mkdir()
    (target / "r-1.zip").write_bytes(bundle["data"])
    with zipfile.ZipFile(io.BytesIO(bundle["data"])) as archive:
        archive.extractall(target)
    return target, bundle


def test_verify_accepts_the_bundle_and_ignores_the_downloaded_zip(unzipped):
    target, bundle = unzipped
    result = rb.verify_bundle(str(target), bundle["manifest_sha256"])
    assert result["file_count"] == len(STAGE)
    assert result["files"] == sorted(STAGE)
    assert result["ignored"] == ["r-1.zip"]
    # Uppercase hex and surrounding blanks are the same digest.
    assert rb.verify_bundle(str(target), " %s " % bundle["manifest_sha256"].upper())["file_count"] == len(STAGE)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"write": {"deploy.yml": "- hosts: all\n"}}, {"tampered": ["deploy.yml"]}),
        ({"remove": ["vars/release.yml"]}, {"missing": ["vars/release.yml"]}),
        ({"write": {"evil.sh": "rm -rf /"}}, {"extra": ["evil.sh"]}),
        ({"write": {"nested/r.zip": "zip"}}, {"extra": ["nested/r.zip"]}),  # only top-level zips are SSM's
        ({"symlink": ("vars/release.yml", "/etc/hostname")}, {"tampered": ["vars/release.yml"]}),
        ({"symlink": ("extra-link", "/etc")}, {"unexpected": ["extra-link"]}),
        (
            {"write": {"deploy.yml": "x", "new.yml": "y"}, "remove": ["compose/titanic.yml"]},
            {"tampered": ["deploy.yml"], "missing": ["compose/titanic.yml"], "extra": ["new.yml"]},
        ),
    ],
)
def test_verify_refuses_and_names_every_file(unzipped, change, expected):
    target, bundle = unzipped
    write(target, change.get("write", {}))
    for name in change.get("remove", []):
        os.remove(target / name)
    if "symlink" in change:
        name, points_to = change["symlink"]
        if (target / name).exists():
            os.remove(target / name)
        os.symlink(points_to, target / name)
    with pytest.raises(rb.BundleRefused) as refused:
        rb.verify_bundle(str(target), bundle["manifest_sha256"])
    message = str(refused.value)
    assert message.startswith("bundle refused: %s: " % target)
    for key in ("tampered", "missing", "extra", "unexpected"):
        assert refused.value.details[key] == expected.get(key, []), key
        for name in expected.get(key, []):
            assert name in message


def test_verify_refuses_a_changed_manifest(unzipped):
    target, bundle = unzipped
    write(target, {"deploy.yml": "- hosts: all\n"})
    # A tamperer rewrites the manifest to match: its own sha256 no longer matches.
    listed = rb.parse_manifest((target / "MANIFEST.sha256").read_bytes())
    listed["deploy.yml"] = hashlib.sha256(b"- hosts: all\n").hexdigest()
    (target / "MANIFEST.sha256").write_bytes(rb.format_manifest(listed))
    with pytest.raises(rb.BundleRefused, match="MANIFEST.sha256 has sha256 [0-9a-f]{64} but this deploy was sent"):
        rb.verify_bundle(str(target), bundle["manifest_sha256"])


def test_verify_refuses_a_bundle_without_manifest(unzipped):
    target, bundle = unzipped
    os.remove(target / "MANIFEST.sha256")
    with pytest.raises(rb.BundleRefused, match="it has no MANIFEST.sha256"):
        rb.verify_bundle(str(target), bundle["manifest_sha256"])


def test_verify_ignore_patterns(unzipped):
    target, bundle = unzipped
    write(target, {"logs/run.log": "x", "lib/__pycache__/m.cpython-311.pyc": "x"})
    with pytest.raises(rb.BundleRefused):
        rb.verify_bundle(str(target), bundle["manifest_sha256"])
    result = rb.verify_bundle(str(target), bundle["manifest_sha256"], ["/*.zip", "/logs", "__pycache__"])
    assert result["ignored"] == ["lib/__pycache__/m.cpython-311.pyc", "logs/run.log", "r-1.zip"]
    # An ignore pattern never excuses a listed file.
    write(target, {"deploy.yml": "changed"})
    with pytest.raises(rb.BundleRefused, match="deploy.yml"):
        rb.verify_bundle(str(target), bundle["manifest_sha256"], ["*"])


@pytest.mark.parametrize(
    ("path", "patterns", "expected"),
    [
        ("r.zip", ["/*.zip"], True),
        ("a/r.zip", ["/*.zip"], False),
        ("a/r.zip", ["*.zip"], True),
        ("logs/x/y.log", ["/logs"], True),
        ("logs/x/y.log", ["logs/*"], True),
        ("src/logs/y.log", ["logs/*"], False),
        ("a/__pycache__/m.pyc", ["__pycache__"], True),
        ("a/__pycache__/m.pyc", ["__pycache__/"], True),
        ("deploy.yml", [], False),
    ],
)
def test_ignored(path, patterns, expected):
    assert rb.ignored(path, patterns) is expected


@pytest.mark.parametrize("value", ["", "abc", "g" * 64, None])
def test_verify_wants_a_sha256(tmp_path, value):
    with pytest.raises(rb.BundleError, match="64 hexadecimal characters"):
        rb.verify_bundle(str(tmp_path), value)
