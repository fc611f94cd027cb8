"""Figure 3 of the RACL paper (a: accuracy vs PGD iterations; b, c: accuracy vs eps for PGD and
FGSM) and a heat map of the Table 3 transfer matrix, as PNG and PDF without timestamps; the
paper's stated Figure 3 values are overlaid as hollow markers, each curve carries its 95 %
Wilson band and each heat-map cell its interval (docs/decisions/report.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.report.labels import display
from bench.report.paper import RACL
from bench.report.selection import Measure
from bench.report.sweeps import Sweep
from bench.report.table_model import Table

OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
LINESTYLES = ("-", "--", ":", "-.")
PNG_META = {"Software": None}
PDF_META = {"Creator": None, "Producer": None, "CreationDate": None}
DPI = 110
ROBNET_GAP_PGD100 = {"robnet_small": 0.97, "robnet_medium": 0.08}  # Sec. 3.4 of the paper
TITLES = {
    "figure3a": "Figure 3a: accuracy vs PGD iterations",
    "figure3b": "Figure 3b: accuracy vs perturbation budget (PGD)",
    "figure3c": "Figure 3c: accuracy vs perturbation budget (FGSM)",
    "transfer_heatmap": "Transfer matrix (Table 3): accuracy under transferred PGD",
    "figure3a_effort": "Figure 3a by effort: accuracy vs backward passes per image",
}


@dataclass(frozen=True)
class Style:
    color: str
    marker: str
    linestyle: str


def styles_for(models: list[str]) -> dict[str, Style]:
    """A stable style per model (sorted names), shared by every figure of a report."""
    out = {}
    for i, model in enumerate(sorted(set(models))):
        color = OKABE_ITO[i % len(OKABE_ITO)]
        linestyle = LINESTYLES[(i // len(OKABE_ITO)) % len(LINESTYLES)]
        out[model] = Style(color, MARKERS[i % len(MARKERS)], linestyle)
    return out


def paper_points(paper: dict) -> dict[str, dict[int, float]]:
    """The paper's Figure 3a values from its text: ``{paper_row: {iterations: accuracy}}``."""
    text = paper.get("figure3_text_values", {}).get("pgd_iterations", {})
    points = {
        row: {int(k[3:]): float(v) for k, v in vals.items() if k.startswith("PGD")}
        for row, vals in text.items()
        if isinstance(vals, dict)
    }
    racl100 = points.get(RACL, {}).get(100)
    if racl100 is not None:
        for row, gap in ROBNET_GAP_PGD100.items():
            points.setdefault(row, {})[100] = round(racl100 - gap, 2)
    return points


