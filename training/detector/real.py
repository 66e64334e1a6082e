"""The `real` layouts: "chat" and "rat" written on photographs, among other words.

What a user sends is a photo with words on it, a page of other text, or both. One scene:

- a background: a random crop of a photograph (scaled, flipped; `training.detector.sources`),
  a procedural texture (value noise, stripes, checks, dots, blobs, paper), or a flat colour;
- words in fonts from the purpose's group, 8 to 64 pixels tall (log-uniform), coloured by
  contrast with the pixels beneath them, sometimes outlined or shadowed, each rotated (up to
  ±15 degrees) and slightly warped in perspective;
- hard negatives: look-alike words ("chart", "that", "cat", "rats"...), dictionary words, and
  in `clutter` scenes whole paragraphs of dictionary text with targets inside the lines;
- lighting, blur, JPEG and noise over the whole image.

Layouts: `real` (training mix of both kinds), `photos` (scattered words only), `clutter`
(paragraphs), `lookalikes` (targets beside look-alike words, to count the latter's false
positives). Labels follow `training.detector.words` (any case, whole words only). A target's
box is the extent of its letters' ink (outline included, drop shadow not); other words' boxes
are kept in `Sample.others`. Boxes of targets never overlap another word's box.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from training.detector import sources, words
from training.detector.dataset import Sample

REAL_LAYOUTS = ("real", "photos", "clutter", "lookalikes")
SIDES = (256, 512)
WORD_HEIGHTS = (8, 64)  # pixels of a word's letters (font size is ~1.4x the x-height..cap)
PARAGRAPH_HEIGHTS = (8, 24)
MAX_SCATTERED = 8
MAX_ROTATION = 15.0
MIN_CONTRAST = 80  # luma between a word and the mean of what lies under it, of 255
OTHER = len(words.LABELS)  # class id of any non-target word (detector training only)


@dataclass
class Placed:
    points: np.ndarray  # (K, 2) float32 ink pixel centres in image coordinates
    class_id: int  # 0/1 targets, OTHER for other words
    text: str

    def box(self) -> tuple[float, float, float, float]:
        x0, y0 = np.floor(self.points.min(axis=0))
        x1, y1 = np.floor(self.points.max(axis=0)) + 1
        return float(x0), float(y0), float(x1), float(y1)


# --- backgrounds -------------------------------------------------------------------------------


def _value_noise(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    out = np.zeros((height, width), dtype=np.float32)
    amplitude = 1.0
    for cells in (int(rng.integers(2, 6)), 8, 16, 48):
        coarse = rng.random((cells + 1, cells + 1)).astype(np.float32)
        layer = Image.fromarray((coarse * 255).astype(np.uint8)).resize(
            (width, height), Image.Resampling.BICUBIC
        )
        out += amplitude * np.asarray(layer, dtype=np.float32) / 255.0
        amplitude *= float(rng.uniform(0.3, 0.7))
    return (out - out.min()) / max(float(np.ptp(out)), 1e-6)


def _two_colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return rng.integers(0, 256, 3).astype(np.float32), rng.integers(0, 256, 3).astype(np.float32)


TEXTURES = ("noise", "stripes", "checks", "dots", "blobs", "paper", "gradient")


def procedural_background(
    rng: np.random.Generator, width: int, height: int, kind: str | None = None
) -> np.ndarray:
    """A texture as float32 RGB (H, W, 3) in 0..255."""
    kind = kind or str(rng.choice(TEXTURES))
    first, second = _two_colours(rng)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    if kind == "noise":
        t = _value_noise(rng, width, height)
    elif kind == "stripes":
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(3, 40)
        t = 0.5 + 0.5 * np.sin((xs * np.cos(angle) + ys * np.sin(angle)) * 2 * np.pi / period)
    elif kind == "checks":
        size = rng.uniform(4, 48)
        t = ((xs // size + ys // size) % 2).astype(np.float32)
    elif kind == "dots":  # star fields, confetti
        t = np.zeros((height, width), np.float32)
        count = int(rng.integers(50, 1500))
        t[rng.integers(0, height, count), rng.integers(0, width, count)] = 1.0
        t = np.asarray(
            Image.fromarray((t * 255).astype(np.uint8)).filter(
                ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.5)))
            ),
            dtype=np.float32,
        )
        t = np.clip(t / max(float(t.max()), 1e-6) * 2, 0, 1)
    elif kind == "blobs":  # gravel, coins, cells
        canvas = Image.new("L", (width, height), 0)
        draw = ImageDraw.Draw(canvas)
        for _ in range(int(rng.integers(20, 300))):
            x, y = rng.uniform(0, width), rng.uniform(0, height)
            r = rng.uniform(2, 30)
            draw.ellipse(
                (x - r, y - r * rng.uniform(0.5, 1.5), x + r, y + r),
                fill=int(rng.integers(60, 256)),
            )
        t = np.asarray(canvas, dtype=np.float32) / 255.0
    elif kind == "paper":
        first = rng.uniform(200, 255, 3).astype(np.float32)
        second = first - rng.uniform(10, 40)
        t = _value_noise(rng, width, height)
    else:
        angle = rng.uniform(0, 2 * np.pi)
        t = xs * np.cos(angle) + ys * np.sin(angle)
        t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
    return first * (1 - t[..., None]) + second * t[..., None]


def photo_background(
    rng: np.random.Generator, group: str, width: int, height: int
) -> np.ndarray | None:
    choices = sources.catalogue().backgrounds[group]
    if not choices:
        return None
    photo = sources.load_background(choices[int(rng.integers(len(choices)))])
    ph, pw = photo.shape[:2]
    # A crop of a random scale: from a detail (a quarter of the picture) to all of it.
    scale = float(rng.uniform(0.25, 1.0))
    crop_w = max(16, min(pw, round(pw * scale)))
    crop_h = max(16, min(ph, round(crop_w * height / width)))
    crop_w = max(16, min(pw, round(crop_h * width / height)))
    x = int(rng.integers(pw - crop_w + 1))
    y = int(rng.integers(ph - crop_h + 1))
    image = Image.fromarray(np.ascontiguousarray(photo[y : y + crop_h, x : x + crop_w]))
    image = image.resize((width, height), Image.Resampling.BILINEAR)
    if rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return np.asarray(image, dtype=np.float32)


def background(rng: np.random.Generator, group: str, width: int, height: int) -> np.ndarray:
    draw = rng.random()
    if draw < 0.65:
        photo = photo_background(rng, group, width, height)
        if photo is not None:
            return photo
    if draw < 0.92:
        return procedural_background(rng, width, height)
    return np.broadcast_to(rng.integers(0, 256, 3).astype(np.float32), (height, width, 3)).copy()


# --- words -----------------------------------------------------------------------------------


@functools.cache
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size=size)


def font_for_height(path: str, letters: str, height: float) -> ImageFont.FreeTypeFont:
    """The font at the size whose ink for `letters` is about `height` pixels tall."""
    probe = _font(path, 64)
    top, bottom = probe.getbbox(letters)[1::2]
    size = max(6, round(64 * height / max(1, bottom - top)))
    return _font(path, min(size, 400))


def luma(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def contrasting_color(rng: np.random.Generator, under: float) -> tuple[int, int, int]:
    """A random colour whose luma is at least MIN_CONTRAST from `under`."""
    for _ in range(30):
        color = rng.integers(0, 256, 3)
        if abs(float(luma(color.astype(np.float32))) - under) >= MIN_CONTRAST:
            return tuple(int(v) for v in color)
    return (0, 0, 0) if under >= 128 else (255, 255, 255)


def cased(rng: np.random.Generator, word: str) -> str:
    draw = rng.random()
    return word.upper() if draw < 0.15 else word.capitalize() if draw < 0.4 else word


def pick_word(rng: np.random.Generator, target_share: float, lookalike_share: float) -> str:
    draw = rng.random()
    if draw < target_share:
        return words.LABELS[int(rng.integers(len(words.LABELS)))]
    pool = words.lookalike_words() if draw < target_share + lookalike_share else None
    pool = pool or words.dictionary_words()
    return pool[int(rng.integers(len(pool)))]


def homography(
    rng: np.random.Generator, width: float, height: float, angle: float, distort: bool = True
) -> np.ndarray:
    """Rotation by `angle` degrees about the patch centre, with a little slant and perspective."""
    centre = np.array([[1, 0, -width / 2], [0, 1, -height / 2], [0, 0, 1]], dtype=np.float64)
    theta = np.deg2rad(angle)
    rotate = np.array(
        [[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]]
    )
    shear = np.eye(3)
    if distort and rng.random() < 0.3:
        shear[0, 1] = rng.uniform(-0.25, 0.25)  # italic-like slant
    if distort and rng.random() < 0.3:
        shear[2, :2] = rng.uniform(-0.6, 0.6, 2) / max(width, height)  # perspective
    return rotate @ shear @ centre


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    homogeneous = np.concatenate([points, np.ones((len(points), 1))], axis=1) @ matrix.T
    return (homogeneous[:, :2] / homogeneous[:, 2:]).astype(np.float32)


def _ink_points(mask: Image.Image, origin: tuple[float, float]) -> np.ndarray:
    ys, xs = np.nonzero(np.asarray(mask))
    return np.stack([xs + origin[0] + 0.5, ys + origin[1] + 0.5], axis=1).astype(np.float32)


@dataclass
class Shape:
    """A word's geometry before its colours are chosen: where its ink lands once warped."""

    text: str
    font: ImageFont.FreeTypeFont
    stroke: int
    shadow: bool
    origin: tuple[int, int]
    size: tuple[int, int]
    matrix: np.ndarray
    points: np.ndarray  # warped ink pixel centres, relative to the warped layer
    extent: tuple[int, int]  # the warped layer's size


