"""The Kubernetes pod backend: each pod run is a batch/v1 Job on a GPU node.

The job token travels in a Secret the container reads by reference, so it never appears in
the Job. Stopping deletes the pod with the grace period the trainer needs for its checkpoint,
and the Job stays behind so its outcome can still be read.
"""

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import PurePosixPath
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from worker.pods.base import PodSpec, PodStatus
from worker.trainer import exit_codes

CONTAINER = "trainer"
GPU_RESOURCE = "nvidia.com/gpu"
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
# The Job controller labels its pods with the Job's name.
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
# DisruptionTarget reasons that mean the node went away rather than the pod being evicted.
NODE_GONE = ("DeletionByTaintManager", "DeletionByPodGC")
# How the Job controller words a FailJob match on an exit code: once the pod has been
# removed, this message is the only record of the trainer's exit code.
EXIT_CODE_IN_MESSAGE = re.compile(r"failed with exit code (\d+)")


class KubernetesBackend:
    def __init__(
        self,
        batch: client.BatchV1Api,
        core: client.CoreV1Api,
        *,
        namespace: str,
        image: str,
        artifacts_pvc: str,
        artifacts_mount: str = "",
        gpu_label: str = "ecolink.io/gpu-type",
        tolerations: list[client.V1Toleration] | None = None,
    ):
        self.batch = batch
        self.core = core
        self.namespace = namespace
        self.image = image
        self.artifacts_pvc = artifacts_pvc
        # Where the volume is mounted: the platform's artifacts root, so that every path
        # in run.json (datasets, checkpoints, the adapter) means the same in the pod.
        self.artifacts_mount = artifacts_mount
        self.gpu_label = gpu_label
        self.tolerations = tolerations or []

    @classmethod
    def from_environment(cls) -> "KubernetesBackend":
        env = os.environ
        backend_settings: dict[str, Any] = dict(
            namespace=env.get("ECOLINK_K8S_NAMESPACE", "ecolink"),
            image=_required("ECOLINK_TRAINER_IMAGE"),
            artifacts_pvc=_required("ECOLINK_K8S_ARTIFACTS_PVC"),
            artifacts_mount=env.get("ECOLINK_K8S_ARTIFACTS_MOUNT")
            or env.get("ECOLINK_ARTIFACTS_DIR", ""),
            gpu_label=env.get("ECOLINK_K8S_GPU_LABEL", "ecolink.io/gpu-type"),
            tolerations=parse_tolerations(
                env.get("ECOLINK_K8S_TOLERATIONS", f"{GPU_RESOURCE}:NoSchedule")
            ),
        )
        try:
            config.load_incluster_config()
        except config.ConfigException:  # outside the cluster: ~/.kube/config or $KUBECONFIG
            config.load_kube_config()
        return cls(client.BatchV1Api(), client.CoreV1Api(), **backend_settings)

    # Manifests

    def secret_manifest(self, spec: PodSpec) -> client.V1Secret:
        return client.V1Secret(
            api_version="v1",
            kind="Secret",
            metadata=client.V1ObjectMeta(name=_secret_name(spec.name), labels=_labels(spec)),
            type="Opaque",
            immutable=True,
            string_data=dict(spec.secret_env),
        )

    def job_manifest(self, spec: PodSpec) -> client.V1Job:
        mount = self.artifacts_mount or spec.artifacts_dir
        if not PurePosixPath(spec.artifacts_dir).is_relative_to(mount):
            raise ValueError(f"artifacts dir {spec.artifacts_dir} is outside the volume at {mount}")
        gpu = spec.gpu_type != "cpu"
        env = [client.V1EnvVar(name="PYTHONUNBUFFERED", value="1")]  # so logs() sees each line
        env += [client.V1EnvVar(name=key, value=value) for key, value in spec.env.items()]
        env += [
            client.V1EnvVar(
                name=key,
                value_from=client.V1EnvVarSource(
                    secret_key_ref=client.V1SecretKeySelector(name=_secret_name(spec.name), key=key)
                ),
            )
            for key in spec.secret_env
        ]
        container = client.V1Container(
            name=CONTAINER,
            image=spec.image or self.image,
            command=["python", "-m", "worker.trainer"],
            args=["--config", spec.config_path],
            env=env,
            resources=client.V1ResourceRequirements(
                limits={GPU_RESOURCE: str(spec.gpu_count)} if gpu else None
            ),
            volume_mounts=[
                client.V1VolumeMount(name="artifacts", mount_path=mount),
                client.V1VolumeMount(name="shm", mount_path="/dev/shm"),  # noqa: S108 (in the pod)
            ],
        )
        pod = client.V1PodSpec(
            containers=[container],
            restart_policy="Never",
            termination_grace_period_seconds=spec.grace_seconds,
            # A CPU run needs no GPU node and must not take one.
            node_selector={self.gpu_label: spec.gpu_type} if gpu else None,
            tolerations=self.tolerations if gpu else None,
            # The trainer talks to the platform only through its job token.
            automount_service_account_token=False,
            enable_service_links=False,
            volumes=[
                client.V1Volume(
                    name="artifacts",
                    persistent_volume_claim=client.V1PersistentVolumeClaimVolumeSource(
                        claim_name=self.artifacts_pvc
                    ),
                ),
                # NCCL and DataLoader workers share memory through /dev/shm: 64 MiB by default.
                client.V1Volume(
                    name="shm", empty_dir=client.V1EmptyDirVolumeSource(medium="Memory")
                ),
            ],
        )
        return client.V1Job(
            api_version="batch/v1",
            kind="Job",
            metadata=client.V1ObjectMeta(name=spec.name, labels=_labels(spec)),
            spec=client.V1JobSpec(
                # The platform decides whether to resume a failed run: Kubernetes never retries.
                backoff_limit=0,
                active_deadline_seconds=spec.deadline_seconds,
                pod_failure_policy=_pod_failure_policy(),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=_labels(spec)), spec=pod
                ),
            ),
        )

    # PodBackend

    def launch(self, spec: PodSpec) -> str:
        job = self.job_manifest(spec)
        # The Secret first, so the pod never starts without its token.
        with _ignoring(409):
            self.core.create_namespaced_secret(
                namespace=self.namespace, body=self.secret_manifest(spec)
            )
        try:
            created = self.batch.create_namespaced_job(namespace=self.namespace, body=job)
        except ApiException as e:
            if e.status == 409:  # launched before: the same name is the same pod run
                return spec.name
            raise
        # Owned by the Job, the Secret goes with it however the Job is deleted.
        owner = client.V1OwnerReference(
            api_version="batch/v1", kind="Job", name=spec.name, uid=_uid(created)
        )
        self.core.patch_namespaced_secret(
            name=_secret_name(spec.name),
            namespace=self.namespace,
            body=client.V1Secret(metadata=client.V1ObjectMeta(owner_references=[owner])),
            # The client would otherwise send it as a JSON Patch, which takes a list of ops.
            _content_type="application/merge-patch+json",
        )
        return spec.name

    def request_stop(self, name: str, grace_seconds: int) -> None:
        for pod in self._pods(name):
            if _phase(pod) in ("Succeeded", "Failed"):
                continue  # already ended; deleting it would lose the exit code status() reads
            with _ignoring(404):
                self.core.delete_namespaced_pod(
                    name=_name(pod),
                    namespace=self.namespace,
                    grace_period_seconds=grace_seconds,
                )

    def status(self, name: str) -> PodStatus:
        try:
            job = self.batch.read_namespaced_job(name=name, namespace=self.namespace)
        except ApiException as e:
            if e.status == 404:
                return PodStatus("missing")
            raise
        pods = self._pods(name)
        pod = pods[0] if pods else None  # backoffLimit 0: at most one pod
        if _job_condition(job, "Complete"):
            return PodStatus("succeeded", exit_code=exit_codes.OK)
        failed = _job_condition(job, "Failed")
        if failed or _phase(pod) in ("Failed", "Unknown"):
            return PodStatus(
                "failed", exit_code=_exit_code(pod, failed), reason=_reason(pod, failed)
            )
        if _phase(pod) == "Succeeded":
            return PodStatus("succeeded", exit_code=exit_codes.OK)
        if _phase(pod) == "Running":
            return PodStatus("running")
        return PodStatus("pending")

    def logs(self, name: str, tail: int = 50) -> list[str]:
        pods = self._pods(name)
        if not pods:
            return []
        try:
            text = self.core.read_namespaced_pod_log(
                name=_name(pods[0]),
                namespace=self.namespace,
                container=CONTAINER,
                tail_lines=tail,
            )
        except ApiException as e:
            if e.status in (400, 404):  # 400: the container has not started yet
                return []
            raise
        return text.splitlines()

    def delete(self, name: str) -> None:
        with _ignoring(404):
            # Background: the garbage collector stops the pod with its grace period.
            self.batch.delete_namespaced_job(
                name=name, namespace=self.namespace, propagation_policy="Background"
            )
        with _ignoring(404):
            self.core.delete_namespaced_secret(name=_secret_name(name), namespace=self.namespace)

    def _pods(self, name: str) -> list[client.V1Pod]:
        found = self.core.list_namespaced_pod(
            namespace=self.namespace, label_selector=f"{JOB_NAME_LABEL}={name}"
        )
        return found.items


