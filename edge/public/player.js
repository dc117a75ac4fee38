// Player page: plays one stream by name through the unmodified Flashphoner Web SDK, the way an application written
// for WCS does. window.player exposes the SDK objects ({session, stream}) to tests and to the console.
(function () {
  "use strict";

  var C = Flashphoner.constants;
  var SESSION_STATUS = C.SESSION_STATUS;
  var STREAM_STATUS = C.STREAM_STATUS;

  var urlInput = document.getElementById("url");
  var nameInput = document.getElementById("streamName");
  var form = document.getElementById("controls");
  var playBtn = document.getElementById("playBtn");
  var display = document.getElementById("display");
  var statusEl = document.getElementById("status");
  var infoEl = document.getElementById("info");
  var unmuteBtn = document.getElementById("unmuteBtn");

  var player = { session: null, stream: null };
  window.player = player;

  // True from Start until the stream ends (STOPPED/FAILED) or the session goes away.
  var active = false;

  var params = new URLSearchParams(location.search);
  urlInput.value = params.get("url") || (location.protocol === "https:" ? "wss://" : "ws://") + location.host;
  nameInput.value = params.get("stream") || "vod://sample.mp4";

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
    show(stream.status(), stream.getInfo());
  }

  function setIdle() {
    active = false;
    playBtn.textContent = "Start";
    playBtn.disabled = false;
    urlInput.disabled = false;
    nameInput.disabled = false;
    unmuteBtn.hidden = true;
  }

  function setActive() {
    active = true;
    playBtn.textContent = "Stop";
    playBtn.disabled = false;
    urlInput.disabled = true;
    nameInput.disabled = true;
  }

  // One session serves every playback until the URL changes or the connection drops, as in the WCS demos.
  function getSession(url) {
    var current = player.session;
    if (current && current.status() === SESSION_STATUS.ESTABLISHED && current.getServerUrl() === url) {
      return Promise.resolve(current);
    }
    if (current) {
      player.session = null;
      try {
        current.disconnect();
      } catch (e) {
        /* already gone */
      }
    }
    return new Promise(function (resolve, reject) {
      var established = false;
      var session = Flashphoner.createSession({ urlServer: url });
      player.session = session;
      function ended(status) {
        if (player.session === session) player.session = null;
        if (!established) {
          reject(new Error("Connection " + status.toLowerCase()));
          return;
        }
        // The SDK has already failed this session's streams; say why they stopped.
        show(status, "");
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

  function play(session, name) {
    var stream = session.createStream({ name: name, display: display });
    player.stream = stream;
    stream
      .on(STREAM_STATUS.PENDING, showStream)
      .on(STREAM_STATUS.PLAYING, showStream)
      .on(STREAM_STATUS.STOPPED, function (s) {
        if (player.stream !== s) return;
        showStream(s);
        setIdle();
      })
      .on(STREAM_STATUS.FAILED, function (s) {
        if (player.stream !== s) return;
        showStream(s);
        setIdle();
      })
      .on(C.STREAM_EVENT, function (event) {
        // When autoplay with sound is refused the SDK plays muted and raises this event. 2.0.276 fires it with
        // STREAM_EVENT_TYPE.UNMUTE_REQUIRED, which that build does not define, so also trust the muted state.
        var types = C.STREAM_EVENT_TYPE || {};
        var unmuteRequired = event && event.type === types.UNMUTE_REQUIRED;
        if (unmuteRequired && player.stream === stream && stream.isRemoteAudioMuted()) unmuteBtn.hidden = false;
      });
    stream.play();
  }

  function start() {
    var url = urlInput.value.trim();
    var name = nameInput.value.trim();
    if (!url || !name) return;
    setActive();
    player.stream = null;
    show("CONNECTING", "");
    ready
      .then(function () {
        return getSession(url);
      })
      .then(function (session) {
        if (!active) return; // Stop was pressed while connecting.
        play(session, name);
      })
      .catch(function (err) {
        show(SESSION_STATUS.FAILED, err && err.message ? err.message : String(err));
        setIdle();
      });
  }

  function stop() {
    var stream = player.stream;
    var status = stream ? stream.status() : STREAM_STATUS.NEW;
    if (status === STREAM_STATUS.NEW || status === STREAM_STATUS.STOPPED || status === STREAM_STATUS.FAILED) {
      // Nothing reached the server yet (or it is over): there is no STOPPED to wait for.
      setIdle();
      show("", "");
      return;
    }
    // The page goes idle on the server's STOPPED, as the SDK has no local one.
    playBtn.disabled = true;
    stream.stop();
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (active) stop();
    else start();
  });

  unmuteBtn.addEventListener("click", function () {
    if (player.stream) player.stream.unmuteRemoteAudio();
    unmuteBtn.hidden = true;
  });

  window.addEventListener("pagehide", function () {
    if (player.session) player.session.disconnect();
  });
})();
