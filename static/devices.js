// Device list and import behaviour (no inline script under the CSP). Works with htmx 2;
// everything here is an enhancement: the pages work as plain forms and links without it.
(function () {
  "use strict";

  // Back/forward keeps the filter form in step with the URL: static/urlsync.js.

  // "Select all" on the current page, and a count of the selection for the bulk form.
  function updateCount() {
    var label = document.querySelector("[data-selected-count]");
    if (!label) return;
    var n = document.querySelectorAll('input[name="ids"][form="bulk-form"]:checked').length;
    label.textContent = n ? "With the " + n + " selected device" + (n === 1 ? "" : "s") + ":" : "With the selected devices:";
  }
  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.matches && target.matches("[data-select-all]")) {
      document.querySelectorAll('input[name="ids"][form="bulk-form"]').forEach(function (box) {
        box.checked = target.checked;
      });
    }
    if (target.matches && (target.matches("[data-select-all]") || target.matches('input[name="ids"]'))) updateCount();
  });
  document.addEventListener("htmx:afterSwap", updateCount);

  // After a bulk action, come back to the list as it is now (htmx may have changed the URL).
  document.addEventListener("submit", function (event) {
    var next = event.target.querySelector && event.target.querySelector("[data-current-url]");
    if (next) next.value = window.location.pathname + window.location.search;
  });

  // An import refused for its size (413) comes back as an error message: show it where the
  // report goes (htmx swaps only successes and 422 here).
  document.addEventListener("htmx:responseError", function (event) {
    var report = document.getElementById("import-report");
    if (report && event.detail.xhr.status === 413) {
      report.innerHTML = event.detail.xhr.responseText;
    }
  });

  // Upload progress of a CSV import.
  document.addEventListener("htmx:xhr:progress", function (event) {
    var bar = document.querySelector("[data-upload-progress]");
    var label = document.querySelector("[data-upload-label]");
    if (!bar || !event.detail.lengthComputable) return;
    var percent = Math.round((event.detail.loaded / event.detail.total) * 100);
    bar.value = percent;
    if (label) label.textContent = percent < 100 ? "Uploading… " + percent + "%" : "Checking and importing…";
  });
})();
