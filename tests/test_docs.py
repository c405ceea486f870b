"""The documentation against the code and the results it quotes.

- Every relative link of README.md and docs/ reaches a file (and a heading, for ``#anchors``).
- Every command-line flag the docs show exists: ``latentzoo evaluate`` and ``latentzoo
  benchmark`` flags in their parsers; ``latentzoo fit`` flags among the CLI's groups (the
  trainer's, a registered model's or datamodule's arguments, the run-keeping callbacks');
  a ``perf/`` script's flags in its source.
- Every number of a table placed under ``<!-- results: PATH -->`` is a value of that results
  file (JSON or CSV), at the precision the table prints it: tables are written from the files,
  never typed.
"""

from __future__ import annotations

import csv
import inspect
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path

import lightning as L
import pytest

from latentzoo.benchmark.command import build_parser as benchmark_parser
from latentzoo.callbacks.checkpoint import LastCheckpoint
from latentzoo.callbacks.guard import FiniteLossGuard
from latentzoo.datamodules import DATAMODULES
from latentzoo.evaluation.command import build_parser as evaluate_parser
from latentzoo.zoo import DENSITIES, MODELS
from latentzoo.zoo.checkpoints import init_arguments

ROOT = Path(__file__).parents[1]
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
GENERATED = {"report.md"}  # written by latentzoo benchmark, checked against its own results


def doc_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def anchors(path: Path) -> set[str]:
    """GitHub's anchors of a markdown file's headings."""
    found = set()
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            text = line.lstrip("#").strip().lower()
            text = re.sub(r"[^\w\- ]", "", text).replace(" ", "-")
            found.add(text)
    return found


@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_every_relative_link_reaches_a_file(doc: Path) -> None:
    text = doc.read_text()
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:, data:
            continue
        file, _, anchor = target.partition("#")
        path = (doc.parent / file).resolve() if file else doc
        assert path.exists(), f"{doc_id(doc)}: link to {target} reaches nothing"
        if anchor and path.suffix == ".md":
            assert anchor in anchors(path), f"{doc_id(doc)}: no heading #{anchor} in {file}"


# -- command-line flags ----------------------------------------------------------------------


def options(parser: object) -> set[str]:
    """The option strings of a jsonargparse/argparse parser and its nested groups."""
    found: set[str] = set()
    for action in parser._actions:  # type: ignore[attr-defined]  # argparse's public list
        found |= {s for s in action.option_strings if s.startswith("--")}
    return found


def model_arguments() -> set[str]:
    names: set[str] = set()
    for _, cls in MODELS.items():
        names |= init_arguments(cls)
    for _, cls in DENSITIES.items():
        names |= {f"prior.{n}" for n in init_arguments(cls)}
    return names


def fit_flag_exists(flag: str) -> bool:
    """Whether ``latentzoo fit`` accepts ``flag`` (``--model.latent_dim``, ...)."""
    name = flag[2:].split("=", 1)[0]
    group, _, rest = name.partition(".")
    rest = re.sub(r"^(init_args|dict_kwargs)\.", "", rest)
    if group in ("config", "print_config", "ckpt_path", "seed_everything", "help") and not rest:
        return True
    if group == "model":
        return not rest or rest in model_arguments() or rest.split(".")[0] in model_arguments()
    if group == "data":
        args = set().union(*(init_arguments(cls) for _, cls in DATAMODULES.items()))
        return not rest or rest in args
    if group == "trainer":
        trainer = set(inspect.signature(L.Trainer).parameters)
        return rest.split(".")[0] in trainer or rest.split("+")[0] in trainer
    if group == "last":
        return rest in init_arguments(LastCheckpoint)
    if group == "guard":
        return rest in init_arguments(FiniteLossGuard)
    if group == "checkpoint":
        from lightning.pytorch.callbacks import ModelCheckpoint

        return rest in set(inspect.signature(ModelCheckpoint).parameters)
    return False


def commands(text: str) -> Iterator[tuple[str, list[str]]]:
    """(program, flags) of each command line in a document's code (blocks and inline)."""
    code = re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S) + re.findall(r"`([^`\n]+)`", text)
    for block in code:
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split("#", 1)[0]
            if "latentzoo evaluate" in line:
                program = "evaluate"
            elif "latentzoo benchmark" in line:
                program = "benchmark"
            elif re.search(r"latentzoo (fit|validate|test|predict)\b", line):
                program = "fit"
            elif m := re.search(r"python (perf/\w+\.py)", line):
                program = m[1]
            else:
                continue
            flags = re.findall(r"(?<![\w-])(--[a-z][\w.+-]*)", line)
            yield program, [f.rstrip(".") for f in flags]


@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_every_flag_the_docs_show_exists(doc: Path) -> None:
    known = {"evaluate": options(evaluate_parser()), "benchmark": options(benchmark_parser())}
    for program, flags in commands(doc.read_text()):
        for flag in flags:
            if program == "fit":
                ok = fit_flag_exists(flag)
            elif program in known:
                ok = flag.split("=", 1)[0] in known[program] or fit_flag_exists(flag)
            else:
                ok = f'"{flag.split("=", 1)[0]}"' in (ROOT / program).read_text()
            assert ok, f"{doc_id(doc)}: `{program}` has no option {flag}"


