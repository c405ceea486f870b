"""Run FIDCallback and HolesCallback under ``Trainer(strategy="ddp")`` on CPU (gloo).

    python tests/callbacks/ddp_script.py OUT.json CACHE_DIR [DEVICES]

Writes, from rank 0, the logged test values of two evaluations: the first computes the real
statistics (sharded over ranks), the second reads them from the cache (rank 0 only). The test
compares them with one process on the same model and data.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lightning as L
import torch

from latentzoo.callbacks import FIDCallback, HolesCallback
from latentzoo.datamodules import Synthetic
from latentzoo.zoo import VAE

KEYS = (
    "test/fid",
    "test/kid",
    "test/fid_recon",
    "test/holes",
    "test/kl_prior_agg",
    "test/kl_agg_prior",
    "test/offdiag_cov",
)


def build() -> tuple[VAE, Synthetic]:
    torch.manual_seed(0)  # every process builds the same weights
    model = VAE(data_shape=(6,), latent_dim=3, width=4)
    return model, Synthetic(latent_dim=2, data_dim=6, num_train=400, num_test=100, val_size=100)


def evaluate(devices: int, cache_dir: str) -> list[dict[str, float]]:
    model, dm = build()
    callbacks = [
        FIDCallback(
            extractor="pixels",
            num_samples=130,
            num_real=250,
            batch_size=50,
            kid_subset_size=50,
            cache_dir=cache_dir,
        ),
        HolesCallback(num_prior=400, num_reference=60, batch_size=64),
    ]
    trainer = L.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy="ddp" if devices > 1 else "auto",
        default_root_dir=str(Path(cache_dir).parent),  # pictures land in the test's tmp folder
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
    )
    results = []
    for _ in range(2):
        trainer.test(model, dm, verbose=False)
        results.append({k: float(trainer.callback_metrics[k]) for k in KEYS})
    results.append({"real_computations": float(callbacks[0].real_computations)})
    return results


if __name__ == "__main__":
    out, cache = sys.argv[1], sys.argv[2]
    devices = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    values = evaluate(devices, cache)
    if int(__import__("os").environ.get("LOCAL_RANK", "0")) == 0:
        with open(out, "w") as f:
            json.dump(values, f)
