// Player page: plays one stream by name through the unmodified Flashphoner Web SDK, the way an application written
// for WCS does. window.player exposes the SDK objects ({session, stream}) to tests and to the console, and `vod`, the
// server's last word on a `vod://` playback ({state, positionMs, durationMs}, see shared/src/vod-control.ts).
// Seek, pause and resume go out as session.sendData({edgeVod: ...}); the server reports the state back in
// "edgeVodState" stream events and in the answers. `vod-live://` and live streams are LIVE: no seek, no pause.
(function () {
  "use strict";

  var C = Flashphoner.constants;
  var STREAM_STATUS = C.STREAM_STATUS;
  var VOD_STATE_EVENT = "edgeVodState";
  var SEEK_STEP_MS = 5000;
  var VOLUME_STEP = 10;

  var $ = function (id) {
    return document.getElementById(id);
  };
  var stage = $("stage");
  var display = $("display");
  var unmuteBtn = $("unmuteBtn");
  var pauseBtn = $("pauseBtn");
  var seekBar = $("seekBar");
  var timeEl = $("time");
  var durationEl = $("duration");
  var liveBadge = $("liveBadge");
  var muteBtn = $("muteBtn");
  var volumeInput = $("volume");
  var fullscreenBtn = $("fullscreenBtn");
  var nameInput = $("streamName");

  var page = window.createStreamPage({
    button: $("playBtn"),
    defaultName: "vod://sample.mp4",
    doneStatus: STREAM_STATUS.STOPPED,
    startStream: play,
    onIdle: function () {
      unmuteBtn.hidden = true;
      pending = null;
      render();
    },
  });
  var player = page.state;
  player.vod = null;
  window.player = player;

  // `?t=90` starts a vod:// playback 90 s in.
  var startMs = Math.max(0, Math.round(Number(new URLSearchParams(location.search).get("t")) * 1000) || 0);
  // When player.vod arrived: the clock runs on from it between the server's reports (about one a second).
  var vodAt = 0;
  // The op sent and not answered yet ({op, state, positionMs}): reports from before it would move the bar back.
  var pending = null;
  // While the bar is held, only its own value is shown; it seeks on release.
  var dragging = false;
  // The SDK can only set the volume of a stream that has audio, so the page keeps it and applies it to each stream.
  var volume = Number(volumeInput.value);

  function isVod(name) {
    return name.indexOf("vod://") === 0;
  }

  function setMode(vod) {
    liveBadge.hidden = vod;
    seekBar.hidden = !vod;
    pauseBtn.hidden = !vod;
    timeEl.hidden = !vod;
    durationEl.hidden = !vod;
  }

  function showStream(stream) {
    page.show(stream.status(), stream.getInfo());
    render();
  }

  function play(session, name) {
    var vod = isVod(name);
    setMode(vod);
    player.vod = null;
    pending = null;
    var options = { name: name, display: display };
    // A start position also asks the server for state reports (even at 0), which is what drives the bar.
    if (vod) options.custom = { edgeVod: { startMs: startMs } };
    var stream = session.createStream(options);
    player.stream = stream;
    function ended(s) {
      if (player.stream !== s) return;
      showStream(s);
      page.setIdle();
    }
    stream
      .on(STREAM_STATUS.PENDING, showStream)
      .on(STREAM_STATUS.PLAYING, showStream)
      .on(STREAM_STATUS.STOPPED, ended)
      .on(STREAM_STATUS.FAILED, ended)
      .on(C.STREAM_EVENT, function (event) {
        if (player.stream !== stream || !event) return;
        if (event.type === VOD_STATE_EVENT) {
          if (!pending && event.payload && event.payload.edgeVod) setVod(event.payload.edgeVod);
          return;
        }
        // When autoplay with sound is refused the SDK plays muted and raises this event. 2.0.276 fires it with
        // STREAM_EVENT_TYPE.UNMUTE_REQUIRED, which that build does not define, so also trust the muted state.
        var types = C.STREAM_EVENT_TYPE || {};
        var unmuteRequired = event.type === types.UNMUTE_REQUIRED;
        if (unmuteRequired && stream.isRemoteAudioMuted()) unmuteBtn.hidden = false;
        renderSound();
      });
    stream.play();
    render();
  }

  function isPlaying() {
    return !!player.stream && player.stream.status() === STREAM_STATUS.PLAYING;
  }

  function setVod(state) {
    player.vod = { state: state.state, positionMs: state.positionMs, durationMs: state.durationMs };
    vodAt = Date.now();
    render();
  }

  /** Where the playback is now, as far as the page knows. */
  function position() {
    var vod = player.vod;
    if (!vod) return 0;
    if (pending && pending.positionMs !== undefined) return pending.positionMs;
    var ms = vod.positionMs + (vod.state === "playing" && isPlaying() ? Date.now() - vodAt : 0);
    return Math.min(ms, vod.durationMs);
  }

  /** The state the playback has or is about to have. */
  function intendedState() {
    if (pending) return pending.state;
    return player.vod ? player.vod.state : "playing";
  }

  function clock(ms) {
    var s = Math.floor(Math.max(0, ms) / 1000);
    var pad = function (n) {
      return (n < 10 ? "0" : "") + n;
    };
    var mmss = pad(Math.floor(s / 60) % 60) + ":" + pad(s % 60);
    return s >= 3600 ? Math.floor(s / 3600) + ":" + mmss : mmss;
  }

  function render() {
    var vod = player.vod;
    var controllable = !!vod && isPlaying();
    var duration = vod ? vod.durationMs : 0;
    seekBar.disabled = !controllable;
    pauseBtn.disabled = !controllable;
    pauseBtn.textContent = intendedState() === "paused" ? "Play" : "Pause";
    seekBar.max = String(duration);
    if (!dragging) seekBar.value = String(position());
    timeEl.textContent = clock(dragging ? Number(seekBar.value) : position());
    durationEl.textContent = clock(duration);
    renderSound();
  }

  function renderSound() {
    var stream = player.stream;
    // getVolume is -1 while the stream has no audio track.
    var hasAudio = !!stream && stream.getVolume() >= 0;
    muteBtn.disabled = !hasAudio;
    muteBtn.textContent = hasAudio && stream.isRemoteAudioMuted() ? "Unmute" : "Mute";
    volumeInput.value = String(volume);
  }

  /** Sends one seek, pause or resume; the answer is the new state, or a refusal for the #info line. */
  function control(op, positionMs) {
    var stream = player.stream;
    var session = player.session;
    if (!stream || !session || !player.vod || !isPlaying()) return;
    var command = { op: op, mediaSessionId: stream.id() };
    var mine = { op: op, state: intendedState() };
    if (op === "seek") command.positionMs = mine.positionMs = Math.round(positionMs);
    if (op === "pause") mine.state = "paused";
    if (op === "resume") mine.state = "playing";
    pending = mine;
    render();
    session.sendData({ edgeVod: command }).then(
      function (answer) {
        // An older op's answer is older news than the one still to come.
        if (pending !== mine || player.stream !== stream) return;
        pending = null;
        if (answer && answer.payload && answer.payload.edgeVod) setVod(answer.payload.edgeVod);
        else render();
      },
      function (failure) {
        if (pending === mine) pending = null;
        if (player.stream !== stream) return;
        page.show(stream.status(), (failure && failure.info) || "Operation failed");
        render();
      },
    );
  }

  function seekTo(ms) {
    var vod = player.vod;
    if (!vod) return;
    // The server refuses a position at or past the end: the bar's far end means the last moment.
    control("seek", Math.max(0, Math.min(ms, vod.durationMs - 1)));
  }

  function togglePause() {
    control(intendedState() === "paused" ? "resume" : "pause");
  }

  function setVolume(value) {
    volume = Math.max(0, Math.min(100, Math.round(value)));
    var stream = player.stream;
    if (stream) {
      stream.setVolume(volume);
      // Turning the sound up is asking to hear it.
      if (volume > 0 && stream.isRemoteAudioMuted()) unmute();
    }
    renderSound();
  }

  function unmute() {
    if (player.stream) player.stream.unmuteRemoteAudio();
    unmuteBtn.hidden = true;
    renderSound();
  }

  function toggleFullscreen() {
    var done = document.fullscreenElement ? document.exitFullscreen() : stage.requestFullscreen();
    // Refused without a user gesture, or unsupported: nothing to undo.
    if (done && done.catch) done.catch(function () {});
  }

  seekBar.addEventListener("input", function () {
    dragging = true;
    timeEl.textContent = clock(Number(seekBar.value));
  });
  seekBar.addEventListener("change", function () {
    dragging = false;
    seekTo(Number(seekBar.value));
  });
  // Letting go where the drag started fires no change, which would leave the bar held.
  seekBar.addEventListener("pointerup", function () {
    setTimeout(function () {
      dragging = false;
    }, 0);
  });
  pauseBtn.addEventListener("click", togglePause);
  muteBtn.addEventListener("click", function () {
    var stream = player.stream;
    if (!stream) return;
    if (stream.isRemoteAudioMuted()) unmute();
    else stream.muteRemoteAudio();
    renderSound();
  });
  unmuteBtn.addEventListener("click", unmute);
  volumeInput.addEventListener("input", function () {
    setVolume(Number(volumeInput.value));
  });
  fullscreenBtn.addEventListener("click", toggleFullscreen);

  // Media events do not bubble, but they do pass the display in the capture phase: the SDK's <video> is made anew for
  // each stream, and it is the SDK that mutes it when autoplay with sound is refused.
  display.addEventListener("loadedmetadata", function () {
    if (player.stream) player.stream.setVolume(volume);
    renderSound();
  }, true);
  display.addEventListener("volumechange", renderSound, true);

  stage.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var vod = !seekBar.hidden;
    switch (event.key) {
      case " ":
        if (vod) togglePause();
        break;
      case "ArrowLeft":
        if (vod) seekTo(position() - SEEK_STEP_MS);
        break;
      case "ArrowRight":
        if (vod) seekTo(position() + SEEK_STEP_MS);
        break;
      case "ArrowUp":
        setVolume(volume + VOLUME_STEP);
        break;
      case "ArrowDown":
        setVolume(volume - VOLUME_STEP);
        break;
      case "f":
      case "F":
        toggleFullscreen();
        break;
      default:
        return;
    }
    // The sliders and buttons in here would act on these keys too (a second seek, a click on the focused button).
    event.preventDefault();
  });

  nameInput.addEventListener("input", function () {
    if (!page.isActive()) setMode(isVod(nameInput.value.trim()));
  });
  setMode(isVod(nameInput.value.trim()));
  // The time runs between the server's reports.
  setInterval(render, 250);
  render();
})();
