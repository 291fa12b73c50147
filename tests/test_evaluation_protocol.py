"""mmd_keras.evaluation.protocol: paper 1's KID / FID / IS protocol against NumPy references (issue 15)."""

import numpy as np
import pytest
import scipy.linalg

from mmd_keras.evaluation import protocol


def np_kid_subset(x, y):
    """Unbiased MMD² with k(a, b) = (aᵀb / d + 1)³, written out (KID, paper 1 §4)."""
    d = x.shape[1]
    k_xx, k_yy, k_xy = [(a @ b.T / d + 1.0) ** 3 for a, b in ((x, x), (y, y), (x, y))]
    m = len(x)
    return ((k_xx.sum() - np.trace(k_xx)) / (m * (m - 1)) + (k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
            - 2.0 * k_xy.mean())


def np_fid(a, b):
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


def np_inception_score(p):
    marginal = p.mean(0, keepdims=True)
    return float(np.exp(np.mean(np.sum(p * (np.log(p) - np.log(marginal)), axis=1))))


@pytest.fixture
def features():
    rng = np.random.default_rng(3)
    fake = rng.normal(0.3, 1.0, (300, 6))
    real = rng.normal(0.0, 1.0, (250, 6))
    logits = rng.normal(size=(300, 10)) * 2
    probabilities = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return fake, real, probabilities


def test_scores_match_the_protocol_written_out(features):
    fake, real, probabilities = features
    result = protocol.scores_from_features(fake, real, probabilities, kid_subsets=7,
                                           kid_subset_size=100, bootstraps=4, seed=11)
    # KID: subsets of 100 without replacement, first from the generated set, then the reference.
    draws = np.random.RandomState(11)
    kids = [np_kid_subset(fake[draws.choice(300, 100, replace=False)],
                          real[draws.choice(250, 100, replace=False)]) for _ in range(7)]
    np.testing.assert_allclose(result["kid"]["mean"], np.mean(kids), rtol=1e-9)
    np.testing.assert_allclose(result["kid"]["std"], np.std(kids), rtol=1e-9)
    # FID and IS: bootstrap resamplings of both sets (n with replacement), the IS of the
    # resampled generated probabilities as one split.
    rng = np.random.default_rng(11)
    fids, scores = [], []
    for _ in range(4):
        rows_fake, rows_real = rng.integers(0, 300, 300), rng.integers(0, 250, 250)
        fids.append(np_fid(fake[rows_fake], real[rows_real]))
        scores.append(np_inception_score(probabilities[rows_fake]))
    np.testing.assert_allclose(result["fid"]["values"], fids, rtol=1e-6)
    np.testing.assert_allclose(result["fid"]["std"], np.std(fids), rtol=1e-6)
    np.testing.assert_allclose(result["inception_score"]["values"], scores, rtol=1e-6)
    assert result["n_generated"] == 300 and result["n_reference"] == 250
    assert result["settings"] == {"kid_subsets": 7, "kid_subset_size": 100, "bootstraps": 4, "seed": 11}


def test_bootstrap_spread_is_real_and_the_subset_size_is_capped(features):
    fake, real, _ = features
    result = protocol.scores_from_features(fake, real, kid_subset_size=1000, bootstraps=10)
    assert result["kid"]["subset_size"] == 250  # min(1000, n, m)
    assert len(result["fid"]["values"]) == 10 and result["fid"]["std"] > 0
    assert "inception_score" not in result
    same = protocol.scores_from_features(fake, fake, kid_subset_size=100, bootstraps=3)
    assert same["fid"]["mean"] < result["fid"]["mean"]
    with pytest.raises(ValueError, match="bootstraps"):
        protocol.scores_from_features(fake, real, bootstraps=0)


def test_paper1_scores_runs_the_extractor_once_per_set(features):
    from mmd_keras.evaluation.extractor_base import FunctionExtractor

    rng = np.random.default_rng(0)
    generated = rng.uniform(-1, 1, (40, 4, 4, 1)).astype(np.float32)
    reference = rng.uniform(-1, 1, (30, 4, 4, 1)).astype(np.float32)
    flat = lambda batch: np.reshape(batch, (len(batch), -1))  # noqa: E731
    extractor = FunctionExtractor(flat, probabilities_fn=lambda b: np.full((len(b), 2), 0.5))
    result = protocol.paper1_scores(generated, reference, extractor, kid_subsets=3,
                                    kid_subset_size=20, bootstraps=2, seed=5)
    expected = protocol.scores_from_features(flat(generated), flat(reference), np.full((40, 2), 0.5),
                                             kid_subsets=3, kid_subset_size=20, bootstraps=2, seed=5)
    assert result["kid"] == expected["kid"] and result["fid"] == expected["fid"]
    np.testing.assert_allclose(result["inception_score"]["mean"], 1.0)  # uniform p(y|x)
    assert result["extractor"]["name"] == "custom"
