"""The ``latentzoo`` command: LightningCLI for ``fit|validate|test|predict``, plus ``models``.

    latentzoo fit --model VAE --data FashionMNIST --trainer.max_epochs 5
    latentzoo fit --config configs/vae_fashion_mnist.yaml --ckpt_path last
    latentzoo models
    latentzoo evaluator fit --data FashionMNIST     # the domain evaluator of FID and diversity

Model and data are chosen by class name (subclass mode), so plugin models and user subclasses
work like built-in ones. The datamodule's ``data_shape`` is linked to the model's. With no
``--model``/``--data`` the command trains the quickstart: a VAE on the synthetic data set.

Each run writes to ``runs/<Model>-<Data>/``: TensorBoard logs and the saved config in
``version_N/``, and ``checkpoints/`` with ``last.ckpt`` and the best checkpoint by ``val/loss``.
An exception or Ctrl-C saves a checkpoint first, so nothing is lost on a crash.
The checkpoint folder is shared by the runs of one model and data set, so ``--ckpt_path last``
resumes the latest of them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

from jsonargparse import Namespace
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities import rank_zero_only
from typing_extensions import override

import latentzoo.callbacks  # noqa: F401  (imported so --trainer.callbacks+=FIDCallback resolves)
from latentzoo.datamodules import InMemoryDataModule
from latentzoo.evaluator import evaluator_command
from latentzoo.loading import check_checkpoint_args
from latentzoo.parsing import LatentzooArgumentParser
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
                "checkpoint.monitor": "val/loss",
                "checkpoint.mode": "min",
                "checkpoint.save_top_k": 1,
                "checkpoint.save_last": True,
                "checkpoint.save_on_exception": True,  # a crash or Ctrl-C still updates last.ckpt
                "checkpoint.filename": "epoch{epoch:03d}-step{step}",
                "checkpoint.auto_insert_metric_name": False,
            }
        )

    @override
    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        super().parse_arguments(parser, args)
        check_checkpoint_args(parser, self.config)  # before LightningCLI reads the ckpt's hparams

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

    def after_fit(self) -> None:  # LightningCLI calls after_<subcommand> when it exists
        config = self.config[self.subcommand] if self.subcommand else self.config
        print_summary(self.trainer, config)


@rank_zero_only
def print_summary(trainer: Trainer, config: Namespace) -> None:
    """What a finished run measured and where it left its files."""
    run = f"{_class_name(config.model)} on {_class_name(config.data)}"
    print(f"\nlatentzoo: {run}, {trainer.current_epoch} epochs, {trainer.global_step} steps")
    scores = {k: float(v) for k, v in sorted(trainer.callback_metrics.items())
              if k.startswith("val/") and v.numel() == 1}  # fmt: skip
    for key, value in scores.items():
        print(f"  {key:<24} {value:.6g}")
    if trainer.log_dir:
        print(f"  logs         {trainer.log_dir}")
    checkpoint = trainer.checkpoint_callback
    if isinstance(checkpoint, ModelCheckpoint) and checkpoint.dirpath:
        best = checkpoint.best_model_path or "-"
        print(f"  checkpoints  {checkpoint.dirpath} (last.ckpt; best by val/loss: {best})")


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


# With neither flag nor a config, a run is the quickstart's model and data. They are inserted as
# arguments, not parser defaults: a default class's init_args would carry over (lr, width, ...)
# into whatever class --model names.
QUICKSTART = {"--model": "VAE", "--data": "Synthetic"}
LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")


def with_quickstart_defaults(args: list[str]) -> list[str]:
    """``args`` with ``--model VAE`` / ``--data Synthetic`` added where neither is given."""
    if not args or args[0] not in LIGHTNING_COMMANDS:
        return args
    if any(a == "--config" or a.startswith("--config=") for a in args):
        return args
    extra: list[str] = []
    for flag, value in QUICKSTART.items():
        if not any(a == flag or a.startswith(flag + "=") for a in args):
            extra += [flag, value]
    return [args[0], *extra, *args[1:]]


# Sub-commands that are not LightningCLI's; each takes the arguments after its name.
COMMANDS: dict[str, Callable[[Sequence[str]], None]] = {
    "models": models_command,
    "evaluator": evaluator_command,  # latentzoo evaluator fit --data FashionMNIST
}


def run(argv: Sequence[str] | None = None) -> LatentzooCLI | None:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); return the CLI object if any."""
    args = sys.argv[1:] if argv is None else list(argv)
    load_plugins()  # before parsing, so plugin classes resolve by name
    if args and args[0] in COMMANDS:
        COMMANDS[args[0]](args[1:])
        return None
    typed_args = args  # what the user typed, for check_checkpoint_args
    args = with_quickstart_defaults(args)
    if argv is None:
        sys.argv[1:] = args  # LightningCLI warns when given args while sys.argv has some too
    return LatentzooCLI(
        AutoencoderModule,
        InMemoryDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        trainer_defaults=TRAINER_DEFAULTS,
        save_config_kwargs={"overwrite": True},
        parser_class=LatentzooArgumentParser,  # one-line errors
        parser_kwargs={"typed_args": typed_args},
        seed_everything_default=0,  # runs compare on the same initialisation unless told otherwise
        args=None if argv is None else args,  # None: parse sys.argv
        auto_configure_optimizers=False,
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``latentzoo`` console script and ``python -m latentzoo``."""
    run(argv)


if __name__ == "__main__":
    main()
