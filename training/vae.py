"""Variational autoencoder on MNIST digits with a 2-dimensional latent space.

    python -m training.vae train [--data mnist.npz|IDX-dir] [--epochs N] [--seed S] [--out models/]
    python -m training.vae eval [--model-dir models/vae] [--write-metadata]

The encoder maps a 28x28 image with intensities in [0, 1] to the mean and log-variance of a
diagonal Gaussian over z; training draws z = z_mean + exp(z_log_var / 2) * eps with
eps ~ N(0, I) (the reparameterization trick) and the decoder maps z back to pixel intensities.
The loss is the negative ELBO: binary cross-entropy summed over the 784 pixels plus the KL
divergence from q(z|x) to the prior N(0, I).

Two signatures are exported, both built from plain Keras layers (the sampling lives only in
the training model): `serving_default` (`model.*`, the decoder: latent -> image, served by
`/vae/sample`) and `encode` (`encoder.*`: image -> z_mean, z_log_var).

`eval` compares the exported model with the classic Keras-example MLP VAE trained by the same
command, on the test-set negative ELBO and on the quality of samples drawn from the prior.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from modelkit.repository import METADATA_FILE, latest_version, load_model
from modelkit.versions import VersionWriter
from training.data import DEFAULT_MODELS_DIR
from training.mnist import Mnist, load_mnist
from training.plots import plot_history
from training.vae_eval import (
    MIN_JUDGE_ACCURACY,
    format_report,
    sample_quality,
    skipped_samples,
    train_judge,
)

MODEL_NAME = "vae"
LATENT_SIZE = 2
IMAGE_SHAPE = (28, 28)
VALIDATION_SIZE = 5_000
ELBO_SAMPLES = 10
# The latent-walk range covers the central 99 % of the encoded test set (see walk_range).
WALK_QUANTILE = 0.005
ENCODER_UNITS = 512
# A 2-D latent must be unfolded into every digit shape: a deeper dense stack before the
# transposed convolutions gives the decoder a more non-linear map of z.
DECODER_DENSE_UNITS = (512, 512)

Encode = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
Decode = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class TrainingConfig:
    epochs: int = 30
    batch_size: int = 128
    learning_rate: float = 1e-3
    # Cosine decay of the learning rate to this fraction of it over the run; None keeps it fixed.
    final_learning_rate_fraction: float | None = 0.05
    # Early stopping on the validation loss; None trains all epochs and keeps the last weights.
    patience: int | None = 6


# The classic Keras-example MLP VAE: 784-512-2-512-784, 30 epochs, batch 128, Adam.
BASELINE_CONFIG = TrainingConfig(
    epochs=30, batch_size=128, learning_rate=1e-3, final_learning_rate_fraction=None, patience=None
)


def scale_images(images: np.ndarray) -> np.ndarray:
    """uint8 pixels -> float32 intensities in [0, 1], the encoder's input."""
    return (np.asarray(images, dtype=np.float32) / 255.0).reshape(-1, *IMAGE_SHAPE)


