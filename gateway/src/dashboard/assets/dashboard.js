// Tideway dashboard: fetches the gateway's figures every few seconds and draws them, charts as
// inline SVG. Plain JavaScript, no libraries, no build step. Every figure drawn also carries its
// raw value in a data-* attribute, so tests (and people) can read exactly what was shown.
(function () {
  'use strict';

  var REFRESH_MS = 5000;
  var TOKEN_KEY = 'tideway.dashboard.token';
  var SVG = 'http://www.w3.org/2000/svg';
  // Chart colours, used nowhere else on the page (the browser test looks for them).
  var MEASURE_COLOURS = ['#1f6feb', '#e36209', '#2da44e', '#8250df', '#bf3989', '#0a7ea4', '#9a6700', '#cf222e'];
  var SUPPRESSED_FILL = '#d0d4d9';
  var SUPPRESSED_STRIPE = '#6e7781';
  var P50_COLOUR = '#8cc4ef';
  var P99_COLOUR = '#2f5f8a';
  var PROGRESS_COLOUR = '#3a8d5c';

  var refreshes = 0;
  var timer = null;

  function $(id) { return document.getElementById(id); }

  function token() {
    try { return window.sessionStorage.getItem(TOKEN_KEY) || ''; } catch (e) { return ''; }
  }

  function getJson(path) {
    var headers = { 'Accept': 'application/json' };
    var t = token();
    if (t) { headers['Authorization'] = 'Bearer ' + t; }
    return fetch(path, { headers: headers, cache: 'no-store', credentials: 'omit' }).then(function (res) {
      if (!res.ok) {
        var err = new Error('HTTP ' + res.status);
        err.status = res.status;
        throw err;
      }
      return res.json();
    });
  }

  // --- formatting -----------------------------------------------------------------------------

  function raw(v) { return v === null || v === undefined ? '' : String(v); }
  function int(v) { return v === null || v === undefined ? '–' : Number(v).toLocaleString('en-GB'); }
  function pct(v) { return v === null || v === undefined ? '–' : (v * 100).toFixed(1) + '%'; }
  function ms(v) { return v === null || v === undefined ? '–' : (v < 10 ? v.toFixed(1) : Math.round(v).toLocaleString('en-GB')) + ' ms'; }

  function setFigure(id, value, text) {
    var node = $(id);
    node.setAttribute('data-value', raw(value));
    node.textContent = text;
  }

  function clear(node) { while (node.firstChild) { node.removeChild(node.firstChild); } }

  function html(name, attrs, parent, text) {
    var node = document.createElement(name);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) { node.textContent = text; }
    if (parent) { parent.appendChild(node); }
    return node;
  }

  function svg(name, attrs, parent, text) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) { node.textContent = text; }
    if (parent) { parent.appendChild(node); }
    return node;
  }

  // A round axis maximum at or above `v` (1, 2 or 5 times a power of ten).
  function niceMax(v) {
    if (!(v > 0)) { return 1; }
    var p = Math.pow(10, Math.floor(Math.log10(v)));
    var steps = [1, 2, 5, 10];
    for (var i = 0; i < steps.length; i++) { if (steps[i] * p >= v) { return steps[i] * p; } }
    return 10 * p;
  }

  function swatch(parent, colour, label, hatched) {
    var item = html('span', { 'class': 'legend-item' }, parent);
    var s = svg('svg', { width: 14, height: 14, viewBox: '0 0 14 14', 'aria-hidden': 'true' }, item);
    if (hatched) {
      hatch(s, 'hatch-legend');
      svg('rect', { x: 0.5, y: 0.5, width: 13, height: 13, fill: 'url(#hatch-legend)', stroke: SUPPRESSED_STRIPE }, s);
    } else {
      svg('rect', { x: 0, y: 0, width: 14, height: 14, rx: 2, fill: colour }, s);
    }
    html('span', {}, item, label);
  }

  function hatch(root, id) {
    var defs = svg('defs', {}, root);
    var p = svg('pattern', { id: id, width: 6, height: 6, patternUnits: 'userSpaceOnUse', patternTransform: 'rotate(45)' }, defs);
    svg('rect', { width: 6, height: 6, fill: SUPPRESSED_FILL }, p);
    svg('line', { x1: 0, y1: 0, x2: 0, y2: 6, stroke: SUPPRESSED_STRIPE, 'stroke-width': 2 }, p);
  }

  // --- operations -----------------------------------------------------------------------------

  function renderOperations(ops) {
    var sources = ops.sources || [];
    var up = sources.filter(function (s) { return s.health === 'up'; }).length;
    var calls = sources.reduce(function (n, s) { return n + s.calls; }, 0);
    setFigure('sources-up', up, up + ' / ' + sources.length);
    $('sources-up').setAttribute('data-total', String(sources.length));
    setFigure('source-calls', calls, int(calls));
    setFigure('cache-hit-rate', ops.cache.hit_rate, pct(ops.cache.hit_rate));
    var detail = $('cache-detail');
    detail.setAttribute('data-hits', String(ops.cache.hits));
    detail.setAttribute('data-misses', String(ops.cache.misses));
    detail.textContent = int(ops.cache.hits) + ' hits, ' + int(ops.cache.misses) + ' misses';
    setFigure('consent-denials', ops.decisions.consent_denials, int(ops.decisions.consent_denials));
    setFigure('agreement-denials', ops.decisions.agreement_denials, int(ops.decisions.agreement_denials));
    setFigure('break-glass', ops.break_glass, int(ops.break_glass));
    setFigure('export-count', (ops.exports || []).length, int((ops.exports || []).length));
    renderSources(sources);
    renderLatency(sources);
    renderExports(ops.exports || []);
  }

  function renderSources(sources) {
    var body = $('sources-body');
    clear(body);
    if (!sources.length) {
      html('td', { colspan: 9, 'class': 'empty' }, html('tr', {}, body), 'No sources registered');
      return;
    }
    sources.forEach(function (s) {
      var tr = html('tr', {
        'class': 'source',
        'data-source': s.id,
        'data-health': s.health,
        'data-calls': raw(s.calls),
        'data-p50-ms': raw(s.p50_ms),
        'data-p99-ms': raw(s.p99_ms),
        'data-error-rate': raw(s.error_rate),
        'data-timeout-rate': raw(s.timeout_rate)
      }, body);
      html('td', {}, tr, s.id);
      html('td', {}, tr, s.kind);
      html('td', {}, tr, s.ods_code);
      html('span', { 'class': 'health health-' + s.health }, html('td', {}, tr), s.health);
      html('td', { 'class': 'num' }, tr, int(s.calls));
      html('td', { 'class': 'num' }, tr, ms(s.p50_ms));
      html('td', { 'class': 'num' }, tr, ms(s.p99_ms));
      html('td', { 'class': 'num' + (s.error_rate > 0 ? ' rate-bad' : '') }, tr, pct(s.error_rate));
      html('td', { 'class': 'num' + (s.timeout_rate > 0 ? ' rate-bad' : '') }, tr, pct(s.timeout_rate));
    });
  }

  function renderLatency(sources) {
    var chart = $('latency-chart');
    var legend = $('latency-legend');
    clear(chart);
    clear(legend);
    var measured = sources.filter(function (s) { return s.p99_ms !== null; });
    if (!measured.length) {
      html('p', { 'class': 'empty' }, chart, 'No source calls yet');
      return;
    }
    swatch(legend, P50_COLOUR, 'p50');
    swatch(legend, P99_COLOUR, 'p99');
    var width = Math.max(chart.clientWidth || 560, 320);
    var left = 120, right = 110, row = 24, top = 8;
    var plot = width - left - right;
    var max = niceMax(Math.max.apply(null, measured.map(function (s) { return s.p99_ms; })));
    var height = top + measured.length * row + 24;
    var root = svg('svg', { width: width, height: height, viewBox: '0 0 ' + width + ' ' + height, role: 'img', 'aria-label': 'Latency by source' }, chart);
    [0, 0.5, 1].forEach(function (f) {
      var x = left + Math.round(plot * f);
      svg('line', { x1: x, x2: x, y1: top, y2: height - 20, stroke: '#e3e8ed' }, root);
      svg('text', { x: x, y: height - 6, 'text-anchor': 'middle', 'font-size': 11, fill: '#5b6b78' }, root, ms(max * f));
    });
    measured.forEach(function (s, i) {
      var y = top + i * row;
      svg('text', { x: left - 8, y: y + 15, 'text-anchor': 'end', 'font-size': 12, fill: '#1f2328' }, root, s.id);
      var w99 = Math.max(1, Math.round(plot * s.p99_ms / max));
      var w50 = Math.max(1, Math.round(plot * s.p50_ms / max));
      svg('rect', { x: left, y: y + 3, width: w99, height: 16, fill: P99_COLOUR, 'shape-rendering': 'crispEdges' }, root);
      svg('rect', { x: left, y: y + 7, width: w50, height: 8, fill: P50_COLOUR, 'shape-rendering': 'crispEdges' }, root);
      svg('text', { x: left + w99 + 6, y: y + 15, 'font-size': 11, fill: '#41505c' }, root, ms(s.p50_ms) + ' / ' + ms(s.p99_ms));
    });
  }

  function renderExports(jobs) {
    var box = $('exports');
    clear(box);
    if (!jobs.length) {
      html('p', { 'class': 'empty' }, box, 'No export jobs');
      return;
    }
    var width = 220;
    var table = html('table', {}, box);
    var head = html('tr', {}, html('thead', {}, table));
    ['Job', 'State', 'Progress'].forEach(function (h) { html('th', {}, head, h); });
    var body = html('tbody', {}, table);
    jobs.forEach(function (j) {
      var p = Math.max(0, Math.min(1, Number(j.progress) || 0));
      var tr = html('tr', { 'class': 'export-job', 'data-id': j.id, 'data-state': j.state, 'data-progress': raw(j.progress) }, body);
      html('td', {}, tr, j.id);
      html('td', {}, tr, j.state);
      var cell = html('td', {}, tr);
      var bar = svg('svg', { width: width + 50, height: 14, role: 'img', 'aria-label': Math.round(p * 100) + '%' }, cell);
      svg('rect', { x: 0, y: 1, width: width, height: 12, rx: 3, fill: '#e3e8ed' }, bar);
      svg('rect', { x: 0, y: 1, width: Math.round(width * p), height: 12, rx: 3, fill: PROGRESS_COLOUR }, bar);
      svg('text', { x: width + 6, y: 11, 'font-size': 11, fill: '#41505c' }, bar, Math.round(p * 100) + '%');
    });
  }

  // --- population -----------------------------------------------------------------------------

  function renderPopulation(pop) {
    var chart = $('population-chart');
    var legend = $('population-legend');
    var note = $('population-note');
    clear(chart);
    clear(legend);
    if (!pop.generated || !pop.cells || !pop.cells.length) {
      chart.setAttribute('data-state', 'empty');
      note.textContent = 'No population figures yet.';
      return;
    }
    chart.setAttribute('data-state', 'drawn');
    note.textContent = 'Prevalence per 1,000 patients counted, by borough. Counts below ' + pop.threshold +
      ' are suppressed and drawn hatched. Figures of ' + new Date(pop.generated).toLocaleString('en-GB') + '.';
    var colour = {};
    pop.measures.forEach(function (m, i) {
      colour[m.id] = MEASURE_COLOURS[i % MEASURE_COLOURS.length];
      swatch(legend, colour[m.id], m.title);
    });
    if (pop.cells.some(function (c) { return c.suppressed; })) {
      swatch(legend, null, 'suppressed (fewer than ' + pop.threshold + ')', true);
    }

    var cell = {};
    pop.cells.forEach(function (c) { cell[c.measure + '\u0000' + c.borough] = c; });
    var values = pop.cells.filter(function (c) { return !c.suppressed && c.prevalence_per_1000 !== null; })
      .map(function (c) { return c.prevalence_per_1000; });
    var max = niceMax(values.length ? Math.max.apply(null, values) : 1);

    var width = Math.max(chart.clientWidth || 1000, 480);
    var left = 56, right = 12, top = 12, plotH = 320, bottom = 96;
    var height = top + plotH + bottom;
    var plotW = width - left - right;
    var nb = pop.boroughs.length, nm = pop.measures.length;
    var group = plotW / Math.max(nb, 1);
    var bar = Math.max(3, Math.min(32, Math.floor((group - 6) / Math.max(nm, 1))));
    var root = svg('svg', { width: width, height: height, viewBox: '0 0 ' + width + ' ' + height, role: 'img', 'aria-label': 'Prevalence by borough' }, chart);
    hatch(root, 'hatch');
    for (var t = 0; t <= 4; t++) {
      var v = max * t / 4;
      var y = top + plotH - Math.round(plotH * t / 4);
      svg('line', { x1: left, x2: width - right, y1: y, y2: y, stroke: t === 0 ? '#8c959f' : '#e3e8ed' }, root);
      svg('text', { x: left - 6, y: y + 4, 'text-anchor': 'end', 'font-size': 11, fill: '#5b6b78' }, root, String(Math.round(v * 10) / 10));
    }
    svg('text', { x: 12, y: top + plotH / 2, 'font-size': 11, fill: '#5b6b78', 'text-anchor': 'middle', transform: 'rotate(-90 12 ' + (top + plotH / 2) + ')' }, root, 'per 1,000');

    pop.boroughs.forEach(function (b, bi) {
      var gx = left + Math.round(bi * group + (group - bar * nm) / 2);
      pop.measures.forEach(function (m, mi) {
        var c = cell[m.id + '\u0000' + b.id];
        if (!c) { return; }
        var x = gx + mi * bar;
        if (c.suppressed) {
          var g = svg('g', { 'class': 'cell suppressed', 'data-measure': m.id, 'data-borough': b.id, 'data-suppressed': 'true' }, root);
          var h = Math.min(plotH, 72);
          svg('rect', { x: x + 1, y: top + plotH - h, width: bar - 2, height: h, fill: 'url(#hatch)', stroke: SUPPRESSED_STRIPE, 'shape-rendering': 'crispEdges' }, g);
          var lx = x + bar / 2 + 3, ly = top + plotH - h - 4;
          svg('text', { x: lx, y: ly, 'font-size': 10, fill: '#41505c', transform: 'rotate(-90 ' + lx + ' ' + ly + ')' }, g, 'suppressed');
          svg('title', {}, g, m.title + ', ' + b.name + ': suppressed (fewer than ' + pop.threshold + ')');
          return;
        }
        var value = c.prevalence_per_1000 || 0;
        var bh = Math.round(plotH * value / max);
        var r = svg('rect', {
          'class': 'bar', x: x + 1, y: top + plotH - bh, width: bar - 2, height: bh, fill: colour[m.id],
          'shape-rendering': 'crispEdges', 'data-measure': m.id, 'data-borough': b.id, 'data-value': raw(c.prevalence_per_1000),
          'data-suppressed': 'false'
        }, root);
        svg('title', {}, r, m.title + ', ' + b.name + ': ' + value.toFixed(1) + ' per 1,000 (' + int(c.numerator) + ' of ' + int(c.denominator) + ')');
      });
      var cx = left + Math.round(bi * group + group / 2), cy = top + plotH + 14;
      svg('text', { x: cx, y: cy, 'text-anchor': 'end', 'font-size': 11, fill: '#1f2328', transform: 'rotate(-35 ' + cx + ' ' + cy + ')' }, root, b.name);
    });
  }

  // --- refresh and token ----------------------------------------------------------------------

  function setStatus(state, text) {
    var s = $('status');
    s.setAttribute('data-state', state);
    s.textContent = text;
  }

  function updated(generated) {
    refreshes += 1;
    var node = $('last-updated');
    node.setAttribute('data-generated', generated);
    node.setAttribute('datetime', generated);
    node.setAttribute('data-refreshes', String(refreshes));
    var d = new Date(generated);
    node.textContent = isNaN(d.getTime()) ? generated : d.toLocaleTimeString('en-GB');
  }

  function askForToken(status) {
    $('token-panel').hidden = false;
    $('token-error').textContent = status === 403 && token()
      ? 'That token is not an operator\u2019s: the figures were refused.'
      : (token() ? 'That token was not accepted (expired?).' : '');
    setStatus('token', 'Token needed');
  }

  function refresh() {
    timer = null;
    Promise.all([getJson('api/operations'), getJson('api/population')]).then(function (both) {
      $('token-panel').hidden = true;
      renderOperations(both[0]);
      renderPopulation(both[1]);
      updated(both[0].generated);
      setStatus('live', 'Live');
      timer = window.setTimeout(refresh, REFRESH_MS);
    }, function (err) {
      if (err.status === 401 || err.status === 403) {
        // Wait for a token rather than asking again and again without one.
        askForToken(err.status);
        return;
      }
      setStatus('error', 'Not updating');
      timer = window.setTimeout(refresh, REFRESH_MS);
    });
  }

  document.addEventListener('DOMContentLoaded', function () {
    $('token-form').addEventListener('submit', function (e) {
      e.preventDefault();
      var value = $('token-input').value.trim().replace(/^Bearer\s+/i, '');
      try { window.sessionStorage.setItem(TOKEN_KEY, value); } catch (x) { /* storage refused: nothing kept */ }
      $('token-input').value = '';
      if (timer !== null) { window.clearTimeout(timer); }
      refresh();
    });
    refresh();
  });
})();
