"""Command line, address safety, the threaded runner and startup at scale."""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time

import httpx
import pytest

from scrapejobs_exporter.simulator import (
    DEFAULT_AITRONOS_KEY,
    DEFAULT_BRIGHTDATA_TOKEN,
    NonLoopbackAddressError,
    SimulatorConfig,
    SimulatorServer,
    run_simulator_in_thread,
)
from scrapejobs_exporter.simulator.cli import add_arguments, config_from_args, parse_listen, run

BRD = {"Authorization": f"Bearer {DEFAULT_BRIGHTDATA_TOKEN}"}


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_default_credentials() -> None:
    assert DEFAULT_BRIGHTDATA_TOKEN == "sim-brightdata-token"
    # Keys look like `ak_` + 39 alphanumerics (42 characters), as the provider documents.
    assert DEFAULT_AITRONOS_KEY == "ak_simulator" + "0" * 30
    assert len(DEFAULT_AITRONOS_KEY) == 42


def test_flags_map_onto_config() -> None:
    args = parse(
        "--listen", "127.0.0.1:9000", "--seed", "4", "--speed", "60", "--scale", "1000",
        "--running-fraction", "0.1", "--stuck-fraction", "0.2", "--latency", "0.5",
        "--brightdata-token", "t", "--aitronos-key", "k", "--clock", "manual",
        "--legacy-capitalised",
    )  # fmt: skip
    config = config_from_args(args)
    assert (config.host, config.port, config.seed, config.speed) == ("127.0.0.1", 9000, 4, 60.0)
    assert (config.scale, config.running_fraction, config.stuck_fraction) == (1000, 0.1, 0.2)
    assert (config.latency, config.brightdata_token, config.aitronos_key) == (0.5, "t", "k")
    assert config.manual_clock and config.legacy_capitalised and not config.allow_non_loopback
    defaults = config_from_args(parse())
    assert (defaults.host, defaults.port) == ("127.0.0.1", 8765)


def test_rate_limit_flags() -> None:
    defaults = config_from_args(parse()).limit_settings()
    assert defaults.enabled and defaults.brightdata_per_minute == 100
    assert defaults.brightdata_block_after == 25
    assert (defaults.aitronos.per_minute, defaults.aitronos.burst) == (100, 120)
    assert defaults.aitronos.per_day == 10_000
    args = parse(
        "--rate-limits", "off", "--brightdata-per-minute", "300", "--brightdata-block-after", "0",
        "--aitronos-plan", "premium", "--aitronos-per-day", "5000",
    )  # fmt: skip
    settings = config_from_args(args).limit_settings()
    assert not settings.enabled and settings.brightdata_per_minute == 300
    assert settings.brightdata_block_after == 0
    assert (settings.aitronos.per_minute, settings.aitronos.burst) == (1000, 1200)
    assert settings.aitronos.per_day == 5000


@pytest.mark.parametrize(
    ("flags", "culprit"),
    [
        (("--brightdata-per-minute", "0"), "brightdata per-minute limit"),
        (("--aitronos-burst", "0"), "aitronos burst"),
        (("--brightdata-block-after", "-1"), "brightdata block-after"),
    ],
)
def test_bad_rate_limit_is_one_line_and_exit_2(
    flags: tuple[str, str], culprit: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(parse(*flags)) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and culprit in err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:80", ("127.0.0.1", 80)),
        ("[::1]:8765", ("::1", 8765)),
        ("localhost:1", ("localhost", 1)),
    ],
)
def test_parse_listen(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize("listen", ["0.0.0.0:8765", "192.0.2.1:8765", "example.com:80"])
def test_non_loopback_refused_with_exit_code_2(
    listen: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(parse("--listen", listen)) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "non-loopback" in err


def test_malformed_listen_is_exit_code_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(parse("--listen", "nonsense")) == 2
    assert "HOST:PORT" in capsys.readouterr().err


async def test_server_refuses_non_loopback() -> None:
    with pytest.raises(NonLoopbackAddressError):
        await SimulatorServer(SimulatorConfig(host="0.0.0.0")).start()


def test_run_simulator_in_thread_serves_and_stops() -> None:
    with run_simulator_in_thread(SimulatorConfig(scale=50, manual_clock=True)) as sim:
        url = sim.url
        response = httpx.get(f"{url}/dca/collectors_list", headers=BRD)
        assert response.status_code == 200
        httpx.post(f"{url}/_sim/advance", json={"seconds": 60})
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/dca/collectors_list", headers=BRD, timeout=2)


def test_run_simulator_in_thread_propagates_start_errors() -> None:
    with (
        pytest.raises(NonLoopbackAddressError),
        run_simulator_in_thread(SimulatorConfig(host="0.0.0.0")),
    ):
        pass


def test_latency_delays_answers() -> None:
    with run_simulator_in_thread(SimulatorConfig(scale=50, latency=0.2)) as sim:
        began = time.monotonic()
        httpx.get(f"{sim.url}/dca/collectors_list", headers=BRD)
        assert time.monotonic() - began >= 0.2


def test_startup_at_scale_50000() -> None:
    began = time.perf_counter()
    with run_simulator_in_thread(SimulatorConfig(scale=50_000, manual_clock=True)) as sim:
        startup = time.perf_counter() - began
        print(f"scale 50000 server ready in {startup:.2f}s")
        truth = httpx.get(f"{sim.url}/_sim/state", timeout=60).json()
        job_id = truth["brightdata"]["jobs"][25_000]["id"]
        began = time.perf_counter()
        for _ in range(50):
            assert httpx.get(f"{sim.url}/dca/log/{job_id}", headers=BRD).status_code == 200
        per_request = (time.perf_counter() - began) / 50
    assert len(truth["brightdata"]["jobs"]) == 50_000
    assert startup < 20
    assert per_request < 0.1


def test_python_dash_m_serves_until_sigterm() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "scrapejobs_exporter.simulator",
            "--listen",
            "127.0.0.1:0",
            "--scale",
            "50",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = line.split(" on ", 1)[1].split()[0]
        assert url.startswith("http://127.0.0.1:")
        assert httpx.get(f"{url}/dca/collectors_list", headers=BRD).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
