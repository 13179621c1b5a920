"""The asrpool worker: the Whisper server that runs in each GPU pod.

``create_app(settings, engine)`` builds the FastAPI app; ``serve(settings)``
loads the model and runs it under uvicorn. ``asrpool worker`` calls ``serve``.
"""
