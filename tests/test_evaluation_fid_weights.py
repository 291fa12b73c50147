"""`python -m mmd_keras.tools.fid_weights`: FID-Inception weights from the original TF graph.

The graph here is a stand-in for ``classify_image_graph_def.pb``: a GraphDef of Const nodes
under the real node names, with the real shapes and layouts (conv kernels ``[kh, kw, in,
out]``, batch-norm vectors, ``softmax/weights`` ``[2048, 1008]``), random values, and a few
non-weight nodes (the input, ``pool_3``) as in the real graph.
"""

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile

import numpy as np
import pytest
import tensorflow as tf

from mmd_keras.evaluation import inception, weights
from mmd_keras.tools import fid_weights

# The graph's names, written out independently of the tool's rules: per block kind, the TF
# conv scope (within the block's scope) and the pytorch-fid branch it is. Read off TTUR's
# graph and pytorch-fid's FIDInception modules.
_TF_TO_TORCH_A = [
    ("conv", "branch1x1"), ("tower/conv", "branch5x5_1"), ("tower/conv_1", "branch5x5_2"),
    ("tower_1/conv", "branch3x3dbl_1"), ("tower_1/conv_1", "branch3x3dbl_2"),
    ("tower_1/conv_2", "branch3x3dbl_3"), ("tower_2/conv", "branch_pool")]
_TF_TO_TORCH_B = [
    ("conv", "branch3x3"), ("tower/conv", "branch3x3dbl_1"), ("tower/conv_1", "branch3x3dbl_2"),
    ("tower/conv_2", "branch3x3dbl_3")]
_TF_TO_TORCH_C = [
    ("conv", "branch1x1"), ("tower/conv", "branch7x7_1"), ("tower/conv_1", "branch7x7_2"),
    ("tower/conv_2", "branch7x7_3"), ("tower_1/conv", "branch7x7dbl_1"),
    ("tower_1/conv_1", "branch7x7dbl_2"), ("tower_1/conv_2", "branch7x7dbl_3"),
    ("tower_1/conv_3", "branch7x7dbl_4"), ("tower_1/conv_4", "branch7x7dbl_5"),
    ("tower_2/conv", "branch_pool")]
_TF_TO_TORCH_D = [
    ("tower/conv", "branch3x3_1"), ("tower/conv_1", "branch3x3_2"),
    ("tower_1/conv", "branch7x7x3_1"), ("tower_1/conv_1", "branch7x7x3_2"),
    ("tower_1/conv_2", "branch7x7x3_3"), ("tower_1/conv_3", "branch7x7x3_4")]
_TF_TO_TORCH_E = [
    ("conv", "branch1x1"), ("tower/conv", "branch3x3_1"), ("tower/mixed/conv", "branch3x3_2a"),
    ("tower/mixed/conv_1", "branch3x3_2b"), ("tower_1/conv", "branch3x3dbl_1"),
    ("tower_1/conv_1", "branch3x3dbl_2"), ("tower_1/mixed/conv", "branch3x3dbl_3a"),
    ("tower_1/mixed/conv_1", "branch3x3dbl_3b"), ("tower_2/conv", "branch_pool")]
_TF_TO_TORCH = {"conv": "Conv2d_1a_3x3", "conv_1": "Conv2d_2a_3x3", "conv_2": "Conv2d_2b_3x3",
                "conv_3": "Conv2d_3b_1x1", "conv_4": "Conv2d_4a_3x3"}
for _tf_block, _torch_block, _table in (
        ("mixed", "Mixed_5b", _TF_TO_TORCH_A), ("mixed_1", "Mixed_5c", _TF_TO_TORCH_A),
        ("mixed_2", "Mixed_5d", _TF_TO_TORCH_A), ("mixed_3", "Mixed_6a", _TF_TO_TORCH_B),
        ("mixed_4", "Mixed_6b", _TF_TO_TORCH_C), ("mixed_5", "Mixed_6c", _TF_TO_TORCH_C),
        ("mixed_6", "Mixed_6d", _TF_TO_TORCH_C), ("mixed_7", "Mixed_6e", _TF_TO_TORCH_C),
        ("mixed_8", "Mixed_7a", _TF_TO_TORCH_D), ("mixed_9", "Mixed_7b", _TF_TO_TORCH_E),
        ("mixed_10", "Mixed_7c", _TF_TO_TORCH_E)):
    _TF_TO_TORCH.update({f"{_tf_block}/{tf_conv}": f"{_torch_block}.{branch}"
                         for tf_conv, branch in _table})
_BN = ("beta", "gamma", "moving_mean", "moving_variance")


