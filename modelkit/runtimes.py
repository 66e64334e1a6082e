"""The two runtimes a model version can run on.

Both take one float32 batch and return the model's outputs as a list of numpy arrays, in the
order of the signature's outputs. ONNX Runtime is the default; TensorFlow runs the canonical
Keras model through a `tf.function` traced once for a fixed input signature, because
`model.predict` per call costs tens of milliseconds of fixed overhead.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

if TYPE_CHECKING:
    from modelkit.metadata import TensorSpec


class Runtime(Protocol):
    name: ClassVar[str]
    artifact_key: ClassVar[str]

    def run(self, inputs: np.ndarray) -> list[np.ndarray]: ...

    def with_threads(self, threads: int) -> Runtime: ...


def _batch_shape(input_spec: TensorSpec) -> list[int | None]:
    return [None, *input_spec.shape[1:]]


class OnnxRuntime:
    name: ClassVar[str] = "onnxruntime"
    artifact_key: ClassVar[str] = "onnx"

    def __init__(self, session: Any, input_name: str, dtype: np.dtype, artifact: Path) -> None:
        self._session = session
        self._input_name = input_name
        self._dtype = dtype
        self._artifact = artifact

    @classmethod
    def load(
        cls, artifact: Path, input_spec: TensorSpec, *, threads: int | None = None
    ) -> OnnxRuntime:
        session = _onnx_session(artifact, threads, spin=True)
        (onnx_input,) = session.get_inputs()
        return cls(session, onnx_input.name, np.dtype(input_spec.dtype), artifact)

    def with_threads(self, threads: int) -> OnnxRuntime:
        """A second session of the same file with `threads` intra-op threads, not spinning:
        idle pool threads sleep at once instead of spinning for more work, so a session that
        runs now and then does not take the CPU its callers need between runs."""
        session = _onnx_session(self._artifact, threads, spin=False)
        return OnnxRuntime(session, self._input_name, self._dtype, self._artifact)

    def run(self, inputs: np.ndarray) -> list[np.ndarray]:
        feed = np.ascontiguousarray(inputs, dtype=self._dtype)
        return self._session.run(None, {self._input_name: feed})


def _onnx_session(artifact: Path, threads: int | None, *, spin: bool) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(
        str(artifact), sess_options=options, providers=["CPUExecutionProvider"]
    )


class TensorFlowRuntime:
    name: ClassVar[str] = "tensorflow"
    artifact_key: ClassVar[str] = "keras"

    def __init__(self, function: Any, dtype: np.dtype) -> None:
        self._function = function
        self._dtype = dtype

    @classmethod
    def load(
        cls, artifact: Path, input_spec: TensorSpec, *, threads: int | None = None
    ) -> TensorFlowRuntime:
        import keras
        import tensorflow as tf

        if threads:
            _set_tensorflow_threads(tf, threads)
        model = keras.saving.load_model(artifact, compile=False)
        signature = tf.TensorSpec(_batch_shape(input_spec), tf.as_dtype(input_spec.dtype))

        @tf.function(input_signature=[signature], reduce_retracing=True)
        def serve(batch: Any) -> Any:
            return model(batch, training=False)

        return cls(serve, np.dtype(input_spec.dtype))

    def with_threads(self, threads: int) -> TensorFlowRuntime:
        """The same runtime: TensorFlow sizes its thread pools once per process."""
        return self

    def run(self, inputs: np.ndarray) -> list[np.ndarray]:
        outputs = self._function(np.ascontiguousarray(inputs, dtype=self._dtype))
        if isinstance(outputs, dict):
            outputs = list(outputs.values())
        elif not isinstance(outputs, list | tuple):
            outputs = [outputs]
        return [output.numpy() for output in outputs]


def _set_tensorflow_threads(tf: Any, threads: int) -> None:
    # Thread pools can only be sized before TensorFlow initialises its runtime.
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass


RUNTIMES: dict[str, type[OnnxRuntime] | type[TensorFlowRuntime]] = {
    OnnxRuntime.name: OnnxRuntime,
    TensorFlowRuntime.name: TensorFlowRuntime,
}
