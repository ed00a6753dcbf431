"""ECS service scheduler stand-in for the sandbox's moto server.

moto keeps ECS services without tasks: nothing runs a service's tasks, a forced new
deployment only changes the deployment's id, ``ListTasks(serviceName=...)`` ignores the
service, ``CreateService`` drops ``enableExecuteCommand``, a task gets one container
whatever its task definition holds, and a cluster made without capacity providers lacks
``capacityProviders`` and ``defaultCapacityProviderStrategy`` (AWS returns them empty;
community.aws.ecs_cluster fails on an existing cluster without them). Real ECS starts ``desiredCount`` tasks for the
service's primary deployment (``startedBy`` = the deployment id, ``group`` =
``service:<name>``), one container per container definition, replaces the tasks of older
deployments, carries the service's ``enableExecuteCommand`` to its tasks (with a running
``ExecuteCommandAgent`` in each container), and reports the rollout COMPLETED once they
run. This module makes moto do that, at once, after every CreateService and UpdateService,
so clients that wait for a rollout and inspect tasks (the ``ecs_exec`` role,
``ecs_exec_info``) meet the behaviour they meet on AWS.
"""

from __future__ import annotations

import inspect
import threading
from typing import Any

from moto.ecs import models as ecs
from moto.ecs import responses

_installed = False
# enableExecuteCommand of the CreateService request being handled, for the backend call
# it makes (moto's response handler does not pass it on); one per server thread.
_request = threading.local()


def reconcile(backend: Any, service: Any) -> None:
    """Make the service's running tasks those of its primary deployment, as ECS would."""
    if service.deployment_controller.get("type") != "ECS" or not service.deployments or not service.task_definition:
        return
    primary = service.deployments[0]
    cluster = backend._get_cluster(service.cluster_name)  # noqa: SLF001
    tasks = backend.tasks.setdefault(cluster.name, {})
    group = f"service:{service.name}"
    for task in tasks.values():
        if task.group == group and task.desired_status == "RUNNING" and task.started_by != primary["id"]:
            task.last_status = "STOPPED"
            task.desired_status = "STOPPED"
            task.stopped_reason = "Task replaced by a new deployment (sandbox ECS scheduler)"
    running = [t for t in tasks.values() if t.group == group and t.desired_status == "RUNNING"]
    for task in running[service.desired_count :]:
        task.last_status = "STOPPED"
        task.desired_status = "STOPPED"
        task.stopped_reason = "Scaled in (sandbox ECS scheduler)"
    task_definition = backend.describe_task_definition(service.task_definition)
    exec_enabled = bool(getattr(service, "enable_execute_command", False))
    for _ in range(service.desired_count - len(running)):
        task = ecs.Task(
            cluster=cluster,
            task_definition=task_definition,
            container_instance_arn=None,
            resource_requirements=None,
            backend=backend,
            group=group,
            launch_type=service.launch_type or "FARGATE",
            started_by=primary["id"],
        )
        # A service task runs until the scheduler stops it (moto's default walks every task
        # from RUNNING to STOPPED as it is described).
        task._transitions = [("RUNNING", "RUNNING")]  # noqa: SLF001
        task.enable_execute_command = exec_enabled
        task.containers = [_container(task_definition, d, exec_enabled) for d in task_definition.container_definitions]
        tasks[task.task_arn] = task
    primary.update(
        runningCount=service.desired_count,
        pendingCount=0,
        rolloutState="COMPLETED",
        rolloutStateReason=f"ECS deployment {primary['id']} completed.",
    )
    service.running_count = service.desired_count
    service.pending_count = 0


def _container(task_definition: Any, definition: dict, exec_enabled: bool) -> Any:
    """A running container of the task for one container definition (moto makes one, for the first)."""
    container = ecs.Container(task_definition)
    for attribute, key in (("name", "name"), ("image", "image"), ("cpu", "cpu"), ("memory", "memory")):
        setattr(container, attribute, definition.get(key, 0 if key == "cpu" else None))
    container.environment = definition.get("environment")
    container.command = definition.get("command")
    container.last_status = "RUNNING"
    if exec_enabled:
        container.managed_agents = [{"name": "ExecuteCommandAgent", "lastStatus": "RUNNING"}]
    return container


def install() -> None:
    """Patch moto's ECS backend (idempotent); called before the server starts."""
    global _installed  # noqa: PLW0603
    if _installed:
        return
    backend_class = ecs.EC2ContainerServiceBackend
    create_service = backend_class.create_service
    update_service = backend_class.update_service
    list_tasks = backend_class.list_tasks
    cluster_init = ecs.Cluster.__init__

    def cluster_init_as_aws(self, *args, **kwargs):
        cluster_init(self, *args, **kwargs)
        self.capacity_providers = self.capacity_providers or []
        self.default_capacity_provider_strategy = self.default_capacity_provider_strategy or []

    create_service_response = responses.EC2ContainerServiceResponse.create_service

    def create_service_response_with_exec(self, *args, **kwargs):
        _request.enable_execute_command = bool(self._get_param("enableExecuteCommand", False))  # noqa: SLF001
        try:
            return create_service_response(self, *args, **kwargs)
        finally:
            _request.enable_execute_command = False

    def create_service_and_run(self, *args, **kwargs):
        service = create_service(self, *args, **kwargs)
        service.enable_execute_command = getattr(_request, "enable_execute_command", False)
        reconcile(self, service)
        return service

    def update_service_and_run(self, *args, **kwargs):
        service = update_service(self, *args, **kwargs)
        reconcile(self, service)
        return service

    list_tasks_signature = inspect.signature(list_tasks)

    def list_tasks_of_service(self, *args, **kwargs):
        tasks = list_tasks(self, *args, **kwargs)
        service_name = list_tasks_signature.bind(self, *args, **kwargs).arguments.get("service_name")
        if service_name:
            group = f"service:{service_name.split('/')[-1]}"
            tasks = [t for t in tasks if t.group == group]
        return tasks

    ecs.Cluster.__init__ = cluster_init_as_aws
    backend_class.create_service = create_service_and_run
    backend_class.update_service = update_service_and_run
    backend_class.list_tasks = list_tasks_of_service
    responses.EC2ContainerServiceResponse.create_service = create_service_response_with_exec
    _installed = True
