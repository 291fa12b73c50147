"""mmd_keras.export: TF Serving layout, signatures (TF2 loader), input checks, and the storage
rules: atomic versions on any filesystem, markers, stale temporary folders (the TF1 loader and
``saved_model_cli run`` are in test_export_loaders.py)."""

import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmd_keras import export, rng as rng_lib
from mmd_keras.export import storage

LATENT_DIM = 4


@pytest.fixture(scope="module")
def generator():
    keras.utils.set_random_seed(3)
    latents = keras.Input((LATENT_DIM,), name="latents")
    x = keras.layers.Dense(2 * 2 * 8)(latents)
    x = keras.layers.Reshape((2, 2, 8))(x)
    x = keras.layers.Conv2DTranspose(3, 4, strides=2, padding="same")(x)
    x = keras.layers.BatchNormalization()(x)
    images = keras.layers.Activation("tanh")(x * 3.0)
    return keras.Model(latents, images)


@pytest.fixture(scope="module")
def exported(generator, tmp_path_factory):
    root = str(tmp_path_factory.mktemp("saved_models"))
    path = export.export_generator(generator, root, "digits_run", latent_distribution="uniform")
    return root, path, tf.saved_model.load(path)


def _uint8_reference(images):
    return np.clip(np.round((images.astype(np.float64) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def test_layout_is_tf_serving_versions(exported):
    root, path, _ = exported
    assert path == os.path.join(root, "digits_run", "1")
    assert sorted(os.listdir(os.path.join(root, "digits_run"))) == ["1"]  # no temp folder left
    assert os.path.exists(os.path.join(path, "saved_model.pb"))
    assert os.path.isdir(os.path.join(path, "variables"))
    marker = json.load(open(os.path.join(path, export.MARKER)))
    assert marker == {"format": 1, "version": 1, "fingerprint": None, "run_name": "digits_run",
                      "latent_dim": LATENT_DIM, "latent_distribution": "uniform",
                      "max_batch_size": export.DEFAULT_MAX_BATCH_SIZE,
                      "signatures": ["serving_default", "sample", "prior"]}


def test_serving_default_reproduces_generator_exactly(exported, generator, rng):
    _, _, loaded = exported
    latents = rng.uniform(-1, 1, size=(5, LATENT_DIM)).astype(np.float32)
    expected = generator(latents, training=False).numpy()
    outputs = loaded.signatures["serving_default"](latents=tf.constant(latents))
    assert set(outputs) == {"images", "images_uint8"}
    np.testing.assert_array_equal(outputs["images"].numpy(), expected)
    assert outputs["images_uint8"].dtype == tf.uint8
    np.testing.assert_array_equal(outputs["images_uint8"].numpy(), _uint8_reference(expected))
    # The restored object's tf.function gives the same numbers as the signature.
    np.testing.assert_array_equal(loaded.serving_default(latents)["images"].numpy(), expected)


def test_sample_signature_is_stateless_and_matches_generator(exported, generator):
    _, _, loaded = exported
    sample = loaded.signatures["sample"]
    first = sample(batch_size=tf.constant(6), seed=tf.constant(7, tf.int64))
    again = sample(batch_size=tf.constant(6), seed=tf.constant(7, tf.int64))
    other = sample(batch_size=tf.constant(6), seed=tf.constant(8, tf.int64))
    latents = first["latents"].numpy()
    assert latents.shape == (6, LATENT_DIM)
    assert latents.min() >= -1.0 and latents.max() <= 1.0
    np.testing.assert_array_equal(again["images"].numpy(), first["images"].numpy())
    assert not np.array_equal(other["latents"].numpy(), latents)
    # Latents are those of MMDGAN.generate (rng.generation_latents), the one recipe.
    np.testing.assert_array_equal(
        latents, rng_lib.generation_latents(6, LATENT_DIM, "uniform", 7).numpy())
    expected = generator(latents, training=False).numpy()
    np.testing.assert_array_equal(first["images"].numpy(), expected)
    np.testing.assert_array_equal(first["images_uint8"].numpy(), _uint8_reference(expected))


def test_signature_specs(exported):
    _, _, loaded = exported
    default = loaded.signatures["serving_default"]
    (spec,) = default.structured_input_signature[1].values()
    # Unknown rank on purpose: the shape is checked inside the graph, with a clear message.
    assert spec.name == "latents" and spec.dtype == tf.float32 and spec.shape.rank is None
    outputs = default.structured_outputs
    assert outputs["images"].dtype == tf.float32
    assert outputs["images_uint8"].dtype == tf.uint8
    assert outputs["images_uint8"].shape.as_list() == [None, 4, 4, 3]
    sample_inputs = loaded.signatures["sample"].structured_input_signature[1]
    assert {k: v.dtype for k, v in sample_inputs.items()} == {
        "batch_size": tf.int32,
        "seed": tf.int64,
    }
    prior = {k: v.numpy() for k, v in loaded.signatures["prior"]().items()}
    assert prior == {"distribution": b"uniform", "latent_dim": LATENT_DIM,
                     "max_batch_size": export.DEFAULT_MAX_BATCH_SIZE}


def _saved_model_cli_show_all(path, capsys):
    """The text of `saved_model_cli show --dir path --all`.

    Runs the CLI's own `_show_all` in this process (the subprocess costs ~10-30 s of
    TensorFlow start-up on a shared 2-core machine); falls back to the executable.
    """
    try:
        from tensorflow.python.tools import saved_model_cli

        show_all = saved_model_cli._show_all
    except (ImportError, AttributeError):
        cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        return subprocess.run(
            [cli, "show", "--dir", path, "--all"],
            capture_output=True, text=True, timeout=300, env=env, check=True,
        ).stdout
    capsys.readouterr()
    show_all(path)
    return capsys.readouterr().out


def test_saved_model_cli_lists_both_signatures(exported, capsys):
    _, path, _ = exported
    text = _saved_model_cli_show_all(path, capsys)
    assert "signature_def['serving_default']" in text
    assert "signature_def['sample']" in text
    assert "signature_def['prior']" in text
    assert "inputs['latents'] tensor_info:" in text
    assert "inputs['batch_size'] tensor_info:" in text
    assert "outputs['images_uint8'] tensor_info:" in text
    assert "DT_UINT8" in text


def test_versions_increment_and_never_overwrite(generator, tmp_path):
    root = str(tmp_path)
    first = export.export_generator(generator, root, "run", version=3)
    second = export.export_generator(generator, root, "run", latent_distribution="normal")
    assert second == os.path.join(root, "run", "4")
    assert export.next_version(os.path.join(root, "run")) == 5
    before = sorted(os.listdir(first))
    stamp = os.path.getmtime(os.path.join(first, "saved_model.pb"))
    with pytest.raises(ValueError, match="already exists"):
        export.export_generator(generator, root, "run", version=3)
    assert sorted(os.listdir(first)) == before
    assert os.path.getmtime(os.path.join(first, "saved_model.pb")) == stamp
    assert sorted(os.listdir(os.path.join(root, "run"))) == ["3", "4"]
    # The normal export draws standard-normal latents (values outside [-1, 1] occur).
    latents = tf.saved_model.load(second).signatures["sample"](
        batch_size=tf.constant(64), seed=tf.constant(1, tf.int64)
    )["latents"].numpy()
    np.testing.assert_array_equal(
        latents, rng_lib.generation_latents(64, LATENT_DIM, "normal", 1).numpy())
    assert np.abs(latents).max() > 1.0


def test_failed_export_leaves_nothing(generator, tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        os.makedirs(args[1])
        raise RuntimeError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        export.export_generator(generator, str(tmp_path), "run")
    assert os.listdir(os.path.join(tmp_path, "run")) == []


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"run_name": "bad/name"}, "run_name"),
        ({"run_name": ""}, "run_name"),
        ({"version": 0}, "version"),
        ({"latent_distribution": "cauchy"}, "latent_distribution"),
        ({"latent_dim": 5}, "latent_dim"),
    ],
)
def test_bad_arguments(generator, tmp_path, kwargs, match):
    arguments = {"run_name": "run", **kwargs}
    with pytest.raises(ValueError, match=match):
        export.export_generator(generator, str(tmp_path), **arguments)
    assert not os.path.exists(os.path.join(tmp_path, "run", "1"))


