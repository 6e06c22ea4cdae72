// The dashboard: reads and drives the admin API with the session cookie. Everything it
// shows goes in as text (textContent), never as markup.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { filters: {}, next: null, detail: null };

async function api(path, options = {}) {
  const response = await fetch(path, {
    credentials: "same-origin",
    headers: options.body ? { "content-type": "application/json" } : {},
    ...options,
  });
  if (response.status === 401) {
    window.location.assign("/");
    throw new Error("signed out");
  }
  const body = await response.json();
  if (!response.ok) throw new Error(body.detail || body.error || String(response.status));
  return body;
}

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "–" : String(text);
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function button(label, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.addEventListener("click", onClick);
  return b;
}

function when(epoch) {
  return epoch ? new Date(epoch * 1000).toISOString().replace(".000Z", "Z") : "–";
}

function ago(seconds) {
  if (seconds === null || seconds === undefined) return "never";
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  return `${Math.round(seconds / 3600)} h`;
}

function notice(text, failed = false) {
  const p = $("notice");
  p.textContent = text;
  p.className = failed ? "failed" : "ok";
}

function replace(tbody, rows) {
  tbody.replaceChildren(...rows);
}

async function loadOverview() {
  const o = await api("/admin/overview");
  const kafka = $("kafka");
  kafka.textContent = o.kafka.ok ? `Kafka up · ${o.kafka.published} published`
    : `Kafka down: ${o.kafka.error || "unknown"}`;
  kafka.className = `pill ${o.kafka.ok ? "healthy" : "unhealthy"}`;
  const b = o.buffer;
  const fill = b.max_bytes ? Math.round((100 * b.bytes) / b.max_bytes) : 0;
  $("buffer").textContent = `buffer ${b.events} event(s), ${fill}% full,` +
    ` oldest ${ago(b.oldest_age_seconds)}`;
  $("buffer").className = `pill ${b.has_room ? "healthy" : "unhealthy"}`;
  $("window").textContent = `(last ${Math.round(o.window_seconds / 60)} min)`;
  $("updated").textContent = `updated ${when(o.at)}`;
  replace($("connectors"), o.connectors.map((c) => {
    const tr = document.createElement("tr");
    tr.dataset.connector = c.id;
    cell(tr, c.id);
    cell(tr, `${c.type} (${c.kind})`);
    const health = c.paused ? { status: "paused", reason: "answered 503 with Retry-After" }
      : c.health || { status: "unknown", reason: "not evaluated yet" };
    const h = cell(tr, health.status, `health ${health.status}`);
    h.title = health.reason;
    cell(tr, c.requests_per_minute);
    cell(tr, c.accepted_ratio === null ? null : `${Math.round(c.accepted_ratio * 100)}%`);
    const e = c.last_error;
    cell(tr, e ? `${e.reason || e.outcome} · ${when(e.at)}` : null);
    const actions = cell(tr, "");
    if (c.kind === "webhook" || c.kind === "push") {
      const action = c.paused ? "resume" : "pause";
      actions.appendChild(button(action, () => act(
        api(`/admin/connectors/${encodeURIComponent(c.id)}/${action}`, { method: "POST" }),
        `${c.id}: ${action}d`)));
    }
    return tr;
  }));
  const pollers = Object.entries(o.pollers);
  if (!pollers.length) {
    const tr = document.createElement("tr");
    cell(tr, "no poller runs").colSpan = 5;
    replace($("pollers"), [tr]);
  } else replace($("pollers"), pollers.map(([id, p]) => {
    const tr = document.createElement("tr");
    cell(tr, id);
    cell(tr, ago(p.freshness_seconds));
    cell(tr, when(p.last_success));
    cell(tr, p.events_polled);
    cell(tr, p.last_error ? `${p.last_error} · ${when(p.last_error_at)}` : null);
    return tr;
  }));
}

function query(filters, extra = {}) {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries({ ...filters, ...extra })) {
    if (v !== "" && v !== null && v !== undefined) params.set(k, String(v));
  }
  return params.toString();
}

