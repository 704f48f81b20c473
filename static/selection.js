// Lists with a bulk form (devices, tasks), without inline script under the CSP: "select all" on
// the page, the bulk bar shown only while rows are selected with their count ("3 selected") and a
// button that clears the selection, and a bulk action that comes back to the list as it is now.
// An enhancement only: without JavaScript the bulk form is always shown and works as a plain form.
(function () {
  "use strict";
  var BOXES = 'input[name="ids"][form="bulk-form"]';

  function update() {
    var bar = document.getElementById("bulk-form");
    var label = document.querySelector("[data-selected-count]");
    if (!bar || !label) return;
    var n = document.querySelectorAll(BOXES + ":checked").length;
    var text = n + " selected";
    if (label.textContent !== text) label.textContent = text;
    var had = bar.classList.contains("has-selection");
    bar.classList.toggle("has-selection", n > 0);
    var all = document.querySelector("[data-select-all]");
    if (all) {
      var total = document.querySelectorAll(BOXES).length;
      all.checked = n > 0 && n === total;
      all.indeterminate = n > 0 && n < total;
    }
    // The bar hides under the focus (cleared, or the list swapped after an action): the focus
    // goes to the list rather than to the page's start.
    if (had && !n && (bar.contains(document.activeElement) || document.activeElement === document.body)) {
      var list = document.querySelector(".table-wrap") || document.getElementById("main");
      if (list) list.focus();
    }
  }
  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.matches && target.matches("[data-select-all]")) {
      document.querySelectorAll(BOXES).forEach(function (box) { box.checked = target.checked; });
    }
    if (target.matches && (target.matches("[data-select-all]") || target.matches('input[name="ids"]'))) update();
  });
  document.addEventListener("click", function (event) {
    if (!(event.target.closest && event.target.closest("[data-clear-selection]"))) return;
    document.querySelectorAll(BOXES + ":checked").forEach(function (box) { box.checked = false; });
    update();
  });
  document.addEventListener("htmx:afterSwap", update);
  document.addEventListener("htmx:afterSettle", update);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", update);
  else update();
  // Back from another page (bfcache), the boxes keep their state: count them again.
  window.addEventListener("pageshow", update);

  // After a bulk action, come back to the list as it is now (htmx may have changed the URL).
  document.addEventListener("submit", function (event) {
    var next = event.target.querySelector && event.target.querySelector("[data-current-url]");
    if (next) next.value = window.location.pathname + window.location.search;
  });
  // htmx reads the form in its own submit handler, before the listener above: set it here too.
  document.addEventListener("htmx:configRequest", function (event) {
    var form = event.detail.elt;
    var next = form && form.querySelector && form.querySelector("[data-current-url]");
    if (!next) return;
    next.value = window.location.pathname + window.location.search;
    if (typeof event.detail.parameters.set === "function") event.detail.parameters.set("next", next.value);
    else event.detail.parameters.next = next.value;
  });
})();
