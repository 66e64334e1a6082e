"""An MLServer runtime for the benchmark: the same ONNX file, the same modelkit vectorizer.

MLServer (PyPI `mlserver`) ships no ONNX runtime of its own, so the comparison in
bench/protocol.py serves the repository's `model.onnx` through this class: ONNX Runtime with
one intra-op thread, as the app runs it, and for the classifier the version's stored tf-idf
vectorizer (`modelkit.text`, numpy only) on a BYTES input, as the app's protocol route does.
MLServer's adaptive batching (max_batch_size, max_batch_time in model-settings.json) merges
concurrent requests before `predict`.
"""

from __future__ import annotations

import sys

import numpy as np
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec, StringCodec
from mlserver.types import InferenceRequest, InferenceResponse


class OnnxModel(MLModel):
    async def load(self) -> bool:
        extra = self.settings.parameters.extra or {}
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            self.settings.parameters.uri, sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name
        self._outputs = extra["outputs"]
        self._vectorizer = None
        if extra.get("vectorizer"):
            sys.path.insert(0, extra["project_root"])  # modelkit: the app's own vectorizer
            from modelkit.text import TfidfVectorizer

            self._vectorizer = TfidfVectorizer.load(extra["vectorizer"])
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        request_input = payload.inputs[0]
        if self._vectorizer is not None:
            rows = self._vectorizer.transform(StringCodec.decode_input(request_input))
        else:
            rows = np.asarray(NumpyCodec.decode_input(request_input), np.float32)
        results = self._session.run(None, {self._input: rows})
        return InferenceResponse(
            model_name=self.name,
            outputs=[
                NumpyCodec.encode_output(name, result)
                for name, result in zip(self._outputs, results, strict=True)
            ],
        )
