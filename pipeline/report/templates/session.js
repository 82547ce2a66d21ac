(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var svg = document.getElementById("tl");
  var wrap = document.getElementById("tl-wrap");
  var tip = document.getElementById("tip");
  var cursor = document.getElementById("tl-cursor");
  var geo = data.geo;
  var marks = {};
  var byTurn = {};
  var selected = null;
  var hot = null;
  var keyIndex = -1;

  Array.prototype.forEach.call(svg.querySelectorAll(".m"), function (m) {
    marks[m.getAttribute("data-t")] = m;
  });
  data.turns.forEach(function (t) { byTurn[t.n] = t; });

  function sorted(lane) {
    return data.turns.filter(function (t) { return !lane || t.lane === lane; })
      .sort(function (a, b) { return a.px - b.px || a.n - b.n; });
  }
  var lists = { all: sorted(null), c: sorted("c"), t: sorted("t") };

  function nearest(list, x, limit) {
    var lo = 0, hi = list.length - 1, best = null;
    if (hi < 0) { return null; }
    while (hi - lo > 1) {
      var mid = (lo + hi) >> 1;
      if (list[mid].px < x) { lo = mid; } else { hi = mid; }
    }
    [list[lo], list[hi]].forEach(function (t) {
      if (!best || Math.abs(t.px - x) < Math.abs(best.px - x)) { best = t; }
    });
    return Math.abs(best.px - x) <= limit ? best : null;
  }

  function toSvg(ev) {
    var pt = svg.createSVGPoint();
    pt.x = ev.clientX;
    pt.y = ev.clientY;
    return pt.matrixTransform(svg.getScreenCTM().inverse());
  }

  function laneAt(y) {
    if (y >= geo.lane_top && y < geo.mid) { return "c"; }
    if (y >= geo.mid && y <= geo.lane_bot) { return "t"; }
    return "all";
  }

  function line(cls, text) {
    var div = document.createElement("div");
    div.className = cls;
    div.textContent = text;
    return div;
  }

  function setHot(t) {
    if (hot) { hot.classList.remove("hot"); }
    hot = t ? marks[String(t.n)] || null : null;
    if (hot) { hot.classList.add("hot"); }
    if (t) {
      cursor.setAttribute("x1", t.px);
      cursor.setAttribute("x2", t.px);
      cursor.setAttribute("visibility", "visible");
    } else {
      cursor.setAttribute("visibility", "hidden");
    }
  }

  function showTip(t, clientX, clientY) {
    var box = wrap.getBoundingClientRect();
    var head = "Turn " + t.n + " \u00b7 " + t.sp + (t.tm ? " \u00b7 " + t.tm : "");
    tip.textContent = "";
    tip.appendChild(line("h", head));
    if (t.cd.length) { tip.appendChild(line("c", t.cd.join(" \u00b7 "))); }
    if (t.sc) { tip.appendChild(line("c", t.sc)); }
    tip.appendChild(line("x", t.tx || "(no words)"));
    tip.hidden = false;
    var left = clientX - box.left + 14;
    if (left + tip.offsetWidth > box.width) { left = Math.max(0, clientX - box.left - tip.offsetWidth - 14); }
    tip.style.left = left + "px";
    tip.style.top = Math.max(0, clientY - box.top + 14) + "px";
    setHot(t);
  }

  function hideTip() {
    tip.hidden = true;
    setHot(null);
  }

  function select(n, scroll) {
    var el = document.getElementById("turn-" + n);
    if (!el) { return; }
    if (selected) { selected.classList.remove("sel"); }
    selected = el;
    el.classList.add("sel");
    el.classList.remove("flash");
    void el.offsetWidth;
    el.classList.add("flash");
    Object.keys(marks).forEach(function (k) { marks[k].classList.toggle("sel", k === String(n)); });
    if (scroll) {
      var reduce = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
      el.scrollIntoView({ block: "center", behavior: reduce ? "auto" : "smooth" });
      if (history.replaceState) { history.replaceState(null, "", "#turn-" + n); }
    }
  }

  function pick(ev) {
    var p = toSvg(ev);
    if (p.x < geo.left - 4 || p.x > geo.right + 4) { return null; }
    return nearest(lists[laneAt(p.y)], p.x, 14);
  }

  svg.addEventListener("mousemove", function (ev) {
    var t = pick(ev);
    if (t) { showTip(t, ev.clientX, ev.clientY); } else { hideTip(); }
  });
  svg.addEventListener("mouseleave", hideTip);
  svg.addEventListener("click", function (ev) {
    if (ev.target.closest && ev.target.closest("a")) { return; }
    var t = pick(ev);
    if (t) { select(t.n, true); }
  });
  svg.addEventListener("keydown", function (ev) {
    var list = lists.all;
    if (!list.length) { return; }
    if (ev.key === "ArrowRight" || ev.key === "ArrowLeft") {
      keyIndex = Math.min(list.length - 1, Math.max(0, keyIndex + (ev.key === "ArrowRight" ? 1 : -1)));
      var t = list[keyIndex];
      var r = (marks[String(t.n)] || svg).getBoundingClientRect();
      showTip(t, r.left + r.width / 2, r.top);
      ev.preventDefault();
    } else if (ev.key === "Enter" && keyIndex >= 0) {
      select(list[keyIndex].n, true);
      ev.preventDefault();
    } else if (ev.key === "Escape") {
      hideTip();
    }
  });
  svg.addEventListener("blur", hideTip);

  document.addEventListener("click", function (ev) {
    var a = ev.target.closest ? ev.target.closest("a[href^='#turn-']") : null;
    if (!a) { return; }
    var n = a.getAttribute("href").slice(6);
    if (byTurn[n] !== undefined || document.getElementById("turn-" + n)) {
      ev.preventDefault();
      select(n, true);
    }
  });

  if (location.hash.indexOf("#turn-") === 0) { select(location.hash.slice(6), false); }
  document.body.setAttribute("data-ready", "1");
})();
