"""What every results script records and draws with: the machine a result came from, and headless pyplot."""

from __future__ import annotations

import os
import platform


def machine() -> dict:
    """Platform, processor, cores, Python, JAX and the devices JAX sees."""
    import jax

    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(), "jax": jax.__version__,
            "devices": [str(d) for d in jax.devices()]}


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
