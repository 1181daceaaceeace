"""A sample-generating worker process: reads (spec, seed, indices) requests, writes batches, in order.

Started by the batch producer as `python -m snipjax.data.worker` rather than through multiprocessing, so it
never imports the parent's main module (and with it jax): a worker costs numpy and this package only.
"""

from __future__ import annotations

import pickle
import sys
import traceback

from snipjax.data.samples import make_batch


def serve(requests, replies) -> None:
    while True:
        try:
            spec, seed, indices = pickle.load(requests)
        except EOFError:
            return
        try:
            reply = ("batch", make_batch(spec, seed, indices))
        except Exception:  # the parent raises it, naming the indices
            reply = ("error", traceback.format_exc())
        pickle.dump(reply, replies, protocol=pickle.HIGHEST_PROTOCOL)
        replies.flush()


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)
