// paytrail console: the only script, same-origin (CSP script-src 'self').
// It shows times in the viewer's zone (UTC stays in the title), follows
// the post-sign-in link, and uploads settlement reports with progress.
"use strict";
(function () {
  function localize() {
    var fmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
    document.querySelectorAll("time[datetime]").forEach(function (t) {
      var d = new Date(t.getAttribute("datetime"));
      if (!isNaN(d)) { t.textContent = fmt.format(d); }
    });
  }

  function upload() {
    var form = document.getElementById("upload");
    if (!form || !window.FormData) { return; }
    var bar = document.getElementById("progress"), text = document.getElementById("progress-text");
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var xhr = new XMLHttpRequest(), button = form.querySelector("button");
      button.disabled = true;
      bar.hidden = false;
      xhr.upload.addEventListener("progress", function (e) {
        if (e.lengthComputable) {
          bar.value = Math.round(100 * e.loaded / e.total);
          text.textContent = "Uploading… " + bar.value + "%";
          if (e.loaded === e.total) { text.textContent = "Reconciling against the ledger…"; }
        }
      });
      xhr.addEventListener("load", function () {
        // The answer is the run's page (after the redirect) or an error
        // page: shown as is, so the run is read once.
        var ok = xhr.status >= 200 && xhr.status < 300 && xhr.responseURL;
        document.open(); document.write(xhr.responseText); document.close();
        if (ok) { window.history.replaceState(null, "", xhr.responseURL); }
      });
      xhr.addEventListener("error", function () {
        button.disabled = false;
        text.textContent = "The upload failed: check your connection and try again.";
      });
      xhr.open("POST", form.action);
      xhr.send(new FormData(form));
    });
  }

  function continueLink() {
    var a = document.getElementById("continue");
    if (a) { window.location.assign(a.href); }
  }

  document.addEventListener("DOMContentLoaded", function () { localize(); upload(); continueLink(); });
})();
