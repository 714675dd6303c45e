"""``llm-manager serve | check-config | models | start | stop | plan | keys | report | fake-backend``."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from .cli_report import cmd_report
from .config.files import DEMO_CONFIG, read_config, resolve_config_path
from .config.parse import Config
from .errors import ConfigError, LLMManagerError

log = logging.getLogger("llm_manager")
logging.getLogger("httpx").setLevel(logging.WARNING)


def fail_config(exc: ConfigError) -> int:
    print(f"invalid config: {exc.message}", file=sys.stderr)
    return 2


# ---------------------------------------------------------------- serve


async def serve(config: Config, host: str, port: int, data_dir: str | None, dashboard: bool = True) -> None:
    from .api.app import build_server
    from .service import build

    service = build(config, data_dir)
    manager = service.manager
    await service.start()
    server = build_server(service, host, port, dashboard=dashboard)
    server.start()
    # Everything loaded so far lives for the whole run: keep the collector off it, and collect the young
    # generation less often (bench/RESULTS.md: lower p99 and stream TTFT on the proxy path).
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)
    actual = manager.listen_port = server.port
    where = f"http://{host}:{actual}"
    print(f"llm-manager serving {len(config.models)} models on {where}  (API {where}/v1, dashboard {where}/dashboard)",
          flush=True)
    if host not in ("127.0.0.1", "localhost", "::1") and not service.accounting.security.auth_required:
        log.warning("listening on %s with NO API keys: anyone who can reach this port can use every model", host)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    print("llm-manager stopping: stopping models", flush=True)
    server.stop()
    await service.shutdown()


def cmd_serve(args: argparse.Namespace) -> int:
    if args.demo and args.config:
        print("error: --demo and --config exclude each other", file=sys.stderr)
        return 2
    if args.demo == "real":
        from .demo.real import prepare_real_demo
        from .runtime.manager import default_data_dir

        try:
            path = prepare_real_demo(Path(args.data_dir) if args.data_dir else default_data_dir())
        except RuntimeError as exc:  # setup.sh missing or failed
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"serving the real demo: llama.cpp + SmolLM2-135M on the CPU ({path})", flush=True)
    else:
        path = DEMO_CONFIG if args.demo == "fake" else resolve_config_path(args.config)
    try:
        config = read_config(path)
    except ConfigError as exc:
        return fail_config(exc)
    logging.basicConfig(level=getattr(logging, config.program.log_level, logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not config.program.access_log:  # usage rows still record every request; errors still log
        logging.getLogger("tornado.access").setLevel(logging.WARNING)
    if path == DEMO_CONFIG:
        print(f"no --config and no ./config.json: serving the bundled demo config ({path})", flush=True)
    for w in config.warnings:
        log.warning("config: %s", w)
    host = args.host or config.program.host
    port = args.port if args.port is not None else config.program.port
    asyncio.run(serve(config, host, port, args.data_dir, dashboard=not args.no_dashboard))
    return 0


# ---------------------------------------------------------------- offline inspection


def _offline_plans(config: Config) -> dict[str, Any]:
    """What placement would choose right now with nothing loaded (no server needed)."""
    from .runtime.devices import DeviceRegistry
    from .runtime.placement import plan

    registry = DeviceRegistry(config.program, lambda _n: 0)
    registry.load()
    readings = registry.read()
    plans = {}
    for model in config.models.values():
        names = {d for p in model.profiles for d in p.required_devices}
        plans[model.name] = plan(model.name, model.profiles, registry.placement_view(names, readings), [])
    return {"plans": plans, "readings": readings}


def cmd_check_config(args: argparse.Namespace) -> int:
    try:
        config = read_config(Path(args.file))
    except ConfigError as exc:
        return fail_config(exc)
    result = _offline_plans(config)
    print(f"config {args.file}: OK, {len(config.models)} models")
    for w in config.warnings:
        print(f"  warning: {w}")
    print("devices: " + (", ".join(f"{r['name']} ({'online' if r['online'] else 'offline'}, "
                                   f"{r.get('available_memory_mb', 0)}/{r.get('total_memory_mb', 0)} MB free)"
                                   for r in result["readings"]) or "none"))
    for model in config.models.values():
        p = result["plans"][model.name]
        print(f"\n{model.name}  [{model.mode}]  port {model.port}" + ("  auto_start" if model.auto_start else ""))
        print(f"  aliases: {', '.join(model.aliases) or '-'}")
        for prof in model.profiles:
            mem = ", ".join(f"{d}: {mb} MB" for d, mb in prof.memory_mb.items()) or "no devices"
            launch = prof.bat_path or " ".join(prof.command or ())
            print(f"  profile {prof.name}: {mem}; launch {launch}")
        print(f"  would choose now: {p.profile if p.fits else 'nothing'} ({p.reason})")
    return 0


# ---------------------------------------------------------------- talking to a running manager

DEFAULT_URL = "http://127.0.0.1:8080"
URL_ENV = "LLM_MANAGER_URL"


def config_url(config: Config) -> str | None:
    """Where a client reaches the manager serving ``config`` (None when its port is picked at start)."""
    host, port = config.program.host or "127.0.0.1", config.program.port
    if not port:
        return None
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # a wildcard bind is reached on loopback
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def default_url() -> str:
    return os.environ.get(URL_ENV) or DEFAULT_URL


def _client(args: argparse.Namespace, url: str | None = None) -> Any:
    from .client import Client

    return Client(url or args.url or default_url(), api_key=args.admin_key)


def _table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> None:
    """Print ``rows`` as aligned columns under a header; ``columns`` is [(header, key)]."""
    cells = [[h for h, _ in columns]] + [["-" if r.get(k) in (None, "", []) else str(r[k]) for _, k in columns]
                                          for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


MODEL_COLUMNS = [("MODEL", "name"), ("MODE", "mode"), ("STATE", "state"), ("PROFILE", "profile"),
                 ("PORT", "port"), ("PID", "pid"), ("IN_FLIGHT", "in_flight"), ("QUEUED", "queued")]


def cmd_models(args: argparse.Namespace) -> int:
    models = _client(args).models_info()
    if args.json:
        print(json.dumps(models, indent=2))
    else:
        _table(models, MODEL_COLUMNS)
    return 0


def cmd_start_stop(args: argparse.Namespace) -> int:
    client = _client(args)
    info = client.start_model(args.model) if args.command == "start" else client.stop_model(args.model)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    line = f"{info['name']}: {info['state']}"
    if info["state"] == "ready":
        line += f" (profile {info['profile'] or '-'}, pid {info['pid']}, port {info['port']})"
    print(line)
    if info.get("last_error"):
        print(f"  last error: {info['last_error']}")
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    client = _client(args)
    if args.action == "create":
        if not args.name:
            print("keys create needs a name", file=sys.stderr)
            return 1
        key = client.create_key(args.name, args.models)
        print(f"created key {key['id']} ({key['name']}); the secret is shown once:\n{key['key']}")
        if key.get("warning"):  # the first key: /v1 is closed to clients without one from now on
            print(f"warning: {key['warning']}", file=sys.stderr)
    elif args.action == "revoke":
        client.revoke_key(args.name)
        print(f"revoked {args.name}")
    else:
        for k in client.keys():
            state = "revoked" if k["revoked"] else "active"
            print(f"{k['id']:<20} {k['name']:<16} {k['prefix'] or '-':<14} {state:<8} "
                  f"models={','.join(k['models']) or 'all'} ({k['source']})")
    return 0


def _plan_url(args: argparse.Namespace, config: Config | None) -> str | None:
    """--url; else the host and port of --config; else $LLM_MANAGER_URL; else those of ./config.json or the demo."""
    if args.url:
        return args.url
    if args.config is None and os.environ.get(URL_ENV):
        return os.environ[URL_ENV]
    return config_url(config) if config is not None else DEFAULT_URL


def cmd_plan(args: argparse.Namespace) -> int:
    config: Config | None = None
    config_error: ConfigError | None = None
    try:
        config = read_config(resolve_config_path(args.config))
    except ConfigError as exc:
        if args.config is not None:  # a config named on purpose must be valid; ./config.json only gives the port
            return fail_config(exc)
        config_error = exc
    url = _plan_url(args, config)
    try:
        if url is None:
            raise ConnectionError("the config picks its port at start")
        result = _client(args, url).plan(args.model)
        source = f"running manager at {url}"
    except ConnectionError:
        if config is None:
            return fail_config(config_error) if config_error else 1
        model = config.models.get(args.model) or next(
            (m for m in config.models.values() if args.model in m.names), None)
        if model is None:
            print(f"unknown model {args.model}", file=sys.stderr)
            return 1
        result = _offline_plans(config)["plans"][model.name].to_dict()
        source = f"config only: no manager answering at {url}; nothing loaded" if url else "config only; nothing loaded"
    print(f"plan for {result['model']} ({source}):")
    print(f"  fits: {result['fits']}  profile: {result['profile'] or '-'}  evict: {', '.join(result['evict']) or '-'}")
    print(f"  {result['reason']}")
    for d in result["devices"]:
        print(f"  {d['name']:<12} needs {d['needed_mb']:>6} MB  free {d['free_before_mb']:>6} -> {d['free_after_mb']:>6} MB"
              + (f"  held by {', '.join(d['holders'])}" if d["holders"] else ""))
    return 0 if result["fits"] else 3


def cmd_fake_backend(args: argparse.Namespace, rest: list[str]) -> int:
    from .testing.fake_backend import main as fake_main

    return fake_main(rest, prog="llm-manager fake-backend")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="llm-manager", description="Local LLM model manager and OpenAI-compatible gateway")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="serve the API, the dashboard and the WebUI on one port")
    s.add_argument("--config", help="config.json (default ./config.json, else the bundled demo)")
    s.add_argument("--demo", choices=("fake", "real"),
                   help="serve a demo: fake (simulated GPUs, fake model servers) or real (llama.cpp's llama-server "
                        "with SmolLM2-135M on the CPU; builds llama-server once, about 6 min)")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    s.add_argument("--data-dir", help="where usage data, logs and pid files go (default ./.llm-manager)")
    s.add_argument("--no-dashboard", action="store_true", help="do not mount the Panel dashboard")
    c = sub.add_parser("check-config", help="validate a config and show what would be chosen now",
                       description="Validate a config file (exit status 2 naming the JSON path when it is invalid) and "
                                   "print every model, its aliases, mode and profiles, and the profile placement "
                                   "would choose now with nothing loaded. Needs no running manager.")
    c.add_argument("file", help="the config.json to check")
    helps = {"models": "list the models of a running manager: state, profile, port, load",
             "start": "start a model on a running manager and wait until it is ready",
             "stop": "stop a model on a running manager",
             "plan": "what starting a model would do now (profile, evictions, memory); asks the manager of --config, "
                     "else plans from the config alone"}
    url_help = f"the manager's URL (default: ${URL_ENV} if set, else {DEFAULT_URL})"
    for name, text in helps.items():
        q = sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        if name != "models":
            q.add_argument("model", help="model name or alias")
        if name == "plan":
            q.add_argument("--url", help=f"the manager to ask (default: the host and port of --config; without "
                                         f"--config, ${URL_ENV} if set, else the host and port of ./config.json, "
                                         f"else {DEFAULT_URL})")
            q.add_argument("--config", metavar="FILE",
                           help="config.json of the manager to ask, and to plan from when no manager answers "
                                "(default ./config.json, else the bundled demo)")
        else:
            q.add_argument("--url", help=url_help)
            q.add_argument("--json", action="store_true",
                           help="print the manager's JSON answer (for scripts) instead of the summary")
        q.add_argument("--admin-key", help="the manager's admin_key (default: $LLM_MANAGER_ADMIN_KEY)")
    k = sub.add_parser("keys", help="list, create or revoke API keys (talks to a running manager)",
                       description="List, create or revoke API keys. The first key created closes /v1 to clients "
                                   "without a key.")
    k.add_argument("action", choices=["list", "create", "revoke"])
    k.add_argument("name", nargs="?", help="name of a new key, or the id to revoke")
    k.add_argument("--models", nargs="*", help="models the new key may use (default: all)")
    k.add_argument("--url", help=url_help)
    k.add_argument("--admin-key", help="the manager's admin_key (default: $LLM_MANAGER_ADMIN_KEY)")
    r = sub.add_parser("report", help="usage and cost report (CSV, Parquet or HTML) from the usage database",
                       description="Requests, errors, cached requests, tokens and token cost (as billed) over whole "
                                   "UTC days, grouped by model, key, endpoint, day, week or month, read straight "
                                   "from the usage database (no running manager needed).")
    r.add_argument("--from", dest="from_", metavar="YYYY-MM-DD", help="first day (default: the 1st of this month)")
    r.add_argument("--to", metavar="YYYY-MM-DD", help="last day, included (default: today, UTC)")
    r.add_argument("--by", default="model", help="groups, comma-separated: model,key,endpoint,day,week,month "
                                                 "(default: model)")
    r.add_argument("--format", choices=("csv", "parquet", "html", "json"),
                   help="default: from --out's suffix, else csv (parquet needs pyarrow)")
    r.add_argument("--out", metavar="FILE", help="write here (default: standard output)")
    r.add_argument("--config", metavar="FILE", help="the manager's config.json: its database_url or data_dir "
                                                    "(default ./config.json, else the bundled demo)")
    r.add_argument("--data-dir", help="the manager's data dir (its usage.db), as given to serve")
    r.add_argument("--database-url", help="read this database (SQLAlchemy URL) instead of the config's")
    sub.add_parser("fake-backend", help="run the OpenAI-compatible test backend (see --help)", add_help=False)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["fake-backend"]:
        return cmd_fake_backend(argparse.Namespace(), argv[1:])
    args = build_parser().parse_args(argv)
    handlers = {"serve": cmd_serve, "check-config": cmd_check_config, "models": cmd_models,
                "start": cmd_start_stop, "stop": cmd_start_stop, "plan": cmd_plan, "keys": cmd_keys,
                "report": cmd_report}
    try:
        return handlers[args.command](args)
    except LLMManagerError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    except ConnectionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
