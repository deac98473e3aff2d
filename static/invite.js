// The invite token travels in the URL fragment, which browsers never send to the server (so no
// access log holds it). Move it into the form, wipe it from the address bar and history, post it.
(function () {
  "use strict";
  var token = decodeURIComponent(window.location.hash.replace(/^#/, ""));
  if (!token) { return; }
  history.replaceState(null, "", window.location.pathname);
  function go() {
    var form = document.getElementById("invite-form");
    if (!form || document.querySelector('[role="alert"]')) { return; }
    form.elements.token.value = token;
    var status = document.getElementById("invite-status");
    if (status) { status.textContent = "Signing you in…"; }
    form.submit();
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", go); } else { go(); }
})();
