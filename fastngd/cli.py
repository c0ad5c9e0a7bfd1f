"""Command-line interface: ``fastngd <command> ...``.

Each command is one ``_cmd_<name>(args) -> int`` function registered by a
``_add_<name>_parser(subparsers)`` function in :func:`_build_parser`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _cmd_data_export(args: argparse.Namespace) -> int:
    """``fastngd data export NAME --out DIR``: write a benchmark as JSON Lines."""
    from fastngd.data.export import export_benchmark

    try:
        paths = export_benchmark(args.name, args.out, seed=args.seed, overwrite=args.overwrite)
    except (ValueError, RuntimeError, FileExistsError, NotADirectoryError) as exc:
        print(f"fastngd data export: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(paths)} files under {args.out}")
    return 0


def _add_data_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``data`` and its subcommands."""
    from fastngd.data.registry import BENCHMARKS

    data = subparsers.add_parser("data", help="benchmark data utilities")
    data_sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    export = data_sub.add_parser("export", help="write a benchmark as JSONL files")
    export.add_argument("name", choices=sorted(BENCHMARKS), help="benchmark name")
    export.add_argument("--out", required=True, help="output directory")
    export.add_argument("--seed", type=int, default=0, help="seed of synthetic benchmarks")
    export.add_argument("--overwrite", action="store_true", help="replace existing files")
    export.set_defaults(func=_cmd_data_export)


def _build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="fastngd", description="Fast NGDiff unlearning toolkit")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_data_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    parser = _build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
