"""A seeded stream of random draws: uniforms taken from a numpy Generator in blocks, consumed as Python floats.

Python-level draws (tree shapes, operator choices, constants) cost a list pop each instead of a numpy call;
vectorized draws (points) use `draws.rng` directly. Both come from the one generator of a sample.
"""

from __future__ import annotations

import bisect

import numpy as np


class Draws:
    """Uniform numbers from a numpy Generator, drawn in blocks and consumed as Python floats (fast)."""

    __slots__ = ("rng", "_block")

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self._block: list[float] = []

    def uniform(self) -> float:
        try:
            return self._block.pop()
        except IndexError:
            self._block = self.rng.random(64).tolist()
            return self._block.pop()

    def integer(self, low: int, high: int) -> int:
        """Uniform in low..high-1."""
        return low + int(self.uniform() * (high - low))

    def weighted(self, items, cumulative) -> object:
        return items[min(bisect.bisect_right(cumulative, self.uniform() * cumulative[-1]), len(items) - 1)]

    def shuffle(self, items: list) -> None:
        for i in range(len(items) - 1, 0, -1):
            j = self.integer(0, i + 1)
            items[i], items[j] = items[j], items[i]

    def constant(self) -> float:
        """sign * m * 10^e with m in 1..999 and e in {-3, -2, -1}: the official prefactor range."""
        sign = -1.0 if self.uniform() < 0.5 else 1.0
        mantissa = self.integer(1, 1000)
        return sign * mantissa / 10 ** self.integer(1, 4)
