"""The workdir lock: at most one run writes a workdir, on local disks and on object stores.

:func:`acquire` picks the kind from the path:

* **Local paths** — :class:`FlockLock`: an exclusive ``fcntl.flock`` on ``<workdir>/.lock``.
  The operating system releases it when the process ends, however it ends (even SIGKILL), so
  a crashed run never blocks the next one. The file holds ``pid N on HOST`` for the message;
  a run that ends (or is refused) removes it, so ``.lock`` is only there while a run holds it
  or after a run was killed.
* **Paths with a scheme** (``gs://``, ``s3://``, ``hdfs://``, ``ram://``: anything
  ``tf.io.gfile`` opens but ``flock`` cannot) — :class:`LeaseLock`: ``<workdir>/.lock`` is a
  JSON lease ``{"host", "pid", "run_id", "acquired", "heartbeat"}`` (times in Unix seconds).

The lease rule:

1. No lease file: the run writes its lease and holds the lock.
2. A lease whose ``heartbeat`` is younger than ``stale_after`` seconds (default
   :data:`STALE_AFTER` = 300 s) is **fresh**: the run is refused with an error naming
   ``--workdir``, the holder (host, pid, run id) and the heartbeat's age.
3. A lease older than that (its holder died without releasing: SIGKILL, a reclaimed VM) is
   **stale** and taken over, with a message naming the previous holder and its age. An
   unreadable lease file counts as stale from its modification time.
4. While it runs, the holder rewrites ``heartbeat`` every ``heartbeat_every`` seconds (default
   :data:`HEARTBEAT_EVERY` = 30 s, a tenth of ``stale_after``) from a daemon thread; release
   deletes the lease. If the holder finds the lease rewritten by someone else (it stalled past
   ``stale_after`` and was taken over), it stops beating and sets :attr:`LeaseLock.lost`; the
   run stops at the next step boundary instead of writing beside the new holder.

Object stores offer no compare-and-swap through ``tf.io.gfile``, so a take-over writes the
lease, waits ``settle`` seconds and reads it back: of two runs that race within that window,
only the one whose lease survived holds the lock; the other is refused. The hosts' clocks must
agree to well within ``stale_after`` (NTP does this on cloud VMs).
"""

import json
import os
import socket
import threading
import time
import uuid

from mmd_keras.app.config import ConfigError
from mmd_keras.fileio import is_local

LOCK_FILE = ".lock"
#: Seconds without a heartbeat after which a lease counts as abandoned.
STALE_AFTER = 300.0
#: Seconds between two heartbeats of the holder.
HEARTBEAT_EVERY = 30.0


class WorkdirBusyError(ConfigError):
    """The workdir is locked by another run (a ConfigError naming ``--workdir``: exit 2)."""

    def __init__(self, message):
        super().__init__("workdir", message)


def _busy(path, workdir, holder):
    return WorkdirBusyError(
        f"Expected `--workdir` not in use by another run; {path} is locked by {holder}. Wait "
        f"for it to finish or use another --workdir. Received: `--workdir={workdir}`")


