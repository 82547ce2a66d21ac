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

  // Thousands of rows stay usable: a filter box and pages of PAGE rows (sorting covers every row).
  var PAGE = 100;
  var page = 0;
  var all = Array.prototype.slice.call(body.rows);
  var pager = null, info = null, filter = null;
  function matching() {
    var q = filter ? filter.value.trim().toLowerCase() : "";
    return Array.prototype.filter.call(body.rows, function (row) {
      return !q || row.textContent.toLowerCase().indexOf(q) >= 0;
    });
  }
  function show() {
    if (!pager) { return; }
    var rows = matching();
    var pages = Math.max(1, Math.ceil(rows.length / PAGE));
    page = Math.min(page, pages - 1);
    all.forEach(function (row) { row.hidden = true; });
    rows.slice(page * PAGE, (page + 1) * PAGE).forEach(function (row) { row.hidden = false; });
    info.textContent = rows.length + " of " + all.length + " rows \u00b7 page " + (page + 1) + " of " + pages;
    pager.querySelector(".prev").disabled = page === 0;
    pager.querySelector(".next").disabled = page >= pages - 1;
    table.setAttribute("data-shown", String(Math.min(PAGE, rows.length - page * PAGE)));
  }
  if (all.length > 20) {
    pager = document.createElement("div");
    pager.className = "pager";
    filter = document.createElement("input");
    filter.type = "search";
    filter.placeholder = "filter rows";
    filter.setAttribute("aria-label", "filter rows");
    var prev = document.createElement("button");
    prev.type = "button";
    prev.className = "prev";
    prev.textContent = "Previous page";
    var next = document.createElement("button");
    next.type = "button";
    next.className = "next";
    next.textContent = "Next page";
    info = document.createElement("span");
    pager.appendChild(filter);
    pager.appendChild(prev);
    pager.appendChild(next);
    pager.appendChild(info);
    var holder = table.parentNode.classList.contains("table-scroll") ? table.parentNode : table;
    holder.parentNode.insertBefore(pager, holder);
    filter.addEventListener("input", function () { page = 0; show(); });
    prev.addEventListener("click", function () { page -= 1; show(); });
    next.addEventListener("click", function () { page += 1; show(); });
  }

  heads.forEach(function (th) {
    th.querySelector("button").addEventListener("click", function () { sortBy(th); show(); });
  });
  show();
  document.body.setAttribute("data-ready", "1");
})();
