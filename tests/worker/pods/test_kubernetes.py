"""The Kubernetes backend against a fake API: manifests checked with the client's own models,
calls recorded, answers built from the client's model objects. No cluster, no database."""

import copy
import inspect
import json

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from worker.pods import kubernetes as k8s
from worker.pods.base import PodSpec, PodStatus
from worker.pods.kubernetes import KubernetesBackend, parse_tolerations
from worker.trainer.exit_codes import KILLED as EXIT_KILLED
from worker.trainer.exit_codes import RESUMABLE as EXIT_RESUMABLE

TOKEN = "tok-SECRET-5f2a9c71"  # recognisable, so a leak is easy to find
NAME = "ecolink-job-42-run-2"

SPEC = PodSpec(
    job_id=42,
    run=2,
    config_path="/srv/artifacts/jobs/42/run-2.json",
    artifacts_dir="/srv/artifacts/jobs/42",
    gpu_type="nvidia-a100-80gb",
    gpu_count=4,
    env={"HF_HOME": "/srv/artifacts/hf"},
    secret_env={"ECOLINK_JOB_TOKEN": TOKEN},
    grace_seconds=300,
    deadline_seconds=86_400,
)


class FakeApi:
    """Stands in for BatchV1Api or CoreV1Api. Each call is bound to the real method's
    signature (a misspelt argument fails here as it would against a cluster), recorded, and
    answered from `replies`: a model object, or an ApiException to raise. A create answers
    with the object it was given plus a uid, as the API server does."""

    def __init__(self, real: type):
        self.real = real
        self.calls: list[tuple[str, dict]] = []
        self.replies: dict[str, object] = {}

    def __getattr__(self, method: str):
        signature = inspect.signature(getattr(self.real, method))

        def call(*args, **kwargs):
            arguments = signature.bind(self, *args, **kwargs).arguments
            del arguments["self"]
            self.calls.append((method, arguments))
            reply = self.replies.get(method)
            if isinstance(reply, Exception):
                raise reply
            if reply is None and method.startswith("create_"):
                reply = copy.deepcopy(arguments["body"])
                reply.metadata.uid = f"uid-{reply.metadata.name}"
            return reply

        return call

    def called(self, method: str) -> list[dict]:
        return [arguments for name, arguments in self.calls if name == method]


@pytest.fixture
def batch():
    return FakeApi(client.BatchV1Api)


@pytest.fixture
def core():
    api = FakeApi(client.CoreV1Api)
    api.replies["list_namespaced_pod"] = client.V1PodList(items=[])
    return api


@pytest.fixture
def backend(batch, core):
    return KubernetesBackend(
        batch,
        core,
        namespace="training",
        image="registry.example/ecolink-trainer:1.4",
        artifacts_pvc="ecolink-artifacts",
        artifacts_mount="/srv/artifacts",
        tolerations=parse_tolerations("nvidia.com/gpu:NoSchedule"),
    )


def serialised(model) -> dict:
    return client.ApiClient().sanitize_for_serialization(model)


def pod_spec(backend, spec=SPEC) -> dict:
    return serialised(backend.job_manifest(spec))["spec"]["template"]["spec"]


def job(*conditions: tuple[str, str, str]) -> client.V1Job:
    """A Job read back from the API, with (type, reason, message) conditions."""
    return client.V1Job(
        metadata=client.V1ObjectMeta(name=NAME),
        status=client.V1JobStatus(
            conditions=[
                client.V1JobCondition(type=kind, status="True", reason=reason, message=message)
                for kind, reason, message in conditions
            ]
        ),
    )


