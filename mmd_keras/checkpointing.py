"""Checkpoints that are never poisoned, and a restore that never silently restarts.

Saving: :func:`check_finite` runs on the very variables a checkpoint (or an export) is about
to hold — generator, critic, EMA generator, both optimizers' state, batch-norm moving
statistics, loss and callback state — so a non-finite weight stops the run *before* it is
written. (The losses a step logs are computed before that step's update; the weights saved
after it can already be NaN, so guarding the logged losses alone is not enough.)

Restoring: :func:`open_checkpoints` treats ``<directory>/checkpoint`` (TensorFlow's state
file) as untrusted. The candidates are every ``ckpt-N`` named by the state file *or* found on
disk, newest first; each is read whole and checked finite before it is restored, so:

* an unreadable state file (text garbage, binary bytes) is set aside as
  ``checkpoint.unreadable`` with a message naming it, the newest good checkpoint on disk is
  restored, and a fresh state file lists the good ones (TensorFlow's own manager would drop
  the file, restart from step 0 and overwrite the old checkpoints);
* a checkpoint that cannot be read (a truncated ``.data`` shard, a missing file) or that holds
  non-finite values is skipped with a message naming it and why; the next older one is used;
* when checkpoints exist but none can be used, :class:`mmd_keras.errors.CheckpointError` lists
  each with its reason (the launcher names ``--workdir`` and exits 2): the run never restarts
  from step 0 on top of them.

All paths go through ``tf.io.gfile`` (local disks, ``gs://``, ``ram://``).
"""

import re

import numpy as np

from mmd_keras.errors import CheckpointError

STATE_FILE = "checkpoint"
PREFIX = "ckpt"
UNREADABLE_SUFFIX = ".unreadable"
_LISTED = 8  # names listed in a message before "... and N more"
#: Variables whose +inf is a legitimate value, not corruption: the evaluation callback's
#: ``best_metric`` is +inf until the first evaluation (a checkpoint may come first: the digits
#: default checkpoints every 500 steps and evaluates every 1,000). NaN and -inf still fail.
INF_ALLOWED = ("best_metric",)


def _inf_allowed(name):
    """Whether the variable ``name`` (a checkpoint key or ``<item>/<path>``) may hold +inf."""
    return name.replace("/.ATTRIBUTES/VARIABLE_VALUE", "").rstrip("/").split("/")[-1] in INF_ALLOWED


class NonFiniteWeightsError(ValueError):
    """Variables about to be saved or exported hold NaN/Inf.

    Attributes:
        names: the non-finite variables, ``<item>/<variable path>``.
        step: the generator step (or None).
    """

    def __init__(self, names, step=None, what="checkpoint"):
        self.names, self.step = list(names), step
        at = "" if step is None else f" at generator step {step}"
        super().__init__(f"Non-finite weights{at}: {len(self.names)} tensor(s) hold NaN/Inf "
                         f"({_listing(self.names)}); the {what} was not written")


def _listing(names):
    names = list(names)
    more = f", ... and {len(names) - _LISTED} more" if len(names) > _LISTED else ""
    return ", ".join(names[:_LISTED]) + more


# --- finite weights ---------------------------------------------------------------------------

def named_variables(items):
    """``[(name, variable)]`` of checkpoint items (``tf.train.Checkpoint(**items)``).

    Networks contribute ``weights`` (trainable and not: batch-norm moving statistics,
    spectral-norm vectors), optimizers their ``variables``, other trackables their
    ``variables``. Names are ``<item>/<variable path>``; a variable reachable twice is listed
    once.
    """
    import keras
    import tensorflow as tf

    seen, named = set(), []
    for item, obj in items.items():
        if isinstance(obj, keras.layers.Layer):
            variables = obj.weights
        elif isinstance(obj, (list, tuple)):
            variables = obj
        elif isinstance(obj, (tf.Variable, keras.Variable)):
            variables = [obj]
        else:  # optimizers, tf.Modules, callback state
            variables = obj.variables
        for variable in variables:
            if id(variable) in seen:
                continue
            seen.add(id(variable))
            name = getattr(variable, "path", None) or variable.name.split(":")[0]
            named.append((f"{item}/{name}", variable))
    return named


