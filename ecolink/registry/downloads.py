"""Download links for registered adapters: a tar.gz of the adapter folder plus its
manifest, behind a time-limited signed link (the local stand-in for a presigned URL).

The link itself is the credential, like a presigned S3 URL: whoever holds it may fetch
the archive until it expires, without a session or an API key.
"""

import io
import json
import tarfile
import tempfile
import time
from pathlib import Path

from django.core import signing
from django.http import HttpRequest
from django.urls import reverse

from ecolink.registry.models import RegisteredAdapter

SALT = "ecolink.registry.download"
DEFAULT_EXPIRES_IN = 3600  # one hour, as the seed's presigned links


class BadDownloadLink(Exception):
    """The link was tampered with, has expired, or names an adapter that is gone."""


def download_token(adapter: RegisteredAdapter, *, expires_in: int = DEFAULT_EXPIRES_IN) -> str:
    expires_at = int(time.time()) + int(expires_in)
    return signing.dumps({"adapter": adapter.pk, "exp": expires_at}, salt=SALT, compress=True)


def signed_download_url(
    adapter: RegisteredAdapter,
    *,
    expires_in: int = DEFAULT_EXPIRES_IN,
    request: HttpRequest | None = None,
) -> str:
    """A link to the adapter's tar.gz valid for `expires_in` seconds; absolute when
    `request` is given (for API answers), else a path (for the job page)."""
    path = reverse(
        "registry:download_signed", kwargs={"token": download_token(adapter, expires_in=expires_in)}
    )
    return request.build_absolute_uri(path) if request is not None else path


def adapter_for_token(token: str) -> RegisteredAdapter:
    """The adapter a link points to, or BadDownloadLink."""
    try:
        data = signing.loads(token, salt=SALT)
    except signing.BadSignature as exc:
        raise BadDownloadLink("This download link is not valid.") from exc
    if int(data.get("exp", 0)) < time.time():
        raise BadDownloadLink("This download link has expired: ask for a new one.")
    adapter = RegisteredAdapter.objects.filter(pk=data.get("adapter"), deleted_at__isnull=True)
    found = adapter.first()
    if found is None or not found.path or not Path(found.path).is_dir():
        raise BadDownloadLink("This model has been deleted.")
    return found


def archive_name(adapter: RegisteredAdapter) -> str:
    return f"{adapter.organization.slug}-job-{adapter.job_id}-adapter"


def adapter_archive(adapter: RegisteredAdapter) -> tempfile.SpooledTemporaryFile:
    """The tar.gz, rewound: `<name>/adapter/...` and `<name>/manifest.json`."""
    root = archive_name(adapter)
    out = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115 - returned
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        folder = Path(adapter.path)
        for file in sorted(p for p in folder.rglob("*") if p.is_file()):
            tar.add(file, arcname=f"{root}/adapter/{file.relative_to(folder)}", recursive=False)
        manifest = json.dumps(
            {**adapter.manifest, "model_id": adapter.model_id}, indent=2, sort_keys=True
        ).encode()
        info = tarfile.TarInfo(f"{root}/manifest.json")
        info.size = len(manifest)
        info.mtime = int(adapter.created_at.timestamp())
        tar.addfile(info, io.BytesIO(manifest))
    out.seek(0)
    return out
