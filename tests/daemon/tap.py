"""An eavesdropper on a TCP path, for the tests of what crosses the wire: a forwarder on a free
loopback port that passes every byte on to ``127.0.0.1:port`` and keeps a copy, both ways."""

from __future__ import annotations

import socket
import threading


class Tap:
    def __init__(self, port: int) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.target = ("127.0.0.1", port)
        self.seen = bytearray()
        self.lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                a, _ = self.listener.accept()
            except OSError:
                return
            try:
                b = socket.create_connection(self.target)
            except OSError:
                a.close()
                continue
            threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()
            threading.Thread(target=self._pipe, args=(b, a), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                with self.lock:
                    self.seen += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            src.close()
            dst.close()

    def bytes(self) -> bytes:
        """Everything seen so far, both directions."""
        with self.lock:
            return bytes(self.seen)

    def close(self) -> None:
        self.listener.close()