def parse_tolerations(text: str) -> list[client.V1Toleration]:
    """Tolerations written as taints are, comma-separated: `key[=value]:Effect`."""
    tolerations = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        key_value, _, effect = item.rpartition(":")
        key, _, value = key_value.partition("=")
        if not key or effect not in TAINT_EFFECTS:
            raise ValueError(f"toleration {item!r}: expected key[=value]:{'|'.join(TAINT_EFFECTS)}")
        tolerations.append(
            client.V1Toleration(
                key=key, operator="Equal" if value else "Exists", value=value or None, effect=effect
            )
        )
    return tolerations


def _pod_failure_policy() -> client.V1PodFailurePolicy:
    # Both rules fail the Job at once; they differ in the message of its Failed condition,
    # which is how status() tells an eviction from a crash once the pod is gone.
    return client.V1PodFailurePolicy(
        rules=[
            # First: an evicted trainer that checkpointed and exited 75 was still evicted.
            client.V1PodFailurePolicyRule(
                action="FailJob",
                on_pod_conditions=[
                    client.V1PodFailurePolicyOnPodConditionsPattern(
                        type="DisruptionTarget", status="True"
                    )
                ],
            ),
            client.V1PodFailurePolicyRule(
                action="FailJob",
                on_exit_codes=client.V1PodFailurePolicyOnExitCodesRequirement(
                    container_name=CONTAINER, operator="NotIn", values=[exit_codes.OK]
                ),
            ),
        ]
    )


