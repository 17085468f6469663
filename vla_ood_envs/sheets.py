"""Picture sheets: equally sized frames tiled in a grid with a caption under each. The one helper behind every
picture the package writes (the tools' sheets and strips, the dataset inspector, the evaluation report's strips).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

CAPTION_CHAR_WIDTH = 6  # pixels per character of the caption font


def caption_font() -> ImageFont.ImageFont:
    """Pillow's fixed-width bitmap font (6 px per character). Pillow >= 10.1's default is a 10 px FreeType font
    whose unhinted spaces are 1-2 px wide, so captions read "putapple on plate"."""
    return ImageFont.load_default_imagefont()


def grid(images: list[np.ndarray], columns: int, captions: list[str] | None = None) -> Image.Image:
    """Tile equally sized RGB images into a sheet, with an optional caption strip under each (cut to the width
    of an image)."""
    h, w = images[0].shape[:2]
    cap_h = 14 if captions else 0
    rows = (len(images) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * w, rows * (h + cap_h)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = caption_font()
    for i, img in enumerate(images):
        x, y = (i % columns) * w, (i // columns) * (h + cap_h)
        sheet.paste(Image.fromarray(img), (x, y))
        if captions:
            draw.text((x + 3, y + h + 1), captions[i][: (w - 3) // CAPTION_CHAR_WIDTH], fill=(0, 0, 0), font=font)
    return sheet
