"""Render an evaluation report as JSON, Markdown and one self-contained HTML file (images inlined).

The report is a plain dict (built by `harmscan.eval.evaluate`); figures are {"value", "ci95"} pairs.
Images are kept out of the JSON and passed separately as {section id: [(caption, base64 PNG), ...]}.
Every section always has its heading; a section that did not run says why.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harmscan.eval.jsonutil import jsonable

# (id, heading) in report order; the HTML and Markdown both use these headings. External validation comes
# first: sources never trained on are what model and recipe decisions are made on.
SECTIONS: tuple[tuple[str, str], ...] = (
    ("external", "External validation"),
    ("summary", "Summary"),
    ("per-source", "Per label × source"),
    ("curves", "PR and ROC curves"),
    ("reliability", "Reliability diagrams"),
    ("histograms", "Score histograms"),
    ("threshold-curves", "Precision and recall vs threshold"),
    ("policy", "Thresholds and policy"),
    ("identity-audit", "Identity-term audit"),
    ("suite", "Behavioural suite"),
    ("benchmarks", "Public benchmarks"),
)
METRIC_HEADERS = (
    ("roc_auc", "ROC-AUC"), ("auprc", "AUPRC"), ("precision", "precision"), ("recall", "recall"),
    ("f1", "F1"), ("fpr", "FPR"), ("ece", "ECE"), ("brier", "Brier"),
)
Images = Mapping[str, Sequence[tuple[str, str]]]


# -- formatting ------------------------------------------------------------------------------------------
def fmt(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and x != x):
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def fmt_ci(fig: Mapping[str, Any] | None, digits: int = 3) -> str:
    """"0.912 [0.893, 0.930]" from {"value", "ci95"}."""
    if not fig or fig.get("value") is None:
        return "–"
    lo, hi = (fig.get("ci95") or [None, None])[:2]
    if lo is None or hi is None:
        return fmt(fig["value"], digits)
    return f"{fmt(fig['value'], digits)} [{fmt(lo, digits)}, {fmt(hi, digits)}]"


def _pct(fig: Mapping[str, Any] | None) -> str:
    if not fig or fig.get("value") is None:
        return "–"
    lo, hi = fig.get("ci95") or [None, None]
    ci = f" [{100 * lo:.1f}, {100 * hi:.1f}]" if lo is not None and hi is not None else ""
    return f"{100 * fig['value']:.1f}%{ci} (n={fig.get('n', 0):,})"


# -- tables as data: (header, rows) shared by both renderers ----------------------------------------------
Table = tuple[list[str], list[list[str]]]


def summary_table(report: Mapping[str, Any]) -> Table:
    header = ["label", "n", "positives", "threshold"] + [h for _, h in METRIC_HEADERS]
    rows = []
    thresholds = (report.get("policy") or {}).get("thresholds") or {}
    for label, fig in (report.get("summary") or {}).items():
        rows.append(
            [label, fmt(fig["n"]), f"{fmt(fig['n_pos'])} ({fmt(fig['positive_rate'])})", fmt(thresholds.get(label))]
            + [fmt_ci(fig.get(k)) for k, _ in METRIC_HEADERS]
        )
    return header, rows


def source_tables(report: Mapping[str, Any]) -> dict[str, Table]:
    out = {}
    for label, by_source in (report.get("per_source") or {}).items():
        header = ["source", "n", "positives"] + [h for _, h in METRIC_HEADERS]
        rows = [
            [src, fmt(fig["n"]), fmt(fig["n_pos"])] + [fmt_ci(fig.get(k)) for k, _ in METRIC_HEADERS]
            for src, fig in by_source.items()
        ]
        out[label] = (header, rows)
    return out


def _external_heads(report: Mapping[str, Any]) -> list[str]:
    sources = (report.get("external") or {}).get("sources") or []
    heads: list[str] = []
    for src in sources:
        heads += [h for h in src.get("heads") or {} if h not in heads]
    return heads


def external_table(report: Mapping[str, Any]) -> Table | None:
    """One row per external source: kind, rows, any-head FPR on benign rows, recall and AUPRC per head."""
    sources = (report.get("external") or {}).get("sources") or []
    if not sources:
        return None
    heads = _external_heads(report)
    header = (["source", "kind", "rows", "benign rows", "any-head FPR on benign [95% CI]"]
              + [f"recall {h}" for h in heads] + [f"AUPRC {h}" for h in heads])
    rows = []
    for src in sources:
        by_head = src.get("heads") or {}
        rows.append(
            [src["name"], str(src.get("kind", "–")), fmt(src.get("rows")), fmt(src.get("benign_rows")),
             _pct(src.get("any_head_fpr"))]
            + [_pct((by_head.get(h) or {}).get("recall")) for h in heads]
            + [fmt_ci((by_head.get(h) or {}).get("auprc")) for h in heads]
        )
    return header, rows


def external_source_tables(src: Mapping[str, Any]) -> list[tuple[str, Table]]:
    """Per head of one external source, then its most confident false positives."""
    hrows = [
        [head, fmt(h.get("pos")), fmt(h.get("neg")), fmt(h.get("unknown")), fmt(h.get("threshold"), 4),
         _pct(h.get("fpr")), _pct(h.get("recall")), fmt_ci(h.get("auprc")), fmt_ci(h.get("roc_auc"))]
        for head, h in (src.get("heads") or {}).items()
    ]
    tables: list[tuple[str, Table]] = [(
        "per head",
        (["head", "positives", "negatives", "unknown", "threshold", "FPR on negatives", "recall", "AUPRC",
          "ROC-AUC"], hrows),
    )]
    fps = src.get("top_false_positives") or []
    if fps:
        frows = [
            [fmt(fp.get("index")), str(fp.get("id") or "–"), ", ".join(fp.get("flagged_against_label") or []),
             ", ".join(f"{h} {v:.3f}" for h, v in (fp.get("scores") or {}).items()),
             " ".join(str(fp.get("text") or "").split())]
            for fp in fps
        ]
        tables.append((
            f"most confident false positives ({fmt(src.get('false_positive_rows'))} rows flagged against a known 0)",
            (["row", "id", "flagged", "scores", "text (first 200 characters)"], frows),
        ))
    return tables


def _external_intro(report: Mapping[str, Any]) -> list[str]:
    ext = report.get("external") or {}
    if not ext:
        return []
    thresholds = ", ".join(f"{k} {v:.3f}" for k, v in (ext.get("thresholds") or {}).items())
    if ext.get("origin") == "recipe":
        never = ("These sources were never trained on: the recipe holds them out whole (`external:`), and every "
                 "training, validation or test row with the same text was dropped.")
    else:
        trained = [s["name"] for s in ext.get("sources") or [] if s.get("trained_on")]
        never = (f"Sources given with --external-sources; the bundle's training record names {', '.join(trained)}: "
                 "those figures are in-domain, not external." if trained else
                 "Sources given with --external-sources; none is among the bundle's recorded training sources.")
    lines = [never, f"Flagged at the policy's thresholds ({thresholds}); benign rows label no head 1 and some "
                    "head 0, and a flag on a known-0 head is a false positive. Intervals: Wilson for rates, "
                    "bootstrap for AUPRC."]
    for name, why in (ext.get("unavailable") or {}).items():
        lines.append(f"Not scored: {name}: {why}")
    return lines


def calibration_table(report: Mapping[str, Any]) -> Table | None:
    cal = report.get("calibration") or {}
    rows = [
        [label, fmt(r.get("positive_rate")), fmt(r.get("ece_before"), 4), fmt(r.get("ece_after"), 4),
         fmt(r.get("brier_before"), 4), fmt(r.get("brier_after"), 4)]
        for label, r in (cal.get("per_label") or {}).items()
    ]
    if not rows:
        return None
    return ["label", "positive rate", "ECE before", "ECE after", "Brier before", "Brier after"], rows


def int8_gate_table(report: Mapping[str, Any]) -> tuple[list[str], Table] | None:
    """(verdict lines, per-label table) of the bundle's int8 task-level gate against fp32, if it has one."""
    gate = report.get("int8_gate")
    if not gate or gate.get("gate") != "task-level":
        return None
    crit = gate.get("criteria") or {}

    def mark(name: str) -> str:
        c = crit.get(name) or {}
        return {True: "ok", False: "FAIL", None: "–"}[c.get("passed")]

    rows = [
        [label, fmt(r.get("auprc_fp32"), 4), fmt(r.get("auprc_int8"), 4), mark(f"auprc:{label}"),
         fmt(r.get("ece_fp32"), 4), fmt(r.get("ece_int8"), 4), mark(f"ece:{label}")]
        for label, r in (gate.get("labels") or {}).items()
    ]
    lines = [
        f"int8 gate: {str(gate.get('status')).upper()} on {gate.get('texts')} texts ({gate.get('validation')}); "
        f"identical flags {fmt(gate.get('flag_agreement'), 4)} (need ≥ {gate.get('limits', {}).get('min_flag_agreement')}), "
        f"|Δp| max {fmt(gate.get('max_abs_diff'), 3)} / p99 {fmt(gate.get('p99_abs_diff'), 3)} / "
        f"mean {fmt(gate.get('mean_abs_diff'), 4)} (recorded, not gated)."
    ]
    if gate.get("benign_fpr_fp32") is not None:
        lines.append(f"Benign any-head FPR: fp32 {fmt(gate['benign_fpr_fp32'], 4)}, int8 {fmt(gate.get('benign_fpr_int8'), 4)}.")
    lines += [f"Failed: {f}" for f in gate.get("failures") or []]
    if gate.get("pending_reason"):
        lines.append(f"Pending: {gate['pending_reason']}; `harmscan thresholds` measures it again.")
    header = ["label", "AUPRC fp32", "AUPRC int8", "", "ECE fp32", "ECE int8", ""]
    return lines, (header, rows)


