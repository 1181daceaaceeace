"""Conversion of the released SNIP PyTorch checkpoints.

State dicts are built from the documented layout files (tests/fixtures/state_dict_*.tsv) with d_model shrunk
to 32 and fewer layers, filled with random numbers; the converted snipjax model must reproduce a plain-numpy
implementation of the documented official forward pass, written here independently of snipjax.models.
"""

import argparse
import ast
import os
import pathlib

import jax
import numpy as np
import pytest

from snipjax import checkpoint, convert, models
from snipjax.data import pipeline

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
D = 32  # stands for the released 512 (d_model and latent_dim)
N_ENC_LAYERS, N_ENC_HEADS = 2, 4
N_DEC_LAYERS, N_DEC_HEADS = 3, 8
MEMORY_LENGTH = 200  # the SR mapper's 102400 = 200 · 512
BATCH = 4


# ---------------------------------------------------------------- state dicts following the layout files

def layout(tsv: str, shrink: bool = True) -> dict[str, tuple[int, ...]]:
    """Every key of a layout file with its shape; `shrink`: at test sizes (512 → D, 2048 → 4·D, fewer layers)."""
    resize = {512: D, 2048: 4 * D, 200 * 512: MEMORY_LENGTH * D} if shrink else {}
    shapes = {}
    for line in (FIXTURES / tsv).read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, shape, *repeat = line.split("\t")
        n_layers = N_DEC_LAYERS if key.startswith("decoder.") else N_ENC_LAYERS
        if not shrink:
            n_layers = int(repeat[0].strip("(x)")) if repeat else 1
        indices = range(n_layers) if repeat else [0]
        for i in indices:
            shapes[key.replace("{i}", str(i))] = tuple(resize.get(n, n) for n in ast.literal_eval(shape))
    return shapes


def random_state_dict(tsv: str, seed: int = 0) -> dict[str, np.ndarray]:
    """Random weights at the official initial scales, with non-trivial LayerNorm parameters."""
    rng = np.random.default_rng(seed)
    state_dict = {}
    for key, shape in layout(tsv).items():
        if key.endswith("embeddings.weight"):
            value = rng.normal(0, shape[1] ** -0.5, shape)
        elif ".layer_norm" in key:
            value = (1.0 if key.endswith("weight") else 0.0) + 0.1 * rng.normal(size=shape)
        elif key.endswith("weight"):
            value = rng.uniform(-1, 1, shape) * shape[1] ** -0.5
        else:
            value = rng.uniform(-0.1, 0.1, shape)
        state_dict[key] = value.astype(np.float32)
    return state_dict


def training_params(max_dim: int) -> dict:
    """A checkpoint's `params` entry (the official argument names) at test sizes."""
    return {"max_input_dimension": max_dim, "enc_emb_dim": D, "dec_emb_dim": D, "latent_dim": D,
            "emb_emb_dim": 64, "n_enc_layers": N_ENC_LAYERS, "n_enc_heads": N_ENC_HEADS,
            "n_dec_layers": N_DEC_LAYERS, "n_dec_heads": N_DEC_HEADS, "enc_positional_embeddings": "learnable",
            "normalize_y": max_dim == 1, "clip_temperature": 1.0, "n_emb_layers": 1, "norm_attention": False}


def real_batch(max_dim: int) -> dict[str, np.ndarray]:
    config = argparse.Namespace(max_dim=max_dim, normalize_y=max_dim == 1, n_points=200, max_len=200)
    return pipeline.make_batch(config, 0, np.arange(BATCH))


# ---------------------------------------------------------------- the documented official forward pass in numpy

def layer_norm(sd, prefix, x):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-12) * sd[f"{prefix}.weight"] + sd[f"{prefix}.bias"]


def linear(sd, prefix, x):
    return x @ sd[f"{prefix}.weight"].astype(np.float64).T + sd[f"{prefix}.bias"]


def softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def relu(x):
    return np.maximum(x, 0)


