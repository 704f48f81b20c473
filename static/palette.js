// The command palette (Ctrl/Cmd+K) and the keyboard shortcuts (?, /, g then d/s/t/h), for
// templates/search/_palette.html. In an organization the server searches (the palette's
// data-search-url answers a fragment of result links); elsewhere the listed pages are filtered
// here. Arrows move through the results (roving focus: they stay plain links), Enter opens,
// Esc closes and gives focus back. Single-key shortcuts never fire while typing in a field.
(function () {
  "use strict";
  var palette = document.getElementById("palette");
  var shortcuts = document.getElementById("shortcuts");
  if (!palette || !palette.showModal) return;
  var input = null, results = null, status = null;  // once built (build())
  var url = palette.getAttribute("data-search-url");
  var DELAY = 120, G_WINDOW = 1500;
  var timer = 0, controller = null, shown = null, enterWhenReady = false, gAt = 0;
  var returnTo = new WeakMap();

  function editable(el) {
    if (!el || el.nodeType !== 1) return false;
    if (el.isContentEditable || el.tagName === "TEXTAREA" || el.tagName === "SELECT") return true;
    return el.tagName === "INPUT" &&
      !/^(button|submit|reset|checkbox|radio|range|color|file|image|hidden)$/i.test(el.type);
  }
  function links() {
    return Array.prototype.filter.call(results.querySelectorAll("a[href]"), function (a) {
      return !a.closest("[hidden]");
    });
  }
  function announce() {
    var n = links().length;
    status.textContent = n ? n + (n === 1 ? " result" : " results") : "No results";
  }
  function message(text) {
    var p = document.createElement("p");
    p.className = "palette-empty";
    p.textContent = text;
    results.replaceChildren(p);
  }
  function followFirst() {
    enterWhenReady = false;
    var first = links()[0];
    if (first) first.click();
  }

  // Outside an organization: the listed pages whose words start with every word typed.
  function filterHere(q) {
    var typed = q.toLowerCase().split(/\s+/).filter(Boolean);
    results.querySelectorAll("li").forEach(function (li) {
      var words = li.textContent.toLowerCase().replace(/-/g, " ").split(/\s+/);
      li.hidden = !typed.every(function (t) { return words.some(function (w) { return w.indexOf(t) === 0; }); });
    });
    results.querySelectorAll("section").forEach(function (s) { s.hidden = !s.querySelector("li:not([hidden])"); });
    var empty = results.querySelector(".palette-none");
    if (!links().length && !empty) {
      empty = document.createElement("p");
      empty.className = "palette-empty palette-none";
      empty.textContent = "No page matches.";
      results.appendChild(empty);
    } else if (links().length && empty) {
      empty.remove();
    }
    announce();
  }

  function search() {
    window.clearTimeout(timer);
    var q = input.value;
    if (!url) { filterHere(q); if (enterWhenReady) followFirst(); return; }
    if (q === shown && !controller) { if (enterWhenReady) followFirst(); return; }
    if (controller) controller.abort();
    var mine = controller = new AbortController();
    fetch(url + "?q=" + encodeURIComponent(q), {headers: {"HX-Request": "true"}, signal: mine.signal,
                                               credentials: "same-origin"})
      .then(function (r) {
        if (r.redirected) throw new Error("Your session ended: reload the page to sign in again.");
        if (!r.ok) throw new Error(r.status === 400 ? "That search is too long." : "Search is not available right now.");
        return r.text();
      })
      .then(function (html) {
        if (mine !== controller) return;
        controller = null;
        shown = q;
        results.innerHTML = html;  // the server's fragment: escaped text and links only
        announce();
        if (enterWhenReady) followFirst();
      })
      .catch(function (error) {
        if (mine !== controller) return;  // a newer search replaced it
        controller = null;
        shown = null;
        enterWhenReady = false;
        message(error.message || "Search is not available right now.");
        announce();
      });
  }

  function show(dialog) {
    returnTo.set(dialog, document.activeElement);
    dialog.showModal();
  }
  // The palette's insides come from its <template> on first use.
  function build() {
    var body = document.getElementById("palette-body");
    if (input || !body) return;
    palette.appendChild(body.content.cloneNode(true));
    body.remove();
    input = document.getElementById("palette-q");
    results = document.getElementById("palette-results");
    status = document.getElementById("palette-status");
    input.addEventListener("input", function () {
      window.clearTimeout(timer);
      timer = window.setTimeout(search, DELAY);
    });
    palette.querySelector("form").addEventListener("submit", function (event) {
      event.preventDefault();  // Enter in the field opens the first result, once it is there
      enterWhenReady = true;
      search();
    });
  }
  function openPalette() {
    build();
    if (!input) return;
    if (palette.open) { input.focus(); input.select(); return; }
    if (shortcuts && shortcuts.open) shortcuts.close();
    show(palette);
    input.value = "";
    enterWhenReady = false;
    search();
    input.focus();
  }
  [palette, shortcuts].forEach(function (dialog) {
    if (!dialog) return;
    dialog.addEventListener("close", function () {
      var back = returnTo.get(dialog);
      if (back && back.focus && document.contains(back)) back.focus();
    });
    // A click on the backdrop (outside the dialog's box) closes it.
    dialog.addEventListener("click", function (event) {
      if (event.target !== dialog) return;
      var r = dialog.getBoundingClientRect();
      if (event.clientX < r.left || event.clientX > r.right || event.clientY < r.top || event.clientY > r.bottom) {
        dialog.close();
      }
    });
  });

  palette.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      event.preventDefault();  // a search field would only clear itself
      palette.close();
      return;
    }
    if (!results) return;
    var items = links(), at = items.indexOf(document.activeElement), next = null;
    if (event.key === "ArrowDown") next = at + 1;
    else if (event.key === "ArrowUp") next = at < 0 ? items.length - 1 : at - 1;
    else if (at >= 0 && event.key === "Home") next = 0;
    else if (at >= 0 && event.key === "End") next = items.length - 1;
    else if (at >= 0 && (event.key === "Backspace" ||
             (event.key.length === 1 && !event.ctrlKey && !event.metaKey && !event.altKey))) {
      input.focus();  // typing on a result goes on in the field
      return;
    } else return;
    event.preventDefault();
    if (next >= 0 && next < items.length) items[next].focus();
    else input.focus();  // past either end: back to the field
  });

  document.querySelectorAll("[data-palette-open]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", openPalette);
  });

  document.addEventListener("keydown", function (event) {
    if ((event.ctrlKey || event.metaKey) && !event.altKey && !event.shiftKey && event.key.toLowerCase() === "k") {
      event.preventDefault();  // the browser's own Ctrl+K (search the web) would take the page away
      if (palette.open) palette.close();
      else openPalette();
      return;
    }
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || event.isComposing ||
        editable(event.target) || document.querySelector("dialog[open]")) return;
    var key = event.key;
    if (gAt && Date.now() - gAt < G_WINDOW && /^[dsth]$/.test(key)) {
      gAt = 0;
      var target = shortcuts && shortcuts.getAttribute("data-go-" + key);
      if (target) { event.preventDefault(); window.location.assign(target); }
      return;
    }
    gAt = key === "g" ? Date.now() : 0;
    if (key === "?" && shortcuts) {
      event.preventDefault();
      show(shortcuts);
    } else if (key === "/") {
      event.preventDefault();
      var field = document.querySelector("main input[type=search]");
      if (field) { field.focus(); field.select(); } else openPalette();
    }
  });
})();
