"""Keras callbacks of a training run, all keyed on the model's generator-step counter.

- :class:`NonFiniteGuard` stops the run at the first NaN/Inf in any logged value, names the
  step, and vetoes every later save so the last good checkpoint stays intact.
- :class:`CheckpointCallback` saves the latest ``k`` checkpoints every N generator steps and,
  when told by the evaluation callback, the best one by a metric — only after checking that
  every weight it is about to write is finite.
- :class:`SampleGrid` writes PNG grids of samples from fixed latents (``model.generate`` with a
  fixed seed) every N steps, and the same grid to TensorBoard.
- :class:`ScalarLogger` writes every logged value and both learning rates to TensorBoard at the
  generator step (correct across resumed runs, unlike a per-process batch counter).
- :class:`ConsoleLog` prints plain progress lines when stdout is not a terminal, and
  evaluation results on their own line.
- :class:`StopAtStep` ends ``fit`` when the step counter reaches the requested total.
- :class:`SummaryWriter` creates the TensorBoard event file on first use.

Every path goes through :mod:`mmd_keras.fileio` (local disks, ``gs://``, ``ram://``).

Because every decision reads ``model.step`` (a checkpointed variable), a resumed run saves,
samples and stops at exactly the steps an uninterrupted run would.
"""

import math
import time

import keras
import numpy as np
import tensorflow as tf

from mmd_keras import fileio


def current_step(model):
    """The model's generator-step counter as a Python int."""
    return int(keras.ops.convert_to_numpy(model.step))


def _due(step, every):
    return every > 0 and step > 0 and step % every == 0


