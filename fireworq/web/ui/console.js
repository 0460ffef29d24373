/*
 * Fireworq console: a single page over the server's own HTTP API.
 *
 * Views (chosen by the URL's hash, so every view can be bookmarked):
 *   #/queues                          queues with live stats; define, edit, delete
 *   #/routings                        routings; add, change, delete
 *   #/queue/<q>/jobs/<state>?...      grabbed / waiting / deferred jobs, paged;
 *                                     completed: the kept finished jobs (job history);
 *                                     name= and tag= filters
 *   #/queue/<q>/job/<id>              one job; delete; a kept job's result and output; run again
 *   #/queue/<q>/failed?...            the failure log, paged; retry, delete
 *   #/queue/<q>/failed/<id>           one failure with the worker's result
 *   #/push                            push a job, with its job options
 *   #/schedules                       schedules with next and last run; define,
 *                                     edit, enable/disable, run now, delete
 *   #/hooks                           event hooks; define, edit, delete
 *   #/tokens                          API tokens (auth on, a token without queues);
 *                                     make (the secret shown once), revoke
 *
 * Rules kept throughout: every piece of data from the server reaches the
 * page as text (textContent, attribute values set through the DOM), never
 * as markup; answers are parsed by FireworqJSON so that job and failure ids
 * keep every digit; ids travel as strings and are put into URLs with
 * encodeURIComponent.
 */
