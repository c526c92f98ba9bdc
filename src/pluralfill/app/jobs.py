"""The web app's jobs: one runs at a time, a few wait behind it, and any of them can be cancelled.

A job runs in its own thread and reports through a queue of events (plain dicts) that the HTTP response
streams. Cancelling sets a flag that the job checks before every sample and, through `pluralfill.progress`,
at every sampler pass, so a cancelled job frees the runner within one pass and the next one starts.

    submit(work) -> Job ──queue──> events: {"index", "step", "steps"} ... {"index", "png"} ... {"done"}
                        cancel() ──> work raises progress.Cancelled at its next pass ──> {"cancelled": true}
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable

from pluralfill import progress
from pluralfill.errors import PluralfillError

log = logging.getLogger(__name__)
WAIT = object()  # `Job.next_event` found nothing yet
PROGRESS_EVERY_S = 0.1  # sampler passes reported at most this often


class Busy(Exception):
    """Too many jobs wait already."""


class Job:
    def __init__(self):
        self.id = uuid.uuid4().hex[:12]
        self.events: queue.Queue = queue.Queue()
        self.cancelled = threading.Event()
        self.finished = threading.Event()
        self._last_report = 0.0

    def emit(self, event: dict) -> None:
        self.events.put(event)

    def check(self) -> None:
        """Stop here if the job was cancelled."""
        if self.cancelled.is_set():
            raise progress.Cancelled

    def pass_done(self, index: int) -> Callable[[int, int], None]:
        """The progress listener of sample `index`: reports passes (throttled) and stops a cancelled job."""

        def listener(done: int, total: int) -> None:
            self.check()
            now = time.monotonic()
            if now - self._last_report >= PROGRESS_EVERY_S:
                self._last_report = now
                self.emit({"type": "pass", "index": index, "step": done, "steps": total})

        return listener

    def next_event(self, timeout: float = 0.25):
        """The next event, None once the job has ended, or WAIT if nothing came within `timeout`."""
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            return WAIT


class Jobs:
    """One job at a time, at most `max_waiting` behind it."""

    def __init__(self, max_waiting: int = 4):
        self.max_waiting = max_waiting
        self.running = threading.Lock()
        self.guard = threading.Lock()
        self.live: dict[str, Job] = {}

    def submit(self, work: Callable[[Job], None]) -> Job:
        """Start `work(job)` once the runner is free; raises Busy when too many wait already."""
        with self.guard:
            if len(self.live) > self.max_waiting:  # the running one and max_waiting behind it
                raise Busy
            job = Job()
            self.live[job.id] = job
        threading.Thread(target=self._run, args=(job, work), daemon=True, name=f"job-{job.id}").start()
        return job

    def cancel(self, job_id: str) -> bool:
        """Cancel a waiting or running job; False if there is no such live job."""
        job = self.live.get(job_id)
        if job is None:
            return False
        job.cancelled.set()
        return True

    def _run(self, job: Job, work) -> None:
        try:
            while not self.running.acquire(timeout=0.1):
                job.check()  # a job cancelled while waiting never starts
            try:
                job.check()
                work(job)
            finally:
                self.running.release()
        except progress.Cancelled:
            job.emit({"type": "cancelled", "cancelled": True})
        except PluralfillError as e:
            job.emit({"type": "error", "error": str(e)})
        except Exception as e:  # a bug: the stream says so in one line, the server log has the traceback
            log.exception("job %s failed", job.id)
            job.emit({"type": "error", "error": f"internal error: {type(e).__name__}: {e}"})
        finally:
            with self.guard:
                self.live.pop(job.id, None)
            job.finished.set()
            job.emit(None)
