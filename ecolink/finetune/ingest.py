"""Progress from training pods: batches of trainer events, authenticated by the job token.

Each event carries (run_id, seq): a batch the trainer retried after a timeout is dropped
event by event. Step metrics feed the charts; phases and the end of training are
translated into job actions, which alone move the status.
"""

import hmac

from django.db import transaction

from ecolink.finetune.actions import job_phase, job_training_finish
from ecolink.finetune.models import Job, JobEvent, JobMetric
from ecolink.finetune.pods import hash_token

MAX_EVENTS_PER_BATCH = 1000
METRIC_FIELDS = (
    "loss",
    "learning_rate",
    "grad_norm",
    "tokens_per_second",
    "samples_per_second",
    "memory_bytes",
)


class BadBatch(ValueError):
    pass


def token_matches(job: Job, token: str) -> bool:
    return bool(job.job_token_hash) and hmac.compare_digest(job.job_token_hash, hash_token(token))


def _number(value):
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _validated(payload) -> list[dict]:
    if not isinstance(payload, dict) or not isinstance(payload.get("events"), list):
        raise BadBatch('expected {"events": [...]}')
    events = payload["events"]
    if len(events) > MAX_EVENTS_PER_BATCH:
        raise BadBatch(f"at most {MAX_EVENTS_PER_BATCH} events per batch")
    for event in events:
        if not (
            isinstance(event, dict)
            and isinstance(event.get("seq"), int)
            and event["seq"] >= 0
            and isinstance(event.get("type"), str)
            and isinstance(event.get("data", {}), dict)
            and isinstance(event.get("run_id", ""), str)
        ):
            raise BadBatch("each event needs an integer seq, a type and an object data")
    return events


@transaction.atomic
def events_ingest(*, job_id: int, payload) -> int:
    """Store a batch and apply it; returns how many events were new."""
    events = _validated(payload)
    job = Job.objects.select_for_update().get(pk=job_id)  # one batch per job at a time
    keys = {(e.get("run_id", "")[:64], e["seq"]) for e in events}
    seen = set(
        JobEvent.objects.filter(job=job, seq__in={seq for _, seq in keys}).values_list(
            "run_id", "seq"
        )
    )
    fresh = [e for e in events if (e.get("run_id", "")[:64], e["seq"]) not in seen]
    JobEvent.objects.bulk_create(
        JobEvent(
            job=job,
            kind=e["type"][:20],
            run_id=e.get("run_id", "")[:64],
            seq=e["seq"],
            message=_summary(e)[:500],
            data=e.get("data", {}),
        )
        for e in fresh
    )
    for event in fresh:
        _apply(job, event)
    return len(fresh)


def _summary(event: dict) -> str:
    data, kind = event.get("data", {}), event["type"]
    if kind == "phase":
        return f"Phase: {str(data.get('phase', '')).replace('_', ' ')}"
    if kind == "metrics":
        return f"Step {data.get('step')}: loss {data.get('loss')}"
    if kind == "eval":
        return f"Eval at step {data.get('step')}: loss {data.get('eval_loss')}"
    if kind == "checkpoint":
        return f"Checkpoint at step {data.get('step')}"
    if kind == "error":
        return f"Error ({data.get('error_class')}): {data.get('message', '')}"
    return kind.capitalize()


def _apply(job: Job, event: dict) -> None:
    kind, data = event["type"], event.get("data", {})
    if kind == "phase" and isinstance(data.get("phase"), str):
        job_phase(job_id=job.pk, phase=data["phase"])
    elif kind == "metrics" and _number(data.get("step")) is not None:
        values = {f: _number(data.get(f)) for f in METRIC_FIELDS}
        JobMetric.objects.update_or_create(
            job=job, kind=JobMetric.Kind.TRAIN, step=int(data["step"]), defaults=values
        )
        updates = {"current_step": int(data["step"])}
        if _number(data.get("total_steps")):
            updates["total_steps"] = int(data["total_steps"])
        if values["loss"] is not None:
            updates["latest_loss"] = values["loss"]
        if _number(data.get("tokens_seen")) is not None:
            updates["trained_tokens"] = int(data["tokens_seen"])
        Job.objects.filter(pk=job.pk).update(**updates)
    elif kind == "eval" and _number(data.get("step")) is not None:
        JobMetric.objects.update_or_create(
            job=job,
            kind=JobMetric.Kind.EVAL,
            step=int(data["step"]),
            defaults={
                "loss": _number(data.get("eval_loss")),
                "perplexity": _number(data.get("perplexity")),
            },
        )
    elif kind == "checkpoint" and isinstance(data.get("path"), str):
        step = int(_number(data.get("step")) or 0)
        Job.objects.filter(pk=job.pk, checkpoint_step__lte=step).update(
            checkpoint_path=data["path"][:500], checkpoint_step=step
        )
    elif kind == "finished":
        metrics = data.get("metrics") if isinstance(data.get("metrics"), dict) else {}
        job_training_finish(
            job_id=job.pk,
            adapter_path=str(data.get("adapter_path", "")),
            manifest_path=str(data.get("manifest_path", "")),
            metrics=metrics,
        )
    elif kind == "error":
        tail = data.get("log_tail") if isinstance(data.get("log_tail"), list) else []
        Job.objects.filter(pk=job.pk).update(
            error_class=str(data.get("error_class", "internal"))[:20],
            log_tail="\n".join(str(line) for line in tail[-50:]),
        )
