"""GFLOP/s of transposed convolutions / convolution input gradients vs the forward convolution.

Run from the repository root::

    python -m benchmarks.conv_ops --quick
    python -m benchmarks.conv_ops [--batch 64] [--repeats 10]

Every case is one forward convolution ``x [b, H, W, c_in] → y [b, h, w, c_out]`` of a network
of the library (``SHAPES``: paper 3 Table S1, paper 1 DCGAN); its input gradient is the
transposed convolution ``y → x`` with the same kernel and the same FLOPs
(``2·|y|·kh·kw·c_in``). Timed round-robin in one process, each op in its own ``tf.function``:

* ``forward``: ``tf.nn.conv2d`` (the rate the others are measured against);
* ``native``: ``tf.nn.conv2d_transpose`` = TF's ``Conv2DBackpropInput``, what Keras's
  ``Conv2DTranspose`` and every input gradient of ``tf.nn.conv2d`` run;
* ``fused`` / ``split``: :func:`mmd_keras.layers.conv.conv2d_transpose` with ``fused=True``
  (one stride-1 conv over the union of the phases' windows, zero taps included) or
  ``fused=False`` (one exact stride-1 conv per phase), then ``depth_to_space``: what the
  library's layers run with ``implementation="phases"``.

The issue's target: the op the library runs (``library_op``: ``native`` under oneDNN or on a
GPU, else ``fused``/``split`` as :func:`~mmd_keras.layers.conv.conv2d_transpose` picks) ≥ 70 %
of ``forward``'s GFLOP/s at every shape. Whether
``native`` meets it depends on TF's CPU kernels: with oneDNN (``TF_ENABLE_ONEDNN_OPTS=1``,
the x86 default) it runs at the forward rate; with Eigen (``=0``) at 1–85 % of it.
"""

import sys

import tensorflow as tf

from benchmarks import common
from mmd_keras.layers import conv

#: name -> (H, c_in, kernel, stride, c_out) of a forward conv H×H×c_in → (H/stride)²×c_out, SAME.
SHAPES = {
    "p1 gen deconv0 (2→4, 512→256, 5×5)": (4, 256, 5, 2, 512),
    "p1 gen deconv1 (4→8, 256→128, 5×5)": (8, 128, 5, 2, 256),
    "p1 gen deconv2 (8→16, 128→64, 5×5)": (16, 64, 5, 2, 128),
    "p1 gen to_image (16→32, 64→1, 5×5)": (32, 1, 5, 2, 64),
    "p1 critic16 conv1 grad (16→8, 16→32, 5×5)": (16, 16, 5, 2, 32),
    "p1 critic16 conv3 grad (4→2, 64→128, 5×5)": (4, 64, 5, 2, 128),
    "S1 gen deconv0 (4→8, 512→256, 4×4)": (8, 256, 4, 2, 512),
    "S1 gen deconv1 (8→16, 256→128, 4×4)": (16, 128, 4, 2, 256),
    "S1 gen deconv2 (16→32, 128→64, 4×4)": (32, 64, 4, 2, 128),
    "S1 critic conv1 grad (32→16, 64→128, 4×4)": (32, 64, 4, 2, 128),
    "S1 critic conv2 grad (16, 128→128, 3×3 s1)": (16, 128, 3, 1, 128),
    "S1 critic conv5 grad (8→4, 256→512, 4×4)": (8, 256, 4, 2, 512),
    "S1 critic conv6 grad (4, 512→512, 3×3 s1)": (4, 512, 3, 1, 512),
}
QUICK = ("p1 gen deconv0 (2→4, 512→256, 5×5)", "S1 gen deconv0 (4→8, 512→256, 4×4)",
         "S1 critic conv2 grad (16, 128→128, 3×3 s1)")
TARGET = 0.7
OPS = ("forward", "native", "fused", "split")


