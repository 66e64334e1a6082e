"""The classifier's recipe study: candidate settings compared by cross-validation, seeds apart.

    python -m training.classifier_study --data bbc_train_0.csv --out study.json
    python -m training.classifier_study --data news.csv --candidates v2 bigrams --seeds 3
    python -m training.classifier_study --linear-probe --data train.csv [--test test.csv] ...

Each candidate is `TrainingConfig` with a few settings changed (`CANDIDATES`). On the same
stratified folds as `python -m training.classifier eval` (5, shuffled, random_state 0) it
fits `--seeds` networks per fold (seeds 1337, 1338, ...: `ensemble_size` = `--seeds`, so one
vectorizer per fold) and scores on the held-out fold:

  * each network alone (the mean over seeds of the CV-mean accuracy, and its spread across
    seeds: how much a single training run's score owes to its seed);
  * the mean of the first 2 and 3 networks' probabilities and of all of them (ensembles);
  * LinearSVC on scikit-learn's sublinear tf-idf, the bar, on the same folds.

Run it on a training part only, never on the texts of a test set you will report: the
defaults it picks are then judged on data they were not chosen on (docs/models.md). Results
are written to `--out` after every candidate, so an interrupted study keeps what it measured.

`--linear-probe` trains no network. It asks whether a gap to LinearSVC lies in the features
or in the network: LinearSVC and a weakly regularised logistic regression (C = 100, a linear
softmax fitted close to convergence) are fitted on each candidate's own features
(`modelkit.text`, its vocabulary settings) and scored beside the baseline. Scoring uses the
same folds, or `--test` when it is given.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import LinearSVC

from training.classifier import (
    CV_FOLDS,
    CV_RANDOM_STATE,
    NewsDataset,
    TrainingConfig,
    baseline_predictions,
    fit_classifier,
    fit_features,
    held_out_label_ids,
    read_news_csv,
)

SEED = 1337
# The candidates of the study in docs/models.md: name -> the settings that differ from
# BASE_CONFIG (version 2's recipe: 10,000 chi2-chosen words, dense 64, dropout 0.5, early
# stopping then a refit on all texts).
CANDIDATES: dict[str, dict[str, Any]] = {
    "v2": {},
    "smoothing": {"label_smoothing": 0.1},
    "bigrams": {"ngrams": 2},
    "bigrams+smoothing": {"ngrams": 2, "label_smoothing": 0.1},
    "bigrams 20k": {"ngrams": 2, "max_tokens": 20_000},
    "words 20k": {"max_tokens": 20_000},
    "wide": {"wide": True},
    "smoothing 0.2": {"label_smoothing": 0.2},
    "smoothing+hidden 128": {"label_smoothing": 0.1, "hidden_units": 128},
    "bigrams+smoothing 0.2": {"ngrams": 2, "label_smoothing": 0.2},
    # No early stopping: a fixed number of epochs on every text.
    **{
        f"bigrams+smoothing, {epochs} epochs": {
            "ngrams": 2,
            "label_smoothing": 0.1,
            "validation_fraction": 0.0,
            "epochs": epochs,
        }
        for epochs in (10, 20)
    },
    "bigrams+smoothing, 20 epochs, weight average": {
        "ngrams": 2,
        "label_smoothing": 0.1,
        "validation_fraction": 0.0,
        "epochs": 20,
        "weight_averaging": 0.99,
    },
    # LinearSVC's loss on the network's logits (label smoothing does not apply).
    "bigrams+squared hinge": {"ngrams": 2, "loss": "squared_hinge"},
    "squared hinge": {"loss": "squared_hinge"},
    # Five small networks cost about what one of 80 units does.
    "bigrams+smoothing, 16 units": {"ngrams": 2, "label_smoothing": 0.1, "hidden_units": 16},
    # Weight decay (an L2 penalty on the weights), the regularizer of the linear baselines.
    **{
        f"bigrams+smoothing+l2 {l2:g}": {"ngrams": 2, "label_smoothing": 0.1, "l2": l2}
        for l2 in (1e-5, 1e-4, 1e-3, 3e-3, 1e-2)
    },
    "smoothing+l2 0.001": {"label_smoothing": 0.1, "l2": 1e-3},
    # Trained to convergence rather than stopped at the lowest validation loss: a linear
    # softmax fitted that way (logistic regression, C = 100) comes within an article of
    # LinearSVC on these words (docs/models.md, second round).
    **{
        f"words, {epochs} epochs": {"validation_fraction": 0.0, "epochs": epochs}
        for epochs in (30, 60)
    },
    "wide, 30 epochs": {"wide": True, "validation_fraction": 0.0, "epochs": 30},
    "smoothing, 30 epochs": {"label_smoothing": 0.1, "validation_fraction": 0.0, "epochs": 30},
    # Character 3- to 5-grams of the words, every one the training texts have (fourth round).
    "chars": {"analyzer": "char_wb", "max_tokens": 200_000},
}
BASE_CONFIG = TrainingConfig(
    max_tokens=10_000,
    vocabulary_selection="chi2",
    ngrams=1,
    hidden_units=64,
    wide=False,
    input_dropout=0.0,
    dropout=0.5,
    label_smoothing=0.0,
    loss="cross_entropy",
)


def study_candidate(
    texts: np.ndarray,
    label_ids: np.ndarray,
    n_labels: int,
    config: TrainingConfig,
    *,
    folds: int,
) -> dict[str, Any]:
    """Per-fold accuracies of each seed's network, of 2-, 3- and all-seed means, of LinearSVC."""
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=CV_RANDOM_STATE)
    members: list[list[float]] = []  # [fold][seed]
    ensemble_2: list[float] = []
    ensemble_3: list[float] = []
    ensemble_all: list[float] = []
    baseline: list[float] = []
    epochs: list[list[int]] = []
    for train_index, test_index in splitter.split(texts, label_ids):
        train_texts, test_texts = list(texts[train_index]), list(texts[test_index])
        fitted = fit_classifier(
            train_texts, label_ids[train_index], n_labels, config, seed=SEED, verbose=0
        )
        truth = label_ids[test_index]
        probabilities = fitted.member_probabilities(test_texts)  # [seeds, N, C]
        members.append([accuracy_score(truth, p.argmax(axis=1)) for p in probabilities])
        ensemble_2.append(accuracy_score(truth, probabilities[:2].mean(axis=0).argmax(axis=1)))
        ensemble_3.append(accuracy_score(truth, probabilities[:3].mean(axis=0).argmax(axis=1)))
        ensemble_all.append(accuracy_score(truth, probabilities.mean(axis=0).argmax(axis=1)))
        baseline.append(
            accuracy_score(
                truth, baseline_predictions(train_texts, label_ids[train_index], test_texts)
            )
        )
        epochs.append(fitted.best_epochs)
        print(
            f"  fold {len(baseline)}/{folds}: seeds {np.round(members[-1], 4).tolist()},"
            f" mean of 2 {ensemble_2[-1]:.4f}, of 3 {ensemble_3[-1]:.4f},"
            f" of {len(probabilities)} {ensemble_all[-1]:.4f},"
            f" LinearSVC {baseline[-1]:.4f}",
            flush=True,
        )
    per_seed = np.mean(members, axis=0)  # the CV-mean accuracy of each seed
    return {
        "config": asdict(config),
        "fold_accuracy": {
            "per_seed": members,
            "ensemble_2": ensemble_2,
            "ensemble_3": ensemble_3,
            "ensemble_all": ensemble_all,
            "linear_svc": baseline,
        },
        "best_epochs": epochs,
        "single_network": {
            "mean_accuracy": float(per_seed.mean()),
            "seed_std": float(per_seed.std(ddof=1)) if len(per_seed) > 1 else 0.0,
            "seed_min": float(per_seed.min()),
            "seed_max": float(per_seed.max()),
        },
        "ensemble_2_accuracy": float(np.mean(ensemble_2)),
        "ensemble_3_accuracy": float(np.mean(ensemble_3)),
        "ensemble_all_accuracy": float(np.mean(ensemble_all)),
        "linear_svc_accuracy": float(np.mean(baseline)),
    }


PROBE_C = 100.0
PROBE_MODELS = {
    "baseline": "LinearSVC, scikit-learn's tf-idf",
    "linear_svc": "LinearSVC on its features",
    "logistic_c100": f"LogisticRegression C={PROBE_C:g} on its features",
}


def probe_predictions(
    train_texts: list[str], train_labels: np.ndarray, test_texts: list[str], config: TrainingConfig
) -> dict[str, np.ndarray]:
    """The test texts' predicted labels from the baseline and from both linear models on the
    candidate's features (keys of PROBE_MODELS)."""
    vectorizer, train_features = fit_features(train_texts, train_labels, config)
    test_features = vectorizer.transform(test_texts)
    return {
        "baseline": baseline_predictions(train_texts, train_labels, test_texts),
        "linear_svc": LinearSVC(random_state=CV_RANDOM_STATE)
        .fit(train_features, train_labels)
        .predict(test_features),
        "logistic_c100": LogisticRegression(C=PROBE_C, max_iter=5000)
        .fit(train_features, train_labels)
        .predict(test_features),
    }


def probe_candidate(
    dataset: NewsDataset, test_set: NewsDataset | None, config: TrainingConfig, *, folds: int
) -> dict[str, list[float]]:
    """Accuracy of each PROBE_MODELS entry per fold, or on `test_set` (one value each)."""
    if test_set is not None:
        truth = held_out_label_ids(dataset, test_set)
        splits = [(dataset.texts, dataset.label_ids, test_set.texts, truth)]
    else:
        texts = np.array(dataset.texts, dtype=object)
        labels = dataset.label_ids
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=CV_RANDOM_STATE)
        splits = [
            (list(texts[train]), labels[train], list(texts[test]), labels[test])
            for train, test in splitter.split(texts, labels)
        ]
    scores: dict[str, list[float]] = {name: [] for name in PROBE_MODELS}
    for train_texts, train_labels, test_texts, truth in splits:
        predicted = probe_predictions(train_texts, train_labels, test_texts, config)
        for name, labels_predicted in predicted.items():
            scores[name].append(float(accuracy_score(truth, labels_predicted)))
    return scores


def format_probe(results: dict[str, Any]) -> str:
    """One markdown row per candidate: the mean accuracy of each PROBE_MODELS entry."""
    lines = [
        "| candidate's features | " + " | ".join(PROBE_MODELS.values()) + " |",
        "| --- |" + " --- |" * len(PROBE_MODELS),
    ]
    for name, scores in results["candidates"].items():
        cells = [f"{np.mean(scores[model]):.4f}" for model in PROBE_MODELS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_study(results: dict[str, Any]) -> str:
    """One markdown row per candidate: single network (mean, seed range), ensembles, bar."""
    seeds = results["seeds"]
    lines = [
        f"| candidate | one network: mean (min–max over {seeds} seeds) | mean of 2 | mean of 3 |"
        f" mean of {seeds} | LinearSVC |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, result in results["candidates"].items():
        single = result["single_network"]
        lines.append(
            f"| {name} | {single['mean_accuracy']:.4f} ({single['seed_min']:.4f}–"
            f"{single['seed_max']:.4f}) | {result.get('ensemble_2_accuracy', float('nan')):.4f} |"
            f" {result['ensemble_3_accuracy']:.4f} |"
            f" {result['ensemble_all_accuracy']:.4f} | {result['linear_svc_accuracy']:.4f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m training.classifier_study", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--data", type=Path, help="a text,category CSV (a training part)")
    parser.add_argument("--out", type=Path, required=True, help="the results, as JSON")
    parser.add_argument("--candidates", nargs="+", choices=list(CANDIDATES), default=None)
    parser.add_argument("--seeds", type=int, default=5, help="networks per fold (default 5)")
    parser.add_argument("--folds", type=int, default=CV_FOLDS)
    parser.add_argument(
        "--threads", type=int, default=0, help="TensorFlow threads (default: all cores)"
    )
    parser.add_argument(
        "--linear-probe",
        action="store_true",
        help="no networks: LinearSVC and logistic regression on each candidate's features",
    )
    parser.add_argument(
        "--test", type=Path, help="with --linear-probe: score on this CSV instead of folds"
    )
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    if args.test is not None and not args.linear_probe:
        parser.error("--test needs --linear-probe (the network study cross-validates)")
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    tf.config.experimental.enable_op_determinism()
    try:
        dataset = read_news_csv(args.data)
        if args.linear_probe:
            test_set = read_news_csv(args.test) if args.test is not None else None
            results = {
                "data": dataset.fingerprint(),
                "test_data": test_set.fingerprint() if test_set is not None else None,
                "protocol": "held out" if test_set is not None else f"{args.folds}-fold CV",
                "candidates": {
                    name: probe_candidate(
                        dataset,
                        test_set,
                        replace(BASE_CONFIG, **CANDIDATES[name]),
                        folds=args.folds,
                    )
                    for name in args.candidates or list(CANDIDATES)
                },
            }
            args.out.write_text(json.dumps(results, indent=2) + "\n")
            print(format_probe(results))
            return
    except (ValueError, FileNotFoundError) as error:
        parser.exit(2, f"error: {error}\n")
    texts = np.array(dataset.texts, dtype=object)
    results: dict[str, Any] = {
        "data": dataset.fingerprint(),
        "protocol": f"{args.folds}-fold StratifiedKFold(shuffle=True,"
        f" random_state={CV_RANDOM_STATE}); {args.seeds} networks per fold, seeds {SEED}..",
        "seeds": args.seeds,
        "candidates": {},
    }
    for name in args.candidates or list(CANDIDATES):
        config = replace(BASE_CONFIG, **{**CANDIDATES[name], "ensemble_size": args.seeds})
        print(f"{name}: {CANDIDATES[name] or 'version 2 recipe'}", flush=True)
        started = time.monotonic()
        result = study_candidate(
            texts, dataset.label_ids, len(dataset.labels), config, folds=args.folds
        )
        result["seconds"] = round(time.monotonic() - started, 1)
        results["candidates"][name] = result
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(format_study(results))


if __name__ == "__main__":
    main()
