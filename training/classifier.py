"""News-topic classifier: tf-idf features -> dense network -> softmax over the categories.

    python -m training.classifier train [--data news.csv] [--test test.csv] [--out models/]
        [--sparse-input auto|true|false]
    python -m training.classifier eval [--data news.csv] [--test test.csv]
        [--epochs N] [--seed S] [--max-tokens N] [--hidden-units N] [--dropout P] ...
    python -m training.classifier eval --data news.csv --splits 0 1 2 [--test-size 0.3]
        [--results figures.json]

The data is any CSV with a `text` and a `category` column (default: the BBC News articles in
`../shared/data/bbc_news.csv`); the labels are the category names, sorted. Features come from
`modelkit.text.TfidfVectorizer` (up to 10,000 words, sublinear tf, smoothed idf, L2 norm), the
same code the service runs; it is saved as `vectorizer.json` in the model version.

Training holds out a stratified tenth of the data for early stopping on the validation loss
(best epoch checkpointed), then trains the network afresh on all the texts for that many epochs;
the vectorizer is fitted on all the training texts. The ONNX export's first layer is a gather of
each text's non-zero terms (`modelkit.sparse_input`) when the layer is large enough for that to
pay (`--sparse-input auto`); its outputs are the dense network's.
`eval` measures that procedure by 5-fold stratified cross-validation (shuffled, random_state 0)
against scikit-learn's `TfidfVectorizer(sublinear_tf=True)` + `LinearSVC` on the same folds.
`train` runs the same cross-validation first and stores it in the version's metrics, then fits
the published model on the whole CSV.

With `--test TEST.csv` (a corpus with its own train/test split), there is no cross-validation:
the procedure is fitted on `--data` only and scored once on TEST, beside two baselines fitted
and scored on the same rows (LinearSVC and logistic regression on scikit-learn's sublinear
tf-idf). `train --test` publishes the model fitted on `--data` with those held-out figures and
TEST's sha256 in its metadata. A TEST category that `--data` lacks is refused: the model could
never predict it.

With `--splits S [S ...]` (a corpus without its own test split), `eval` makes a stratified
split of `--data` for each random_state S (`--test-size` to test, default 30 %), scores the
procedure and both baselines on each as `--test` does, and then compares the model with
LinearSVC over the splits: ahead, level or behind on how many, the mean lead in texts, a sign
test, and the mean lead that "level or ahead on every split" would take given how much the
leads vary. `--results` writes any `eval`'s figures as JSON.

The recipe's settings are options (`--max-tokens`, `--ngrams`, `--label-smoothing`,
`--ensemble-size`, `--hidden-units`, `--dropout`...). `python -m training.classifier_study`
compares candidate settings by cross-validation on a training part; the defaults are what that
study and the held-out checks support (docs/models.md), never chosen on a test set.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import layers
from scipy.stats import binomtest, norm
from sklearn.feature_extraction.text import TfidfVectorizer as SklearnTfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.svm import LinearSVC

from modelkit.text import ANALYZERS, NGRAMS, VECTORIZER_FILE, TfidfVectorizer
from modelkit.versions import PARITY_SAMPLES, VersionWriter
from training.data import DEFAULT_MODELS_DIR, default_data_path, fingerprint
from training.plots import plot_history

MODEL_NAME = "classifier"
CSV_FILENAME = "bbc_news.csv"
TEXT_COLUMN, CATEGORY_COLUMN = "text", "category"
CV_FOLDS = 5
CV_RANDOM_STATE = 0
# The held-out splits of docs/models.md: 70 % of the texts to train on, 30 % to test.
SPLIT_TEST_SIZE = 0.3
BASELINE_NAME = "TfidfVectorizer(sublinear_tf=True) + LinearSVC"
LOGISTIC_NAME = "TfidfVectorizer(sublinear_tf=True) + LogisticRegression"
PROJECT_NAME = "project (tf-idf + dense)"


# The defaults are version 2's recipe. `training.classifier_study` compared the other settings
# by cross-validation; none was confirmed better on held-out splits (docs/models.md).
@dataclass(frozen=True)
class TrainingConfig:
    max_tokens: int = 10_000
    min_df: int = 1
    # "chi2" keeps the max_tokens words that best tell the categories apart (fitted on the
    # training texts only); "document_frequency" the most frequent ones.
    vocabulary_selection: str = "chi2"
    # 1: words; 2: words and pairs of adjacent words, chosen together within max_tokens.
    ngrams: int = 1
    # "word": the tokens are the terms; "char_wb": the character 3- to 5-grams of each token
    # (spelling and parts of words, for short texts; docs/models.md, the fourth round).
    analyzer: str = "word"
    hidden_units: int = 64
    # A linear path from the tf-idf straight to the logits, added to the hidden layer's (wide
    # & deep): the network is then at least a linear classifier over every word.
    wide: bool = False
    # Dropout on the tf-idf input drops whole words, a strong regularizer for small corpora.
    input_dropout: float = 0.0
    dropout: float = 0.5
    # L2 penalty on the dense layers' weights (weight decay; 0: off): the margin-keeping
    # regularizer of LinearSVC and logistic regression, which dropout alone does not give.
    l2: float = 0.0
    learning_rate: float = 3e-3
    # Momentum of an exponential moving average of the weights, which replaces them at the end
    # of training (0: off): an ensemble of the last steps at the cost of one network.
    weight_averaging: float = 0.0
    # Targets (1 - s) on the true category and s / C spread over all C: keeps the network from
    # driving its logits apart on a corpus it can fit exactly.
    label_smoothing: float = 0.0
    # "cross_entropy", or "squared_hinge": one category against the rest on the logits, the
    # margin loss of LinearSVC (the softmax is then added for serving only).
    loss: str = "cross_entropy"
    # Networks trained from consecutive seeds (each with its own validation part), published
    # as one model whose output is the mean of their probabilities.
    ensemble_size: int = 1
    batch_size: int = 32
    epochs: int = 40
    patience: int = 5
    validation_fraction: float = 0.1
    # Train again on all texts (validation part included) for the early-stopped epoch count.
    refit_on_all_data: bool = True


@dataclass(frozen=True)
class NewsDataset:
    texts: list[str]
    categories: list[str]
    path: Path
    # Which rows of `path` these are, when not all of them (a part of a held-out split).
    part: str = ""

    @property
    def name(self) -> str:
        return f"{self.path.name} ({self.part})" if self.part else self.path.name

    @property
    def labels(self) -> list[str]:
        """The category names in index order."""
        return sorted(set(self.categories))

    @property
    def label_ids(self) -> np.ndarray:
        index = {label: i for i, label in enumerate(self.labels)}
        return np.array([index[category] for category in self.categories], dtype=np.int64)

    def fingerprint(self) -> dict[str, Any]:
        counts = dict(zip(*np.unique(self.categories, return_counts=True), strict=True))
        sizes = {"texts": len(self.texts), "per_category": {k: int(v) for k, v in counts.items()}}
        block = fingerprint(self.path, source=f"{self.path.name} (text,category CSV)", sizes=sizes)
        return {**block, "part": self.part} if self.part else block


def read_news_csv(path: str | Path | None = None) -> NewsDataset:
    """The `text` and `category` columns of a CSV (default: the shared bbc_news.csv)."""
    if path is None:
        path = default_data_path(CSV_FILENAME)
        if path is None:
            raise FileNotFoundError(f"no ../shared/data/{CSV_FILENAME}; pass --data PATH")
    path = Path(path)
    csv.field_size_limit(sys.maxsize)  # whole articles live in one field
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {TEXT_COLUMN, CATEGORY_COLUMN} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path} lacks the column(s) {sorted(missing)}")
        rows = [(row[TEXT_COLUMN], row[CATEGORY_COLUMN].strip()) for row in reader]
    rows = [(text, category) for text, category in rows if text.strip() and category]
    if len({category for _, category in rows}) < 2:
        raise ValueError(f"{path} needs texts of at least two categories")
    texts, categories = (list(column) for column in zip(*rows, strict=True))
    return NewsDataset(texts=texts, categories=categories, path=path)


def build_model(
    vocabulary_size: int, n_labels: int, config: TrainingConfig, name: str = "news_classifier"
) -> keras.Model:
    tfidf = keras.Input(shape=(vocabulary_size,), name="tfidf")
    # Serving ignores the penalty; it only shapes training (and is absent from the ONNX graph).
    dense = functools.partial(
        layers.Dense, kernel_regularizer=keras.regularizers.L2(config.l2) if config.l2 else None
    )
    words = layers.Dropout(config.input_dropout)(tfidf)
    x = dense(config.hidden_units, activation="relu")(words)
    x = layers.Dropout(config.dropout)(x)
    if not config.wide and config.loss == "cross_entropy":
        probabilities = dense(n_labels, activation="softmax", name="probabilities")(x)
        return keras.Model(tfidf, probabilities, name=name)
    if config.wide:
        # Wide & deep: a linear path from the tf-idf to the logits beside the hidden layer.
        logits = layers.Add(name="logits")(
            [dense(n_labels, name="deep")(x), dense(n_labels, name="wide")(words)]
        )
    else:
        logits = dense(n_labels, name="logits")(x)
    if config.loss == "squared_hinge":
        # Trained on the logits; `with_probabilities` adds the softmax for serving.
        return keras.Model(tfidf, logits, name=name)
    probabilities = layers.Activation("softmax", name="probabilities")(logits)
    return keras.Model(tfidf, probabilities, name=name)


def with_probabilities(model: keras.Model, config: TrainingConfig) -> keras.Model:
    """The served form of a trained network: a softmax over its logits where it was trained
    on them (the squared hinge), the network itself otherwise."""
    if config.loss != "squared_hinge":
        return model
    probabilities = layers.Activation("softmax", name="probabilities")(model.output)
    return keras.Model(model.input, probabilities, name=model.name)


def build_ensemble(members: list[keras.Model], vocabulary_size: int) -> keras.Model:
    """One model whose output is the mean of the members' probabilities: one ONNX graph, one
    call per batch in the service."""
    if len(members) == 1:
        return members[0]
    tfidf = keras.Input(shape=(vocabulary_size,), name="tfidf")
    probabilities = layers.Average(name="probabilities")([member(tfidf) for member in members])
    return keras.Model(tfidf, probabilities, name="news_classifier_ensemble")


@dataclass
class FittedClassifier:
    vectorizer: TfidfVectorizer
    members: list[keras.Model]
    # The early-stopping run of each member, in member order.
    histories: list[dict[str, list[float]]]

    @property
    def model(self) -> keras.Model:
        """The published model: the one member, or the members' mean."""
        return build_ensemble(self.members, self.vectorizer.size)

    def predict(self, texts: list[str]) -> np.ndarray:
        """Class probabilities [N, C], the training-side path: vectorizer + Keras model."""
        return self.member_probabilities(texts).mean(axis=0)

    def member_probabilities(self, texts: list[str]) -> np.ndarray:
        """Each member's class probabilities, [members, N, C]."""
        features = self.vectorizer.transform(texts)
        return np.stack([np.asarray(m(features, training=False)) for m in self.members])

    @property
    def history(self) -> dict[str, list[float]]:
        """The first member's early-stopping run (the training curves)."""
        return self.histories[0]

    @property
    def best_epochs(self) -> list[int]:
        return [_best_epoch(history) for history in self.histories]

    @property
    def best_epoch(self) -> int:
        return self.best_epochs[0]


