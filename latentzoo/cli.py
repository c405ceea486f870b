"""The ``latentzoo`` command: LightningCLI for ``fit|validate|test|predict``, plus ``models``.

    latentzoo fit --model VAE --data FashionMNIST --trainer.max_epochs 5
    latentzoo fit --config configs/vae_fashion_mnist.yaml --ckpt_path last
    latentzoo models
    latentzoo evaluator fit --data FashionMNIST     # the domain evaluator of FID and diversity
    latentzoo evaluate --ckpt_path runs/VAE-Synthetic/version_0/checkpoints/last.ckpt
    latentzoo benchmark fashion-cpu                 # a suite of models, trained and scored alike

Model and data are chosen by class name (subclass mode), so plugin models and user subclasses
work like built-in ones. The datamodule's ``data_shape`` is linked to the model's. With no
``--model``/``--data`` the command trains the quickstart: a VAE on the synthetic data set.

Each run writes to its own folder ``runs/<Model>-<Data>/version_N/``: TensorBoard logs, the saved
config, and ``checkpoints/`` with ``last.ckpt`` (:class:`~latentzoo.callbacks.LastCheckpoint`:
every epoch, every few minutes, on Ctrl-C or a crash; never non-finite weights) and the best
checkpoint by ``val/loss``. ``--ckpt_path last`` resumes the newest ``last.ckpt`` of that model and
data set, exactly where it stopped, and says which file it took. A non-finite or exploding loss
stops the run (:class:`~latentzoo.callbacks.FiniteLossGuard`) with one line and exit status 1.
SIGTERM (a time limit, ``kill``) stops any command like Ctrl-C within seconds, evaluations included
(:mod:`latentzoo.signals`), with exit status 143 and one line that says how to resume.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from jsonargparse import Namespace
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities import rank_zero_only
from typing_extensions import override

import latentzoo.callbacks  # noqa: F401  (imported so --trainer.callbacks+=FIDCallback resolves)
from latentzoo.benchmark import benchmark_command
from latentzoo.callbacks.checkpoint import LastCheckpoint
from latentzoo.callbacks.guard import FiniteLossGuard, NonFiniteLossError
from latentzoo.datamodules import InMemoryDataModule
from latentzoo.evaluation.command import evaluate_command
from latentzoo.loading import check_checkpoint_args
from latentzoo.metrics.classifier import DomainClassifier
from latentzoo.parsing import LatentzooArgumentParser
from latentzoo.signals import StopOnSigterm
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
    """LightningCLI with the data shape linked into the model, run folders named per run, and
    the run-keeping callbacks (``last.ckpt``, the finite-loss guard) always on."""

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
                "checkpoint.save_last": False,  # LastCheckpoint keeps last.ckpt (see its doc)
                "checkpoint.filename": "epoch{epoch:03d}-step{step}",
                "checkpoint.auto_insert_metric_name": False,
            }
        )
        parser.add_lightning_class_args(LastCheckpoint, "last")
        parser.add_lightning_class_args(FiniteLossGuard, "guard")

    @override
    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")  # self.subcommand is set after this call
        config = self.config[subcommand] if subcommand else self.config
        if config.get("ckpt_path") == "last":
            config.ckpt_path = str(latest_checkpoint(runs_folder(config)))
            if _launched_as_rank_zero():
                print(f"latentzoo: resuming from {config.ckpt_path}", file=sys.stderr)
        # Before LightningCLI reads the checkpoint's hyper-parameters into the config.
        check_checkpoint_args(parser, self.config)

    @override
    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        logger = config.trainer.logger
        init_args = logger.get("init_args") if isinstance(logger, Namespace) else None
        if init_args is not None and init_args.get("name") in (None, "lightning_logs"):
            init_args.name = run_name(config)

    def after_fit(self) -> None:  # LightningCLI calls after_<subcommand> when it exists
        config = self.config[self.subcommand] if self.subcommand else self.config
        log_dir = self.trainer.log_dir  # a broadcast under DDP: every rank must ask
        print_summary(self.trainer, config, log_dir)


def run_name(config: Namespace) -> str:
    """``<Model>-<Data>``: the folder of a model's runs on a data set."""
    return f"{_class_name(config.model)}-{_class_name(config.data)}"


def runs_folder(config: Namespace) -> Path:
    """Where the runs of this config's model and data set keep their version folders."""
    logger = config.trainer.logger
    if not logger:
        return Path(config.trainer.default_root_dir or ".")
    init_args = logger.get("init_args") if isinstance(logger, Namespace) else None
    if init_args is None:
        return Path(RUNS_DIR) / run_name(config)
    name = init_args.get("name")
    name = run_name(config) if name in (None, "lightning_logs") else name
    return Path(init_args.get("save_dir") or RUNS_DIR) / str(name)


def latest_checkpoint(run_dir: Path) -> Path:
    """The newest ``last.ckpt`` of the runs in ``run_dir`` (``version_*/checkpoints/``).

    Raises:
        SystemExit: There is none; the message says where it looked.
    """
    found = [
        *run_dir.glob("*/checkpoints/last.ckpt"),
        *run_dir.glob("checkpoints/last*.ckpt"),  # no logger, or latentzoo 0.1's shared folder
    ]
    if not found:
        raise SystemExit(
            f"latentzoo: --ckpt_path last: no last.ckpt under {run_dir}/version_*/checkpoints; "
            f"train first, or pass the checkpoint's path"
        )
    return max(found, key=lambda p: p.stat().st_mtime)


