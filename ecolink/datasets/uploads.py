"""An upload handler that refuses oversized dataset uploads while they stream in.

It runs before Django's own handlers, so a request over the limit is refused before its
body is held in memory or written to a temporary file: at once when the declared
Content-Length is too large, or at the first chunk past the limit otherwise.
"""

from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import QueryDict
from django.utils.datastructures import MultiValueDict

# Room for the form's other fields and the multipart boundaries around the files.
MULTIPART_SLACK_BYTES = 64 * 1024


class SizeLimitedUploadHandler(FileUploadHandler):
    def __init__(self, request=None, *, max_bytes: int):
        super().__init__(request)
        self.max_bytes = max_bytes
        self.received = 0
        self.refused = False

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        if content_length > self.max_bytes + MULTIPART_SLACK_BYTES:
            self.refused = True
            # Handled: empty POST and FILES, and the body is never read.
            return QueryDict(encoding=encoding), MultiValueDict()
        return None

    def receive_data_chunk(self, raw_data, start):
        # Counts every file in the request together: main and validation file.
        self.received += len(raw_data)
        if self.received > self.max_bytes:
            self.refused = True
            raise StopUpload(connection_reset=True)
        return raw_data

    def file_complete(self, file_size):
        return None


def limit_upload_size(request, max_bytes: int) -> SizeLimitedUploadHandler:
    """Put the size-limiting handler first; call before anything reads request.POST."""
    handler = SizeLimitedUploadHandler(request, max_bytes=max_bytes)
    request.upload_handlers.insert(0, handler)
    return handler


def declared_too_large(request, max_bytes: int) -> bool:
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return False
    return length > max_bytes + MULTIPART_SLACK_BYTES
