/* virtraft report: the navigable run. Reads the JSON in #report-data (see
   virtraft/report/navigate.py), draws the diagram for the chosen window,
   the plots over virtual time, the events table and the state of every
   node before and after the selected event. Fetches nothing. */
(function () {
  'use strict';
  var el = document.getElementById('report-data');
  if (!el) return;
  var T0 = performance.now();
  var D = JSON.parse(el.textContent);
  var N = D.steps;
  var LANE_H = 40, LANE_GAP = 10, AXIS_H = 34, NET_H = 22, TOP = AXIS_H + NET_H + 10;
  var NODE_COLORS = ['#4e79a7', '#f28e2b', '#59a14f', '#b07aa1', '#76b7b2', '#edc948',
    '#9c755f', '#bab0ac', '#ff9da7'];

  // ------------------------------------------------------------ the facts
  var ms = new Array(D.ms.length);
  var acc = 0;
  for (var i = 0; i < D.ms.length; i++) { acc += D.ms[i]; ms[i] = acc; }
  function msAt(step) { return ms[Math.min(Math.max(step, 0), ms.length - 1)]; }
  var arrowAt = new Array(N + 2), lossAt = new Array(N + 2), marksAt = {};
  D.arrows.forEach(function (a) { arrowAt[a[4]] = a; });
  D.losses.forEach(function (x) { if (x[5] === 'dropped') lossAt[x[4]] = x; });
  D.marks.forEach(function (m) { (marksAt[m[0]] = marksAt[m[0]] || []).push(m); });
  var decisive = {};
  D.decisive.forEach(function (d) { decisive[d[0]] = d[1]; });
  var kindRole = D.kindRoles;
  function esc(s) {
    return String(s).replace(/[&<>"]/g, function (c) {
      return {'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;'}[c];
    });
  }
  function cssName(k) { return k.replace(/[^A-Za-z0-9_-]/g, '_') || '_'; }
  function last(list, step) {  // the last record at or before `step` (records sorted by step)
    if (!list) return null;
    var lo = 0, hi = list.length - 1, found = null;
    while (lo <= hi) {
      var mid = (lo + hi) >> 1;
      if (list[mid][0] <= step) { found = list[mid]; lo = mid + 1; } else hi = mid - 1;
    }
    return found;
  }
  function stateAt(node, step) { return last(D.states[node], step); }
  function tailAt(node, step, lastIndex, snap) {
    // each index from the latest record at or before `step` that wrote it
    var list = D.tails[node], out = [], from = Math.max(snap + 1, lastIndex - 5, 1), upper = lastIndex + 1;
    if (!list) return out;
    var lo = 0, hi = list.length - 1, at = -1;
    while (lo <= hi) { var mid = (lo + hi) >> 1; if (list[mid][0] <= step) { at = mid; lo = mid + 1; } else hi = mid - 1; }
    var got = {};
    for (var k = at; k >= 0 && upper > from; k--) {
      var r = list[k], top = Math.min(r[2], upper - 1);
      for (var i = Math.max(r[1], from); i <= top; i++) got[i] = r[3][i - r[1]];
      upper = Math.min(upper, r[1]);
    }
    for (var j = from; j <= lastIndex; j++) if (got[j] && got[j].length) out.push([j].concat(got[j]));
    return out;
  }
  function isHeartbeat(a) { return kindRole[a[2]] === 'append' && a[6] === 0; }
  function eventNodes(step) {
    var e = D.ev[step - 1];
    var kind = D.eventKinds[e[0]];
    if (kind === 'Deliver' || kind === 'Drop' || kind === 'Duplicate') return [e[1], e[2]];
    if (e.length > 1) return [e[1]];
    return null;  // the network's: every node
  }
  function eventText(step) {
    var e = D.ev[step - 1];
    if (!e) return '';
    var kind = D.eventKinds[e[0]];
    if (D.text[step]) return D.text[step];
    switch (kind) {
      case 'Tick': return 'clock +' + e[2] + ' ms; node ' + e[1] + ' ticks';
      case 'Deliver':
        var a = arrowAt[step], t = 'deliver ' + D.kinds[e[3]] + ' ' + e[1] + '→' + e[2];
        if (a) t += ' (sent at step ' + a[3] + '): ' + D.messageTexts[a[7]] + (a[5] & 4 ? ' — node is down, message lost' : '');
        return t;
      case 'Drop': return 'network drops ' + D.kinds[e[3]] + ' ' + e[1] + '→' + e[2];
      case 'Duplicate': return 'network duplicates ' + D.kinds[e[3]] + ' ' + e[1] + '→' + e[2];
      case 'Crash': return 'node ' + e[1] + ' crashes';
      case 'Restart': return 'node ' + e[1] + ' restarts from its disk';
      case 'TakeSnapshot': return 'node ' + e[1] + ' snapshots';
      case 'CompleteIO': return 'node ' + e[1] + ' completes a disk request';
      case 'ClientInvoke': return 'client ' + e[1] + ' invokes ' + e[2] + ' ' + e[3];
    }
    return kind;
  }

  // ------------------------------------------------------------ what the reader chose
  var view = {
    start: D.window[0], end: D.window[1], sel: null,
    nodes: {}, kinds: {}, hideTicks: false, hideHeartbeats: false
  };
  D.nodes.forEach(function (n) { view.nodes[n] = true; });
  D.kinds.forEach(function (k, i) { view.kinds[i] = true; });
  function shownNodes() { return D.nodes.filter(function (n) { return view.nodes[n]; }); }
  function arrowShown(a) {
    if (!view.kinds[a[2]]) return false;
    if (!view.nodes[a[0]] && !view.nodes[a[1]]) return false;
    return !(view.hideHeartbeats && isHeartbeat(a));
  }
  function eventShown(step) {
    var e = D.ev[step - 1];
    var kind = D.eventKinds[e[0]];
    if (kind === 'Tick' && view.hideTicks && !decisive[step] && !D.notes[step]) return false;
    if (kind === 'Deliver' || kind === 'Drop' || kind === 'Duplicate') {
      if (!view.kinds[e[3]]) return false;
      var a = arrowAt[step];
      if (a && view.hideHeartbeats && isHeartbeat(a)) return false;
    }
    var nodes = eventNodes(step);
    if (!nodes) return true;
    return nodes.some(function (n) { return view.nodes[n]; });
  }
  function setWindow(start, end) {
    var width = Math.max(1, Math.round(end - start + 1));
    width = Math.min(width, N);
    start = Math.round(start);
    start = Math.max(1, Math.min(start, N - width + 1));
    view.start = start;
    view.end = start + width - 1;
    draw();
  }
  function zoom(factor, around) {
    var width = view.end - view.start + 1;
    var c = around === undefined ? (view.sel && view.sel >= view.start && view.sel <= view.end
      ? view.sel : (view.start + view.end) / 2) : around;
    var next = Math.max(10, Math.round(width * factor));
    var frac = (c - view.start) / width;
    setWindow(c - frac * next, c - frac * next + next - 1);
  }
  function pan(fraction) {
    var width = view.end - view.start + 1;
    var by = Math.round(width * fraction) || (fraction > 0 ? 1 : -1);
    setWindow(view.start + by, view.end + by);
  }
  function select(step, scroll) {
    if (!(step >= 1 && step <= N)) return;
    view.sel = step;
    if (step < view.start || step > view.end) {
      var width = view.end - view.start + 1;
      setWindow(step - Math.floor(width / 2), step - Math.floor(width / 2) + width - 1);
    } else draw();
    if (scroll) {
      var row = document.querySelector('#events tr[data-step="' + step + '"]');
      if (row && row.scrollIntoView) row.scrollIntoView({block: 'nearest'});
    }
  }

  // ------------------------------------------------------------ the diagram
  function num(v) { return (Math.round(v * 10) / 10).toString(); }
  function geometry() {
    var box = document.getElementById('diagram-scroll');
    var avail = Math.max(300, (box ? box.clientWidth : 1200) - 4);
    var n = view.end - view.start + 1;
    var pps = Math.min(80, avail / n);
    var rows = {}, nodes = shownNodes();
    nodes.forEach(function (node, i) { rows[node] = i; });
    return {
      pps: pps, left: 0, width: Math.max(avail, n * pps), rows: rows, nodes: nodes,
      height: TOP + nodes.length * (LANE_H + LANE_GAP) + 8,
      x: function (s) { return (s - view.start + 0.5) * pps; },
      y: function (node) { return TOP + rows[node] * (LANE_H + LANE_GAP) + LANE_H / 2; },
      top: function (node) { return TOP + rows[node] * (LANE_H + LANE_GAP); }
    };
  }
  function tickEvery(pps) {
    var steps = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000, 20000, 50000];
    for (var i = 0; i < steps.length; i++) if (steps[i] * pps >= 80) return steps[i];
    return 100000;
  }
  function drawDiagram() {
    var g = geometry(), out = [], s0 = view.start, s1 = view.end;
    var clampX = function (s) { return Math.min(Math.max(g.x(s), 0), g.width); };
    out.push('<svg class="diagram" id="diagram" data-first-step="' + s0 + '" data-last-step="' + s1 +
      '" width="' + num(g.width) + '" height="' + g.height + '" viewBox="0 0 ' + num(g.width) + ' ' +
      g.height + '" role="img" aria-label="space-time diagram, steps ' + s0 + ' to ' + s1 + '">');
    out.push('<defs>');
    D.kinds.forEach(function (k) {
      out.push('<marker id="ah-' + cssName(k) + '" class="m-' + cssName(k) + '" viewBox="0 0 8 8" ' +
        'refX="7.5" refY="4" markerWidth="5" markerHeight="5" orient="auto"><path d="M0,0L8,4L0,8z"/></marker>');
    });
    out.push('</defs><rect class="bg" x="0" y="0" width="' + num(g.width) + '" height="' + g.height + '"/>');
    // axis: step and virtual time; the labels at the edges are anchored inwards
    var every = tickEvery(g.pps), first = Math.ceil(s0 / every) * every;
    out.push('<g class="axis">');
    for (var s = first; s <= s1; s += every) {
      var x = g.x(s), anchor = x < 30 ? 'start' : (x > g.width - 30 ? 'end' : 'middle');
      out.push('<line x1="' + num(x) + '" y1="' + (AXIS_H - 6) + '" x2="' + num(x) + '" y2="' + g.height +
        '" class="grid"/><text x="' + num(x) + '" y="12" class="tick" text-anchor="' + anchor + '">' + s +
        '</text><text x="' + num(x) + '" y="25" class="tick ms" text-anchor="' + anchor + '">' + msAt(s) + ' ms</text>');
    }
    out.push('</g>');
    // the network: partitioned stretches
    out.push('<g class="network">');
    D.partitions.forEach(function (p) {
      if (p[1] < s0 || p[0] > s1) return;
      var x1 = clampX(p[0]), x2 = clampX(p[1]);
      out.push('<rect class="partitioned" x="' + num(x1) + '" y="' + (AXIS_H + 4) + '" width="' +
        num(Math.max(x2 - x1, 1)) + '" height="' + (NET_H - 4) + '"><title>' + esc(p[2]) + ' (steps ' +
        p[0] + '–' + p[1] + ')</title></rect>');
    });
    out.push('</g>');
    // lanes: role and term
    g.nodes.forEach(function (node) {
      var top = g.top(node);
      out.push('<g class="lane" data-node="' + node + '">');
      (D.segments[node] || []).forEach(function (seg) {
        if (seg[1] <= s0 - 1 || seg[0] > s1) return;
        var x1 = clampX(seg[0] - 0.5), x2 = clampX(seg[1] - 0.5);
        if (x2 <= x1) return;
        var role = D.roles[seg[2]];
        out.push('<rect class="role role-' + role + '" x="' + num(x1) + '" y="' + num(top) + '" width="' +
          num(x2 - x1) + '" height="' + LANE_H + '"><title>node ' + node + ' ' + role + ', term ' + seg[3] +
          ', steps ' + seg[0] + '–' + (seg[1] - 1) + '</title></rect>');
        if (x2 - x1 >= 22) {
          out.push('<text class="term" x="' + num(Math.max(x1, 0) + 2) + '" y="' + num(top + 10) + '">' +
            (role === 'down' ? 'down' : 't' + seg[3]) + '</text>');
        }
      });
      out.push('<line class="lane-line" x1="0" y1="' + num(g.y(node)) + '" x2="' + num(g.width) + '" y2="' +
        num(g.y(node)) + '"/></g>');
    });
    // decisive steps and the selection
    D.decisive.forEach(function (d) {
      if (d[0] < s0 || d[0] > s1) return;
      out.push('<rect class="decisive-band" data-step="' + d[0] + '" x="' + num(g.x(d[0]) - Math.max(g.pps, 6) / 2) +
        '" y="' + AXIS_H + '" width="' + num(Math.max(g.pps, 6)) + '" height="' + (g.height - AXIS_H) +
        '"><title>decisive: step ' + d[0] + ': ' + esc(d[1]) + '</title></rect>');
    });
    if (D.phase && D.phase >= s0 && D.phase <= s1) {
      var px = num(g.x(D.phase) - g.pps / 2);
      out.push('<g class="phase"><line x1="' + px + '" y1="' + AXIS_H + '" x2="' + px + '" y2="' + g.height +
        '"/><text x="' + px + '" y="' + (g.height - 2) + '" dx="3">liveness phase →</text></g>');
    }
    // marks
    for (s = s0; s <= s1; s++) {
      var ms_ = marksAt[s];
      if (!ms_) continue;
      ms_.forEach(function (m) {
        var x = num(g.x(m[0]));
        var title = '<title>step ' + m[0] + ' (' + msAt(m[0]) + ' ms): ' + esc(m[3] || (D.notes[m[0]] || []).join('; ')) + '</title>';
        if (m[2] === 'partition' || m[2] === 'heal') {
          out.push('<g class="' + m[2] + '" data-step="' + m[0] + '"><line x1="' + x + '" y1="' + AXIS_H +
            '" x2="' + x + '" y2="' + g.height + '"/>' + title + '</g>');
          return;
        }
        if (!(m[1] in g.rows)) return;
        var top = g.top(m[1]);
        if (m[2] === 'commit') {
          out.push('<circle class="commit ev" data-step="' + m[0] + '" cx="' + x + '" cy="' + num(top + LANE_H - 6) +
            '" r="3">' + title + '</circle>');
          return;
        }
        var sym = {crash: '✕', restart: '↻', member: '◆', snapshot: '▣', install: '▤', client: '▾', dup: '+'}[m[2]] || '•';
        var yy = top + (m[2] === 'client' || m[2] === 'dup' ? 13 : LANE_H - 2);
        out.push('<text class="mark ev ' + m[2] + '" data-step="' + m[0] + '" x="' + x + '" y="' + num(yy) + '">' +
          sym + title + '</text>');
      });
    }
    // messages: from their send to their delivery
    D.arrows.forEach(function (a) {
      if (a[4] < s0 || a[4] > s1 || !(a[0] in g.rows) || !(a[1] in g.rows) || !arrowShown(a)) return;
      var k = cssName(D.kinds[a[2]]);
      var cls = 'msg ev m-' + k + (a[5] & 1 ? ' carries' : '') + (a[5] & 2 ? ' prevote' : '') +
        (a[5] & 4 ? ' to-down' : '') + (a[3] < s0 ? ' early' : '') + (decisive[a[4]] ? ' decisive' : '') +
        (view.sel === a[4] ? ' selected' : '');
      out.push('<line class="' + cls + '" data-step="' + a[4] + '" x1="' + num(g.x(a[3])) + '" y1="' +
        num(g.y(a[0])) + '" x2="' + num(g.x(a[4])) + '" y2="' + num(g.y(a[1])) + '" marker-end="url(#ah-' + k +
        ')"><title>step ' + a[4] + ': ' + esc(D.kinds[a[2]]) + ' ' + a[0] + '→' + a[1] + ', sent step ' + a[3] +
        ': ' + esc(D.messageTexts[a[7]]) + '</title></line>');
    });
    D.losses.forEach(function (x) {
      if (x[4] < s0 || x[4] > s1 || !(x[0] in g.rows) || !(x[1] in g.rows) || !view.kinds[x[2]]) return;
      var ys = g.y(x[0]), ym = (ys + g.y(x[1])) / 2, x2 = g.x(x[4]);
      if (x[5] === 'cut') {
        out.push('<g class="lost ev" data-step="' + x[4] + '"><path d="M' + num(x2 - 2) + ',' + num(ys - 7) +
          'l4,4m0,-4l-4,4"/><title>' + esc(D.kinds[x[2]]) + ' ' + x[0] + '→' + x[1] +
          ' sent on a cut link at step ' + x[4] + '</title></g>');
        return;
      }
      var send = x[3] < 0 ? x[4] : x[3];
      out.push('<g class="dropped ev" data-step="' + x[4] + '"><line x1="' + num(g.x(send)) + '" y1="' + num(ys) +
        '" x2="' + num(x2) + '" y2="' + num(ym) + '"/><path d="M' + num(x2 - 3) + ',' + num(ym - 3) +
        'l6,6m0,-6l-6,6"/><title>' + esc(D.kinds[x[2]]) + ' ' + x[0] + '→' + x[1] + ' dropped at step ' + x[4] +
        '</title></g>');
    });
    // the violation
    var v = D.violation, vs = D.violationStep;
    if (v && vs && vs >= s0 && vs <= s1) {
      var vx = g.x(vs), words = v.invariant + ' at step ' + vs + ': ' + (v.message || '');
      var right = vx > g.width / 2;
      out.push('<g class="violation ev" id="violation" data-step="' + vs + '" data-invariant="' + esc(v.invariant) +
        '"><rect class="vband" x="' + num(vx - Math.max(g.pps, 6) / 2) + '" y="' + AXIS_H + '" width="' +
        num(Math.max(g.pps, 6)) + '" height="' + (g.height - AXIS_H) + '"/>');
      (v.nodes || []).forEach(function (n) {
        if (n in g.rows) out.push('<circle class="vnode" cx="' + num(vx) + '" cy="' + num(g.y(n)) + '" r="7"/>');
      });
      out.push('<text class="vtext" x="' + num(right ? vx - 8 : vx + 8) + '" y="' + (AXIS_H + 15) +
        '" text-anchor="' + (right ? 'end' : 'start') + '">' + esc(words.length > 110 ? words.slice(0, 109) + '…' : words) +
        '</text><title>' + esc(words) + '</title></g>');
    }
    if (view.sel && view.sel >= s0 && view.sel <= s1) {
      var sx = num(g.x(view.sel));
      out.push('<line class="sel-line" id="sel-line" x1="' + sx + '" y1="' + AXIS_H + '" x2="' + sx + '" y2="' + g.height + '"/>');
    }
    out.push('</svg>');
    document.getElementById('diagram-scroll').innerHTML = out.join('');
    var labels = ['<svg class="labels" width="96" height="' + g.height + '" viewBox="0 0 96 ' + g.height + '">' +
      '<text x="4" y="12" class="tick">step</text><text x="4" y="25" class="tick ms">virtual time</text>'];
    g.nodes.forEach(function (n) {
      labels.push('<text class="lane-label" data-node="' + n + '" x="4" y="' + num(g.y(n) + 4) + '">node ' + n + '</text>');
    });
    document.getElementById('diagram-labels').innerHTML = labels.join('') + '</svg>';
  }

  // ------------------------------------------------------------ plots over virtual time
  var PLOT_W = 1200, PLOT_L = 96;
  function plotX(t) { var end = Math.max(1, msAt(N)); return PLOT_L + t / end * (PLOT_W - PLOT_L - 8); }
  function stepAtX(px) {
    var end = Math.max(1, msAt(N)), t = (px - PLOT_L) / (PLOT_W - PLOT_L - 8) * end;
    var lo = 0, hi = N;  // the first step whose clock reaches t
    while (lo < hi) { var mid = (lo + hi) >> 1; if (ms[mid] < t) lo = mid + 1; else hi = mid; }
    return Math.max(1, Math.min(N, lo));
  }
  function linePlot(title, field, y0, h) {
    var maxv = 1, out = [];
    D.nodes.forEach(function (n) { (D.states[n] || []).forEach(function (r) { if (r[field] > maxv) maxv = r[field]; }); });
    out.push('<text class="plot-label" x="2" y="' + (y0 + 12) + '">' + title + '</text>' +
      '<text class="tick" x="' + (PLOT_L - 4) + '" y="' + (y0 + 10) + '" text-anchor="end">' + maxv + '</text>' +
      '<text class="tick" x="' + (PLOT_L - 4) + '" y="' + (y0 + h) + '" text-anchor="end">0</text>');
    D.nodes.forEach(function (n, i) {
      var pts = [], prev = null;
      (D.states[n] || []).forEach(function (r) {
        if (r[field] < 0) return;  // down: its commit index is not known; the line holds
        var v = r[field], x = num(plotX(msAt(r[0]))), y = num(y0 + h - v / maxv * (h - 4));
        if (prev !== null) pts.push(x + ',' + prev);
        pts.push(x + ',' + y);
        prev = y;
      });
      if (prev !== null) pts.push(num(plotX(msAt(N))) + ',' + prev);
      out.push('<polyline class="series" data-node="' + n + '" fill="none" stroke="' + NODE_COLORS[i % NODE_COLORS.length] +
        '" points="' + pts.join(' ') + '"><title>node ' + n + ' ' + title + '</title></polyline>');
    });
    return out.join('');
  }
  function drawPlots() {
    var box = document.getElementById('plots');
    if (!box) return;
    PLOT_W = Math.max(600, box.clientWidth - 4);
    var out = [], y = 4, H = 70;
    out.push(linePlot('term', 2, y, H)); y += H + 14;
    out.push(linePlot('commit index', 4, y, H)); y += H + 14;
    // who led: a band per leader stretch, in the leader's colour
    out.push('<text class="plot-label" x="2" y="' + (y + 12) + '">leader</text>');
    D.nodes.forEach(function (n, i) {
      (D.segments[n] || []).forEach(function (seg) {
        if (D.roles[seg[2]] !== 'leader') return;
        var x1 = plotX(msAt(seg[0])), x2 = plotX(msAt(seg[1] - 1));
        out.push('<rect class="led" data-node="' + n + '" x="' + num(x1) + '" y="' + y + '" width="' +
          num(Math.max(x2 - x1, 1)) + '" height="16" fill="' + NODE_COLORS[i % NODE_COLORS.length] +
          '"><title>node ' + n + ' leads in term ' + seg[3] + ', steps ' + seg[0] + '–' + (seg[1] - 1) + '</title></rect>');
      });
    });
    y += 16 + 14;
    // messages per second of virtual time, in about 60 bins of a round width
    var endMs = Math.max(1, msAt(N)), binMs = 1000;
    [10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 60000].some(function (w) { binMs = w; return endMs / w <= 80; });
    var nb = Math.max(1, Math.ceil(endMs / binMs)), bins = new Array(nb).fill(0), top = 0;
    D.arrows.forEach(function (a) { bins[Math.min(nb - 1, Math.floor(msAt(a[4]) / binMs))]++; });
    bins = bins.map(function (c) { return c * 1000 / binMs; });
    bins.forEach(function (c) { if (c > top) top = c; });
    top = top || 1;
    out.push('<text class="plot-label" x="2" y="' + (y + 12) + '">messages/s</text><text class="tick" x="' +
      (PLOT_L - 4) + '" y="' + (y + 10) + '" text-anchor="end">' + Math.round(top) + '</text>');
    var bw = (PLOT_W - PLOT_L - 8) * binMs / endMs;
    bins.forEach(function (c, b) {
      var bh = c / top * (H - 4);
      out.push('<rect class="rate" x="' + num(PLOT_L + b * bw) + '" y="' + num(y + H - bh) + '" width="' +
        num(Math.max(Math.min(bw, PLOT_W - 8 - PLOT_L - b * bw) - 0.5, 0.5)) + '" height="' + num(bh) + '"><title>' +
        b * binMs + '–' + (b + 1) * binMs + ' ms: ' + Math.round(c) + ' messages/s</title></rect>');
    });
    y += H + 6;
    out.push('<text class="tick" x="' + PLOT_L + '" y="' + (y + 10) + '" text-anchor="start">0 ms</text>' +
      '<text class="tick" x="' + num(PLOT_W - 8) + '" y="' + (y + 10) + '" text-anchor="end">' + msAt(N) + ' ms</text>');
    out.push('<rect class="window" id="plot-window" x="0" y="0" width="0" height="' + y + '"/>');
    var legend = D.nodes.map(function (n, i) {
      return '<span><i class="swatch" style="background:' + NODE_COLORS[i % NODE_COLORS.length] + '"></i>node ' + n + '</span>';
    }).join('');
    box.innerHTML = '<svg id="plots-svg" width="' + PLOT_W + '" height="' + (y + 14) + '" viewBox="0 0 ' + PLOT_W + ' ' +
      (y + 14) + '">' + out.join('') + '</svg><div class="legend">in the plots, colour is the node: ' + legend + '</div>';
    box.querySelector('svg').addEventListener('click', function (ev) {
      var r = this.getBoundingClientRect(), step = stepAtX(ev.clientX - r.left);
      var width = view.end - view.start + 1;
      setWindow(step - width / 2, step - width / 2 + width - 1);
    });
  }
  function drawWindowMarks() {
    var w = document.getElementById('plot-window');
    if (w) {
      var x1 = plotX(msAt(view.start - 1)), x2 = plotX(msAt(view.end));
      w.setAttribute('x', num(x1)); w.setAttribute('width', num(Math.max(x2 - x1, 2)));
    }
    var o = document.getElementById('overview-window');
    if (o) {
      var per = Number(o.getAttribute('data-px-per-step')), left = Number(o.getAttribute('data-left'));
      o.setAttribute('x', num(left + view.start * per));
      o.setAttribute('width', num(Math.max((view.end - view.start + 1) * per, 2)));
    }
  }

  // ------------------------------------------------------------ the events table
  var TABLE_ROWS_MAX = 2000;
  function drawTable() {
    var box = document.getElementById('events');
    if (!box) return;
    var rows = [], shown = 0, hidden = 0;
    for (var s = view.start; s <= view.end; s++) {
      if (!eventShown(s)) { hidden++; continue; }
      if (shown >= TABLE_ROWS_MAX) { hidden++; continue; }
      shown++;
      var cls = (decisive[s] ? 'decisive ' : '') + (s === view.sel ? 'selected ' : '') +
        (s === D.violationStep ? 'violation-row ' : '');
      rows.push('<tr data-step="' + s + '" class="' + cls + '"><td>' + s + '</td><td>' + msAt(s) + '</td><td class="mono">' +
        esc(eventText(s)) + '</td><td>' + esc((D.notes[s] || []).join('; ')) +
        (decisive[s] ? ' <b class="why">decisive: ' + esc(decisive[s]) + '</b>' : '') + '</td></tr>');
    }
    document.getElementById('events-note').textContent = 'Steps ' + view.start + '–' + view.end + ': ' + shown +
      ' events shown' + (hidden ? ', ' + hidden + ' hidden by the filters' + (shown >= TABLE_ROWS_MAX ?
      ' or past the first ' + TABLE_ROWS_MAX + ' rows (narrow the window)' : '') : '') + '. Click a row for every node\'s state.';
    box.innerHTML = '<tr><th>step</th><th>ms</th><th>event</th><th>what changed</th></tr>' + rows.join('');
  }

  // ------------------------------------------------------------ one event in detail
  function stateCells(node, step) {
    var r = stateAt(node, step);
    if (!r) return null;
    var tail = tailAt(node, step, r[5], r[6]);
    return {
      role: D.roles[r[1]], term: r[2], vote: r[3] === null ? '—' : r[3], commit: r[4] < 0 ? '—' : r[4],
      last: r[5] + (r[6] ? ' (snapshot ' + r[6] + ')' : ''),
      log: tail.map(function (e) { return e[0] + ':t' + e[1] + '#' + e[2] + (e[3] ? ' ' + e[3] : ''); }).join(' ') || '(empty)'
    };
  }
  function drawDetail() {
    var box = document.getElementById('detail');
    if (!box) return;
    var s = view.sel;
    if (!s) { box.innerHTML = '<p class="note">Click an event in the diagram or the table.</p>'; return; }
    var out = ['<h3 id="detail-title">Step ' + s + ' (' + msAt(s) + ' ms)</h3><p class="mono" id="detail-event">' + esc(eventText(s)) + '</p>'];
    var a = arrowAt[s], x = lossAt[s];
    if (a) {
      out.push('<p id="detail-message">message: <span class="mono">' + esc(D.kinds[a[2]]) + ' ' + a[0] + '→' + a[1] +
        ', sent at step ' + a[3] + ' (' + msAt(a[3]) + ' ms), ' + (a[6] ? a[6] + ' entries' : 'no entries') + ': ' +
        esc(D.messageTexts[a[7]]) + '</span></p>');
    } else if (x) {
      out.push('<p id="detail-message">message: <span class="mono">' + esc(D.kinds[x[2]]) + ' ' + x[0] + '→' + x[1] +
        (x[3] >= 0 ? ', sent at step ' + x[3] : '') + ', dropped</span></p>');
    }
    if (decisive[s]) out.push('<p class="why">decisive: ' + esc(decisive[s]) + '</p>');
    if (D.notes[s]) out.push('<p>what changed: ' + esc(D.notes[s].join('; ')) + '</p>');
    var fields = ['role', 'term', 'vote', 'commit', 'last', 'log'];
    out.push('<table class="state" id="detail-state"><tr><th>node</th><th></th>' + fields.map(function (f) {
      return '<th>' + (f === 'log' ? 'log tail (index:term#id)' : f === 'last' ? 'last index' : f) + '</th>';
    }).join('') + '</tr>');
    var nodes = eventNodes(s) || [];
    D.nodes.forEach(function (n) {
      var before = stateCells(n, s - 1), after = stateCells(n, s);
      if (!before && !after) return;
      var acts = nodes.indexOf(n) >= 0 ? ' class="acts"' : '';
      [['before', before], ['after', after]].forEach(function (pair, k) {
        var cells = pair[1];
        out.push('<tr data-node="' + n + '" data-when="' + pair[0] + '"' + acts + '>' + (k === 0 ? '<th rowspan="2">node ' + n + '</th>' : '') +
          '<td>' + pair[0] + '</td>' + fields.map(function (f) {
            if (!cells) return '<td>—</td>';
            var changed = k === 1 && before && String(before[f]) !== String(cells[f]);
            return '<td class="f-' + f + (changed ? ' changed' : '') + '">' + esc(cells[f]) + '</td>';
          }).join('') + '</tr>');
      });
    });
    out.push('</table>');
    out.push('<p><button type="button" id="prev-event">← previous event</button> <button type="button" id="next-event">next event →</button></p>');
    box.innerHTML = out.join('');
    document.getElementById('prev-event').onclick = function () { step(-1); };
    document.getElementById('next-event').onclick = function () { step(1); };
  }
  function step(dir) {
    for (var s = (view.sel || view.start) + dir; s >= 1 && s <= N; s += dir) {
      if (eventShown(s)) { select(s, true); return; }
    }
  }

  // ------------------------------------------------------------ controls
  function draw() {
    drawDiagram();
    drawWindowMarks();
    drawTable();
    drawDetail();
    var a = document.getElementById('win-start'), b = document.getElementById('win-end');
    if (a) { a.value = view.start; b.value = view.end; }
  }
  function on(id, what, fn) { var e = document.getElementById(id); if (e) e.addEventListener(what, fn); }
  on('zoom-in', 'click', function () { zoom(0.5); });
  on('zoom-out', 'click', function () { zoom(2); });
  on('pan-left', 'click', function () { pan(-0.5); });
  on('pan-right', 'click', function () { pan(0.5); });
  on('whole-run', 'click', function () { setWindow(1, N); });
  on('win-apply', 'click', function () {
    setWindow(Number(document.getElementById('win-start').value), Number(document.getElementById('win-end').value));
  });
  on('hide-ticks', 'change', function () { view.hideTicks = this.checked; draw(); });
  on('hide-heartbeats', 'change', function () { view.hideHeartbeats = this.checked; draw(); });
  document.querySelectorAll('input.f-node').forEach(function (box) {
    box.addEventListener('change', function () { view.nodes[this.getAttribute('data-node')] = this.checked; draw(); });
  });
  document.querySelectorAll('input.f-kind').forEach(function (box) {
    box.addEventListener('change', function () { view.kinds[D.kinds.indexOf(this.getAttribute('data-kind'))] = this.checked; draw(); });
  });
  document.querySelectorAll('a.goto').forEach(function (link) {
    link.addEventListener('click', function (ev) {
      ev.preventDefault();
      select(Number(this.getAttribute('data-step')), true);
      document.getElementById('navigator').scrollIntoView();
    });
  });
  on('events', 'click', function (ev) {
    var tr = ev.target.closest('tr[data-step]');
    if (tr) select(Number(tr.getAttribute('data-step')));
  });
  var scroller = document.getElementById('diagram-scroll');
  var drag = null;
  if (scroller) {
    scroller.addEventListener('click', function (ev) {
      if (drag && drag.moved) return;
      var hit = ev.target.closest('[data-step]');
      if (hit && hit.id !== 'diagram') { select(Number(hit.getAttribute('data-step')), true); return; }
      var svg = document.getElementById('diagram');
      if (!svg) return;
      var r = svg.getBoundingClientRect(), g = geometry();
      select(Math.round(view.start - 0.5 + (ev.clientX - r.left) / g.pps), true);
    });
    scroller.addEventListener('wheel', function (ev) {  // ctrl + wheel zooms, a sideways wheel pans
      if (ev.ctrlKey || ev.metaKey) {
        ev.preventDefault();
        var r = scroller.getBoundingClientRect(), g = geometry();
        zoom(ev.deltaY > 0 ? 1.25 : 0.8, view.start - 0.5 + (ev.clientX - r.left) / g.pps);
      } else if (Math.abs(ev.deltaX) > Math.abs(ev.deltaY)) {
        ev.preventDefault();
        pan(ev.deltaX / 1000);
      }
    }, {passive: false});
    scroller.addEventListener('mousedown', function (ev) { drag = {x: ev.clientX, start: view.start, end: view.end, moved: false}; });
    window.addEventListener('mousemove', function (ev) {
      if (!drag || !(ev.buttons & 1)) return;
      var by = Math.round((drag.x - ev.clientX) / geometry().pps);
      if (Math.abs(ev.clientX - drag.x) > 4) drag.moved = true;
      if (drag.moved && drag.start + by !== view.start) setWindow(drag.start + by, drag.end + by);
    });
    window.addEventListener('mouseup', function () { setTimeout(function () { drag = null; }, 0); });
  }
  var overview = document.querySelector('svg.overview');
  if (overview) {
    overview.addEventListener('click', function (ev) {
      var o = document.getElementById('overview-window');
      var r = overview.getBoundingClientRect();
      var scale = overview.viewBox.baseVal.width / r.width;
      var per = Number(o.getAttribute('data-px-per-step')), left = Number(o.getAttribute('data-left'));
      var stepAt = ((ev.clientX - r.left) * scale - left) / per;
      var width = view.end - view.start + 1;
      setWindow(stepAt - width / 2, stepAt - width / 2 + width - 1);
    });
  }
  document.addEventListener('keydown', function (ev) {
    if (ev.target && /INPUT|SELECT|TEXTAREA/.test(ev.target.tagName)) return;
    if (ev.key === '+' || ev.key === '=') zoom(0.5);
    else if (ev.key === '-') zoom(2);
    else if (ev.key === 'ArrowLeft') { if (view.sel) step(-1); else pan(-0.25); }
    else if (ev.key === 'ArrowRight') { if (view.sel) step(1); else pan(0.25); }
    else return;
    ev.preventDefault();
  });
  var resizing = null;
  window.addEventListener('resize', function () {
    clearTimeout(resizing);
    resizing = setTimeout(function () { drawPlots(); draw(); }, 150);
  });

  drawPlots();
  draw();
  // How long the page took: the script alone, and since navigation began
  // (what a reader waits for); the browser tests record both.
  var now = performance.now();
  document.body.setAttribute('data-script-ms', (now - T0).toFixed(1));
  document.body.setAttribute('data-ready-ms', now.toFixed(1));
  window.virtraftReport = {view: view, select: select, setWindow: setWindow, zoom: zoom};
})();