def _random_tf_weights(seed=0):
    """``{graph Const name: float32 array}``: every weight of the graph, random, O(1) outputs.

    Shapes come from the Keras network (conv kernels are HWIO there, as in the graph); the
    pytorch-fid side of :func:`test_graph_path_equals_the_pytorch_fid_path` loads them into
    pytorch-fid's own modules with a strict state-dict load, which checks them.
    """
    model = inception.build_fid_inception()
    shapes = {v.path: tuple(v.shape) for v in model.weights}
    rng = np.random.default_rng(seed)
    out = {}
    for scope, layer in _TF_TO_TORCH.items():
        kh, kw, c_in, c_out = shapes[f"{layer}.conv/kernel"]
        out[f"{scope}/conv2d_params"] = rng.normal(
            0, (2.0 / (kh * kw * c_in)) ** 0.5, (kh, kw, c_in, c_out))
        out[f"{scope}/batchnorm/gamma"] = rng.uniform(0.6, 1.4, c_out)
        out[f"{scope}/batchnorm/moving_variance"] = rng.uniform(0.6, 1.4, c_out)
        out[f"{scope}/batchnorm/beta"] = rng.normal(0, 0.2, c_out)
        out[f"{scope}/batchnorm/moving_mean"] = rng.normal(0, 0.2, c_out)
    out["softmax/weights"] = rng.normal(0, 2048 ** -0.5, (2048, 1008))
    out["softmax/biases"] = rng.normal(0, 0.2, 1008)
    return {name: value.astype(np.float32) for name, value in out.items()}


def _graph_def(tf_weights):
    """A GraphDef of Const nodes (plus the input and the pool_3 nodes, which hold no weights)."""
    graph_def = tf.compat.v1.GraphDef()
    node = graph_def.node.add(name="DecodeJpeg/contents", op="Placeholder")
    node.attr["dtype"].type = tf.string.as_datatype_enum
    node = graph_def.node.add(name="Sub/y", op="Const")  # a non-weight Const: ignored
    node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(np.float32(128.0)))
    for name, value in tf_weights.items():
        node = graph_def.node.add(name=name, op="Const")
        node.attr["dtype"].type = tf.float32.as_datatype_enum
        node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
    node = graph_def.node.add(name="pool_3", op="AvgPool", input=["mixed_10/join"])
    node.attr["ksize"].list.i.extend([1, 8, 8, 1])
    node.attr["padding"].s = b"VALID"
    return graph_def


def _write_pb(graph_def, path):
    path.write_bytes(graph_def.SerializeToString())
    return path


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    """``(tf_weights, graph_def, pb_path, tgz_path)`` of the stand-in graph."""
    folder = tmp_path_factory.mktemp("graph")
    tf_weights = _random_tf_weights()
    graph_def = _graph_def(tf_weights)
    pb = _write_pb(graph_def, folder / fid_weights.GRAPH_FILE)
    labels = folder / "imagenet_synset_to_human_label_map.txt"
    labels.write_text("n00004475\torganism, being\n")
    tgz = folder / fid_weights.SOURCE_ARCHIVE
    with tarfile.open(tgz, "w:gz", compresslevel=1) as archive:
        archive.add(labels, arcname=labels.name)
        archive.add(pb, arcname=pb.name)
    return tf_weights, graph_def, pb, tgz


def _load(path):
    with np.load(path) as data:
        return {key: data[key] for key in data.files if key != "__format__"}


def _pytorch_fid_state_dict(tf_weights, monkeypatch):
    """The same numbers as pytorch-fid's port lays them out, through pytorch-fid's own module.

    Conv kernels ``[kh, kw, in, out]`` → ``[out, in, kh, kw]``, ``softmax/weights`` →
    ``fc.weight`` transposed; ``fid_inception_v3`` then loads them strictly (names and shapes
    must fit).
    """
    from test_evaluation_inception import _import_pytorch_fid

    torch, _, fid = _import_pytorch_fid()
    state = {"fc.weight": tf_weights["softmax/weights"].T, "fc.bias": tf_weights["softmax/biases"]}
    for scope, module in _TF_TO_TORCH.items():
        state[f"{module}.conv.weight"] = tf_weights[f"{scope}/conv2d_params"].transpose(3, 2, 0, 1)
        for torch_name, tf_name in zip(("bias", "weight", "running_mean", "running_var"), _BN):
            state[f"{module}.bn.{torch_name}"] = tf_weights[f"{scope}/batchnorm/{tf_name}"]
    state = {key: torch.from_numpy(np.ascontiguousarray(value)) for key, value in state.items()}
    monkeypatch.setattr(fid, "load_state_dict_from_url", lambda *a, **k: state)
    return fid.fid_inception_v3().state_dict()


