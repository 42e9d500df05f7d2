"""Issue 17, items 1, 2 and 5: what a reply names is checked before it is kept."""

from __future__ import annotations

import pytest

from scrapejobs_exporter.providers import aitronos, brightdata
from scrapejobs_exporter.providers.ids import MAX_ID_LENGTH, MAX_TEXT_LENGTH, check_id, safe_text


@pytest.mark.parametrize(
    ("kind", "value"),
    [("job", "j_mt5pkbmw2jkbeot95m"), ("job", "vj_mt8pzz91x0c7v2b4nq"), ("job", "hp_1"),
     ("collector", "c_mt5pg1nc278ge4iitq"), ("snapshot", "s_m4x7enmven8djfqak"),
     ("dataset", "gd_l1viktl72bvl7bjuj0"), ("dataset", "ds_123456789"),
     ("ai_job", "ia_mnvfxano29hv58t24o"), ("aitronos_job", "job_abc123")],
)  # fmt: skip
def test_documented_ids_are_kept(kind: str, value: str) -> None:
    assert check_id(kind, value) is None


@pytest.mark.parametrize(
    ("kind", "value", "reason"),
    [("job", "j_" + "a" * 70_000, "too_long"), ("job", "j_\ud800", "bad_shape"),
     ("job", "j_1/../../x", "bad_shape"), ("job", "j_1\nINFO forged", "bad_shape"),
     ("job", "s_m4x7enmven8djfqak", "bad_shape"), ("snapshot", "", "bad_shape"),
     ("collector", "c_1?x=1", "bad_shape"), ("aitronos_job", "job_\x1b[31m", "bad_shape")],
)  # fmt: skip
def test_malformed_ids_are_refused_with_a_reason(kind: str, value: str, reason: str) -> None:
    assert check_id(kind, value) == reason


def test_safe_text_replaces_surrogates_and_caps_length() -> None:
    assert safe_text("a\ud800b") == "a\ufffdb"
    long = safe_text("x" * 100_000)
    assert len(long) == MAX_TEXT_LENGTH and long.endswith("…")
    assert safe_text("plain") == "plain"


def test_item1_a_lone_surrogate_in_any_string_field_is_replaced() -> None:
    """1: `"\\ud800"` (valid JSON) in template, collector, dataset_id, snapshot_id or id."""
    job = brightdata.parse_job_log(
        {"id": "j_\ud800", "template": "t\ud800", "collector": "c_\ud800", "status": "running"},
        "j_1",
    )
    assert job.job_id == "j_1" and job.collector is None
    assert job.template == "t\ufffd"
    assert ("collector", "bad_shape") in job.refused and ("id", "mismatch") in job.refused
    snap = brightdata.parse_snapshot_progress(
        {"snapshot_id": "s_\ud800", "dataset_id": "gd_\ud800", "status": "ready"}, "s_1"
    )
    assert (snap.snapshot_id, snap.dataset_id) == ("s_1", None)
    for model in (job, snap):
        for value in (v for v in vars_of(model) if isinstance(v, str)):
            value.encode("utf-8")


def vars_of(model: object) -> list[object]:
    return [getattr(model, name) for name in model.__slots__]  # type: ignore[attr-defined]


def test_item2_discovered_ids_too_long_or_with_surrogates_are_refused_not_listed() -> None:
    """2: a 64 KB id or one with a surrogate must not reach a URL (httpx.InvalidURL)."""
    body = {
        "data": [
            {"id": "j_" + "a" * 65_536, "status": "running"},
            {"id": "j_\ud800", "status": "running"},
            {"id": "j_ok1", "status": "running"},
        ]
    }
    page = brightdata.parse_collector_jobs(body, "c_1")
    assert [j.job_id for j in page.items] == ["j_ok1"]
    assert sorted(r for _, r in page.refused) == ["bad_shape", "too_long"]
    aitronos_page = aitronos.parse_jobs_list(
        {"jobs": [{"job_id": "job_" + "9" * (MAX_ID_LENGTH + 1)}, {"job_id": "job_1"}]}
    )
    assert [j.job_id for j in aitronos_page.items] == ["job_1"]
    assert aitronos_page.refused == (("job_id", "too_long"),)


def test_item5_a_reply_about_another_id_keeps_the_asked_for_id() -> None:
    """5: labels come from the id we asked for; the body's other id is a counted mismatch."""
    job = brightdata.parse_job_log({"id": "j_other", "status": "done"}, "j_asked")
    assert job.job_id == "j_asked" and job.refused == (("id", "mismatch"),)
    progress = aitronos.parse_job_progress({"job_id": "job_other", "status": "completed"}, "job_a")
    assert progress.job_id == "job_a" and progress.refused == (("job_id", "mismatch"),)
    snap = brightdata.parse_snapshot_progress({"snapshot_id": "s_other"}, "s_asked")
    assert snap.snapshot_id == "s_asked"


def test_item5_a_list_naming_an_id_twice_keeps_the_first_row() -> None:
    rows = [
        {"id": "s_1", "status": "running", "dataset_id": "gd_1"},
        {"id": "s_1", "status": "ready", "dataset_id": "gd_1"},
    ]
    page = brightdata.parse_snapshots_list(rows, "gd_1")
    assert [(s.snapshot_id, s.status) for s in page.items] == [("s_1", "running")]
    assert page.refused == (("id", "duplicate"),)


def test_list_rows_take_the_collector_and_dataset_we_listed_with() -> None:
    page = brightdata.parse_snapshots_list([{"id": "s_1", "dataset_id": "gd_other"}], "gd_1")
    assert page.items[0].dataset_id == "gd_1"
    assert page.refused == (("dataset_id", "mismatch"),)
