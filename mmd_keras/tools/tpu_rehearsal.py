"""A Cloud TPU VM run, rehearsed on any CPU before renting a TPU.

``python -m mmd_keras.tools.tpu_rehearsal [FLAGFILE] [--flags]`` (or ``launch/tpu_rehearsal.sh``,
same arguments as ``launch/tpu_vm.sh``) reads the command line that ``launch/tpu_vm.sh`` execs
(``python -m mmd_keras.launch --flagfile=FLAGFILE --strategy=tpu --tpu=${TPU:-local}
--mixed_precision=mixed_bfloat16 "$@"``) from the script itself and runs it in this process
(``runpy``, as ``python -m`` would), twice, as a preempted TPU job would:

1. The CPU is split into 2 logical devices; TF's TPU entry points (``TPUClusterResolver``,
   ``experimental_connect_to_cluster``, ``initialize_tpu_system``) are stood in for, and
   ``tf.distribute.TPUStrategy(resolver)`` returns a ``MirroredStrategy`` over the 2 devices:
   2 replicas in sync, as the 8 of a v3-8 are.
2. ``gs://`` is TF's in-memory ``ram://`` filesystem (it lives in one process, hence one
   process for everything): the data (an image folder of 64×64 PNGs written there), the workdir
   and the export directory are all in ``ram://rehearsal/``.
3. Run 1 trains with ``--steps_per_execution=2`` in ``mixed_bfloat16`` and gets SIGTERM (the
   preemption notice of a spot TPU) once it has written its run files: it must checkpoint at
   the step boundary and exit 42. Run 2, the same command, must resume from the ``ram://``
   checkpoint, train to ``--steps`` and exit 0 with checkpoints, sample grids, TensorBoard
   events and the exported SavedModel on ``ram://``.
4. The exported generator is loaded from ``ram://`` and must draw finite images of the
   config's shape in [-1, 1]; the run must leave no file in the working directory or the
   temporary folder (everything belongs in the bucket).

The rehearsal keeps the config's networks, loss, critic schedule and precision, and overrides
only what a CPU cannot afford (``REHEARSAL_FLAGS``): a small per-replica batch, a few steps, a
checkpoint and sample grid every ``--steps_per_execution`` steps, no KID evaluation (it needs
the Inception weights and minutes of CPU), and the data (an image folder in the bucket instead
of the config's TFDS dataset). Extra ``--flags`` go last and win (absl's rule), as with
``launch/tpu_vm.sh``; with ``--dry_run`` among them the launcher's dry run is all that runs.

The stand-in is a ``MirroredStrategy``: Keras's loop of several steps per call, taken by every
critic schedule but ``paper2``, fails there (keras-team/keras#19246); rehearse such a config
with ``--steps_per_execution=1``. ``isinstance(strategy, tf.distribute.TPUStrategy)`` is False,
so the TPU-only branches of Keras (replica 0's logs, per-host output ordering) and of TF
(``tpu.replicate``, TPU variable and checkpoint placement, per-host input sharding) are not
taken. What it cannot show: XLA compiling the step for the TPU (a TPUStrategy compiles every
replicated step; here the TF graph runs) and its compile time, HBM limits, libtpu and the
``tensorflow-tpu`` wheel, TFDS reading from ``gs://``, GCS latency and the lease timing, speed.
Exit code: 0 when every check passed, 1 with one ``rehearsal failed:`` line per failed check,
or the launcher's own code (2: bad input) when a run stops before training.
"""

import contextlib
import io
import os
import re
import runpy
import shlex
import shutil
import signal
import sys
import tempfile
import threading

#: The checkout's root (the launch scripts and configs live there, as on the TPU VM).
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(REPO, "launch", "tpu_vm.sh")
NUM_REPLICAS = 2
BUCKET = "ram://rehearsal"
STEPS, STEPS_PER_EXECUTION, IMAGES = 4, 2, 16
#: What a CPU cannot afford of a TPU run; everything else is the script's and the config's.
REHEARSAL_FLAGS = (
    "--dataset=image_folder", f"--data_dir={BUCKET}/data/images",
    f"--workdir={BUCKET}/runs/rehearsal", f"--export_dir={BUCKET}/saved_models",
    "--batch_size=2", f"--steps={STEPS}", f"--steps_per_epoch={STEPS}",
    f"--steps_per_execution={STEPS_PER_EXECUTION}", f"--checkpoint_every={STEPS_PER_EXECUTION}",
    f"--sample_every={STEPS_PER_EXECUTION}", f"--log_every={STEPS_PER_EXECUTION}",
    "--num_grid_samples=4", "--evaluate=false", "--noadaptive_lr")
