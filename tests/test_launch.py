"""`python -m mmd_keras.launch`: bad input table, smoke run, exact resume after SIGKILL, NaN stop,
workdir lock."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from mmd_keras.app import launch, runner, workdir_lock

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
SMOKE = os.path.join(REPO, "configs", "smoke.cfg")
# The deterministic smoke run: 24 generator steps in epochs of 6, a checkpoint every 4.
SMOKE_FLAGS = [f"--flagfile={SMOKE}", "--deterministic", "--steps=24", "--checkpoint_every=4",
               "--keep_checkpoints=10"]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": REPO}


def _snapshot(root):
    """{relative path: bytes} of every file under ``root`` (empty if it does not exist)."""
    files = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                files[os.path.relpath(path, root)] = f.read()
    return files


def _launch(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "mmd_keras.launch", *args], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=300)


def _bad_cases(tmp):
    a_file = tmp / "a_file"
    a_file.write_text("x")
    empty = tmp / "empty_data"
    empty.mkdir()
    foreign = tmp / "foreign"
    foreign.mkdir()
    (foreign / runner.RUN_FILE).write_text('{"identity": {"architecture": "dcgan_s1"}}')
    (foreign / "checkpoints").mkdir()
    (foreign / "checkpoints" / "checkpoint").write_text('model_checkpoint_path: "ckpt-5"\n')
    return [
        (["--loss=mmd3"], "loss"),
        (["--kernel=gaussian"], "kernel"),
        (["--dataset=imagenet1k"], "dataset"),
        (["--architecture=vgg"], "architecture"),
        (["--strategy=horovod"], "strategy"),
        (["--loss=swgan"], "critic_output_dim"),
        (["--image_size=24"], "image_size"),
        # The builders' own check, run once in preflight: names the flag, leaves no .lock.
        (["--dataset=photo_patches", "--architecture=celeba160", "--image_size=48",
          "--generator_widths=", "--critic_widths="], "image_size"),
        (["--critic_widths=8,8,8,8,8,8"], "critic_widths"),
        ([f"--export_dir={a_file}"], "export_dir"),
        (["--batch_size=1"], "batch_size"),
        (["--steps=-5"], "steps"),
        (["--steps=abc"], "steps"),
        (["--dataset=image_folder"], "data_dir"),
        (["--image_channels=2"], "image_channels"),
        (["--image_channels=-1"], "image_channels"),
        (["--image_channels=3"], "image_channels"),  # digits are grayscale, fixed
        (["--dataset=moons", "--architecture=mlp", "--image_channels=1"], "image_channels"),
        (["--dataset=cifar10", "--image_size=32", "--data_dir=/nonexistent/tfds"], "data_dir"),
        (["--dataset=cifar10", "--image_size=32", f"--data_dir={empty}"], "data_dir"),
        ([f"--workdir={a_file}/run"], "workdir"),
        ([f"--workdir={foreign}"], "architecture"),
        (["--no_such_flag=1"], "no_such_flag"),
        (["--critic_schedule=sometimes"], "critic_schedule"),
        (["--tpu=grpc://10.0.0.1:8470"], "tpu"),
        (["--strategy=mirrored", "--jit_compile"], "jit_compile"),
        (["--kernel_sigmas=1,x"], "kernel_sigmas"),
        (["--loss_params=bogus=1"], "loss_params"),
        (["--mixed_precision=float64"], "mixed_precision"),
        (["--architecture=mlp"], "architecture"),
        (["--latent_dim=0"], "latent_dim"),
        (["--critic_steps=5"], "critic_steps"),
        (["--dataset=cifar10", "--image_size=32", "--adaptive_lr"], "eval_weights"),
        (["--dataset=cifar10", "--image_size=32", "--eval_weights=/no/such.npz"], "eval_weights"),
    ]


def test_bad_input_exits_2_naming_the_flag_and_writes_nothing(tmp_path, capsys):
    cases = _bad_cases(tmp_path)
    assert len(cases) >= 15
    before = _snapshot(tmp_path)
    for extra, flag in cases:
        workdir = [] if any(a.startswith("--workdir") for a in extra) else [
            f"--workdir={tmp_path / 'fresh'}"]
        code = launch.main(["prog", f"--flagfile={SMOKE}", *workdir, *extra])
        err = capsys.readouterr().err
        assert code == 2, (extra, err)
        assert err.startswith("error: ") and f"--{flag}" in err, (extra, err)
        assert _snapshot(tmp_path) == before, f"{extra} wrote files"
        assert not os.path.exists(tmp_path / "fresh")


def test_dry_run_prints_the_resolved_flags_and_writes_nothing(tmp_path, capsys):
    workdir = tmp_path / "run"
    assert launch.main(["prog", f"--flagfile={SMOKE}", f"--workdir={workdir}", "--steps=30",
                        "--dry_run"]) == 0
    out = capsys.readouterr().out
    assert "--steps=30" in out and f"--workdir={workdir}" in out and "--loss=repulsive" in out
    assert not workdir.exists()


def _launch_cifar10(tmp_path, *extra):
    """``python -m mmd_keras.launch --config=cifar10_mmd_rep_b --adaptive_lr ...`` with an
    empty cache (no FID-Inception weights) and an empty --data_dir (no CIFAR-10)."""
    data = tmp_path / "tfds"
    data.mkdir(exist_ok=True)
    env = {**ENV, "MMD_KERAS_CACHE": str(tmp_path / "cache")}
    return subprocess.run(
        [sys.executable, "-m", "mmd_keras.launch", "--config=cifar10_mmd_rep_b", "--adaptive_lr",
         f"--workdir={tmp_path / 'run'}", f"--data_dir={data}", *extra], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=600)


def test_a_real_run_reports_every_problem_before_training_in_one_message(tmp_path):
    result = _launch_cifar10(tmp_path)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "\nerror: 2 problems, found before anything was written" in "\n" + result.stderr
    err = result.stderr[result.stderr.index("error: 2 problems"):]
    weights, data = err.index("  1. --eval_weights: "), err.index("  2. --data_dir: ")
    assert weights < err.index("mmd_keras.tools.fid_weights") < err.index(
        "convert_fid_inception") < data  # the TensorFlow-only command is offered first
    assert "`--dataset=cifar10` to be readable" in err[data:]
    assert sorted(os.listdir(tmp_path)) == ["tfds"]  # no workdir, no export, no cache


def test_dry_run_exits_2_naming_each_check_it_can_do_that_fails(tmp_path):
    (tmp_path / "a_file").write_text("in the way")
    result = _launch_cifar10(tmp_path, "--dry_run", f"--export_dir={tmp_path / 'a_file'}")
    assert result.returncode == 2, result.stderr[-3000:]
    assert "\nerror: 2 problems, found before anything was written" in "\n" + result.stderr
    err = result.stderr[result.stderr.index("error: 2 problems"):]
    assert "  1. --export_dir: " in err and "  2. --eval_weights: " in err
    assert "--data_dir" not in err  # an existing folder; the dry run does not open the data
    assert "Resolved configuration" not in result.stdout
    assert sorted(os.listdir(tmp_path)) == ["a_file", "tfds"]
    # With the weights file there, the dry run passes and says what it did not check.
    (tmp_path / "weights.npz").write_bytes(b"stand-in")
    result = _launch_cifar10(tmp_path, "--dry_run", f"--eval_weights={tmp_path / 'weights.npz'}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "data: --dataset=cifar10" in result.stdout and "not opened by --dry_run" in (
        result.stdout)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """The deterministic smoke run as a user runs it (subprocess), uninterrupted; run from the
    workdir's parent so the default ``--export_dir=saved_models`` lands beside it."""
    workdir = tmp_path_factory.mktemp("smoke") / "run"
    env = {k: v for k, v in ENV.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-m", "mmd_keras.launch", *SMOKE_FLAGS,
                             f"--workdir={workdir}"], cwd=workdir.parent, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir, result


