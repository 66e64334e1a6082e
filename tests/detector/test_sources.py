"""The detector's photos and fonts packed for another machine, and read back from another root."""

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image

from training.detector.sources import group_of

ROOT = Path(__file__).resolve().parents[2]
MATPLOTLIB_FONTS = Path(matplotlib.get_data_path()) / "fonts" / "ttf"

# Prints the catalogue's groups as (key, path below the root) for the sources under the root.
SHOW = """
import json
from training.detector import sources
c = sources.catalogue()
def mine(group):
    return [(s.key, str(s.path.relative_to(sources.SOURCES_ROOT)))
            for s in group if s.path.is_relative_to(sources.SOURCES_ROOT / "usr")]
print(json.dumps({"backgrounds": {g: mine(v) for g, v in c.backgrounds.items()},
                  "fonts": {g: mine(v) for g, v in c.fonts.items()}}))
"""


def names_in(group: str, prefix: str, count: int) -> list[str]:
    """`count` file stems whose wallpaper key falls in `group`."""
    found, index = [], 0
    while len(found) < count:
        if group_of(f"wallpaper:{prefix}{index}") == group:
            found.append(f"{prefix}{index}")
        index += 1
    return found


def run(code: list[str], root: Path, cache: Path) -> str:
    env = {**os.environ, "DETECTOR_SOURCES_ROOT": str(root), "DETECTOR_CACHE_DIR": str(cache)}
    done = subprocess.run(
        [sys.executable, *code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


def test_packed_sources_give_another_root_the_same_train_group_and_nothing_else(tmp_path):
    root = tmp_path / "root"
    walls = root / "usr/share/backgrounds/test"
    walls.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for stem in [*names_in("train", "wall", 3), *names_in("eval", "wall", 1)]:
        pixels = rng.integers(0, 256, (1500, 2000, 3), dtype=np.uint8)  # larger than kept
        Image.fromarray(pixels).save(walls / f"{stem}.png")
    fonts = root / "usr/share/fonts/truetype/test"
    fonts.mkdir(parents=True)
    for name in ("DejaVuSans.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf", "cmr10.ttf"):
        shutil.copy(MATPLOTLIB_FONTS / name, fonts / name)
    packed = tmp_path / "sources.tar.xz"

    before = json.loads(run(["-c", SHOW], root, tmp_path / "cache"))
    printed = run(["-m", "training.detector", "pack-sources", "--out", str(packed)], root,
                  tmp_path / "cache")  # fmt: skip
    assert "3 backgrounds" in printed

    there = tmp_path / "there"
    with tarfile.open(packed) as archive:
        names = archive.getnames()
        archive.extractall(there, filter="data")
    after = json.loads(run(["-c", SHOW], there, tmp_path / "cache-there"))
    # The train group is the same, in the same order, at the same paths below the root ...
    assert after["backgrounds"]["train"] == before["backgrounds"]["train"]
    assert len(before["backgrounds"]["train"]) == 3
    assert after["fonts"]["train"] == before["fonts"]["train"] != []
    # ... and the evaluation's photos and fonts never left.
    held_out = [path for group in ("eval", "test") for _, path in before["backgrounds"][group]]
    held_out += [path for group in ("eval", "test") for _, path in before["fonts"][group]]
    assert held_out and not set(held_out) & set(names)
    for _, path in after["backgrounds"]["train"]:
        with Image.open(there / path) as image:
            assert max(image.size) == 1024  # stored as used: BACKGROUND_MAX_SIDE
