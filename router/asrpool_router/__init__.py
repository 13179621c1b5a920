"""asrpool's router: an OpenAI-compatible front door that spreads speech-to-text requests
over the pods of each Whisper pool.

The decisions (which pod, when to retry, how to queue) live in ``asrpool_router.logic``
and are pure; the rest of this package is the thin I/O shell around them.
"""
