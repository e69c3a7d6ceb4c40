#!/usr/bin/env bash
# The whole test suite: lint, format, types, tests (including 200 simulator swarm seeds).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== ruff check";        .venv/bin/ruff check .
echo "== ruff format";       .venv/bin/ruff format --check .
echo "== mypy --strict";     .venv/bin/mypy --strict
echo "== pytest";            .venv/bin/pytest -q "$@"
