"""The 10-D pretraining on a Cloud TPU pod slice: the same command on every host, via launch/tpu_pod.sh.

  TPU=my-v4-32 ZONE=us-central2-b WORKDIR=/mnt/shared/snip_10d CONFIG=configs/tpu_pod_10d.py launch/tpu_pod.sh

which runs on all hosts: python -m snipjax.train --config configs/tpu_pod_10d.py --workdir $WORKDIR --detect_cluster

Hardware: a v4-32 slice (16 chips, 4 hosts) or similar; any slice works since the batch is global and must
only divide by the chip count. Each host generates its quarter of every batch with 48 worker processes.

Recipe: configs/snip_10d_paper.py scaled to the pod, a variant rather than the paper's recipe: batch 1024
(4x) with the peak learning rate scaled by sqrt(4) to 8e-5, warmup and length kept equal in samples
(2.5k warmup steps, 60k steps ≈ 61M pairs), bfloat16 compute. It should match snip_10d_paper's held-out
retrieval accuracy at equal samples seen; check that on the first 5k steps before a full run.

Fits (results/bench/compile.md, `python -m snipjax.compile --target ...`): a v4-32 (8.3 GiB per chip of
32) and a v4-16 (15.8 GiB per chip).
"""

from snipjax.config import default_config


def get_config():
    config = default_config()
    config.data.max_dim = 10
    config.data.normalize_y = False
    config.data.workers = 48
    config.model.dtype = "bfloat16"
    config.batch_size = 1024
    config.optim.lr = 8e-5
    config.optim.warmup_steps = 2_500
    config.total_steps = 60_000
    config.log_every = 50
    config.eval_every = 1_000
    config.checkpoint_every = 2_500
    return config