def attention(sd, prefix, x, kv, n_heads, allowed):
    """allowed: [B, Tq, Tk] bool or None (every key)."""
    (b, tq, d), tk = x.shape, kv.shape[1]
    head = d // n_heads
    q = linear(sd, f"{prefix}.q_lin", x).reshape(b, tq, n_heads, head).transpose(0, 2, 1, 3) / np.sqrt(head)
    k = linear(sd, f"{prefix}.k_lin", kv).reshape(b, tk, n_heads, head).transpose(0, 2, 1, 3)
    v = linear(sd, f"{prefix}.v_lin", kv).reshape(b, tk, n_heads, head).transpose(0, 2, 1, 3)
    scores = q @ k.transpose(0, 1, 3, 2)
    if allowed is not None:
        scores = np.where(allowed[:, None], scores, -np.inf)
    context = (softmax(scores, -1) @ v).transpose(0, 2, 1, 3).reshape(b, tq, d)
    return linear(sd, f"{prefix}.out_lin", context)


def transformer(sd, name, x, lengths, n_layers, n_heads, causal=False, memory=None):
    b, t, _ = x.shape
    x = layer_norm(sd, f"{name}.layer_norm_emb", x + sd[f"{name}.position_embeddings.weight"][:t])
    mask = np.arange(t)[None, :] < lengths[:, None]
    if causal:  # the official causal mask alone (later padding never reaches a real query)
        allowed = np.broadcast_to(np.tril(np.ones((t, t), bool)), (b, t, t))
    else:
        allowed = np.broadcast_to(mask[:, None, :], (b, t, t))
    x = x * mask[..., None]
    for i in range(n_layers):
        x = layer_norm(sd, f"{name}.layer_norm1.{i}", x + attention(sd, f"{name}.attentions.{i}", x, x, n_heads,
                                                                     allowed))
        if memory is not None:
            x = layer_norm(sd, f"{name}.layer_norm15.{i}",
                           x + attention(sd, f"{name}.encoder_attn.{i}", x, memory, n_heads, None))
        ffn = linear(sd, f"{name}.ffns.{i}.lin2", relu(linear(sd, f"{name}.ffns.{i}.lin1", x)))
        x = layer_norm(sd, f"{name}.layer_norm2.{i}", x + ffn) * mask[..., None]
    return x


def pooled_latent(sd, name, x, lengths):
    hidden = transformer(sd, name, x, lengths, N_ENC_LAYERS, N_ENC_HEADS)
    weights = softmax(linear(sd, f"{name}.glob_attn_module.0", hidden), axis=1)  # over all positions
    return linear(sd, f"{name}.bottleneck_module.fc1", (weights * hidden).sum(1))


def numpy_numeric_latent(sd, points):
    b, n, _ = points.shape
    tokens = sd["embedder.embeddings.weight"].astype(np.float64)[points].reshape(b, n, -1)
    x = linear(sd, "embedder.fc", relu(linear(sd, "embedder.hidden_layers.0", tokens)))
    return pooled_latent(sd, "encoder_y", x, np.full(b, n))


def numpy_symbolic_latent(sd, symbols, lengths):
    x = sd["encoder_f.embeddings.weight"].astype(np.float64)[symbols]
    return pooled_latent(sd, "encoder_f", x, lengths)


def numpy_decoder_logits(sd, z, tokens, lengths):
    hidden = relu(linear(sd, "mapper.linear1", z)).reshape(len(z), MEMORY_LENGTH, D)
    memory = linear(sd, "mapper.linear2", hidden)
    x = sd["decoder.embeddings.weight"].astype(np.float64)[tokens]
    h = transformer(sd, "decoder", x, lengths, N_DEC_LAYERS, N_DEC_HEADS, causal=True, memory=memory)
    return linear(sd, "decoder.proj", h)


def assert_close(ours, reference):
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-5 * np.abs(reference).max())


# ---------------------------------------------------------------- conversion matches the official forward pass

