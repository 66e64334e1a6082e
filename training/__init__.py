"""Training, evaluation and export pipelines, one module per model: `python -m training.<model>`."""

import os

# TensorFlow's C++ start-up chatter hides the Keras progress bars; warnings and errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
