"""One interrupt model for every loop that trains (AMA, DINO and supervised pretraining, the demo).

SIGINT or SIGTERM sets a flag (:class:`StopRequest`); the loop finishes its current step, writes
its checkpoint and raises :class:`TrainingInterrupted`, whose message names the checkpoint and
how to go on. The command line turns it into the shell's status (130 or 143).
"""

from __future__ import annotations

import signal

__all__ = ["StopRequest", "TrainingInterrupted", "TrainingDivergedError"]


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is left untouched."""


class TrainingInterrupted(Exception):
    """SIGINT or SIGTERM stopped a run before it produced its result.

    Attributes:
        signum: The signal; ``exit_status`` is the shell's ``128 + signum`` (130, 143).
    """

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_status = 128 + signum


class StopRequest:
    """A context in which SIGINT/SIGTERM set :attr:`signal` instead of stopping the process.

    The loop checks :attr:`signal` after each step; outside the main thread signals stay as
    they are. The previous handlers come back on exit.
    """

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: signals stay as they are
                pass
        return self

    def _handle(self, signum, _frame) -> None:
        self.signal = signum

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def interrupted(self, what: str) -> TrainingInterrupted:
        """The error to raise once the loop has stopped: ``"<SIGNAL> received: <what>"``."""
        return TrainingInterrupted(self.signal, f"{signal.Signals(self.signal).name} received: "
                                                f"{what}")
