"""app.tasks: each task route declared in one place, and the gateway's locations made from it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from fastapi import APIRouter

from app.tasks import Task, discover, nginx_locations
from tests.conftest import PROJECT_ROOT


def test_the_three_task_routes_declare_their_model_scope_paths_and_companion() -> None:
    tasks = {task.name: task for task in discover()}
    assert {name: (t.model, t.scope, tuple(t.locations)) for name, t in tasks.items()} == {
        "classify": ("classifier", "classify", ("= /classify",)),
        "detect": ("detector", "detect", ("= /detect",)),
        "vae": ("vae", "vae", ("/vae/",)),
    }
    assert tasks["classify"].companion is not None and tasks["detect"].companion is not None
    assert tasks["vae"].companion is None


def test_a_new_task_is_one_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "extra_tasks"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "echo.py").write_text(
        "from fastapi import APIRouter\n"
        "from app.tasks import Task\n"
        "router = APIRouter()\n"
        "TASK = Task(name='echo', model='echo-model', router=router, scope='echo',\n"
        "            locations=('= /echo',))\n"
    )
    (package / "helpers.py").write_text("VALUE = 1\n")  # no TASK: not a task
    monkeypatch.syspath_prepend(str(tmp_path))
    (task,) = discover("extra_tasks")
    assert (task.name, task.model) == ("echo", "echo-model")
    assert "location = /echo {\n    set $required_scope echo;" in nginx_locations([task])


def test_the_gateway_locations_come_from_the_declarations() -> None:
    text = subprocess.run(
        [sys.executable, "-m", "app.tasks", "nginx"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    for path, scope in (("= /detect", "detect"), ("/vae/", "vae"), ("= /classify", "classify")):
        assert f"location {path} {{\n    set $required_scope {scope};" in text


@pytest.mark.parametrize(
    ("scope", "location"),
    [("detect; allow all", "= /x"), ("Detect", "= /x"), ("x", "~ .*"), ("x", "/x { }")],
)
def test_a_declaration_that_could_change_the_nginx_config_is_refused(scope, location) -> None:
    with pytest.raises(ValueError):
        Task(name="bad", model="m", router=APIRouter(), scope=scope, locations=(location,))
