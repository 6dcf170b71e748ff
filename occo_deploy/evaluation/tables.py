"""Tables as infrared-visible fusion papers lay them out: a row per method, a column block per data
set, the mean of each metric; the best value of each column in bold (all ten metrics are
higher-is-better in these papers)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

from occo_deploy.errors import InputError

#: Mean metric values: table[dataset][method][metric], None where a convention has no such metric.
Means = dict[str, dict[str, dict[str, "float | None"]]]

TABLE_SUFFIXES = (".md", ".csv", ".tex")


def check_table_path(path: Path) -> None:
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise InputError(f"--table writes Markdown, CSV or LaTeX by suffix; name it .md, .csv or .tex "
                         f"(got {path.name})")


def _best(means: Means, dataset: str, metric: str) -> float | None:
    values = [value for row in means[dataset].values() if (value := row.get(metric)) is not None]
    return max(values) if values else None


def _cell(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render(means: Means, metrics: Sequence[str], fmt: str, caption: str = "", digits: int = 3) -> str:
    """The table in ``fmt`` ("md", "csv" or "tex")."""
    datasets = list(means)
    methods = list(dict.fromkeys(m for d in datasets for m in means[d]))

    def value(d: str, m: str, k: str) -> float | None:
        return means[d].get(m, {}).get(k)

    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["method", *(f"{d} {k}" for d in datasets for k in metrics)])
        for m in methods:
            writer.writerow([m, *("" if value(d, m, k) is None else f"{value(d, m, k):.6g}"
                                  for d in datasets for k in metrics)])
        return buf.getvalue()

    def cell(d: str, m: str, k: str, bold: tuple[str, str]) -> str:
        v = value(d, m, k)
        text = _cell(v, digits)
        best = _best(means, d, k)
        if v is not None and best is not None and len(methods) > 1 and round(v, digits) == round(best, digits):
            return f"{bold[0]}{text}{bold[1]}"
        return text

    if fmt == "md":
        lines = [f"*{caption}*", ""] if caption else []
        lines.append("| method | " + " | ".join(f"{d} {k}" if len(datasets) > 1 else k
                                                 for d in datasets for k in metrics) + " |")
        lines.append("|---|" + "---:|" * (len(datasets) * len(metrics)))
        for m in methods:
            lines.append(f"| {m} | " + " | ".join(cell(d, m, k, ("**", "**")) for d in datasets for k in metrics)
                         + " |")
        return "\n".join(lines) + "\n"
    if fmt == "tex":
        def esc(text: str) -> str:
            return text.replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("&", r"\&").replace("%", r"\%")

        cols = "l" + ("|" + "c" * len(metrics)) * len(datasets)
        lines = [r"\begin{table}[t]", r"\centering"]
        if caption:
            lines.append(rf"\caption{{{esc(caption)}}}")
        lines += [rf"\begin{{tabular}}{{{cols}}}", r"\hline"]
        lines.append(" & " + " & ".join(rf"\multicolumn{{{len(metrics)}}}{{c}}{{{esc(d)}}}" for d in datasets)
                     + r" \\")
        lines.append("Method & " + " & ".join(esc(k) for _ in datasets for k in metrics) + r" \\ \hline")
        for m in methods:
            lines.append(esc(m) + " & " + " & ".join(cell(d, m, k, (r"\textbf{", "}"))
                                                     for d in datasets for k in metrics) + r" \\")
        lines += [r"\hline", r"\end{tabular}", r"\end{table}"]
        return "\n".join(lines) + "\n"
    raise InputError(f"unknown table format {fmt!r}; use md, csv or tex")


def format_for(path: Path) -> str:
    check_table_path(path)
    return path.suffix.lower().lstrip(".")
