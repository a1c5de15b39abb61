"""`mpspatch report --html`: one self-contained page, checked as text and in a real headless browser.

The browser is Debian's `chromium` (headless, no sandbox, no network services): it renders the page to a
PNG, which a small PNG reader here (zlib, no imaging library) checks is not blank and has drawn pixels where
the drift chart sits. Without a `chromium` on PATH the browser test is skipped with that reason.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from render_project import Project, failing_stages, make_project, passing_stages, stage

from mpspatch.reporting.requirements import load_requirements

MPSPATCH = [sys.executable, "-m", "mpspatch.cli"]
CHROMIUM = shutil.which("chromium")
NIGHTS = [  # regions rise then fall: a line with a shape
    ("2026-11-20", 0), ("2026-11-21", 2), ("2026-11-22", 5), ("2026-11-23", 9), ("2026-11-24", 4),
]


def run_cli(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MPSPATCH_")}
    return subprocess.run([*MPSPATCH, *args], cwd=project.root, capture_output=True, text=True, check=False,
                          timeout=120, env=env)


def write_history(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"date": date, "onto": f"{k:040x}", "onto_ref": "viable/strict", "conflicts": min(regions, 2),
                         "regions": regions, "absorbed": k, "upstream_commits": 10 * k, "patch_hunks": 40})
             for k, (date, regions) in enumerate(NIGHTS)]
    (folder / "drift-history.jsonl").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, Path, dict[str, object]]:
    tmp = tmp_path_factory.mktemp("report")
    project = make_project(tmp)
    failing = failing_stages()
    failing[1] = stage("lint", "lint", "failed", reason="<script>alert(1)</script> & 3 messages")
    project.write_evidence("20261120T101500Z-aaaaaaaa", failing)
    project.write_evidence("20261124T101500Z-bbbbbbbb", passing_stages())
    out = tmp / "site" / "report.html"
    history = write_history(tmp / "nightly")
    result = run_cli(project, "report", "--html", str(out), "--history", str(history), "--json")
    assert result.returncode == 0, result.stderr
    return project, out, json.loads(result.stdout)


def test_page_is_self_contained_with_one_chart_point_per_night(page: tuple[Project, Path, dict[str, object]]) -> None:
    _, out, data = page
    html = out.read_text(encoding="utf-8")
    assert data["html"] == str(out) and data["runs"] == 2 and data["nights"] == len(NIGHTS)
    assert not re.search(r"https?://", html), "nothing on the page may point off it"
    assert not re.search(r"<(script|link|iframe|img)\b", html) and "@import" not in html
    svg = re.search(r"<svg id=\"drift-chart\".*?</svg>", html, re.S)
    assert svg is not None
    points = re.findall(r'<circle class="night" cx="([\d.]+)" cy="([\d.]+)"', svg.group(0))
    assert len(points) == len(NIGHTS)
    xs, ys = [float(x) for x, _ in points], [float(y) for _, y in points]
    assert xs == sorted(xs) and len(set(xs)) == len(NIGHTS), "oldest night at the left"
    assert ys.index(min(ys)) == 3 and ys.index(max(ys)) == 0, "the most regions highest, none lowest"


def test_page_shows_readiness_and_every_runs_stages_escaped(page: tuple[Project, Path, dict[str, object]]) -> None:
    project, out, data = page
    html = out.read_text(encoding="utf-8")
    status = json.loads(run_cli(project, "status", "--json").stdout)
    assert data["ready"] is status["ready"]
    verdict = re.search(r'<span class="verdict [\w-]+" id="verdict">(.*?)</span>', html)
    assert verdict is not None and verdict.group(1) == data["status"]
    history = re.search(r'<table id="stage-history">(.*?)</table>', html, re.S)
    assert history is not None
    rows = re.findall(r"<code>(\d{8}T\d{6}Z-\w+)</code>", history.group(1))
    assert rows == ["20261124T101500Z-bbbbbbbb", "20261120T101500Z-aaaaaaaa"], "newest run first"
    assert 'class="failed" title="&lt;script&gt;alert(1)&lt;/script&gt; &amp; 3 messages"' in html
    assert "<script>" not in html
    checklist = re.search(r'<table id="checklist">(.*?)</table>', html, re.S)
    rows_asked = load_requirements(project.root / "audit/requirements.toml")
    assert rows_asked is not None and len(rows_asked.items) > 5
    assert checklist is not None and checklist.group(1).count("<tr>") == 1 + len(rows_asked.items)


def test_report_without_history_and_with_a_missing_one(page: tuple[Project, Path, dict[str, object]],
                                                       tmp_path: Path) -> None:
    project, _, _ = page
    bare = run_cli(project, "report", "--html", str(tmp_path / "bare.html"))
    assert bare.returncode == 0, bare.stderr
    text = (tmp_path / "bare.html").read_text()
    assert "No drift history given" in text and "<svg" not in text
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = run_cli(project, "report", "--html", str(tmp_path / "x.html"), "--history", str(empty))
    assert missing.returncode == 2 and "drift-history.jsonl" in missing.stderr and "Traceback" not in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.html").exists()


# ------------------------------------------------------------------------------------- in a browser


def read_png(path: Path) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB(A) bytes) of an 8-bit non-interlaced PNG, the kind chromium writes."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, chunks, header = 8, b"", b""
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0, "only the PNGs chromium writes"
    channels = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(chunks), width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b, c = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line))
        previous = line
    return width, height, rows


def screenshot(page_file: Path, tmp_path: Path, size: tuple[int, int]) -> Path:
    assert CHROMIUM is not None
    shot = tmp_path / "shot.png"
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
         f"--screenshot={shot}", f"--window-size={size[0]},{size[1]}", page_file.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    return shot


@pytest.mark.skipif(CHROMIUM is None, reason="no `chromium` on PATH (Debian: apt-get install chromium)")
def test_the_chart_renders_in_headless_chromium(page: tuple[Project, Path, dict[str, object]],
                                                tmp_path: Path) -> None:
    _, out, _ = page
    # The chart alone at the top of a page of the same styles: its place in the screenshot is then known.
    html = out.read_text(encoding="utf-8")
    head = html[:html.index("<body>") + len("<body>")]
    svg = re.search(r"<svg id=\"drift-chart\".*?</svg>", html, re.S)
    assert svg is not None
    chart_only = tmp_path / "chart.html"
    chart_only.write_text(head + '<div style="position:absolute;left:0;top:0">' + svg.group(0) + "</div></body></html>")
    width, height, rows = read_png(screenshot(chart_only, tmp_path, (1200, 900)))
    assert (width, height) == (1200, 900)
    channels = len(rows[0]) // width

    def red(x: int, y: int) -> bool:  # the trend line and its points are #cf222e
        r, g, b = rows[y][x * channels:x * channels + 3]
        return r > 150 and g < 110 and b < 110

    chart_w, chart_h = (int(v) for v in re.findall(r'width="(\d+)" height="(\d+)"', svg.group(0))[0])
    drawn = sum(red(x, y) for y in range(chart_h) for x in range(chart_w))
    outside = sum(red(x, y) for y in range(chart_h + 20, height, 4) for x in range(0, width, 4))
    assert drawn > 500, f"only {drawn} line pixels in the chart area"
    assert outside == 0
    # Each night's point is drawn where the SVG puts it (a 5 px circle: its centre is red).
    for cx, cy in re.findall(r'<circle class="night" cx="([\d.]+)" cy="([\d.]+)"', svg.group(0)):
        assert red(round(float(cx)), round(float(cy))), (cx, cy)
    # The whole page, as a reader opens it: not blank.
    width, height, rows = read_png(screenshot(out, tmp_path, (1200, 900)))
    colours = {rows[y][x * channels:x * channels + 3] for y in range(0, height, 7) for x in range(0, width, 7)}
    assert len(colours) > 10, "a blank page"
