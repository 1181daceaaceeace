"""The SRBench-style runner: end to end on two formulas, shards, resume, datasets, comparison summaries."""

import csv
import json
import re

import numpy as np
import pytest

from snipjax.tasks.sr import srbench
from test_sr_regressor import tiny_checkpoint  # noqa: F401  (the fixture)


def rows_of(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


@pytest.mark.slow
def test_the_runner_fits_each_problem_once_and_resumes(tiny_checkpoint, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "nguyen.csv"
    arguments = ["--checkpoint", tiny_checkpoint, "--formulas", "classic:Nguyen-", "--max-features", "2",
                 "--points", "60", "--iterations", "1", "--out", str(out)]
    assert srbench.main(arguments + ["--shard", "0/7"]) == 0  # Nguyen-1 and Nguyen-8
    first = rows_of(out)
    assert [row["problem"] for row in first] == ["Nguyen-1", "Nguyen-8"]
    assert set(first[0]) == set(srbench.COLUMNS) and first[0]["optimizer"] == "gwo"
    assert all(-np.inf < float(row["r2_predict"]) <= 1 and int(row["_complexity_predict"]) > 0 for row in first)

    published = tmp_path / "published.csv"
    published.write_text("problem,r2_predict,_complexity_predict,time\nNguyen-1,0.999,7,10\nNguyen-8,0.5,3,20\n"
                         "Nguyen-2,0.1,1,1\n")
    capsys.readouterr()
    assert srbench.main(arguments + ["--shard", "0/7", "--compare", f"paper={published}"]) == 0  # resumes
    assert rows_of(out) == first  # nothing refit
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["ours"]["problems"] == 2
    assert result["paper"] == {"problems": 2, "share_r2_above_0.99": 0.5, "share_r2_above_0.999": 0.0,
                               "median_r2": 0.7495, "mean_complexity": 5.0, "median_seconds": 15.0}

    # Other settings onto the same file: refused before any fit, the difference named, the file untouched.
    before = out.read_bytes()
    for changed, difference in ((["--noise", "0.01"], "noise 0.0 there, 0.01 now"),
                                (["--optimizer", "es"], "optimizer gwo there, es now"),
                                (["--points", "80"], "points 60 there, 80 now")):
        assert srbench.main(arguments + ["--shard", "0/7"] + changed) == 2
        err = capsys.readouterr().err
        assert difference in err and "use another --out" in err and len(err.strip().splitlines()) == 1
    assert out.read_bytes() == before


def test_shards_partition_the_problems():
    items = list(range(23))
    parts = [srbench.shard(items, f"{i}/4") for i in range(4)]
    assert sorted(sum(parts, [])) == items and all(parts)
    with pytest.raises(ValueError, match="i must be in 0..3"):
        srbench.shard(items, "4/4")
    with pytest.raises(ValueError, match="i/n"):
        srbench.shard(items, "half")


def test_noise_is_relative_to_the_rms_of_y_and_only_on_the_fit_part():
    X = np.random.default_rng(0).uniform(size=(4000, 1))
    y = 3.0 + X[:, 0]
    X_fit, X_test, y_fit, y_test = srbench.split(X, y, 0.1, seed=1)
    clean = srbench.split(X, y, 0.0, seed=1)
    assert len(y_fit) == 3000 and len(y_test) == 1000
    np.testing.assert_array_equal(X_fit, clean[0])
    np.testing.assert_array_equal(y_test, clean[3])
    np.testing.assert_allclose(np.std(y_fit - (3.0 + X_fit[:, 0])), 0.1 * np.sqrt(np.mean(y_fit**2)), rtol=0.1)


TABLE = "a,target,b\n" + "".join(f"{i},{2 * i + 1},{i % 3}\n" for i in range(12))


def test_a_dataset_csv_is_read_with_its_target(tiny_checkpoint, tmp_path, capsys):  # noqa: F811
    path = tmp_path / "table.csv"
    path.write_text(TABLE)
    X, y, name = srbench.read_dataset(str(path), None)  # the column named target, wherever it is
    np.testing.assert_array_equal(X[:2], [[0, 0], [1, 1]])
    np.testing.assert_array_equal(y[:2], [1, 3])
    assert name == "target" and srbench.read_dataset(str(path), "b")[2] == "b"
    out = tmp_path / "o.csv"
    arguments = ["--checkpoint", tiny_checkpoint, "--data", str(path), "--optimizer", "none", "--out", str(out)]
    assert srbench.main(arguments) == 0
    [row] = rows_of(out)
    assert row["problem"] == "table.csv" and row["formula"] == ""  # no ground truth, not the target's name
    assert row["source"] == f"{path}:target" and row["points"] == "12"
    capsys.readouterr()
    assert srbench.main(arguments[:-4] + ["--target", "b", "--optimizer", "none", "--out", str(out)]) == 2
    assert f"source {path}:target there, {path}:b now" in capsys.readouterr().err


@pytest.mark.parametrize("content, message", [
    ("", "is empty"),
    ("a,b\n1,2\n", "which column is the target? pass --target NAME (columns: a, b)"),
    ("target\n" + "1\n" * 9, "only the target column"),
    ("a,target\n1,2\n3,4\n", "has 2 rows of data; the runner fits 75% and tests on 25%: give at least 8"),
    (TABLE.replace("3,7,0", "3,,0"), "line 5, column 'target': '' is not a number"),
    (TABLE.replace("3,7,0", "3,seven,0"), "line 5, column 'target': 'seven' is not a number"),
    (TABLE.replace("3,7,0", "3,7"), "line 5 has 2 cells, the header 3"),
    (TABLE.replace("3,7,0", "3,nan,0").replace("5,11,2", "inf,11,2"), "has 2 rows with NaN or infinite values "
                                                                       "(first: line 5)"),
    ("a,target\n" + "".join(f"{i},1\n" for i in range(9)), "the target 'target' is constant"),
])
def test_dataset_mistakes_are_named_with_file_line_and_column(tmp_path, content, message):
    path = tmp_path / "table.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match="^" + re.escape(f"--data {path}")) as error:
        srbench.read_dataset(str(path), None)
    assert message in str(error.value)


@pytest.mark.parametrize("arguments, message", [
    (["--out", "{tmp}/missing/o.csv"], "the folder {tmp}/missing does not exist"),
    (["--out", "{tmp}"], "cannot write --out {tmp}: it is a directory"),
    (["--out", "{tmp}/notes.csv"], "--out {tmp}/notes.csv is not a results CSV (it has no problem or r2_predict"),
    (["--compare", "paper={tmp}/nope.csv"], "no such file {tmp}/nope.csv"),
    (["--compare", "published.csv"], "--compare takes NAME=FILE"),
    (["--formulas", "classic:Ngyuen-"], "matches no problem of the DSO table: use classic:PREFIX with a prefix "
                                        "of Constant-, Jin-"),
    (["--formulas", "feynmann"], "'feynmann' is neither feynman, classic:PREFIX nor an index CSV file"),
    (["--group", "nope"], "--group nope matches no problem of --formulas feynman (its groups: feynman, "
                          "feynman_bonus)"),
    (["--max-features", "0"], "--max-features 0 must be at least 1"),
    (["--formulas", "classic:Nguyen-1", "--max-features", "0"], "--max-features 0 must be at least 1"),
    (["--points", "0"], "--points 0: each formula needs at least 8 points"),
    (["--noise", "-0.1"], "--noise -0.1: the noise level"),
    (["--noise", "nan"], "--noise nan: the noise level"),
    (["--iterations", "-1"], "--iterations -1 must be at least 0"),
    (["--seed", "-1"], "--seed -1 must be at least 0"),
    (["--shard", "0/0"], "--shard 0/0: n, the number of shards, must be at least 1"),
    (["--formulas", "classic:Nguyen-12a", "--shard", "1/2"], "--shard 1/2 holds no problem: the selection has "
                                                           "only 1"),
    (["--checkpoint", "{tmp}/none"], "config.json not found"),
])
def test_mistakes_in_the_arguments_stop_the_run_before_any_fit(tiny_checkpoint, tmp_path, capsys,  # noqa: F811
                                                               arguments, message):
    (tmp_path / "notes.csv").write_text("some,notes\n1,2\n")
    out = str(tmp_path / "o.csv")
    arguments = [a.format(tmp=tmp_path) for a in arguments]
    base = ["--checkpoint", tiny_checkpoint, "--out", out]
    assert srbench.main(base + arguments) == 2
    err = capsys.readouterr().err
    assert message.format(tmp=tmp_path) in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.csv"]  # nothing written


def test_a_failed_write_leaves_the_results_file_as_it_was(tmp_path, monkeypatch):
    out = tmp_path / "o.csv"
    row = dict.fromkeys(srbench.COLUMNS, "1")
    srbench.append_row(str(out), {**row, "problem": "first"})
    before = out.read_bytes()
    monkeypatch.setattr(srbench.csv.DictWriter, "writerows", lambda self, rows: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        srbench.append_row(str(out), {**row, "problem": "second"})
    assert out.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["o.csv"]
