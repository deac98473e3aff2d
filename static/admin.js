// Admin page helpers (no inline handlers: the CSP forbids inline script).
(function () {
  "use strict";
  document.addEventListener("focusin", function (event) {
    if (event.target && event.target.id === "new-invite-link") { event.target.select(); }
  });
  document.addEventListener("submit", function (event) {
    var question = event.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { event.preventDefault(); }
  });
})();
