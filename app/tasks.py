"""Task routes, each declared in one place: its model, companion, scope and gateway paths.

A task route module (`app/routes/<task>.py`) holds a module-level `TASK = Task(...)`: the
model its routes serve, what that model needs beside its runtime (the classifier's vectorizer,
the detector's reader), the scope the gateway asks for and the paths nginx routes to it.
`create_app` mounts every task it finds; the gateway's launcher writes the nginx locations
from the same declarations (`python -m app.tasks nginx`). Adding a task is adding one module.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter

_SCOPE = re.compile(r"[a-z][a-z0-9:_.-]{0,63}")
_LOCATION = re.compile(r"(= )?/[a-z0-9/_.-]{1,64}")


@dataclass(frozen=True)
class Task:
    name: str
    model: str  # the model its routes serve (a registry name)
    router: APIRouter
    scope: str  # what the gateway requires for its paths
    locations: Sequence[str]  # nginx location arguments: "= /classify" (exact) or "/vae/" (prefix)
    # Built beside each loaded version of the model, in the loader thread.
    companion: Callable[[Any], Any] | None = field(default=None)

    def __post_init__(self) -> None:
        if not _SCOPE.fullmatch(self.scope):
            raise ValueError(f"task {self.name}: scope {self.scope!r} is not a plain scope token")
        for location in self.locations:
            if not _LOCATION.fullmatch(location):
                raise ValueError(f"task {self.name}: {location!r} is not an exact or prefix path")


def discover(package: str = "app.routes") -> tuple[Task, ...]:
    """Every `TASK` of the package's modules, by name."""
    found = []
    for info in pkgutil.iter_modules(importlib.import_module(package).__path__):
        task = getattr(importlib.import_module(f"{package}.{info.name}"), "TASK", None)
        if isinstance(task, Task):
            found.append(task)
    return tuple(sorted(found, key=lambda task: task.name))


def nginx_locations(tasks: Sequence[Task]) -> str:
    """The gateway's protected locations of the tasks (included by nginx/nginx.conf)."""
    blocks = []
    for task in tasks:
        for location in task.locations:
            blocks.append(
                f"# {task.name}: model {task.model}\n"
                f"location {location} {{\n"
                f"    set $required_scope {task.scope};\n"
                f"    proxy_pass http://app_upstream;\n"
                f"}}\n"
            )
    return "".join(blocks)


def main(argv: list[str]) -> None:
    if argv != ["nginx"]:
        raise SystemExit("usage: python -m app.tasks nginx")
    sys.stdout.write(nginx_locations(discover()))


if __name__ == "__main__":
    # Run as app.tasks, not __main__: the route modules' TASKs are instances of that one's Task.
    from app import tasks

    tasks.main(sys.argv[1:])