def pod(
    phase, exit_code=None, terminated_reason=None, disruption=None, reason=None
) -> client.V1Pod:
    """The Job's pod; `disruption` is the reason of a DisruptionTarget condition."""
    state = client.V1ContainerState(
        terminated=client.V1ContainerStateTerminated(exit_code=exit_code, reason=terminated_reason)
        if exit_code is not None
        else None
    )
    conditions = [client.V1PodCondition(type="DisruptionTarget", status="True", reason=disruption)]
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=f"{NAME}-x7k2p"),
        status=client.V1PodStatus(
            phase=phase,
            reason=reason,
            conditions=conditions if disruption else None,
            container_statuses=[
                client.V1ContainerStatus(
                    name="trainer",
                    image="i",
                    image_id="",
                    ready=False,
                    restart_count=0,
                    state=state,
                )
            ],
        ),
    )


def answer(batch, core, the_job, *pods):
    batch.replies["read_namespaced_job"] = the_job
    core.replies["list_namespaced_pod"] = client.V1PodList(items=list(pods))


# The manifest


def test_job_runs_the_trainer_image_and_command(backend):
    manifest = serialised(backend.job_manifest(SPEC))
    assert manifest["apiVersion"] == "batch/v1"
    assert manifest["kind"] == "Job"
    assert manifest["metadata"]["name"] == NAME
    [container] = manifest["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry.example/ecolink-trainer:1.4"
    assert container["command"] == ["python", "-m", "worker.trainer"]
    assert container["args"] == ["--config", "/srv/artifacts/jobs/42/run-2.json"]
    assert {"name": "HF_HOME", "value": "/srv/artifacts/hf"} in container["env"]


def test_spec_image_overrides_the_default(backend):
    spec = PodSpec(**{**SPEC.__dict__, "image": "registry.example/custom:2"})
    assert pod_spec(backend, spec)["containers"][0]["image"] == "registry.example/custom:2"


def test_gpus_node_selector_and_tolerations_follow_the_spec(backend):
    spec = pod_spec(backend)
    assert spec["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": "4"}
    assert spec["nodeSelector"] == {"ecolink.io/gpu-type": "nvidia-a100-80gb"}
    assert spec["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]


def test_cpu_run_asks_for_no_gpu_node(backend):
    spec = pod_spec(backend, PodSpec(**{**SPEC.__dict__, "gpu_type": "cpu", "gpu_count": 1}))
    assert "limits" not in spec["containers"][0].get("resources", {})
    assert "nodeSelector" not in spec
    assert "tolerations" not in spec


def test_job_never_retries_and_leaves_time_for_the_checkpoint(backend):
    job_spec = serialised(backend.job_manifest(SPEC))["spec"]
    assert job_spec["backoffLimit"] == 0
    assert job_spec["activeDeadlineSeconds"] == 86_400
    assert job_spec["template"]["spec"]["restartPolicy"] == "Never"
    assert job_spec["template"]["spec"]["terminationGracePeriodSeconds"] == 300


def test_failure_policy_tells_a_disruption_from_a_crash(backend):
    rules = serialised(backend.job_manifest(SPEC))["spec"]["podFailurePolicy"]["rules"]
    assert rules == [
        {
            "action": "FailJob",
            "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
        },
        {
            "action": "FailJob",
            "onExitCodes": {"containerName": "trainer", "operator": "NotIn", "values": [0]},
        },
    ]


def test_secret_reaches_the_container_by_reference_only(backend):
    manifest = serialised(backend.job_manifest(SPEC))
    assert TOKEN not in json.dumps(manifest)
    assert TOKEN not in repr(backend.job_manifest(SPEC))
    env = manifest["spec"]["template"]["spec"]["containers"][0]["env"]
    [token] = [e for e in env if e["name"] == "ECOLINK_JOB_TOKEN"]
    assert token == {
        "name": "ECOLINK_JOB_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": f"{NAME}-env", "key": "ECOLINK_JOB_TOKEN"}},
    }
    secret = serialised(backend.secret_manifest(SPEC))
    assert secret["metadata"]["name"] == f"{NAME}-env"
    assert secret["stringData"] == {"ECOLINK_JOB_TOKEN": TOKEN}


