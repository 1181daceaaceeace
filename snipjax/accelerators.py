"""The chips a step can run on or be compiled for: their peaks, and TPU slices and GPU hosts by name.

  target("v4-32")      # a TPU slice as Cloud TPU names it (v4 and v5p count cores, v5e and v6e chips)
  target("2xv5e-16")   # two slices of it (multi-slice, over the data-center network)
  target("h100x8")     # one host of 8 H100s; "2xh100x8": two such hosts

`Target.devices()` gives the slice's or hosts' devices without the hardware: libtpu (the `tpu` extra) describes a
TPU topology, and the CUDA plugin (the `cuda` extra) a GPU one from a target description shipped in
`snipjax/gpu_specs/`. A step compiled for those devices is the program the hardware would run.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import math
import os
import re

GiB = 2**30


@dataclasses.dataclass(frozen=True)
class Chip:
    """One accelerator chip: dense peak FLOP/s per compute dtype, HBM bytes and HBM bytes/s."""

    name: str
    peak_flops: dict[str, float]
    hbm_bytes: int
    hbm_bandwidth: float


# Vendor figures, per chip. JAX runs float32 matmuls on TF32 tensor cores on Hopper and Ampere GPUs and in
# bfloat16 passes on TPUs by default, so those are the float32 peaks (an H100's plain float32 peak is 67e12).
CHIPS = {
    "TPU v4": Chip("TPU v4", {"bfloat16": 275e12, "float32": 275e12}, 32 * GiB, 1.2e12),
    "TPU v5e": Chip("TPU v5e", {"bfloat16": 197e12, "float32": 197e12}, 16 * GiB, 8.19e11),
    "TPU v5p": Chip("TPU v5p", {"bfloat16": 459e12, "float32": 459e12}, 95 * GiB, 2.765e12),
    "TPU v6e": Chip("TPU v6e", {"bfloat16": 918e12, "float32": 918e12}, 32 * GiB, 1.64e12),
    "H100": Chip("H100", {"bfloat16": 989e12, "float32": 495e12}, 84_942_979_072, 3.35232e12),
    "H200": Chip("H200", {"bfloat16": 989e12, "float32": 495e12}, 151_397_597_184, 4.8e12),
    "A100": Chip("A100", {"bfloat16": 312e12, "float32": 156e12}, 85_100_068_864, 2.03904e12),
}

# What devices call themselves (`device_kind`) → the chip; longest names first ('TPU v5 lite' before 'TPU v5').
DEVICE_KINDS = {"TPU v5 lite": "TPU v5e", "TPU v6 lite": "TPU v6e", "TPU v5p": "TPU v5p", "TPU v5": "TPU v5p",
                "TPU v4": "TPU v4", "H100": "H100", "H200": "H200", "A100": "A100"}


def chip_of(device_kind: str) -> Chip | None:
    """The chip of a device kind such as 'NVIDIA H100 80GB HBM3' or 'TPU v5 lite', else None."""
    for kind in sorted(DEVICE_KINDS, key=len, reverse=True):
        if kind in device_kind:
            return CHIPS[DEVICE_KINDS[kind]]
    return None


@dataclasses.dataclass(frozen=True)
class TpuGeneration:
    chip: str
    topology_prefix: str  # libtpu's name: 'v4', 'v5' (v5p), 'v5e', 'v6e'
    cloud_prefix: str  # Cloud TPU's accelerator type: 'v4', 'v5p', 'v5litepod', 'v6e'
    cores_per_chip: int  # the Cloud name counts cores (v4, v5p) or chips (v5e, v6e)
    dims: int  # a 3-D torus (v4, v5p) or a 2-D one
    chip_config: str  # 'megacore': the chip's two cores are one device


TPU_GENERATIONS = {
    "v4": TpuGeneration("TPU v4", "v4", "v4", 2, 3, "megacore"),
    "v5p": TpuGeneration("TPU v5p", "v5", "v5p", 2, 3, "megacore"),
    "v5e": TpuGeneration("TPU v5e", "v5e", "v5litepod", 1, 2, "default"),
    "v5litepod": TpuGeneration("TPU v5e", "v5e", "v5litepod", 1, 2, "default"),
    "v6e": TpuGeneration("TPU v6e", "v6e", "v6e", 1, 2, "default"),
}
GPU_SPECS = {"h100": "H100", "h200": "H200", "a100": "A100"}  # snipjax/gpu_specs/<name>.txtpb
GPU_HOST_SIZES = (1, 2, 4, 8)
# JAX preallocates this share of a GPU's memory for XLA's buffers unless XLA_PYTHON_CLIENT_MEM_FRACTION says more.
GPU_DEFAULT_MEMORY_FRACTION = 0.75

_TPU_NAME = re.compile(r"^(?:(\d+)x)?(v4|v5p|v5e|v5litepod|v6e)-(\d+)$")
_GPU_NAME = re.compile(r"^(?:(\d+)x)?(h100|h200|a100)x(\d+)$")


def torus_shape(chips: int, dims: int) -> tuple[int, ...] | None:
    """The slice shape Cloud TPU gives `chips` chips (2x2x1, 2x2x2, 2x2x4, 2x4x4, 4x4x4, ...; 2-D: 1x1, 2x2,
    2x4, 4x4, 4x8, ...): from the smallest slice, each doubling doubles the last of the smallest sides."""
    if dims == 2 and chips == 1:
        return (1, 1)
    shape = [2, 2, 1] if dims == 3 else [2, 2]
    while (size := math.prod(shape)) < chips:
        smallest = min(shape)
        shape[max(i for i, side in enumerate(shape) if side == smallest)] *= 2
    return tuple(shape) if size == chips else None


@dataclasses.dataclass(frozen=True)
class Target:
    """Devices to compile for: `slices` TPU slices of `chips_per_slice` chips, or `slices` GPU hosts of
    `chips_per_slice` GPUs."""

    name: str
    platform: str  # 'tpu' | 'gpu'
    chip: Chip
    chips_per_slice: int
    slices: int = 1
    topology: str = ""  # libtpu's topology name ('v4:2x2x4'), for TPUs
    accelerator_type: str = ""  # Cloud TPU's name of one slice ('v4-32', 'v5litepod-16')
    chip_config: str = "default"
    gpu_spec: str = ""  # snipjax/gpu_specs/<gpu_spec>.txtpb, for GPUs

    @property
    def chips(self) -> int:
        return self.chips_per_slice * self.slices

    @property
    def usable_memory(self) -> int:
        """Bytes of one chip's memory a step may use: JAX's preallocated share of a GPU's, all of any other's
        (a TPU compiler checks it itself)."""
        if self.platform != "gpu":
            return self.chip.hbm_bytes
        fraction = float(os.environ.get("XLA_PYTHON_CLIENT_MEM_FRACTION", GPU_DEFAULT_MEMORY_FRACTION))
        return int(fraction * self.chip.hbm_bytes)

    def devices(self) -> list:
        """The target's devices, described without the hardware."""
        from jax.experimental import topologies

        if self.platform == "tpu":
            try:
                import libtpu  # noqa: F401  (the tpu extra)
            except ImportError:
                raise RuntimeError(f"compiling for {self.name} needs libtpu: pip install -e '.[tpu]'") from None
            # Off a TPU VM, libtpu looks for the VM's metadata and hosts and logs a screenful of warnings; and a
            # description uses no chip, so it need not take the one-process-per-VM lock.
            for variable, value in (("TPU_SKIP_MDS_QUERY", "1"), ("TPU_ACCELERATOR_TYPE", self.accelerator_type),
                                    ("TPU_WORKER_HOSTNAMES", "localhost"), ("TPU_WORKER_ID", "0"),
                                    ("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")):
                os.environ.setdefault(variable, value)
            single_host = self.chips_per_slice == 1
            return topologies.get_topology_desc(
                platform="tpu", topology_name=self.topology, chip_config_name=self.chip_config,
                chips_per_host_bounds=(1, 1, 1) if single_host else (2, 2, 1), num_slices=self.slices).devices
        # JAX checks the local CUDA installation against a GPU it would run on; there is none to run on here.
        os.environ.setdefault("JAX_SKIP_CUDA_CONSTRAINTS_CHECK", "1")
        # Triton's matmul tiles are picked by timing them on the device, so without one XLA's library matmuls
        # (cuBLAS) stand in: the same buffers, a different kernel choice.
        if "xla_gpu_enable_triton_gemm" not in os.environ.get("XLA_FLAGS", ""):
            os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_gpu_enable_triton_gemm=false".strip()
        spec = importlib.resources.files("snipjax.gpu_specs").joinpath(f"{self.gpu_spec}.txtpb").read_text()
        try:
            return topologies.get_topology_desc(platform="cuda", target_config=spec,
                                                topology=f"1x{self.slices}x{self.chips_per_slice}").devices
        except Exception as error:  # no CUDA plugin gives a backend error naming 'cuda'
            if "cuda" not in str(error).lower():
                raise
            raise RuntimeError(f"compiling for {self.name} needs the CUDA plugin: pip install -e '.[cuda]' "
                               f"({type(error).__name__}: {str(error).splitlines()[0]})") from None


