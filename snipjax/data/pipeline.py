"""The batch producer: each host makes only its slice of every global batch, in worker processes, ahead.

Step s of a run covers the global sample indices s*G .. s*G+G-1 (G: global batch size); host p of P owns
the contiguous slice [p*G/P, (p+1)*G/P). Samples are pure functions of (seed, index), so the batches do not
depend on the number of workers, and a run resumed at step s only needs `start_step=s`.
"""

from __future__ import annotations

import collections
import os
import pickle
import subprocess
import sys
from typing import Any

import numpy as np

from snipjax.data.samples import DataSpec, as_spec, make_batch


def concat_batches(parts: list[dict]) -> dict[str, np.ndarray]:
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


class _Worker:
    """One `python -m snipjax.data.worker` process; requests are answered in order."""

    def __init__(self):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [_package_root(),
                                                                        os.environ.get("PYTHONPATH")])))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "snipjax.data.worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            env=env)

    def submit(self, spec: DataSpec, seed: int, indices: np.ndarray) -> None:
        pickle.dump((spec, seed, indices), self.process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
        self.process.stdin.flush()

    def result(self, indices: np.ndarray) -> dict:
        try:
            kind, payload = pickle.load(self.process.stdout)
        except EOFError:
            raise RuntimeError(
                f"data worker {self.process.pid} died (exit code {self.process.poll()}) while making samples "
                f"{indices[0]}..{indices[-1]}") from None
        if kind == "error":
            raise RuntimeError(f"data worker failed on samples {indices[0]}..{indices[-1]}:\n{payload}")
        return payload

    def close(self) -> None:
        # Prefetched batches are disposable: samples are regenerated from their indices on demand.
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process.stdin.close()
        self.process.stdout.close()


def _package_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class BatchProducer:
    """Host-local batches for consecutive steps, generated `prefetch` steps ahead by `workers` processes.

    A worker makes its share of several consecutive steps in one call when its share of one step is below
    `samples_per_request`: samples are made in rounds, and a numpy call per round costs the same for 64
    samples as for 256. With `workers=0` batches are made in this process when asked for (handy for tests and
    debugging).
    """

    def __init__(self, data_config: Any, seed: int, global_batch_size: int, process_index: int = 0,
                 process_count: int = 1, start_step: int = 0, workers: int | None = None, prefetch: int = 2,
                 samples_per_request: int = 512):
        if global_batch_size % process_count:
            raise ValueError(
                f"global batch size {global_batch_size} does not split evenly over {process_count} processes")
        self.spec = as_spec(data_config)
        self.seed = seed
        self.global_batch_size = global_batch_size
        self.local_batch_size = global_batch_size // process_count
        self.offset = process_index * self.local_batch_size
        self.step = start_step
        self.prefetch = max(prefetch, 1)
        workers = (os.cpu_count() or 1) if workers is None else workers
        self._workers = [_Worker() for _ in range(min(workers, self.local_batch_size))]
        self.steps_per_request = max(1, -(-samples_per_request * len(self._workers) // self.local_batch_size))
        self._closed = False
        self._pending: collections.deque = collections.deque()  # ([step][worker] shares, [worker] indices)
        self._ready: collections.deque = collections.deque()  # batches of collected steps, in order
        self._next_submit = start_step

    def indices(self, step: int) -> np.ndarray:
        """Global sample indices of this host's slice of step `step`."""
        start = step * self.global_batch_size + self.offset
        return np.arange(start, start + self.local_batch_size, dtype=np.int64)

    def _submit(self, first_step: int) -> None:
        """Each worker gets its share of steps first_step .. first_step + steps_per_request - 1 in one request."""
        shares = [np.array_split(self.indices(step), len(self._workers))
                  for step in range(first_step, first_step + self.steps_per_request)]
        requests = [np.concatenate([share[w] for share in shares]) for w in range(len(self._workers))]
        for worker, request in zip(self._workers, requests):
            worker.submit(self.spec, self.seed, request)
        self._pending.append((shares, requests))

    def _collect(self) -> None:
        """The oldest request's replies, cut back into one batch per step."""
        shares, requests = self._pending.popleft()
        replies = [worker.result(request) for worker, request in zip(self._workers, requests)]
        offsets = [0] * len(self._workers)
        for share in shares:
            parts = []
            for w, reply in enumerate(replies):
                parts.append({key: value[offsets[w]: offsets[w] + len(share[w])] for key, value in reply.items()})
                offsets[w] += len(share[w])
            self._ready.append(concat_batches(parts))

    def next(self) -> tuple[int, dict[str, np.ndarray]]:
        step = self.step
        if self._closed:
            raise RuntimeError("this BatchProducer is closed; make a new one with start_step to continue")
        if not self._workers:
            batch = make_batch(self.spec, self.seed, self.indices(step))
        else:
            # `prefetch` steps ahead, and with requests of several steps the next request already out while
            # the current one's batches are handed out.
            while self._next_submit < step + self.prefetch + self.steps_per_request - 1:
                self._submit(self._next_submit)
                self._next_submit += self.steps_per_request
            if not self._ready:
                try:
                    self._collect()
                except RuntimeError:
                    self.close()  # the other workers' replies are now out of step: this producer is done
                    raise
            batch = self._ready.popleft()
        self.step += 1
        return step, batch

    def __iter__(self):
        return self

    def __next__(self):
        return self.next()

    def close(self) -> None:
        for worker in getattr(self, "_workers", ()):  # also when __init__ failed half-way
            worker.close()
        self._workers = []
        self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()


class EpochBatches:
    """Host-local batches from a fixed in-memory dataset, in a fresh order each epoch (seeded by the epoch).

    Global batch k takes positions k*G .. k*G+G-1 of the endless sequence epoch 0, epoch 1, ..., so a batch
    depends on k alone (exact resume from `start_step`) and may straddle two epochs; host p of P takes the
    contiguous slice [p*G/P, (p+1)*G/P) of it. Same interface as BatchProducer: `next()`, `close()`.
    """

    def __init__(self, arrays: dict[str, np.ndarray], global_batch_size: int, seed: int, process_index: int = 0,
                 process_count: int = 1, start_step: int = 0):
        if global_batch_size % process_count:
            raise ValueError(
                f"global batch size {global_batch_size} does not split evenly over {process_count} processes")
        self.arrays = arrays
        self.size = len(next(iter(arrays.values())))
        self.seed = seed
        self.global_batch_size = global_batch_size
        self.local_batch_size = global_batch_size // process_count
        self.offset = process_index * self.local_batch_size
        self.step = start_step

    def _order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng((self.seed, epoch)).permutation(self.size)

    def indices(self, step: int) -> np.ndarray:
        """Dataset rows of this host's slice of step `step`."""
        positions = step * self.global_batch_size + self.offset + np.arange(self.local_batch_size)
        epochs = positions // self.size
        rows = np.empty(len(positions), dtype=np.int64)
        for epoch in np.unique(epochs):
            here = epochs == epoch
            rows[here] = self._order(int(epoch))[positions[here] % self.size]
        return rows

    def next(self) -> tuple[int, dict[str, np.ndarray]]:
        step, rows = self.step, self.indices(self.step)
        self.step += 1
        return step, {k: v[rows] for k, v in self.arrays.items()}

    def close(self) -> None:
        pass


def generate(data_config: Any, seed: int, count: int, workers: int = 0, chunk: int = 500) -> dict[str, np.ndarray]:
    """Samples 0..count-1 of the seed stream as one batch, made `chunk` at a time by `workers` processes."""
    chunk = min(chunk, count)
    with BatchProducer(data_config, seed, chunk, workers=workers) as producer:
        parts = [producer.next()[1] for _ in range(-(-count // chunk))]
    return {k: v[:count] for k, v in concat_batches(parts).items()}