@pytest.mark.parametrize("max_dim,tsv", [(1, "state_dict_dmax1.tsv"), (10, "state_dict_dmax10.tsv")])
def test_converted_encoders_match_official_forward(max_dim, tsv):
    sd = random_state_dict(tsv)
    config, params = convert.convert_state_dicts(sd, training_params(max_dim))
    assert config.data.max_dim == max_dim and config.model.n_layers == N_ENC_LAYERS
    assert config.model.n_heads == N_ENC_HEADS and config.data.normalize_y == (max_dim == 1)
    assert "decoder" not in config.model
    batch = real_batch(max_dim)
    model = models.make_snip(config)
    out = jax.jit(model.apply)({"params": params}, batch["points"], batch["symbols"], batch["symbol_len"])
    assert_close(out["z_numeric"], numpy_numeric_latent(sd, batch["points"]))
    assert_close(out["z_symbolic"], numpy_symbolic_latent(sd, batch["symbols"], batch["symbol_len"]))


@pytest.mark.parametrize("tied", [True, False], ids=["share_inout_emb", "separate_proj"])
def test_converted_sr_model_matches_official_next_token_logits(tied):
    sd = random_state_dict("state_dict_sr_dmax10.tsv")
    if tied:  # the official decoder (share_inout_emb=True): torch saves one tensor under both names
        sd["decoder.proj.weight"] = sd["decoder.embeddings.weight"]
    config, params = convert.convert_state_dicts(sd, training_params(10))
    assert dict(config.model.decoder) == {"n_layers": N_DEC_LAYERS, "n_heads": N_DEC_HEADS,
                                          "memory_length": MEMORY_LENGTH, "tie_embeddings": tied}
    assert ("kernel" in params["decoder"]["proj"]) == (not tied)
    batch = real_batch(10)
    logits = models.make_next_token_logits(config)(params, batch["points"], batch["symbols"], batch["symbol_len"])
    z = numpy_numeric_latent(sd, batch["points"])
    reference = numpy_decoder_logits(sd, z, batch["symbols"], batch["symbol_len"])
    assert logits.shape == (BATCH, 200, 10292)
    assert_close(logits, reference)


@pytest.mark.parametrize("tsv,max_dim,n_dec_layers,loaded_modules", [
    ("state_dict_dmax1.tsv", 1, None, ("embedder", "encoder_y", "encoder_f")),
    ("state_dict_dmax10.tsv", 10, None, ("embedder", "encoder_y", "encoder_f")),
    ("state_dict_sr_dmax10.tsv", 10, 16, ("embedder", "encoder_y", "mapper", "decoder")),
])
def test_released_layouts_convert_at_full_size(tsv, max_dim, n_dec_layers, loaded_modules):
    shapes = layout(tsv, shrink=False)
    # Zero-stride arrays: the real shapes without allocating the real sizes.
    sd = {key: np.broadcast_to(np.float32(0), shape) for key, shape in shapes.items()}
    # Only Dmax given: widths come from the weight shapes, layer counts from the keys, heads from the defaults.
    config, converted = convert.convert_state_dicts(sd, {"max_input_dimension": max_dim})
    assert (config.model.d_model, config.model.n_layers, config.model.n_heads) == (512, 8, 16)
    assert config.model.latent_dim == 512
    if n_dec_layers:
        assert config.model.decoder.n_layers == n_dec_layers
    # Every loaded official parameter lands in snipjax, except the encoders' unused z_projection and the tied
    # output weight (equal to the decoder's embeddings here, as in the release), which is not a copy.
    tied = {"decoder.proj.weight"} if n_dec_layers and config.model.decoder.tie_embeddings else set()
    official = sum(np.prod(shape) for key, shape in shapes.items()
                   if key.partition(".")[0] in loaded_modules and ".z_projection." not in key and key not in tied)
    assert sum(leaf.size for leaf in jax.tree_util.tree_leaves(converted)) == official


