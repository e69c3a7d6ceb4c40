"""The blocking wrapper and the ``groupcomm`` command against the in-process daemon."""

from __future__ import annotations

import asyncio
import json

import pytest

from groupcomm.cli import main
from groupcomm.client import Message, RegularView, SyncConnection
from tests.client.harness import mini_daemon


async def test_sync_connection() -> None:
    async with mini_daemon() as d:

        def script() -> list[object]:
            with SyncConnection(d.endpoint, name="s") as conn:
                assert conn.private_name == "#s#d1"
                conn.join("g")
                view = conn.receive(timeout=5)
                conn.multicast_obj("g", [1, 2])
                msg = conn.receive(timeout=5)
                return [view, msg, conn.status()["daemon"]]

        view, msg, daemon = await asyncio.wait_for(asyncio.to_thread(script), 10)
        assert isinstance(view, RegularView) and view.members == ("#s#d1",)
        assert isinstance(msg, Message) and msg.unpack() == [1, 2]
        assert daemon == "d1"


async def test_cli_send_tail_status(capsys: pytest.CaptureFixture[str]) -> None:
    async with mini_daemon() as d:
        tail = asyncio.create_task(
            asyncio.to_thread(
                main, ["tail", "chat", "--json", "--count", "2", "--endpoint", d.endpoint]
            )
        )
        await asyncio.sleep(0.5)  # let tail join first
        rc = await asyncio.wait_for(
            asyncio.to_thread(
                main, ["send", "chat", "hi", "--service", "safe", "--endpoint", d.endpoint]
            ),
            10,
        )
        assert rc == 0
        rc = await asyncio.wait_for(
            asyncio.to_thread(main, ["send", "chat", "again", "--endpoint", d.endpoint]), 10
        )
        assert rc == 0
        assert await asyncio.wait_for(tail, 10) == 0
        lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
        assert lines[0]["type"] == "view" and lines[0]["cause"] == "JOIN"
        messages = [x for x in lines if x["type"] == "message"]
        assert [(m["text"], m["service"]) for m in messages] == [
            ("hi", "safe"),
            ("again", "agreed"),
        ]
        rc = await asyncio.wait_for(
            asyncio.to_thread(main, ["status", "--json", "--endpoint", d.endpoint]), 10
        )
        assert rc == 0
        info = json.loads(capsys.readouterr().out)
        assert info["daemon"] == "d1" and info["frontend"]["opened"] == 3


def test_cli_help_on_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    for sub in ([], ["daemon"], ["send"], ["tail"], ["status"], ["demo"]):
        with pytest.raises(SystemExit) as exit_info:
            main([*sub, "--help"])
        assert exit_info.value.code == 0
        assert "usage:" in capsys.readouterr().out


async def test_cli_reports_unreachable_daemon(capsys: pytest.CaptureFixture[str]) -> None:
    rc = await asyncio.wait_for(
        asyncio.to_thread(main, ["status", "--endpoint", "ipc:///tmp/gc-nobody-here.sock"]), 10
    )
    assert rc == 1 and "no daemon at" in capsys.readouterr().err


def test_doc_examples_compile_and_name_real_api() -> None:
    import re
    from pathlib import Path

    import groupcomm.client as gc

    text = (Path(__file__).resolve().parents[2] / "docs" / "client.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) == 5
    for block in blocks:
        compile(block, "docs/client.md", "exec")
    for name in re.findall(r"gc\.(\w+)", text):
        assert hasattr(gc, name), name
    for method in ("join", "leave", "multicast", "multicast_obj", "drain", "status", "admin"):
        assert hasattr(gc.Connection, method) and f"conn.{method}(" in text
