"""The pools the router serves, by model name, and how a request's ``model`` picks one.

``whisper-1`` (what OpenAI clients send by default) and an empty field go to
the default pool; any other name must be a pool's model, or the client gets
404 ``model_not_found``.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from asrpool.wire import AsrpoolError, ErrorCode

from .dispatch import PoolRunner
from .logic.pool import Pool, PoolPolicy
from .metrics import RouterMetrics

OPENAI_DEFAULT_MODEL = "whisper-1"


class PoolRegistry:
    def __init__(
        self,
        policy_for: Callable[[str], PoolPolicy],
        metrics: RouterMetrics,
        rng: random.Random,
        default_model: str | None = None,
    ) -> None:
        self._policy_for = policy_for
        self._metrics = metrics
        self._rng = rng
        self._runners: dict[str, PoolRunner] = {}
        self.default_model = default_model
        self.aliases: dict[str, str] = {}  # other names → model (ASRPool spec.aliases)

    def ensure(self, model: str, policy: PoolPolicy | None = None) -> PoolRunner:
        """The model's pool, created (with ``policy`` or the default one) if new."""
        runner = self._runners.get(model)
        if runner is None:
            policy = policy if policy is not None else self._policy_for(model)
            runner = PoolRunner(Pool(model, policy, rng=self._rng), self._metrics)
            self._runners[model] = runner
            if self.default_model is None:
                self.default_model = model
        return runner

    def resolve(self, model: str | None) -> PoolRunner:
        name = (model or "").strip()
        if name in ("", OPENAI_DEFAULT_MODEL) and self.default_model in self._runners:
            return self._runners[self.default_model]
        runner = self._runners.get(name) or self._runners.get(self.aliases.get(name, ""))
        if runner is None:
            served = ", ".join(sorted(self._runners)) or "none yet"
            raise AsrpoolError(
                ErrorCode.MODEL_NOT_FOUND,
                f"Model '{name}' is not served here. Models: {served} (whisper-1: the default).",
                param="model",
            )
        return runner

    def drop(self, model: str) -> None:
        """Stop serving ``model`` (its ASRPool is gone); requests in flight keep their runner."""
        self._runners.pop(model, None)
        if self.default_model == model:
            self.default_model = next(iter(self._runners), None)

    def runners(self) -> list[PoolRunner]:
        return list(self._runners.values())

    def any_ready(self) -> bool:
        """Some pod of some pool takes work now."""
        return any(
            p["accepting"] for r in self._runners.values() for p in r.pool.snapshot()["pods"]
        )
