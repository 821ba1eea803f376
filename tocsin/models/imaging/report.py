"""Markdown tables of an artifact's measured quality (held-back simulated data)."""

from __future__ import annotations

from tocsin.models.imaging.artifacts import ImagingArtifact

_MODE = {"paired": "CT+MR", "ct": "CT only", "mr": "MR only"}


def _f(v) -> str:
    return "n/a" if v is None or v != v else f"{v:.3f}"


def quality_markdown(art: ImagingArtifact) -> str:
    q, spec = art.meta["quality"], art.meta["specificity"]
    s = f"{spec:g}"
    lines = [f"Model {art.version}; SIMULATED held-back data; sensitivity at specificity {s} "
             "is the ROC operating point on these cases; threshold, agreement: decision "
             "threshold chosen on separate simulated validation cases.", "",
             "| model | input | AUC | sens @ spec | AUC < 3 mm | sens @ spec < 3 mm | "
             "vendor agreement | cases (pos / < 3 mm) |", "|---|---|---|---|---|---|---|---|"]
    for model, modes in q.items():
        for mode, r in modes.items():
            lines.append(
                f"| {model} | {_MODE.get(mode, mode)} | {_f(r['auc'])} | {_f(r[f'sens@spec{s}'])} "
                f"| {_f(r['auc_small'])} | {_f(r[f'sens_small@spec{s}'])} | "
                f"{_f(r['vendor']['agreement'])} | {r['cases']} ({r['positives']} / "
                f"{r['small_positives']}) |")
    d = art.meta.get("int8_vs_fp32", {})
    if d:
        lines += ["", "INT8 vs FP32 student, |P(int8) - P(fp32)| per crop: " + "; ".join(
            f"{_MODE.get(m, m)} max {v['max_abs']:.4f}, p99 {v['p99_abs']:.4f}, mean "
            f"{v['mean_abs']:.4f}" for m, v in d.items())]
    rr = art.meta.get("roi_recall")
    if rr:
        lines += ["", "ROI recall (nodule inside one of the crops): " + "; ".join(
            f"ROIs from {src}: all {_f(v['all'])}, < 3 mm {_f(v['under_3mm'])}"
            for src, v in rr.items())]
    return "\n".join(lines)
