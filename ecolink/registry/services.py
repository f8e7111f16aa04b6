"""Writes to the registry: model instances, deploying and undeploying adapters, deleting
a model's files. Views (browser and API) and management commands call these.

A backend call (attach, detach) happens after the transaction that decided it, so a slow
or dead instance never holds a row lock; the `attaching` state makes a retry safe.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from ecolink.catalog.models import BaseModel
from ecolink.finetune.models import Job
from ecolink.finetune.runconfig import job_artifacts_dir
from ecolink.registry.backends import BackendError, backend_for
from ecolink.registry.models import Deployment, ModelInstance, RegisteredAdapter

log = logging.getLogger(__name__)
D = Deployment.Status


class DeployRefused(Exception):
    """The action can't be taken; the message says why, for the user."""


# --- selectors
def running_instance(base_model_id: int) -> ModelInstance | None:
    return ModelInstance.objects.filter(
        base_model_id=base_model_id, status=ModelInstance.Status.RUNNING
    ).first()


def live_deployment(adapter: RegisteredAdapter) -> Deployment | None:
    return (
        Deployment.objects.select_related("instance")
        .filter(adapter=adapter, status__in=Deployment.LIVE)
        .first()
    )


def live_adapters(organization_id: int) -> QuerySet[RegisteredAdapter]:
    return RegisteredAdapter.objects.filter(
        organization_id=organization_id, deleted_at__isnull=True
    )


def served_name_for(adapter: RegisteredAdapter) -> str:
    return f"ecolink-adapter-{adapter.pk}"


# --- instances
@transaction.atomic
def instance_register(
    *,
    name: str,
    base_model: BaseModel,
    backend: str,
    endpoint_url: str,
    served_model_name: str = "",
    max_adapters: int = 8,
) -> ModelInstance:
    """Record a running inference server for `base_model`; the previous running instance
    of that base, if any, is marked stopped (its deployments move with a redeploy)."""
    ModelInstance.objects.filter(
        base_model=base_model, status=ModelInstance.Status.RUNNING
    ).exclude(name=name).update(
        status=ModelInstance.Status.STOPPED, status_message=f"Replaced by {name}"
    )
    instance, _ = ModelInstance.objects.update_or_create(
        name=name,
        defaults=dict(
            base_model=base_model,
            backend=backend,
            endpoint_url=endpoint_url,
            served_model_name=served_model_name or base_model.hf_id,
            max_adapters=max_adapters,
            status=ModelInstance.Status.RUNNING,
            status_message="",
        ),
    )
    BaseModel.objects.filter(pk=base_model.pk).update(has_active_deployment=True)
    return instance


def instance_stop(*, instance_id: int, message: str = "Stopped") -> bool:
    """Mark an instance stopped; its deployments stay, and reattach to the next instance."""
    return bool(
        ModelInstance.objects.filter(pk=instance_id)
        .exclude(status=ModelInstance.Status.STOPPED)
        .update(status=ModelInstance.Status.STOPPED, status_message=message[:300])
    )


# --- deploy / undeploy
def deployment_create(*, adapter_id: int, organization_id: int) -> Deployment:
    """Attach an adapter to its base model's running instance. Deploying a deployed
    adapter returns its deployment; one stuck `attaching` is attached again."""
    with transaction.atomic():
        adapter = (
            RegisteredAdapter.objects.select_for_update()
            .select_related("base_model")
            .filter(pk=adapter_id, organization_id=organization_id)
            .first()
        )
        if adapter is None:
            raise DeployRefused("No such model.")
        if adapter.deleted_at is not None or not adapter.path:
            raise DeployRefused("This model was deleted: there is nothing left to deploy.")
        if adapter.method not in ("lora", "qlora"):
            raise DeployRefused(
                "Only LoRA and QLoRA adapters can be attached to a shared instance; "
                "download this model to serve it yourself."
            )
        deployment = live_deployment(adapter)
        if deployment is not None and deployment.status == D.DEPLOYED:
            return deployment
        if deployment is None:
            instance = running_instance(adapter.base_model_id)
            if instance is None:
                raise DeployRefused(
                    f"No instance of {adapter.base_model.display_name} is running: "
                    "ask an operator to start one."
                )
            # Lock the instance so two deploys can't both take its last adapter slot.
            ModelInstance.objects.select_for_update().filter(pk=instance.pk).first()
            attached = Deployment.objects.filter(instance=instance, status__in=Deployment.LIVE)
            if attached.count() >= instance.max_adapters:
                raise DeployRefused(
                    f"The {adapter.base_model.display_name} instance is full "
                    f"({instance.max_adapters} adapters): try again later."
                )
            try:
                with transaction.atomic():
                    deployment = Deployment.objects.create(
                        organization_id=organization_id,
                        adapter=adapter,
                        instance=instance,
                        served_name=served_name_for(adapter),
                    )
            except IntegrityError:  # a concurrent deploy of the same adapter won
                deployment = live_deployment(adapter)
                assert deployment is not None
                return deployment
    return _attach(deployment, adapter)


