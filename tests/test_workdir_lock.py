"""`mmd_keras.app.workdir_lock`: flock for local paths, the heartbeat lease for gfile schemes."""

import json
import os
import time
import uuid

import pytest
import tensorflow as tf

from mmd_keras.app import workdir_lock
from mmd_keras.app.config import ConfigError


def _ram_workdir():
    return f"ram://lock-{uuid.uuid4().hex[:8]}/run"


def _write_lease(path, heartbeat, run_id="other", host="elsewhere", pid=4242):
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(f"{path}.w", "w") as f:  # written whole, as LeaseLock writes
        f.write(json.dumps({"host": host, "pid": pid, "run_id": run_id,
                            "acquired": heartbeat, "heartbeat": heartbeat}))
    tf.io.gfile.rename(f"{path}.w", path, overwrite=True)


def _lease(path):
    with tf.io.gfile.GFile(path) as f:
        return json.loads(f.read())


def test_acquire_uses_flock_for_local_paths_and_a_lease_for_schemes(tmp_path):
    local = workdir_lock.acquire(str(tmp_path / "run"))
    remote = workdir_lock.acquire(_ram_workdir(), run_id="r1")
    try:
        assert isinstance(local, workdir_lock.FlockLock)
        assert isinstance(remote, workdir_lock.LeaseLock)
        assert _lease(remote.path)["run_id"] == "r1"
    finally:
        local.release()
        remote.release()


def test_fresh_lease_refuses_a_second_run_naming_the_holder():
    workdir = _ram_workdir()
    first = workdir_lock.LeaseLock(workdir, run_id="first").acquire()
    try:
        before = _lease(first.path)
        with pytest.raises(ConfigError) as error:
            workdir_lock.LeaseLock(workdir, run_id="second").acquire()
        assert error.value.flag == "workdir"
        message = str(error.value)
        assert "run first" in message and f"pid {os.getpid()}" in message
        assert "heartbeat" in message and "300 s" in message and f"--workdir={workdir}" in message
        assert _lease(first.path) == before  # the refused run wrote nothing
    finally:
        first.release()
    assert not tf.io.gfile.exists(first.path)  # release deletes the lease
    workdir_lock.LeaseLock(workdir, run_id="third").acquire().release()


def test_stale_lease_is_taken_over_with_a_message_naming_the_old_holder():
    workdir = _ram_workdir()
    path = f"{workdir}/{workdir_lock.LOCK_FILE}"
    _write_lease(path, heartbeat=time.time() - 400, run_id="dead")
    messages = []
    lock = workdir_lock.LeaseLock(workdir, run_id="new", settle=0.0,
                                  print_fn=messages.append).acquire()
    try:
        assert _lease(path)["run_id"] == "new"
        assert len(messages) == 1 and "run dead" in messages[0] and "pid 4242" in messages[0]
        assert "400 s" in messages[0]
    finally:
        lock.release()


def test_heartbeat_keeps_the_lease_fresh_until_release():
    workdir = _ram_workdir()
    lock = workdir_lock.LeaseLock(workdir, heartbeat_every=0.05, stale_after=0.5).acquire()
    try:
        first = _lease(lock.path)["heartbeat"]
        time.sleep(0.8)  # longer than stale_after: only the heartbeat keeps it fresh
        lease, age = lock.read()
        assert lease["heartbeat"] > first and age < 0.5
        with pytest.raises(ConfigError):
            workdir_lock.LeaseLock(workdir, heartbeat_every=0.05, stale_after=0.5).acquire()
    finally:
        lock.release()
    assert not lock.lost


def test_a_holder_that_was_taken_over_stops_beating_and_reports_lost():
    workdir = _ram_workdir()
    messages = []
    lock = workdir_lock.LeaseLock(workdir, heartbeat_every=0.05, stale_after=0.5,
                                  print_fn=messages.append).acquire()
    _write_lease(lock.path, heartbeat=time.time(), run_id="usurper")
    time.sleep(0.3)
    assert lock.lost and "usurper" in messages[-1]
    assert _lease(lock.path)["run_id"] == "usurper"  # never overwritten by the old holder
    lock.release()
    assert _lease(lock.path)["run_id"] == "usurper"  # nor deleted


