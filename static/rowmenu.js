// Row actions in a "…" menu (templates/_ui.html `row_menu`), the WAI-ARIA menu button pattern:
// Enter, Space or ArrowDown on the button opens the menu on its first item (ArrowUp: the last),
// arrows move and wrap, Home/End jump, Escape closes it with the focus back on the button, Tab
// closes it. The menu is placed in the window (fixed), so a table's scrolling box never clips it.
// Without JavaScript the items show in place as ordinary buttons and links.
(function () {
  "use strict";
  var open = null; // the open menu's button

  function menuOf(button) { return document.getElementById(button.getAttribute("aria-controls")); }
  function items(menu) { return Array.prototype.slice.call(menu.querySelectorAll('[role="menuitem"]')); }

  function close(focusButton) {
    if (!open) return;
    var button = open, menu = menuOf(button);
    open = null;
    button.setAttribute("aria-expanded", "false");
    if (menu) menu.classList.remove("open");
    if (focusButton) button.focus();
  }

  function place(button, menu) {
    var r = button.getBoundingClientRect();
    menu.style.top = Math.round(r.bottom + 4) + "px";
    menu.style.left = "0px";
    var width = menu.offsetWidth, height = menu.offsetHeight;
    var left = Math.max(8, Math.min(r.right - width, window.innerWidth - width - 8));
    var top = r.bottom + 4 + height > window.innerHeight - 8 ? Math.max(8, r.top - 4 - height) : r.bottom + 4;
    menu.style.left = Math.round(left) + "px";
    menu.style.top = Math.round(top) + "px";
  }

  function show(button, at) {
    if (open && open !== button) close(false);
    var menu = menuOf(button);
    if (!menu) return;
    open = button;
    button.setAttribute("aria-expanded", "true");
    menu.classList.add("open");
    items(menu).forEach(function (item) { item.setAttribute("tabindex", "-1"); });
    place(button, menu);
    var list = items(menu);
    if (list.length) list[at === "last" ? list.length - 1 : 0].focus();
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-row-menu]");
    if (button) {
      if (open === button) close(true);
      else show(button, "first");
      return;
    }
    if (!open) return;
    var menu = menuOf(open);
    var item = event.target.closest && event.target.closest('[role="menuitem"]');
    if (item && menu && menu.contains(item)) {
      // Back on the button before the item acts: a dialog it opens returns the focus there.
      close(true);
      return;
    }
    if (!(menu && menu.contains(event.target))) close(false);
  }, true);

  document.addEventListener("keydown", function (event) {
    var button = event.target.closest && event.target.closest("[data-row-menu]");
    if (button && (event.key === "ArrowDown" || event.key === "ArrowUp")) {
      event.preventDefault();
      show(button, event.key === "ArrowUp" ? "last" : "first");
      return;
    }
    if (!open) return;
    var menu = menuOf(open);
    if (!menu || !menu.contains(event.target)) return;
    var list = items(menu), at = list.indexOf(document.activeElement), next = null;
    switch (event.key) {
      case "ArrowDown": next = (at + 1) % list.length; break;
      case "ArrowUp": next = (at - 1 + list.length) % list.length; break;
      case "Home": next = 0; break;
      case "End": next = list.length - 1; break;
      case "Escape": event.preventDefault(); event.stopPropagation(); close(true); return;
      case "Tab": close(false); return;
      case " ":
        if (document.activeElement.tagName === "A") { event.preventDefault(); document.activeElement.click(); }
        return;
      default: return;
    }
    event.preventDefault();
    list[next].focus();
  });

  window.addEventListener("resize", function () { close(false); });
  document.addEventListener("scroll", function () { if (open) place(open, menuOf(open)); }, true);
  document.addEventListener("htmx:beforeSwap", function () { if (open && !document.contains(open)) open = null; });
})();