def make_grid(images, columns=None, padding=2, pad_value=1.0, scale=1):
    """Tiles images into one uint8 grid image.

    Args:
        images: array ``[N, H, W, C]`` with values in ``[-1, 1]`` (clipped).
        columns: images per row; default ``ceil(sqrt(N))``.
        padding: pixels between (and around) tiles.
        pad_value: padding colour in ``[-1, 1]`` (1 = white).
        scale: integer nearest-neighbour upscaling of every image (small images stay visible).

    Returns:
        uint8 array ``[rows * (s·H + p) + p, columns * (s·W + p) + p, C]``.
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4:
        raise ValueError("Expected `images` of shape [N, H, W, C]. Received: "
                         f"`images.shape={images.shape}`")
    if not isinstance(scale, int) or scale < 1:
        raise ValueError(f"Expected `scale` to be an int >= 1. Received: `scale={scale!r}`")
    images = images.repeat(scale, axis=1).repeat(scale, axis=2)
    n, h, w, c = images.shape
    columns = columns or int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / columns))
    grid = np.full((rows * (h + padding) + padding, columns * (w + padding) + padding, c),
                   pad_value, np.float32)
    for i, image in enumerate(np.clip(images, -1.0, 1.0)):
        top = padding + (i // columns) * (h + padding)
        left = padding + (i % columns) * (w + padding)
        grid[top:top + h, left:left + w] = image
    return np.round((grid + 1.0) * 127.5).astype(np.uint8)


def write_png(path, image):
    """Writes a uint8 ``[H, W, C]`` image as PNG, atomically (temp file + rename)."""
    fileio.atomic_write(path, tf.io.encode_png(image).numpy())


class NonFiniteGuard(keras.callbacks.Callback):
    """Stops training at the first non-finite logged value and vetoes later saves.

    Args:
        describe_checkpoint: callable returning a description of the last good checkpoint
            (for the message), e.g. its path.
        print_fn: where the message goes.
    """

    def __init__(self, describe_checkpoint=None, print_fn=print):
        super().__init__()
        self.describe_checkpoint = describe_checkpoint or (lambda: "none")
        self.print_fn = print_fn
        self.failed_step = None
        self.message = None

    @property
    def failed(self):
        """Whether a non-finite value was seen."""
        return self.failed_step is not None

    def on_train_batch_end(self, batch, logs=None):
        if self.failed:
            return
        bad = {}
        for key, value in (logs or {}).items():
            array = np.asarray(keras.ops.convert_to_numpy(value), dtype=np.float64)
            if not np.all(np.isfinite(array)):
                bad[key] = float(array.reshape(-1)[0])
        if bad:
            step = current_step(self.model)
            values = ", ".join(f"{k}={v}" for k, v in sorted(bad.items()))
            self.fail(step, f"Non-finite loss at generator step {step}: {values}")

    def fail(self, step, reason):
        """Records a failure at ``step`` (also used by the checkpoint callback when the weights
        about to be saved are non-finite), prints it and stops ``fit``."""
        if self.failed:
            return
        self.failed_step = step
        self.message = (f"{reason}. Training stopped; nothing saved after this step. Last "
                        f"good checkpoint: {self.describe_checkpoint()}")
        self.print_fn(self.message)
        self.model.stop_training = True


class CheckpointCallback(keras.callbacks.Callback):
    """Latest-k checkpoints every ``every`` generator steps (and at the end), plus the best.

    Args:
        manager: ``tf.train.CheckpointManager`` of the latest checkpoints.
        every: save when ``step % every == 0``.
        best_manager: optional manager (``max_to_keep=1``) written by :meth:`save_best`, e.g.
            from ``EvaluationCallback(on_new_best=...)`` (which checkpoints its best value).
        guard: optional :class:`NonFiniteGuard`; nothing is saved once it has failed.
        items: optional checkpoint items (``tf.train.Checkpoint(**items)``): before each save
            every floating-point variable among them is checked finite
            (:func:`mmd_keras.checkpointing.check_finite`); a NaN/Inf stops the run through
            the guard instead of being written. (The guard's logged losses come from before
            a step's update; the weights saved after it can already be NaN.)
    """

    def __init__(self, manager, every, best_manager=None, guard=None, items=None):
        super().__init__()
        self.manager = manager
        self.every = every
        self.best_manager = best_manager
        self.guard = guard
        self.items = items
        self.last_saved_step = None

    def _allowed(self, step):
        if self.guard is not None and self.guard.failed:
            return False
        if self.items is None:
            return True
        from mmd_keras import checkpointing

        try:
            checkpointing.check_finite(self.items, step)
        except checkpointing.NonFiniteWeightsError as error:
            if self.guard is None:
                raise
            self.guard.fail(step, str(error))
            return False
        return True

    def save(self, step):
        """Saves the latest checkpoint at ``step`` (once per step); returns its path or None."""
        if step == self.last_saved_step or not self._allowed(step):
            return None
        self.last_saved_step = step
        return self.manager.save(checkpoint_number=step)

    def save_best(self, step):
        """Saves the best checkpoint at ``step``; returns its path or None."""
        if self.best_manager is None or not self._allowed(step):
            return None
        return self.best_manager.save(checkpoint_number=step)

    def on_train_batch_end(self, batch, logs=None):
        step = current_step(self.model)
        if _due(step, self.every):
            self.save(step)

    def on_train_end(self, logs=None):
        self.save(current_step(self.model))


class SampleGrid(keras.callbacks.Callback):
    """PNG grids (and TensorBoard images) of samples from fixed latents every N steps.

    Args:
        directory: where ``step_XXXXXXX.png`` and ``latest.png`` go.
        every: generator steps between grids (0: only at the end of training).
        num_samples: images per grid.
        seed: latent seed passed to ``model.generate`` (fixed: the same latents every time).
        writer: optional ``tf.summary`` writer for the image summary.
        guard: optional :class:`NonFiniteGuard`; no grid once it has failed.
        min_tile: images smaller than this many pixels are upscaled (nearest) in the grid.
    """

    def __init__(self, directory, every, num_samples=64, seed=1234, writer=None, guard=None,
                 min_tile=32):
        super().__init__()
        self.min_tile = min_tile
        self.directory = directory
        self.every = every
        self.num_samples = num_samples
        self.seed = seed
        self.writer = writer
        self.guard = guard
        self.last_path = None
        self._last_step = None

    def write(self, step):
        """Generates and writes the grid for ``step``; returns the PNG path."""
        if (self.guard is not None and self.guard.failed) or step == self._last_step:
            return self.last_path
        images = keras.ops.convert_to_numpy(self.model.generate(self.num_samples,
                                                                 seed=self.seed))
        if images.shape[-1] not in (1, 3):  # 2-D toy points: no image to draw.
            return None
        grid = make_grid(images, scale=max(1, -(-self.min_tile // images.shape[1])))
        fileio.makedirs(self.directory)
        path = fileio.join(self.directory, f"step_{step:07d}.png")
        write_png(path, grid)
        write_png(fileio.join(self.directory, "latest.png"), grid)
        if self.writer is not None:
            with self.writer.as_default():
                tf.summary.image("samples", grid[None], step=step)
            self.writer.flush()
        self.last_path, self._last_step = path, step
        return path

    def on_train_batch_end(self, batch, logs=None):
        step = current_step(self.model)
        if _due(step, self.every):
            self.write(step)

    def on_train_end(self, logs=None):
        self.write(current_step(self.model))


class SummaryWriter:
    """A ``tf.summary`` file writer created on first use (any ``tf.io.gfile`` path).

    A run builds its callbacks before it restores (and may refuse) a checkpoint; creating the
    event file only when the first summary is written keeps a refused run from writing one.
    ``as_default``/``flush``/``close`` as ``tf.summary.create_file_writer``'s writer.
    """

    def __init__(self, logdir):
        self.logdir = logdir
        self._writer = None

    @property
    def writer(self):
        """The underlying writer (created now if needed)."""
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.logdir)
        return self._writer

    def as_default(self, step=None):
        return self.writer.as_default(step)

    def flush(self):
        if self._writer is not None:
            self._writer.flush()

    def close(self):
        if self._writer is not None:
            self._writer.close()


def _learning_rate(optimizer):
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


def learning_rate_variables(model, purpose):
    """``[(role, variable)]`` of the generator's and critic's learning rates, for callbacks that
    change them (the adaptive learning rate, collapse recovery); a variable shared by both roles
    (one optimizer for both) is listed once, so it is changed once.

    Raises:
        ValueError: an optimizer's learning rate is not a variable (a ``LearningRateSchedule``);
            ``purpose`` names what needs it in the message.
    """
    variables, seen = [], set()
    for role in ("generator", "critic"):
        name = f"{role}_optimizer"
        learning_rate = getattr(getattr(model, name, None), "learning_rate", None)
        if not hasattr(learning_rate, "assign"):
            raise ValueError(
                f"Expected `model.{name}` with a constant learning rate (a float held in a variable, "
                f"not a LearningRateSchedule) for {purpose}. Received: `{name}.learning_rate={learning_rate!r}`")
        if id(learning_rate) not in seen:
            seen.add(id(learning_rate))
            variables.append((role, learning_rate))
    return variables


def _unlogged_learning_rates(model, logs):
    """``[(role, rate)]`` of the optimizers whose rate the train step did not log itself
    (MMDGAN logs ``generator_lr``/``critic_lr``): each scalar gets one tag."""
    rates = []
    for role in ("generator", "critic"):
        optimizer = getattr(model, f"{role}_optimizer", None)
        if optimizer is not None and f"{role}_lr" not in logs:
            rates.append((role, _learning_rate(optimizer)))
    return rates


class ScalarLogger(keras.callbacks.Callback):
    """TensorBoard scalars (every logged value + learning rates) at the generator step.

    Learning rates the train step already logs (``generator_lr``/``critic_lr``) are written
    once, under those tags; otherwise as ``learning_rate/generator`` and ``learning_rate/critic``.

    Args:
        writer: ``tf.summary`` writer.
        every: write when ``step % every == 0``.
        skip: callbacks that write their own scalars and put them into ``logs`` too (the
            evaluation callback: ``evaluation/kid``...); keys in their ``last_metrics`` are
            not written again, so each scalar has one tag.
    """

    def __init__(self, writer, every, skip=()):
        super().__init__()
        self.writer = writer
        self.every = every
        self.skip = tuple(skip)

    def on_train_batch_end(self, batch, logs=None):
        step = current_step(self.model)
        if not _due(step, self.every):
            return
        owned = set().union(*(getattr(c, "last_metrics", {}) for c in self.skip))
        with self.writer.as_default():
            for key, value in (logs or {}).items():
                if key in owned:
                    continue
                array = np.asarray(keras.ops.convert_to_numpy(value), dtype=np.float64)
                if array.size == 1:
                    tf.summary.scalar(key, float(array.reshape(-1)[0]), step=step)
            for role, rate in _unlogged_learning_rates(self.model, logs or {}):
                tf.summary.scalar(f"learning_rate/{role}", rate, step=step)

    def on_epoch_end(self, epoch, logs=None):
        self.writer.flush()


class StopAtStep(keras.callbacks.Callback):
    """Stops ``fit`` once the generator-step counter reaches ``total_steps``."""

    def __init__(self, total_steps):
        super().__init__()
        self.total_steps = total_steps

    def on_train_batch_end(self, batch, logs=None):
        if current_step(self.model) >= self.total_steps:
            self.model.stop_training = True


def _duration(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class ConsoleLog(keras.callbacks.Callback):
    """Plain console lines for logs (CI, ``nohup``, cloud logs) and evaluation results.

    With ``progress_lines=True`` (stdout is not a terminal: ``fit(verbose=0)``) prints one line
    every ``every`` generator steps: step, every logged loss, both learning rates, steps/s over
    the last period and the ETA. In a terminal Keras's progress bar shows the losses and only
    evaluation results are printed here, each on its own line (a newline first ends the bar).

    Args:
        every: generator steps between lines.
        total_steps: the run's last step (for the ETA).
        evaluation: optional evaluation callback with ``evaluations`` (list of
            ``(step, metrics)``); placed before this one in the callback list.
        progress_lines: print the periodic lines (else only evaluations).
        print_fn: where lines go.
    """

    def __init__(self, every, total_steps, evaluation=None, progress_lines=True, print_fn=print):
        super().__init__()
        self.every, self.total_steps = every, total_steps
        self.evaluation, self.progress_lines, self.print_fn = evaluation, progress_lines, print_fn
        self._mark = None
        self._printed_evaluations = 0

    def on_train_begin(self, logs=None):
        # The rate starts at the end of the first step: that step traces and compiles the
        # train step, and counting it made the first ETA many times too long.
        self._mark = None
        if self.evaluation is not None:
            self._printed_evaluations = len(self.evaluation.evaluations)

    def on_train_batch_end(self, batch, logs=None):
        step = current_step(self.model)
        if self.progress_lines and _due(step, self.every):
            self.print_fn(self.progress_line(step, logs or {}))
        if self._mark is None:
            self._mark = (time.time(), step)
        self._print_evaluations()

    def on_train_end(self, logs=None):
        self._print_evaluations()

    def progress_line(self, step, logs):
        """``step S/T  key=value ...  lr_g=.. lr_c=..  X steps/s  ETA h:mm:ss``.

        A line due at the first step of ``fit`` has no rate yet (``? steps/s  ETA ?``).
        """
        now = time.time()
        then, start = self._mark or (now, step)
        rate = (step - start) / max(now - then, 1e-9) if step > start else float("nan")
        self._mark = (now, step)
        parts = [f"step {step}/{self.total_steps}"]
        for key, value in logs.items():
            array = np.asarray(keras.ops.convert_to_numpy(value), dtype=np.float64)
            if array.size == 1:
                parts.append(f"{key}={float(array.reshape(-1)[0]):.4g}")
        for role, learning_rate in _unlogged_learning_rates(self.model, logs):
            parts.append(f"lr_{role[0]}={learning_rate:.3g}")
        eta = (self.total_steps - step) / rate if rate > 0 else float("inf")
        parts.append(f"{rate:.2f} steps/s" if math.isfinite(rate) else "? steps/s")
        parts.append(f"ETA {_duration(eta)}" if math.isfinite(eta) else "ETA ?")
        return "  ".join(parts)

    def _print_evaluations(self):
        if self.evaluation is None:
            return
        new = self.evaluation.evaluations[self._printed_evaluations:]
        self._printed_evaluations = len(self.evaluation.evaluations)
        for step, results in new:
            line = f"evaluation at step {step}: " + ", ".join(
                f"{key}={value:.6g}" for key, value in results.items())
            self.print_fn(line if self.progress_lines else "\n" + line)
