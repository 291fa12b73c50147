"""Versioned, atomic, attributable export folders on any TF filesystem (local, gs://, ram://).

Layout (TF Serving's): ``<root>/<run_name>/<version>/`` holding the SavedModel and, written last,
the marker :data:`MARKER` (JSON: the exporting run's ``fingerprint``, the version, the latent
prior). TF Serving only loads numeric folders, so everything in flight has a name that starts
with a dot:

* Each export is written into ``<run_name>/.tmp-<version>-<unix time>-<owner>-<random>/`` and
  then published. On a local filesystem publishing is one ``rename(2)``: the version folder
  appears complete or not at all, even under SIGKILL. Object stores (gs://, s3://) and ram://
  have no atomic directory rename; there the files are copied into the version folder after a
  sentinel ``.publishing-<unix time>-<owner>``, ``saved_model.pb`` and the marker last, and
  the sentinel is removed at the end. A folder still holding a sentinel is not a finished
  export: :func:`find_export` never returns it and the cleaning rule below removes it.
* Cleaning rule (:func:`clean_stale`, run before each export into the run folder): a
  ``.tmp-*`` folder, or a version folder holding a ``.publishing-*`` sentinel, is removed when
  its owner tag is the exporter's own (the same run, restarted: its earlier process is gone,
  since a run holds its workdir's lock) or when its time stamp is older than
  :data:`STALE_SECONDS` (no export takes an hour; another run's export in progress is left
  alone). Time stamps are in the names because ram:// and some object stores report no
  modification times.
* A version is never overwritten; ``version=None`` takes the next free number, and a number
  taken meanwhile by a concurrent exporter moves this export to the next one.
"""

import hashlib
import json
import posixpath
import re
import time
import uuid

import tensorflow as tf

from mmd_keras import fileio
from mmd_keras.fileio import is_local, join

#: The marker file inside each finished version folder (written last).
MARKER = "mmd_keras_export.json"
MARKER_FORMAT = 1
TEMP_PREFIX, SENTINEL_PREFIX = ".tmp-", ".publishing-"
#: Age (seconds) after which another run's unfinished export is considered dead.
STALE_SECONDS = 3600
_TEMP_RE = re.compile(r"\.tmp-(\d+)-(\d+)-([0-9a-z]+)-[0-9a-f]+")
_SENTINEL_RE = re.compile(r"\.publishing-(\d+)-([0-9a-z]+)")
_LAST_FILES = ("saved_model.pb", MARKER)


def run_fingerprint(workdir, run_id):
    """The fingerprint of one training run: ``"<absolute workdir>#<run_id>"``.

    Args:
        workdir: the run's working directory (a local path or a URL such as ``gs://b/run``).
        run_id: a string fixed when the run is first created (e.g. ``uuid.uuid4().hex`` kept
            in the workdir's ``run.json``), so that a new run in a reused workdir differs.
    """
    if "://" not in workdir:
        workdir = posixpath.abspath(workdir)
    return f"{workdir}#{run_id}"


def owner_tag(fingerprint):
    """8 hex characters naming the owner of a folder in flight (``"anon"`` without one)."""
    if not fingerprint:
        return "anon"
    return hashlib.sha256(fingerprint.encode()).hexdigest()[:8]


def _listdir(path):
    try:
        return [name.rstrip("/") for name in tf.io.gfile.listdir(path)]
    except tf.errors.NotFoundError:
        return []


def check_root(root, run_name=None):
    """Raises ``ValueError`` naming ``root`` if exports cannot be written there; writes nothing.

    Meant to run before training (so a bad ``--export_dir`` fails in seconds, not after the
    run). Local paths: the nearest existing ancestor of ``<root>/<run_name>`` must be a
    writable directory, with no symlink loop on the way. Other filesystems (gs://, ram://):
    only an existing non-directory is detected (permissions show only when writing).
    """
    path = join(root, run_name) if run_name else root
    if not is_local(path):
        for candidate in (root, path):
            if tf.io.gfile.exists(candidate) and not tf.io.gfile.isdir(candidate):
                raise ValueError(f"Expected `root` to be a directory. Received: `root={root}` "
                                 f"(`{candidate}` is a file)")
        return
    problem = fileio.directory_problem(path)
    if problem is not None:
        raise ValueError(f"Expected `root` to be a usable, writable directory. Received: "
                         f"`root={root}` ({problem})")


def versions(run_dir):
    """Sorted numeric folder names of ``run_dir`` as ints (finished or not)."""
    return sorted(int(name) for name in _listdir(run_dir) if name.isdigit())


def next_version(run_dir):
    """1 + the largest numeric folder (or temporary folder's version) in ``run_dir``; 1 if none."""
    taken = versions(run_dir)
    for name in _listdir(run_dir):
        match = _TEMP_RE.fullmatch(name)
        if match:
            taken.append(int(match.group(1)))
    return max(taken, default=0) + 1


