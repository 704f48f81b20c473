// Progress on submit, for plain forms (htmx forms use hx-disabled-elt and .htmx-request): once a
// POST form is submitted its submit button is disabled and marked aria-busy, with a spinner and
// "Saving…" beside it until the next page arrives; a second submit in the meantime is ignored. The page shown again by the
// back button (bfcache) gets its buttons back. An enhancement only: without it forms still post.
(function () {
  "use strict";
  var BUSY_TEXT = "Saving…";

  function restore(form) {
    delete form.dataset.submitting;
    form.removeAttribute("aria-busy");
    document.querySelectorAll("button.busy").forEach(function (button) {
      if (button.form !== form) return;
      button.disabled = false;
      button.removeAttribute("aria-busy");
      button.classList.remove("busy");
      var label = button.nextElementSibling;
      if (label && label.classList.contains("busy-label")) label.remove();
    });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (event.defaultPrevented) return; // htmx (or another script) handles this one
    if ((form.getAttribute("method") || "get").toLowerCase() !== "post") return;
    if (form.dataset.submitting) {
      event.preventDefault(); // a double click: the first request is on its way
      return;
    }
    form.dataset.submitting = "true";
    form.setAttribute("aria-busy", "true");
    var button = event.submitter || form.querySelector('button[type="submit"], button:not([type])');
    if (!button || button.tagName !== "BUTTON") return;
    // Disabled after the browser has read the form: a disabled submitter would drop its name=value.
    window.setTimeout(function () {
      button.classList.add("busy");
      button.setAttribute("aria-busy", "true");
      var label = document.createElement("span");
      label.className = "busy-label";
      label.setAttribute("role", "status");
      label.textContent = BUSY_TEXT;
      button.insertAdjacentElement("afterend", label);
      button.disabled = true;
    }, 0);
  });

  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) return;
    document.querySelectorAll("form[data-submitting]").forEach(restore);
  });
})();
