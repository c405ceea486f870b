"""Run FIDCallback and HolesCallback under ``Trainer(strategy="ddp")`` on CPU (gloo).

    python tests/callbacks/ddp_script.py OUT.json CACHE_DIR [DEVICES [test|fit [PRIOR]]]

``test`` (default) writes, from rank 0, the logged test values of two evaluations: the first
computes the real statistics (sharded over ranks), the second reads them from the cache (rank 0
only). ``fit`` trains one epoch at learning rate 0 with callbacks due every 5 epochs, so the only
evaluation is the one at the end of ``fit`` (``on_train_end``), and writes its values. The test
compares them with one process on the same model and data. PRIOR is the VAE's prior:
``normal`` (default), ``mog``, ``vamp`` (pseudo-inputs from the data when ``fit`` starts) or
``flow``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.loggers import CSVLogger, Logger

from latentzoo.callbacks import FIDCallback, HolesCallback
from latentzoo.datamodules import Synthetic
from latentzoo.zoo import VAE, FlowPrior, MoG, VampPrior

KEYS = (
    "test/fid",
    "test/kid",
    "test/precision",
    "test/recall",
    "test/fid_recon",
    "test/holes",
    "test/kl_prior_agg",
    "test/kl_agg_prior",
    "test/offdiag_cov",
)


PRIORS = {
    "normal": lambda: None,
    "mog": lambda: MoG(4),
    "vamp": lambda: VampPrior(5, init="data"),
    "flow": lambda: FlowPrior(num_layers=2, hidden=8),
}


def build(prior: str = "normal") -> tuple[VAE, Synthetic]:
    torch.manual_seed(0)  # every process builds the same weights
    model = VAE(data_shape=(6,), latent_dim=3, width=4, prior=PRIORS[prior]())
    return model, Synthetic(latent_dim=2, data_dim=6, num_train=400, num_test=100, val_size=100)


def make_callbacks(cache_dir: str, every_n_epochs: int = 5) -> list[L.Callback]:
    fid = FIDCallback(
        extractor="pixels",
        num_samples=130,
        num_real=250,
        batch_size=50,
        kid_subset_size=50,
        cache_dir=cache_dir,
        every_n_epochs=every_n_epochs,
    )
    holes = HolesCallback(num_prior=400, num_reference=60, batch_size=64)
    return [fid, holes]


def make_trainer(
    devices: int, cache_dir: str, callbacks: list[L.Callback], logger: Logger | bool = False
) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy="ddp" if devices > 1 else "auto",
        default_root_dir=str(Path(cache_dir).parent),  # pictures land in the test's tmp folder
        logger=logger,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
        max_epochs=1,
        num_sanity_val_steps=0,
    )


def evaluate(devices: int, cache_dir: str, prior: str = "normal") -> list[dict[str, float]]:
    model, dm = build(prior)
    callbacks = make_callbacks(cache_dir)
    trainer = make_trainer(devices, cache_dir, callbacks)
    results = []
    for _ in range(2):
        trainer.test(model, dm, verbose=False)
        results.append({k: float(trainer.callback_metrics[k]) for k in KEYS})
    results.append({"real_computations": float(callbacks[0].real_computations)})
    return results


def fit_end_values(devices: int, cache_dir: str, prior: str = "normal") -> dict[str, float]:
    """The values of the one evaluation of a 1-epoch fit whose callbacks are due every 5 epochs."""
    model, dm = build(prior)
    model.lr = 0.0  # the weights stay those of build(): comparable with any process count
    logger = CSVLogger(Path(cache_dir).parent, name="logs", version=0)  # rank 0 writes its files
    trainer = make_trainer(devices, cache_dir, make_callbacks(cache_dir, every_n_epochs=5), logger)
    trainer.fit(model, dm)
    names = [k.split("/", 1)[1] for k in KEYS]
    return {name: float(trainer.callback_metrics[f"val/{name}"]) for name in names}


if __name__ == "__main__":
    out, cache = sys.argv[1], sys.argv[2]
    devices = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    mode = sys.argv[4] if len(sys.argv) > 4 else "test"
    prior = sys.argv[5] if len(sys.argv) > 5 else "normal"
    run = evaluate if mode == "test" else fit_end_values
    values = run(devices, cache, prior)
    if int(__import__("os").environ.get("LOCAL_RANK", "0")) == 0:
        with open(out, "w") as f:
            json.dump(values, f)
