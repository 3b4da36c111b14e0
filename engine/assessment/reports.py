"""The accuracy reports of an evaluation: the per-class table as CSV and the whole assessment as Markdown."""

from __future__ import annotations

import csv
import io


def _fmt(v) -> str:
    return "" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v))


def report_csv(result: dict) -> str:
    buf = io.StringIO()
    cols = ["index", "name", "reference_pixels", "map_pixels", "correct", "producers_accuracy",
            "users_accuracy", "f1", "iou"]
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for row in result["per_class"]:
        w.writerow([_fmt(row[c]) for c in cols])
    return buf.getvalue()


def report_markdown(result: dict) -> str:
    def pct(v) -> str:
        return "–" if v is None else f"{100 * v:.2f} %"

    def num(v) -> str:
        return "–" if v is None else f"{v:.4f}"

    lines = [
        "# Accuracy assessment", "",
        f"- Map: `{result['map']}`",
        f"- Reference: `{result['reference']}` ({result['reference_kind']}"
        + (", resampled onto the map's grid" if result.get("regridded") else "") + ")",
        f"- Legend: {result['legend']} ({result['num_classes']} classes)",
        f"- Pixels compared: {result['pixels']:,} (reference-labelled and mapped); "
        f"reference-labelled but unmapped: {result['unmapped_pixels']:,}", "",
        "| score | value |", "|---|---:|",
        f"| overall accuracy | {pct(result['overall_accuracy'])} |",
        f"| Cohen's kappa | {num(result['kappa'])} |",
        f"| mean IoU (classes in the reference) | {pct(result['miou_present'])} |",
        f"| mean F1 (classes in the reference) | {pct(result['mf1_present'])} |",
        f"| mean IoU (all classes present in either) | {pct(result['miou_all'])} |",
        f"| mean F1 (all classes present in either) | {pct(result['mf1_all'])} |", "",
        "## Per class", "",
        "| class | reference px | map px | correct | producer's acc. | user's acc. | F1 | IoU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    shown = [r for r in result["per_class"] if r["reference_pixels"] or r["map_pixels"]]
    for r in shown:
        lines.append(f"| {r['index']} {r['name']} | {r['reference_pixels']:,} | {r['map_pixels']:,} | "
                     f"{r['correct']:,} | {pct(r['producers_accuracy'])} | {pct(r['users_accuracy'])} | "
                     f"{pct(r['f1'])} | {pct(r['iou'])} |")
    idx = [r["index"] for r in shown]
    m = result["confusion_matrix"]
    lines += ["", "## Confusion matrix", "", "Rows: reference; columns: map (0 = unmapped).", "",
              "| reference \\ map | " + " | ".join(str(i) for i in idx) + " | 0 | total |",
              "|---|" + "---:|" * (len(idx) + 2)]
    for i in idx:
        lines.append(f"| {i} {result['names'][i]} | " + " | ".join(f"{m[i][j]:,}" for j in idx)
                     + f" | {m[i][0]:,} | {sum(m[i]):,} |")
    lines.append("")
    return "\n".join(lines)
