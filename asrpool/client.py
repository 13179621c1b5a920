"""``asrpool transcribe FILE...``: post files to a router (or any OpenAI-compatible server).

Prints each transcript on stdout (a header line per file when there are several)
and errors on stderr in the server's own words; exits 1 when any file failed.
A progress bar (stderr) follows the bytes uploaded, for several files or long ones.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import IO, Any

import httpx

from asrpool_contract.wire import parse_error

# Below this, one file uploads in a blink: a bar would only flicker.
_PROGRESS_MIN_BYTES = 2 * 2**20


class _ProgressReader:
    """A file wrapper that reports every read to a progress bar."""

    def __init__(self, f: IO[bytes], bar: Any) -> None:
        self._f = f
        self._bar = bar

    def read(self, n: int = -1) -> bytes:
        chunk = self._f.read(n)
        if self._bar is not None:
            self._bar.update(len(chunk))
        return chunk


def _progress_bar(paths: list[Path], disabled: bool) -> Any:
    total = sum(p.stat().st_size for p in paths)
    if disabled or (len(paths) == 1 and total < _PROGRESS_MIN_BYTES):
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None
    return tqdm(
        total=total, unit="B", unit_scale=True, desc="uploading", file=sys.stderr, leave=False
    )


def transcribe_files(args: argparse.Namespace) -> int:
    paths = [Path(f) for f in args.files]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        print(f"asrpool transcribe: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    bar = _progress_bar(paths, args.no_progress)
    failed = 0
    fields = {"model": args.model, "response_format": args.format}
    if args.language:
        fields["language"] = args.language
    with httpx.Client(base_url=args.url.rstrip("/"), headers=headers, timeout=600) as client:
        for path in paths:
            with path.open("rb") as f:
                try:
                    resp = client.post(
                        "/v1/audio/transcriptions",
                        files={"file": (path.name, _ProgressReader(f, bar))},  # type: ignore[dict-item]
                        data=fields,
                    )
                except httpx.HTTPError as exc:
                    print(f"{path}: cannot reach {args.url}: {exc}", file=sys.stderr)
                    failed += 1
                    continue
            if resp.status_code != 200:
                try:
                    _, message = parse_error(resp.json())
                except ValueError:
                    message = resp.text
                print(f"{path}: {message} (HTTP {resp.status_code})", file=sys.stderr)
                failed += 1
                continue
            if len(paths) > 1:
                print(f"== {path} ==")
            body = resp.json()["text"] if args.format == "json" else resp.text
            print(body.rstrip("\n") if isinstance(body, str) else body)
    if bar is not None:
        bar.close()
    return 1 if failed else 0
