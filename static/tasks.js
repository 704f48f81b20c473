// Task list and board behaviour (no inline script under the CSP); everything here is an
// enhancement: the pages work as plain forms and links without it.
(function () {
  "use strict";

  // Back/forward restores from htmx's history cache: put the filters back to what the URL says.
  function syncFilters() {
    var form = document.getElementById("task-filters");
    if (!form) return;
    var params = new URLSearchParams(window.location.search);
    Array.prototype.forEach.call(form.elements, function (el) {
      if (!el.name) return;
      if (el.tagName === "SELECT") {
        el.value = params.get(el.name) || "";
        if (el.selectedIndex < 0) el.selectedIndex = 0;
      } else if (el.type === "checkbox") {
        el.checked = params.get(el.name) === el.value;
      } else if (el.type === "search") {
        el.value = params.get(el.name) || "";
      }
    });
  }
  document.addEventListener("htmx:historyRestore", syncFilters);
  window.addEventListener("popstate", function () { window.setTimeout(syncFilters, 0); });

  // "Select all" on the page, and the size of the selection for the bulk form.
  function updateCount() {
    var label = document.querySelector("[data-selected-count]");
    if (!label) return;
    var n = document.querySelectorAll('input[name="ids"][form="bulk-form"]:checked').length;
    label.textContent = n ? "With the " + n + " selected task" + (n === 1 ? "" : "s") + ":" : "With the selected tasks:";
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

  // The board: drag a card onto another column to move it (the same status form as the select).
  document.addEventListener("dragstart", function (event) {
    var card = event.target.closest && event.target.closest(".task-card[data-task]");
    if (card && card.querySelector("form.move")) event.dataTransfer.setData("text/plain", card.id);
  });
  document.addEventListener("dragover", function (event) {
    if (event.target.closest && event.target.closest(".board-column")) event.preventDefault();
  });
  document.addEventListener("drop", function (event) {
    var column = event.target.closest && event.target.closest(".board-column");
    var card = column && document.getElementById(event.dataTransfer.getData("text/plain"));
    if (!card) return;
    event.preventDefault();
    var select = card.querySelector("form.move select");
    if (select && select.value !== column.getAttribute("data-status")) {
      select.value = column.getAttribute("data-status");
      select.dispatchEvent(new Event("change", { bubbles: true }));
    }
  });
})();

// The task form: offer only the devices of the chosen site (the server refuses any other anyway).
(function () {
  "use strict";
  function narrow() {
    var site = document.getElementById("site_id");
    var device = document.getElementById("device_id");
    if (!site || !device) return;
    Array.prototype.forEach.call(device.querySelectorAll("optgroup"), function (group) {
      var options = group.querySelectorAll("option[data-site]");
      var mine = options.length && options[0].getAttribute("data-site") === site.value;
      group.hidden = !mine;
      group.disabled = !mine;
    });
    var chosen = device.options[device.selectedIndex];
    if (chosen && chosen.getAttribute("data-site") && chosen.getAttribute("data-site") !== site.value) device.value = "";
  }
  document.addEventListener("change", function (event) {
    if (event.target.id === "site_id") narrow();
  });
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", narrow);
  else narrow();
})();
