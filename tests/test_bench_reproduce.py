"""results/bench/reproduce.py: the cases it runs per backend and the table it writes from recorded lines."""

import json

from script_helpers import ROOT, load_script

reproduce = load_script("results/bench/reproduce.py", "bench_reproduce")


def test_an_accelerator_runs_the_paper_configs_in_both_dtypes_fed_by_all_cores_but_one():
    cases = reproduce.train_cases("gpu", cores=16)
    assert sorted(cases) == ["train paper 1-D bfloat16", "train paper 1-D float32", "train paper 10-D bfloat16",
                             "train paper 10-D float32"]
    for name, args in cases.items():
        config = next(a.split("=", 1)[1] for a in args if a.startswith("--config="))
        assert (ROOT / config).exists()
        assert f"--config.model.dtype={name.split()[-1]}" in args and "--config.data.workers=15" in args
    assert reproduce.train_cases("cpu", cores=2) == reproduce.CPU_TRAIN_CASES
    assert reproduce.machine_tag("gpu", "NVIDIA H100 80GB HBM3", 16) == "nvidia-h100-80gb-hbm3"
    assert reproduce.machine_tag("cpu", "cpu", 2) == "cpu2"


def test_the_table_shows_the_data_share_of_a_step_and_mfu(tmp_path, monkeypatch):
    monkeypatch.setattr(reproduce, "HERE", tmp_path)
    machine = {"date": "2026-11-28", "processor": "x86_64", "cpu_count": 16, "device_kind": "NVIDIA H100"}
    rows = [{"name": "data dmax10", "workers": 16, "samples_per_s": 20000.0, "samples_per_s_per_core": 1250.0,
             "command": "python -m snipjax.bench data", "machine": machine},
            {"name": "train paper 1-D bfloat16", "samples_per_s": 2000.0, "step_ms": 95.0, "data_ms": 5.0,
             "mfu": 0.4567, "config": {"data_workers": 15}, "command": "python -m snipjax.bench train",
             "profile": {"steps": 2, "symbol_length": 64, "op_ms": 300.0, "trace": "/tmp/t.json.gz",
                         "shares": {"gemm": 0.75, "loop_fusion": 0.25}},
             "machine": machine}]
    (tmp_path / "h100.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = reproduce.write_report("h100")
    assert "# Benchmarks on NVIDIA H100, x86_64, 16 cores" in text
    assert "| train paper 1-D bfloat16 | 15 | 2000.0 |  | 95.0 | 5.0% | 45.7% |" in text
    assert "| data dmax10 | 16 | 20000.0 | 1250.0 |  |  |  |" in text
    assert "symbols cut to 64" in text and "150 ms of op time per step" in text and "| gemm | 75.0% |" in text
