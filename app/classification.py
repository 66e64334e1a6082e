"""The classifier's request checks and answer: texts in, top categories with probabilities out."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import numpy as np

from app.errors import EmptyText, InvalidInput, TextTooLong


def check_texts(texts: Sequence[str], max_chars: int, max_texts: int) -> list[str]:
    if not texts:
        raise InvalidInput("Send at least one text.")
    if len(texts) > max_texts:
        raise InvalidInput(f"Send at most {max_texts} texts per request, not {len(texts)}.")
    for index, text in enumerate(texts):
        if not text.strip():
            raise EmptyText(f"Text {index} is empty or only whitespace.")
        if len(text) > max_chars:
            raise TextTooLong(f"Text {index} has {len(text)} characters; the limit is {max_chars}.")
    return list(texts)


# Texts up to this many characters in all are vectorised on the event loop: an 80-word news
# text takes about 40 µs, less than the hop to a worker thread and back (bench/protocol.py);
# longer ones (up to 64 x 20,000 characters) go to a thread so that the loop is never held.
INLINE_CHARS = 8192


async def vectorize(vectorizer: Any, texts: list[str]) -> np.ndarray:
    """The texts' tf-idf rows, on the loop when short, else in a worker thread."""
    if sum(len(text) for text in texts) <= INLINE_CHARS:
        return vectorizer.transform(texts)
    return await asyncio.to_thread(vectorizer.transform, texts)


def check_top_k(top_k: int, labels: Sequence[str]) -> None:
    if top_k > len(labels):
        raise InvalidInput(f"top_k must be at most {len(labels)}, the number of categories.")


def top_categories(
    probabilities: np.ndarray, labels: Sequence[str], top_k: int
) -> list[list[dict[str, Any]]]:
    """For each row, the `top_k` labels by probability, most likely first."""
    check_top_k(top_k, labels)
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :top_k]
    return [
        [{"label": labels[i], "probability": round(float(row[i]), 6)} for i in indices]
        for row, indices in zip(probabilities, order, strict=True)
    ]
