"""Any JSON, or none, gives a model or a ParseError, numbers are None or finite, and every string
is printable as UTF-8, of bounded length, and every id kept has its documented shape.

Bodies are random JSON values and random mutations of the documentation's seed bodies: values
replaced by anything, keys dropped or re-cased, numbers as strings, objects wrapped in arrays.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scrapejobs_exporter.providers import aitronos, brightdata
from scrapejobs_exporter.providers.fields import ParseError
from scrapejobs_exporter.providers.http import ApiError, _decode_json
from scrapejobs_exporter.providers.ids import (
    ID_SHAPES,
    MAX_TEXT_LENGTH,
    REFUSED_REASONS,
)
from tests.conftest import seed

SEEDS = [
    "job_log_done",
    "job_log_partial",
    "snapshot_progress_running",
    "snapshot_progress_401",
    "snapshot_progress_404",
    "ai_flow_progress_done",
    "ai_flow_trigger",
    "aitronos_progress_timeout",
]
PARSERS: dict[str, Callable[[Any], Any]] = {
    "parse_job_log": lambda b: brightdata.parse_job_log(b, "j_1"),
    "parse_snapshot_progress": lambda b: brightdata.parse_snapshot_progress(b, "s_1"),
    "parse_ai_flow_progress": lambda b: brightdata.parse_ai_flow_progress(b, "c_1"),
    "parse_job_progress": lambda b: aitronos.parse_job_progress(b, "job_1"),
}
# List parsers, where the lead's discovery work provides them.
for name, call in {
    "parse_collectors_list": lambda b: brightdata.parse_collectors_list(b),
    "parse_collector_jobs": lambda b: brightdata.parse_collector_jobs(b, "c_1"),
    "parse_snapshots_list": lambda b: brightdata.parse_snapshots_list(b, "gd_1"),
    "parse_jobs_list": lambda b: aitronos.parse_jobs_list(b),
}.items():
    module = aitronos if name == "parse_jobs_list" else brightdata
    if hasattr(module, name):
        PARSERS[name] = call

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["", "NaN", "inf", "-1e999", "1e999", "12", "3.5", "running", "done",
                     "2024-01-01T00:00:00Z", "9999-99-99", "Z"]),
    # Hostile strings: lone surrogates (valid JSON, not UTF-8), huge ones, ids of every shape
    # (well-formed, almost, and path-changing), negative counts.
    st.sampled_from(["\ud800", "a\udfffb", "j_\ud800", "x" * 70_000, "j_" + "a" * 70_000,
                     "j_1", "vj_2", "s_1", "c_1", "gd_1", "job_1", "ia_1", "j_1/../x", "j_1\n",
                     "../../etc", "j_1?x=1", "-5", "-1e3"]),
    st.integers(max_value=-1),
)  # fmt: skip
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(max_size=12), inner, max_size=5),
    ),
    max_leaves=20,
)


@st.composite
def mutated(draw: st.DrawFn, value: Any) -> Any:
    """The seed with a few random changes at any depth."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            action = draw(st.sampled_from(["keep", "keep", "drop", "recase", "replace", "deep"]))
            if action == "drop":
                continue
            if action == "recase":
                key = draw(st.sampled_from([key.upper(), key.capitalize(), key.title()]))
            if action == "replace":
                item = draw(json_values)
            elif action == "deep":
                item = draw(mutated(item))
            out[key] = item
        if draw(st.booleans()):
            out[draw(st.text(max_size=8))] = draw(json_values)
        return draw(st.sampled_from([out, out, out, [out], {"data": out, "success": True}]))
    if isinstance(value, list):
        return [draw(mutated(v)) for v in value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return draw(
            st.sampled_from(
                [value, str(value), -value, {"value": value}, None, 10**400, "1e999", 1e308 * 10]
            )
        )
    return draw(st.one_of(st.just(value), json_values))


# Model fields holding an id, and the shape a kept one has (the asked-for ids in PARSERS have it).
ID_FIELDS = {
    "job_id": ("job", "aitronos_job"),
    "snapshot_id": ("snapshot",),
    "collector_id": ("collector",),
    "collector": ("collector",),
    "dataset_id": ("dataset",),
    "ai_job_id": ("ai_job",),
}


def check_refused(refused: Any) -> None:
    assert isinstance(refused, tuple)
    for field, reason in refused:
        assert isinstance(field, str) and reason in REFUSED_REASONS


def check_model(result: Any) -> None:
    items = getattr(result, "items", None)
    if isinstance(items, tuple):  # a list page
        for item in items:
            check_model(item)
        ids = [getattr(i, "job_id", None) or getattr(i, "snapshot_id", None)
               or getattr(i, "collector_id", None) for i in items]  # fmt: skip
        assert len(ids) == len(set(ids)), "a list page kept an id twice"
        total = result.total
        assert total is None or (isinstance(total, int) and not isinstance(total, bool))
        check_refused(result.refused)
        return
    assert dataclasses.is_dataclass(result)
    for f in dataclasses.fields(result):
        value = getattr(result, f.name)
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int | float):
            assert math.isfinite(value), (f.name, value)
        elif f.name == "refused":
            check_refused(value)
        elif f.name != "invalid":
            assert isinstance(value, str), (f.name, value)
            value.encode("utf-8")  # no lone surrogate: the render must never fail on it
            assert len(value) <= MAX_TEXT_LENGTH, (f.name, len(value))
            if f.name in ID_FIELDS:
                shapes = ID_FIELDS[f.name]
                assert any(ID_SHAPES[k].fullmatch(value) for k in shapes), (f.name, value)


