"""The evaluation plan of a run: which features, against which real images, with what floor.

One table decides it per dataset, so no other module asks "is this digits?":

- ``digits``: the digits classifier's features, generated vs held-out digits (the split the
  training stream uses, whatever ``--seed``), and the real-vs-real floor (training vs held-out).
- ``mnist``: paper 1's LeNet features (``lenet``, trained on the 60,000 training images on
  first use), generated vs the 10,000 test images, and the floor (10,000 training images vs
  the test images).
- other image datasets: FID-Inception features (``--eval_weights``) vs ``eval_num_samples``
  images of the training stream; no floor.
- 2-D toy data: no image evaluation.
"""

import collections
import os

import numpy as np

from mmd_keras import datasets
from mmd_keras.app import config as config_lib
from mmd_keras.app.runner import parts
from mmd_keras.evaluation import callback as callback_lib
from mmd_keras.evaluation import digits_classifier, extractors, metrics
from mmd_keras.evaluation import weights as weights_lib

Plan = collections.namedtuple("Plan", "extractor reference held_out floor")
_DIGITS = Plan(extractor="digits", reference="held-out digits", held_out=True, floor=True)
_MNIST = Plan(extractor="lenet", reference="the 10,000 MNIST test images", held_out=True,
               floor=True)
_PLANS = {"digits": _DIGITS, "mnist": _MNIST}
_IMAGES = Plan(extractor="fid_inception", reference="training images", held_out=False,
               floor=False)


def plan(config):
    """The :class:`Plan` of ``config.dataset``, or None (toy data: nothing to evaluate)."""
    if config.dataset in config_lib.TOY_DATASETS:
        return None
    return _PLANS.get(config.dataset, _IMAGES)


def eval_weights(config):
    """``--eval_weights`` if given, else the converted default file if it exists, else ""."""
    if config.eval_weights:
        return config.eval_weights
    default = weights_lib.default_fid_weights_path()
    return default if os.path.isfile(default) else ""


def needs_weights(config):
    """Whether evaluation of ``config`` uses the FID Inception (needs ``--eval_weights``)."""
    p = plan(config)
    return p is not None and p.extractor == "fid_inception" and (
        config.evaluate or config.adaptive_lr or config.eval_every > 0)


def real_images(config, split):
    """Real images in [-1, 1] for evaluation (held-out split, else the training stream)."""
    if config.dataset == "mnist":  # 28 px; the LeNet resizes generated images to 28 itself
        return datasets.mnist_images(split, config.data_dir or None)[0][:10_000]
    if plan(config).held_out:
        return datasets.digits_images(split, config.image_size)[0]
    batches = [batch.numpy() for batch in parts.build_dataset(config).take(
        -(-config.eval_num_samples // config.batch_size))]
    return np.concatenate(batches)[:config.eval_num_samples]


def announcement(config, p):
    """The line printed before the evaluation is prepared (it can take a minute: a classifier
    trained on first use, the real images' features, the floor), so that the wait before the
    first progress line is explained and not charged to training."""
    if p.extractor == "digits" and not os.path.isfile(digits_classifier.cache_path()):
        network = ("training the digits classifier (once; cached in "
                   f"{os.path.dirname(digits_classifier.cache_path())})")
    elif p.extractor == "lenet":
        network = "loading paper 1's LeNet (trained on MNIST's training images on first use)"
    else:
        network = f"loading the {p.extractor} feature network"
    floor = ", and the real-vs-real KID floor" if p.floor else ""
    return (f"Preparing evaluation: {network}, features of {p.reference}{floor} …")


def build_evaluation(config, writer, on_new_best, print_fn, model=None):
    """The EvaluationCallback of ``config`` and the real-vs-real KID floor, or ``(None, None)``.

    With ``--adaptive_lr`` and SMMD/SWGAN, a decay also scales the loss's gradient-penalty
    coefficient (paper 2).
    """
    p = plan(config)
    if not config.evaluate or p is None:
        return None, None
    weights = eval_weights(config)
    if p.extractor == "fid_inception" and not weights:
        print_fn("KID skipped: pass --eval_weights=<FID-Inception .npz> (or create them once "
                 f"in the default cache: `{weights_lib.FID_WEIGHTS_COMMAND}`, else "
                 f"`{weights_lib.CONVERT_COMMAND}`) to evaluate on {config.dataset}.")
        return None, None
    print_fn(announcement(config, p))
    if p.extractor == "fid_inception":
        extractor = extractors.get(p.extractor, weights_path=weights, flag="--eval_weights")
    elif p.extractor == "lenet":
        extractor = extractors.get("lenet", data_dir=config.data_dir or None)
    else:
        extractor = extractors.get(p.extractor)
    real_features = extractor(real_images(config, "test"))
    loss = model.loss_object if model is not None else None
    regularization = loss.regularization_coefficient if loss is not None else None
    # Only a `coefficient` (SMMD/SWGAN) decays with the rates; a gradient-penalty weight does not.
    coefficient = regularization[1] if regularization and regularization[0] == "coefficient" else None
    floor = None
    if p.floor:
        train_features = extractor(real_images(config, "train"))
        size = min(config.kid_subset_size, len(real_features), len(train_features))
        floor = metrics.kernel_inception_distance(train_features, real_features,
                                                  num_subsets=config.kid_subsets,
                                                  subset_size=size, seed=config.seed)
    callback = callback_lib.EvaluationCallback(
        real_features, extractor, every_n_steps=config.eval_every or config.steps + 1,
        num_samples=config.eval_num_samples, kid_subsets=config.kid_subsets,
        kid_subset_size=config.kid_subset_size, compute_fid=config.best_metric == "fid",
        best_metric=config.best_metric, adaptive_lr=config.adaptive_lr, factor=config.lr_decay,
        seed=config.seed, writer=writer, on_new_best=on_new_best, evaluate_at_end=True,
        coefficient_variables=[coefficient] if coefficient is not None else [], verbose=0)
    return callback, floor
