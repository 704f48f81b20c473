// Behaviour shared by every page (no inline script under the CSP). Each piece is an
// enhancement: without JavaScript the menu is open, dialogs show in place as plain forms,
// outcomes arrive as flash messages and limits are checked by the server.
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  // On a phone the sidebar is a drawer behind the menu button: open, it takes the focus and
  // the page behind it is inert; Escape, a click outside or a wider window close it. The
  // organization menu opens from its button.
  var FOCUSABLE = 'a[href], button:not([disabled]), summary, input:not([type="hidden"]), select, [tabindex]:not([tabindex="-1"])';
  function setOpen(button, open) {
    var target = document.getElementById(button.getAttribute("aria-controls"));
    if (!target) return;
    button.setAttribute("aria-expanded", open ? "true" : "false");
    if (!button.hasAttribute("data-menu-toggle")) {
      target.hidden = !open;
      return;
    }
    target.classList.toggle("open", open);
    var main = document.getElementById("main");
    // Only a drawer over the page (the phone layout) makes the page inert.
    if (main) main.inert = open && getComputedStyle(target).position === "fixed";
    if (open) {
      var first = target.querySelector(FOCUSABLE);
      if (first) first.focus();
    }
  }
  function openDrawerToggle() {
    return document.querySelector('[data-menu-toggle][aria-expanded="true"]');
  }
  if (window.matchMedia) {
    window.matchMedia("(min-width: 64rem)").addEventListener("change", function () {
      var toggle = openDrawerToggle();
      if (toggle) setOpen(toggle, false);
    });
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-menu-toggle], [data-popup-toggle]");
    if (button) {
      setOpen(button, button.getAttribute("aria-expanded") !== "true");
      return;
    }
    var drawer = openDrawerToggle();
    if (drawer) {
      var panel = document.getElementById(drawer.getAttribute("aria-controls"));
      var head = drawer.closest(".sidebar-head");
      if (panel && !panel.contains(event.target) && !(head && head.contains(event.target))) setOpen(drawer, false);
    }
    // A click elsewhere closes open popups.
    document.querySelectorAll('[data-popup-toggle][aria-expanded="true"]').forEach(function (b) {
      var popup = document.getElementById(b.getAttribute("aria-controls"));
      if (popup && !popup.contains(event.target)) setOpen(b, false);
    });
  });
  // Links that act as buttons (role="button") answer Space as buttons do, not only Enter.
  document.addEventListener("keydown", function (event) {
    if (event.key !== " " || !event.target.matches || !event.target.matches('a[role="button"]')) return;
    event.preventDefault();
    event.target.click();
  });

  // Arrow keys move through an open menu (Down/Up, Home/End); Down on its button opens it.
  var MOVES = { ArrowDown: 1, ArrowUp: -1, Home: "first", End: "last" };
  document.addEventListener("keydown", function (event) {
    if (!(event.key in MOVES)) return;
    var toggle = event.target.closest && event.target.closest("[data-popup-toggle]");
    var list = toggle ? document.getElementById(toggle.getAttribute("aria-controls"))
                      : event.target.closest && event.target.closest(".switcher-list");
    if (!list) return;
    if (toggle && list.hidden) {
      if (event.key !== "ArrowDown") return;
      setOpen(toggle, true);
    }
    var items = Array.prototype.slice.call(list.querySelectorAll("button, a[href]"));
    if (!items.length) return;
    event.preventDefault();
    var at = items.indexOf(document.activeElement), move = MOVES[event.key], next;
    if (move === "first") next = 0;
    else if (move === "last") next = items.length - 1;
    else if (at < 0) next = move > 0 ? 0 : items.length - 1;
    else next = (at + move + items.length) % items.length;
    items[next].focus();
  });
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    // The innermost first: an open organization menu, then the drawer around it.
    var popups = document.querySelectorAll('[data-popup-toggle][aria-expanded="true"]');
    popups.forEach(function (b) {
      setOpen(b, false);
      b.focus();
    });
    var drawer = openDrawerToggle();
    if (!popups.length && drawer) {
      setOpen(drawer, false);
      drawer.focus();
    }
  });

  // Confirmation dialogs: the trigger is a link to the dialog (which shows in place without
  // JavaScript); here it opens as a modal and Cancel closes it.
  document.addEventListener("click", function (event) {
    var trigger = event.target.closest && event.target.closest("[data-dialog]");
    if (trigger) {
      var dialog = document.getElementById(trigger.getAttribute("data-dialog"));
      if (dialog && dialog.showModal) {
        event.preventDefault();
        dialog.showModal();
        // Focus starts on Cancel, not on the destructive button: Enter by habit does no harm.
        var safe = dialog.querySelector("[data-dialog-close]");
        if (safe) safe.focus();
      }
      return;
    }
    var cancel = event.target.closest && event.target.closest("[data-dialog-close]");
    if (cancel) {
      var open = cancel.closest("dialog");
      if (open && open.open) {
        event.preventDefault();
        open.close();
      }
    }
  });
  // An htmx form inside a dialog: close the dialog once the request is sent.
  document.addEventListener("htmx:beforeRequest", function (event) {
    var dialog = event.target.closest && event.target.closest("dialog[open]");
    if (dialog) dialog.close();
  });

  // Toasts: any response may raise one with `HX-Trigger: {"toast": {"message": ..., "level": ...}}`.
  function toast(message, level) {
    var region = document.getElementById("toasts");
    if (!region || !message) return;
    var item = document.createElement("div");
    item.className = "toast toast-" + (level || "success");
    var text = document.createElement("p");
    text.textContent = message;
    var close = document.createElement("button");
    close.type = "button";
    close.setAttribute("aria-label", "Dismiss");
    close.textContent = "×";
    close.addEventListener("click", function () { item.remove(); });
    item.appendChild(text);
    item.appendChild(close);
    region.appendChild(item);
    window.setTimeout(function () { item.remove(); }, level === "error" ? 10000 : 6000);
  }
  document.addEventListener("toast", function (event) {
    var items = Array.isArray(event.detail && event.detail.items) ? event.detail.items : [event.detail || {}];
    items.forEach(function (d) { toast(d.message, d.level); });
  });

  // Character counters for fields with a limit: the server refuses what is too long, with a
  // message; nothing is cut silently.
  function count(input) {
    var counter = document.getElementById(input.getAttribute("data-counter"));
    var max = parseInt(input.getAttribute("data-maxlength"), 10);
    if (!counter || !max) return;
    var n = input.value.length;
    counter.textContent = n + " / " + max;
    counter.classList.toggle("over", n > max);
    input.setAttribute("aria-invalid", n > max ? "true" : input.getAttribute("data-invalid") || "false");
  }
  function countAll(root) {
    (root || document).querySelectorAll("[data-counter]").forEach(count);
  }
  document.addEventListener("input", function (event) {
    if (event.target.hasAttribute && event.target.hasAttribute("data-counter")) count(event.target);
  });
  document.addEventListener("htmx:afterSwap", function (event) { countAll(event.target); });
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", function () { countAll(); });
  else countAll();
})();
