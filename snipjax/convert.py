"""Convert a released SNIP PyTorch checkpoint into a snipjax export dir (`config.json` + `params/`).

    python -m snipjax.convert --torch snip-10dmax.pth --out DIR [--max-dim 10]

Handles the pretrained encoder pairs (`snip-1d-normalized.pth`, `snip-10dmax.pth`) and the symbolic-regression
release (`snip-e2e-sr.pth`: numeric encoder, mapper, decoder). The file is read with torch's weights-only
loader, so a downloaded pickle never runs code; torch is the optional extra `snipjax[torch]`.
`convert_state_dicts` does the mapping on plain arrays and needs no torch.
"""

from __future__ import annotations

import errno
import os
import pathlib
import pickle
import re
import sys
from typing import Any, Mapping

import jax
import ml_collections
import numpy as np
from absl import flags

from snipjax import models
from snipjax.checkpoint import export_params
from snipjax.config import default_config, parse_flags
from snipjax.data.files import atomic_directory
from snipjax.data.tokens import point_width
from snipjax.data.vocab import TOKENS_PER_FLOAT
from snipjax.task_data import MODEL_INPUTS, example_inputs

ENCODER_MODULES = ("embedder", "encoder_y", "encoder_f")  # a pretrained SNIP encoder pair
SR_MODULES = ("embedder", "encoder_y", "mapper", "decoder")  # the symbolic-regression release
# Modules a release may carry that snipjax does not load: the pretraining repo's untrained decoder and its
# property-prediction heads (the SR release's decoder, in contrast, is loaded).
KNOWN_MODULES = ("embedder", "encoder_y", "encoder_f", "decoder", "mapper", "regressor", "classifier")
TIED_OUTPUT = "decoder.proj.weight"  # the official decoder's output weight, its input embeddings when tied
UNUSED_KEY = re.compile(r"^(encoder_y|encoder_f)\.z_projection\.")  # built by the official encoders, never used

# Training arguments the conversion reads from the file's `params`, with the official parser's defaults.
OFFICIAL_DEFAULTS = {
    "emb_emb_dim": 64, "enc_emb_dim": 512, "dec_emb_dim": 512, "n_enc_layers": 8, "n_dec_layers": 8,
    "n_enc_heads": 16, "n_dec_heads": 16, "latent_dim": 512, "normalize_y": False, "clip_temperature": 1.0,
    "enc_positional_embeddings": "learnable", "dec_positional_embeddings": "learnable",
}
# Official options with other values than these build layers snipjax does not implement.
SUPPORTED_VALUES = {
    "n_emb_layers": (1,), "emb_expansion_factor": (1,), "n_enc_hidden_layers": (1,), "n_dec_hidden_layers": (1,),
    "norm_attention": (False,), "enc_positional_embeddings": ("learnable", "sinusoidal"),
    "dec_positional_embeddings": ("learnable", "sinusoidal"),
}
N_MAX_POSITIONS = 4096  # the official position table size

# Flax parameter path ('/'-joined) → PyTorch key: rewrite rules applied in order, then '/' becomes '.'.
PATH_RULES = (
    (r"^numeric_encoder/embedder/hidden/", "embedder/hidden_layers/0/"),
    (r"^numeric_encoder/embedder/", "embedder/"),
    (r"^numeric_encoder/", "encoder_y/"),
    (r"^symbolic_encoder/", "encoder_f/"),
    (r"/transformer/", "/"),
    (r"/block_(\d+)/attention/", r"/attentions/\1/"),
    (r"/block_(\d+)/cross_attention/", r"/encoder_attn/\1/"),
    (r"/block_(\d+)/ffn/", r"/ffns/\1/"),
    (r"/block_(\d+)/layer_norm_cross/", r"/layer_norm15/\1/"),
    (r"/block_(\d+)/(layer_norm[12])/", r"/\2/\1/"),
    (r"/pool/score/", "/glob_attn_module/0/"),
    (r"/pool/bottleneck/", "/bottleneck_module/fc1/"),
    (r"/(kernel|scale|embedding)$", "/weight"),
)

INSTALL_TORCH = ('reading a .pth file needs PyTorch (CPU is enough): pip install "snipjax[torch]" '
                 '(or: pip install torch --index-url https://download.pytorch.org/whl/cpu)')


def torch_key(flax_path: tuple[str, ...]) -> str:
    """The official state_dict key of one snipjax parameter, e.g. ('numeric_encoder', 'pool', 'score',
    'kernel') → 'encoder_y.glob_attn_module.0.weight'."""
    path = "/".join(flax_path)
    for pattern, replacement in PATH_RULES:
        path = re.sub(pattern, replacement, path)
    return path.replace("/", ".")


