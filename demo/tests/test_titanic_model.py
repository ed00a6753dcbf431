"""The demo model: input validation, known answers, and the committed artifact being
exactly what the training script produces."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

TITANIC = Path(__file__).resolve().parents[1] / "titanic"
sys.path.insert(0, str(TITANIC / "app"))

from titanic_model import InvalidPassenger, Model, validate  # noqa: E402

MODEL = Model.load(TITANIC / "model" / "model.json")
ROSE = {"Pclass": 1, "Sex": "female", "Age": 17, "SibSp": 1, "Parch": 1, "Fare": 211.3, "Embarked": "S"}
JACK = {"Pclass": 3, "Sex": "male", "Age": 20, "SibSp": 0, "Parch": 0, "Fare": 7.25, "Embarked": "S"}


def test_known_answers():
    assert MODEL.predict(ROSE)["prediction"] == 1
    assert MODEL.predict(JACK)["prediction"] == 0
    assert MODEL.predict(ROSE)["model_version"] == "titanic-logreg-1"
    assert 0.0 <= MODEL.predict(JACK)["probability"] < 0.5 <= MODEL.predict(ROSE)["probability"] <= 1.0


def test_missing_age_and_port_are_accepted():
    passenger = dict(JACK, Age=None, Embarked="")
    assert MODEL.predict(passenger)["prediction"] in (0, 1)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"Pclass": 4}, "Pclass must be between 1 and 3"),
        ({"Pclass": 1.5}, "Pclass must be 1, 2 or 3"),
        ({"Sex": "x"}, "Sex must be 'male' or 'female'"),
        ({"Age": -1}, "Age must be between 0 and 120"),
        ({"Fare": "cheap"}, "Fare must be a number"),
        ({"SibSp": True}, "SibSp must be a number"),
        ({"Embarked": "X"}, "Embarked must be C, Q or S"),
        ({"Cabin": "C85"}, "unknown field"),
    ],
)
def test_bad_passengers_say_what_is_wrong(change, message):
    with pytest.raises(InvalidPassenger, match=message):
        validate(dict(JACK, **change))


def test_required_fields():
    payload = dict(JACK)
    del payload["Fare"]
    with pytest.raises(InvalidPassenger, match="Fare is required"):
        validate(payload)
    with pytest.raises(InvalidPassenger, match="JSON object"):
        validate([1, 2])


def test_committed_model_is_what_training_produces(tmp_path):
    out = tmp_path / "model.json"
    result = subprocess.run(
        [sys.executable, str(TITANIC / "train.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == (TITANIC / "model" / "model.json").read_bytes()
    assert "test accuracy 0.8" in result.stdout
