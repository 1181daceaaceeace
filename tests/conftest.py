"""Test session set-up: 8 fake CPU devices, so sharding and multi-device equivalence run on any machine."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)
