"""The paper's 1-D pretraining on one GPU host (1 to 8 GPUs), in bfloat16 with parallel data generation.

  python -m snipjax.train --config configs/gpu_1d.py --workdir runs/snip_1d_gpu

Hardware: one machine with NVIDIA GPUs (H100 class) and at least 16 CPU cores for the data workers. One
process drives every local GPU; the mesh splits the batch over all of them. For several machines use
launch/slurm_gpu.sbatch.

Recipe: configs/snip_1d_paper.py unchanged except bfloat16 compute (float32 parameters, optimizer, norms,
softmaxes and loss) and 15 data worker processes. Measure first: `python -m snipjax.bench train --config
configs/gpu_1d.py` reports samples/s, whether data keeps up (data ms vs step ms) and MFU. It should reach
what configs/snip_1d_paper.py reaches; compare the two curves on the first 20k steps before a full run.

Fits (results/bench/compile.md, `python -m snipjax.compile --target ...`): a host of 8 H100s (4.3 GiB per
chip) and a single H100 (28.3 GiB of JAX's 59.3).
"""

from snipjax.config import default_config


def get_config():
    config = default_config()
    config.model.dtype = "bfloat16"
    config.data.workers = 15
    return config
