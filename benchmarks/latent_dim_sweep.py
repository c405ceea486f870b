"""The LMGAE paper's synthetic experiment (Mondal et al., sec. 5.1, fig. 3) on CPU.

Data with a known latent dimension n (x = f(z), z ~ N(0, I_n), d coordinates; see
:class:`latentzoo.datamodules.Synthetic`) are fitted by WAE-GP and LMGAE with latent dimension m
for each m in ``--ms``. For every run it reports the Fréchet distance between Gaussians fitted to
```--num-samples`` generated vectors and to the held-out test split (float64,
:func:`latentzoo.metrics.frechet_distance_between`), and LMGAE's active mask dimensions. The
"floor" row is the distance between training and test data, the best a model can hope for.

An adversarial model's samples move from epoch to epoch, so one epoch's distance is a noisy
estimate. Every run is therefore measured, in the same way for every m and both models, after each
of its last ``--avg-last`` epochs: the table gives the last epoch's distance and the mean and
standard deviation over those epochs (the plot shows the mean with the deviation as error bars).

    PYTHONPATH=. python benchmarks/latent_dim_sweep.py --n 8 --d 128 --ms 8 16 32 --epochs 20

Prints a table and writes ``<out>/latent_dim_sweep.png`` (distance vs. m for both models,
active dims on a second axis) and ``<out>/latent_dim_sweep.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
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
    p.add_argument(
        "--avg-last", type=int, default=5, help="average the FD over this many final epochs"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    return p.parse_args()


class FrechetAtEpochEnd(L.Callback):
    """Records the sample FD against ``real`` after each of the last ``last`` training epochs."""

    def __init__(self, real: torch.Tensor, num_samples: int, last: int) -> None:
        self.real, self.num_samples, self.last = real, num_samples, last
        self.values: list[float] = []

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch >= trainer.max_epochs - self.last:  # type: ignore[operator]
            assert isinstance(pl_module, AutoencoderModule)
            self.values.append(frechet(pl_module, self.real, self.num_samples))
            pl_module.train()


def train(model: AutoencoderModule, dm: Synthetic, epochs: int, fd: FrechetAtEpochEnd) -> float:
    """Fit for ``epochs`` without validation or checkpoints; returns the seconds it took."""
    trainer = L.Trainer(
        callbacks=[fd],
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
    fig = Figure(figsize=(6, 5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name, label, fmt in (("wae_gp", "WAE-GP", "o-"), ("lmgae", "LMGAE", "s-")):
        mean, std = [r[f"{name}_fd_mean"] for r in rows], [r[f"{name}_fd_std"] for r in rows]
        ax.errorbar(ms, mean, yerr=std, fmt=fmt, capsize=3, label=f"{label} (mean of last epochs)")
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
    # below the axes, so it never covers a data point
    fig.legend(handles=handles, fontsize=8, loc="lower center", ncol=2, frameon=False)
    fig.tight_layout(rect=(0, 0.14, 1, 1))
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
            fd = FrechetAtEpochEnd(x_test, args.num_samples, min(args.avg_last, args.epochs))
            row[f"{name}_s"] = train(model, dm, args.epochs, fd)
            row[f"{name}_fd"] = fd.values[-1]
            row[f"{name}_fd_all"] = [round(v, 3) for v in fd.values]
            row[f"{name}_fd_mean"] = statistics.fmean(fd.values)
            row[f"{name}_fd_std"] = statistics.pstdev(fd.values)
            if isinstance(model, LMGAE):
                row["lmgae_active"] = model.active_dims
                row["lmgae_mask"] = [round(v, 3) for v in model.mask.tolist()]
        tqdm.write(str({k: v for k, v in row.items() if k != "lmgae_mask"}))
        rows.append(row)
    total = time.perf_counter() - start

    k = min(args.avg_last, args.epochs)
    print(f"\nn = {args.n}, d = {args.d}, {args.epochs} epochs per run, width {args.width}")
    print(f"FD: last epoch | mean +- std over the last {k} epochs")
    print(f"{'m':>4} {'WAE-GP FD':>22} {'LMGAE FD':>22} {'LMGAE active':>13} {'s WAE/LMGAE':>12}")
    for r in rows:
        cells = [
            f"{r[f'{x}_fd']:6.2f} | {r[f'{x}_fd_mean']:6.2f} +- {r[f'{x}_fd_std']:5.2f}"
            for x in ("wae_gp", "lmgae")
        ]
        print(
            f"{r['m']:>4} {cells[0]:>22} {cells[1]:>22} "
            f"{r['lmgae_active']:>13} {r['wae_gp_s']:>5.0f}/{r['lmgae_s']:.0f}"
        )
    print(f"floor (train vs. test data): FD {floor:.2f}")
    first, last = rows[0], rows[-1]
    for key, what in (("fd", "last epoch"), ("fd_mean", f"mean of last {k}")):
        print(
            f"FD(m={last['m']}) / FD(m={first['m']}), {what}: WAE-GP "
            f"{last[f'wae_gp_{key}'] / first[f'wae_gp_{key}']:.2f}x, LMGAE "
            f"{last[f'lmgae_{key}'] / first[f'lmgae_{key}']:.2f}x"
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