(function () {
  "use strict";

  var JSONX = window.FireworqJSON;
  var REFRESH_MS = 2000;
  var HEALTH_MS = 5000;
  var LIMITS = ["20", "50", "100", "500"];
  var STATES = [
    ["waiting", "Waiting"],
    ["deferred", "Deferred"],
    ["grabbed", "Grabbed"],
    ["completed", "Completed"],  // job history: kept finished jobs
  ];
  // The API lives next to /ui, also behind a proxy that adds a prefix.
  var API_BASE = window.location.pathname.replace(/\/ui(\/.*)?$/, "");
  // With auth on: the API token, kept in this tab's session storage only
  // (gone when the tab closes; never in localStorage or a cookie, so other
  // sites' pages cannot make the browser send it).
  var TOKEN_KEY = "fireworq.token";

  /* ------------------------------------------------------------------ DOM */

  /**
   * Create an element.  props: "class", "on" ({event: handler}), "dataset",
   * DOM properties (value, checked, disabled, type, href, ...) or attributes.
   * Children are nodes, arrays, or anything else shown as text.
   */
  function h(tag, props) {
    var el = document.createElement(tag);
    if (props) {
      Object.keys(props).forEach(function (key) {
        var v = props[key];
        if (v === null || v === undefined || v === false) return;
        if (key === "class") {
          el.className = v;
        } else if (key === "on") {
          Object.keys(v).forEach(function (ev) { el.addEventListener(ev, v[ev]); });
        } else if (key === "dataset") {
          Object.keys(v).forEach(function (k) { el.dataset[k] = String(v[k]); });
        } else if (key in el && typeof el[key] !== "function" && key !== "list" && key !== "form") {
          el[key] = v;
        } else {
          el.setAttribute(key, v === true ? "" : String(v));
        }
      });
    }
    for (var i = 2; i < arguments.length; i++) append(el, arguments[i]);
    return el;
  }

  function append(el, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) {
      child.forEach(function (c) { append(el, c); });
    } else if (child instanceof Node) {
      el.appendChild(child);
    } else {
      el.appendChild(document.createTextNode(String(child)));
    }
  }

  function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
    return el;
  }

  function replace(el) {
    clear(el);
    for (var i = 1; i < arguments.length; i++) append(el, arguments[i]);
    return el;
  }

  /**
   * Show one row per item in tbody, in order, reusing the row of an item
   * whose key and content are unchanged, so that a refresh does not replace
   * a row under the user's pointer (a click in progress stays on it).
   */
  function syncRows(tbody, items, keyOf, sigOf, makeRow, emptyRow) {
    if (!items.length) {
      replace(tbody, emptyRow());
      return;
    }
    var old = {};
    Array.prototype.forEach.call(tbody.rows, function (tr) {
      if (tr.dataset.key !== undefined) old[tr.dataset.key] = tr;
    });
    var rows = items.map(function (item) {
      var key = String(keyOf(item));
      var sig = sigOf(item);
      var tr = Object.prototype.hasOwnProperty.call(old, key) ? old[key] : null;
      if (tr && tr.dataset.sig === sig) {
        delete old[key];
        return tr;
      }
      tr = makeRow(item);
      tr.dataset.key = key;
      tr.dataset.sig = sig;
      return tr;
    });
    var keep = {};
    rows.forEach(function (tr) { keep[tr.dataset.key] = tr; });
    Array.prototype.slice.call(tbody.rows).forEach(function (tr) {
      if (keep[tr.dataset.key] !== tr) tr.remove();
    });
    rows.forEach(function (tr, i) {
      if (tbody.rows[i] !== tr) tbody.insertBefore(tr, tbody.rows[i] || null);
    });
  }

  function enc(part) {
    return encodeURIComponent(String(part));
  }

  /** The hash of a view: parts joined with "/", each encoded; query optional. */
  function link(parts, query) {
    var text = "#/" + parts.map(enc).join("/");
    if (query) {
      var q = new URLSearchParams();
      Object.keys(query).forEach(function (k) {
        if (query[k] !== undefined && query[k] !== null && query[k] !== "") q.set(k, query[k]);
      });
      var s = q.toString();
      if (s) text += "?" + s;
    }
    return text;
  }

  function go(hash) {
    if (window.location.hash === hash) {
      route();
    } else {
      window.location.hash = hash;
    }
  }

  /* ------------------------------------------------------------------ API */

  function ApiError(status, message) {
    this.status = status;
    this.message = message;
  }
  ApiError.prototype = Object.create(Error.prototype);
  ApiError.prototype.name = "ApiError";

  function storedToken() {
    try { return window.sessionStorage.getItem(TOKEN_KEY) || ""; } catch (e) { return ""; }
  }

  function storeToken(token) {
    try {
      if (token) window.sessionStorage.setItem(TOKEN_KEY, token);
      else window.sessionStorage.removeItem(TOKEN_KEY);
    } catch (e) { /* storage disabled: the token lasts until the page reloads */ }
  }

  /** Call the API; resolves with the parsed answer, rejects with ApiError. */
  function api(method, path, body) {
    var init = { method: method, headers: { Accept: "application/json" }, cache: "no-store" };
    var token = storedToken();
    if (token) init.headers.Authorization = "Bearer " + token;
    if (body !== undefined) {
      // A string is a body already encoded (JSON text with exact numbers).
      init.body = typeof body === "string" ? body : JSON.stringify(body);
      init.headers["Content-Type"] = "application/json";
    }
    return fetch(API_BASE + path, init).then(
      function (response) {
        return response.text().then(function (text) {
          var value = text;
          try {
            value = text ? JSONX.parse(text) : null;
          } catch (e) {
            if (response.ok && /json/.test(response.headers.get("Content-Type") || "")) {
              throw new ApiError(response.status, "the server's answer is not valid JSON: " + e.message);
            }
          }
          if (!response.ok) {
            var message = value && typeof value === "object" && value.message
              ? String(value.message)
              : response.status + " " + response.statusText;
            if (response.status === 401) {
              // Auth is on and the token is missing, unknown or revoked.
              storeToken("");
              signInView(token ? "The token was refused: " + message : "");
            }
            throw new ApiError(response.status, message);
          }
          return value;
        });
      },
      function (e) {
        throw new ApiError(0, "the server does not answer (" + (e && e.message || e) + ")");
      }
    );
  }

  var paths = {
    queue: function (q) { return "/queue/" + enc(q); },
    routing: function (c) { return "/routing/" + enc(c); },
    jobs: function (q, state) { return "/queue/" + enc(q) + "/" + state; },
    job: function (q, id) { return "/queue/" + enc(q) + "/job/" + enc(id); },
    failedList: function (q) { return "/queue/" + enc(q) + "/failed"; },
    failed: function (q, id) { return "/queue/" + enc(q) + "/failed/" + enc(id); },
    retry: function (q, id) { return "/queue/" + enc(q) + "/failed/" + enc(id) + "/retry"; },
    // Job history: kept finished jobs, and a kept job run again.
    completed: function (q) { return "/queue/" + enc(q) + "/completed"; },
    rerun: function (q, id) { return "/queue/" + enc(q) + "/job/" + enc(id) + "/retry"; },
    control: function (q, action) { return "/queue/" + enc(q) + "/" + action; },
  };

  function withQuery(path, query) {
    var q = new URLSearchParams();
    Object.keys(query).forEach(function (k) {
      if (Array.isArray(query[k])) {
        query[k].forEach(function (v) { q.append(k, v); });  // a repeated parameter (tag=)
      } else if (query[k] !== undefined && query[k] !== null && query[k] !== "") q.set(k, query[k]);
    });
    var s = q.toString();
    return s ? path + "?" + s : path;
  }

  /* ----------------------------------------------------------- formatting */

  var integer = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
  var decimal = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 });

  function num(v) {
    if (v === null || v === undefined || v === "") return "—";
    if (typeof v === "number") return integer.format(v);
    return String(v);
  }

  function rate(v) {
    if (v === null || v === undefined) return "—";
    return decimal.format(Number(v));
  }

  function duration(ms) {
    if (!isFinite(ms)) return "—";
    if (ms < 1000) return Math.round(ms) + " ms";
    if (ms < 60000) return decimal.format(ms / 1000) + " s";
    return decimal.format(ms / 60000) + " min";
  }

  function relative(text) {
    var t = Date.parse(text);
    if (!isFinite(t)) return "";
    var d = t - Date.now();
    var a = Math.abs(d);
    var amount;
    if (a < 1500) return "now";
    if (a < 90000) amount = Math.round(a / 1000) + " s";
    else if (a < 5400000) amount = Math.round(a / 60000) + " min";
    else if (a < 172800000) amount = decimal.format(a / 3600000) + " h";
    else amount = Math.round(a / 86400000) + " d";
    return d > 0 ? "in " + amount : amount + " ago";
  }

  /**
   * An RFC 3339 time from the API, readable, with the exact text as a
   * tooltip; compact drops the milliseconds and the offset (for tables).
   */
  function when(text, withRelative, compact) {
    if (!text) return "—";
    var shown = String(text).replace("T", " ");
    if (compact) shown = shown.slice(0, 19);
    var span = h("span", { title: String(text) }, shown);
    if (!withRelative) return span;
    var rel = relative(text);
    return [span, rel ? h("span", { class: "muted small" }, " (" + rel + ")") : null];
  }

  function statusBadge(status) {
    var s = String(status || "");
    var kind = s === "success" ? "ok" : s === "failure" ? "warn" : s ? "bad" : "";
    return h("span", { class: "badge " + kind }, s || "—");
  }

  function payloadBlock(payload) {
    if (payload === undefined || payload === null) {
      return h("p", { class: "muted" }, "No payload: the worker receives an empty body.");
    }
    if (typeof payload === "string") {
      return [
        h("p", { class: "muted small" }, "A string: the worker receives it as is."),
        h("pre", { class: "block payload" }, payload),
      ];
    }
    return h("pre", { class: "block payload" }, JSONX.stringify(payload, 2));
  }

  function fields(pairs) {
    var dl = h("dl", { class: "fields" });
    pairs.forEach(function (p) {
      if (!p) return;
      dl.appendChild(h("dt", null, p[0]));
      dl.appendChild(h("dd", p[2] || null, p[1]));
    });
    return dl;
  }

  /** The field rows of a job's options (those it has), for fields(). */
  function optionFields(job) {
    function pairs(obj) {
      var dl = h("dl", { class: "pairs" });
      Object.keys(obj).forEach(function (k) {
        dl.appendChild(h("dt", null, k));
        dl.appendChild(h("dd", null, String(obj[k])));
      });
      return dl;
    }
    var rows = [];
    if (job.name !== undefined) rows.push(["Name", job.name, { id: "job-name" }]);
    if (job.tags !== undefined) rows.push(["Tags", pairs(job.tags), { id: "job-tags" }]);
    if (job.headers !== undefined) rows.push(["Delivery headers", pairs(job.headers), { id: "job-headers", class: "mono" }]);
    if (job.priority !== undefined) rows.push(["Priority", String(job.priority), { id: "job-priority" }]);
    if (job.retry_backoff !== undefined) rows.push(["Retry backoff", "× " + job.retry_backoff, { id: "job-retry-backoff" }]);
    if (job.retry_max_delay !== undefined) rows.push(["Longest retry wait", num(job.retry_max_delay) + " s"]);
    if (job.retry_jitter !== undefined) rows.push(["Retry jitter", job.retry_jitter ? "on" : "off"]);
    if (job.success !== undefined) rows.push(["Success when", job.success === "2xx" ? "any 2xx answer" : "the answer's status is success", { id: "job-success" }]);
    if (job.deadline !== undefined) rows.push(["Deadline", num(job.deadline) + " s after the push", { id: "job-deadline" }]);
    if (job.idempotency_key !== undefined) rows.push(["Idempotency key", job.idempotency_key, { id: "job-idempotency-key", class: "mono" }]);
    return rows;
  }

  function clip(text, cls) {
    return h("td", { class: "clip" + (cls ? " " + cls : ""), title: String(text) }, String(text));
  }

  /* ---------------------------------------------------- flash and dialogs */

  var flashBox = document.getElementById("flash");

  /** Show a message; "ok" ones go away by themselves unless sticky. */
  function flash(kind, content, options) {
    options = options || {};
    var box = h("div", { class: kind, id: options.id || null });
    var close = h("button", { class: "close", type: "button", title: "Dismiss", "aria-label": "Dismiss" }, "×");
    close.addEventListener("click", function () { box.remove(); });
    append(box, h("span", null, content));
    box.appendChild(close);
    if (options.id) {
      var old = document.getElementById(options.id);
      if (old) old.remove();
    }
    flashBox.appendChild(box);
    if (kind === "ok" && !options.sticky) {
      setTimeout(function () { box.remove(); }, 8000);
    }
    return box;
  }

  function flashError(prefix) {
    return function (e) {
      flash("error", prefix + ": " + (e && e.message || e));
    };
  }

  /** Ask before doing something; resolves true when confirmed. */
  function confirmAction(message, label, danger) {
    return new Promise(function (resolve) {
      var root = document.getElementById("modal-root");
      var previous = document.activeElement;
      function done(answer) {
        document.removeEventListener("keydown", onKey, true);
        clear(root);
        if (previous && previous.focus) previous.focus();
        resolve(answer);
      }
      function onKey(ev) {
        if (ev.key === "Escape") { ev.preventDefault(); done(false); }
      }
      var ok = h("button", {
        type: "button", id: "modal-confirm", class: "primary" + (danger ? " danger" : ""),
        on: { click: function () { done(true); } },
      }, label);
      replace(root, h("div", { class: "modal-backdrop", on: { click: function (ev) { if (ev.target === ev.currentTarget) done(false); } } },
        h("div", { class: "modal", role: "dialog", "aria-modal": "true", "aria-label": label },
          h("p", null, message),
          h("div", { class: "form-actions" },
            h("button", { type: "button", id: "modal-cancel", on: { click: function () { done(false); } } }, "Cancel"),
            ok))));
      document.addEventListener("keydown", onKey, true);
      ok.focus();
    });
  }

  /**
   * The signing secrets of a queue, in a dialog: hidden until "Show
   * secrets" is clicked (they are fetched only then), and a rotation after
   * a second confirming click.
   */
  function signingDialog(queue) {
    var root = document.getElementById("modal-root");
    var previous = document.activeElement;
    var body = h("div", { id: "signing-body" });
    function close() {
      document.removeEventListener("keydown", onKey, true);
      clear(root);
      if (previous && previous.focus) previous.focus();
    }
    function onKey(ev) {
      if (ev.key === "Escape") { ev.preventDefault(); close(); }
    }
    function secret(label, id, value) {
      return h("p", null, label, h("br"), h("code", { id: id, class: "mono secret" }, value));
    }
    function showKeys(k) {
      replace(body,
        secret("Current secret", "signing-current", k.current),
        k.previous ? secret(["Previous secret, signing too until ", when(k.previous_expires_at)], "signing-previous", k.previous) : null,
        h("p", { class: "muted small" }, "Keep these out of logs and tickets: a secret lets its holder forge deliveries."));
    }
    function hidden() {
      replace(body,
        h("p", null, "Deliveries of this queue carry Standard Webhooks signatures (webhook-id, webhook-timestamp, webhook-signature); workers verify them with the queue's secret."),
        h("p", { class: "muted small", id: "signing-hidden" }, "The secrets are not shown until you ask."));
    }
    var show = h("button", { type: "button", id: "signing-show", on: { click: function () {
      api("GET", "/queue/" + enc(queue) + "/signing-key").then(showKeys, flashError("Could not read the signing key of " + queue));
    } } }, "Show secrets");
    var rotate = h("button", { type: "button", id: "signing-rotate", class: "danger", on: { click: function () {
      replace(body,
        h("p", null, "Make a new secret for queue “" + queue + "”? The current one keeps signing beside it until the overlap (setting signing_overlap) ends; give the new secret to the workers before then."),
        h("div", { class: "form-actions" },
          h("button", { type: "button", id: "signing-rotate-cancel", on: { click: hidden } }, "Back"),
          h("button", { type: "button", id: "signing-rotate-confirm", class: "primary danger", on: { click: function () {
            api("POST", "/queue/" + enc(queue) + "/signing-key/rotate").then(function (k) {
              flash("ok", "Rotated the signing secret of queue " + queue +
                (k && k.previous_expires_at ? "; the previous one signs too until " + String(k.previous_expires_at).replace("T", " ") : ""));
              hidden();
            }, flashError("Could not rotate the signing secret of " + queue));
          } } }, "Rotate secret")));
    } } }, "Rotate secret…");
    hidden();
    replace(root, h("div", { class: "modal-backdrop", on: { click: function (ev) { if (ev.target === ev.currentTarget) close(); } } },
      h("div", { class: "modal", id: "signing-dialog", role: "dialog", "aria-modal": "true", "aria-label": "Signing key" },
        h("h2", null, "Signing key of ", h("span", { class: "mono" }, queue)),
        body,
        h("div", { class: "form-actions" },
          h("button", { type: "button", id: "signing-close", on: { click: close } }, "Close"),
          show, rotate))));
    document.addEventListener("keydown", onKey, true);
    show.focus();
  }

  /* --------------------------------------------------------------- timers */

  /**
   * Run fn (which returns a promise) now and then every ms after it settles,
   * while the page is visible.  Returns a function that stops it.
   */
  function every(ms, fn) {
    var stopped = false;
    var timer = null;
    function tick() {
      timer = null;
      if (stopped) return;
      if (document.hidden) { timer = setTimeout(tick, ms); return; }
      Promise.resolve().then(fn).catch(function () {}).then(function () {
        if (!stopped) timer = setTimeout(tick, ms);
      });
    }
    tick();
    return function () {
      stopped = true;
      if (timer) clearTimeout(timer);
    };
  }

  /**
   * Refresh a view of one queue when its jobs change: refresh() runs now,
   * then after each job event of the queue (at most every 500 ms) while
   * the live stream is up -- and every LIVE_POLL_MS for what no event
   * tells (a deferred job falling due, a purge, another tab's deletion) --
   * and every REFRESH_MS while it is down.  Returns a function that stops it.
   */
  var LIVE_POLL_MS = 15000;
  function follow(queue, refresh) {
    var Live = window.FireworqLive;
    if (!Live) return every(REFRESH_MS, refresh);
    var pollStop = null;
    var slowStop = null;
    var timer = null;
    var last = 0;
    function soon() {
      if (timer) return;
      var wait = Math.max(0, 500 - (Date.now() - last));
      timer = setTimeout(function () { timer = null; last = Date.now(); refresh(); }, wait);
    }
    refresh();
    var stopLive = Live.connect({
      base: API_BASE,
      token: storedToken,
      queues: [queue],
      onState: function (state) {
        if (state === "live") {
          if (pollStop) { pollStop(); pollStop = null; soon(); }
          if (!slowStop) {
            var first = true;  // every() runs at once; the page was just refreshed
            slowStop = every(LIVE_POLL_MS, function () {
              if (first) { first = false; return null; }
              return refresh();
            });
          }
        } else {
          if (slowStop) { slowStop(); slowStop = null; }
          if (!pollStop) pollStop = every(REFRESH_MS, refresh);
        }
      },
      onEvent: function (type) {
        if (String(type).indexOf("job.") === 0) soon();
      },
    });
    return function () {
      stopLive();
      if (pollStop) pollStop();
      if (slowStop) slowStop();
      if (timer) clearTimeout(timer);
    };
  }

  function clock() {
    return new Date().toLocaleTimeString();
  }

  /* --------------------------------------------------------------- server */

  var settings = null;

  function loadSettings() {
    if (settings) return Promise.resolve(settings);
    return api("GET", "/settings").then(function (s) {
      settings = s || {};
      return settings;
    }, function () { return {}; });
  }

  function watchServer() {
    var box = document.getElementById("server-state");
    var version = "";
    api("GET", "/version").then(function (v) { version = String(v).trim(); }, function () {});
    every(HEALTH_MS, function () {
      return fetch(API_BASE + "/health", { cache: "no-store" }).then(function (r) {
        return r.text().then(function (t) {
          var info = {};
          try { info = JSONX.parse(t); } catch (e) { /* shown as unhealthy */ }
          var ok = r.ok;
          replace(box,
            h("span", { class: "dot " + (ok ? "ok" : "bad") }),
            ok ? "healthy" : "unhealthy" + (info.message ? ": " + info.message : ""),
            info.driver ? " · " + info.driver : "",
            version ? " · Fireworq " + version : "");
        });
      }, function () {
        replace(box, h("span", { class: "dot bad" }), "the server does not answer");
      });
    });
  }

  /* --------------------------------------------------------------- queues */

  function queuesView(main, view) {
    var defaults = { polling: "", workers: "" };
    var editing = null;
    var updated = h("span", { class: "sub", id: "queues-updated" }, "loading…");
    var tbody = h("tbody", { id: "queues-body" });
    var formTitle = h("h2", { id: "queue-form-title" }, "Define a queue");

    var name = h("input", { id: "queue-name", name: "name", required: true, autocomplete: "off", maxLength: 255 });
    var polling = h("input", { id: "queue-polling", name: "polling_interval", type: "number", min: "0", step: "1" });
    var workers = h("input", { id: "queue-workers", name: "max_workers", type: "number", min: "0", step: "1" });
    var throttle = h("input", { id: "queue-throttle", name: "throttled", type: "checkbox" });
    var rateInput = h("input", { id: "queue-rate", name: "max_dispatches_per_second", type: "number", min: "0", step: "any" });
    var burst = h("input", { id: "queue-burst", name: "max_burst_size", type: "number", min: "0", step: "1" });
    var signing = h("input", { id: "queue-signing", name: "signing", type: "checkbox" });
    var submit = h("button", { id: "queue-submit", class: "primary", type: "submit" }, "Define queue");
    var cancel = h("button", { id: "queue-cancel", type: "button", hidden: true }, "Cancel editing");
    var throttleSet = h("fieldset", { disabled: true },
      h("legend", null, "Throttle (when on, the server polls every 100 ms)"),
      h("label", null, "Dispatches per second", rateInput),
      h("label", null, "Burst size", burst));

    throttle.addEventListener("change", function () { throttleSet.disabled = !throttle.checked; });

    function resetForm() {
      editing = null;
      form.reset();
      name.readOnly = false;
      throttleSet.disabled = true;
      replace(formTitle, "Define a queue");
      replace(submit, "Define queue");
      cancel.hidden = true;
    }

    function edit(q) {
      editing = q.name;
      name.value = q.name;
      name.readOnly = true;
      polling.value = q.polling_interval !== undefined ? String(q.polling_interval) : "";
      workers.value = String(q.max_workers);
      var throttled = q.max_dispatches_per_second !== undefined;
      throttle.checked = throttled;
      throttleSet.disabled = !throttled;
      rateInput.value = throttled ? String(q.max_dispatches_per_second) : "";
      burst.value = throttled ? String(q.max_burst_size) : "";
      signing.checked = q.signing === true;
      replace(formTitle, "Edit queue ", h("span", { class: "mono" }, q.name));
      replace(submit, "Save queue");
      cancel.hidden = false;
      form.scrollIntoView({ block: "nearest" });
      workers.focus();
    }

    cancel.addEventListener("click", resetForm);

    function whole(input, label) {
      var t = input.value.trim();
      if (t === "") return undefined;
      if (!/^[0-9]+$/.test(t)) throw new Error(label + " must be a whole number");
      return Number(t);
    }

    var form = h("form", { class: "grid", id: "queue-form", novalidate: true, on: { submit: function (ev) {
      ev.preventDefault();
      var body = {};
      var queueName = name.value;
      try {
        if (!queueName) throw new Error("a queue needs a name");
        if (queueName.indexOf("/") >= 0) throw new Error("a queue name cannot contain /");
        if (queueName === "." || queueName === "..") throw new Error("the names . and .. cannot be used in URLs");
        var p = whole(polling, "polling interval");
        var w = whole(workers, "max workers");
        if (p !== undefined) body.polling_interval = p;
        if (w !== undefined) body.max_workers = w;
        if (throttle.checked) {
          var r = Number(rateInput.value);
          var b = whole(burst, "burst size");
          if (!(r > 0)) throw new Error("dispatches per second must be a positive number");
          if (!(b > 0)) throw new Error("burst size must be a positive whole number");
          body.max_dispatches_per_second = r;
          body.max_burst_size = b;
        }
        body.signing = signing.checked;
      } catch (e) {
        flash("error", e.message);
        return;
      }
      submit.disabled = true;
      api("PUT", paths.queue(queueName), body).then(function (q) {
        flash("ok", (editing ? "Saved queue " : "Defined queue ") + q.name);
        resetForm();
        return refresh();
      }, flashError("Could not save queue " + queueName)).then(function () { submit.disabled = false; });
    } } },
      h("label", null, "Name", name),
      h("label", null, "Polling interval (ms)", polling),
      h("label", null, "Max workers", workers),
      h("label", { class: "inline" }, throttle, "Throttled"),
      throttleSet,
      h("label", { class: "inline", title: "Standard Webhooks headers on every delivery; workers verify them with the queue's secret" },
        signing, "Sign deliveries"),
      h("div", { class: "form-actions" }, submit, cancel));

    function remove(q) {
      confirmAction(
        "Delete the definition of queue “" + q.name + "”? Its jobs stay stored and come back when a queue of the same name is defined again; routings to it stay.",
        "Delete queue", true
      ).then(function (yes) {
        if (!yes) return;
        api("DELETE", paths.queue(q.name)).then(function () {
          flash("ok", "Deleted queue " + q.name);
          if (editing === q.name) resetForm();
          return refresh();
        }, flashError("Could not delete queue " + q.name));
      });
    }

    function setPaused(q, paused) {
      api("POST", paths.control(q.name, paused ? "pause" : "resume")).then(function () {
        flash("ok", (paused ? "Paused queue " : "Resumed queue ") + q.name);
        return refresh();
      }, flashError("Could not " + (paused ? "pause" : "resume") + " queue " + q.name));
    }

    function purge(q) {
      confirmAction(
        "Delete every waiting and deferred job of queue “" + q.name + "”? Jobs being delivered are left alone.",
        "Purge queue", true
      ).then(function (yes) {
        if (!yes) return;
        api("POST", paths.control(q.name, "purge")).then(function (answer) {
          flash("ok", "Purged " + num(answer && answer.purged) + " job(s) of queue " + q.name);
          return refresh();
        }, flashError("Could not purge queue " + q.name));
      });
    }

    function row(q, s) {
      var throttled = q.max_dispatches_per_second !== undefined;
      var busy = s ? Number(s.total_workers) - Number(s.idle_workers) : null;
      var avg = s && Number(s.total_completes) > 0 ? Number(s.total_elapsed) / Number(s.total_completes) : NaN;
      return h("tr", { dataset: { queue: q.name } },
        h("td", { class: "name", title: q.name }, h("a", { class: "queue-link", href: link(["queue", q.name, "jobs", "waiting"]) }, q.name)),
        h("td", null, s ? (Number(s.active_nodes) > 0 ? h("span", { class: "badge ok" }, "active here") : h("span", { class: "badge" }, "standby")) : "—",
          q.paused ? h("span", { class: "badge warn paused", title: "takes pushes, dispatches nothing" }, "paused") : null,
          q.signing ? h("span", { class: "badge signed", title: "every delivery is signed (Standard Webhooks)" }, "signed") : null),
        h("td", { class: "num" }, s ? num(busy) + " / " + num(s.total_workers) : num(q.max_workers)),
        h("td", { class: "num" }, q.polling_interval !== undefined ? num(q.polling_interval) + " ms" : "—"),
        h("td", { class: "num" }, throttled ? rate(q.max_dispatches_per_second) + "/s, burst " + num(q.max_burst_size) : "—"),
        h("td", { class: "num" }, s ? num(s.outstanding_jobs) : "—"),
        h("td", { class: "num" }, s ? num(s.total_pushes) : "—"),
        h("td", { class: "num" }, s ? num(s.total_successes) : "—"),
        h("td", { class: "num" }, s ? num(s.total_failures) : "—"),
        h("td", { class: "num" }, s ? num(s.total_permanent_failures) : "—"),
        h("td", { class: "num" }, s ? rate(s.pushes_per_second) + " / " + rate(s.pops_per_second) : "—"),
        h("td", { class: "num" }, duration(avg)),
        h("td", { class: "actions" },
          h("a", { href: link(["queue", q.name, "jobs", "waiting"]) }, "Jobs"),
          h("a", { class: "failures-link", href: link(["queue", q.name, "failed"]) }, "Failures"),
          h("button", { type: "button", class: "small edit", on: { click: function () { edit(q); } } }, "Edit"),
          q.signing ? h("button", { type: "button", class: "small signing-key", on: { click: function () { signingDialog(q.name); } } }, "Signing key") : null,
          q.paused
            ? h("button", { type: "button", class: "small resume", on: { click: function () { setPaused(q, false); } } }, "Resume")
            : h("button", { type: "button", class: "small pause", on: { click: function () { setPaused(q, true); } } }, "Pause"),
          h("button", { type: "button", class: "small danger purge", on: { click: function () { purge(q); } } }, "Purge"),
          h("button", { type: "button", class: "small danger delete", on: { click: function () { remove(q); } } }, "Delete")));
    }

    // The table from the last answers of /queues and /queues/stats, or
    // from the stats events of the live stream (liveEvents below).
    var shownQueues = null;
    var shownStats = {};

    function drawTable() {
      var queues = shownQueues || [];
      var items = queues.map(function (q) {
        return { q: q, s: Object.prototype.hasOwnProperty.call(shownStats, q.name) ? shownStats[q.name] : null };
      });
      syncRows(tbody, items,
        function (it) { return it.q.name; },
        function (it) { return JSONX.stringify([it.q, it.s]); },
        function (it) { return row(it.q, it.s); },
        function () { return h("tr", null, h("td", { class: "empty", colSpan: 13 }, "No queues are defined.")); });
      replace(updated, liveNote() + " · updated " + clock());
    }

    function refresh() {
      return Promise.all([api("GET", "/queues"), api("GET", "/queues/stats")]).then(function (r) {
        if (!view.current()) return;
        shownQueues = (r[0] || []).slice().sort(function (a, b) { return a.name < b.name ? -1 : a.name > b.name ? 1 : 0; });
        shownStats = r[1] || {};
        drawTable();
        drawLive();
      }, function (e) {
        if (view.current()) replace(updated, "not refreshed: " + e.message);
      });
    }

    /* Live events (GET /events): the table follows the stats events, job
     * events refresh it at once and feed each queue's activity list, and the
     * charts are drawn from the stats; while the stream is down the page
     * polls every REFRESH_MS as before. */
    var Live = window.FireworqLive;
    var live = Live ? new Live.LiveState() : null;
    var liveMode = Live ? "connecting" : "unavailable";
    var liveWhy = "";
    var pollStop = null;
    var soonTimer = null;
    var drawTimer = null;
    var liveBox = h("div", { id: "live-queues", class: "live-grid" });

    function liveNote() {
      if (liveMode === "live") return "live";
      return "refreshing every " + REFRESH_MS / 1000 + " s" + (liveWhy ? " (live updates: " + liveWhy + ")" : "");
    }

    function soon() {
      if (!soonTimer) soonTimer = setTimeout(function () { soonTimer = null; refresh(); }, 300);
    }

    function drawSoon() {
      if (!drawTimer) drawTimer = setTimeout(function () {
        drawTimer = null;
        if (!view.current()) return;
        drawTable();
        drawLive();
      }, 100);
    }

    function feedItem(queue, ev) {
      var job = ev.job || {};
      var kind = String(ev.type).replace(/^job\./, "");
      var time = String(ev.time || "");
      return h("li", { class: "event " + kind, dataset: { type: String(ev.type), job: String(job.id) } },
        h("span", { class: "when" }, time.slice(11, 19)),
        h("span", { class: "kind" }, kind),
        h("a", { href: link(["queue", queue, "job", String(job.id)]) }, "#" + String(job.id)),
        job.category !== undefined ? h("span", { class: "muted" }, " " + String(job.category)) : null);
    }

    function drawLive() {
      if (!live) return;
      var names = (shownQueues || []).map(function (q) { return q.name; });
      replace(liveBox, names.length ? names.map(function (name) {
        var q = live.queue(name);
        return h("section", { class: "panel live-queue", dataset: { queue: name } },
          h("h3", null, name),
          h("div", { class: "charts" }, Live.queueCharts(q)),
          h("ul", { class: "feed", "aria-live": "polite" },
            q.feed.length ? q.feed.slice(0, 8).map(function (ev) { return feedItem(name, ev); })
              : h("li", { class: "muted" }, liveMode === "live" ? "no job events since the page opened" : "live updates are off")));
      }) : h("p", { class: "muted" }, "No queues are defined."));
    }

    function liveEvents() {
      if (!Live) { pollStop = every(REFRESH_MS, refresh); return function () { if (pollStop) pollStop(); }; }
      var stop = Live.connect({
        base: API_BASE,
        token: storedToken,
        onState: function (state, why) {
          if (!view.current()) return;
          liveMode = state;
          liveWhy = why || "";
          if (state === "live") {
            if (pollStop) { pollStop(); pollStop = null; }
            refresh();
          } else if (!pollStop) {
            pollStop = every(REFRESH_MS, refresh);
          }
        },
        onEvent: function (type, body) {
          if (!view.current()) return;
          if (type === "stats") {
            live.statsEvent(body);
            var copy = {};
            Object.keys(body).forEach(function (k) { if (k !== "queue") copy[k] = body[k]; });
            shownStats[String(body.queue)] = copy;
            drawSoon();
          } else if (String(type).indexOf("job.") === 0) {
            live.jobEvent(body);
            soon();
          }
        },
        onUnauthorized: function () {
          storeToken("");
          signInView("The token was refused for live events.");
        },
      });
      return function () {
        stop();
        if (pollStop) pollStop();
        if (soonTimer) clearTimeout(soonTimer);
        if (drawTimer) clearTimeout(drawTimer);
      };
    }

    loadSettings().then(function (s) {
      defaults.polling = s.queue_default_polling_interval || "";
      defaults.workers = s.queue_default_max_workers || "";
      if (defaults.polling) polling.placeholder = "default " + defaults.polling;
      if (defaults.workers) workers.placeholder = "default " + defaults.workers;
    });

    replace(main,
      h("h1", null, "Queues", updated),
      h("div", { class: "panel table-wrap" },
        h("table", { id: "queues-table" },
          h("thead", null, h("tr", null,
            h("th", null, "Queue"), h("th", null, "Node"), h("th", { class: "num", title: "busy / max workers" }, "Workers"),
            h("th", { class: "num" }, "Polling"), h("th", { class: "num" }, "Throttle"),
            h("th", { class: "num", title: "grabbed, not yet sent" }, "Outstanding"),
            h("th", { class: "num" }, "Pushes"), h("th", { class: "num" }, "Successes"),
            h("th", { class: "num", title: "every failed try" }, "Failures"),
            h("th", { class: "num" }, "Permanent"), h("th", { class: "num", title: "pushes / pops in the last second" }, "Push/pop per s"),
            h("th", { class: "num", title: "average time from push to completion" }, "Avg time"), h("th", null, ""))),
          tbody),
        h("p", { class: "muted small" }, "Counters are those of this server process since it started.")),
      h("h2", { class: "live-title" }, "Live activity",
        h("span", { class: "sub" }, "pushes (blue) and completions (green) per second, failures per second, and time from push to completion, over the last 5 minutes")),
      liveBox,
      h("div", { class: "panel" }, formTitle, form));

    refresh();
    view.onStop(liveEvents());
  }

  /* ------------------------------------------------------------- routings */

  function routingsView(main, view) {
    var tbody = h("tbody", { id: "routings-body" });
    var queueNames = [];
    var category = h("input", { id: "routing-category", name: "job_category", required: true, autocomplete: "off", maxLength: 255 });
    var queueSelect = h("select", { id: "routing-queue", name: "queue_name" });
    var submit = h("button", { id: "routing-submit", class: "primary", type: "submit" }, "Add routing");

    function queueOptions(select, selected) {
      var names = queueNames.slice();
      if (selected && names.indexOf(selected) < 0) names.unshift(selected);
      replace(select, names.map(function (n) {
        return h("option", { value: n, selected: n === selected }, n);
      }));
    }

    function save(cat, queue) {
      return api("PUT", paths.routing(cat), { queue_name: queue }).then(function (r) {
        flash("ok", "Jobs of category " + r.job_category + " go to queue " + r.queue_name);
        return refresh();
      }, flashError("Could not save the routing of " + cat));
    }

    function remove(r) {
      confirmAction("Delete the routing of category “" + r.job_category + "”? Its jobs then go to the default queue, if there is one.",
        "Delete routing", true).then(function (yes) {
        if (!yes) return;
        api("DELETE", paths.routing(r.job_category)).then(function () {
          flash("ok", "Deleted the routing of " + r.job_category);
          return refresh();
        }, flashError("Could not delete the routing of " + r.job_category));
      });
    }

    function row(r) {
      var tr = h("tr", { dataset: { category: r.job_category } });
      function show() {
        replace(tr,
          h("td", { class: "category" }, r.job_category),
          h("td", null, h("a", { href: link(["queue", r.queue_name, "jobs", "waiting"]) }, r.queue_name)),
          h("td", { class: "actions" },
            h("button", { type: "button", class: "small change", on: { click: changing } }, "Change"),
            h("button", { type: "button", class: "small danger delete", on: { click: function () { remove(r); } } }, "Delete")));
      }
      function changing() {
        var select = h("select", { class: "change-queue", "aria-label": "Queue" });
        queueOptions(select, r.queue_name);
        replace(tr,
          h("td", { class: "category" }, r.job_category),
          h("td", null, select),
          h("td", { class: "actions" },
            h("button", { type: "button", class: "small primary save", on: { click: function () { save(r.job_category, select.value); } } }, "Save"),
            h("button", { type: "button", class: "small", on: { click: show } }, "Cancel")));
        select.focus();
      }
      show();
      return tr;
    }

    function refresh() {
      return Promise.all([api("GET", "/routings"), api("GET", "/queues")]).then(function (r) {
        if (!view.current()) return;
        queueNames = (r[1] || []).map(function (q) { return q.name; }).sort();
        var chosen = queueSelect.value;
        queueOptions(queueSelect, chosen || queueNames[0]);
        var routings = (r[0] || []).slice().sort(function (a, b) {
          return a.job_category < b.job_category ? -1 : a.job_category > b.job_category ? 1 : 0;
        });
        syncRows(tbody, routings,
          function (r) { return r.job_category; },
          function (r) { return r.queue_name; },
          row,
          function () { return h("tr", null, h("td", { class: "empty", colSpan: 3 }, "No routings: every job goes to the default queue.")); });
      }, flashError("Could not load routings"));
    }

    var form = h("form", { class: "grid", id: "routing-form", novalidate: true, on: { submit: function (ev) {
      ev.preventDefault();
      if (!category.value) { flash("error", "a routing needs a job category"); return; }
      if (!queueSelect.value) { flash("error", "define a queue first"); return; }
      submit.disabled = true;
      save(category.value, queueSelect.value).then(function () {
        category.value = "";
        submit.disabled = false;
      });
    } } },
      h("label", null, "Job category", category),
      h("label", null, "Queue", queueSelect),
      h("div", { class: "form-actions" }, submit));

    replace(main,
      h("h1", null, "Routings", h("span", { class: "sub" }, "which queue each job category goes to"),
        h("button", { type: "button", class: "small", on: { click: refresh } }, "Refresh")),
      h("div", { class: "panel table-wrap" },
        h("table", { id: "routings-table" },
          h("thead", null, h("tr", null, h("th", null, "Job category"), h("th", null, "Queue"), h("th", null, ""))),
          tbody)),
      h("div", { class: "panel" }, h("h2", null, "Add or replace a routing"), form));
    refresh();
  }

  /* ------------------------------------------------ queue header and pager */

  function queueHeader(queue, current, view) {
    var select = h("select", { id: "queue-switch", "aria-label": "Queue" }, h("option", { value: queue }, queue));
    api("GET", "/queues").then(function (qs) {
      if (!view.current()) return;
      var names = (qs || []).map(function (q) { return q.name; }).sort();
      if (names.indexOf(queue) < 0) names.unshift(queue);
      replace(select, names.map(function (n) { return h("option", { value: n, selected: n === queue }, n); }));
    }, function () {});
    select.addEventListener("change", function () {
      go(current === "failed" ? link(["queue", select.value, "failed"]) : link(["queue", select.value, "jobs", "waiting"]));
    });
    return h("h1", null, "Queue", select,
      h("span", { class: "sub" },
        h("a", { href: link(["queue", queue, "jobs", "waiting"]), class: current === "jobs" ? "current" : "" }, "Jobs"),
        " · ",
        h("a", { href: link(["queue", queue, "failed"]), class: current === "failed" ? "current" : "" }, "Failure log"),
        " · ",
        h("a", { href: "#/queues" }, "All queues")));
  }

  /* ---------------------------------- name and tag filters (job history) */

  /** The tags of a list's URL ("key:value" pairs separated by spaces) as a list. */
  function tagList(text) {
    return String(text || "").split(/\s+/).filter(function (t) { return t !== ""; });
  }

  /** The name and tag inputs of a list; onApply(name, tags) with the typed text. */
  function filterControls(name, tags, onApply) {
    var nameInput = h("input", { type: "text", id: "filter-name", value: name || "", placeholder: "name, or prefix*", "aria-label": "Job name" });
    var tagInput = h("input", { type: "text", id: "filter-tag", value: tags || "", placeholder: "key:value key:value", "aria-label": "Tags" });
    function apply(ev) {
      if (ev) ev.preventDefault();
      onApply(nameInput.value.trim(), tagList(tagInput.value).join(" "));
    }
    return h("form", { class: "toolbar filters", id: "list-filters", on: { submit: apply } },
      h("label", { class: "inline" }, "Name", nameInput),
      h("label", { class: "inline" }, "Tags", tagInput),
      h("button", { type: "submit", class: "small", id: "filter-apply" }, "Filter"),
      (name || tags) ? h("button", { type: "button", class: "small", id: "filter-clear", on: { click: function () { onApply("", ""); } } }, "Clear") : null);
  }

  /** Push a kept finished job again as a new job (job history); fires with the new job or null. */
  function runAgain(queue, job) {
    return confirmAction("Run job " + job.id + " (" + job.category + ") again as a new job of queue “" + queue + "”, with its URL, payload and settings? The finished job stays in the history.",
      "Run again", false).then(function (yes) {
      if (!yes) return null;
      return api("POST", paths.rerun(queue, job.id)).then(function (pushed) {
        flash("ok", [
          "Job " + job.id + " runs again as job ",
          h("a", { href: link(["queue", queue, "job", pushed.id]), class: "mono", id: "rerun-job-id" }, pushed.id),
          ".",
        ], { id: "rerun-result", sticky: true });
        return pushed;
      }, function (e) {
        flash("error", "Could not run job " + job.id + " again: " + e.message);
        return null;
      });
    });
  }

  // Cursors of the pages before the current one, for "Previous".
  var pagerMemory = { key: null, stack: [] };

  function pager(key, query, nextCursor, makeHash) {
    if (pagerMemory.key !== key) pagerMemory = { key: key, stack: [] };
    var cursor = query.cursor || "";
    if (!cursor) pagerMemory.stack = [];
    var stack = pagerMemory.stack;
    var known = !cursor || stack.length > 0;
    return h("div", { class: "pager" },
      h("button", { type: "button", class: "small", id: "page-first", disabled: !cursor, on: { click: function () {
        pagerMemory.stack = [];
        go(makeHash(""));
      } } }, "First page"),
      h("button", { type: "button", class: "small", id: "page-prev", disabled: !cursor || stack.length === 0, on: { click: function () {
        go(makeHash(stack.pop() || ""));
      } } }, "Previous"),
      h("button", { type: "button", class: "small", id: "page-next", disabled: !nextCursor, on: { click: function () {
        stack.push(cursor);
        go(makeHash(nextCursor));
      } } }, "Next page"),
      h("span", { class: "muted small", id: "page-number" }, known ? "page " + (stack.length + 1) : ""));
  }

  function listControls(options) {
    var auto = h("input", { type: "checkbox", id: "auto-refresh", checked: options.autoRefresh });
    var updated = h("span", { class: "muted small", id: "list-updated" }, "");
    return {
      auto: auto,
      updated: updated,
      node: h("div", { class: "toolbar" },
        options.left,
        h("label", { class: "inline" }, "Show", options.limit, "per page"),
        h("span", { class: "grow" }),
        updated,
        h("label", { class: "inline" }, auto, "Auto-refresh"),
        h("button", { type: "button", class: "small", id: "list-refresh", on: { click: options.refresh } }, "Refresh")),
    };
  }

  /** The page size of a list's URL: a whole number from 1 to 10000, else 100. */
  function pageLimit(text) {
    return /^[1-9][0-9]{0,3}$|^10000$/.test(text || "") ? text : "100";
  }

  function limitSelect(value, onChange) {
    var choices = LIMITS.indexOf(value) >= 0 ? LIMITS : LIMITS.concat([value]).sort(function (a, b) { return a - b; });
    var select = h("select", { id: "page-limit", "aria-label": "Page size" },
      choices.map(function (l) { return h("option", { value: l, selected: l === value }, l); }));
    select.addEventListener("change", function () { onChange(select.value); });
    return select;
  }

  var autoRefreshLists = true;

  /* ----------------------------------------------------------------- jobs */

  function jobsView(main, view, queue, state, query) {
    if (!STATES.some(function (s) { return s[0] === state; })) return notFound(main);
    var order = query.order === "asc" ? "asc" : "desc";
    var limit = pageLimit(query.limit);
    var cursor = query.cursor || "";
    var name = query.name || "";
    var tags = query.tag || "";
    // Job history: kept finished jobs, newest first (no order to choose).
    var completed = state === "completed";
    var tbody = h("tbody", { id: "jobs-body" });
    var pagerBox = h("div");

    function hashFor(changes) {
      var q = { order: order, limit: limit, cursor: cursor, name: name, tag: tags };
      Object.keys(changes).forEach(function (k) { q[k] = changes[k]; });
      if (q.order === "desc") delete q.order;
      if (q.limit === "100") delete q.limit;
      return link(["queue", queue, "jobs", changes.state || state], q);
    }

    var orderSelect = h("select", { id: "jobs-order", "aria-label": "Order" },
      h("option", { value: "desc", selected: order === "desc" }, "Latest next try first"),
      h("option", { value: "asc", selected: order === "asc" }, "Earliest next try first"));
    orderSelect.addEventListener("change", function () { go(hashFor({ order: orderSelect.value, cursor: "" })); });

    var controls = listControls({
      autoRefresh: autoRefreshLists,
      refresh: function () { refresh(); },
      left: completed ? h("span", { class: "muted small" }, "Most recently finished first") : h("label", { class: "inline" }, "Order", orderSelect),
      limit: limitSelect(limit, function (l) { go(hashFor({ limit: l, cursor: "" })); }),
    });
    var filters = filterControls(name, tags, function (n, t) { go(hashFor({ name: n, tag: t, cursor: "" })); });

    function keptRow(job) {
      var result = job.result || {};
      return h("tr", { dataset: { id: job.id } },
        h("td", { class: "id" }, h("a", { href: link(["queue", queue, "job", job.id]), title: "Details of job " + job.id }, job.id)),
        clip(job.category, "category"),
        clip(job.url, "url"),
        h("td", { class: "result" }, statusBadge(result.status), " ",
          h("span", { class: "muted small code", title: "the worker's HTTP status" }, result.code !== undefined ? String(result.code) : "")),
        h("td", { class: "time" }, when(result.finished_at, true, true)),
        h("td", { class: "time" }, when(job.created_at, false, true)),
        h("td", { class: "num", title: "attempts started" }, num(job.attempts)),
        h("td", { class: "actions" },
          h("button", { type: "button", class: "small rerun", on: { click: function () { runAgain(queue, job); } } }, "Run again")));
    }

    function remove(job) {
      var grabbed = job.status === "grabbed";
      confirmAction(grabbed
        ? "Cancel job " + job.id + " (" + job.category + ") of queue “" + queue + "”? Its delivery is aborted; it is not retried."
        : "Delete job " + job.id + " (" + job.category + ") from queue “" + queue + "”? It will not be delivered.",
        grabbed ? "Cancel job" : "Delete job", true).then(function (yes) {
        if (!yes) return;
        api("DELETE", paths.job(queue, job.id)).then(function (answer) {
          flash("ok", (answer && answer.canceling ? "Canceling job " : "Deleted job ") + job.id);
          return refresh();
        }, flashError("Could not delete job " + job.id));
      });
    }

    function row(job) {
      var detail = link(["queue", queue, "job", job.id]);
      return h("tr", { dataset: { id: job.id } },
        h("td", { class: "id" }, h("a", { href: detail, title: "Details of job " + job.id }, job.id)),
        clip(job.category, "category"),
        clip(job.url, "url"),
        h("td", null, h("span", { class: "badge" + (job.status === "grabbed" ? " warn" : "") }, job.status)),
        h("td", { class: "time" }, when(job.next_try, true, true)),
        h("td", { class: "time" }, when(job.created_at, false, true)),
        h("td", {
          class: "num",
          title: "failures so far / retries allowed; retry delay " + job.retry_delay + " s; timeout " +
            (job.timeout ? job.timeout + " s" : "none"),
        }, num(job.fail_count) + " / " + num(job.max_retries)),
        h("td", { class: "actions" },
          h("button", { type: "button", class: "small danger delete", on: { click: function () { remove(job); } } },
            job.status === "grabbed" ? "Cancel" : "Delete")));
    }

    function refresh() {
      var filter = { limit: limit, cursor: cursor, name: name, tag: tagList(tags) };
      var path = completed ? withQuery(paths.completed(queue), filter)
        : withQuery(paths.jobs(queue, state), Object.assign({ order: order }, filter));
      return api("GET", path).then(function (page) {
        if (!view.current()) return;
        var jobs = page.jobs || [];
        syncRows(tbody, jobs,
          function (job) { return job.id; },
          function (job) { return JSONX.stringify(job) + (completed ? "" : relative(job.next_try)); },
          completed ? keptRow : row,
          function () { return h("tr", null, h("td", { class: "empty", colSpan: 8 }, cursor ? "No more jobs." : "No " + state + " jobs" + (name || tags ? " match the filter." : "."))); });
        replace(pagerBox, pager(queue + "\n" + state + "\n" + order + "\n" + limit + "\n" + name + "\n" + tags, { cursor: cursor }, page.next_cursor,
          function (c) { return hashFor({ cursor: c }); }));
        replace(controls.updated, "updated " + clock());
      }, function (e) {
        if (!view.current()) return;
        replace(controls.updated, "");
        replace(tbody, h("tr", null, h("td", { class: "empty error", colSpan: 8 }, "Could not load jobs: " + e.message)));
      });
    }

    replace(main,
      queueHeader(queue, "jobs", view),
      h("div", { class: "panel" },
        h("nav", { class: "tabs", "aria-label": "Job states" }, STATES.map(function (s) {
          return h("a", { href: hashFor({ state: s[0], cursor: "" }), class: s[0] === state ? "current" : "", id: "tab-" + s[0] }, s[1]);
        })),
        controls.node,
        filters,
        h("div", { class: "table-wrap" },
          h("table", { id: "jobs-table" },
            h("thead", null, completed
              ? h("tr", null,
                h("th", null, "Job id"), h("th", null, "Category"), h("th", null, "Worker URL"), h("th", null, "Result"),
                h("th", null, "Finished"), h("th", null, "Created"), h("th", { class: "num" }, "Attempts"), h("th", null, ""))
              : h("tr", null,
                h("th", null, "Job id"), h("th", null, "Category"), h("th", null, "Worker URL"), h("th", null, "Status"),
                h("th", null, "Next try"), h("th", null, "Created"),
                h("th", { class: "num", title: "failures so far / retries allowed" }, "Failures"), h("th", null, ""))),
            tbody)),
        pagerBox));

    var stop = null;
    function schedule() {
      if (stop) { stop(); stop = null; }
      autoRefreshLists = controls.auto.checked;
      stop = controls.auto.checked ? follow(queue, refresh) : (refresh(), null);
    }
    controls.auto.addEventListener("change", schedule);
    schedule();
    view.onStop(function () { if (stop) stop(); });
  }

  function jobView(main, view, queue, id) {
    var body = h("div", { class: "panel", id: "job-detail" }, h("p", { class: "muted" }, "loading…"));
    replace(main, queueHeader(queue, "jobs", view), body);
    api("GET", paths.job(queue, id)).then(function (job) {
      if (!view.current()) return;
      var grabbed = job.status === "grabbed";
      var del = h("button", { type: "button", class: "danger", id: "job-delete", on: { click: function () {
        confirmAction(grabbed
          ? "Cancel job " + job.id + " of queue “" + queue + "”? Its delivery is aborted; it is not retried nor written to the failure log."
          : "Delete job " + job.id + " from queue “" + queue + "”? It will not be delivered.",
          grabbed ? "Cancel job" : "Delete job", true).then(function (yes) {
          if (!yes) return;
          api("DELETE", paths.job(queue, job.id)).then(function (answer) {
            flash("ok", (answer && answer.canceling ? "Canceling job " : "Deleted job ") + job.id);
            go(link(["queue", queue, "jobs", grabbed ? "grabbed" : "waiting"]));
          }, flashError("Could not delete job " + job.id));
        });
      } } }, grabbed ? "Cancel job" : "Delete job");
      // Job history: a kept finished job shows its last attempt's result
      // and output (as text), and can run again; it cannot be deleted.
      var result = job.result;
      var action = result
        ? h("button", { type: "button", class: "primary", id: "job-rerun", on: { click: function () { runAgain(queue, job); } } }, "Run again")
        : del;
      replace(body,
        h("div", { class: "toolbar" }, h("h2", null, "Job ", h("span", { class: "mono", id: "job-id" }, job.id)), h("span", { class: "grow" }), action),
        h("div", { class: "columns" },
          fields([
            ["Job id", job.id, { class: "mono" }],
            ["Status", h("span", { class: "badge" }, job.status)],
            job.state !== undefined ? ["State", h("span", { class: "badge" }, job.state), { id: "job-state" }] : null,
            job.attempts !== undefined ? ["Attempts", num(job.attempts), { id: "job-attempts" }] : null,
            ["Category", job.category],
            ["Worker URL", job.url, { class: "mono" }],
            ["Created", when(job.created_at, true)],
            ["Next try", when(job.next_try, true)],
            ["Failures so far", num(job.fail_count)],
            ["Retries allowed", num(job.max_retries)],
            ["Retry delay", num(job.retry_delay) + " s"],
            ["Timeout", job.timeout ? num(job.timeout) + " s" : "none"],
          ].concat(optionFields(job))),
          h("div", null, h("h2", null, "Payload"), payloadBlock(job.payload))),
        result ? resultBlock(result) : null);
    }, function (e) {
      if (!view.current()) return;
      replace(body,
        h("p", { class: "error", id: "job-missing" }, e.status === 404
          ? "Queue “" + queue + "” holds no job " + id + ": it may have completed or been deleted."
          : "Could not load job " + id + ": " + e.message),
        h("p", null, h("a", { href: link(["queue", queue, "jobs", "waiting"]) }, "Back to the jobs of " + queue)));
    });
  }

  /** The last attempt of a kept finished job: its result, times and output, all as text. */
  function resultBlock(result) {
    return h("div", { id: "job-result" },
      h("h2", null, "Last attempt"),
      fields([
        ["Result", [statusBadge(result.status), " ", h("span", { class: "muted small" }, "HTTP " + String(result.code))], { id: "job-result-status" }],
        ["Message", result.message || "—", { id: "job-result-message" }],
        ["Started", when(result.started_at, true)],
        ["Finished", when(result.finished_at, true)],
        ["Elapsed", num(result.elapsed) + " ms"],
      ]),
      h("h2", null, "Output"),
      result.output_truncated ? h("p", { class: "muted small", id: "job-output-truncated" }, "The first 65,536 bytes of the answer (it was longer).") : null,
      result.output ? h("pre", { class: "block output", id: "job-output" }, result.output)
        : h("p", { class: "muted", id: "job-output" }, "The worker's answer had no body."));
  }

  /* ---------------------------------------------------------- failure log */

  function retry(queue, failure) {
    return confirmAction("Push job " + failure.job_id + " (" + failure.category + ") again, with its original URL, payload and retry settings? The failure entry is removed.",
      "Retry job", false).then(function (yes) {
      if (!yes) return null;
      return api("POST", paths.retry(queue, failure.id)).then(function (job) {
        flash("ok", [
          "Failure " + failure.id + " was pushed again as job ",
          h("a", { href: link(["queue", queue, "job", job.id]), class: "mono", id: "retried-job-id" }, job.id),
          " in queue " + job.queue_name + ".",
        ], { id: "retry-result", sticky: true });
        return job;
      }, function (e) {
        flash("error", "Could not retry failure " + failure.id + ": " + e.message);
        return null;
      });
    });
  }

  function failedView(main, view, queue, query) {
    var order = query.order === "created" ? "created" : "failed";
    var limit = pageLimit(query.limit);
    var cursor = query.cursor || "";
    var name = query.name || "";
    var tags = query.tag || "";
    var tbody = h("tbody", { id: "failed-body" });
    var pagerBox = h("div");

    function hashFor(changes) {
      var q = { order: order, limit: limit, cursor: cursor, name: name, tag: tags };
      Object.keys(changes).forEach(function (k) { q[k] = changes[k]; });
      if (q.order === "failed") delete q.order;
      if (q.limit === "100") delete q.limit;
      return link(["queue", queue, "failed"], q);
    }

    var orderSelect = h("select", { id: "failed-order", "aria-label": "Order" },
      h("option", { value: "failed", selected: order === "failed" }, "Most recent failure first"),
      h("option", { value: "created", selected: order === "created" }, "Most recently pushed first"));
    orderSelect.addEventListener("change", function () { go(hashFor({ order: orderSelect.value, cursor: "" })); });

    var controls = listControls({
      autoRefresh: autoRefreshLists,
      refresh: function () { refresh(); },
      left: h("label", { class: "inline" }, "Order", orderSelect),
      limit: limitSelect(limit, function (l) { go(hashFor({ limit: l, cursor: "" })); }),
    });
    var filters = filterControls(name, tags, function (n, t) { go(hashFor({ name: n, tag: t, cursor: "" })); });

    function remove(f) {
      confirmAction("Delete failure " + f.id + " (job " + f.job_id + ", " + f.category + ") from the failure log of “" + queue + "”?",
        "Delete entry", true).then(function (yes) {
        if (!yes) return;
        api("DELETE", paths.failed(queue, f.id)).then(function () {
          flash("ok", "Deleted failure " + f.id);
          return refresh();
        }, flashError("Could not delete failure " + f.id));
      });
    }

    function row(f) {
      var detail = link(["queue", queue, "failed", f.id]);
      var result = f.result || {};
      return h("tr", { dataset: { id: f.id, jobId: f.job_id } },
        h("td", { class: "id" },
          h("a", { href: detail, title: "Details of failure " + f.id }, f.id),
          h("div", { class: "muted small" }, "job ", h("span", { class: "job-id" }, f.job_id))),
        clip(f.category, "category"),
        clip(f.url, "url"),
        h("td", { class: "result" }, statusBadge(result.status), " ",
          h("span", { class: "muted small code", title: "the worker's HTTP status" }, result.code !== undefined ? String(result.code) : ""),
          f.reason ? h("div", { class: "muted small reason" }, f.reason) : null),
        clip(result.message || "", "message"),
        h("td", { class: "num" }, num(f.fail_count)),
        h("td", { class: "time" }, when(f.failed_at, true, true),
          h("div", { class: "muted small" }, "created ", when(f.created_at, false, true))),
        h("td", { class: "actions" },
          h("button", { type: "button", class: "small retry", on: { click: function () {
            retry(queue, f).then(function (job) { if (job) refresh(); });
          } } }, "Retry"),
          h("button", { type: "button", class: "small danger delete", on: { click: function () { remove(f); } } }, "Delete")));
    }

    function refresh() {
      var path = withQuery(paths.failedList(queue), { order: order, limit: limit, cursor: cursor, name: name, tag: tagList(tags) });
      return api("GET", path).then(function (page) {
        if (!view.current()) return;
        var failed = page.failed_jobs || [];
        syncRows(tbody, failed,
          function (f) { return f.id; },
          function (f) { return JSONX.stringify(f) + relative(f.failed_at); },
          row,
          function () { return h("tr", null, h("td", { class: "empty", colSpan: 8 }, cursor ? "No more entries." : "The failure log is empty.")); });
        replace(pagerBox, pager(queue + "\nfailed\n" + order + "\n" + limit + "\n" + name + "\n" + tags, { cursor: cursor }, page.next_cursor,
          function (c) { return hashFor({ cursor: c }); }));
        replace(controls.updated, "updated " + clock());
      }, function (e) {
        if (!view.current()) return;
        replace(controls.updated, "");
        replace(tbody, h("tr", null, h("td", { class: "empty error", colSpan: 8 }, "Could not load the failure log: " + e.message)));
      });
    }

    replace(main,
      queueHeader(queue, "failed", view),
      h("div", { class: "panel" },
        h("h2", null, "Failure log"),
        controls.node,
        filters,
        h("div", { class: "table-wrap" },
          h("table", { id: "failed-table" },
            h("thead", null, h("tr", null,
              h("th", null, "Failure id"), h("th", null, "Category"), h("th", null, "Worker URL"),
              h("th", null, "Result"), h("th", null, "Message"), h("th", { class: "num", title: "tries that failed" }, "Failures"),
              h("th", null, order === "created" ? "Failed (by creation)" : "Failed"), h("th", null, ""))),
            tbody)),
        pagerBox));

    var stop = null;
    function schedule() {
      if (stop) { stop(); stop = null; }
      autoRefreshLists = controls.auto.checked;
      stop = controls.auto.checked ? follow(queue, refresh) : (refresh(), null);
    }
    controls.auto.addEventListener("change", schedule);
    schedule();
    view.onStop(function () { if (stop) stop(); });
  }

  function failureView(main, view, queue, id) {
    var body = h("div", { class: "panel", id: "failure-detail" }, h("p", { class: "muted" }, "loading…"));
    replace(main, queueHeader(queue, "failed", view), body);
    api("GET", paths.failed(queue, id)).then(function (f) {
      if (!view.current()) return;
      var result = f.result || {};
      var retryButton = h("button", { type: "button", class: "primary", id: "failure-retry", on: { click: function () {
        retry(queue, f).then(function (job) {
          if (!job || !view.current()) return;
          retryButton.disabled = true;
          deleteButton.disabled = true;
          body.insertBefore(h("div", { class: "panel", id: "retried" },
            h("h2", null, "Pushed again as job ", h("a", { href: link(["queue", queue, "job", job.id]), class: "mono" }, job.id)),
            h("p", { class: "muted small" }, "The failure entry is removed. The new job is delivered like any other."),
            h("pre", { class: "block" }, JSONX.stringify(job, 2))), body.firstChild);
        });
      } } }, "Retry job");
      var deleteButton = h("button", { type: "button", class: "danger", id: "failure-delete", on: { click: function () {
        confirmAction("Delete failure " + f.id + " (job " + f.job_id + ") from the failure log of “" + queue + "”?", "Delete entry", true).then(function (yes) {
          if (!yes) return;
          api("DELETE", paths.failed(queue, f.id)).then(function () {
            flash("ok", "Deleted failure " + f.id);
            go(link(["queue", queue, "failed"]));
          }, flashError("Could not delete failure " + f.id));
        });
      } } }, "Delete entry");
      replace(body,
        h("div", { class: "toolbar" },
          h("h2", null, "Failure ", h("span", { class: "mono", id: "failure-id" }, f.id), " of job ", h("span", { class: "mono", id: "failure-job-id" }, f.job_id)),
          h("span", { class: "grow" }), retryButton, deleteButton),
        h("div", { class: "columns" },
          fields([
            ["Failure id", f.id, { class: "mono" }],
            ["Job id", f.job_id, { class: "mono" }],
            ["Category", f.category, { id: "failure-category" }],
            ["Worker URL", f.url, { class: "mono" }],
            ["Failures", num(f.fail_count)],
            ["Failed", when(f.failed_at, true)],
            ["Created", when(f.created_at, true)],
          ].concat(optionFields(f))),
          h("div", null,
            h("h2", null, "Worker's result"),
            fields([
              ["Status", statusBadge(result.status), { id: "failure-status" }],
              ["HTTP status", result.code === 0 ? "0 (no answer)" : num(result.code), { id: "failure-code" }],
            ]),
            h("pre", { class: "block", id: "failure-message" }, result.message || "(no message)"),
            h("h2", null, "Payload"),
            payloadBlock(f.payload))));
    }, function (e) {
      if (!view.current()) return;
      replace(body,
        h("p", { class: "error", id: "failure-missing" }, e.status === 404
          ? "The failure log of “" + queue + "” holds no entry " + id + " (it was retried or deleted)."
          : "Could not load failure " + id + ": " + e.message),
        h("p", null, h("a", { href: link(["queue", queue, "failed"]) }, "Back to the failure log of " + queue)));
    });
  }

  /* ----------------------------------------------------------- push a job */

  function pushView(main, view) {
    function input(id, name, type, extra) {
      var props = { id: id, name: name, autocomplete: "off" };
      if (type) props.type = type;
      Object.keys(extra || {}).forEach(function (k) { props[k] = extra[k]; });
      return h("input", props);
    }
    var category = input("push-category", "category", null, { required: true, maxLength: 255 });
    var url = input("push-url", "url", "url", { required: true, placeholder: "the worker's absolute URL" });
    var payload = h("textarea", { id: "push-payload", name: "payload", rows: 4, placeholder: "{\"user\": 42}  (JSON; empty for no payload)" });
    var runAfter = input("push-run-after", "run_after", "number", { min: "0", step: "1" });
    var maxRetries = input("push-max-retries", "max_retries", "number", { min: "0", step: "1" });
    var retryDelay = input("push-retry-delay", "retry_delay", "number", { min: "0", step: "1" });
    var timeout = input("push-timeout", "timeout", "number", { min: "0", step: "1" });
    var name = input("push-name", "name", null, { maxLength: 255 });
    var tags = h("textarea", { id: "push-tags", name: "tags", rows: 2, placeholder: "{\"team\": \"ops\"}" });
    var headers = h("textarea", { id: "push-headers", name: "headers", rows: 2, placeholder: "{\"Authorization\": \"Bearer …\"}" });
    var priority = input("push-priority", "priority", "number", { min: "-100", max: "100", step: "1" });
    var backoff = input("push-retry-backoff", "retry_backoff", "number", { min: "1", max: "10", step: "any" });
    var maxDelay = input("push-retry-max-delay", "retry_max_delay", "number", { min: "0", step: "1" });
    var jitter = input("push-retry-jitter", "retry_jitter", "checkbox");
    var success = h("select", { id: "push-success", name: "success" },
      h("option", { value: "" }, "the answer's status (default)"),
      h("option", { value: "2xx" }, "any 2xx answer"));
    var deadline = input("push-deadline", "deadline", "number", { min: "1", step: "1" });
    var key = input("push-idempotency-key", "idempotency_key", null, { maxLength: 255 });
    var submit = h("button", { id: "push-submit", class: "primary", type: "submit" }, "Push job");
    var result = h("div", { id: "push-result" });

    function json(area, label) {
      var t = area.value.trim();
      if (t === "") return undefined;
      try { return JSONX.parse(t); } catch (e) { throw new Error(label + " is not valid JSON: " + e.message); }
    }
    function number(el, label, whole) {
      var t = el.value.trim();
      if (t === "") return undefined;
      var n = Number(t);
      if (!isFinite(n) || (whole && !/^-?[0-9]+$/.test(t))) throw new Error(label + " must be a " + (whole ? "whole " : "") + "number");
      return n;
    }

    var form = h("form", { class: "grid", id: "push-form", novalidate: true, on: { submit: function (ev) {
      ev.preventDefault();
      var body = {};
      var cat = category.value;
      try {
        if (!cat) throw new Error("a job needs a category");
        if (!url.value.trim()) throw new Error("a job needs a worker URL");
        body.url = url.value.trim();
        // Checked here, sent as typed (numbers exactly as written).
        var payloadText = json(payload, "payload") === undefined ? "" : payload.value.trim();
        [[runAfter, "run_after"], [maxRetries, "max_retries"], [retryDelay, "retry_delay"], [timeout, "timeout"],
         [priority, "priority"], [maxDelay, "retry_max_delay"], [deadline, "deadline"]].forEach(function (f) {
          var v = number(f[0], f[1], true);
          if (v !== undefined) body[f[1]] = v;
        });
        var b = number(backoff, "retry_backoff", false);
        if (b !== undefined) body.retry_backoff = b;
        if (jitter.checked) body.retry_jitter = true;
        if (success.value) body.success = success.value;
        if (name.value) body.name = name.value;
        var t = json(tags, "tags");
        if (t !== undefined) body.tags = t;
        var hd = json(headers, "headers");
        if (hd !== undefined) body.headers = hd;
        if (key.value) body.idempotency_key = key.value;
      } catch (e) {
        flash("error", e.message);
        return;
      }
      submit.disabled = true;
      var text = JSON.stringify(body);
      if (payloadText) text = '{"payload":' + payloadText + "," + text.slice(1);
      api("POST", "/job/" + enc(cat), text).then(function (job) {
        if (!view.current()) return;
        flash("ok", "Pushed job " + job.id + " to queue " + job.queue_name);
        replace(result,
          h("h2", null, "Accepted: job ",
            h("a", { id: "push-job-link", class: "mono", href: link(["queue", job.queue_name, "job", job.id]) }, job.id),
            " of queue ", h("span", { class: "mono" }, job.queue_name)),
          h("pre", { class: "block", id: "push-answer" }, JSONX.stringify(job, 2)));
      }, flashError("Could not push the job")).then(function () { submit.disabled = false; });
    } } },
      h("label", null, "Category", category),
      h("label", null, "Worker URL", url),
      h("label", { class: "wide" }, "Payload (JSON)", payload),
      h("label", null, "Run after (s)", runAfter),
      h("label", null, "Max retries", maxRetries),
      h("label", null, "Retry delay (s)", retryDelay),
      h("label", null, "Timeout (s)", timeout),
      h("fieldset", null, h("legend", null, "Job options (all optional)"),
        h("label", null, "Name", name),
        h("label", null, "Priority (−100 to 100)", priority),
        h("label", null, "Retry backoff (1 to 10)", backoff),
        h("label", null, "Longest retry wait (s)", maxDelay),
        h("label", { class: "inline" }, jitter, "Retry jitter"),
        h("label", null, "Success when", success),
        h("label", null, "Deadline (s after the push)", deadline),
        h("label", null, "Idempotency key", key),
        h("label", { class: "wide" }, "Tags (JSON object)", tags),
        h("label", { class: "wide" }, "Delivery headers (JSON object)", headers)),
      h("div", { class: "form-actions" }, submit));

    replace(main,
      h("h1", null, "Push a job", h("span", { class: "sub" }, "to the queue its category is routed to")),
      h("div", { class: "panel" }, form),
      h("div", { class: "panel" }, result));
  }

  /* -------------------------------------------------------------- sign-in */

  /** The signed-in token as /whoami shows it; null with auth off. */
  var me = null;

  /** Show what the token may do: without the admin scope, no changes. */
  function applyToken() {
    var readOnly = me !== null && me.scopes.indexOf("admin") < 0;
    document.body.classList.toggle("read-only", readOnly);
    // The tokens page: auth on and a token that sees every queue (GET /tokens).
    var navTokens = document.getElementById("nav-tokens");
    if (navTokens) navTokens.hidden = me === null || !!me.queues;
    var box = document.getElementById("whoami");
    if (!box) {
      box = h("div", { id: "whoami", class: "whoami" });
      document.querySelector("header.top").appendChild(box);
    }
    if (me === null) {
      replace(box);
      return;
    }
    replace(box,
      h("span", { id: "whoami-name", title: "scopes: " + me.scopes.join(", ") + (me.queues ? "; queues " + me.queues : "") },
        me.name + " (" + me.scopes.join(", ") + (me.queues ? " · " + me.queues : "") + ")"),
      h("button", { type: "button", class: "small", id: "sign-out", on: { click: function () {
        storeToken("");
        me = null;
        settings = null;
        applyToken();
        signInView("");
      } } }, "Sign out"));
  }

  function signInView(message) {
    var main = document.getElementById("main");
    var shown = document.getElementById("sign-in");
    if (shown) {
      var error = document.getElementById("sign-in-error");
      if (message && error) error.textContent = message;
      return;
    }
    if (currentView) currentView.stop();
    generation++;
    currentView = null;
    me = null;
    applyToken();
    clear(document.getElementById("modal-root"));
    var input = h("input", { type: "password", id: "token-input", autocomplete: "off", spellcheck: false,
                             "aria-label": "API token" });
    var form = h("form", { id: "sign-in", class: "grid", novalidate: true, on: { submit: function (ev) {
      ev.preventDefault();
      var value = input.value.trim();
      if (!value) return;
      storeToken(value);
      start();
    } } },
      h("label", { for: "token-input" }, "API token"), input,
      h("div", { class: "actions" }, h("button", { class: "primary", type: "submit", id: "token-submit" }, "Sign in")));
    document.title = "Sign in · Fireworq";
    replace(main,
      h("h1", null, "Sign in"),
      h("p", null, "This server requires an API token. The console keeps it in this tab's session storage only."),
      h("p", { class: "error", id: "sign-in-error" }, message || ""),
      form);
    input.focus();
  }

  /** Find out whether auth is on and who the token is, then show the page. */
  function start() {
    return api("GET", "/whoami").then(function (token) {
      if (token.scopes.indexOf("read") < 0 && token.scopes.indexOf("admin") < 0) {
        storeToken("");
        signInView("The token “" + token.name + "” may only push jobs; the console needs a token with the read or admin scope.");
        return;
      }
      me = token;
      settings = null;
      applyToken();
      route();
    }, function (e) {
      if (e.status === 401) return; // the sign-in form is shown
      me = null; // 404: the server runs without authentication
      applyToken();
      route();
    });
  }

  /* ------------------------------------------------------------ schedules */

  function schedulesView(main, view) {
    var tbody = h("tbody", { id: "schedules-body" });
    // The schedule being edited (its other job fields are kept on save).
    var editing = null;
    function input(id, name, type, extra) {
      var props = { id: id, name: name, type: type || "text", autocomplete: "off" };
      Object.keys(extra || {}).forEach(function (k) { props[k] = extra[k]; });
      return h("input", props);
    }
    var name = input("schedule-name", "name", null, { required: true, maxLength: 255 });
    var cron = input("schedule-cron", "cron", null, { required: true, placeholder: "*/15 * * * *  or  @daily" });
    var zone = input("schedule-timezone", "timezone", null, { placeholder: "UTC" });
    var category = input("schedule-category", "category", null, { required: true, maxLength: 255 });
    var url = input("schedule-url", "url", "url", { required: true, placeholder: "the worker's absolute URL" });
    var payload = h("textarea", { id: "schedule-payload", name: "payload", rows: 3, placeholder: "{\"report\": \"daily\"}  (JSON; empty for no payload)" });
    var jobName = input("schedule-job-name", "job_name", null, { maxLength: 255 });
    var maxRetries = input("schedule-max-retries", "max_retries", "number", { min: "0", step: "1" });
    var retryDelay = input("schedule-retry-delay", "retry_delay", "number", { min: "0", step: "1" });
    var timeout = input("schedule-timeout", "timeout", "number", { min: "0", step: "1" });
    var catchUp = h("select", { id: "schedule-catch-up", name: "catch_up" },
      h("option", { value: "none" }, "skip missed times (none)"),
      h("option", { value: "last" }, "push the latest missed time (last)"));
    var enabled = input("schedule-enabled", "enabled", "checkbox", { checked: true });
    var submit = h("button", { id: "schedule-submit", class: "primary", type: "submit" }, "Save schedule");
    var cancel = h("button", { id: "schedule-cancel", type: "button", hidden: true, on: { click: function () { resetForm(); } } }, "Cancel edit");

    function resetForm() {
      editing = null;
      [name, cron, zone, category, url, jobName, maxRetries, retryDelay, timeout].forEach(function (el) { el.value = ""; });
      payload.value = "";
      catchUp.value = "none";
      enabled.checked = true;
      name.disabled = false;
      cancel.hidden = true;
      submit.textContent = "Save schedule";
    }

    function numberText(v) { return v === undefined || v === null ? "" : String(v); }

    function edit(s) {
      editing = s;
      name.value = s.name;
      name.disabled = true;
      cron.value = s.cron;
      zone.value = s.timezone === "UTC" ? "" : s.timezone;
      category.value = s.category;
      url.value = s.url || "";
      payload.value = s.payload === undefined || s.payload === null ? "" :
        (typeof s.payload === "string" ? JSONX.stringify(s.payload) : JSONX.stringify(s.payload, null, 2));
      jobName.value = s.job_name || "";
      maxRetries.value = numberText(s.max_retries);
      retryDelay.value = numberText(s.retry_delay);
      timeout.value = numberText(s.timeout);
      catchUp.value = s.catch_up;
      enabled.checked = !!s.enabled;
      cancel.hidden = false;
      submit.textContent = "Save changes";
      cron.focus();
    }

    /** A schedule answer as a PUT body: the definition without its state. */
    function definition(s) {
      var body = {};
      Object.keys(s).forEach(function (k) {
        if (k !== "name" && k !== "next_run_at" && k !== "last_run_at" && k !== "last_job") body[k] = s[k];
      });
      return body;
    }

    function whole(el, label) {
      var t = el.value.trim();
      if (t === "") return undefined;
      if (!/^[0-9]+$/.test(t)) throw new Error(label + " must be a whole number");
      return Number(t);
    }

    /** PUT a schedule; fires with whether it was saved. */
    function put(scheduleName, body, done) {
      return api("PUT", "/schedule/" + enc(scheduleName), body).then(function (s) {
        flash("ok", done + " " + s.name + (s.next_run_at ? "; next run " + s.next_run_at : ""));
        return refresh().then(function () { return true; });
      }, function (e) {
        flashError("Could not save schedule " + scheduleName)(e);
        return false;
      });
    }

    var form = h("form", { class: "grid", id: "schedule-form", novalidate: true, on: { submit: function (ev) {
      ev.preventDefault();
      var scheduleName = editing ? editing.name : name.value;
      var body = editing ? definition(editing) : {};
      try {
        if (!scheduleName) throw new Error("a schedule needs a name");
        body.cron = cron.value.trim();
        body.timezone = zone.value.trim() || "UTC";
        body.category = category.value;
        body.url = url.value;
        body.catch_up = catchUp.value;
        body.enabled = enabled.checked;
        var t = payload.value.trim();
        if (t === "") {
          delete body.payload;
        } else {
          try { body.payload = JSONX.parse(t); } catch (e) { throw new Error("payload is not valid JSON: " + e.message); }
        }
        if (jobName.value) body.job_name = jobName.value; else delete body.job_name;
        [[maxRetries, "max_retries"], [retryDelay, "retry_delay"], [timeout, "timeout"]].forEach(function (f) {
          var n = whole(f[0], f[1]);
          if (n === undefined) delete body[f[1]]; else body[f[1]] = n;
        });
      } catch (e) {
        flash("error", e.message);
        return;
      }
      submit.disabled = true;
      put(scheduleName, body, editing ? "Saved" : "Created").then(function (saved) {
        submit.disabled = false;
        if (saved) resetForm();
      });
    } } },
      h("label", null, "Name", name),
      h("label", null, "Cron (5 fields or @hourly, @daily, …)", cron),
      h("label", null, "Time zone (IANA, default UTC)", zone),
      h("label", null, "Job category", category),
      h("label", null, "Worker URL", url),
      h("label", { class: "wide" }, "Payload", payload),
      h("label", null, "Job name", jobName),
      h("label", null, "Max retries", maxRetries),
      h("label", null, "Retry delay (s)", retryDelay),
      h("label", null, "Timeout (s)", timeout),
      h("label", null, "After missed times", catchUp),
      h("label", { class: "inline" }, enabled, "Enabled"),
      h("div", { class: "form-actions" }, submit, cancel));

    function setEnabled(s, on) {
      var body = definition(s);
      body.enabled = on;
      put(s.name, body, on ? "Enabled" : "Disabled");
    }

    function runNow(s) {
      api("POST", "/schedule/" + enc(s.name) + "/run").then(function (job) {
        flash("ok", ["Pushed job ", h("a", { href: link(["queue", job.queue_name, "job", job.id]) }, String(job.id)),
          " of schedule " + s.name + " to queue " + job.queue_name]);
        return refresh();
      }, flashError("Could not run schedule " + s.name));
    }

    function remove(s) {
      confirmAction("Delete schedule “" + s.name + "”? Jobs it pushed stay.", "Delete schedule", true).then(function (yes) {
        if (!yes) return;
        api("DELETE", "/schedule/" + enc(s.name)).then(function () {
          flash("ok", "Deleted schedule " + s.name);
          if (editing && editing.name === s.name) resetForm();
          return refresh();
        }, flashError("Could not delete schedule " + s.name));
      });
    }

    function row(s) {
      var last = s.last_job
        ? h("a", { href: link(["queue", s.last_job.queue_name, "job", s.last_job.id]) }, s.last_job.queue_name + " #" + s.last_job.id)
        : "—";
      return h("tr", { dataset: { schedule: s.name } },
        h("td", { class: "name" }, s.name),
        h("td", { class: "cron" }, h("code", null, s.cron), s.timezone !== "UTC" ? h("div", { class: "sub" }, s.timezone) : null),
        h("td", null, s.category),
        h("td", { class: "next-run" }, s.enabled ? (s.next_run_at || "—") : h("span", { class: "badge" }, "disabled")),
        h("td", { class: "last-run" }, s.last_run_at || "—"),
        h("td", { class: "last-job" }, last),
        h("td", null, s.catch_up),
        h("td", { class: "actions" },
          h("button", { type: "button", class: "small edit", on: { click: function () { edit(s); } } }, "Edit"),
          s.enabled
            ? h("button", { type: "button", class: "small disable", on: { click: function () { setEnabled(s, false); } } }, "Disable")
            : h("button", { type: "button", class: "small enable", on: { click: function () { setEnabled(s, true); } } }, "Enable"),
          h("button", { type: "button", class: "small run", on: { click: function () { runNow(s); } } }, "Run now"),
          h("button", { type: "button", class: "small danger delete", on: { click: function () { remove(s); } } }, "Delete")));
    }

    function refresh() {
      return api("GET", "/schedules").then(function (list) {
        if (!view.current()) return;
        syncRows(tbody, list || [],
          function (s) { return s.name; },
          function (s) { return JSONX.stringify(s); },
          row,
          function () { return h("tr", null, h("td", { class: "empty", colSpan: 8 }, "No schedules are defined.")); });
      }, flashError("Could not load schedules"));
    }

    replace(main,
      h("h1", null, "Schedules", h("span", { class: "sub" }, "cron times that push a job, once each across the cluster"),
        h("button", { type: "button", class: "small", on: { click: refresh } }, "Refresh")),
      h("div", { class: "panel table-wrap" },
        h("table", { id: "schedules-table" },
          h("thead", null, h("tr", null,
            h("th", null, "Name"), h("th", null, "Cron"), h("th", null, "Category"), h("th", null, "Next run"),
            h("th", null, "Last run"), h("th", null, "Last job"), h("th", null, "Catch-up"), h("th", null, ""))),
          tbody)),
      h("div", { class: "panel" }, h("h2", null, "Define or replace a schedule"), form));
    view.onStop(every(REFRESH_MS, refresh));
  }

  /* ---------------------------------------------------------------- hooks */

  var HOOK_EVENTS = ["job.pushed", "job.completed", "job.retried", "job.failed", "job.expired", "job.canceled"];

  /**
   * Event hooks: the list (no secrets: the server never shows them again),
   * a form to define or replace one, delete.  The secret the server makes
   * is shown once, right after the PUT that made it.
   */
  function hooksView(main, view) {
    var tbody = h("tbody", { id: "hooks-body" });
    var name = h("input", { id: "hook-name", name: "name", type: "text", required: true, maxLength: 255,
      autocomplete: "off", placeholder: "letters, digits, _ . : -" });
    var url = h("input", { id: "hook-url", name: "url", type: "url", required: true, autocomplete: "off",
      placeholder: "the receiver's http or https URL" });
    var queues = h("input", { id: "hook-queues", name: "queues", type: "text", maxLength: 255, autocomplete: "off",
      placeholder: "all queues, or a glob such as orders-*" });
    var boxes = HOOK_EVENTS.map(function (t) {
      return h("input", { type: "checkbox", name: "events", value: t, id: "hook-event-" + t.replace(".", "-"),
        checked: t === "job.completed" || t === "job.failed" });
    });
    var secretOut = h("div", { id: "hook-secret", class: "panel", hidden: true });
    var submit = h("button", { id: "hook-submit", class: "primary", type: "submit" }, "Save hook");

    function showSecret(hook) {
      clear(secretOut);
      if (!hook.secret) { secretOut.hidden = true; return; }
      secretOut.hidden = false;
      secretOut.appendChild(h("p", null, "The secret of hook " + hook.name +
        " (shown only now; the receiver verifies each event with it):"));
      secretOut.appendChild(h("code", { class: "secret" }, hook.secret));
    }

    var form = h("form", { class: "grid", id: "hook-form", novalidate: true, on: { submit: function (ev) {
      ev.preventDefault();
      var events = boxes.filter(function (b) { return b.checked; }).map(function (b) { return b.value; });
      if (!name.value) { flash("error", "a hook needs a name"); return; }
      if (!events.length) { flash("error", "choose at least one event"); return; }
      var body = { url: url.value, events: events };
      if (queues.value.trim()) body.queues = queues.value.trim();
      submit.disabled = true;
      api("PUT", "/hook/" + enc(name.value), body).then(function (hook) {
        submit.disabled = false;
        flash("ok", "Saved hook " + hook.name);
        showSecret(hook);
        name.value = ""; url.value = ""; queues.value = "";
        return refresh();
      }, function (e) {
        submit.disabled = false;
        flashError("Could not save hook " + name.value)(e);
      });
    } } },
      h("label", null, "Name", name),
      h("label", null, "Receiver URL", url),
      h("label", null, "Queues (glob)", queues),
      h("fieldset", { class: "wide" }, h("legend", null, "Events"),
        boxes.map(function (b) { return h("label", { class: "inline" }, b, b.value); })),
      h("div", { class: "form-actions" }, submit));

    function edit(hook) {
      name.value = hook.name;
      url.value = hook.url;
      queues.value = hook.queues || "";
      boxes.forEach(function (b) { b.checked = hook.events.indexOf(b.value) >= 0; });
      url.focus();
    }

    function remove(hook) {
      confirmAction("Delete hook “" + hook.name + "”? Its events not yet delivered are dropped.", "Delete hook", true)
        .then(function (yes) {
          if (!yes) return;
          api("DELETE", "/hook/" + enc(hook.name)).then(function () {
            flash("ok", "Deleted hook " + hook.name);
            return refresh();
          }, flashError("Could not delete hook " + hook.name));
        });
    }

    function row(hook) {
      return h("tr", { dataset: { hook: hook.name } },
        h("td", { class: "name" }, hook.name),
        h("td", { class: "url" }, hook.url),
        h("td", { class: "events" }, hook.events.join(", ")),
        h("td", { class: "queues" }, hook.queues || "all"),
        h("td", { class: "actions" },
          h("button", { type: "button", class: "small edit", on: { click: function () { edit(hook); } } }, "Edit"),
          h("button", { type: "button", class: "small danger delete", on: { click: function () { remove(hook); } } }, "Delete")));
    }

    function refresh() {
      return api("GET", "/hooks").then(function (list) {
        if (!view.current()) return;
        syncRows(tbody, list || [],
          function (hook) { return hook.name; },
          function (hook) { return JSONX.stringify(hook); },
          row,
          function () { return h("tr", null, h("td", { class: "empty", colSpan: 5 }, "No hooks are defined.")); });
      }, flashError("Could not load hooks"));
    }

    replace(main,
      h("h1", null, "Event hooks", h("span", { class: "sub" }, "job events POSTed, signed, to other systems"),
        h("button", { type: "button", class: "small", on: { click: refresh } }, "Refresh")),
      h("div", { class: "panel table-wrap" },
        h("table", { id: "hooks-table" },
          h("thead", null, h("tr", null,
            h("th", null, "Name"), h("th", null, "URL"), h("th", null, "Events"), h("th", null, "Queues"),
            h("th", null, ""))),
          tbody)),
      h("p", null, "Deliveries are jobs of the queue ",
        h("a", { href: link(["queue", "_hooks", "jobs", "deferred"]) }, "_hooks"),
        " (retries, ", h("a", { href: link(["queue", "_hooks", "failed"]) }, "failure log"), ")."),
      secretOut,
      h("div", { class: "panel" }, h("h2", null, "Define or replace a hook"), form));
    view.onStop(every(REFRESH_MS, refresh));
  }

  var TOKEN_SCOPES = ["push", "read", "admin"];

  /**
   * API tokens (auth on): the list (never a secret), a form to make one
   * whose secret is shown once, revoke.  Shown to a token without
   * ``queues``; only an admin one may make and revoke.
   */
  function tokensView(main, view) {
    var tbody = h("tbody", { id: "tokens-body" });
    var name = h("input", { id: "token-name", name: "name", type: "text", required: true, maxLength: 255,
      autocomplete: "off", placeholder: "who uses it, e.g. billing producer" });
    var queues = h("input", { id: "token-queues", name: "queues", type: "text", maxLength: 255, autocomplete: "off",
      placeholder: "all queues, or a glob such as billing-*" });
    var rate = h("input", { id: "token-rate", name: "rate", type: "number", min: "0.001", step: "any",
      placeholder: "no limit" });
    var burst = h("input", { id: "token-burst", name: "burst", type: "number", min: "1", step: "1",
      placeholder: "rate rounded up" });
    var boxes = TOKEN_SCOPES.map(function (s) {
      return h("input", { type: "checkbox", name: "scopes", value: s, id: "token-scope-" + s, checked: s === "read" });
    });
    var secretOut = h("div", { id: "token-secret", class: "panel", hidden: true });
    var submit = h("button", { id: "token-submit-new", class: "primary", type: "submit" }, "Make token");

    var form = h("form", { class: "grid", id: "token-form", novalidate: true, on: { submit: function (ev) {
      ev.preventDefault();
      var scopes = boxes.filter(function (b) { return b.checked; }).map(function (b) { return b.value; });
      var body = { name: name.value, scopes: scopes };
      if (queues.value.trim()) body.queues = queues.value.trim();
      if (rate.value !== "") body.rate = Number(rate.value);
      if (burst.value !== "") body.burst = Number(burst.value);
      submit.disabled = true;
      api("POST", "/tokens", body).then(function (made) {
        submit.disabled = false;
        flash("ok", "Made token " + made.name);
        clear(secretOut);
        secretOut.hidden = false;
        secretOut.appendChild(h("p", null, "The secret of token " + made.name + " (" + made.id +
          "), shown only now; give it to its user:"));
        secretOut.appendChild(h("code", { class: "secret" }, made.token));
        name.value = ""; queues.value = ""; rate.value = ""; burst.value = "";
        return refresh();
      }, function (e) {
        submit.disabled = false;
        flashError("Could not make token " + name.value)(e);
      });
    } } },
      h("label", null, "Name", name),
      h("label", null, "Queues (glob)", queues),
      h("label", null, "Rate (requests/s)", rate),
      h("label", null, "Burst", burst),
      h("fieldset", { class: "wide" }, h("legend", null, "Scopes"),
        boxes.map(function (b) { return h("label", { class: "inline" }, b, b.value); })),
      h("div", { class: "form-actions" }, submit));

    function revoke(token) {
      confirmAction("Revoke token “" + token.name + "” (" + token.id + ")? Its users are refused at once on this node, " +
        "on the others within the refresh interval.", "Revoke token", true)
        .then(function (yes) {
          if (!yes) return;
          api("DELETE", "/token/" + enc(token.id)).then(function () {
            flash("ok", "Revoked token " + token.name);
            return refresh();
          }, flashError("Could not revoke token " + token.name));
        });
    }

    function row(token) {
      return h("tr", { dataset: { token: token.id } },
        h("td", { class: "id" }, token.id),
        h("td", { class: "name" }, token.name),
        h("td", { class: "scopes" }, token.scopes.join(", ")),
        h("td", { class: "queues" }, token.queues || "all"),
        h("td", { class: "rate" }, token.rate == null ? "no limit" : token.rate + "/s, burst " + token.burst),
        h("td", { class: "actions" },
          h("button", { type: "button", class: "small danger delete", on: { click: function () { revoke(token); } } },
            "Revoke")));
    }

    function refresh() {
      return api("GET", "/tokens").then(function (list) {
        if (!view.current()) return;
        syncRows(tbody, list || [],
          function (token) { return token.id; },
          function (token) { return JSONX.stringify(token); },
          row,
          function () { return h("tr", null, h("td", { class: "empty", colSpan: 6 }, "No tokens are stored.")); });
      }, flashError("Could not load tokens"));
    }

    var admin = me !== null && me.scopes.indexOf("admin") >= 0;
    replace(main,
      h("h1", null, "API tokens", h("span", { class: "sub" }, "who may call this server"),
        h("button", { type: "button", class: "small", on: { click: refresh } }, "Refresh")),
      h("div", { class: "panel table-wrap" },
        h("table", { id: "tokens-table" },
          h("thead", null, h("tr", null,
            h("th", null, "Id"), h("th", null, "Name"), h("th", null, "Scopes"), h("th", null, "Queues"),
            h("th", null, "Rate"), h("th", null, ""))),
          tbody)),
      h("p", null, "The bootstrap token of the admin_token setting is not stored and not listed."),
      secretOut,
      admin ? h("div", { class: "panel" }, h("h2", null, "Make a token"), form) : null);
    view.onStop(every(REFRESH_MS, refresh));
  }

  /* --------------------------------------------------------------- router */

  function notFound(main) {
    replace(main, h("h1", null, "Not found"), h("p", null, "No such page. ", h("a", { href: "#/queues" }, "Go to the queues.")));
  }

  var currentView = null;
  var generation = 0;

  function parseHash() {
    var raw = window.location.hash.replace(/^#/, "");
    if (!raw || raw === "/") raw = "/queues";
    var at = raw.indexOf("?");
    var path = at < 0 ? raw : raw.slice(0, at);
    var params = new URLSearchParams(at < 0 ? "" : raw.slice(at + 1));
    var query = {};
    params.forEach(function (v, k) { query[k] = v; });
    var parts = path.split("/").filter(function (p) { return p !== ""; }).map(function (p) {
      try { return decodeURIComponent(p); } catch (e) { return p; }
    });
    return { parts: parts, query: query };
  }

  function route() {
    if (currentView) currentView.stop();
    var mine = ++generation;
    var stops = [];
    var view = {
      current: function () { return mine === generation; },
      onStop: function (fn) { stops.push(fn); },
      stop: function () { stops.forEach(function (fn) { fn(); }); stops = []; },
    };
    currentView = view;
    clear(document.getElementById("modal-root"));
    var main = document.getElementById("main");
    var where = parseHash();
    var p = where.parts;
    var section = p[0] === "routings" ? "routings" : p[0] === "queues" ? "queues" : p[0] === "push" ? "push" :
      p[0] === "schedules" ? "schedules" : p[0] === "hooks" ? "hooks" : p[0] === "tokens" ? "tokens" : "";
    document.getElementById("nav-queues").className = section === "queues" ? "current" : "";
    document.getElementById("nav-routings").className = section === "routings" ? "current" : "";
    var navPush = document.getElementById("nav-push");
    if (navPush) navPush.className = section === "push" ? "current" : "";
    var navSchedules = document.getElementById("nav-schedules");
    if (navSchedules) navSchedules.className = section === "schedules" ? "current" : "";
    var navHooks = document.getElementById("nav-hooks");
    if (navHooks) navHooks.className = section === "hooks" ? "current" : "";
    var navTokens = document.getElementById("nav-tokens");
    if (navTokens) navTokens.className = section === "tokens" ? "current" : "";
    if (p.length === 1 && p[0] === "queues") {
      document.title = "Queues · Fireworq";
      queuesView(main, view);
    } else if (p.length === 1 && p[0] === "routings") {
      document.title = "Routings · Fireworq";
      routingsView(main, view);
    } else if (p.length === 1 && p[0] === "schedules") {
      document.title = "Schedules · Fireworq";
      schedulesView(main, view);
    } else if (p.length === 1 && p[0] === "hooks") {
      document.title = "Event hooks · Fireworq";
      hooksView(main, view);
    } else if (p.length === 1 && p[0] === "tokens") {
      document.title = "API tokens · Fireworq";
      tokensView(main, view);
    } else if (p.length === 1 && p[0] === "push") {
      document.title = "Push a job · Fireworq";
      pushView(main, view);
    } else if (p.length === 4 && p[0] === "queue" && p[2] === "jobs") {
      document.title = p[1] + " · jobs · Fireworq";
      jobsView(main, view, p[1], p[3], where.query);
    } else if (p.length === 4 && p[0] === "queue" && p[2] === "job") {
      document.title = p[1] + " · job " + p[3] + " · Fireworq";
      jobView(main, view, p[1], p[3]);
    } else if (p.length === 3 && p[0] === "queue" && p[2] === "failed") {
      document.title = p[1] + " · failure log · Fireworq";
      failedView(main, view, p[1], where.query);
    } else if (p.length === 4 && p[0] === "queue" && p[2] === "failed") {
      document.title = p[1] + " · failure " + p[3] + " · Fireworq";
      failureView(main, view, p[1], p[3]);
    } else {
      document.title = "Fireworq console";
      notFound(main);
    }
  }

  window.addEventListener("hashchange", function () {
    if (!document.getElementById("sign-in")) route();
  });
  watchServer();
  start();
})();
