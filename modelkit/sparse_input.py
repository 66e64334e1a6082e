"""Rewrite an ONNX graph so that its first layer reads only the non-zero entries of its input.

A tf-idf row of the classifier has some tens to a few hundred non-zero entries out of 10,000
or more, yet `MatMul(tfidf, W)` reads all of W (10,000 × 64 floats, 2.5 MB) for every batch:
at batch 1 that is most of the model's time, and it grows with every averaged network and
every extra vocabulary term (5 networks over 29,421 terms: 36 MB, 1.2-1.5 ms per text).
This rewrite replaces each `MatMul(input, W)` whose W is a constant by a gather of W's rows at
the non-zero columns, weighted by their values and added into each row's output:

    rows, cols, values = the non-zero entries of x
    y = zeros[N, H]; y[rows] += W[cols] * values

which is the dense product's sum term by term (only the order of the additions differs:
differences of ~1e-7). The weights of all rewritten products (an ensemble's members, a wide
path beside the hidden layer) are stacked into one matrix, so one gather serves them all.

Finding the non-zero entries is the costly part: ONNX Runtime's NonZero visits the elements
one by one, and over whole rows it took longer than version 2's whole dense product. So the
input is cut into blocks of B columns, vectorised Abs and ReduceMax mark the non-empty blocks
(a block's largest |x| is 0 only when the block is all zero), and NonZero runs on that mask
(1/B of the elements) and then on the non-empty blocks only. The graph keeps its input and
its outputs: callers, the service and the Open Inference Protocol see the same model. `onnx`
is imported only here, when the rewrite runs (at export). Timings: docs/benchmarks.md,
"Sparse first layer".
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["block_size", "sparsify_input"]

# From opset 18 the reductions take their axes as an input instead of an attribute.
_AXES_INPUT_OPSET = 18
_PREFIX = "sparse_input/"


def block_size(width: int) -> tuple[int, int]:
    """The block size B for an input of `width` columns, and the zero columns to pad with:
    a divisor of the width between 16 and 32 (or 8 and 15) needs no padding (a copy)."""
    for low, high in ((16, 32), (8, 15)):
        for size in range(low, high + 1):
            if width % size == 0:
                return size, 0
    return 16, -width % 16


def sparsify_input(model: Any) -> int:
    """Rewrite `model` (an `onnx.ModelProto`, in place) as above; return how many products
    were rewritten (0: the input feeds no constant MatMul, and nothing changed)."""
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    graph_input = _single_input(graph, initializers)
    if _elem_type(graph, graph_input) != TensorProto.FLOAT:
        return 0  # the gathered weights are float32, as the classifier's tf-idf
    inputs = {graph_input}
    # Identity nodes (an inference-time Dropout) pass the input on unchanged.
    for node in graph.node:
        if node.op_type == "Identity" and node.input[0] in inputs:
            inputs.add(node.output[0])
    products = [
        node
        for node in graph.node
        if node.op_type == "MatMul"
        and node.input[0] in inputs
        and node.input[1] in initializers
        and len(initializers[node.input[1]].dims) == 2
        and initializers[node.input[1]].data_type == TensorProto.FLOAT
    ]
    if not products:
        return 0
    weights = [numpy_helper.to_array(initializers[node.input[1]]) for node in products]
    widths = [int(w.shape[1]) for w in weights]
    stacked = np.concatenate(weights, axis=1)
    size, padding = block_size(int(stacked.shape[0]))
    opset = _onnx_opset(model)

    def name(suffix: str) -> str:
        return _PREFIX + suffix

    def ints(value: Any, suffix: str) -> Any:
        return numpy_helper.from_array(np.array(value, dtype=np.int64), name(suffix))

    constants = [
        numpy_helper.from_array(stacked, name("weights")),
        # 0: the batch size, copied from the input (also when it is 0).
        ints([0, (stacked.shape[0] + padding) // size, size], "block_shape"),
        ints(size, "block_size"),
        ints(0, "zero"),
        ints(1, "one"),
        ints([1], "axis1"),
        ints([2], "axis2"),
        numpy_helper.from_array(np.array(0.0, dtype=np.float32), name("zero_value")),
    ]
    make = helper.make_node
    if padding:
        constants.append(ints([0, 0, 0, padding], "pads"))
        nodes = [make("Pad", [graph_input, name("pads")], [name("padded")])]
        padded = name("padded")
    else:
        nodes, padded = [], graph_input
    magnitude = make("Abs", [name("blocks")], [name("magnitude")])
    if opset >= _AXES_INPUT_OPSET:
        mark = make("ReduceMax", [name("magnitude"), name("axis2")], [name("mass")], keepdims=0)
    else:
        mark = make("ReduceMax", [name("magnitude")], [name("mass")], axes=[2], keepdims=0)

    def column(source: str, index: str, out: str) -> Any:
        return make("Gather", [name(source), name(index)], [name(out)], axis=0)

    sum_output = name("sum") if len(products) > 1 else products[0].output[0]
    nodes += [
        make("Reshape", [padded, name("block_shape")], [name("blocks")]),  # [N, width/B, B]
        magnitude,
        mark,  # [N, width/B]: 0 where a block is all zero
        make("NonZero", [name("mass")], [name("live")]),  # [2, blocks]: row, block column
        make("Transpose", [name("live")], [name("live_at")], perm=[1, 0]),
        make("GatherND", [name("blocks"), name("live_at")], [name("live_blocks")]),  # [b, B]
        make("NonZero", [name("live_blocks")], [name("entries")]),  # [2, nnz]: block, offset
        make("Transpose", [name("entries")], [name("entries_at")], perm=[1, 0]),
        make("GatherND", [name("live_blocks"), name("entries_at")], [name("values")]),
        column("entries", "zero", "entry_block"),
        column("entries", "one", "offset"),
        column("live", "zero", "block_row"),
        column("live", "one", "block_column"),
        make("Gather", [name("block_row"), name("entry_block")], [name("rows")], axis=0),
        make("Gather", [name("block_column"), name("entry_block")], [name("first")], axis=0),
        make("Mul", [name("first"), name("block_size")], [name("base")]),
        make("Add", [name("base"), name("offset")], [name("cols")]),
        make("Gather", [name("weights"), name("cols")], [name("gathered")], axis=0),  # [nnz, H]
        # Each text's sum of its gathered rows, as a product by S[N, nnz] (S[n, e] = the entry's
        # value where entry e is in text n, else 0): a MatMul is deterministic and exact in
        # its zeros, but grows with the batch times its entries (the cost of 32 whole articles
        # in one batch). ScatterND's reduction="add" would be linear, but ONNX Runtime runs it
        # on threads that race on a text's row: wrong sums in 86 of 200 runs with 2 threads.
        make("Shape", [graph_input], [name("input_shape")]),
        make("Gather", [name("input_shape"), name("zero")], [name("batch")], axis=0),
        make("Range", [name("zero"), name("batch"), name("one")], [name("texts")]),
        make("Unsqueeze", [name("texts"), name("axis1")], [name("text_column")]),  # [N, 1]
        make("Equal", [name("text_column"), name("rows")], [name("owns")]),  # [N, nnz]
        make("Where", [name("owns"), name("values"), name("zero_value")], [name("spread")]),
        make("MatMul", [name("spread"), name("gathered")], [sum_output]),
    ]
    if len(products) > 1:
        constants.append(ints(widths, "widths"))
        nodes.append(
            make("Split", [sum_output, name("widths")], [n.output[0] for n in products], axis=1)
        )

    replaced = {id(node) for node in products}
    kept = [node for node in graph.node if id(node) not in replaced]
    del graph.node[:]
    graph.node.extend(nodes + kept)
    graph.initializer.extend(constants)
    used = {value for node in graph.node for value in node.input}
    for tensor in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(tensor)
    return len(products)


def _single_input(graph: Any, initializers: dict[str, Any]) -> str:
    # Older exporters list initializers among the inputs too.
    names = [value.name for value in graph.input if value.name not in initializers]
    if len(names) != 1:
        raise ValueError(f"the sparse-input rewrite needs a model of one input, not {len(names)}")
    return names[0]


def _elem_type(graph: Any, name: str) -> int:
    (value,) = [value for value in graph.input if value.name == name]
    return int(value.type.tensor_type.elem_type)


def _onnx_opset(model: Any) -> int:
    return max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=1)
