"""Titanic survival model: feature encoding and prediction, shared by the training
script and the API server. Pure Python (no numpy), so the API image needs nothing
but python3.

The model is a logistic regression over standardised features; its parameters live in
model/model.json, written by train.py.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

FIELDS = ("Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked")
EMBARKED = ("C", "Q", "S")
FEATURES = (
    "class_1",
    "class_2",
    "female",
    "age",
    "age_missing",
    "child",
    "sibsp",
    "parch",
    "log_fare",
    "embarked_C",
    "embarked_Q",
)


class InvalidPassenger(ValueError):
    """The request does not describe a passenger; the message says which field is wrong."""


def _number(payload: dict[str, Any], field: str, low: float, high: float, required: bool = True) -> float | None:
    value = payload.get(field)
    if value is None or value == "":
        if required:
            raise InvalidPassenger(f"{field} is required")
        return None
    if isinstance(value, bool):
        raise InvalidPassenger(f"{field} must be a number, not {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidPassenger(f"{field} must be a number, not {value!r}") from None
    if not low <= number <= high or math.isnan(number):
        raise InvalidPassenger(f"{field} must be between {low:g} and {high:g}, not {value!r}")
    return number


def validate(payload: Any) -> dict[str, Any]:
    """A passenger as the API takes it, checked; raises InvalidPassenger."""
    if not isinstance(payload, dict):
        raise InvalidPassenger("the body must be a JSON object with " + ", ".join(FIELDS))
    unknown = sorted(set(payload) - set(FIELDS))
    if unknown:
        raise InvalidPassenger(f"unknown field(s) {', '.join(unknown)}; expected {', '.join(FIELDS)}")
    pclass = _number(payload, "Pclass", 1, 3)
    if pclass not in (1.0, 2.0, 3.0):
        raise InvalidPassenger(f"Pclass must be 1, 2 or 3, not {payload['Pclass']!r}")
    sex = str(payload.get("Sex", "")).strip().lower()
    if sex not in ("male", "female"):
        raise InvalidPassenger(f"Sex must be 'male' or 'female', not {payload.get('Sex')!r}")
    embarked = str(payload.get("Embarked") or "").strip().upper()
    if embarked not in EMBARKED + ("",):
        raise InvalidPassenger(f"Embarked must be C, Q or S (or empty), not {payload.get('Embarked')!r}")
    return {
        "Pclass": int(pclass),
        "Sex": sex,
        "Age": _number(payload, "Age", 0, 120, required=False),
        "SibSp": _number(payload, "SibSp", 0, 20),
        "Parch": _number(payload, "Parch", 0, 20),
        "Fare": _number(payload, "Fare", 0, 1000),
        "Embarked": embarked,
    }


def encode(passenger: dict[str, Any], median_age: float) -> list[float]:
    """Raw feature vector (before standardisation), in FEATURES order."""
    age = passenger["Age"]
    return [
        1.0 if passenger["Pclass"] == 1 else 0.0,
        1.0 if passenger["Pclass"] == 2 else 0.0,
        1.0 if passenger["Sex"] == "female" else 0.0,
        median_age if age is None else age,
        1.0 if age is None else 0.0,
        1.0 if age is not None and age < 13 else 0.0,
        passenger["SibSp"],
        passenger["Parch"],
        math.log1p(passenger["Fare"]),
        1.0 if passenger["Embarked"] == "C" else 0.0,
        1.0 if passenger["Embarked"] == "Q" else 0.0,
    ]


def sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


class Model:
    def __init__(self, params: dict[str, Any]):
        if tuple(params["features"]) != FEATURES:
            raise ValueError(f"model features {params['features']} do not match this code's {FEATURES}")
        self.params = params
        self.version = params["version"]

    @classmethod
    def load(cls, path: str | Path) -> Model:
        return cls(json.loads(Path(path).read_text()))

    def probability(self, passenger: dict[str, Any]) -> float:
        p = self.params
        raw = encode(passenger, p["median_age"])
        z = p["intercept"] + sum(
            w * (x - m) / s for w, x, m, s in zip(p["weights"], raw, p["means"], p["scales"], strict=True)
        )
        return sigmoid(z)

    def predict(self, payload: Any) -> dict[str, Any]:
        passenger = validate(payload)
        probability = self.probability(passenger)
        return {
            "prediction": 1 if probability >= 0.5 else 0,
            "probability": round(probability, 4),
            "model_version": self.version,
        }
