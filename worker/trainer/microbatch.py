"""How one rank's share of an optimizer step splits into micro-batches: the trainer's
rule, which the platform imports (this module needs no torch) to show and plan the
same split it will run."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MicroBatching:
    """Split of one rank's share of a step into micro-batches: micro x accum == per_rank."""

    per_rank: int
    micro: int

    @classmethod
    def plan(cls, per_rank: int, hint: int) -> MicroBatching:
        """The largest micro-batch no bigger than the hint that divides the share exactly."""
        micro = max(d for d in range(1, min(hint, per_rank) + 1) if per_rank % d == 0)
        return cls(per_rank=per_rank, micro=micro)

    @property
    def accum(self) -> int:
        return self.per_rank // self.micro

    def backoff(self) -> MicroBatching | None:
        """The next smaller exact split after an out-of-memory error, or None at 1."""
        if self.micro == 1:
            return None
        return MicroBatching.plan(self.per_rank, self.micro - 1)
