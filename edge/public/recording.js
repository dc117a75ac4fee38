// Stream Recording page: publishes the camera and microphone with `record: true` through the unmodified Flashphoner
// Web SDK, the way WCS's recording demo does, and links to the record once the stream is over. window.recorder
// exposes the SDK objects ({session, stream}) to tests and to the console.
(function () {
  "use strict";

  var STREAM_STATUS = Flashphoner.constants.STREAM_STATUS;
  /** Where the edge serves records, as WCS serves WCS_HOME/records. */
  var RECORDS_PATH = "/client/records/";

  var display = document.getElementById("localVideo");
  var recordEl = document.getElementById("record");
  var recordLink = document.getElementById("recordLink");
  var playLink = document.getElementById("playLink");

  var page = window.createStreamPage({
    button: document.getElementById("publishBtn"),
    defaultName: "rec-" + Math.random().toString(36).slice(2, 8),
    doneStatus: STREAM_STATUS.UNPUBLISHED,
    startStream: publish,
    onStart: hideRecord,
    sessionEnded: function (status) {
      if (!page.isActive()) return;
      page.show(status, "");
      if (recorder.stream) showRecord(recorder.stream);
      page.setIdle();
    },
  });
  var recorder = page.state;
  window.recorder = recorder;

  function showStream(stream) {
    var info = stream.getInfo();
    // A local failure (no camera, permission refused) says why only in the error info.
    var detail = stream.getErrorInfo ? stream.getErrorInfo() : "";
    page.show(stream.status(), detail && info !== detail ? (info ? info + " (" + detail + ")" : detail) : info);
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
    var url = page.urlInput.value.trim();
    var query = "?stream=" + encodeURIComponent("vod://" + name);
    if (url !== page.defaultUrl) query += "&url=" + encodeURIComponent(url);
    playLink.href = location.origin + "/player.html" + query;
    recordEl.hidden = false;
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
      page.setIdle();
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
})();
