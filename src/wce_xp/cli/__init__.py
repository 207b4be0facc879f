"""The ``wce-xp`` entry point, light enough that signals are handled from the start.

Loading the commands (NumPy, the array libraries) takes a while. This module imports
nothing but the standard library's ``os``, ``signal`` and ``sys`` (and the signal
helpers beside it), so that an interrupt during that load, or during interpreter
shutdown, ends the process with one line and the conventional status (130 for SIGINT,
143 for SIGTERM) instead of a traceback. What remains uncovered is the interpreter's own
start-up before this module runs (most of it the ``import re`` in the script that pip
generates).

The package: this entry point; ``_commands`` (the parser and the commands);
``_readers`` (the input files, read in chunks); ``_backends`` (loading an array
library by name, with the install hint); ``_signals``.
"""

from __future__ import annotations

import os
import signal
import sys

from ._signals import on_sigterm

TYPE_CHECKING = False  # neither typing nor collections.abc at run time (start-up cost)
if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import FrameType


def _quit_now(signum: int, frame: FrameType | None) -> None:
    # the answer is already given: leave without running the remaining exit handlers
    os._exit(130 if signum == signal.SIGINT else 143)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``wce-xp``; the command's exit status."""
    pending: list[int] = []
    try:
        # while the command line loads, signals are noted and acted on afterwards: an
        # interrupt inside an extension module's import (NumPy's) turns into an
        # ImportError with a page of advice, not a KeyboardInterrupt
        old_int = signal.signal(signal.SIGINT, lambda signum, frame: pending.append(signum))
        signal.signal(signal.SIGTERM, lambda signum, frame: pending.append(signum))
        in_main_thread = True
    except ValueError:  # called from another thread: signals are not ours to handle
        in_main_thread = False
    try:
        from ._commands import main as run
    except Exception:
        if not pending:
            raise
    finally:
        if in_main_thread:
            signal.signal(signal.SIGINT, old_int)
            signal.signal(signal.SIGTERM, on_sigterm)
    if pending:
        interrupted = pending[0] == signal.SIGINT
        print(f"wce-xp: {'interrupted' if interrupted else 'terminated'}", file=sys.stderr)
        return 130 if interrupted else 143
    rc = run(argv)
    if in_main_thread:
        # from here on only interpreter shutdown is left (exit handlers, thread joins):
        # a signal there ends the process quietly
        signal.signal(signal.SIGINT, _quit_now)
        signal.signal(signal.SIGTERM, _quit_now)
    return rc