def policy_tables(report: Mapping[str, Any]) -> list[tuple[str, Table]]:
    pol = report.get("policy") or {}
    meta = pol.get("meta") or {}
    objective = meta.get("objective")
    objectives: Mapping[str, Any] = objective if isinstance(objective, Mapping) else {}
    rows = []
    for label, t in (pol.get("thresholds") or {}).items():
        val = (meta.get("validation") or {}).get(label) or {}
        test = (meta.get("test") or {}).get(label) or {}
        rows.append([
            label, fmt(t, 4), str(objectives.get(label, meta.get("objective", "–"))),
            fmt(val.get("precision")), fmt(val.get("recall")), fmt(val.get("fpr")),
            fmt_ci(test.get("precision")), fmt_ci(test.get("recall")), fmt_ci(test.get("fpr")),
        ])
    tables = [(
        "thresholds",
        (["label", "threshold", "objective", "val precision", "val recall", "val FPR",
          "test precision", "test recall", "test FPR"], rows),
    )]
    prev = meta.get("test_at_prevalence") or {}
    if prev:
        prow = [[label, fmt((meta.get("prevalence") or {}).get(label), 4), fmt_ci(f.get("precision")),
                 fmt_ci(f.get("recall")), fmt_ci(f.get("f1"))] for label, f in prev.items()]
        tables.append(("at the stated prevalence (test re-weighted)",
                       (["label", "prevalence", "precision", "recall", "F1"], prow)))
    hard = meta.get("hard_negative_fpr") or {}
    hrows = [[label, src, fmt(v.get("n")), fmt_ci(v.get("fpr"))] for label, by in hard.items() for src, v in by.items()]
    if hrows:
        tables.append(("false-positive rate on benign / hard-negative test sources",
                       (["label", "source", "n", "FPR"], hrows)))
    return tables