# --- input checks inside the graph (issue 18 items 9-10) --------------------------------------

@pytest.mark.parametrize("latents, message", [
    (np.zeros((2, LATENT_DIM + 1), np.float32), f"Received: shape] [2 {LATENT_DIM + 1}]"),
    (np.zeros((LATENT_DIM,), np.float32), f"Received: shape] [{LATENT_DIM}]"),
    (np.zeros((0, LATENT_DIM), np.float32), f"Received: shape] [0 {LATENT_DIM}]"),
    (np.full((1, LATENT_DIM), np.nan, np.float32), "`latents` of finite values"),
    (np.array([[0.0, np.inf, 0.0, 0.0]], np.float32), "NaN or Inf at flat positions] [[1]]"),
])
def test_serving_default_rejects_bad_latents_naming_them(exported, latents, message):
    _, _, loaded = exported
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        loaded.signatures["serving_default"](latents=tf.constant(latents))
    assert "latents" in error.value.message and message in error.value.message, error.value.message
    if "shape" in message:
        assert f"float32 [batch, {LATENT_DIM}]" in error.value.message


@pytest.mark.parametrize("batch_size", [-1, 0, export.DEFAULT_MAX_BATCH_SIZE + 1])
def test_sample_rejects_bad_batch_size_naming_it(exported, batch_size):
    _, _, loaded = exported
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=rf"Expected `batch_size`.*Received: batch_size =\] \[{batch_size}\]"):
        loaded.signatures["sample"](batch_size=tf.constant(batch_size),
                                    seed=tf.constant(1, tf.int64))