def _best_epoch(history: dict[str, list[float]]) -> int:
    return int(np.argmin(history["val_loss"])) + 1 if "val_loss" in history else 0


def compiled_model(
    vocabulary_size: int, n_labels: int, config: TrainingConfig, name: str = "news_classifier"
) -> keras.Model:
    model = build_model(vocabulary_size, n_labels, config, name)
    model.compile(
        optimizer=keras.optimizers.Adam(
            config.learning_rate,
            # At the end of fit, the weights become their moving average over the steps.
            use_ema=config.weight_averaging > 0,
            ema_momentum=config.weight_averaging or 0.99,
        ),
        # One-hot targets, so that label smoothing applies (0 gives plain cross-entropy);
        # the squared hinge reads them as +1 / -1, one category against the rest (LinearSVC's
        # loss, on the network's logits).
        loss=(
            keras.losses.SquaredHinge()
            if config.loss == "squared_hinge"
            else keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)
        ),
        metrics=["accuracy"],
    )
    return model


def fit_features(
    texts: list[str], label_ids: np.ndarray, config: TrainingConfig
) -> tuple[TfidfVectorizer, np.ndarray]:
    """The recipe's vectorizer fitted on `texts` (the labels only for chi2), and their
    features."""
    vectorizer = TfidfVectorizer(
        max_tokens=config.max_tokens,
        min_df=config.min_df,
        selection=config.vocabulary_selection,
        ngrams=config.ngrams,
        analyzer=config.analyzer,
    )
    supervised = config.vocabulary_selection == "chi2"
    return vectorizer, vectorizer.fit_transform(texts, label_ids if supervised else None)


