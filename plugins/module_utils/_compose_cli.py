# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The compose v2 CLI for one project: where the plugin is, how each command is run.

PRIVATE to the mlops.deploy collection (the leading ``_`` says so): no stability
promise to other collections. ``ComposeCli`` is the only place compose_deploy runs
compose; it returns each command's ``{"cmd", "rc", "stdout", "stderr"}`` and leaves
reading the output to ``_compose_events``.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Sequence

from ansible_collections.mlops.deploy.plugins.module_utils._compose_errors import DeployError
from ansible_collections.mlops.deploy.plugins.module_utils._compose_events import check_compose_version, parse_hashes

# run(argv, env) -> (rc, stdout, stderr); start(argv, env) -> wait, wait() -> (rc, stdout, stderr)
Runner = Callable[[list, dict], tuple]
Starter = Callable[[list, dict], Callable[[], tuple]]


# ----------------------------------------------------------- where compose is


PLUGIN_DIRS = (
    "/usr/local/lib/docker/cli-plugins",
    "/usr/local/libexec/docker/cli-plugins",
    "/usr/lib/docker/cli-plugins",
    "/usr/libexec/docker/cli-plugins",
)


def compose_command(
    environ: dict, home: str | None = None, is_executable: Callable[[str], bool] | None = None
) -> list[str]:
    """How to run compose: the v2 CLI plugin binary where docker looks for it, run directly
    (one process instead of the docker CLI starting the plugin), else ``docker compose``.

    Docker's search order (``$DOCKER_CONFIG/cli-plugins``, then the system plugin
    directories), with ``~/.docker/cli-plugins`` also looked at when DOCKER_CONFIG points
    elsewhere (a deploy user's own config dir, the plugin installed for root).
    """
    is_executable = is_executable or (lambda path: os.path.isfile(path) and os.access(path, os.X_OK))
    home = home or os.path.expanduser("~")
    directories = [os.path.join(home, ".docker", "cli-plugins")]
    if environ.get("DOCKER_CONFIG"):
        directories.insert(0, os.path.join(environ["DOCKER_CONFIG"], "cli-plugins"))
    for directory in directories + list(PLUGIN_DIRS):
        candidate = os.path.join(directory, "docker-compose")
        if is_executable(candidate):
            return [candidate]
    return ["docker", "compose"]


# ----------------------------------------------------------------- running it


def start_command(argv: list[str], env: dict) -> Callable[[], tuple[int, str, str]]:
    """Start ``argv`` with this process's environment updated with ``env``; returns a
    function that waits for it and gives ``(rc, stdout, stderr)``. What lets the read-only
    compose calls run side by side (``ComposeCli.start_inspection``)."""
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(os.environ, **env),
        )
    except OSError as exc:
        message = "cannot run %s: %s" % (argv[0], exc)
        return lambda: (127, "", message)

    def wait() -> tuple[int, str, str]:
        out, err = proc.communicate()
        return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")

    return wait


def _result(argv: list[str], rc: int, out: str, err: str) -> dict:
    return {"cmd": argv, "rc": rc, "stdout": out, "stderr": err}


class ComposeCli:
    """The compose v2 CLI for one project. ``run(argv, env) -> (rc, stdout, stderr)`` runs
    a command to its end; ``start(argv, env) -> wait`` (``start_command``) starts one, for
    the read-only calls that run side by side (without it they run one after the other)."""

    def __init__(
        self,
        run: Runner | None,
        files: Sequence[str],
        project: str | None = None,
        env_file: str | None = None,
        env: dict | None = None,
        command: Sequence[str] = ("docker", "compose"),
        start: Starter | None = None,
    ) -> None:
        self._run = run
        self._start = start or (lambda argv, env: lambda: run(argv, env))
        self._inspection: list | None = None
        self.files = list(files)
        self.project = project
        self.env_file = env_file
        self.env = env or {}
        self.command = list(command)

    def derive(self, files: Sequence[str], project: str) -> ComposeCli:
        """The same CLI (runner, env file, environment, command) for other files and another project."""
        return ComposeCli(
            self._run, files, project=project, env_file=self.env_file, env=self.env, command=self.command,
            start=self._start,
        )  # fmt: skip

    def argv(self, *args: str, extra_files: Sequence[str] = (), progress: bool = True) -> list[str]:
        argv = list(self.command)
        if progress:
            argv += ["--progress", "json"]
        for path in self.files + list(extra_files):
            argv += ["-f", path]
        if self.env_file:
            argv += ["--env-file", self.env_file]
        if self.project:
            argv += ["-p", self.project]
        return argv + list(args)

    def call(self, argv: list[str]) -> dict:
        return _result(argv, *self._run(argv, self.env))

    def start_inspection(self) -> None:
        """Start the three read-only calls a deploy begins with, side by side: ``version
        --short``, ``config --format json`` and ``config --hash '*'``. ``inspect`` collects
        them (and starts them itself when this was not called)."""
        if self._inspection is None:
            argvs = (
                self.command + ["version", "--short"],
                self.argv("config", "--format", "json", progress=False),
                self.argv("config", "--hash", "*", progress=False),
            )
            self._inspection = [(argv, self._start(argv, self.env)) for argv in argvs]

    def inspect(self) -> tuple[tuple[int, ...], dict, tuple[dict | None, dict]]:
        """``(version, model, hashes)``: the compose version (checked: a DeployError when
        missing or too old), the project's configuration, and the configuration hash of
        each service (``{service: hash}``, or None with the failed call when compose could
        not give them: ``(None, result)``)."""
        self.start_inspection()
        version, config, hashes = (_result(argv, *wait()) for argv, wait in self._inspection)
        self._inspection = None
        found = check_compose_version(
            version["stdout"] if version["rc"] == 0 else (version["stderr"] or version["stdout"] or "no output")
        )
        if config["rc"] != 0:
            raise DeployError(
                "docker compose cannot read %s: %s" % (", ".join(self.files), config["stderr"].strip()), config
            )
        try:
            model = json.loads(config["stdout"])
        except ValueError:
            raise DeployError("docker compose config did not print JSON", config) from None
        if hashes["rc"] != 0:
            return found, model, (None, hashes)
        return found, model, (parse_hashes(hashes["stdout"]), hashes)

    def pull(self, services: list[str]) -> dict:
        return self.call(self.argv("pull", "--ignore-buildable", *services))

    def up(self, services: list[str], remove_orphans: bool = False, extra_files: Sequence[str] = ()) -> dict:
        args = ["up", "--detach", "--pull", "never", "--no-build"]
        if remove_orphans:
            args.append("--remove-orphans")
        return self.call(self.argv(*args, *services, extra_files=extra_files))

    def remove(self, services: list[str]) -> dict:
        return self.call(self.argv("rm", "--stop", "--force", *services))
