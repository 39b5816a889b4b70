"""Scoring a classifier on the behavioural suite, and the Markdown tables of its results and contents."""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harmscan.eval.suite.cases import check_split, definitions, expected_text, functionalities, load_suite
from harmscan.eval.suite.generator import SuiteCase

# The bar for the shipped model: overall pass rate, worst functionality, obfuscation recall gap.
TARGET_OVERALL = 0.90
TARGET_MIN_FUNCTIONALITY = 0.70
TARGET_OBFUSCATION_GAP = 0.05
MAX_FAILED_EXAMPLES = 3


# -- scoring ---------------------------------------------------------------------------------------------
def _predict(classifier: Any, texts: list[str], batch_size: int, progress: bool) -> Any:
    import numpy as np
    from tqdm.auto import tqdm

    chunks = []
    with tqdm(total=len(texts), desc="suite", unit="text", disable=not progress) as bar:
        for start in range(0, len(texts), batch_size):
            batch = texts[start : start + batch_size]
            chunks.append(np.asarray(classifier.predict_proba(batch), dtype=np.float64))
            bar.update(len(batch))
    return np.concatenate(chunks) if chunks else np.zeros((0, len(classifier.labels)))


def _rate(passed: int, n: int) -> float | None:
    return passed / n if n else None


def evaluate_suite(
    classifier: Any,
    split: str = "test",
    *,
    cases: Sequence[SuiteCase] | None = None,
    batch_size: int = 256,
    progress: bool = True,
) -> dict[str, Any]:
    """Score every case with the classifier's probabilities and its policy's thresholds.

    `classifier` needs `labels`, `predict_proba(texts) -> [n, L]` and `policy.flags(probs, labels)` (a
    HarmClassifier). A case passes when, for every head with a known gold label that the classifier has,
    the flag equals the gold label. Returns {"split", "thresholds", "functionalities": [{name, family, head,
    expected, n, passed, pass_rate, failed_examples}], "families", "overall", "obfuscation", "checks"}.
    """
    check_split(split)
    cases = list(cases) if cases is not None else load_suite(split)
    labels = list(classifier.labels)
    index = {h: j for j, h in enumerate(labels)}
    texts = list(dict.fromkeys([c.text for c in cases] + [c.plain_text for c in cases if c.plain_text]))
    probs = _predict(classifier, texts, batch_size, progress)
    flags = classifier.policy.flags(probs, labels)
    row = {t: i for i, t in enumerate(texts)}

    funcs, _ = definitions()
    meta = {f.name: f for f in funcs}
    per_func: dict[str, dict[str, Any]] = {}
    for case in cases:
        known = {h: v for h, v in case.labels.items() if v is not None and h in index}
        if not known:
            continue  # nothing this classifier can be judged on (a custom taxonomy without these heads)
        i = row[case.text]
        ok = all(bool(flags[i, index[h]]) == bool(v) for h, v in known.items())
        func = meta.get(case.functionality)
        entry = per_func.setdefault(case.functionality, {
            "name": case.functionality,
            "family": func.family if func else "",
            "head": "+".join(func.heads) if func else "",
            "expected": expected_text(func.labels if func else case.labels, labels),
            "n": 0, "passed": 0, "failed_examples": [],
        })
        entry["n"] += 1
        entry["passed"] += int(ok)
        if not ok and len(entry["failed_examples"]) < MAX_FAILED_EXAMPLES:
            entry["failed_examples"].append({
                "text": case.text,
                "expected": expected_text(known),
                "scores": {h: round(float(probs[i, j]), 4) for h, j in index.items()},
            })
    order = [f.name for f in funcs] + sorted(set(per_func) - set(meta))
    table = [per_func[name] for name in order if name in per_func]
    for entry in table:
        entry["pass_rate"] = _rate(entry["passed"], entry["n"])

    families: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for entry in table:
        families[entry["family"]][0] += entry["n"]
        families[entry["family"]][1] += entry["passed"]
    n_all, passed_all = sum(e["n"] for e in table), sum(e["passed"] for e in table)
    obfuscation = _obfuscation_recall(cases, flags, row, index)
    rates = [e["pass_rate"] for e in table if e["pass_rate"] is not None]
    worst = min(rates) if rates else None
    gaps = [v["gap"] for v in obfuscation["per_head"].values() if v["gap"] is not None]
    overall_rate = _rate(passed_all, n_all)
    return {
        "split": split,
        "labels": labels,
        "thresholds": {h: float(t) for h, t in classifier.policy.thresholds.items()},
        "functionalities": table,
        "families": [
            {"family": fam, "n": n, "passed": p, "pass_rate": _rate(p, n)} for fam, (n, p) in sorted(families.items())
        ],
        "overall": {"n": n_all, "passed": passed_all, "pass_rate": overall_rate},
        "obfuscation": obfuscation,
        "checks": {
            f"overall_pass_rate>={TARGET_OVERALL:.2f}": overall_rate is not None and overall_rate >= TARGET_OVERALL,
            f"min_functionality>={TARGET_MIN_FUNCTIONALITY:.2f}": worst is not None
            and worst >= TARGET_MIN_FUNCTIONALITY,
            f"obfuscation_gap<={TARGET_OBFUSCATION_GAP:.2f}": bool(gaps) and max(gaps) <= TARGET_OBFUSCATION_GAP,
        },
    }