def audit_table(report: Mapping[str, Any]) -> Table | None:
    audit = report.get("identity_audit") or {}
    if not audit.get("groups"):
        return None
    header = ["group", "neutral held out", "FPR any head (held out)", "FPR toxicity (held out)",
              "FPR any head (all neutral)", "toxicity recall on hateful (all)"]
    rows = []
    for group, e in audit["groups"].items():
        ho, al = e["held_out"], e["all"]
        rows.append([group, fmt(ho["fpr_any"]["n"]), _pct(ho["fpr_any"]), _pct(ho.get("fpr_toxicity")),
                     _pct(al["fpr_any"]), _pct(al.get("toxicity_recall_on_hate"))])
    o_ho, o_al = audit["overall_held_out"], audit["overall_all"]
    rows.append(["all groups", fmt(o_ho["fpr_any"]["n"]), _pct(o_ho["fpr_any"]), _pct(o_ho.get("fpr_toxicity")),
                 _pct(o_al["fpr_any"]), "–"])
    return header, rows


def suite_table(report: Mapping[str, Any]) -> Table | None:
    suite = report.get("suite") or {}
    funcs = suite.get("functionalities")
    if not funcs:
        return None
    rows = [[f.get("name", ""), str(f.get("head", "")), str(f.get("expected", "")), fmt(f.get("n")),
             fmt(f.get("passed")), fmt(f.get("pass_rate"))] for f in funcs]
    return ["functionality", "head", "expected", "n", "passed", "pass rate"], rows


