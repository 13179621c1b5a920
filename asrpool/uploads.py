"""Read an OpenAI audio upload (multipart ``file`` + fields), for the router and the worker alike.

Refuses, in OpenAI's error shape, what is not a multipart form, a form without its
``file`` part, and a file over the size limit (by its declared length first, so a
huge upload is refused before it is read, then by its real size). Starlette spools
file parts past 1 MiB to disk, so holding the upload costs little memory.
"""

from __future__ import annotations

from fastapi import Request
from starlette.datastructures import FormData, UploadFile

from .wire import AsrpoolError, ErrorCode

# Room for the other form fields and the multipart framing around the file.
_FORM_OVERHEAD = 64 * 1024


def too_large(max_bytes: int) -> AsrpoolError:
    return AsrpoolError(
        ErrorCode.FILE_TOO_LARGE,
        f"The audio file is larger than {max_bytes / 2**20:g} MB. "
        "Send a shorter recording or split it into parts.",
        param="file",
    )


async def read_audio_form(request: Request, max_bytes: int) -> tuple[FormData, UploadFile]:
    """The form and its file part; the caller closes the form when done with the file."""
    if int(request.headers.get("content-length") or 0) > max_bytes + _FORM_OVERHEAD:
        raise too_large(max_bytes)
    try:
        form = await request.form(max_files=1, max_fields=32)
    except Exception as exc:  # the parser's errors: not multipart, malformed, too many parts
        raise AsrpoolError(
            ErrorCode.INVALID_REQUEST,
            "Send the audio as multipart/form-data with a 'file' field.",
            param="file",
        ) from exc
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        await form.close()
        raise AsrpoolError(
            ErrorCode.INVALID_REQUEST, "The 'file' field with the audio is missing.", param="file"
        )
    if upload.size is not None and upload.size > max_bytes:
        await form.close()
        raise too_large(max_bytes)
    return form, upload
