"""Devices and hosts: the ('data', 'fsdp') mesh, how arrays are sharded on it, and the multi-process start.

Data parallelism here is `jax.jit` over global arrays laid out by `NamedSharding` (today's JAX merged the
partitioned jit into `jit`, and the per-device map is legacy): the batch axis is split over every device,
large matrices are optionally split over 'fsdp', and the compiler inserts the collectives. No hand-written
`psum`.
"""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from snipjax.models.attention import ATTENTION_KERNELS
from snipjax.models.transformer import Kernels

MESH_AXES = ("data", "fsdp")
KERNEL_CHOICES = ("auto", *ATTENTION_KERNELS)


def initialize_distributed(coordinator_address: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None, detect_cluster: bool = False) -> None:
    """Join a multi-process job, or do nothing for a single process.

    Explicit: `coordinator_address` (or the `JAX_COORDINATOR_ADDRESS` variable) with `num_processes` and
    `process_id`, as for several processes on one machine. `detect_cluster=True`: JAX reads them from the
    cluster it runs in (Cloud TPU pod, SLURM, Open MPI). Must run before anything touches a device.
    """
    coordinator_address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS")
    if coordinator_address is None and not detect_cluster:
        return
    # CPU processes need a collectives library to talk to each other; accelerators ignore this setting.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address, num_processes, process_id)


def make_mesh(mesh_config, devices=None) -> Mesh:
    """The ('data', 'fsdp') mesh over `devices` (default: all); a size of -1 takes the devices the other axis
    leaves."""
    devices = jax.devices() if devices is None else list(devices)
    n_devices = len(devices)
    shape = [mesh_config.data, mesh_config.fsdp]
    if shape.count(-1) > 1:
        raise ValueError(f"at most one mesh axis may be -1, got mesh.data={shape[0]}, mesh.fsdp={shape[1]}")
    if -1 in shape:
        known = -int(np.prod(shape))
        if n_devices % known:
            raise ValueError(f"mesh {shape} cannot cover {n_devices} devices: {n_devices} is not divisible by {known}")
        shape[shape.index(-1)] = n_devices // known
    if int(np.prod(shape)) != n_devices:
        raise ValueError(
            f"mesh data={shape[0]} x fsdp={shape[1]} needs {int(np.prod(shape))} devices, but {n_devices} are "
            "present; set mesh.data=-1 to use all remaining devices")
    # Auto axes keep GSPMD sharding propagation: JAX 0.11 made Explicit the default of make_mesh, which would
    # demand a sharding annotation on every ambiguous op; naming Auto gives the same program on 0.10 and 0.11.
    return jax.make_mesh(tuple(shape), MESH_AXES, axis_types=(jax.sharding.AxisType.Auto,) * len(MESH_AXES),
                         devices=devices)


def kernels_for(config, mesh: Mesh | None = None) -> Kernels:
    """How the layers of `config`'s model are computed on `mesh` (None: one device of this process), from
    `config.kernels`: 'auto' takes the row-blocked layers on CPUs and XLA's on accelerators, decided by the
    mesh's platform, so a step compiled ahead of time for a TPU slice from a CPU host is the step the slice
    runs. Row blocks take rows of every device's share of the batch (it is split over the whole mesh)."""
    settings = config.get("kernels") or {}
    choice = settings.get("attention", "auto")
    if choice not in KERNEL_CHOICES:
        raise ValueError(f"config.kernels.attention must be one of {KERNEL_CHOICES}, got {choice!r}")
    devices = jax.local_devices()[:1] if mesh is None else list(mesh.devices.flat)
    if choice == "auto":
        choice = "row_blocked" if devices[0].platform == "cpu" else "xla"
    rows = settings.get("rows_per_block", 8)
    if not isinstance(rows, int) or rows < 1:
        raise ValueError(f"config.kernels.rows_per_block must be a positive integer, got {rows!r}")
    return Kernels(choice, rows, len(devices))


def shard_by_shape(mesh: Mesh, tree, fsdp_min_size: int):
    """NamedShardings for a pytree of arrays (or shape structs), decided by shape alone.

    A matrix with at least `fsdp_min_size` elements is split over 'fsdp' along its largest axis divisible by
    the 'fsdp' size; everything else (small matrices, vectors, scalars) is replicated. Parameters and their
    optimizer moments have the same shapes, so they get the same layout.
    """
    fsdp = mesh.shape["fsdp"]

    def sharding(leaf):
        spec = [None] * len(leaf.shape)
        if fsdp > 1 and len(leaf.shape) >= 2 and int(np.prod(leaf.shape)) >= fsdp_min_size:
            divisible = [axis for axis, size in enumerate(leaf.shape) if size % fsdp == 0]
            if divisible:
                spec[max(divisible, key=lambda axis: leaf.shape[axis])] = "fsdp"
        return NamedSharding(mesh, P(*spec))

    return jax.tree.map(sharding, tree)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Rows of a batch split over every device of the mesh."""
    return NamedSharding(mesh, P(MESH_AXES))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def max_over_processes(value: int) -> int:
    """The largest `value` over all processes; every process must call it at the same point."""
    if jax.process_count() == 1:
        return value
    from jax.experimental import multihost_utils

    return int(np.max(multihost_utils.process_allgather(np.int32(value))))


def global_batch(mesh: Mesh, local_batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
    """Lift this host's rows (the contiguous slice it owns, in process order) into global arrays."""
    sharding = batch_sharding(mesh)
    rows = {len(v) for v in local_batch.values()}
    n_local = len(mesh.local_devices)
    if len(rows) != 1 or rows.pop() % n_local:
        raise ValueError(f"host batch rows {[v.shape for v in local_batch.values()]} must agree and divide "
                         f"over this host's {n_local} devices")
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in local_batch.items()}
