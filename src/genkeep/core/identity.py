"""Who this process is: a random id that owns leases, with host and pid for humans.

A lease is fenced by its token and timed by the database's clock; the holder string only
names the owner, and lets a process on the same machine see that the owner is gone (killed,
crashed) without waiting its lease out. A pid alone cannot tell: containers sharing a
hostname have PID namespaces of their own, and a pid is reused after its process exits.
So the holder also carries the kernel's boot id, the PID namespace and the process's start
time; anything that does not match exactly is treated as alive.
"""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

_nonce = uuid.uuid4().hex[:12]


def _renew_nonce() -> None:
    global _nonce
    _nonce = uuid.uuid4().hex[:12]


# A forked child is another process: it must not share its parent's id.
os.register_at_fork(after_in_child=_renew_nonce)


def process_id() -> str:
    """``host:pid:nonce``: unique to this process, readable by a person."""
    return f"{socket.gethostname()[:48]}:{os.getpid()}:{_nonce}"


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _namespace() -> str | None:
    boot = _read("/proc/sys/kernel/random/boot_id")
    try:
        pid_ns = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    if boot is None:
        return None
    return f"{boot[:8]}.{pid_ns.removeprefix('pid:[').removesuffix(']')}"


def _start_ticks(pid: int) -> str | None:
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    # Field 22, counted after the command name, which is in parentheses and may hold spaces.
    return stat.rpartition(")")[2].split()[19]


def holder() -> str:
    """This process's id plus what proves its liveness to a neighbour (at most 128 chars)."""
    namespace, start = _namespace(), _start_ticks(os.getpid())
    if namespace is None or start is None:
        return process_id()
    return f"{process_id()} ns={namespace} start={start}"


def label(holder: str) -> str:
    """The part of a holder a person reads: ``host:pid:random-id``."""
    return holder.split(" ", 1)[0]


def is_gone(other: str) -> bool:
    """True only when ``other`` was a process of this kernel and PID namespace that has
    exited (or whose pid now belongs to a newer process)."""
    name, *facts = other.split(" ")
    host, _, rest = name.partition(":")
    pid, _, _ = rest.partition(":")
    fields = dict(fact.partition("=")[::2] for fact in facts)
    if host != socket.gethostname()[:48] or not pid.isdigit():
        return False
    if "ns" not in fields or fields["ns"] != _namespace():
        return False
    return _start_ticks(int(pid)) != fields.get("start")
