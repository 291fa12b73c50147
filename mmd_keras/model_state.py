"""The training state `MMDGAN` keeps in Keras files, and exact resumption inside an epoch.

``model.save``, ``model.save_weights`` and `keras.callbacks.BackupAndRestore` (which calls
``save_weights``) walk the model: the networks, the EMA generator, both optimizers and the loss
(a Keras layer holding its state: the gradient-penalty weight, Sobolev's multiplier, SMMD's
coefficient) save their own variables; the model saves, by name, the generator-step counter (which is also the
RNG state and drives paper 2's critic schedule) and two bookkeeping counters of `fit` (below).

Inside an epoch. `BackupAndRestore(save_freq=n)` saves every ``n`` batches, but on restart
Keras resumes at the *beginning* of the saved epoch (it restores weights and the epoch number
only), so a model would train again on the batches it had already used. `InEpochResume`,
which `MMDGAN.fit` adds to the callbacks, records where the running epoch started
(``fit_epoch``, ``fit_epoch_start_step``); when `BackupAndRestore` restores a state saved
inside epoch ``e``, the first ``step - fit_epoch_start_step`` batches of epoch ``e`` are read
and skipped without training (callbacks still see those batch indices, with empty logs).
A backup written after the last batch of an epoch but before its end holds all ``S`` batches
of it: the resumed run skips the whole epoch (its History has no entry for it). The resumed
run then ends bitwise-identical to an uninterrupted one, provided each epoch yields the same
batches in every run.
"""

import keras


def save_variables(store, variables):
    """Writes ``{name: variable}`` into a Keras weights ``store`` by name."""
    for name, variable in variables.items():
        store[name] = variable


def load_variables(store, variables, owner):
    """Assigns ``variables`` (``{name: variable}``) from ``store``, checking names.

    Raises:
        ValueError: a variable of the model is missing from the file, or the file holds a
            variable the model does not have.
    """
    keys = set(store.keys())
    missing, unknown = sorted(set(variables) - keys), sorted(keys - set(variables))
    if missing or unknown:
        raise ValueError(f"Expected the weights of {owner!r} to hold {sorted(variables)}. Received: missing "
                         f"{missing}, unexpected {unknown}")
    for name, variable in variables.items():
        variable.assign(store[name])


class InEpochResume(keras.callbacks.Callback):
    """Records where each `fit` epoch starts; after a `BackupAndRestore` restore, makes the
    train function skip the batches of the resumed epoch that were already trained on.

    Added by `MMDGAN.fit`; not meant to be passed by users.
    """

    def __init__(self):
        super().__init__()
        self._first_epoch = True

    def on_epoch_begin(self, epoch, logs=None):
        model = self.model
        restored = self._first_epoch and model._initial_epoch is not None
        self._first_epoch = False
        if restored and int(model.fit_epoch.numpy()) == epoch:
            skip = int(model.step.numpy()) - int(model.fit_epoch_start_step.numpy())
            steps = self.params.get("steps")
            if skip < 0 or (steps and skip > steps) or skip % model.steps_per_execution:
                raise ValueError(
                    f"Expected a backup saved inside epoch {epoch} after a multiple of steps_per_execution="
                    f"{model.steps_per_execution} of its {steps} batches. Received: {skip} batches done "
                    f"(generator step {int(model.step.numpy())}); was `fit` or `compile` called with "
                    f"other arguments?")
            model._batches_to_skip = skip
            return
        model.fit_epoch.assign(epoch)
        model.fit_epoch_start_step.assign(model.step)
        model._batches_to_skip = 0


def skipping_train_function(model, train_function):
    """``train_function`` preceded by skipping ``model._batches_to_skip`` batches.

    Each call of a Keras train function consumes ``steps_per_execution`` batches; a skipped
    call reads them from the iterator, trains on nothing and returns empty logs.
    """

    def function(iterator):
        if model._batches_to_skip > 0:
            for _ in range(model.steps_per_execution):
                next(iterator)
            model._batches_to_skip -= model.steps_per_execution
            return {}
        return train_function(iterator)

    return function
