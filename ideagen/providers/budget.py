"""--max-cost: a hard ceiling on what one run may spend on model calls.

Before each attempt at a call (a retry or a repair is one too) the most it can cost (every
input token at full price, plus max_tokens of output) is reserved; an attempt whose
reservation would take the run's recorded spend plus the reservations of attempts still in
flight past the ceiling is not sent. Parallel callers therefore cannot overshoot together.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from ideagen.providers.base import ModelError
from ideagen.store import Store


class BudgetReached(ModelError):
    """The next call would pass --max-cost; nothing more is sent."""


@dataclass
class Budget:
    limit_usd: float
    run_id: str
    store: Store
    reached: bool = False  # a call was refused: the run is incomplete
    _reserved: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def spent(self) -> float:
        return self.store.spend(self.run_id).cost_usd

    def reserve(self, estimate_usd: float) -> float:
        with self._lock:
            spent = self.spent()
            if spent + self._reserved + estimate_usd > self.limit_usd:
                self.reached = True
                raise BudgetReached(
                    f"stopped at the --max-cost budget: ${spent:.4f} of ${self.limit_usd:.2f} "
                    f"spent, and the next call may cost up to ${estimate_usd:.4f}"
                )
            self._reserved += estimate_usd
            return estimate_usd

    def release(self, reservation: float) -> None:
        with self._lock:
            self._reserved -= reservation


@dataclass(frozen=True)
class Estimate:
    """What a run will cost at most, shown before it starts."""

    calls: int
    usd: float

    def describe(self, limit_usd: float | None, *, per_message: bool = False) -> str:
        if per_message:
            text = f"estimate: about ${self.usd:.3f} per message"
        else:
            calls = f"{self.calls} model call{'' if self.calls == 1 else 's'}"
            text = f"estimate: about ${self.usd:.2f} for about {calls}"
        if limit_usd is not None:
            text += f"; budget ${limit_usd:.2f}"
            if self.usd > limit_usd:
                text += " (the run will stop when it is reached; what is done is kept)"
        return text