def _exit_code(pod: client.V1Pod | None, failed: client.V1JobCondition | None) -> int | None:
    terminated = _terminated(pod)
    if terminated is not None:
        return terminated.exit_code
    match = EXIT_CODE_IN_MESSAGE.search(failed.message or "") if failed else None
    return int(match[1]) if match else None


def _reason(pod: client.V1Pod | None, failed: client.V1JobCondition | None) -> str:
    if failed and failed.reason == "DeadlineExceeded":
        return "deadline"
    disruption = _pod_condition(pod, "DisruptionTarget")
    if disruption is not None:
        return "node_lost" if disruption.reason in NODE_GONE else "evicted"
    pod_reason = pod.status.reason if pod is not None and pod.status else None
    if _phase(pod) == "Unknown" or pod_reason == "NodeLost":
        return "node_lost"
    if pod_reason == "Evicted" or (failed and "DisruptionTarget" in (failed.message or "")):
        return "evicted"
    terminated = _terminated(pod)
    if terminated is not None and terminated.reason == "OOMKilled":
        return "oom"
    return ""


def _terminated(pod: client.V1Pod | None) -> client.V1ContainerStateTerminated | None:
    if pod is None or pod.status is None:
        return None
    for container in pod.status.container_statuses or []:
        if container.name == CONTAINER and container.state and container.state.terminated:
            return container.state.terminated
    return None


def _pod_condition(pod: client.V1Pod | None, kind: str) -> client.V1PodCondition | None:
    if pod is None or pod.status is None:
        return None
    return next(
        (c for c in pod.status.conditions or [] if c.type == kind and c.status == "True"), None
    )


def _job_condition(job: client.V1Job, kind: str) -> client.V1JobCondition | None:
    conditions = job.status.conditions if job.status else None
    return next((c for c in conditions or [] if c.type == kind and c.status == "True"), None)


def _phase(pod: client.V1Pod | None) -> str:
    return (pod.status.phase or "") if pod is not None and pod.status else ""


# The API server always sets these on an object it created or lists.
def _name(obj: client.V1Pod | client.V1Job) -> str:
    assert obj.metadata is not None and obj.metadata.name is not None
    return obj.metadata.name


def _uid(obj: client.V1Pod | client.V1Job) -> str:
    assert obj.metadata is not None and obj.metadata.uid is not None
    return obj.metadata.uid


def _labels(spec: PodSpec) -> dict[str, str]:
    return {
        "app": "ecolink-trainer",
        "ecolink.io/job-id": str(spec.job_id),
        "ecolink.io/run": str(spec.run),
    }


def _secret_name(name: str) -> str:
    return f"{name}-env"


def _required(var: str) -> str:
    value = os.environ.get(var)
    if not value:
        raise RuntimeError(f"{var} must be set for the kubernetes pod backend")
    return value


@contextmanager
def _ignoring(status: int) -> Iterator[None]:
    """Treat one API answer as success: 404 on a delete (already gone), 409 on a create."""
    try:
        yield
    except ApiException as e:
        if e.status != status:
            raise
