"""Train every manual-optimization model for a few steps under 2-process CPU DDP (gloo).

    python tests/zoo/ddp_train_script.py OUT_DIR

Each rank writes ``OUT_DIR/rank<r>.json``: per model, a checksum of its parameters before and
after ``fit`` and whether every logged loss is finite; for WAEGP also the means of the
``LatentSampler`` GMM fitted at the end of training. First, a ``fit`` under plain ``ddp`` must
fail with the message naming ``ddp_find_unused_parameters_true``. The test compares the ranks.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import lightning as L
import torch
from testutils import BlobImages

from latentzoo.callbacks import LatentSampler
from latentzoo.datamodules import Synthetic
from latentzoo.zoo import LMGAE, VAEGAN, WAEGP, AutoencoderModule, TwoStageVAE


def checksum(model: torch.nn.Module) -> list[float]:
    """Sum and sum of squares of each parameter, in order (parameters agree exactly under DDP)."""
    return [v for p in model.parameters() for v in (p.sum().item(), p.pow(2).sum().item())]


def models() -> list[tuple[str, AutoencoderModule, L.LightningDataModule, int]]:
    """(name, model, datamodule, max_epochs), all tiny; two batches per rank and epoch."""
    torch.manual_seed(0)  # every rank builds the same weights
    flat = {"data_shape": (6,), "latent_dim": 2, "width": 4}
    synthetic = {"latent_dim": 2, "data_dim": 6, "num_train": 64, "num_test": 16, "val_size": 16}
    adversarial = {"n_critic": 2, "critic_width": 8, **flat}
    return [
        ("WAEGP", WAEGP(**adversarial), Synthetic(batch_size=8, **synthetic), 1),  # type: ignore[arg-type]
        ("LMGAE", LMGAE(**adversarial), Synthetic(batch_size=8, **synthetic), 1),  # type: ignore[arg-type]
        (
            "TwoStageVAE",
            TwoStageVAE(stage1_epochs=1, stage2_epochs=1, stage2_width=4, **flat),  # type: ignore[arg-type]
            Synthetic(batch_size=8, **synthetic),
            2,
        ),
        ("VAEGAN", VAEGAN(latent_dim=2, width=4), BlobImages(n=48, batch_size=8), 1),
    ]


def trainer(strategy: str, max_epochs: int, callbacks: list[L.Callback]) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu",
        devices=2,
        strategy=strategy,
        max_epochs=max_epochs,
        limit_train_batches=2,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
    )


def main(out_dir: Path) -> None:
    results: dict[str, object] = {}
    name, model, dm, epochs = models()[0]
    try:
        trainer("ddp", epochs, []).fit(model, dm)
        results["plain_ddp_error"] = None
    except ValueError as err:
        results["plain_ddp_error"] = str(err)
    for name, model, dm, epochs in models():
        sampler = LatentSampler(kind="gmm", n_components=2) if name == "WAEGP" else None
        t = trainer("ddp_find_unused_parameters_true", epochs, [sampler] if sampler else [])
        before = checksum(model)
        t.fit(model, dm)
        losses = [v for k, v in t.callback_metrics.items() if k.endswith("loss")]
        results[name] = {
            "before": before,
            "after": checksum(model),
            "finite": bool(losses) and all(bool(torch.isfinite(v)) for v in losses),
            "gmm_means": sampler.sampler.means.tolist() if sampler and sampler.sampler else None,  # type: ignore[attr-defined]
        }
    rank = t.global_rank
    (out_dir / f"rank{rank}.json").write_text(json.dumps(results))


if __name__ == "__main__":
    os.environ.setdefault("PL_DISABLE_FORK", "1")
    main(Path(sys.argv[1]))