def fit_classifier(
    texts: list[str],
    label_ids: np.ndarray,
    n_labels: int,
    config: TrainingConfig,
    *,
    seed: int,
    verbose: int | str = "auto",
) -> FittedClassifier:
    """Fit the vectorizer on `texts`, then `config.ensemble_size` networks (seeds seed,
    seed + 1, ...).

    Each network first trains on all but a stratified validation part (drawn with its own
    seed), with early stopping and the best epoch's weights kept; with
    `config.refit_on_all_data` it is then trained afresh on every text for that best number of
    epochs.
    """
    if config.ensemble_size < 1:
        raise ValueError("ensemble_size must be at least 1")
    for name in ("label_smoothing", "weight_averaging", "validation_fraction"):
        if not 0 <= getattr(config, name) < 1:
            raise ValueError(f"{name} must be in [0, 1), got {getattr(config, name)}")
    if config.l2 < 0:
        raise ValueError(f"l2 must be at least 0, got {config.l2}")
    vectorizer, features = fit_features(texts, label_ids, config)
    targets = keras.utils.to_categorical(label_ids, n_labels)
    members, histories = [], []
    for index in range(config.ensemble_size):
        member, history = _fit_member(
            features,
            label_ids,
            targets,
            config,
            seed=seed + index,
            verbose=verbose,
            name="news_classifier" if config.ensemble_size == 1 else f"member_{index}",
        )
        members.append(member)
        histories.append(history)
    return FittedClassifier(vectorizer, members, histories)


def _fit_member(
    features: np.ndarray,
    label_ids: np.ndarray,
    targets: np.ndarray,
    config: TrainingConfig,
    *,
    seed: int,
    verbose: int | str,
    name: str,
) -> tuple[keras.Model, dict[str, list[float]]]:
    """One network: early stopping on a validation part, then (with refit_on_all_data) a
    fresh network on every text for the best epoch count; or, with validation_fraction 0,
    exactly config.epochs on every text."""

    def fit(
        x: np.ndarray, y: np.ndarray, epochs: int, **options: Any
    ) -> tuple[keras.Model, dict[str, list[float]]]:
        keras.utils.set_random_seed(seed)
        model = compiled_model(features.shape[1], targets.shape[1], config, name)
        history = model.fit(
            x, y, epochs=epochs, batch_size=config.batch_size, shuffle=True, verbose=verbose,
            **options,
        )  # fmt: skip
        return model, {key: [float(v) for v in values] for key, values in history.history.items()}

    if config.validation_fraction == 0:
        model, history = fit(features, targets, config.epochs)
        return with_probabilities(model, config), history
    # At least one validation text per category, so that small CSVs train too.
    validation_size = max(targets.shape[1], math.ceil(config.validation_fraction * len(features)))
    train_x, validation_x, train_y, validation_y = train_test_split(
        features,
        targets,
        test_size=validation_size,
        stratify=label_ids,
        random_state=seed,
    )
    with tempfile.TemporaryDirectory(prefix="classifier-checkpoint-") as checkpoint_dir:
        checkpoint = Path(checkpoint_dir) / "best.weights.h5"
        model, history = fit(
            train_x,
            train_y,
            config.epochs,
            validation_data=(validation_x, validation_y),
            callbacks=[
                keras.callbacks.ModelCheckpoint(
                    checkpoint, monitor="val_loss", save_best_only=True, save_weights_only=True
                ),
                keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience),
            ],
        )
        model.load_weights(checkpoint)
    if config.refit_on_all_data:
        model, _ = fit(features, targets, _best_epoch(history))
    return with_probabilities(model, config), history


