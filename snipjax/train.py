"""`python -m snipjax.train`: pretraining (`snipjax.tasks.pretrain`) under its short name.

  python -m snipjax.train --config configs/tiny.py --workdir /tmp/snip_tiny [--config.batch_size=64 ...]
"""

from snipjax import loop
from snipjax.tasks.pretrain import train_and_evaluate

if __name__ == "__main__":
    loop.cli(train_and_evaluate)
