"""The landing page (`/`) and its JSON twin (`/api/targets`): one row per tracked target.

Everything shown is built here, from the store, so the HTTP handlers stay one line each. Values
from the providers (ids, statuses, error texts) are escaped on the server and only ever set as
text by the page's script. No secrets: the config summary names settings, never credentials.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

from aiohttp import web

from scrapejobs_exporter import __version__
from scrapejobs_exporter.config import Config
from scrapejobs_exporter.kinds import Bar, kind_of
from scrapejobs_exporter.providers.aitronos import AitronosJob
from scrapejobs_exporter.providers.brightdata import AiFlow, ErrorGroups, Snapshot, StudioJob
from scrapejobs_exporter.store import Target

if TYPE_CHECKING:
    from scrapejobs_exporter.exporter import Exporter

__all__ = [
    "MAX_PAGE_ROWS",
    "api_response",
    "config_summary",
    "page_response",
    "render_page",
    "target_row",
    "targets_payload",
]

# Rows rendered into the page; the JSON has them all. A browser copes with a few hundred rows
# refreshed every few seconds, not with twenty thousand.
MAX_PAGE_ROWS = 500
REFRESH_SECONDS = 5
ACTIVE = frozenset({"running", "processing", "building", "starting", "queued", "pending"})
FAILED = frozenset({"failed", "cancelled"})
SUCCEEDED = frozenset({"done", "ready", "completed"})


# --- view data -------------------------------------------------------------------------------


def target_row(target: Target, now: float) -> dict[str, Any]:
    """One target as plain JSON values; the page and `watch --json` show exactly this."""
    model = target.model
    error = None
    if target.up is False:
        error = {
            "status": target.last_error_status,
            "reason": target.last_error_reason,
            "message": target.last_error,
        }
    kind = kind_of(target.provider, target.kind)
    progress = None if model is None else kind.bar(model)
    return {
        "provider": target.provider,
        "kind": target.kind,
        "id": target.target_id,
        "collector": _collector(target),
        "dataset": model.dataset_id if isinstance(model, Snapshot) else None,
        "status": _status(target),
        "step": model.step if isinstance(model, AiFlow) else None,
        "up": target.up,
        "stalled": target.stalled,
        "final": target.final,
        "progress": None if progress is None else _progress_json(progress),
        "items": None if model is None else kind.items(model),
        "success_ratio": _success_ratio(model),
        "duration_seconds": _duration(target, now),
        "eta_seconds": _round(target.eta),
        "last_success": target.last_success,
        "last_error": error,
        "failure": _failure(target),
    }


def _failure(target: Target) -> dict[str, Any] | None:
    """Why a target failed, when the provider says: a Studio job's failed inputs per error
    group (its report, hp_errors), or the provider's message (Aitronos with its reason,
    snapshots, AI flows). None for a target that did not fail and has no failed inputs."""
    report = target.report
    groups = None
    if isinstance(report, ErrorGroups):
        groups = {g: n for g, n in report.items() if n > 0} or None
    model = target.model
    said = None if model is None else kind_of(target.provider, target.kind).failure(model)
    reason, message = said or (None, None)
    if groups is None and message is None and reason is None:
        return None
    return {"groups": groups, "reason": reason, "message": message}


def failure_text(failure: Mapping[str, Any] | None) -> str:
    """`blocked 3 · page_gone 1`, `timeout: Navigation timeout while loading page`."""
    if failure is None:
        return ""
    parts = []
    if failure["groups"]:
        by_count = sorted(failure["groups"].items(), key=lambda item: (-item[1], item[0]))
        parts.append(" · ".join(f"{group} {count}" for group, count in by_count))
    message = failure["message"]
    if failure["reason"]:
        parts.append(f"{failure['reason']}: {message}" if message else failure["reason"])
    elif message:
        parts.append(message)
    return " — ".join(parts)


def _progress_json(progress: Bar) -> dict[str, Any]:
    return {
        "done": progress.done,
        "total": progress.total,
        "unit": progress.unit,
        "ratio": _round(progress.ratio, 4),
    }


def _status(target: Target) -> str | None:
    if target.model is None:
        return None  # never polled successfully
    return target.model.status or "none"  # an AI flow that never ran: `{}`


def _collector(target: Target) -> str | None:
    model = target.model
    if isinstance(model, StudioJob | AiFlow) and model.collector:
        return model.collector
    return target.collector


def _success_ratio(model: object) -> float | None:
    if not isinstance(model, StudioJob):
        return None
    if model.success_rate is not None:
        return _round(model.success_rate, 4)
    if model.success is None or model.fails is None:
        return None
    return _round(model.success / max(1, model.success + model.fails), 4)


def _duration(target: Target, now: float) -> float | None:
    """Provider-reported run time when finished; while running, since the provider's start
    time, or (when that is ahead of our clock) since we first saw it running."""
    model = target.model
    if isinstance(model, StudioJob):
        if model.job_time is not None:
            return _round(model.job_time)
        if model.started is not None and model.started <= now and not model.terminal:
            return _round(now - model.started)
    if isinstance(model, AitronosJob):
        return _round(model.processing_time if model.terminal else model.running_time)
    if target.progress is not None:
        return _round(now - target.progress.running_since)
    return None


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def _rank(row: Mapping[str, Any]) -> int:
    """Failing and stalled first, then active, then failed jobs, then the rest."""
    if row["up"] is False or row["stalled"]:
        return 0
    if row["status"] in ACTIVE:
        return 1
    if row["status"] in FAILED:
        return 2
    return 4 if row["status"] in SUCCEEDED else 3


def _matches(row: Mapping[str, Any], needle: str) -> bool:
    if not needle:
        return True
    error = row["last_error"] or {}
    fields = (row["provider"], row["kind"], row["id"], row["collector"], row["dataset"],
              row["status"], error.get("message"), failure_text(row["failure"]))  # fmt: skip
    return any(needle in str(value).lower() for value in fields if value is not None)


def sorted_rows(targets: Iterable[Target], now: float) -> list[dict[str, Any]]:
    rows = [target_row(t, now) for t in targets]
    rows.sort(key=lambda r: (_rank(r), r["provider"], r["kind"], r["id"]))
    return rows


def _count(rows: list[dict[str, Any]]) -> dict[str, int]:
    return {
        "active": sum(r["status"] in ACTIVE for r in rows),
        "failing": sum(r["up"] is False for r in rows),
        "stalled": sum(bool(r["stalled"]) for r in rows),
        "failed": sum(r["status"] in FAILED for r in rows),
    }


def config_summary(config: Config) -> dict[str, Any]:
    """What the exporter watches and how; settings only, never a credential."""
    summary: dict[str, Any] = {
        "poll_interval_seconds": config.poll_interval,
        "request_timeout_seconds": config.request_timeout,
        "concurrency": config.concurrency,
        "per_job_metrics": config.per_job_metrics,
    }
    if config.brightdata is not None:
        bd = config.brightdata
        summary["brightdata"] = {
            "base_url": _public_url(bd.base_url),
            "max_requests_per_minute": bd.max_requests_per_minute,
            "jobs": len(bd.jobs),
            "snapshots": len(bd.snapshots),
            "ai_flows": bd.ai_flows if bd.ai_flows == "all" else len(bd.ai_flows),
            "collectors": bd.collectors if bd.collectors == "all" else len(bd.collectors),
            "datasets": len(bd.datasets),
        }
    if config.aitronos is not None:
        ait = config.aitronos
        summary["aitronos"] = {
            "base_url": _public_url(ait.base_url),
            "path_prefix": ait.path_prefix,
            "max_requests_per_minute": ait.max_requests_per_minute,
            "jobs": len(ait.jobs),
            "discover": ait.discover,
        }
    return summary


def _public_url(url: str) -> str:
    """A base URL without any `user:password@` it may carry."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def targets_payload(
    exporter: Exporter, query: str = "", limit: int | None = None
) -> dict[str, Any]:
    """The `/api/targets` document (docs/api.md): every target unless `q` or `limit` say."""
    now = exporter.poller.clock()
    rows = sorted_rows(exporter.store, now)
    needle = query.strip().lower()
    matched = [r for r in rows if _matches(r, needle)]
    shown = matched if limit is None else matched[:limit]
    return {
        "version": __version__,
        "generated_at": now,
        "ready": exporter.ready,
        "config": config_summary(exporter.config),
        "counts": {"total": len(rows), "matched": len(matched), **_count(rows)},
        "targets": shown,
    }