def parse_ok_or_parse_error(parser: Callable[[Any], Any], body: Any) -> None:
    try:
        result = parser(body)
    except ParseError:
        return
    check_model(result)


@pytest.mark.parametrize("name", sorted(PARSERS))
@SETTINGS
@given(body=json_values)
def test_random_json(name: str, body: Any) -> None:
    parse_ok_or_parse_error(PARSERS[name], body)


@pytest.mark.parametrize("name", sorted(PARSERS))
@SETTINGS
@given(data=st.data())
def test_mutated_seeds(name: str, data: st.DataObject) -> None:
    body = data.draw(mutated(seed(data.draw(st.sampled_from(SEEDS)))))
    parse_ok_or_parse_error(PARSERS[name], body)


@SETTINGS
@given(raw=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
def test_bytes_decode_to_json_or_a_typed_error(raw: bytes) -> None:
    """What is not JSON at all never reaches a parser: it is a `bad_body` ApiError."""
    _decoded_bodies_parse_or_fail_typed(
        httpx.Response(200, headers={"content-type": "text/html"}), raw
    )


@pytest.mark.parametrize(
    "raw", [b"1" * 5000, b"[" * 100_000 + b"]" * 100_000, b"\xff\xfe", b"NaN", b'{"a": 1e999}']
)
def test_hostile_json_is_a_typed_error_or_a_value(raw: bytes) -> None:
    _decoded_bodies_parse_or_fail_typed(httpx.Response(200), raw)


def _decoded_bodies_parse_or_fail_typed(response: httpx.Response, raw: bytes) -> None:
    """`raw` is a `bad_body` ApiError, or JSON that every parser takes or rejects typed."""
    try:
        body = _decode_json(response, raw)
    except ApiError as exc:
        assert exc.reason == "bad_body"
        return
    for parser in PARSERS.values():
        parse_ok_or_parse_error(parser, body)


id_values = st.sampled_from(
    ["j_1", "j_1", "vj_2", "s_1", "s_1", "c_1", "c_1", "job_1", "job_1", "j_\ud800", "s_" + "a" * 300,
     "../x", 7, None]
)  # fmt: skip
rows = st.lists(
    st.fixed_dictionaries(
        {"id": id_values, "job_id": id_values, "status": st.sampled_from(["done", "running", "x"])},
        optional={"data_lines": st.integers(), "dataset_size": st.integers(min_value=-5)},
    ),
    max_size=8,
)


@pytest.mark.parametrize(
    "name",
    ["parse_collectors_list", "parse_collector_jobs", "parse_snapshots_list", "parse_jobs_list"],
)
@SETTINGS
@given(page=rows, wrap=st.sampled_from(["bare", "data", "jobs"]))
def test_list_pages_keep_each_valid_id_once(name: str, page: list[Any], wrap: str) -> None:
    """Duplicated, malformed and surrogate ids in list rows: each well-formed id once, every
    other row refused with a counted reason."""
    body: Any = page if wrap == "bare" else {wrap: page, "total": len(page)}
    try:
        result = PARSERS[name](body)
    except ParseError:
        return
    check_model(result)
    reasons = [r for _, r in result.refused]
    ids = [r.get("job_id" if name == "parse_jobs_list" else "id") for r in page]
    kept = len(result.items)
    distinct_strings = len({i for i in ids if isinstance(i, str)})
    assert kept <= distinct_strings
    if kept < len([i for i in ids if isinstance(i, str)]):
        assert reasons, "a row with an id was dropped without a counted reason"


def test_huge_integers_are_dropped_not_raised() -> None:
    job = brightdata.parse_job_log({"inputs": 10**400, "job_time": -(10**400)}, "j")
    assert job.inputs is None and job.job_time is None and job.invalid


def test_seeds_still_parse() -> None:
    body = seed("job_log_done")
    assert brightdata.parse_job_log(json.loads(json.dumps(body)), "j").status == "done"
