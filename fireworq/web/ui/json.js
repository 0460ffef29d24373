/*
 * FireworqJSON: JSON parsing that never rounds a job id.
 *
 * JavaScript's JSON.parse turns every number into a double, so an id above
 * 2^53 (9007199254740992) comes back changed: 9007199254740993 becomes
 * ...992, and the console would show, open and delete the wrong job.  This
 * small parser reads the API's answers itself:
 *
 *   - the value of every "id" and "job_id" key that is a whole number is
 *     kept as a string holding the exact digits (outside payloads);
 *   - any other whole number that a double cannot hold exactly becomes a
 *     LosslessNumber, which prints its original digits;
 *   - inside a "payload" value, every number that would not print back as
 *     written (1.0, 1e3, 12345678901234567890) is a LosslessNumber too, so a
 *     payload is shown as the server holds it.
 *
 * FireworqJSON.stringify(value, indent) prints such values back.  Objects
 * are plain; a "__proto__" key becomes an ordinary own property, as with
 * JSON.parse.  Errors are SyntaxErrors naming the position.
 */
(function (global) {
  "use strict";

  /** A number kept as its exact JSON text. */
  function LosslessNumber(text) {
    this.text = text;
  }
  LosslessNumber.prototype.toString = function () {
    return this.text;
  };
  LosslessNumber.prototype.valueOf = function () {
    return Number(this.text);
  };
  LosslessNumber.prototype.toJSON = function () {
    return this.text;
  };

  var ID_KEYS = { id: true, job_id: true };
  var NUMBER = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;

  function parse(text) {
    if (typeof text !== "string") {
      throw new TypeError("FireworqJSON.parse needs a string");
    }
    var i = 0;
    var n = text.length;

    function fail(what) {
      throw new SyntaxError("Invalid JSON at position " + i + ": " + what);
    }

    function space() {
      while (i < n) {
        var c = text.charCodeAt(i);
        if (c === 32 || c === 9 || c === 10 || c === 13) {
          i++;
        } else {
          break;
        }
      }
    }

    function expectWord(word, result) {
      if (text.substr(i, word.length) !== word) {
        fail("expected " + word);
      }
      i += word.length;
      return result;
    }

    function string() {
      var start = i;
      i++; // the opening quote
      while (i < n) {
        var c = text.charCodeAt(i);
        if (c === 34) {
          i++;
          return JSON.parse(text.slice(start, i));
        }
        if (c === 92) {
          i += 2;
        } else if (c < 32) {
          fail("control character in a string");
        } else {
          i++;
        }
      }
      i = start;
      return fail("unterminated string");
    }

    function number(key, lossless) {
      NUMBER.lastIndex = i;
      var m = NUMBER.exec(text);
      if (!m) {
        fail("bad number");
      }
      var literal = m[0];
      i += literal.length;
      var whole = m[1] === undefined && m[2] === undefined;
      if (!lossless && whole && key !== null && ID_KEYS[key] === true) {
        return literal;
      }
      var value = Number(literal);
      if (whole && !Number.isSafeInteger(value)) {
        return new LosslessNumber(literal);
      }
      if (lossless && String(value) !== literal) {
        return new LosslessNumber(literal);
      }
      return value;
    }

    function array(lossless) {
      var out = [];
      i++;
      space();
      if (text[i] === "]") {
        i++;
        return out;
      }
      for (;;) {
        out.push(value(null, lossless));
        space();
        if (text[i] === ",") {
          i++;
        } else if (text[i] === "]") {
          i++;
          return out;
        } else {
          fail("expected , or ]");
        }
      }
    }

    function object(lossless) {
      var out = {};
      i++;
      space();
      if (text[i] === "}") {
        i++;
        return out;
      }
      for (;;) {
        space();
        if (text[i] !== '"') {
          fail("expected a key");
        }
        var key = string();
        space();
        if (text[i] !== ":") {
          fail("expected :");
        }
        i++;
        var item = value(key, lossless || key === "payload");
        if (key === "__proto__") {
          Object.defineProperty(out, key, {
            value: item,
            enumerable: true,
            writable: true,
            configurable: true,
          });
        } else {
          out[key] = item;
        }
        space();
        if (text[i] === ",") {
          i++;
        } else if (text[i] === "}") {
          i++;
          return out;
        } else {
          fail("expected , or }");
        }
      }
    }

    function value(key, lossless) {
      space();
      var c = text[i];
      if (c === "{") return object(lossless);
      if (c === "[") return array(lossless);
      if (c === '"') return string();
      if (c === "t") return expectWord("true", true);
      if (c === "f") return expectWord("false", false);
      if (c === "n") return expectWord("null", null);
      if (c === "-" || (c >= "0" && c <= "9")) return number(key, lossless);
      return fail(c === undefined ? "unexpected end" : "unexpected " + JSON.stringify(c));
    }

    var result = value(null, false);
    space();
    if (i !== n) {
      fail("unexpected text after the value");
    }
    return result;
  }

  function stringify(value, indent) {
    var step = typeof indent === "number" ? " ".repeat(indent) : indent || "";

    function write(v, pad) {
      if (v instanceof LosslessNumber) return v.text;
      if (v === null || v === undefined) return "null";
      if (typeof v === "number") return isFinite(v) ? String(v) : "null";
      if (typeof v === "boolean") return v ? "true" : "false";
      if (typeof v === "string") return JSON.stringify(v);
      var inner = pad + step;
      var open = step ? "\n" + inner : "";
      var close = step ? "\n" + pad : "";
      var sep = step ? ",\n" + inner : ",";
      if (Array.isArray(v)) {
        if (v.length === 0) return "[]";
        return "[" + open + v.map(function (x) { return write(x, inner); }).join(sep) + close + "]";
      }
      var keys = Object.keys(v);
      if (keys.length === 0) return "{}";
      var colon = step ? ": " : ":";
      return "{" + open + keys.map(function (k) {
        return JSON.stringify(k) + colon + write(v[k], inner);
      }).join(sep) + close + "}";
    }

    return write(value, "");
  }

  global.FireworqJSON = {
    parse: parse,
    stringify: stringify,
    LosslessNumber: LosslessNumber,
  };
})(typeof window !== "undefined" ? window : this);
