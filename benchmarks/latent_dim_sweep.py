"""The LMGAE paper's synthetic experiment (Mondal et al., sec. 5.1, fig. 3) on CPU.

Data with a known latent dimension n (x = f(z), z ~ N(0, I_n), d coordinates; see
:class:`latentzoo.datamodules.Synthetic`) are fitted by WAE-GP and LMGAE with latent dimension m
for each m in ``--ms``. For every run it reports, between ``--num-samples`` generated vectors and
the held-out test split:

* the Fréchet distance between Gaussians fitted to each (float64,
  :func:`latentzoo.metrics.frechet_distance_between`), which compares only means and covariances;
* k-NN precision and recall (Kynkäänniemi et al. 2019, :func:`latentzoo.metrics.precision_recall`,
  k = ``--k``) on the vectors themselves: the fraction of samples inside the union of k-NN balls
  around the test vectors, and the reverse. A decoded code from a hole of q(z) that lands off the
  data manifold lowers precision even when the moments are right.

An adversarial model's samples move from epoch to epoch, so one epoch's value is a noisy
estimate. Every run is therefore measured, in the same way for every m and both models, after each
of its last ``--avg-last`` epochs: the table gives the last epoch's value and the mean (and, for
the distance, the standard deviation) over those epochs.

After training, the aggregated posterior's hole fraction (:func:`latentzoo.metrics.hole_stats`:
Silverman-width KDE of the codes of ``--num-encodings`` training vectors, 10,000 prior samples,
1% level) is measured on the dimensions the decoder uses: all m for WAE-GP, LMGAE's active mask
dimensions (m_j >= 0.1) for LMGAE, whose mask scales a code and a prior sample alike (the KDE's
width scales with the codes, so the fraction is the same with or without that scaling). The same
prior samples are decoded and the precision of those in holes and of the rest is reported
separately. The "floor" row compares the training data with the test data, the best a model can
hope for.

    PYTHONPATH=. python benchmarks/latent_dim_sweep.py --n 8 --d 128 --ms 8 16 32 --epochs 20

Prints a table and writes ``<out>/latent_dim_sweep.png`` (distance vs. m for both models with
active dims on a second axis; precision, recall and hole fraction vs. m) and
``<out>/latent_dim_sweep.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import lightning as L
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from tqdm import tqdm

from latentzoo.datamodules.synthetic import Synthetic
from latentzoo.metrics import (
    frechet_distance_between,
    hole_stats,
    knn_radii,
    manifold_coverage,
    precision_recall,
)
from latentzoo.zoo import LMGAE, WAEGP, AutoencoderModule


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=8, help="true latent dimension")
    p.add_argument("--d", type=int, default=128, help="data dimension")
    p.add_argument("--ms", type=int, nargs="+", default=[8, 16, 32], help="model latent dims")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--width", type=int, default=32, help="MLPs of 4 * width units")
    p.add_argument("--decoder-sigma", type=float, default=1.0)
    p.add_argument(
        "--num-samples", type=int, default=5000, help="generated vectors for FD and precision"
    )
    p.add_argument("--k", type=int, default=3, help="k of the k-NN precision/recall")
    p.add_argument("--num-encodings", type=int, default=10000, help="training codes for holes")
    p.add_argument(
        "--avg-last", type=int, default=5, help="average FD, P, R over this many final epochs"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    return p.parse_args()


class QualityAtEpochEnd(L.Callback):
    """Records FD, precision and recall against ``real`` after each of the last ``last`` epochs."""

    def __init__(self, real: torch.Tensor, num_samples: int, last: int, k: int) -> None:
        self.real, self.num_samples, self.last, self.k = real, num_samples, last, k
        self.values: dict[str, list[float]] = {"fd": [], "precision": [], "recall": []}

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch >= trainer.max_epochs - self.last:  # type: ignore[operator]
            assert isinstance(pl_module, AutoencoderModule)
            for key, v in quality(pl_module, self.real, self.num_samples, self.k).items():
                self.values[key].append(v)
            pl_module.train()


def train(model: AutoencoderModule, dm: Synthetic, epochs: int, cb: QualityAtEpochEnd) -> float:
    """Fit for ``epochs`` without validation or checkpoints; returns the seconds it took."""
    trainer = L.Trainer(
        callbacks=[cb],
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
def quality(
    model: AutoencoderModule, real: torch.Tensor, num_samples: int, k: int
) -> dict[str, float]:
    """FD, precision and recall of ``num_samples`` generated vectors against ``real``."""
    model.eval()
    fake = model.sample(num_samples)
    precision, recall = precision_recall(real, fake, k=k)
    fd = frechet_distance_between(fake, real)
    return {"fd": float(fd), "precision": float(precision), "recall": float(recall)}


@torch.no_grad()
def holes(
    model: AutoencoderModule, x: torch.Tensor, real: torch.Tensor, real_radii: torch.Tensor
) -> dict[str, float]:
    """Hole fraction of q(z) on the used dimensions; precision of decoded hole / non-hole codes.

    The prior samples of :func:`hole_stats` fill the used dimensions; the others (closed LMGAE
    mask entries, m_j < 0.1, which the decoder multiplies by m_j) get fresh N(0, 1) draws.
    """
    model.eval()
    used = model.mask >= model.mask_threshold if isinstance(model, LMGAE) else None
    codes = model.encode(x)  # (N, m)
    codes = codes if used is None else codes[:, used]  # (N, k)
    stats, z_used, in_hole = hole_stats(codes, None)  # (M, k), (M,)
    z = torch.randn(len(z_used), model.latent_dim, generator=torch.Generator().manual_seed(1))
    if used is None:
        z = z_used.float()
    else:
        z[:, used] = z_used.float()
    on_manifold = manifold_coverage(model.decode(z), real, real_radii)  # (M,)

    def frac(mask: torch.Tensor) -> float:
        return float(on_manifold[mask].double().mean()) if mask.any() else math.nan

    return {
        "holes": float(stats["holes"]),
        "hole_dims": codes.shape[1],
        "prec_in_holes": frac(in_hole),
        "prec_off_holes": frac(~in_hole),
    }


MODELS = (("wae_gp", "WAE-GP", "o", "C0"), ("lmgae", "LMGAE", "s", "C1"))


def plot(rows: list[dict], n: int, floor: dict[str, float], path: Path) -> None:
    ms = [r["m"] for r in rows]
    fig = Figure(figsize=(11, 5))
    FigureCanvasAgg(fig)
    ax, ax_p = fig.subplots(1, 2)
    for name, label, marker, color in MODELS:
        mean, std = [r[f"{name}_fd_mean"] for r in rows], [r[f"{name}_fd_std"] for r in rows]
        ax.errorbar(ms, mean, yerr=std, fmt=marker + "-", color=color, capsize=3, label=label)
        for key, ls, what in (
            ("precision_mean", "-", "precision"),
            ("recall_mean", ":", "recall"),
            ("holes", "--", "hole fraction"),
        ):
            values = [r[f"{name}_{key}"] for r in rows]
            ax_p.plot(ms, values, marker + ls, color=color, label=f"{label} {what}")
    ax.axhline(floor["fd"], color="grey", ls=":", label="train vs. test data")
    ax_p.axhline(floor["precision"], color="grey", ls="-", lw=0.8, label="train vs. test prec.")
    ax_p.axhline(floor["recall"], color="grey", ls=":", lw=0.8, label="train vs. test recall")
    for a in (ax, ax_p):
        a.axvline(n, color="k", ls="--", lw=0.8, label=f"true n = {n}" if a is ax else None)
        a.set_xlabel("model latent dimension m")
        a.set_xticks(ms)
    ax.set_ylabel("Fréchet distance (mean of last epochs)")
    ax_p.set_ylabel("fraction (P, R: mean of last epochs)")
    ax_p.set_ylim(0, 1.02)
    ax2 = ax.twinx()
    ax2.plot(ms, [r["lmgae_active"] for r in rows], "^--", color="C2", label="LMGAE active dims")
    ax2.set_ylabel("LMGAE active dims")
    ax2.set_ylim(0, max(ms) + 1)
    handles = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    # below the axes, so they never cover a data point
    ax.legend(handles=handles, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
    ax_p.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def print_table(rows: list[dict], floor: dict[str, float], args: argparse.Namespace) -> None:
    k = min(args.avg_last, args.epochs)
    print(f"\nn = {args.n}, d = {args.d}, {args.epochs} epochs per run, width {args.width}")
    print(
        f"FD, P(recision), R(ecall) (k = {args.k}, {args.num_samples} samples vs. test): "
        f"last epoch | mean (+- std) over the last {k} epochs; holes on the used dims (number); "
        f"P of decoded prior codes in / off holes"
    )
    head = (
        f"{'m':>3} {'model':<7} {'FD':>22} {'P':>13} {'R':>13} {'holes':>11} "
        f"{'P in/off holes':>15} {'active':>6} {'s':>4}"
    )
    print(head)
    for r in rows:
        for name, label, _, _ in MODELS:
            g = {key[len(name) + 1 :]: v for key, v in r.items() if key.startswith(name + "_")}
            fd = f"{g['fd']:6.2f} | {g['fd_mean']:6.2f} +- {g['fd_std']:4.2f}"
            pr = [f"{g[x]:.3f} | {g[x + '_mean']:.3f}" for x in ("precision", "recall")]
            hole = f"{g['holes']:.3f} ({g['hole_dims']})"
            inoff = f"{g['prec_in_holes']:.3f}/{g['prec_off_holes']:.3f}"
            active = r["lmgae_active"] if name == "lmgae" else "-"
            print(
                f"{r['m']:>3} {label:<7} {fd:>22} {pr[0]:>13} {pr[1]:>13} {hole:>11} "
                f"{inoff:>15} {active:>6} {g['s']:>4.0f}"
            )
    print(
        f"floor (train vs. test data): FD {floor['fd']:.2f}, P {floor['precision']:.3f}, "
        f"R {floor['recall']:.3f}"
    )
    first, last = rows[0], rows[-1]
    for key, what in (("fd", "FD last"), ("fd_mean", "FD mean"), ("precision_mean", "P mean")):
        print(
            f"{what}(m={last['m']}) / {what}(m={first['m']}): WAE-GP "
            f"{last[f'wae_gp_{key}'] / first[f'wae_gp_{key}']:.2f}x, LMGAE "
            f"{last[f'lmgae_{key}'] / first[f'lmgae_{key}']:.2f}x"
        )
    print(
        f"holes, m={first['m']} -> m={last['m']}: WAE-GP {first['wae_gp_holes']:.3f} -> "
        f"{last['wae_gp_holes']:.3f}, LMGAE {first['lmgae_holes']:.3f} -> {last['lmgae_holes']:.3f}"
    )


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    dm = Synthetic(latent_dim=args.n, data_dim=args.d, seed=args.seed)
    x_train, _ = dm.load_split(train=True)
    x_test, _ = dm.load_split(train=False)
    p_floor, r_floor = precision_recall(x_test, x_train[: len(x_test)], k=args.k)
    floor = {
        "fd": float(frechet_distance_between(x_train[: len(x_test)], x_test)),
        "precision": float(p_floor),
        "recall": float(r_floor),
    }
    test_radii = knn_radii(x_test, args.k)
    common = {"data_shape": (args.d,), "width": args.width, "decoder_sigma": args.decoder_sigma}
    last = min(args.avg_last, args.epochs)
    rows = []
    start = time.perf_counter()
    for m in tqdm(args.ms, desc="latent dims"):
        row: dict = {"m": m}
        for name, cls in (("wae_gp", WAEGP), ("lmgae", LMGAE)):
            L.seed_everything(args.seed, verbose=False)
            model = cls(latent_dim=m, **common)
            cb = QualityAtEpochEnd(x_test, args.num_samples, last, args.k)
            row[f"{name}_s"] = train(model, dm, args.epochs, cb)
            for key, values in cb.values.items():
                row[f"{name}_{key}"] = values[-1]
                row[f"{name}_{key}_all"] = [round(v, 3) for v in values]
                row[f"{name}_{key}_mean"] = statistics.fmean(values)
            row[f"{name}_fd_std"] = statistics.pstdev(cb.values["fd"])
            assert dm.train_set is not None
            x_enc = dm.train_set.x[: args.num_encodings]
            for key, v in holes(model, x_enc, x_test, test_radii).items():
                row[f"{name}_{key}"] = v
            if isinstance(model, LMGAE):
                row["lmgae_active"] = model.active_dims
                row["lmgae_mask"] = [round(v, 3) for v in model.mask.tolist()]
        tqdm.write(str({k: v for k, v in row.items() if k != "lmgae_mask"}))
        rows.append(row)
    total = time.perf_counter() - start

    print_table(rows, floor, args)
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
