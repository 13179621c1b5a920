"""asrpool: serve Whisper speech-to-text to many users on a pool of GPUs.

The top of the distribution: the command line (``cli``) that composes the components
(``asrpool_worker``, ``asrpool_router``, ``asrpool_operator``), the local pool supervisor
(``local``) and the clients (``client``, ``stream``, ``status``). What the components
share lives below them all, in ``asrpool_contract``.
"""

__version__ = "0.1.0"
