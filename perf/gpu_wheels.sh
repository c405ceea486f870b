#!/usr/bin/env bash
# The pure-Python wheels that perf/gpu_check.sh installs on a GPU machine without internet, whose
# image has torch, Lightning and torchmetrics but not what latentzoo's CLI needs besides. Run it
# from the repository root where pip reaches PyPI; it fills .whl/ (about 1 MB, keep it out of
# commits: echo /.whl/ >> "$(git rev-parse --git-common-dir)/info/exclude").
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 -d .whl \
  jsonargparse==4.53.0 docstring-parser==0.18.0 typeshed-client==2.15.0 torch-fidelity==0.4.0
ls .whl
