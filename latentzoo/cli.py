"""The ``latentzoo`` command: LightningCLI for ``fit|validate|test|predict``, plus ``models``.

    latentzoo fit --model VAE --data FashionMNIST --trainer.max_epochs 5
    latentzoo fit --config configs/vae_fashion_mnist.yaml --ckpt_path last
    latentzoo models

Model and data are chosen by class name (subclass mode), so plugin models and user subclasses
work like built-in ones. The datamodule's ``data_shape`` is linked to the model's. With no
``--model``/``--data`` the command trains the quickstart: a VAE on the synthetic data set.

Each run writes to ``runs/<Model>-<Data>/``: TensorBoard logs and the saved config in
``version_N/``, and ``checkpoints/`` with ``last.ckpt`` and the best checkpoint by ``val/loss``.
The checkpoint folder is shared by the runs of one model and data set, so ``--ckpt_path last``
resumes the latest of them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

from jsonargparse import Namespace
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from typing_extensions import override

from latentzoo.datamodules import InMemoryDataModule
from latentzoo.zoo import AutoencoderModule, get_model_class, list_models, load_plugins

__all__ = ["COMMANDS", "LatentzooCLI", "main", "run"]

RUNS_DIR = "runs"

TRAINER_DEFAULTS: dict[str, Any] = {
    "max_epochs": 20,
    "logger": {
        "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
        "init_args": {"save_dir": RUNS_DIR},
    },
}


class LatentzooCLI(LightningCLI):
    """LightningCLI with the data shape linked into the model and run folders named per run."""

    @override
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments(
            "data.data_shape", "model.init_args.data_shape", apply_on="instantiate"
        )
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "model": {"class_path": "latentzoo.zoo.vae.VAE"},
                "data": {"class_path": "latentzoo.datamodules.synthetic.Synthetic"},
                "checkpoint.monitor": "val/loss",
                "checkpoint.mode": "min",
                "checkpoint.save_top_k": 1,
                "checkpoint.save_last": True,
                "checkpoint.filename": "best-epoch{epoch:03d}-step{step}",
                "checkpoint.auto_insert_metric_name": False,
            }
        )

    @override
    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        run_name = f"{_class_name(config.model)}-{_class_name(config.data)}"
        logger = config.trainer.logger
        if isinstance(logger, Namespace) and logger.get("init_args") is not None:
            args = logger.init_args
            if args.get("name") in (None, "lightning_logs"):
                args.name = run_name
            save_dir = args.get("save_dir") or RUNS_DIR
        else:
            save_dir = RUNS_DIR
        if config.checkpoint.dirpath is None:
            config.checkpoint.dirpath = f"{save_dir}/{run_name}/checkpoints"


def _class_name(namespace: Any) -> str:
    class_path = namespace.class_path if isinstance(namespace, Namespace) else str(namespace)
    return str(class_path).rsplit(".", 1)[-1]


def models_command(argv: Sequence[str]) -> None:
    """``latentzoo models [PATTERN]``: the zoo, plugins included, one line each."""
    pattern = argv[0] if argv else "*"
    names = list_models(pattern)
    if not names:
        print(f"no models match {pattern!r}")
        return
    width = max(len(n) for n in names)
    for name in names:
        cls = get_model_class(name)
        doc = (cls.__doc__ or "").strip().splitlines()
        summary = doc[0] if doc else ""
        print(f"{name:<{width}}  {cls.__module__}.{cls.__qualname__}  {summary}")


# Sub-commands that are not LightningCLI's; each takes the arguments after its name.
COMMANDS: dict[str, Callable[[Sequence[str]], None]] = {"models": models_command}


def run(argv: Sequence[str] | None = None) -> LatentzooCLI | None:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); return the CLI object if any."""
    args = sys.argv[1:] if argv is None else list(argv)
    load_plugins()  # before parsing, so plugin classes resolve by name
    if args and args[0] in COMMANDS:
        COMMANDS[args[0]](args[1:])
        return None
    return LatentzooCLI(
        AutoencoderModule,
        InMemoryDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        trainer_defaults=TRAINER_DEFAULTS,
        save_config_kwargs={"overwrite": True},
        seed_everything_default=0,  # runs compare on the same initialisation unless told otherwise
        args=None if argv is None else args,
        auto_configure_optimizers=False,
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``latentzoo`` console script and ``python -m latentzoo``."""
    run(argv)


if __name__ == "__main__":
    main()
