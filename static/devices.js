// Device list and import behaviour (no inline script under the CSP). Works with htmx 2;
// everything here is an enhancement: the pages work as plain forms and links without it.
(function () {
  "use strict";

  // Back/forward keeps the filter form in step with the URL: static/urlsync.js.

  // "Select all", the selection's count and the bulk form's way back: static/selection.js.

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
