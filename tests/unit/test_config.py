"""Config loading: the issue's example file, units, env vars, secret files, error reporting."""

from __future__ import annotations

from pathlib import Path

import pytest

from scrapejobs_exporter.config import ConfigError, load_config, parse_config, parse_duration

EXAMPLE = """
poll_interval: 30s
request_timeout: 10s
concurrency: 16
brightdata:
  api_token: ${BRIGHTDATA_API_TOKEN}
  base_url: https://api.brightdata.com
  jobs: [j_ma13y9ay1piehrso8r]
  snapshots: [s_m4x7enmven8djfqak]
  ai_flows: [c_m9im5n7v82p2y35la]
aitronos:
  api_key: ${AITRONOS_API_KEY}
  base_url: https://api.aitronos.com
  path_prefix: /v1
  auth_header: X-API-Key
  jobs: [job_abc123]
"""
ENV = {"BRIGHTDATA_API_TOKEN": "bd-secret", "AITRONOS_API_KEY": "ak-secret"}


def problems(text: str, env: dict[str, str] | None = None, **kwargs: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, env=ENV if env is None else env, **kwargs)  # type: ignore[arg-type]
    return info.value.problems


def test_issue_example_parses() -> None:
    config = parse_config(EXAMPLE, env=ENV)
    assert config.poll_interval == 30 and config.request_timeout == 10
    assert config.concurrency == 16
    assert config.brightdata is not None and config.aitronos is not None
    assert config.brightdata.token() == "bd-secret"
    assert config.brightdata.jobs == ["j_ma13y9ay1piehrso8r"]
    assert config.aitronos.key() == "ak-secret"
    assert config.aitronos.path_prefix == "/v1"


def test_example_file_in_repo_is_valid() -> None:
    path = Path(__file__).parents[2] / "config.example.yaml"
    config = load_config(path, env=ENV)
    assert config.brightdata is not None


def test_either_provider_may_be_absent() -> None:
    config = parse_config("aitronos:\n  api_key: k\n  jobs: [a]\n", env={})
    assert config.brightdata is None and config.aitronos is not None
    assert parse_config("", env={}).brightdata is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("1h30m", 5400), ("500ms", 0.5), ("2d", 172800), (15, 15),
     ("1.5s", 1.5), ("10", 10)],
)  # fmt: skip
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["5 minutes", "m5", "-3s", "", "1x", True])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_all_errors_reported_at_once_with_paths() -> None:
    text = """
poll_interval: soon
concurrency: zero
colour: blue
brightdata:
  api_token: t
  jobs: [j_1, j_2, "../etc"]
  snapshot: [s_1]
aitronos:
  api_key: k
  auth_header: Cookie
"""
    found = problems(text)
    joined = "\n".join(found)
    assert any(p.startswith("poll_interval: invalid duration 'soon'") for p in found), joined
    assert any(p.startswith("concurrency:") for p in found), joined
    assert "colour: unknown key" in found
    assert "brightdata.snapshot: unknown key" in found
    assert any(p.startswith("brightdata.jobs[2]: invalid id '../etc'") for p in found), joined
    assert any(p.startswith("aitronos.auth_header:") for p in found), joined
    assert all("\n" not in p for p in found)


def test_missing_env_var_named_once() -> None:
    found = problems(EXAMPLE, env={"AITRONOS_API_KEY": "x"})
    assert found == ["brightdata.api_token: environment variable BRIGHTDATA_API_TOKEN is not set"]


def test_env_default_syntax() -> None:
    config = parse_config("poll_interval: ${INTERVAL:-45s}\n", env={})
    assert config.poll_interval == 45


def test_token_required() -> None:
    assert problems("brightdata:\n  jobs: [j_1]\n") == [
        "brightdata: api_token (or api_token_file) is required"
    ]


def test_token_file_relative_to_config(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "bd").write_text("from-file\n")
    (tmp_path / "c.yml").write_text("brightdata:\n  api_token_file: secrets/bd\n")
    config = load_config(tmp_path / "c.yml", env={})
    assert config.brightdata is not None and config.brightdata.token() == "from-file"


def test_unreadable_secret_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "c.yml").write_text("aitronos:\n  api_key_file: /nonexistent/key\n")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "c.yml", env={})
    assert info.value.problems == [
        "aitronos.api_key_file: cannot read '/nonexistent/key': No such file or directory"
    ]


def test_token_and_file_both_given(tmp_path: Path) -> None:
    secret = tmp_path / "s"
    secret.write_text("x")
    found = problems(f"brightdata:\n  api_token: a\n  api_token_file: {secret}\n")
    assert found == ["brightdata: give either api_token or api_token_file, not both"]


def test_yaml_syntax_error_is_one_line_with_position() -> None:
    found = problems("brightdata:\n  jobs: [j_1\n  api_token: x\n")
    assert len(found) == 1 and found[0].startswith("line ")
    assert "YAML syntax error" in found[0]


def test_top_level_must_be_mapping() -> None:
    assert problems("- a\n- b\n") == ["(top level): expected a mapping of settings"]


def test_bad_base_url() -> None:
    found = problems("brightdata:\n  api_token: t\n  base_url: ftp//nope\n")
    assert found[0].startswith("brightdata.base_url: invalid URL 'ftp//nope'")


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "absent.yml")
    assert "cannot read config file" in info.value.problems[0]


def test_secrets_do_not_leak_into_repr() -> None:
    config = parse_config(EXAMPLE, env=ENV)
    assert "bd-secret" not in repr(config) and "ak-secret" not in str(config)


def test_request_budgets_and_their_shard_shares() -> None:
    config = parse_config(EXAMPLE, env=ENV)
    assert config.brightdata is not None and config.aitronos is not None
    assert (config.brightdata.max_requests_per_minute, config.brightdata.max_requests_per_day) == (
        100,
        None,
    )
    # Aitronos Standard: 100 a minute and 10,000 a day.
    assert (config.aitronos.max_requests_per_minute, config.aitronos.max_requests_per_day) == (
        100,
        10_000,
    )
    off = parse_config(EXAMPLE + "  max_requests_per_day: null\n", env=ENV)
    assert off.aitronos is not None and off.aitronos.max_requests_per_day is None
    text = EXAMPLE.replace(
        "  ai_flows: [c_m9im5n7v82p2y35la]\n",
        "  ai_flows: [c_m9im5n7v82p2y35la]\n  max_requests_per_day: 1\n"
        "  shard_max_requests_per_minute: 0\n  shard_max_requests_per_day: many\n",
    )
    found = problems(text)
    assert any(p.startswith("brightdata.max_requests_per_day:") for p in found), found
    assert any(p.startswith("brightdata.shard_max_requests_per_minute:") for p in found), found
    assert any(p.startswith("brightdata.shard_max_requests_per_day:") for p in found), found


def test_state_file_is_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "c.yml").write_text("state_file: data/state.db\n")
    assert load_config(tmp_path / "c.yml", env={}).state_file == tmp_path / "data" / "state.db"
    (tmp_path / "abs.yml").write_text(f"state_file: {tmp_path}/s.db\n")
    assert load_config(tmp_path / "abs.yml", env={}).state_file == tmp_path / "s.db"
    assert parse_config("", env={}).state_file is None


def test_state_file_cannot_be_a_directory(tmp_path: Path) -> None:
    assert problems(f"state_file: {tmp_path}\n") == [
        f"state_file: {str(tmp_path)!r} is a directory: give a file path, e.g. state.db"
    ]
