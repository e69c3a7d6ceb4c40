#!/usr/bin/env bash
# The main job: a live local cluster (3 daemon processes on loopback) doing real work: agreed
# order across clients, a partition by fault injection, a heal and a merge, traces checked.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/groupcomm demo "$@"
