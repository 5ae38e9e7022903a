// The refunds console's live updates: short polling of /console/live (a fingerprint of the
// refunds and what waits for the signed-in person). When the fingerprint moves, the page is
// fetched again and its live regions swapped in place, keeping whatever the person is typing
// and where the focus is. No library, no build step.
(function () {
  "use strict";
  var body = document.body;
  var url = body.dataset.live;
  if (!url) return;
  var version = body.dataset.version;
  var every = parseInt(body.dataset.pollMs || "2000", 10);
  var busy = false;

  function formState(root) {
    var state = {};
    root.querySelectorAll("form[data-form-id]").forEach(function (form) {
      var fields = {};
      form.querySelectorAll("textarea, input[type=text], input[type=radio]").forEach(function (el) {
        if (el.type === "radio") { if (el.checked) fields["radio:" + el.name] = el.value; }
        else fields[el.name] = el.value;
      });
      state[form.dataset.formId] = fields;
    });
    return state;
  }

  function restore(root, state) {
    root.querySelectorAll("form[data-form-id]").forEach(function (form) {
      var fields = state[form.dataset.formId];
      if (!fields) return;
      form.querySelectorAll("textarea, input[type=text], input[type=radio]").forEach(function (el) {
        if (el.type === "radio") el.checked = fields["radio:" + el.name] === el.value;
        else if (el.name in fields) el.value = fields[el.name];
      });
    });
  }

  function expired() {
    document.getElementById("session-expired").hidden = false;
  }

  function refresh() {
    return fetch(location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (response.url.indexOf("/console/sign-in") !== -1) { expired(); return null; }
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html");
        var focused = document.activeElement && document.activeElement.id;
        var state = formState(document);
        document.querySelectorAll("[data-live-region]").forEach(function (region) {
          var next = fresh.getElementById(region.id);
          if (next) region.innerHTML = next.innerHTML;
        });
        restore(document, state);
        if (focused) {
          var el = document.getElementById(focused);
          if (el && el !== document.activeElement) el.focus();
        }
        version = fresh.body.dataset.version || version;
      });
  }

  function poll() {
    if (busy) return;
    busy = true;
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (response.status === 401) { expired(); return null; }
        return response.ok ? response.json() : null;
      })
      .then(function (live) {
        if (!live) return null;
        var count = document.getElementById("waiting-count");
        if (count) count.textContent = String(live.waiting);
        if (live.version !== version) {
          version = live.version;
          return refresh();
        }
        return null;
      })
      .catch(function () { /* the API is restarting: try again at the next tick */ })
      .then(function () { busy = false; });
  }

  setInterval(poll, every);
  document.addEventListener("visibilitychange", function () { if (!document.hidden) poll(); });

  // A flash message is read out and focused once, so keyboard users land on the outcome.
  var flash = document.getElementById("flash");
  if (flash) { flash.tabIndex = -1; flash.focus(); }
})();
