"""TEST DOUBLE: a backend that fails like Xinference when its GPU is full.

Xinference (the model server the team we replace ran) cannot run here: it needs
a GPU and its own model downloads. This double answers every transcription the
way it does under OOM, HTTP 500 with its ``detail`` text, so tests can check
the router classifies that text as OOM and fails over. ``GET /hits`` counts the
attempts it refused. Run: ``python -m tests.support.xinference_double PORT``.
"""

from __future__ import annotations

import sys

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse

XINFERENCE_OOM = (
    "Model actor is out of memory, model id: whisper-0, error: CUDA out of memory. "
    "Tried to allocate 1.34 GiB. GPU 0 has a total capacity of 23.57 GiB of which "
    "229.44 MiB is free."
)


def create_app(model: str = "tiny.en") -> FastAPI:
    app = FastAPI()
    hits = {"count": 0}

    @app.get("/v1/models")
    async def models() -> dict[str, object]:
        return {"object": "list", "data": [{"id": model, "object": "model"}]}

    @app.post("/v1/audio/transcriptions")
    async def transcriptions() -> JSONResponse:
        hits["count"] += 1
        return JSONResponse({"detail": XINFERENCE_OOM}, status_code=500)

    @app.get("/hits")
    async def get_hits() -> dict[str, int]:
        return hits

    return app


if __name__ == "__main__":
    uvicorn.run(create_app(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