def _new_figure(width: float = 5.6, height: float = 3.8):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def _save(fig, out_dir: Path, stem: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    png, pdf = out_dir / f"{stem}.png", out_dir / f"{stem}.pdf"
    fig.savefig(png, format="png", dpi=DPI, metadata=PNG_META)
    fig.savefig(pdf, format="pdf", metadata=PDF_META)
    return [png, pdf]


def sweep_figure(
    sweep: Sweep,
    styles: dict[str, Style],
    out_dir: Path,
    paper_rows: dict[str, str],
    paper: dict,
    dataset_label: str,
) -> list[Path]:
    """Plot one Figure 3 panel; ``paper_rows`` maps store model -> paper row for the overlay."""
    fig, ax = _new_figure()
    for s in sweep.series:
        st = styles[s.model]
        ax.plot(
            s.x,
            s.y,
            color=st.color,
            marker=st.marker,
            linestyle=st.linestyle,
            markersize=5,
            linewidth=1.5,
            label=s.model,
        )
        if s.low and s.high:
            ax.fill_between(s.x, s.low, s.high, color=st.color, alpha=0.15, linewidth=0)
    if sweep.axis == "steps":
        _overlay_paper(ax, sweep, styles, paper_rows, paper)
        from matplotlib.ticker import NullFormatter

        ax.set_xscale("log")
        ticks = sorted({int(x) for s in sweep.series for x in s.x})
        ax.set_xticks(ticks, labels=[str(t) for t in ticks])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("PGD iterations (log scale)")
    else:
        ax.set_xlabel("perturbation budget eps (L-inf, pixel scale [0, 1])")
    ax.set_ylabel("accuracy under attack (%), 95 % band")
    attack = sweep.attack.upper()
    training = sweep.training or "-"
    ax.set_title(f"{TITLES[sweep.key]}\n{dataset_label}, {attack}, training {training}", fontsize=9)
    ax.grid(True, linewidth=0.4, alpha=0.5)
    ax.legend(fontsize=7, loc="best", frameon=False)
    fig.tight_layout()
    return _save(fig, out_dir, sweep.key)


def effort_figure(sweep: Sweep, autoattack: dict[str, Measure], styles: dict[str, Style],
                  out_dir: Path, dataset_label: str) -> list[Path]:  # fmt: skip
    """Figure 3a on the effort axis: each model's PGD sweep at the backward passes per image its
    points spent, and its AutoAttack cell (a star) on the same axis (AttackBench's view)."""
    fig, ax = _new_figure()
    for s in sweep.series:
        st = styles[s.model]
        pts = [(p.backward_passes, p.accuracy) for p in s.points if p.backward_passes]
        if pts:
            ax.plot(*zip(*pts, strict=True), color=st.color, marker=st.marker,
                    linestyle=st.linestyle, markersize=5, linewidth=1.5,
                    label=f"{s.model} PGD")  # fmt: skip
        aa = autoattack.get(s.model)
        if aa is not None and aa.backward_passes:
            ax.plot([aa.backward_passes], [aa.accuracy], color=st.color, marker="*",
                    markersize=12, linestyle="none", label=f"{s.model} AutoAttack")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("backward passes per image spent by the attack (log scale)")
    ax.set_ylabel("accuracy under attack (%)")
    ax.set_title(f"{TITLES['figure3a_effort']}\n{dataset_label}, training {sweep.training or '-'}",
                 fontsize=9)  # fmt: skip
    ax.grid(True, linewidth=0.4, alpha=0.5)
    ax.legend(fontsize=6, loc="best", frameon=False)
    fig.tight_layout()
    return _save(fig, out_dir, "figure3a_effort")


def _overlay_paper(ax, sweep: Sweep, styles: dict[str, Style], paper_rows, paper: dict) -> None:
    points = paper_points(paper)
    by_row = {paper_rows.get(s.model, s.model): s.model for s in sweep.series}
    drawn = False
    for row, pts in sorted(points.items()):
        model = by_row.get(row)
        color = styles[model].color if model else "#777777"
        marker = styles[model].marker if model else "o"
        xs, ys = zip(*sorted(pts.items()), strict=True)
        ax.plot(
            xs,
            ys,
            linestyle="none",
            marker=marker,
            markersize=8,
            markerfacecolor="none",
            markeredgecolor=color,
            markeredgewidth=1.4,
        )
        drawn = True
    if drawn:
        names = ", ".join(display(r) for r in sorted(points))
        ax.plot(
            [],
            [],
            linestyle="none",
            marker="o",
            markerfacecolor="none",
            markeredgecolor="#333333",
            label=f"paper, CIFAR-10 ({names})",
        )


def heatmap_figure(table: Table, out_dir: Path, dataset_label: str) -> list[Path]:
    """Annotated heat map of our transfer matrix (rows = source, columns = target)."""
    data = np.array([[np.nan if c.ours is None else c.ours for c in r.cells] for r in table.rows])
    k = len(table.rows)
    fig, ax = _new_figure(1.6 + 1.0 * k, 1.2 + 0.8 * k)
    image = ax.imshow(np.ma.masked_invalid(data), cmap="viridis", vmin=0, vmax=100)
    ax.set_xticks(range(k), labels=table.columns, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(k), labels=[r.label for r in table.rows], fontsize=8)
    ax.set_xlabel("target model (attacked with transferred examples)")
    ax.set_ylabel("source model (examples crafted on)")
    for i in range(k):
        for j in range(k):
            value = data[i, j]
            text = "-" if np.isnan(value) else f"{value:.1f}"
            ci = table.rows[i].cells[j].ci
            if ci is not None:
                text += f"\n[{ci[0]:.0f}, {ci[1]:.0f}]"
            color = "black" if not np.isnan(value) and value > 60 else "white"
            weight = "bold" if i == j else "normal"
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color=color, weight=weight)
    fig.colorbar(image, ax=ax, label="accuracy (%)")
    title = f"{TITLES['transfer_heatmap']}\n{dataset_label}; diagonal = white-box; [95 % interval]"
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, out_dir, "transfer_heatmap")