def benchmark_tables(bench: Mapping[str, Any]) -> list[tuple[str, Table]]:
    o = bench.get("overall") or {}
    rows = [[key, _pct(o.get(key))] for key in ("recall_unsafe", "fpr_safe", "accuracy", "flag_rate") if o.get(key)]
    rows += [[key, fmt(o.get(key))] for key in ("any_harm_auprc", "any_harm_roc_auc") if key in o]
    tables: list[tuple[str, Table]] = [("overall", (["figure", "value [95% CI]"], rows))]
    if bench.get("per_label"):
        header = ["label", "n", "positives"] + [h for k, h in METRIC_HEADERS if k not in ("ece", "brier")]
        prow = [[label, fmt(f["n"]), fmt(f["n_pos"])] + [fmt_ci(f.get(k)) for k, _ in METRIC_HEADERS
                                                         if k not in ("ece", "brier")]
                for label, f in bench["per_label"].items()]
        tables.append(("per head (mapped labels)", (header, prow)))
    for group, values in (bench.get("groups") or {}).items():
        grow = [[value, fmt(e["n"]), _pct(e.get("flag_rate")), _pct(e.get("recall")), _pct(e.get("fpr")),
                 _pct(e.get("accuracy"))] for value, e in values.items()]
        tables.append((f"by {group}", ([group, "n", "flag rate", "recall", "FPR", "accuracy"], grow)))
    return tables


# -- Markdown --------------------------------------------------------------------------------------------
def _md_table(table: Table) -> str:
    header, rows = table
    esc = [[c.replace("|", "\\|") for c in row] for row in rows]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in esc]
    return "\n".join(lines)


def render_markdown(report: Mapping[str, Any]) -> str:
    out = [f"# {report.get('title', 'harmscan evaluation report')}", ""]
    out += [f"- {k}: {v}" for k, v in _context_lines(report)]
    out += ["", "Figures are point estimates with bootstrap 95% intervals; images are in report.html.", ""]
    for w in report.get("warnings", []):
        out.append(f"> **warning:** {w}")
    for sid, heading in SECTIONS:
        out += ["", f"## {heading}", ""]
        skipped = (report.get("skipped") or {}).get(sid)
        if skipped:
            out.append(f"Not run: {skipped}")
            continue
        if sid == "external":
            intro = _external_intro(report)
            maybe = external_table(report)
            if maybe:
                out += [_md_table(maybe), ""]
            out += intro[:1]
            for src in (report.get("external") or {}).get("sources") or []:
                out += ["", f"### {src['name']} ({src.get('licence', '–')})", ""]
                for title, table in external_source_tables(src):
                    out += [f"**{title}**", "", _md_table(table), ""]
            out += intro[1:]
        elif sid == "summary":
            out.append(_md_table(summary_table(report)))
        elif sid == "per-source":
            for label, table in source_tables(report).items():
                out += [f"### {label}", "", _md_table(table), ""]
        elif sid == "reliability":
            maybe = calibration_table(report)
            if maybe:
                out += [_md_table(maybe), ""]
            out.append("Reliability diagrams: see report.html.")
        elif sid in ("curves", "histograms", "threshold-curves"):
            out.append("Images: see report.html.")
        elif sid == "policy":
            out += _policy_intro(report)
            for title, table in policy_tables(report):
                out += ["", f"**{title}**", "", _md_table(table)]
            if (gate := int8_gate_table(report)) is not None:
                out += ["", "**int8 vs fp32 (task-level gate)**", "", *gate[0], "", _md_table(gate[1])]
        elif sid == "identity-audit":
            out += _audit_intro(report)
            maybe = audit_table(report)
            if maybe:
                out += ["", _md_table(maybe)]
        elif sid == "suite":
            out += _suite_intro(report)
            maybe = suite_table(report)
            if maybe:
                out += ["", _md_table(maybe)]
        elif sid == "benchmarks":
            for bench in report.get("benchmarks") or []:
                out += [f"### {bench['name']} ({bench['path']})", "", f"Decision: {bench['decision']}.", ""]
                out += [f"- {n}" for n in bench.get("notes", [])]
                for title, table in benchmark_tables(bench):
                    out += ["", f"**{title}**", "", _md_table(table)]
                out.append("")
    return "\n".join(out).rstrip() + "\n"


