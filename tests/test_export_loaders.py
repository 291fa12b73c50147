"""The exported SavedModel through the loaders its consumers use, for every architecture.

TF Serving loads SavedModels with the TF1-style C++ loader (restore op + session), which is what
``saved_model_cli run`` and ``tf.compat.v1.saved_model.loader.load`` exercise; both run here as
subprocesses, on small instances of every generator of ``mmd_keras.networks`` with batch norm and
spectral norm (and on an EMA generator), and must reproduce the generator's images exactly.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmd_keras import export, networks
from mmd_keras import rng as rng_lib
from mmd_keras.models import MMDGAN

LATENT_DIM = 6
SEED, NUM = 11, 3
# Small instances of every architecture, all with batch norm and spectral-normalized layers.
ARCHITECTURES = {
    "dcgan_s1": dict(image_size=8, widths=(8, 8, 4, 4)),
    "dcgan_s2": dict(image_size=16, widths=(8, 8, 4, 4, 4)),
    "sngan": dict(image_size=8, widths=(8, 8, 4, 4)),
    "resnet": dict(image_size=16, widths=(8, 8, 4, 4, 4)),
    "dcgan_p1": dict(image_size=16, widths=(8, 8, 4, 4)),
    "celeba160": dict(image_size=32, widths=(8, 8, 4, 4, 4)),
    "small": dict(image_size=8, widths=(4,)),
    "mlp": dict(data_dim=2, widths=(8, 8), batch_norm=True),
}
_TF1_SCRIPT = r'''
import json, sys
import numpy as np
import tensorflow as tf

def run(path, calls):
    # {label: outputs or error text} of each (label, signature, inputs) call; one load.
    results = {}
    with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], path)
        for label, name, inputs in calls:
            signature = meta.signature_def[name]
            fetches = {k: graph.get_tensor_by_name(v.name) for k, v in signature.outputs.items()}
            feed = {graph.get_tensor_by_name(signature.inputs[k].name): v
                    for k, v in inputs.items()}
            try:
                results[label] = session.run(fetches, feed)
            except tf.errors.OpError as error:
                results[label] = type(error).__name__ + ": " + error.message
    return results

errors = {}
for job in json.loads(sys.argv[1]):
    calls = [("serving_default", "serving_default", {"latents": np.load(job["latents"])}),
             ("sample", "sample", {"batch_size": np.int32(job["num"]),
                                   "seed": np.int64(job["seed"])}),
             ("prior", "prior", {})]
    for name, label, value in job["bad"]:
        inputs = ({"latents": np.load(value)} if name == "serving_default"
                  else {"batch_size": np.int32(value), "seed": np.int64(0)})
        calls.append(("bad/" + label, name, inputs))
    results = run(job["path"], calls)
    for label, value in results.items():
        if label[:4] != "bad/" and isinstance(value, str):
            sys.exit(job["name"] + " " + label + ": " + value)
    errors.update({job["name"] + "/" + k[4:]: v for k, v in results.items() if k[:4] == "bad/"})
    np.savez(job["out"], **{s + "/" + k: v for s, o in results.items() if s[:4] != "bad/"
                            for k, v in o.items()})
print(json.dumps(errors))
'''


def _randomize_state(network, rng):
    """Non-trivial batch-norm statistics and SN vectors (fresh ones would hide a lost variable)."""
    for weight in network.weights:
        shape = tuple(weight.shape)
        if "moving_variance" in weight.path:
            weight.assign(rng.uniform(0.5, 2.0, shape).astype("float32"))
        elif not weight.trainable:
            weight.assign(rng.normal(0.0, 0.3, shape).astype("float32"))
        elif "bias" in weight.path or "beta" in weight.path:
            weight.assign(rng.normal(0.0, 0.1, shape).astype("float32"))


def _build(arch, rng):
    kwargs = dict(ARCHITECTURES[arch], latent_dim=LATENT_DIM, sn_mode="pim")
    if arch != "mlp":
        kwargs["channels"] = 3
    generator = networks.build_generator(arch, **kwargs)
    _randomize_state(generator, rng)
    return generator


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """``get(name) -> (generator, MMDGAN or None, path)``, each exported once per module.

    Names are the architectures and "small_ema": the EMA generator of an `MMDGAN` whose
    trained generator was then changed (so the two differ).
    """
    keras.utils.set_random_seed(5)
    rng = np.random.default_rng(5)
    root = str(tmp_path_factory.mktemp("saved_models"))
    cache = {}

    def get(name):
        if name in cache:
            return cache[name]
        if name == "small_ema":
            critic = networks.build_critic("small", image_size=8, channels=3, widths=(4,))
            model = MMDGAN(_build("small", rng), critic, latent_distribution="normal",
                           ema_decay=0.5, seed=0)
            _randomize_state(model.generator, rng)  # the EMA copy keeps the old weights
            cache[name] = (model.sampling_generator, model, export.export_generator(
                model.sampling_generator, root, name, latent_distribution="normal"))
        else:
            generator = _build(name, rng)
            cache[name] = (generator, None, export.export_generator(generator, root, name))
        return cache[name]

    return get


def _env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")


def _run_tf1(jobs):
    process = subprocess.run([sys.executable, "-c", _TF1_SCRIPT, json.dumps(jobs)],
                             capture_output=True, text=True, timeout=900, env=_env())
    assert process.returncode == 0, process.stderr[-3000:]
    return json.loads(process.stdout.strip().splitlines()[-1])


def _saved_model_cli(path, signature, *args):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    return subprocess.run([cli, "run", "--dir", path, "--tag_set", "serve", "--signature_def",
                           signature, *args], capture_output=True, text=True, timeout=600,
                          env=_env())


def _uint8(images):
    return np.clip(np.round((images.astype(np.float64) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def _recipe(distribution):
    """The latents of ``MMDGAN.generate(NUM, seed=SEED)``: one recipe for all samplers."""
    return rng_lib.generation_latents(NUM, LATENT_DIM, distribution, SEED).numpy()


def _check_outputs(name, generator, model, latents, out):
    """``out``: {"<signature>/<output>": array} served for ``latents`` and (NUM, SEED)."""
    distribution = "normal" if model is not None else "uniform"
    key = "points" if name == "mlp" else "images"
    # serving_default: the generator's (the EMA's) outputs for the fed latents.
    expected = generator(latents, training=False).numpy()
    np.testing.assert_allclose(out[f"serving_default/{key}"], expected, atol=2e-6, err_msg=name)
    # sample: exactly MMDGAN.generate's latents and images.
    np.testing.assert_array_equal(out["sample/latents"], _recipe(distribution), err_msg=name)
    reference = (model.generate(NUM, seed=SEED) if model is not None
                 else generator(_recipe(distribution), training=False).numpy())
    np.testing.assert_allclose(out[f"sample/{key}"], reference, atol=2e-6, err_msg=name)
    if name != "mlp":
        for signature in ("serving_default", "sample"):
            np.testing.assert_array_equal(out[f"{signature}/images_uint8"],
                                          _uint8(out[f"{signature}/images"]))


def _tf1_jobs(exported, names, tmp_path, bad=()):
    rng = np.random.default_rng(0)
    jobs, latents = [], {}
    for name in names:
        _, _, path = exported(name)
        latents[name] = rng.uniform(-1, 1, (4, LATENT_DIM)).astype(np.float32)
        np.save(tmp_path / f"{name}.npy", latents[name])
        jobs.append(dict(name=name, path=path, latents=str(tmp_path / f"{name}.npy"),
                         num=NUM, seed=SEED, out=str(tmp_path / f"{name}.npz"), bad=list(bad)))
    return jobs, latents


def _bad_inputs(tmp_path):
    """(signature, label, value) cases; latents values are .npy paths."""
    values = {"wrong_size": np.zeros((2, LATENT_DIM + 1), np.float32),
              "rank_1": np.zeros((LATENT_DIM,), np.float32),
              "nan": np.array([[0.0] * (LATENT_DIM - 1) + [np.nan]], np.float32)}
    cases = []
    for label, value in values.items():
        np.save(tmp_path / f"bad_{label}.npy", value)
        cases.append(("serving_default", label, str(tmp_path / f"bad_{label}.npy")))
    return cases + [("sample", "batch_size=-1", -1), ("sample", "batch_size=0", 0),
                    ("sample", "batch_size=too_big", export.DEFAULT_MAX_BATCH_SIZE + 1)]


@pytest.mark.slow  # ~20-60 s here; test_export.py runs the TF1 loader in-process, fast
def test_tf1_session_loader_small_and_ema_with_input_checks(exported, tmp_path):
    """`tf.compat.v1.saved_model.loader.load` in a Session (TF Serving's path): both signatures
    give the generator's images, the EMA's when on; bad inputs fail naming the input."""
    names = ["small", "small_ema"]
    jobs, latents = _tf1_jobs(exported, names, tmp_path, bad=_bad_inputs(tmp_path))
    errors = _run_tf1(jobs)
    for name in names:
        generator, model, _ = exported(name)
        out = np.load(tmp_path / f"{name}.npz")
        _check_outputs(name, generator, model, latents[name], out)
        distribution = "normal" if model is not None else "uniform"
        assert out["prior/distribution"].item() == distribution.encode()
        assert out["prior/latent_dim"].item() == LATENT_DIM
    # The EMA export serves the EMA weights, not the trained generator's.
    _, model, _ = exported("small_ema")
    trained = model.generator(latents["small_ema"], training=False).numpy()
    assert np.abs(np.load(tmp_path / "small_ema.npz")["serving_default/images"]
                  - trained).max() > 1e-3
    shape = f"[batch, {LATENT_DIM}]"
    assert errors["small/wrong_size"].startswith("InvalidArgumentError")
    assert f"`latents` float32 {shape}" in errors["small/wrong_size"]
    assert f"Received: shape] [2 {LATENT_DIM + 1}]" in errors["small/wrong_size"]
    assert f"Received: shape] [{LATENT_DIM}]" in errors["small/rank_1"]
    assert "`latents` of finite values" in errors["small/nan"]
    for value in (-1, 0, export.DEFAULT_MAX_BATCH_SIZE + 1):
        label = "too_big" if value > 0 else value
        message = errors[f"small/batch_size={label}"]
        assert "Expected `batch_size`" in message and f"[{value}]" in message, message


@pytest.mark.slow
def test_tf1_session_loader_every_architecture(exported, tmp_path):
    """Every generator of `mmd_keras.networks` (BN + SN) through the TF1 loader."""
    names = list(ARCHITECTURES)
    jobs, latents = _tf1_jobs(exported, names, tmp_path)
    _run_tf1(jobs)
    for name in names:
        generator, model, _ = exported(name)
        _check_outputs(name, generator, model, latents[name], np.load(tmp_path / f"{name}.npz"))


def _cli_outputs(path, tmp_path, latents):
    """Both signatures through `saved_model_cli run`, as {"<signature>/<output>": array}."""
    np.save(tmp_path / "latents.npy", latents)
    out = {}
    for signature, args in (("serving_default", ["--inputs", f"latents={tmp_path}/latents.npy"]),
                            ("sample", ["--input_exprs", f"batch_size={NUM};seed={SEED}"])):
        folder = tmp_path / signature
        process = _saved_model_cli(path, signature, *args, "--outdir", str(folder))
        assert process.returncode == 0, process.stderr[-3000:]
        for file in os.listdir(folder):
            out[f"{signature}/{file[:-4]}"] = np.load(folder / file)
    return out


@pytest.mark.slow
def test_saved_model_cli_run_small(exported, tmp_path):
    generator, model, path = exported("small")
    latents = np.random.default_rng(1).uniform(-1, 1, (4, LATENT_DIM)).astype(np.float32)
    _check_outputs("small", generator, model, latents, _cli_outputs(path, tmp_path, latents))


@pytest.mark.slow
def test_saved_model_cli_run_rejects_bad_inputs_naming_them(exported, tmp_path):
    _, _, path = exported("small")
    np.save(tmp_path / "rank1.npy", np.zeros(LATENT_DIM, np.float32))
    process = _saved_model_cli(path, "serving_default", "--inputs", f"latents={tmp_path}/rank1.npy")
    assert process.returncode != 0
    assert (f"Expected `latents` float32 [batch, {LATENT_DIM}]" in process.stderr
            and f"Received: shape] [{LATENT_DIM}]" in process.stderr), process.stderr[-2000:]
    process = _saved_model_cli(path, "sample", "--input_exprs", "batch_size=0;seed=1")
    assert process.returncode != 0
    assert "Expected `batch_size`" in process.stderr and "[0]" in process.stderr


@pytest.mark.slow
@pytest.mark.parametrize("name", [a for a in ARCHITECTURES if a != "small"])
def test_saved_model_cli_run_every_architecture(exported, tmp_path, name):
    generator, model, path = exported(name)
    latents = np.random.default_rng(2).uniform(-1, 1, (4, LATENT_DIM)).astype(np.float32)
    _check_outputs(name, generator, model, latents, _cli_outputs(path, tmp_path, latents))


_LOAD_SCRIPT = r'''
import sys
import numpy as np
import tensorflow as tf

path, latents_file, out_file = sys.argv[1:]
latents = tf.constant(np.load(latents_file))
loaded = tf.saved_model.load(path)
with tf.GradientTape() as tape:
    tape.watch(latents)
    images = loaded.signatures["serving_default"](latents=latents)["images"]
    total = tf.reduce_sum(images)
gradient = tape.gradient(total, latents)
with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
    meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], path)
    signature = meta.signature_def["serving_default"]
    tf1_images = session.run(graph.get_tensor_by_name(signature.outputs["images"].name),
                             {graph.get_tensor_by_name(signature.inputs["latents"].name):
                              latents.numpy()})
np.savez(out_file, images=images.numpy(), gradient=gradient.numpy(), tf1_images=tf1_images)
'''


@pytest.mark.slow  # ~60 s: a 64-channel generator, two loaders and saved_model_cli
def test_export_of_phase_convolutions_loads_without_custom_gradient_warnings(tmp_path):
    """Phase-decomposed convolutions (the default on CPUs with TF's Eigen kernels) carry a
    `tf.custom_gradient`; an export must not hold one, or every load warns, once per
    function, "Importing a function ... with ops with unsaved custom gradients"."""
    from mmd_keras.layers import conv

    previous = conv.set_default_implementation("phases")
    try:
        keras.utils.set_random_seed(7)
        generator = networks.build_generator("dcgan_s1", image_size=8, widths=(64, 64, 64, 64),
                                             latent_dim=LATENT_DIM, channels=3)
    finally:
        conv.set_default_implementation(previous)
    assert "phases" in {getattr(layer, "resolved_implementation", None)
                        for layer in generator.layers}
    path = export.export_generator(generator, str(tmp_path / "saved_models"), "phases")
    latents = np.random.default_rng(3).uniform(-1, 1, (4, LATENT_DIM)).astype(np.float32)
    np.save(tmp_path / "latents.npy", latents)
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    process = subprocess.run([sys.executable, "-c", _LOAD_SCRIPT, path,
                              str(tmp_path / "latents.npy"), str(tmp_path / "out.npz")],
                             capture_output=True, text=True, timeout=600, env=env)
    assert process.returncode == 0, process.stderr[-3000:]
    assert "custom gradient" not in process.stderr, process.stderr[-3000:]
    out = np.load(tmp_path / "out.npz")
    expected = generator(latents, training=False).numpy()
    np.testing.assert_allclose(out["images"], expected, atol=2e-6)
    np.testing.assert_allclose(out["tf1_images"], expected, atol=2e-6)
    # A gradient through the served graph works (TF's registered convolution gradients).
    variable = tf.Variable(latents)
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(generator(variable, training=False))
    np.testing.assert_allclose(out["gradient"], tape.gradient(total, variable).numpy(),
                               rtol=1e-4, atol=1e-5)
    cli = _saved_model_cli(path, "sample", "--input_exprs", f"batch_size={NUM};seed={SEED}",
                           "--outdir", str(tmp_path / "cli"))
    assert cli.returncode == 0 and "custom gradient" not in cli.stderr, cli.stderr[-3000:]
