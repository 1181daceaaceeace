"""Ahead-of-time compilation for targets that are not here: target names, the analysis of a compiled step, and
the step's kernels and sharding following the target's devices.

The TPU cases need libtpu (the `tpu` extra) and are skipped without it; the same step compiled for the suite's 8
CPU devices checks the sharding and the analysis everywhere.
"""

import importlib.util
import os

import jax
import pytest

from snipjax import accelerators
from snipjax import compile as aot
from training_helpers import small_config

HAS_LIBTPU = importlib.util.find_spec("libtpu") is not None
CPU = accelerators.Chip("cpu", {"float32": 1e12, "bfloat16": 1e12}, 64 * 2**30, 1e11)


@pytest.mark.parametrize("name, chips, slices, topology", [
    ("v4-8", 4, 1, "v4:2x2x1"), ("v4-32", 16, 1, "v4:2x2x4"), ("v4-128", 64, 1, "v4:4x4x4"),
    ("v5p-128", 64, 1, "v5:4x4x4"), ("v5e-16", 16, 1, "v5e:4x4"), ("v5litepod-256", 256, 1, "v5e:16x16"),
    ("v6e-8", 8, 1, "v6e:2x4"), ("2xv5e-16", 32, 2, "v5e:4x4"), ("v5e-1", 1, 1, "v5e:1x1")])
def test_tpu_slices_are_named_as_cloud_tpu_names_them(name, chips, slices, topology):
    target = accelerators.target(name)
    assert (target.platform, target.chips, target.slices, target.topology) == ("tpu", chips, slices, topology)


def test_gpu_hosts_and_bad_names():
    target = accelerators.target("2xh100x8")
    assert (target.platform, target.chip.name, target.chips, target.slices) == ("gpu", "H100", 16, 2)
    assert target.usable_memory == int(0.75 * target.chip.hbm_bytes)  # JAX's preallocated share
    with pytest.raises(ValueError, match="the number after the dash counts cores"):
        accelerators.target("v4-12")
    with pytest.raises(ValueError, match="a GPU host has 1 or 2 or 4 or 8 GPUs"):
        accelerators.target("a100x3")
    with pytest.raises(ValueError, match=r"unknown target 'k80'.*v4-32.*h100x8"):
        accelerators.target("k80")


def test_collectives_are_counted_by_kind_once_per_async_pair():
    hlo = "\n".join([
        "%all-reduce.1 = f32[512]{0} all-reduce(%x), channel_id=1",
        "%ag-start = (bf16[4,8]{1,0}, bf16[32,8]{1,0}) all-gather-start(%y), dimensions={0}",
        "%ag-done = bf16[32,8]{1,0} all-gather-done(%ag-start)",
        "%add.3 = f32[512]{0} add(%a, %b)"])
    assert aot.collective_bytes(hlo) == {"all-reduce": 512 * 4, "all-gather": 32 * 8 * 2}


def test_a_tpu_compilers_refusal_is_read_in_both_its_forms():
    assert aot.memory_refusal("RESOURCE_EXHAUSTED: Ran out of memory on HBM, the total memory required for HLO "
                              "temporaries (22.39G) exceeds available HBM (15.75G).") == (
        int(22.39 * 2**30), int(15.75 * 2**30))
    assert aot.memory_refusal("Used 82.31G of 31.25G hbm. Exceeded hbm capacity by 51.06G.") == (
        int(82.31 * 2**30), int(31.25 * 2**30))
    assert aot.memory_refusal("INTERNAL: something else") is None


def _cpu_target(chips: int) -> accelerators.Target:
    return accelerators.Target(f"cpu-{chips}", "cpu", CPU, chips)


@pytest.mark.slow
def test_per_chip_memory_follows_the_per_chip_batch_and_the_row_blocks_are_the_cpus():
    config = small_config(batch_size=128)
    results = {chips: aot.compile_step(config, _cpu_target(chips), "train", jax.devices()[:chips])
               for chips in (2, 8)}
    two, eight = results[2], results[8]
    assert (two["per_chip_batch"], eight["per_chip_batch"]) == (64, 16)
    assert eight["memory_per_chip"]["temporaries"] < two["memory_per_chip"]["temporaries"]
    assert eight["kernels"]["attention"] == "row_blocked" and eight["mesh"] == {"data": 8, "fsdp": 1}
    assert eight["while_loops"] > 0  # the layers' scan over row blocks
    assert eight["collective_bytes_per_chip"].get("all-reduce", 0) > 0  # the gradients' mean over the chips
    assert 0 < eight["mfu_ceiling"] <= 1 and eight["roofline"]["step_s"] > 0


@pytest.mark.slow
def test_a_step_that_does_not_fit_names_the_memory_and_the_largest_batch_that_fits():
    config = small_config(batch_size=128)
    target = _cpu_target(8)
    needed = aot.compile_step(config, target, "train", jax.devices())["memory_per_chip"]["total"]
    small = accelerators.Target("cpu-8", "cpu", accelerators.Chip("cpu", CPU.peak_flops, needed - 1, 1e11), 8)
    with pytest.raises(aot.DoesNotFit, match="GiB per chip"):
        aot.compile_step(config, small, "train", jax.devices())
    largest = aot.largest_fitting_batch(config, small, "train", jax.devices(), needed)
    assert 0 < largest < 128 and largest % 8 == 0
    config.batch_size = largest
    aot.compile_step(config, small, "train", jax.devices())  # fits


@pytest.mark.slow
@pytest.mark.skipif(not HAS_LIBTPU, reason="needs libtpu (pip install -e '.[tpu]')")
def test_a_tpu_step_carries_xlas_kernels_and_shards_the_batch_over_the_slice():
    config = small_config(batch_size=64)
    result = aot.run(config, "v5e-4")
    assert result["fits"] and result["platform"] == "tpu" and result["per_chip_batch"] == 16
    assert result["kernels"]["attention"] == "xla" and result["flops_source"] == "xla"
    assert result["while_loops"] == 0  # no layer scanned over row blocks
    # XLA counts the partitioned program one chip runs: about a quarter of the analytic count of the batch.
    assert 0.7 < result["model_flops_per_chip"] / result["flops_per_chip"] <= 1.0


@pytest.mark.parametrize("step", ["decode", "refit"])
def test_the_sr_decoding_step_and_the_refit_compile_with_their_rows_split_over_the_chips(step):
    from snipjax.config import load_config_file

    config = load_config_file(os.path.join(os.path.dirname(os.path.dirname(__file__)), "configs", "sr", "tiny.py"))
    config.batch_size = 64
    result = aot.compile_step(config, _cpu_target(8), step, jax.devices())
    assert result["fits"] and result["per_chip_batch"] == 8 and result["step"] == step
    if step == "decode":  # the analytic count of one cached step agrees with XLA's
        assert 0.8 < result["model_flops_per_chip"] / result["flops_per_chip"] <= 1.2
