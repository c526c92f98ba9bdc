"""Progress inside one sample: the samplers call `step(done, total)` once per pass, and whoever runs them
(the web app's jobs) listens with `listen(callback)`. A callback may raise `Cancelled` to stop the sample
at the next pass; without a listener `step` costs one context-variable read."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable

_listener: contextvars.ContextVar[Callable[[int, int], None] | None] = contextvars.ContextVar("progress", default=None)


class Cancelled(Exception):
    """Raised by a listener to stop the work it watches."""


def step(done: int, total: int) -> None:
    """`done` of `total` passes of the current sample are finished."""
    callback = _listener.get()
    if callback is not None:
        callback(done, total)


@contextlib.contextmanager
def listen(callback: Callable[[int, int], None]):
    """Call `callback(done, total)` at every sampler pass made inside this block (in this thread)."""
    token = _listener.set(callback)
    try:
        yield
    finally:
        _listener.reset(token)
