"""Train the Titanic survival model and write model/model.json.

Logistic regression with L2 regularisation fitted by full-batch gradient descent in pure
Python (891 passengers: a few seconds), on the wheel's own train split; accuracy on the
held-out split is recorded in the model file. Deterministic: the same data gives the
same file byte for byte.

Run: .venv/bin/python demo/titanic/train.py [--version NAME]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "app"))

from titanic_model import FEATURES, Model, encode, sigmoid, validate  # noqa: E402

EPOCHS = 600


def load(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        row["passenger"] = validate({k: row[k] for k in ("Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked")})
        row["label"] = int(row["Survived"])
    return rows


def fit(
    xs: list[list[float]], ys: list[int], l2: float, rate: float, epochs: int, report=None, every: int = 0
) -> tuple[float, list[float]]:
    n, k = len(xs), len(xs[0])
    w, b = [0.0] * k, 0.0
    for epoch in range(epochs):
        if report and every and epoch % every == 0:
            report(epoch, b, w)
        gw, gb = [0.0] * k, 0.0
        for x, y in zip(xs, ys, strict=True):
            err = sigmoid(b + sum(wi * xi for wi, xi in zip(w, x, strict=True))) - y
            gb += err
            for i in range(k):
                gw[i] += err * x[i]
        b -= rate * gb / n
        w = [wi - rate * (gi / n + l2 * wi) for wi, gi in zip(w, gw, strict=True)]
    return b, w


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(HERE / "data" / "titanic.csv"))
    parser.add_argument("--out", default=str(HERE / "model" / "model.json"))
    parser.add_argument("--version", default="titanic-logreg-1")
    parser.add_argument("--progress", type=int, default=0, metavar="N", help="print the training loss every N epochs")
    args = parser.parse_args()

    rows = load(Path(args.data))
    train = [r for r in rows if r["split"] == "train"]
    test = [r for r in rows if r["split"] == "test"]
    median_age = statistics.median(r["passenger"]["Age"] for r in train if r["passenger"]["Age"] is not None)
    raw = [encode(r["passenger"], median_age) for r in train]
    means = [statistics.fmean(col) for col in zip(*raw, strict=True)]
    scales = [statistics.pstdev(col) or 1.0 for col in zip(*raw, strict=True)]
    xs = [[(v - m) / s for v, m, s in zip(row, means, scales, strict=True)] for row in raw]
    labels = [r["label"] for r in train]

    def progress(epoch: int, b: float, w: list[float]) -> None:
        eps = 1e-12
        probabilities = [sigmoid(b + sum(wi * xi for wi, xi in zip(w, x, strict=True))) for x in xs]
        loss = -statistics.fmean(
            y * math.log(p + eps) + (1 - y) * math.log(1 - p + eps) for p, y in zip(probabilities, labels, strict=True)
        )
        print(f"epoch {epoch:4d}/{EPOCHS}  train log-loss {loss:.4f}", flush=True)

    intercept, weights = fit(xs, labels, l2=0.01, rate=0.5, epochs=EPOCHS, report=progress, every=args.progress)

    params = {
        "version": args.version,
        "features": list(FEATURES),
        "median_age": median_age,
        "means": [round(v, 8) for v in means],
        "scales": [round(v, 8) for v in scales],
        "weights": [round(v, 8) for v in weights],
        "intercept": round(intercept, 8),
    }
    model = Model(params)

    def accuracy(subset: list[dict]) -> float:
        hits = sum((model.probability(r["passenger"]) >= 0.5) == bool(r["label"]) for r in subset)
        return round(hits / len(subset), 4)

    params["metrics"] = {
        "train_rows": len(train),
        "test_rows": len(test),
        "train_accuracy": accuracy(train),
        "test_accuracy": accuracy(test),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(params, indent=2, sort_keys=True) + "\n")
    print(
        f"model {args.version}: train accuracy {params['metrics']['train_accuracy']}, "
        f"test accuracy {params['metrics']['test_accuracy']} -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
