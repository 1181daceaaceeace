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
            return self._refill()

    def _refill(self) -> float:
        self._block += self.rng.random(64).tolist()  # in place: a loop may hold the list
        return self._block.pop()

    # The draws below inline `uniform` (a Python call costs as much as the draw): a sample makes ~100.
    def integer(self, low: int, high: int) -> int:
        """Uniform in low..high-1."""
        try:
            u = self._block.pop()
        except IndexError:
            u = self._refill()
        return low + int(u * (high - low))

    def weighted(self, items, cumulative) -> object:
        try:
            u = self._block.pop()
        except IndexError:
            u = self._refill()
        return items[min(bisect.bisect_right(cumulative, u * cumulative[-1]), len(items) - 1)]

    def shuffle(self, items: list) -> None:
        block = self._block
        for i in range(len(items) - 1, 0, -1):
            try:
                u = block.pop()
            except IndexError:
                u = self._refill()
            j = int(u * (i + 1))
            items[i], items[j] = items[j], items[i]

    def constant(self) -> float:
        """sign * m * 10^e with m in 1..999 and e in {-3, -2, -1}: the official prefactor range."""
        sign = -1.0 if self.uniform() < 0.5 else 1.0
        mantissa = 1 + int(self.uniform() * 999)
        return sign * mantissa / 10 ** (1 + int(self.uniform() * 3))
