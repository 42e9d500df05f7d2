"""`scrapejobs-exporter` command line: run, once, check-config, simulate, demo, watch, ai-flow,
assets, healthcheck."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import logging
import sys
from collections.abc import Sequence

from scrapejobs_exporter import STARTED, __version__
from scrapejobs_exporter.config import Config, ConfigError, load_config, parse_duration
from scrapejobs_exporter.exporter import Exporter
from scrapejobs_exporter.lifecycle import EXIT_FAILED, EXIT_OK, EXIT_USAGE, serve_until_signal
from scrapejobs_exporter.logs import (
    LOG_FORMATS,
    LOG_LEVELS,
    OLD_LOG_FORMATS,
    OLD_LOG_LEVELS,
    setup_logging,
)
from scrapejobs_exporter.server import (
    DEFAULT_LISTEN,
    DEFAULT_PORT,
    OPEN_PATHS,
    ListenAddress,
    Reloader,
    Server,
    parse_listen_address,
)
from scrapejobs_exporter.sharding import Shard, ShardError, shard_from
from scrapejobs_exporter.webconfig import WebConfig, WebConfigError, load_web_config

__all__ = ["main"]

log = logging.getLogger("scrapejobs_exporter")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log.level", dest="log_level", choices=LOG_LEVELS, default="info", help="default info"
    )
    parser.add_argument(
        "--log.format",
        dest="log_format",
        choices=LOG_FORMATS,
        default="logfmt",
        help="default logfmt",
    )
    # The previous release's spellings, hidden, kept for one more release.
    parser.add_argument(
        "--log-level",
        dest="log_level",
        choices=(*LOG_LEVELS, *OLD_LOG_LEVELS),
        help=argparse.SUPPRESS,
    )
    parser.add_argument(
        "--log-format",
        dest="log_format",
        choices=(*LOG_FORMATS, *OLD_LOG_FORMATS),
        help=argparse.SUPPRESS,
    )
    _version(parser)


def _version(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--version", action="version", version=f"scrapejobs-exporter {__version__}")


def _listen(value: str) -> ListenAddress:
    try:
        return parse_listen_address(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _listen_flag(parser: argparse.ArgumentParser, default: ListenAddress | None) -> None:
    parser.add_argument(
        "--web.listen-address",
        dest="listen",
        type=_listen,
        default=default,
        metavar="ADDR",
        help=f"address to serve on (default {DEFAULT_LISTEN}: every interface)",
    )


def _telemetry_path(value: str) -> str:
    if not value.startswith("/") or value == "/" or value in OPEN_PATHS or value == "/-/reload":
        raise argparse.ArgumentTypeError(f"invalid telemetry path {value!r}: e.g. /metrics")
    return value


def _shard_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--shard-count",
        type=int,
        default=1,
        metavar="N",
        help="split the targets over N exporters (default 1: no sharding)",
    )
    parser.add_argument(
        "--shard-index",
        type=int,
        default=None,
        metavar="I",
        help="this exporter's shard, 0..N-1 (default: the ordinal of a StatefulSet pod name)",
    )


def _shard(args: argparse.Namespace) -> Shard | None:
    try:
        return shard_from(args.shard_index, args.shard_count)
    except ShardError as exc:
        print(f"scrapejobs-exporter: {exc}", file=sys.stderr)
        return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scrapejobs-exporter",
        description="Prometheus exporter for Bright Data and Aitronos scraping jobs.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="poll the providers and serve /metrics")
    run.add_argument("--config", required=True, metavar="FILE")
    _listen_flag(run, parse_listen_address(DEFAULT_LISTEN))
    run.add_argument(
        "--web.telemetry-path",
        dest="telemetry_path",
        type=_telemetry_path,
        default="/metrics",
        metavar="PATH",
    )
    run.add_argument(
        "--web.config.file",
        dest="web_config",
        metavar="FILE",
        help="TLS and basic auth settings (exporter-toolkit format)",
    )
    run.add_argument(
        "--web.enable-lifecycle",
        dest="enable_lifecycle",
        action="store_true",
        help="enable POST /-/reload",
    )
    _shard_flags(run)
    _common(run)

    once = sub.add_parser("once", help="poll once and print the exposition on stdout")
    once.add_argument("--config", required=True, metavar="FILE")
    _shard_flags(once)
    _common(once)

    check = sub.add_parser("check-config", help="validate a config file and exit")
    check.add_argument("file", metavar="FILE")
    _common(check)

    simulate = sub.add_parser("simulate", help="serve a local fake of both providers' APIs")
    from scrapejobs_exporter.simulator import cli as simulator_cli

    simulator_cli.add_arguments(simulate)
    _common(simulate)

    demo = sub.add_parser("demo", help="run the simulator and the exporter against it")
    demo.add_argument(
        "--web.listen-address",
        dest="listen",
        type=_listen,
        default=parse_listen_address(f"127.0.0.1:{DEFAULT_PORT}"),
        metavar="ADDR",
        help=f"address to serve on (default 127.0.0.1:{DEFAULT_PORT})",
    )
    demo.add_argument("--speed", type=float, default=10.0, help="simulated seconds per second")
    demo.add_argument("--scale", type=int, default=500, help="Scraper Studio jobs simulated")
    demo.add_argument("--seed", type=int, default=1)
    _common(demo)
    _add_watch(sub)
    _add_ai_flow(sub)

    assets = sub.add_parser(
        "assets",
        help="write the bundled dashboards, rules, rule tests and runbooks into DIR",
    )
    assets.add_argument("directory", metavar="DIR")
    _common(assets)

    health = sub.add_parser(
        "healthcheck",
        help="exit 0 if the exporter answers /-/healthy (for Docker's HEALTHCHECK)",
        description="Without --web.* flags, those of the exporter process --pid (default 1, "
        "the container's) are used, so the probe follows its listen address and scheme.",
    )
    _listen_flag(health, None)
    health.add_argument("--web.config.file", dest="web_config", metavar="FILE")
    health.add_argument("--pid", type=int, default=1, help="the exporter's process (default 1)")
    health.add_argument("--timeout", type=_interval, default=4.0, help="default 4s")
    _common(health)
    return parser


def _interval(value: str) -> float:
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError("the interval must be positive, e.g. 3s")
    return seconds


def _follow_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="FILE")
    parser.add_argument(
        "--interval", type=_interval, default=3.0, help="time between polls (default 3s)"
    )
    parser.add_argument("--json", action="store_true", help="one JSON line per poll")
    _common(parser)


def _add_watch(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from scrapejobs_exporter.watch import KINDS

    watch = sub.add_parser("watch", help="follow one job with a live progress line")
    watch.add_argument("kind", choices=list(KINDS), metavar="KIND", help=", ".join(KINDS))
    watch.add_argument("target_id", metavar="ID", help="job, snapshot or collector id")
    _follow_flags(watch)


def _add_ai_flow(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ai_flow = sub.add_parser("ai-flow", help="Bright Data AI flows")
    _version(ai_flow)
    actions = ai_flow.add_subparsers(dest="ai_flow_command", required=True, metavar="ACTION")
    trigger = actions.add_parser("trigger", help="start an AI flow on a collector")
    trigger.add_argument("--collector", required=True, metavar="C")
    trigger.add_argument("--url", required=True, action="append", dest="urls", metavar="URL")
    trigger.add_argument("--description", required=True, metavar="TEXT")
    trigger.add_argument("--watch", action="store_true", help="then follow it like `watch`")
    _follow_flags(trigger)


def _load(path: str) -> Config | None:
    try:
        return load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{exc.source}: {problem}", file=sys.stderr)
        return None


def cmd_check_config(args: argparse.Namespace) -> int:
    config = _load(args.file)
    if config is None:
        return EXIT_USAGE
    counts = []
    if config.brightdata is not None:
        bd = config.brightdata
        ai_flows = "all" if bd.ai_flows == "all" else len(bd.ai_flows)
        counts.append(
            f"brightdata: {len(bd.jobs)} jobs, {len(bd.snapshots)} snapshots, {ai_flows} AI flows"
        )
    if config.aitronos is not None:
        counts.append(f"aitronos: {len(config.aitronos.jobs)} jobs")
    print(f"{args.file}: OK ({'; '.join(counts) or 'no providers configured'})")
    return EXIT_OK


async def _once(config: Config, shard: Shard) -> int:
    exporter = Exporter(config, shard=shard)
    try:
        result = await exporter.poller.run_cycle()
        sys.stdout.buffer.write(exporter.render().text.body)
        sys.stdout.flush()
    finally:
        await exporter.stop()
    return EXIT_FAILED if result.failed else EXIT_OK


def cmd_once(args: argparse.Namespace) -> int:
    config, shard = _load(args.config), _shard(args)
    if config is None or shard is None:
        return EXIT_USAGE
    return asyncio.run(_once(config, shard))


async def serve(
    config: Config,
    listen: ListenAddress,
    telemetry_path: str,
    *,
    config_path: str | None = None,
    web_config: WebConfig | None = None,
    enable_lifecycle: bool = False,
    shard: Shard | None = None,
    started: float | None = None,
) -> int:
    exporter = Exporter(config, shard=shard, started=started)
    reloader = Reloader(exporter, config_path) if config_path is not None else None
    server = Server(
        exporter,
        listen,
        telemetry_path,
        web_config=web_config,
        reloader=reloader if enable_lifecycle else None,
    )

    def ready() -> None:
        log.info("listening on %s, metrics at %s (%s)", listen, telemetry_path, exporter.shard)

    return await serve_until_signal([server, exporter], reload=reloader, ready=ready)


def _load_web_config(path: str | None) -> tuple[bool, WebConfig | None]:
    if path is None:
        return True, None
    try:
        return True, load_web_config(path)
    except WebConfigError as exc:
        print(exc, file=sys.stderr)
        return False, None


def cmd_run(args: argparse.Namespace) -> int:
    config, shard = _load(args.config), _shard(args)
    if config is None or shard is None:
        return EXIT_USAGE
    ok, web_config = _load_web_config(args.web_config)
    if not ok:
        return EXIT_USAGE
    return asyncio.run(
        serve(
            config,
            args.listen,
            args.telemetry_path,
            config_path=args.config,
            web_config=web_config,
            enable_lifecycle=args.enable_lifecycle,
            shard=shard,
            started=STARTED,  # the process's start: jobs finishing while it starts up count
        )
    )


def cmd_demo(args: argparse.Namespace) -> int:
    from scrapejobs_exporter.demo import run_demo

    return asyncio.run(run_demo(args.listen, speed=args.speed, scale=args.scale, seed=args.seed))


def cmd_simulate(args: argparse.Namespace) -> int:
    from scrapejobs_exporter.simulator import cli as simulator_cli

    return simulator_cli.run(args)


def cmd_watch(args: argparse.Namespace) -> int:
    from scrapejobs_exporter.watch import WatchOptions, run_watch

    config = _load(args.config)
    if config is None:
        return EXIT_USAGE
    return run_watch(config, WatchOptions(args.kind, args.target_id, args.interval, args.json))


def cmd_ai_flow(args: argparse.Namespace) -> int:
    from scrapejobs_exporter.trigger import TriggerRequest, run_trigger

    config = _load(args.config)
    if config is None:
        return EXIT_USAGE
    request = TriggerRequest(
        args.collector, args.description, tuple(args.urls), args.watch, args.interval, args.json
    )
    return run_trigger(config, request)


def cmd_healthcheck(args: argparse.Namespace) -> int:
    from scrapejobs_exporter.healthcheck import exporter_flags, probe

    listen, web_config = args.listen, args.web_config
    running = exporter_flags(args.pid) if listen is None and web_config is None else None
    if running is not None:
        # The exporter's own flags, read by the parser that read them when it started.
        with contextlib.suppress(SystemExit), contextlib.redirect_stderr(io.StringIO()):
            flags, _ = build_parser().parse_known_args(["run", *running])
            listen, web_config = flags.listen, flags.web_config
    listen = listen or parse_listen_address(DEFAULT_LISTEN)
    try:
        problem = probe(listen, web_config, args.timeout)
    except WebConfigError as exc:
        problem = str(exc)
    if problem is not None:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def cmd_assets(args: argparse.Namespace) -> int:
    from scrapejobs_exporter.assets import run

    return run(args.directory)


COMMANDS = {
    "run": cmd_run,
    "once": cmd_once,
    "check-config": cmd_check_config,
    "simulate": cmd_simulate,
    "demo": cmd_demo,
    "watch": cmd_watch,
    "ai-flow": cmd_ai_flow,
    "assets": cmd_assets,
    "healthcheck": cmd_healthcheck,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
