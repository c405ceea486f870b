"""Command-line errors as one sentence each: what was wrong and what to do.

jsonargparse reports a bad ``--model.latent_dim 0`` or ``--model VAEE`` inside a dump of the
union it tried (``Subtypes: [...]``, ``Given value type: ...``) after 70 lines of usage, and a
constructor's ``ValueError`` at instantiation as a traceback. :class:`LatentzooArgumentParser`
turns each into one line on stderr and exits with status 2 (argparse's convention for usage
errors): the constructor's own sentence, the unknown name with the closest known ones, the
option with its did-you-mean. Messages it does not recognise are printed as jsonargparse wrote
them, without the usage; ``JSONARGPARSE_DEBUG=1`` raises instead, with every traceback.

It also keeps what the user typed (``typed_args``) for
:func:`latentzoo.loading.check_checkpoint_args`.
"""

from __future__ import annotations

import difflib
import inspect
import os
import re
from collections.abc import Sequence
from typing import Any, NoReturn

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.cli import LightningArgumentParser
from typing_extensions import override

from latentzoo.datamodules import InMemoryDataModule
from latentzoo.zoo import list_models
from latentzoo.zoo.checkpoints import init_arguments

__all__ = [
    "LatentzooArgumentParser",
    "constructor_error",
    "explain_parse_error",
]

USAGE_ERROR = 2
_COMMANDS = ("fit", "validate", "test", "predict")
_CLASS_KEYS = {"model": L.LightningModule, "data": L.LightningDataModule,
               "trainer.callbacks": Callback}  # fmt: skip


