"""Creating, revoking and checking API keys. The plain key exists only in the return
value of `api_key_create`; the database holds its SHA-256."""

import hashlib
import secrets
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from ecolink.accounts.models import Organization
from ecolink.api.models import ApiKey

KEY_PREFIX = "eco-"
# last_used_at is a hint for humans: write it at most once a minute per key.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def api_key_create(*, organization: Organization, name: str, created_by=None) -> tuple[ApiKey, str]:
    """A new key for the organization; returns the row and the plain key (shown once)."""
    plain = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey.objects.create(
        organization=organization,
        name=name[:100] or "API key",
        prefix=plain[:12],
        key_hash=hash_key(plain),
        created_by=created_by,
    )
    return key, plain


def api_key_revoke(*, key_id: int, organization_id: int) -> bool:
    """Revoke a key; revoking a revoked key changes nothing."""
    return bool(
        ApiKey.objects.filter(
            pk=key_id, organization_id=organization_id, revoked_at__isnull=True
        ).update(revoked_at=timezone.now())
    )


def api_key_authenticate(plain: str) -> ApiKey | None:
    """The live key for a presented secret, with its organization, or None."""
    if not plain.startswith(KEY_PREFIX):
        return None
    key = (
        ApiKey.objects.select_related("organization")
        .filter(key_hash=hash_key(plain), revoked_at__isnull=True)
        .first()
    )
    if key is None:
        return None
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
        with transaction.atomic():
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key
