"""Paper 1's scoring protocol (Bińkowski et al., ICLR 2018, §5 "Experiments").

"Quantitative scores are estimated based on 25 000 generator samples (100 000 for MNIST),
and compared to [...] the standard test set (10 000 images held out from training for MNIST
and CIFAR-10). Inception and FID scores were computed using 10 bootstrap resamplings of the
given images; the KID score was estimated based on 100 repetitions of sampling 1 000
elements without replacement."

So, for generated features/probabilities and reference features:

* KID: :func:`mmd_keras.evaluation.metrics.kernel_inception_distance` with 100 subsets of
  1,000 rows drawn without replacement from each set; mean ± std over the subsets.
* FID: 10 bootstrap resamplings; resampling ``b`` draws ``n`` rows with replacement from
  each set (generated and reference, independently) and computes the FID of the two
  resampled sets; mean ± std over the resamplings.
* IS: 10 bootstrap resamplings of the generated probabilities (``n`` rows with
  replacement), each scored as one split; mean ± std.

Every draw comes from ``np.random.default_rng(seed)`` (KID from ``seed`` as its own
``RandomState`` seed), so the scores are a function of the inputs and ``seed``.
"""

import numpy as np

from mmd_keras.evaluation import metrics as metrics_lib

#: Paper 1's settings (the sample counts are the caller's: 100,000 generated vs the 10,000
#: MNIST test images in the paper).
PAPER1_PROTOCOL = {"kid_subsets": 100, "kid_subset_size": 1000, "bootstraps": 10}


def _mean_std(values):
    values = np.asarray(values, np.float64)
    return {"mean": float(values.mean()), "std": float(values.std()),
            "values": [float(v) for v in values]}


def scores_from_features(fake_features, real_features, fake_probabilities=None, *,
                         kid_subsets=100, kid_subset_size=1000, bootstraps=10, seed=0):
    """KID, FID and IS by paper 1's protocol, from precomputed network outputs.

    Args:
        fake_features: ``[n, d]`` features of generated images.
        real_features: ``[m, d]`` features of the reference images.
        fake_probabilities: ``[n, classes]`` softmax of the generated images, or None (no IS).
        kid_subsets, kid_subset_size: KID's subsets (paper: 100 of 1,000); the subset size
            is capped at ``min(n, m)``.
        bootstraps: FID / IS resamplings (paper: 10).
        seed: seed of every random draw.

    Returns:
        ``{"kid": {mean, std, ...}, "fid": {mean, std, values}, "inception_score": {...},
        "n_generated", "n_reference", "settings"}``; KID on the raw scale (not ×100).
    """
    fake = np.asarray(fake_features)
    real = np.asarray(real_features)
    if int(bootstraps) != bootstraps or bootstraps < 1:
        raise ValueError(f"Expected `bootstraps` >= 1. Received: `bootstraps={bootstraps!r}`")
    subset_size = min(int(kid_subset_size), len(fake), len(real))
    kid = metrics_lib.kernel_inception_distance(
        fake, real, num_subsets=kid_subsets, subset_size=subset_size, seed=seed)
    rng = np.random.default_rng(seed)
    fids, scores = [], []
    for _ in range(int(bootstraps)):
        rows_fake = rng.integers(0, len(fake), len(fake))
        rows_real = rng.integers(0, len(real), len(real))
        fids.append(metrics_lib.frechet_distance(fake[rows_fake], real[rows_real]).value)
        if fake_probabilities is not None:
            probabilities = np.asarray(fake_probabilities)[rows_fake]
            scores.append(metrics_lib.inception_score(probabilities, splits=1).mean)
    result = {
        "kid": {"mean": kid.mean, "std": kid.std, "stderr": kid.stderr,
                "num_subsets": kid.num_subsets, "subset_size": kid.subset_size},
        "fid": _mean_std(fids),
        "n_generated": int(len(fake)), "n_reference": int(len(real)),
        "settings": {"kid_subsets": int(kid_subsets), "kid_subset_size": subset_size,
                     "bootstraps": int(bootstraps), "seed": int(seed)},
    }
    if fake_probabilities is not None:
        result["inception_score"] = _mean_std(scores)
    return result


def paper1_scores(generated, reference, extractor, *, kid_subsets=100, kid_subset_size=1000,
                  bootstraps=10, seed=0):
    """Scores images ``[n, H, W, C]`` against reference images with an extractor.

    Args:
        generated: generated images in ``[-1, 1]``.
        reference: real images in ``[-1, 1]`` (paper 1 on MNIST: the 10,000 test images),
            or a ``(features, None)`` tuple of reference features already computed.
        extractor: a :class:`mmd_keras.evaluation.extractor_base.FeatureExtractor`
            (``"lenet"`` for MNIST); IS is computed when it has probabilities.
        kid_subsets, kid_subset_size, bootstraps, seed: see :func:`scores_from_features`.

    Returns:
        The dict of :func:`scores_from_features` plus ``"extractor"``.
    """
    if isinstance(reference, tuple):
        real = reference[0]
    else:
        real = extractor(reference)
    fake = extractor(generated)
    probabilities = (extractor.probabilities(generated)
                     if getattr(extractor, "has_probabilities", False) else None)
    result = scores_from_features(fake, real, probabilities, kid_subsets=kid_subsets,
                                  kid_subset_size=kid_subset_size, bootstraps=bootstraps,
                                  seed=seed)
    result["extractor"] = extractor.get_config()
    return result
