"""``baton serve --workers N``: uvicorn's worker supervisor, with one listening socket per
worker on the same port.

uvicorn's own multi-worker mode shares one socket between the workers, and whichever event loop
wakes first accepts every connection that is waiting (up to the backlog) in one go. Clients
that keep their connections open, as frontends, proxies and the load benchmark do, then stay on
that worker: in the mixed load one worker served 15 of 16 connections while the other idled.
Here each worker binds a socket of its own with ``SO_REUSEPORT``, and the kernel spreads new
connections over the listening workers by a hash of their addresses.

The parent binds the port too (with ``SO_REUSEPORT``, never listening), so a port already in
use fails at start, and keeps it while the workers come and go. A worker that stops drops the
connections still waiting in its own queue; clients retry them like any refused connection.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import uvicorn
from uvicorn.supervisors import Multiprocess


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``(host, port)`` with ``SO_REUSEPORT``, not listening yet."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class OwnSocket:
    """Sent to each worker process in place of a socket: unpickled there as a socket of that
    worker's own, bound to the same address (``reuse_port_socket``)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port

    def __reduce__(self) -> tuple[Any, tuple[str, int]]:
        return reuse_port_socket, (self.host, self.port)


def serve_workers(config: uvicorn.Config) -> None:
    """Run ``config.workers`` worker processes under uvicorn's supervisor (health checks,
    restarts, SIGTERM, SIGHUP), each listening on a socket of its own."""
    held = reuse_port_socket(config.host, config.port)
    port = held.getsockname()[1]  # the port the system chose, for port 0
    logging.getLogger("uvicorn.error").info(
        "Uvicorn running on %s, a socket per worker", f"http://{config.host}:{port}"
    )
    try:
        Multiprocess(config, sockets=[cast(socket.socket, OwnSocket(config.host, port))]).run()
    finally:
        held.close()


@contextmanager
def multiprocess_metrics() -> Iterator[None]:
    """Workers share their metrics through PROMETHEUS_MULTIPROC_DIR: a fresh directory
    for this run unless the operator gave one (which they must empty between runs)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        yield
        return
    directory = tempfile.mkdtemp(prefix="baton-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    try:
        yield
    finally:
        shutil.rmtree(directory, ignore_errors=True)
