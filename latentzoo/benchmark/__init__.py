"""``latentzoo benchmark``: suites of models trained and scored alike, one report.

:mod:`~latentzoo.benchmark.suite` reads and expands a suite, :mod:`~latentzoo.benchmark.runner`
trains and scores its cells, :mod:`~latentzoo.benchmark.results` and
:mod:`~latentzoo.benchmark.report` write the table and the report.
"""

from latentzoo.benchmark.command import benchmark_command
from latentzoo.benchmark.schema import Cell, Suite, SuiteError
from latentzoo.benchmark.suite import builtin_suites, load_suite

__all__ = [
    "Cell",
    "Suite",
    "SuiteError",
    "benchmark_command",
    "builtin_suites",
    "load_suite",
]
