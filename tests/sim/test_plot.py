"""The run's picture and the words around ``gpulease simulate``'s figures: the title is
wrapped to the figure (never cut), the days jobs arrive are named, and the utilisation while
jobs arrive is reported beside the whole run's, which includes the drain after the last
arrival."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
from typer.testing import CliRunner

from gpulease.cli.app import app
from gpulease.inventory.topology import parse_cluster_spec
from gpulease.sim.plot import figure_of, wrap_title
from gpulease.sim.runner import simulate
from gpulease.sim.synthetic import rack_scale_mix

LONG_TITLE = (
    "philly[min_duration=0,first=20000]@load=0.9: 20,000 jobs arriving over 6.6 days, "
    "offered load 0.90 over those days, on 32x18x4 (2,304 GPUs), policy default"
)


def test_a_long_title_is_wrapped_inside_the_figure() -> None:
    spec = parse_cluster_spec("2x18x4")
    run = simulate(rack_scale_mix(spec, jobs=40, load=0.9, seed=1), spec)
    fig = figure_of(run.result, title=LONG_TITLE)
    try:
        fig.canvas.draw()
        title = fig._suptitle
        assert title.get_text() == wrap_title(LONG_TITLE)
        assert title.get_text().replace("\n", " ") == LONG_TITLE
        box = title.get_window_extent(fig.canvas.get_renderer())
        assert box.x0 >= 0
        assert box.x1 <= fig.bbox.width
        assert box.y1 <= fig.bbox.height
        texts = [t.get_text() for axes in fig.axes for t in axes.texts]
        assert any("jobs arrive" in text for text in texts)
    finally:
        plt.close(fig)


def test_wrap_title_keeps_short_titles_and_long_words() -> None:
    assert wrap_title("short") == "short"
    word = "x" * 200
    assert wrap_title(word) == word


def test_simulate_names_the_arrival_span_and_both_utilisations(tmp_path: Path) -> None:
    trace = tmp_path / "mix.jsonl"
    generated = CliRunner().invoke(
        app, ["trace", "generate", "--out", str(trace), "--cluster", "2x18x4", "--jobs", "40"]
    )
    assert generated.exit_code == 0, generated.output
    out = tmp_path / "figures.json"
    shown = CliRunner().invoke(
        app, ["simulate", "--trace", str(trace), "--cluster", "2x18x4", "--json", str(out)]
    )
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.output.split())  # as wide as the terminal the console found
    header = text.split(" policy default")[0]
    assert " jobs arriving over " in header
    assert " days, offered load " in header
    assert " over those days, on 2x18x4 " in header
    # the table's cells wrap on a narrow terminal: its words, and the figure in the JSON
    assert {"arrive", "drain", "included"} <= set(text.split())
    figures = json.loads(out.read_text())
    assert figures["arrival_span_s"] > 0
    assert figures["makespan_s"] >= figures["arrival_span_s"]
