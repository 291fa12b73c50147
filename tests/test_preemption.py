"""`mmd_keras.app.preemption`: a signal stops `fit` at the end of the step it arrived in.

(The whole CLI path — checkpoint at the signal, exit code, exact resume — is tested with real
subprocesses and signals in tests/faults/.)"""

import os
import signal
import threading

import keras
import numpy as np
import pytest

from mmd_keras.app import preemption


class _SignalAt(keras.callbacks.Callback):
    """Sends ``signum`` to this process during batch ``at``; records the batches that ended."""

    def __init__(self, signum, at):
        super().__init__()
        self.signum, self.at, self.ended = signum, at, []

    def on_train_batch_begin(self, batch, logs=None):
        if batch == self.at:
            os.kill(os.getpid(), self.signum)

    def on_train_batch_end(self, batch, logs=None):
        self.ended.append(batch)


def _fit(callbacks, steps=10):
    model = keras.Sequential([keras.Input([2]), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x = np.ones((steps * 4, 2), np.float32)
    model.fit(x, x[:, :1], batch_size=4, epochs=1, callbacks=callbacks, verbose=0,
              shuffle=False)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_fit_after_the_step_it_arrived_in(signum, capfd):
    before = signal.getsignal(signum)
    sender = _SignalAt(signum, at=3)
    with preemption.PreemptionHandler() as handler:
        assert signal.getsignal(signum) == handler._handle
        _fit([sender, handler])
    assert signal.getsignal(signum) == before  # restored
    assert sender.ended == [0, 1, 2, 3]  # step 3 finished, no step 4
    assert handler.received == signal.Signals(signum).name and handler.stopped_at == 4
    assert f"{handler.received} received: finishing the current generator step" in (
        capfd.readouterr().err)


def test_second_ctrl_c_aborts_at_once():
    with preemption.PreemptionHandler() as handler:
        os.kill(os.getpid(), signal.SIGINT)
        assert handler.received == "SIGINT"
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)  # ignored: the stop is already under way


def test_a_lost_lock_stops_at_the_step_boundary():
    class Lock:
        lost = False

    lock = Lock()

    class LoseAt(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            lock.lost = lock.lost or batch == 2

    handler = preemption.PreemptionHandler(lock=lock)
    _fit([LoseAt(), handler])
    assert handler.reason == "lost the workdir lock" and handler.stopped_at == 3


def test_outside_the_main_thread_installs_nothing():
    before = signal.getsignal(signal.SIGTERM)
    seen = []

    def body():
        with preemption.PreemptionHandler():
            seen.append(signal.getsignal(signal.SIGTERM))

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert seen == [before]
