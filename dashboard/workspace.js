// The review workspace: keyboard shortcuts for the decision buttons (each
// button names its key in data-key), and a claim kept alive while the page
// is open.
(function () {
  "use strict";
  var form = document.getElementById("decide");
  if (!form) {
    return;
  }
  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey || e.repeat) {
      return;
    }
    var t = e.target;
    if (t && (t.tagName === "TEXTAREA" || t.tagName === "INPUT")) {
      return;
    }
    var b = form.querySelector('button[data-key="' + e.key.toLowerCase() + '"]');
    if (b) {
      e.preventDefault();
      b.click();
    }
  });
  form.dataset.keys = "on"; // the shortcuts work from here on
  var every = Number(form.dataset.renewEvery);
  if (form.dataset.renew && every > 0) {
    setInterval(function () {
      fetch(form.dataset.renew, {
        method: "POST",
        credentials: "same-origin",
        body: new URLSearchParams({ o: form.elements.o.value }),
      }).then(function (r) {
        if (r.status === 409) {
          document.getElementById("lost").hidden = false;
        }
      });
    }, every * 1000);
  }
})();