def non_finite(items):
    """Names of the floating-point variables of ``items`` holding NaN or Inf (one host sync)."""
    import tensorflow as tf

    floats = [(name, v) for name, v in named_variables(items)
              if tf.as_dtype(v.dtype).is_floating]
    if not floats:
        return []
    def all_allowed(name, v):
        v = tf.convert_to_tensor(v)
        finite = tf.math.is_finite(v)
        return tf.reduce_all(finite | (v == np.inf) if _inf_allowed(name) else finite)

    finite = tf.stack([all_allowed(name, v) for name, v in floats]).numpy()
    return [name for (name, _), ok in zip(floats, finite) if not ok]


def check_finite(items, step=None, what="checkpoint"):
    """Raises :class:`NonFiniteWeightsError` if any variable of ``items`` is NaN/Inf."""
    bad = non_finite(items)
    if bad:
        raise NonFiniteWeightsError(bad, step, what)


# --- reading checkpoints without trusting them --------------------------------------------------

def read_state(directory):
    """``(paths, problem)`` of the state file: the checkpoint paths it lists (oldest first) and
    None, or ``([], reason)`` when it is unreadable; ``([], None)`` when there is none."""
    import tensorflow as tf
    from google.protobuf import text_format
    from tensorflow.python.checkpoint import checkpoint_management

    path = f"{directory}/{STATE_FILE}"
    if not tf.io.gfile.exists(path):
        return [], None
    try:
        with tf.io.gfile.GFile(path, "rb") as f:
            text = f.read().decode("utf-8")
        state = text_format.Parse(text, checkpoint_management.CheckpointState())
    except UnicodeDecodeError:
        return [], "not UTF-8 text (binary bytes)"
    except text_format.ParseError as error:
        return [], f"not a checkpoint state ({error})"
    except tf.errors.OpError as error:
        return [], f"cannot be read ({error.message})"
    paths = list(state.all_model_checkpoint_paths)
    if state.model_checkpoint_path and state.model_checkpoint_path not in paths:
        paths.append(state.model_checkpoint_path)
    return [p if "://" in p or p.startswith("/") else f"{directory}/{p}" for p in paths], None


def step_of(path):
    """The number N of a ``.../ckpt-N`` path, or None."""
    match = re.search(rf"{PREFIX}-(\d+)$", path)
    return int(match.group(1)) if match else None


def candidates(directory, listed=()):
    """Checkpoint paths in ``directory``, newest step first: every ``ckpt-N.index`` on disk
    plus the paths the state file lists (``listed``)."""
    import tensorflow as tf

    found = {p[:-len(".index")] for p in tf.io.gfile.glob(f"{directory}/{PREFIX}-*.index")}
    found.update(p for p in listed if step_of(p) is not None)
    return sorted(found, key=lambda p: step_of(p), reverse=True)


def inspect(path):
    """Why the checkpoint ``path`` cannot be used, or None when every tensor reads and every
    floating-point tensor is finite."""
    import tensorflow as tf

    try:  # Not tf.train.load_checkpoint: on ram:// it takes the prefix ckpt-N for a folder.
        reader = tf.compat.v1.train.NewCheckpointReader(path)
    except (tf.errors.OpError, ValueError) as error:
        return f"unreadable index {path}.index ({_first_line(error)})"
    bad = []
    for key, dtype in sorted(reader.get_variable_to_dtype_map().items()):
        try:
            value = reader.get_tensor(key)
        except (tf.errors.OpError, IndexError, ValueError) as error:
            shards = tf.io.gfile.glob(f"{path}.data-*")
            return (f"data file {', '.join(shards) or path + '.data-*'} unreadable or "
                    f"truncated ({_first_line(error)}; tensor {key})")
        if dtype.is_floating and not np.all(np.isfinite(value) | ((value == np.inf) & _inf_allowed(key))):
            bad.append(key.replace("/.ATTRIBUTES/VARIABLE_VALUE", ""))
    if bad:
        return f"{len(bad)} tensor(s) hold NaN/Inf ({_listing(bad)})"
    return None


