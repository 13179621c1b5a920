"""Is a pod's 2xx answer really a transcription in the format the client asked for?

A misconfigured sidecar or gateway answers 200 with a login or error page; a pod that
dies mid-answer leaves truncated JSON; some proxies wrap an error in a 200. Relayed, any
of these breaks the client (the OpenAI SDK fails to parse it), although another pod
could have answered. ``classify`` calls ``answer_problem`` on every 2xx and treats a
problem as a fault of the pod (``BAD_ANSWER``), so the request fails over.

The checks are about shape only, never content: an empty text or subtitle file is a
valid transcription of silence.
"""

from __future__ import annotations

import json
import re

# The formats whose body is a JSON object with a "text" string.
JSON_FORMATS = frozenset({"json", "verbose_json", "diarized_json"})

_HTML_START = re.compile(rb"^\s*<(!doctype\s+html|html[\s>]|head[\s>]|body[\s>])", re.IGNORECASE)
_SRT_START = re.compile(r"^\s*\d+\s*\r?\n\s*\d{1,2}:\d{2}:\d{2}[,.]\d{1,3}\s*-->")
_VTT_START = re.compile(r"^(\ufeff)?WEBVTT")


def answer_problem(response_format: str, content_type: str, body: bytes) -> str | None:
    """Why ``body`` is not a transcription in ``response_format``; None when it is one."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type in ("text/html", "application/xhtml+xml") or _HTML_START.match(body[:512]):
        return "an HTML page"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "not UTF-8 text"
    decoded = _json_object(text) if text.lstrip().startswith("{") else None
    if decoded is not None and "error" in decoded and "text" not in decoded:
        return "an error object"
    if response_format in JSON_FORMATS:
        if not text.strip():
            return "an empty body"
        if decoded is None:
            return "not a JSON object (truncated or not JSON)"
        if not isinstance(decoded.get("text"), str):
            return "a JSON object without a 'text' string"
        return None
    if response_format == "vtt" and not _VTT_START.match(text):
        return "not WebVTT (no WEBVTT header)"
    if response_format == "srt" and text.strip() and not _SRT_START.match(text):
        return "not SubRip (no numbered cue)"
    return None


def _json_object(text: str) -> dict[str, object] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