@rank_zero_only
def print_summary(trainer: Trainer, config: Namespace, log_dir: str | None) -> None:
    """What a finished run measured and where it left its files, as they are on disk."""
    run = f"{_class_name(config.model)} on {_class_name(config.data)}"
    print(f"\nlatentzoo: {run}, {trainer.current_epoch} epochs, {trainer.global_step} steps")
    scores = {k: float(v) for k, v in sorted(trainer.callback_metrics.items())
              if k.startswith("val/") and v.numel() == 1}  # fmt: skip
    for key, value in scores.items():
        print(f"  {key:<24} {value:.6g}")
    if log_dir:
        print(f"  logs         {log_dir}")
    for callback in trainer.callbacks:  # type: ignore[attr-defined]
        if isinstance(callback, LastCheckpoint) and callback.path is not None:
            print(f"  last         {callback.path} ({callback.describe_saved()})")
    best = trainer.checkpoint_callback
    if isinstance(best, ModelCheckpoint) and best.best_model_path:
        print(f"  best         {best.best_model_path} (by {best.monitor})")


def _launched_as_rank_zero() -> bool:
    """Whether this process is the one the user started (DDP's launcher sets the ranks' env)."""
    return os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0"


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


CONFIGS_DIR = Path(__file__).parent / "configs"


def with_packaged_configs(args: list[str]) -> list[str]:
    """``args`` with each ``--config NAME`` that is not a file replaced by the packaged config of
    that name (``quickstart``, ``quickstart.yaml`` or ``configs/quickstart.yaml``), so the
    configs work from an installed package, outside the source tree."""
    out = list(args)
    for i, arg in enumerate(out):
        flag, eq, value = arg.partition("=")
        if flag not in ("--config", "-c"):
            continue
        if not eq:
            if i + 1 >= len(out):
                continue
            value = out[i + 1]
        if Path(value).exists():
            continue
        name = Path(value).name
        packaged = CONFIGS_DIR / (name if name.endswith(".yaml") else f"{name}.yaml")
        if packaged.is_file():
            if eq:
                out[i] = f"{flag}={packaged}"
            else:
                out[i + 1] = str(packaged)
    return out


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


class EvaluatorCLI(LightningCLI):
    """Fits a :class:`~latentzoo.metrics.classifier.DomainClassifier` on the datamodule's training
    split, reports its accuracy on the test split (``test/acc``, printed), and saves a checkpoint to
    ``--save_path`` that :class:`~latentzoo.metrics.extractors.DomainFeatures` loads."""

    @override
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.data_shape", "model.data_shape", apply_on="instantiate")
        parser.add_argument(
            "--save_path",
            type=str | None,
            default=None,
            help="Checkpoint to write (default: evaluators/<DataModule>.ckpt)",
        )

    def after_fit(self) -> None:
        config = self.config[self.subcommand]
        save_path = config.save_path or f"evaluators/{type(self.datamodule).__name__}.ckpt"
        results = self.trainer.test(self.model, datamodule=self.datamodule, verbose=False)
        acc = results[0]["test/acc"] if results else float("nan")
        self.model.test_accuracy = float(acc)  # saved with it: results files quote it
        self.trainer.save_checkpoint(save_path)
        if self.trainer.is_global_zero:
            print(f"domain evaluator: test accuracy {acc:.4f}; saved to {save_path}")


def evaluator_command(argv: Sequence[str]) -> None:
    """``latentzoo evaluator fit --data FashionMNIST ...``: train and save a domain evaluator."""
    EvaluatorCLI(
        DomainClassifier,
        InMemoryDataModule,
        subclass_mode_data=True,
        trainer_defaults={"max_epochs": 3, "logger": False, "enable_checkpointing": False},
        save_config_callback=None,
        args=list(argv),
    )


# Sub-commands that are not LightningCLI's; each takes the arguments after its name.
COMMANDS: dict[str, Callable[[Sequence[str]], None]] = {
    "models": models_command,
    "evaluator": evaluator_command,  # latentzoo evaluator fit --data FashionMNIST
    "evaluate": evaluate_command,  # latentzoo evaluate --ckpt_path runs/.../last.ckpt
    "benchmark": benchmark_command,  # latentzoo benchmark fashion-cpu
}


def run(argv: Sequence[str] | None = None) -> LatentzooCLI | None:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); return the CLI object if any."""
    args = sys.argv[1:] if argv is None else list(argv)
    load_plugins()  # before parsing, so plugin classes resolve by name
    if args and args[0] in COMMANDS:
        COMMANDS[args[0]](args[1:])
        return None
    args = with_packaged_configs(args)
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
    """Entry point of the ``latentzoo`` console script and ``python -m latentzoo``.

    A run stopped by the finite-loss guard ends with its one-line reason and exit status 1; any
    command stopped by SIGTERM, with what it kept and exit status 143.
    """
    with StopOnSigterm() as sigterm:
        try:
            run(argv)
        except NonFiniteLossError as err:
            if _launched_as_rank_zero():
                print(f"latentzoo: {err}", file=sys.stderr)
            raise SystemExit(1) from None
        except BaseException:  # after SIGTERM: Lightning's sys.exit(1), a rank's lost peer
            if sigterm.received is None:
                raise
            sigterm.exit(announce=_launched_as_rank_zero())


if __name__ == "__main__":
    main()
