/* Review mode of a session page: accept or correct the model's codes turn by turn, offline.
   Work is kept in the browser (localStorage) across reloads; "Save review" downloads a CSV
   review sheet that `rupture-coder review import --annotator ID --run RUN` reads. */
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent).review;
  var button = document.getElementById("review-toggle");
  var bar = document.getElementById("review-bar");
  if (!data || !button || !bar) { return; }
  var KEY = "rupture-coder-review|" + data.model + "|" + data.session_id;
  var layers = {};
  data.layers.forEach(function (l) { layers[l.name] = l; });
  var byN = {};
  data.items.forEach(function (it) { byN[it.n] = it; });
  var work = load();
  var current = null;
  var FORMULA = /^[=+\-@\t\r]/;

  function load() {
    try { return JSON.parse(window.localStorage.getItem(KEY) || "{}") || {}; } catch (e) { return {}; }
  }
  function store() {
    try { window.localStorage.setItem(KEY, JSON.stringify(work)); } catch (e) { /* private mode: kept in the page only */ }
  }
  function roleLayers(role) {
    var single = null, multi = null;
    data.layers.forEach(function (l) {
      if (l.role !== role) { return; }
      if (l.kind === "single") { single = l; } else { multi = l; }
    });
    return { single: single, multi: multi };
  }
  function familyOf(layer, code) {
    var hit = layer.codes.filter(function (c) { return c.code === code; })[0];
    return hit ? hit.family : null;
  }
  // the codes of an item now: the annotator's where given, else the model's
  function codesOf(it) {
    var w = work[it.n];
    var rl = roleLayers(it.role), out = {};
    out[rl.single.name] = (w ? w.codes[rl.single.name] : it.model[rl.single.name]) || [];
    out[rl.multi.name] = (w ? w.codes[rl.multi.name] : it.model[rl.multi.name]) || [];
    return out;
  }
  // a coding the manual accepts: one single code; a non-default one needs a multi code of its family
  function problem(it, codes) {
    var rl = roleLayers(it.role);
    var one = codes[rl.single.name];
    if (one.length !== 1) { return "choose a " + rl.single.name + " code"; }
    var many = codes[rl.multi.name];
    if (one[0] === rl.single.default) {
      return many.length ? "no " + rl.multi.name + " with " + one[0] : "";
    }
    var fam = many.filter(function (c) { return familyOf(rl.multi, c) === one[0]; });
    return fam.length ? "" : "choose at least one " + rl.multi.name.replace(/s$/, "") + " of " + one[0];
  }
  function done(it) { return !!work[it.n] && !problem(it, work[it.n].codes); }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined) { e.textContent = text; }
    return e;
  }

  function panel(it) {
    var rl = roleLayers(it.role);
    var box = el("div", "rv");
    box.setAttribute("data-n", it.n);
    var row = el("div", "rv-row");
    var sel = el("select", "rv-single");
    sel.setAttribute("aria-label", rl.single.name + " code of turn " + it.n);
    rl.single.codes.forEach(function (c) {
      var o = el("option", "", c.display);
      o.value = c.code;
      o.title = c.description || c.code;
      sel.appendChild(o);
    });
    row.appendChild(el("label", "rv-label", rl.single.name));
    row.appendChild(sel);
    var accept = el("button", "rv-accept", "Accept model (a)");
    accept.type = "button";
    var none = el("button", "rv-none", "None (n)");
    none.type = "button";
    row.appendChild(accept);
    row.appendChild(none);
    var status = el("span", "rv-status");
    row.appendChild(status);
    box.appendChild(row);
    var multi = el("div", "rv-multi");
    rl.multi.codes.forEach(function (c) {
      var lab = el("label", "rv-code");
      lab.setAttribute("data-family", c.family || "");
      lab.title = (c.description || "") + " (" + c.code + ")";
      var cb = el("input");
      cb.type = "checkbox";
      cb.value = c.code;
      lab.appendChild(cb);
      lab.appendChild(document.createTextNode(" " + c.display));
      multi.appendChild(lab);
    });
    box.appendChild(multi);
    var note = el("input", "rv-note");
    note.type = "text";
    note.placeholder = "note (optional)";
    note.setAttribute("aria-label", "note on turn " + it.n);
    box.appendChild(note);

    function paint() {
      var codes = codesOf(it);
      sel.value = (codes[rl.single.name][0]) || "";
      Array.prototype.forEach.call(multi.querySelectorAll("input"), function (cb) {
        cb.checked = codes[rl.multi.name].indexOf(cb.value) >= 0;
        var fam = cb.parentNode.getAttribute("data-family");
        cb.parentNode.hidden = sel.value === rl.single.default || (fam && fam !== sel.value && !cb.checked);
      });
      note.value = work[it.n] ? work[it.n].note || "" : "";
      var p = work[it.n] ? problem(it, work[it.n].codes) : "";
      status.textContent = !work[it.n] ? "not reviewed" : (p ? p : "reviewed");
      box.className = "rv" + (work[it.n] ? (p ? " rv-bad" : " rv-ok") : "");
      progress();
    }
    function take() {
      var codes = {};
      codes[rl.single.name] = sel.value ? [sel.value] : [];
      codes[rl.multi.name] = Array.prototype.filter.call(multi.querySelectorAll("input"), function (cb) {
        return cb.checked && (sel.value !== rl.single.default);
      }).map(function (cb) { return cb.value; });
      work[it.n] = { codes: codes, note: note.value };
      store();
      paint();
    }
    sel.addEventListener("change", take);
    multi.addEventListener("change", take);
    note.addEventListener("change", take);
    accept.addEventListener("click", function () { setModel(it); });
    none.addEventListener("click", function () { setNone(it); });
    box.paint = paint;
    return box;
  }

  function setModel(it) {
    var rl = roleLayers(it.role), codes = {};
    codes[rl.single.name] = (it.model[rl.single.name] || []).slice();
    codes[rl.multi.name] = (it.model[rl.multi.name] || []).slice();
    work[it.n] = { codes: codes, note: work[it.n] ? work[it.n].note : "" };
    store();
    repaint(it);
  }
  function setNone(it) {
    var rl = roleLayers(it.role), codes = {};
    codes[rl.single.name] = [rl.single.default];
    codes[rl.multi.name] = [];
    work[it.n] = { codes: codes, note: work[it.n] ? work[it.n].note : "" };
    store();
    repaint(it);
  }
  function repaint(it) {
    var box = document.querySelector(".rv[data-n='" + it.n + "']");
    if (box) { box.paint(); }
  }

  function order() {
    var list = data.items.slice();
    if (document.getElementById("rv-uncertain").checked) {
      list.sort(function (a, b) { return (b.unc || 0) - (a.unc || 0) || a.n - b.n; });
    }
    return list;
  }
  function go(step, unreviewedOnly) {
    var list = order();
    if (!list.length) { return; }
    var i = current === null ? -1 : list.map(function (it) { return it.n; }).indexOf(current);
    for (var k = 1; k <= list.length; k++) {
      var j = ((i + step * k) % list.length + list.length) % list.length;
      if (i < 0 && step < 0) { j = list.length - k; }
      if (!unreviewedOnly || !done(list[j])) { focus(list[j]); return; }
    }
  }
  function focus(it) {
    current = it.n;
    Array.prototype.forEach.call(document.querySelectorAll(".turn.rv-cur"), function (e) { e.classList.remove("rv-cur"); });
    var art = document.getElementById("turn-" + it.n);
    if (art) {
      art.classList.add("rv-cur");
      art.scrollIntoView({ block: "center" });
    }
    bar.querySelector(".rv-at").textContent = "turn " + it.n;
  }
  function progress() {
    var n = data.items.filter(done).length;
    bar.querySelector(".rv-progress").textContent = n + " / " + data.items.length + " turns reviewed";
    bar.setAttribute("data-reviewed", String(n));
  }

  function cell(v) {
    var s = v === null || v === undefined ? "" : String(v);
    if (FORMULA.test(s)) { s = "'" + s; }
    return /[",\n\r]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
  }
  function sheet() {
    var rows = [data.columns.join(",")];
    data.items.forEach(function (it) {
      if (!done(it)) { return; }
      var w = work[it.n], row = {};
      row.item_id = data.session_id + ":" + it.n;
      row.session_id = data.session_id;
      row.turn = it.n;
      row.speaker = it.role;
      row.speaker_id = it.sid;
      row.model_uncertainty = it.unc;
      Object.keys(it.model).forEach(function (name) {
        row["model_" + name] = it.model[name].join(";");
        var codes = w.codes[name] || [];
        row[name] = codes.length ? codes.join(";") : "none";
      });
      row.note = w.note || "";
      rows.push(data.columns.map(function (c) { return cell(row[c]); }).join(","));
    });
    return rows.join("\r\n") + "\r\n";
  }
  function save() {
    var blob = new Blob(["\ufeff" + sheet()], { type: "text/csv;charset=utf-8" });
    var a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = "review-" + data.session_id.replace(/[^A-Za-z0-9._-]+/g, "_") + ".csv";
    document.body.appendChild(a);
    a.click();
    setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
    bar.setAttribute("data-saved", String(data.items.filter(done).length));
  }

  function codebook() {
    var dl = bar.querySelector(".rv-defs");
    data.layers.forEach(function (l) {
      dl.appendChild(el("dt", "rv-layer", l.name + " (" + l.role + ")"));
      l.codes.forEach(function (c) {
        dl.appendChild(el("dt", "", c.display + " \u00b7 " + c.code));
        dl.appendChild(el("dd", "", c.description || ""));
      });
    });
  }

  var built = false;
  function start() {
    if (!built) {
      codebook();
      data.items.forEach(function (it) {
        var art = document.getElementById("turn-" + it.n);
        if (!art) { return; }
        var box = panel(it);
        art.querySelector(".body").appendChild(box);
        box.paint();
      });
      built = true;
    }
    document.body.classList.toggle("reviewing");
    bar.hidden = !document.body.classList.contains("reviewing");
    button.setAttribute("aria-pressed", String(!bar.hidden));
    progress();
    if (!bar.hidden && current === null) { go(1, true); }
  }

  button.addEventListener("click", start);
  bar.querySelector(".rv-next").addEventListener("click", function () { go(1, true); });
  bar.querySelector(".rv-prev").addEventListener("click", function () { go(-1, false); });
  bar.querySelector(".rv-save").addEventListener("click", save);
  bar.querySelector(".rv-clear").addEventListener("click", function () {
    if (!window.confirm("Forget every review of this session kept in this browser?")) { return; }
    work = {};
    store();
    data.items.forEach(repaint);
  });
  document.getElementById("rv-uncertain").addEventListener("change", function () { current = null; go(1, true); });
  document.addEventListener("keydown", function (ev) {
    if (bar.hidden || ev.ctrlKey || ev.metaKey || ev.altKey) { return; }
    var tag = ev.target && ev.target.tagName;
    if (tag === "INPUT" && ev.target.type === "text" || tag === "TEXTAREA") { return; }
    var it = current === null ? null : byN[current];
    if (ev.key === "j") { go(1, true); } else if (ev.key === "k") { go(-1, false); } else if (ev.key === "a" && it) {
      setModel(it);
      go(1, true);
    } else if (ev.key === "n" && it) {
      setNone(it);
      go(1, true);
    } else if (ev.key === "s") { save(); } else { return; }
    ev.preventDefault();
  });
  if (/[?&#]review\b/.test(location.search + location.hash)) { start(); }
  bar.setAttribute("data-ready", "1");
})();