def baseline_predictions(
    train_texts: list[str],
    train_labels: np.ndarray,
    test_texts: list[str],
    classifier: str = "linear_svc",
) -> np.ndarray:
    """scikit-learn's sublinear tf-idf with LinearSVC or logistic regression, both at their
    defaults: what a user would try first, and the bar the recipe is held to."""
    model = (
        LinearSVC(random_state=CV_RANDOM_STATE)
        if classifier == "linear_svc"
        else LogisticRegression(max_iter=1000)
    )
    pipeline = make_pipeline(SklearnTfidfVectorizer(sublinear_tf=True), model)
    return pipeline.fit(train_texts, train_labels).predict(test_texts)


class UnseenCategoriesError(ValueError):
    """The test set has categories that the training set lacks."""


def held_out_label_ids(train_set: NewsDataset, test_set: NewsDataset) -> np.ndarray:
    """The test set's categories as indices into the training set's labels; a category that
    training lacks is refused (UnseenCategoriesError)."""
    labels = train_set.labels
    unseen = sorted(set(test_set.categories) - set(labels))
    if unseen:
        raise UnseenCategoriesError(
            f"{test_set.name} has categories that {train_set.name} lacks: {', '.join(unseen)};"
            " a model trained on it can never predict them (drop those rows, or add training"
            " texts of them)"
        )
    index = {label: i for i, label in enumerate(labels)}
    return np.array([index[category] for category in test_set.categories], dtype=np.int64)


def held_out_evaluate(
    train_set: NewsDataset,
    test_set: NewsDataset,
    config: TrainingConfig,
    *,
    seed: int,
    verbose: int | str = 0,
) -> tuple[dict[str, Any], FittedClassifier]:
    """Fit the procedure on ``train_set`` only; score it and both baselines on ``test_set``."""
    labels = train_set.labels
    truth = held_out_label_ids(train_set, test_set)
    fitted = fit_classifier(
        train_set.texts, train_set.label_ids, len(labels), config, seed=seed, verbose=verbose
    )
    predictions = {
        PROJECT_NAME: np.argmax(fitted.predict(test_set.texts), axis=1),
        BASELINE_NAME: baseline_predictions(
            train_set.texts, train_set.label_ids, test_set.texts, "linear_svc"
        ),
        LOGISTIC_NAME: baseline_predictions(
            train_set.texts, train_set.label_ids, test_set.texts, "logistic_regression"
        ),
    }
    scores = {
        name: {
            "accuracy": float(accuracy_score(truth, predicted)),
            "macro_f1": float(f1_score(truth, predicted, average="macro")),
        }
        for name, predicted in predictions.items()
    }
    confusion = confusion_matrix(truth, predictions[PROJECT_NAME], labels=range(len(labels)))
    results = {
        "protocol": f"fitted on {train_set.name} ({len(train_set.texts)} texts) only;"
        f" scored once on {test_set.name} ({len(test_set.texts)} texts); the baselines"
        " fitted and scored on the same rows",
        "labels": labels,
        "test_data": test_set.fingerprint(),
        "models": scores,
        "confusion_matrix": confusion.tolist(),
        "confusion_matrix_note": "rows: true category, columns: predicted",
    }
    return results, fitted


def format_held_out_report(results: dict[str, Any]) -> str:
    """The held-out scores of the model and both baselines in one table, then the confusion
    matrix of the model."""
    lines = [_row(["model", "accuracy", "macro_f1"]), _row(["---"] * 3)]
    for name, scores in results["models"].items():
        lines.append(_row([name, f"{scores['accuracy']:.4f}", f"{scores['macro_f1']:.4f}"]))
    lines += _confusion_lines(results)
    project = results["models"][PROJECT_NAME]["accuracy"]
    best = max(v["accuracy"] for k, v in results["models"].items() if k != PROJECT_NAME)
    verdict = "meets" if project >= best else "misses"
    lines += ["", f"Held-out accuracy {verdict} the bar (>= both baselines)."]
    return "\n".join(lines)


def _confusion_lines(results: dict[str, Any]) -> list[str]:
    labels = results["labels"]
    lines = ["", f"Confusion matrix of the project model ({results['confusion_matrix_note']}):"]
    lines += ["", _row(["true \\ predicted", *labels]), _row(["---"] * (len(labels) + 1))]
    for label, counts in zip(labels, results["confusion_matrix"], strict=True):
        lines.append(_row([label, *map(str, counts)]))
    return lines


def split_dataset(
    dataset: NewsDataset, random_state: int, test_size: float = SPLIT_TEST_SIZE
) -> tuple[NewsDataset, NewsDataset]:
    """A stratified train/test split of the rows: scikit-learn's `train_test_split` with this
    `random_state`, so the same rows as splitting the CSV's rows by it (docs/models.md)."""
    train_rows, test_rows = train_test_split(
        np.arange(len(dataset.texts)),
        test_size=test_size,
        stratify=dataset.categories,
        random_state=random_state,
    )
    described = f"stratified {1 - test_size:.0%}/{test_size:.0%} split, random_state {random_state}"

    def part(name: str, rows: np.ndarray) -> NewsDataset:
        return NewsDataset(
            texts=[dataset.texts[i] for i in rows],
            categories=[dataset.categories[i] for i in rows],
            path=dataset.path,
            part=f"{name} part of the {described}",
        )

    return part("train", train_rows), part("test", test_rows)


