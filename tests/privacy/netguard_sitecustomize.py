"""Network guard for the privacy tests, installed as ``sitecustomize`` (a folder holding this file
as ``sitecustomize.py`` is put first on PYTHONPATH): every Python process of a run, including
the Prefect server it starts, refuses any non-loopback connection or name lookup and appends a
line about it to the file named by ``RC_NET_GUARD_LOG``. An empty log means no attempt."""

import ipaddress
import os
import socket
import sys
import traceback

_LOG = os.environ.get("RC_NET_GUARD_LOG")
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


def _is_loopback(host) -> bool:
    if host is None:
        return True  # getaddrinfo(None, port): a local bind address
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = str(host).strip("[]").split("%")[0].lower()
    if host in _LOCAL_NAMES or host == "":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a name other than localhost: resolving it is a network request
    if getattr(address, "ipv4_mapped", None):
        address = address.ipv4_mapped
    return address.is_loopback or address.is_unspecified


def _record(what: str, host, port) -> None:
    if _LOG:
        stack = "".join(traceback.format_stack(limit=12)[:-2])
        with open(_LOG, "a", encoding="utf-8") as fh:
            fh.write(f"{what} {host!r} {port!r} pid={os.getpid()} argv={sys.argv[:3]!r}\n{stack}\n")


def _guard_address(sock, address) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
        host, port = address[0], address[1]
        if not _is_loopback(host):
            _record("connect", host, port)
            raise OSError(101, "Network is unreachable (blocked by the privacy tests' network guard)")


_connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo


def _guarded_connect(self, address):
    _guard_address(self, address)
    return _connect(self, address)


def _guarded_connect_ex(self, address):
    _guard_address(self, address)
    return _connect_ex(self, address)


def _guarded_getaddrinfo(host, port, *args, **kwargs):
    if not _is_loopback(host):
        _record("getaddrinfo", host, port)
        raise socket.gaierror(socket.EAI_NONAME, "name lookup blocked by the privacy tests' network guard")
    return _getaddrinfo(host, port, *args, **kwargs)


socket.socket.connect = _guarded_connect
socket.socket.connect_ex = _guarded_connect_ex
socket.getaddrinfo = _guarded_getaddrinfo