@pytest.mark.slow
def test_graph_path_equals_the_pytorch_fid_path(graph, tmp_path, monkeypatch):
    tf_weights, _, _, tgz = graph
    from_graph = tmp_path / "from_graph.npz"
    assert fid_weights.main([f"--source={tgz}", f"--output={from_graph}"]) == 0

    from_torch = inception.keras_weights_from_state_dict(
        _pytorch_fid_state_dict(tf_weights, monkeypatch))
    graph_weights = _load(from_graph)
    assert sorted(graph_weights) == sorted(from_torch)
    for key, value in from_torch.items():  # the transposes there and back are exact
        np.testing.assert_array_equal(graph_weights[key], value, err_msg=key)

    torch_npz = tmp_path / "from_torch.npz"
    inception.save_fid_inception_weights(from_torch, torch_npz)
    images = np.random.default_rng(1).uniform(-1, 1, (2, 37, 45, 3)).astype(np.float32)
    ours = inception.load_fid_inception(from_graph)(images, training=False)["pool_3"].numpy()
    ref = inception.load_fid_inception(torch_npz)(images, training=False)["pool_3"].numpy()
    assert ref.std() > 1e-2  # the random weights give non-degenerate features
    # Float32 round-off bound: a few ulps per layer, growing like sqrt(depth) over the 94
    # conv + batch-norm layers (an upper bound on the longest path), relative to the scale.
    tolerance = 4 * np.finfo(np.float32).eps * np.sqrt(inception.NUM_CONV_LAYERS)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=tolerance * np.abs(ref).max())


def test_the_command_needs_no_torch_and_writes_the_default_cache_file(graph, tmp_path):
    tf_weights, _, pb, _ = graph
    cache = tmp_path / "cache"
    # torch is made unimportable with a finder rather than `sys.modules["torch"] = None`,
    # which breaks scipy's array-API probe (it looks torch up in sys.modules).
    code = ("import importlib.abc, sys\n"
            "class NoTorch(importlib.abc.MetaPathFinder):\n"
            "    def find_spec(self, name, path, target=None):\n"
            "        if name.split('.')[0] == 'torch':\n"
            "            raise ImportError('torch is not installed here')\n"
            "sys.meta_path.insert(0, NoTorch())\n"
            "from mmd_keras.tools import fid_weights\n"
            "status = fid_weights.main(sys.argv[1:])\n"
            "print('torch modules:',\n"
            "      sorted(k for k in sys.modules if k.split('.')[0] == 'torch'))\n"
            "sys.exit(status)\n")
    env = {**os.environ, weights.CACHE_ENV: str(cache),
           "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", code, f"--source={pb}"], env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    default = cache / weights.FID_INCEPTION_FILE
    assert f"wrote {default}" in result.stdout and "torch modules: []" in result.stdout
    written = _load(default)
    np.testing.assert_array_equal(written["Mixed_7b.branch3x3_2b.conv/kernel"],
                                  tf_weights["mixed_9/tower/mixed/conv_1/conv2d_params"])
    np.testing.assert_array_equal(written["Mixed_6a.branch3x3dbl_1.bn/moving_mean"],
                                  tf_weights["mixed_3/tower/conv/batchnorm/moving_mean"])
    np.testing.assert_array_equal(written["fc/kernel"], tf_weights["softmax/weights"])
    with np.load(default) as data:
        assert str(data["__format__"]) == inception.WEIGHTS_FORMAT


def _offline(monkeypatch, tmp_path, free_ports):
    """A cache in ``tmp_path`` and a source URL on a closed loopback port (a failed download)."""
    monkeypatch.setenv(weights.CACHE_ENV, str(tmp_path / "cache"))
    url = f"http://127.0.0.1:{free_ports(1)[0]}/{fid_weights.SOURCE_ARCHIVE}"
    monkeypatch.setattr(fid_weights, "SOURCE_URL", url)
    return tmp_path / "cache" / fid_weights.DOWNLOAD_SUBDIR / fid_weights.SOURCE_ARCHIVE


def test_offline_download_is_a_clear_error(tmp_path, monkeypatch, free_ports, capsys):
    archive = _offline(monkeypatch, tmp_path, free_ports)
    assert fid_weights.main([]) == 2
    err = capsys.readouterr().err
    assert f"Could not download {fid_weights.SOURCE_URL}" in err
    assert f"--source=PATH/{fid_weights.SOURCE_ARCHIVE}" in err
    assert not archive.exists() and not (tmp_path / "cache" / "fid_inception.npz").exists()


