"""A TCP proxy the fault suite controls, in front of the test's PostgreSQL (standard library
only: one thread accepts, one thread per connection pumps bytes both ways).

Modes:

- ``pass``: bytes flow both ways (the start).
- ``cut``: an outage. Every connection is closed, both sides, and the listening socket too, so
  new connections are refused until ``pass_()``.
- ``blackhole``: half-open connections. The connections open at that moment stay open but
  forward nothing from then on (bytes are read and dropped, a close is not passed on, like a
  network that lost its state), so a client waits for an answer that never comes; the
  kernel still acknowledges what it sends, so neither TCP keepalives nor a user timeout
  notice. New connections pass normally. ``pass_()`` heals the network: the server side of a
  blackholed connection whose client has gone is closed then (as the server would learn at
  its next packet), the others stay dead until their client closes them.
"""

from __future__ import annotations

import contextlib
import errno
import random
import select
import socket
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

#: The proxy listens on a port below the ephemeral range (32768-60999 here), so that no
#: outgoing connection takes it while it is closed for an outage.
PORTS = range(20000, 32000)


class _Link:
    """One client connection and its server connection."""

    def __init__(self, client: socket.socket, server: socket.socket):
        self.client, self.server = client, server
        self.blackholed = False
        self.client_gone = False
        self.closed = False
        self.lock = threading.Lock()

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
        for sock in (self.client, self.server):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the pump's select
            with contextlib.suppress(OSError):
                sock.close()


class Proxy:
    def __init__(self, target: tuple[str, int], host: str = "127.0.0.1", port: int | None = None):
        self.target = target
        self.host = host
        self.port = port or 0
        self.mode = "pass"
        self.accepted = 0  # connections accepted in all
        self._links: set[_Link] = set()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- control ----------------------------------------------------------------------

    def start(self) -> Proxy:
        if self.port:
            self._listen()
        else:  # a free port of our own, outside the ephemeral range
            ports = list(PORTS)
            random.shuffle(ports)
            for port in ports[:200]:
                self.port = port
                try:
                    self._listen()
                    break
                except OSError as exc:
                    if exc.errno != errno.EADDRINUSE:
                        raise
            else:
                raise RuntimeError("no free port for the proxy")
        return self

    def url(self, database_url: str) -> str:
        """``database_url`` (postgres://user@host:port/name) with this proxy as host:port."""
        parts = urlsplit(database_url)
        auth = parts.netloc.rpartition("@")[0]
        return urlunsplit(parts._replace(netloc=f"{auth}@{self.host}:{self.port}"
                                         if auth else f"{self.host}:{self.port}"))

    def cut(self) -> None:
        """An outage: close every connection and refuse new ones."""
        with self._lock:
            self.mode = "cut"
            links, self._links = set(self._links), set()
            listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):  # stops listening now, even while in select()
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for link in links:
            link.close()

    def blackhole(self) -> int:
        """Half-open: the connections open now forward nothing from now on; new ones pass.
        Returns how many connections were blackholed."""
        with self._lock:
            self.mode = "blackhole"
            links = [link for link in self._links if not link.closed]
            for link in links:
                link.blackholed = True
        return len(links)

    def pass_(self) -> None:
        """Back to normal: listen again after a cut; close the server side of blackholed
        connections whose client has gone."""
        with self._lock:
            self.mode = "pass"
            gone = [link for link in self._links if link.blackholed and link.client_gone]
        for link in gone:
            self._drop(link)
        if self._listener is None:
            self._listen()

    def open_connections(self) -> int:
        with self._lock:
            return sum(1 for link in self._links if not link.closed)

    def stop(self) -> None:
        self._stopped.set()
        self.cut()
        for thread in self._threads:
            thread.join(5)

    # -- the threads ------------------------------------------------------------------

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self.host, self.port))
            listener.listen(128)
        except OSError:
            listener.close()
            raise
        with self._lock:
            self._listener = listener
        self._spawn(self._accept, listener)

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True,
                                  name=f"proxy-{self.port}")
        thread.start()
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]

    def _accept(self, listener: socket.socket) -> None:
        while not self._stopped.is_set():
            with self._lock:
                if self._listener is not listener:
                    return
            try:
                ready, _, _ = select.select([listener], [], [], 0.1)
                if not ready:
                    continue
                client, _ = listener.accept()
            except (OSError, ValueError):  # closed by cut()
                return
            try:
                server = socket.create_connection(self.target, timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            link = _Link(client, server)
            with self._lock:
                if self._listener is not listener:  # cut meanwhile
                    link.close()
                    return
                self._links.add(link)
                self.accepted += 1
            self._spawn(self._pump, link)

    def _pump(self, link: _Link) -> None:
        other = {link.client: link.server, link.server: link.client}
        watched = {link.client, link.server}
        try:
            while watched and not link.closed and not self._stopped.is_set():
                ready, _, _ = select.select(list(watched), [], [], 0.2)
                for sock in ready:
                    data = sock.recv(65536)
                    if link.blackholed:  # read and dropped; a close is not passed on
                        if not data:
                            watched.discard(sock)
                            if sock is link.client:
                                link.client_gone = True
                                if self.mode != "blackhole":  # the network works again
                                    watched.clear()
                        continue
                    if not data:
                        watched.clear()
                        break
                    other[sock].sendall(data)
        except (OSError, ValueError):  # closed by cut(), pass_() or stop()
            pass
        self._drop(link)

    def _drop(self, link: _Link) -> None:
        with self._lock:
            self._links.discard(link)
        link.close()
