"""The markdown report of an evaluation: :func:`markdown_report` turns the ``results.json`` dict into
the tables of ``results.md`` (transfer, per task, bootstrap intervals, reference-free detect)."""

from __future__ import annotations

from collections.abc import Sequence

from funk_perception.tasks import TASKS


def _fmt(value: float) -> str:
    return "n/a" if value is None or value != value else f"{value:.1f}"  # NaN: no keypoints in a split


def markdown_report(results: dict) -> str:
    """Markdown tables: methods x (PCK@thresholds argmax/refined, same-/cross-category) and per task."""
    t_cols = [str(t) for t in results["thresholds"]]
    lines = [
        f"# PCK evaluation: {results['data']}"
        + (f" (references from {results['references']})" if results.get("references") else ""),
        "",
        f"{results['pairs']['total']} triplets ({results['pairs']['same_category']} same-category, "
        f"{results['pairs']['cross_category']} cross-category), seed {results['seed']}, "
        f"refinement: {results['refine']}. PCK in %, keypoints visible in both images; "
        "distance in normalised coordinates (x/W, y/H): 0.1 = 22.4 px at 224 x 224. Input: "
        + (
            f"letterboxed ({results.get('letterbox_pad')} pad)"
            if results.get("letterbox")
            else "squashed to the square"
        )
        + (", mirrored copies" if results.get("mirror") else "")
        + "."
        + (
            f" Checkpoint encoders run in {results['backend']} ({results.get('precision')})."
            if results.get("backend", "torch") != "torch"
            else ""
        ),
        "",
        "| method | "
        + " | ".join(f"PCK@{t} argmax | PCK@{t} refined" for t in t_cols)
        + " | same-cat @0.1 (refined) | cross-cat @0.1 (refined) |",
        "|---" * (1 + 2 * len(t_cols) + 2) + "|",
    ]
    for row in results["methods"]:
        r = row["results"]
        cells = [f"{_fmt(r['argmax']['overall'][t])} | {_fmt(r['refined']['overall'][t])}" for t in t_cols]
        lines.append(
            f"| {row['name']} | "
            + " | ".join(cells)
            + f" | {_fmt(r['refined']['same_category']['0.1'])} | {_fmt(r['refined']['cross_category']['0.1'])} |"
        )
    for name, value in results["paper_table2"].items():
        # The paper reports PCK@0.1 by argmax only, on real images with a ResNet-50 trunk.
        cells = [f"{value:.1f} | -" if t == "0.1" else "- | -" for t in t_cols]
        lines.append(f"| paper Table 2: {name} | " + " | ".join(cells) + " | - | - |")
    tasks = [t for t in TASKS if any(t in row["results"]["refined"]["per_task"] for row in results["methods"])]
    lines += [
        "",
        "## Per task, PCK@0.1 (refined)",
        "",
        "| method | " + " | ".join(tasks) + " |",
        "|---" * (1 + len(tasks)) + "|",
    ]
    for row in results["methods"]:
        per = row["results"]["refined"]["per_task"]
        lines.append(f"| {row['name']} | " + " | ".join(_fmt(per[t]["0.1"]) if t in per else "-" for t in tasks) + " |")
    lines += _uncertainty_markdown("Transfer", results["methods"])
    if results.get("detect"):
        lines += _detect_markdown(results["detect"], t_cols, tasks)
        lines += _uncertainty_markdown("Detect", results["detect"]["rows"])
    lines.append("")
    return "\n".join(lines)


def _interval(values: Sequence[float] | None) -> str:
    return "-" if not values else f"{values[0]:.1f} to {values[1]:.1f}"


def _uncertainty_markdown(what: str, rows: Sequence[dict]) -> list[str]:
    """PCK@0.1 with its bootstrap interval and the paired difference from the baseline row."""
    rows = [row for row in rows if row.get("uncertainty")]
    if not rows:
        return []
    images = rows[0]["uncertainty"]["images"]
    lines = [
        "",
        f"## {what}: how sure, PCK@0.1 (refined) with 95 % bootstrap intervals over the {images} target images",
        "",
        "The difference is paired (the same images resampled for both rows); an interval that holds 0 means "
        "this set cannot tell the two apart.",
        "",
        "| method | PCK@0.1 | 95 % interval | difference | from | its 95 % interval |",
        "|---" * 6 + "|",
    ]
    for row in rows:
        u = row["uncertainty"]
        d = u.get("difference")
        diff = f"{d['difference']:+.1f} | {d['from']} | {_interval(d['interval'])}" if d else "- | - | -"
        lines.append(f"| {row['name']} | {_fmt(u['pck@0.1'])} | {_interval(u['interval'])} | {diff} |")
    return lines


def _detect_markdown(detect: dict, t_cols: Sequence[str], tasks: Sequence[str]) -> list[str]:
    lines = [
        "",
        f"## Reference-free detect ({detect['targets']} target rows, no reference image)",
        "",
        "| method | " + " | ".join(f"PCK@{t}" for t in t_cols) + " | confidence AUC (hit vs miss @0.1) "
        "| mean confidence hit / miss |",
        "|---" * (1 + len(t_cols) + 2) + "|",
    ]
    for row in detect["rows"]:
        r = row["results"]
        conf = r.get("confidence")
        auc = f"{conf['auc']:.2f}" if conf and conf["auc"] is not None and conf["auc"] == conf["auc"] else "-"
        means = f"{conf['mean_hit']:.2f} / {conf['mean_miss']:.2f}" if conf and conf["hits"] and conf["misses"] else "-"
        lines.append(
            f"| {row['name']} | " + " | ".join(_fmt(r["overall"][t]) for t in t_cols) + f" | {auc} | {means} |"
        )
    lines += ["", "| detect, PCK@0.1 | " + " | ".join(tasks) + " |", "|---" * (1 + len(tasks)) + "|"]
    for row in detect["rows"]:
        per = row["results"]["per_task"]
        lines.append(f"| {row['name']} | " + " | ".join(_fmt(per[t]["0.1"]) if t in per else "-" for t in tasks) + " |")
    return lines
