# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The Docker engine as compose_deploy looks at it, through the docker SDK's low-level
client: a project's containers, images, registry digests, networks, logs, image removal.

PRIVATE to the mlops.deploy collection (the leading ``_`` says so): no stability
promise to other collections. The SDK's exception classes are given to ``Engine``, so
this module imports no docker code (the unit tests hand it recorded answers).
"""

from __future__ import annotations

from typing import Any

from ansible_collections.mlops.deploy.plugins.module_utils._compose_errors import DeployError
from ansible_collections.mlops.deploy.plugins.module_utils._compose_state import (
    LABEL_PROJECT,
    container_state,
    group_by_service,
)

LOG_LINES = 30


# ----------------------------------------------------------------- the engine


class Engine:
    """The Docker engine API through the docker SDK's low-level client."""

    def __init__(self, api: Any, not_found: type[BaseException], api_error: type[BaseException]) -> None:
        self.api = api
        self._not_found = not_found
        self._api_error = api_error

    def project_containers(self, project: str) -> dict[str, list[dict]]:
        states: list[dict] = []
        for summary in self.api.containers(all=True, filters={"label": ["%s=%s" % (LABEL_PROJECT, project)]}):
            try:
                states.append(container_state(self.api.inspect_container(summary["Id"])))
            except self._not_found:
                continue  # removed meanwhile
        return group_by_service(states)

    def image(self, ref: str) -> dict | None:
        try:
            return self.api.inspect_image(ref)
        except self._not_found:
            return None

    def registry_digest(self, ref: str) -> str:
        """The registry's digest for ``ref`` (the engine asks the registry; nothing is pulled)."""
        try:
            return self.api.inspect_distribution(ref)["Descriptor"]["digest"]
        except self._api_error as exc:
            raise DeployError("cannot read %s from its registry: %s" % (ref, _api_message(exc))) from None

    def networks(self, names: list[str]) -> dict[str, dict | None]:
        """``{name: {"id", "labels"} or None}`` for networks by engine name."""
        found: dict[str, dict | None] = {}
        for name in names:
            try:
                info = self.api.inspect_network(name)
            except self._not_found:
                found[name] = None
                continue
            found[name] = {"id": info["Id"], "labels": info.get("Labels") or {}}
        return found

    def images(self) -> list[dict]:
        """Every image of the engine (the list API's summaries: Id, Created, RepoTags, RepoDigests)."""
        return self.api.images()

    def images_in_use(self) -> set[str]:
        return {summary.get("ImageID") for summary in self.api.containers(all=True)}

    def remove_image(self, ref: str) -> str | None:
        """Remove one reference (the image goes with its last one); an error message, or None."""
        try:
            self.api.remove_image(ref, force=False, noprune=False)
        except self._api_error as exc:
            return _api_message(exc)
        return None

    def published_ports(self, project: str) -> dict[int, list[str]]:
        """``{host port: [container names]}`` the running containers of ``project`` publish."""
        found: dict[int, list[str]] = {}
        for summary in self.api.containers(filters={"label": ["%s=%s" % (LABEL_PROJECT, project)]}):
            for port in summary.get("Ports") or []:
                if port.get("PublicPort"):
                    names = [n.lstrip("/") for n in summary.get("Names") or []]
                    found.setdefault(int(port["PublicPort"]), []).extend(names)
        return found

    def stop(self, container_id: str, timeout: int = 10) -> None:
        """Stop a container (SIGTERM, then SIGKILL after ``timeout`` seconds)."""
        try:
            self.api.stop(container_id, timeout=timeout)
        except self._not_found:
            return

    def exec(self, container: str, argv: list[str]) -> tuple[int | None, str]:
        """Run ``argv`` in a running container: ``(exit code, output)``; exit code None when
        the container does not run."""
        try:
            created = self.api.exec_create(container, argv, stdout=True, stderr=True)
            output = self.api.exec_start(created["Id"])
            code = self.api.exec_inspect(created["Id"]).get("ExitCode")
        except self._api_error as exc:
            return None, _api_message(exc)
        return code, (output or b"").decode("utf-8", "replace")

    def logs(self, container_id: str, lines: int = LOG_LINES) -> list[str]:
        try:
            raw = self.api.logs(container_id, stdout=True, stderr=True, tail=lines)
        except self._api_error:
            return []
        return raw.decode("utf-8", "replace").splitlines()[-lines:]


def _api_message(exc: BaseException) -> str:
    return getattr(exc, "explanation", None) or str(exc)
