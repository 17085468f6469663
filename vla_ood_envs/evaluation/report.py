"""The report of one or more evaluation runs in a folder: the paper's table (markdown and CSV), a failure table,
a bar figure, a severity-sweep figure and frame strips.

    summary = write_report("out/eval")          # every policy folder under out/eval (written by run_suite)

Layout of the table (study.md section 7): rows are the conditions grouped by axis (IND; vision; semantics;
execution), each axis closed by its mean over its conditions with the paper's degradation ratio
(OOD - IND) / IND; columns are the policies, each cell the success rate at the last step with k/n and the 95%
Wilson interval (the CSV and summary.json add the bootstrap over seeds x episodes). With two or more policies,
one more column per policy holds its difference to the reference policy (the first, or `reference`): paired
over shared factor records when the manifests agree, else Newcombe's unpaired interval (marked "unpaired").
Episodes that were attempted but abandoned, and planned ones not yet run, are counted beside every cell.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .conditions import Condition, condition_order
from .failures import CLASSES, FAILURE_LABELS
from .results import RESULTS, RUN, read_records, write_json_atomic
from .stats import (N_BOOT, axis_mean, degradation_ratio, newcombe_interval, paired_difference, summarize_rate)

AXIS_ORDER = ("IND", "vision", "semantics", "execution")
AXIS_TITLES = {"IND": "-", "vision": "Vision", "semantics": "Semantics", "execution": "Execution"}


class ReportError(ValueError):
    """A report was asked of a folder without evaluation runs, or of an unknown policy label."""


@dataclass
class Run:
    """One policy's evaluation folder: its label, run.json and the records of results.jsonl."""

    label: str
    path: Path
    meta: dict
    records: list[dict]

    def conditions(self) -> list[Condition]:
        return [Condition(**c) for c in self.meta.get("conditions", [])]

    def planned(self, key: str) -> int:
        plan = self.meta.get("plan", {})
        return plan.get("episodes", 0) * plan.get("seeds", 0) if key in plan.get("conditions", []) else 0


def load_runs(out_dir: str | Path, labels: Sequence[str] | None = None) -> list[Run]:
    """The runs in `out_dir` (each a sub-folder with run.json and results.jsonl), sorted by label, or those named.
    Raises ReportError when there is none or a label is unknown."""
    root = Path(out_dir)
    runs = []
    for meta_path in sorted(root.glob(f"*/{RUN}")):
        meta = json.loads(meta_path.read_text())
        runs.append(Run(meta.get("label", meta_path.parent.name), meta_path.parent, meta,
                        read_records(meta_path.parent / RESULTS)))
    if not runs:
        raise ReportError(f"no evaluation runs in {root} (expected <label>/run.json from `vla-ood eval`)")
    if labels:
        by = {r.label: r for r in runs}
        missing = [x for x in labels if x not in by]
        if missing:
            raise ReportError(f"no run labelled {missing} in {root}; runs: {sorted(by)}")
        runs = [by[x] for x in labels]
    return runs


def _factor_record(rec: dict) -> dict:
    """The factor record a policy was shown (the manifest without the events its own play caused)."""
    return {k: v for k, v in rec.get("manifest", {}).items() if k != "events"}