def test_manifest_round_trips_through_the_client_models(backend):
    # The models forbid unknown fields and check types, so a misspelt or mistyped field fails.
    job_manifest = backend.job_manifest(SPEC)
    text = json.dumps(serialised(job_manifest))
    back = client.ApiClient().deserialize(text, "V1Job", "application/json")
    assert isinstance(back, client.V1Job)
    assert back == job_manifest
    assert back.spec.template.spec.containers[0].env[-1].value_from.secret_key_ref.key == (
        "ECOLINK_JOB_TOKEN"
    )
    secret = client.ApiClient().deserialize(
        json.dumps(serialised(backend.secret_manifest(SPEC))), "V1Secret", "application/json"
    )
    assert secret == backend.secret_manifest(SPEC)


def test_job_pod_and_secret_carry_the_labels(backend):
    labels = {"app": "ecolink-trainer", "ecolink.io/job-id": "42", "ecolink.io/run": "2"}
    manifest = backend.job_manifest(SPEC)
    assert manifest.metadata.labels == labels
    assert manifest.spec.template.metadata.labels == labels
    assert backend.secret_manifest(SPEC).metadata.labels == labels


def test_artifacts_volume_is_mounted_at_the_platform_root(backend):
    spec = pod_spec(backend)
    assert {"name": "artifacts", "mountPath": "/srv/artifacts"} in spec["containers"][0][
        "volumeMounts"
    ]
    assert {"name": "artifacts", "persistentVolumeClaim": {"claimName": "ecolink-artifacts"}} in (
        spec["volumes"]
    )


def test_artifacts_dir_outside_the_volume_is_refused(backend):
    with pytest.raises(ValueError, match="outside the volume"):
        backend.job_manifest(PodSpec(**{**SPEC.__dict__, "artifacts_dir": "/tmp/jobs/42"}))


def test_tolerations_are_written_as_taints():
    assert parse_tolerations("nvidia.com/gpu:NoSchedule, dedicated=ml:NoExecute") == [
        client.V1Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule"),
        client.V1Toleration(key="dedicated", operator="Equal", value="ml", effect="NoExecute"),
    ]
    with pytest.raises(ValueError, match="toleration"):
        parse_tolerations("nvidia.com/gpu")


# launch, request_stop, delete


def test_launch_creates_the_secret_then_the_job_that_owns_it(backend, batch, core):
    assert backend.launch(SPEC) == NAME
    [secret] = core.called("create_namespaced_secret")
    [created] = batch.called("create_namespaced_job")
    assert secret["namespace"] == created["namespace"] == "training"
    assert secret["body"].string_data == {"ECOLINK_JOB_TOKEN": TOKEN}
    assert created["body"] == backend.job_manifest(SPEC)
    assert [name for name, _ in core.calls] == [
        "create_namespaced_secret",
        "patch_namespaced_secret",
    ]
    [patch] = core.called("patch_namespaced_secret")
    assert patch["name"] == f"{NAME}-env"
    assert patch["_content_type"] == "application/merge-patch+json"
    [owner] = patch["body"].metadata.owner_references
    assert (owner.kind, owner.name, owner.uid) == ("Job", NAME, f"uid-{NAME}")


def test_second_launch_after_a_conflict_does_not_fail(backend, batch, core):
    core.replies["create_namespaced_secret"] = ApiException(status=409)
    batch.replies["create_namespaced_job"] = ApiException(status=409)
    assert backend.launch(SPEC) == NAME
    assert len(batch.called("create_namespaced_job")) == 1
    assert core.called("patch_namespaced_secret") == []


def test_launch_reports_other_api_errors(backend, batch):
    batch.replies["create_namespaced_job"] = ApiException(status=403)
    with pytest.raises(ApiException):
        backend.launch(SPEC)


def test_request_stop_deletes_the_pod_with_the_grace_period(backend, batch, core):
    answer(batch, core, job(), pod("Running"))
    backend.request_stop(NAME, grace_seconds=300)
    [listed] = core.called("list_namespaced_pod")
    assert listed["label_selector"] == f"batch.kubernetes.io/job-name={NAME}"
    [deleted] = core.called("delete_namespaced_pod")
    assert deleted == {
        "name": f"{NAME}-x7k2p",
        "namespace": "training",
        "grace_period_seconds": 300,
    }
    assert batch.called("delete_namespaced_job") == []  # the Job stays to be read


