"""Synthetic images of the words "chat" and "rat", with their boxes, in two layouts.

- `seed`: the humble-YOLO article's data. A 64x64 black image cut into a 2x2 grid of 32-pixel
  cells; each cell holds "chat", "rat" or nothing (uniformly), in white, in Pillow's default
  bitmap font, at a random position inside the cell.
- `hard`: what a user would send. Sides of 96 to 512 pixels, 0 to 8 words, TrueType fonts of
  10 to 48 pixels, random colours with enough contrast, mild noise and blur. Boxes of different
  words are disjoint, so a box never holds another word's pixels.

Every box is the exact extent of the drawn text's pixels, (x_min, y_min, x_max, y_max) with the
max exclusive. Each image comes from its own random generator seeded by (purpose, seed, layout,
index): the same seed gives the same images, and the evaluation's purpose key keeps its images
apart from any training seed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from training.detector.words import LABELS

# `real`, `photos`, `clutter`, `lookalikes`: training.detector.real; `hard-*`: the `hard`
# layout under one perturbation (training.detector.perturb).
LAYOUTS = (
    "seed", "hard", "real", "photos", "clutter", "lookalikes",
    "hard-aug", "hard-rotate", "hard-blur", "hard-jpeg", "hard-scale",
)  # fmt: skip
PURPOSES = {"train": 0, "validation": 1, "eval": 2, "test": 3}

SEED_CELL = 32
SEED_GRID = 2
HARD_SIDES = (96, 512)
HARD_MAX_WORDS = 8
HARD_FONT_SIZES = (10, 48)
MIN_LUMA_CONTRAST = 96  # of 255, between text and background
BOX_COLORS = ((255, 64, 64), (64, 160, 255))  # per class, for previews

Font = ImageFont.ImageFont | ImageFont.FreeTypeFont


@dataclass
class Sample:
    image: Image.Image
    boxes: np.ndarray  # (N, 4) float32 pixels: x_min, y_min, x_max, y_max
    classes: np.ndarray  # (N,) int64 indices into LABELS
    # Boxes of the other words in the image (look-alikes, text): never targets.
    others: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    other_words: tuple[str, ...] = ()  # their texts, in the same order (for error reports)


def sample_rng(purpose: str, seed: int, layout: str, index: int) -> np.random.Generator:
    return np.random.default_rng([PURPOSES[purpose], seed, LAYOUTS.index(layout), index])


def _maker(layout: str, purpose: str) -> Callable[[np.random.Generator], Sample]:
    if layout == "seed":
        return seed_sample
    if layout == "hard":
        return hard_sample
    if layout.startswith("hard-"):
        from training.detector.perturb import perturbed_hard

        return functools.partial(perturbed_hard, layout.removeprefix("hard-"))
    if layout in LAYOUTS:
        from training.detector.real import real_sample

        return lambda rng: real_sample(rng, layout, purpose)
    raise ValueError(f"unknown layout {layout!r}; choose from {', '.join(LAYOUTS)}")


def generate(layout: str, count: int, seed: int, purpose: str = "train") -> Iterator[Sample]:
    make = _maker(layout, purpose)
    for index in range(count):
        yield make(sample_rng(purpose, seed, layout, index))


def generate_one(layout: str, seed: int, index: int, purpose: str = "train") -> Sample:
    return _maker(layout, purpose)(sample_rng(purpose, seed, layout, index))


@functools.cache
def bitmap_font() -> ImageFont.ImageFont:
    return ImageFont.load_default_imagefont()


def _truetype_paths() -> list[str | None]:
    """None stands for Pillow's bundled TrueType font; the rest ship with matplotlib."""
    import matplotlib

    fonts = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    names = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf")
    return [None, *(str(fonts / name) for name in names)]


TRUETYPE_FONTS = _truetype_paths()


@functools.cache
def truetype_font(path: str | None, size: int) -> ImageFont.FreeTypeFont:
    if path is None:
        return ImageFont.load_default(size=size)
    return ImageFont.truetype(path, size=size)


def word_mask(word: str, font: Font) -> Image.Image:
    """The word drawn white on black, cropped to exactly its inked pixels."""
    left, top, right, bottom = (int(v) for v in font.getbbox(word))
    canvas = Image.new("L", (right - left + 4, bottom - top + 4), 0)
    ImageDraw.Draw(canvas).text((2 - left, 2 - top), word, fill=255, font=font)
    return canvas.crop(canvas.getbbox())


