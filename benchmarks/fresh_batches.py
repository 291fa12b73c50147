"""What fresh real batches cost: paper 1's MNIST step with one real batch per generator step
against a new batch for each of its 5 critic steps and its generator step.

The step is ``examples/mnist_table3.py``'s (DCGAN critic 16, generator widths ``--width`` × 8,
4, 2, 1, rq* kernel with witness gradient penalty and L2 activation penalty, 5 critic steps,
batch 64, real MNIST when ``--data_dir`` holds it, else scikit-learn's digits resized to 28
px). Both layouts are timed round-robin in one process (``common.interleaved_medians``), each
call ``--steps`` compiled train steps, each pulling its element from the stream, so a change of machine
load hits both alike. Also: the input pipeline alone (elements per second) for both layouts.

Usage::

    python -m benchmarks.fresh_batches --data_dir ../shared/data/mnist
    python -m benchmarks.fresh_batches --quick
"""

import os
import sys
import time

from benchmarks import common

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _stream(data_dir, batches_per_step, seed=0):
    from mmd_keras import datasets

    if data_dir:
        return datasets.build_dataset("mnist", "train", image_size=28, batch_size=64, data_dir=data_dir,
                                      seed=seed, batches_per_step=batches_per_step)
    import tensorflow as tf

    images = datasets.digits_images("train", 32)[0]
    images = tf.image.resize(images, [28, 28]).numpy()
    batches = tf.data.Dataset.from_tensor_slices(images).shuffle(2048, seed=seed).repeat().batch(64, drop_remainder=True)
    return batches if batches_per_step == 1 else datasets.pipeline.stack_batches(batches, batches_per_step)


def pipeline_rate(stream, elements):
    """Elements per second of ``stream`` alone (after one warm-up element)."""
    iterator = iter(stream)
    next(iterator)
    start = time.perf_counter()
    for _ in range(elements):
        next(iterator)
    return elements / (time.perf_counter() - start)


def run(data_dir, width, steps, repeats, log):
    sys.path.insert(0, os.path.join(ROOT, "examples"))
    import mnist_table3

    models, layouts, streams = {}, {}, {}
    for name, fresh in (("one batch per step", False), ("fresh batches", True)):
        models[name] = mnist_table3.build_model("rq", 0, width)
        layouts[name] = models[name].real_batches_per_step if fresh else 1
        streams[name] = iter(_stream(data_dir, layouts[name]))

    def steps_of(name):
        import tensorflow as tf

        step = tf.function(models[name].train_step)  # as fit's compiled step, fed from the stream

        def call():
            for _ in range(steps):
                logs = step(next(streams[name]))
            return logs

        return call

    timings = common.interleaved_medians({name: steps_of(name) for name in models}, repeats, warmup=1,
                                         sync=lambda logs: [v.numpy() for v in logs.values()], log=log)
    per_step = {name: t["median_s"] / steps for name, t in timings.items()}
    rates = {name: pipeline_rate(_stream(data_dir, n), 50) for name, n in layouts.items()}
    return {"benchmark": "fresh_batches", "machine": common.machine_info(),
            "data": "mnist" if data_dir else "digits resized to 28 px", "generator_width": width,
            "steps_per_call": steps, "repeats": repeats, "timings": timings,
            "seconds_per_step": per_step,
            "ratio_fresh_over_one_batch": per_step["fresh batches"] / per_step["one batch per step"],
            "pipeline_elements_per_second": rates,
            "pipeline_steps_per_second_over_train_steps_per_second": {
                name: rates[name] * per_step[name] for name in rates},
            "load_average_end": common.load_average()}


def main(argv=None):
    parser = common.base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", default=None, help="the MNIST IDX files (default: digits)")
    parser.add_argument("--width", type=common.positive_int, default=16,
                        help="generator width (paper 64; the study 16)")
    parser.add_argument("--steps", type=common.positive_int, default=None,
                        help="generator steps per timed call (default 20; --quick 2)")
    args = parser.parse_args(argv)
    steps = args.steps or (2 if args.quick else 20)
    repeats = args.repeats or (2 if args.quick else 5)
    record = run(args.data_dir, args.width, steps, repeats, common.log)
    path = common.write_json(record, args.output or common.default_output("fresh_batches", args.quick))
    print(common.format_table(["layout", "s / generator step", "pipeline elements / s"],
                              [[name, record["seconds_per_step"][name], record["pipeline_elements_per_second"][name]]
                               for name in record["seconds_per_step"]]))
    print(f"fresh / one batch: {record['ratio_fresh_over_one_batch']:.3f}  "
          f"({record['machine']['kernel_set']}, {' '.join(record['machine']['cpu_simd_flags'])}); wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