def paired_comparison(differences: list[int]) -> dict[str, Any]:
    """How a model compares with the bar over held-out splits, from its per-split lead in
    correctly classified texts (negative: behind).

    The sign test (two-sided, ties left out) asks whether the model leads or trails more
    often than chance would make it. `lead_for_even_odds` reads the bar "at least level on
    every split" against the splits' noise: the mean lead per split that a model whose leads
    vary as these do would need to be level or ahead on all of them with probability 1/2
    (leads taken as normal with this standard deviation; a lead of 0 counts as level).
    """
    n = len(differences)
    wins = sum(d > 0 for d in differences)
    losses = sum(d < 0 for d in differences)
    decided = wins + losses
    std = float(np.std(differences, ddof=1)) if n > 1 else 0.0
    return {
        "splits": n,
        "ahead": wins,
        "level": n - decided,
        "behind": losses,
        "mean_lead": float(np.mean(differences)),
        "std_lead": std,
        "sign_test_p": float(binomtest(wins, decided, 0.5).pvalue) if decided else 1.0,
        # P(lead > -1/2) = 1/2 ** (1/n) on every one of n splits.
        "lead_for_even_odds": float(std * norm.ppf(0.5 ** (1 / n)) - 0.5) if std else None,
    }


def evaluate_splits(
    dataset: NewsDataset,
    config: TrainingConfig,
    random_states: list[int],
    *,
    seed: int,
    test_size: float = SPLIT_TEST_SIZE,
    verbose: int | str = 0,
) -> dict[str, Any]:
    """`held_out_evaluate` on each stratified split of `dataset`, then the model's lead over
    LinearSVC split by split and `paired_comparison` of those leads."""
    splits = []
    for random_state in random_states:
        train_set, test_set = split_dataset(dataset, random_state, test_size)
        results, _ = held_out_evaluate(train_set, test_set, config, seed=seed, verbose=verbose)
        n = len(test_set.texts)
        correct = {
            name: round(scores["accuracy"] * n) for name, scores in results["models"].items()
        }
        splits.append(
            {
                "random_state": random_state,
                "train_texts": len(train_set.texts),
                "test_texts": n,
                "models": results["models"],
                "lead": correct[PROJECT_NAME] - correct[BASELINE_NAME],
            }
        )
        print(
            f"split {random_state}: accuracy {results['models'][PROJECT_NAME]['accuracy']:.4f}"
            f" (baseline {results['models'][BASELINE_NAME]['accuracy']:.4f})",
            flush=True,
        )
    return {
        "protocol": f"for each random_state, a stratified split of {dataset.path.name}"
        f" ({len(dataset.texts)} texts, {test_size:.0%} to test); the procedure fitted on the"
        " training part only and scored once on the test part, beside both baselines fitted"
        " and scored on the same rows",
        "data": dataset.fingerprint(),
        "test_size": test_size,
        "splits": splits,
        "lead_over_baseline": paired_comparison([split["lead"] for split in splits]),
    }


def format_splits_report(results: dict[str, Any]) -> str:
    """One row per split (accuracy of the model and both baselines, the model's lead over
    LinearSVC in texts), their mean, then the paired comparison."""
    names = (PROJECT_NAME, BASELINE_NAME, LOGISTIC_NAME)
    lines = [_row(["split (random_state)", *names, "lead (texts)"]), _row(["---"] * 5)]
    for split in results["splits"]:
        accuracies = [f"{split['models'][name]['accuracy']:.4f}" for name in names]
        lines.append(_row([str(split["random_state"]), *accuracies, f"{split['lead']:+d}"]))
    means = [
        f"{np.mean([split['models'][name]['accuracy'] for split in results['splits']]):.4f}"
        for name in names
    ]
    comparison = results["lead_over_baseline"]
    lines.append(_row(["mean", *means, f"{comparison['mean_lead']:+.2f}"]))
    lines += [
        "",
        f"Against LinearSVC: ahead on {comparison['ahead']}, level on {comparison['level']},"
        f" behind on {comparison['behind']} of {comparison['splits']} splits; mean lead"
        f" {comparison['mean_lead']:+.2f} texts per split (std {comparison['std_lead']:.2f});"
        f" sign test p = {comparison['sign_test_p']:.3f}.",
    ]
    if comparison["lead_for_even_odds"] is not None:
        lines.append(
            f"Level or ahead on all {comparison['splits']} splits with even odds would take a"
            f" mean lead of about {comparison['lead_for_even_odds']:.1f} texts per split."
        )
    verdict = "meets" if comparison["behind"] == 0 else "misses"
    lines += [f"The model {verdict} the bar (>= LinearSVC on every split)."]
    return "\n".join(lines)


def summarize(accuracies: list[float], macro_f1s: list[float]) -> dict[str, Any]:
    """Per-fold scores with their mean and sample standard deviation."""
    return {
        "accuracy": accuracies,
        "macro_f1": macro_f1s,
        "mean_accuracy": float(np.mean(accuracies)),
        "std_accuracy": float(np.std(accuracies, ddof=1)),
        "mean_macro_f1": float(np.mean(macro_f1s)),
        "std_macro_f1": float(np.std(macro_f1s, ddof=1)),
    }


