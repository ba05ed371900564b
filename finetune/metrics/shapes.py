"""What the metric modules share: their input shapes and sacrebleu's reference layout.

The modules import this absolutely (`from finetune.metrics.shapes import ...`): evaluate copies
each module file into its cache on its own, so a relative import would not resolve there, while
the installed package always does.
"""

import datasets


def label_features():
    """int32 class ids: floats would hint at logits passed by mistake and fail the cast."""
    return datasets.Features({"predictions": datasets.Value("int32"), "references": datasets.Value("int32")})


def text_features():
    """String predictions with one reference or a list of them per example. evaluate picks the
    shape matching the first example, so one call must use a single shape throughout."""
    return [
        datasets.Features(
            {"predictions": datasets.Value("string"), "references": datasets.Sequence(datasets.Value("string"))}
        ),
        datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
    ]


def reference_streams(references):
    """Turn per-example reference lists into sacrebleu's per-position streams.

    sacrebleu wants ``refs[k][i]`` = k-th reference of example i, the transpose of what a
    dataset holds. Examples with fewer references are padded with ``None``, which sacrebleu drops
    per segment, so padding changes no statistic (an empty-string pad would, through the brevity
    penalty's closest reference length).
    """
    per_example = [[refs] if isinstance(refs, str) else list(refs) for refs in references]
    for i, refs in enumerate(per_example):
        if len(refs) == 0:
            raise ValueError(f"example {i} has no reference")
    n_streams = max(len(refs) for refs in per_example)
    return [[refs[k] if k < len(refs) else None for refs in per_example] for k in range(n_streams)]
