"""`POST /classify` on the committed news classifier, and the checks on its input."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from app.routes.classify import load_vectorizer
from modelkit.repository import load_model, read_metadata
from tests.app.conftest import requires_model, serving

pytestmark = pytest.mark.anyio

ONLY_CLASSIFIER = {"models": ["classifier"]}
needs_classifier = requires_model("classifier")

TEXTS = [
    "The central bank raised interest rates again as inflation stayed high.",
    "The striker scored twice in the second half to win the cup final.",
    "A new smartphone chip promises faster graphics and longer battery life.",
    "Parliament voted on the budget after a long debate between the parties.",
    "The film festival opened with a premiere attended by famous actors.",
]


def direct_probabilities(models_root: Path, texts: list[str]) -> np.ndarray:
    model = load_model(models_root, "classifier")
    return model.predict(load_vectorizer(model).transform(texts))


@needs_classifier
async def test_one_text_gets_its_top_categories(models_root: Path) -> None:
    labels = read_metadata(models_root, "classifier")["labels"]
    async with serving(**ONLY_CLASSIFIER) as (client, _):
        answer = await client.post("/classify", json={"text": TEXTS[0], "top_k": 3})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model"]["name"] == "classifier"
    (prediction,) = body["predictions"]
    probabilities = direct_probabilities(models_root, [TEXTS[0]])[0]
    best = np.argsort(-probabilities)[:3]
    assert [c["label"] for c in prediction["categories"]] == [labels[i] for i in best]
    np.testing.assert_allclose(
        [c["probability"] for c in prediction["categories"]], probabilities[best], atol=1e-5
    )


@needs_classifier
async def test_default_top_k_is_3_and_texts_keep_their_order(models_root: Path) -> None:
    async with serving(**ONLY_CLASSIFIER) as (client, _):
        together = (await client.post("/classify", json={"texts": TEXTS})).json()
        alone = [(await client.post("/classify", json={"text": t})).json() for t in TEXTS]
    assert len(together["predictions"]) == len(TEXTS)
    for prediction, single in zip(together["predictions"], alone, strict=True):
        assert len(prediction["categories"]) == 3
        assert [c["label"] for c in prediction["categories"]] == [
            c["label"] for c in single["predictions"][0]["categories"]
        ]


@needs_classifier
async def test_64_concurrent_requests_equal_single_answers() -> None:
    texts = [f"{TEXTS[i % len(TEXTS)]} Report number {i}." for i in range(64)]
    async with serving(**ONLY_CLASSIFIER) as (client, _):
        singles = [
            (await client.post("/classify", json={"text": t, "top_k": 2})).json()
            for t in texts[:10]
        ]
        answers = await asyncio.gather(
            *(client.post("/classify", json={"text": t, "top_k": 2}) for t in texts)
        )
        metrics = (await client.get("/metrics")).text
    for single, answer in zip(singles, answers[:10], strict=True):
        mine, theirs = answer.json()["predictions"][0], single["predictions"][0]
        assert [c["label"] for c in mine["categories"]] == [
            c["label"] for c in theirs["categories"]
        ]
        np.testing.assert_allclose(
            [c["probability"] for c in mine["categories"]],
            [c["probability"] for c in theirs["categories"]],
            atol=1e-5,
        )
    count = float(
        metrics.split('app_inference_batch_size_count{model="classifier"} ')[1].split()[0]
    )
    assert count < 10 + 64, "some of the concurrent requests shared a runtime call"


@needs_classifier
async def test_top_k_above_the_number_of_categories_is_422(models_root: Path) -> None:
    categories = len(read_metadata(models_root, "classifier")["labels"])
    async with serving(**ONLY_CLASSIFIER) as (client, _):
        answer = await client.post("/classify", json={"text": TEXTS[0], "top_k": categories + 1})
        everything = await client.post("/classify", json={"text": TEXTS[0], "top_k": categories})
    assert answer.status_code == 422 and answer.json()["error"] == "invalid_input"
    assert len(everything.json()["predictions"][0]["categories"]) == categories


# The checks below happen before any model is asked, so they run with or without the model.


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({"text": ""}, 422, "empty_text"),
        ({"text": " \n\t "}, 422, "empty_text"),
        ({"texts": ["fine", "   "]}, 422, "empty_text"),
        ({"text": "x" * 20_001}, 413, "text_too_long"),
        ({"texts": ["ok"] * 65}, 422, "invalid_input"),
        ({"texts": []}, 422, "invalid_input"),
        ({}, 422, "invalid_request"),
        ({"text": "a", "texts": ["b"]}, 422, "invalid_request"),
        ({"text": ["a list"]}, 422, "invalid_request"),
        ({"text": "fine", "top_k": 0}, 422, "invalid_request"),
        ({"text": "fine", "top_k": "three"}, 422, "invalid_request"),
    ],
)
async def test_bad_texts_are_refused(payload: object, status: int, code: str) -> None:
    async with serving(**ONLY_CLASSIFIER) as (client, _):
        answer = await client.post("/classify", json=payload)
    assert answer.status_code == status
    assert answer.json()["error"] == code
    assert answer.json()["detail"].endswith(".")


async def test_the_text_limit_is_the_configured_one() -> None:
    async with serving(**ONLY_CLASSIFIER, max_text_chars=10) as (client, _):
        answer = await client.post("/classify", json={"text": "eleven char"})
    assert answer.status_code == 413
    assert "limit is 10" in answer.json()["detail"]
