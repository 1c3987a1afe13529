"""Draw docs/images/benchmarks.png from benchmarks/.out/results.json (peers' venv: matplotlib).

    chart.py RESULTS.json OUT.png

Left: jobs/s of each contender in W1 and W2 (median bar, min-max whisker, log scale). Right:
W3 pickup latency, p50 bar and p99 marker (log scale). One row per section.
"""

# ruff: noqa: RUF001, RUF003 (typography: ×, –, … in the report)
from __future__ import annotations

import json
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
from report import LABELS, SECTION_OF, ok

SERIES = [("w1-single", "W1 enqueue, one call each"), ("w1-bulk", "W1 enqueue, bulk"),
          ("w2-c1", "W2 drain, c=1"), ("w2-c4", "W2 drain, c=4"),
          ("w2-p2", "W2 drain, 2 processes")]
COLOURS = ["#9ecae1", "#3182bd", "#fdae6b", "#e6550d", "#a63603"]


def stats(runs: list[dict], key: str) -> tuple[float, float, float] | None:
    vals = [r[key] for r in runs if ok(r) and r.get(key)]
    return (statistics.median(vals), min(vals), max(vals)) if vals else None


def plain_log(ax, subs: tuple[float, ...] = (1, 2, 5)) -> None:
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=subs))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def label(name: str) -> str:
    return LABELS[name].replace("**", "").replace("`", "")


def main() -> None:
    with open(sys.argv[1]) as f:
        results = json.load(f)
    runs = results["runs"]
    sections = [s for s in ("postgresql", "sqlite")
                if any(SECTION_OF.get(n, "postgresql") == s for c in runs for n in runs[c])]
    members = {s: [n for n in LABELS if SECTION_OF.get(n, "postgresql") == s
                   and any(n in runs.get(c, {}) for c in runs)] for s in sections}
    fig, axes = plt.subplots(
        len(sections), 2, figsize=(15, 1.5 + 0.75 * sum(len(m) for m in members.values())),
        gridspec_kw={"width_ratios": [2.2, 1],
                     "height_ratios": [len(members[s]) for s in sections]}, squeeze=False)
    for row, section in enumerate(sections):
        names = members[section]
        ax = axes[row][0]
        height = 0.8 / len(SERIES)
        for i, (case, title) in enumerate(SERIES):
            ys, widths, lo, hi = [], [], [], []
            for j, name in enumerate(reversed(names)):
                s = stats(runs.get(case, {}).get(name, []), "rate")
                if s:
                    ys.append(j + (i - len(SERIES) / 2 + 0.5) * height)
                    widths.append(s[0])
                    lo.append(s[0] - s[1])
                    hi.append(s[2] - s[0])
            ax.barh(ys, widths, height=height, color=COLOURS[i], label=title,
                    xerr=[lo, hi], error_kw={"elinewidth": 0.8, "capsize": 1.5})
        ax.set_yticks(range(len(names)), [label(n) for n in reversed(names)], fontsize=9)
        plain_log(ax)
        ax.set_xlabel("jobs/s (median, whiskers min–max; log scale)")
        ax.set_title(f"{'PostgreSQL / Redis' if section == 'postgresql' else 'SQLite'}: "
                     "throughput", fontsize=11)
        ax.grid(axis="x", which="both", alpha=0.3)
        if row == 0:
            ax.legend(fontsize=8, loc="lower left", bbox_to_anchor=(0, 1.07), ncol=5,
                      frameon=False)

        ax = axes[row][1]
        lat = [n for n in names if n in runs.get("w3", {})]
        for j, name in enumerate(reversed(lat)):
            p50 = stats(runs["w3"][name], "p50_ms")
            p99 = stats(runs["w3"][name], "p99_ms")
            if p50:
                ax.barh(j, p50[0], color="#31a354", height=0.6,
                        xerr=[[p50[0] - p50[1]], [p50[2] - p50[0]]],
                        error_kw={"elinewidth": 0.8, "capsize": 2},
                        label="p50" if j == 0 else None)
            if p99:
                ax.plot(p99[0], j, "k|", markersize=14, mew=2,
                        label="p99" if j == 0 else None)
        ax.set_yticks(range(len(lat)), [label(n) for n in reversed(lat)], fontsize=9)
        plain_log(ax, (1,))
        ax.set_xlabel("ms from enqueue to start (log scale)")
        ax.set_title("W3 pickup latency, idle worker", fontsize=11)
        ax.grid(axis="x", which="both", alpha=0.3)
        if row == 0:
            ax.legend(fontsize=8, loc="lower left", bbox_to_anchor=(0, 1.07), ncol=2,
                      frameon=False)
    for ax in axes.flat:
        for tick in ax.get_yticklabels():
            if tick.get_text().startswith("django-edgejobs"):
                tick.set_fontweight("bold")
    m = results["machine"]
    fig.suptitle(f"django-edgejobs and its peers — {m['cpus']} CPUs, PostgreSQL "
                 f"{m['postgresql']}, Redis {m['redis']}, {m['started']}, {results['reps']} "
                 "repetition(s)", fontsize=11)
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=110)


if __name__ == "__main__":
    main()
