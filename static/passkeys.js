// Passkeys (WebAuthn) for the forms marked data-passkey: "register" (the account's "Add a
// passkey"), "signin" (/login's "Sign in with a passkey", and with data-autofill the browser's
// passkey suggestions on the email field), "second-factor" and "reauth". Submitting such a form
// first asks the portal for options (POST data-options-url, JSON), then the browser for a
// passkey, puts the answer in the form's hidden `credential` field and submits the form for
// real. Errors (no WebAuthn, cancelled, timed out, refused) are said in the form's
// [data-passkey-status] element, which is an alert. Loaded by each include, so possibly twice.
(function () {
  "use strict";
  if (window.portalPasskeys) return;
  window.portalPasskeys = true;

  var supported = !!(window.PublicKeyCredential && navigator.credentials && navigator.credentials.create);
  var autofill = null; // the AbortController of a pending conditional (autofill) request

  function toBytes(value) {
    var base64 = value.replace(/-/g, "+").replace(/_/g, "/");
    while (base64.length % 4) base64 += "=";
    var text = atob(base64);
    var bytes = new Uint8Array(text.length);
    for (var i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
    return bytes.buffer;
  }

  function toText(buffer) {
    if (!buffer) return null;
    var bytes = new Uint8Array(buffer);
    var text = "";
    for (var i = 0; i < bytes.length; i++) text += String.fromCharCode(bytes[i]);
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function descriptors(list) {
    return (list || []).map(function (d) { return Object.assign({}, d, {id: toBytes(d.id)}); });
  }

  function creationOptions(o) {
    return Object.assign({}, o, {challenge: toBytes(o.challenge), user: Object.assign({}, o.user, {id: toBytes(o.user.id)}),
                                 excludeCredentials: descriptors(o.excludeCredentials)});
  }

  function requestOptions(o) {
    return Object.assign({}, o, {challenge: toBytes(o.challenge), allowCredentials: descriptors(o.allowCredentials)});
  }

  // The credential as JSON (WebAuthn Level 3's toJSON where the browser has it).
  function asJSON(credential) {
    if (typeof credential.toJSON === "function") {
      try { return credential.toJSON(); } catch (e) { /* below */ }
    }
    var r = credential.response;
    var response = {clientDataJSON: toText(r.clientDataJSON)};
    if (r.attestationObject) {
      response.attestationObject = toText(r.attestationObject);
      response.transports = typeof r.getTransports === "function" ? r.getTransports() : [];
    } else {
      response.authenticatorData = toText(r.authenticatorData);
      response.signature = toText(r.signature);
      response.userHandle = toText(r.userHandle);
    }
    return {id: credential.id, rawId: toText(credential.rawId), type: credential.type, response: response,
            authenticatorAttachment: credential.authenticatorAttachment || null,
            clientExtensionResults: credential.getClientExtensionResults ? credential.getClientExtensionResults() : {}};
  }

  function say(form, message) {
    var box = form.querySelector("[data-passkey-status]");
    if (!box) return;
    box.textContent = message || "";
    box.hidden = !message;
  }

  function explain(error, form) {
    var name = error && error.name;
    if (name === "PortalError") return error.message;
    if (name === "NotAllowedError") {
      return "The passkey request was cancelled or timed out, so nothing happened. Try again when you are ready.";
    }
    if (name === "InvalidStateError") return "This device already holds a passkey for your account.";
    if (name === "SecurityError") {
      return "This browser refused passkeys at " + location.hostname + ". Open the portal at " +
        (form.dataset.rpId || "its domain name") + " to use passkeys.";
    }
    if (name === "NotSupportedError") return "This device cannot make a passkey the portal accepts.";
    if (name === "TypeError" && error.message && error.message.indexOf("fetch") >= 0) {
      return "The portal could not be reached. Check your connection and try again.";
    }
    return "Your browser could not use a passkey" + (error && error.message ? ": " + error.message : ".");
  }

  function csrf(form) {
    var field = form.querySelector('input[name="csrf_token"]');
    return field ? field.value : "";
  }

  function fetchOptions(form) {
    return fetch(form.dataset.optionsUrl, {method: "POST", credentials: "same-origin",
                                           headers: {"X-CSRFToken": csrf(form), "Accept": "application/json"}})
      .then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (data) {
          if (data.redirect) { // confirm it is you first, or the sign-in step expired
            location.assign(data.redirect);
            return null;
          }
          if (!response.ok || !data.publicKey) {
            var error = new Error(data.error || "The portal could not start the passkey request. Please try again.");
            error.name = "PortalError";
            throw error;
          }
          return data.publicKey;
        });
      });
  }

  function ask(form, options, mediation, signal) {
    if (form.dataset.passkey === "register") {
      return navigator.credentials.create({publicKey: creationOptions(options)});
    }
    var request = {publicKey: requestOptions(options)};
    if (mediation) request.mediation = mediation;
    if (signal) request.signal = signal;
    return navigator.credentials.get(request);
  }

  function send(form, credential) {
    form.querySelector('input[name="credential"]').value = JSON.stringify(asJSON(credential));
    form.dataset.passkeyReady = "true";
    // requestSubmit: the submit event runs again (here it passes; submit.js shows progress).
    if (typeof form.requestSubmit === "function") form.requestSubmit(); else form.submit();
  }

  function run(form) {
    if (!supported) {
      say(form, "This browser does not support passkeys. Use a current browser, or sign in another way.");
      return;
    }
    if (autofill) { autofill.abort(); autofill = null; } // the button's request replaces the autofill's
    var button = form.querySelector('button[type="submit"]');
    if (button) { button.disabled = true; button.setAttribute("aria-busy", "true"); }
    say(form, "");
    fetchOptions(form)
      .then(function (options) { return options && ask(form, options); })
      .then(function (credential) { if (credential) send(form, credential); })
      .catch(function (error) { say(form, explain(error, form)); })
      .then(function () {
        if (button && !form.dataset.passkeyReady) { button.disabled = false; button.removeAttribute("aria-busy"); }
      });
  }

  function startAutofill(form) {
    if (!supported || typeof PublicKeyCredential.isConditionalMediationAvailable !== "function") return;
    PublicKeyCredential.isConditionalMediationAvailable().then(function (available) {
      if (!available || autofill) return;
      var controller = autofill = new AbortController();
      fetchOptions(form)
        .then(function (options) {
          if (!options) return null;
          var asked = ask(form, options, "conditional", controller.signal);
          form.dataset.autofillState = "waiting"; // the browser now offers passkeys in the email field
          return asked;
        })
        .then(function (credential) { if (credential && autofill === controller) send(form, credential); })
        .catch(function () {
          // Aborted by the button, dismissed, or the portal unreachable: nobody asked for it, so
          // nothing is said; the button still works (and says what goes wrong there).
        });
    }).catch(function () { /* no autofill: the button still works */ });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.dataset || !form.dataset.passkey) return;
    if (form.dataset.passkeyReady) return; // the real submission
    event.preventDefault();
    event.stopImmediatePropagation(); // submit.js: not busy until the browser has answered
    run(form);
  }, true);

  function ready() {
    document.querySelectorAll("form[data-passkey][data-autofill]").forEach(startAutofill);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", ready); else ready();
  // Back to a page from the bfcache: the forms may be asked again.
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) return;
    document.querySelectorAll("form[data-passkey]").forEach(function (form) {
      delete form.dataset.passkeyReady;
      var button = form.querySelector('button[type="submit"]');
      if (button) { button.disabled = false; button.removeAttribute("aria-busy"); }
    });
  });
}());
