"""``llm-manager report``: a usage and cost report from the usage database alone (no manager needs to run)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .config.files import read_config, resolve_config_path
from .config.parse import Config
from .errors import ConfigError


def _report_database(args: argparse.Namespace) -> tuple[str, Path, Config | None]:
    """The database a report reads: --database-url, else the config's database_url, else its data dir's usage.db."""
    from .runtime.manager import default_data_dir

    config = read_config(resolve_config_path(args.config)) if args.config or not (args.database_url or
                                                                                  args.data_dir) else None
    url = args.database_url or (config.program.database_url if config else None)
    data_dir = Path(args.data_dir or (config.program.data_dir if config else None) or default_data_dir())
    if not url:
        url = f"sqlite:///{data_dir / 'usage.db'}"
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:" and not Path(url[len("sqlite:///"):]).exists():
        raise FileNotFoundError(f"no usage database at {url[len('sqlite:///'):]} (give --config, --data-dir or "
                                f"--database-url)")
    return url, data_dir, config


def cmd_report(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from .accounting import report
    from .accounting.layer import Pricer
    from .accounting.security import KeyInfo
    from .accounting.store import UsageStore
    from .api.reports import render

    period = report.parse_period(args.from_, args.to)
    by = report.parse_by(args.by)
    fmt = report.parse_format(args.format or (Path(args.out).suffix.lstrip(".") if args.out else None) or "csv")
    try:
        url, data_dir, config = _report_database(args)
    except ConfigError as exc:
        print(f"invalid config: {exc.message}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        store = UsageStore(url, data_dir, flush_interval=3600.0)
    except (SQLAlchemyError, RuntimeError) as exc:  # unreachable, not a usage database, or a newer schema
        orig = getattr(exc, "orig", None) or exc
        print(f"error: cannot read the usage database: {type(orig).__name__}: {orig}", file=sys.stderr)
        return 1
    try:
        names = {KeyInfo.from_config(k).id: k.name for k in (config.program.api_keys if config else ())}
        rep = report.store_report(store, period, by, names, Pricer(config).currency() if config else "USD")
    finally:
        store.close()
    body = render(rep, fmt)
    if args.out:
        Path(args.out).write_bytes(body)
        print(f"wrote {args.out}: {len(rep.table)} rows, {period}, by {','.join(by)}", file=sys.stderr)
    else:
        sys.stdout.buffer.write(body)
        sys.stdout.flush()
    for note in rep.notes:
        print(f"note: {note}", file=sys.stderr)
    return 0


