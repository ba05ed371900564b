"""Check that a file is a real, non-blank PNG image."""

from __future__ import annotations

from pathlib import Path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path, min_side: int = 100) -> None:
    import matplotlib.image as mpimg
    import numpy as np

    assert path.is_file(), f"{path} missing"
    assert path.read_bytes()[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    pixels = mpimg.imread(path)
    assert pixels.shape[0] >= min_side and pixels.shape[1] >= min_side
    # Something is drawn: a blank canvas has a single colour.
    assert np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0).shape[0] > 10, f"{path} is blank"
