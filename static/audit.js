// Audit log behaviour (no inline script under the CSP). An enhancement only: the page works as
// a plain form and links without it. Back/forward restores the list from htmx's history
// cache; put the filter fields back to what that URL says, so the form and the list agree.
(function () {
  "use strict";
  function syncFilters() {
    var form = document.getElementById("audit-filters");
    if (!form) return;
    var params = new URLSearchParams(window.location.search);
    Array.prototype.forEach.call(form.elements, function (el) {
      if (!el.name) return;
      if (el.tagName === "SELECT") {
        el.value = params.get(el.name) || "";
        if (el.selectedIndex < 0) el.selectedIndex = 0;
      } else if (el.type === "search" || el.type === "text" || el.type === "date") {
        el.value = params.get(el.name) || "";
      }
    });
  }
  document.addEventListener("htmx:historyRestore", syncFilters);
  window.addEventListener("popstate", function () { window.setTimeout(syncFilters, 0); });
})();
