"""The companion and auto-grouping measurements run at their smallest size and write their JSON (their figures
are in benchmarks/README.md; the floors live in tests/test_companions.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_eval_companions_smoke(tmp_path: Path) -> None:
    from benchmarks import eval_companions

    payload = eval_companions.main(["--size", "S", "--out", str(tmp_path)])
    rows = {(r["target_visits"], r["companion_in"], r["method"]): r for r in payload["rows"]}
    assert rows[(3, 3, "oracle_grouping")]["top3_rate"] == 1.0  # the companion is in every stay: with true identities, always first
    assert rows[(3, 3, "product")]["top3_rate"] > rows[(3, 3, "no_grouping")]["top3_rate"]
    assert json.loads((tmp_path / "eval_companions_S.json").read_text())["episodes_per_setting"] == 20


def test_eval_identities_smoke(tmp_path: Path) -> None:
    from benchmarks import eval_identities

    payload = eval_identities.main(["--size", "S", "--out", str(tmp_path)])
    sets = {r["set"]: r for r in payload["rows"]}
    assert sets["mot17-constrained"]["clusters"] >= sets["mot17-unconstrained"]["clusters"]  # the rule only splits
    assert all(0 <= r["bcubed_f1"] <= 1 for r in payload["rows"])
    assert (tmp_path / "eval_identities_S.json").exists()
