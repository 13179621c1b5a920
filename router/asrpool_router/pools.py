"""The pools the router serves, by model name, and how a request's ``model`` picks one.

Every OpenAI transcription model name (``asrpool_contract.wire.OPENAI_TRANSCRIPTION_MODELS``:
``whisper-1``, ``gpt-4o-mini-transcribe``, … what clients copied from OpenAI's docs send)
and an empty field go to the default pool; an alias (``--alias NAME=POOL``, or an
ASRPool's ``spec.aliases``) to its pool; a pool's own model name to it. Anything else is
404 ``model_not_found``. An alias given on the command line wins over one from Kubernetes,
and neither can take an OpenAI name away from the default pool unless it names it.
"""

from __future__ import annotations

from collections.abc import Callable

from asrpool_contract.wire import OPENAI_TRANSCRIPTION_MODELS, AsrpoolError, ErrorCode

from .dispatch import PoolRunner
from .logic.pool import PoolPolicy


class PoolRegistry:
    def __init__(
        self,
        policy_for: Callable[[str], PoolPolicy],
        new_runner: Callable[[str, PoolPolicy], PoolRunner],
        default_model: str | None = None,
        fixed_aliases: dict[str, str] | None = None,
    ) -> None:
        self._policy_for = policy_for
        self._new_runner = new_runner
        self._runners: dict[str, PoolRunner] = {}
        self.default_model = default_model
        # Other names → model: from the command line (fixed) and from ASRPools (kube
        # discovery replaces ``aliases`` on every change).
        self.fixed_aliases = dict(fixed_aliases or {})
        self.aliases: dict[str, str] = {}

    def ensure(self, model: str, policy: PoolPolicy | None = None) -> PoolRunner:
        """The model's pool, created (with ``policy`` or the default one) if new."""
        runner = self._runners.get(model)
        if runner is None:
            policy = policy if policy is not None else self._policy_for(model)
            runner = self._new_runner(model, policy)
            self._runners[model] = runner
            if self.default_model is None:
                self.default_model = model
        return runner

    def resolve(self, model: str | None) -> PoolRunner:
        name = (model or "").strip()
        target = self.fixed_aliases.get(name) or self.aliases.get(name)
        if target is None and name in self._runners:
            return self._runners[name]
        if target is None and name in ("", *OPENAI_TRANSCRIPTION_MODELS):
            target = self.default_model
        runner = self._runners.get(target or "")
        if runner is None:
            served = ", ".join(sorted(self._runners)) or "none yet"
            raise AsrpoolError(
                ErrorCode.MODEL_NOT_FOUND,
                f"Model '{name}' is not served here. Models: {served}; OpenAI's model names "
                "(whisper-1, gpt-4o-mini-transcribe, …) go to the default one. GET /v1/models "
                "lists them all.",
                param="model",
            )
        return runner

    def names(self) -> list[tuple[str, str, str]]:
        """What a client may send: (name, the pool it reaches, kind: pool | alias | openai)."""
        out = [(model, model, "pool") for model in self._runners]
        seen = set(self._runners)
        for alias, target in {**self.aliases, **self.fixed_aliases}.items():
            if alias not in seen and target in self._runners:
                out.append((alias, target, "alias"))
                seen.add(alias)
        if self.default_model in self._runners:
            out += [
                (name, self.default_model, "openai")
                for name in OPENAI_TRANSCRIPTION_MODELS
                if name not in seen
            ]
        return out

    def drop(self, model: str) -> None:
        """Stop serving ``model`` (its ASRPool is gone); requests in flight keep their runner."""
        self._runners.pop(model, None)
        if self.default_model == model:
            self.default_model = next(iter(self._runners), None)

    def runners(self) -> list[PoolRunner]:
        return list(self._runners.values())

    def any_ready(self) -> bool:
        """Some pod of some pool is in rotation (ready, not terminating).

        Not "has a free slot now": a router whose pods are all busy queues, and is ready;
        answering 503 to its readiness probe under full load would take it out of its
        Service exactly when it is needed (schemathesis found it, tests/unit/test_pools.py).
        """
        return any(p.schedulable for r in self._runners.values() for p in r.pods())
