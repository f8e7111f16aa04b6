"""The platform's side of a training pod: which backend runs it, where it reports its
events, and how its per-run token is kept (hashed, never in the clear)."""

import hashlib

from django.conf import settings

from worker.pods import PodBackend, get_backend


def pod_backend() -> PodBackend:
    return get_backend(settings.POD_BACKEND, local_state_dir=str(settings.LOCAL_PODS_DIR))


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def events_url(job_id: int) -> str:
    return f"{settings.INTERNAL_BASE_URL.rstrip('/')}/internal/jobs/{job_id}/events"
