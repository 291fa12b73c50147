"""File operations of a run, on local disks and on any ``tf.io.gfile`` filesystem.

A path with a scheme (``gs://bucket/run``, ``s3://``, ``hdfs://``, ``ram://`` — TF's in-memory
filesystem, which stands in for GCS in the tests) goes through ``tf.io.gfile``; a local path
through ``os`` (TensorFlow-free, so the launcher's checks do not import TensorFlow). Every
file the runner writes goes through :func:`atomic_write`: a reader (TF Serving, TensorBoard,
``cat flags.cfg``, a resumed run) never sees a half-written file.

:func:`directory_problem` is the up-front check of a directory to write into: it describes a
symbolic-link loop, a dangling link, a file in the way, or a read-only or unwritable location
(the launcher names ``--workdir``/``--export_dir`` with it) — before anything is written.
"""

import contextlib
import errno
import os
import posixpath
import uuid


def is_local(path):
    """Whether ``path`` is on the local filesystem (no ``scheme://``; ``file://`` counts)."""
    return "://" not in path or path.startswith("file://")


def _local(path):
    return path[len("file://"):] if path.startswith("file://") else path


def absolute(path):
    """``os.path.abspath`` for a local path; a URL unchanged (without a trailing ``/``)."""
    return os.path.abspath(_local(path)) if is_local(path) else path.rstrip("/")


def join(path, *names):
    """``os.path.join`` that keeps URLs intact."""
    return os.path.join(path, *names) if is_local(path) else posixpath.join(path, *names)


def exists(path):
    """Whether ``path`` exists (any filesystem)."""
    if is_local(path):
        return os.path.exists(_local(path))
    import tensorflow as tf

    return tf.io.gfile.exists(path)


def makedirs(path):
    """Creates ``path`` and its parents (no error if it exists)."""
    if is_local(path):
        os.makedirs(_local(path), exist_ok=True)
    else:
        import tensorflow as tf

        tf.io.gfile.makedirs(path)


def read_text(path):
    """The text of ``path``, or None when it does not exist."""
    if is_local(path):
        try:
            with open(_local(path)) as f:
                return f.read()
        except FileNotFoundError:
            return None
    import tensorflow as tf

    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path, "r") as f:
        return f.read()


def atomic_write(path, data):
    """Writes ``data`` (``str``, UTF-8, or ``bytes``) to ``path`` atomically; returns ``path``.

    Local: ``<path>.tmp.<pid>``, fsync, ``os.replace``. Other filesystems: a temporary object
    then ``tf.io.gfile.rename`` (one object copy on GCS: readers see the old or the new file).

    Args:
        path: destination file; its directory must exist.
        data: the whole content.
    """
    if not is_local(path):
        import tensorflow as tf

        tmp = f"{path}.tmp.{uuid.uuid4().hex[:8]}"
        try:
            with tf.io.gfile.GFile(tmp, "wb") as f:
                f.write(data.encode() if isinstance(data, str) else bytes(data))
            tf.io.gfile.rename(tmp, path, overwrite=True)
        finally:
            if tf.io.gfile.exists(tmp):
                tf.io.gfile.remove(tmp)
        return path
    mode = "wb" if isinstance(data, (bytes, bytearray)) else "w"
    tmp = f"{_local(path)}.tmp.{os.getpid()}"
    try:
        with open(tmp, mode) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, _local(path))
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


@contextlib.contextmanager
def atomic_path(path, suffix=""):
    """A local temporary path beside ``path``, renamed over ``path`` when the block succeeds.

    For writers that need a file name (``np.savez``, ``keras.Model.save_weights``); ``suffix``
    keeps the extension such writers check (e.g. ``".weights.h5"``). On an exception the
    temporary file is removed and ``path`` is untouched.
    """
    stem = path[:-len(suffix)] if suffix and path.endswith(suffix) else path
    tmp = f"{stem}.tmp.{os.getpid()}{suffix}"
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def directory_problem(path):
    """Why the local ``path`` cannot be (or become) a writable directory, or None. Writes nothing.

    Every existing component must resolve (a symbolic-link loop or a dangling link is named),
    the path must not be a file, and the nearest existing ancestor must be a writable directory
    (``os.access`` reports a read-only filesystem even to root). Paths with a scheme give None:
    checking them would need a write.
    """
    if not is_local(path):
        return None
    current = absolute(path)
    while True:
        try:
            os.stat(current)
            break
        except OSError as error:
            if error.errno == errno.ELOOP:
                return f"{current} is a symbolic link loop"
            if error.errno == errno.ENOTDIR:
                return f"a parent of {current} is a file"
            if os.path.islink(current):
                return (f"{current} is a dangling symbolic link (to "
                        f"{os.readlink(current)})")
            if error.errno != errno.ENOENT:
                return f"{error.strerror} at {current}"
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    if not os.path.isdir(current):
        return f"{current} is a file"
    if not os.access(current, os.W_OK | os.X_OK):
        why = ("on a read-only filesystem" if _read_only(current)
               else "not writable (read-only for this user)")
        return f"{current} is {why}"
    return None


def _read_only(path):
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


__all__ = ["absolute", "atomic_write", "exists", "is_local", "join",
           "makedirs", "read_text"]