EXIT_PREEMPTED = 42


# --- the script's command line -------------------------------------------------------------------

def script_defaults(text):
    """``{variable: default}`` of the script's ``NAME="${1:-default}"`` lines."""
    return dict(re.findall(r'^(\w+)="\$\{\d+:-([^}]*)\}"', text, re.M))


def tpu_vm_command(flagfile=None, extra=(), environ=None, script=SCRIPT):
    """The words ``launch/tpu_vm.sh FLAGFILE EXTRA...`` execs, read from the script.

    Args:
        flagfile: the script's first argument (None: the script's default).
        extra: the script's further arguments (``"$@"``).
        environ: the environment the script would see (``TPU``); default ``os.environ``.

    Returns:
        ``["python", "-m", MODULE, flags...]`` with the flagfile absolute (the script runs from
        the checkout's root).

    Raises:
        ValueError: the script has no ``exec python -m`` line, or it uses a shell expansion
            this reader does not know (then the rehearsal would not be the script's command).
    """
    environ = os.environ if environ is None else environ
    text = open(script).read()
    joined = re.sub(r"\\\n\s*", " ", text)
    lines = [line for line in joined.splitlines() if line.strip().startswith("exec ")]
    if len(lines) != 1:
        raise ValueError(f"Expected one `exec` line in {script}. Received: {len(lines)}")
    words = shlex.split(lines[0])[1:]
    if words[:2] != ["python", "-m"] or len(words) < 3:
        raise ValueError(f"Expected `exec python -m MODULE ...` in {script}. Received: {lines[0]}")
    flagfile = flagfile or script_defaults(text).get("FLAGFILE")
    values = {"${FLAGFILE}": os.path.join(REPO, flagfile) if flagfile else flagfile,
              "${TPU:-local}": environ.get("TPU") or "local"}
    command = []
    for word in words:
        if word == "$@":
            command += list(extra)
            continue
        for name, value in values.items():
            word = word.replace(name, value)
        if "$" in word:
            raise ValueError(f"Expected only ${{FLAGFILE}}, ${{TPU:-local}} and \"$@\" in the "
                             f"exec line of {script}. Received: `{word}`")
        command.append(word)
    return command


# --- the stand-ins --------------------------------------------------------------------------------

def split_cpu(tf, num_devices=NUM_REPLICAS):
    """Splits the physical CPU into ``num_devices`` logical devices (before any TF op)."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(num_devices)])
    return [d.name for d in tf.config.list_logical_devices("CPU")]


def stand_in_tpu(tf, devices, calls):
    """Replaces TF's TPU entry points; ``calls`` records what the launcher asked for."""

    class Resolver:
        """Refuses a missing name as TF's does (``tpu=None`` without ``TPU_NAME``)."""

        def __init__(self, tpu=None, **kwargs):
            if tpu is None and not os.environ.get("TPU_NAME"):
                raise ValueError("Please provide a TPU Name to connect to.")
            self.tpu = tpu
            calls.append(("resolver", tpu))

    class TPUStrategy:
        """``TPUStrategy(resolver)`` makes a ``MirroredStrategy`` over ``devices``. A class (code
        checks ``isinstance(strategy, tf.distribute.TPUStrategy)``), but the strategy is not one
        of its instances: Keras's TPU-only branches are not taken, since a MirroredStrategy
        cannot run them."""

        def __new__(cls, resolver):
            calls.append(("TPUStrategy", resolver.tpu))
            return tf.distribute.MirroredStrategy(devices=devices)

    tf.distribute.cluster_resolver.TPUClusterResolver = Resolver
    tf.config.experimental_connect_to_cluster = lambda r: calls.append(("connect", r.tpu))
    tf.tpu.experimental.initialize_tpu_system = lambda r: calls.append(("initialize", r.tpu))
    tf.distribute.TPUStrategy = TPUStrategy


