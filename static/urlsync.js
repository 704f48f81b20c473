// Filter forms that follow the URL (no inline script under the CSP), shared by the device list,
// the task list and the audit log: mark the form with data-sync-url. Back/forward restores a list from htmx's
// history cache without its form; put each field back to what the URL now says, so the form
// and the list agree. An enhancement only: the pages work as plain forms and links without it.
(function () {
  "use strict";
  var TEXT = { search: true, text: true, date: true, number: true };

  function syncForms() {
    var params = new URLSearchParams(window.location.search);
    document.querySelectorAll("form[data-sync-url]").forEach(function (form) {
      Array.prototype.forEach.call(form.elements, function (el) {
        if (!el.name) return;
        if (el.tagName === "SELECT") {
          el.value = params.get(el.name) || "";
          if (el.selectedIndex < 0) el.selectedIndex = 0;
        } else if (TEXT[el.type]) {
          el.value = params.get(el.name) || "";
        } else if (el.type === "checkbox") {
          el.checked = params.getAll(el.name).indexOf(el.value) >= 0;
        }
      });
    });
  }
  document.addEventListener("htmx:historyRestore", syncForms);
  window.addEventListener("popstate", function () { window.setTimeout(syncForms, 0); });
})();
