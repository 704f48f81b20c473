// Times as people read them (issue 22). Every <time data-relative> (portal/ui.py `when`) says how
// long ago or how soon in words, re-rendered as time passes, with the absolute time in the
// viewer's zone as its title: the account's zone (data-timezone), else the browser's. When the
// account has none yet, the browser's is sent once (data-detect). Without JavaScript the server's
// text and title stay.
(function () {
  "use strict";
  var data = (document.currentScript && document.currentScript.dataset) || {};
  var zone = data.timezone || undefined;
  var locale = data.locale || undefined;  // the account's language and region, else the browser's
  var MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  var calendar, full;
  try {
    calendar = new Intl.DateTimeFormat("en-US", {timeZone: zone, year: "numeric", month: "numeric", day: "numeric"});
  } catch (e) {  // a zone this browser does not know: its own
    zone = undefined;
    calendar = new Intl.DateTimeFormat("en-US", {year: "numeric", month: "numeric", day: "numeric"});
  }
  full = new Intl.DateTimeFormat(locale, {timeZone: zone, weekday: "short", year: "numeric", month: "short",
                                             day: "numeric", hour: "2-digit", minute: "2-digit", hour12: false,
                                             timeZoneName: "short"});

  function ymd(date) {
    var parts = {};
    calendar.formatToParts(date).forEach(function (p) { parts[p.type] = Number(p.value); });
    return parts;
  }

  // The same words as portal/ui.py relative().
  function relative(when, now) {
    var seconds = (now - when) / 1000, past = seconds >= 0, size = Math.abs(seconds);
    function said(n, unit) {
      var words = n + " " + unit + (n === 1 || unit === "min" ? "" : "s");
      return past ? words + " ago" : "in " + words;
    }
    if (size < 45) return "just now";
    if (size < 3600) return said(Math.max(1, Math.floor(size / 60 + 0.5)), "min");
    if (size < 86400) return said(Math.floor(size / 3600), "hour");
    var a = ymd(when), b = ymd(now);
    var days = Math.abs(Math.round((Date.UTC(b.year, b.month - 1, b.day) - Date.UTC(a.year, a.month - 1, a.day)) / 864e5));
    if (days <= 1) return past ? "yesterday" : "tomorrow";
    if (days < 30) return said(days, "day");
    var text = MONTHS[a.month - 1] + " " + a.day;
    return a.year === b.year ? text : text + ", " + a.year;
  }

  function render(root) {
    var now = new Date();
    (root || document).querySelectorAll("time[data-relative]").forEach(function (el) {
      var when = new Date(el.getAttribute("datetime"));
      if (isNaN(when)) return;
      var text = relative(when, now), title = full.format(when);
      if (el.textContent !== text) el.textContent = text;
      if (el.title !== title) el.title = title;
    });
  }

  render(document);
  document.addEventListener("htmx:load", function (event) { render(event.detail.elt); });
  setInterval(function () { render(document); }, 30000);

  if (data.detect && window.fetch) {
    var browserZone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    var sent = null;
    try { sent = sessionStorage.getItem("portal.timezone-sent"); } catch (e) { /* storage off */ }
    if (browserZone && sent !== browserZone) {
      fetch(data.detect, {method: "POST", credentials: "same-origin",
                          headers: {"X-CSRFToken": data.csrf, "Content-Type": "application/x-www-form-urlencoded"},
                          body: "detected=1&timezone=" + encodeURIComponent(browserZone)})
        .then(function (response) {
          if (response.ok) { try { sessionStorage.setItem("portal.timezone-sent", browserZone); } catch (e) { /* off */ } }
        })
        .catch(function () { /* a navigation cut it short: the next page tries again */ });
    }
  }
})();