def target(name: str) -> Target:
    """The Target called `name`: a TPU slice ('v4-8', 'v4-32', 'v5e-16', 'v5p-128', 'v6e-8', with 'Nx' in
    front for N slices) or GPU hosts ('h100x8', 'a100x8', 'h200x1', with 'Nx' in front for N hosts)."""
    lowered = name.strip().lower()
    if match := _TPU_NAME.match(lowered):
        slices, generation, count = int(match.group(1) or 1), TPU_GENERATIONS[match.group(2)], int(match.group(3))
        chips = count // generation.cores_per_chip
        shape = torus_shape(chips, generation.dims) if count % generation.cores_per_chip == 0 else None
        if shape is None or slices < 1:
            raise ValueError(f"{name!r} is not a {match.group(2)} slice Cloud TPU offers: the number after the "
                             f"dash counts {'cores (2 per chip)' if generation.cores_per_chip == 2 else 'chips'}, "
                             f"e.g. {match.group(2)}-{8 * generation.cores_per_chip}")
        topology = f"{generation.topology_prefix}:{'x'.join(map(str, shape))}"
        return Target(name, "tpu", CHIPS[generation.chip], chips, slices, topology,
                      f"{generation.cloud_prefix}-{count}", generation.chip_config)
    if match := _GPU_NAME.match(lowered):
        hosts, gpu, per_host = int(match.group(1) or 1), match.group(2), int(match.group(3))
        if per_host not in GPU_HOST_SIZES or hosts < 1:
            raise ValueError(f"{name!r}: a GPU host has {' or '.join(map(str, GPU_HOST_SIZES))} GPUs, e.g. {gpu}x8")
        return Target(name, "gpu", CHIPS[GPU_SPECS[gpu]], per_host, hosts, gpu_spec=gpu)
    raise ValueError(f"unknown target {name!r}: a TPU slice ({', '.join(sorted(TPU_GENERATIONS))}-N, e.g. v4-32, "
                     f"2xv5e-16) or GPU hosts ({', '.join(sorted(GPU_SPECS))}xN, e.g. h100x8, 2xh100x8)")