def _attach(deployment: Deployment, adapter: RegisteredAdapter) -> Deployment:
    instance = deployment.instance
    try:
        backend_for(instance).load_adapter(
            instance, name=deployment.served_name, path=str(Path(adapter.path).resolve())
        )
    except BackendError as exc:
        Deployment.objects.filter(pk=deployment.pk, status=D.ATTACHING).update(
            status=D.FAILED, error=str(exc)[:500]
        )
        raise DeployRefused(f"The instance refused the adapter: {exc}") from exc
    Deployment.objects.filter(pk=deployment.pk, status=D.ATTACHING).update(
        status=D.DEPLOYED, deployed_at=timezone.now(), error=""
    )
    deployment.refresh_from_db()
    return deployment


def deployment_reattach(deployment: Deployment) -> None:
    """Load a deployed adapter again, e.g. after its instance restarted and forgot it."""
    backend_for(deployment.instance).load_adapter(
        deployment.instance,
        name=deployment.served_name,
        path=str(Path(deployment.adapter.path).resolve()),
    )


def deployment_detach(*, adapter_id: int, organization_id: int) -> bool:
    """Undeploy: traffic stops at once; the instance is then asked to unload the adapter.
    Returns False when nothing was deployed (a second click)."""
    with transaction.atomic():
        deployment = (
            Deployment.objects.select_for_update()
            .select_related("instance")
            .filter(
                adapter_id=adapter_id,
                organization_id=organization_id,
                status__in=[*Deployment.LIVE, D.FAILED],
            )
            .first()
        )
        if deployment is None:
            return False
        was_live = deployment.status in Deployment.LIVE
        Deployment.objects.filter(pk=deployment.pk).update(
            status=D.DETACHED, detached_at=timezone.now()
        )
    if was_live:
        _unload_quietly(deployment)
    return was_live


def _unload_quietly(deployment: Deployment) -> None:
    try:
        backend_for(deployment.instance).unload_adapter(
            deployment.instance, name=deployment.served_name
        )
    except BackendError as exc:
        # Routing already stopped; an instance that can't be reached holds nothing useful.
        log.warning(
            "could not unload %s from %s: %s", deployment.served_name, deployment.instance, exc
        )


# --- delete
def adapter_delete(*, adapter_id: int, organization_id: int) -> bool:
    """Delete a fine-tuned model's files: undeploy it, remove the adapter, checkpoints and
    run files of its job. The rows stay (lineage; the ledger refers to the job), so the
    money history is untouched. Returns False if it was already deleted."""
    with transaction.atomic():
        adapter = (
            RegisteredAdapter.objects.select_for_update()
            .filter(pk=adapter_id, organization_id=organization_id, deleted_at__isnull=True)
            .first()
        )
        if adapter is None:
            return False
        RegisteredAdapter.objects.filter(pk=adapter.pk).update(deleted_at=timezone.now())
        Job.objects.filter(pk=adapter.job_id).update(checkpoint_path="", adapter_path="")
    deployment_detach(adapter_id=adapter.pk, organization_id=organization_id)
    shutil.rmtree(job_artifacts_dir(adapter.job_id), ignore_errors=True)
    if adapter.path:
        shutil.rmtree(adapter.path, ignore_errors=True)
    return True
