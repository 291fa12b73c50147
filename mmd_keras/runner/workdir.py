"""The workdir of a run: its lock, the files that replay it, and multi-worker directories.

Layout: ``flags.cfg`` (replays the run), ``run.json`` (checkpoint identity), ``.lock``,
``checkpoints/`` (``best/`` inside), ``samples/``, ``tensorboard/``.
"""

import dataclasses
import fcntl
import json
import os
import shlex

from mmd_keras import config as config_lib
from mmd_keras import fileio
from mmd_keras.config import ConfigError
from mmd_keras.runner.checks import RUN_FILE

FLAGS_FILE = "flags.cfg"
LOCK_FILE = ".lock"


class WorkdirLock:
    """An exclusive ``flock`` on ``<workdir>/.lock`` (the OS releases it when the process dies)."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.path = os.path.join(workdir, LOCK_FILE)
        self._fd = None

    def acquire(self):
        """Takes the lock; ConfigError naming ``--workdir`` when another process holds it."""
        created_dir = not os.path.exists(self.workdir)
        os.makedirs(self.workdir, exist_ok=True)
        created_file = not os.path.exists(self.path)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ConfigError("workdir", f"Expected `--workdir` not in use by another run; "
                              f"{self.path} is locked by {holder}. Wait for it to finish or use "
                              f"another --workdir. Received: `--workdir={self.workdir}`") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {os.uname().nodename}".encode())
        self._fd, self._created = fd, (created_dir, created_file)
        return self

    def release(self, remove_if_created=False):
        """Releases the lock; optionally removes what :meth:`acquire` created."""
        if self._fd is None:
            return
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None
        created_dir, created_file = self._created
        if remove_if_created and created_file:
            os.remove(self.path)
            if created_dir and not os.listdir(self.workdir):
                os.rmdir(self.workdir)


def flags_header(config, argv):
    """Header of ``flags.cfg``: the command that wrote it and how to replay it."""
    argv = argv or ["launch"]
    command = " ".join(["python -m mmd_keras.launch"] + [shlex.quote(a) for a in argv[1:]])
    return (f"Resolved flags of the run in {os.path.abspath(config.workdir)}.\n"
            f"Written by: {command}\n"
            f"Replay: python -m mmd_keras.launch --flagfile={os.path.join(config.workdir, FLAGS_FILE)}"
            "\n(the same --workdir resumes the run; add --workdir=NEW to train it again)")


def write_run_files(config, argv, replicas):
    """Writes ``flags.cfg`` and ``run.json`` atomically; returns the flags.cfg path."""
    workdir = os.path.abspath(config.workdir)
    flags_path = os.path.join(workdir, FLAGS_FILE)
    fileio.atomic_write(flags_path, config_lib.to_flagfile(config, flags_header(config, argv)))
    fileio.atomic_write(os.path.join(workdir, RUN_FILE), json.dumps(
        {"identity": config_lib.identity(config), "replicas": replicas}, indent=2) + "\n")
    return flags_path


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
        config, workdir=os.path.join(config.workdir, f".{task_type}_{index}"), export=False)
