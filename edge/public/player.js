// Player page: plays one stream by name through the unmodified Flashphoner Web SDK, the way an application written
// for WCS does. window.player exposes the SDK objects ({session, stream}) to tests and to the console.
(function () {
  "use strict";

  var C = Flashphoner.constants;
  var STREAM_STATUS = C.STREAM_STATUS;

  var display = document.getElementById("display");
  var unmuteBtn = document.getElementById("unmuteBtn");

  var page = window.createStreamPage({
    button: document.getElementById("playBtn"),
    defaultName: "vod://sample.mp4",
    doneStatus: STREAM_STATUS.STOPPED,
    startStream: play,
    onIdle: function () {
      unmuteBtn.hidden = true;
    },
  });
  var player = page.state;
  window.player = player;

  function showStream(stream) {
    page.show(stream.status(), stream.getInfo());
  }

  function play(session, name) {
    var stream = session.createStream({ name: name, display: display });
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
        // When autoplay with sound is refused the SDK plays muted and raises this event. 2.0.276 fires it with
        // STREAM_EVENT_TYPE.UNMUTE_REQUIRED, which that build does not define, so also trust the muted state.
        var types = C.STREAM_EVENT_TYPE || {};
        var unmuteRequired = event && event.type === types.UNMUTE_REQUIRED;
        if (unmuteRequired && player.stream === stream && stream.isRemoteAudioMuted()) unmuteBtn.hidden = false;
      });
    stream.play();
  }

  unmuteBtn.addEventListener("click", function () {
    if (player.stream) player.stream.unmuteRemoteAudio();
    unmuteBtn.hidden = true;
  });
})();
