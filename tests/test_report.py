"""`finetune report`: one self-contained report.html that headless Chromium renders with every
section and every image decoded; runs without an evaluation or a final model get a report that
says so; a report.html finetune did not write is never replaced."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from conftest import main_in_process

CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make test installs it)")

# Appended to a copy of the page: Chromium runs it once the images are loaded, and the DOM it
# dumps then carries the verdict.
DECODED_CHECK = """<script>window.addEventListener("load", () => {
  const images = [...document.images];
  document.body.dataset.decoded = images.filter(i => i.complete && i.naturalWidth > 0).length + "/" + images.length;
});</script>"""


def rendered(page, tmp_path) -> str:
    """The DOM headless Chromium builds from the page, after the check above ran."""
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", DECODED_CHECK + "</body>"), encoding="utf-8")
    result = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                             probe.as_uri()], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def report(run, capsys, monkeypatch):
    code, out, err = main_in_process(["report", str(run)], capsys, monkeypatch)
    assert code == 0, err
    return run / "report.html"


def headings(dom: str) -> list[str]:
    return re.findall(r"<h2>(.*?)</h2>", dom)


def assert_self_contained(page):
    text = page.read_text(encoding="utf-8")
    assert "<link" not in text and "<script" not in text  # nothing fetched, nothing run
    sources = re.findall(r'src="([^"]*)"', text)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    return len(sources)


@needs_chromium
def test_classification_report_renders_every_section(lora_run, tmp_path, capsys, monkeypatch):
    run = shutil.copytree(lora_run, tmp_path / "run")
    page = report(run, capsys, monkeypatch)
    images = assert_self_contained(page)
    dom = rendered(page, tmp_path)
    assert headings(dom) == ["Configuration", "Training curves", "Final metrics", "Confusion matrix",
                             "Most confident errors", "Attention"]
    assert images == 3  # curves, confusion matrix, one attention grid
    assert f'data-decoded="{images}/{images}"' in dom
    assert "not evaluated" not in dom
    errors = re.search(r'id="errors".*?</section>', dom, re.S).group(0)
    wrong = [row for row in lora_run.joinpath("predictions_validation.jsonl").read_text().splitlines()
             if '"label": "positive", "predicted": "negative"' in row or '"label": "negative", "predicted": "positive"' in row]
    assert errors.count("<tr>") - 1 == min(len(wrong), 10)  # header row aside


@needs_chromium
def test_generation_report_shows_generations_and_three_attention_kinds(t5_lora_run, tmp_path, capsys, monkeypatch):
    import json

    run = shutil.copytree(t5_lora_run, tmp_path / "run")
    page = report(run, capsys, monkeypatch)
    assert assert_self_contained(page) == 4  # curves and the encoder, decoder, cross grids
    dom = rendered(page, tmp_path)
    assert headings(dom) == ["Configuration", "Training curves", "Final metrics", "Sample generations", "Attention"]
    assert 'data-decoded="4/4"' in dom
    first = json.loads((run / "predictions_validation.jsonl").read_text().splitlines()[0])
    assert first["references"][0] in dom and first["source"] in dom


def test_unevaluated_run_without_a_model_says_so(lora_run, tmp_path, capsys, monkeypatch):
    run = shutil.copytree(lora_run, tmp_path / "run")
    for name in ("eval_validation.json", "predictions_validation.jsonl", "confusion_validation.png"):
        (run / name).unlink(missing_ok=True)
    shutil.rmtree(run / "model")  # as a run stopped before its final save
    text = report(run, capsys, monkeypatch).read_text(encoding="utf-8")
    assert text.count("not evaluated") == 2  # final metrics, confusion matrix
    assert "no final model" in text and "Most confident errors" not in text
    (run / "metrics.jsonl").unlink()
    text = report(run, capsys, monkeypatch).read_text(encoding="utf-8")  # ours: rewritten
    assert "no training steps logged yet" in text


def test_report_html_of_the_user_is_kept(lora_run, tmp_path, capsys, monkeypatch):
    run = shutil.copytree(lora_run, tmp_path / "run", ignore=shutil.ignore_patterns("model", "best"))
    page = report(run, capsys, monkeypatch)
    page.write_text(page.read_text() + "<!-- my notes -->")  # edited since finetune wrote it
    code, _, err = main_in_process(["report", str(run)], capsys, monkeypatch)
    assert code == 2 and err.startswith("error: ") and "report.html" in err
    assert page.read_text().endswith("<!-- my notes -->")
