"""asrpool: serve Whisper speech-to-text to many users on a pool of GPUs.

This package holds what every component shares: the command line (``cli``),
the wire contract (``wire``: error codes and OpenAI shapes) and its HTTP
rendering (``http_errors``), the local pool supervisor (``local``) and the
client (``client``). The components live in ``asrpool_worker``,
``asrpool_router`` and ``asrpool_operator``.
"""

__version__ = "0.1.0"
