"""Issue 17, items 14-17: every hostile config file is one short answer, exit 2, within 5 s.

The corpus is tests/fixtures/hostile-configs/ (one mistake per file, named for it) plus files
that cannot live in a repository: devices, a FIFO, a directory, a sparse 200 MB file, 3,000
indentation levels, and FIFOs or devices named as `*_file` secrets.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scrapejobs_exporter.cli import main
from scrapejobs_exporter.config import ConfigError, load_config, parse_config
from tests.conftest import FIXTURES

CORPUS = sorted((FIXTURES / "hostile-configs").glob("*.yaml"))
MAX_LINES = 3


def generated(tmp: Path) -> list[Path]:
    """Hostile files made on the spot."""
    fifo = tmp / "fifo.yaml"
    os.mkfifo(fifo)
    secret_fifo = tmp / "token.fifo"
    os.mkfifo(secret_fifo)
    sparse = tmp / "huge.yaml"
    with sparse.open("wb") as file:
        file.truncate(200 * 1024 * 1024)
    just_over = tmp / "just-over-1mib.yaml"
    just_over.write_text("x: " + "a" * (1024 * 1024))
    indent = tmp / "indent-3k.yaml"
    indent.write_text("".join(" " * i + f"k{i}:\n" for i in range(3000)) + " " * 3000 + "x\n")
    indent_small = tmp / "indent-900.yaml"  # under the size cap: the depth check answers
    indent_small.write_text("".join(" " * i + f"k{i}:\n" for i in range(900)) + " " * 900 + "x\n")
    named = {
        "fifo-token-file.yaml": f"brightdata:\n  api_token_file: {secret_fifo}\n",
        "directory-key-file.yaml": f"aitronos:\n  api_key_file: {tmp}\n",
        "sparse-token-file.yaml": f"brightdata:\n  api_token_file: {sparse}\n",
    }
    paths = [fifo, sparse, just_over, indent, indent_small, tmp, Path("/dev/zero"),
             Path("/dev/urandom"), Path("/dev/null"), tmp / "missing.yaml"]  # fmt: skip
    for name, text in named.items():
        path = tmp / name
        path.write_text(text)
        paths.append(path)
    return paths


def check(path: Path) -> tuple[int, str, float]:
    out, err = io.StringIO(), io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["check-config", str(path)])
    return code, out.getvalue() + err.getvalue(), time.perf_counter() - started


def test_the_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 40


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
def test_each_hostile_config_is_refused_briefly(path: Path) -> None:
    code, output, elapsed = check(path)
    assert code == 2, output
    lines = output.strip().splitlines()
    assert 1 <= len(lines) <= MAX_LINES, output
    assert all(line.startswith(f"{path}: ") for line in lines), output
    assert all(len(line) < 400 for line in lines), output
    assert "Traceback" not in output and "\x1b" not in output
    # Pydantic's internal names are not words a user wrote (item 17).
    assert "literal[" not in output and "constrained-str" not in output
    assert elapsed < 5.0, elapsed


def test_generated_hostile_files_are_refused_briefly(tmp_path: Path) -> None:
    for path in generated(tmp_path):
        code, output, elapsed = check(path)
        assert code == 2, (path, output)
        assert 1 <= len(output.strip().splitlines()) <= MAX_LINES, (path, output)
        assert "Traceback" not in output, (path, output)
        assert elapsed < 5.0, (path, elapsed)


def test_a_fifo_and_dev_zero_end_the_real_command_quickly(tmp_path: Path) -> None:
    """As a process, the way an operator runs it: nothing blocks, nothing reads forever."""
    fifo = tmp_path / "config.fifo"
    os.mkfifo(fifo)
    command = [sys.executable, "-m", "scrapejobs_exporter"]
    started = time.perf_counter()
    subprocess.run([*command, "--version"], capture_output=True, timeout=60, check=True)
    startup = time.perf_counter() - started  # imports alone, slow on a busy machine
    for path in (fifo, Path("/dev/zero"), FIXTURES / "hostile-configs" / "billion-laughs.yaml"):
        started = time.perf_counter()
        done = subprocess.run(
            [*command, "check-config", str(path)], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 2, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
        assert time.perf_counter() - started - startup < 5.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("poll_interval: 30s\npoll_interval: 1m\n", "line 2, column 1: YAML error: duplicate key"),
        ("brightdata:\n  api_token: t\n  base_url: http://h:99999\n", "the port must be 1-65535"),
        ("request_timeout: .inf\n", "request_timeout: a duration must be at most 366d"),
        ("poll_interval: 1e400\n", "poll_interval: a duration must be at most 366d"),
        ("retention:\n  finished_ttl: .nan\n", "retention.finished_ttl: expected a duration"),
        ("histogram_buckets:\n  job_duration: [1, .inf]\n", "job_duration[1]: must be a finite"),
        ("poll_interval: 1ms\n", "poll_interval: must be greater than or equal to 1"),
    ],
)
def test_item16_accepted_but_wrong_values_are_refused(text: str, expected: str) -> None:
    """16: duplicate keys, port 99999, .inf, 1e400, .nan, an .inf bucket, a 1 ms interval."""
    with pytest.raises(ConfigError) as info:
        parse_config(text, env={})
    assert len(info.value.problems) == 1
    assert expected in info.value.problems[0], info.value.problems


@pytest.mark.parametrize(
    ("value", "expected"),
    [("5", "brightdata.ai_flows: expected a list of ids or 'all'"),
     ('["c_1", "bad id!"]', "brightdata.ai_flows[1]: invalid id 'bad id!'"),
     ("{a: 1}", "brightdata.ai_flows: expected a list of ids or 'all'")],
)  # fmt: skip
def test_item17_one_mistake_is_one_line_in_plain_words(value: str, expected: str) -> None:
    """17: one mistake was printed as two lines with `literal['all']`, `list[constrained-str]`."""
    with pytest.raises(ConfigError) as info:
        parse_config(f"brightdata:\n  api_token: t\n  ai_flows: {value}\n", env={})
    assert len(info.value.problems) == 1 and info.value.problems[0].startswith(expected)


def test_a_secret_file_must_be_regular_and_small(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t" * 100)
    config = tmp_path / "c.yaml"
    config.write_text("brightdata:\n  api_token_file: token\n")
    assert load_config(config).brightdata is not None
    token.write_text("t" * (65 * 1024))
    with pytest.raises(ConfigError) as info:
        load_config(config)
    assert "too large" in info.value.problems[0]


def test_anchors_and_merge_keys_that_stay_small_are_fine() -> None:
    config = parse_config(
        "histogram_buckets:\n  job_duration: &b [1, 2, 3]\n  job_queue: *b\n", env={}
    )
    assert config.histogram_buckets.job_queue == [1, 2, 3]
