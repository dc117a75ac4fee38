// What the Player and the Stream Recording pages share: the WCS URL and stream name form, one Web SDK session reused
// until the URL changes or the connection drops (as in the WCS demos), Start/Stop, and the status line. A page
// supplies how its stream starts and what it shows when it ends.
(function () {
  "use strict";

  var C = Flashphoner.constants;
  var SESSION_STATUS = C.SESSION_STATUS;
  var STREAM_STATUS = C.STREAM_STATUS;

  /**
   * opts: {
   *   button: the Start/Stop button,
   *   defaultName: stream name when the URL has no `?stream=`,
   *   doneStatus: the server status that ends a stream cleanly (STOPPED for a player, UNPUBLISHED for a publisher),
   *   startStream(session, name): creates the page's stream, sets page.state.stream, and starts it,
   *   onStart(): optional, before connecting,
   *   onIdle(): optional, whenever the page goes idle,
   *   sessionEnded(status): optional, when an established session drops (default: show it and go idle),
   * }
   * Returns the page: { state: {session, stream}, defaultUrl, urlInput, show, setIdle, isActive }.
   */
  window.createStreamPage = function (opts) {
    var urlInput = document.getElementById("url");
    var nameInput = document.getElementById("streamName");
    var form = document.getElementById("controls");
    var statusEl = document.getElementById("status");
    var infoEl = document.getElementById("info");
    var button = opts.button;

    var state = { session: null, stream: null };
    // True from Start until the stream ends or the session goes away.
    var active = false;

    var params = new URLSearchParams(location.search);
    var defaultUrl = (location.protocol === "https:" ? "wss://" : "ws://") + location.host;
    urlInput.value = params.get("url") || defaultUrl;
    nameInput.value = params.get("stream") || opts.defaultName;

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

    function setIdle() {
      active = false;
      button.textContent = "Start";
      button.disabled = false;
      urlInput.disabled = false;
      nameInput.disabled = false;
      if (opts.onIdle) opts.onIdle();
    }

    function setActive() {
      active = true;
      button.textContent = "Stop";
      button.disabled = false;
      urlInput.disabled = true;
      nameInput.disabled = true;
    }

    var page = {
      state: state,
      defaultUrl: defaultUrl,
      urlInput: urlInput,
      show: show,
      setIdle: setIdle,
      isActive: function () {
        return active;
      },
    };

    function getSession(url) {
      var current = state.session;
      if (current && current.status() === SESSION_STATUS.ESTABLISHED && current.getServerUrl() === url) {
        return Promise.resolve(current);
      }
      if (current) {
        state.session = null;
        try {
          current.disconnect();
        } catch (e) {
          /* already gone */
        }
      }
      return new Promise(function (resolve, reject) {
        var established = false;
        var session = Flashphoner.createSession({ urlServer: url });
        state.session = session;
        function ended(status) {
          if (state.session === session) state.session = null;
          if (!established) {
            reject(new Error("Connection " + status.toLowerCase()));
            return;
          }
          // The SDK has already failed this session's streams; say why they stopped.
          if (opts.sessionEnded) {
            opts.sessionEnded(status);
            return;
          }
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

    function start() {
      var url = urlInput.value.trim();
      var name = nameInput.value.trim();
      if (!url || !name) return;
      setActive();
      if (opts.onStart) opts.onStart();
      state.stream = null;
      show("CONNECTING", "");
      ready
        .then(function () {
          return getSession(url);
        })
        .then(function (session) {
          if (!active) return; // Stop was pressed while connecting.
          opts.startStream(session, name);
        })
        .catch(function (err) {
          show(SESSION_STATUS.FAILED, err && err.message ? err.message : String(err));
          setIdle();
        });
    }

    function stop() {
      var stream = state.stream;
      var status = stream ? stream.status() : STREAM_STATUS.NEW;
      if (status === STREAM_STATUS.NEW || status === opts.doneStatus || status === STREAM_STATUS.FAILED) {
        // Nothing reached the server yet (or it is over): there is no end status to wait for.
        setIdle();
        show("", "");
        return;
      }
      // The page goes idle on the server's end status, as the SDK has no local one.
      button.disabled = true;
      stream.stop();
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (active) stop();
      else start();
    });

    window.addEventListener("pagehide", function () {
      if (state.session) state.session.disconnect();
    });

    return page;
  };
})();