def test_generator_with_non_finite_weights_is_not_exported(generator, tmp_path):
    broken = keras.models.clone_model(generator)
    broken.set_weights(generator.get_weights())
    variance = next(w for w in broken.weights if "moving_variance" in w.path)
    variance.assign(np.full(variance.shape, np.inf, np.float32))
    with pytest.raises(ValueError, match=r"finite weights.*moving_variance"):
        export.export_generator(broken, str(tmp_path), "run")
    assert not os.path.exists(os.path.join(tmp_path, "run"))


# --- storage: any filesystem, markers, two runs, stale folders (issue 18 items 5-6) ------------

def test_ram_filesystem_export_loads_back_and_is_found(generator, rng):
    root = f"ram://export_test_{os.getpid()}/saved_models"
    path = export.export_generator(generator, root, "run", fingerprint="ram-run#1")
    assert path == f"{root}/run/1"
    assert sorted(n.rstrip("/") for n in tf.io.gfile.listdir(f"{root}/run")) == ["1"]
    assert export.find_export(root, "run", "ram-run#1") == path
    assert export.find_export(root, "run", "another#2") is None
    assert not any(n.startswith(".publishing-") for n in tf.io.gfile.listdir(path))
    latents = rng.uniform(-1, 1, (3, LATENT_DIM)).astype(np.float32)
    served = tf.saved_model.load(path).signatures["serving_default"](latents=latents)["images"]
    np.testing.assert_array_equal(served.numpy(), generator(latents, training=False).numpy())
    assert export.next_version(f"{root}/run") == 2


def test_two_runs_with_one_name_never_claim_each_other(generator, tmp_path):
    root = str(tmp_path)
    first = export.export_generator(generator, root, "run", fingerprint="/a/run#1")
    second = export.export_generator(generator, root, "run", fingerprint="/b/run#2")
    assert (first, second) == (os.path.join(root, "run", "1"), os.path.join(root, "run", "2"))
    assert export.find_export(root, "run", "/a/run#1") == first
    assert export.find_export(root, "run", "/b/run#2") == second
    assert export.find_export(root, "run", "/c/run#3") is None
    assert export.find_export(root, "other", "/a/run#1") is None
    # A version without a marker (older code, or a foreign SavedModel) is never claimed.
    os.remove(os.path.join(second, export.MARKER))
    assert export.find_export(root, "run", "/b/run#2") is None
    assert export.read_marker(first)["fingerprint"] == "/a/run#1"


def test_run_fingerprint():
    assert export.run_fingerprint("gs://bucket/run", "abc") == "gs://bucket/run#abc"
    assert export.run_fingerprint("runs/x", "abc") == os.path.abspath("runs/x") + "#abc"