def _context_lines(report: Mapping[str, Any]) -> list[tuple[str, str]]:
    b = report.get("bundle") or {}
    d = report.get("dataset") or {}
    lines = [
        ("bundle", f"{b.get('path')} (base model {b.get('base_model')}, variant {b.get('variant')}, "
                   f"provider {', '.join(b.get('providers') or [])}, fingerprint {b.get('fingerprint')})"),
        ("calibration", str(b.get("calibration_method", "none"))),
        ("policy", str((report.get("policy") or {}).get("source", "bundle"))),
    ]
    if d:
        lines.append(("dataset", f"{d.get('path')} split {d.get('split')} ({fmt(d.get('n'))} texts)"))
    lines.append(("created", str(report.get("created", ""))))
    return lines


def _policy_intro(report: Mapping[str, Any]) -> list[str]:
    pol = report.get("policy") or {}
    meta = pol.get("meta") or {}
    chosen = meta.get("chosen_on")
    how = f"chosen on {chosen}" if chosen else str(meta.get("objective", "default thresholds"))
    lines = [f"Source: {pol.get('source', 'bundle')}; {how}. A text is flagged for a label when its calibrated "
             "probability is at or over the label's threshold, in scan, serve and eval alike."]
    if meta.get("prevalence"):
        rates = ", ".join(f"{k} {v:g}" for k, v in meta["prevalence"].items())
        lines.append(f"Validation was re-weighted to the stated prevalence ({rates}) before choosing: the "
                     "validation columns are at that prevalence, the test columns at the test split's own "
                     "rates; the second table re-weights test to the stated prevalence.")
    return lines


def _audit_intro(report: Mapping[str, Any]) -> list[str]:
    a = report.get("identity_audit") or {}
    if not a:
        return []
    note = (f"{a.get('n_neutral_in_train', 0)} of {a.get('n_neutral', 0)} neutral sentences are in the train "
            "split and are left out of the held-out columns." if a.get("train_split_checked")
            else "The dataset was not given, so training sentences could not be separated: read with care.")
    spread = a.get("max_minus_min_fpr_held_out")
    return [
        f"Neutral sentences mentioning identity groups ({a.get('source')}); every flag is a false positive. {note}",
        f"Spread of held-out FPR between groups (groups with ≥ 5 sentences): {fmt(spread)}.",
    ]


def _suite_intro(report: Mapping[str, Any]) -> list[str]:
    s = report.get("suite") or {}
    o = s.get("overall") or {}
    if not o:
        return []
    return [f"Overall: {fmt(o.get('passed'))} / {fmt(o.get('n'))} cases passed ({fmt(o.get('pass_rate'))})."]