# --- HTTP ------------------------------------------------------------------------------------


MAX_QUERY_TEXT = 256  # characters of `q`
# ASCII digits only: str.isdigit() also takes `²`, which int() refuses; nine digits at most, far
# below int()'s 4,300-digit limit.
_LIMIT = re.compile(r"[0-9]{1,9}")


def api_response(exporter: Exporter, query: Mapping[str, str]) -> web.Response:
    limit_text, needle = query.get("limit", ""), query.get("q", "")
    if limit_text and not _LIMIT.fullmatch(limit_text):
        return _bad_request("limit must be a whole number from 0 to 999999999")
    if len(needle) > MAX_QUERY_TEXT:
        return _bad_request(f"q must be at most {MAX_QUERY_TEXT} characters")
    payload = targets_payload(exporter, needle, int(limit_text) if limit_text else None)
    return web.json_response(payload, headers={"Cache-Control": "no-store"})


def _bad_request(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


def page_response(
    exporter: Exporter,
    telemetry_path: str,
    query: Mapping[str, str] | None = None,
    grafana_url: str | None = None,
) -> web.Response:
    """The page, filtered by `?q=` like the JSON (the filter box keeps it in the URL)."""
    needle = (query or {}).get("q", "")
    if len(needle) > MAX_QUERY_TEXT:
        return _bad_request(f"q must be at most {MAX_QUERY_TEXT} characters")
    payload = targets_payload(exporter, needle, limit=MAX_PAGE_ROWS)
    body = render_page(payload, telemetry_path, needle, grafana_url)
    return web.Response(
        text=body, content_type="text/html", headers={"Content-Security-Policy": _CSP}
    )


# --- HTML ------------------------------------------------------------------------------------

# (title, sort key): the script sorts the rows by the JSON field the key names.
COLUMNS = (("Provider", "provider"), ("Kind", "kind"), ("Id", "id"),
           ("Collector / dataset", "collector"), ("Status", "status"), ("Progress", "progress"),
           ("Success", "success_ratio"), ("Duration", "duration_seconds"), ("ETA", "eta_seconds"),
           ("Last success", "last_success"), ("Last error", "last_error"),
           ("Failure reason", "failure"), ("Stalled", "stalled"))  # fmt: skip
JOB_DASHBOARD = "d/scrapejobs-job-detail/scrapejobs-job-detail"
OVERVIEW_DASHBOARD = "d/scrapejobs-overview/scrapejobs-overview"


def grafana_link(base: str, row: Mapping[str, Any]) -> str:
    """The Grafana dashboard of a row: a Studio job's job-detail dashboard, else the overview
    (filtered by collector where there is one)."""
    params = []
    if row["collector"]:
        params.append("var-collector=" + quote(row["collector"], safe=""))
    if row["provider"] == "brightdata" and row["kind"] == "job":
        params.append("var-job_id=" + quote(row["id"], safe=""))
        path = JOB_DASHBOARD
    else:
        path = OVERVIEW_DASHBOARD
    return f"{base.rstrip('/')}/{path}" + ("?" + "&".join(params) if params else "")


def render_page(
    payload: Mapping[str, Any],
    telemetry_path: str,
    query: str = "",
    grafana_url: str | None = None,
) -> str:
    counts = payload["counts"]
    rows = payload["targets"]
    now = float(payload["generated_at"])
    body_rows = "\n".join(_html_row(row, now, grafana_url) for row in rows)
    header = "".join(
        f'<th aria-sort="none"><button type="button" data-sort="{key}">{title}</button></th>'
        for title, key in COLUMNS
    )
    return _PAGE.format(
        query=_e(query),
        grafana=_e(grafana_url or ""),
        version=_e(payload["version"]),
        metrics=_e(telemetry_path),
        config=_html_config(payload["config"]),
        summary=_html_summary(counts),
        note=_e(_cap_note(len(rows), counts["matched"])),
        header=header,
        rows=body_rows or _EMPTY_ROW,
        cap=MAX_PAGE_ROWS,
        refresh=REFRESH_SECONDS * 1000,
        style=_STYLE,
        script=_SCRIPT,
    )


def _cap_note(shown: int, matched: int) -> str:
    if shown >= matched:
        return ""
    return f"Showing the first {shown} of {matched} targets; filter to narrow, or use /api/targets."


def _html_summary(counts: Mapping[str, int]) -> str:
    parts = [f"{counts['total']} targets"]
    parts += [f"{counts[k]} {k}" for k in ("active", "failing", "stalled", "failed")]
    return _e(" · ".join(parts))


def _html_config(config: Mapping[str, Any]) -> str:
    items = []
    for key, value in config.items():
        if isinstance(value, dict):
            text = ", ".join(f"{k}: {_fmt_value(v)}" for k, v in value.items())
        else:
            text = _fmt_value(value)
        items.append(f"<dt>{_e(key)}</dt><dd>{_e(text)}</dd>")
    return "".join(items)


def _html_row(row: Mapping[str, Any], now: float, grafana_url: str | None = None) -> str:
    ident = f"<code>{_e(row['id'])}</code>"
    if grafana_url:
        ident = f'<a href="{_e(grafana_link(grafana_url, row))}">{ident}</a>'
    cells = [
        _e(row["provider"]),
        _e(row["kind"]),
        ident,
        _e(row["collector"] or row["dataset"] or ""),
        f'<span class="st st-{_e(_status_class(row))}">{_e(row["status"] or "not polled")}</span>',
        _html_progress(row["progress"]),
        _e(_fmt_ratio(row["success_ratio"])),
        _e(_fmt_seconds(row["duration_seconds"])),
        _e(_fmt_seconds(row["eta_seconds"])),
        _e(_fmt_ago(row["last_success"], now)),
        _e(_fmt_error(row["last_error"])),
        _e(failure_text(row["failure"])),
        "stalled" if row["stalled"] else "",
    ]
    key = f"{row['provider']}/{row['kind']}/{row['id']}"
    tds = "".join(f"<td>{c}</td>" for c in cells)
    return f'<tr data-key="{_e(key)}" data-status="{_e(row["status"] or "")}">{tds}</tr>'


def _html_progress(progress: Mapping[str, Any] | None) -> str:
    if progress is None:
        return ""
    ratio = progress["ratio"]
    width = "" if ratio is None else f' style="width:{ratio * 100:.1f}%"'
    value = "" if ratio is None else f' aria-valuenow="{ratio * 100:.1f}"'
    return (
        f'<div class="bar{" indeterminate" if ratio is None else ""}" role="progressbar"'
        f' aria-valuemin="0" aria-valuemax="100"{value}><span{width}></span></div>'
        f"<small>{_e(progress_text(progress))}</small>"
    )


def _status_class(row: Mapping[str, Any]) -> str:
    status = row["status"]
    if row["up"] is False or row["stalled"] or status in FAILED:
        return "bad"
    if status in ACTIVE:
        return "run"
    if status in SUCCEEDED:
        return "ok"
    return "other"


def progress_text(progress: Mapping[str, Any]) -> str:
    """`42 / 90 pages`, `8 steps`, `37%`: a progress value as people read it."""
    done, total, unit = progress["done"], progress["total"], progress["unit"]
    if unit == "percent":
        return "" if done is None else f"{done:.0f}%"
    if total is None:
        return f"{done:g} {unit}"
    return f"{done:g} / {total:g} {unit}"


def _fmt_value(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _fmt_ratio(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.1f}%"


def _fmt_seconds(value: float | None) -> str:
    if value is None:
        return ""
    seconds = round(value)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _fmt_ago(at: float | None, now: float) -> str:
    return "" if at is None else f"{_fmt_seconds(max(0.0, now - at))} ago"


def _fmt_error(error: Mapping[str, Any] | None) -> str:
    return "" if error is None else str(error["message"] or error["reason"] or "error")


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


_EMPTY_ROW = f'<tr class="empty"><td colspan="{len(COLUMNS)}">No targets tracked yet.</td></tr>'

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1d2733;background:#fafbfc}
h1{font-size:1.4em;margin:0 0 .2em}header p{margin:.2em 0;color:#556}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.1em 1em;margin:.8em 0;font-size:.9em}
dt{font-weight:600}dd{margin:0;color:#445}
#filter{padding:.35em .6em;width:22em;border:1px solid #bbc;border-radius:4px}
table{border-collapse:collapse;width:100%;margin-top:.8em;background:#fff}
th,td{padding:.3em .5em;border-bottom:1px solid #e3e6ea;text-align:left;vertical-align:top}
th{background:#eef1f4;position:sticky;top:0}code{font-size:.92em}
.st{padding:0 .4em;border-radius:3px;font-weight:600}.st-ok{background:#dff3e4;color:#17663a}
.st-run{background:#e1ecfb;color:#1a4f9c}.st-bad{background:#fbe3e3;color:#a32020}
.st-other{background:#f1efe3;color:#6b5a12}
.bar{width:7em;height:.7em;background:#e6e9ee;border-radius:4px;overflow:hidden}
.bar span{display:block;height:100%;background:#3b82c4}
.bar.indeterminate span{width:35%;background:#9bbce0}small{color:#667}
.note{color:#8a5a00}nav a{margin-right:1em}
td:nth-child(3),td:nth-child(11),td:nth-child(12){overflow-wrap:anywhere;max-width:18em}
th button{all:unset;cursor:pointer}th button:focus-visible{outline:2px solid #3b82c4}
th[aria-sort=ascending] button::after{content:" \\25B2"}
th[aria-sort=descending] button::after{content:" \\25BC"}
"""

_SCRIPT = """
(function () {
  "use strict";
  var table = document.getElementById("targets");
  var filter = document.getElementById("filter");
  var cap = Number(table.dataset.cap), refresh = Number(table.dataset.refresh);
  var grafana = (table.dataset.grafana || "").replace(/\\/+$/, "");
  var params = new URLSearchParams(location.search);
  var sortKey = params.get("sort") || "", descending = params.get("order") === "desc";
  var last = null;
  function secs(v) {
    if (v === null || v === undefined) return "";
    var s = Math.round(v);
    if (s < 60) return s + "s";
    var m = Math.floor(s / 60); s = s % 60;
    if (m < 60) return m + "m" + (s < 10 ? "0" : "") + s + "s";
    var h = Math.floor(m / 60); m = m % 60;
    return h + "h" + (m < 10 ? "0" : "") + m + "m";
  }
  function ratio(v) { return v === null ? "" : (v * 100).toFixed(1) + "%"; }
  function progressText(p) {
    if (p.unit === "percent") return p.done === null ? "" : p.done.toFixed(0) + "%";
    return p.total === null ? p.done + " " + p.unit : p.done + " / " + p.total + " " + p.unit;
  }
  function errorText(r) {
    return r.last_error ? (r.last_error.message || r.last_error.reason || "error") : "";
  }
  function failureText(f) {
    if (!f) return "";
    var parts = [];
    if (f.groups) {
      var groups = Object.keys(f.groups).sort(function (a, b) {
        return f.groups[b] - f.groups[a] || (a < b ? -1 : a > b ? 1 : 0);
      });
      parts.push(groups.map(function (g) { return g + " " + f.groups[g]; }).join(" \\u00b7 "));
    }
    if (f.reason) parts.push(f.message ? f.reason + ": " + f.message : f.reason);
    else if (f.message) parts.push(f.message);
    return parts.join(" \\u2014 ");
  }
  function statusClass(r) {
    if (r.up === false || r.stalled || r.status === "failed" || r.status === "cancelled")
      return "bad";
    if (["running", "processing", "building", "starting", "queued", "pending"]
        .indexOf(r.status) >= 0) return "run";
    if (["done", "ready", "completed"].indexOf(r.status) >= 0) return "ok";
    return "other";
  }
  function link(r) {
    var q = [];
    if (r.collector) q.push("var-collector=" + encodeURIComponent(r.collector));
    var path = "/d/scrapejobs-overview/scrapejobs-overview";
    if (r.provider === "brightdata" && r.kind === "job") {
      q.push("var-job_id=" + encodeURIComponent(r.id));
      path = "/d/scrapejobs-job-detail/scrapejobs-job-detail";
    }
    return grafana + path + (q.length ? "?" + q.join("&") : "");
  }
  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }
  function progressCell(td, p) {
    if (!p) return;
    var bar = el("div", null, p.ratio === null ? "bar indeterminate" : "bar");
    bar.setAttribute("role", "progressbar");
    bar.setAttribute("aria-valuemin", "0");
    bar.setAttribute("aria-valuemax", "100");
    var fill = el("span");
    if (p.ratio !== null) {
      bar.setAttribute("aria-valuenow", (p.ratio * 100).toFixed(1));
      fill.style.width = (p.ratio * 100).toFixed(1) + "%";
    }
    bar.appendChild(fill);
    td.appendChild(bar);
    td.appendChild(el("small", progressText(p)));
  }
  function row(r, now) {
    var tr = document.createElement("tr");
    tr.dataset.key = r.provider + "/" + r.kind + "/" + r.id;
    tr.dataset.status = r.status || "";
    var cells = [r.provider, r.kind, null, r.collector || r.dataset || "", null, null,
      ratio(r.success_ratio), secs(r.duration_seconds), secs(r.eta_seconds),
      r.last_success === null ? "" : secs(Math.max(0, now - r.last_success)) + " ago",
      errorText(r), failureText(r.failure), r.stalled ? "stalled" : ""];
    cells.forEach(function (text, i) {
      var td = el("td", text);
      if (i === 2) {
        var code = el("code", r.id);
        if (grafana) {
          var a = el("a");
          a.href = link(r);
          a.appendChild(code);
          td.appendChild(a);
        } else td.appendChild(code);
      }
      if (i === 4) td.appendChild(el("span", r.status || "not polled", "st st-" + statusClass(r)));
      if (i === 5) progressCell(td, r.progress);
      tr.appendChild(td);
    });
    return tr;
  }
  function sortValue(r) {
    switch (sortKey) {
      case "progress": return r.progress ? r.progress.ratio : null;
      case "collector": return r.collector || r.dataset;
      case "last_error": return errorText(r) || null;
      case "failure": return failureText(r.failure) || null;
      case "stalled": return r.stalled ? 1 : 0;
      default: return r[sortKey] === undefined ? null : r[sortKey];
    }
  }
  function sorted(rows) {
    if (!sortKey) return rows;  // the server's order: failing first, then active, ...
    var keyed = rows.map(function (r, i) { return [sortValue(r), i, r]; });
    keyed.sort(function (a, b) {
      if (a[0] === null || b[0] === null) {  // missing values last, either way
        return a[0] === b[0] ? a[1] - b[1] : (a[0] === null ? 1 : -1);
      }
      var c = typeof a[0] === "number" && typeof b[0] === "number" ? a[0] - b[0]
        : String(a[0]).localeCompare(String(b[0]), undefined, {numeric: true});
      return (descending ? -c : c) || a[1] - b[1];
    });
    return keyed.map(function (k) { return k[2]; });
  }
  function markHeaders() {
    Array.prototype.forEach.call(table.tHead.querySelectorAll("button"), function (b) {
      b.parentNode.setAttribute("aria-sort", b.dataset.sort !== sortKey ? "none"
        : descending ? "descending" : "ascending");
    });
  }
  function keepInUrl() {
    var p = new URLSearchParams();
    if (filter.value) p.set("q", filter.value);
    if (sortKey) { p.set("sort", sortKey); p.set("order", descending ? "desc" : "asc"); }
    var search = p.toString();
    history.replaceState(null, "", location.pathname + (search ? "?" + search : ""));
  }
  function render(data) {
    last = data;
    var body = document.createElement("tbody");
    sorted(data.targets).forEach(function (r) { body.appendChild(row(r, data.generated_at)); });
    if (!data.targets.length) {
      var td = el("td", "No targets match.");
      td.colSpan = table.tHead.rows[0].cells.length;
      body.appendChild(el("tr")).appendChild(td);
    }
    table.replaceChild(body, table.tBodies[0]);
    markHeaders();
    var c = data.counts;
    document.getElementById("summary").textContent = [c.total + " targets", c.active + " active",
      c.failing + " failing", c.stalled + " stalled", c.failed + " failed"].join(" \\u00b7 ");
    document.getElementById("note").textContent = data.targets.length < c.matched
      ? "Showing the first " + data.targets.length + " of " + c.matched +
        " targets; filter to narrow, or use /api/targets." : "";
    table.dataset.source = "api";
    table.dataset.updated = String(data.generated_at);
  }
  var pending = null;
  function load() {
    var q = encodeURIComponent(filter.value);
    fetch("api/targets?limit=" + cap + "&q=" + q, {cache: "no-store"})
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(render)
      .catch(function (e) {
        document.getElementById("note").textContent = "refresh failed: " + e;
      });
  }
  table.tHead.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-sort]");
    if (!button) return;
    if (sortKey === button.dataset.sort) descending = !descending;
    else { sortKey = button.dataset.sort; descending = false; }
    keepInUrl();
    if (last) render(last); else markHeaders();
  });
  filter.addEventListener("input", function () {
    keepInUrl();
    clearTimeout(pending);
    pending = setTimeout(load, 250);
  });
  markHeaders();
  load();
  setInterval(load, refresh);
})();
"""

_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; connect-src 'self'; base-uri 'none'; "
    "form-action 'none'; script-src 'sha256-"
    + base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode()
    + "'"
)

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>scrapejobs-exporter</title><style>{style}</style></head>
<body><header><h1>scrapejobs-exporter</h1><p>Version {version}</p>
<nav><a href="{metrics}">Metrics</a><a href="api/targets">JSON</a><a href="healthz">Health</a>
<a href="readyz">Readiness</a></nav></header>
<dl id="config">{config}</dl>
<p id="summary">{summary}</p>
<input id="filter" type="search" placeholder="Filter by id, collector, status, error"
 aria-label="Filter targets" value="{query}"> <span id="note" class="note">{note}</span>
<table id="targets" data-cap="{cap}" data-refresh="{refresh}" data-source="server"
 data-grafana="{grafana}">
<thead><tr>{header}</tr></thead>
<tbody>
{rows}
</tbody></table>
<script>{script}</script>
</body></html>
"""
