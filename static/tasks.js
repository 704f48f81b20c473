// Task list and board behaviour (no inline script under the CSP); everything here is an
// enhancement: the pages work as plain forms and links without it.
(function () {
  "use strict";

  // Back/forward keeps the filter form in step with the URL: static/urlsync.js; "select all",
  // the selection's count and the bulk form's way back: static/selection.js.

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