def _checkpoint_values(path):
    reader = tf.train.load_checkpoint(path)
    return {key: reader.get_tensor(key) for key in reader.get_variable_to_shape_map()
            if not key.startswith("save_counter") and "OBJECT_GRAPH" not in key}


@pytest.mark.slow
def test_smoke_run_end_to_end(smoke_run):
    workdir, result = smoke_run
    # The resolved flags replay the run.
    replayed, _ = launch.parse(["prog", f"--flagfile={workdir / 'flags.cfg'}"])
    expected, _ = launch.parse(["prog", *SMOKE_FLAGS, f"--workdir={workdir}"])
    assert replayed == expected
    # Every location is printed.
    for word in ("flags.cfg", "ckpt-24", "step_0000024.png", "tensorboard", "saved_models"):
        assert word in result.stdout, word
    # Not a terminal: one plain line every --log_every=2 generator steps, no progress bar.
    progress = [line for line in result.stdout.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in progress] == [f"{s}/24" for s in range(2, 25, 2)]
    assert all("critic_loss=" in line and "ETA " in line for line in progress)
    assert "\x08" not in result.stdout and "\x1b[" not in result.stdout
    # TensorFlow's C++ start-up lines are hidden (TF_CPP_MIN_LOG_LEVEL is not set here).
    assert "oneDNN" not in result.stderr and "cuda" not in result.stderr.lower(), result.stderr
    png = tf.io.decode_png(tf.io.read_file(str(workdir / "samples" / "latest.png"))).numpy()
    assert png.shape[-1] == 1 and png.shape[0] > 64 and len(np.unique(png)) > 10
    assert (workdir / "samples" / "step_0000018.png").exists()
    assert any(name.startswith("events") for name in os.listdir(workdir / "tensorboard"))
    # The SavedModel reproduces the generator restored from the final checkpoint.
    config = replayed
    model = runner.build_model(config)
    tf.train.Checkpoint(**model.checkpoint_items()).restore(
        str(workdir / "checkpoints" / "ckpt-24")).assert_existing_objects_matched()
    assert int(model.step.numpy()) == 24
    assert not (workdir / "saved_models").exists()
    loaded = tf.saved_model.load(str(workdir.parent / "saved_models" / "run" / "1"))
    latents = tf.random.stateless_normal([5, config.latent_dim], seed=[1, 2])
    served = loaded.signatures["serving_default"](latents=latents)
    np.testing.assert_allclose(served["images"].numpy(),
                               model.generator(latents, training=False).numpy(), atol=1e-6)


