// Stream Recording page: publishes the camera and microphone with `record: true` through the unmodified Flashphoner
// Web SDK, the way WCS's recording demo does, and links to the record once the stream is over. window.recorder
// exposes the SDK objects ({session, stream}) to tests and to the console.
(function () {
  "use strict";

  var C = Flashphoner.constants;
  var SESSION_STATUS = C.SESSION_STATUS;
  var STREAM_STATUS = C.STREAM_STATUS;
  /** Where the edge serves records, as WCS serves WCS_HOME/records. */
  var RECORDS_PATH = "/client/records/";

  var urlInput = document.getElementById("url");
  var nameInput = document.getElementById("streamName");
  var form = document.getElementById("controls");
  var publishBtn = document.getElementById("publishBtn");
  var display = document.getElementById("localVideo");
  var statusEl = document.getElementById("status");
  var infoEl = document.getElementById("info");
  var recordEl = document.getElementById("record");
  var recordLink = document.getElementById("recordLink");
  var playLink = document.getElementById("playLink");

  var recorder = { session: null, stream: null };
  window.recorder = recorder;

  // True from Start until the stream ends (UNPUBLISHED/FAILED) or the session goes away.
  var active = false;

  var params = new URLSearchParams(location.search);
  var defaultUrl = (location.protocol === "https:" ? "wss://" : "ws://") + location.host;
  urlInput.value = params.get("url") || defaultUrl;
  nameInput.value = params.get("stream") || "rec-" + Math.random().toString(36).slice(2, 8);

  // init() is async in 2.0.x: it gathers client info for the `connection` frame after it has set up providers.
  var ready = Promise.resolve(Flashphoner.init({})).catch(function (err) {
    show("FAILED", "Web SDK init failed: " + (err && err.message ? err.message : err));
    throw err;
  });

  function show(status, info) {
    statusEl.textContent = status || "";
    infoEl.textContent = info || "";
    statusEl.className = status === STREAM_STATUS.FAILED || status === SESSION_STATUS.FAILED ? "failed" : "";
  }

  function showStream(stream) {
    var info = stream.getInfo();
    // A local failure (no camera, permission refused) says why only in the error info.
    var detail = stream.getErrorInfo ? stream.getErrorInfo() : "";
    show(stream.status(), detail && info !== detail ? (info ? info + " (" + detail + ")" : detail) : info);
  }

  function setIdle() {
    active = false;
    publishBtn.textContent = "Start";
    publishBtn.disabled = false;
    urlInput.disabled = false;
    nameInput.disabled = false;
  }

  function setActive() {
    active = true;
    publishBtn.textContent = "Stop";
    publishBtn.disabled = false;
    urlInput.disabled = true;
    nameInput.disabled = true;
  }

  function hideRecord() {
    recordEl.hidden = true;
    recordLink.removeAttribute("href");
    playLink.removeAttribute("href");
    recordLink.textContent = "download";
  }

  /** Links to the finished record: the file itself and the Player with `vod://<record>`. */
  function showRecord(stream) {
    var name = stream.getRecordInfo();
    if (!name) return;
    recordLink.href = location.origin + RECORDS_PATH + encodeURIComponent(name);
    recordLink.textContent = name;
    var query = "?stream=" + encodeURIComponent("vod://" + name);
    if (urlInput.value.trim() !== defaultUrl) query += "&url=" + encodeURIComponent(urlInput.value.trim());
    playLink.href = location.origin + "/player.html" + query;
    recordEl.hidden = false;
  }

  // One session serves every recording until the URL changes or the connection drops, as in the WCS demos.
  function getSession(url) {
    var current = recorder.session;
    if (current && current.status() === SESSION_STATUS.ESTABLISHED && current.getServerUrl() === url) {
      return Promise.resolve(current);
    }
    if (current) {
      recorder.session = null;
      try {
        current.disconnect();
      } catch (e) {
        /* already gone */
      }
    }
    return new Promise(function (resolve, reject) {
      var established = false;
      var session = Flashphoner.createSession({ urlServer: url });
      recorder.session = session;
      function ended(status) {
        if (recorder.session === session) recorder.session = null;
        if (!established) {
          reject(new Error("Connection " + status.toLowerCase()));
          return;
        }
        if (!active) return;
        // The SDK has already failed this session's streams; say why they stopped.
        show(status, "");
        if (recorder.stream) showRecord(recorder.stream);
        setIdle();
      }
      session
        .on(SESSION_STATUS.ESTABLISHED, function (s) {
          established = true;
          resolve(s);
        })
        .on(SESSION_STATUS.DISCONNECTED, function () {
          ended(SESSION_STATUS.DISCONNECTED);
        })
        .on(SESSION_STATUS.FAILED, function () {
          ended(SESSION_STATUS.FAILED);
        })
        .on(SESSION_STATUS.WARN, function (warning) {
          console.warn("server warning", warning);
        });
    });
  }

  function publish(session, name) {
    var stream = session.createStream({
      name: name,
      display: display,
      record: true,
      receiveVideo: false,
      receiveAudio: false,
    });
    recorder.stream = stream;
    function ended(s) {
      if (recorder.stream !== s) return;
      showStream(s);
      showRecord(s);
      setIdle();
    }
    stream
      .on(STREAM_STATUS.PENDING, showStream)
      .on(STREAM_STATUS.PUBLISHING, function (s) {
        if (recorder.stream !== s) return;
        showStream(s);
      })
      .on(STREAM_STATUS.UNPUBLISHED, ended)
      .on(STREAM_STATUS.FAILED, ended);
    stream.publish();
  }

  function start() {
    var url = urlInput.value.trim();
    var name = nameInput.value.trim();
    if (!url || !name) return;
    setActive();
    hideRecord();
    recorder.stream = null;
    show("CONNECTING", "");
    ready
      .then(function () {
        return getSession(url);
      })
      .then(function (session) {
        if (!active) return; // Stop was pressed while connecting.
        publish(session, name);
      })
      .catch(function (err) {
        show(SESSION_STATUS.FAILED, err && err.message ? err.message : String(err));
        setIdle();
      });
  }

  function stop() {
    var stream = recorder.stream;
    var status = stream ? stream.status() : STREAM_STATUS.NEW;
    if (status === STREAM_STATUS.NEW || status === STREAM_STATUS.UNPUBLISHED || status === STREAM_STATUS.FAILED) {
      // Nothing reached the server yet (or it is over): there is no UNPUBLISHED to wait for.
      setIdle();
      show("", "");
      return;
    }
    // The page goes idle on the server's UNPUBLISHED, which carries the record name.
    publishBtn.disabled = true;
    stream.stop();
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (active) stop();
    else start();
  });

  window.addEventListener("pagehide", function () {
    if (recorder.session) recorder.session.disconnect();
  });
})();
