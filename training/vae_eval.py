"""Sample quality of a generative MNIST model, and the VAE evaluation report.

A small convolutional digit classifier (trained here, >= 98 % test accuracy required) labels
images decoded from points drawn from the prior N(0, I). A good generator gives digits the
classifier is sure about (the share with confidence >= 0.9) and covers all ten digits (the
histogram of the predicted labels).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
from keras import layers

SAMPLE_COUNT = 1_000
CONFIDENCE_THRESHOLD = 0.9
MIN_CLASSIFIER_ACCURACY = 0.98


def build_digit_classifier() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input(shape=(28, 28)),
            layers.Reshape((28, 28, 1)),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dropout(0.3),
            layers.Dense(10, activation="softmax"),
        ],
        name="digit_classifier",
    )


def train_digit_classifier(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    seed: int,
    epochs: int = 3,
    min_accuracy: float | None = MIN_CLASSIFIER_ACCURACY,
    verbose: int | str = 2,
) -> tuple[keras.Model, float]:
    """Fit the classifier on uint8 images; (model, test accuracy). Too weak a judge raises."""
    keras.utils.set_random_seed(seed)
    classifier = build_digit_classifier()
    classifier.compile(
        optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    classifier.fit(x_train / 255.0, y_train, epochs=epochs, batch_size=128, verbose=verbose)
    _, accuracy = classifier.evaluate(x_test / 255.0, y_test, verbose=0)
    if min_accuracy is not None and accuracy < min_accuracy:
        raise RuntimeError(f"digit classifier reaches only {accuracy:.2%} test accuracy")
    return classifier, float(accuracy)


def sample_quality(
    decode: Callable[[np.ndarray], np.ndarray],
    classifier: keras.Model,
    *,
    seed: int,
    count: int = SAMPLE_COUNT,
    latent_size: int = 2,
    threshold: float = CONFIDENCE_THRESHOLD,
) -> dict[str, Any]:
    """Decode `count` prior samples; share classified with confidence >= threshold, histogram."""
    latent = np.random.default_rng(seed).standard_normal((count, latent_size)).astype(np.float32)
    probabilities = classifier.predict(decode(latent), verbose=0)
    confident = probabilities.max(axis=1) >= threshold
    return {
        "count": count,
        "confident_share": float(confident.mean()),
        "confidence_threshold": threshold,
        "digit_histogram": np.bincount(probabilities.argmax(axis=1), minlength=10).tolist(),
    }


def format_report(results: dict[str, Any]) -> str:
    """The evaluation as one markdown table (project vs baseline)."""
    project, baseline = results["project"], results["baseline"]
    rows = [
        ("test negative ELBO (nats)", "negative_elbo", "{:.2f}"),
        ("of which reconstruction (BCE summed over 784 pixels)", "reconstruction", "{:.2f}"),
        ("of which KL to N(0, I)", "kl", "{:.2f}"),
    ]
    lines = [
        "| metric | project | baseline (MLP VAE) | project - baseline |",
        "| --- | ---: | ---: | ---: |",
    ]
    for label, key, fmt in rows:
        ours, theirs = project["test"][key], baseline["test"][key]
        lines.append(
            f"| {label} | {fmt.format(ours)} | {fmt.format(theirs)} | {ours - theirs:+.2f} |"
        )
    ours, theirs = project["samples"], baseline["samples"]
    lines.append(
        f"| prior samples classified with confidence >= {ours['confidence_threshold']} "
        f"(of {ours['count']}) | {ours['confident_share']:.1%} | {theirs['confident_share']:.1%}"
        f" | {100 * (ours['confident_share'] - theirs['confident_share']):+.1f} pts |"
    )
    lines.append(
        f"| digit histogram of the samples (0-9) | {_histogram(ours)} | {_histogram(theirs)} | |"
    )
    lines.append("")
    lines.append(
        f"Model {results['model']}; -ELBO estimator: {results['elbo_estimator']}; "
        f"digit classifier test accuracy {results['classifier_test_accuracy']:.2%}."
    )
    return "\n".join(lines)


def _histogram(samples: dict[str, Any]) -> str:
    return " ".join(str(count) for count in samples["digit_histogram"])
