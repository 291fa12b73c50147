"""Preemption: SIGTERM and Ctrl-C end a run at a step boundary, with a checkpoint.

Preemptible (spot) Cloud TPU/GPU VMs receive SIGTERM shortly before the machine is reclaimed;
Ctrl-C sends SIGINT. :class:`PreemptionHandler` is both the signal handler and a Keras callback:

1. The handler only records the signal (and prints one line): a signal arrives while
   TensorFlow runs a step in C++, and Python runs the handler once control is back in Python.
2. At the end of the current generator step the callback sets ``model.stop_training``; Keras
   ends ``fit`` and calls ``on_train_end`` of every callback, where the checkpoint callback saves
   the checkpoint *of that step*.
3. The runner then flushes TensorBoard, releases the workdir lock and exits with
   :data:`EXIT_PREEMPTED` (42). Rerunning the same command resumes from that checkpoint; with
   ``--deterministic`` it ends bitwise-identical to an uninterrupted run.

Under ``--strategy=multi_worker`` every worker must receive the signal (a preempted Cloud TPU
slice or GKE job signals all of them): the stop step is not agreed between workers, so a worker
that was not signalled would wait in the next collective until it is killed. (TensorFlow's
``PreemptionCheckpointHandler`` agrees on the step through the coordination service; wiring it
in is the path for clusters that signal one worker only.)

A second Ctrl-C aborts at once (``KeyboardInterrupt``, no checkpoint) for a user who will not
wait for the step; further SIGTERMs are ignored (the stop is already under way).

Why our own saver and not ``keras.callbacks.BackupAndRestore``: the run already checkpoints
everything an exact resume needs in one ``tf.train.Checkpoint`` (networks, EMA, optimizers,
step counter — the RNG state —, loss and evaluation-callback state) with checks that never let
a non-finite checkpoint be written; ``BackupAndRestore`` keeps a second, separate copy of the
model only, deletes it when ``fit`` ends (the CLI keeps its checkpoints) and, being a callback
that saves on a schedule, would still need this signal handler to save *at* the signal.

Why 42: it is the restart code TensorFlow's own preemption handler
(``tf.distribute.experimental.PreemptionCheckpointHandler``) exits with after its checkpoint
on Cloud TPU and Borg — "checkpoint written, restart me" —, distinct from 0 (done), 1 (failed)
and 2 (bad input). (On GCE GPU VMs that handler uses 143 = 128 + SIGTERM, which is also what a
shell reports for a process the signal killed without saving; one code that cannot be
confused with that is clearer for a restart script.)
"""

import os
import signal
import threading

import keras

EXIT_PREEMPTED = 42
SIGNALS = (signal.SIGTERM, signal.SIGINT)


class PreemptionHandler(keras.callbacks.Callback):
    """Records SIGTERM/SIGINT and stops ``fit`` at the end of the current step.

    Use as a context manager around the run (handlers installed on enter, the previous ones
    restored on exit; outside the main thread Python cannot install handlers and this does
    nothing) and pass it to ``fit`` as a callback.

    Args:
        signals: the signals handled.
        lock: optional workdir lock; when its ``lost`` becomes true (another run took the
            workdir over) the run stops at the step boundary too.

    Attributes:
        received: name of the first signal received (``"SIGTERM"``) or None.
        stopped_at: generator step at which ``fit`` was stopped, or None.
    """

    def __init__(self, signals=SIGNALS, lock=None):
        super().__init__()
        self.signals = tuple(signals)
        self.lock = lock
        self.received = None
        self.stopped_at = None
        self._previous = {}

    @property
    def reason(self):
        """Why the run must stop (``"SIGTERM"``, ``"lost the workdir lock"``) or None."""
        if self.received is not None:
            return self.received
        if self.lock is not None and getattr(self.lock, "lost", False):
            return "lost the workdir lock"
        return None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in self.signals:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info):
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}
        return False

    def _handle(self, signum, frame):
        name = signal.Signals(signum).name
        if self.received is None:
            self.received = name
            again = " (Ctrl-C again aborts without saving)" if signum == signal.SIGINT else ""
            # os.write: print() from a signal handler can re-enter a buffered stream.
            os.write(2, f"\n{name} received: finishing the current generator step, then "
                        f"saving a checkpoint{again}.\n".encode())
        elif signum == signal.SIGINT:
            raise KeyboardInterrupt

    def on_train_batch_end(self, batch, logs=None):
        if self.reason is not None and not self.model.stop_training:
            self.model.stop_training = True
            self.stopped_at = int(keras.ops.convert_to_numpy(self.model.step)) if hasattr(
                self.model, "step") else batch + 1