# -- HTML ------------------------------------------------------------------------------------------------
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1200px;padding:0 1rem;
color:#222}
h1{font-size:1.6rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2.2rem}
table{border-collapse:collapse;margin:.6rem 0 1.2rem;font-size:.85rem}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
.note{color:#555}.warn{background:#fff4e5;border-left:4px solid #e67e22;padding:.4rem .8rem}
figure{display:inline-block;margin:.4rem}figcaption{font-size:.8rem;color:#555}
nav a{margin-right:.8rem}
"""


def _html_table(table: Table) -> str:
    header, rows = table
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _html_images(images: Sequence[tuple[str, str]]) -> str:
    return "".join(
        f'<figure><img src="data:image/png;base64,{b64}" alt="{html.escape(cap)}">'
        f"<figcaption>{html.escape(cap)}</figcaption></figure>"
        for cap, b64 in images
    )


def _p(lines: Sequence[str]) -> str:
    return "".join(f'<p class="note">{html.escape(line)}</p>' for line in lines)


def render_html(report: Mapping[str, Any], images: Images) -> str:
    title = html.escape(report.get("title", "harmscan evaluation report"))
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{title}</title>"
             f"<style>{CSS}</style></head><body><h1>{title}</h1>"]
    parts.append("<ul>" + "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>"
                                  for k, v in _context_lines(report)) + "</ul>")
    parts.append("<nav>" + "".join(f'<a href="#{sid}">{html.escape(h)}</a>' for sid, h in SECTIONS) + "</nav>")
    parts.append(_p(["Figures are point estimates with bootstrap 95% intervals in brackets."]))
    parts += [f'<p class="warn">{html.escape(w)}</p>' for w in report.get("warnings", [])]
    for sid, heading in SECTIONS:
        parts.append(f'<section id="{sid}"><h2>{html.escape(heading)}</h2>')
        skipped = (report.get("skipped") or {}).get(sid)
        if skipped:
            parts.append(_p([f"Not run: {skipped}"]) + "</section>")
            continue
        if sid == "external":
            intro = _external_intro(report)
            maybe = external_table(report)
            if maybe:
                parts.append(_html_table(maybe))
            parts.append(_p(intro[:1]))
            for src in (report.get("external") or {}).get("sources") or []:
                parts.append(f"<h3>{html.escape(src['name'])} ({html.escape(str(src.get('licence', '–')))})</h3>")
                for t_title, table in external_source_tables(src):
                    parts.append(f"<h4>{html.escape(t_title)}</h4>{_html_table(table)}")
            parts.append(_p(intro[1:]))
        elif sid == "summary":
            parts.append(_html_table(summary_table(report)))
        elif sid == "per-source":
            for label, table in source_tables(report).items():
                parts.append(f"<h3>{html.escape(label)}</h3>{_html_table(table)}")
        elif sid == "reliability":
            maybe = calibration_table(report)
            if maybe:
                parts.append(_html_table(maybe))
        elif sid == "policy":
            parts.append(_p(_policy_intro(report)))
            for t_title, table in policy_tables(report):
                parts.append(f"<h3>{html.escape(t_title)}</h3>{_html_table(table)}")
            if (gate := int8_gate_table(report)) is not None:
                parts.append(f"<h3>int8 vs fp32 (task-level gate)</h3>{_p(gate[0])}{_html_table(gate[1])}")
        elif sid == "identity-audit":
            parts.append(_p(_audit_intro(report)))
            maybe = audit_table(report)
            if maybe:
                parts.append(_html_table(maybe))
        elif sid == "suite":
            parts.append(_p(_suite_intro(report)))
            maybe = suite_table(report)
            if maybe:
                parts.append(_html_table(maybe))
        elif sid == "benchmarks":
            for bench in report.get("benchmarks") or []:
                parts.append(f"<h3>{html.escape(bench['name'])}</h3>")
                parts.append(_p([f"File: {bench['path']}. Decision: {bench['decision']}.", *bench.get("notes", [])]))
                for t_title, table in benchmark_tables(bench):
                    parts.append(f"<h4>{html.escape(t_title)}</h4>{_html_table(table)}")
        parts.append(_html_images(images.get(sid, ())))
        parts.append("</section>")
    parts.append("</body></html>\n")
    return "".join(parts)


def write_report(report: Mapping[str, Any], images: Images, out_dir: str | Path) -> dict[str, str]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "report.json", "markdown": out / "report.md", "html": out / "report.html"}
    data = jsonable(report)
    paths["json"].write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    paths["markdown"].write_text(render_markdown(data), encoding="utf-8")
    paths["html"].write_text(render_html(data, images), encoding="utf-8")
    return {k: str(v) for k, v in paths.items()}