def case_ops(shape, batch, seed=0):
    """(FLOPs, dict name -> zero-argument callable) of one forward conv shape."""
    size, c_in, k, stride, c_out = shape
    small = -(-size // stride)
    x = tf.random.stateless_normal([batch, size, size, c_in], [seed, 0])
    y = tf.random.stateless_normal([batch, small, small, c_out], [seed, 1])
    w = tf.random.stateless_normal([k, k, c_in, c_out], [seed, 2])
    out_shape = [batch, size, size, c_in]
    forward = tf.function(lambda: tf.nn.conv2d(x, w, stride, "SAME"))
    native = tf.function(lambda: tf.nn.conv2d_transpose(y, w, out_shape, stride, "SAME"))
    fused = tf.function(lambda: conv.conv2d_transpose(y, w, out_shape, stride, "SAME", fused=True))
    split = tf.function(lambda: conv.conv2d_transpose(y, w, out_shape, stride, "SAME", fused=False))
    flops = 2 * batch * small * small * c_out * k * k * c_in
    return flops, {"forward": forward, "native": native, "fused": fused, "split": split}


def library_op(shape):
    """Which of the timed ops the library's layers run here: "native", "fused" or "split"."""
    if conv.default_implementation() == "native":
        return "native"
    size, _, k, stride, _ = shape
    plan = conv._axis_plan(-(-size // stride), size, k, stride, "SAME")
    return "fused" if (plan["index"] != k).all() else "split"


def run(names, batch, repeats, log=common.log):
    """Times every case's three ops round-robin; returns the JSON record."""
    machine = common.machine_info()
    candidates, flops = {}, {}
    for name in names:
        flops[name], ops = case_ops(SHAPES[name], batch)
        for op, fn in ops.items():
            candidates[(name, op)] = fn
    timings = common.interleaved_medians(candidates, repeats, warmup=2,
                                         sync=lambda out: out.numpy(), log=None)
    rows = []
    for name in names:
        rate = {op: flops[name] / timings[(name, op)]["median_s"] for op in OPS}
        rows.append({"case": name, "shape": SHAPES[name], "gflop": flops[name] / 1e9,
                     **{f"{op}_ms": 1e3 * timings[(name, op)]["median_s"] for op in rate},
                     **{f"{op}_gflops": rate[op] / 1e9 for op in rate},
                     "native_vs_forward": rate["native"] / rate["forward"],
                     "fused_vs_forward": rate["fused"] / rate["forward"],
                     "split_vs_forward": rate["split"] / rate["forward"],
                     "best_fast_vs_forward": max(rate["fused"], rate["split"]) / rate["forward"],
                     "library_op": library_op(SHAPES[name]),
                     "library_vs_forward": rate[library_op(SHAPES[name])] / rate["forward"],
                     "met": rate[library_op(SHAPES[name])] / rate["forward"] >= TARGET})
    log(f"conv_ops: done, load {common.load_average()}")
    return {"benchmark": "conv_ops", "batch": batch, "machine": machine, "onednn": conv.onednn_enabled(),
            "load_average_end": common.load_average(), "target": TARGET, "cases": rows}


def print_report(record):
    print(f"\n== conv ops (batch {record['batch']}, float32), load {record['machine']['load_average']} -> "
          f"{record['load_average_end']}; oneDNN {record['onednn']}; "
          f"target fast/forward >= {record['target']}")
    header = ["case", "GFLOP", "fwd ms", "native ms", "fused ms", "split ms", "fwd GF/s",
              "native/fwd", "fused/fwd", "split/fwd", "library runs", ""]
    rows = [[r["case"], r["gflop"], r["forward_ms"], r["native_ms"], r["fused_ms"], r["split_ms"],
             r["forward_gflops"], r["native_vs_forward"], r["fused_vs_forward"], r["split_vs_forward"],
             r["library_op"], "met" if r["met"] else "MISSED"] for r in record["cases"]]
    print(common.format_table(header, rows))


def main(argv=None):
    parser = common.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--batch", type=common.positive_int, default=64)
    args = parser.parse_args(argv)
    names = QUICK if args.quick else tuple(SHAPES)
    record = run(names, args.batch, args.repeats or (3 if args.quick else 10))
    path = common.write_json(record, args.output or common.default_output("conv_ops", args.quick))
    print_report(record)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
