// @ts-check
// An app's routes: path prefixes with port, protocol, weight (traffic split
// within a prefix) and strip_prefix.
import { $, call, el, onSubmit, showError, toast } from "./app.js";
import { current } from "./apppage.js";

async function loadRoutes() {
  const { routes } = await call("GET", `/api/apps/${current.id}/routes`);
  $("#route-list").replaceChildren(...routes.map((r) => {
    const weight = el("input", { type: "number", min: 0, max: 100, value: r.weight, className: "narrow" });
    weight.setAttribute("aria-label", `Weight of ${r.path_prefix} → ${r.port}`);
    const save = el("button", { type: "button", className: "link", textContent: "set weight" });
    save.addEventListener("click", async () => {
      try {
        await call("PATCH", `/api/apps/${current.id}/routes/${r.id}`, { weight: Number(weight.value) });
        toast(`Weight of ${r.path_prefix} set to ${weight.value}.`);
      } catch (err) { showError(err); }
      await loadRoutes();
    });
    const rm = el("button", { type: "button", className: "link danger", textContent: "remove" });
    rm.setAttribute("aria-label", `Remove the route ${r.path_prefix} → ${r.port}`);
    save.setAttribute("aria-label", `Set weight of ${r.path_prefix} → ${r.port}`);
    rm.addEventListener("click", async () => {
      if (!confirm(`Remove the route ${r.path_prefix} → ${r.protocol}:${r.port}?`)) return;
      try { await call("DELETE", `/api/apps/${current.id}/routes/${r.id}`); showError(null); } catch (err) { showError(err); }
      await loadRoutes();
    });
    return el("li", { className: "route" }, el("span", { className: "grow" }, el("code", { textContent: r.path_prefix }), ` → ${r.protocol}:${r.port}`,
      r.strip_prefix ? " (prefix stripped)" : ""), weight, save, rm);
  }));
}

export function routesOpenApp() {
  $("#route-form input[name=port]").value = current.port || "";
  loadRoutes().catch(showError);
}

document.addEventListener("DOMContentLoaded", () => {
  onSubmit($("#route-form"), async (f, form) => {
    const body = { path_prefix: f.path_prefix, protocol: f.protocol, strip_prefix: f.strip_prefix === "on" };
    if (f.port) body.port = Number(f.port);
    if (f.weight) body.weight = Number(f.weight);
    await call("POST", `/api/apps/${current.id}/routes`, body);
    form.reset();
    routesOpenApp();
    return `Route ${body.path_prefix} added.`;
  });
});