@pytest.mark.slow
def test_sigkill_and_resume_ends_with_identical_weights(smoke_run, tmp_path):
    reference, _ = smoke_run
    workdir = tmp_path / "killed"
    args = [sys.executable, "-m", "mmd_keras.launch", *SMOKE_FLAGS, f"--workdir={workdir}"]
    process = subprocess.Popen(args, cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while not (workdir / "checkpoints" / "ckpt-8.index").exists():
            assert process.poll() is None and time.time() < deadline, "no checkpoint appeared"
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
        assert process.wait(timeout=60) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
    assert not (workdir / "checkpoints" / "ckpt-24.index").exists(), "killed too late"
    resumed = _launch(*SMOKE_FLAGS, f"--workdir={workdir}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming from" in resumed.stdout
    final = _checkpoint_values(str(workdir / "checkpoints" / "ckpt-24"))
    expected = _checkpoint_values(str(reference / "checkpoints" / "ckpt-24"))
    assert final.keys() == expected.keys() and len(final) > 10
    for key, value in expected.items():
        np.testing.assert_array_equal(final[key], value, err_msg=key)


@pytest.mark.slow
def test_steps_per_execution_through_the_launcher_matches_one_step_per_call(smoke_run, tmp_path):
    """`--steps_per_execution=2` (TPU-style: 2 generator steps per host call) trains the same
    run: checkpoints at the same steps, final weights equal to one step per call."""
    from mmd_keras.app.config import RunConfig

    assert runner.build_model(RunConfig(steps_per_execution=2)).steps_per_execution == 2
    reference, _ = smoke_run
    workdir = tmp_path / "spe"
    result = _launch(*SMOKE_FLAGS, "--steps_per_execution=2",
                     f"--workdir={workdir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "--steps_per_execution=2" in (workdir / "flags.cfg").read_text()
    saved = sorted(int(n[5:-6]) for n in os.listdir(workdir / "checkpoints")
                   if n.endswith(".index"))
    assert saved == [4, 8, 12, 16, 20, 24]
    final = _checkpoint_values(str(workdir / "checkpoints" / "ckpt-24"))
    expected = _checkpoint_values(str(reference / "checkpoints" / "ckpt-24"))
    assert final.keys() == expected.keys()
    for key, value in expected.items():
        np.testing.assert_allclose(final[key], value, rtol=1e-5, atol=1e-6, err_msg=key)


def test_locked_workdir_refuses_a_second_run(tmp_path, capsys):
    workdir = tmp_path / "busy"
    lock = workdir_lock.FlockLock(str(workdir)).acquire()  # Stands for a run in progress.
    try:
        before = _snapshot(workdir)
        assert launch.main(["prog", f"--flagfile={SMOKE}", f"--workdir={workdir}"]) == 2
        err = capsys.readouterr().err
        assert "--workdir" in err and "locked" in err and f"pid {os.getpid()}" in err
        assert _snapshot(workdir) == before
    finally:
        lock.release()


@pytest.mark.slow
def test_non_finite_loss_stops_with_the_step_and_keeps_the_last_checkpoint(
        tmp_path, capsys, monkeypatch):
    original = runner.build_dataset

    def poisoned(config, start_step=0, split=None, replicas=1, training=False):
        # Batches from generator step 6 on (index 5) are NaN: a bad-data failure.
        dataset = original(config, start_step, split, replicas, training=training)
        return dataset.enumerate(start_step).map(
            lambda i, x: tf.where(i >= 5, tf.fill(tf.shape(x), float("nan")), x))

    monkeypatch.setattr(runner, "build_dataset", poisoned)
    monkeypatch.chdir(tmp_path)  # the default --export_dir=saved_models is relative
    workdir = tmp_path / "nan"
    code = launch.main(["prog", f"--flagfile={SMOKE}", f"--workdir={workdir}"])
    out = capsys.readouterr().out
    assert code == 1
    assert "Non-finite loss at generator step 6" in out and "ckpt-4" in out
    checkpoints = sorted(n for n in os.listdir(workdir / "checkpoints") if n.endswith(".index"))
    assert checkpoints == ["ckpt-4.index"]
    values = _checkpoint_values(str(workdir / "checkpoints" / "ckpt-4"))
    assert all(np.all(np.isfinite(v)) for v in values.values() if v.dtype.kind == "f")
    assert not (tmp_path / "saved_models").exists()


def test_checkpoints_before_the_first_evaluation_are_written_and_resume(tmp_path):
    # The digits default checkpoints every 500 steps and evaluates every 1,000: the first
    # checkpoint holds the evaluation state before any evaluation (best KID = +inf, no NaN).
    workdir = tmp_path / "run"
    flags = [f"--flagfile={SMOKE}", f"--workdir={workdir}", "--export=false", "--evaluate=true",
             "--eval_every=12", "--eval_num_samples=64", "--kid_subsets=2", "--kid_subset_size=32"]
    from mmd_keras.evaluation import digits_classifier

    untrained = not os.path.isfile(digits_classifier.cache_path())
    result = _launch(*flags, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    # The waits before the first progress line are announced, one line each, in order.
    lines = result.stdout.splitlines()
    preparing = next(i for i, line in enumerate(lines) if line.startswith("Preparing evaluation:"))
    tracing = lines.index("Building and tracing the train step (the first step includes it) …")
    first_step = next(i for i, line in enumerate(lines) if line.startswith("step "))
    assert preparing < tracing < first_step, lines
    assert ("training the digits classifier" in lines[preparing]) == untrained, lines[preparing]
    assert "held-out digits, and the real-vs-real KID floor" in lines[preparing]
    reader = tf.train.load_checkpoint(str(workdir / "checkpoints" / "ckpt-8"))
    assert reader.get_tensor("evaluation_state/best_metric/.ATTRIBUTES/VARIABLE_VALUE") == np.inf
    resumed = _launch(*flags, "--steps=16", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert "Resuming from" in resumed.stdout and "skipped" not in resumed.stdout


def test_finished_and_refused_runs_leave_no_lock_file(tmp_path):
    workdir = tmp_path / "run"
    flags = [f"--flagfile={SMOKE}", f"--workdir={workdir}", "--steps_per_epoch=2",
             "--export=false"]
    result = _launch(*flags, "--steps=2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert workdir_lock.LOCK_FILE not in os.listdir(workdir)  # held only while a run runs
    # A changed identity flag is refused up front (run.json), and with run.json lost by the
    # checkpoint after the lock was taken: neither leaves anything behind.
    for lose_record in (False, True):
        if lose_record:
            (workdir / runner.RUN_FILE).unlink()
        before = _snapshot(workdir)
        result = _launch(*flags, "--steps=4", "--latent_dim=16", cwd=tmp_path)
        assert result.returncode == 2, result.stderr[-2000:]
        assert "--latent_dim" in result.stderr.strip().splitlines()[-1]
        assert _snapshot(workdir) == before, lose_record


def _image_folder(folder, count=12, size=20):
    """``count`` RGB PNGs written with PIL: colour stripes on noise (not grayscale)."""
    from PIL import Image

    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        pixels[:, :5] = [255, 0, 0]
        Image.fromarray(pixels).save(folder / f"{i:02d}.png")
    return folder


def test_image_folder_runs_grayscale_or_rgb_from_the_command_line(tmp_path):
    folder = _image_folder(tmp_path / "images")
    flags = [f"--flagfile={SMOKE}", "--dataset=image_folder", f"--data_dir={folder}",
             "--steps=2", "--steps_per_epoch=2", "--sample_every=2", "--checkpoint_every=2",
             "--export_dir=exported"]
    for channels, expected in (("1", 1), ("3", 3), ("0", 3)):
        workdir = tmp_path / f"run{channels}"
        result = _launch(*flags, f"--workdir={workdir}", f"--image_channels={channels}",
                         cwd=tmp_path)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        grid = tf.io.decode_png(tf.io.read_file(str(workdir / "samples" / "latest.png")))
        assert grid.shape[-1] == expected
        loaded = tf.saved_model.load(str(tmp_path / "exported" / f"run{channels}" / "1"))
        images = loaded.signatures["sample"](batch_size=tf.constant(2),
                                             seed=tf.constant(0, tf.int64))["images"]
        assert images.shape[1:] == (16, 16, expected)
        assert "--image_channels=" + channels in (workdir / "flags.cfg").read_text()
    # The grayscale run's checkpoint cannot be resumed as RGB: refused naming the flag.
    before = _snapshot(tmp_path / "run1")
    result = _launch(*flags, f"--workdir={tmp_path / 'run1'}", "--image_channels=3",
                     "--steps=4", cwd=tmp_path)
    assert result.returncode == 2 and "--image_channels" in result.stderr, result.stderr[-2000:]
    assert _snapshot(tmp_path / "run1") == before


@pytest.mark.slow
def test_multi_worker_launch_on_loopback(tmp_path, free_ports):
    """Two `--strategy=multi_worker` launcher processes on 127.0.0.1 sharing one --workdir:
    both finish, the second writes under <workdir>/.worker_1, and their final checkpoints
    hold identical values; only the chief exports."""
    import json

    workdir, export_dir = tmp_path / "run", tmp_path / "exported"
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    processes = []
    try:
        for index in range(2):
            env = {**ENV, "TF_CONFIG": json.dumps({"cluster": cluster,
                                                   "task": {"type": "worker", "index": index}})}
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "mmd_keras.launch", f"--flagfile={SMOKE}", "--steps=6",
                 "--strategy=multi_worker", f"--workdir={workdir}", f"--export_dir={export_dir}"],
                cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        outputs = [p.communicate(timeout=240)[0] for p in processes]
    finally:
        for p in processes:  # a dead worker blocks the other: never leave one behind
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in processes] == [0, 0], [o[-2000:] for o in outputs]
    chief = _checkpoint_values(str(workdir / "checkpoints" / "ckpt-6"))
    other = _checkpoint_values(str(workdir / ".worker_1" / "checkpoints" / "ckpt-6"))
    assert chief.keys() == other.keys() and len(chief) > 10
    for key, value in chief.items():
        np.testing.assert_array_equal(other[key], value, err_msg=key)
    assert os.listdir(export_dir) == ["run"] and os.listdir(export_dir / "run") == ["1"]


def test_learning_rate_rule_on_resume():
    """A flag changed since the workdir's last run is applied and logged; an unchanged one
    keeps the checkpoint's value (e.g. decayed by --adaptive_lr)."""
    import keras

    from mmd_keras.app.runner import build

    class Model:
        step = tf.Variable(7, dtype=tf.int64)
        generator_optimizer = keras.optimizers.Adam(1e-4)  # decayed from 2e-4 by KID
        critic_optimizer = keras.optimizers.Adam(5e-4)

    config, _ = launch.parse(["prog", f"--flagfile={SMOKE}", "--critic_lr=0.001"])
    previous = {"learning_rates": {"generator_lr": 0.0002, "critic_lr": 0.0005}}
    messages = []
    assert build.apply_learning_rates(Model, config, previous, messages.append) == ["critic_lr"]
    assert float(Model.generator_optimizer.learning_rate.numpy()) == pytest.approx(1e-4)
    assert float(Model.critic_optimizer.learning_rate.numpy()) == pytest.approx(1e-3)
    assert messages == ["--critic_lr changed: 0.0005 -> 0.001 since the last run of this "
                        "workdir; applied from generator step 7 (the checkpoint's learning "
                        "rate was 0.0005)."]
    # A workdir from before run.json recorded learning rates: with --adaptive_lr the
    # checkpoint's value may be a decay, so it stays; without, a different flag is applied.
    adaptive = config.replace(adaptive_lr=True)
    assert build.apply_learning_rates(Model, adaptive, {}, messages.append) == []
    assert build.apply_learning_rates(Model, config, {}, messages.append) == ["generator_lr"]
    assert float(Model.generator_optimizer.learning_rate.numpy()) == pytest.approx(2e-4)


def test_a_fresh_lease_on_a_remote_workdir_refuses_the_run(capsys):
    """gs://-style workdirs cannot flock: a lease younger than 300 s refuses a second run
    (exit 2, naming the holder), leaving the lease and the folder as they were."""
    import json
    import uuid

    from mmd_keras.app import workdir_lock

    workdir = f"ram://launch-{uuid.uuid4().hex[:8]}/run"
    lease = {"host": "tpu-vm-1", "pid": 4242, "run_id": "abc", "acquired": time.time(),
             "heartbeat": time.time()}
    tf.io.gfile.makedirs(workdir)
    with tf.io.gfile.GFile(f"{workdir}/{workdir_lock.LOCK_FILE}", "w") as f:
        f.write(json.dumps(lease))
    code = launch.main(["prog", f"--flagfile={SMOKE}", f"--workdir={workdir}",
                        f"--export_dir={workdir}-models"])
    err = capsys.readouterr().err
    assert code == 2 and "--workdir" in err and "run abc (pid 4242 on tpu-vm-1)" in err
    assert tf.io.gfile.listdir(workdir) == [workdir_lock.LOCK_FILE]
    with tf.io.gfile.GFile(f"{workdir}/{workdir_lock.LOCK_FILE}") as f:
        assert json.loads(f.read()) == lease
