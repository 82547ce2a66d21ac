(function () {
  "use strict";
  var table = document.getElementById("sessions");
  var body = table.tBodies[0];
  var heads = Array.prototype.slice.call(table.querySelectorAll("th[data-sort]"));

  function value(row, index, kind) {
    var cell = row.cells[index];
    var raw = cell.getAttribute("data-v");
    if (raw === null) { raw = cell.textContent; }
    if (kind === "num") { return raw === "" ? NaN : parseFloat(raw); }
    return raw.toLowerCase();
  }

  function compare(a, b, kind) {
    if (kind === "num") {
      if (isNaN(a) || isNaN(b)) { return isNaN(a) - isNaN(b); }
      return a - b;
    }
    return a < b ? -1 : (a > b ? 1 : 0);
  }

  function sortBy(th) {
    var kind = th.getAttribute("data-sort");
    var index = th.cellIndex;
    var current = th.getAttribute("aria-sort");
    var dir = current === "none" || !current ? (kind === "num" ? "descending" : "ascending")
      : (current === "ascending" ? "descending" : "ascending");
    var sign = dir === "ascending" ? 1 : -1;
    var rows = Array.prototype.slice.call(body.rows).map(function (row) {
      return { row: row, v: value(row, index, kind), i: parseInt(row.getAttribute("data-i"), 10) };
    });
    rows.sort(function (a, b) {
      var missing = kind === "num" ? isNaN(a.v) - isNaN(b.v) : 0;
      return missing || sign * compare(a.v, b.v, kind) || a.i - b.i;
    });
    rows.forEach(function (r) { body.appendChild(r.row); });
    heads.forEach(function (h) { h.setAttribute("aria-sort", h === th ? dir : "none"); });
  }

  heads.forEach(function (th) {
    th.querySelector("button").addEventListener("click", function () { sortBy(th); });
  });
  document.body.setAttribute("data-ready", "1");
})();