function deliveryRow(d) {
  const tr = document.createElement("tr");
  tr.className = "clickable";
  tr.dataset.requestId = d.request_id;
  cell(tr, when(d.at));
  cell(tr, d.request_id, "mono");
  cell(tr, d.connector_id);
  cell(tr, d.outcome, `outcome ${d.outcome}`);
  cell(tr, d.reason);
  cell(tr, d.event_ids.length);
  tr.addEventListener("click", () => showDetail(d.request_id).catch(failed));
  return tr;
}

async function loadDeliveries(more = false) {
  const extra = more && state.next ? { before: state.next } : {};
  const page = await api(`/admin/deliveries?${query(state.filters, extra)}`);
  const rows = page.deliveries.map(deliveryRow);
  if (more) $("deliveries").append(...rows);
  else replace($("deliveries"), rows);
  state.next = page.next;
  $("more").hidden = !page.next;
}

async function loadDeadLetters() {
  const page = await api(`/admin/deliveries?outcome=dead_lettered&limit=50`);
  replace($("dead"), page.deliveries.map((d) => {
    const tr = document.createElement("tr");
    tr.dataset.requestId = d.request_id;
    cell(tr, when(d.at));
    cell(tr, d.request_id, "mono");
    cell(tr, d.connector_id);
    cell(tr, d.reason);
    cell(tr, "").appendChild(button("redrive", () => redrive([d.request_id])));
    return tr;
  }));
}

async function showDetail(requestId) {
  const d = await api(`/admin/deliveries/${encodeURIComponent(requestId)}`);
  state.detail = requestId;
  $("detail").hidden = false;
  $("detail-id").textContent = requestId;
  replace($("journey"), d.journey.map((s) => {
    const li = document.createElement("li");
    li.textContent = s.step === "published"
      ? `published ${s.event_id} → ${s.topic} [${s.partition}] @ ${s.offset}, ${when(s.at)}`
      : `${s.step}, ${when(s.at)}`;
    return li;
  }));
  replace($("outcomes"), d.outcomes.map((o) => {
    const li = document.createElement("li");
    li.textContent = `${o.outcome}${o.reason ? ` (${o.reason})` : ""}, ${when(o.at)}` +
      (o.event_ids.length ? `: ${o.event_ids.join(", ")}` : "");
    return li;
  }));
  $("headers").textContent = Object.entries(d.headers).map(([k, v]) => `${k}: ${v}`)
    .join("\n");
  $("body").textContent = d.body !== undefined ? d.body : `(base64) ${d.body_base64}`;
  $("detail").scrollIntoView({ block: "nearest" });
}

function reported(r) {
  const skipped = r.skipped.map((s) => `${s.request_id}: ${s.reason}`).join("; ");
  const events = r.replayed.reduce((n, x) => n + x.event_ids.length, 0);
  return `${r.replayed.length} delivery(ies), ${events} event(s) published again` +
    (skipped ? `; skipped ${skipped}` : "");
}

async function act(promise, text) {
  try {
    const result = await promise;
    notice(result && result.replayed ? reported(result) : text);
    await refresh();
  } catch (e) {
    failed(e);
  }
}

function redrive(requestIds) {
  return act(api("/admin/dlq/redrive", {
    method: "POST", body: JSON.stringify({ request_ids: requestIds }),
  }), "redriven");
}

function failed(e) {
  notice(`failed: ${e.message}`, true);
}

async function refresh() {
  await Promise.all([loadOverview(), loadDeliveries(), loadDeadLetters()]);
}

document.addEventListener("DOMContentLoaded", () => {
  $("filters").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = new FormData($("filters"));
    const filters = Object.fromEntries(form.entries());
    if (filters.since) filters.since = Date.now() / 1000 - Number(filters.since);
    state.filters = filters;
    loadDeliveries().catch(failed);
  });
  $("more").addEventListener("click", () => loadDeliveries(true).catch(failed));
  $("replay").addEventListener("click", () => act(api("/admin/replay", {
    method: "POST", body: JSON.stringify({ request_ids: [state.detail] }),
  }), "replayed"));
  $("redrive-all").addEventListener("click", () => {
    const ids = [...$("dead").querySelectorAll("tr")].map((tr) => tr.dataset.requestId);
    if (ids.length) redrive(ids);
  });
  refresh().catch(failed);
  setInterval(() => loadOverview().catch(failed), 5000);
});