def cross_validate(
    dataset: NewsDataset,
    config: TrainingConfig,
    *,
    seed: int,
    folds: int = CV_FOLDS,
    verbose: int | str = 0,
) -> dict[str, Any]:
    """Stratified k-fold scores of this pipeline and of the LinearSVC baseline, same folds."""
    label_ids, labels = dataset.label_ids, dataset.labels
    texts = np.array(dataset.texts, dtype=object)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=CV_RANDOM_STATE)
    scores: dict[str, tuple[list[float], list[float]]] = {"project": ([], []), "baseline": ([], [])}
    confusion = np.zeros((len(labels), len(labels)), dtype=np.int64)
    epochs = []
    for fold, (train_index, test_index) in enumerate(splitter.split(texts, label_ids), start=1):
        train_texts, test_texts = list(texts[train_index]), list(texts[test_index])
        fitted = fit_classifier(
            train_texts, label_ids[train_index], len(labels), config, seed=seed, verbose=verbose
        )
        predictions = {
            "project": np.argmax(fitted.predict(test_texts), axis=1),
            "baseline": baseline_predictions(train_texts, label_ids[train_index], test_texts),
        }
        truth = label_ids[test_index]
        for name, predicted in predictions.items():
            scores[name][0].append(float(accuracy_score(truth, predicted)))
            scores[name][1].append(float(f1_score(truth, predicted, average="macro")))
        confusion += confusion_matrix(truth, predictions["project"], labels=range(len(labels)))
        epochs.append(fitted.best_epoch)
        print(
            f"fold {fold}/{folds}: accuracy {scores['project'][0][-1]:.4f} "
            f"(baseline {scores['baseline'][0][-1]:.4f}), best epoch {fitted.best_epoch}",
            flush=True,
        )
    return {
        "protocol": f"{folds}-fold StratifiedKFold(shuffle=True, random_state={CV_RANDOM_STATE})"
        f" on {dataset.path.name}; vectorizer and network fitted on the training folds only",
        "labels": labels,
        "project": {**summarize(*scores["project"]), "best_epochs": epochs},
        "baseline": {"name": BASELINE_NAME, **summarize(*scores["baseline"])},
        "confusion_matrix": confusion.tolist(),
        "confusion_matrix_note": "rows: true category, columns: predicted; summed over folds",
    }


def format_report(results: dict[str, Any]) -> str:
    """One markdown table of per-fold and mean ± std scores, then the confusion matrix."""
    project, baseline = results["project"], results["baseline"]
    folds = len(project["accuracy"])
    header = ["model", "metric", *(f"fold {i}" for i in range(1, folds + 1)), "mean ± std"]
    lines = [_row(header), _row(["---"] * len(header))]
    for name, scores in ((PROJECT_NAME, project), (baseline["name"], baseline)):
        for metric in ("accuracy", "macro_f1"):
            mean, std = scores[f"mean_{metric}"], scores[f"std_{metric}"]
            values = [f"{value:.4f}" for value in scores[metric]]
            lines.append(_row([name, metric, *values, f"{mean:.4f} ± {std:.4f}"]))
    lines += _confusion_lines(results)
    verdict = "meets" if project["mean_accuracy"] >= baseline["mean_accuracy"] else "misses"
    lines += ["", f"Mean accuracy {verdict} the bar (>= the LinearSVC baseline)."]
    return "\n".join(lines)


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def describe_loss(config: TrainingConfig) -> str:
    if config.loss == "squared_hinge":
        return "squared hinge, one category against the rest, on the logits"
    smoothing = config.label_smoothing
    return "categorical cross-entropy" + (f", label smoothing {smoothing}" if smoothing else "")


def describe_recipe(config: TrainingConfig) -> str:
    terms = "words" if config.ngrams == 1 else "words and word pairs"
    if config.analyzer == "char_wb":
        terms = "character 3- to 5-grams of words"
    network = f"dense {config.hidden_units} relu -> dropout -> softmax"
    if config.wide:
        network = f"(dense {config.hidden_units} relu -> dropout) + a linear path -> softmax"
    if config.ensemble_size > 1:
        network = f"the mean of {config.ensemble_size} networks ({network})"
    return f"News-topic classifier: tf-idf over up to {config.max_tokens:,} {terms} -> {network}."


def export_classifier(
    fitted: FittedClassifier,
    dataset: NewsDataset,
    config: TrainingConfig,
    *,
    seed: int,
    out: Path,
    metrics: dict[str, Any],
    sparse_input: str = "auto",
) -> Path:
    """Publish the Keras/ONNX model, vectorizer.json, curves and metadata as a new version.
    `sparse_input`: "true", "false" or "auto" (see `wants_sparse_input`)."""
    rng = np.random.default_rng(seed)
    sample = rng.choice(len(dataset.texts), PARITY_SAMPLES, replace=len(dataset.texts) < 32)
    labels = dataset.labels
    with VersionWriter(out, MODEL_NAME) as version:
        version.export(
            fitted.model,
            stem="model",
            signature="serving_default",
            inputs=[
                {
                    "name": "tfidf",
                    "dtype": "float32",
                    "shape": [None, fitted.vectorizer.size],
                    "meaning": f"tf-idf features of each text, made by {VECTORIZER_FILE}",
                }
            ],
            outputs=[
                {
                    "name": "probabilities",
                    "dtype": "float32",
                    "shape": [None, len(labels)],
                    "meaning": "softmax over the categories, in the order of `labels`",
                }
            ],
            # And a text with no vocabulary term: an all-zero row, which a sparse first layer
            # must give the dense network's answer for too.
            sample_inputs=fitted.vectorizer.transform([*(dataset.texts[i] for i in sample), ""]),
            sparse_input=wants_sparse_input(
                sparse_input, fitted.vectorizer.size, config, len(labels)
            ),
        )
        fitted.vectorizer.save(version.path / VECTORIZER_FILE)
        plot_history(fitted.history, version.path / "training_curves.png", "News classifier")
        version.metadata.update(
            task="text-classification",
            description=describe_recipe(config),
            labels=labels,
            preprocessing=fitted.vectorizer.describe(),
            training_data=dataset.fingerprint(),
            hyperparameters={
                **asdict(config),
                "seed": seed,
                "optimizer": "adam",
                "loss": describe_loss(config),
                "early_stopping": (
                    f"val_loss, patience {config.patience}; best epoch's weights"
                    if config.validation_fraction
                    else f"none: {config.epochs} epochs on every text"
                ),
            },
            metrics=metrics,
        )
    return version.path


