"""The HTML review report, opened from disk in headless Chromium (Debian's `chromium`).

The report is built from a review result, written to a file, and loaded with a file://
URL: the checks read the DOM after the page's own script ran, click the table headers to
sort, and take a screenshot to see the plot drawn. Skips when chromium is not installed.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from ideagen.review.judge import JudgeScore
from ideagen.review.lint import lint_idea
from ideagen.review.novelty import NoveltyResult, Paper
from ideagen.review.pipeline import MergedDuplicate, ReviewedIdea, ReviewResult
from ideagen.review.report import POINT_COLORS, render_report
from ideagen.schema import Idea
from ideagen.store import SpendSummary
from tests.chromium import needs_chromium, run_chromium


def _idea(name: str, title: str, experiment: str, ratings: tuple[int, int, int]) -> Idea:
    return Idea.from_entry(
        {
            "Name": name,
            "Title": title,
            "Experiment": experiment,
            "Interestingness": ratings[0],
            "Feasibility": ratings[1],
            "Novelty": ratings[2],
        }
    )


def _reviewed(
    position: int, original: Idea, judged: tuple[int, int, int] | None, novelty: NoveltyResult
) -> ReviewedIdea:
    score = None
    reviewed = original
    if judged is not None:
        score = JudgeScore(
            Interestingness=judged[0],
            interestingness_rationale=f"why {original.Name} interests",
            Feasibility=judged[1],
            feasibility_rationale=f"why {original.Name} is feasible",
            Novelty=judged[2],
            novelty_rationale=f"why {original.Name} is new",
        )
        reviewed = original.model_copy(update=score.ratings())
    return ReviewedIdea(
        position=position,
        original=original,
        reviewed=reviewed,
        judge=score,
        judge_error=None if score else "no valid JudgeScore after 3 tries",
        lint=lint_idea(original),
        novelty=novelty,
    )


def review_result(weak: bool = True) -> ReviewResult:
    unknown = NoveltyResult(status="unknown", reason="zero hits for every query", mode="online")
    prior = Paper(
        source="openalex",
        title="Label smoothing for clothing images",
        year=2019,
        url="https://doi.org/10.5555/1",
    )
    items = [
        _reviewed(
            2,
            _idea("cosine_warmup", "Cosine warmup", "Add a cosine schedule.", (6, 6, 6)),
            (8, 9, 6),
            NoveltyResult(status="novel", reason="nothing like it", mode="online", papers=[prior]),
        ),
        _reviewed(
            0,
            _idea("tiny_width", "Narrow <b>CNN</b> & friends", "Halve the channels.", (5, 5, 5)),
            (4, 10, 3),
            unknown,
        ),
        _reviewed(
            3,
            _idea("transfer", "ImageNet transfer", "Fine-tune a pretrained ResNet-50.", (9, 9, 9)),
            (7, 2, 5),
            unknown,
        ),
        _reviewed(
            1,
            _idea("label_smooth", "Label smoothing", "Add label smoothing 0.1.", (7, 7, 7)),
            None,
            NoveltyResult(
                status="not_novel",
                reason="the paper did exactly this",
                paper=prior,
                papers=[prior],
                queries=["label smoothing clothing"],
                mode="online",
            ),
        ),
    ]
    items[0].duplicates = [
        MergedDuplicate(4, "cosine_warmup_v2", "Cosine warmup again", "same schedule change")
    ]
    return ReviewResult(
        source=Path("/data/ideas.json"),
        ideas=items,
        input_count=5,
        provider="local",
        model_name="SmolLM2-135M-Instruct",
        weak_model=weak,
        novelty_mode="online",
        unknown_as_novel=True,
        run_id="run",
        spend=SpendSummary(9, 1, 1200, 300, 0, 0, 0.0, 4.2),
    )


def write_report(tmp_path: Path, extra_script: str = "") -> Path:
    html = render_report(review_result())
    if extra_script:
        html = html.replace("</body>", f"<script>{extra_script}</script></body>")
    path = tmp_path / "report.html"
    path.write_text(html, encoding="utf-8")
    return path


def table_names(dom: str) -> list[str]:
    return re.findall(r'<tr data-name="([a-z0-9_]+)"', dom)


class ResourceFinder(HTMLParser):
    """Every attribute that would make a browser fetch something."""

    def __init__(self) -> None:
        super().__init__()
        self.fetched: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a" and values.get("href"):
            self.links.append(values["href"])
        for attribute in ("src", "srcset", "data", "poster"):
            if values.get(attribute):
                self.fetched.append(f"{tag} {attribute}={values[attribute]}")
        if tag == "link":
            self.fetched.append(f"link {values.get('href')}")


def test_report_is_self_contained():
    html = render_report(review_result())
    finder = ResourceFinder()
    finder.feed(html)
    assert finder.fetched == []
    assert "@import" not in html and "url(" not in html
    external = [link for link in finder.links if not link.startswith("#")]
    assert external == ["https://doi.org/10.5555/1"] * len(external) and external


def test_report_escapes_idea_text():
    html = render_report(review_result())
    assert "Narrow &lt;b&gt;CNN&lt;/b&gt; &amp; friends" in html
    assert "<b>CNN</b>" not in html


@needs_chromium
def test_report_opens_from_disk_and_shows_the_review(tmp_path: Path):
    dom = run_chromium(tmp_path, "--dump-dom", write_report(tmp_path).as_uri())
    assert table_names(dom) == ["cosine_warmup", "tiny_width", "transfer", "label_smooth"]
    assert 'id="low-confidence"' in dom and "Low-confidence scores" in dom
    assert "why cosine_warmup interests" in dom, "rationales are shown"
    assert "pretrained_weights" in dom and "imagenet" in dom, "lint flags are shown"
    assert 'href="https://doi.org/10.5555/1"' in dom and "Already done by" in dom
    assert "Kept <a" in dom and "cosine_warmup_v2" in dom, "the duplicate group is listed"
    assert len(re.findall(r'<circle class="point"', dom)) == 4, "one dot per idea in the plot"
    assert "Not scored by the judge" in dom and "no valid JudgeScore" in dom


@needs_chromium
def test_clicking_a_header_sorts_the_table(tmp_path: Path):
    click = """
    function header(label) {
      return Array.prototype.find.call(document.querySelectorAll('th button'),
        function (b) { return b.textContent === label; });
    }
    function order() {
      return Array.prototype.map.call(document.querySelectorAll('#ideas tbody tr'),
        function (r) { return r.getAttribute('data-name'); }).join(',');
    }
    var log = [];
    header('Feasibility').click(); log.push(order());
    header('Feasibility').click(); log.push(order());
    header('Name').click(); log.push(order());
    var out = document.createElement('pre'); out.id = 'sort-log';
    out.textContent = log.join('|'); document.body.appendChild(out);
    """
    dom = run_chromium(tmp_path, "--dump-dom", write_report(tmp_path, click).as_uri())
    log = re.search(r'<pre id="sort-log">([^<]*)</pre>', dom).group(1).split("|")
    # judge Feasibility: tiny_width 10, cosine_warmup 9, label_smooth 7 (author's), transfer 2
    assert log[0] == "transfer,label_smooth,cosine_warmup,tiny_width"
    assert log[1] == "tiny_width,cosine_warmup,label_smooth,transfer"
    assert log[2] == "cosine_warmup,label_smooth,tiny_width,transfer"
    assert 'aria-sort="ascending"' in dom


@needs_chromium
def test_filter_box_hides_rows(tmp_path: Path):
    typing = """
    var box = document.getElementById('filter');
    box.value = 'smoothing'; box.dispatchEvent(new Event('input'));
    """
    dom = run_chromium(tmp_path, "--dump-dom", write_report(tmp_path, typing).as_uri())
    visible = re.findall(r'<tr data-name="([a-z0-9_]+)">', dom)
    hidden = re.findall(r'<tr data-name="([a-z0-9_]+)" hidden="">', dom)
    assert visible == ["label_smooth"]
    assert sorted(hidden) == ["cosine_warmup", "tiny_width", "transfer"]


@needs_chromium
def test_screenshot_shows_the_plot_colours(tmp_path: Path):
    from PIL import Image

    shot = tmp_path / "report.png"
    run_chromium(
        tmp_path,
        f"--screenshot={shot}",
        "--window-size=1200,900",
        "--hide-scrollbars",
        write_report(tmp_path).as_uri(),
    )
    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 900)
    colours = {colour for _, colour in image.getcolors(maxcolors=1_000_000)}
    assert len(colours) > 50, "the page is not blank"
    # dots are drawn at 75% opacity over the plot background: look for their blend
    for hex_colour in POINT_COLORS.values():
        rgb = tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
        blended = tuple(round(0.75 * c + 0.25 * 250) for c in rgb)
        assert any(
            all(abs(a - b) <= 6 for a, b in zip(colour, blended, strict=True)) for colour in colours
        ), f"no {hex_colour} dot on screen"