def read_marker(version_dir):
    """The marker of a finished export as a dict, or None (unfinished, foreign or unreadable)."""
    if any(name.startswith(SENTINEL_PREFIX) for name in _listdir(version_dir)):
        return None
    if not tf.io.gfile.exists(join(version_dir, "saved_model.pb")):
        return None
    try:
        with tf.io.gfile.GFile(join(version_dir, MARKER), "r") as f:
            marker = json.loads(f.read())
    except (tf.errors.NotFoundError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def find_export(root, run_name, fingerprint):
    """The newest finished version folder of ``run_name`` exported by the run ``fingerprint``.

    Returns:
        ``"<root>/<run_name>/<version>"`` or None. Versions written by another run (another
        fingerprint), by older code (no marker) or left unfinished are never returned.
    """
    run_dir = join(root, run_name)
    for version in reversed(versions(run_dir)):
        path = join(run_dir, str(version))
        marker = read_marker(path)
        if marker is not None and marker.get("fingerprint") == fingerprint:
            return path
    return None


def clean_stale(run_dir, fingerprint=None, now=None, stale_seconds=STALE_SECONDS):
    """Removes unfinished exports under ``run_dir`` by the rule of the module docstring.

    Returns:
        The removed paths.
    """
    now = time.time() if now is None else now
    mine = owner_tag(fingerprint)
    removed = []
    for name in _listdir(run_dir):
        path = join(run_dir, name)
        if name.startswith(TEMP_PREFIX):
            match = _TEMP_RE.fullmatch(name)
            stamp, owner = (int(match.group(2)), match.group(3)) if match else (0, None)
        elif name.isdigit():
            sentinels = [_SENTINEL_RE.fullmatch(n) for n in _listdir(path)
                         if n.startswith(SENTINEL_PREFIX)]
            if not sentinels:
                continue
            stamp, owner = ((int(sentinels[0].group(1)), sentinels[0].group(2))
                            if sentinels[0] else (0, None))
        else:
            continue
        if (fingerprint and owner == mine) or now - stamp > stale_seconds:
            tf.io.gfile.rmtree(path)
            removed.append(path)
    return removed


def _write_json(path, value):
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(json.dumps(value, indent=2, sort_keys=True) + "\n")


def _files(folder):
    """Relative paths of every file under ``folder``; the :data:`_LAST_FILES` at the end."""
    found = []
    for directory, _, names in tf.io.gfile.walk(folder):
        relative = directory[len(folder):].lstrip("/")
        found += [join(relative, n) if relative else n for n in names]
    return sorted(found, key=lambda f: (_LAST_FILES.index(f) if f in _LAST_FILES else -1, f))


def _publish(temporary, target, tag):
    """Moves the finished ``temporary`` folder to ``target``; False if ``target`` exists."""
    if tf.io.gfile.exists(target):
        return False
    if is_local(target):
        try:
            tf.io.gfile.rename(temporary, target, overwrite=False)
        except tf.errors.AlreadyExistsError:
            return False
        return True
    sentinel = join(target, f"{SENTINEL_PREFIX}{int(time.time())}-{tag}")
    tf.io.gfile.makedirs(target)
    _write_json(sentinel, {"from": temporary})
    for relative in _files(temporary):
        destination = join(target, relative)
        tf.io.gfile.makedirs(posixpath.dirname(destination))
        tf.io.gfile.copy(join(temporary, relative), destination, overwrite=False)
    tf.io.gfile.remove(sentinel)
    tf.io.gfile.rmtree(temporary)
    return True


def write_version(run_dir, version, write, marker, fingerprint=None, attempts=8):
    """Writes a new version folder of ``run_dir`` atomically (see the module docstring).

    Args:
        run_dir: ``<root>/<run_name>``.
        version: positive int, or None for the next free one.
        write: ``write(folder)`` writes the SavedModel into the (new) ``folder``.
        marker: JSON-able dict stored as :data:`MARKER` (``version`` and ``fingerprint`` are
            added).
        fingerprint: the exporting run's fingerprint (:func:`run_fingerprint`), or None.
        attempts: how many next-free numbers to try when concurrent exporters race.

    Returns:
        The path of the new version folder.

    Raises:
        ValueError: ``version`` was given and exists (it is never overwritten).
    """
    tf.io.gfile.makedirs(run_dir)
    clean_stale(run_dir, fingerprint)
    tag = owner_tag(fingerprint)
    for _ in range(attempts):
        number = next_version(run_dir) if version is None else version
        target = join(run_dir, str(number))
        if tf.io.gfile.exists(target):
            raise ValueError(f"Expected a new version: `{target}` already exists and is never "
                             f"overwritten. Received: `version={version!r}` (None takes the next "
                             "free one).")
        temporary = join(run_dir, f"{TEMP_PREFIX}{number}-{int(time.time())}-{tag}-"
                                  f"{uuid.uuid4().hex[:12]}")
        try:
            write(temporary)
            _write_json(join(temporary, MARKER), {
                **marker, "format": MARKER_FORMAT, "version": number,
                "fingerprint": fingerprint})
            if _publish(temporary, target, tag):
                return target
        finally:
            if tf.io.gfile.exists(temporary):
                tf.io.gfile.rmtree(temporary)
        if version is not None:
            raise ValueError(f"`{target}` appeared while exporting; it is not overwritten.")
    raise ValueError(f"no free version in `{run_dir}` after {attempts} attempts")
