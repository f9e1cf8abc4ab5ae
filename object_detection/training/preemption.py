"""SIGTERM during training: save a checkpoint at the current step and exit cleanly.

Slurm, Kubernetes and the cloud schedulers send SIGTERM some seconds before they kill a job.
`SigtermWatch` turns that signal into a flag; the training loop reads it after every step and
saves a checkpoint at that step before it returns (`model_main` then exits 0, and a restart
resumes from the checkpoint). A second SIGTERM, or SIGKILL, ends the process at once: the run
then resumes from its last periodic checkpoint, as before.

Several workers must stop at the same step, or the ones still stepping would wait for the
others' collectives forever. Each step therefore carries the flag of every replica into the
step's own all-reduce (a scalar beside the number of matches, `sum_across_replicas`); the sum
is the same on every worker, so all of them save at the same step, whichever worker was told.
This is one mechanism for tf.distribute and Horovod alike, and costs one scalar per step.
"""
from __future__ import annotations

import signal
import threading

from object_detection.utils.log import logger


class SigtermWatch:
    """Context manager: while open, SIGTERM sets `requested` instead of ending the process.

    Signal handlers can only be installed from the main thread; elsewhere (a test running the
    loop in a thread) the watch is inert and SIGTERM keeps its default action.
    """

    def __init__(self):
        self.requested = False
        self._previous = None
        self._installed = False

    def _handle(self, signum, frame):
        del frame
        self.requested = True
        # A second SIGTERM takes the default action: the scheduler's patience has run out.
        signal.signal(signal.SIGTERM, self._previous or signal.SIG_DFL)
        logger.warning("received signal %d (SIGTERM): saving a checkpoint after this step, "
                       "then exiting.", signum)

    def __enter__(self) -> "SigtermWatch":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc) -> None:
        if self._installed and not self.requested:
            signal.signal(signal.SIGTERM, self._previous or signal.SIG_DFL)
        self._installed = False
