"""What the `real` layout is made of: photographs, fonts and words from installed packages.

Nothing here is committed or downloaded: backgrounds are the wallpapers of Debian's desktop
packages and the photographs bundled with scikit-image, scikit-learn and matplotlib; fonts are
every usable TrueType/OpenType file of the `fonts-*` packages and matplotlib; words come from
`training.detector.words`. `scripts/install --detector-data` installs the Debian packages;
docs/detector-data.md lists each source with its licence.

Every background and every font family falls in one of three groups by a hash of its name:
`train` (70 %), `eval` (20 %, only the evaluation's held-out sets) and `test` (10 %, only the
independent test set kept outside the repository). A machine without the packages (CI) has few
sources: a group that would be empty borrows from all of them, and `catalogue().complete`
says so, so a table computed that way is never mistaken for a held-out figure.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFont

GROUPS = ("train", "eval", "test")
PURPOSE_GROUPS = {"train": "train", "validation": "train", "eval": "eval", "test": "test"}
# DETECTOR_SOURCES_ROOT: where the Debian packages' files are, when not at / (a machine that
# cannot install them, such as a lent GPU machine, gets a copy of the train group's files in
# another folder: `python -m training.detector pack-sources`). Names and order below it are as
# at /, so every source keeps its key, its group and its place in the catalogue.
SOURCES_ROOT = Path(os.environ.get("DETECTOR_SOURCES_ROOT", "/"))
WALLPAPER_DIRS = (SOURCES_ROOT / "usr/share/backgrounds", SOURCES_ROOT / "usr/share/wallpapers")
FONT_DIRS = (SOURCES_ROOT / "usr/share/fonts",)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
FONT_SUFFIXES = {".ttf", ".otf"}
BACKGROUND_MAX_SIDE = 1024  # backgrounds are cached at this size: crops come from it
BACKGROUND_CACHE = Path(
    os.environ.get("DETECTOR_CACHE_DIR", Path(tempfile.gettempdir()) / "detector-cache")
)

# scikit-image's photographs and textures whose licence allows this use (docs/detector-data.md);
# "page" and "text" are left out: they hold words nobody labelled.
SKIMAGE_FILES = (
    "astronaut.png", "brick.png", "camera.png", "chelsea.png", "clock_motion.png", "coffee.png",
    "coins.png", "grass.png", "gravel.png", "hubble_deep_field.jpg", "rocket.jpg",
)  # fmt: skip
SKLEARN_FILES = ("china.jpg", "flower.jpg")
MATPLOTLIB_FILES = ("grace_hopper.jpg",)

# Wallpapers without an author or licence entry, mostly transparent ones (black once flattened),
# and pictures holding words or digits nobody labelled (docs/detector-data.md).
_BACKGROUND_EXCLUDE = re.compile(
    r"gnome/(dune|licorice|truchet|vnc)-|mate/abstract/(Arc-Colors-Transparent-Wallpaper|Flow|"
    r"Gulp|Silk|Spring|Waves)\.png|MATE-Stripes-Light|GreenTraditional|focal-ubuntukylin"
)

# Fonts without Latin letters, or whose letters are pictures (symbols, maths, dingbats).
_FONT_EXCLUDE = re.compile(
    r"symbol|math|dingbat|d050000l|keyboard|initials|cmex|cmsy|cmmi|stixsize|stixnonuni|"
    r"asana|ornament|emoji|icons|last ?resort",
    re.IGNORECASE,
)


def group_of(key: str) -> str:
    bucket = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 10
    return "eval" if bucket < 2 else "test" if bucket == 2 else "train"


@dataclass(frozen=True)
class Source:
    key: str  # what the group is decided by: a wallpaper's name, a font's family
    path: Path
    package: str
    variant: str = ""  # files of one picture in several sizes share it (the largest is kept)


@dataclass(frozen=True)
class Catalogue:
    backgrounds: dict[str, tuple[Source, ...]]  # group -> sources
    fonts: dict[str, tuple[Source, ...]]
    complete: bool  # every group has its own backgrounds and fonts

    def summary(self) -> dict[str, object]:
        return {
            "backgrounds": {g: len(v) for g, v in self.backgrounds.items()},
            "background_packages": sorted(
                {s.package for v in self.backgrounds.values() for s in v}
            ),
            "fonts": {g: len(v) for g, v in self.fonts.items()},
            "font_families": {g: len({s.key for s in v}) for g, v in self.fonts.items()},
            "complete": self.complete,
        }


def _package_of(path: Path) -> str:
    parts = path.parts
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1]
    return "/".join(parts[3:5]) if len(parts) > 4 else str(path.parent)


def _wallpapers() -> Iterable[Source]:
    for root in WALLPAPER_DIRS:
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            if path.suffix.lower() not in IMAGE_SUFFIXES or "screenshot" in path.name.lower():
                continue
            if path.is_symlink() or _BACKGROUND_EXCLUDE.search(str(path)):
                continue
            relative = path.relative_to(root)
            if "contents" in relative.parts:
                # KDE layout NAME/contents/images[_dark]/WxH.ext: one picture in many sizes,
                # the largest kept; the dark variant is the same scene, so the same group.
                name = relative.parts[0]
                variant = relative.parts[-2]
                yield Source(f"wallpaper:{name}", path, str(root), f"{root}/{name}:{variant}")
            else:
                key = f"wallpaper:{relative.with_suffix('')}"
                yield Source(key, path, str(root), str(path))


def _largest_per_variant(sources: Iterable[Source]) -> list[Source]:
    best: dict[str, Source] = {}
    for source in sources:
        current = best.get(source.variant)
        if current is None or source.path.stat().st_size > current.path.stat().st_size:
            best[source.variant] = source
    return sorted(best.values(), key=lambda s: str(s.path))


def _bundled_photos() -> Iterable[Source]:
    try:
        import skimage.data

        root = Path(skimage.data.__file__).parent
        for name in SKIMAGE_FILES:
            if (root / name).is_file():
                yield Source(f"skimage:{name}", root / name, "scikit-image", name)
    except ImportError:
        pass
    try:
        import sklearn.datasets

        root = Path(sklearn.datasets.__file__).parent / "images"
        for name in SKLEARN_FILES:
            if (root / name).is_file():
                yield Source(f"sklearn:{name}", root / name, "scikit-learn", name)
    except ImportError:
        pass
    import matplotlib

    root = Path(matplotlib.get_data_path()) / "sample_data"
    for name in MATPLOTLIB_FILES:
        if (root / name).is_file():
            yield Source(f"matplotlib:{name}", root / name, "matplotlib", name)


def _fonts() -> Iterable[Source]:
    import matplotlib

    dirs = [*FONT_DIRS, Path(matplotlib.get_data_path()) / "fonts" / "ttf"]
    seen: set[str] = set()
    for root in dirs:
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            if path.suffix.lower() not in FONT_SUFFIXES or _FONT_EXCLUDE.search(path.name):
                continue
            try:
                font = ImageFont.truetype(str(path), 24)
                family, _style = font.getname()
                left, _top, right, _bottom = font.getbbox("chat rat")
            except OSError:
                continue
            if family is None or _FONT_EXCLUDE.search(family) or right - left < 24:
                continue
            if path.name in seen:  # the same file shipped twice (matplotlib and Debian DejaVu)
                continue
            seen.add(path.name)
            yield Source(f"font:{family}", path, _package_of(path))


def _split(sources: list[Source]) -> tuple[dict[str, tuple[Source, ...]], bool]:
    groups = {g: tuple(s for s in sources if group_of(s.key) == g) for g in GROUPS}
    complete = all(groups.values())
    if not complete:
        groups = {g: (v or tuple(sources)) for g, v in groups.items()}
    return groups, complete


@functools.cache
def catalogue() -> Catalogue:
    backgrounds, backgrounds_complete = _split(
        [*_largest_per_variant(_wallpapers()), *_bundled_photos()]
    )
    fonts, fonts_complete = _split(list(_fonts()))
    return Catalogue(backgrounds, fonts, backgrounds_complete and fonts_complete)


def load_background(source: Source) -> np.ndarray:
    """The picture as uint8 RGB, at most BACKGROUND_MAX_SIDE on a side (cached on disk)."""
    digest = hashlib.sha256(str(source.path).encode()).hexdigest()[:16]
    cached = BACKGROUND_CACHE / "backgrounds" / f"{digest}-{BACKGROUND_MAX_SIDE}.npy"
    if cached.exists():
        return np.load(cached, mmap_mode="r")
    with Image.open(source.path) as opened:
        opened.draft("RGB", (BACKGROUND_MAX_SIDE, BACKGROUND_MAX_SIDE))  # fast JPEG decode
        image = opened.convert("RGB")
    image.thumbnail((BACKGROUND_MAX_SIDE, BACKGROUND_MAX_SIDE), Image.Resampling.LANCZOS)
    pixels = np.asarray(image, dtype=np.uint8)
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(f".{os.getpid()}.partial.npy")
    np.save(partial, pixels)
    partial.rename(cached)
    return pixels


def pack(path: Path, groups: Iterable[str] = ("train",)) -> dict[str, int]:
    """A tar.xz of the groups' Debian files, laid out as under SOURCES_ROOT, for another machine.

    Unpacked into a folder that DETECTOR_SOURCES_ROOT then names, it gives that machine the same
    catalogue for these groups (keys, groups and order come from the names below the root); the
    pictures of scikit-image, scikit-learn and matplotlib come with those packages there. Each
    background is stored as it is used, at most BACKGROUND_MAX_SIDE on a side, as JPEG (quality
    92) under its own name: Pillow reads a file by its content, and a 4K wallpaper is 20 times
    larger. Groups left out stay here: the evaluation's photos and fonts never travel.
    """
    import io
    import tarfile

    wanted = set(groups)
    chosen = catalogue()
    counts = {"backgrounds": 0, "fonts": 0}
    with tarfile.open(path, "w:xz") as archive:
        for group in sorted(wanted):
            for source in chosen.backgrounds[group]:
                if not source.path.is_relative_to(SOURCES_ROOT / "usr"):
                    continue  # a Python package's picture: installed with that package
                buffer = io.BytesIO()
                pixels = np.asarray(load_background(source))
                Image.fromarray(pixels).save(buffer, "JPEG", quality=92)
                info = tarfile.TarInfo(str(source.path.relative_to(SOURCES_ROOT)))
                info.size = buffer.tell()
                buffer.seek(0)
                archive.addfile(info, buffer)
                counts["backgrounds"] += 1
            for source in chosen.fonts[group]:
                if source.path.is_relative_to(SOURCES_ROOT / "usr"):
                    archive.add(source.path, str(source.path.relative_to(SOURCES_ROOT)))
                    counts["fonts"] += 1
    return counts