# -- numbers ----------------------------------------------------------------------------------


def results_values(path: Path) -> list[float]:
    """Every number in a results file (JSON values, CSV cells)."""
    if path.suffix == ".json":
        found: list[float] = []

        def walk(value: object) -> None:
            if isinstance(value, bool):
                return
            if isinstance(value, int | float):
                found.append(float(value))
            elif isinstance(value, dict):
                for v in value.values():
                    walk(v)
            elif isinstance(value, list):
                for v in value:
                    walk(v)
            elif isinstance(value, str):
                found.extend(float(t) for t in re.findall(r"-?\d+\.?\d*(?:e[-+]?\d+)?", value))

        walk(json.loads(path.read_text()))
        return found
    values = []
    for row in csv.reader(line for line in path.read_text().splitlines() if line[:1] != "#"):
        for cell in row:
            try:
                values.append(float(cell))
            except ValueError:
                continue
    return values


NUMBER = re.compile(r"(?<![\w.])-?\d[\d,]*\.?\d*(?:e[-+]?\d+)?(?![\w.])")


def table_numbers(lines: list[str]) -> Iterator[str]:
    """The numbers of the markdown table that starts ``lines`` (header row excluded)."""
    rows = [ln for ln in lines if ln.startswith("|")]
    for row in rows[2:]:  # the header and the |---| rule
        for cell in row.strip("|").split("|")[1:]:  # the first column names the row
            yield from NUMBER.findall(cell.replace("**", ""))


def matches(token: str, values: list[float]) -> bool:
    """Whether ``token`` prints one of ``values`` at its own precision."""
    text = token.replace(",", "")
    x = float(text)
    mantissa = text.lower().split("e")[0]
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    exponent = int(text.lower().split("e")[1]) if "e" in text.lower() else 0
    half_unit = 0.5 * 10 ** (exponent - decimals)  # of the last printed digit
    return any(abs(x - v) <= half_unit * 1.0001 + 1e-12 for v in values if math.isfinite(v))


def cited_blocks(doc: Path) -> Iterator[tuple[Path, list[str]]]:
    lines = doc.read_text().splitlines()
    for i, line in enumerate(lines):
        cited = re.match(r"<!-- results: (\S+) -->", line.strip())
        if cited:
            block: list[str] = []
            for following in lines[i + 1 :]:
                if following.startswith("|") or (not block and not following.strip()):
                    block.append(following)
                elif block:
                    break
            yield (doc.parent / cited[1]).resolve(), block


@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_every_number_of_a_cited_table_is_in_its_results_file(doc: Path) -> None:
    for path, block in cited_blocks(doc):
        assert path.is_file(), f"{doc_id(doc)} cites {path}, which does not exist"
        values = results_values(path)
        wrong = [t for t in table_numbers(block) if not matches(t, values)]
        assert not wrong, f"{doc_id(doc)}: {wrong[:5]} are not in {path.name}"


def test_the_checker_sees_a_wrong_number(tmp_path: Path) -> None:
    (tmp_path / "r.json").write_text(json.dumps({"fid": 12.3456, "n": 500}))
    doc = tmp_path / "d.md"
    doc.write_text(
        "<!-- results: r.json -->\n| m | fid | n |\n|---|---|---|\n| a | 12.35 | 500 |\n"
    )
    ((path, block),) = cited_blocks(doc)
    assert all(matches(t, results_values(path)) for t in table_numbers(block))
    doc.write_text("<!-- results: r.json -->\n| m | fid |\n|---|---|\n| a | 12.4 |\n")
    ((path, block),) = cited_blocks(doc)
    assert [t for t in table_numbers(block) if not matches(t, results_values(path))] == ["12.4"]


@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_the_docs_speak_of_the_code_not_of_its_history(doc: Path) -> None:
    """A reader has no issue tracker: no "issue 12", "the issue", "the slides"."""
    found = re.findall(r"\bissue \d+|\bthe issue\b|\bslides\b", doc.read_text(), flags=re.I)
    assert not found, f"{doc_id(doc)}: {found}"


MACHINE_PATH = re.compile(r"(?<![\w.])/(?:work|root|home|tmp|check)/")


def test_no_doc_or_results_file_carries_a_machine_path() -> None:
    """Commands and paths in docs and their results files are relative to the repository."""
    files = [p for p in [ROOT / "README.md", *(ROOT / "docs").rglob("*")]
             if p.suffix in (".md", ".json", ".csv", ".yaml", ".py")]  # fmt: skip
    assert files
    found = [f"{p.relative_to(ROOT)}: {m.group(0)}" for p in files
             for m in MACHINE_PATH.finditer(p.read_text())]  # fmt: skip
    assert not found, found
