// @ts-check
// Colour theme, applied before the page paints: the person's choice
// (localStorage "theme": light or dark) or else the system's setting,
// followed live. app.js wires the toggle.
(function () {
  "use strict";
  const media = window.matchMedia("(prefers-color-scheme: dark)");
  function apply() {
    let choice = "system";
    try { choice = localStorage.getItem("theme") || "system"; } catch (_) { /* storage off */ }
    const dark = choice === "dark" || (choice === "system" && media.matches);
    document.documentElement.dataset.theme = dark ? "dark" : "light";
    document.documentElement.dataset.themeChoice = choice;
    document.dispatchEvent(new CustomEvent("themechange"));
  }
  media.addEventListener("change", apply);
  /** @type {any} */ (window).themeApply = apply;
  apply();
})();
