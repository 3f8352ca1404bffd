// @ts-check
// An app's persistent volumes and scheduled jobs (its Volumes and
// Scheduled jobs tabs).
import { $, call, el, showError, team } from "./app.js";
import { current } from "./apppage.js";

const when = (t) => (t ? new Date(t).toLocaleString() : "—");

function mb(bytes) { return (bytes / (1 << 20)).toFixed(1) + " MB"; }

// used is a volume's (or a copy's) measured use.
function used(v, size) { return v.used_at ? `${mb(v.used_bytes)} of ${size} MB used` : `${size} MB`; }

// removal says when released data goes.
function removal(v) { return `released · data removed after ${when(v.remove_after)}`; }

// copies lists a per-instance volume's copies: one per instance, and the
// released ones until their data is removed.
function copies(v) {
  return el("ul", { className: "list" }, ...(v.instances || []).map((c) => el("li", { className: "volume-copy" },
    el("code", { textContent: c.podman_name }), ` instance ${c.slot + 1} · ${used(c, v.size_mb)}`,
    c.released_at ? ` · ${removal(c)}` : c.worker_id ? ` · on worker ${c.worker_id}` : " · created with the instance's next deploy")));
}

export async function loadVolumes() {
  const { volumes, grace_seconds: grace } = await call("GET", `/api/apps/${current.id}/volumes`);
  $("#volume-grace").textContent = `A volume removed here, a copy of a scaled-down instance, or the app's volumes when the app is deleted, keep their data for ${Math.round(grace / 3600)} hours.`;
  $("#volume-list").replaceChildren(...volumes.map((v) => {
    if (v.released_at) {
      return el("li", { className: "volume-released" }, el("code", { textContent: v.mount_path }), ` ${v.name} · ${used(v, v.size_mb)} · ${removal(v)}`);
    }
    const rm = el("button", { className: "link", textContent: "remove" });
    rm.addEventListener("click", async () => {
      if (!confirm(`Detach the volume ${v.name}? Its data is removed after the grace period.`)) return;
      try {
        const r = await call("DELETE", `/api/apps/${current.id}/volumes/${v.id}`);
        showError(null);
        alert(`The data of ${v.name} is removed after ${when(r.remove_after)}.`);
      } catch (err) { showError(err); }
      await loadVolumes();
    });
    if (v.per_instance) {
      return el("li", {}, el("code", { textContent: v.mount_path }), ` ${v.name} · one per instance, ${v.size_mb} MB each · ${mb(v.used_bytes)} used in all `, rm, copies(v));
    }
    return el("li", {}, el("code", { textContent: v.mount_path }), ` ${v.name} · ${used(v, v.size_mb)}`,
      v.worker_id ? ` · on worker ${v.worker_id} ` : " · mounted from the next deploy ", rm);
  }));
}

/** loadTeamVolumes lists the team's released volumes (deleted apps' too) and when their data goes. */
export async function loadTeamVolumes() {
  const { volumes } = await call("GET", `/api/teams/${team}/volumes`);
  const released = [];
  for (const v of volumes) {
    if (v.released_at) released.push(el("li", {}, el("code", { textContent: v.mount_path }), ` ${v.name} of ${v.app_slug} · ${used(v, v.size_mb)} · ${removal(v)}`));
    else for (const c of v.instances || []) {
      if (c.released_at) released.push(el("li", {}, el("code", { textContent: c.podman_name }), ` ${v.name} of ${v.app_slug}, instance ${c.slot + 1} · ${used(c, v.size_mb)} · ${removal(c)}`));
    }
  }
  $("#team-volumes").replaceChildren(...(released.length ? released : [el("li", { className: "muted", textContent: "No released volume is waiting for removal." })]));
}

function runRow(r) {
  return el("tr", {},
    el("td", { textContent: when(r.scheduled_at) }),
    el("td", {}, el("span", { className: `badge ${r.state}`, textContent: r.state })),
    el("td", { textContent: r.exit_code ?? "" }),
    el("td", { textContent: r.duration_ms != null ? `${(r.duration_ms / 1000).toFixed(1)} s` : "" }),
    el("td", {}, r.error ? el("div", { textContent: r.error }) : "", r.log_tail ? el("pre", { className: "log", textContent: r.log_tail }) : ""));
}

async function showRuns(job) {
  const { runs } = await call("GET", `/api/apps/${current.id}/cron/${job.id}/runs?limit=20`);
  $("#cron-runs-title").textContent = `Runs of ${job.name}`;
  $("#cron-runs tbody").replaceChildren(...runs.map(runRow));
  $("#cron-runs-box").hidden = false;
}

/** cronOpenApp shows the Scheduled jobs tab. */
export async function cronOpenApp() {
  $("#cron-runs-box").hidden = true;
  await loadCron();
}

async function loadCron() {
  const { cron_jobs: jobs } = await call("GET", `/api/apps/${current.id}/cron`);
  $("#cron-list").replaceChildren(...jobs.map((j) => {
    const runs = el("button", { className: "link", textContent: "runs" });
    runs.addEventListener("click", () => showRuns(j).catch(showError));
    const now = el("button", { className: "link", textContent: "run now" });
    now.addEventListener("click", async () => {
      try { await call("POST", `/api/apps/${current.id}/cron/${j.id}/runs`); showError(null); } catch (err) { showError(err); }
      await showRuns(j).catch(showError);
    });
    const toggle = el("button", { className: "link", textContent: j.enabled ? "pause" : "resume" });
    toggle.addEventListener("click", async () => {
      try { await call("PATCH", `/api/apps/${current.id}/cron/${j.id}`, { enabled: !j.enabled }); showError(null); } catch (err) { showError(err); }
      await loadCron();
    });
    const rm = el("button", { className: "link", textContent: "remove" });
    rm.addEventListener("click", async () => {
      if (!confirm(`Remove the scheduled job ${j.name} and its runs?`)) return;
      try { await call("DELETE", `/api/apps/${current.id}/cron/${j.id}`); showError(null); } catch (err) { showError(err); }
      await loadCron();
    });
    const last = j.last_run ? ` · last run ${when(j.last_run.scheduled_at)}: ${j.last_run.state}` : "";
    return el("li", {}, el("code", { textContent: `${j.schedule} (${j.timezone})` }), ` ${j.name}: `,
      el("code", { textContent: j.command.join(" ") }), j.enabled ? ` · next ${when(j.next_run_at)}` : " · paused", last, " ",
      runs, " ", now, " ", toggle, " ", rm);
  }));
}

// parseCommand reads a JSON array of arguments, or words separated by
// spaces.
function parseCommand(s) {
  s = s.trim();
  if (s.startsWith("[")) return JSON.parse(s);
  return s.split(/\s+/).filter(Boolean);
}

document.addEventListener("DOMContentLoaded", () => {
  $("#volume-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    try {
      await call("POST", `/api/apps/${current.id}/volumes`, { name: f.get("name"), mount_path: f.get("mount_path"), size_mb: Number(f.get("size_mb")),
        per_instance: f.get("per_instance") === "on" });
      e.target.reset(); showError(null);
      await loadVolumes();
    } catch (err) { showError(err); }
  });
  $("#cron-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    try {
      const body = { name: f.get("name"), schedule: f.get("schedule"), timezone: f.get("timezone") || "UTC", command: parseCommand(f.get("command")) };
      if (f.get("timeout_s")) body.timeout_s = Number(f.get("timeout_s"));
      await call("POST", `/api/apps/${current.id}/cron`, body);
      e.target.reset(); showError(null);
      await loadCron();
    } catch (err) { showError(err); }
  });
});