def _canonical_key(key: str) -> str:
    """Drops the `module.` that DistributedDataParallel puts in front of every key of a module."""
    module, _, rest = key.partition(".")
    return f"{module}.{rest.removeprefix('module.')}"


def _modules(state_dict: Mapping[str, Any]) -> set[str]:
    return {key.partition(".")[0] for key in state_dict}


def _param(params: Mapping[str, Any], name: str):
    return params.get(name, OFFICIAL_DEFAULTS[name])


def _shape(state_dict: Mapping[str, Any], key: str) -> tuple[int, ...]:
    """The shape of a key the conversion needs before it can build the model."""
    if key not in state_dict:
        raise ValueError(f"missing key {key}")
    return tuple(state_dict[key].shape)


def _check_max_dim(state_dict, params, max_dim: int | None) -> int:
    """The Dmax the embedder weights were built for, checked against the file's params and the caller's Dmax."""
    float_emb_dim = _shape(state_dict, "embedder.embeddings.weight")[1]
    width = _shape(state_dict, "embedder.hidden_layers.0.weight")[1]
    file_max_dim = width // (TOKENS_PER_FLOAT * float_emb_dim) - 1
    described = (f"the embedder weights are for Dmax={file_max_dim} (embedder.hidden_layers.0.weight is "
                 f"{width} wide = 3·({file_max_dim}+1)·{float_emb_dim})")
    stated = params.get("max_input_dimension")
    if stated is not None and stated != file_max_dim:
        raise ValueError(f"the checkpoint's params say max_input_dimension={stated}, but {described}; "
                         "the file is inconsistent")
    if max_dim is not None and max_dim != file_max_dim:
        expected_width = point_width(max_dim) * float_emb_dim
        raise ValueError(f"Dmax={max_dim} was asked for (embedder input {expected_width} wide), but {described}. "
                         f"Pass --max-dim {file_max_dim} (or leave it out) and use config.data.max_dim="
                         f"{file_max_dim} with this model")
    return file_max_dim


def _check_supported(params: Mapping[str, Any], sr: bool) -> None:
    for name, allowed in SUPPORTED_VALUES.items():
        if name.startswith(("n_dec", "dec_")) and not sr:
            continue
        if name in params and params[name] not in allowed:
            raise ValueError(f"the checkpoint was trained with {name}={params[name]!r}; snipjax implements only "
                             f"{' or '.join(map(repr, allowed))}")


def _layer_count(state_dict: Mapping[str, Any], module: str) -> int | None:
    layers = {int(m.group(1)) for key in state_dict if (m := re.match(rf"{module}\.attentions\.(\d+)\.", key))}
    return max(layers) + 1 if layers else None


