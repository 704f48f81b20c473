// Sectioned pages (templates/_section_nav.html). Optional: without it every section is a plain link.
(function () {
  "use strict";
  var nav = document.querySelector(".section-nav");
  if (!nav) return;
  // An old link's anchor (/settings/#security, /account/#notifications) names a section: open it.
  var name = decodeURIComponent(location.hash.slice(1));
  if (/^[a-z-]+$/.test(name)) {
    var target = nav.querySelector('a[href$="/' + name + '"]');
    if (target && target.getAttribute("aria-current") !== "page") {
      location.replace(target.href);
      return;
    }
  }
  // On phones the nav is a row that scrolls sideways: show the current section's link.
  var current = nav.querySelector('[aria-current="page"]');
  var list = nav.querySelector("ul");
  if (current && list && list.scrollWidth > list.clientWidth) {
    list.scrollLeft = current.offsetLeft - (list.clientWidth - current.offsetWidth) / 2;
  }
})();