def test_module_prefix_and_unused_modules_are_handled():
    sd = random_state_dict("state_dict_dmax1.tsv")
    prefixed = {f"{k.partition('.')[0]}.module.{k.partition('.')[2]}": v for k, v in sd.items()}
    _, params = convert.convert_state_dicts(prefixed, training_params(1))
    _, reference = convert.convert_state_dicts(sd, training_params(1))
    jax.tree_util.tree_map(np.testing.assert_array_equal, params, reference)
    assert set(params) == {"numeric_encoder", "symbolic_encoder"}  # decoder, regressor, classifier skipped


def test_torch_key_names_follow_the_official_layout():
    assert convert.torch_key(("numeric_encoder", "embedder", "hidden", "kernel")) == "embedder.hidden_layers.0.weight"
    assert convert.torch_key(("numeric_encoder", "pool", "score", "bias")) == "encoder_y.glob_attn_module.0.bias"
    assert (convert.torch_key(("decoder", "transformer", "block_11", "layer_norm_cross", "scale"))
            == "decoder.layer_norm15.11.weight")
    assert (convert.torch_key(("symbolic_encoder", "transformer", "block_3", "ffn", "lin2", "kernel"))
            == "encoder_f.ffns.3.lin2.weight")


# ---------------------------------------------------------------- errors name the problem

def test_dmax_mismatch_says_which_dmax_the_file_holds():
    sd = random_state_dict("state_dict_dmax10.tsv")
    with pytest.raises(ValueError, match=r"Dmax=10 .*2112 wide.*--max-dim 10"):
        convert.convert_state_dicts(sd, training_params(10), max_dim=1)
    with pytest.raises(ValueError, match=r"max_input_dimension=1, but the embedder weights are for Dmax=10"):
        convert.convert_state_dicts(sd, training_params(1))


@pytest.mark.parametrize("edit,message", [
    (lambda sd: [sd.pop(k) for k in list(sd) if k.startswith("encoder_f.")], r"lacks module\(s\) \['encoder_f'\]"),
    (lambda sd: sd.pop("encoder_f.layer_norm2.1.bias"), r"missing keys: encoder_f\.layer_norm2\.1\.bias"),
    (lambda sd: sd.update({"encoder_y.attentions.2.q_lin.weight": np.zeros((D, D))}),
     r"unexpected keys: encoder_y\.attentions\.2\.q_lin\.weight"),
    (lambda sd: sd.update({"encoder_y.ffns.0.lin1.weight": np.zeros((D, D))}),
     r"encoder_y\.ffns\.0\.lin1\.weight: file \(32, 32\), expected \(128, 32\)"),
    (lambda sd: sd.update({"predictor.fc.weight": np.zeros(1)}), r"unexpected modules \['predictor'\]"),
])
def test_malformed_state_dicts_raise_naming_the_key(edit, message):
    sd = random_state_dict("state_dict_dmax1.tsv")
    edit(sd)
    with pytest.raises(ValueError, match=message):
        convert.convert_state_dicts(sd, training_params(1))


def test_unsupported_official_options_are_rejected():
    params = dict(training_params(1), norm_attention=True)
    with pytest.raises(ValueError, match="norm_attention=True"):
        convert.convert_state_dicts(random_state_dict("state_dict_dmax1.tsv"), params)


# ---------------------------------------------------------------- the command line