def training_arguments(state_dict: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """The file's `params`, completed from its weights: widths come from the weight shapes (they win over
    `params`, and over the official parser's defaults); layer counts from the keys where `params` is silent."""
    layers = {name: count for name, count in (("n_enc_layers", _layer_count(state_dict, "encoder_y")),
                                              ("n_dec_layers", _layer_count(state_dict, "decoder")))
              if count is not None}
    bottleneck = _shape(state_dict, "encoder_y.bottleneck_module.fc1.weight")
    widths = {"latent_dim": bottleneck[0], "enc_emb_dim": bottleneck[1],
              "emb_emb_dim": _shape(state_dict, "embedder.embeddings.weight")[1]}
    return {**layers, **params, **widths}


def config_from_params(params: Mapping[str, Any], max_dim: int, sr: bool, memory_length: int | None = None,
                       tie_embeddings: bool = True) -> ml_collections.ConfigDict:
    """The snipjax config of an official model from its training arguments (official defaults if absent)."""
    _check_supported(params, sr)
    config = default_config()
    config.data.max_dim = max_dim
    config.data.normalize_y = bool(_param(params, "normalize_y"))
    m = config.model
    m.d_model = _param(params, "enc_emb_dim")
    m.n_layers = _param(params, "n_enc_layers")
    m.n_heads = _param(params, "n_enc_heads")
    m.d_ff = 4 * m.d_model  # the official FFN is always 4·d wide
    m.latent_dim = _param(params, "latent_dim")
    m.float_emb_dim = _param(params, "emb_emb_dim")
    m.max_positions = N_MAX_POSITIONS
    m.numeric_positions = True  # the official encoders both carry a position table
    m.norm, m.ln_eps, m.pool_mask, m.dtype = "post", 1e-12, False, "float32"
    config.loss.kind = "infonce"
    config.loss.temperature = float(_param(params, "clip_temperature"))
    if sr:
        if _param(params, "dec_emb_dim") != m.d_model:
            raise ValueError(f"decoder width dec_emb_dim={_param(params, 'dec_emb_dim')} differs from the encoder "
                             f"width enc_emb_dim={m.d_model}; snipjax shares one d_model")
        m.decoder = ml_collections.ConfigDict({
            "n_layers": _param(params, "n_dec_layers"), "n_heads": _param(params, "n_dec_heads"),
            "memory_length": memory_length, "tie_embeddings": tie_embeddings,
        })
    return config


def _expected_shapes(config: ml_collections.ConfigDict, sr: bool) -> dict:
    model = models.make_sr_model(config) if sr else models.make_snip(config)
    inputs = example_inputs(config)
    return jax.eval_shape(model.init, jax.random.key(0), *(inputs[k] for k in MODEL_INPUTS))["params"]


def convert_state_dicts(state_dict: Mapping[str, Any], params: Mapping[str, Any],
                        max_dim: int | None = None) -> tuple[ml_collections.ConfigDict, dict]:
    """(config, params pytree of float32 numpy) from an official checkpoint given as plain arrays.

    `state_dict` maps 'module.key' (e.g. 'encoder_y.attentions.0.q_lin.weight', as in the release's layout
    files) to an array; `params` is the checkpoint's `params` entry (training arguments); `max_dim`, if given,
    is the Dmax the caller expects. Raises ValueError naming the offending module, key or shape.
    """
    state_dict = {_canonical_key(key): value for key, value in state_dict.items()}
    unknown = sorted(_modules(state_dict) - set(KNOWN_MODULES))
    if unknown:
        raise ValueError(f"unexpected modules {unknown} in the checkpoint (known: {', '.join(KNOWN_MODULES)})")
    sr = "mapper" in _modules(state_dict)
    required = SR_MODULES if sr else ENCODER_MODULES
    missing_modules = [name for name in required if name not in _modules(state_dict)]
    if missing_modules:
        kind = "symbolic-regression release" if sr else "SNIP encoder checkpoint"
        raise ValueError(f"the checkpoint lacks module(s) {missing_modules} that a {kind} needs "
                         f"(it has: {sorted(_modules(state_dict))})")

    max_dim = _check_max_dim(state_dict, params, max_dim)
    memory_length, tied = None, False
    if sr:
        memory_length = _shape(state_dict, "mapper.linear1.weight")[0] // _param(params, "enc_emb_dim")
        # share_inout_emb: torch saves the tied output weight under both names, as one tensor.
        tied = TIED_OUTPUT in state_dict and np.array_equal(state_dict[TIED_OUTPUT],
                                                             state_dict.get("decoder.embeddings.weight"))
    config = config_from_params(training_arguments(state_dict, params), max_dim, sr, memory_length, tied)

    expected = _expected_shapes(config, sr)
    used = {key for key in state_dict if key.partition(".")[0] in required and not UNUSED_KEY.match(key)
            and not (tied and key == TIED_OUTPUT)}
    missing, mismatched = [], []

    def convert(path, leaf: jax.ShapeDtypeStruct) -> np.ndarray | None:
        names = tuple(entry.key for entry in path)
        key = torch_key(names)
        if key not in state_dict:
            missing.append(key)
            return None
        used.discard(key)
        value = np.asarray(state_dict[key], dtype=np.float32)
        if names[-1] == "kernel":
            value = value.T  # PyTorch Linear stores (out, in); a Flax kernel is (in, out)
        if value.shape != leaf.shape:
            torch_shape = leaf.shape[::-1] if names[-1] == "kernel" else leaf.shape
            mismatched.append(f"{key}: file {tuple(state_dict[key].shape)}, expected {tuple(torch_shape)}")
        return value

    converted = jax.tree_util.tree_map_with_path(convert, expected)
    problems = []
    if missing:
        problems.append(f"missing keys: {', '.join(missing)}")
    if used:
        problems.append(f"unexpected keys: {', '.join(sorted(used))}")
    if mismatched:
        problems.append(f"shape mismatches: {'; '.join(mismatched)}")
    if problems:
        raise ValueError("the checkpoint does not fit the model its params describe: " + " | ".join(problems))
    return config, converted


# The official trainers save `params.__dict__`, whose eval_dump_path is a pathlib.Path: the weights-only loader
# may build those (as pure paths, which only hold strings: a WindowsPath loads on Linux too) and nothing else.
PATH_GLOBALS = [(pathlib.PurePosixPath, "pathlib.PosixPath"), (pathlib.PureWindowsPath, "pathlib.WindowsPath")]

# How a file saved by torch.save starts: a zip archive (torch >= 1.6) or a bare pickle (older torch).
TORCH_FILE_MAGIC = (b"PK\x03\x04", b"\x80")


def check_checkpoint_file(path: str) -> None:
    """Raise a one-line error if `path` cannot be a torch checkpoint: missing, a directory, empty, or not a
    zip archive or pickle (a text file, an HTML page saved in place of a download)."""
    file = pathlib.Path(path)
    if not file.exists():
        raise FileNotFoundError("no such file")
    if not file.is_file():
        raise ValueError("is a directory, not a .pth file")
    with open(file, "rb") as f:
        head = f.read(64)
    if not head:
        raise ValueError("is empty (0 bytes): download it again")
    if not head.startswith(TORCH_FILE_MAGIC):
        text = head.decode("utf-8", "replace")
        is_text = all(c.isprintable() or c in "\r\n\t" for c in text)
        kind = f"it starts with the text {text[:40]!r}" if is_text else "unknown format"
        raise ValueError(f"is not a PyTorch checkpoint ({kind}); a failed download often saves an HTML page")


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def read_torch_checkpoint(path: str) -> tuple[dict[str, np.ndarray], dict]:
    """(flat state_dict of float32 numpy arrays, params dict) from a released .pth, loaded weights-only."""
    check_checkpoint_file(path)
    try:
        import torch
    except ImportError as error:
        raise ImportError(INSTALL_TORCH) from error
    try:
        with torch.serialization.safe_globals(PATH_GLOBALS):
            checkpoint = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as error:
        # torch's message goes on to suggest weights_only=False, which would run the file's code: keep its
        # diagnosis only.
        reason = next((line.strip() for line in str(error).splitlines()
                       if re.search("unsupported|blocked|WeightsUnpickler", line, re.IGNORECASE)
                       and "weights_only" not in line), "it needs Python objects outside the allowlist")
        raise ValueError(f"holds more than tensors and plain values, so the weights-only loader refused it "
                         f"(snipjax never runs code from a checkpoint): {reason}") from None
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        raise ValueError(f"is truncated or corrupted, torch cannot read it ({_first_line(error)}): download "
                         "it again") from None
    if not isinstance(checkpoint, dict):
        raise ValueError(f"holds a {type(checkpoint).__name__}, not the official dict of module state_dicts")
    state_dict = {
        f"{module}.{key}": tensor.detach().float().numpy()
        for module in KNOWN_MODULES if module in checkpoint
        for key, tensor in checkpoint[module].items()
    }
    return state_dict, dict(checkpoint.get("params") or {})


def main(argv: list[str] | None = None, read=read_torch_checkpoint) -> int:
    """The command line; `read` (path → (state_dict, params)) is replaceable for tests."""
    flag_values = flags.FlagValues()
    torch_file = flags.DEFINE_string("torch", None, "FILE.pth: a released SNIP checkpoint.", required=True,
                                     flag_values=flag_values)
    out_dir = flags.DEFINE_string("out", None, "DIR: the export dir to write (new or empty).", required=True,
                                  flag_values=flag_values)
    max_dim = flags.DEFINE_integer("max-dim", None, "The Dmax you expect the file to hold; the conversion fails "
                                   "if it holds another.", flag_values=flag_values)
    parse_flags(flag_values, ["python -m snipjax.convert", *(sys.argv[1:] if argv is None else argv)], __doc__)
    out = pathlib.Path(out_dir.value)
    if out.exists() and not out.is_dir():
        print(f"error: --out {out} is a file; an export dir is a folder: choose a new --out", file=sys.stderr)
        return 1
    if out.is_dir() and any(out.iterdir()):
        print(f"error: {out} already exists and is not empty; choose a new --out", file=sys.stderr)
        return 1
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if not os.access(out.parent, os.W_OK):
            raise PermissionError(errno.EACCES, "permission denied")
    except OSError as error:
        print(f"error: cannot write --out {out}: {error.strerror or error}", file=sys.stderr)
        return 1
    try:
        state_dict, params = read(torch_file.value)
        config, converted = convert_state_dicts(state_dict, params, max_dim.value)
    except ImportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as error:
        print(f"error: {torch_file.value}: {error}", file=sys.stderr)
        return 1
    with atomic_directory(out) as export:  # the export dir appears whole, or not at all
        export_params(str(export), config, converted)
    sr = "decoder" in config.model
    ignored = sorted(_modules(state_dict) - set(SR_MODULES if sr else ENCODER_MODULES))
    n_params = sum(leaf.size for leaf in jax.tree_util.tree_leaves(converted))
    print(f"wrote {out_dir.value}: {'symbolic-regression model' if sr else 'SNIP encoders'}, "
          f"Dmax={config.data.max_dim}, {n_params:,} parameters"
          + (f" (not loaded: {', '.join(ignored)})" if ignored else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
