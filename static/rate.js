// Keyboard shortcuts and client-measured time on item for the rater page (works without it too).
(function () {
  "use strict";
  var shownAt = performance.now();
  document.addEventListener("htmx:afterSwap", function () { shownAt = performance.now(); });
  // Capture phase: runs before htmx reads the form, so the value travels with the request.
  document.addEventListener("submit", function (event) {
    var field = event.target.querySelector('input[name="client_ms"]');
    if (field) { field.value = String(Math.round(performance.now() - shownAt)); }
  }, true);
  var keys = { "1": "1", "ArrowLeft": "1", "2": "2", "ArrowRight": "2", "3": "3", "4": "4", "s": "s", "u": "u" };
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) { return; }
    var target = event.target;
    if (target && (target.tagName === "TEXTAREA" || target.tagName === "INPUT" || target.isContentEditable)) { return; }
    var key = keys[event.key];
    if (!key) { return; }
    var button = document.querySelector('[data-key="' + key + '"]');
    if (button && !button.disabled) { event.preventDefault(); button.click(); }
  });
  document.addEventListener("htmx:responseError", function (event) {
    var flash = document.getElementById("flash");
    var xhr = event.detail.xhr;
    var doc = new DOMParser().parseFromString(xhr.responseText || "", "text/html");
    var message = doc.querySelector(".card.error p");
    if (flash) { flash.textContent = "Not saved: " + (message ? message.textContent : "error " + xhr.status); flash.classList.add("bad"); }
  });
})();
