"""Shared pytest set-up: make ``ansible_collections.mlops.deploy`` importable from this checkout."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COLLECTIONS = ROOT / ".build" / "collections"
link = COLLECTIONS / "ansible_collections" / "mlops" / "deploy"
if not link.exists():
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(ROOT)
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))
