"""The config schema, filled with the official SNIP pretraining values (the 1-D model); configs/ override it."""

from __future__ import annotations

import ast
import sys
import sysconfig
import traceback

import ml_collections


def default_config() -> ml_collections.ConfigDict:
    """SNIP-1d-normalized as the official code trains it: 8+8 layers of d 512, batch 256, Adam 4e-5."""
    config = ml_collections.ConfigDict()
    config.seed = 0

    config.data = ml_collections.ConfigDict()
    config.data.max_dim = 1  # Dmax: decides the vocabulary and the numeric input width
    config.data.normalize_y = True  # min-max y to [0, 1] (the 1-D model)
    config.data.n_points = 200
    config.data.max_len = 200  # symbolic sequence length
    config.data.workers = 0  # producer worker processes (0 = in-process)

    config.model = ml_collections.ConfigDict()
    config.model.d_model = 512
    config.model.n_layers = 8
    config.model.n_heads = 16
    config.model.d_ff = 2048
    config.model.latent_dim = 512
    config.model.float_emb_dim = 64
    config.model.max_positions = 4096
    config.model.numeric_positions = True  # official: learned positions on the point set too; False = paper
    config.model.norm = "post"  # 'post' (official) | 'pre'
    config.model.ln_eps = 1e-12
    config.model.pool_mask = False  # official: pooling softmax over all positions; True masks padding
    config.model.float_init = "official"  # float-token embeddings: random (official) | 'value' (codes of values)
    config.model.point_input = "tokens"  # points as float-token embeddings (official) | 'values' (value features)
    config.model.constant_input = "tokens"  # an expression's constants, likewise
    config.model.dtype = "float32"  # compute dtype: 'float32' | 'bfloat16' (params stay float32)

    config.loss = ml_collections.ConfigDict()
    config.loss.kind = "infonce"  # 'infonce' (official: raw dot / tau) | 'clip' | 'siglip'
    config.loss.temperature = 1.0

    config.optim = ml_collections.ConfigDict()
    config.optim.kind = "adam_inverse_sqrt"  # | 'adamw_cosine'
    config.optim.lr = 4e-5
    config.optim.warmup_steps = 10_000
    config.optim.warmup_init_lr = 1e-7
    config.optim.clip_norm = 0.5
    config.optim.weight_decay = 0.0

    config.batch_size = 256  # global, over all hosts and devices
    # Symbol sequences are cut to their batch's longest, rounded up to a multiple of this (0: data.max_len).
    # Exact (attention and pooling treat the cut padding as they would compute it) and the symbolic encoder's
    # cost follows the expressions' length; each length compiles the step once.
    config.length_bucket = 16
    config.total_steps = 240_000  # ~61M pairs: the reviews' "60 million examples"
    config.log_every = 100
    config.eval_every = 2_000
    config.eval_size = 256  # held-out pairs: eval_size-way retrieval
    config.checkpoint_every = 10_000  # the official code saves every 10 epochs of 1000 steps
    config.keep_checkpoints = 3

    # How the layers are computed (snipjax.parallel.kernels_for): changes speed and memory, never a result.
    config.kernels = ml_collections.ConfigDict()
    config.kernels.attention = "auto"  # 'auto': 'row_blocked' on CPUs, 'xla' on GPUs and TPUs | 'xla' | 'row_blocked'
    config.kernels.rows_per_block = 8  # rows of each device's share per step of a row-blocked layer

    config.mesh = ml_collections.ConfigDict()
    config.mesh.data = -1  # -1: all devices the other axis leaves
    config.mesh.fsdp = 1
    config.mesh.fsdp_min_size = 2**18  # matrices with fewer elements stay replicated
    return config


def property_config() -> ml_collections.ConfigDict:
    """Property prediction as the official code runs it (run_train_proppred.sh, eval_proppred.py): an MLP head
    (latent → 128 → 1, MSE) on the SNIP-1d symbolic encoder; 10k training and 1k test expressions of one
    variable; batch 16, Adam 1e-5 with the official warmup and inverse-sqrt decay, clipping 0.5.

    `model` and `data.max_dim` describe the encoder; with `pretrained` they come from the checkpoint, which
    must match `data.max_dim` and `model.latent_dim`.
    """
    config = default_config()
    config.property = "ncr"  # ncr | upward | yavg | oscillation, or of the formula: n_ops | depth | periodic |
    #                          exponential | logarithmic | dim
    config.mode = "frozen"  # supervised | frozen | finetuned
    config.pretrained = ""  # a pretraining workdir, an export dir or a converted official checkpoint
    config.data.property_y = "raw"  # official: labels from raw y (the export runs without --normalize_y)
    config.n_train = 10_000
    config.n_test = 1_000
    config.test_min_binary_ops_per_dim = 0  # 0: the training sampler; 3: as eval_proppred.py sets "for 1D"
    config.head_hidden = 128
    config.optim.lr = 1e-5
    config.batch_size = 16
    config.eval_batch_size = 200  # the test set is evaluated in chunks of this many
    # The official run sets no end (--max_epoch 100000, 625 steps per epoch); 100 epochs of the 10k set here.
    config.total_steps = 62_500
    config.log_every = 100
    config.eval_every = 6_250
    config.checkpoint_every = 6_250
    return config


