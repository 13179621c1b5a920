"""The router's decision core: pure functions and plain dataclasses, no I/O.

The asyncio shell (routes, worker transport, discovery) gathers inputs, calls in here and
carries out the answer. Nothing in this package imports an event loop, an HTTP library,
a clock or a random source: time arrives as ``now: float`` and randomness as an injected
``Rng`` (``rng.py``), so every decision is reproducible in a table-driven test.

Scheduling and admission, one concept per module::

    pool.py        the facade the shell calls: admission, slots, grants to waiters
    pods.py        per-pod state (readiness, slots in flight, budget, breaker) and the store
    request.py     what is known about one request: size, priority class, pods to avoid
    scheduling.py  the plugin interfaces: Filter, Scorer, Picker
    scheduler.py   filter → score → pick, and the default pipeline
    plugins/       one scheduling strategy per file
    budget.py      adaptive per-pod concurrency (AIMD on GPU out-of-memory)
    breaker.py     per-pod circuit breaker (eject, cool down, probe)
    queueing.py    bounded priority wait queue with deadlines
    retry_after.py how long a rejected client should wait
    upload_budget.py  bytes all held uploads may take at once (memory + spool files)
    session_slots.py  live sessions open at once, in total and per API key
    errors.py      an attempt's answer → outcome kind (OOM, unreachable, …) and error code
    retry.py       outcome → wait for a pod that has not failed the request, or give up
    stats.py       each pool's counts (the one sink) and the /stats snapshots made of them
    rng.py         the randomness seam

Live sessions, one concept per module::

    realtime_protocol.py  client events → commands; server events, GA and beta shapes
    realtime_settings.py  a session's settings, and a session update applied field by field
    realtime_errors.py    the ``error`` event and the exception that becomes one
    chunking.py    live audio → utterances, cut in pauses (VAD: vad.py)
    pcm.py, g711.py  base64 PCM16 / G.711 → 16 kHz samples, WAV for the pods

The audio-length estimate lives here too, each module with its own
docstring.
"""
