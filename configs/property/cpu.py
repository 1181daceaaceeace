"""Property prediction at CPU scale, on the encoder that configs/cpu_1d.py pretrains (results/property/).

  python -m snipjax.tasks.property --config configs/property/cpu.py --workdir runs/property/ncr_frozen --config.pretrained=runs/pretrain_cpu_1d --config.property=ncr --config.mode=frozen

Hardware: a 2-core CPU, under a minute per run from the symbolic encoder, about two from the numeric one. The official protocol (10k training and 1k test
expressions, labels from raw y, the MLP head latent → 128 → 1, one learning rate for all three modes) with a
short-run optimizer: batch 64, 300 steps (1.9 epochs), AdamW 5e-4 with 30 warmup steps and cosine decay.
Numeric properties read the symbolic encoder; formula properties (n_ops, depth, periodic, exponential,
logarithmic, dim) the numeric encoder, and `dim` needs a Dmax > 1 encoder (configs/cpu_10d.py, with
--config.data.max_dim=10).

What it should reach: frozen SNIP above supervised on ncr and upward, and by more with fewer labels;
results/property/README.md holds what it reached.
"""

from configs.cpu_1d import get_config as encoder_config
from snipjax.config import property_config


def get_config():
    config = property_config()
    config.model = encoder_config().model  # the encoder the pretrained checkpoint holds
    config.data.workers = 1
    config.optim.kind = "adamw_cosine"
    config.optim.lr = 5e-4
    config.optim.warmup_steps = 30
    config.batch_size = 64
    config.total_steps = 300
    config.log_every = 50
    config.eval_every = 150
    config.checkpoint_every = 300
    return config