def word_shape(
    rng: np.random.Generator, text: str, font: ImageFont.FreeTypeFont, angle: float
) -> Shape:
    stroke = max(1, round(font.size * float(rng.uniform(0.03, 0.08)))) if rng.random() < 0.15 else 0
    left, top, right, bottom = font.getbbox(text, stroke_width=stroke)
    pad = 4 + stroke + max(1, round(font.size * 0.06))
    size = (right - left + 2 * pad, bottom - top + 2 * pad)
    origin = (pad - left, pad - top)
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).text(origin, text, fill=255, font=font, stroke_width=stroke)
    matrix = homography(rng, size[0], size[1], angle)
    _, offset, extent = _warp_geometry(size, matrix)
    points = transform_points(matrix, _ink_points(mask, (0, 0))) - offset.astype(np.float32)
    return Shape(text, font, stroke, rng.random() < 0.15, origin, size, matrix, points, extent)


def _warp_geometry(
    size: tuple[int, int], matrix: np.ndarray
) -> tuple[tuple[float, ...], np.ndarray, tuple[int, int]]:
    """PIL's inverse coefficients, the warped layer's offset and its size."""
    w, h = size
    corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], dtype=np.float64).T
    mapped = matrix @ corners
    mapped = mapped[:2] / mapped[2]
    x0, y0 = np.floor(mapped.min(axis=1)) - 1
    x1, y1 = np.ceil(mapped.max(axis=1)) + 1
    shift = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]])
    inverse = np.linalg.inv(shift @ matrix)
    inverse /= inverse[2, 2]
    return tuple(inverse.reshape(-1)[:8]), np.array([x0, y0]), (int(x1 - x0), int(y1 - y0))


