// The Copy button of a secret shown once (templates/_ui.html `secret`, the backup codes): the clipboard when the
// browser allows it, otherwise the text is selected for Ctrl+C. The outcome is said in the live
// region beside it. Without JavaScript the button is hidden and the field can be selected by hand.
(function () {
  "use strict";
  function say(button, text) {
    var status = document.getElementById(button.getAttribute("aria-describedby"));
    if (status) status.textContent = text;
  }
  function textOf(field) { return "value" in field && field.tagName !== "UL" ? field.value : field.innerText.trim(); }
  function selectIn(field) {
    if (typeof field.select === "function") {
      field.focus();
      field.select();
      return;
    }
    var range = document.createRange();
    range.selectNodeContents(field);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-copy]");
    if (!button) return;
    var field = document.getElementById(button.getAttribute("data-copy"));
    if (!field) return;
    var fallback = function () {
      selectIn(field);
      var copied = false;
      try { copied = document.execCommand("copy"); } catch (e) { copied = false; }
      say(button, copied ? "Copied" : "Selected: press Ctrl+C (⌘C) to copy");
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(textOf(field)).then(function () { say(button, "Copied"); }, fallback);
    } else {
      fallback();
    }
  });
})();
