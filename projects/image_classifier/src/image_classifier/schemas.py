"""Response bodies of the classify API (the request body is multipart or JSON, read and limited
by inputs.py)."""

from pydantic import BaseModel


class Label(BaseModel):
    label: str
    probability: float


class Prediction(BaseModel):
    top_k: list[Label]


class ClassifyResponse(BaseModel):
    model: str
    version: str
    predictions: list[Prediction]
