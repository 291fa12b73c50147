"""Evaluation cost: KID and FID on Inception-sized features, FID-Inception images/s.

Run from the repository root::

    python -m benchmarks.evaluation --quick     # KID 10×1000 (×10 projected), FID on 10k rows
    python -m benchmarks.evaluation             # KID 100×1000 and FID on 50,000 × 2,048

Features are random non-negative float32 ``[n, 2048]`` (like Inception pool_3 after ReLU and
average pooling); the second set is shifted so the distance is not zero. KID follows
torch-fidelity's procedure (random subsets without replacement). The FID Inception has random
weights (the real ones are not available offline; the cost is the same).
"""

import sys
import time

import numpy as np
import tensorflow as tf

from benchmarks import common
from mmd_keras.evaluation import inception, metrics

FEATURE_DIM = 2048


def random_features(n, dim=FEATURE_DIM, seed=0, shift=0.0):
    """Non-negative float32 ``[n, dim]`` features (|N(0, 1)| + shift)."""
    rng = np.random.default_rng(seed)
    features = np.abs(rng.standard_normal((n, dim), dtype=np.float32))
    if shift:
        features += np.float32(shift)
    return features


def time_kid(features_a, features_b, subsets, subset_size, precision="float64"):
    start = time.perf_counter()
    result = metrics.kernel_inception_distance(features_a, features_b, num_subsets=subsets,
                                               subset_size=subset_size, seed=0, precision=precision)
    seconds = time.perf_counter() - start
    # Dense FLOPs: x xᵀ and y yᵀ by syrk (half), x yᵀ in full.
    flops = subsets * 2 * subset_size ** 2 * features_a.shape[1] * 2
    return {"seconds": seconds, "subsets": subsets, "subset_size": subset_size, "n": len(features_a),
            "dim": features_a.shape[1], "kid": result.mean, "gflop": flops / 1e9,
            "achieved_flops": flops / seconds, "precision": precision,
            "projected_100_subsets_s": seconds * 100 / subsets}


def time_fid(features_a, features_b):
    """FID with its two parts timed: the statistics (means, covariances) and the distance
    (``scipy.linalg.sqrtm`` of Σ_aΣ_b, kept for pytorch-fid parity)."""
    start = time.perf_counter()
    a, b = metrics.as_feature_pair(features_a, features_b)
    stats = [(x.mean(axis=0), np.cov(x, rowvar=False)) for x in (a, b)]
    middle = time.perf_counter()
    value = metrics.frechet_distance_from_statistics(*stats[0], *stats[1])
    end = time.perf_counter()
    return {"seconds": end - start, "statistics_s": middle - start, "sqrtm_distance_s": end - middle,
            "n": len(features_a), "dim": features_a.shape[1], "fid": value}


def inception_images_per_second(batch_size, batches, image_size=32):
    """Images/s of FID-Inception pool_3 features (random weights, inputs resized to 299)."""
    model = inception.build_fid_inception(resize_input=True)
    featurize = tf.function(lambda images: model(images, training=False)["pool_3"])
    images = tf.random.stateless_uniform([batch_size, image_size, image_size, 3], [0, 3], -1.0, 1.0)
    timings = common.interleaved_medians({"inception": lambda: featurize(images)}, batches,
                                         sync=lambda out: out.numpy())["inception"]
    return {**timings, "batch_size": batch_size, "image_size": image_size,
            "images_per_s": batch_size / timings["median_s"]}


def run(n, subsets, subset_size, fid_n, inception_batch, inception_batches, log=common.log):
    machine = common.machine_info()
    log(f"evaluation: features {n} x {FEATURE_DIM}, load {machine['load_average']}")
    features_a = random_features(n, seed=0)
    features_b = random_features(n, seed=1, shift=0.05)
    log("  KID ...")
    kid = time_kid(features_a, features_b, subsets, subset_size)
    kid32 = time_kid(features_a, features_b, subsets, subset_size, precision="float32")
    kid["relative_difference_float32"] = abs(kid32["kid"] - kid["kid"]) / abs(kid["kid"])
    log(f"  KID {subsets}x{subset_size}: {kid['seconds']:.1f} s float64, {kid32['seconds']:.1f} s float32; "
        f"FID on {fid_n} rows ...")
    fid = time_fid(features_a[:fid_n], features_b[:fid_n])
    log(f"  FID: {fid['seconds']:.1f} s; FID-Inception ...")
    featurize = inception_images_per_second(inception_batch, inception_batches)
    return {"benchmark": "evaluation", "machine": machine, "load_average_end": common.load_average(),
            "kid": kid, "kid_float32": kid32, "fid": fid, "inception": featurize,
            "targets": {"kid_100x1000_50k_under_5_s": {"value_s": kid32["projected_100_subsets_s"],
                                                       "float64_s": kid["projected_100_subsets_s"],
                                                       "target_s": 5.0,
                                                       "met": kid32["projected_100_subsets_s"] < 5.0}}}


def print_report(record):
    kid, fid, inc = record["kid"], record["fid"], record["inception"]
    kid32 = record.get("kid_float32", kid)
    print(f"\n== evaluation: load {record['machine']['load_average']} -> {record['load_average_end']}")
    rows = [
        [f"KID {kid['subsets']}x{kid['subset_size']} on {kid['n']}x{kid['dim']}", kid["seconds"],
         f"{kid['achieved_flops'] / 1e9:.1f} GFLOP/s (float64)"],
        [f"KID {kid32['subsets']}x{kid32['subset_size']}, precision float32", kid32["seconds"],
         f"{kid32['achieved_flops'] / 1e9:.1f} GFLOP/s (float32, sums float64); relative difference "
         f"{kid.get('relative_difference_float32', 0.0):.1e}"],
        ["KID 100x1000 float32 (projected)", kid32["projected_100_subsets_s"], "target < 5 s: "
         + ("met" if record["targets"]["kid_100x1000_50k_under_5_s"]["met"] else "MISSED")],
        [f"FID on {fid['n']}x{fid['dim']}", fid["seconds"],
         f"statistics {fid['statistics_s']:.1f} s + sqrtm/distance {fid['sqrtm_distance_s']:.1f} s"],
        [f"FID-Inception, batch {inc['batch_size']} of {inc['image_size']} px -> 299",
         inc["median_s"], f"{inc['images_per_s']:.1f} images/s"],
    ]
    print(common.format_table(["what", "seconds", "note"], rows))


def main(argv=None):
    parser = common.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--n", type=common.positive_int, default=50000, help="rows of each feature set")
    parser.add_argument("--subsets", type=common.positive_int, default=None, help="KID subsets (100 full)")
    parser.add_argument("--subset_size", type=common.positive_int, default=1000)
    args = parser.parse_args(argv)
    if args.subset_size > args.n or args.subset_size < 2:
        parser.error(f"--subset_size must be in [2, --n={args.n}]; got {args.subset_size}")
    subsets = args.subsets or (10 if args.quick else 100)
    fid_n = min(args.n, 10000) if args.quick else args.n
    record = run(args.n, subsets, args.subset_size, fid_n, inception_batch=32,
                 inception_batches=args.repeats or (2 if args.quick else 5))
    path = common.write_json(record, args.output or common.default_output("evaluation", args.quick))
    print_report(record)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
