# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Release bundles: a deterministic zip with a sha256 manifest, and its verification.

PRIVATE to the mlops.deploy collection (the leading ``_`` says so): no stability
promise to other collections. Used by ``release_bundle`` (controller: build) and
``release_verify`` (instance: check what SSM downloaded and unzipped).

Plain values in, plain values out; standard library only, so the instance side needs
nothing but Python.

Determinism: entries are sorted by path, every timestamp is 1980-01-01 00:00:00 (the
zip format's epoch), permissions are 0644 (0755 when the source had an execute bit),
no owner, host or directory entries are stored, and the compression level is fixed.
The same files give the same bytes with the same zlib (the compressor is part of the
input: a different zlib may compress differently; MANIFEST.sha256 does not change).
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import os
import re
import stat
import tarfile
import zipfile

MANIFEST_NAME = "MANIFEST.sha256"
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
COMPRESS_LEVEL = 6
FILE_MODE = 0o644
EXEC_MODE = 0o755
DEFAULT_EXCLUDE = ("__pycache__", "*.pyc", "*.pyo", ".git")
DEFAULT_VERIFY_IGNORE = ("/*.zip",)
_MANIFEST_LINE = re.compile(r"^([0-9a-f]{64}) [ *](.+)$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class BundleError(Exception):
    """A failure to report as it is: the message says what is wrong and what to do."""


class BundleRefused(BundleError):
    """Verification failed; ``details`` holds the tampered, missing and extra paths."""

    def __init__(self, message: str, details: dict):
        super().__init__(message)
        self.details = details


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ------------------------------------------------------------------ manifest


def check_member_name(name: str, origin: str) -> str:
    """A bundle path as stored: relative, '/'-separated, no '.' or '..' parts."""
    if "\n" in name or "\r" in name or "\\" in name:
        raise BundleError(
            "%s: the path %r holds a newline or a backslash, which %s cannot list; rename it"
            % (origin, name, MANIFEST_NAME)
        )
    parts = name.split("/")
    if name.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise BundleError("%s: %r is not a plain relative path inside the bundle" % (origin, name))
    return name


def format_manifest(digests: dict[str, str]) -> bytes:
    """``sha256sum`` format, sorted by path: ``sha256sum -c MANIFEST.sha256`` checks it."""
    return "".join("%s  %s\n" % (digests[name], name) for name in sorted(digests)).encode("utf-8")


def parse_manifest(data: bytes) -> dict[str, str]:
    """Path -> sha256 from a manifest; raises BundleError on any line it cannot trust."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BundleError("%s is not UTF-8 text" % MANIFEST_NAME) from None
    digests: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        match = _MANIFEST_LINE.match(line)
        if not match:
            raise BundleError("%s line %d is not '<sha256>  <path>': %r" % (MANIFEST_NAME, number, line[:120]))
        digest, name = match.groups()
        check_member_name(name, "%s line %d" % (MANIFEST_NAME, number))
        if name in digests:
            raise BundleError("%s lists %s twice (line %d)" % (MANIFEST_NAME, name, number))
        if name == MANIFEST_NAME:
            raise BundleError("%s lists itself (line %d)" % (MANIFEST_NAME, number))
        digests[name] = digest
    return digests


def is_sha256(value: str | None) -> bool:
    return bool(value) and bool(_SHA256.match(value))


# ----------------------------------------------------------------- gathering


def excluded(relpath: str, patterns) -> bool:
    """Whether any part of ``relpath`` matches one of the ``patterns`` (fnmatch)."""
    parts = relpath.split("/")
    return any(fnmatch.fnmatchcase(part, pattern) for pattern in patterns for part in parts)


def mode_of(st_mode: int) -> int:
    return EXEC_MODE if st_mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH) else FILE_MODE


def gather_directory(src: str, exclude=DEFAULT_EXCLUDE, skip: tuple[str, ...] = ()) -> dict[str, dict]:
    """Files of a staging directory as bundle entries: path -> {data, mode, origin}.

    Symbolic links are followed (their target's content is stored); a directory
    reached twice through links is an error. ``skip`` holds real paths left out (the
    destination zip, when it lies inside ``src``).
    """
    if not os.path.isdir(src):
        raise BundleError("staging directory %s does not exist or is not a directory" % src)
    entries: dict[str, dict] = {}
    seen_dirs: set[str] = set()
    skip_real = {os.path.realpath(path) for path in skip}
    for root, dirs, files in os.walk(src, followlinks=True):
        real_root = os.path.realpath(root)
        if real_root in seen_dirs:
            raise BundleError("%s is reached twice through symbolic links (a loop?); remove the link" % root)
        seen_dirs.add(real_root)
        rel_root = os.path.relpath(root, src).replace(os.sep, "/")
        rel_root = "" if rel_root == "." else rel_root + "/"
        dirs[:] = sorted(d for d in dirs if not excluded(rel_root + d, exclude))
        for name in sorted(files):
            relpath = rel_root + name
            full = os.path.join(root, name)
            if excluded(relpath, exclude) or os.path.realpath(full) in skip_real:
                continue
            check_member_name(relpath, src)
            try:
                st = os.stat(full)
                with open(full, "rb") as handle:
                    data = handle.read()
            except OSError as exc:
                raise BundleError("cannot read %s: %s" % (full, exc.strerror or exc)) from None
            if not stat.S_ISREG(st.st_mode):
                raise BundleError("%s is not a regular file; a bundle holds files only" % full)
            entries[relpath] = {"data": data, "mode": mode_of(st.st_mode), "origin": full}
    return entries


def read_collection_tarball(path: str) -> tuple[dict, dict[str, dict]]:
    """The files ``ansible-galaxy collection install`` would lay out from a built tarball.

    Returns the collection's info (namespace, name, version) and its files relative
    to the collection directory: MANIFEST.json, FILES.json and every file FILES.json
    lists, each checked against its sha256 there (as the installer does). Symbolic
    links inside the collection are stored as the file they point to.
    """
    try:
        return _read_collection(path)
    except tarfile.ReadError:
        problem = "it is not a tar archive"
    except (OSError, tarfile.TarError) as exc:
        problem = getattr(exc, "strerror", None) or str(exc)
    raise BundleError(
        "cannot read the collection tarball %s (%s); build it with 'ansible-galaxy collection build'" % (path, problem)
    )


def _read_collection(path: str) -> tuple[dict, dict[str, dict]]:
    with tarfile.open(path, mode="r:*") as tar:
        manifest_raw = _tar_read(tar, "MANIFEST.json", path)
        files_raw = _tar_read(tar, "FILES.json", path)
        try:
            manifest = json.loads(manifest_raw)
            info = manifest["collection_info"]
            namespace, name, version = info["namespace"], info["name"], info["version"]
            listed = json.loads(files_raw)["files"]
        except (ValueError, KeyError, TypeError) as exc:
            raise BundleError(
                "%s is not a collection built by ansible-galaxy (MANIFEST.json/FILES.json unreadable: %s)" % (path, exc)
            ) from None
        expected_files_sum = (manifest.get("file_manifest_file") or {}).get("chksum_sha256")
        if expected_files_sum and expected_files_sum != sha256_bytes(files_raw):
            raise BundleError("%s: FILES.json does not match its checksum in MANIFEST.json; rebuild it" % path)
        entries = {
            "MANIFEST.json": {"data": manifest_raw, "mode": FILE_MODE, "origin": path},
            "FILES.json": {"data": files_raw, "mode": FILE_MODE, "origin": path},
        }
        for item in listed:
            if item.get("ftype") != "file" or item.get("name") in (None, "."):
                continue
            member_name = check_member_name(item["name"], path)
            data = _tar_read(tar, member_name, path)
            if item.get("chksum_sha256") and sha256_bytes(data) != item["chksum_sha256"]:
                raise BundleError(
                    "%s: %s does not match its checksum in FILES.json; rebuild the collection" % (path, member_name)
                )
            member = tar.getmember(member_name)
            mode = mode_of(member.mode) if member.isfile() else FILE_MODE
            entries[member_name] = {"data": data, "mode": mode, "origin": "%s:%s" % (path, member_name)}
    return {"namespace": namespace, "name": name, "version": version}, entries


def _tar_read(tar: tarfile.TarFile, name: str, path: str) -> bytes:
    try:
        member = tar.getmember(name)
        handle = tar.extractfile(member)  # follows links inside the archive
    except KeyError:
        raise BundleError(
            "%s has no %s; is it a tarball built by 'ansible-galaxy collection build'?" % (path, name)
        ) from None
    if handle is None:
        raise BundleError("%s: %s is not a file" % (path, name))
    with handle:
        return handle.read()


def merge_entries(target: dict[str, dict], new: dict[str, dict], prefix: str = "") -> None:
    """Add ``new`` under ``prefix``; a path given twice is an error naming both sources."""
    for name, entry in new.items():
        path = prefix + name
        if path in target:
            raise BundleError(
                "%s would be in the bundle twice: from %s and from %s; keep one"
                % (path, target[path]["origin"], entry["origin"])
            )
        target[path] = entry


# ------------------------------------------------------------------ building


def zip_bytes(entries: dict[str, dict]) -> bytes:
    """The deterministic zip of ``entries`` (path -> {data, mode})."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=COMPRESS_LEVEL) as archive:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, so that the permissions below are honoured by unzip
            info.external_attr = (stat.S_IFREG | entries[name]["mode"]) << 16
            archive.writestr(info, entries[name]["data"], compresslevel=COMPRESS_LEVEL)
    return buffer.getvalue()


def build_bundle(
    src: str,
    dest: str | None = None,
    collection_tarball: str | None = None,
    collections_path: str = "collections",
    extra_files=(),
    exclude=DEFAULT_EXCLUDE,
) -> dict:
    """Everything ``release_bundle`` returns, plus ``data`` (the zip bytes) and ``manifest``."""
    entries = gather_directory(src, exclude, skip=(dest,) if dest else ())
    collection = None
    if collection_tarball:
        collection, files = read_collection_tarball(collection_tarball)
        base = "%s/ansible_collections/%s/%s/" % (
            check_member_name(collections_path.strip("/"), "collections_path"),
            collection["namespace"],
            collection["name"],
        )
        merge_entries(entries, files, base)
        collection["path"] = base.rstrip("/")
    for extra in extra_files or ():
        source, target = extra["src"], check_member_name(extra["dest"], "extra_files dest")
        try:
            with open(source, "rb") as handle:
                data = handle.read()
            mode = mode_of(os.stat(source).st_mode)
        except OSError as exc:
            raise BundleError("cannot read extra file %s: %s" % (source, exc.strerror or exc)) from None
        merge_entries(entries, {target: {"data": data, "mode": mode, "origin": source}})
    if MANIFEST_NAME in entries:
        raise BundleError(
            "%s is in the bundle's input (%s), but the bundle writes its own; remove it"
            % (MANIFEST_NAME, entries[MANIFEST_NAME]["origin"])
        )
    if not entries:
        raise BundleError("nothing to bundle: %s holds no files (after exclude) and nothing else was given" % src)
    digests = {name: sha256_bytes(entry["data"]) for name, entry in entries.items()}
    manifest = format_manifest(digests)
    data = zip_bytes({**entries, MANIFEST_NAME: {"data": manifest, "mode": FILE_MODE}})
    return {
        "data": data,
        "manifest": manifest.decode("utf-8"),
        "sha256": sha256_bytes(data),
        "manifest_sha256": sha256_bytes(manifest),
        "size": len(data),
        "files": sorted(digests),
        "file_count": len(digests),
        "collection": collection,
    }


def manifest_of_zip(path: str) -> str | None:
    """The manifest inside an existing bundle (for a diff), or None when unreadable."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.read(MANIFEST_NAME).decode("utf-8")
    except (OSError, KeyError, zipfile.BadZipFile, UnicodeDecodeError):
        return None


# ---------------------------------------------------------------- verifying


def ignored(relpath: str, patterns) -> bool:
    """Gitignore-like matching of a path (relative, '/'-separated) against patterns.

    A pattern with a '/' is anchored at the bundle's top: its parts match the first
    parts of the path (``/*.zip`` is a zip at the top only; ``logs/*`` everything in
    ``logs``). A pattern without '/' matches any single part (``__pycache__`` ignores
    every such directory with its content, ``*.pyc`` every such file).
    """
    parts = relpath.split("/")
    for pattern in patterns:
        if "/" in pattern.rstrip("/"):
            wanted = pattern.strip("/").split("/")
            if len(wanted) <= len(parts) and all(fnmatch.fnmatchcase(p, w) for p, w in zip(parts, wanted)):
                return True
        elif any(fnmatch.fnmatchcase(part, pattern.rstrip("/")) for part in parts):
            return True
    return False


def scan_directory(path: str) -> tuple[dict[str, str], list[str]]:
    """Regular files under ``path`` (relative path -> full path), and the paths that are
    neither a regular file nor a directory (symbolic links included, never followed)."""
    files: dict[str, str] = {}
    odd: list[str] = []
    for root, dirs, names in os.walk(path):
        rel_root = os.path.relpath(root, path).replace(os.sep, "/")
        rel_root = "" if rel_root == "." else rel_root + "/"
        for name in sorted(dirs):
            if os.path.islink(os.path.join(root, name)):
                odd.append(rel_root + name)  # os.walk does not descend into it
        for name in sorted(names):
            full = os.path.join(root, name)
            if os.path.islink(full) or not stat.S_ISREG(os.lstat(full).st_mode):
                odd.append(rel_root + name)
            else:
                files[rel_root + name] = full
    return files, sorted(odd)


def verify_bundle(path: str, manifest_sha256: str, ignore=DEFAULT_VERIFY_IGNORE) -> dict:
    """Check an extracted bundle against the sha256 of its manifest; raise BundleRefused.

    Only reads. Every listed file must be present with its sha256, and nothing else may
    be there but paths matching ``ignore`` (which never excuses a listed file).
    """
    expected = (manifest_sha256 or "").strip().lower()
    if not is_sha256(expected):
        raise BundleError("manifest_sha256 must be 64 hexadecimal characters, not %r" % (manifest_sha256,))
    if not os.path.isdir(path):
        raise BundleError("bundle directory %s does not exist or is not a directory" % path)
    refused = "bundle refused: %s" % path
    manifest_path = os.path.join(path, MANIFEST_NAME)
    if os.path.islink(manifest_path) or not os.path.isfile(manifest_path):
        raise BundleRefused(
            "%s: it has no %s, so nothing proves its content; was it built by mlops.deploy.release_bundle?"
            % (refused, MANIFEST_NAME),
            {"missing": [MANIFEST_NAME], "tampered": [], "extra": [], "unexpected": []},
        )
    with open(manifest_path, "rb") as handle:
        manifest_raw = handle.read()
    actual = sha256_bytes(manifest_raw)
    if actual != expected:
        raise BundleRefused(
            "%s: %s has sha256 %s but this deploy was sent %s; the manifest was changed, or this is "
            "another release's bundle" % (refused, MANIFEST_NAME, actual, expected),
            {"missing": [], "tampered": [MANIFEST_NAME], "extra": [], "unexpected": []},
        )
    listed = parse_manifest(manifest_raw)
    present, odd = scan_directory(path)
    present.pop(MANIFEST_NAME, None)
    skipped = sorted(name for name in list(present) + odd if name not in listed and ignored(name, ignore))
    extra = sorted(name for name in present if name not in listed and name not in skipped)
    # A listed path that is a link or a special file counts as tampered, not as unexpected.
    tampered = sorted(
        name for name in listed if name in odd or (name in present and sha256_file(present[name]) != listed[name])
    )
    odd = [name for name in odd if name not in skipped and name not in listed]
    missing = sorted(name for name in listed if name not in present and name not in tampered)
    details = {"missing": missing, "tampered": tampered, "extra": extra, "unexpected": odd}
    if missing or tampered or extra or odd:
        raise BundleRefused("%s: %s" % (refused, describe_problems(details)), details)
    return {
        "path": path,
        "manifest_sha256": expected,
        "file_count": len(listed),
        "files": sorted(listed),
        "ignored": skipped,
    }


def describe_problems(details: dict) -> str:
    """One sentence per kind of problem, each naming its files (the first 20)."""
    parts = []
    for key, what in (
        ("tampered", "changed (sha256 differs from the manifest)"),
        ("missing", "missing"),
        ("extra", "not in the manifest"),
        ("unexpected", "links or special files (a bundle holds regular files only)"),
    ):
        names = details.get(key) or []
        if names:
            shown = ", ".join(names[:20]) + (" and %d more" % (len(names) - 20) if len(names) > 20 else "")
            parts.append("%d %s: %s" % (len(names), what, shown))
    return "; ".join(parts)