def seed_sample(rng: np.random.Generator) -> Sample:
    side = SEED_CELL * SEED_GRID
    image = Image.new("RGB", (side, side), (0, 0, 0))
    boxes, classes = [], []
    for row in range(SEED_GRID):
        for col in range(SEED_GRID):
            choice = int(rng.integers(len(LABELS) + 1))
            if choice == len(LABELS):
                continue
            mask = word_mask(LABELS[choice], bitmap_font())
            x = col * SEED_CELL + int(rng.integers(SEED_CELL - mask.width + 1))
            y = row * SEED_CELL + int(rng.integers(SEED_CELL - mask.height + 1))
            image.paste((255, 255, 255), (x, y), mask)
            boxes.append((x, y, x + mask.width, y + mask.height))
            classes.append(choice)
    return _sample(image, boxes, classes)


def _luma(color: np.ndarray) -> float:
    return float(color @ np.array([0.299, 0.587, 0.114]))


def contrasting_colors(rng: np.random.Generator) -> tuple[tuple[int, ...], tuple[int, ...]]:
    background = rng.integers(0, 256, 3)
    while True:
        text = rng.integers(0, 256, 3)
        if abs(_luma(text) - _luma(background)) >= MIN_LUMA_CONTRAST:
            return tuple(int(v) for v in background), tuple(int(v) for v in text)


def _overlaps(box: tuple[int, int, int, int], others: Sequence[tuple[int, int, int, int]]) -> bool:
    # One pixel of clearance, so antialiased edges of two words never share a box.
    x0, y0, x1, y1 = box
    return any(x0 <= b[2] and b[0] <= x1 and y0 <= b[3] and b[1] <= y1 for b in others)


def hard_sample(
    rng: np.random.Generator,
    placement_attempts: int = 30,
    degrade: bool = True,
    ink: list[np.ndarray] | None = None,
) -> Sample:
    """A hard-layout image; `degrade=False` skips the blur and noise (same words, same boxes).

    `ink`, when given, receives each box's ink pixel centres (for geometric perturbations).
    """
    width, height = (int(v) for v in rng.integers(HARD_SIDES[0], HARD_SIDES[1] + 1, 2))
    background, text_color = contrasting_colors(rng)
    image = Image.new("RGB", (width, height), background)
    boxes: list[tuple[int, int, int, int]] = []
    classes: list[int] = []
    for _ in range(int(rng.integers(HARD_MAX_WORDS + 1))):
        choice = int(rng.integers(len(LABELS)))
        font_path = TRUETYPE_FONTS[int(rng.integers(len(TRUETYPE_FONTS)))]
        # Font sizes are drawn log-uniformly, so small text is as common as large text.
        low, high = HARD_FONT_SIZES
        size = round(float(np.exp(rng.uniform(np.log(low), np.log(high + 0.99)))) - 0.49)
        mask = word_mask(LABELS[choice], truetype_font(font_path, size))
        if mask.width >= width or mask.height >= height:
            continue
        for _ in range(placement_attempts):
            x = int(rng.integers(width - mask.width + 1))
            y = int(rng.integers(height - mask.height + 1))
            box = (x, y, x + mask.width, y + mask.height)
            if not _overlaps(box, boxes):
                image.paste(text_color, (x, y), mask)
                boxes.append(box)
                classes.append(choice)
                if ink is not None:
                    ys, xs = np.nonzero(np.asarray(mask))
                    ink.append(np.stack([xs + x + 0.5, ys + y + 0.5], 1).astype(np.float32))
                break
    if not degrade:
        return _sample(image, boxes, classes)
    if rng.random() < 0.5:
        image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.2, 0.8))))
    noise_sigma = float(rng.uniform(0.0, 8.0))
    if noise_sigma > 0.5:
        pixels = np.asarray(image, dtype=np.float32)
        pixels += rng.normal(0.0, noise_sigma, pixels.shape).astype(np.float32)
        image = Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8))
    return _sample(image, boxes, classes)


def _sample(image: Image.Image, boxes: Sequence[Sequence[float]], classes: Sequence[int]) -> Sample:
    return Sample(
        image=image,
        boxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        classes=np.asarray(classes, dtype=np.int64),
    )


