"""Write configs/<model>_<data>.yaml: what each run sets, and nothing the CLI sets anyway.

A config is made by the CLI itself: the run's full ``latentzoo fit ... --print_config`` minus
every value that the table below does not set and that equals the default, which the same command
prints for the bare model, data set and callback classes. So a config is what a person would
write, runs as is, and names no setting that only the installed Lightning release knows;
``latentzoo fit --config configs/X.yaml --print_config`` shows every setting.

Edit the table below and run ``python configs/make_configs.py`` to regenerate; pass model names
or file stems to write only theirs (``python configs/make_configs.py VAE quickstart``).
``tests/test_configs.py`` checks that the files are what this script writes.
"""

from __future__ import annotations

import contextlib
import functools
import io
import sys
from pathlib import Path
from typing import Any

import yaml

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


# Dai & Wipf give stage 2 twice stage 1's epochs (400 and 800 in their demo.py) and train far
# longer; these keep their ratio and fit a day on one GPU.
TWO_STAGE = {
    "synthetic": two_stage(8, 10, 20),
    "mnist": two_stage(16, 30, 60),
    "fashion_mnist": two_stage(16, 30, 60),
    "cifar10": two_stage(64, 50, 100),
    "celeba": two_stage(64, 20, 40),
}


def wae(latent_dims: dict[str, int]) -> dict[str, list[str]]:
    """WAE-GP and LMGAE at their class defaults (a unit-variance decoder, the WAE paper's
    squared-error cost), with a latent size per data set."""
    return {key: ["--model.latent_dim", str(m)] for key, m in latent_dims.items()}


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
    "--model.latent_dim", "16",
    "--trainer.max_epochs", "30", "--data.num_train", "10000", "--data.val_size", "2000",
    *EVALUATION["synthetic"],
]  # fmt: skip


def runs() -> dict[str, tuple[str, str, list[str]]]:
    """File stem -> (model class, data class, the run's other CLI arguments)."""
    table = {"quickstart": ("VAE", "Synthetic", QUICKSTART)}
    for (model, stem), per_data in TABLE.items():
        for key, (data_cls, data_args) in DATA.items():
            evaluation = EVALUATION["synthetic" if key == "synthetic" else "images"]
            table[f"{stem}_{key}"] = (
                model,
                data_cls,
                [*data_args, *per_data.get(key, []), *evaluation],
            )
    return table


@functools.cache
def full_config(model: str, data: str, args: tuple[str, ...]) -> dict[str, Any]:
    """``latentzoo fit --model model --data data *args --print_config``, parsed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        main(["fit", "--model", model, "--data", data, *args, "--print_config"])
    return yaml.safe_load(out.getvalue())


def defaults(model: str, data: str, args: tuple[str, ...]) -> dict[str, Any]:
    """What the CLI prints for ``model`` and ``data`` with the run's callbacks but none of its
    settings. Each part is printed for that part alone, so that 13 printouts serve 31 configs."""
    callbacks = tuple(a for a in args if a.startswith("--trainer.callbacks+="))
    return {
        **full_config("VAE", "Synthetic", callbacks),
        "model": full_config(model, "Synthetic", ())["model"],
        "data": full_config("VAE", data, ())["data"],
    }


_SAME = object()  # strip()'s answer for "equal to the default"
Path_ = tuple[str | int, ...]  # a place in a config: ("model", "init_args", "latent_dim")


def set_by(args: list[str]) -> set[Path_]:
    """The places in the config that ``args`` set (``--trainer.callbacks.k`` is the last
    callback's ``k``). They stay in the config even where they equal today's default: they are
    the run's choices, and must not change when a default does."""
    places: set[Path_] = set()
    callback = -1
    tokens = iter(args)
    for flag in tokens:
        if flag.startswith("--trainer.callbacks+="):
            callback += 1
            continue
        next(tokens)  # the flag's value
        group, _, key = flag.removeprefix("--").partition(".")
        if group in ("model", "data"):
            places.add((group, "init_args", key))
        elif key.startswith("callbacks."):
            places.add(("trainer", "callbacks", callback, "init_args", key.split(".", 1)[1]))
        else:
            places.add((group, key))
    return places


def strip(value: Any, default: Any, keep: set[Path_], at: Path_ = ()) -> Any:
    """``value`` without what equals ``default``, except the places in ``keep`` and every
    ``class_path`` that is named."""
    if value == default and not any(place[: len(at)] == at for place in keep):
        return _SAME
    if isinstance(value, list) and isinstance(default, list) and len(value) == len(default):
        return [
            keep_class(strip(v, d, keep, (*at, i)), v)
            for i, (v, d) in enumerate(zip(value, default, strict=True))
        ]
    same_class = isinstance(default, dict) and value.get("class_path") == default.get("class_path")
    if not isinstance(value, dict) or not same_class:
        return value
    kept = {k: strip(v, default.get(k, _SAME), keep, (*at, k)) for k, v in value.items()}
    return keep_class({k: v for k, v in kept.items() if v is not _SAME}, value)


def keep_class(stripped: Any, value: Any) -> Any:
    """``stripped`` with the class that ``value`` names, which a config must always state."""
    if not isinstance(value, dict) or "class_path" not in value:
        return stripped
    rest = {} if stripped is _SAME else {k: v for k, v in stripped.items() if k != "class_path"}
    return {"class_path": value["class_path"], **rest}


def minimal_config(model: str, data: str, args: list[str]) -> dict[str, Any]:
    """The run's own settings and what differs from the defaults; model and data always named."""
    full = full_config(model, data, tuple(args))
    config = strip(full, defaults(model, data, tuple(args)), set_by(args))
    for key in ("model", "data"):
        config[key] = keep_class(config.get(key, _SAME), full[key])
    return {k: config[k] for k in full if k in config}  # the printout's order


def render(stem: str) -> str:
    """The text of ``configs/<stem>.yaml``."""
    model, data, args = runs()[stem]
    body = yaml.safe_dump(minimal_config(model, data, args), sort_keys=False)
    return (
        f"# latentzoo fit --config configs/{stem}.yaml\n"
        "# Only this run's own settings; add --print_config to see every setting.\n" + body
    )


def generate(only: set[str]) -> None:
    for stem, (model, _, _) in runs().items():
        if only and model not in only and stem not in only:
            continue
        path = HERE / f"{stem}.yaml"
        path.write_text(render(stem))
        print(f"wrote {path.relative_to(HERE.parent)}")


if __name__ == "__main__":
    generate(set(sys.argv[1:]))
