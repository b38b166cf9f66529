/* SpacePixels blink viewer: step the session's previews with the arrow keys, play and pause
 * with the space bar, show the candidates' detections with "m". The frames' data comes from
 * the page's <script type="application/json" id="blink-data"> block; every text is set with
 * textContent, never as HTML. */
(function () {
  "use strict";
  var dataNode = document.getElementById("blink-data");
  if (!dataNode) { return; }
  var data = JSON.parse(dataNode.textContent);
  var frames = data.frames || [];
  if (!frames.length) { return; }
  var SVG = "http://www.w3.org/2000/svg";
  var img = document.getElementById("blink-img");
  var overlay = document.getElementById("blink-markers");
  var slider = document.getElementById("blink-slider");
  var playButton = document.getElementById("blink-play");
  var markButton = document.getElementById("blink-marks");
  var nameNode = document.getElementById("blink-name");
  var timeNode = document.getElementById("blink-time");
  var posNode = document.getElementById("blink-pos");
  var colours = {
    track: "#82b1ff", slow_mover: "#93d19c", streak: "#e8b46c",
    streak_track: "#cf9fe3", anomaly: "#ef8585"
  };
  var current = 0;
  var timer = null;
  var showMarkers = false;

  /* Preload every preview once, in order, so that stepping and playing never wait on the
   * disk and the picture does not flash while a frame decodes. */
  var loaded = frames.map(function (frame) {
    var pre = new Image();
    pre.decoding = "async";
    pre.src = frame.src;
    return pre;
  });

  function drawMarkers(frame) {
    while (overlay.firstChild) { overlay.removeChild(overlay.firstChild); }
    if (!showMarkers) { return; }
    var radius = data.radius || 12;
    (frame.markers || []).forEach(function (m) {
      var colour = colours[m.kind] || "#d3d9e3";
      var shape;
      if (m.line) {
        shape = document.createElementNS(SVG, "line");
        shape.setAttribute("x1", m.line[0]);
        shape.setAttribute("y1", m.line[1]);
        shape.setAttribute("x2", m.line[2]);
        shape.setAttribute("y2", m.line[3]);
        shape.setAttribute("stroke-dasharray", "6 4");
      } else {
        shape = document.createElementNS(SVG, "circle");
        shape.setAttribute("cx", m.x);
        shape.setAttribute("cy", m.y);
        shape.setAttribute("r", radius);
      }
      shape.setAttribute("class", "marker");
      shape.setAttribute("stroke", colour);
      overlay.appendChild(shape);
      var label = document.createElementNS(SVG, "text");
      label.setAttribute("x", m.x + radius + 3);
      label.setAttribute("y", m.y - radius);
      label.setAttribute("fill", colour);
      label.setAttribute("font-size", String(Math.max(13, (data.width || 0) / 70)));
      label.textContent = m.id;
      overlay.appendChild(label);
    });
  }

  function show(index) {
    current = (index + frames.length) % frames.length;
    var frame = frames[current];
    img.src = frame.src;
    img.alt = "frame " + frame.name;
    nameNode.textContent = frame.name;
    timeNode.textContent = frame.utc ? frame.utc + " UTC" : "no time";
    posNode.textContent = (current + 1) + " / " + frames.length;
    slider.value = String(current);
    drawMarkers(frame);
  }

  function setPlaying(on) {
    if (on && !timer) {
      timer = window.setInterval(function () {
        var next = loaded[(current + 1) % frames.length];
        if (next.complete) { show(current + 1); }  /* wait for a slow frame, never flash */
      }, data.interval || 500);
    } else if (!on && timer) {
      window.clearInterval(timer);
      timer = null;
    }
    playButton.textContent = timer ? "Pause" : "Play";
    playButton.setAttribute("aria-pressed", timer ? "true" : "false");
  }

  function toggleMarkers() {
    showMarkers = !showMarkers;
    markButton.setAttribute("aria-pressed", showMarkers ? "true" : "false");
    drawMarkers(frames[current]);
  }

  document.getElementById("blink-prev").addEventListener("click", function () { show(current - 1); });
  document.getElementById("blink-next").addEventListener("click", function () { show(current + 1); });
  playButton.addEventListener("click", function () { setPlaying(!timer); });
  markButton.addEventListener("click", toggleMarkers);
  slider.addEventListener("input", function () { show(parseInt(slider.value, 10) || 0); });

  /* "blink" on a candidate's card: its first frame, markers on, the viewer in sight. */
  Array.prototype.forEach.call(document.querySelectorAll("button.to-blink"), function (button) {
    button.addEventListener("click", function () {
      var name = button.getAttribute("data-frame");
      var index = frames.findIndex(function (f) { return f.name === name; });
      if (index < 0) { return; }
      setPlaying(false);
      showMarkers = true;
      markButton.setAttribute("aria-pressed", "true");
      show(index);
      document.getElementById("blink").scrollIntoView({ behavior: "smooth", block: "start" });
    });
  });

  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey) { return; }
    var tag = event.target && event.target.tagName;
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT") { return; }
    if (event.key === "ArrowRight") {
      show(current + 1);
    } else if (event.key === "ArrowLeft") {
      show(current - 1);
    } else if (event.key === " " || event.key === "Spacebar") {
      if (tag === "BUTTON" || tag === "A" || tag === "SUMMARY") { return; }  /* their own action */
      setPlaying(!timer);
    } else if (event.key === "m" || event.key === "M") {
      toggleMarkers();
    } else {
      return;
    }
    event.preventDefault();
  });

  show(0);
})();
