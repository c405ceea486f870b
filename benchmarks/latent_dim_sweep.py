"""The LMGAE paper's synthetic experiment (Mondal et al., sec. 5.1, fig. 3) on CPU.

Data with a known latent dimension n (x = f(z), z ~ N(0, I_n), d coordinates; see
:class:`latentzoo.datamodules.Synthetic`) are fitted by WAE-GP and LMGAE with latent dimension m
for each m in ``--ms``. For every run it reports the Fréchet distance between Gaussians fitted to
``--num-samples`` generated vectors and to the held-out test split (float64,
:func:`latentzoo.metrics.frechet_distance_between`), and LMGAE's active mask dimensions. The
"floor" row is the distance between training and test data, the best a model can hope for.

    PYTHONPATH=. python benchmarks/latent_dim_sweep.py --n 8 --d 128 --ms 8 16 32 --epochs 20

Prints a table and writes ``<out>/latent_dim_sweep.png`` (distance vs. m for both models,
active dims on a second axis) and ``<out>/latent_dim_sweep.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import lightning as L
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from tqdm import tqdm

from latentzoo.datamodules.synthetic import Synthetic
from latentzoo.metrics import frechet_distance_between
from latentzoo.zoo import LMGAE, WAEGP, AutoencoderModule


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=8, help="true latent dimension")
    p.add_argument("--d", type=int, default=128, help="data dimension")
    p.add_argument("--ms", type=int, nargs="+", default=[8, 16, 32], help="model latent dims")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--width", type=int, default=32, help="MLPs of 4 * width units")
    p.add_argument("--decoder-sigma", type=float, default=1.0)
    p.add_argument("--num-samples", type=int, default=5000, help="generated vectors for the FD")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    return p.parse_args()


def train(model: AutoencoderModule, dm: Synthetic, epochs: int) -> float:
    """Fit for ``epochs`` without validation or checkpoints; returns the seconds it took."""
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    start = time.perf_counter()
    trainer.fit(model, dm)
    return time.perf_counter() - start


@torch.no_grad()
def frechet(model: AutoencoderModule, real: torch.Tensor, num_samples: int) -> float:
    model.eval()
    return float(frechet_distance_between(model.sample(num_samples), real))


def plot(rows: list[dict], n: int, floor: float, path: Path) -> None:
    ms = [r["m"] for r in rows]
    fig = Figure(figsize=(6, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(ms, [r["wae_gp_fd"] for r in rows], "o-", label="WAE-GP")
    ax.plot(ms, [r["lmgae_fd"] for r in rows], "s-", label="LMGAE")
    ax.axhline(floor, color="grey", ls=":", label="train vs. test data")
    ax.axvline(n, color="k", ls="--", lw=0.8, label=f"true n = {n}")
    ax.set_xlabel("model latent dimension m")
    ax.set_ylabel("Fréchet distance")
    ax.set_xticks(ms)
    ax2 = ax.twinx()
    ax2.plot(ms, [r["lmgae_active"] for r in rows], "^--", color="C2", label="LMGAE active dims")
    ax2.set_ylabel("LMGAE active dims")
    ax2.set_ylim(0, max(ms) + 1)
    handles = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax.legend(handles=handles, fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    dm = Synthetic(latent_dim=args.n, data_dim=args.d, seed=args.seed)
    x_train, _ = dm.load_split(train=True)
    x_test, _ = dm.load_split(train=False)
    floor = float(frechet_distance_between(x_train[: len(x_test)], x_test))
    common = {"data_shape": (args.d,), "width": args.width, "decoder_sigma": args.decoder_sigma}
    rows = []
    start = time.perf_counter()
    for m in tqdm(args.ms, desc="latent dims"):
        row: dict = {"m": m}
        for name, cls in (("wae_gp", WAEGP), ("lmgae", LMGAE)):
            L.seed_everything(args.seed, verbose=False)
            model = cls(latent_dim=m, **common)
            row[f"{name}_s"] = train(model, dm, args.epochs)
            row[f"{name}_fd"] = frechet(model, x_test, args.num_samples)
            if isinstance(model, LMGAE):
                row["lmgae_active"] = model.active_dims
                row["lmgae_mask"] = [round(v, 3) for v in model.mask.tolist()]
        tqdm.write(str({k: v for k, v in row.items() if k != "lmgae_mask"}))
        rows.append(row)
    total = time.perf_counter() - start

    print(f"\nn = {args.n}, d = {args.d}, {args.epochs} epochs per run, width {args.width}")
    print(f"{'m':>4} {'WAE-GP FD':>10} {'LMGAE FD':>10} {'LMGAE active':>13} {'s WAE/LMGAE':>12}")
    for r in rows:
        print(
            f"{r['m']:>4} {r['wae_gp_fd']:>10.2f} {r['lmgae_fd']:>10.2f} "
            f"{r['lmgae_active']:>13} {r['wae_gp_s']:>5.0f}/{r['lmgae_s']:.0f}"
        )
    print(f"floor (train vs. test data): FD {floor:.2f}")
    first, last = rows[0], rows[-1]
    print(
        f"FD(m={last['m']}) / FD(m={first['m']}): WAE-GP "
        f"{last['wae_gp_fd'] / first['wae_gp_fd']:.2f}x, LMGAE "
        f"{last['lmgae_fd'] / first['lmgae_fd']:.2f}x"
    )
    print(f"total wall time {total / 60:.1f} min")
    plot(rows, args.n, floor, args.out / "latent_dim_sweep.png")
    record = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "floor": floor,
        "rows": rows,
        "wall_s": total,
    }
    (args.out / "latent_dim_sweep.json").write_text(json.dumps(record, indent=1))
    print(f"wrote {args.out / 'latent_dim_sweep.png'}")


if __name__ == "__main__":
    main()
