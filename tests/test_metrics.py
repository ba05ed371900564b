"""Bundled offline evaluate metrics, checked against the libraries called directly."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import sacrebleu
from rouge_score import rouge_scorer
from sacrebleu.metrics import BLEU, CHRF
from sklearn.metrics import accuracy_score, f1_score

import finetune.metrics as fm
from finetune.metrics import METRIC_NAMES, load_metric

REPO_ROOT = Path(__file__).resolve().parents[1]
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_EVALUATE_OFFLINE": "1"}
ROUGE_TYPES = ["rouge1", "rouge2", "rougeL", "rougeLsum"]

# Small MT-style corpus with partial overlaps, so BLEU/chrF are neither 0 nor 100.
HYPS = [
    "The cat sat on the mat.",
    "A quick brown fox jumps over the lazy dog.",
    "He went to the market yesterday to buy apples.",
    "It is raining heavily in the city today.",
    "She reads a book every night before sleeping.",
]
REFS_A = [
    "The cat is sitting on the mat.",
    "The quick brown fox jumped over the lazy dog.",
    "Yesterday he went to the market to buy some apples.",
    "It rains heavily in the city today.",
    "Every night she reads a book before she sleeps.",
]
REFS_B = [
    "A cat sat on the rug.",
    "A fast brown fox leaps over a lazy dog.",
    "He visited the market yesterday and bought apples.",
    "Today there is heavy rain in the city.",
    "Before going to sleep, she reads a book each night.",
]
REFS_C = ["There was a cat on the mat.", None, "He bought apples at the market yesterday.", None, None]


def uneven_refs() -> list[list[str]]:
    """3, 2, 3, 2, 2 references per example."""
    return [[r for r in (a, b, c) if r is not None] for a, b, c in zip(REFS_A, REFS_B, REFS_C)]


@pytest.fixture(scope="module")
def metrics():
    return {name: load_metric(name) for name in METRIC_NAMES}


def _rng_labels(seed: int, n: int, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, n_classes, size=n), rng.integers(0, n_classes, size=n)


# --------------------------------------------------------------------------- loading


def test_import_does_not_pull_heavy_libraries():
    code = "import sys, finetune.metrics; print(json.dumps(sorted(m for m in ('evaluate','torch','datasets') if m in sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", "import json; " + code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == []


def test_every_name_has_a_module_file():
    assert isinstance(METRIC_NAMES, tuple)
    for name in METRIC_NAMES:
        path = fm.metric_path(name)
        assert (path / f"{name}.py").is_file()


@pytest.mark.parametrize("name", ["bleu", "Accuracy", "", "../accuracy", "precision"])
def test_unknown_metric_raises_with_available_names(name):
    with pytest.raises(ValueError) as excinfo:
        load_metric(name)
    message = str(excinfo.value)
    for available in METRIC_NAMES:
        assert available in message


def test_load_with_offline_env_and_no_network(monkeypatch, metrics):
    for key, value in OFFLINE_ENV.items():
        monkeypatch.setenv(key, value)

    def refuse(*args, **kwargs):
        raise AssertionError(f"metric loading tried to open a network connection: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    load_metric.cache_clear()
    try:
        import evaluate

        for name in METRIC_NAMES:
            module = load_metric(name)
            assert isinstance(module, evaluate.Metric)
            assert module.name == name
            assert load_metric(name) is module  # lru_cache: one instance per process
        result = load_metric("accuracy").compute(predictions=[1, 0, 1], references=[1, 1, 1])
        assert result == {"accuracy": pytest.approx(2 / 3)}
    finally:
        load_metric.cache_clear()


def test_load_in_fresh_offline_process(tmp_path):
    """Offline variables set before evaluate is imported, sockets disabled, own HF_HOME."""
    script = textwrap.dedent(
        """
        import json, socket

        def refuse(*args, **kwargs):
            raise RuntimeError("network access attempted")

        socket.socket.connect = refuse
        socket.create_connection = refuse

        from finetune.metrics import METRIC_NAMES, load_metric

        out = {name: type(load_metric(name)).__name__ for name in METRIC_NAMES}
        out["bleu"] = load_metric("sacrebleu").compute(predictions=["a b c d"], references=[["a b c d"]])["score"]
        print(json.dumps(out))
        """
    )
    env = {**os.environ, **OFFLINE_ENV, "HF_HOME": str(tmp_path / "hf")}
    env.pop("HF_MODULES_CACHE", None)
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {
        "accuracy": "Accuracy",
        "f1": "F1",
        "sacrebleu": "Sacrebleu",
        "chrf": "Chrf",
        "rouge": "Rouge",
        "bleu": pytest.approx(100.0),
    }
    # evaluate copies each script into HF_HOME/modules/evaluate_modules/metrics/<name>/<hash>/.
    for name in METRIC_NAMES:
        copies = list((tmp_path / "hf" / "modules" / "evaluate_modules" / "metrics" / name).glob(f"*/{name}.py"))
        assert len(copies) == 1


# --------------------------------------------------------------------------- accuracy / f1


@pytest.mark.parametrize("seed,n_classes", [(0, 2), (1, 3), (2, 7)])
def test_accuracy_matches_sklearn(metrics, seed, n_classes):
    preds, refs = _rng_labels(seed, 200, n_classes)
    out = metrics["accuracy"].compute(predictions=preds, references=refs)
    assert set(out) == {"accuracy"}
    assert isinstance(out["accuracy"], float)
    assert out["accuracy"] == pytest.approx(accuracy_score(refs, preds))
    assert 0.0 < out["accuracy"] < 1.0


def test_accuracy_options_and_extremes(metrics):
    preds, refs = _rng_labels(3, 50, 4)
    weights = np.random.default_rng(3).random(50)
    acc = metrics["accuracy"]
    assert acc.compute(predictions=preds, references=refs, normalize=False)["accuracy"] == int((preds == refs).sum())
    assert acc.compute(predictions=preds, references=refs, sample_weight=weights)["accuracy"] == pytest.approx(
        accuracy_score(refs, preds, sample_weight=weights)
    )
    assert acc.compute(predictions=[2, 0, 1], references=[2, 0, 1]) == {"accuracy": 1.0}
    assert acc.compute(predictions=[1, 1, 1], references=[0, 0, 0]) == {"accuracy": 0.0}


@pytest.mark.parametrize("seed,n_classes", [(10, 3), (11, 5), (12, 10)])
def test_f1_default_is_macro_and_matches_sklearn(metrics, seed, n_classes):
    preds, refs = _rng_labels(seed, 300, n_classes)
    out = metrics["f1"].compute(predictions=preds, references=refs)
    assert set(out) == {"f1"}
    assert out["f1"] == pytest.approx(f1_score(refs, preds, average="macro"))
    # Macro really differs from micro on these labels, so the default is not a coincidence.
    assert out["f1"] != pytest.approx(f1_score(refs, preds, average="micro"))


@pytest.mark.parametrize("average", ["micro", "weighted", "macro"])
def test_f1_average_argument(metrics, average):
    preds, refs = _rng_labels(20, 150, 4)
    out = metrics["f1"].compute(predictions=preds, references=refs, average=average)
    assert out["f1"] == pytest.approx(f1_score(refs, preds, average=average))


def test_f1_binary_per_class_and_missing_class(metrics):
    preds, refs = _rng_labels(21, 100, 2)
    f1 = metrics["f1"]
    assert f1.compute(predictions=preds, references=refs, average="binary")["f1"] == pytest.approx(
        f1_score(refs, preds, average="binary")
    )
    assert f1.compute(predictions=preds, references=refs, average="binary", pos_label=0)["f1"] == pytest.approx(
        f1_score(refs, preds, average="binary", pos_label=0)
    )

    preds, refs = _rng_labels(22, 120, 4)
    per_class = f1.compute(predictions=preds, references=refs, average=None)["f1"]
    assert isinstance(per_class, list) and len(per_class) == 4
    np.testing.assert_allclose(per_class, f1_score(refs, preds, average=None))

    # Class 2 is never predicted: its F1 is 0, the same value sklearn's default gives (with a warning).
    refs = [0, 1, 2, 2, 1, 0]
    preds = [0, 1, 1, 0, 1, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = f1_score(refs, preds, average="macro")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # our default zero_division=0 must not warn
        got = f1.compute(predictions=preds, references=refs)["f1"]
    assert got == pytest.approx(expected)


# --------------------------------------------------------------------------- BLEU / chrF

BLEU_KEYS = {"score", "counts", "totals", "precisions", "bp", "sys_len", "ref_len"}


def _bleu_dict(result) -> dict:
    return {
        "score": result.score,
        "counts": list(result.counts),
        "totals": list(result.totals),
        "precisions": list(result.precisions),
        "bp": result.bp,
        "sys_len": result.sys_len,
        "ref_len": result.ref_len,
    }


def _assert_bleu_equal(ours: dict, direct) -> None:
    assert set(ours) == BLEU_KEYS
    expected = _bleu_dict(direct)
    for key in ("counts", "totals", "sys_len", "ref_len"):
        assert ours[key] == expected[key], key
    for key in ("score", "bp"):
        assert ours[key] == pytest.approx(expected[key]), key
    assert ours["precisions"] == pytest.approx(expected["precisions"])


def test_bleu_single_reference(metrics):
    ours = metrics["sacrebleu"].compute(predictions=HYPS, references=[[r] for r in REFS_A])
    direct = sacrebleu.corpus_bleu(HYPS, [REFS_A])
    _assert_bleu_equal(ours, direct)
    assert 5.0 < ours["score"] < 95.0
    # Plain-string references are the same thing as one-element lists.
    flat = metrics["sacrebleu"].compute(predictions=HYPS, references=REFS_A)
    assert flat == ours


def test_bleu_multi_reference_even(metrics):
    ours = metrics["sacrebleu"].compute(predictions=HYPS, references=[[a, b] for a, b in zip(REFS_A, REFS_B)])
    direct = sacrebleu.corpus_bleu(HYPS, [REFS_A, REFS_B])
    _assert_bleu_equal(ours, direct)
    single = sacrebleu.corpus_bleu(HYPS, [REFS_A])
    assert ours["score"] != pytest.approx(single.score)  # the second reference was really used


def test_bleu_multi_reference_uneven(metrics):
    refs = uneven_refs()
    assert sorted({len(r) for r in refs}) == [2, 3]
    ours = metrics["sacrebleu"].compute(predictions=HYPS, references=refs)
    # sacrebleu's own convention for a variable number of references: None in a stream.
    _assert_bleu_equal(ours, sacrebleu.corpus_bleu(HYPS, [REFS_A, REFS_B, REFS_C]))
    # Independent check that padding is neutral: repeating a reference cannot change
    # clipped counts or the closest reference length.
    dup_c = [c if c is not None else a for a, c in zip(REFS_A, REFS_C)]
    _assert_bleu_equal(ours, sacrebleu.corpus_bleu(HYPS, [REFS_A, REFS_B, dup_c]))


def test_bleu_uneven_padding_does_not_act_as_a_reference(metrics):
    # Short hypotheses: an empty-string pad (length 0) would be the "closest"
    # reference length and skew ref_len / the brevity penalty.
    hyps = ["Yes.", "No way.", "Maybe later, thanks."]
    refs = [["Yes, it is."], ["No way at all.", "Not at all."], ["Maybe later, thank you."]]
    ours = metrics["sacrebleu"].compute(predictions=hyps, references=refs)
    streams = [[r[0] for r in refs], [None, "Not at all.", None]]
    _assert_bleu_equal(ours, sacrebleu.corpus_bleu(hyps, streams))
    empty_padded = sacrebleu.corpus_bleu(hyps, [[r[0] for r in refs], ["", "Not at all.", ""]])
    assert ours["ref_len"] != empty_padded.ref_len


def test_bleu_options_and_extremes(metrics):
    bleu = metrics["sacrebleu"]
    upper = [h.upper() for h in HYPS]
    ours = bleu.compute(predictions=upper, references=REFS_A, lowercase=True)
    _assert_bleu_equal(ours, BLEU(lowercase=True).corpus_score(upper, [REFS_A]))
    assert ours["score"] > bleu.compute(predictions=upper, references=REFS_A)["score"]

    ours = bleu.compute(predictions=HYPS, references=REFS_A, tokenize="char", smooth_method="floor", smooth_value=0.1)
    _assert_bleu_equal(ours, BLEU(tokenize="char", smooth_method="floor", smooth_value=0.1).corpus_score(HYPS, [REFS_A]))

    perfect = bleu.compute(predictions=REFS_A, references=[[r, "unrelated words here"] for r in REFS_A])
    assert perfect["score"] == pytest.approx(100.0)
    assert perfect["bp"] == pytest.approx(1.0)
    disjoint = bleu.compute(predictions=["alpha beta gamma delta"], references=[["one two three four"]])
    assert disjoint["score"] == 0.0
    assert disjoint["counts"] == [0, 0, 0, 0]


def test_bleu_example_without_reference_raises(metrics):
    with pytest.raises(ValueError):
        metrics["sacrebleu"].compute(predictions=["a b", "c d"], references=[["a b"], []])


def test_chrf_single_and_multi_reference(metrics):
    chrf = metrics["chrf"]
    single = chrf.compute(predictions=HYPS, references=[[r] for r in REFS_A])
    assert single == {
        "score": pytest.approx(sacrebleu.corpus_chrf(HYPS, [REFS_A]).score),
        "char_order": 6,
        "word_order": 0,
        "beta": 2,
    }
    assert 5.0 < single["score"] < 95.0
    assert chrf.compute(predictions=HYPS, references=REFS_A) == single

    even = chrf.compute(predictions=HYPS, references=[[a, b] for a, b in zip(REFS_A, REFS_B)])
    assert even["score"] == pytest.approx(sacrebleu.corpus_chrf(HYPS, [REFS_A, REFS_B]).score)
    assert even["score"] != pytest.approx(single["score"])

    uneven = chrf.compute(predictions=HYPS, references=uneven_refs())
    assert uneven["score"] == pytest.approx(sacrebleu.corpus_chrf(HYPS, [REFS_A, REFS_B, REFS_C]).score)
    dup_c = [c if c is not None else a for a, c in zip(REFS_A, REFS_C)]
    assert uneven["score"] == pytest.approx(sacrebleu.corpus_chrf(HYPS, [REFS_A, REFS_B, dup_c]).score)


def test_chrf_options_and_extremes(metrics):
    chrf = metrics["chrf"]
    plus = chrf.compute(predictions=HYPS, references=REFS_A, word_order=2)
    assert plus["word_order"] == 2
    assert plus["score"] == pytest.approx(CHRF(word_order=2).corpus_score(HYPS, [REFS_A]).score)
    upper = [h.upper() for h in HYPS]
    assert chrf.compute(predictions=upper, references=REFS_A, lowercase=True)["score"] == pytest.approx(
        CHRF(lowercase=True).corpus_score(upper, [REFS_A]).score
    )
    assert chrf.compute(predictions=REFS_B, references=REFS_B)["score"] == pytest.approx(100.0)
    # No shared character at all -> no shared character n-gram.
    assert chrf.compute(predictions=["xyz xyz"], references=[["abc def"]])["score"] == 0.0


# --------------------------------------------------------------------------- ROUGE

# Multi-sentence summaries as sentence lists: the metric receives them joined by
# spaces (like model output), the direct scorer joined by newlines (what rougeLsum needs).
SUMMARY_PREDS = [
    ["The cats were sitting on the mats.", "They looked happy!", "Dr. Smith fed them."],
    ["Stocks fell sharply on Monday.", "Investors worried about rates."],
    ["A new bridge opened in the city.", "Traffic improved quickly?", "Officials said yes."],
]
SUMMARY_REFS = [
    ["Two cats sat on a mat.", "Dr. Smith fed the happy cats."],
    ["Investors worried about interest rates.", "Stock markets fell on Monday."],
    ["The city opened a new bridge.", "Officials say traffic improved."],
]
SUMMARY_REFS_ALT = [
    ["The cat sat on the mat and looked happy."],
    ["Markets dropped.", "Rates worry investors.", "Monday was bad."],
    None,
]


def _space(sents):
    return " ".join(sents)


def _newline(sents):
    return "\n".join(sents)


def _direct_rouge(pairs, use_stemmer=True):
    """Mean F-measure of rouge_score called directly; pairs are (targets, prediction)."""
    scorer = rouge_scorer.RougeScorer(ROUGE_TYPES, use_stemmer=use_stemmer)
    per_type = {t: [] for t in ROUGE_TYPES}
    for targets, prediction in pairs:
        scores = scorer.score_multi(targets, prediction)
        for t in ROUGE_TYPES:
            per_type[t].append(scores[t].fmeasure)
    return {t: float(np.mean(v)) for t, v in per_type.items()}


def test_rouge_single_reference(metrics):
    rouge = metrics["rouge"]
    preds = [_space(p) for p in SUMMARY_PREDS]
    ours = rouge.compute(predictions=preds, references=[_space(r) for r in SUMMARY_REFS])
    assert set(ours) == set(ROUGE_TYPES)
    direct = _direct_rouge([([_newline(r)], _newline(p)) for p, r in zip(SUMMARY_PREDS, SUMMARY_REFS)])
    assert ours == pytest.approx(direct)
    # Sentence splitting made rougeLsum a summary-level score, different from rougeL.
    assert ours["rougeLsum"] != pytest.approx(ours["rougeL"])
    for value in ours.values():
        assert 0.0 < value < 1.0
    # A one-element list is the same as a plain string.
    assert rouge.compute(predictions=preds, references=[[_space(r)] for r in SUMMARY_REFS]) == ours


def test_rouge_without_sentence_splitting_matches_raw_text(metrics):
    preds = [_space(p) for p in SUMMARY_PREDS]
    refs = [_space(r) for r in SUMMARY_REFS]
    ours = metrics["rouge"].compute(predictions=preds, references=refs, split_sentences=False)
    direct = _direct_rouge([([r], p) for p, r in zip(preds, refs)])
    assert ours == pytest.approx(direct)
    assert ours["rougeLsum"] == pytest.approx(ours["rougeL"])  # one "sentence" per text


def test_rouge_multi_reference_takes_best(metrics):
    refs_per_example = [
        [_space(r) for r in (a, b) if r is not None] for a, b in zip(SUMMARY_REFS, SUMMARY_REFS_ALT)
    ]
    assert [len(r) for r in refs_per_example] == [2, 2, 1]
    preds = [_space(p) for p in SUMMARY_PREDS]
    ours = metrics["rouge"].compute(predictions=preds, references=refs_per_example)

    newline_refs = [[_newline(r) for r in (a, b) if r is not None] for a, b in zip(SUMMARY_REFS, SUMMARY_REFS_ALT)]
    pairs = [(refs, _newline(p)) for p, refs in zip(SUMMARY_PREDS, newline_refs)]
    assert ours == pytest.approx(_direct_rouge(pairs))

    # Best-of, spelled out without score_multi: per example and type, max over references.
    scorer = rouge_scorer.RougeScorer(ROUGE_TYPES, use_stemmer=True)
    best = {
        t: np.mean([max(scorer.score(r, p)[t].fmeasure for r in refs) for refs, p in pairs]) for t in ROUGE_TYPES
    }
    assert ours == pytest.approx(best)
    # ...which is at least the single-reference score.
    single = metrics["rouge"].compute(predictions=preds, references=[_space(r) for r in SUMMARY_REFS])
    for t in ROUGE_TYPES:
        assert ours[t] >= single[t] - 1e-12


def test_rouge_extremes_stemming_and_per_example(metrics):
    rouge = metrics["rouge"]
    texts = [_space(r) for r in SUMMARY_REFS]
    assert rouge.compute(predictions=texts, references=texts) == {t: 1.0 for t in ROUGE_TYPES}
    disjoint = rouge.compute(predictions=["alpha beta gamma. delta epsilon."], references=[["one two three. four."]])
    assert disjoint == {t: 0.0 for t in ROUGE_TYPES}

    # Stemming is on by default: "cats running" vs "cat run" match only after stemming.
    assert rouge.compute(predictions=["cats running"], references=["cat run"])["rouge1"] == pytest.approx(1.0)
    assert rouge.compute(predictions=["cats running"], references=["cat run"], use_stemmer=False)["rouge1"] == 0.0

    per_example = rouge.compute(
        predictions=["the cat sat", "nothing in common"], references=["the cat sat", "zzz"], use_aggregator=False
    )
    assert per_example == {t: [1.0, 0.0] for t in ROUGE_TYPES}
    subset = rouge.compute(predictions=["the cat sat"], references=["the cat"], rouge_types=["rouge1"])
    assert subset == {"rouge1": pytest.approx(0.8)}


def test_rouge_sentence_splitter(metrics):
    split = sys.modules[type(metrics["rouge"]).__module__].add_sentence_newlines
    assert split("Dr. Smith arrived. He sat down! Was it late? Yes.") == (
        "Dr. Smith arrived.\nHe sat down!\nWas it late?\nYes."
    )
    assert split('He said "stop." Then J. R. left...  Fine') == 'He said "stop."\nThen J. R. left...\nFine'
    assert split("line one\nline two. Line three") == "line one\nline two.\nLine three"
    assert split("version 3.14 is out e.g. today") == "version 3.14 is out e.g. today"
    assert split("") == ""


def test_each_metric_is_named_and_cites_its_sources(metrics):
    """metrics/common.py builds the classes: evaluate names each metric after its class, and the
    citations come from citations.bib by key."""
    cited = {
        "accuracy": ["scikit-learn"], "f1": ["scikit-learn"], "rouge": ["lin-2004-rouge"],
        "sacrebleu": ["papineni-etal-2002-bleu", "post-2018-call"],
        "chrf": ["popovic-2015-chrf", "popovic-2017-chrf", "post-2018-call"],
    }
    for name, keys in cited.items():
        assert metrics[name].name == name
        assert [key for key in re.findall(r"@\w+\{([^,]+),", metrics[name].citation)] == keys
