"""The report's figures as inline SVG (matplotlib, Agg backend): nothing to fetch, text kept as text."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

plt.rcParams.update({"svg.fonttype": "none", "font.size": 9, "axes.spines.top": False, "axes.spines.right": False,
                     "svg.hashsalt": "trial-warehouse"})
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
# Above this many marks (points, subject lines) in one artist it is drawn as an image inside the SVG: 10,000
# subjects as vector paths cost seconds to write and megabytes to load, and nobody reads them one by one.
RASTER_ABOVE = 2_000
RASTER_DPI = 150


def to_svg(fig) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None}, dpi=RASTER_DPI)
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def arm_colours(arms: list[str]) -> dict[str, str]:
    return {arm: COLOURS[i % len(COLOURS)] for i, arm in enumerate(arms)}


def pe_response_figure(adeff: pl.DataFrame, arms: list[str]) -> str:
    """PE response by arm and time point: every subject, with the arm's mean ± SD."""
    colours = arm_colours(arms)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    visits = ["H0", "H6", "H12"]
    width = 0.8 / max(len(arms), 1)
    rng = np.random.default_rng(0)
    for i, arm in enumerate(arms):
        for j, visit in enumerate(visits):
            values = (adeff.filter((pl.col("PARAMCD") == "PERESP") & (pl.col("AVISIT") == visit)
                                   & (pl.col("TRT01P") == arm)).get_column("AVAL").drop_nulls().to_numpy())
            x = j + (i - (len(arms) - 1) / 2) * width
            ax.scatter(x + rng.uniform(-width / 5, width / 5, values.size), values, s=10, alpha=0.55,
                       color=colours[arm], label=arm if j == 0 else None, rasterized=values.size > RASTER_ABOVE)
            if values.size > 1:
                ax.errorbar(x, values.mean(), yerr=values.std(ddof=1), fmt="o", color="black", capsize=3, ms=4)
    ax.set_xticks(range(len(visits)), visits)
    ax.set_ylabel("MAP at max PE dose / MAP before")
    ax.set_title("Phenylephrine response (mean ± SD)")
    ax.legend(frameon=False, fontsize=8)
    return to_svg(fig)


def hemodynamics_figure(hemo: pl.DataFrame, arms: list[str]) -> str:
    """MAP, NE dose, MAP/NE and heart rate over 24 h by arm: mean ± standard error (figure 3 of the paper)."""
    colours = arm_colours(arms)
    panels = [("MAP", "MAP (mmHg)"), ("NE_BASE", "NE as base (µg/kg/min)"), ("MAPNE", "MAP / NE"),
              ("HR", "Heart rate (/min)")]
    fig, axes = plt.subplots(2, 2, figsize=(8, 5), sharex=True)
    for ax, (column, label) in zip(axes.flat, panels):
        for arm in arms:
            stats = (hemo.filter(pl.col("TRT01P") == arm).group_by("HOUR")
                     .agg(pl.col(column).mean().alias("mean"), pl.col(column).std().alias("sd"),
                          pl.col(column).count().alias("n"))
                     .sort("HOUR"))
            hours = stats.get_column("HOUR").to_numpy()
            mean = stats.get_column("mean").to_numpy().astype(float)
            se = (stats.get_column("sd").fill_null(0).to_numpy() / np.sqrt(np.maximum(stats.get_column("n").to_numpy(), 1)))
            ax.plot(hours, mean, color=colours[arm], label=arm)
            ax.fill_between(hours, mean - se, mean + se, color=colours[arm], alpha=0.15, linewidth=0)
        ax.set_ylabel(label)
    for ax in axes[1]:
        ax.set_xlabel("Hours from randomisation")
    axes[0][0].legend(frameon=False, fontsize=8)
    fig.suptitle("Hemodynamics over 24 h (mean ± SE)")
    return to_svg(fig)


def subject_lines(frame: pl.DataFrame, x: str, y: str) -> list[np.ndarray]:
    """Each subject's (x, y) points in x order, as the arrays a LineCollection takes: one sort and one split of
    two columns, not a frame per subject (10,000 subjects: 2.4 s that way)."""
    frame = frame.select("USUBJID", pl.col(x).cast(pl.Float64), pl.col(y).cast(pl.Float64).fill_null(np.nan)) \
        .sort("USUBJID", x)
    if frame.height == 0:
        return []
    subjects = frame.get_column("USUBJID").to_numpy()
    starts = np.flatnonzero(subjects[1:] != subjects[:-1]) + 1
    points = np.column_stack([frame.get_column(x).to_numpy(), frame.get_column(y).to_numpy()])
    return np.split(points, starts)


def ne_trajectories_figure(hemo: pl.DataFrame, arms: list[str]) -> str:
    """Every subject's NE dose over 24 h, one panel per arm (figure 4 of the paper)."""
    colours = arm_colours(arms)
    fig, axes = plt.subplots(1, len(arms), figsize=(4 * len(arms), 3), sharey=True, squeeze=False)
    for ax, arm in zip(axes[0], arms):
        lines = subject_lines(hemo.filter(pl.col("TRT01P") == arm), "HOUR", "NE_BASE")
        # one collection of lines, not an artist per subject: 10,000 subjects draw in a second, not in twenty
        ax.add_collection(LineCollection(lines, colors=colours[arm], alpha=0.5, linewidths=1,
                                         rasterized=len(lines) > RASTER_ABOVE))
        ax.autoscale_view()
        ax.set_title(arm)
        ax.set_xlabel("Hours from randomisation")
    axes[0][0].set_ylabel("NE as base (µg/kg/min)")
    return to_svg(fig)


def kaplan_meier_figure(km: pl.DataFrame, arms: list[str]) -> str:
    colours = arm_colours(arms)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for arm in arms:
        curve = km.filter(pl.col("arm") == arm).sort("time")
        ax.step(curve.get_column("time"), curve.get_column("survival"), where="post", color=colours[arm], label=arm)
        censored = curve.filter(pl.col("censored") > 0)
        ax.scatter(censored.get_column("time"), censored.get_column("survival"), marker="|", color=colours[arm], s=30)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("Days from randomisation")
    ax.set_ylabel("Survival")
    ax.set_title("Time to death (Kaplan-Meier)")
    ax.legend(frameon=False, fontsize=8)
    return to_svg(fig)
