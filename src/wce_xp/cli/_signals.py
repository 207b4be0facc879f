"""SIGTERM as an exception, for the entry point and the commands alike."""

from __future__ import annotations

TYPE_CHECKING = False  # no typing import at run time (start-up cost)
if TYPE_CHECKING:
    from types import FrameType


class Terminated(BaseException):
    """SIGTERM, raised where the process is, so that cleanup (``finally``) runs."""


def on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated
