"""The news classifier: smoke training on a generated CSV, export, serving-side parity, CLI."""

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from modelkit import list_versions, load_model
from modelkit.text import VECTORIZER_FILE, TfidfVectorizer, load_vectorizer

pytest.importorskip("keras")

from training.classifier import (
    FittedClassifier,
    NewsDataset,
    TrainingConfig,
    export_classifier,
    fit_classifier,
    main,
    read_news_csv,
)

pytestmark = pytest.mark.slow

TOPICS = {
    "sport": ["match", "goal", "striker", "league", "coach", "penalty", "cup"],
    "business": ["shares", "profit", "market", "bank", "investors", "growth", "firm"],
    "tech": ["software", "broadband", "chips", "users", "online", "phones", "digital"],
}
COMMON = ["the", "said", "year", "new", "people", "week", "report"]
TINY = TrainingConfig(max_tokens=40, hidden_units=8, epochs=2, batch_size=16, patience=1)


def write_news_csv(path: Path, per_topic: int = 16, seed: int = 0) -> Path:
    """Articles mixing a topic's words with common ones; quotes, commas and newlines included."""
    rng = np.random.default_rng(seed)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "category", "text"])
        for topic, words in TOPICS.items():
            for i in range(per_topic):
                body = " ".join(rng.choice(words + COMMON, 30))
                writer.writerow([f"{topic}-{i}", topic, f'"{body[:20]}", she said.\n\n{body}'])
    return path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> NewsDataset:
    return read_news_csv(write_news_csv(tmp_path_factory.mktemp("data") / "news.csv"))


@pytest.fixture(scope="module")
def fitted(dataset: NewsDataset) -> FittedClassifier:
    return fit_classifier(
        dataset.texts, dataset.label_ids, len(dataset.labels), TINY, seed=0, verbose=0
    )


@pytest.fixture(scope="module")
def exported(
    fitted: FittedClassifier, dataset: NewsDataset, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    out = tmp_path_factory.mktemp("models")
    return export_classifier(fitted, dataset, TINY, seed=0, out=out, metrics={"note": "smoke"})


def test_csv_is_read_by_column_name(dataset: NewsDataset, tmp_path: Path) -> None:
    assert dataset.labels == sorted(TOPICS)
    assert len(dataset.texts) == 3 * 16
    assert dataset.categories[0] == "sport" and dataset.label_ids[0] == dataset.labels.index(
        "sport"
    )
    assert dataset.texts[0].startswith('"') and "\n\n" in dataset.texts[0]
    bad = tmp_path / "bad.csv"
    bad.write_text("body,category\nhello,sport\n")
    with pytest.raises(ValueError, match="text"):
        read_news_csv(bad)


def test_smoke_training_exports_a_complete_version(exported: Path, dataset: NewsDataset) -> None:
    metadata = json.loads((exported / "metadata.json").read_text())
    assert exported.name == "1"
    assert {"model.keras", "model.onnx", VECTORIZER_FILE, "training_curves.png"} <= set(
        metadata["artifacts"]
    )
    assert metadata["task"] == "text-classification"
    assert metadata["labels"] == dataset.labels
    signature = metadata["signatures"]["serving_default"]
    assert signature["inputs"][0]["name"] == "tfidf"
    assert signature["inputs"][0]["shape"] == [None, TINY.max_tokens]
    assert signature["outputs"][0]["shape"] == [None, len(TOPICS)]
    assert signature["parity"]["max_abs_difference"] <= 1e-5
    assert metadata["preprocessing"]["vectorizer"] == VECTORIZER_FILE
    assert metadata["training_data"]["sizes"]["texts"] == len(dataset.texts)


def test_onnx_and_keras_outputs_match(exported: Path, dataset: NewsDataset) -> None:
    features = TfidfVectorizer.load(exported / VECTORIZER_FILE).transform(dataset.texts)
    onnx_model = load_model(exported.parent.parent, "classifier", runtime="onnxruntime")
    tf_model = load_model(exported.parent.parent, "classifier", runtime="tensorflow")
    onnx_probabilities = onnx_model.predict(features)
    np.testing.assert_allclose(onnx_probabilities, tf_model.predict(features), atol=1e-5)
    np.testing.assert_allclose(onnx_probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_serving_preprocessing_matches_training(
    exported: Path, fitted: FittedClassifier, dataset: NewsDataset
) -> None:
    texts = [*dataset.texts[::5], "Unseen words: the striker's goal lifted shares online!", ""]
    model = load_model(exported.parent.parent, "classifier")  # as the service loads it
    vectorizer = load_vectorizer(model)
    serving_features = vectorizer.transform(texts)
    np.testing.assert_array_equal(serving_features, fitted.vectorizer.transform(texts))
    serving_probabilities = model.predict(serving_features)
    training_probabilities = fitted.predict(texts)
    np.testing.assert_allclose(serving_probabilities, training_probabilities, atol=1e-5)
    np.testing.assert_array_equal(
        serving_probabilities.argmax(axis=1), training_probabilities.argmax(axis=1)
    )


def test_vectorizer_of_the_wrong_size_is_refused(exported: Path, tmp_path: Path) -> None:
    copy = tmp_path / "classifier" / "1"
    shutil.copytree(exported, copy)
    TfidfVectorizer(max_tokens=5).fit(["alpha beta gamma delta epsilon zeta"]).save(
        copy / VECTORIZER_FILE
    )
    model = load_model(tmp_path, "classifier", verify=False)
    with pytest.raises(ValueError, match="5 features"):
        load_vectorizer(model)


def test_training_is_deterministic_given_the_seed(
    dataset: NewsDataset, fitted: FittedClassifier
) -> None:
    again = fit_classifier(
        dataset.texts, dataset.label_ids, len(dataset.labels), TINY, seed=0, verbose=0
    )
    for first, second in zip(fitted.model.get_weights(), again.model.get_weights(), strict=True):
        np.testing.assert_array_equal(first, second)


def test_cli_train_cross_validates_and_publishes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_news_csv(tmp_path / "news.csv", per_topic=10, seed=1)
    out = tmp_path / "models"
    argv = ["--data", str(data), "--epochs", "1", "--seed", "0", "--folds", "2"]
    main(["train", *argv, "--out", str(out)])
    assert list_versions(out, "classifier") == [1]
    assert not list((out / "classifier").glob(".tmp-*"))
    metadata = json.loads((out / "classifier" / "1" / "metadata.json").read_text())
    assert metadata["preprocessing"]["selection"] == "chi2"
    assert metadata["hyperparameters"]["vocabulary_selection"] == "chi2"
    metrics = metadata["metrics"]
    cv = metrics["cross_validation"]
    assert len(cv["project"]["accuracy"]) == len(cv["baseline"]["accuracy"]) == 2
    assert 0.0 <= cv["project"]["mean_accuracy"] <= 1.0
    assert np.sum(cv["confusion_matrix"]) == 3 * 10  # every text is tested exactly once
    assert metrics["final_training"]["epochs_run"] == 1
    report = capsys.readouterr().out
    assert "| project (tf-idf + dense) | accuracy |" in report
    assert "LinearSVC | macro_f1 |" in report

    main(["eval", *argv])
    eval_report = capsys.readouterr().out
    assert "| true \\ predicted | business | sport | tech |" in eval_report
    assert list_versions(out, "classifier") == [1], "eval publishes nothing"


@pytest.mark.parametrize("version", [1, 2])
def test_committed_model_runs_the_same_on_both_runtimes(models_dir: Path, version: int) -> None:
    assert list_versions(models_dir, "classifier") == [1, 2]
    onnx_model = load_model(models_dir, "classifier", version, runtime="onnxruntime")
    tf_model = load_model(models_dir, "classifier", version, runtime="tensorflow")
    vectorizer = load_vectorizer(onnx_model)
    metadata = onnx_model.metadata
    texts = [
        "The striker scored twice as the champions won the league title on Saturday.",
        "Shares in the bank fell after quarterly profits missed analysts' forecasts.",
        "MPs voted on the government's election bill in the Commons.",
        "The film won best picture at the Oscars and the actress took the award.",
        "The new mobile phone software lets users download music over broadband.",
    ]
    features = vectorizer.transform(texts)
    assert features.shape == (len(texts), metadata["preprocessing"]["vocabulary_size"])
    onnx_probabilities = onnx_model.predict(features)
    np.testing.assert_allclose(onnx_probabilities, tf_model.predict(features), atol=1e-5)
    assert onnx_probabilities.shape == (len(texts), len(metadata["labels"]))
    cv = metadata["metrics"]["cross_validation"]
    assert np.sum(cv["confusion_matrix"]) == metadata["training_data"]["sizes"]["texts"]
    assert cv["project"]["mean_accuracy"] == pytest.approx(np.mean(cv["project"]["accuracy"]))


def test_latest_committed_model_meets_the_issue_bar(models_dir: Path) -> None:
    """Version 2 (chi2 vocabulary) ties LinearSVC at 43 errors; by mean fold accuracy it meets
    the bar (version 1, document-frequency vocabulary, missed it by one article)."""
    metadata = load_model(models_dir, "classifier").metadata
    assert metadata["version"] == 2
    assert metadata["preprocessing"]["selection"] == "chi2"
    cv = metadata["metrics"]["cross_validation"]
    assert cv["project"]["mean_accuracy"] >= cv["baseline"]["mean_accuracy"]