def test_request_stop_is_safe_on_an_ended_or_vanished_pod(backend, batch, core):
    answer(batch, core, job(), pod("Failed", exit_code=1))
    backend.request_stop(NAME, grace_seconds=300)
    assert core.called("delete_namespaced_pod") == []  # its exit code is still to be read
    answer(batch, core, job(), pod("Running"))
    core.replies["delete_namespaced_pod"] = ApiException(status=404)
    backend.request_stop(NAME, grace_seconds=300)


def test_delete_removes_the_job_in_the_background_and_its_secret(backend, batch, core):
    backend.delete(NAME)
    assert batch.called("delete_namespaced_job") == [
        {"name": NAME, "namespace": "training", "propagation_policy": "Background"}
    ]
    assert core.called("delete_namespaced_secret") == [
        {"name": f"{NAME}-env", "namespace": "training"}
    ]


def test_delete_is_idempotent(backend, batch, core):
    batch.replies["delete_namespaced_job"] = ApiException(status=404)
    core.replies["delete_namespaced_secret"] = ApiException(status=404)
    backend.delete(NAME)
    backend.delete(NAME)


# status


DEADLINE = ("Failed", "DeadlineExceeded", "Job was active longer than specified deadline")
CRASHED_75 = (
    "Failed",
    "PodFailurePolicy",
    f"Container trainer for pod training/{NAME}-x7k2p failed with exit code 75 matching FailJob "
    "rule at index 1",
)
DISRUPTED = (
    "Failed",
    "PodFailurePolicy",
    f"Pod training/{NAME}-x7k2p has condition DisruptionTarget matching FailJob rule at index 0",
)


@pytest.mark.parametrize(
    ("the_job", "pods", "expected"),
    [
        (job(), [], PodStatus("pending")),
        (job(), [pod("Pending")], PodStatus("pending")),
        (job(), [pod("Running")], PodStatus("running")),
        (job(("Complete", "", "")), [pod("Succeeded", exit_code=0)], PodStatus("succeeded", 0)),
        (job(("Complete", "", "")), [], PodStatus("succeeded", 0)),
        (
            job(("Failed", "PodFailurePolicy", "")),
            [pod("Failed", exit_code=137, terminated_reason="OOMKilled")],
            PodStatus("failed", EXIT_KILLED, "oom"),
        ),
        # 75 is a failure to Kubernetes; the platform reads it as "resumable".
        (job(CRASHED_75), [pod("Failed", exit_code=75)], PodStatus("failed", EXIT_RESUMABLE)),
        (job(CRASHED_75), [], PodStatus("failed", EXIT_RESUMABLE)),
        (job(), [pod("Failed", exit_code=1, terminated_reason="Error")], PodStatus("failed", 1)),
        (
            job(DISRUPTED),
            [pod("Failed", exit_code=75, disruption="PreemptionByScheduler")],
            PodStatus("failed", EXIT_RESUMABLE, "evicted"),
        ),
        (job(DISRUPTED), [], PodStatus("failed", None, "evicted")),
        (
            job(),
            [pod("Failed", exit_code=137, reason="Evicted")],
            PodStatus("failed", 137, "evicted"),
        ),
        (
            job(DISRUPTED),
            [pod("Failed", exit_code=137, disruption="DeletionByTaintManager")],
            PodStatus("failed", 137, "node_lost"),
        ),
        (job(), [pod("Unknown")], PodStatus("failed", None, "node_lost")),
        (job(DEADLINE), [pod("Failed", exit_code=75)], PodStatus("failed", 75, "deadline")),
        (job(DEADLINE), [], PodStatus("failed", None, "deadline")),
    ],
    ids=[
        "no-pod-yet",
        "pod-pending",
        "running",
        "succeeded",
        "succeeded-pod-gone",
        "oom",
        "resumable-75",
        "resumable-75-pod-gone",
        "crash",
        "preempted",
        "evicted-pod-gone",
        "kubelet-eviction",
        "node-lost-taint",
        "node-lost-unknown",
        "deadline",
        "deadline-pod-gone",
    ],
)
def test_status(backend, batch, core, the_job, pods, expected):
    answer(batch, core, the_job, *pods)
    assert backend.status(NAME) == expected
    assert batch.called("read_namespaced_job") == [{"name": NAME, "namespace": "training"}]