# "auto" exports a sparse first layer from twice version 2's first layer (10,000 x 64) up. At
# version 2's size it saves 7-10% per short text and costs 28% more per whole article at batch
# 32; at three times that size (3 networks) the dense product costs 1.88-2.00x version 2's time
# per short text, the sparse layer 0.99-1.12x (docs/benchmarks.md, "Sparse first layer").
SPARSE_INPUT_MIN_WEIGHTS = 2 * 10_000 * 64
SPARSE_INPUT_CHOICES = ("auto", "true", "false")


def first_layer_weights(vocabulary_size: int, config: TrainingConfig, n_labels: int) -> int:
    """How many weights read the tf-idf row: every network's hidden layer, and its wide path."""
    units = config.hidden_units + (n_labels if config.wide else 0)
    return vocabulary_size * units * config.ensemble_size


def wants_sparse_input(
    setting: str, vocabulary_size: int, config: TrainingConfig, n_labels: int
) -> bool:
    """Whether to export the first layer as a gather of the non-zero terms
    (`modelkit.sparse_input`): the same outputs, a cost that follows the texts' terms instead of
    the layer's size. "auto": when the layer has at least SPARSE_INPUT_MIN_WEIGHTS weights."""
    if setting not in SPARSE_INPUT_CHOICES:
        raise ValueError(f"sparse_input must be one of {SPARSE_INPUT_CHOICES}, not {setting!r}")
    if setting != "auto":
        return setting == "true"
    return first_layer_weights(vocabulary_size, config, n_labels) >= SPARSE_INPUT_MIN_WEIGHTS


def vocabulary_line(vectorizer: TfidfVectorizer) -> str:
    """How much of the corpus's vocabulary the model reads: a cap that leaves out many useful
    terms costs accuracy on some corpora (docs/models.md, the outside corpus)."""
    kept = f"vocabulary: {vectorizer.size:,} terms"
    if vectorizer.candidate_terms is None:
        return kept
    return (
        f"{kept} of the {vectorizer.candidate_terms:,} in the training texts"
        f" (--max-tokens {vectorizer.max_tokens}, --vocabulary-selection {vectorizer.selection})"
    )


