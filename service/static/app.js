/* matcher's try-it page: pick images, call POST /v1/match, draw the answer.
 *
 * Plain JavaScript, no build step, no third-party code; it talks only to this
 * service (GET /v1/methods, GET /v1/samples, GET /samples/<file>, POST /v1/match).
 *
 * Uploads: the API has no way to refer to an image sent earlier (each request
 * carries its files), so the page keeps the File objects the user picked (or
 * the sample it fetched, once) in memory and sends them again with each
 * search. Changing an option never asks the user to pick a file again, and a
 * sample is downloaded from the server only once per click.
 *
 * Matches are drawn here, from the JSON, as an SVG over the image: each box is
 * <rect class="box" data-rank data-x data-y data-width data-height data-score>
 * in the image's pixel coordinates (the SVG's viewBox is the image's size); a
 * match of a turned or resized template (angles, scales) is a
 * <polygon class="box box--turned"> around the template's pixels under its pose,
 * with data-angle, data-scale, data-cx, data-cy as well (x, y, width, height:
 * its bounding box).
 */
(function () {
  "use strict";

  var FILE_FIELDS = ["image", "template", "mask"];
  // Problem "field" values that are not a control of their own, mapped to the one that fixes them.
  var FIELD_ALIASES = { "return": "return", region: null, labels: null, "Content-Type": null };
  var FIELD_NAMES = {
    image: "search image", template: "template", mask: "mask", method: "score method", threshold: "threshold",
    max_matches: "max matches", max_overlap: "max overlap", subpixel: "sub-pixel", precision: "precision",
    gray: "match in gray", "return": "heatmap", api_key: "API key", angles: "angles", scales: "scales",
    angle_step: "angle step", scale_step: "scale step"
  };

  var state = {
    files: { image: null, template: null, mask: null },
    urls: { image: null, template: null, mask: null },
    methods: [],  // from GET /v1/methods (matcher's table of methods); none until it answers
    result: null,
    sort: { key: "rank", dir: "asc" },
    controller: null,
    runs: 0,
    apiKey: ""
  };

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else if (k === "className") node.className = attrs[k];
      else node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { if (c) node.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return node;
  }

  function svg(tag, attrs) {
    var node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    return node;
  }

  function plural(n, one, many) { return n + " " + (n === 1 ? one : many); }

  function formatBytes(n) {
    if (n < 1024) return n + " B";
    if (n < 1024 * 1024) return (n / 1024).toFixed(n < 10240 ? 1 : 0) + " KB";
    return (n / 1024 / 1024).toFixed(1) + " MB";
  }

  function formatCoord(v) { return Number.isInteger(v) ? String(v) : v.toFixed(2); }

  function formatScore(s, digits) {
    if (typeof s !== "number" || !isFinite(s)) return String(s);
    var a = Math.abs(s);
    digits = digits || 4;
    if (a !== 0 && (a >= 1e5 || a < 1e-3)) return s.toExponential(digits - 1);
    if (a >= 100) return s.toFixed(1);
    return s.toFixed(digits);
  }

  function formatAngle(a) { return a.toFixed(2).replace("-", "−") + "°"; }

  function formatScale(s) { return s.toFixed(3); }

  // A match of a turned or resized template (the API gives angle 0 and scale 1 otherwise).
  function isTurned(m) { return (typeof m.angle === "number" && m.angle !== 0) || (typeof m.scale === "number" && m.scale !== 1); }

  // The outline of the template's pixels under the match's pose, in SVG units (pixel i spans i to i + 1).
  // The API's corners are the centres of the template's corner pixels: the outline lies half a pixel
  // (turned and scaled) outside them.
  function turnedOutline(m, w, h) {
    var c = m.corners.map(function (p) { return [p[0] + 0.5, p[1] + 0.5]; });
    if (!(w > 1 && h > 1)) return c;
    var u = [(c[1][0] - c[0][0]) / (w - 1) / 2, (c[1][1] - c[0][1]) / (w - 1) / 2];
    var v = [(c[3][0] - c[0][0]) / (h - 1) / 2, (c[3][1] - c[0][1]) / (h - 1) / 2];
    var signs = [[-1, -1], [1, -1], [1, 1], [-1, 1]];
    return c.map(function (p, i) {
      return [p[0] + signs[i][0] * u[0] + signs[i][1] * v[0], p[1] + signs[i][0] * u[1] + signs[i][1] * v[1]];
    });
  }

  function formatMs(ms) { return ms >= 1000 ? (ms / 1000).toFixed(2) + " s" : (ms >= 10 ? Math.round(ms) : ms.toFixed(1)) + " ms"; }

  function currentMethod() {
    var name = $("method").value;
    return state.methods.filter(function (m) { return m.name === name; })[0] || null;
  }

  // ---- state shown on the page, for people and for tests -------------------------------------

  function setState(name) {
    $("results").setAttribute("data-state", name);
    $("results").setAttribute("aria-busy", name === "loading" ? "true" : "false");
    $("submit").classList.toggle("is-busy", name === "loading");
  }

  function setStatus(text, tone) {
    var s = $("status");
    s.textContent = text;
    s.className = "status" + (tone ? " status--" + tone : "");
  }

  // ---- errors next to their fields ------------------------------------------------------------

  function fieldElement(field) { return document.querySelector('.field[data-field="' + field + '"]'); }

  function controlOf(field) {
    if (FILE_FIELDS.indexOf(field) >= 0) return $(field + "-drop");
    if (field === "return") return $("want-heatmap");
    return $(field);
  }

  function clearFieldError(field) {
    var box = $(field + "-error");
    if (box) { box.hidden = true; box.textContent = ""; }
    var f = fieldElement(field);
    if (f) f.classList.remove("has-error");
    var c = controlOf(field);
    if (c) c.removeAttribute("aria-invalid");
  }

  function clearErrors() {
    document.querySelectorAll(".field[data-field]").forEach(function (f) { clearFieldError(f.getAttribute("data-field")); });
    var fe = $("form-error");
    fe.hidden = true;
    fe.textContent = "";
  }

  function messageNodes(message, detail, action) {
    var nodes = [el("span", { className: "msg", text: message })];
    if (detail && detail !== message) nodes.push(el("span", { className: "msg-detail", text: "Server said: " + detail }));
    if (action) {
      var b = el("button", { type: "button", className: "link-button msg-action", text: action.label });
      b.addEventListener("click", action.run);
      nodes.push(b);
    }
    return nodes;
  }

  function showFieldError(field, message, detail, action) {
    var box = $(field + "-error");
    if (!box) return false;
    var f = fieldElement(field);
    if (f.closest("details")) f.closest("details").open = true;
    if (f.hidden) f.hidden = false;
    if (!box.hidden) {  // a second problem with the same field: keep both
      messageNodes(message, detail, action).forEach(function (n) { box.appendChild(n); });
    } else {
      box.textContent = "";
      messageNodes(message, detail, action).forEach(function (n) { box.appendChild(n); });
    }
    box.hidden = false;
    f.classList.add("has-error");
    var c = controlOf(field);
    if (c) c.setAttribute("aria-invalid", "true");
    return true;
  }

  function showFormError(message, detail, action) {
    var fe = $("form-error");
    fe.textContent = "";
    messageNodes(message, detail, action).forEach(function (n) { fe.appendChild(n); });
    fe.hidden = false;
  }

  function focusFirstError() {
    var first = document.querySelector(".field.has-error");
    var c = first && controlOf(first.getAttribute("data-field"));
    if (c) c.focus({ preventScroll: false });
  }

  // ---- problem details (RFC 9457) in plain words -------------------------------------------------

  function slugOf(problem) {
    var t = (problem && problem.type) || "";
    return t.indexOf("urn:matcher:problem:") === 0 ? t.slice("urn:matcher:problem:".length) : "";
  }

  function plainWords(problem, error, status, retryAfter) {
    var slug = slugOf(problem), field = error.field, detail = error.detail || problem.detail || "";
    var m;
    switch (slug) {
      case "unsupported-format":
        m = /allowed formats: ([a-z, ]+)/.exec(detail);
        return { message: "This file is not a picture the service can read. Use " +
          (m ? m[1].split(", ").map(function (s) { return s.toUpperCase(); }).join(", ").replace(/, ([^,]*)$/, " or $1") : "a PNG, JPEG, WebP or BMP") +
          " file.", detail: detail };
      case "undecodable-image":
        return { message: "This file could not be read as a picture: it may be damaged or cut short. Try another file.", detail: detail };
      case "image-too-large":
        m = /limit of ([\d,]+) pixels/.exec(detail);
        return { message: "This picture has too many pixels for this server" + (m ? " (at most " + m[1] + ")" : "") +
          ". Use a smaller picture.", detail: detail };
      case "too-large":
        if (/MATCHER_MAX_TURN_WORK/.test(detail)) {
          m = /would cost about ([\d,]+).*limit of ([\d,]+)/.exec(detail);
          return { message: "This turned search is too much work for this server" +
            (m ? " (about " + m[1] + ", the limit is " + m[2] + ")" : "") +
            ": narrow the angle or scale range, use a larger step, or a smaller search image.", detail: detail };
        }
        if (/MATCHER_MAX_WORK|searched pixels/.test(detail)) {
          return { message: "This search is too much work for this server: use a smaller search image or template.", detail: detail };
        }
        m = /limit of ([\d,]+) bytes/.exec(detail);
        return { message: "This file is too big for this server" + (m ? " (at most " + formatBytes(Number(m[1].replace(/,/g, ""))) + ")" : "") +
          ". Use a smaller file.", detail: detail };
      case "request-too-large":
        return { message: "The files together are too big to send to this server. Use smaller files.", detail: detail };
      case "template-too-large":
        m = /(\d+)x(\d+), larger than the (\d+)x(\d+)/.exec(detail);
        return { message: "The template must fit inside the search image" +
          (m ? ": it is " + m[1] + " × " + m[2] + " pixels, the search image only " + m[3] + " × " + m[4] : "") +
          ". Choose a smaller template or a larger search image.", detail: detail };
      case "unprocessable":
        if (/channel/.test(detail)) {
          return { message: "One picture is in colour and the other is gray, so they cannot be compared as they are. " +
            "Match both in gray, or use pictures of the same kind.", detail: detail,
            action: { label: "Match in gray and search again", run: function () { $("gray").checked = true; $("match-form").requestSubmit(); } } };
        }
        if (field === "mask") return { message: "The mask must be exactly the size of the template.", detail: detail };
        return { message: "These inputs do not fit together.", detail: detail };
      case "invalid-option":
        if (field === "threshold") return { message: "Enter a number, for example 0.8, or leave it empty for no threshold.", detail: detail };
        if (field === "max_matches") {
          m = /from 1 to (\d+)/.exec(detail);
          return { message: "Enter a whole number from 1 to " + (m ? m[1] : "the server's limit") + ".", detail: detail };
        }
        if (field === "max_overlap") return { message: "Choose a value from 0 to 1.", detail: detail };
        if (field === "method" && /turned/.test(detail)) {
          return { message: "A turned or resized search needs a normalised method: ncc, ccorr_normed or ssd_normed.", detail: detail };
        }
        if (field === "method" || field === "precision") return { message: "Choose one of the listed values.", detail: detail };
        if (field === "angles") return { message: "Enter two angles from −360 to 360, the first no larger than the second and at most 360 apart (−180 to 180 is the full circle).", detail: detail };
        if (field === "scales") return { message: "Enter two scales from 0.001 to 1000, the first no larger than the second (1 to 1: the template's own size).", detail: detail };
        if (field === "angle_step" || field === "scale_step") return { message: "Enter a number above 0, or leave it empty for the automatic step.", detail: detail };
        return { message: capitalise(detail) || "An option has a value the service does not accept." };
      case "invalid-request":
        if (/part is missing/.test(detail) && FIELD_NAMES[field]) return { message: "Choose a " + FIELD_NAMES[field] + ".", detail: detail };
        return { message: capitalise(detail) || "The service could not understand the request." };
      case "unauthorized":
        return { message: /not valid/.test(detail) ? "This API key was not accepted. Check it and search again."
          : "This server needs an API key: enter it and search again.", detail: detail, field: "api_key" };
      case "busy":
        return { message: "The server is busy with other searches. Try again in " + plural(Number(retryAfter) || 1, "second", "seconds") + ".", detail: detail };
      case "internal-error":
        return { message: "Something went wrong on the server. Try again; if it keeps happening, report incident " +
          String(problem.instance || "").replace("urn:uuid:", "") + ".", detail: null };
      default:
        if (status === 429) {
          return { message: "Too many searches in a short time. Wait " + plural(Number(retryAfter) || 1, "second", "seconds") + " and try again.", detail: detail };
        }
        if (status === 413) return { message: "The files are too big to send to this server. Use smaller files.", detail: detail };
        return { message: (problem.title || "The search failed") + (detail ? ": " + detail : "."), detail: null };
    }
  }

  function capitalise(s) { return s ? s.charAt(0).toUpperCase() + s.slice(1) + (/[.!?]$/.test(s) ? "" : ".") : s; }

  function showProblem(response, problem) {
    var retryAfter = response.headers.get("Retry-After");
    if (!problem || typeof problem !== "object") {
      showFormError("The service answered with an error (HTTP " + response.status + ") the page could not read. Try again.");
      return [];
    }
    var errors = Array.isArray(problem.errors) && problem.errors.length ? problem.errors
      : [{ field: problem.field, detail: problem.detail }];
    var placed = [];
    errors.forEach(function (error) {
      var words = plainWords(problem, error, response.status, retryAfter);
      var field = words.field || (Object.prototype.hasOwnProperty.call(FIELD_ALIASES, error.field) ? FIELD_ALIASES[error.field] : error.field);
      if (field === "api_key") { $("api-key-field").hidden = false; }
      if (field && showFieldError(field, words.message, words.detail, words.action)) placed.push(field);
      else showFormError(words.message, words.detail, words.action);
    });
    return placed;
  }

  // ---- files: drop zones, previews ----------------------------------------------------------------

  function setFile(field, file) {
    if (state.controller) {  // a search of the previous files is running: its answer would no longer fit
      state.controller.abort();
      state.controller = null;
      setState("idle");
    }
    if (state.urls[field]) URL.revokeObjectURL(state.urls[field]);
    state.files[field] = file;
    state.urls[field] = file ? URL.createObjectURL(file) : null;
    var preview = $(field + "-preview"), name = $(field + "-name"), drop = $(field + "-drop");
    drop.classList.toggle("has-file", !!file);
    $(field + "-drop-text").innerHTML = "";
    $(field + "-drop-text").appendChild(file ? el("span", {}, [el("strong", { text: "Replace" }), " or drop another file"])
      : el("span", {}, [el("strong", { text: "Choose a file" }), " or drop it here"]));
    name.textContent = file ? file.name + " · " + formatBytes(file.size) : "";
    if (file) {
      preview.onerror = function () { preview.hidden = true; };
      preview.onload = function () { preview.hidden = false; };
      preview.src = state.urls[field];
    } else {
      preview.hidden = true;
      preview.removeAttribute("src");
    }
    if (field === "mask") $("mask-clear").hidden = !file;
    else applyHeatmap(false);  // a new picture starts without the heatmap, whatever the last one showed
    clearFieldError(field);
    $("form-error").hidden = true;
    markSample(null);
    clearResult();
    if (field === "image") showImage();
  }

  function wireDrop(field) {
    var drop = $(field + "-drop"), input = $(field + "-input");
    drop.addEventListener("click", function () { input.click(); });
    input.addEventListener("change", function () {
      if (input.files && input.files[0]) setFile(field, input.files[0]);
      input.value = "";  // picking the same file again still fires "change"
    });
    ["dragenter", "dragover"].forEach(function (type) {
      drop.addEventListener(type, function (e) {
        e.preventDefault();
        e.dataTransfer.dropEffect = "copy";
        drop.classList.add("is-over");
      });
    });
    ["dragleave", "dragend"].forEach(function (type) {
      drop.addEventListener(type, function () { drop.classList.remove("is-over"); });
    });
    drop.addEventListener("drop", function (e) {
      e.preventDefault();
      drop.classList.remove("is-over");
      var files = e.dataTransfer && e.dataTransfer.files;
      if (files && files[0]) setFile(field, files[0]);
    });
  }

  // ---- the result view --------------------------------------------------------------------------

  // The stage keeps the picture's aspect ratio so that the SVG (viewBox = the picture's size) lies
  // exactly over it; small pictures are enlarged (up to 3 times) to be readable.
  function sizeStage(width, height) {
    var canvas = $("stage-canvas");
    if (!width || !height) return;
    canvas.style.setProperty("--ar", String(width / height));
    canvas.style.setProperty("--max-w", (3 * width) + "px");
    canvas.classList.toggle("is-pixelated", width < 160 || height < 160);
  }

  function showImage() {
    var url = state.urls.image;
    $("stage").hidden = !url;
    $("empty").hidden = !!url;
    $("empty-text").textContent = "The search image appears here with every match outlined.";
    if (url) {
      var img = $("stage-image");
      img.onload = function () { if (!state.result) sizeStage(img.naturalWidth, img.naturalHeight); };
      img.onerror = function () {  // not a picture this browser can show (or not a picture at all)
        if (state.result || img.getAttribute("src") !== url) return;
        $("stage").hidden = true;
        $("empty").hidden = false;
        $("empty-text").textContent = "This browser cannot show " + (state.files.image ? state.files.image.name : "this file") + ".";
      };
      img.src = url;
      $("stage-caption").textContent = state.files.image ? state.files.image.name : "";
      if (state.files.template && !state.result) setStatus("Ready: press “Find matches”.");
      else if (!state.result) setStatus("Now choose a template.");
    } else {
      $("stage-image").removeAttribute("src");
    }
  }

  function clearResult() {
    state.result = null;
    document.querySelector(".layout").classList.remove("has-result");
    $("boxes").textContent = "";
    $("labels").textContent = "";
    $("stage-heatmap").hidden = true;
    $("stage-heatmap").removeAttribute("src");
    $("toolbar").hidden = true;
    $("details").hidden = true;
    $("stage").classList.remove("has-heatmap");
    if ($("results").getAttribute("data-state") !== "loading") setState("idle");
    if (!state.files.image) setStatus("Pick a sample, or choose a search image and a template.");
  }

  function renderResult(result, roundTripMs, used) {
    state.result = result;
    document.querySelector(".layout").classList.add("has-result");
    var W = result.image.width, H = result.image.height;
    $("stage").hidden = false;
    $("empty").hidden = true;
    $("stage-image").src = used.imageUrl;
    sizeStage(W, H);
    var box = $("boxes");
    box.setAttribute("viewBox", "0 0 " + W + " " + H);
    box.setAttribute("data-width", W);
    box.setAttribute("data-height", H);
    box.textContent = "";
    $("labels").textContent = "";
    result.matches.forEach(function (m, i) { m.rank = i + 1; });
    // Drawn worst first, so the best match's box ends up on top.
    var tpl = result.template || {};
    result.matches.slice().reverse().forEach(function (m) {
      var attrs = {
        "class": "box" + (m.rank === 1 ? " box--best" : ""),
        "data-rank": m.rank, "data-x": m.x, "data-y": m.y, "data-width": m.width, "data-height": m.height,
        "data-score": m.score, "vector-effect": "non-scaling-stroke"
      };
      var shape, where = "at (" + formatCoord(m.x) + ", " + formatCoord(m.y) + ")";
      if (isTurned(m)) {
        attrs["class"] += " box--turned";
        attrs.points = turnedOutline(m, tpl.width, tpl.height).map(function (p) { return p[0] + "," + p[1]; }).join(" ");
        attrs["data-angle"] = m.angle;
        attrs["data-scale"] = m.scale;
        attrs["data-cx"] = m.center.x;
        attrs["data-cy"] = m.center.y;
        shape = svg("polygon", attrs);
        where = "centred at (" + m.center.x.toFixed(2) + ", " + m.center.y.toFixed(2) + "), turned " + formatAngle(m.angle) +
          ", scale " + formatScale(m.scale);
      } else {
        attrs.x = m.x; attrs.y = m.y; attrs.width = m.width; attrs.height = m.height;
        shape = svg("rect", attrs);
      }
      var title = svg("title", {});
      title.textContent = "#" + m.rank + " " + where + ", score " + formatScore(m.score);
      shape.appendChild(title);
      box.appendChild(shape);
    });
    result.matches.forEach(function (m) {
      var label = el("span", { className: "box-label" + (m.rank === 1 ? " box-label--best" : ""), "data-rank": m.rank }, [
        "#" + m.rank, el("span", { className: "box-label__score", text: " " + formatScore(m.score, 3) })]);
      label.style.left = (100 * m.x / W) + "%";
      label.style.top = (100 * m.y / H) + "%";
      if (m.y / H < 0.05) label.classList.add("box-label--inside");
      if ((m.x + m.width) / W > 0.8 && m.x / W > 0.5) {
        label.style.left = "auto";
        label.style.right = (100 * (1 - (m.x + m.width) / W)) + "%";
      }
      $("labels").appendChild(label);
    });

    var heat = $("stage-heatmap"), hasHeat = typeof result.heatmap === "string" && result.heatmap.length > 0;
    if (hasHeat) heat.src = "data:image/png;base64," + result.heatmap; else heat.removeAttribute("src");
    $("heatmap-toggle").disabled = !hasHeat;
    $("heatmap-toggle").title = hasHeat ? "" : used.turned ? "The heatmap is not computed for a turned or resized search."
      : "Tick “Compute the score heatmap” under More options, then search again.";
    applyHeatmap(hasHeat && $("heatmap-toggle").getAttribute("aria-pressed") === "true");
    applyBoxes($("boxes-toggle").getAttribute("aria-pressed") !== "false");
    $("toolbar").hidden = false;

    var method = state.methods.filter(function (x) { return x.name === result.method; })[0];
    var lower = result.lower_is_better != null ? result.lower_is_better : !!(method && method.better === "lower");
    state.lowerIsBetter = lower;
    var n = result.matches.length;
    var caption = (used.imageName ? used.imageName + " · " : "") + W + " × " + H + " px";
    $("stage-caption").textContent = caption;
    // The browser decodes the file itself; warn if it sees another size than the service did.
    var img = $("stage-image");
    var check = function () {
      if (img.naturalWidth && (img.naturalWidth !== W || img.naturalHeight !== H)) {
        $("stage-caption").textContent = caption + " · this browser shows the picture at " + img.naturalWidth + " × " +
          img.naturalHeight + ", so the boxes are scaled to fit.";
      }
    };
    if (img.complete) check(); else img.addEventListener("load", check, { once: true });

    var timing = formatMs(result.elapsed_ms) + " on the server, " + formatMs(roundTripMs) + " in all";
    if (n === 0) {
      setStatus("No match " + (used.threshold !== "" ? "scored " + (lower ? "at most " : "at least ") + used.threshold : "found") +
        ". Try a " + (lower ? "higher" : "lower") + " threshold or another method. (" + timing + ")", "warn");
    } else {
      setStatus(plural(n, "match", "matches") + " with " + result.method + " · " + timing + ".", "ok");
    }

    // Details: template card and the table.
    $("details").hidden = false;
    $("result-template").src = used.templateUrl;
    var t = result.template || {};
    var facts = $("template-facts");
    facts.textContent = "";
    [["Size", t.width + " × " + t.height + " px"],
     ["Colour", t.channels === 1 ? "gray" : (t.channels ? t.channels + " channels" : "?")],
     ["Mask", t.masked ? (used.maskName ? used.maskName : "its transparency (alpha)") : "none"],
     ["Method", result.method + " (" + (lower ? "lower" : "higher") + " is better)"],
     ["Time", formatMs(result.elapsed_ms)]
    ].forEach(function (pair) {
      facts.appendChild(el("dt", { text: pair[0] }));
      facts.appendChild(el("dd", { text: pair[1] }));
    });
    state.sort = { key: "rank", dir: "asc" };
    state.turned = !!used.turned;
    // A turned match: its angle and scale in the table, in place of the size (the template's, scaled).
    document.querySelectorAll("#matches th.col-turn").forEach(function (th) { th.hidden = !state.turned; });
    document.querySelectorAll("#matches th.col-size").forEach(function (th) { th.hidden = state.turned; });
    renderTable();
    $("matches-note").textContent = !n ? "No matches to list." : state.turned
      ? "Angle is counter-clockwise, scale the size found over the template's (" + t.width + " × " + t.height +
        "); x and y are the top-left corner of the turned box's bounding box."
      : "x and y are the top-left corner of each box; every box is the template's size, " + t.width + " × " + t.height + ".";
  }

  // On a narrow screen the results are below the form: bring them into view (focus stays put).
  function revealResults() {
    var top = $("results").getBoundingClientRect().top;
    if (top > window.innerHeight * 0.6 || top < -10) {
      var smooth = !window.matchMedia("(prefers-reduced-motion: reduce)").matches;
      $("results").scrollIntoView({ behavior: smooth ? "smooth" : "auto", block: "start" });
    }
  }

  function renderTable() {
    var result = state.result;
    if (!result) return;
    var key = state.sort.key, dir = state.sort.dir === "asc" ? 1 : -1;
    var rows = result.matches.slice().sort(function (a, b) {
      return (a[key] - b[key]) * dir || (a.rank - b.rank);
    });
    var body = $("matches-body");
    body.textContent = "";
    rows.forEach(function (m) {
      var tr = el("tr", { "data-rank": m.rank }, [
        el("td", { text: String(m.rank) }), el("td", { text: formatCoord(m.x) }), el("td", { text: formatCoord(m.y) }),
        state.turned ? null : el("td", { className: "col-size", text: String(m.width) }),
        state.turned ? null : el("td", { className: "col-size", text: String(m.height) }),
        el("td", { text: formatScore(m.score) }),
        state.turned ? el("td", { className: "col-turn", text: formatAngle(m.angle) }) : null,
        state.turned ? el("td", { className: "col-turn", text: formatScale(m.scale) }) : null
      ]);
      tr.addEventListener("mouseenter", function () { highlight(m.rank, true); });
      tr.addEventListener("mouseleave", function () { highlight(m.rank, false); });
      body.appendChild(tr);
    });
    document.querySelectorAll("#matches th[data-key]").forEach(function (th) {
      var k = th.getAttribute("data-key");
      if (k === key) th.setAttribute("aria-sort", state.sort.dir === "asc" ? "ascending" : "descending");
      else th.removeAttribute("aria-sort");
    });
    $("matches-title").textContent = "Matches (" + result.matches.length + ")";
    renderSummary();
  }

  // "24 matches, best 1.000, worst 0.578": the whole list in one line, and a word when it scrolls.
  function renderSummary() {
    var ms = state.result.matches, n = ms.length, summary = $("matches-summary");
    if (!n) { summary.textContent = "No matches."; summary.hidden = false; return; }
    var scores = ms.map(function (m) { return m.score; });
    var best = state.lowerIsBetter ? Math.min.apply(null, scores) : Math.max.apply(null, scores);
    var worst = state.lowerIsBetter ? Math.max.apply(null, scores) : Math.min.apply(null, scores);
    var text = n === 1 ? "1 match, score " + formatScore(best, 3)
      : plural(n, "match", "matches") + ", best " + formatScore(best, 3) + ", worst " + formatScore(worst, 3);
    var wrap = document.querySelector(".table-wrap");
    var scrolls = wrap.scrollHeight > wrap.clientHeight + 1;
    wrap.classList.toggle("is-scrolling", scrolls);
    wrap.setAttribute("tabindex", scrolls ? "0" : "-1");
    summary.textContent = text + (scrolls ? " · the table scrolls: all " + n + " rows are in it" : "") + ".";
    summary.hidden = false;
  }

  function highlight(rank, on) {
    document.querySelectorAll('#boxes .box[data-rank="' + rank + '"], #labels [data-rank="' + rank + '"], #matches-body tr[data-rank="' + rank + '"]')
      .forEach(function (n) { n.classList.toggle("is-active", on); });
  }

  function sortBy(key) {
    if (state.sort.key === key) state.sort.dir = state.sort.dir === "asc" ? "desc" : "asc";
    else {
      state.sort.key = key;
      // Scores start best first; everything else ascending.
      state.sort.dir = key === "score" ? (state.lowerIsBetter ? "asc" : "desc") : "asc";
    }
    renderTable();
  }

  function applyHeatmap(on) {
    $("heatmap-toggle").setAttribute("aria-pressed", on ? "true" : "false");
    $("stage-heatmap").hidden = !on;
    $("heatmap-legend").hidden = !on;
    $("stage").classList.toggle("has-heatmap", on);
  }

  function applyBoxes(on) {
    $("boxes-toggle").setAttribute("aria-pressed", on ? "true" : "false");
    $("boxes").classList.toggle("is-hidden", !on);
    $("labels").classList.toggle("is-hidden", !on);
  }

  // ---- options ------------------------------------------------------------------------------------

  function rangeText(m) {
    var lo = m.range && m.range.min, hi = m.range && m.range.max;
    if (lo == null && hi == null) return "scores are unbounded";
    if (hi == null) return "scores are " + lo + " or more";
    if (lo == null) return "scores are at most " + hi;
    return "scores run from " + String(lo).replace("-", "−") + " to " + hi;
  }

  function updateMethodHint() {
    var m = currentMethod();
    if (!m) return;
    $("method-hint").textContent = capitalise(m.description);
    var lower = m.better === "lower";
    var hint = "Keep only matches scoring " + (lower ? "at most" : "at least") + " this (" + rangeText(m) + ", " +
      (lower ? "lower" : "higher") + " is better). Empty: no threshold, the best “max matches” are kept.";
    var t = $("threshold").value.trim(), v = Number(t);
    var warn = "";
    if (t !== "" && isFinite(v) && m.range) {
      if ((m.range.max != null && v > m.range.max && !lower) || (m.range.min != null && v < m.range.min && lower)) {
        warn = " No " + m.name + " score can pass " + t + ", so nothing will be found.";
      }
    }
    $("threshold-hint").textContent = hint + warn;
    $("threshold-hint").classList.toggle("field__hint--warn", !!warn);
  }

  function fillMethods(methods, preferred) {
    var select = $("method"), keep = select.value || preferred || "ncc";
    select.textContent = "";
    methods.forEach(function (m) {
      select.appendChild(el("option", { value: m.name, text: m.name + " · " + m.better + " is better" }));
    });
    select.value = methods.some(function (m) { return m.name === keep; }) ? keep : methods[0].name;
    updateMethodHint();
  }

  function headers() {
    return state.apiKey ? { "X-API-Key": state.apiKey } : {};
  }

  function loadMethods() {
    return fetch("/v1/methods", { headers: headers() }).then(function (r) {
      var v = r.headers.get("X-Matcher-Version");
      if (v) { $("version").textContent = "v" + v; $("version").hidden = false; }
      return r.ok ? r.json() : null;
    }).then(function (body) {
      if (body && Array.isArray(body.methods) && body.methods.length) {
        state.methods = body.methods;
        fillMethods(body.methods, body["default"]);
      }
    }).catch(function () { /* keep the page's default method; loaded again once an API key is given */ });
  }

  // ---- samples ------------------------------------------------------------------------------------

  function markSample(name) {
    document.querySelectorAll("#sample-list .sample").forEach(function (b) {
      b.setAttribute("aria-pressed", b.getAttribute("data-sample") === name ? "true" : "false");
    });
  }

  function fetchFile(url, name) {
    return fetch(url).then(function (r) {
      if (!r.ok) throw new Error("HTTP " + r.status + " for " + url);
      return r.blob();
    }).then(function (blob) { return new File([blob], name, { type: blob.type || "image/png" }); });
  }

  function useSample(sample, button) {
    var list = $("sample-list");
    list.classList.add("is-loading");
    button.classList.add("is-loading");
    setStatus("Loading the “" + sample.title + "” sample…");
    Promise.all([fetchFile(sample.image.url, sample.image.file), fetchFile(sample.template.url, sample.template.file)])
      .then(function (files) {
        setFile("image", files[0]);
        setFile("template", files[1]);
        setFile("mask", null);  // a sample's mask, if any, is its template's alpha channel
        var o = sample.options || {};
        if (o.method && state.methods.some(function (m) { return m.name === o.method; })) $("method").value = o.method;
        if (o.threshold !== undefined) $("threshold").value = o.threshold === null ? "" : String(o.threshold);
        if (o.max_matches !== undefined) $("max_matches").value = String(o.max_matches);
        if (o.max_overlap !== undefined) { $("max_overlap").value = String(o.max_overlap); updateOverlap(); }
        setTurn(o.angles || o.scales ? { angles: o.angles || [0, 0], scales: o.scales || [1, 1] } : null);
        updateMethodHint();
        markSample(sample.name);
        $("match-form").requestSubmit();
      })
      .catch(function () {
        showFormError("The sample could not be loaded. Check the connection and try again, or choose your own files.");
        setStatus("The sample could not be loaded.", "error");
      })
      .then(function () { list.classList.remove("is-loading"); button.classList.remove("is-loading"); });
  }

  function loadSamples() {
    return fetch("/v1/samples").then(function (r) { return r.ok ? r.json() : null; }).then(function (body) {
      var samples = body && Array.isArray(body.samples) ? body.samples : [];
      var list = $("sample-list");
      list.textContent = "";
      samples.forEach(function (s) {
        var img = el("img", { className: "sample__thumb", src: s.template.url, alt: "", loading: "lazy", width: "48", height: "48" });
        var button = el("button", { type: "button", className: "sample", "data-sample": s.name, "aria-pressed": "false",
                                    title: s.description || "" }, [
          img, el("span", { className: "sample__text" }, [
            el("span", { className: "sample__title", text: s.title }),
            el("span", { className: "sample__meta", text: s.image.file })
          ])
        ]);
        button.addEventListener("click", function () { useSample(s, button); });
        list.appendChild(el("li", {}, [button]));
      });
      $("samples").hidden = samples.length === 0;
    }).catch(function () { $("samples").hidden = true; });
  }

  // ---- the search ---------------------------------------------------------------------------------

  // The threshold the server would refuse, said before sending anything: null when it is fine.
  function checkThreshold(t) {
    if (t === "") return null;
    if (/^[+-]?\d+,\d+$/.test(t)) return "Use a point for decimals: " + t.replace(",", ".") + ".";
    if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(t) || !isFinite(Number(t))) {
      return "Enter a number, for example 0.8, or leave it empty for no threshold.";
    }
    var m = currentMethod(), v = Number(t);
    var lo = m && m.range ? m.range.min : null, hi = m && m.range ? m.range.max : null;
    if ((lo != null && v < lo) || (hi != null && v > hi)) {
      var span = lo != null && hi != null ? "from " + String(lo).replace("-", "−") + " to " + hi
        : lo != null ? lo + " or more" : "at most " + hi;
      return "Enter a number " + span + " for " + m.name + " (its scores' range), or leave it empty for no threshold.";
    }
    return null;
  }

  // ---- turned and resized search -------------------------------------------------------------------

  function showTurn(on) {
    $("turn-fields").hidden = !on;
    $("turn").setAttribute("aria-expanded", on ? "true" : "false");
  }

  // A sample's ranges ({angles: [a, b], scales: [lo, hi]}), or null: the plain search, as by default.
  function setTurn(ranges) {
    $("turn").checked = !!ranges;
    if (ranges) {
      $("angles").value = String(ranges.angles[0]);
      $("angles-to").value = String(ranges.angles[1]);
      $("scales").value = String(ranges.scales[0]);
      $("scales-to").value = String(ranges.scales[1]);
      $("angle_step").value = "";
      $("scale_step").value = "";
    }
    ["angles", "scales", "angle_step", "scale_step"].forEach(clearFieldError);
    showTurn(!!ranges);
  }

  // What the page can say before sending: both ends of each range given, steps numbers if given.
  function checkTurn() {
    [["angles", "Enter the smallest and the largest angle, for example −180 and 180 (the full circle)."],
     ["scales", "Enter the smallest and the largest scale, for example 0.9 and 1.2 (1 and 1: the template's own size)."]
    ].forEach(function (pair) {
      var lo = $(pair[0]), hi = $(pair[0] + "-to");
      if (lo.validity.badInput || hi.validity.badInput || lo.value.trim() === "" || hi.value.trim() === "") {
        showFieldError(pair[0], pair[1]);
      }
    });
    ["angle_step", "scale_step"].forEach(function (id) {
      if ($(id).validity.badInput) showFieldError(id, "Enter a number above 0, or leave it empty for the automatic step.");
    });
  }

  function updateOverlap() { $("max_overlap-value").textContent = Number($("max_overlap").value).toFixed(2); }

  function submit(e) {
    e.preventDefault();
    clearErrors();
    if (!state.files.image) showFieldError("image", "Choose a search image, or pick a sample above.");
    if (!state.files.template) showFieldError("template", "Choose a template: the picture to look for.");
    var thresholdProblem = checkThreshold($("threshold").value.trim());
    if (thresholdProblem) showFieldError("threshold", thresholdProblem);
    var mm = $("max_matches");
    if (mm.validity.badInput || mm.validity.stepMismatch || mm.value.trim() === "") {
      showFieldError("max_matches", "Enter a whole number, for example 5.");
    } else if (mm.validity.rangeUnderflow || mm.validity.rangeOverflow) {
      showFieldError("max_matches", "Enter a whole number from " + mm.min + " to " + mm.max + ".");
    }
    var turned = $("turn").checked;
    if (turned) checkTurn();
    state.apiKey = $("api_key").value.trim();
    if (!state.methods.length && state.apiKey) loadMethods();  // it needed the key
    if (document.querySelector(".field.has-error")) {
      setStatus("Fix the highlighted fields, then search again." +
        (state.result ? " The boxes shown are from the previous search." : ""), "error");
      focusFirstError();
      return;
    }

    var form = new FormData();
    form.append("image", state.files.image, state.files.image.name);
    form.append("template", state.files.template, state.files.template.name);
    if (state.files.mask) form.append("mask", state.files.mask, state.files.mask.name);
    var threshold = $("threshold").value.trim();
    form.append("method", $("method").value);
    if (threshold !== "") form.append("threshold", threshold);
    form.append("max_matches", $("max_matches").value.trim());
    form.append("max_overlap", $("max_overlap").value);
    form.append("subpixel", $("subpixel").checked ? "true" : "false");
    form.append("precision", $("precision").value);
    form.append("gray", $("gray").checked ? "true" : "false");
    if (turned) {
      form.append("angles", $("angles").value.trim() + "," + $("angles-to").value.trim());
      form.append("scales", $("scales").value.trim() + "," + $("scales-to").value.trim());
      if ($("angle_step").value.trim() !== "") form.append("angle_step", $("angle_step").value.trim());
      if ($("scale_step").value.trim() !== "") form.append("scale_step", $("scale_step").value.trim());
    }
    // The heatmap is the score map of the template as it is: the API does not make one for a turned search.
    if ($("want-heatmap").checked && !turned) form.append("return", "heatmap");

    var used = { imageUrl: state.urls.image, templateUrl: state.urls.template, imageName: state.files.image.name,
                 maskName: state.files.mask ? state.files.mask.name : null, threshold: threshold, turned: turned };
    if (state.controller) state.controller.abort();
    var controller = new AbortController();
    state.controller = controller;
    var timer = setTimeout(function () { controller.abort("timeout"); }, 120000);
    setState("loading");
    setStatus("Searching…");
    var started = performance.now();
    var response;
    fetch("/v1/match", { method: "POST", body: form, headers: headers(), signal: controller.signal })
      .then(function (r) {
        response = r;
        return r.text();
      })
      .then(function (text) {
        if (state.controller !== controller) return;  // a newer search replaced this one
        var body = null;
        try { body = JSON.parse(text); } catch (err) { body = null; }
        state.runs += 1;
        $("results").setAttribute("data-run", String(state.runs));
        if (response.ok && body && Array.isArray(body.matches)) {
          renderResult(body, performance.now() - started, used);
          setState("done");
          revealResults();
          return;
        }
        // The previous result (same files: a new file clears it) stays on screen, said to be the previous one.
        var kept = !!state.result;
        if (!kept) { clearResult(); showImage(); }
        var placed = showProblem(response, body);
        setState("error");
        var where = placed.map(function (f) { return FIELD_NAMES[f] || f; });
        setStatus((where.length ? "The search did not run: see the message by the " + where.join(" and ") + "." :
          "The search did not run: see the message above the button.") +
          (kept ? " The boxes shown are from the previous search." : ""), "error");
        if (placed.length) focusFirstError();
      })
      .catch(function () {
        if (state.controller !== controller) return;
        state.runs += 1;
        $("results").setAttribute("data-run", String(state.runs));
        setState("error");
        var timedOut = controller.signal.reason === "timeout";
        showFormError(timedOut ? "The search took too long and was stopped. Try a smaller image or template."
          : "Could not reach the service. Check the connection and try again.");
        setStatus("The search did not run.", "error");
      })
      .then(function () {
        clearTimeout(timer);
        if (state.controller === controller) state.controller = null;
      });
  }

  // ---- start --------------------------------------------------------------------------------------

  function init() {
    FILE_FIELDS.forEach(wireDrop);
    // A file dropped next to a drop zone must not replace the page.
    ["dragover", "drop"].forEach(function (type) {
      window.addEventListener(type, function (e) { if (!e.target.closest || !e.target.closest(".drop")) e.preventDefault(); });
    });
    $("mask-clear").addEventListener("click", function () { setFile("mask", null); $("mask-drop").focus(); });
    $("match-form").addEventListener("submit", submit);
    $("method").addEventListener("change", function () { clearFieldError("method"); updateMethodHint(); });
    $("threshold").addEventListener("input", function () { clearFieldError("threshold"); updateMethodHint(); });
    $("max_overlap").addEventListener("input", function () { clearFieldError("max_overlap"); updateOverlap(); });
    ["max_matches", "precision", "subpixel", "gray", "api_key", "angle_step", "scale_step"].forEach(function (id) {
      $(id).addEventListener("input", function () { clearFieldError(id); });
    });
    ["angles", "scales"].forEach(function (id) {
      [id, id + "-to"].forEach(function (input) { $(input).addEventListener("input", function () { clearFieldError(id); }); });
    });
    $("turn").addEventListener("change", function () {
      showTurn($("turn").checked);
      ["angles", "scales", "angle_step", "scale_step"].forEach(clearFieldError);
    });
    $("want-heatmap").addEventListener("change", function () { clearFieldError("return"); });
    $("heatmap-toggle").addEventListener("click", function () {
      applyHeatmap($("heatmap-toggle").getAttribute("aria-pressed") !== "true");
    });
    $("boxes-toggle").addEventListener("click", function () {
      applyBoxes($("boxes-toggle").getAttribute("aria-pressed") !== "true");
    });
    document.querySelectorAll("#matches th[data-key] button").forEach(function (b) {
      b.addEventListener("click", function () { sortBy(b.parentNode.getAttribute("data-key")); });
    });
    updateOverlap();
    showTurn($("turn").checked);  // a reload may keep the box ticked
    setState("idle");
    Promise.all([loadMethods(), loadSamples()]).then(function () {
      document.documentElement.setAttribute("data-ready", "true");
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