def test_stale_temporary_folders_are_cleaned_by_the_rule(generator, tmp_path):
    run_dir = tmp_path / "run"
    now = int(time.time())
    mine, other = storage.owner_tag("/w#1"), storage.owner_tag("/v#2")
    names = {
        f".tmp-1-{now}-{mine}-ab12": False,                          # own: removed
        f".tmp-2-{now}-{other}-cd34": True,                          # another run, fresh: kept
        f".tmp-3-{now - storage.STALE_SECONDS - 5}-{other}-ef56": False,  # another, stale
        ".tmp-4-0123456789abcdef0123456789abcdef": False,            # pre-marker code's name
    }
    for name in names:
        os.makedirs(run_dir / name / "variables")
    os.makedirs(run_dir / "7")  # an unfinished non-atomic publish of another run, stale
    (run_dir / "7" / f".publishing-{now - storage.STALE_SECONDS - 5}-{other}").write_text("{}")
    os.makedirs(run_dir / "8")  # one that is in progress right now
    (run_dir / "8" / f".publishing-{now}-{other}").write_text("{}")
    path = export.export_generator(generator, str(tmp_path), "run", fingerprint="/w#1")
    kept = {n for n, keep in names.items() if keep} | {"8", "9"}
    assert set(os.listdir(run_dir)) == kept and path == str(run_dir / "9")
    assert export.find_export(str(tmp_path), "run", "/w#1") == path
    assert export.read_marker(str(run_dir / "8")) is None


def test_failed_non_atomic_publish_is_never_a_finished_version(generator, monkeypatch):
    """On ram:// (like gs://) publishing copies files; a failure half-way leaves a folder that
    is not claimed and that the same run's next export removes."""
    root = f"ram://publish_test_{os.getpid()}"
    copied = []
    real_copy = tf.io.gfile.copy

    def failing_copy(source, destination, overwrite=False):
        if source.endswith("saved_model.pb"):
            raise tf.errors.ResourceExhaustedError(None, None, "no space left")
        copied.append(destination)
        return real_copy(source, destination, overwrite)

    monkeypatch.setattr(tf.io.gfile, "copy", failing_copy)
    with pytest.raises(tf.errors.ResourceExhaustedError):
        export.export_generator(generator, root, "run", fingerprint="/w#1")
    assert copied and not any(c.endswith(export.MARKER) for c in copied)
    half = f"{root}/run/1"
    assert export.read_marker(half) is None and export.find_export(root, "run", "/w#1") is None
    monkeypatch.setattr(tf.io.gfile, "copy", real_copy)
    path = export.export_generator(generator, root, "run", fingerprint="/w#1")
    assert path == half and export.find_export(root, "run", "/w#1") == path
    assert tf.saved_model.load(path).signatures["prior"]()["latent_dim"].numpy() == LATENT_DIM


_KILL_SCRIPT = r"""
import sys, time
import keras, tensorflow as tf
from mmd_keras import export

real_save = tf.saved_model.save

def save_then_hang(*args, **kwargs):
    real_save(*args, **kwargs)
    time.sleep(600)  # the parent kills us here at the latest, before the publish

tf.saved_model.save = save_then_hang
latents = keras.Input((4,))
generator = keras.Model(latents, keras.layers.Reshape((2, 2, 1))(keras.layers.Dense(4)(latents)))
export.export_generator(generator, sys.argv[1], "run", fingerprint="/w#1")
"""


@pytest.mark.slow
def test_sigkill_during_save_leaves_no_version(generator, tmp_path):
    """A real SIGKILL of an exporting process while the SavedModel is being written: no
    numeric folder (TF Serving would load it), no claim, and the rerun cleans and exports."""
    root, run_dir = str(tmp_path), tmp_path / "run"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    process = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, root], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and process.poll() is None:
            if run_dir.is_dir() and any(n.startswith(".tmp-") for n in os.listdir(run_dir)):
                break  # the SavedModel is being written
            time.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    names = os.listdir(run_dir)
    assert len(names) == 1 and names[0].startswith(".tmp-1-"), names
    assert export.find_export(root, "run", "/w#1") is None
    assert export.next_version(str(run_dir)) == 2  # the temporary folder reserves its number
    path = export.export_generator(generator, root, "run", fingerprint="/w#1")
    assert os.listdir(run_dir) == ["1"] and export.find_export(root, "run", "/w#1") == path