def test_two_takers_racing_within_the_settle_window_only_the_last_writer_holds(monkeypatch):
    workdir = _ram_workdir()
    path = f"{workdir}/{workdir_lock.LOCK_FILE}"
    _write_lease(path, heartbeat=time.time() - 1000, run_id="dead")
    # The racing run writes its lease while this one waits to read its own back.
    monkeypatch.setattr(workdir_lock.time, "sleep",
                        lambda seconds: _write_lease(path, time.time(), run_id="racer"))
    with pytest.raises(ConfigError) as error:
        workdir_lock.LeaseLock(workdir, run_id="slow", settle=0.01).acquire()
    assert "run racer" in str(error.value)


def test_unreadable_lease_is_judged_by_its_modification_time(tmp_path):
    workdir = str(tmp_path / "run")
    os.makedirs(workdir)
    path = os.path.join(workdir, workdir_lock.LOCK_FILE)
    with open(path, "wb") as f:
        f.write(b"\x00\xff garbage")
    with pytest.raises(ConfigError, match="unreadable lease"):
        workdir_lock.LeaseLock(workdir).acquire()
    os.utime(path, (time.time() - 1000, time.time() - 1000))
    messages = []
    lock = workdir_lock.LeaseLock(workdir, settle=0.0, print_fn=messages.append).acquire()
    lock.release()
    assert "unreadable lease" in messages[0] and not os.path.exists(path)


def test_flock_lock_refuses_while_held_and_is_free_after_release(tmp_path):
    workdir = str(tmp_path / "run")
    lock = workdir_lock.acquire(workdir)
    with pytest.raises(ConfigError, match=f"pid {os.getpid()}"):
        workdir_lock.acquire(workdir)
    lock.release(remove_if_created=True)
    assert not os.path.exists(workdir)


def test_flock_release_removes_the_lock_file_and_a_racing_acquire_locks_the_new_one(
        tmp_path, monkeypatch):
    workdir = tmp_path / "run"
    workdir_lock.acquire(str(workdir)).release()
    assert workdir.is_dir() and os.listdir(workdir) == []  # a finished run leaves no .lock
    # The holder ends between a second run's open and flock: that run must not keep a lock on
    # the removed file (a third run would lock a new one beside it), but lock the path anew.
    holder = workdir_lock.acquire(str(workdir))
    real_open = os.open

    def open_then_holder_ends(path, *args):
        fd = real_open(path, *args)
        if holder._fd is not None:
            holder.release()
        return fd

    monkeypatch.setattr(workdir_lock.os, "open", open_then_holder_ends)
    second = workdir_lock.acquire(str(workdir))
    monkeypatch.undo()
    try:
        on_disk, mine = os.stat(second.path), os.fstat(second._fd)
        assert (on_disk.st_dev, on_disk.st_ino) == (mine.st_dev, mine.st_ino)
        with pytest.raises(ConfigError, match=f"pid {os.getpid()}"):
            workdir_lock.acquire(str(workdir))
    finally:
        second.release()
    assert os.listdir(workdir) == []


def test_lease_arguments_are_checked():
    with pytest.raises(ValueError, match="heartbeat_every"):
        workdir_lock.LeaseLock(_ram_workdir(), heartbeat_every=10, stale_after=5)


def test_undoing_an_acquire_puts_the_old_lock_file_back(tmp_path):
    """A run refused after taking the lock (e.g. a checkpoint that does not fit) leaves the
    workdir byte-identical: the existing .lock gets its previous content back."""
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / workdir_lock.LOCK_FILE).write_bytes(b"pid 1 on elsewhere")
    lock = workdir_lock.acquire(str(workdir))
    assert (workdir / workdir_lock.LOCK_FILE).read_bytes() != b"pid 1 on elsewhere"
    lock.release(remove_if_created=True)
    assert (workdir / workdir_lock.LOCK_FILE).read_bytes() == b"pid 1 on elsewhere"
    # A stale lease is put back too.
    remote = _ram_workdir()
    path = f"{remote}/{workdir_lock.LOCK_FILE}"
    _write_lease(path, heartbeat=time.time() - 1000, run_id="dead")
    before = _lease(path)
    lease = workdir_lock.LeaseLock(remote, settle=0.0, print_fn=lambda _: None).acquire()
    lease.release(remove_if_created=True)
    assert _lease(path) == before
