"""API keys: org-scoped, shown once, stored hashed, revocable, with a last-used time."""

from django.conf import settings
from django.db import models

from ecolink.accounts.models import OrgOwned


class ApiKey(OrgOwned):
    name = models.CharField(max_length=100)
    # The first characters of the key, to tell keys apart in lists (never the whole key).
    prefix = models.CharField(max_length=16)
    key_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"