def test_command_without_torch_says_how_to_install(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(__import__("sys").modules, "torch", None)  # makes `import torch` fail
    (tmp_path / "x.pth").write_bytes(b"PK\x03\x04 a zip archive")
    assert convert.main(["--torch", str(tmp_path / "x.pth"), "--out", str(tmp_path / "out")]) == 2
    assert 'pip install "snipjax[torch]"' in capsys.readouterr().err


def test_export_round_trip(tmp_path):
    config, params = convert.convert_state_dicts(random_state_dict("state_dict_dmax1.tsv"), training_params(1))
    checkpoint.export_params(str(tmp_path / "export"), config, params)
    loaded_config, loaded = checkpoint.load_params(str(tmp_path / "export"))
    assert loaded_config.to_dict() == config.to_dict()
    jax.tree_util.tree_map(np.testing.assert_array_equal, loaded, params)


def _save_release(torch, path, sd, params):
    modules = {}
    for key, value in sd.items():
        module, _, rest = key.partition(".")
        modules.setdefault(module, {})[f"module.{rest}"] = torch.from_numpy(value)
    torch.save({"epoch": 3, "n_total_iter": 3000, "best_metrics": {}, "best_stopping_criterion": None,
                "params": params, **modules}, path)


def test_pth_round_trip_with_torch(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    sd = random_state_dict("state_dict_sr_dmax10.tsv")
    _save_release(torch, tmp_path / "snip-e2e-sr.pth", sd, training_params(10))
    out = tmp_path / "converted"
    assert convert.main(["--torch", str(tmp_path / "snip-e2e-sr.pth"), "--out", str(out), "--max-dim", "10"]) == 0
    assert "symbolic-regression model, Dmax=10" in capsys.readouterr().out
    config, params = checkpoint.load_params(str(out))
    expected_config, expected = convert.convert_state_dicts(sd, training_params(10))
    assert config.to_dict() == expected_config.to_dict()
    jax.tree_util.tree_map(np.testing.assert_array_equal, params, expected)

    # A file that needs more than tensors and plain values is refused by the weights-only loader.
    _save_release(torch, tmp_path / "unsafe.pth", sd, argparse.Namespace(**training_params(10)))
    assert convert.main(["--torch", str(tmp_path / "unsafe.pth"), "--out", str(tmp_path / "unsafe")]) == 1
    err = capsys.readouterr().err
    assert "weights-only loader refused" in err and "argparse.Namespace" in err
    assert "weights_only=False" not in err and len(err.strip().splitlines()) == 1

    # A download cut short: one line naming the file and the problem.
    (tmp_path / "cut.pth").write_bytes((tmp_path / "snip-e2e-sr.pth").read_bytes()[:5000])
    assert convert.main(["--torch", str(tmp_path / "cut.pth"), "--out", str(tmp_path / "cut")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / 'cut.pth'}: is truncated or corrupted") and len(err.splitlines()) == 1


class _WindowsPath:
    """Pickles as the pathlib.WindowsPath a Windows run of the official trainer stores (Linux cannot make one)."""

    def __reduce__(self):
        return pathlib.WindowsPath, ("C:\\runs\\snip", "evals_all")


def test_a_checkpoint_saved_as_the_official_trainer_does_converts(tmp_path, capsys):
    """Trainer.save_checkpoint stores params.__dict__ (with eval_dump_path = Path(dump_path) / "evals_all"),
    each module's state_dict and each optimizer's state_dict beside them."""
    torch = pytest.importorskip("torch")
    sd = random_state_dict("state_dict_dmax1.tsv")
    params = {**training_params(1), "dump_path": "/runs/snip", "eval_dump_path": pathlib.Path("/runs/snip/evals_all"),
              "reload_checkpoint": "", "windows_dump_path": _WindowsPath()}
    data = {"epoch": 3, "n_total_iter": 3000, "best_metrics": {"valid_loss": 1.5}, "best_stopping_criterion": None,
            "params": params}
    for key, value in sd.items():
        module, _, rest = key.partition(".")
        data.setdefault(module, {})[rest] = torch.from_numpy(value)
    data["model_optimizer"] = {"state": {0: {"step": 3000, "exp_avg": torch.zeros(4), "exp_avg_sq": torch.ones(4)}},
                               "param_groups": [{"lr": 4e-5, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0,
                                                 "amsgrad": False, "warmup_updates": 10000, "params": [0]}]}
    torch.save(data, tmp_path / "official.pth")
    assert convert.main(["--torch", str(tmp_path / "official.pth"), "--out", str(tmp_path / "out")]) == 0
    assert "SNIP encoders, Dmax=1" in capsys.readouterr().out
    config, loaded = checkpoint.load_params(str(tmp_path / "out"))
    expected_config, expected = convert.convert_state_dicts(sd, training_params(1))
    assert config.to_dict() == expected_config.to_dict()
    jax.tree_util.tree_map(np.testing.assert_array_equal, loaded, expected)
    _, read_params = convert.read_torch_checkpoint(str(tmp_path / "official.pth"))
    assert read_params["eval_dump_path"] == pathlib.PurePosixPath("/runs/snip/evals_all")
    assert read_params["windows_dump_path"] == pathlib.PureWindowsPath("C:/runs/snip/evals_all")


class _RunsCode:
    """A pickle that would run a shell command when loaded by a loader that allows it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("payload, named", [
    (lambda marker: _RunsCode(marker), "system"),
    (lambda marker: {"path": pathlib.Path("/x"), "code": _RunsCode(marker)}, "system"),
    (lambda marker: argparse.Namespace(dump_path=pathlib.Path("/x")), "argparse.Namespace"),
])
def test_code_in_a_checkpoint_never_runs_even_beside_paths(tmp_path, capsys, payload, named):
    torch = pytest.importorskip("torch")
    marker = tmp_path / "ran"
    sd = random_state_dict("state_dict_dmax1.tsv")
    _save_release(torch, tmp_path / "evil.pth", sd, {**training_params(1), "extra": payload(marker)})
    assert convert.main(["--torch", str(tmp_path / "evil.pth"), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "weights-only loader refused" in err and named in err and len(err.strip().splitlines()) == 1
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_out_that_is_a_file_or_a_full_folder_is_refused_and_kept(tmp_path, capsys):
    sd = random_state_dict("state_dict_dmax1.tsv")
    read = lambda path: (sd, training_params(1))  # noqa: E731
    (tmp_path / "file").write_text("mine")
    assert convert.main(["--torch", "x.pth", "--out", str(tmp_path / "file")], read=read) == 1
    assert "is a file; an export dir is a folder" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    assert convert.main(["--torch", "x.pth", "--out", str(tmp_path / "full")], read=read) == 1
    assert "already exists and is not empty" in capsys.readouterr().err
    assert (tmp_path / "file").read_text() == "mine" and os.listdir(tmp_path / "full") == ["notes.txt"]
    (tmp_path / "empty").mkdir()  # an empty folder is filled
    assert convert.main(["--torch", "x.pth", "--out", str(tmp_path / "empty")], read=read) == 0
    assert sorted(os.listdir(tmp_path / "empty")) == ["config.json", "params"]


def test_a_failed_export_leaves_nothing_behind(tmp_path, monkeypatch):
    sd = random_state_dict("state_dict_dmax1.tsv")

    def fail(directory, config, params):
        (pathlib.Path(directory) / "config.json").write_text("{}")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(convert, "export_params", fail)
    with pytest.raises(OSError, match="No space"):
        convert.main(["--torch", "x.pth", "--out", str(tmp_path / "out")], read=lambda path: (sd, training_params(1)))
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    (b"", "is empty (0 bytes)"),
    (b"<!DOCTYPE html><html>Google Drive - Virus scan warning", "starts with the text '<!DOCTYPE html>"),
    (bytes(range(1, 60)), "unknown format"),
])
def test_files_that_are_not_checkpoints_get_one_line(tmp_path, capsys, content, message):
    path = tmp_path / "snip.pth"
    if content is not None:
        path.write_bytes(content)
    assert convert.main(["--torch", str(path), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: ") and message in err and len(err.strip().splitlines()) == 1


def test_unwritable_out_is_named(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    sd = random_state_dict("state_dict_dmax1.tsv")
    convert_args = ["--torch", "ignored.pth", "--out", str(blocker / "export")]
    assert convert.main(convert_args, read=lambda path: (sd, training_params(1))) == 1
    assert f"cannot write --out {blocker / 'export'}" in capsys.readouterr().err
