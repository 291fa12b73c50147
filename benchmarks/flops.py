"""FLOPs of a traced TensorFlow function, counted from its graph.

Counts the dense linear algebra that dominates a GAN step — convolutions (forward and both
backward ops), transposed convolutions, matmuls — from the static shapes of the graph's ops:

* ``Conv2D`` / ``Conv``: ``2 · |output| · kh · kw · c_in``;
* ``Conv2DBackpropInput`` (also every transposed convolution) and ``Conv2DBackpropFilter``:
  ``2 · |out_backprop| · kh · kw · c_in`` with the filter ``[kh, kw, c_in, c_out]`` — the same
  count as the forward convolution they differentiate;
* ``MatMul``: ``2·m·n·k``; ``BatchMatMul*``: times the batch size.

Only ops that can influence the function's outputs or its stateful effects (variable
updates) are counted: TF's gradient functions build ops that the runtime prunes (e.g. the
input gradient of a first layer when only weight gradients are asked for), so a plain count of
the graph would overstate the work. Element-wise ops (activations, Adam, the kernel's ``exp``)
are not counted: "FLOP/s achieved" is the dense-FLOP rate, comparable to a matmul peak.
"""

import numpy as np
import tensorflow as tf

CONV_OPS = ("Conv2D", "Conv", "Conv2DBackpropInput", "Conv2DBackpropFilter")
MATMUL_OPS = ("MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3")


def _static(shape, what):
    dims = shape.as_list() if shape.rank is not None else None
    if dims is None or any(d is None for d in dims):
        raise ValueError(f"Expected static shapes to count FLOPs. Received: {what} with shape {shape}")
    return dims


def op_flops(op):
    """Dense FLOPs of one graph op (0 for ops that are not counted)."""
    if op.type in ("Conv2D", "Conv"):
        out = _static(op.outputs[0].shape, f"{op.type} output")
        kh, kw, c_in, _ = _static(op.inputs[1].shape, f"{op.type} filter")
        return 2 * int(np.prod(out)) * kh * kw * c_in
    if op.type in ("Conv2DBackpropInput", "Conv2DBackpropFilter"):
        grad = _static(op.inputs[2].shape, f"{op.type} out_backprop")
        if op.type == "Conv2DBackpropInput":
            kh, kw, c_in, _ = _static(op.inputs[1].shape, f"{op.type} filter")
        else:
            kh, kw, c_in, _ = _static(op.outputs[0].shape, f"{op.type} filter gradient")
        return 2 * int(np.prod(grad)) * kh * kw * c_in
    if op.type == "MatMul":
        a = _static(op.inputs[0].shape, "MatMul a")
        out = _static(op.outputs[0].shape, "MatMul output")
        k = a[0] if op.get_attr("transpose_a") else a[1]
        return 2 * out[0] * out[1] * k
    if op.type in MATMUL_OPS:
        a = _static(op.inputs[0].shape, f"{op.type} a")
        out = _static(op.outputs[0].shape, f"{op.type} output")
        k = a[-2] if op.get_attr("adj_x") else a[-1]
        return 2 * int(np.prod(out)) * k
    return 0


def live_ops(graph):
    """Ops that are ancestors (data or control) of the graph's outputs or control outputs."""
    roots = [t.op for t in graph.outputs] + list(getattr(graph, "control_outputs", []))
    seen, stack = set(), list(roots)
    while stack:
        op = stack.pop()
        if op.name in seen:
            continue
        seen.add(op.name)
        stack.extend(t.op for t in op.inputs)
        stack.extend(op.control_inputs)
    return [op for op in graph.get_operations() if op.name in seen]


WHILE_OPS = ("While", "StatelessWhile")


def _while_trips(op):
    """The static trip count of a ``tf.while_loop`` op (while_v2: input 1 is its
    ``maximum_iterations``), or None when it is not a known positive constant."""
    trips = tf.get_static_value(op.inputs[1]) if len(op.inputs) > 1 else None
    return int(trips) if trips is not None and int(trips) > 0 else None


def graph_flops(graph):
    """Total dense FLOPs of the live ops of ``graph`` and a per-op-type breakdown.

    A ``tf.while_loop`` with a static ``maximum_iterations`` (the model's critic steps) counts
    its body's FLOPs that many times: the loop runs its body exactly so often when the count
    is its condition too, and at most so often otherwise (an upper bound, e.g. paper 2's 10).

    Raises:
        ValueError: a counted op with a non-static shape, or nested functions (``tf.cond``,
            calls, loops without a static trip count), whose ops this counter does not see.
    """
    nested = [op.type for op in graph.get_operations()
              if op.type in ("If", "StatelessIf", "PartitionedCall", "StatefulPartitionedCall")
              or (op.type in WHILE_OPS and _while_trips(op) is None)]
    if nested:
        raise ValueError(f"Expected a graph without nested functions. Received ops {sorted(set(nested))}")
    by_type = {}
    for op in live_ops(graph):
        if op.type in WHILE_OPS:
            body = graph_flops(graph._get_function(op.get_attr("body").name).graph)["by_op"]
            counted = {kind: flops * _while_trips(op) for kind, flops in body.items()}
        else:
            counted = {op.type: op_flops(op)}
        for kind, flops in counted.items():
            if flops:
                by_type[kind] = by_type.get(kind, 0) + flops
    return {"total": sum(by_type.values()), "by_op": by_type}


def function_flops(function, *input_signature):
    """:func:`graph_flops` of ``tf.function`` ``function`` traced for ``input_signature``."""
    return graph_flops(function.get_concrete_function(*input_signature).graph)


def matmul_flops(m, n, k):
    """Hand formula of one ``[m, k] @ [k, n]``: 2·m·n·k."""
    return 2 * m * n * k


def conv_flops(batch, out_h, out_w, c_out, kh, kw, c_in):
    """Hand formula of one convolution producing ``[batch, out_h, out_w, c_out]``."""
    return 2 * batch * out_h * out_w * c_out * kh * kw * c_in

