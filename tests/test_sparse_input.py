"""modelkit.sparse_input: the rewritten first layer computes the dense product's result on
every kind of row (empty, negative, dense, one wide block padded), for every shape of first
layer the classifier exports (one network, an ensemble, a wide path), at every batch size."""

from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from modelkit.sparse_input import block_size, sparsify_input


def dense_network(
    width: int, hidden: list[int], *, identity: bool = False, integers: bool = False
) -> onnx.ModelProto:
    """x [N, width] -> one MatMul per entry of `hidden` (+ bias, relu), summed into 3 logits:
    an ensemble's members or a wide path beside the hidden layer. With `integers`, small
    whole-number weights: on whole-number inputs every sum is exact in any order."""
    rng = np.random.default_rng(width)

    def draw(size: Any) -> np.ndarray:
        values = rng.integers(-8, 9, size) if integers else rng.normal(size=size)
        return values.astype(np.float32)

    source = "x"
    nodes, initializers = [], []
    if identity:  # what an inference-time Dropout exports as
        nodes.append(helper.make_node("Identity", ["x"], ["x_copy"]))
        source = "x_copy"
    logits = []
    for index, units in enumerate(hidden):
        w = numpy_helper.from_array(draw((width, units)), f"w{index}")
        b = numpy_helper.from_array(draw(units), f"b{index}")
        v = numpy_helper.from_array(draw((units, 3)), f"v{index}")
        initializers += [w, b, v]
        nodes += [
            helper.make_node("MatMul", [source, f"w{index}"], [f"h{index}"]),
            helper.make_node("Add", [f"h{index}", f"b{index}"], [f"a{index}"]),
            helper.make_node("Relu", [f"a{index}"], [f"r{index}"]),
            helper.make_node("MatMul", [f"r{index}", f"v{index}"], [f"l{index}"]),
        ]
        logits.append(f"l{index}")
    # The logits themselves, not a softmax that could saturate and hide a wrong sum.
    nodes.append(helper.make_node("Sum", logits, ["y"]))
    graph = helper.make_graph(
        nodes,
        "dense",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])],
        initializer=initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])


def session(model: onnx.ModelProto, threads: int = 0) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return session(model).run(None, {"x": x})[0]


def rows(width: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    x = np.zeros((6, width), dtype=np.float32)
    x[0, rng.choice(width, 5, replace=False)] = rng.random(5)  # a few terms
    x[2, :] = rng.normal(size=width)  # every entry, negative ones too
    x[3, [0, width - 1]] = [-0.5, 0.25]  # the first and the last column (a padded block)
    x[4, rng.choice(width, 3, replace=False)] = -rng.random(3)  # negative only
    return x  # rows 1 and 5 stay empty


@pytest.mark.parametrize(
    ("width", "hidden", "identity"),
    [(48, [8], False), (37, [8], False), (40, [4, 6, 5], False), (24, [8, 3], True)],
    ids=["one-network", "padded-width", "ensemble", "wide-after-identity"],
)
def test_the_rewrite_computes_the_dense_products_result(
    width: int, hidden: list[int], identity: bool
) -> None:
    dense = dense_network(width, hidden, identity=identity)
    sparse = dense_network(width, hidden, identity=identity)
    assert sparsify_input(sparse) == len(hidden)
    onnx.checker.check_model(sparse, full_check=True)
    # No MatMul reads the input any more: the first layer is a gather.
    first = {"x", "x_copy"}
    assert not [n for n in sparse.graph.node if n.op_type == "MatMul" and n.input[0] in first]
    assert [o.version for o in sparse.opset_import if o.domain == ""] == [15], "opset kept"
    x = rows(width)
    for batch in (x, x[:1], x[1:2], x[:0]):
        expected = run(dense, batch)
        np.testing.assert_allclose(run(sparse, batch), expected, atol=1e-5)
        assert run(sparse, batch).shape == (len(batch), 3)


def test_the_sums_are_the_same_on_every_run_with_several_threads() -> None:
    """Per-text sums must not race: ScatterND's reduction="add", the first way tried, gave
    wrong sums in 86 of 200 runs of 32 news texts on ONNX Runtime with 2 threads, and fails
    this test (24 runs of 30 wrong)."""
    # Whole numbers throughout, so that any order of the additions gives the same exact sums
    # and a lost or doubled term cannot hide in rounding.
    width, hidden = 4096, [64] * 5
    dense = dense_network(width, hidden, integers=True)
    sparse = dense_network(width, hidden, integers=True)
    sparsify_input(sparse)
    rng = np.random.default_rng(1)
    x = np.zeros((32, width), dtype=np.float32)
    for row in x:  # long texts of different lengths: rows do not end where threads' shares do
        terms = int(rng.integers(300, 500))
        row[rng.choice(width, terms, replace=False)] = rng.integers(1, 3, terms)
    expected = run(dense, x)
    threaded = session(sparse, threads=4)
    for _ in range(30):
        np.testing.assert_array_equal(threaded.run(None, {"x": x})[0], expected)


def test_a_model_whose_input_feeds_no_constant_matmul_is_left_alone() -> None:
    graph = helper.make_graph(
        [helper.make_node("Softmax", ["x"], ["y"], axis=-1)],
        "softmax",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    before = model.SerializeToString()
    assert sparsify_input(model) == 0
    assert model.SerializeToString() == before


def test_a_float64_model_is_left_alone() -> None:
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "double",
        [helper.make_tensor_value_info("x", TensorProto.DOUBLE, [None, 4])],
        [helper.make_tensor_value_info("y", TensorProto.DOUBLE, [None, 2])],
        initializer=[numpy_helper.from_array(np.ones((4, 2)), "w")],
    )
    assert sparsify_input(helper.make_model(graph)) == 0


def test_a_model_of_two_inputs_is_refused() -> None:
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "z"], ["y"])],
        "two",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4]),
            helper.make_tensor_value_info("z", TensorProto.FLOAT, [None, 4]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])],
    )
    with pytest.raises(ValueError, match="one input, not 2"):
        sparsify_input(helper.make_model(graph))


def test_block_size_prefers_a_divisor_of_the_width() -> None:
    assert block_size(10_000) == (16, 0)
    assert block_size(29_421) == (21, 0)  # 21 x 1,401: no copy of the input to pad it
    assert block_size(37) == (16, 11)  # prime: padded to 48
    assert block_size(8) == (8, 0)
