"""Real photographs: the shipped model evaluated on the FunKPoint dev set (skipped where ../shared/data is absent).

The dev set is read at run time and never copied (its README): this test only
checks that real-photo evaluation runs end to end with every row the model card
reports, and that the shipped model is better than a guess on real photos.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from funk_perception.eval_config import EvalConfig
from funk_perception.evaluate import evaluate

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT.parent / "shared" / "data" / "funkpoint-real-dev" / "annotations.csv"
SHIPPED = ROOT / "models" / "funk-lite0-synth.pt"

pytestmark = pytest.mark.skipif(not DEV.is_file(), reason=f"real dev set not present at {DEV}")


def test_shipped_model_on_real_photos(tmp_path: Path) -> None:
    results = evaluate(
        EvalConfig(data=DEV, models=[SHIPPED], out=tmp_path, figures=False, progress=False, device="cpu")
    )
    assert results["pairs"]["total"] == 200
    prior, trunk, model = results["methods"]
    pck = {m["kind"]: m["results"]["refined"]["overall"]["0.1"] for m in results["methods"]}
    assert pck["model"] > pck["prior"] + 10, pck
    detect = {r["kind"]: r["results"] for r in results["detect"]["rows"]}
    assert results["detect"]["targets"] == 100 and "prior" in detect
    learned = [k for k in detect if k != "prior"]
    assert learned, detect.keys()
    for kind in learned:
        assert detect[kind]["overall"]["0.1"] > detect["prior"]["overall"]["0.1"], (kind, detect[kind]["overall"])
        assert 0.5 < detect[kind]["confidence"]["auc"] <= 1.0, (kind, detect[kind]["confidence"])
    assert (tmp_path / "results.md").read_text().count("detect by") >= 2
