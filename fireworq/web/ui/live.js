/*
 * Live events for the Fireworq console: reads GET /events (Server-Sent
 * Events) and keeps, per queue, the recent job events and the rates
 * derived from the `stats` events, and draws them as small SVG charts.
 *
 * The stream is read with fetch() rather than EventSource: EventSource
 * cannot send an Authorization header, and with auth on the token must not
 * go into the URL (it would end up in access logs and browser history).
 * fetch() streams the body, sends the header, and resumes after a drop
 * with Last-Event-ID like EventSource does.  Plain JavaScript, no build
 * step, no library: the charts are a few SVG polylines.
 */
(function () {
  "use strict";

  var JSONX = window.FireworqJSON || JSON;
  // The SVG namespace, as the HTML parser gives it to an <svg> element (so
  // the console's files name no URL; tests check that nothing is loaded
  // from another host).
  // (A constant string parsed on its own: no data of the page goes in.)
  var SVG = new DOMParser().parseFromString("<svg></svg>", "text/html").body.firstChild.namespaceURI;
  /** Samples kept per queue: 150 stats events of 2 s = the last 5 minutes. */
  var HISTORY = 150;
  /** Job events kept per queue for its activity feed. */
  var FEED = 30;
  /** Milliseconds before reconnecting after the stream dropped. */
  var RETRY_MS = 3000;

  /**
   * Parse Server-Sent Events text incrementally: feed(chunk) returns the
   * complete events ({event, id, data}) in it (comments are skipped).
   */
  function SSEParser() {
    this.buffer = "";
  }
  SSEParser.prototype.feed = function (chunk) {
    this.buffer += chunk.replace(/\r\n?/g, "\n");
    var out = [];
    var end;
    while ((end = this.buffer.indexOf("\n\n")) >= 0) {
      var block = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + 2);
      var ev = { event: "message", id: null, data: [] };
      var any = false;
      block.split("\n").forEach(function (line) {
        if (!line || line.charAt(0) === ":") return;
        var i = line.indexOf(":");
        var field = i < 0 ? line : line.slice(0, i);
        var value = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
        if (field === "event") { ev.event = value; any = true; }
        else if (field === "id") { ev.id = value; any = true; }
        else if (field === "data") { ev.data.push(value); any = true; }
      });
      if (any && ev.data.length) {
        ev.data = ev.data.join("\n");
        out.push(ev);
      }
    }
    return out;
  };

  /**
   * Connect to the live events and keep reconnecting until stopped.
   * options: base (API prefix), token() (the bearer token or ""),
   * queues (names to follow; none: every queue),
   * onEvent(type, body, id), onState("live" | "down", reason),
   * onUnauthorized().  Returns a function that stops it.
   */
  function connect(options) {
    var stopped = false;
    var lastId = null;
    var controller = null;
    var timer = null;

    function down(reason) {
      if (stopped) return;
      options.onState("down", reason);
      timer = setTimeout(open, RETRY_MS);
    }

    function open() {
      timer = null;
      if (stopped) return;
      if (typeof fetch !== "function" || typeof TextDecoder !== "function" || !window.ReadableStream) {
        options.onState("down", "this browser cannot read event streams");
        return;
      }
      controller = window.AbortController ? new AbortController() : null;
      var headers = { Accept: "text/event-stream" };
      var token = options.token();
      if (token) headers.Authorization = "Bearer " + token;
      if (lastId) headers["Last-Event-ID"] = lastId;
      var init = { headers: headers, cache: "no-store" };
      if (controller) init.signal = controller.signal;
      var query = (options.queues || []).map(function (q) { return "queue=" + encodeURIComponent(q); }).join("&");
      fetch(options.base + "/events" + (query ? "?" + query : ""), init).then(function (response) {
        if (response.status === 401 && options.onUnauthorized) {
          stopped = true;
          options.onUnauthorized();
          return;
        }
        if (!response.ok || !response.body) {
          down("the server answered " + response.status);
          return;
        }
        options.onState("live", "");
        var reader = response.body.getReader();
        var decoder = new TextDecoder("utf-8");
        var parser = new SSEParser();
        function pump() {
          return reader.read().then(function (part) {
            if (stopped) return;
            if (part.done) { down("the stream ended"); return; }
            parser.feed(decoder.decode(part.value, { stream: true })).forEach(function (ev) {
              if (ev.id) lastId = ev.id;
              var body;
              try { body = JSONX.parse(ev.data); } catch (e) { return; }
              try { options.onEvent(ev.event, body, ev.id); } catch (e) { /* a view's bug must not end the stream */ }
            });
            return pump();
          });
        }
        return pump();
      }).catch(function (e) {
        down("the stream dropped (" + (e && e.message || e) + ")");
      });
    }

    open();
    return function () {
      stopped = true;
      if (timer) clearTimeout(timer);
      if (controller) { try { controller.abort(); } catch (e) { /* already closed */ } }
    };
  }

  /**
   * What the console knows of each queue from the stream: the last job
   * events (newest first) and, from consecutive stats events, the rates of
   * pushes, completions and failures per second and the average time from
   * push to completion of the jobs completed in between.
   */
  function LiveState() {
    this.queues = {};
  }
  LiveState.prototype.queue = function (name) {
    var q = this.queues[name];
    if (!q) {
      q = this.queues[name] = { feed: [], samples: [], last: null, stats: null };
    }
    return q;
  };
  LiveState.prototype.jobEvent = function (body) {
    var q = this.queue(String(body.queue));
    q.feed.unshift(body);
    if (q.feed.length > FEED) q.feed.length = FEED;
  };
  LiveState.prototype.statsEvent = function (stats, now) {
    var q = this.queue(String(stats.queue));
    var t = now === undefined ? Date.now() : now;
    q.stats = stats;
    var prev = q.last;
    q.last = { t: t, s: stats };
    if (!prev) return;
    var dt = (t - prev.t) / 1000;
    if (dt <= 0) return;
    function delta(field) { return Math.max(0, Number(stats[field]) - Number(prev.s[field])) || 0; }
    var completes = delta("total_completes");
    q.samples.push({
      t: t,
      pushes: delta("total_pushes") / dt,
      completions: completes / dt,
      failures: delta("total_failures") / dt,
      latency: completes > 0 ? delta("total_elapsed") / completes : null,
    });
    if (q.samples.length > HISTORY) q.samples.splice(0, q.samples.length - HISTORY);
  };

  function svg(tag, attrs) {
    var el = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (k) { el.setAttribute(k, String(attrs[k])); });
    return el;
  }

  /**
   * A small line chart: series is [{values: [number|null], cls}] over the
   * same samples; the scale starts at 0 and ends at the largest value.
   */
  function chart(title, series, unit, width, height) {
    width = width || 220;
    height = height || 48;
    var max = 0;
    var count = 0;
    series.forEach(function (s) {
      count = Math.max(count, s.values.length);
      s.values.forEach(function (v) { if (v !== null && v > max) max = v; });
    });
    var box = svg("svg", { class: "chart", width: width, height: height, viewBox: "0 0 " + width + " " + height, role: "img" });
    var label = svg("title", {});
    label.textContent = title;
    box.appendChild(label);
    box.appendChild(svg("line", { class: "axis", x1: 0, y1: height - 0.5, x2: width, y2: height - 0.5 }));
    var top = max > 0 ? max : 1;
    series.forEach(function (s) {
      if (s.values.length < 2) return;
      var points = [];
      s.values.forEach(function (v, i) {
        if (v === null) return;
        // The newest sample at the right edge; 5 minutes across.
        var x = width - (count - 1 - i) * (width / (HISTORY - 1));
        var y = height - 2 - (v / top) * (height - 6);
        points.push(x.toFixed(1) + "," + y.toFixed(1));
      });
      if (points.length) box.appendChild(svg("polyline", { class: "series " + s.cls, points: points.join(" ") }));
    });
    var peak = svg("text", { class: "peak", x: 2, y: 10 });
    peak.textContent = "max " + (max >= 100 ? Math.round(max) : Math.round(max * 10) / 10) + unit;
    box.appendChild(peak);
    return box;
  }

  /** The three charts of a queue: pushes and completions/s, failures/s, latency. */
  function queueCharts(q) {
    var s = q.samples;
    function pick(field) { return s.map(function (x) { return x[field]; }); }
    return [
      chart("pushes (blue) and completions (green) per second", [
        { values: pick("pushes"), cls: "pushes" },
        { values: pick("completions"), cls: "completions" },
      ], "/s"),
      chart("failures per second", [{ values: pick("failures"), cls: "failures" }], "/s"),
      chart("average time from push to completion (ms)", [{ values: pick("latency"), cls: "latency" }], " ms"),
    ];
  }

  window.FireworqLive = {
    SSEParser: SSEParser,
    connect: connect,
    LiveState: LiveState,
    chart: chart,
    queueCharts: queueCharts,
    HISTORY: HISTORY,
    FEED: FEED,
  };
})();
