"""File writes of a run: one atomic-write helper (temp file + rename), TensorFlow-free.

A reader (TF Serving, TensorBoard, a user's ``cat flags.cfg``, a resumed run) must never see a
half-written file: every file the runner writes goes to ``<path>.tmp.<pid>`` first and is
renamed over ``path`` (``os.replace`` is atomic on POSIX filesystems), so a kill mid-write
leaves the previous file intact.
"""

import os


def atomic_write(path, data):
    """Writes ``data`` (``str``, UTF-8, or ``bytes``) to ``path`` atomically; returns ``path``.

    Args:
        path: destination file; its directory must exist.
        data: the whole content.
    """
    mode = "wb" if isinstance(data, (bytes, bytearray)) else "w"
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with open(tmp, mode) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


__all__ = ["atomic_write"]