def warp(
    image: Image.Image, matrix: np.ndarray, fill: tuple[int, ...] | None = None
) -> tuple[Image.Image, np.ndarray]:
    """`image` warped by `matrix` onto a canvas that holds all of it; and the canvas offset."""
    coefficients, offset, extent = _warp_geometry(image.size, matrix)
    warped = image.transform(
        extent,
        Image.Transform.PERSPECTIVE,
        coefficients,
        Image.Resampling.BILINEAR,
        fillcolor=fill,
    )
    return warped, offset


def draw_shape(shape: Shape, color: tuple[int, int, int]) -> Image.Image:
    """The word as a warped RGBA layer in `color` (outline in black or white, for contrast)."""
    layer = Image.new("RGBA", shape.size, (0, 0, 0, 0))
    font, origin = shape.font, shape.origin
    if shape.shadow:
        shadow = Image.new("L", shape.size, 0)
        offset = max(1, round(font.size * 0.06))
        ImageDraw.Draw(shadow).text(
            (origin[0] + offset, origin[1] + offset), shape.text, fill=170, font=font
        )
        layer.paste((0, 0, 0, 255), (0, 0), shadow.filter(ImageFilter.GaussianBlur(offset / 2)))
    light = float(luma(np.array(color, np.float32))) > 128
    outline = (0, 0, 0, 255) if light else (255, 255, 255, 255)
    ImageDraw.Draw(layer).text(
        origin,
        shape.text,
        fill=(*color, 255),
        font=font,
        stroke_width=shape.stroke,
        stroke_fill=outline,
    )
    warped, _ = warp(layer, shape.matrix)
    return warped