def _obfuscation_recall(
    cases: Sequence[SuiteCase], flags: Any, row: dict[str, int], index: dict[str, int]
) -> dict[str, Any]:
    """Recall on obfuscated positives next to recall on the same sentences written plainly, per head/method."""
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])  # n, plain hits, obfuscated hits
    for case in cases:
        if not case.obfuscation or not case.plain_text:
            continue
        for head, gold in case.labels.items():
            if gold != 1 or head not in index:
                continue
            j = index[head]
            for key in ((head, ""), ("", case.obfuscation), ("", "")):
                c = counts[key]
                c[0] += 1
                c[1] += int(bool(flags[row[case.plain_text], j]))
                c[2] += int(bool(flags[row[case.text], j]))

    def block(key: tuple[str, str]) -> dict[str, Any]:
        n, plain, obf = counts.get(key, [0, 0, 0])
        p, o = _rate(plain, n), _rate(obf, n)
        return {"n": n, "plain_recall": p, "obfuscated_recall": o,
                "gap": None if p is None or o is None else p - o}

    total = block(("", ""))
    return {
        "n": total["n"],
        "plain_recall": total["plain_recall"],
        "obfuscated_recall": total["obfuscated_recall"],
        "gap": total["gap"],
        "per_head": {h: block((h, "")) for h in index if counts.get((h, ""))},
        "per_method": {m: block(("", m)) for m in sorted({k[1] for k in counts if k[1]})},
    }


# -- reporting -------------------------------------------------------------------------------------------
def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def format_suite_table(result: dict[str, Any]) -> str:
    """Markdown: the overall pass rate, one row per functionality (below 70% in bold), the obfuscation gap."""
    overall = result["overall"]
    thresholds = ", ".join(f"{h} {t:.2f}" for h, t in result.get("thresholds", {}).items())
    lines = [
        f"Behavioural suite, {result.get('split', 'test')} templates: {overall['passed']:,} / {overall['n']:,} "
        f"cases passed (**{_pct(overall['pass_rate'])}**), {len(result['functionalities'])} functionalities"
        + (f"; thresholds {thresholds}" if thresholds else "") + ".",
        "",
        "| functionality | family | head | expected | n | passed | pass rate |",
        "|---|---|---|---|---:|---:|---:|",
    ]
    for e in result["functionalities"]:
        rate = _pct(e["pass_rate"])
        if e["pass_rate"] is not None and e["pass_rate"] < TARGET_MIN_FUNCTIONALITY:
            rate = f"**{rate}**"
        lines.append(
            f"| {e['name']} | {e['family']} | {e['head']} | {e['expected']} | {e['n']} | {e['passed']} | {rate} |"
        )
    obf = result.get("obfuscation") or {}
    if obf.get("n"):
        lines += [
            "",
            "Obfuscated positives vs the same sentences written plainly (recall at the thresholds above):",
            "",
            "| head / method | n | plain recall | obfuscated recall | gap (points) |",
            "|---|---:|---:|---:|---:|",
        ]
        rows = [(f"{h}", v) for h, v in obf["per_head"].items()]
        rows += [(f"method: {m}", v) for m, v in obf["per_method"].items()]
        rows.append(("all", obf))
        for name, v in rows:
            gap = "n/a" if v["gap"] is None else f"{100 * v['gap']:+.1f}"
            lines.append(
                f"| {name} | {v['n']} | {_pct(v['plain_recall'])} | {_pct(v['obfuscated_recall'])} | {gap} |"
            )
    checks = result.get("checks") or {}
    if checks:
        lines += ["", "Targets: " + "; ".join(f"{k} {'yes' if v else 'NO'}" for k, v in checks.items())]
    return "\n".join(lines) + "\n"


def format_functionality_table(examples: int = 0) -> str:
    """Markdown: every functionality with its family, gold labels, template and case counts (for the docs),
    plus `examples` test cases each (obfuscated ones shown with their plain form)."""
    header = "| functionality | family | head | expected | templates train/test | cases train/test | description |"
    lines = [header + (" examples (test split) |" if examples else ""), "|---|---|---|---|---:|---:|---|"
             + ("---|" if examples else "")]
    by_func: dict[str, list[SuiteCase]] = defaultdict(list)
    for case in load_suite("test"):
        by_func[case.functionality].append(case)
    for f in functionalities():
        row = (
            f"| {f['name']} | {f['family']} | {f['head']} | {f['expected']} | "
            f"{f['templates']['train']}/{f['templates']['test']} | {f['cases']['train']}/{f['cases']['test']} | "
            f"{f['description']} |"
        )
        if examples:
            # Spread the examples over the templates rather than showing one template's fillers.
            cases = by_func[f["name"]]
            step = max(1, len(cases) // examples)
            shown = [_example(c) for c in cases[::step][:examples]]
            row += " " + "<br>".join(shown).replace("|", "\\|") + " |"
        lines.append(row)
    return "\n".join(lines) + "\n"


def _example(case: SuiteCase) -> str:
    if case.obfuscation and case.plain_text:
        # Invisible characters would vanish in the rendered docs: show them as escapes.
        shown = case.text.encode("ascii", "backslashreplace").decode() if case.obfuscation == "zero_width" \
            else case.text
        return f"{shown} ({case.obfuscation} of: {case.plain_text})"
    return case.text


def run_suite_cli(bundle_path: str | Path, split: str = "test", out: str | Path | None = None) -> int:
    """Score a bundle on the suite and print the Markdown table; `out` also saves it (.json, else Markdown)."""
    from harmscan.classifiers import HarmClassifier

    check_split(split)
    classifier = HarmClassifier.load(bundle_path)
    result = evaluate_suite(classifier, split=split, progress=sys.stderr.isatty())
    table = format_suite_table(result)
    print(table, end="")
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix == ".json":
            out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        else:
            out.write_text(table, encoding="utf-8")
    return 0
