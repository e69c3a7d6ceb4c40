"""docs/logfeeds.md stays true to the code: its examples compile and name real API, and every
option it (and the log-feed section of docs/operations.md) gives ``send``, ``publish`` and
``tail`` exists."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import groupcomm.logfeed as logfeed
from groupcomm.cli import build_parser

DOCS = Path(__file__).resolve().parents[2] / "docs"
DOC = DOCS / "logfeeds.md"


def _options(command: str) -> set[str]:
    parser = build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {opt for action in subs.choices[command]._actions for opt in action.option_strings}


def test_logfeeds_doc_matches_the_code() -> None:
    text = DOC.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) == 2
    for block in blocks:
        compile(block, str(DOC), "exec")
    for name in re.findall(r"from groupcomm\.logfeed import ([\w, ]+)", text):
        for item in name.split(","):
            assert hasattr(logfeed, item.strip()), item
    text += (DOCS / "operations.md").read_text()
    for command in ("send", "publish", "tail"):
        have = _options(command)
        lines = re.findall(rf"groupcomm {command} [^\n`]*", text)
        assert lines, command
        for line in lines:
            for option in re.findall(r"--[a-z-]+", line):
                assert option in have, (command, option)