def test_readme_rest_bodies_run_against_a_digits_sized_export():
    """The REST request bodies of docs/serving.md and of the README's serving section, fed as
    TF Serving's columnar "inputs" format."""
    import re

    from mmd_keras import networks

    def bodies_in(page, heading=None):
        text = open(os.path.join(os.path.dirname(__file__), os.pardir, page)).read()
        if heading:  # only that section
            text = text[text.index(heading):]
            text = text[:text.index("\n## ", 3)]
        return [json.loads(b) for b in re.findall(r"```json\n(.*?)\n```", text, re.S)]

    bodies = bodies_in("docs/serving.md")
    assert [b["signature_name"] for b in bodies] == ["serving_default", "sample"]
    readme_bodies = bodies_in("README.md", "## Serving with TF Serving")
    assert [b["signature_name"] for b in readme_bodies] == ["sample"]
    bodies += readme_bodies
    keras.utils.set_random_seed(0)
    generator = networks.build_generator("small", image_size=8, channels=1, latent_dim=32)
    path = export.export_generator(generator, f"ram://readme_{os.getpid()}", "digits")
    loaded = tf.saved_model.load(path)
    for body in bodies:
        signature = loaded.signatures[body["signature_name"]]
        specs = signature.structured_input_signature[1]
        inputs = {k: tf.constant(v, specs[k].dtype) for k, v in body["inputs"].items()}
        outputs = signature(**inputs)
        assert outputs["images_uint8"].shape[1:] == (8, 8, 1)
    latents = np.asarray(bodies[0]["inputs"]["latents"], np.float32)
    np.testing.assert_array_equal(
        loaded.signatures["serving_default"](latents=latents)["images"].numpy(),
        generator(latents, training=False).numpy())


def test_check_root_refuses_unusable_export_dirs_up_front(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    loop = tmp_path / "loop"
    os.symlink(loop, loop)
    export.check_root(str(tmp_path / "new" / "deeper"), "run")  # creatable: fine
    export.check_root(f"ram://check_{os.getpid()}", "run")
    for root, message in ((str(a_file), "is a file"), (str(a_file / "sub"), "is a file"),
                          (str(loop / "sub"), "symbolic link loop")):
        with pytest.raises(ValueError, match=rf"`root=.*{message}"):
            export.check_root(root, "run")
    assert sorted(os.listdir(tmp_path)) == ["file", "loop"]  # nothing written
    if os.geteuid() != 0:  # root may write anywhere
        read_only = tmp_path / "ro"
        read_only.mkdir(mode=0o500)
        with pytest.raises(ValueError, match="read-only"):
            export.check_root(str(read_only), "run")


def test_tf1_loader_in_process_runs_both_signatures(exported, generator, rng):
    """TF Serving's loader path (restore op + Session), in-process for speed; the subprocess
    versions for every architecture are in test_export_loaders.py."""
    _, path, _ = exported
    latents = rng.uniform(-1, 1, (3, LATENT_DIM)).astype(np.float32)
    with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], path)

        def run(name, **inputs):
            signature = meta.signature_def[name]
            fetches = {k: graph.get_tensor_by_name(v.name) for k, v in signature.outputs.items()}
            return session.run(fetches, {graph.get_tensor_by_name(signature.inputs[k].name): v
                                         for k, v in inputs.items()})

        served = run("serving_default", latents=latents)
        sampled = run("sample", batch_size=np.int32(4), seed=np.int64(3))
        prior = run("prior")
    np.testing.assert_allclose(served["images"], generator(latents, training=False).numpy(),
                               atol=2e-6)
    recipe = rng_lib.generation_latents(4, LATENT_DIM, "uniform", 3).numpy()
    np.testing.assert_array_equal(sampled["latents"], recipe)
    np.testing.assert_allclose(sampled["images"], generator(recipe, training=False).numpy(),
                               atol=2e-6)
    assert prior["latent_dim"] == LATENT_DIM and prior["distribution"] == b"uniform"
