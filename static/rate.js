// Keyboard shortcuts and client-measured time on item for the rater page (works without it too).
(function () {
  "use strict";
  var shownAt = performance.now();
  // Where the page stands with htmx, for the shortcut keys:
  // - "sent": a request is on its way. The item on screen was just acted on and the next one is
  //   not shown yet, so a key has no item to judge: it is not taken, and the rater is told.
  // - "arriving": the next item is in the page but htmx has not wired up its forms (that happens
  //   when the swap settles). A key is kept and pressed once they are, if that item is still the
  //   one on screen: clicking a button htmx has not processed would submit natively (a full page
  //   load), and a kept key must never judge another item.
  // - "idle": a key acts at once.
  var phase = "idle";
  var kept = null;  // {key, item} pressed while "arriving"
  var refused = false;  // a key was not taken while "sent": say so once the next item is shown
  function itemOnScreen() {
    var form = document.querySelector("form.judge-form");
    return form ? form.getAttribute("action") : null;
  }
  function say(text) {
    var flash = document.getElementById("flash");
    if (flash) { flash.textContent = text; flash.classList.add("bad"); }
  }
  function readyForHtmx(button) {
    var form = button.closest("form");
    if (!window.htmx || !form || !form.hasAttribute("hx-post")) { return true; }
    return !!form["htmx-internal-data"];  // set when htmx has processed (wired up) the form
  }
  function press(key, item) {
    var button = document.querySelector('[data-key="' + key + '"]');
    if (!button || button.disabled) { return; }
    if (itemOnScreen() !== item) { return; }  // another item: never judge it with this key
    if (!readyForHtmx(button)) { kept = { key: key, item: item }; return; }
    button.click();
  }
  function settled() {
    phase = "idle";
    shownAt = performance.now();
    if (refused) {
      refused = false;
      say("A key pressed before this item appeared was not taken: judge this one as usual.");
    }
    var held = kept;
    kept = null;
    if (held) { press(held.key, held.item); }
  }
  function failed() { phase = "idle"; kept = null; }  // nothing will be swapped in
  document.addEventListener("htmx:beforeRequest", function () { phase = "sent"; kept = null; });
  document.addEventListener("htmx:afterSwap", function () { phase = "arriving"; });
  document.addEventListener("htmx:afterRequest", function (event) {
    if (!event.detail.successful) { failed(); }
  });
  document.addEventListener("htmx:sendError", failed);
  document.addEventListener("htmx:timeout", failed);
  document.addEventListener("htmx:afterSettle", settled);
  // htmx wires up the page it loaded with (htmx:load on the body) after this script may run.
  document.addEventListener("htmx:load", function () {
    var held = kept;
    if (held && phase === "idle") { kept = null; press(held.key, held.item); }
  });
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
  var keys = { "1": "1", "ArrowLeft": "1", "2": "2", "ArrowRight": "2", "3": "3", "4": "4", "s": "s", "u": "u" };
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) { return; }
    var target = event.target;
    if (target && (target.tagName === "TEXTAREA" || target.tagName === "INPUT" || target.isContentEditable)) { return; }
    var key = keys[event.key];
    if (!key) { return; }
    event.preventDefault();
    if (phase === "sent") {
      refused = true;
      say("Not taken: wait for the next item to appear.");
      return;
    }
    if (phase === "arriving") { kept = { key: key, item: itemOnScreen() }; return; }
    press(key, itemOnScreen());
  });
  document.addEventListener("htmx:responseError", function (event) {
    var flash = document.getElementById("flash");
    var xhr = event.detail.xhr;
    var doc = new DOMParser().parseFromString(xhr.responseText || "", "text/html");
    var message = doc.querySelector(".card.error p");
    if (flash) { flash.textContent = "Not saved: " + (message ? message.textContent : "error " + xhr.status); flash.classList.add("bad"); }
  });
})();
