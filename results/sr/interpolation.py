"""The paper's latent interpolation: decode along the straight path between the numeric latents of two functions.

  python results/sr/interpolation.py [--checkpoint runs/sr_cpu] [--source "sin(x_0)"] [--target "x_0**2"] [--steps 7]

Samples each function at 200 evenly spaced points of [-2, 2], encodes both (raw y), and at evenly spaced
points z = (1 − t)·z_source + t·z_target of the path decodes the most probable formula (a beam of one) and
draws it with its decoded constants, not refit, so the picture shows what the latent itself says. Writes
interpolation.png (the curves, each decoded formula in the legend) and interpolation.json (the formulas, the
command, machine and date).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # results/common.py

from common import machine, pyplot  # noqa: E402

from snipjax.data.files import atomic_write, write_text  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="runs/sr_cpu")
    parser.add_argument("--source", default="sin(2*x_0)")
    parser.add_argument("--target", default="x_0**2 - 1")
    parser.add_argument("--steps", type=int, default=7)
    args = parser.parse_args()

    import jax.numpy as jnp

    import snipjax
    from snipjax.data.formulas import parse
    from snipjax.tasks.sr import decoding

    config, params = snipjax.load(args.checkpoint)
    x = np.linspace(-2, 2, config.data.n_points)[:, None]
    ends = [parse(formula) for formula in (args.source, args.target)]
    z = np.asarray(snipjax.encode_numeric(params, np.stack([x, x]), np.stack([e.evaluate(x) for e in ends]),
                                          config=config, normalize=False))
    weights = np.linspace(0, 1, args.steps)
    path = jnp.asarray((1 - weights)[:, None] * z[0] + weights[:, None] * z[1])
    _, beam_latents = decoding.make_decoders(config)
    ids, lengths, _ = beam_latents(params, path, beam_size=1, max_len=config.data.max_len)
    decoded = decoding.to_expressions(ids, lengths, max_dim=config.data.max_dim)

    plt = pyplot()
    figure, axis = plt.subplots(figsize=(7, 4.5))
    colors = plt.cm.viridis(weights)
    rows = []
    for t, expression, color in zip(weights, decoded, colors):
        label = "invalid" if expression is None else str(expression)
        rows.append({"t": float(t), "formula": None if expression is None else label})
        if expression is not None:
            with np.errstate(all="ignore"):
                axis.plot(x[:, 0], expression.evaluate(x), color=color, label=f"t={t:.2f}: {label[:60]}")
    for end, style in zip(ends, ("--", ":")):
        axis.plot(x[:, 0], end.evaluate(x), "k" + style, lw=1, label=f"encoded: {end}")
    axis.set_xlabel("x_0")
    axis.set_ylabel("y")
    axis.legend(fontsize=6, loc="best")
    axis.set_title("formulas decoded along the latent path", fontsize=9)
    figure.tight_layout()
    with atomic_write(HERE / "interpolation.png", "wb") as png:
        figure.savefig(png, format="png", dpi=130)
    record = {"command": " ".join(["python", "results/sr/interpolation.py", *sys.argv[1:]]),
              "date": datetime.date.today().isoformat(), "machine": machine(), "checkpoint": args.checkpoint,
              "source": args.source, "target": args.target, "path": rows}
    write_text(HERE / "interpolation.json", json.dumps(record, indent=1))
    for row in rows:
        print(f"t={row['t']:.2f}: {row['formula']}")


if __name__ == "__main__":
    main()
