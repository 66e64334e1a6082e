"""`POST /classify`: the news classifier's top categories for one text or up to 64."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field, model_validator

from app.classification import check_texts, check_top_k, top_categories, vectorize
from app.routes.common import (
    ModelRef,
    RegistryDep,
    SettingsDep,
    error_responses,
    model_ref,
    ok_example,
)
from app.tasks import Task
from modelkit.repository import LoadedModel

MODEL = "classifier"

router = APIRouter(tags=["classifier"])


def load_vectorizer(model: LoadedModel) -> Any:
    """The version's tf-idf vectorizer (`modelkit.text`), its size checked against the model."""
    from modelkit.text import load_vectorizer as load

    return load(model)


TASK = Task(
    name="classify",
    model=MODEL,
    router=router,
    scope="classify",
    locations=("= /classify",),
    companion=load_vectorizer,
)


class ClassifyRequest(BaseModel):
    text: str | None = Field(default=None, description="One text; or use `texts`.")
    texts: list[str] | None = Field(default=None, description="Several texts (up to 64).")
    top_k: int = Field(default=3, ge=1, description="How many categories per text.")

    model_config = {
        "json_schema_extra": {
            "examples": [
                {"text": "The central bank raised interest rates by half a point.", "top_k": 3},
                {"texts": ["Striker scores twice in the cup final.", "New GPU announced."]},
            ]
        }
    }

    @model_validator(mode="after")
    def _one_of_text_or_texts(self) -> ClassifyRequest:
        if (self.text is None) == (self.texts is None):
            raise ValueError("give exactly one of 'text' or 'texts'")
        return self

    @property
    def all_texts(self) -> list[str]:
        return [self.text] if self.text is not None else list(self.texts or [])


class Category(BaseModel):
    label: str
    probability: float


class Prediction(BaseModel):
    categories: list[Category]


class ClassifyAnswer(BaseModel):
    model: ModelRef
    predictions: list[Prediction] = Field(description="One per text, in the order sent.")


CLASSIFY_EXAMPLE = {
    "model": {"name": "classifier", "version": 1},
    "predictions": [
        {
            "categories": [
                {"label": "business", "probability": 0.87},
                {"label": "politics", "probability": 0.08},
                {"label": "tech", "probability": 0.03},
            ]
        }
    ],
}


@router.post(
    "/classify",
    response_model=ClassifyAnswer,
    summary="News categories of texts",
    responses={
        **ok_example(CLASSIFY_EXAMPLE),
        **error_responses(404, 413, 422, 503),
    },
)
async def classify(
    request: ClassifyRequest, registry: RegistryDep, settings: SettingsDep
) -> dict[str, Any]:
    """The `top_k` most likely categories of each text, with their probabilities."""
    texts = check_texts(request.all_texts, settings.max_text_chars, settings.max_texts)
    async with registry.acquire(MODEL) as servable:
        labels = list(servable.contract.class_labels or [])
        check_top_k(request.top_k, labels)
        features = await vectorize(servable.companion, texts)
        probabilities = await servable.infer(features)
        ranked = top_categories(probabilities, labels, request.top_k)
    return {
        "model": model_ref(servable),
        "predictions": [{"categories": categories} for categories in ranked],
    }
