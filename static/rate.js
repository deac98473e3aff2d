// Keyboard shortcuts and client-measured time on item for the rater page (works without it too).
(function () {
  "use strict";
  var shownAt = performance.now();
  // True from the moment htmx sends a request until the new item is swapped in and processed.
  // A key pressed meanwhile is ignored: clicking a button of a form that htmx has not processed
  // yet would submit it natively (a full page load), and a verdict typed before the next item is
  // on screen is not a judgement of that item.
  var busy = false;
  document.addEventListener("htmx:beforeRequest", function () { busy = true; });
  document.addEventListener("htmx:afterRequest", function (event) {
    if (!event.detail.successful) { busy = false; }  // nothing will be swapped in
  });
  document.addEventListener("htmx:sendError", function () { busy = false; });
  document.addEventListener("htmx:timeout", function () { busy = false; });
  document.addEventListener("htmx:afterSettle", function () { busy = false; shownAt = performance.now(); });
  // A plain-form round trip leaves ?flash=... in the address; drop it so a reload does not
  // repeat a stale message.
  if (window.location.search.indexOf("flash=") !== -1 && window.history.replaceState) {
    window.history.replaceState(null, "", window.location.pathname);
  }
  // Capture phase: runs before htmx reads the form, so the value travels with the request.
  document.addEventListener("submit", function (event) {
    var field = event.target.querySelector('input[name="client_ms"]');
    if (field) { field.value = String(Math.round(performance.now() - shownAt)); }
  }, true);
  function readyForHtmx(button) {
    var form = button.closest("form");
    if (!window.htmx || !form || !form.hasAttribute("hx-post")) { return true; }
    return !!form["htmx-internal-data"];  // set when htmx has processed (wired up) the form
  }
  var keys = { "1": "1", "ArrowLeft": "1", "2": "2", "ArrowRight": "2", "3": "3", "4": "4", "s": "s", "u": "u" };
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) { return; }
    var target = event.target;
    if (target && (target.tagName === "TEXTAREA" || target.tagName === "INPUT" || target.isContentEditable)) { return; }
    var key = keys[event.key];
    if (!key) { return; }
    event.preventDefault();
    if (busy) { return; }
    var button = document.querySelector('[data-key="' + key + '"]');
    if (button && !button.disabled && readyForHtmx(button)) { button.click(); }
  });
  document.addEventListener("htmx:responseError", function (event) {
    var flash = document.getElementById("flash");
    var xhr = event.detail.xhr;
    var doc = new DOMParser().parseFromString(xhr.responseText || "", "text/html");
    var message = doc.querySelector(".card.error p");
    if (flash) { flash.textContent = "Not saved: " + (message ? message.textContent : "error " + xhr.status); flash.classList.add("bad"); }
  });
})();