# YOLO text labels: one line per object, "class cx cy w h", normalised to [0, 1].


def to_yolo_lines(sample: Sample) -> list[str]:
    width, height = sample.image.size
    lines = []
    for (x0, y0, x1, y1), class_id in zip(sample.boxes, sample.classes, strict=True):
        cx, cy = (x0 + x1) / 2 / width, (y0 + y1) / 2 / height
        w, h = (x1 - x0) / width, (y1 - y0) / height
        lines.append(f"{class_id} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
    return lines


def parse_yolo_lines(
    lines: Sequence[str], width: int, height: int
) -> tuple[np.ndarray, np.ndarray]:
    """YOLO label lines -> boxes (N, 4) in pixels and class ids (N,)."""
    rows = [line.split() for line in lines if line.strip()]
    values = np.asarray([[float(v) for v in row[1:5]] for row in rows], dtype=np.float32)
    values = values.reshape(-1, 4)
    scale = np.array([width, height, width, height], dtype=np.float32)
    boxes = np.concatenate(
        [values[:, :2] - values[:, 2:] / 2, values[:, :2] + values[:, 2:] / 2], 1
    )
    return boxes * scale, np.asarray([int(row[0]) for row in rows], dtype=np.int64)


def write_dataset(samples: Sequence[Sample], out_dir: Path) -> None:
    """`images/000000.png` and `labels/000000.txt` per sample (the layout LabelImg/CVAT export)."""
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    (out_dir / "labels").mkdir(parents=True, exist_ok=True)
    for index, sample in enumerate(samples):
        sample.image.save(out_dir / "images" / f"{index:06d}.png")
        lines = to_yolo_lines(sample)
        (out_dir / "labels" / f"{index:06d}.txt").write_text("".join(f"{x}\n" for x in lines))
    (out_dir / "classes.txt").write_text("".join(f"{label}\n" for label in LABELS))


def read_dataset(directory: Path) -> Iterator[Sample]:
    """Images with YOLO text labels: `images/<stem>.<png|jpg>` beside `labels/<stem>.txt`."""
    for image_path in sorted((directory / "images").iterdir()):
        image = Image.open(image_path).convert("RGB")
        label_path = directory / "labels" / f"{image_path.stem}.txt"
        lines = label_path.read_text().splitlines() if label_path.exists() else []
        boxes, classes = parse_yolo_lines(lines, *image.size)
        yield Sample(image, boxes, classes)


def draw_boxes(
    image: Image.Image,
    boxes: np.ndarray,
    classes: np.ndarray,
    scores: np.ndarray | None = None,
    scale: int = 1,
) -> Image.Image:
    """A copy of `image` (enlarged `scale` times) with labelled boxes."""
    canvas = image.convert("RGB").resize((image.width * scale, image.height * scale))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=11)
    for index, (box, class_id) in enumerate(zip(boxes, classes, strict=True)):
        color = BOX_COLORS[int(class_id)]
        x0, y0, x1, y1 = (float(v) * scale for v in box)
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=color, width=max(1, scale // 2))
        text = LABELS[int(class_id)]
        if scores is not None:
            text += f" {scores[index]:.2f}"
        draw.text((x0, max(0.0, y0 - 12)), text, fill=color, font=font)
    return canvas


def contact_sheet(tiles: Sequence[Image.Image], columns: int, tile_size: int = 256) -> Image.Image:
    """Tiles fitted into `tile_size` squares, on a grid."""
    rows = -(-len(tiles) // columns)
    sheet = Image.new("RGB", (columns * tile_size, rows * tile_size), (255, 255, 255))
    for index, tile in enumerate(tiles):
        tile = tile.copy()
        tile.thumbnail((tile_size - 4, tile_size - 4))
        row, col = divmod(index, columns)
        sheet.paste(tile, (col * tile_size + 2, row * tile_size + 2))
    return sheet


def preview(samples: Sequence[Sample], path: Path, columns: int = 4) -> Path:
    """A contact sheet of samples with their label boxes drawn, for a person to check."""
    tiles = []
    for sample in samples:
        scale = max(1, 256 // max(sample.image.size))
        tiles.append(draw_boxes(sample.image, sample.boxes, sample.classes, scale=scale))
    contact_sheet(tiles, columns).save(path)
    return path
