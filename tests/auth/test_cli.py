"""``python -m auth_service`` administration, end to end against a running service."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from .conftest import ServerFactory
from .support import Credentials, check, run_cli, secret_from_output, token_for

GRANT = {"grant_type": "client_credentials"}


def _listed(database: Path | str) -> list[dict]:
    output = run_cli(database, "clients", "list", "--json").stdout
    return [json.loads(line) for line in output.splitlines()]


def test_clients_and_tokens_are_managed_from_the_command_line(
    store_url: Path | str, start_server: ServerFactory
) -> None:
    database = store_url
    server = start_server(database)

    created = run_cli(
        database, "clients", "create", "--id", "detector", "--scopes", "detect,classify"
    )
    detector = Credentials("detector", secret_from_output(created.stdout))
    assert "client_id: detector" in created.stdout
    assert "shown again" in created.stderr
    run_cli(database, "clients", "create", "--id", "ops", "--introspect")

    listed = _listed(database)
    assert [(c["client_id"], c["scopes"], c["introspect"], c["disabled"]) for c in listed] == [
        ("detector", "classify detect", False, False),
        ("ops", "", True, False),
    ]
    table = run_cli(database, "clients", "list").stdout
    header = ["client_id", "scopes", "introspect", "disabled", "created"]
    assert table.splitlines()[0].split() == header
    assert detector.secret not in table + json.dumps(listed)

    with server.http() as http:
        response = http.post("/oauth2/token", data=GRANT, auth=detector.basic)
        assert response.json()["scope"] == "classify detect"
        token = response.json()["access_token"]

        rotated_output = run_cli(database, "clients", "rotate-secret", "detector").stdout
        rotated = Credentials("detector", secret_from_output(rotated_output))
        assert rotated.secret != detector.secret
        assert http.post("/oauth2/token", data=GRANT, auth=detector.basic).status_code == 401
        assert http.post("/oauth2/token", data=GRANT, auth=rotated.basic).status_code == 200
        assert check(http, token).status_code == 200  # rotation keeps issued tokens

        # "--" keeps a token that begins with "-" (one in 64) from being read as an option.
        run_cli(database, "tokens", "revoke", "--", token)
        assert check(http, token).status_code == 401

        from_stdin = token_for(http, rotated)
        run_cli(database, "tokens", "revoke", "-", stdin=from_stdin + "\n")
        assert check(http, from_stdin).status_code == 401

        live = token_for(http, rotated)
        assert "disabled" in run_cli(database, "clients", "disable", "detector").stdout
        assert check(http, live).status_code == 401
        assert http.post("/oauth2/token", data=GRANT, auth=rotated.basic).status_code == 401

    assert _listed(database)[0]["disabled"] is True


def test_refused_commands_exit_non_zero_with_a_message(tmp_path: Path) -> None:
    database = tmp_path / "cli-errors.sqlite3"
    run_cli(database, "clients", "create", "--id", "taken", "--scopes", "detect")

    cases = {
        ("clients", "create", "--id", "taken", "--scopes", "detect"): (1, "already exists"),
        ("clients", "create", "--id", "bad id", "--scopes", "detect"): (1, "invalid client id"),
        ("clients", "create", "--id", "noscope"): (1, "at least one scope"),
        ("clients", "create", "--id", "q", "--scopes", 'a"b'): (2, "invalid scope"),
        ("clients", "disable", "nobody"): (1, "no client"),
        ("clients", "rotate-secret", "nobody"): (1, "no client"),
        ("tokens", "revoke", "never-issued"): (1, "no such token"),
        ("tokens", "revoke", "--", "-dash-first"): (1, "no such token"),
        ("tokens", "revoke", "-dash-first"): (2, "required: TOKEN"),
        ("clients",): (2, "required"),
    }
    for args, (code, message) in cases.items():
        result = run_cli(database, *args, check=False)
        assert result.returncode == code, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
    assert [client["client_id"] for client in _listed(database)] == ["taken"]


def test_expired_tokens_can_be_pruned_from_the_command_line(tmp_path: Path) -> None:
    database = tmp_path / "cli-prune.sqlite3"
    run_cli(database, "clients", "create", "--id", "svc", "--scopes", "detect")
    now = int(time.time())
    with sqlite3.connect(database) as conn:
        conn.executemany(
            "INSERT INTO tokens (token_hash, client_id, scopes, issued_at, expires_at)"
            " VALUES (?, 'svc', 'detect', ?, ?)",
            [(bytes([1]) * 32, now - 7200, now - 3600), (bytes([2]) * 32, now, now + 3600)],
        )

    result = run_cli(database, "tokens", "prune")

    assert result.stdout.strip() == "pruned 1 expired tokens"
    with sqlite3.connect(database) as conn:
        assert conn.execute("SELECT count(*) FROM tokens").fetchone()[0] == 1
