"""The daemon: a pyzmq shell around groupcomm.core.Node (no protocol logic here)."""
