// The dataset upload form: drag and drop onto the drop zone, a size check before anything
// is sent, and a progress bar while htmx uploads. Without JavaScript the form still posts.
(function () {
  "use strict";

  function formatBytes(n) {
    var units = ["bytes", "KB", "MB", "GB"];
    var i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
  }

  function setUp(form) {
    if (form.dataset.uploadReady) return;
    form.dataset.uploadReady = "1";
    var zone = form.querySelector("[data-dropzone]");
    var input = zone.querySelector("input[type=file]");
    var fileName = form.querySelector("[data-file-name]");
    var error = form.querySelector("[data-upload-error]");
    var progress = form.querySelector("[data-upload-progress]");
    var submit = form.querySelector("button[type=submit]");
    var maxBytes = parseInt(form.dataset.maxBytes, 10);

    function check() {
      var file = input.files && input.files[0];
      fileName.textContent = file ? file.name + " (" + formatBytes(file.size) + ")" : "";
      var tooBig = file && maxBytes && file.size > maxBytes;
      error.hidden = !tooBig;
      error.textContent = tooBig ? "The file is larger than the " + formatBytes(maxBytes) + " upload limit." : "";
      submit.disabled = !!tooBig;
    }

    ["dragenter", "dragover"].forEach(function (name) {
      zone.addEventListener(name, function (event) {
        event.preventDefault();
        zone.classList.add("dragging");
      });
    });
    ["dragleave", "drop"].forEach(function (name) {
      zone.addEventListener(name, function () { zone.classList.remove("dragging"); });
    });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      if (event.dataTransfer && event.dataTransfer.files.length) {
        input.files = event.dataTransfer.files;
        check();
      }
    });
    input.addEventListener("change", check);
    // A file chosen before this script ran (or restored by the browser) still counts.
    check();

    form.addEventListener("htmx:beforeRequest", function () {
      progress.value = 0;
      progress.hidden = false;
      submit.disabled = true;
    });
    form.addEventListener("htmx:xhr:progress", function (event) {
      if (event.detail.lengthComputable && event.detail.total) {
        progress.value = Math.round((100 * event.detail.loaded) / event.detail.total);
      }
    });
    form.addEventListener("htmx:afterRequest", function () {
      progress.hidden = true;
      check();
    });
  }

  function setUpAll(root) {
    (root.querySelectorAll ? root : document).querySelectorAll("[data-upload-form]").forEach(setUp);
    if (root.matches && root.matches("[data-upload-form]")) setUp(root);
  }

  // A refused upload (400: form errors, 413: too large) comes back as the form with its
  // errors: show it instead of treating it as a failed request.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var status = event.detail.xhr.status;
    if ((status === 400 || status === 413) && event.detail.elt.matches("[data-upload-form]")) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  if (window.htmx) {
    window.htmx.onLoad(setUpAll);
  } else {
    document.addEventListener("DOMContentLoaded", function () { setUpAll(document); });
  }
})();
