"""`/v1/files` uploads get the dataset size limit while they stream in, as browser uploads
do: a body declared too large is refused before a byte of it is read, and one that grows
past the limit stops at the first chunk over it."""

from django.conf import settings

from ecolink.api.errors import openai_error
from ecolink.datasets.uploads import declared_too_large, limit_upload_size

FILES_PATH = "/v1/files"


class FileUploadLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method != "POST" or request.path.rstrip("/") != FILES_PATH:
            return self.get_response(request)
        limit = settings.DATASET_MAX_UPLOAD_BYTES
        if declared_too_large(request, limit):
            return too_large(limit)
        handler = limit_upload_size(request, limit)
        response = self.get_response(request)
        # Stopped mid-stream: the view saw no file; say why instead.
        return too_large(limit) if handler.refused else response


def too_large(limit: int):
    return openai_error(
        413,
        f"The file is larger than the {limit:,}-byte upload limit.",
        param="file",
        code="file_too_large",
    )
