"""Time snipjax and the official PyTorch SNIP code back to back on this machine, so speed claims are ratios.

  python results/bench/side_by_side.py --official /work/scratch/official \
      --official-python /work/scratch/official-venv/bin/python [--seconds 21] [--rounds 3] [--steps 3] \
      [--out results/bench/side_by_side.jsonl]

`--official` is a checkout of deep-symbolic-mathematics/Multimodal-Math-Pretraining, `--official-python` a
Python with its requirements (torch CPU build, numpy<2, ...). Cases, each run by both codes one after the other:

- data, one core, batches of 64: snipjax's BatchProducer with one worker; the official DataLoader
  (num_workers 0, as train.py) plus what Trainer.enc_dec_step does to a batch before the first layer (float
  tokens and equation ids, padded), run by a driver written to a temporary folder. Dmax 1 with min-max y and
  Dmax 10 with raw y, as the released models. The codes take turns (--rounds), each measuring for
  --seconds / --rounds a turn, so that a drift of the machine's speed falls on both alike.
- train, batch 64, data generation included: `python -m snipjax.bench train` with one data worker, and the
  official `train.py --cpu True --print_freq 1` (OpenMP threads waiting passively: see PASSIVE_WAIT), whose
  per-step equations/s lines are averaged after the first (warm-up) step. The paper's 1-D model (8 layers,
  d 512, 16 heads, latent 512) and d 256 / 4 layers / 8 heads / latent 256.

Prints one JSON line per case (both samples/s and the ratio snipjax/official) and writes them to --out with
the machine, the versions and the date.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from snipjax.bench.data import DATA_CASES, bench_data
from snipjax.data.files import atomic_write, write_text

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

BATCH_SIZE = 64

# snipjax's `bench train` flags and the official train.py flags of the same model (the official FFN is 4 d).
TRAIN_CASES = {
    "train paper 1-D": (
        ["--config=configs/snip_1d_paper.py"],
        ["--max_input_dimension", "1", "--normalize_y", "True", "--latent_dim", "512"],
    ),
    "train d256 4 layers": (
        ["--config=configs/snip_1d_paper.py", "--config.model.d_model=256", "--config.model.n_layers=4",
         "--config.model.n_heads=8", "--config.model.d_ff=1024", "--config.model.latent_dim=256"],
        ["--max_input_dimension", "1", "--normalize_y", "True", "--latent_dim", "256",
         "--enc_emb_dim", "256", "--n_enc_layers", "4", "--n_enc_heads", "8"],
    ),
}

# Run by the official Python with the official checkout on sys.path; prints {"samples", "seconds"}.
DATA_DRIVER = '''
import json, sys, time
official, max_dim, normalize_y, seconds, batch_size = sys.argv[1:6]
sys.path.insert(0, official)
import numpy as np
from parsers import get_parser
from snip.envs import build_env
from snip.model.embedders import LinearPointEmbedder
from snip.slurm import init_distributed_mode

np.seterr(all="raise")  # as train.py: floating-point errors reject an expression
params = get_parser().parse_args(["--cpu", "True", "--max_input_dimension", max_dim,
                                  "--normalize_y", normalize_y, "--batch_size", batch_size])
init_distributed_mode(params)
env = build_env(params)
embedder = LinearPointEmbedder(params, env)
batches = iter(env.create_train_iterator("functions", None, params))


def prepare_batch():
    """Trainer.enc_dec_step up to the first layer: the batch, its points as padded float-token ids, its
    expressions as padded equation ids."""
    samples, _ = next(batches)
    points = [[[x, y] for x, y in zip(xs, ys)] for xs, ys in zip(samples["x_to_fit"], samples["y_to_fit"])]
    embedder.batch(embedder.encode(points))
    env.batch_equations(env.word_to_idx(samples["tree_encoded"], float_input=False))


prepare_batch()
start, samples = time.perf_counter(), 0
while time.perf_counter() - start < float(seconds):
    prepare_batch()
    samples += int(batch_size)
print(json.dumps({"samples": samples, "seconds": time.perf_counter() - start}))
'''

# One step's line of the official log: "... - <iteration> - <rate> equations/s - ..." (Trainer.print_stats).
STEP_LINE = re.compile(r"-\s+(\d+) -\s+([0-9.]+) equations/s - ")

ONE_CORE = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
# torch's OpenMP threads busy-wait at each op's barrier: with another job on both cores of a 2-core machine, the
# official step of a tiny model ran 20x slower (3.4 vs 68 samples/s) than with one thread or passive waiting,
# while snipjax's XLA step took about twice as long, as sharing the cores should. --omp-default-wait keeps
# torch's default, for an idle machine.
PASSIVE_WAIT = {"OMP_WAIT_POLICY": "PASSIVE"}


def parse_official_train_log(log: str, warmup_steps: int = 1) -> dict:
    """Samples/s of the official train.py from its log with --print_freq 1. Each step line gives the samples
    since the previous line over the wall time since it, data generation included; the first lines also time
    the set-up and are dropped. Steps hold equal batches, so the rate over the kept time is their harmonic
    mean."""
    steps = [(int(iteration), float(rate)) for iteration, rate in STEP_LINE.findall(log)]
    timed = steps[warmup_steps:]
    if not timed:
        raise ValueError(f"no step line after {warmup_steps} warm-up step(s) in the official log")
    rates = [rate for _, rate in timed]
    return {"steps": len(timed), "iterations": [iteration for iteration, _ in timed],
            "samples_per_s": len(rates) / sum(1 / rate for rate in rates)}


def _last_json(stdout: str) -> dict:
    return json.loads([line for line in stdout.splitlines() if line.startswith("{")][-1])


def _run(command: list[str], env: dict | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return result


def official_data(official: Path, python: str, max_dim: int, normalize_y: bool, seconds: float,
                  scratch: Path) -> dict:
    driver = scratch / "official_data_driver.py"
    write_text(driver, DATA_DRIVER)
    args = [str(official), str(max_dim), str(normalize_y), str(seconds), str(BATCH_SIZE)]
    result = _last_json(_run([python, str(driver), *args], env=ONE_CORE, cwd=scratch).stdout)
    return {"samples_per_s": result["samples"] / result["seconds"],
            "command": f"python <driver: env.create_train_iterator + embedder.encode/batch + "
                       f"env.batch_equations> {' '.join(args[1:])}"}


def official_train(official: Path, python: str, flags: list[str], steps: int, scratch: Path, env: dict) -> dict:
    warmup = 1
    args = ["--cpu", "True", "--loss_type", "CLIP", "--lr", "4e-5", "--batch_size", str(BATCH_SIZE), *flags,
            "--n_steps_per_epoch", str(warmup + steps), "--max_epoch", "1", "--print_freq", "1",
            "--dump_path", str(scratch / "dump"), "--exp_name", "bench"]
    # The official logger writes to stderr (logging's console handler) and to <dump>/train.log.
    log = _run([python, str(official / "train.py"), *args], env=env, cwd=scratch).stderr
    return {**parse_official_train_log(log, warmup), "env": env,
            "command": " ".join(["python train.py", *args])}


def snipjax_train(flags: list[str], steps: int) -> dict:
    args = ["train", *flags, f"--config.batch_size={BATCH_SIZE}", "--config.data.workers=1", f"--steps={steps}"]
    result = _last_json(_run([sys.executable, "-m", "snipjax.bench", *args]).stdout)
    return {"samples_per_s": result["samples_per_s"], "step_ms": result["step_ms"], "data_ms": result["data_ms"],
            "command": " ".join(["python -m snipjax.bench", *args])}


def machine(official: Path, python: str) -> dict:
    torch = _run([python, "-c", "import torch; print(torch.__version__)"]).stdout.strip()
    commit = subprocess.run(["git", "-C", str(official), "rev-parse", "HEAD"], capture_output=True, text=True)
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(),
            "jax": importlib.metadata.version("jax"), "torch": torch,
            "official_commit": commit.stdout.strip() or None}


def case(name: str, snipjax: dict, official: dict) -> dict:
    return {"name": name, "snipjax_samples_per_s": round(snipjax["samples_per_s"], 3),
            "official_samples_per_s": round(official["samples_per_s"], 3),
            "ratio": round(snipjax["samples_per_s"] / official["samples_per_s"], 2),
            # Other jobs on the machine slow both codes, not necessarily equally: keep the load with the numbers.
            "load_average_1m": os.getloadavg()[0], "snipjax": snipjax, "official": official}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", type=Path, required=True, help="checkout of the official SNIP code")
    parser.add_argument("--official-python", required=True, help="Python with the official code's packages")
    parser.add_argument("--seconds", type=float, default=21.0, help="measuring time per data case and code")
    parser.add_argument("--rounds", type=int, default=3, help="data cases: turns of each code, the time split")
    parser.add_argument("--steps", type=int, default=3, help="timed train steps after one warm-up step")
    parser.add_argument("--omp-default-wait", action="store_true",
                        help="leave torch's OpenMP threads busy-waiting (fair only on an otherwise idle machine)")
    parser.add_argument("--out", type=Path, default=HERE / "side_by_side.jsonl")
    args = parser.parse_args(argv)
    official, python = args.official.resolve(), args.official_python
    train_env = {} if args.omp_default_wait else PASSIVE_WAIT

    info = {"date": datetime.date.today().isoformat(), **machine(official, python)}
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for name, spec in DATA_CASES:
            # Rounds in turn, so that a drift of the machine's speed falls on both codes alike.
            ours_rounds, their_rounds = [], []
            for _ in range(args.rounds):
                ours_rounds.append(bench_data(spec, 1, args.seconds / args.rounds, BATCH_SIZE))
                their_rounds.append(official_data(official, python, spec.max_dim, spec.normalize_y,
                                                  args.seconds / args.rounds, Path(scratch)))
            ours = {"samples_per_s": statistics.fmean(ours_rounds), "rounds": ours_rounds,
                    "command": f"snipjax.bench.data.bench_data(DataSpec(max_dim={spec.max_dim}, "
                               f"normalize_y={spec.normalize_y}), workers=1, batch_size={BATCH_SIZE})"}
            theirs = {"samples_per_s": statistics.fmean(r["samples_per_s"] for r in their_rounds),
                      "rounds": [r["samples_per_s"] for r in their_rounds], "command": their_rounds[0]["command"]}
            rows.append(case(f"data {name}", ours, theirs))
            print(json.dumps(rows[-1]), flush=True)
        for name, (ours_flags, official_flags) in TRAIN_CASES.items():
            ours = snipjax_train(ours_flags, args.steps)
            theirs = official_train(official, python, official_flags, args.steps, Path(scratch), train_env)
            rows.append(case(name, ours, theirs))
            print(json.dumps(rows[-1]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(args.out) as f:
        for row in rows:
            f.write(json.dumps({**row, "machine": info}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