def test_download_happens_once_then_the_cached_archive_is_used(graph, tmp_path, monkeypatch,
                                                               free_ports, capsys):
    _, _, _, tgz = graph
    archive = _offline(monkeypatch, tmp_path, free_ports)
    archive.parent.mkdir(parents=True)
    shutil.copy(tgz, archive)  # as a first, successful download left it
    out = tmp_path / "out.npz"
    assert fid_weights.main([f"--output={out}"]) == 0  # no network needed
    sha256 = hashlib.sha256(tgz.read_bytes()).hexdigest()
    assert fid_weights.main([f"--output={out}", f"--sha256={sha256}", "--overwrite"]) == 0
    # A cached archive with another hash is fetched again (and here that fails).
    assert fid_weights.main([f"--output={out}", "--sha256=" + "0" * 64, "--overwrite"]) == 2
    assert "Could not download" in capsys.readouterr().err


def _graph_without(graph_def, name):
    copy = tf.compat.v1.GraphDef()
    copy.node.extend(node for node in graph_def.node if node.name != name)
    return copy


def test_a_graph_that_is_not_the_fid_inception_is_refused(graph):
    tf_weights, graph_def, _, _ = graph
    converted = fid_weights.keras_weights_from_graph_def(graph_def)
    assert len(converted) == 472
    np.testing.assert_array_equal(converted["fc/bias"], tf_weights["softmax/biases"])
    with pytest.raises(ValueError, match=r"1 missing \(e.g. \['mixed_8/tower_1/conv_3/batchnorm"
                                         r"/gamma'\]\), 0 unexpected"):
        fid_weights.keras_weights_from_graph_def(
            _graph_without(graph_def, "mixed_8/tower_1/conv_3/batchnorm/gamma"))
    extra = tf.compat.v1.GraphDef()
    extra.CopyFrom(graph_def)
    node = extra.node.add(name="mixed_10/tower_1/conv_2/conv2d_params", op="Const")
    node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(np.zeros((1, 1, 2, 2), np.float32)))
    with pytest.raises(ValueError, match=r"0 missing.*1 unexpected \(e.g. \['mixed_10/tower_1/"
                                         r"conv_2/conv2d_params'\]\)"):
        fid_weights.keras_weights_from_graph_def(extra)


def test_bad_sources_exit_2_naming_the_flag_and_write_nothing(graph, tmp_path, capsys):
    tf_weights, graph_def, pb, _ = graph
    out = tmp_path / "out.npz"

    def fails(*argv):
        assert fid_weights.main([*argv, f"--output={out}"]) == 2
        assert not out.exists()
        return capsys.readouterr().err

    assert "`--source=" in fails(f"--source={tmp_path / 'missing.pb'}")
    (tmp_path / "graph.txt").write_text("x")
    assert "(.tgz / .tar.gz)" in fails(f"--source={tmp_path / 'graph.txt'}")
    (tmp_path / "garbage.pb").write_bytes(b"\xff" * 64)
    assert "Expected a TensorFlow GraphDef" in fails(f"--source={tmp_path / 'garbage.pb'}")
    with tarfile.open(tmp_path / "other.tgz", "w:gz") as archive:
        archive.add(tmp_path / "graph.txt", arcname="graph.txt")
    assert f"Expected `{fid_weights.GRAPH_FILE}` in the archive" in fails(
        f"--source={tmp_path / 'other.tgz'}")
    (tmp_path / "broken.tgz").write_bytes(b"not gzip")
    assert "gzipped tar" in fails(f"--source={tmp_path / 'broken.tgz'}")
    assert "--sha256` to be 64 hexadecimal digits" in fails(f"--source={pb}", "--sha256=abc")
    assert "to have `--sha256=" + "1" * 64 in fails(f"--source={pb}", "--sha256=" + "1" * 64)
    # A conv kernel in PyTorch's [out, in, kh, kw] layout: caught against the network.
    bad = {**tf_weights, "conv/conv2d_params": tf_weights["conv/conv2d_params"].transpose(
        3, 2, 0, 1)}
    err = fails(f"--source={_write_pb(_graph_def(bad), tmp_path / 'bad.pb')}")
    assert "Expected `Conv2d_1a_3x3.conv/kernel` of shape (3, 3, 3, 32)" in err
    # An existing output is kept unless --overwrite.
    out.write_bytes(b"keep")
    assert fid_weights.main([f"--source={pb}", f"--output={out}"]) == 2
    assert "pass --overwrite" in capsys.readouterr().err and out.read_bytes() == b"keep"
    assert fid_weights.main([f"--source={pb}", f"--output={tmp_path / 'out.h5'}"]) == 2
