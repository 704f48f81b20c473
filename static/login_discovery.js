// Home-realm discovery on /login (templates/sso/_login_discovery.html). The email is looked at
// first: as it is typed (and before a submit with no password), /login/sso/discover says whether
// its domain signs in with its organization's own provider. If so the form becomes "Continue with
// single sign-on" (the password field is hidden) and goes there; any other address keeps the
// ordinary password (and passkey) form, untouched, so password managers, scripts and people who
// type both fields at once sign in as before. Without this script the form is the plain one.
(function () {
  "use strict";
  var status = document.getElementById("sso-discovery-status");
  var email = document.getElementById("email");
  var password = document.getElementById("password");
  if (!status || !email || !password || !window.fetch) return;
  var form = email.form;
  var button = form.querySelector("button[type=submit]");
  var label = form.querySelector("label[for=password]");
  var buttonText = button.textContent;
  var params = new URLSearchParams(window.location.search);
  if (!email.value && params.get("email")) email.value = params.get("email");

  var answers = {};   // address -> answer, so each is asked once
  var target = null;  // the single sign-on URL while the form is in that mode
  var timer = null;
  var submitting = false;
  var passwordFor = null; // the address whose person chose the password (an owner's break-glass)
  var usePassword = document.createElement("button");
  usePassword.type = "button";
  usePassword.className = "quiet";
  usePassword.textContent = "Use a password instead";
  usePassword.hidden = true;
  button.insertAdjacentElement("afterend", usePassword);
  usePassword.addEventListener("click", function () {
    passwordFor = email.value.trim();
    apply(null);
    password.focus();
  });

  function ask(address) {
    if (answers[address]) return answers[address];
    var url = status.dataset.discover + "?" + new URLSearchParams({email: address, next: status.dataset.next});
    answers[address] = fetch(url, {headers: {"Accept": "application/json"}, credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.json() : {sso: null}; })
      .catch(function () { return {sso: null}; });
    return answers[address];
  }

  function apply(answer) {
    target = answer && answer.sso && email.value.trim() !== passwordFor ? answer.sso : null;
    [label, password].forEach(function (el) { if (el) el.hidden = !!target; });
    usePassword.hidden = !target;
    button.textContent = target ? "Continue with single sign-on" : buttonText;
    status.textContent = target ? (answer.organization + " signs you in with its own provider.") : "";
  }

  function check() {
    var address = email.value.trim();
    if (address.indexOf("@") < 1 || address.lastIndexOf(".") < address.indexOf("@")) { apply(null); return null; }
    var asked = ask(address);
    asked.then(function (answer) { if (email.value.trim() === address) apply(answer); });
    return asked;
  }

  email.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(check, 300); });
  email.addEventListener("change", check);
  if (email.value) check();

  form.addEventListener("submit", function (event) {
    if (submitting) return;
    if (target) { event.preventDefault(); window.location.assign(target); return; }
    if (password.value) return; // the ordinary sign-in
    var address = email.value.trim();
    var asked = check();
    if (!asked) return; // no address yet: the server says what is missing
    event.preventDefault();
    asked.then(function (answer) {
      if (answer && answer.sso && address !== passwordFor) { window.location.assign(answer.sso); return; }
      submitting = true;
      form.requestSubmit(button); // no single sign-on: the server asks for the password
    });
  });
})();
