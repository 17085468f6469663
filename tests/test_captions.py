"""Captions of the picture sheets keep their spaces (the default FreeType font drew "putapple on plate")."""

import numpy as np

from vla_ood_envs.sheets import grid


def _word_gaps(caption: str) -> list[int]:
    """Widths of the blank pixel columns between inked runs of the caption strip."""
    sheet = np.asarray(grid([np.full((20, 200, 3), 255, np.uint8)], 1, [caption]).convert("L"))
    inked = (sheet[20:] < 128).any(0)
    cols = np.flatnonzero(inked)
    return [int(b - a - 1) for a, b in zip(cols[:-1], cols[1:]) if b - a > 1]


def test_spaces_between_words_are_wider_than_gaps_between_letters():
    gaps = _word_gaps("put apple on plate")
    spaces = [g for g in gaps if g >= 4]
    assert len(spaces) == 3, gaps  # one clear gap per space
    assert max(g for g in gaps if g < 4) <= 2


def test_captions_are_cut_to_the_image_width():
    sheet = np.asarray(grid([np.full((10, 60, 3), 255, np.uint8)] * 2, 2, ["x" * 40, ""]).convert("L"))
    assert (sheet[10:, 60:] == 255).all()  # the first caption does not run into its neighbour
