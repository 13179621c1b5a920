"""asrpool_contract: what the router, the worker and the operator agree on.

The bottom layer of the distribution; it imports none of the components. Here live the
wire contract (``wire``: error codes, their messages and OpenAI's shapes, the headers
between router and pod, OOM wordings, Whisper's sample rate, the OpenAI model names) and
its HTTP rendering (``http_errors``, ``http_server``), the upload form and how it is read
(``audio_form``, ``uploads``, ``audio``), the answers (``audio_answers``, ``formats``,
``transcript``, ``transcript_stream``) and their OpenAPI document (``openapi``), the
credential between routers and workers (``credentials``), environment flags
(``envflags``), metric names (``metric_names``) and the ASRPool spec (``pool_spec``).
"""