class FlockLock:
    """An exclusive ``flock`` on ``<workdir>/.lock`` (the OS releases it when the process dies).

    Args:
        workdir: a local directory (created by :meth:`acquire` if missing).
    """

    def __init__(self, workdir):
        self.workdir = workdir[len("file://"):] if workdir.startswith("file://") else workdir
        self.path = os.path.join(self.workdir, LOCK_FILE)
        self.lost = False
        self._fd = None
        self._created = (False, False)
        self._previous = b""

    def acquire(self):
        """Takes the lock; :class:`WorkdirBusyError` when another process holds it."""
        import fcntl  # POSIX only, and only where a local lock is taken

        created_dir = not os.path.exists(self.workdir)
        os.makedirs(self.workdir, exist_ok=True)
        while True:
            created_file = not os.path.exists(self.path)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.read(fd, 200).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise _busy(self.path, self.workdir, holder) from None
            if self._is_current(fd):
                break
            # The holder removed the file between our open and our flock (its run ended): the
            # lock we got is on a deleted file another run cannot see. Lock the path anew.
            os.close(fd)
        self._previous = os.read(fd, 1 << 16)  # put back by release(remove_if_created=True)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
        self._fd, self._created = fd, (created_dir, created_file)
        return self

    def _is_current(self, fd):
        """Whether ``fd`` is the file at :attr:`path` (not one its holder has just removed)."""
        try:
            on_disk = os.stat(self.path)
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        return (mine.st_dev, mine.st_ino) == (on_disk.st_dev, on_disk.st_ino)

    def release(self, remove_if_created=False):
        """Releases the lock and removes the lock file (a run that ends leaves no ``.lock``).

        ``remove_if_created`` undoes :meth:`acquire` (a run that stops before writing
        anything): the workdir is left as it was — a lock file that was there before (from a
        killed run) gets its previous content back, a workdir :meth:`acquire` created is
        removed if empty.
        """
        import fcntl  # POSIX only, and only where a local lock is taken

        if self._fd is None:
            return
        created_dir, created_file = self._created
        if remove_if_created and not created_file:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, self._previous, 0)
        else:  # removed while still held: a waiting run then locks a new file (acquire)
            os.remove(self.path)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None
        if remove_if_created and created_dir and not os.listdir(self.workdir):
            os.rmdir(self.workdir)


