"use strict";
// An app's routes: path prefixes with port, protocol, weight (traffic split
// within a prefix) and strip_prefix. Uses call, el, $, showError and
// current from app.js.

async function loadRoutes() {
  const { routes } = await call("GET", `/api/apps/${current.id}/routes`);
  $("#route-list").replaceChildren(...routes.map((r) => {
    const weight = el("input", { type: "number", min: 0, max: 100, value: r.weight, className: "narrow" });
    weight.setAttribute("aria-label", `Weight of ${r.path_prefix} → ${r.port}`);
    const save = el("button", { className: "link", textContent: "set weight" });
    save.addEventListener("click", async () => {
      try {
        await call("PATCH", `/api/apps/${current.id}/routes/${r.id}`, { weight: Number(weight.value) });
        showError(null);
      } catch (err) { showError(err); }
      await loadRoutes();
    });
    const rm = el("button", { className: "link", textContent: "remove" });
    rm.addEventListener("click", async () => {
      if (!confirm(`Remove the route ${r.path_prefix} → ${r.protocol}:${r.port}?`)) return;
      try { await call("DELETE", `/api/apps/${current.id}/routes/${r.id}`); showError(null); } catch (err) { showError(err); }
      await loadRoutes();
    });
    return el("li", { className: "route" }, el("code", { textContent: r.path_prefix }), ` → ${r.protocol}:${r.port}`,
      r.strip_prefix ? " (prefix stripped) " : " ", weight, " ", save, " ", rm);
  }));
}

function routesOpenApp() {
  $("#route-form input[name=port]").value = current.port || "";
  loadRoutes().catch(showError);
}

document.addEventListener("DOMContentLoaded", () => {
  $("#route-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    const body = { path_prefix: f.get("path_prefix"), protocol: f.get("protocol"), strip_prefix: f.get("strip_prefix") === "on" };
    if (f.get("port")) body.port = Number(f.get("port"));
    if (f.get("weight")) body.weight = Number(f.get("weight"));
    try {
      await call("POST", `/api/apps/${current.id}/routes`, body);
      e.target.reset(); showError(null);
      routesOpenApp();
    } catch (err) { showError(err); }
  });
});
