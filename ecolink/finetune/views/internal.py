"""The internal endpoint training pods report to: no user session, the run's token."""

import json

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from ecolink.finetune.ingest import BadBatch, events_ingest, token_matches
from ecolink.finetune.models import Job


@csrf_exempt
@require_POST
def trainer_events(request, pk: int):
    """A training pod reports a batch of progress events with its job token."""
    auth = request.headers.get("Authorization", "")
    job = Job.objects.filter(pk=pk).only("pk", "job_token_hash").first()
    if job is None or not auth.startswith("Bearer ") or not token_matches(job, auth[7:]):
        return JsonResponse({"error": "unknown job or bad token"}, status=401)
    try:
        accepted = events_ingest(job_id=pk, payload=json.loads(request.body))
    except (ValueError, BadBatch) as bad:
        return JsonResponse({"error": str(bad)}, status=400)
    return JsonResponse({"accepted": accepted})
