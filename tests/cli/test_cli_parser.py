"""``atlas.cli.parser``: the argument types and the parser of every subcommand."""

from __future__ import annotations

import argparse
import datetime as _dt

import pytest

from atlas.cli.parser import (
    build_parser,
    duration,
    nonnegative_int,
    parse_size,
    positive_int,
    timestamp,
)


def test_parse_size() -> None:
    assert parse_size("128MiB") == 128 << 20
    assert parse_size("1e6") == 1_000_000
    assert parse_size("64") == 64
    with pytest.raises(argparse.ArgumentTypeError, match="invalid size 'lots'"):
        parse_size("lots")
    with pytest.raises(argparse.ArgumentTypeError, match="at least 1 byte"):
        parse_size("0")


def test_whole_numbers() -> None:
    assert positive_int("3") == 3
    assert nonnegative_int("0") == 0
    with pytest.raises(argparse.ArgumentTypeError, match="expected at least 1, got 0"):
        positive_int("0")
    with pytest.raises(argparse.ArgumentTypeError, match="expected 0 or more, got -1"):
        nonnegative_int("-1")
    with pytest.raises(argparse.ArgumentTypeError, match="expected a whole number, got '1.5'"):
        positive_int("1.5")


def test_duration() -> None:
    assert duration("3600") == 3600.0
    assert duration("90s") == 90.0
    assert duration(" 30M ") == 1800.0
    assert duration("2h") == 7200.0
    assert duration("1d") == 86400.0
    for bad in ("soon", "-5", "inf", "nan"):
        with pytest.raises(argparse.ArgumentTypeError):
            duration(bad)


def test_timestamp_is_aware() -> None:
    assert timestamp("2026-01-31T12:00Z") == _dt.datetime(2026, 1, 31, 12, tzinfo=_dt.UTC)
    local = timestamp("2026-01-31")
    assert local.tzinfo is not None and (local.year, local.month, local.day, local.hour) == (2026, 1, 31, 0)
    with pytest.raises(argparse.ArgumentTypeError, match="ISO 8601"):
        timestamp("yesterday")


def test_every_command_parses_to_its_function() -> None:
    parser = build_parser()
    ingest = parser.parse_args(["ingest", "a", "b", "out", "--include", "*.nc", "--include", "x/*", "-j", "2"])
    assert ingest.command == "ingest" and ingest.sources == ["a", "b"] and ingest.store == "out"
    assert ingest.include == ["*.nc", "x/*"] and ingest.jobs == 2
    assert ingest.codec is None and ingest.meta_format == "msgpack" and ingest.meta_compression == "zstd"
    assert ingest.chunk_size == 16 << 20
    assert parser.parse_args(["ingest", "a", "out", "--codec", "LZ4"]).codec == "lz4"
    for argv in (["ls", "s"], ["find", "s", "x > 1"], ["show", "s", "d"], ["info", "s"]):
        args = parser.parse_args(argv)
        assert args.command == argv[0] and args.func.__name__ == f"cmd_{argv[0]}" and args.json is False


def test_bad_arguments_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    with pytest.raises(SystemExit) as e:
        parser.parse_args(["ingest", "a", "out", "--jobs", "0"])
    assert e.value.code == 2
    assert "expected at least 1, got 0" in capsys.readouterr().err
