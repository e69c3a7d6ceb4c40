"""The daemon: asyncio + pyzmq shell around groupcomm.core.Node (no protocol logic here)."""
