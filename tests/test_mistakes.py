"""What a user's mistakes get from the training loop, config files and the data command: one line naming the
problem and the fix, a non-zero status, and nothing they had lost or overwritten."""

import json
import os
import re

import numpy as np
import pytest
from absl import flags
from ml_collections import config_flags

from snipjax import loop
from snipjax.config import parse_flags
from snipjax.data import __main__ as data_cli
from training_helpers import least_squares_task, small_config


def least_squares(config, mesh):
    return least_squares_task()


def loop_config(**overrides):
    return small_config(**{"total_steps": 4, "checkpoint_every": 2, "eval_every": 2, **overrides})


@pytest.mark.parametrize("key, value", [
    ("batch_size", 0), ("batch_size", -8), ("eval_size", 0), ("total_steps", 0), ("log_every", 0),
    ("eval_every", -1), ("checkpoint_every", 0), ("keep_checkpoints", 0),
])
def test_loop_counts_that_are_not_positive_are_named(tmp_path, key, value):
    with pytest.raises(ValueError, match=rf"^config\.{key}={value} must be a positive integer: set --config\.{key}"):
        loop.run(least_squares, loop_config(**{key: value}), str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_a_workdir_that_is_a_file_is_named_and_kept(tmp_path):
    (tmp_path / "run").write_text("my notes")
    with pytest.raises(ValueError, match="--workdir .*run is a file; a run writes a folder"):
        loop.run(least_squares, loop_config(), str(tmp_path / "run"))
    assert (tmp_path / "run").read_text() == "my notes"


def test_total_steps_below_the_checkpoint_is_refused_and_the_config_kept(tmp_path):
    workdir = str(tmp_path)
    loop.run(least_squares, loop_config(), workdir)
    stored = (tmp_path / "config.json").read_bytes()
    with pytest.raises(ValueError, match=r"holds a checkpoint at step 4, past total_steps=2: pass "
                                         r"--config.total_steps=4 or more"):
        loop.run(least_squares, loop_config(total_steps=2), workdir)
    assert (tmp_path / "config.json").read_bytes() == stored


def test_a_damaged_newest_checkpoint_resumes_from_the_one_before(tmp_path):
    workdir = str(tmp_path)
    loop.run(least_squares, loop_config(), workdir)
    metadata = tmp_path / "checkpoints" / "4" / "state" / "_METADATA"
    metadata.write_bytes(metadata.read_bytes()[:20])  # a copy cut short
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 5, "spl')  # and the line a killed run was writing
    evaluation = loop.run(least_squares, loop_config(total_steps=6), workdir)
    assert np.isfinite(evaluation["loss"])
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["2", "4", "4.damaged", "6"]
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "train"] == [1, 2, 3, 4, 5, 6]  # 3, 4 once; no torn line


def parse(argv, capsys):
    """parse_flags on a fresh flag set with a --config file flag; returns (exit status, stderr)."""
    flag_values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, "config file", flag_values=flag_values)
    with pytest.raises(SystemExit) as stop:
        parse_flags(flag_values, ["prog", *argv])
    return stop.value.code, capsys.readouterr().err


@pytest.mark.parametrize("source, message", [
    ("def get_config(:\n    return 1\n", "line 1: SyntaxError: invalid syntax"),
    ("from snipjax.config import default_confi\n", "line 1: ImportError: cannot import name 'default_confi'"),
    ("def get_config():\n    return undefined_name\n", "line 2: NameError: name 'undefined_name' is not defined"),
])
def test_a_config_file_that_fails_gets_one_line_naming_file_and_line(tmp_path, capsys, source, message):
    path = tmp_path / "broken.py"
    path.write_text(source)
    status, err = parse([f"--config={path}"], capsys)
    assert status == 2 and err.startswith(f"error: {path} {message}") and len(err.strip().splitlines()) == 1


def test_a_data_run_that_fails_leaves_the_existing_file(tmp_path, monkeypatch, capsys):
    out = tmp_path / "samples.jsonl"
    out.write_text("what I had\n")
    real = data_cli.generate_sample

    def fails_at_the_third(spec, seed, index):
        if index == 2:
            raise RuntimeError("no valid expression of 59 variables fits max_len=200 tokens")
        return real(spec, seed, index)

    monkeypatch.setattr(data_cli, "generate_sample", fails_at_the_third)
    assert data_cli.main(["--n", "5", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err == "error: no valid expression of 59 variables fits max_len=200 tokens\n"
    assert out.read_text() == "what I had\n" and os.listdir(tmp_path) == ["samples.jsonl"]
    assert data_cli.main(["--n", "2", "--out", str(out)]) == 0  # a run that succeeds replaces it whole
    assert [json.loads(line)["index"] for line in out.read_text().splitlines()] == [0, 1]


@pytest.mark.parametrize("arguments, message", [
    (["--n", "0"], "--max-dim and --n must be >= 1"),
    (["--max-dim", "-1"], "--max-dim and --n must be >= 1"),
    (["--out", "{tmp}"], "cannot write --out {tmp}: it is a directory"),
    (["--out", "{tmp}/no/samples.jsonl"], "the folder {tmp}/no does not exist"),
])
def test_data_command_mistakes_get_one_line(tmp_path, capsys, arguments, message):
    arguments = [a.format(tmp=tmp_path) for a in arguments]
    try:
        status = data_cli.main(arguments)
    except SystemExit as stop:  # the flag parser's own errors
        status = stop.code
    assert status in (1, 2)
    assert message.format(tmp=tmp_path) in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("key, value, message", [
    ("seed", -1, "config.seed=-1 must be an integer >= 0"),
    ("data.n_points", 0, "data.n_points=0 must be an integer >= 1"),
    ("data.max_len", 0, "data.max_len=0 must be an integer >= 3"),
])
def test_seed_and_data_sizes_out_of_range_are_named(tmp_path, key, value, message):
    from snipjax.tasks.pretrain import pretraining_task

    with pytest.raises(ValueError, match=re.escape(message)):
        loop.run(pretraining_task, loop_config(**{key: value}), str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_a_tool_command_line_has_help_and_refuses_unknown_flags_in_one_line(capsys):
    with pytest.raises(SystemExit) as stop:
        data_cli.main(["--help"])
    assert stop.value.code == 0 and "--max-dim" in capsys.readouterr().out
    with pytest.raises(SystemExit) as stop:
        data_cli.main(["--max_dimm", "2"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err == "error: Unknown command line flag 'max_dimm'. Did you mean: max-dim ?\n"