def summarize(runs: Sequence[Run], reference: str | None = None, n_boot: int = N_BOOT) -> dict:
    """Everything the tables and figures show, as a JSON-able dict (written as summary.json)."""
    conds: dict[str, Condition] = {}
    for run in runs:
        for c in run.conditions():
            conds.setdefault(c.key, c)
    order = condition_order(list(conds.values()))
    keys = sorted(conds, key=order.get)
    labels = [r.label for r in runs]
    ref = reference or labels[0]
    if ref not in labels:
        raise ReportError(f"reference policy {ref!r} is not among the runs {labels}")
    cells: dict[str, dict[str, dict]] = {}
    done: dict[str, dict[str, dict]] = {}
    for run in runs:
        cells[run.label], done[run.label] = {}, {}
        for key in keys:
            recs = [r for r in run.records if r["condition"] == key]
            ok = [r for r in recs if r.get("status") == "done"]
            abandoned = [r for r in recs if r.get("status") != "done"]
            done[run.label][key] = {r["key"]: r for r in ok}
            if not recs and not run.planned(key):
                continue
            rate = summarize_rate([r["success"] for r in ok], [r["seed_index"] for r in ok], n_boot=n_boot)
            failures = {c: sum(r["failure"] == c for r in ok) for c in CLASSES}
            cells[run.label][key] = {
                **rate.to_dict(),
                "ever_succeeded": sum(bool(r["ever_succeeded"]) for r in ok),
                "grasped_ever": sum(bool(r["grasped_ever"]) for r in ok),
                "abandoned": len(abandoned),
                "missing": max(0, run.planned(key) - len(ok) - len(abandoned)),
                "errors": sorted({r.get("error", "") for r in abandoned})[:3],
                "failures": failures,
                "mean_return": float(np.mean([r["return"] for r in ok])) if ok else math.nan,
            }
    ind_key = next((k for k in keys if conds[k].axis == "IND" and conds[k].sweep is None), None)
    axes: dict[str, dict[str, dict]] = {}
    for label in labels:
        axes[label] = {}
        ind = cells[label].get(ind_key, {}).get("rate", math.nan) if ind_key else math.nan
        for key in keys:
            if key in cells[label] and key != ind_key and conds[key].sweep is None:
                cells[label][key]["degradation"] = degradation_ratio(cells[label][key]["rate"], ind)
        for axis in AXIS_ORDER[1:]:
            members = [k for k in keys if conds[k].axis == axis and conds[k].sweep is None and k in cells[label]]
            if not members:
                continue
            per = {k: ([r["success"] for r in done[label][k].values()],
                       [r["seed_index"] for r in done[label][k].values()]) for k in members}
            mean, (lo, hi) = axis_mean(per, n_boot=n_boot)
            axes[label][axis] = {"mean": mean, "bootstrap": [lo, hi], "degradation": degradation_ratio(mean, ind),
                                 "conditions": members, "with_data": [k for k in members if per[k][0]]}
    differences: dict[str, dict[str, dict]] = {}
    for label in labels:
        if label == ref:
            continue
        diffs = {}
        for key in keys:
            a, b = done[label].get(key, {}), done[ref].get(key, {})
            shared = sorted(set(a) & set(b))
            if not shared:
                continue
            mismatched = [k for k in shared if _factor_record(a[k]) != _factor_record(b[k])]
            if mismatched:
                d, lo, hi = newcombe_interval(cells[label][key]["k"], cells[label][key]["n"], cells[ref][key]["k"],
                                              cells[ref][key]["n"])
                diffs[key] = {"diff": d, "low": lo, "high": hi, "n": len(shared), "paired": False,
                              "mismatched_factor_records": len(mismatched)}
            else:
                pd = paired_difference([a[k]["success"] for k in shared], [b[k]["success"] for k in shared],
                                       [a[k]["seed_index"] for k in shared], n_boot=n_boot)
                diffs[key] = {**pd.to_dict(), "paired": True}
        differences[label] = diffs
    return {
        "policies": labels,
        "reference": ref,
        "conditions": [conds[k].to_dict() for k in keys],
        "ind": ind_key,
        "cells": cells,
        "axes": axes,
        "differences": differences,
        "runs": {r.label: {"policy": r.meta.get("policy"), "identity": r.meta.get("identity"),
                           "plan": r.meta.get("plan"), "sessions": r.meta.get("sessions", []),
                           "wall_s": round(sum(s.get("wall_s") or 0 for s in r.meta.get("sessions", [])), 1)}
                 for r in runs},
    }