def sr_config() -> ml_collections.ConfigDict:
    """Decoder training as the official SR code runs it (run_train.sh): the SNIP-10dmax numeric encoder frozen,
    a mapper to 200 memory vectors and a 16-layer decoder (d 512, 16 heads, tied output embeddings), next-token
    cross-entropy on expressions with raw y; batch 64, Adam 4e-5 with the official schedule.

    `model` describes the whole SR model when no checkpoint gives it; with `pretrained` (the encoder) the
    encoder and data settings come from that checkpoint and `model.decoder` adds the decoder.
    """
    config = default_config()
    config.data.max_dim = 10
    config.data.normalize_y = False
    config.model.decoder = ml_collections.ConfigDict(
        {"n_layers": 16, "n_heads": 16, "memory_length": 200, "tie_embeddings": True})
    config.pretrained = ""  # the numeric encoder: a pretraining workdir, an export dir, a converted checkpoint
    config.pretrained_sr = ""  # everything: a converted snip-e2e-sr.pth or a workdir of this program
    config.train_encoder = False
    config.batch_size = 64
    config.checkpoint_every = 10_000
    return config


def load_config_file(path) -> ml_collections.ConfigDict:
    """`get_config()` of a file under a `configs/` folder (configs/<name>.py, configs/property/<name>.py),
    which may import the others as `configs.<name>`."""
    import importlib.util
    from pathlib import Path

    path = Path(path).resolve()
    root = next((folder.parent for folder in path.parents if folder.name == "configs"), path.parent)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    spec = importlib.util.spec_from_file_location(f"config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def one_line(error: BaseException) -> str:
    """An exception's message on one line (absl and ml_collections spread theirs over several lines, and
    ml_collections quotes its own as a Python literal)."""
    text = str(error).strip()
    if len(text) > 1 and text[0] == text[-1] and text[0] in "'\"":
        try:
            text = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            pass
    text = " ".join(line.strip() for line in text.splitlines() if line.strip()) or type(error).__name__
    return f"unknown config key {text}" if isinstance(error, AttributeError) else text


def parse_flags(flag_values, argv: list[str], usage: str = "") -> list[str]:
    """Parse command-line flags (config files and --config.key=value overrides included); a mistake prints
    one line and exits with status 2 instead of a traceback. Returns the arguments left over. On a flag set
    of its own (a tool's, which has no --help of absl's app), --help prints `usage` and the flags and exits 0."""
    from absl import flags

    if "help" not in flag_values and any(arg in ("--help", "-h") for arg in argv[1:]):
        print(f"{usage.strip()}\n\nflags:\n{flag_values.get_help(include_special_flags=False)}")
        raise SystemExit(0)
    try:
        remaining = flag_values(argv)
        for name in flag_values:
            value = flag_values[name].value
            if hasattr(value, "to_dict"):
                value.to_dict()  # a config file that failed to load says so only when used: make it say now
        return remaining
    except (flags.Error, AttributeError, KeyError, ValueError, TypeError, OSError) as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        raise SystemExit(2) from None
    except Exception as error:  # a config file's own code failed (SyntaxError, NameError, ImportError ...)
        where = _user_code_line(error)
        if where is None:
            raise
        print(f"error: {where}: {type(error).__name__}: {getattr(error, 'msg', None) or one_line(error)}",
              file=sys.stderr)
        raise SystemExit(2) from None


def _user_code_line(error: BaseException) -> str | None:
    """'FILE line N' of the config file where `error` arose: a SyntaxError's own, else the innermost frame
    outside Python's and the installed packages' files; None if there is none."""
    if isinstance(error, SyntaxError) and error.filename:
        return f"{error.filename} line {error.lineno}"
    library = (sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"], "<frozen")
    frames = [f for f in traceback.extract_tb(error.__traceback__) if not f.filename.startswith(library)]
    return f"{frames[-1].filename} line {frames[-1].lineno}" if frames else None
