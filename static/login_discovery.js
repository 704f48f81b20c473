// Home-realm discovery on /login (templates/sso/_login_discovery.html): ask for the email first;
// an address whose domain has its organization's single sign-on goes to that provider, any other
// gets the password field. Without this script the form takes both at once, as it always did.
(function () {
  "use strict";
  var status = document.getElementById("sso-discovery-status");
  var email = document.getElementById("email");
  var password = document.getElementById("password");
  if (!status || !email || !password || !window.fetch) return;
  var form = email.form;
  var button = form.querySelector("button[type=submit]");
  var label = form.querySelector("label[for=password]");
  var hasErrors = form.querySelector("#password-error, #email-error") !== null;
  var params = new URLSearchParams(window.location.search);
  if (!email.value && params.get("email")) email.value = params.get("email");
  if (hasErrors || password.value) return; // a re-rendered form: the person is past the first step

  var buttonText = button.textContent;
  var asking = true;
  function show(visible) {
    [label, password].forEach(function (el) { if (el) el.hidden = !visible; });
    button.textContent = visible ? buttonText : "Continue";
  }
  show(false);

  form.addEventListener("submit", function (event) {
    if (!asking || password.value) return; // a password manager filled both: sign in as usual
    event.preventDefault();
    var address = email.value.trim();
    if (!address) { email.focus(); return; }
    button.disabled = true;
    var url = status.dataset.discover + "?" + new URLSearchParams({email: address, next: status.dataset.next});
    fetch(url, {headers: {"Accept": "application/json"}, credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.json() : {sso: null}; })
      .catch(function () { return {sso: null}; })
      .then(function (answer) {
        if (answer && answer.sso) {
          status.textContent = "Taking you to " + (answer.organization || "your organization") + "'s sign-in…";
          window.location.assign(answer.sso);
          return;
        }
        asking = false;
        button.disabled = false;
        show(true);
        password.focus();
      });
  });
})();