def test_status_of_a_job_that_is_gone_is_missing(backend, batch):
    batch.replies["read_namespaced_job"] = ApiException(status=404)
    assert backend.status(NAME) == PodStatus("missing")


# logs


def test_logs_tail_the_trainer_container(backend, batch, core):
    answer(batch, core, job(), pod("Running"))
    core.replies["read_namespaced_pod_log"] = "step 9 loss 1.2\nstep 10 loss 1.1\n"
    assert backend.logs(NAME, tail=2) == ["step 9 loss 1.2", "step 10 loss 1.1"]
    [read] = core.called("read_namespaced_pod_log")
    assert read == {
        "name": f"{NAME}-x7k2p",
        "namespace": "training",
        "container": "trainer",
        "tail_lines": 2,
    }


def test_logs_are_empty_without_a_started_pod(backend, batch, core):
    assert backend.logs(NAME) == []
    answer(batch, core, job(), pod("Pending"))
    core.replies["read_namespaced_pod_log"] = ApiException(status=400)  # container creating
    assert backend.logs(NAME) == []


# from_environment


def test_from_environment_reads_the_settings_and_falls_back_to_kubeconfig(monkeypatch):
    def not_in_a_cluster():
        raise config.ConfigException("no service account")

    loaded = []
    monkeypatch.setattr(k8s.config, "load_incluster_config", not_in_a_cluster)
    monkeypatch.setattr(k8s.config, "load_kube_config", lambda: loaded.append("kubeconfig"))
    monkeypatch.setenv("ECOLINK_K8S_NAMESPACE", "training")
    monkeypatch.setenv("ECOLINK_TRAINER_IMAGE", "registry.example/ecolink-trainer:1.4")
    monkeypatch.setenv("ECOLINK_K8S_ARTIFACTS_PVC", "ecolink-artifacts")
    monkeypatch.setenv("ECOLINK_ARTIFACTS_DIR", "/srv/artifacts")
    monkeypatch.delenv("ECOLINK_K8S_ARTIFACTS_MOUNT", raising=False)
    monkeypatch.setenv("ECOLINK_K8S_GPU_LABEL", "gpu.example/model")
    monkeypatch.setenv("ECOLINK_K8S_TOLERATIONS", "dedicated=ml:NoSchedule")
    backend = KubernetesBackend.from_environment()
    assert loaded == ["kubeconfig"]
    assert isinstance(backend.batch, client.BatchV1Api)
    assert isinstance(backend.core, client.CoreV1Api)
    spec = pod_spec(backend)
    assert spec["nodeSelector"] == {"gpu.example/model": "nvidia-a100-80gb"}
    assert spec["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}
    ]
    assert {"name": "artifacts", "mountPath": "/srv/artifacts"} in spec["containers"][0][
        "volumeMounts"
    ]


def test_from_environment_needs_an_image_and_a_volume(monkeypatch):
    monkeypatch.delenv("ECOLINK_TRAINER_IMAGE", raising=False)
    with pytest.raises(RuntimeError, match="ECOLINK_TRAINER_IMAGE"):
        KubernetesBackend.from_environment()
    monkeypatch.setenv("ECOLINK_TRAINER_IMAGE", "registry.example/ecolink-trainer:1.4")
    monkeypatch.delenv("ECOLINK_K8S_ARTIFACTS_PVC", raising=False)
    with pytest.raises(RuntimeError, match="ECOLINK_K8S_ARTIFACTS_PVC"):
        KubernetesBackend.from_environment()