def build_encoder() -> keras.Model:
    images = keras.Input(shape=IMAGE_SHAPE, name="image")
    x = layers.Reshape((*IMAGE_SHAPE, 1))(images)
    x = layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.Conv2D(64, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(ENCODER_UNITS, activation="relu")(x)
    z_mean = layers.Dense(LATENT_SIZE, name="z_mean")(x)
    z_log_var = layers.Dense(LATENT_SIZE, name="z_log_var")(x)
    return keras.Model(images, [z_mean, z_log_var], name="encoder")


def build_decoder() -> keras.Model:
    latent = keras.Input(shape=(LATENT_SIZE,), name="latent")
    x = latent
    for units in DECODER_DENSE_UNITS:
        x = layers.Dense(units, activation="relu")(x)
    x = layers.Dense(7 * 7 * 64, activation="relu")(x)
    x = layers.Reshape((7, 7, 64))(x)
    x = layers.Conv2DTranspose(64, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.Conv2DTranspose(32, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.Conv2D(1, 3, padding="same", activation="sigmoid")(x)
    images = layers.Reshape(IMAGE_SHAPE, name="image")(x)
    return keras.Model(latent, images, name="decoder")


def build_baseline_encoder() -> keras.Model:
    images = keras.Input(shape=IMAGE_SHAPE, name="image")
    x = layers.Flatten()(images)
    x = layers.Dense(512, activation="relu")(x)
    z_mean = layers.Dense(LATENT_SIZE, name="z_mean")(x)
    z_log_var = layers.Dense(LATENT_SIZE, name="z_log_var")(x)
    return keras.Model(images, [z_mean, z_log_var], name="baseline_encoder")


def build_baseline_decoder() -> keras.Model:
    latent = keras.Input(shape=(LATENT_SIZE,), name="latent")
    x = layers.Dense(512, activation="relu")(latent)
    x = layers.Dense(IMAGE_SHAPE[0] * IMAGE_SHAPE[1], activation="sigmoid")(x)
    images = layers.Reshape(IMAGE_SHAPE, name="image")(x)
    return keras.Model(latent, images, name="baseline_decoder")


def vae_loss_terms(images: Any, reconstructions: Any, z_mean: Any, z_log_var: Any) -> tuple:
    """Per-example (reconstruction, KL) in nats; their sum is the negative ELBO.

    Reconstruction: binary cross-entropy summed over every pixel (probabilities clipped to
    [1e-7, 1 - 1e-7] as Keras does). KL: the closed form of KL(N(mu, sigma^2) || N(0, I)).
    """
    images = ops.convert_to_tensor(images, dtype="float32")
    bce = keras.losses.binary_crossentropy(images[..., None], reconstructions[..., None])
    reconstruction = ops.sum(ops.reshape(bce, (ops.shape(bce)[0], -1)), axis=1)
    kl = -0.5 * ops.sum(1.0 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var), axis=1)
    return reconstruction, kl


class VAE(keras.Model):
    """The training model: encoder, reparameterized sampling, decoder and the ELBO loss."""

    def __init__(self, encoder: keras.Model, decoder: keras.Model, seed: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.noise = keras.random.SeedGenerator(seed)
        self.trackers = {
            name: keras.metrics.Mean(name=name) for name in ("loss", "reconstruction", "kl")
        }

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return list(self.trackers.values())

    def sample_latent(self, z_mean: Any, z_log_var: Any) -> Any:
        """The reparameterization trick: z = mu + sigma * eps, differentiable in mu and sigma."""
        epsilon = keras.random.normal(ops.shape(z_mean), seed=self.noise)
        return z_mean + ops.exp(0.5 * z_log_var) * epsilon

    def call(self, images: Any, training: bool = False) -> Any:
        z_mean, z_log_var = self.encoder(images, training=training)
        return self.decoder(self.sample_latent(z_mean, z_log_var), training=training)

    def loss_terms(self, images: Any, training: bool) -> tuple:
        z_mean, z_log_var = self.encoder(images, training=training)
        reconstructions = self.decoder(self.sample_latent(z_mean, z_log_var), training=training)
        return vae_loss_terms(images, reconstructions, z_mean, z_log_var)

    def train_step(self, data: Any) -> dict[str, Any]:
        images = data[0] if isinstance(data, tuple) else data
        with tf.GradientTape() as tape:
            reconstruction, kl = self.loss_terms(images, training=True)
            loss = ops.mean(reconstruction + kl)
        gradients = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_weights, strict=True))
        return self.update_trackers(loss, reconstruction, kl)

    def test_step(self, data: Any) -> dict[str, Any]:
        images = data[0] if isinstance(data, tuple) else data
        reconstruction, kl = self.loss_terms(images, training=False)
        return self.update_trackers(ops.mean(reconstruction + kl), reconstruction, kl)

    def update_trackers(self, loss: Any, reconstruction: Any, kl: Any) -> dict[str, Any]:
        self.trackers["loss"].update_state(loss)
        self.trackers["reconstruction"].update_state(ops.mean(reconstruction))
        self.trackers["kl"].update_state(ops.mean(kl))
        return {name: tracker.result() for name, tracker in self.trackers.items()}


def train_vae(
    encoder: keras.Model,
    decoder: keras.Model,
    train_images: np.ndarray,
    validation_images: np.ndarray | None,
    config: TrainingConfig,
    *,
    seed: int,
    verbose: int | str = "auto",
) -> tuple[VAE, dict[str, list[float]]]:
    """Fit encoder and decoder on [0, 1] images; with a patience, keep the best epoch's weights."""
    vae = VAE(encoder, decoder, seed=seed)
    vae(train_images[:1])  # builds it, so the checkpoint callback can save weights
    steps = config.epochs * -(-len(train_images) // config.batch_size)
    learning_rate: float | keras.optimizers.schedules.LearningRateSchedule = config.learning_rate
    if config.final_learning_rate_fraction is not None:
        learning_rate = keras.optimizers.schedules.CosineDecay(
            config.learning_rate, decay_steps=steps, alpha=config.final_learning_rate_fraction
        )
    vae.compile(optimizer=keras.optimizers.Adam(learning_rate))
    validation = (validation_images,) if validation_images is not None else None
    with tempfile.TemporaryDirectory(prefix="vae-checkpoint-") as checkpoint_dir:
        checkpoint = Path(checkpoint_dir) / "best.weights.h5"
        callbacks: list[keras.callbacks.Callback] = []
        if config.patience is not None:
            if validation is None:
                raise ValueError("early stopping needs validation images")
            callbacks = [
                keras.callbacks.ModelCheckpoint(
                    checkpoint, monitor="val_loss", save_best_only=True, save_weights_only=True
                ),
                keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience),
            ]
        history = vae.fit(
            train_images,
            validation_data=validation,
            epochs=config.epochs,
            batch_size=config.batch_size,
            shuffle=True,
            callbacks=callbacks,
            verbose=verbose,
        )
        if checkpoint.exists():
            vae.load_weights(checkpoint)
    return vae, {key: [float(v) for v in values] for key, values in history.history.items()}


def keras_encode(encoder: keras.Model) -> Encode:
    def encode(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        z_mean, z_log_var = encoder.predict_on_batch(images)
        return np.asarray(z_mean), np.asarray(z_log_var)

    return encode


def keras_decode(decoder: keras.Model) -> Decode:
    return lambda latent: np.asarray(decoder.predict_on_batch(latent))


def negative_elbo(
    encode: Encode,
    decode: Decode,
    images: np.ndarray,
    *,
    samples: int = ELBO_SAMPLES,
    seed: int = 0,
    batch_size: int = 1_000,
) -> dict[str, float | int]:
    """Mean test negative ELBO in nats: analytic KL + BCE averaged over `samples` draws of z."""
    rng = np.random.default_rng(seed)
    reconstruction_sum = kl_sum = 0.0
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        z_mean, z_log_var = encode(batch)
        for _ in range(samples):
            z = z_mean + np.exp(0.5 * z_log_var) * rng.standard_normal(z_mean.shape)
            reconstruction, kl = vae_loss_terms(
                batch, decode(z.astype(np.float32)), z_mean, z_log_var
            )
            reconstruction_sum += float(ops.sum(reconstruction)) / samples
        kl_sum += float(ops.sum(kl))
    reconstruction_mean, kl_mean = reconstruction_sum / len(images), kl_sum / len(images)
    return {
        "negative_elbo": reconstruction_mean + kl_mean,
        "reconstruction": reconstruction_mean,
        "kl": kl_mean,
        "z_samples_per_image": samples,
    }


def walk_range(z_mean: np.ndarray, quantile: float = WALK_QUANTILE) -> list[float]:
    """A symmetric latent range holding the central 1 - 2*quantile of the encodings per axis."""
    low, high = np.quantile(z_mean, [quantile, 1 - quantile], axis=0)
    half_width = float(np.max(np.abs(np.concatenate([low, high]))))
    return [-round(half_width, 2), round(half_width, 2)]


def split_train_validation(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The last VALIDATION_SIZE training images (or a tenth of a small set) for validation."""
    validation_size = min(VALIDATION_SIZE, len(images) // 10)
    return images[:-validation_size], images[-validation_size:]


def train(
    data: Mnist, config: TrainingConfig, *, seed: int, out: Path, verbose: int | str = "auto"
) -> Path:
    """Train the VAE, measure its test negative ELBO, export both signatures; the version path."""
    keras.utils.set_random_seed(seed)
    train_images, validation_images = split_train_validation(scale_images(data.x_train))
    test_images = scale_images(data.x_test)
    encoder, decoder = build_encoder(), build_decoder()
    started = time.monotonic()
    _, history = train_vae(
        encoder, decoder, train_images, validation_images, config, seed=seed, verbose=verbose
    )
    training_seconds = time.monotonic() - started
    test_metrics = negative_elbo(
        keras_encode(encoder), keras_decode(decoder), test_images, seed=seed
    )
    test_z_mean, _ = keras_encode(encoder)(test_images)
    rng = np.random.default_rng(seed)
    with VersionWriter(out, MODEL_NAME) as version:
        version.export(
            decoder,
            stem="model",
            signature="serving_default",
            inputs=[tensor_spec("latent", [None, LATENT_SIZE], "a point of the latent space")],
            outputs=[tensor_spec("image", [None, *IMAGE_SHAPE], "pixel intensities in [0, 1]")],
            sample_inputs=rng.standard_normal((32, LATENT_SIZE)),
        )
        version.export(
            encoder,
            stem="encoder",
            signature="encode",
            inputs=[tensor_spec("image", [None, *IMAGE_SHAPE], "pixel intensities in [0, 1]")],
            outputs=[
                tensor_spec("z_mean", [None, LATENT_SIZE], "mean of q(z|x)"),
                tensor_spec("z_log_var", [None, LATENT_SIZE], "log-variance of q(z|x)"),
            ],
            sample_inputs=test_images[rng.choice(len(test_images), 32, replace=False)],
        )
        plot_history(history, version.path / "training_curves.png", "VAE on MNIST (nats)")
        best_epoch = int(np.argmin(history["val_loss"])) + 1
        version.metadata.update(
            task="image-generation",
            description="Convolutional VAE on MNIST; the decoder maps a 2-D latent to a digit.",
            labels=None,
            latent={
                "size": LATENT_SIZE,
                "prior": "standard normal",
                "walk_range": walk_range(test_z_mean),
                "walk_range_rule": f"symmetric range covering the {WALK_QUANTILE:.1%} to "
                f"{1 - WALK_QUANTILE:.1%} quantiles of z_mean over the MNIST test set",
            },
            preprocessing={
                "encode": "uint8 pixels / 255 -> float32 [N, 28, 28] in [0, 1]",
                "serving_default": "latent float32 [N, 2]; output intensities in [0, 1], "
                "multiply by 255 for 8-bit grey",
            },
            training_data=data.fingerprint(),
            hyperparameters={
                **asdict(config),
                "seed": seed,
                "optimizer": "adam",
                "validation_size": len(validation_images),
                "architecture": f"encoder conv32/s2-conv64/s2-dense{ENCODER_UNITS}; decoder "
                + "".join(f"dense{units}-" for units in DECODER_DENSE_UNITS)
                + "dense3136-convT64/s2-convT32/s2-conv1 sigmoid",
            },
            metrics={
                "test": test_metrics,
                "best_epoch": best_epoch,
                "epochs_run": len(history["loss"]),
                "best_val_negative_elbo": min(history["val_loss"]),
                "training_seconds": round(training_seconds, 1),
            },
        )
    return version.path


def tensor_spec(name: str, shape: list[int | None], meaning: str) -> dict[str, Any]:
    return {"name": name, "dtype": "float32", "shape": shape, "meaning": meaning}


def train_baseline(
    data: Mnist, config: TrainingConfig = BASELINE_CONFIG, *, seed: int, verbose: int | str = 2
) -> tuple[Encode, Decode]:
    """The classic Keras-example MLP VAE, trained on the same training split as the model."""
    keras.utils.set_random_seed(seed)
    train_images, _ = split_train_validation(scale_images(data.x_train))
    encoder, decoder = build_baseline_encoder(), build_baseline_decoder()
    train_vae(encoder, decoder, train_images, None, config, seed=seed, verbose=verbose)
    return keras_encode(encoder), keras_decode(decoder)


def resolve_version(model_dir: Path) -> tuple[Path, str, int]:
    """(repository root, model name, version) for models/vae or models/vae/<version>."""
    if (model_dir / METADATA_FILE).is_file():
        return model_dir.parent.parent, model_dir.parent.name, int(model_dir.name)
    return model_dir.parent, model_dir.name, latest_version(model_dir.parent, model_dir.name)


def evaluate(
    data: Mnist,
    model_dir: Path,
    *,
    seed: int,
    baseline_epochs: int | None = None,
    classifier_epochs: int = 3,
    min_judge_accuracy: float = MIN_JUDGE_ACCURACY,
) -> dict[str, Any]:
    """Test negative ELBO of the exported model and of the baseline, always; the quality of
    their prior samples as the data's own judge sees it, when the data has labels and the
    judge is good enough to say anything (its accuracy is reported either way)."""
    root, name, version = resolve_version(model_dir)
    encoder = load_model(root, name, version, signature="encode")
    decoder = load_model(root, name, version)
    test_images = scale_images(data.x_test)

    def project_encode(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        outputs = encoder.run(images)
        return outputs["z_mean"], outputs["z_log_var"]

    project = (project_encode, decoder.predict)
    baseline_config = BASELINE_CONFIG
    if baseline_epochs is not None:
        baseline_config = TrainingConfig(**{**asdict(BASELINE_CONFIG), "epochs": baseline_epochs})
    baseline = train_baseline(data, baseline_config, seed=seed)
    judge: dict[str, Any] = {"test_accuracy": None, "classes": None, "min_accuracy": None}
    classifier = None
    if data.y_train is None or data.y_test is None:
        skipped = "the data has no labels to train a judging classifier on"
    else:
        classifier, accuracy, classes = train_judge(
            data.x_train,
            data.y_train,
            data.x_test,
            data.y_test,
            seed=seed,
            epochs=classifier_epochs,
        )
        judge = {"test_accuracy": accuracy, "classes": classes, "min_accuracy": min_judge_accuracy}
        skipped = (
            f"the judging classifier reaches only {accuracy:.2%} test accuracy, under the"
            f" {min_judge_accuracy:.0%} it needs to judge samples (--min-judge-accuracy)"
            if accuracy < min_judge_accuracy
            else ""
        )
    results: dict[str, Any] = {
        "model": f"{name}/{version}",
        "data": data.source,
        "elbo_estimator": f"analytic KL + BCE averaged over {ELBO_SAMPLES} z samples per image, "
        f"{len(test_images)} test images, numpy seed {seed}",
        "judge": judge,
        "classifier_test_accuracy": judge["test_accuracy"],
        "baseline_config": asdict(baseline_config),
    }
    for label, (encode, decode) in (("project", project), ("baseline", baseline)):
        results[label] = {
            "test": negative_elbo(encode, decode, test_images, seed=seed),
            "samples": (
                skipped_samples(skipped)
                if skipped or classifier is None
                else sample_quality(decode, classifier, seed=seed)
            ),
        }
    results["improvement_nats"] = (
        results["baseline"]["test"]["negative_elbo"] - results["project"]["test"]["negative_elbo"]
    )
    return results


def write_evaluation(model_dir: Path, results: dict[str, Any]) -> Path:
    """Merge the evaluation into the version's metadata.json (not an artifact: no sha256)."""
    root, name, version = resolve_version(model_dir)
    path = root / name / str(version) / METADATA_FILE
    metadata = json.loads(path.read_text())
    metadata.setdefault("metrics", {})["evaluation"] = results
    path.write_text(json.dumps(metadata, indent=2) + "\n")
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m training.vae", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for command in ("train", "eval"):
        sub = commands.add_parser(command)
        sub.add_argument("--data", type=Path, help="mnist.npz or a directory of the IDX files")
        sub.add_argument("--seed", type=int, default=1337)
    train_parser = commands.choices["train"]
    train_parser.add_argument("--epochs", type=int, default=TrainingConfig.epochs)
    train_parser.add_argument("--batch-size", type=int, default=TrainingConfig.batch_size)
    train_parser.add_argument("--out", type=Path, default=DEFAULT_MODELS_DIR)
    eval_parser = commands.choices["eval"]
    eval_parser.add_argument(
        "--model-dir",
        type=Path,
        default=DEFAULT_MODELS_DIR / MODEL_NAME,
        help="models/vae (its latest version) or models/vae/<version>",
    )
    eval_parser.add_argument(
        "--baseline-epochs", type=int, help=f"default {BASELINE_CONFIG.epochs} (the classic)"
    )
    eval_parser.add_argument(
        "--write-metadata", action="store_true", help="store the results in metadata.json"
    )
    eval_parser.add_argument(
        "--min-judge-accuracy",
        type=float,
        default=MIN_JUDGE_ACCURACY,
        help="the judging classifier's test accuracy below which sample quality is skipped"
        f" (default {MIN_JUDGE_ACCURACY})",
    )
    args = parser.parse_args(argv)

    data = load_mnist(args.data)
    if args.command == "train":
        config = TrainingConfig(epochs=args.epochs, batch_size=args.batch_size)
        path = train(data, config, seed=args.seed, out=args.out)
        metrics = json.loads((path / METADATA_FILE).read_text())["metrics"]
        print(f"published {path}; test negative ELBO {metrics['test']['negative_elbo']:.2f} nats")
    else:
        results = evaluate(
            data,
            args.model_dir,
            seed=args.seed,
            baseline_epochs=args.baseline_epochs,
            min_judge_accuracy=args.min_judge_accuracy,
        )
        print(format_report(results))
        if args.write_metadata:
            print(f"evaluation written to {write_evaluation(args.model_dir, results)}")


if __name__ == "__main__":
    main()
