"""No network: every outgoing connection in this Python process raises, and is recorded.

:func:`install` is called by ``sitecustomize.py`` beside this file: put this folder first
on ``PYTHONPATH`` and every Python process started with that environment (``snakemake``,
and the jobs it starts, which inherit it) installs the guard at start-up; the tests'
``no_network`` fixture installs it in the test process. It replaces the connecting calls
of :mod:`socket` (``connect``, ``connect_ex``, ``sendto``, ``sendmsg`` and name look-ups)
so that any address family but ``AF_UNIX`` raises ``OSError(ENETUNREACH)``. With
``SPACEPIXELS_NETGUARD_LOG`` set, each attempt appends one line (process id, program,
call, address) to that file, so that a test can tell that nothing even tried, however the
caller handled the error.
"""

from __future__ import annotations

import errno
import os
import socket
import sys


def _refuse(call: str, address: object) -> OSError:
    where = log_path()
    if where:
        program = " ".join(sys.argv[:2])[:200]
        with open(where, "a", encoding="utf-8") as log:
            log.write(f"{os.getpid()}\t{program}\t{call}\t{address!r}\n")
    return OSError(errno.ENETUNREACH, f"network blocked by the test guard ({call} {address!r})")


def log_path() -> str:
    """Where attempts are recorded ("" for nowhere)."""
    return os.environ.get("SPACEPIXELS_NETGUARD_LOG", "")


def _family(sock: socket.socket) -> int:
    try:
        return sock.family
    except OSError:
        return -1


_REAL = {
    "connect": socket.socket.connect,
    "connect_ex": socket.socket.connect_ex,
    "sendto": socket.socket.sendto,
    "sendmsg": getattr(socket.socket, "sendmsg", None),
    "getaddrinfo": socket.getaddrinfo,
}
"""The calls the guard replaces, as they were."""


def _connect(self: socket.socket, address: object) -> None:
    if _family(self) == socket.AF_UNIX:
        return _REAL["connect"](self, address)
    raise _refuse("connect", address)


def _connect_ex(self: socket.socket, address: object) -> int:
    if _family(self) == socket.AF_UNIX:
        return _REAL["connect_ex"](self, address)
    _refuse("connect_ex", address)
    return errno.ENETUNREACH


def _sendto(self: socket.socket, *args: object) -> int:
    if _family(self) == socket.AF_UNIX:
        return _REAL["sendto"](self, *args)
    raise _refuse("sendto", args[-1])


def _sendmsg(self: socket.socket, *args: object) -> int:
    if _family(self) == socket.AF_UNIX or len(args) < 4:
        return _REAL["sendmsg"](self, *args)
    raise _refuse("sendmsg", args[3])


def _getaddrinfo(host: object, *args: object, **kwargs: object) -> list:
    if host in (None, "localhost", "127.0.0.1", "::1", b"localhost"):
        return _REAL["getaddrinfo"](host, *args, **kwargs)
    raise socket.gaierror(socket.EAI_NONAME, str(_refuse("getaddrinfo", host)))


def install(setattr_: object = setattr) -> None:
    """Replace the connecting calls of :mod:`socket` (``setattr_`` may be a monkeypatch's)."""
    setattr_(socket.socket, "connect", _connect)
    setattr_(socket.socket, "connect_ex", _connect_ex)
    setattr_(socket.socket, "sendto", _sendto)
    if _REAL["sendmsg"] is not None:
        setattr_(socket.socket, "sendmsg", _sendmsg)
    setattr_(socket, "getaddrinfo", _getaddrinfo)
