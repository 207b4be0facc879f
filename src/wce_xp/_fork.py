"""Whether this process is a ``fork()`` child of a process that had imported wce_xp.

Imported by the package itself, so that the handler is in place before any fork: a
child must not enter an OpenMP runtime whose team the parent started (libgomp's
threads do not survive ``fork()``, and the child hangs at its next parallel region).
"""

from __future__ import annotations

import os

in_child = False


def _mark_child() -> None:
    global in_child
    in_child = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_mark_child)
