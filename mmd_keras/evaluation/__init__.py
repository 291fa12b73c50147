"""Evaluation of generators: metrics, the KID-driven learning-rate schedule, feature networks.

Modules (imports go down this list, never up; none imports TensorFlow at package import):

* :mod:`~mmd_keras.evaluation.weights` — cache folder and FID-Inception weights paths (TF-free).
* :mod:`~mmd_keras.evaluation.metrics` — KID (with its variance), FID, IS on features (NumPy).
* :mod:`~mmd_keras.evaluation.ms_ssim` — MS-SSIM and paper 3's diversity score.
* :mod:`~mmd_keras.evaluation.similarity` — paper 1's relative-similarity three-sample test.
* :mod:`~mmd_keras.evaluation.adaptive_lr` — the KID-driven learning-rate schedule (state).
* :mod:`~mmd_keras.evaluation.callback` — the Keras callback running evaluations in ``fit``.
* :mod:`~mmd_keras.evaluation.extractor_base` — the feature-extractor interface.
* :mod:`~mmd_keras.evaluation.inception` — the FID Inception-v3 network.
* :mod:`~mmd_keras.evaluation.digits_classifier` — the offline digits classifier.
* :mod:`~mmd_keras.evaluation.extractors` — the extractor registry (``get``).
* :mod:`~mmd_keras.evaluation.sources` — image sources of the command line.
* :mod:`~mmd_keras.evaluation.cli` — ``python -m mmd_keras.evaluate`` (also
  ``python -m mmd_keras.evaluation``).
"""
