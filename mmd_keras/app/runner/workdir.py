"""The workdir of a run: the files that replay it, and multi-worker directories.

Layout: ``flags.cfg`` (replays the run), ``run.json`` (checkpoint identity), ``.lock`` (while a
run holds it), ``checkpoints/`` (``best/`` inside), ``samples/``, ``tensorboard/``.
"""

import dataclasses
import json
import os
import shlex
import uuid

from mmd_keras import fileio
from mmd_keras.app import config as config_lib
from mmd_keras.app import workdir_lock
from mmd_keras.app.config import ConfigError

FLAGS_FILE = "flags.cfg"
RUN_FILE = "run.json"
LOCK_FILE = workdir_lock.LOCK_FILE
#: Flags whose change on resume is applied to the restored optimizers (and logged).
LEARNING_RATE_FLAGS = ("generator_lr", "critic_lr")


def flags_header(config, argv):
    """Header of ``flags.cfg``: the command that wrote it and how to replay it."""
    argv = argv or ["launch"]
    command = " ".join(["python -m mmd_keras.launch"] + [shlex.quote(a) for a in argv[1:]])
    workdir = fileio.absolute(config.workdir)
    return (f"Resolved flags of the run in {workdir}.\n"
            f"Written by: {command}\n"
            f"Replay: python -m mmd_keras.launch --flagfile={fileio.join(workdir, FLAGS_FILE)}"
            "\n(the same --workdir resumes the run; add --workdir=NEW to train it again)")


def write_run_files(config, argv, replicas, run_id=None):
    """Writes ``flags.cfg`` and ``run.json`` atomically; returns the flags.cfg path.

    ``run.json`` holds the checkpoint identity, the replicas, the run id (:func:`run_id_of`: kept
    across resumes, so that the run's exports stay its own) and the learning-rate flags this
    invocation ran with (the resume rule of
    :func:`mmd_keras.app.runner.build.apply_learning_rates` compares against them).
    """
    workdir = fileio.absolute(config.workdir)
    flags_path = fileio.join(workdir, FLAGS_FILE)
    fileio.atomic_write(flags_path, config_lib.to_flagfile(config, flags_header(config, argv)))
    record = {"identity": config_lib.identity(config), "replicas": replicas,
              "run_id": run_id or run_id_of(None),
              "learning_rates": {name: getattr(config, name) for name in LEARNING_RATE_FLAGS}}
    fileio.atomic_write(fileio.join(workdir, RUN_FILE), json.dumps(record, indent=2) + "\n")
    return flags_path


def read_run_record(workdir):
    """The workdir's ``run.json`` as a dict (``{}`` when there is none); ConfigError naming
    ``--workdir`` when it is not JSON."""
    path = fileio.join(fileio.absolute(workdir), RUN_FILE)
    text = fileio.read_text(path)
    if text is None:
        return {}
    try:
        record = json.loads(text)
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
    except ValueError as error:
        raise ConfigError("workdir", f"Expected {path} to be the run record this library "
                          f"writes (JSON); it is not ({error}). Move it away to resume without "
                          f"the identity check. Received: `--workdir={workdir}`") from None
    return record


def run_id_of(previous):
    """The run id of ``previous`` (a ``run.json`` dict), or a new one for a new run."""
    return (previous or {}).get("run_id") or uuid.uuid4().hex[:16]


def worker_config(config, tf_config=None):
    """The config this process runs under ``--strategy=multi_worker``.

    Every worker must take part in each (collective) checkpoint save, so workers cannot share
    one directory: the chief (``chief`` task, else ``worker`` 0) keeps ``--workdir``; another
    worker gets the private ``<workdir>/.worker_<index>`` and does not export. ``tf_config`` is
    the ``TF_CONFIG`` JSON (default: the environment); an unreadable one is left for
    :func:`mmd_keras.distribute.create_strategy` to report.
    """
    if config.strategy != "multi_worker":
        return config
    try:
        spec = json.loads(tf_config if tf_config is not None else os.environ.get("TF_CONFIG", ""))
        task_type, index = spec["task"]["type"], int(spec["task"]["index"])
        has_chief = "chief" in spec.get("cluster", {})
    except (ValueError, KeyError, TypeError):
        return config
    if task_type == "chief" or (task_type == "worker" and index == 0 and not has_chief):
        return config
    return dataclasses.replace(
        config, workdir=fileio.join(config.workdir, f".{task_type}_{index}"), export=False)