class LeaseLock:
    """A heartbeat lease in ``<workdir>/.lock`` through ``tf.io.gfile`` (rule: module docstring).

    Args:
        workdir: any directory ``tf.io.gfile`` can write (created by :meth:`acquire`).
        run_id: identifies this run in the lease (default: a random id).
        stale_after: seconds without a heartbeat after which a lease is taken over.
        heartbeat_every: seconds between heartbeats (must be < ``stale_after``).
        settle: seconds between writing a taken-over lease and reading it back.
        print_fn: where the take-over message goes.
    """

    def __init__(self, workdir, run_id=None, stale_after=STALE_AFTER,
                 heartbeat_every=HEARTBEAT_EVERY, settle=1.0, print_fn=print):
        if not 0 < heartbeat_every < stale_after:
            raise ValueError("Expected 0 < `heartbeat_every` < `stale_after`. Received: "
                             f"`heartbeat_every={heartbeat_every}`, `stale_after={stale_after}`")
        self.workdir = workdir.rstrip("/")
        self.path = f"{self.workdir}/{LOCK_FILE}"
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self.stale_after, self.heartbeat_every, self.settle = stale_after, heartbeat_every, settle
        self.print_fn = print_fn
        self.lost = False
        self._owner = {"host": socket.gethostname(), "pid": os.getpid(), "run_id": self.run_id}
        self._held = False
        self._created_dir = False
        self._stop = threading.Event()
        self._thread = None

    # --- the lease file ---

    def read(self):
        """``(lease dict or None, age in seconds or None)``; None, None when there is none."""
        import tensorflow as tf  # gfile leases only: a local lock needs no TensorFlow

        try:
            with tf.io.gfile.GFile(self.path, "rb") as f:
                data = f.read()
        except tf.errors.NotFoundError:
            return None, None
        try:
            lease = json.loads(data.decode("utf-8"))
            heartbeat = float(lease["heartbeat"])
        except (ValueError, KeyError, TypeError):
            # Unreadable: judge its age by the file's modification time.
            mtime = tf.io.gfile.stat(self.path).mtime_nsec / 1e9
            return {"unreadable": True}, time.time() - mtime
        return lease, time.time() - heartbeat

    def _write(self):
        now = time.time()
        lease = dict(self._owner, acquired=getattr(self, "_acquired", now), heartbeat=now)
        self._put(json.dumps(lease).encode())

    def _put(self, data):
        """Replaces the lease file whole (a temporary object, then a rename)."""
        import tensorflow as tf  # gfile leases only: a local lock needs no TensorFlow

        tmp = f"{self.path}.tmp-{uuid.uuid4().hex[:8]}"
        with tf.io.gfile.GFile(tmp, "wb") as f:
            f.write(data)
        tf.io.gfile.rename(tmp, self.path, overwrite=True)

    def _mine(self, lease):
        return bool(lease) and all(lease.get(k) == v for k, v in self._owner.items())

    @staticmethod
    def describe(lease):
        """``run RUN_ID (pid PID on HOST)`` of a lease dict."""
        if not lease or lease.get("unreadable"):
            return "an unreadable lease"
        return f"run {lease.get('run_id')} (pid {lease.get('pid')} on {lease.get('host')})"

    # --- acquire / release ---

    def acquire(self):
        """Takes the lock (rule in the module docstring); :class:`WorkdirBusyError` if fresh."""
        import tensorflow as tf  # gfile leases only: a local lock needs no TensorFlow

        lease, age = self.read()
        if lease is not None and age < self.stale_after:
            raise _busy(self.path, self.workdir, f"{self.describe(lease)}, heartbeat "
                        f"{max(age, 0.0):.0f} s ago (a lease is taken over after "
                        f"{self.stale_after:.0f} s without heartbeat)")
        self._created_dir = not tf.io.gfile.exists(self.workdir)
        self._previous = None
        if lease is not None:  # put back by release(remove_if_created=True)
            with tf.io.gfile.GFile(self.path, "rb") as f:
                self._previous = f.read()
        tf.io.gfile.makedirs(self.workdir)
        self._acquired = time.time()
        self._write()
        if lease is not None:
            time.sleep(self.settle)  # A racing taker writes within this window ...
            current, _ = self.read()
            if not self._mine(current):  # ... and the last writer wins.
                raise _busy(self.path, self.workdir, self.describe(current))
            self.print_fn(f"Took over the stale lock {self.path} of {self.describe(lease)}: "
                          f"no heartbeat for {age:.0f} s (> {self.stale_after:.0f} s).")
        self._held = True
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name="workdir-lease", daemon=True)
        self._thread.start()
        return self

    def _beat(self):
        while not self._stop.wait(self.heartbeat_every):
            try:
                current, _ = self.read()
                if current is not None and current.get("unreadable"):
                    continue  # caught mid-write by a non-atomic writer: look again next beat
                if not self._mine(current):
                    self.lost = True
                    self.print_fn(f"Lost the lock {self.path}: it now belongs to "
                                  f"{self.describe(current)}. Stopping at the next step.")
                    return
                self._write()
            except Exception as error:  # A transient storage error: try again next beat.
                self.print_fn(f"Heartbeat of {self.path} failed ({error}); retrying.")

    def release(self, remove_if_created=False):
        """Stops the heartbeat and deletes the lease (if still ours). ``remove_if_created``
        undoes :meth:`acquire`: a stale lease it took over is put back, and the workdir is
        removed when :meth:`acquire` created it and it is empty."""
        import tensorflow as tf  # gfile leases only: a local lock needs no TensorFlow

        if not self._held:
            return
        self._held = False
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        current, _ = self.read()
        if self._mine(current):
            if remove_if_created and self._previous is not None:
                self._put(self._previous)
            else:
                tf.io.gfile.remove(self.path)
        if remove_if_created and self._created_dir and not tf.io.gfile.listdir(self.workdir):
            tf.io.gfile.rmtree(self.workdir)


def acquire(workdir, run_id=None, print_fn=print, **lease_kwargs):
    """The lock of ``workdir``, acquired: :class:`FlockLock` for local paths, else
    :class:`LeaseLock` (``lease_kwargs`` go to it). Raises :class:`WorkdirBusyError`."""
    if is_local(workdir):
        return FlockLock(workdir).acquire()
    return LeaseLock(workdir, run_id=run_id, print_fn=print_fn, **lease_kwargs).acquire()
