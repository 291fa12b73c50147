"""Evaluation of generators: metrics, the KID-driven learning-rate schedule, feature networks.

Modules (imports go down this list, never up; none imports TensorFlow at package import):

* :mod:`~mmd_keras.evaluation.weights` — cache folder and FID-Inception weights paths (TF-free).
* :mod:`~mmd_keras.evaluation.kid` — KID and the variance of its estimator (NumPy, TF-free).
* :mod:`~mmd_keras.evaluation.metrics` — FID, IS, MS-SSIM diversity (and KID re-exported).
* :mod:`~mmd_keras.evaluation.similarity` — paper 1's relative-similarity three-sample test.
* :mod:`~mmd_keras.evaluation.adaptive_lr` — the KID-driven learning-rate schedule (state).
* :mod:`~mmd_keras.evaluation.callback` — the Keras callback running evaluations in ``fit``.
* :mod:`~mmd_keras.evaluation.extractor_base` — the feature-extractor interface.
* :mod:`~mmd_keras.evaluation.inception` — the FID Inception-v3 network.
* :mod:`~mmd_keras.evaluation.digits_classifier` — the offline digits classifier.
* :mod:`~mmd_keras.evaluation.extractors` — the extractor registry (``get``).
* :mod:`~mmd_keras.app.evaluate` — ``python -m mmd_keras.evaluation`` (also
  ``python -m mmd_keras.evaluation``).
"""