def write_images(tf, folder, count=IMAGES, size=64):
    """``count`` smooth random RGB PNGs of ``size``² in ``folder`` (the bucket's data)."""
    import numpy as np

    tf.io.gfile.makedirs(folder)
    rng = np.random.default_rng(0)
    ramp = np.linspace(0.0, 1.0, size)
    for i in range(count):
        colour = rng.uniform(0, 255, size=(1, 1, 3))
        image = colour * ramp[:, None, None] + (255 - colour) * ramp[None, :, None] / 2
        png = tf.io.encode_png(np.clip(image, 0, 255).astype(np.uint8))
        with tf.io.gfile.GFile(f"{folder}/{i:03d}.png", "wb") as f:
            f.write(png.numpy())


# --- the runs -------------------------------------------------------------------------------------

class _Tee(io.TextIOBase):
    """Writes to the console and keeps a copy (the checks read what the launcher printed)."""

    def __init__(self, stream):
        self.stream, self.parts = stream, []

    def write(self, text):
        self.parts.append(text)
        return self.stream.write(text)

    def flush(self):
        self.stream.flush()

    def isatty(self):
        return False

    def getvalue(self):
        return "".join(self.parts)


def run_module(command):
    """Runs ``python -m MODULE ARGS`` in this process; ``(exit code, stdout)``."""
    saved = sys.argv
    sys.argv = [command[2], *command[3:]]
    tee = _Tee(sys.stdout)
    try:
        with contextlib.redirect_stdout(tee):
            runpy.run_module(command[2], run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    finally:
        sys.argv = saved
    return code, tee.getvalue()


@contextlib.contextmanager
def preempt_when_exists(tf, path):
    """Sends this process SIGTERM (a spot VM's preemption notice) once ``path`` exists."""
    done = threading.Event()

    def watch():
        while not done.wait(0.05):
            if tf.io.gfile.exists(path):
                os.kill(os.getpid(), signal.SIGTERM)
                return

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def flag_value(command, name):
    """The last ``--name=value`` of ``command`` (words or a flag file's lines; absl: the last
    one wins)."""
    values = [w.split("=", 1)[1] for w in command if w.startswith(f"--{name}=")]
    return values[-1] if values else None


def check_outputs(tf, command, first, second, calls):
    """Every check of the rehearsal after the two runs; the list of failures."""
    import keras
    import numpy as np

    failures = []

    def expect(condition, message):
        if not condition:
            failures.append(message)

    workdir, export_dir = flag_value(command, "workdir"), flag_value(command, "export_dir")
    steps, per_execution = (int(flag_value(command, name))
                            for name in ("steps", "steps_per_execution"))
    (code1, out1), (code2, out2) = first, second
    expect(code1 == EXIT_PREEMPTED, f"run 1 (SIGTERM) exited {code1}, expected {EXIT_PREEMPTED}")
    expect(f"Stopped by SIGTERM at generator step {per_execution}" in out1,
           f"run 1 did not stop at step {per_execution} (the first step boundary)")
    expect(code2 == 0, f"run 2 exited {code2}, expected 0")
    expect(re.search(rf"Resuming from {re.escape(workdir)}/checkpoints/\S+ at generator step "
                     rf"{per_execution}\.", out2) is not None,
           f"run 2 did not resume from the {workdir} checkpoint of step {per_execution}")
    expect(f"Trained to generator step {steps}" in out2, f"run 2 did not reach step {steps}")
    expect(f"{NUM_REPLICAS} replica(s)" in out1 + out2, f"not {NUM_REPLICAS} replicas in sync")
    tpu = flag_value(command, "tpu")
    expect(calls.count(("TPUStrategy", tpu)) == 2 and ("initialize", tpu) in calls,
           f"the launcher did not create a TPUStrategy for --tpu={tpu} in both runs: {calls}")
    expect(keras.mixed_precision.global_policy().name == flag_value(command, "mixed_precision"),
           "the Keras dtype policy is not the command's --mixed_precision")
    flags_cfg = f"{workdir}/flags.cfg"
    resolved = tf.io.gfile.GFile(flags_cfg).read() if tf.io.gfile.exists(flags_cfg) else ""
    for flag in ("strategy=tpu", f"tpu={tpu}", "mixed_precision=mixed_bfloat16",
                 f"steps_per_execution={per_execution}", "critic_schedule=", "loss="):
        expect(f"--{flag}" in resolved, f"{flags_cfg} lacks --{flag}")
    latest = tf.train.latest_checkpoint(f"{workdir}/checkpoints")
    expect(latest is not None and latest.endswith(f"-{steps}"),
           f"latest checkpoint in {workdir}/checkpoints is {latest}, expected one of step {steps}")
    samples = tf.io.gfile.glob(f"{workdir}/samples/*.png")
    expect(len(samples) >= steps // per_execution, f"sample grids in {workdir}/samples: {samples}")
    events = tf.io.gfile.glob(f"{workdir}/tensorboard/**/events.out.tfevents.*") + \
        tf.io.gfile.glob(f"{workdir}/tensorboard/events.out.tfevents.*")
    expect(events, f"no TensorBoard events in {workdir}/tensorboard")
    exports = tf.io.gfile.glob(f"{export_dir}/*/*/saved_model.pb")
    expect(len(exports) == 1, f"expected one SavedModel under {export_dir}: {exports}")
    if exports:
        size = int(flag_value(resolved.splitlines(), "image_size") or 0)
        loaded = tf.saved_model.load(os.path.dirname(exports[0]))
        images = loaded.signatures["sample"](batch_size=tf.constant(3),
                                             seed=tf.constant(7, tf.int64))["images"].numpy()
        expect(images.shape == (3, size, size, 3), f"exported images have shape {images.shape}")
        expect(np.all(np.isfinite(images)) and np.abs(images).max() <= 1.0,
               "exported images are not finite values in [-1, 1]")
    return failures


#: TensorFlow's AutoGraph writes the source of each converted function to the temporary
#: folder and deletes it when the process exits (not the run's output).
AUTOGRAPH_FILE = re.compile(r"__autograph_generated_file\w+\.py$")


def stray_files(*folders):
    """Every file or folder under ``folders`` (which the runs must leave empty)."""
    return [os.path.join(root, name) for folder in folders for root, dirs, files in os.walk(folder)
            for name in dirs + files if not AUTOGRAPH_FILE.match(name)]


def main(argv=None):
    """Runs the rehearsal (``[FLAGFILE] [--flags]``, as ``launch/tpu_vm.sh``); the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    flagfile, extra = (argv[0], argv[1:]) if argv and not argv[0].startswith("-") else (None, argv)
    command = tpu_vm_command(flagfile, [*REHEARSAL_FLAGS, *extra])
    print("Rehearsing:", shlex.join(command), flush=True)
    scratch = tempfile.mkdtemp(prefix="tpu_rehearsal_")
    cwd, tmp = os.path.join(scratch, "cwd"), os.path.join(scratch, "tmp")
    os.makedirs(cwd), os.makedirs(tmp)
    # Before TensorFlow starts: its C++ side reads TMPDIR when it needs a temporary file.
    os.environ["TMPDIR"], tempfile.tempdir = tmp, tmp
    os.environ.pop("TPU_NAME", None)
    os.chdir(cwd)
    try:
        code, failures = rehearse(command)
        failures += [f"a file outside the bucket: {path}" for path in stray_files(cwd, tmp)]
    finally:
        os.chdir(REPO)
        shutil.rmtree(scratch, ignore_errors=True)
    for failure in failures:
        print(f"rehearsal failed: {failure}", file=sys.stderr)
    if code == 0 and not failures and "--dry_run" not in command:
        print(f"Rehearsal passed: {shlex.join(command[3:])}\n  trained to step "
              f"{flag_value(command, 'steps')} on {NUM_REPLICAS} replicas, preempted and resumed "
              f"from {flag_value(command, 'workdir')}, exported to "
              f"{flag_value(command, 'export_dir')}; nothing written outside the bucket.")
    return code if code else (1 if failures else 0)


def rehearse(command):
    """The two runs of ``command`` and the checks; ``(exit code, failures)`` (the launcher's
    code when a run stopped for another reason than the preemption, else 0)."""
    import tensorflow as tf

    devices = split_cpu(tf)
    calls = []
    stand_in_tpu(tf, devices, calls)
    write_images(tf, flag_value(command, "data_dir"))  # (resized to --image_size when read)
    if "--dry_run" in command:
        return run_module(command)[0], []
    with preempt_when_exists(tf, f"{flag_value(command, 'workdir')}/flags.cfg"):
        first = run_module(command)
    if first[0] not in (0, EXIT_PREEMPTED):
        return first[0], []
    print("Rerunning the same command (as after a preemption) …", flush=True)
    second = run_module(command)
    return 0, check_outputs(tf, command, first, second, calls)


if __name__ == "__main__":
    sys.exit(main())