def _overlapping(box: Sequence[float], others: Sequence[Sequence[float]], clearance: float) -> bool:
    x0, y0, x1, y1 = box
    c = clearance
    return any(x0 - c < b[2] and b[0] - c < x1 and y0 - c < b[3] and b[1] - c < y1 for b in others)


def _random_angle(rng: np.random.Generator, limit: float = MAX_ROTATION) -> float:
    return 0.0 if rng.random() < 0.35 else float(np.clip(rng.normal(0, limit / 2), -limit, limit))


def _under(canvas: np.ndarray, box: Sequence[float]) -> float:
    height, width = canvas.shape[:2]
    x0, y0, x1, y1 = (int(v) for v in box)
    region = canvas[max(0, y0) : min(height, y1), max(0, x0) : min(width, x1)]
    return float(luma(region.reshape(-1, 3)).mean()) if region.size else 128.0


def _paste(canvas: np.ndarray, layer: Image.Image, x: int, y: int) -> None:
    """Alpha-blend an RGBA layer into the float canvas at (x, y), clipped to the canvas."""
    height, width = canvas.shape[:2]
    pixels = np.asarray(layer, dtype=np.float32)
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(width, x + layer.width), min(height, y + layer.height)
    if x1 <= x0 or y1 <= y0:
        return
    part = pixels[y0 - y : y1 - y, x0 - x : x1 - x]
    alpha = part[..., 3:] / 255.0
    canvas[y0:y1, x0:x1] = canvas[y0:y1, x0:x1] * (1 - alpha) + part[..., :3] * alpha


def _class_of(text: str) -> int:
    found = words.target_class(text)
    return OTHER if found is None else found


def scatter_words(
    rng: np.random.Generator,
    canvas: np.ndarray,
    fonts: Sequence[sources.Source],
    placed: list[Placed],
    count: int,
    target_share: float,
    lookalike_share: float,
) -> None:
    """Up to `count` words at free places, each clear of every word already there."""
    height, width = canvas.shape[:2]
    low, high = WORD_HEIGHTS
    for _ in range(count):
        text = cased(rng, pick_word(rng, target_share, lookalike_share))
        letters = float(np.exp(rng.uniform(np.log(low), np.log(high))))
        font = font_for_height(str(fonts[int(rng.integers(len(fonts)))].path), text, letters)
        shape = word_shape(rng, text, font, _random_angle(rng))
        extent_w, extent_h = shape.extent
        if extent_w >= width or extent_h >= height:
            continue
        boxes = [p.box() for p in placed]
        for _attempt in range(20):
            x = int(rng.integers(width - extent_w + 1))
            y = int(rng.integers(height - extent_h + 1))
            word = Placed(shape.points + np.array([x, y], np.float32), _class_of(text), text)
            if not _overlapping(word.box(), boxes, 2.0):
                break
        else:
            continue
        color = contrasting_color(rng, _under(canvas, word.box()))
        _paste(canvas, draw_shape(shape, color), x, y)
        placed.append(word)


