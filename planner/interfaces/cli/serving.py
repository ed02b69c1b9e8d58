"""``planner serve``: the HTTP API and the live page of a database, without planning; and the API
that ``planner run`` serves (``start_api_for``).

The API runs on its own port, 8790 by default, bound to 127.0.0.1 (``--api-address HOST:PORT``;
port 0 for any free one). When the default port is taken a free one is used; an address asked for
explicitly that cannot be bound is a user error. Writes need ``PLANNER_API_TOKEN`` in the
environment: without it the API still reads, and refuses writes (403).

The API opens a store of its own: the running planner's store fences every write with its lease,
and an operator's request is not the planner's write. ``planner serve`` holds no lease, so it can
stand beside a running planner (or a standby) on the same database; its page shows the database's
picture (``planner.interfaces.page.watch``), and its ``planner_leader`` metric is 0.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from planner.interfaces.cli.app import Env, UserError, cli, open_store, pass_env

if TYPE_CHECKING:
    from planner.interfaces.api import ApiServer

__all__ = ["api_address_option", "serve", "start_api_for"]

TOKEN_ENV = "PLANNER_API_TOKEN"


def api_address_option(f: Any) -> Any:
    return click.option(
        "--api-address",
        metavar="HOST:PORT",
        default=None,
        help="Where the HTTP API listens [default: 127.0.0.1:8790, or a free port if taken;"
        " :0 for any free port].",
    )(f)


def start_api_for(env: Env, address: str | None) -> ApiServer:
    """Serve the API over the command's database until the command ends; prints ``api: URL``."""
    from planner.interfaces.api import DEFAULT_ADDRESS, parse_address, start_api

    try:
        host, port = parse_address(address or DEFAULT_ADDRESS)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--api-address") from exc
    store = open_store(env.url, create=False)
    try:
        api = start_api(
            store,
            token=os.environ.get(TOKEN_ENV) or None,
            host=host,
            port=port,
            fallback=address is None,
            say=lambda message: click.echo(f"note: {message}", err=True),
        )
    except OSError as exc:
        store.close()
        raise UserError(
            f"cannot serve the HTTP API on {host}:{port}: {exc.strerror or exc}"
        ) from exc
    except BaseException:
        store.close()
        raise
    ctx = click.get_current_context()
    ctx.call_on_close(store.close)  # closing runs last-in first-out: the server stops first
    ctx.call_on_close(api.close)
    click.echo(f"api: {api.url}")
    if not os.environ.get(TOKEN_ENV):
        click.echo(f"note: {TOKEN_ENV} is not set: the HTTP API refuses writes", err=True)
    return api


@cli.command()
@api_address_option
@click.option(
    "--port", type=click.IntRange(0, 65535), help="The API's port (on --api-address's host)."
)
@click.option(
    "--page-port",
    type=click.IntRange(0, 65535),
    default=8788,
    show_default=True,
    help="Port of the live page (a free one if taken).",
)
@pass_env
def serve(env: Env, api_address: str | None, port: int | None, page_port: int) -> None:
    """Serve the HTTP API and the live page without planning (for operators and standbys).

    Runs until Ctrl-C or SIGTERM."""
    from planner.interfaces.api import DEFAULT_ADDRESS, parse_address
    from planner.interfaces.page.server import serve_alone
    from planner.interfaces.page.watch import StoreWatch

    store = env.store()  # no database: say so, create none
    if port is not None:
        try:
            host, _ = parse_address(api_address or DEFAULT_ADDRESS)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--api-address") from exc
        api_address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    start_api_for(env, api_address)
    watch = StoreWatch(store).start()
    ctx = click.get_current_context()
    ctx.call_on_close(watch.close)
    page = serve_alone(watch, port=page_port)
    ctx.call_on_close(page.close)
    click.echo(f"planner page: {page.url}")
    _wait_for_a_stop()


def _wait_for_a_stop() -> None:
    """Until SIGTERM or Ctrl-C (main thread), then return for a clean stop."""
    stop = threading.Event()

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    if threading.current_thread() is not threading.main_thread():
        stop.wait()
        return
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not stop.wait(1.0):
            pass
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