class LatentzooArgumentParser(LightningArgumentParser):
    """LightningCLI's parser, with short errors.

    Args:
        typed_args: The command line as the user typed it, before the CLI added anything (the
            quickstart's ``--model VAE``); None: ``sys.argv[1:]``.
    """

    def __init__(self, *args: Any, typed_args: Sequence[str] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.typed_args = None if typed_args is None else list(typed_args)

    @override
    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if not self.exit_on_error or os.environ.get("JSONARGPARSE_DEBUG"):
            super().error(message, ex)  # raises: a caller handles it, or the user wants it all
        parser = getattr(ex, "subcommand_parser", None) or self
        command = " ".join(["latentzoo", *_command(parser.prog)])
        options = list(parser._option_string_actions)
        short = explain_parse_error(message, options, command)
        self.fail(*(short or (message, f"{command} --help")))

    @override
    def instantiate_classes(self, cfg: Any, *args: Any, **kwargs: Any) -> Any:
        # LightningCLI calls instantiate_classes, which jsonargparse >= 4.49 renamed instantiate
        instantiate = getattr(super(), "instantiate", super().instantiate_classes)
        try:
            return instantiate(cfg, *args, **kwargs)
        except (ValueError, TypeError) as err:
            found = constructor_error(err)
            if found is None or os.environ.get("JSONARGPARSE_DEBUG"):
                raise
            key, name, cause = found
            command = f"latentzoo {cfg.get('subcommand') or 'fit'}"
            self.fail(f"--{key} {name}: {cause}", f"{command} --{key}.help {name}")

    def fail(self, sentence: str, see: str) -> NoReturn:
        """Print ``error: <sentence> (see `<see>`)`` on stderr and exit with status 2."""
        self.exit(USAGE_ERROR, f"error: {sentence} (see `{see}`)\n")


def _command(prog: str) -> list[str]:
    """``["fit"]`` for the parser of ``latentzoo fit``, ``[]`` for the main parser."""
    last = prog.split()[-1:]
    return last if last and last[0] in _COMMANDS else []


# -- parse errors -----------------------------------------------------------------------------


def explain_parse_error(
    message: str, options: Sequence[str], command: str = "latentzoo fit"
) -> tuple[str, str] | None:
    """One sentence for a jsonargparse error, and the help to see; None where it is unknown.

    Args:
        message: What jsonargparse passes to ``ArgumentParser.error``.
        options: The parser's option strings, for did-you-mean on unrecognized arguments.
        command: The command that failed (``latentzoo fit``), for the help it points to.
    """
    see = f"{command} --help"
    unrecognized = re.match(r"unrecognized arguments: (.*)", message)
    if unrecognized:
        flags = [a.split("=")[0] for a in unrecognized[1].split() if a.startswith("-")]
        sentence = "; ".join(_unknown_option(flag, options) for flag in flags)
        return (sentence, see) if sentence else None
    key_match = re.match(r'Parser key "([^"]+)":\s*(.*)', message)
    if key_match is None:
        return None
    key = key_match[1]
    problem = _indented_block(message, r"Problem with given class_path '([^']+)':")
    if problem is not None:
        name = problem[0].rsplit(".", 1)[-1]
        return _class_problem(key, name, problem[1]), f"{command} --{key}.help {name}"
    given = re.search(r"Given value type: <class 'str'>\s*\n\s*Given value: (\S+)\s*$", message)
    if given and key in _CLASS_KEYS and "." not in given[1]:
        return _unknown_class(key, given[1]), "latentzoo models" if key == "model" else see
    nested = re.search(r"Given value: NestedArg\(key='([^']+)'", message)
    if nested and key in _CLASS_KEYS:
        return f"--{key}.{nested[1]} needs a class first: give --{key} NAME before it", see
    subtypes = re.search(r"Subtypes: \[(.*)\]", message)
    value = re.search(r"Given value: (.*)$", message)
    if subtypes and value:
        expected = _either(_readable(t.strip()) for t in subtypes[1].split(","))
        return f"--{key}: expected {expected}, got {value[1]}", see
    return (f"--{key}: {_readable(key_match[2])}", see) if "\n" not in message else None


def _indented_block(message: str, header: str) -> tuple[str, str] | None:
    """The first capture of ``header`` and the lines indented below it, joined."""
    lines = message.splitlines()
    for i, line in enumerate(lines):
        found = re.search(header, line)
        if found is None:
            continue
        depth = len(line) - len(line.lstrip(" -"))
        block = []
        for below in lines[i + 1 :]:
            if below.strip() and len(below) - len(below.lstrip(" ")) <= depth:
                break
            block.append(below.strip())
        return found[1], " ".join(b for b in block if b)
    return None


def _class_problem(key: str, name: str, block: str) -> str:
    """``--model.latent_dims`` (not an argument) or ``--model.latent_dim abc`` (bad value)."""
    option = re.match(r"Option '([^']+)' is not accepted", block)
    if option:
        wrong = option[1]
        arguments = sorted(_class_arguments(_CLASS_KEYS.get(key), name))
        close = difflib.get_close_matches(wrong, arguments, n=3)
        hint = (f"did you mean {_either(f'--{key}.{c}' for c in close)}?" if close
                else f"{name} takes {', '.join(arguments) or 'no arguments'}")  # fmt: skip
        return f"--{key}.{wrong} is not an argument of {name}; {hint}"
    value = re.match(r'Parser key "([^"]+)":\s*(.*)', block)
    if value:
        return f"--{key}.{value[1]}: {_readable(value[2])}"
    return f"--{key} {name}: {_readable(block)}"


def _unknown_option(flag: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(flag, [o for o in options if o.startswith("--")], n=3)
    hint = f"; did you mean {_either(close)}?" if close else ""
    return f"unrecognized argument {flag}{hint}"


def _unknown_class(key: str, name: str) -> str:
    known = _known_classes(key)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f"did you mean {_either(close)}? " if close else ""
    if key == "model":
        return f"--model {name}: no such model; {hint}the zoo: {', '.join(known)}"
    if key == "data":
        return f"--data {name}: no such data set; {hint}data sets: {', '.join(known)}"
    return f"--{key} {name}: no such class; {hint}give a class name or a full import path"


def _known_classes(key: str) -> list[str]:
    """Names ``--<key>`` accepts: the registry's models, the datamodules, imported callbacks."""
    if key == "model":
        return list_models()
    base = InMemoryDataModule if key == "data" else _CLASS_KEYS[key]
    classes = [c for c in _subclasses(base) if not inspect.isabstract(c)]
    return sorted({c.__name__ for c in classes if not c.__name__.startswith("_")})


def _subclasses(cls: type) -> list[type]:
    found: list[type] = []
    direct: list[type] = type.__subclasses__(cls)
    for sub in direct:
        found += [sub, *_subclasses(sub)]
    return found


def _class_arguments(base: type | None, name: str) -> set[str]:
    """The ``__init__`` argument names of the subclass ``name`` of ``base``."""
    found = [c for c in _subclasses(base or object) if c.__name__ == name]
    return init_arguments(found[0]) if found else set()


def _readable(text: str) -> str:
    """jsonargparse's words as users write them: ``Expected a <class 'int'>``: ``expected int``."""
    text = re.sub(r"<class '(?:[\w.]+\.)?(\w+)'>", r"\1", text)
    text = re.sub(r"typing\.Literal\[(.*?)\]", r"one of \1", text)
    return re.sub(r"Expected a (.*?)\. Got value: (.*)", r"expected \1, got \2", text)


def _either(names: Any) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


# -- constructor errors -----------------------------------------------------------------------


def constructor_error(err: BaseException) -> tuple[str, str, BaseException] | None:
    """``(key, class name, error)`` where ``err`` comes from a model's, datamodule's or
    callback's ``__init__`` (a ValueError or TypeError there is a bad argument); else None."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        found = _constructing(current) if isinstance(current, (ValueError, TypeError)) else []
        if found:
            key, obj = found[0]
            return key, type(obj).__name__, current
        current = current.__cause__ or current.__context__
    return None


def _constructing(err: BaseException) -> list[tuple[str, Any]]:
    """The CLI keys and objects whose ``__init__`` ``err`` passed through, outermost first."""
    found = []
    tb = err.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        obj = frame.f_locals.get("self") if frame.f_code.co_name == "__init__" else None
        found += [(key, obj) for key, base in _CLASS_KEYS.items() if isinstance(obj, base)]
        tb = tb.tb_next
    return found
