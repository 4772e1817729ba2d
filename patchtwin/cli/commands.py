"""The `patchtwin` command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

import asyncpg
import yaml
from pydantic import ValidationError
from rich.console import Console

from patchtwin.cli.app import SERVICES, App, ensure_topics
from patchtwin.observability.logs import configure as configure_logging
from patchtwin.reports import FORMATS as REPORT_FORMATS
from patchtwin.settings import Settings
from schemas.codes import Code

console = Console(stderr=True)
EXIT_BY_STATUS = {"passed": 0, "failed": 1, "error": 2}
EXIT_TIMEOUT = 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="patchtwin", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="the whole system on this machine (embedded defaults)")
    service = commands.add_parser("service", help="run one service")
    service.add_argument("name", choices=list(SERVICES))
    commands.add_parser("init", help="create topics and apply migrations, then exit")
    images = commands.add_parser("images", help="local base images")
    images.add_argument("action", choices=["build"])
    images.add_argument("--release", default="12", choices=["11", "12", "13"])
    submit = commands.add_parser("submit", help="publish a TwinRequested from a YAML/JSON file")
    submit.add_argument("file", type=Path)
    submit.add_argument("--wait", action="store_true", help="wait for the verdict; exit 0/1/2")
    submit.add_argument("--json", action="store_true", help="print the verdict as JSON")
    submit.add_argument("--timeout", type=float, default=900)
    watching = commands.add_parser("watch", help="a run's stages live, then its verdict; exit 0/1/2, 3 on timeout")
    watching.add_argument("run_id")
    watching.add_argument("--json", action="store_true", help="print the verdict as JSON")
    watching.add_argument("--timeout", type=float, default=900)
    commands.add_parser("demo", help="a good and a breaking patch, end to end, then stop")
    report = commands.add_parser("report", help="a run's report for CI or a ticket, on stdout")
    report.add_argument("run_id")
    report.add_argument("--format", choices=REPORT_FORMATS, default="markdown")
    runs = commands.add_parser("runs", help="recent runs: status, confidence, time per stage")
    runs.add_argument("--limit", type=int, default=20)
    show = commands.add_parser("show", help="one run: issues, checks, confidence factors, durations")
    show.add_argument("run_id")
    rerun = commands.add_parser("rerun", help="repeat a run exactly: its request again under a new run id, "
                                "its patch inputs checked against their recorded sha256")
    rerun.add_argument("run_id")
    rerun.add_argument("--wait", action="store_true", help="wait for the verdict; exit 0/1/2")
    rerun.add_argument("--json", action="store_true", help="print the verdict as JSON")
    rerun.add_argument("--timeout", type=float, default=900)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    configure_logging(logging.INFO if args.verbose else logging.WARNING, Settings().log_format)  # observe
    handler = {
        "up": _up, "service": _service, "init": _init, "images": _images,
        "submit": _submit, "demo": _demo, "report": _report, "watch": _watch, "runs": _runs, "show": _show,
        "rerun": _rerun,
    }[args.command]
    sys.exit(asyncio.run(handler(args, with_running_endpoints(Settings()))))


async def _serve_until_signalled(app: App) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await app.stop()


ENDPOINTS_FILE = "endpoints.json"


def with_running_endpoints(settings: Settings) -> Settings:
    """Fills in the broker and database of a running `patchtwin up` when none is configured,
    so `submit` and friends need no environment on the same machine."""
    path = settings.state_dir / ENDPOINTS_FILE
    if settings.kafka_bootstrap_servers or not path.exists():
        return settings
    running = json.loads(path.read_text())
    return settings.model_copy(update={
        "kafka_bootstrap_servers": running["kafka_bootstrap_servers"],
        "database_url": settings.database_url or running["database_url"]})


def _http_line(app: App) -> str:
    url = app.endpoints.url if app.endpoints is not None else None
    return f"HTTP at {url} (/healthz /readyz /metrics)" if url else "no HTTP endpoint"


async def _up(args: argparse.Namespace, settings: Settings) -> int:
    from patchtwin.cli.embedded import EmbeddedStack

    stack = await EmbeddedStack(settings.state_dir, settings.kafka_bootstrap_servers,
                                settings.database_url, settings.docker_url).start()
    settings = stack.configure(settings)
    endpoints = settings.state_dir / ENDPOINTS_FILE
    try:
        app = await App(settings).start()
        endpoints.write_text(json.dumps({"kafka_bootstrap_servers": settings.kafka_bootstrap_servers,
                                         "database_url": settings.database_url}))
        console.print(f"patchtwin is up: KAFKA_BOOTSTRAP_SERVERS={settings.kafka_bootstrap_servers} "
                      f"DATABASE_URL={settings.database_url}; {_http_line(app)}")
        await _serve_until_signalled(app)
    finally:
        endpoints.unlink(missing_ok=True)
        await stack.stop()
    return 0


async def _service(args: argparse.Namespace, settings: Settings) -> int:
    app = await App(settings, services=(args.name,)).start()
    console.print(f"patchtwin {args.name} is running; {_http_line(app)}")
    await _serve_until_signalled(app)
    return 0


async def _init(args: argparse.Namespace, settings: Settings) -> int:
    from patchtwin.core import store

    await ensure_topics(settings)
    assert settings.database_url, "DATABASE_URL is not set"
    pool = await store.connect(settings.database_url)
    try:
        applied = await store.migrate(pool)
    finally:
        await pool.close()
    console.print(f"topics ready; migrations applied: {applied or 'none needed'}")
    return 0


async def _images(args: argparse.Namespace, settings: Settings) -> int:
    from patchtwin.twins import DockerRuntime
    from patchtwin.twins.images import build_base, build_web

    runtime = DockerRuntime(settings.docker_url)
    try:
        refs = [await build_base(args.release, runtime, settings.state_dir)]
        if args.release == "12":
            refs.append(await build_web("12", runtime, settings.state_dir))
    finally:
        await runtime.close()
    console.print("images ready: " + ", ".join(refs))
    return 0


def load_request(path: Path) -> dict[str, Any]:
    text = path.read_text()
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a request object")
    return data


async def _submit(args: argparse.Namespace, settings: Settings) -> int:
    from patchtwin.cli.client import submit
    from patchtwin.cli.views import print_verdict
    from patchtwin.cli.watch import watch

    try:
        request = load_request(args.file)
        run_id = await submit(settings, request)
    except (ValidationError, ValueError, OSError) as exc:
        console.print(f"[red]INVALID_REQUEST[/]: {exc}")
        return 2
    console.print(f"submitted run {run_id}")
    if not args.wait:
        print(run_id)
        return 0
    try:  # observe: the run's stages live on stderr, the verdict on stdout
        verdict = await watch(settings, run_id, console, timeout_s=args.timeout)
    except TimeoutError as exc:
        console.print(f"[red]timeout[/]: {exc}")
        return EXIT_TIMEOUT
    if args.json:
        print(verdict.model_dump_json(indent=2))
    else:
        print_verdict(Console(), verdict)
    return EXIT_BY_STATUS[verdict.status.value]


async def _watch(args: argparse.Namespace, settings: Settings) -> int:
    from patchtwin.cli.views import print_verdict
    from patchtwin.cli.watch import watch

    try:
        verdict = await watch(settings, args.run_id, console, timeout_s=args.timeout)
    except TimeoutError as exc:
        console.print(f"[red]timeout[/]: {exc}")
        return EXIT_TIMEOUT
    if args.json:
        print(verdict.model_dump_json(indent=2))
    else:
        print_verdict(Console(), verdict)
    return EXIT_BY_STATUS[verdict.status.value]


async def _demo(args: argparse.Namespace, settings: Settings) -> int:
    import tempfile

    from patchtwin.cli.demo import run_demo
    from patchtwin.cli.embedded import EmbeddedStack

    out = Console()
    with tempfile.TemporaryDirectory(prefix="patchtwin-demo-") as scratch:
        stack = await EmbeddedStack(Path(scratch), docker_url=settings.docker_url).start()
        settings = stack.configure(settings)
        out.print(f"embedded stack up: broker {stack.kafka_bootstrap_servers}, PostgreSQL 18, Docker")
        app = None
        try:
            app = await App(settings).start()
            return await run_demo(settings, out)
        finally:
            if app is not None:
                await app.stop()
            with contextlib.suppress(Exception):
                await stack.stop()
            out.print("stopped everything the demo started")


async def _ledger(settings: Settings) -> asyncpg.Pool | None:
    if not settings.database_url:
        console.print("[red]no database[/]: start `patchtwin up`, or set DATABASE_URL")
        return None
    from patchtwin.core import store

    return await store.connect(settings.database_url, max_size=2)


def _not_found(run_id: str, progress: dict[str, str]) -> int:
    if progress:
        where = ", ".join(f"{stage} {status}" for stage, status in progress.items())
        console.print(f"[yellow]{Code.RUN_NOT_FOUND.value}[/]: run {run_id} has no verdict yet ({where})")
    else:
        console.print(f"[red]{Code.RUN_NOT_FOUND.value}[/]: no run {run_id} is stored")
    return 2


async def _report(args: argparse.Namespace, settings: Settings) -> int:
    from patchtwin.core import store
    from patchtwin.reports import render

    pool = await _ledger(settings)
    if pool is None:
        return 2
    try:
        body = await store.load_report(pool, args.run_id, args.format)
        if body is None:
            verdict = await store.load_verdict(pool, args.run_id)
            if verdict is None:
                return _not_found(args.run_id, await store.run_progress(pool, args.run_id))
            body = render(verdict, args.format)  # a verdict stored before reports were
    finally:
        await pool.close()
    sys.stdout.write(body)
    return 0


async def _runs(args: argparse.Namespace, settings: Settings) -> int:
    from patchtwin.cli.views import runs_table
    from patchtwin.core import store

    pool = await _ledger(settings)
    if pool is None:
        return 2
    try:
        rows = await store.recent_runs(pool, args.limit)
    finally:
        await pool.close()
    Console(width=200).print(runs_table(rows))
    return 0


async def _show(args: argparse.Namespace, settings: Settings) -> int:
    from patchtwin.cli.views import show_verdict
    from patchtwin.core import store

    pool = await _ledger(settings)
    if pool is None:
        return 2
    try:
        verdict = await store.load_verdict(pool, args.run_id)
        if verdict is None:
            return _not_found(args.run_id, await store.run_progress(pool, args.run_id))
    finally:
        await pool.close()
    show_verdict(Console(width=160), verdict)
    return 0


async def _rerun(args: argparse.Namespace, settings: Settings) -> int:
    """Publishes the run's stored request again under a new run id (`rerun_of` links the two);
    the executor refuses inputs whose sha256 differs from the record (RERUN_INPUT_CHANGED)."""
    from patchtwin.cli.client import rerun_request, submit
    from patchtwin.cli.views import print_verdict
    from patchtwin.cli.watch import watch
    from patchtwin.core import store
    from services.executor.inputs import input_differences

    pool = await _ledger(settings)
    if pool is None:
        return 2
    try:
        original = await store.load_patch_run(pool, args.run_id)
        request = await store.load_request(pool, args.run_id) if original is not None else None
        if original is None or original.outcome is None or request is None:
            progress = await store.run_progress(pool, args.run_id)
            if not progress:
                console.print(f"[red]{Code.RUN_NOT_FOUND.value}[/]: no run {args.run_id} is stored")
            else:
                where = ", ".join(f"{stage} {status}" for stage, status in progress.items())
                console.print(f"[red]{Code.RUN_NOT_FOUND.value}[/]: run {args.run_id} has no applied patch on "
                              f"record to repeat ({where})")
            return 2
        try:
            run_id = await submit(settings, rerun_request(request, original.inputs))
        except (ValidationError, ValueError) as exc:
            console.print(f"[red]{Code.INVALID_REQUEST.value}[/]: the stored request of run {args.run_id}: {exc}")
            return 2
        console.print(f"submitted run {run_id}, a rerun of {args.run_id}")
        if not args.wait:
            print(run_id)
            return 0
        try:
            verdict = await watch(settings, run_id, console, timeout_s=args.timeout)
        except TimeoutError as exc:
            console.print(f"[red]timeout[/]: {exc}")
            return EXIT_TIMEOUT
        repeated = await store.load_patch_run(pool, run_id)
    finally:
        await pool.close()
    if args.json:
        print(verdict.model_dump_json(indent=2))
    else:
        print_verdict(Console(), verdict)
    if repeated is not None and repeated.outcome is not None:
        differences = input_differences(original.inputs, repeated.inputs)
        if differences:  # the executor refuses this before the patch runs; say so if it ever did not
            console.print(f"[red]{Code.RERUN_INPUT_CHANGED.value}[/]: " + "; ".join(differences))
            return 2
        counts = {kind: len(original.inputs.get(kind, [])) for kind in ("artifacts", "packages")}
        console.print(f"same inputs as run {args.run_id}: {counts['artifacts']} artifacts and "
                      f"{counts['packages']} .debs, each with its recorded sha256")
    return EXIT_BY_STATUS[verdict.status.value]