# ---------------------------------------------------------------- tables
def _f(x: float, digits: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _pct(x: float) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{100 * x:+.1f}%"


def _cell(c: dict | None) -> str:
    if not c:
        return ""
    lo, hi = c["wilson"]
    text = f"{_f(c['rate'])} ({c['k']}/{c['n']}) [{_f(lo, 2)}, {_f(hi, 2)}]"
    extra = []
    if c["abandoned"]:
        extra.append(f"{c['abandoned']} abandoned")
    if c["missing"]:
        extra.append(f"{c['missing']} not run")
    return text + (f" ({'; '.join(extra)})" if extra else "")


def _diff_cell(d: dict | None) -> str:
    if not d:
        return ""
    text = f"{d['diff']:+.3f} [{d['low']:+.2f}, {d['high']:+.2f}]"
    return text + ("" if d["paired"] else " unpaired")


def _rows(summary: dict) -> list[tuple[str, str, dict | None]]:
    """(kind, axis, condition) rows in the paper's order: conditions of each axis, then the axis mean."""
    conds = [c for c in summary["conditions"] if c["sweep"] is None]
    rows = []
    for axis in AXIS_ORDER:
        members = [c for c in conds if c["axis"] == axis]
        rows.extend(("condition", axis, c) for c in members)
        if axis != "IND" and members:
            rows.append(("mean", axis, None))
    rows.extend(("condition", c["axis"], c) for c in conds if c["axis"] not in AXIS_ORDER)
    return rows


def markdown_table(summary: dict) -> str:
    """The paper's table: conditions by axis with axis means, one column per policy (and differences)."""
    labels, ref = summary["policies"], summary["reference"]
    others = [x for x in labels if x != ref]
    head = ["axis", "condition", *labels, *[f"{x} - {ref}" for x in others]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for kind, axis, c in _rows(summary):
        if kind == "condition":
            cells = [_cell(summary["cells"][x].get(c["key"])) for x in labels]
            cells += [_diff_cell(summary["differences"][x].get(c["key"])) for x in others]
            lines.append(f"| {AXIS_TITLES.get(axis, axis)} | {c['display_name']} | " + " | ".join(cells) + " |")
        else:
            cells = []
            for x in labels:
                a = summary["axes"][x].get(axis)
                cells.append("" if not a else f"**{_f(a['mean'])}** [{_f(a['bootstrap'][0], 2)}, "
                                              f"{_f(a['bootstrap'][1], 2)}] (vs IND {_pct(a['degradation'])})"
                                              + _partial(a))
            cells += [_axis_diff(summary, x, axis) for x in others]
            lines.append(f"| {AXIS_TITLES[axis]} | **{AXIS_TITLES[axis]} mean** | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _partial(a: dict) -> str:
    """A note when an axis mean leaves out conditions that have no episodes yet."""
    have, of = len(a.get("with_data", a["conditions"])), len(a["conditions"])
    return "" if have == of else f" (over {have} of {of} conditions)"


def _axis_diff(summary: dict, label: str, axis: str) -> str:
    a, b = summary["axes"][label].get(axis), summary["axes"][summary["reference"]].get(axis)
    return "" if not a or not b else f"{a['mean'] - b['mean']:+.3f}"


def failure_table(summary: dict) -> str:
    """Per policy: counts of each failure class per condition (success included), in markdown."""
    out = []
    for label in summary["policies"]:
        head = ["condition", "n", *[FAILURE_LABELS[c] for c in CLASSES], "ever succeeded", "abandoned"]
        out.append(f"### {label}\n")
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "---|" * len(head))
        for c in summary["conditions"]:
            cell = summary["cells"][label].get(c["key"])
            if not cell:
                continue
            counts = [str(cell["failures"][k]) for k in CLASSES]
            out.append(f"| {c['display_name']} | {cell['n']} | " + " | ".join(counts)
                       + f" | {cell['ever_succeeded']} | {cell['abandoned']} |")
        out.append("")
    return "\n".join(out)


def csv_table(summary: dict) -> str:
    labels, ref = summary["policies"], summary["reference"]
    others = [x for x in labels if x != ref]
    fields = ["axis", "condition", "env_id", "key", "row"]
    for x in labels:
        fields += [f"{x}_{s}" for s in ("k", "n", "rate", "wilson_lo", "wilson_hi", "boot_lo", "boot_hi",
                                        "ever_succeeded", "abandoned", "not_run", "degradation")]
    for x in others:
        fields += [f"{x}_minus_{ref}_{s}" for s in ("diff", "lo", "hi", "paired")]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for kind, axis, c in _rows(summary):
        row: dict[str, Any] = {"axis": axis, "row": kind}
        if kind == "condition":
            row.update(condition=c["display_name"], env_id=c["env_id"], key=c["key"])
            for x in labels:
                cell = summary["cells"][x].get(c["key"])
                if cell:
                    row.update({f"{x}_k": cell["k"], f"{x}_n": cell["n"], f"{x}_rate": cell["rate"],
                                f"{x}_wilson_lo": cell["wilson"][0], f"{x}_wilson_hi": cell["wilson"][1],
                                f"{x}_boot_lo": cell["bootstrap"][0], f"{x}_boot_hi": cell["bootstrap"][1],
                                f"{x}_ever_succeeded": cell["ever_succeeded"], f"{x}_abandoned": cell["abandoned"],
                                f"{x}_not_run": cell["missing"], f"{x}_degradation": cell.get("degradation", "")})
            for x in others:
                d = summary["differences"][x].get(c["key"])
                if d:
                    row.update({f"{x}_minus_{ref}_diff": d["diff"], f"{x}_minus_{ref}_lo": d["low"],
                                f"{x}_minus_{ref}_hi": d["high"], f"{x}_minus_{ref}_paired": d["paired"]})
        else:
            row.update(condition=f"{AXIS_TITLES[axis]} mean")
            for x in labels:
                a = summary["axes"][x].get(axis)
                if a:
                    row.update({f"{x}_rate": a["mean"], f"{x}_boot_lo": a["bootstrap"][0],
                                f"{x}_boot_hi": a["bootstrap"][1], f"{x}_degradation": a["degradation"]})
        w.writerow(row)
    return buf.getvalue()


# ---------------------------------------------------------------- figures
def _sweep_points(summary: dict, label: str) -> dict[str, list[tuple[float, dict]]]:
    """wrapper -> [(alpha, cell)] from the sweep conditions, the declared image conditions and IND (alpha 0)."""
    from ..registry import declaration

    cells = summary["cells"][label]
    curves: dict[str, dict[float, dict]] = {}
    for c in summary["conditions"]:
        cell = cells.get(c["key"])
        if not cell or not cell["n"]:
            continue
        if c["sweep"]:
            curves.setdefault(c["sweep"], {})[float(c["severity"])] = cell
            continue
        for name, kwargs in declaration(c["env_id"]).wrappers:
            if name in ("DynamicTexture", "DynamicNoise"):
                curves.setdefault(name, {}).setdefault(float(kwargs.get("alpha", 0.5)), cell)
    ind = cells.get(summary["ind"]) if summary["ind"] else None
    out = {}
    for name, pts in curves.items():
        if ind and ind["n"]:
            pts.setdefault(0.0, ind)
        out[name] = sorted(pts.items())
    return out


def bar_figure(summary: dict, path: Path) -> Path:
    """Success per condition with Wilson intervals, grouped by axis, policies side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(axis, c) for kind, axis, c in _rows(summary) if kind == "condition"]
    labels = summary["policies"]
    width = 0.8 / len(labels)
    fig, ax = plt.subplots(figsize=(max(8, 0.7 * len(rows) + 2), 4.8))
    x = np.arange(len(rows))
    for i, label in enumerate(labels):
        rate, lo, hi = [], [], []
        for _, c in rows:
            cell = summary["cells"][label].get(c["key"])
            r = cell["rate"] if cell and cell["n"] else math.nan
            rate.append(r)
            lo.append(r - cell["wilson"][0] if cell and cell["n"] else 0)
            hi.append(cell["wilson"][1] - r if cell and cell["n"] else 0)
        ax.bar(x + (i - (len(labels) - 1) / 2) * width, rate, width, yerr=[lo, hi], capsize=2, label=label)
    bounds, start = [], 0
    for j in range(1, len(rows) + 1):
        if j == len(rows) or rows[j][0] != rows[start][0]:
            bounds.append((start, j - 1, rows[start][0]))
            start = j
    for a, b, axis in bounds:
        if b + 1 < len(rows):
            ax.axvline(b + 0.5, color="grey", lw=0.8, ls="--")
        ax.text((a + b) / 2, 1.06, AXIS_TITLES.get(axis, axis) if axis != "IND" else "IND", ha="center",
                fontsize=9)
    ax.set_xticks(x, [c["display_name"] for _, c in rows], rotation=45, ha="right", fontsize=8)
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("success at the last step (95% Wilson)")
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def severity_figure(summary: dict, path: Path) -> Path | None:
    """Success against the blend alpha of the dynamic texture and noise (IND at alpha 0); None without data."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {label: _sweep_points(summary, label) for label in summary["policies"]}
    if not any(len(pts) > 1 for per in curves.values() for pts in per.values()):
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for label, per in curves.items():
        for name, pts in sorted(per.items()):
            a = np.array([p for p, _ in pts])
            r = np.array([c["rate"] for _, c in pts])
            err = np.array([[c["rate"] - c["wilson"][0] for _, c in pts], [c["wilson"][1] - c["rate"] for _, c in pts]])
            ax.errorbar(a, r, yerr=err, marker="o", capsize=3, label=f"{label}: {name}")
    ax.set_xlabel("blend alpha (study: weak 0.3, strong 0.5)")
    ax.set_ylabel("success at the last step (95% Wilson)")
    ax.set_ylim(-0.02, 1.05)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def strip_sheets(runs: Sequence[Run], summary: dict, out_dir: Path) -> list[Path]:
    """One picture per condition: the saved frame strips of every policy, one row per episode, each row titled with
    the policy, the episode and its outcome; plus `strips.png` with the first strip of every condition."""
    from PIL import Image, ImageDraw

    from .suite import strip_name

    out_dir.mkdir(parents=True, exist_ok=True)
    written, overview = [], []
    for c in summary["conditions"]:
        rows = []
        for run in runs:
            recs = sorted((r for r in run.records if r["condition"] == c["key"] and r.get("status") == "done"),
                          key=lambda r: (r["seed_index"], r["episode_index"]))
            for r in recs:
                png = run.path / "strips" / f"{strip_name(c['key'], r['seed_index'], r['episode_index'])}.png"
                if png.is_file():
                    title = (f"{c['display_name']} | {run.label} | seed {r['seed']} | {FAILURE_LABELS[r['failure']]}"
                             f" | {r['instruction']}")
                    rows.append((title, Image.open(png).convert("RGB")))
        if not rows:
            continue
        sheet = _stack(rows, Image, ImageDraw)
        path = out_dir / f"{strip_name(c['key'], 0, 0).rsplit('__', 1)[0]}.png"
        sheet.save(path)
        written.append(path)
        overview.append(rows[0])
    if overview:
        path = out_dir.parent / "strips.png"
        _stack(overview, Image, ImageDraw).save(path)
        written.append(path)
    return written


def _stack(rows, Image, ImageDraw):
    title_h = 14
    width = max(img.width for _, img in rows)
    height = sum(img.height + title_h for _, img in rows)
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    y = 0
    for title, img in rows:
        draw.text((3, y + 1), title[: width // 6], fill=(0, 0, 0))
        sheet.paste(img, (0, y + title_h))
        y += img.height + title_h
    return sheet


# ---------------------------------------------------------------- everything
def write_report(out_dir: str | Path, labels: Sequence[str] | None = None, reference: str | None = None,
                 report_dir: str | Path | None = None, figures: bool = True, n_boot: int = N_BOOT) -> dict:
    """Read the runs in `out_dir` and write into `report_dir` (default `out_dir/report`): table.md (the table,
    the failure table and the sweep), table.csv, summary.json, success.png, severity.png (when there are image
    conditions), strips/ and strips.png. Returns the summary."""
    runs = load_runs(out_dir, labels)
    summary = summarize(runs, reference, n_boot=n_boot)
    rdir = Path(report_dir) if report_dir else Path(out_dir) / "report"
    rdir.mkdir(parents=True, exist_ok=True)
    text = ["## Success at the last step\n", markdown_table(summary),
            "\nCells: rate (successes/episodes) [95% Wilson interval]; axis means with a bootstrap interval over "
            "seeds x episodes and the degradation ratio (OOD - IND) / IND.\n"]
    sweep = sweep_table(summary)
    if sweep:
        text += ["\n## Severity sweep of the image conditions\n", sweep]
    text += ["\n## Outcomes (failure classes)\n", failure_table(summary)]
    (rdir / "table.md").write_text("\n".join(text))
    (rdir / "table.csv").write_text(csv_table(summary))
    write_json_atomic(rdir / "summary.json", summary)
    if figures:
        summary["figures"] = [str(bar_figure(summary, rdir / "success.png"))]
        sev = severity_figure(summary, rdir / "severity.png")
        if sev:
            summary["figures"].append(str(sev))
        summary["figures"] += [str(p) for p in strip_sheets(runs, summary, rdir / "strips")]
    return summary


def sweep_table(summary: dict) -> str:
    """Success per alpha for each swept wrapper and policy (markdown), or "" without sweep data."""
    lines = []
    for label in summary["policies"]:
        for name, pts in sorted(_sweep_points(summary, label).items()):
            if len(pts) < 2:
                continue
            if not lines:
                lines += ["| policy | perturbation | " + " | ".join(["alpha -> success"]) + " |", "|---|---|---|"]
            cells = ", ".join(f"{a:g}: {_f(c['rate'])} ({c['k']}/{c['n']})" for a, c in pts)
            lines.append(f"| {label} | {name} | {cells} |")
    return "\n".join(lines) + ("\n" if lines else "")
