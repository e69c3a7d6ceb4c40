#!/usr/bin/env bash
# The main job: a simulated 3-daemon cluster partitions and merges; prints views and deliveries.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m sim demo "$@"