def train(
    dataset: NewsDataset,
    config: TrainingConfig,
    *,
    seed: int,
    out: Path,
    folds: int = CV_FOLDS,
    test_set: NewsDataset | None = None,
    verbose: int | str = "auto",
    sparse_input: str = "auto",
) -> Path:
    """Cross-validate the procedure (or, with a test set, score it there), fit it on the whole
    training CSV, publish a version; its path. `sparse_input`: whether the ONNX graph's first
    layer reads only the non-zero tf-idf entries ("true", "false", "auto")."""
    tf.config.experimental.enable_op_determinism()
    metrics: dict[str, Any] = {}
    started = time.monotonic()
    if test_set is not None:
        # The published model is the one scored: fitted on the training CSV, never on TEST.
        metrics["held_out"], fitted = held_out_evaluate(
            dataset, test_set, config, seed=seed, verbose=verbose
        )
        print(format_held_out_report(metrics["held_out"]))
    else:
        if folds:
            metrics["cross_validation"] = cross_validate(dataset, config, seed=seed, folds=folds)
            print(format_report(metrics["cross_validation"]))
        started = time.monotonic()
        fitted = fit_classifier(
            dataset.texts,
            dataset.label_ids,
            len(dataset.labels),
            config,
            seed=seed,
            verbose=verbose,
        )
    print(vocabulary_line(fitted.vectorizer))
    metrics["final_training"] = {
        "epochs_run": len(fitted.history["loss"]),
        "training_seconds": round(time.monotonic() - started, 1),
    }
    if "val_loss" in fitted.history:  # early stopping ran (validation_fraction > 0)
        best = fitted.best_epoch - 1
        metrics["final_training"].update(
            best_epoch=fitted.best_epoch,
            best_epochs=fitted.best_epochs,
            validation_accuracy=fitted.history["val_accuracy"][best],
            validation_loss=fitted.history["val_loss"][best],
        )
    return export_classifier(
        fitted, dataset, config, seed=seed, out=out, metrics=metrics, sparse_input=sparse_input
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m training.classifier", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for command in ("train", "eval"):
        sub = commands.add_parser(command)
        sub.add_argument("--data", type=Path, help=f"a text,category CSV (default {CSV_FILENAME})")
        sub.add_argument(
            "--test",
            type=Path,
            help="a held-out text,category CSV: fit on --data, score here (no cross-validation)",
        )
        sub.add_argument("--seed", type=int, default=1337)
        sub.add_argument(
            "--folds", type=int, default=CV_FOLDS, help="cross-validation folds; train: 0 skips it"
        )
        recipe = sub.add_argument_group("recipe (defaults chosen by cross-validation on BBC News)")
        for name, help_text in RECIPE_OPTIONS.items():
            default = getattr(TrainingConfig, name)
            recipe.add_argument(
                "--" + name.replace("_", "-"),
                type=_option_type(default),
                default=default,
                choices=RECIPE_CHOICES.get(name),
                help=f"{help_text} (default {default})",
            )
    commands.choices["train"].add_argument("--out", type=Path, default=DEFAULT_MODELS_DIR)
    commands.choices["train"].add_argument(
        "--sparse-input",
        choices=SPARSE_INPUT_CHOICES,
        default="auto",
        help="true: the ONNX model's first layer reads only the non-zero tf-idf entries (the"
        " same outputs; its cost follows the texts' terms, not the layer's size); false: the"
        " dense product; auto: sparse from twice version 2's first layer up (default auto)",
    )
    evaluate = commands.choices["eval"]
    evaluate.add_argument(
        "--splits",
        type=int,
        nargs="+",
        metavar="RANDOM_STATE",
        help="held-out splits of --data instead of cross-validation: for each random_state a"
        " stratified split, the model and both baselines scored on its test part, then a"
        " paired comparison with LinearSVC over the splits",
    )
    evaluate.add_argument(
        "--test-size",
        type=float,
        default=SPLIT_TEST_SIZE,
        help=f"with --splits: the share of the texts to test on (default {SPLIT_TEST_SIZE})",
    )
    evaluate.add_argument("--results", type=Path, help="also write the figures here, as JSON")
    args = parser.parse_args(argv)
    if args.command == "eval":
        if args.splits and args.test is not None:
            parser.error("--splits makes its own test parts; it cannot be combined with --test")
        if not 0 < args.test_size < 1:
            parser.error(f"--test-size must be between 0 and 1, got {args.test_size}")

    config = TrainingConfig(**{name: getattr(args, name) for name in RECIPE_OPTIONS})
    try:
        dataset = read_news_csv(args.data)
        test_set = read_news_csv(args.test) if args.test is not None else None
        if args.command == "train":
            path = train(
                dataset,
                config,
                seed=args.seed,
                out=args.out,
                folds=args.folds,
                test_set=test_set,
                sparse_input=args.sparse_input,
            )
            print(f"published {path}")
            return
        tf.config.experimental.enable_op_determinism()
        if args.splits:
            results = evaluate_splits(
                dataset, config, args.splits, seed=args.seed, test_size=args.test_size
            )
            print(format_splits_report(results))
        elif test_set is not None:
            results, fitted = held_out_evaluate(dataset, test_set, config, seed=args.seed)
            print(format_held_out_report(results))
            print(vocabulary_line(fitted.vectorizer))
        else:
            results = cross_validate(dataset, config, seed=args.seed, folds=args.folds)
            print(format_report(results))
        if args.results is not None:
            args.results.write_text(json.dumps(results, indent=2) + "\n")
    except (ValueError, FileNotFoundError) as error:
        parser.exit(2, f"error: {error}\n")


VOCABULARY_SELECTIONS = ("chi2", "document_frequency")
RECIPE_CHOICES: dict[str, tuple[Any, ...]] = {
    "vocabulary_selection": VOCABULARY_SELECTIONS,
    "ngrams": NGRAMS,
    "analyzer": ANALYZERS,
    "loss": ("cross_entropy", "squared_hinge"),
}
# The recipe's settings on the command line: TrainingConfig's field -> what it does.
RECIPE_OPTIONS: dict[str, str] = {
    "epochs": "most epochs (early stopping on the validation loss ends sooner)",
    "max_tokens": "vocabulary size",
    "vocabulary_selection": "chi2 (the words that best tell categories apart) or"
    " document_frequency",
    "ngrams": "1: words; 2: words and pairs of adjacent words, chosen together within --max-tokens",
    "analyzer": "word: the terms are words; char_wb: the character 3- to 5-grams of each word"
    " (for short texts; raise --max-tokens with it)",
    "hidden_units": "units of the dense layer",
    "wide": "add a linear path from the tf-idf to the logits (wide & deep): true or false",
    "dropout": "dropout after the dense layer",
    "input_dropout": "dropout on the tf-idf input (drops whole words)",
    "l2": "L2 penalty on the dense layers' weights (0: off)",
    "learning_rate": "Adam's learning rate",
    "label_smoothing": "label smoothing of the cross-entropy targets",
    "loss": "cross_entropy, or squared_hinge (one category against the rest, on the logits)",
    "weight_averaging": "momentum of the weights' moving average kept as the final weights"
    " (0: off)",
    "ensemble_size": "networks trained from consecutive seeds, published as their mean",
    "batch_size": "batch size",
    "validation_fraction": "share of the texts held out for early stopping (0: none, train"
    " --epochs on every text)",
    "patience": "early stopping's patience, in epochs",
}


def _option_type(default: object) -> Callable[[str], Any]:
    if isinstance(default, bool):  # before int: bool("false") would be True
        return _boolean
    return type(default) if isinstance(default, int | float | str) else str


def _boolean(value: str) -> bool:
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


if __name__ == "__main__":
    main()