def _first_line(error):
    text = getattr(error, "message", None) or str(error) or type(error).__name__
    return text.strip().splitlines()[0][:300]


def _write_state(directory, paths):
    """Writes a state file listing ``paths`` (oldest first), atomically; the timestamps (the
    index files' modification times) let the manager delete them by ``max_to_keep``."""
    import tensorflow as tf
    from tensorflow.python.checkpoint import checkpoint_management

    checkpoint_management.update_checkpoint_state_internal(
        directory, model_checkpoint_path=paths[-1], all_model_checkpoint_paths=paths,
        save_relative_paths=True, all_model_checkpoint_timestamps=[
            tf.io.gfile.stat(f"{p}.index").mtime_nsec / 1e9 for p in paths])


def set_aside_unreadable_state(directory, print_fn=print):
    """Renames an unreadable state file to ``checkpoint.unreadable`` (printed); returns the
    reason or None. TensorFlow's manager would otherwise drop or choke on it."""
    import tensorflow as tf

    _, problem = read_state(directory)
    if problem is not None:
        path = f"{directory}/{STATE_FILE}"
        tf.io.gfile.rename(path, path + UNREADABLE_SUFFIX, overwrite=True)
        print_fn(f"Checkpoint state file {path} is {problem}: set aside as "
                 f"{path + UNREADABLE_SUFFIX}; checkpoints are found from the files on disk.")
    return problem


def restore_checkpoint(checkpoint, path):
    """Restores ``path`` into ``checkpoint``, every object matched.

    Raises:
        AssertionError: an object of ``checkpoint`` is not in the file (other networks).
    """
    checkpoint.restore(path).assert_existing_objects_matched()


def open_checkpoints(checkpoint, directory, max_to_keep, print_fn=print, restore=True):
    """Restores the newest usable checkpoint of ``directory`` and returns its manager.

    Args:
        checkpoint: the ``tf.train.Checkpoint`` to restore into (and that the manager saves).
        directory: the checkpoints folder (any ``tf.io.gfile`` path).
        max_to_keep: of the manager.
        print_fn: receives one line per skipped checkpoint or repaired state file.
        restore: False only opens the manager (e.g. the ``best/`` folder), repairing its state.

    Returns:
        ``(manager, restored_path or None)``.

    Raises:
        CheckpointError: checkpoints exist but none is readable and finite (each listed).
        ValueError: the usable checkpoint does not fit ``checkpoint`` (other networks;
            TensorFlow's message names the variable and both shapes).
    """
    import tensorflow as tf

    listed, problem = read_state(directory)
    restored, skipped = None, []
    if restore:
        for path in candidates(directory, listed):
            reason = inspect(path)
            if reason is None:
                restore_checkpoint(checkpoint, path)
                restored = path
                break
            skipped.append((path, reason))
        if skipped and restored is None:
            raise CheckpointError(
                directory, f"Expected a usable checkpoint in {directory}; none is readable and "
                "finite: " + "; ".join(f"{p}: {r}" for p, r in skipped) + ". Nothing was "
                "changed. Move the folder away to start again, or use another directory.")
        for path, reason in skipped:
            print_fn(f"Skipped checkpoint {path}: {reason}.")
    if problem is not None:
        set_aside_unreadable_state(directory, print_fn)
    if restored is not None and (problem is not None or skipped):
        good = [p for p in reversed(candidates(directory, listed))
                if step_of(p) <= step_of(restored) and p not in dict(skipped)]
        _write_state(directory, good)
    manager = tf.train.CheckpointManager(checkpoint, directory, max_to_keep=max_to_keep)
    return manager, restored
