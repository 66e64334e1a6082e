"""The training run's settings: one dataclass, recorded in the version's metadata."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from training.detector.arrays import DEFAULT_CACHE_DIR


@dataclass
class TrainingConfig:
    seed: int = 0
    epochs: int = 5
    humble_epochs: int = 10
    train_images: int = 28_000
    seed_layout_fraction: float = 0.2
    humble_train_images: int = 8_000
    validation_images: int = 1_000
    input_size: int = 256
    width: int = 32
    boxes_per_cell: int = 2
    batch_size: int = 32
    learning_rate: float = 2e-3
    humble_learning_rate: float = 1e-3
    patience: int = 4
    time_budget_minutes: float | None = None  # for our detector's training
    cache_dir: Path | None = DEFAULT_CACHE_DIR
    extra_data: Path | None = None  # a YOLO-format folder added to the training images

    def layout_counts(self, total: int) -> dict[str, int]:
        seed_count = round(total * self.seed_layout_fraction)
        return {"seed": seed_count, "hard": total - seed_count}
