"""The dashboard's SVG line charts: well-formed, faithful to the data, safe with any text."""

import math
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.services.line_chart import ChartLayout, Series, format_value, line_chart_svg, nice_ticks

SVG = "{http://www.w3.org/2000/svg}"
finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


def circles(root: ET.Element) -> list[tuple[float, float]]:
    return [(float(c.get("cx")), float(c.get("cy"))) for c in root.iter(f"{SVG}circle")]


def texts(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


@given(lo=finite, hi=finite, max_ticks=st.integers(2, 10))
def test_nice_ticks_cover_the_range_evenly(lo, hi, max_ticks):
    ticks = nice_ticks(lo, hi, max_ticks)
    assert ticks[0] <= min(lo, hi) and ticks[-1] >= max(lo, hi)
    assert 2 <= len(ticks) <= max_ticks + 2
    steps = [b - a for a, b in zip(ticks, ticks[1:])]
    assert all(s > 0 for s in steps)
    assert max(steps) - min(steps) <= 1e-6 * max(steps)
    mantissa = steps[0] / 10 ** math.floor(math.log10(steps[0]))
    assert any(math.isclose(mantissa, m, rel_tol=1e-6) for m in (1, 2, 2.5, 5, 10))


def test_nice_ticks_of_a_unit_interval_are_fifths():
    assert nice_ticks(0, 1, 5) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(0.61, 0.83, 5) == pytest.approx([0.6, 0.65, 0.7, 0.75, 0.8, 0.85])


def test_format_value_uses_the_decimals_the_step_needs():
    assert format_value(0.25, 0.25) == "0.25"
    assert format_value(0.4, 0.2) == "0.4"
    assert format_value(1500, 500) == "1,500"
    assert format_value(7.5, 2.5) == "7.5"


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.one_of(st.none(), finite), min_size=1, max_size=15))
def test_every_value_gets_one_point_inside_the_plot(values):
    layout = ChartLayout()
    points = [(float(i), v) for i, v in enumerate(values)]
    root = parse(line_chart_svg(Series("y", points), title="t", x_label="round", y_label="y", chart_id="c",
                                layout=layout))
    dots = circles(root)
    valued = [(x, v) for x, v in points if v is not None]
    assert len(dots) == len(valued)
    x0, y0, x1, y1 = layout.plot_box
    assert all(x0 - 1e-6 <= cx <= x1 + 1e-6 and y0 - 1e-6 <= cy <= y1 + 1e-6 for cx, cy in dots)
    # left to right in round order; higher values sit higher (smaller y in SVG)
    assert [cx for cx, _ in dots] == sorted(cx for cx, _ in dots)
    for (cx_a, cy_a), (_, va), (cx_b, cy_b), (_, vb) in zip(dots, valued, dots[1:], valued[1:]):
        if va < vb:
            assert cy_a >= cy_b - 0.11  # coordinates are rounded to 0.1 px
        elif va > vb:
            assert cy_a <= cy_b + 0.11


def test_gaps_split_the_line():
    svg = line_chart_svg(Series("y", [(0, 1.0), (1, 2.0), (2, None), (3, 3.0), (4, 4.0), (5, float("nan"))]),
                         title="t", x_label="round", y_label="y", chart_id="gap")
    root = parse(svg)
    lines = list(root.iter(f"{SVG}polyline"))
    assert [len(p.get("points").split()) for p in lines] == [2, 2]
    assert len(circles(root)) == 4


def test_the_x_axis_spans_rounds_without_values():
    root = parse(line_chart_svg(Series("y", [(0, 1.0), (1, 2.0), (2, None), (3, None)]), title="t",
                                x_label="round", y_label="y", chart_id="span"))
    assert {"0", "1", "2", "3"} <= set(texts(root))
    assert len(circles(root)) == 2


def test_fixed_range_puts_values_at_their_height():
    layout = ChartLayout()
    root = parse(line_chart_svg(Series("F1", [(0, 0.0), (1, 0.5), (2, 1.0)]), title="F1", x_label="round",
                                y_label="F1", chart_id="f1", y_range=(0, 1), layout=layout))
    _, y0, _, y1 = layout.plot_box
    ys = [cy for _, cy in circles(root)]
    assert ys == pytest.approx([y1, (y0 + y1) / 2, y0], abs=0.11)
    assert {"0.0", "1.0"} <= set(texts(root)) and "1.2" not in texts(root)


def test_title_units_and_round_ticks_are_written_out():
    root = parse(line_chart_svg(Series("s", [(0, 12.0), (1, 30.0), (2, 18.0)]), title="Median time per crop",
                                x_label="round", y_label="seconds / crop", chart_id="t"))
    words = texts(root)
    assert "Median time per crop" in words and "seconds / crop" in words and "round" in words
    assert {"0", "1", "2"} <= set(words)
    assert root.find(f"{SVG}title").text == "Median time per crop"
    assert "1: 30" in root.find(f"{SVG}desc").text
    assert root.get("role") == "img"


@pytest.mark.parametrize("series", [[], [Series("y", [])], [Series("y", [(0, None), (1, None)])]])
def test_empty_state_says_so(series):
    root = parse(line_chart_svg(series, title="Corrections", x_label="round", y_label="px", chart_id="e",
                                empty_text="no rounds yet"))
    assert "no rounds yet" in texts(root)
    assert circles(root) == [] and list(root.iter(f"{SVG}polyline")) == []


@given(text=st.text(min_size=1, max_size=40), control=st.sampled_from(["", "\x00", "\x08", "\x1f"]))
def test_any_title_or_label_is_escaped(text, control):
    # markup-like text comes out as text; characters XML cannot hold are left out, never break the SVG
    title = text + control
    root = parse(line_chart_svg([Series(title, [(0, 1.0)]), Series("b", [(0, 2.0)])], title=title, x_label=title,
                                y_label=title, chart_id="esc"))
    printable = "".join(ch for ch in title if ch in "\t\n\r" or (ch >= " " and not 0xD800 <= ord(ch) <= 0xDFFF
                                                                and ch not in "\ufffe\uffff"))
    assert (root.find(f"{SVG}title").text or "") == printable.replace("\r\n", "\n").replace("\r", "\n")


def test_several_series_get_a_legend_and_their_own_colours():
    root = parse(line_chart_svg([Series("whole-cell", [(0, 0.5), (1, 0.6)]), Series("nuclear", [(0, 0.7), (1, 0.8)])],
                                title="F1", x_label="round", y_label="F1", chart_id="two", y_range=(0, 1)))
    assert {"whole-cell", "nuclear"} <= set(texts(root))
    colours = {c.get("fill") for c in root.iter(f"{SVG}circle")}
    assert len(colours) == 2


def test_chart_ids_must_be_safe():
    with pytest.raises(ValueError, match="chart_id"):
        line_chart_svg(Series("y", [(0, 1.0)]), title="t", x_label="x", y_label="y", chart_id='a" onload="x')
