"""``python -m auth_service``: run the server and administer clients and tokens."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from pydantic import ValidationError

from auth_service import admin
from auth_service.clock import system_clock
from auth_service.db import StoreUnavailableError, open_database
from auth_service.settings import AuthSettings
from auth_service.store import Client, Store
from auth_service.syntax import format_scope, parse_scope_list

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2


def _scopes(value: str) -> tuple[str, ...]:
    try:
        return parse_scope_list(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m auth_service",
        description="OAuth 2.0 authorization server of the model gateway. "
        "Settings come from AUTH_* environment variables (see docs/auth.md).",
    )
    parser.add_argument(
        "--database",
        metavar="PATH|URL",
        help="SQLite file or postgresql:// URL (default: AUTH_DATABASE_URL, else"
        " AUTH_DATABASE_PATH)",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP service (loopback only)")
    serve.add_argument(
        "--host",
        help="listen address (default: AUTH_HOST); loopback unless AUTH_ALLOW_NON_LOOPBACK=true",
    )
    serve.add_argument("--port", type=int, help="TCP port (default: AUTH_PORT)")
    serve.add_argument("--unix-socket", type=Path, help="listen on this unix socket instead")
    serve.set_defaults(run=_serve)

    clients = commands.add_parser("clients", help="manage OAuth clients").add_subparsers(
        dest="action", required=True
    )
    create = clients.add_parser("create", help="register a client; prints its secret once")
    create.add_argument("--id", required=True, dest="client_id", help="client id")
    create.add_argument(
        "--scopes", type=_scopes, default=(), help="allowed scopes, e.g. detect,classify"
    )
    create.add_argument(
        "--introspect", action="store_true", help="allow this client to introspect tokens"
    )
    create.set_defaults(run=_create_client)
    listing = clients.add_parser("list", help="list clients")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(run=_list_clients)
    disable = clients.add_parser("disable", help="disable a client and revoke its tokens")
    disable.add_argument("client_id", metavar="NAME")
    disable.set_defaults(run=_disable_client)
    rotate = clients.add_parser("rotate-secret", help="replace a client's secret; prints it once")
    rotate.add_argument("client_id", metavar="NAME")
    rotate.set_defaults(run=_rotate_secret)

    tokens = commands.add_parser("tokens", help="manage access tokens").add_subparsers(
        dest="action", required=True
    )
    revoke = tokens.add_parser(
        "revoke",
        help="revoke an access token of any client",
        # Tokens are base64url, so one in 64 begins with "-" and would be read as an option.
        epilog="A token that begins with '-' goes after '--': tokens revoke -- TOKEN.",
    )
    revoke.add_argument(
        "token",
        metavar="TOKEN",
        help="the token (after -- if it begins with -), or - to read it from stdin",
    )
    revoke.set_defaults(run=_revoke_token)
    prune = tokens.add_parser("prune", help="delete expired tokens now")
    prune.set_defaults(run=_prune_tokens)
    return parser


@contextmanager
def _store(settings: AuthSettings) -> Iterator[Store]:
    database = open_database(settings.database, 1, settings.database_timeout_seconds).open()
    try:
        yield Store(database)
    finally:
        database.close()


def _print_secret(client_id: str, secret: str) -> None:
    print(f"client_id: {client_id}")
    print(f"client_secret: {secret}")
    print("Store the secret now: it is not kept and cannot be shown again.", file=sys.stderr)


def _create_client(args: argparse.Namespace, settings: AuthSettings) -> int:
    with _store(settings) as store:
        secret = admin.create_client(
            store, system_clock, args.client_id, args.scopes, args.introspect
        )
    _print_secret(args.client_id, secret)
    return EXIT_OK


def _client_row(client: Client) -> dict[str, object]:
    created = dt.datetime.fromtimestamp(client.created_at, dt.UTC)
    return {
        "client_id": client.client_id,
        "scopes": format_scope(client.scopes),
        "introspect": client.may_introspect,
        "disabled": client.disabled,
        "created": created.isoformat(timespec="seconds"),
    }


def _cell(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value) or "-"


def _list_clients(args: argparse.Namespace, settings: AuthSettings) -> int:
    with _store(settings) as store:
        rows = [_client_row(client) for client in store.list_clients()]
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return EXIT_OK
    columns = ("client_id", "scopes", "introspect", "disabled", "created")
    table = [columns, *[tuple(_cell(row[name]) for name in columns) for row in rows]]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    for line in table:
        cells = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        print("  ".join(cells).rstrip())
    return EXIT_OK


def _disable_client(args: argparse.Namespace, settings: AuthSettings) -> int:
    with _store(settings) as store:
        admin.disable_client(store, system_clock, args.client_id)
    print(f"client {args.client_id} disabled; its tokens are revoked")
    return EXIT_OK


def _rotate_secret(args: argparse.Namespace, settings: AuthSettings) -> int:
    with _store(settings) as store:
        secret = admin.rotate_secret(store, args.client_id)
    _print_secret(args.client_id, secret)
    return EXIT_OK


def _revoke_token(args: argparse.Namespace, settings: AuthSettings) -> int:
    token = sys.stdin.readline().strip() if args.token == "-" else args.token
    with _store(settings) as store:
        admin.revoke_token(store, system_clock, token)
    print("token revoked")
    return EXIT_OK


def _prune_tokens(_: argparse.Namespace, settings: AuthSettings) -> int:
    with _store(settings) as store:
        pruned = store.prune_expired(int(system_clock()))
    print(f"pruned {pruned} expired tokens")
    return EXIT_OK


def _serve(args: argparse.Namespace, settings: AuthSettings) -> int:
    import uvicorn  # only the server needs it; keeps the admin commands quick to start

    from auth_service.log_config import logging_config
    from auth_service.main import create_app

    options = {
        "log_config": logging_config(settings.log_level),
        "access_log": settings.access_log,
        "server_header": False,
        "lifespan": "on",
        "timeout_graceful_shutdown": 5,
    }
    app = create_app(settings)
    if settings.unix_socket is not None:
        uvicorn.run(app, uds=str(settings.unix_socket), **options)
    else:
        uvicorn.run(app, host=settings.host, port=settings.port, **options)
    return EXIT_OK


def _settings(args: argparse.Namespace) -> AuthSettings:
    overrides = {
        "database_url": args.database,
        "host": getattr(args, "host", None),
        "port": getattr(args, "port", None),
        "unix_socket": getattr(args, "unix_socket", None),
    }
    return AuthSettings(**{name: value for name, value in overrides.items() if value is not None})


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = _settings(args)
    except ValidationError as error:
        print(f"invalid settings:\n{error}", file=sys.stderr)
        return EXIT_USAGE
    run: Callable[[argparse.Namespace, AuthSettings], int] = args.run
    try:
        return run(args, settings)
    except admin.AdminError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_REFUSED
    except StoreUnavailableError as error:
        print(f"error: the token database is unavailable: {error}", file=sys.stderr)
        return EXIT_REFUSED