def paragraph(
    rng: np.random.Generator,
    canvas: np.ndarray,
    fonts: Sequence[sources.Source],
    placed: list[Placed],
) -> None:
    """A block of dictionary text, with targets and look-alikes inside its lines."""
    height, width = canvas.shape[:2]
    font_path = str(fonts[int(rng.integers(len(fonts)))].path)
    low, high = PARAGRAPH_HEIGHTS
    letters = float(np.exp(rng.uniform(np.log(low), np.log(high))))
    font = font_for_height(font_path, "hd", letters)
    ascent, descent = font.getmetrics()
    line_height = round((ascent + descent) * float(rng.uniform(1.0, 1.4)))
    block_w = int(width * rng.uniform(0.45, 1.0))
    block_h = int(height * rng.uniform(0.3, 1.0))
    space = font.getlength(" ")
    # (text, origin, its Placed or None for punctuation), in block coordinates.
    entries: list[tuple[str, tuple[float, float], Placed | None]] = []
    y, sentence_start = 2.0, True
    while y + ascent + descent < block_h:
        x = 2.0
        while True:
            text = pick_word(rng, 0.05, 0.1)
            if sentence_start:
                text = text.capitalize()
            elif rng.random() < 0.2:
                text = cased(rng, text)
            advance = font.getlength(text)
            if x + advance > block_w - 2:
                break
            left, top, right, bottom = font.getbbox(text)
            mask = Image.new("L", (right - left + 2, bottom - top + 2), 0)
            ImageDraw.Draw(mask).text((1 - left, 1 - top), text, fill=255, font=font)
            points = _ink_points(mask, (x + left - 1, y + top - 1))
            if len(points):
                entries.append((text, (x, y), Placed(points, _class_of(text), text)))
            x += advance
            sentence_start = False
            if rng.random() < 0.12:
                mark = "." if rng.random() < 0.6 else ","
                entries.append((mark, (x, y), None))
                x += font.getlength(mark)
                sentence_start = mark == "."
            x += space
        y += line_height
    block_x = int(rng.integers(max(1, width - block_w + 1)))
    block_y = int(rng.integers(max(1, height - block_h + 1)))
    angle = _random_angle(rng, 8.0) if rng.random() < 0.4 else 0.0
    matrix = homography(rng, block_w, block_h, angle, distort=False)
    _, offset, _ = _warp_geometry((block_w, block_h), matrix)
    shift = np.array([block_x, block_y], np.float32) - offset.astype(np.float32)
    boxes = [p.box() for p in placed]
    kept: list[Placed] = []
    for _, _, word in entries:
        if word is None:
            continue
        word.points = transform_points(matrix, word.points) + shift
        box = word.box()
        inside = box[0] >= 0 and box[1] >= 0 and box[2] <= width and box[3] <= height
        if inside and not _overlapping(box, boxes, 2.0):
            kept.append(word)
    if not kept:
        return
    color = contrasting_color(
        rng, _under(canvas, (block_x, block_y, block_x + block_w, block_y + block_h))
    )
    layer = Image.new("RGBA", (block_w, block_h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    kept_ids = {id(word) for word in kept}
    for text, origin, word in entries:
        if word is None or id(word) in kept_ids:
            draw.text(origin, text, fill=(*color, 255), font=font)
    warped, _ = warp(layer, matrix)
    # Points are relative to the warped layer's corner plus the block's place: paste it there.
    _paste(canvas, warped, block_x, block_y)
    placed.extend(kept)


# --- whole-image effects ---------------------------------------------------------------------


def degrade(rng: np.random.Generator, canvas: np.ndarray) -> Image.Image:
    """Lighting, resampling, blur, noise and JPEG, each at random (boxes are unchanged)."""
    height, width = canvas.shape[:2]
    pixels = canvas
    if rng.random() < 0.5:  # uneven light and a different exposure
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        angle = rng.uniform(0, 2 * np.pi)
        ramp = xs * np.cos(angle) + ys * np.sin(angle)
        ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
        low, high = sorted(rng.uniform(0.55, 1.3, 2))
        pixels = pixels * (low + (high - low) * ramp)[..., None]
        pixels = 255.0 * (np.clip(pixels, 0, 255) / 255.0) ** float(rng.uniform(0.7, 1.4))
    image = Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8))
    if rng.random() < 0.15:
        factor = float(rng.uniform(0.5, 0.85))
        small = image.resize((max(1, round(width * factor)), max(1, round(height * factor))))
        image = small.resize((width, height), Image.Resampling.BILINEAR)
    if rng.random() < 0.35:
        image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.8))))
    if rng.random() < 0.6:
        noisy = np.asarray(image, dtype=np.float32)
        noisy = noisy + rng.normal(0.0, float(rng.uniform(1.0, 10.0)), noisy.shape)
        image = Image.fromarray(np.clip(noisy + 0.5, 0, 255).astype(np.uint8))
    if rng.random() < 0.4:
        image = jpeg(image, int(rng.integers(20, 91)))
    return image


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def _sample(image: Image.Image, placed: Sequence[Placed]) -> Sample:
    targets = [p for p in placed if p.class_id != OTHER]
    others = [p for p in placed if p.class_id == OTHER]
    return Sample(
        image=image,
        boxes=np.asarray([p.box() for p in targets], np.float32).reshape(-1, 4),
        classes=np.asarray([p.class_id for p in targets], np.int64),
        others=np.asarray([p.box() for p in others], np.float32).reshape(-1, 4),
        other_words=tuple(p.text for p in others),
    )


