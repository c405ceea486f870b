"""Write configs/<model>_<data>.yaml with ``latentzoo fit --print_config``.

Every config is the CLI's own full printout for one model and data set, so it runs as is and
shows every setting. Edit the table below and run ``python configs/make_configs.py`` to
regenerate; pass model names to write only theirs (``python configs/make_configs.py VAE``).
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
from pathlib import Path

from latentzoo.cli import main

HERE = Path(__file__).parent

DATA = {
    "synthetic": ("Synthetic", []),
    "mnist": ("MNIST", ["--data.download", "true"]),
    "fashion_mnist": ("FashionMNIST", ["--data.download", "true"]),
    "cifar10": ("CIFAR10", ["--data.download", "true"]),
    "celeba": ("CelebA", []),
}

# Per data set: the VAE family's decoder and latent size (binary-ish digits vs natural images).
VAE_FAMILY = {
    "mnist": ["--model.likelihood", "bernoulli", "--model.latent_dim", "16"],
    "fashion_mnist": ["--model.likelihood", "bernoulli", "--model.latent_dim", "16"],
    "cifar10": ["--model.latent_dim", "64", "--trainer.max_epochs", "50"],
    "celeba": ["--model.latent_dim", "64", "--trainer.max_epochs", "20"],
}

# VAE-GAN: latent sizes as the VAE family; 128 in Larsen et al.'s CelebA runs, 64 here as above.
VAE_GAN = {
    "mnist": ["--model.latent_dim", "16"],
    "fashion_mnist": ["--model.latent_dim", "16"],
    "cifar10": ["--model.latent_dim", "64", "--trainer.max_epochs", "50"],
    "celeba": ["--model.latent_dim", "64", "--trainer.max_epochs", "20"],
}


def two_stage(latent: int, stage1: int, stage2: int) -> list[str]:
    """The 2-stage VAE stops itself after both stages; max_epochs must cover them."""
    epochs = {"stage1_epochs": stage1, "stage2_epochs": stage2, "latent_dim": latent}
    args = [a for key, value in epochs.items() for a in (f"--model.{key}", str(value))]
    return [*args, "--trainer.max_epochs", str(stage1 + stage2)]


# Dai & Wipf train far longer (hundreds of epochs per stage); these fit a day on one GPU.
TWO_STAGE = {
    "synthetic": two_stage(8, 10, 10),
    "mnist": two_stage(16, 30, 30),
    "fashion_mnist": two_stage(16, 30, 30),
    "cifar10": two_stage(64, 50, 50),
    "celeba": two_stage(64, 20, 20),
}


def wae(latent_dims: dict[str, int]) -> dict[str, list[str]]:
    """WAE-GP / LMGAE: a unit-variance decoder, as in the WAE paper's squared-error cost."""
    return {
        key: ["--model.latent_dim", str(m), "--model.decoder_sigma", "1.0"]
        for key, m in latent_dims.items()
    }


# LMGAE starts above the data's dimension and masks the rest off (synthetic: true n = 8).
WAE_GP = wae({"synthetic": 8, "mnist": 8, "fashion_mnist": 8, "cifar10": 64, "celeba": 64})
LMGAE = wae({"synthetic": 32, "mnist": 32, "fashion_mnist": 32, "cifar10": 128, "celeba": 128})

# (model class, file stem) -> {data key: extra CLI arguments}
TABLE: dict[tuple[str, str], dict[str, list[str]]] = {
    ("VAE", "vae"): VAE_FAMILY,
    ("BetaVAE", "beta_vae"): VAE_FAMILY,
    ("VAEGAN", "vae_gan"): VAE_GAN,
    ("TwoStageVAE", "two_stage_vae"): TWO_STAGE,
    ("WAEGP", "wae_gp"): WAE_GP,
    ("LMGAE", "lmgae"): LMGAE,
}


def callbacks(*specs: tuple[str, dict[str, str]]) -> list[str]:
    args: list[str] = []
    for name, init in specs:
        args += [f"--trainer.callbacks+=latentzoo.callbacks.{name}"]
        args += [a for k, v in init.items() for a in (f"--trainer.callbacks.{k}", v)]
    return args


# Every run answers the same questions: active dimensions and holes every validation epoch or
# five, sample quality every five epochs (Inception FID on images, Fréchet distance of the raw
# vectors on synthetic data), and pictures of samples for images.
EVALUATION = {
    "images": callbacks(
        ("ActiveDims", {}),
        ("HolesCallback", {"num_encodings": "20000"}),
        ("FIDCallback", {"extractor": "inception"}),
        ("SampleImages", {}),
    ),
    "synthetic": callbacks(
        ("ActiveDims", {}),
        ("HolesCallback", {"num_encodings": "10000", "num_prior": "5000"}),
        ("FIDCallback", {"extractor": "pixels", "num_samples": "5000", "num_real": "5000"}),
    ),
}

QUICKSTART = [
    # m = 16 latent dimensions for data of true dimension n = 8: ActiveDims shows how many the
    # VAE keeps (Burda active units), next to FID of the raw vectors and the prior's holes.
    "--model", "VAE", "--data", "Synthetic", "--model.latent_dim", "16",
    "--trainer.max_epochs", "30", "--data.num_train", "10000", "--data.val_size", "2000",
    *EVALUATION["synthetic"],
]  # fmt: skip


def print_config(args: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        main(["fit", *args, "--print_config"])
    text = out.getvalue()
    # The printout starts with the Lightning version line; keep the config only.
    return re.sub(r"^# lightning.*\n", "", text)


def write(stem: str, args: list[str]) -> None:
    path = HERE / f"{stem}.yaml"
    path.write_text(f"# latentzoo fit --config configs/{path.name}\n" + print_config(args))
    print(f"wrote {path.relative_to(HERE.parent)}")


def generate(only: set[str]) -> None:
    if not only or "quickstart" in only:
        write("quickstart", QUICKSTART)
    for (model, stem), per_data in TABLE.items():
        if only and model not in only:
            continue
        for key, (data_cls, data_args) in DATA.items():
            evaluation = EVALUATION["synthetic" if key == "synthetic" else "images"]
            args = ["--model", model, "--data", data_cls, *data_args, *per_data.get(key, [])]
            write(f"{stem}_{key}", [*args, *evaluation])


if __name__ == "__main__":
    generate(set(sys.argv[1:]))
