// Draws every Plotly figure on a research page from its JSON data block (no inline script), and
// opens a checkpoint's page when one of its points is clicked (customdata[0] is its URL).
(function () {
  "use strict";
  function draw(root) {
    if (typeof Plotly === "undefined") { return; }
    root.querySelectorAll(".chart[data-figure]").forEach(function (el) {
      if (el.dataset.drawn === "1") { return; }
      var block = document.getElementById(el.dataset.figure);
      if (!block) { return; }
      var figure = JSON.parse(block.textContent);
      el.dataset.drawn = "1";
      Plotly.newPlot(el, figure.data, figure.layout, { displaylogo: false, responsive: true }).then(function () {
        el.dataset.rendered = "1";
      });
      el.on("plotly_click", function (event) {
        var point = event.points && event.points[0];
        var url = point && point.customdata && point.customdata[0];
        if (typeof url === "string" && url.charAt(0) === "/") { window.location.assign(url); }
      });
    });
  }
  document.addEventListener("DOMContentLoaded", function () { draw(document); });
  document.addEventListener("htmx:afterSettle", function (event) { draw(event.target); });
})();
