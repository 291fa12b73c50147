"""The launcher's evaluation plan: which features score a run, against which real images."""

import os

import pytest

from mmd_keras.app import config as config_lib
from mmd_keras.app.runner import evaluation

REAL_MNIST = os.environ.get("MMD_KERAS_TEST_MNIST") or os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data", "mnist")


def test_plans_name_the_extractor_and_reference_per_dataset():
    digits = evaluation.plan(config_lib.RunConfig())
    assert (digits.extractor, digits.held_out, digits.floor) == ("digits", True, True)
    mnist = evaluation.plan(config_lib.RunConfig(dataset="mnist", architecture="dcgan_p1",
                                                 image_size=28, workdir="runs/m"))
    assert (mnist.extractor, mnist.held_out, mnist.floor) == ("lenet", True, True)
    cifar = evaluation.plan(config_lib.RunConfig(dataset="cifar10", architecture="dcgan_s1",
                                                 image_size=32, workdir="runs/c"))
    assert (cifar.extractor, cifar.held_out, cifar.floor) == ("fid_inception", False, False)
    assert evaluation.plan(config_lib.RunConfig(dataset="ring8", architecture="mlp",
                                                workdir="runs/r")) is None


@pytest.mark.skipif(not os.path.isdir(REAL_MNIST), reason="no <repo>/../shared/data/mnist")
def test_mnist_reference_is_the_10000_test_images():
    config = config_lib.RunConfig(dataset="mnist", data_dir=REAL_MNIST, architecture="dcgan_p1",
                                  image_size=28, workdir="runs/m")
    test = evaluation.real_images(config, "test")
    train = evaluation.real_images(config, "train")
    assert test.shape == (10000, 28, 28, 1) and train.shape == (10000, 28, 28, 1)
    assert test.min() >= -1.0 and test.max() <= 1.0
    assert abs(float(test.mean()) - float(train.mean())) < 0.05  # both MNIST, not one split twice
    assert not (test[:100] == train[:100]).all()


def test_adaptive_lr_decays_the_declared_coefficient_not_a_penalty_weight():
    import test_loss_tracking

    config = config_lib.RunConfig(adaptive_lr=True)
    smmd = test_loss_tracking.build("smmd")
    callback, _ = evaluation.build_evaluation(config, None, None, lambda *_: None, model=smmd)
    assert callback.coefficient_variables == [smmd.loss_object.coefficient]
    # A gradient-penalty weight; no coefficient at all; a constant (rep_gp's float coefficient).
    for name in ("mmd", "hinge", "rep_gp"):
        model = test_loss_tracking.build(name)
        callback, _ = evaluation.build_evaluation(config, None, None, lambda *_: None, model=model)
        assert callback.coefficient_variables == []
