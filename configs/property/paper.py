"""Property prediction, paper Table 1, as the official code runs it, on the released SNIP-1d encoder.

  python -m snipjax.tasks.property --config configs/property/paper.py --workdir runs/property/ncr_frozen --config.pretrained=weights/snip-1d --config.property=ncr --config.mode=frozen

Hardware: one GPU (the official scripts pin one CUDA device). `weights/snip-1d` is `snip-1d-normalized.pth`
converted with `python -m snipjax.convert` (see the README); `--config.mode=supervised` trains the same
architecture from scratch, `finetuned` trains the pretrained encoder on.

Recipe (official run_train_proppred.sh and eval_proppred.py): MLP head latent → 128 → 1 with MSE on the
symbolic encoder's latent; labels computed from raw y; 10k training and 1k test expressions; batch 16; Adam
1e-5, 10k warmup steps from 1e-7, inverse-sqrt decay; 100 epochs (the official run sets no end).

What it should reach (paper Table 1, R² / NMSE on the test set):

| property | supervised | SNIP frozen | SNIP finetuned |
|---|---|---|---|
| ncr | 0.4701 / 0.5299 | 0.9269 / 0.0731 | 0.9317 / 0.0683 |
| upward | 0.4644 / 0.5356 | 0.9460 / 0.0540 | 0.9600 / 0.0400 |
"""

from snipjax.config import property_config


def get_config():
    config = property_config()
    config.model.latent_dim = 512  # the released encoder's; the checkpoint gives the other sizes
    return config