def real_sample(rng: np.random.Generator, layout: str, purpose: str) -> Sample:
    """One scene of a `real` layout, from the sources of the purpose's group."""
    _, canvas, placed = real_scene(rng, layout, purpose)
    return _sample(degrade(rng, canvas), placed)


def real_scene(
    rng: np.random.Generator, layout: str, purpose: str
) -> tuple[np.ndarray, np.ndarray, list[Placed]]:
    """The background, the canvas with its words (before `degrade`), and the words."""
    group = sources.PURPOSE_GROUPS[purpose]
    fonts = sources.catalogue().fonts[group]
    if layout == "real":
        layout = str(rng.choice(["photos", "clutter", "lookalikes"], p=[0.5, 0.3, 0.2]))
    width, height = (int(v) for v in rng.integers(SIDES[0], SIDES[1] + 1, 2))
    canvas = background(rng, group, width, height)
    placed: list[Placed] = []
    bare_copy = canvas.copy()
    if layout == "photos":
        scatter_words(
            rng, canvas, fonts, placed, int(rng.integers(1, MAX_SCATTERED + 1)), 0.5, 0.25
        )
    elif layout == "clutter":
        if rng.random() < 0.4:  # a printed page rather than a poster
            canvas = procedural_background(rng, width, height, kind="paper")
            bare_copy = canvas.copy()
        for _ in range(int(rng.integers(1, 3))):
            paragraph(rng, canvas, fonts, placed)
        scatter_words(rng, canvas, fonts, placed, int(rng.integers(0, 4)), 0.5, 0.25)
    elif layout == "lookalikes":
        scatter_words(
            rng, canvas, fonts, placed, int(rng.integers(2, MAX_SCATTERED + 1)), 0.25, 0.75
        )
    else:
        raise ValueError(f"unknown real layout {layout!r}")
    return bare_copy, canvas, placed
