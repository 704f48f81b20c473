// Lists with a bulk form (devices, tasks), without inline script under the CSP: "select all" on
// the page, the size of the selection in the bulk form's label (data-selected-count="device"
// names what is counted), and a bulk action that comes back to the list as it is now. An
// enhancement only: the bulk forms work without it.
(function () {
  "use strict";
  var BOXES = 'input[name="ids"][form="bulk-form"]';

  function updateCount() {
    var label = document.querySelector("[data-selected-count]");
    if (!label) return;
    var noun = label.getAttribute("data-selected-count") || "item";
    var n = document.querySelectorAll(BOXES + ":checked").length;
    label.textContent = n ? "With the " + n + " selected " + noun + (n === 1 ? "" : "s") + ":"
                          : "With the selected " + noun + "s:";
  }
  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.matches && target.matches("[data-select-all]")) {
      document.querySelectorAll(BOXES).forEach(function (box) { box.checked = target.checked; });
    }
    if (target.matches && (target.matches("[data-select-all]") || target.matches('input[name="ids"]'))) updateCount();
  });
  document.addEventListener("htmx:afterSwap", updateCount);

  // After a bulk action, come back to the list as it is now (htmx may have changed the URL).
  document.addEventListener("submit", function (event) {
    var next = event.target.querySelector && event.target.querySelector("[data-current-url]");
    if (next) next.value = window.location.pathname + window.location.search;
  });
})();
