"""The ``asrpool`` command: one subcommand per component, flags over ``ASRPOOL_*`` variables.

The flags are a contract users' scripts rely on: extend them, never break them.
Each subcommand only turns flags into a settings object and hands it to the
component's entry point; imports are lazy so ``asrpool transcribe`` does not
load the Whisper engine.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from asrpool_contract.credentials import WORKER_TOKEN_ENV, WORKER_TOKEN_FILE_ENV, worker_token
from asrpool_contract.envflags import env_float, env_int, env_str
from asrpool_contract.settings_flags import add_flags, from_flags
from asrpool_contract.wire import OPENAI_DEFAULT_MODEL

if TYPE_CHECKING:
    from asrpool.local import LocalPool
    from asrpool_router.settings import RouterSettings
    from asrpool_worker.settings import WorkerSettings


def add_worker_options(p: argparse.ArgumentParser) -> None:
    """Every flag ``WorkerSettings`` declares (the server's timeouts among them)."""
    from asrpool_worker.settings import WorkerSettings

    add_flags(p.add_argument_group("worker"), WorkerSettings)


def add_server_options(p: argparse.ArgumentParser) -> None:
    """The router's guards against its clients (asrpool_contract.server_limits)."""
    from asrpool_contract.server_limits import ServerLimits

    add_flags(p.add_argument_group("server"), ServerLimits)


def add_worker_token_option(p: argparse.ArgumentParser) -> None:
    """The credential between routers and workers (asrpool_contract.credentials): once per command,
    since `asrpool local` gives it to both."""
    p.add_argument(
        "--worker-token-file",
        default=env_str(WORKER_TOKEN_FILE_ENV),
        help="file holding the token routers send workers and workers require on /v1 "
        f"(also: {WORKER_TOKEN_ENV}); `asrpool local` makes one when neither is given",
    )


def worker_settings(args: argparse.Namespace, *, host: str, port: int) -> WorkerSettings:
    from asrpool_worker.settings import WorkerSettings

    token = worker_token(args.worker_token_file)
    return from_flags(WorkerSettings, args, host=host, port=port, worker_token=token)


def add_router_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("router")
    g.add_argument(
        "--no-auth", action="store_true", help="serve without API keys (only on a trusted machine)"
    )
    g.add_argument(
        "--api-keys-file",
        default=env_str("ASRPOOL_API_KEYS_FILE"),
        help="file with one API key per line (also: ASRPOOL_API_KEYS=k1,k2)",
    )
    g.add_argument(
        "--per-pod",
        type=int,
        default=env_int("ASRPOOL_PER_POD", 2, "ASR_MAX_CONCURRENT"),
        help="requests one worker runs at once (ASR_MAX_CONCURRENT is honoured too)",
    )
    g.add_argument(
        "--alias",
        action="append",
        type=_alias,
        default=[_alias(a) for a in (env_str("ASRPOOL_ALIASES") or "").split(",") if a.strip()],
        metavar="NAME=POOL",
        help="another model name clients may send for a pool (repeatable; also "
        "ASRPOOL_ALIASES=a=tiny.en,b=large-v3); OpenAI's own model names always reach the "
        "default pool",
    )
    g.add_argument("--max-queue", type=int, default=env_int("ASRPOOL_MAX_QUEUE", 64))
    g.add_argument("--queue-timeout", type=float, default=env_float("ASRPOOL_QUEUE_TIMEOUT", 120.0))
    g.add_argument(
        "--max-attempts",
        type=int,
        # The seed counted retries after the first try: ASR_MAX_RETRIES=3 is 4 attempts.
        # Unset, there is no cap: a request is retried on every pod that has not failed it
        # until its deadline (queue timeout + request timeout).
        default=env_int("ASRPOOL_MAX_ATTEMPTS", env_int("ASR_MAX_RETRIES", -1) + 1),
        help="a cap on attempts per request, over all pods; 0 (default): none, a request "
        "tries every pod that has not failed it until its deadline (ASR_MAX_RETRIES + 1 "
        "is honoured too)",
    )
    g.add_argument(
        "--shard-min-seconds",
        type=float,
        default=env_float("ASRPOOL_SHARD_MIN_SECONDS", 60.0),
        help="uploads at least this long are cut at pauses into ~30 s pieces decoded on as "
        "many pods as have room, then joined (default: 60; 0 = never)",
    )
    g.add_argument(
        "--decode-uploads",
        choices=("on", "off"),
        default=env_str("ASRPOOL_DECODE_UPLOADS", "on"),
        help="decode each upload here, once, and send pods 16 kHz mono WAV: exact lengths, "
        "undecodable files refused before they cost a pod (default: on; off sends the file "
        "as uploaded)",
    )
    g.add_argument(
        "--cache-mb",
        type=float,
        default=env_float("ASRPOOL_CACHE_MB", 64.0),
        help="memory for answers to identical requests (same key, audio and fields; "
        "Cache-Control: no-store skips it); 0 = no cache (default: 64)",
    )
    g.add_argument(
        "--cache-redis",
        default=env_str("ASRPOOL_CACHE_REDIS"),
        metavar="URL",
        help="keep those answers in Redis instead (redis://host:6379/0), shared by every "
        "router of a fleet",
    )
    g.add_argument(
        "--cache-ttl",
        type=float,
        default=env_float("ASRPOOL_CACHE_TTL", 3600.0),
        help="seconds an answer stays in Redis (default: 3600)",
    )
    g.add_argument(
        "--eject-after",
        type=int,
        default=env_int("ASRPOOL_EJECT_AFTER", 3),
        help="failures in a row (5xx, timeouts, resets, bad answers, OOMs at the lowest "
        "budget) that take a pod out of rotation (default: 3)",
    )
    g.add_argument(
        "--ejection-time",
        type=float,
        default=env_float("ASRPOOL_EJECTION_TIME", 5.0),
        help="first ejection's length in seconds; doubles with each ejection in a row, up to "
        "120 (default: 5)",
    )
    g.add_argument(
        "--max-ejection-percent",
        type=float,
        default=env_float("ASRPOOL_MAX_EJECTION_PERCENT", 50.0),
        help="most of a pool's pods ejected at once (at least one of two or more, never the "
        "last; default: 50)",
    )
    g.add_argument(
        "--request-timeout",
        type=float,
        default=env_float("ASRPOOL_REQUEST_TIMEOUT", env_float("ASR_REQUEST_TIMEOUT", 300.0)),
        help="longest one attempt may take; shorter audio gets a shorter timeout",
    )
    g.add_argument(
        "--attempt-timeout-base",
        type=float,
        default=env_float("ASRPOOL_ATTEMPT_TIMEOUT_BASE", 30.0),
        help="every attempt may take this long plus one second per second of audio",
    )
    g.add_argument(
        "--health-interval",
        type=float,
        default=env_float("ASRPOOL_HEALTH_INTERVAL", 2.0),
        help="seconds between health checks of each backend",
    )
    g.add_argument(
        "--max-spooled-mb",
        type=float,
        default=env_float("ASRPOOL_MAX_SPOOLED_MB", 4096.0),
        help="memory + disk all uploads held at once may take; past it 429 (default: 4096; "
        "0 = no cap)",
    )
    g.add_argument(
        "--max-sessions",
        type=int,
        default=env_int("ASRPOOL_MAX_SESSIONS", 256),
        help="live (realtime) sessions open at once (default: 256)",
    )
    g.add_argument(
        "--max-sessions-per-key",
        type=int,
        default=env_int("ASRPOOL_MAX_SESSIONS_PER_KEY", 16),
        help="live sessions one API key may have open at once (default: 16)",
    )
    g.add_argument(
        "--session-idle-timeout",
        type=float,
        default=env_float("ASRPOOL_SESSION_IDLE_TIMEOUT", 120.0),
        help="end a live session after this many seconds with no client message (default: 120)",
    )


def _alias(value: str) -> tuple[str, str]:
    name, sep, pool = value.strip().partition("=")
    if not sep or not name.strip() or not pool.strip():
        raise argparse.ArgumentTypeError(f"--alias takes NAME=POOL, got {value!r}")
    return name.strip(), pool.strip()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asrpool", description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default=env_str("ASRPOOL_LOG_LEVEL", "INFO"))
    sub = parser.add_subparsers(dest="command", required=True)

    w = sub.add_parser("worker", help="run one Whisper worker (what each GPU pod runs)")
    w.add_argument("--host", default=env_str("ASRPOOL_HOST", "127.0.0.1"))
    w.add_argument("--port", type=int, default=env_int("ASRPOOL_PORT", 9000))
    add_worker_options(w)
    add_worker_token_option(w)

    r = sub.add_parser(
        "router", help="run the router in front of OpenAI-compatible Whisper servers"
    )
    r.add_argument("--host", default=env_str("ASRPOOL_HOST", "127.0.0.1"))
    r.add_argument("--port", type=int, default=env_int("ASRPOOL_PORT", 8000))
    r.add_argument(
        "--backend",
        action="append",
        default=[],
        metavar="URL",
        help="a worker's base URL; repeat for several",
    )
    r.add_argument(
        "--kubernetes",
        action="store_true",
        default=env_str("ASRPOOL_KUBERNETES", "") in ("1", "true"),
        help="discover pools from ASRPool resources and their EndpointSlices",
    )
    r.add_argument(
        "--namespace",
        default=env_str("ASRPOOL_NAMESPACE"),
        help="namespace to watch with --kubernetes (default: the pod's own)",
    )
    add_router_options(r)
    add_server_options(r)
    add_worker_token_option(r)

    loc = sub.add_parser("local", help="run N workers and a router on this machine")
    loc.add_argument("--workers", type=int, default=2)
    loc.add_argument("--host", default="127.0.0.1")
    loc.add_argument("--port", type=int, default=8000)
    add_router_options(loc)
    add_worker_options(loc)  # its --max-upload-mb and timeouts hold for the router too
    add_worker_token_option(loc)

    t = sub.add_parser("transcribe", help="transcribe files through a router")
    t.add_argument("files", nargs="+")
    t.add_argument("--url", default=env_str("ASRPOOL_URL", "http://127.0.0.1:8000"))
    t.add_argument("--api-key", default=env_str("ASRPOOL_API_KEY") or env_str("OPENAI_API_KEY"))
    t.add_argument("--model", default=OPENAI_DEFAULT_MODEL)
    t.add_argument("--language")
    t.add_argument(
        "--format", default="text", choices=["json", "text", "srt", "vtt", "verbose_json"]
    )
    t.add_argument("--no-progress", action="store_true")

    sm = sub.add_parser("stream", help="transcribe live: a file at real-time pace, or the mic")
    sm.add_argument("file", nargs="?", help="audio file to stream (wav, or any format with PyAV)")
    sm.add_argument("--mic", action="store_true", help="record from the microphone (arecord)")
    sm.add_argument("--fast", action="store_true", help="send the file 4x faster than real time")
    sm.add_argument("--events", action="store_true", help="print every server event as JSON")
    sm.add_argument("--language")
    sm.add_argument("--url", default=env_str("ASRPOOL_URL", "http://127.0.0.1:8000"))
    sm.add_argument("--api-key", default=env_str("ASRPOOL_API_KEY") or env_str("OPENAI_API_KEY"))

    from asrpool_operator.options import add_operator_options

    op = sub.add_parser(
        "operator", help="run the Kubernetes operator (ASRPool → worker Deployments)"
    )
    add_operator_options(op)

    st = sub.add_parser("status", help="print the pools and pods of a router (from /stats)")
    st.add_argument("--url", default=env_str("ASRPOOL_URL", "http://127.0.0.1:8000"))
    st.add_argument("--api-key", default=env_str("ASRPOOL_API_KEY") or env_str("OPENAI_API_KEY"))
    shown = st.add_mutually_exclusive_group()
    shown.add_argument("--json", action="store_true", help="print /stats as JSON")
    shown.add_argument(
        "--watch",
        action="store_true",
        help="keep the picture on screen, redrawn in place, with the last minutes (Ctrl-C quits)",
    )
    st.add_argument(
        "--interval",
        type=_redraw_interval,
        default=1.0,
        help="seconds between redraws with --watch (default 1)",
    )
    return parser


def _redraw_interval(text: str) -> float:
    """--interval: at least 0.1 s (a router is not a benchmark target for a status screen)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0.1:
        raise argparse.ArgumentTypeError("must be at least 0.1 seconds")
    return value


# The commands that call a router and print what it says.
CLIENT_COMMANDS = ("status", "transcribe", "stream")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.command in CLIENT_COMMANDS and args.log_level.upper() != "DEBUG":
        # A client prints its answer; httpx's INFO line per request would only be noise.
        logging.getLogger("httpx").setLevel(logging.WARNING)
    if args.command == "worker":
        from asrpool_worker.server import serve

        serve(worker_settings(args, host=args.host, port=args.port))
        return 0
    if args.command == "router":
        from asrpool_router.server import serve as serve_router

        if bool(args.backend) == bool(args.kubernetes):
            print(
                "asrpool router: give --backend URL (one or more) or --kubernetes", file=sys.stderr
            )
            return 2
        settings = router_settings(args, backends=args.backend)
        if args.kubernetes:
            settings = dataclasses.replace(settings, kubernetes=True, namespace=args.namespace)
        serve_router(settings)
        return 0
    if args.command == "local":
        from .local import run_local

        if args.workers < 1:
            print("asrpool local: --workers must be at least 1", file=sys.stderr)
            return 2
        return run_local(local_pool(args))
    if args.command == "transcribe":
        from .client import transcribe_files

        return transcribe_files(args)
    if args.command == "stream":
        from .stream import stream

        return stream(args)
    if args.command == "operator":
        from asrpool_operator.options import run_from_args

        return run_from_args(args)
    if args.command == "status":
        from .status import print_status

        return print_status(args)
    raise AssertionError(args.command)  # argparse refuses unknown commands first


def router_settings(args: argparse.Namespace, *, backends: list[str]) -> RouterSettings:
    from asrpool_router.settings import RouterSettings, load_api_keys

    return RouterSettings(
        host=args.host,
        port=args.port,
        backends=tuple(backends),
        api_keys=() if args.no_auth else load_api_keys(args.api_keys_file),
        auth=not args.no_auth,
        per_pod=args.per_pod,
        aliases=tuple(args.alias),
        max_queue=args.max_queue,
        queue_timeout_s=args.queue_timeout,
        max_attempts=args.max_attempts,
        request_timeout_s=args.request_timeout,
        shard_min_s=args.shard_min_seconds,
        decode_uploads=args.decode_uploads == "on",
        cache_mb=args.cache_mb,
        cache_redis=args.cache_redis,
        cache_ttl_s=args.cache_ttl,
        eject_after=args.eject_after,
        ejection_s=args.ejection_time,
        max_ejection_percent=args.max_ejection_percent,
        attempt_timeout_base_s=args.attempt_timeout_base,
        health_interval_s=args.health_interval,
        max_upload_mb=args.max_upload_mb,
        max_spooled_mb=args.max_spooled_mb,
        header_timeout_s=args.header_timeout_s,
        body_timeout_s=args.body_timeout_s,
        max_sessions=args.max_sessions,
        max_sessions_per_key=args.max_sessions_per_key,
        session_idle_timeout_s=args.session_idle_timeout,
        worker_token=worker_token(args.worker_token_file),
    )


def local_pool(args: argparse.Namespace) -> LocalPool:
    """``asrpool local``'s flags as the settings of its router and of every worker."""
    from asrpool.local import LocalPool

    return LocalPool(
        workers=args.workers,
        router=router_settings(args, backends=[]),
        worker=worker_settings(args, host=args.host, port=0),
        log_level=args.log_level,
    )
