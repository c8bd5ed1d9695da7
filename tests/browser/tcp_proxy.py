"""A small TCP proxy for the browser tests: 127.0.0.1:<port> forwards to a server's port,
and ``cut(seconds)`` makes a network drop (every open connection reset, new ones reset at
once for ``seconds``, then forwarding again), as a student's Wi-Fi does.

One thread runs a ``selectors`` loop over non-blocking sockets: the sockets are closed by
the thread that reads them, so a reset is a real one (SO_LINGER 0: the peer gets an RST,
not a polite FIN) and no thread is left blocked in ``recv`` on a closed socket.
"""

from __future__ import annotations

import selectors
import socket
import struct
import threading
import time

CHUNK = 65536
LINGER_RESET = struct.pack("ii", 1, 0)  # l_onoff=1, l_linger=0: close() sends an RST


def _reset(sock: socket.socket) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
    except OSError:
        pass
    sock.close()


class _Side:
    """One socket of a forwarded connection, with the bytes waiting to be written to it."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.out = bytearray()
        self.peer: _Side | None = None


class TcpProxy:
    """``TcpProxy(target_port)``: listens on ``self.port``; ``url`` is the proxied address."""

    def __init__(self, target_port: int, host: str = "127.0.0.1"):
        self.target = (host, target_port)
        self.listener = socket.create_server((host, 0))
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        self.accepted = 0  # connections forwarded
        self.refused = 0  # connections reset at once during a cut
        self.cuts: list[tuple[float, int]] = []  # (time.monotonic() of the cut, connections reset)
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector.register(self.listener, selectors.EVENT_READ, "accept")
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._sides: dict[socket.socket, _Side] = {}
        self._lock = threading.Lock()
        self._cut_request: float | None = None  # seconds of the drop asked for
        self._cut_done = threading.Event()
        self._refuse_until = 0.0
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="tcp-proxy", daemon=True)
        self._thread.start()

    # --- the test's side ----------------------------------------------------------------
    def cut(self, seconds: float) -> int:
        """Reset every open connection now and every new one for ``seconds``; returns the
        number of connections reset (each browser connection counts once)."""
        self._cut_done.clear()
        with self._lock:
            self._cut_request = seconds
        self._wake_w.send(b"x")
        if not self._cut_done.wait(10):
            raise RuntimeError("the proxy thread did not make the cut")
        return self.cuts[-1][1]

    def refusing(self) -> bool:
        return time.monotonic() < self._refuse_until

    def open_connections(self) -> int:
        with self._lock:
            return len(self._sides) // 2

    def close(self) -> None:
        self._stopping = True
        self._wake_w.send(b"x")
        self._thread.join(10)
        self._wake_w.close()

    # --- the proxy thread ---------------------------------------------------------------
    def _loop(self) -> None:
        try:
            while not self._stopping:
                for key, events in self._selector.select(timeout=0.5):
                    if key.data == "accept":
                        self._accept()
                    elif key.data == "wake":
                        try:
                            self._wake_r.recv(CHUNK)
                        except BlockingIOError:
                            pass
                    else:
                        side = key.data
                        if side.sock.fileno() < 0:
                            continue  # closed earlier in this round
                        if events & selectors.EVENT_READ:
                            self._read(side)
                        if events & selectors.EVENT_WRITE and side.sock.fileno() >= 0:
                            self._write(side)
                with self._lock:
                    seconds, self._cut_request = self._cut_request, None
                if seconds is not None:
                    self._make_cut(seconds)
        finally:
            for sock in list(self._sides):
                _reset(sock)
            self._sides.clear()
            self._selector.close()
            self.listener.close()
            self._wake_r.close()

    def _make_cut(self, seconds: float) -> None:
        with self._lock:
            sockets = list(self._sides)
        for sock in sockets:
            side = self._sides.get(sock)
            if side is not None:
                self._drop(side, reset=True)
        self._refuse_until = time.monotonic() + seconds
        self.cuts.append((time.monotonic(), len(sockets) // 2))
        self._cut_done.set()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            if self.refusing():
                self.refused += 1
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _reset(client)
                continue
            self.accepted += 1
            a, b = _Side(client), _Side(upstream)
            a.peer, b.peer = b, a
            for side in (a, b):
                side.sock.setblocking(False)
                side.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._selector.register(side.sock, selectors.EVENT_READ, side)
            with self._lock:
                self._sides[client] = a
                self._sides[upstream] = b

    def _read(self, side: _Side) -> None:
        try:
            data = side.sock.recv(CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(side, reset=True)
            return
        peer = side.peer
        if not data:  # this side closed: pass on what is left, then close both (HTTP does not half-close)
            try:
                peer.sock.setblocking(True)
                peer.sock.settimeout(2)
                peer.sock.sendall(peer.out)
            except OSError:
                pass
            self._drop(side, reset=False)
            return
        peer.out += data
        self._write(peer)

    def _write(self, side: _Side) -> None:
        if side.out:
            try:
                sent = side.sock.send(side.out)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self._drop(side, reset=True)
                return
            del side.out[:sent]
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if side.out else 0)
        self._selector.modify(side.sock, events, side)

    def _drop(self, side: _Side, *, reset: bool) -> None:
        """Close both sockets of the connection (with an RST when ``reset``)."""
        for s in (side, side.peer):
            with self._lock:
                known = self._sides.pop(s.sock, None) is not None
            if not known:
                continue
            try:
                self._selector.unregister(s.sock)
            except (KeyError, ValueError):
                pass
            if reset:
                _reset(s.sock)
            else:
                s.sock.close()
