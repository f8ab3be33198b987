// The issue editor: live preview, item order arrows, send progress.  No framework, no
// inline script (the page's CSP allows scripts from this site only).  Everything works
// without it: the preview buttons, the position numbers, a reload for progress.
"use strict";
(function () {
  const form = document.getElementById("compose");
  const editable = form && !form.querySelector("fieldset").disabled;
  let timer = null;

  // A form has one planned navigation at a time (a second submit cancels the first), so
  // the text preview is asked for once the HTML one has loaded.
  function refreshPreview() {
    if (!form.checkValidity()) return;  // e.g. an empty subject: keep the last preview
    document.getElementById("preview-html").addEventListener("load", function () {
      form.requestSubmit(document.getElementById("preview-text-button"));
    }, {once: true});
    form.requestSubmit(document.getElementById("preview-html-button"));
  }
  function later() {
    clearTimeout(timer);
    timer = setTimeout(refreshPreview, 400);
  }
  function renumber() {
    form.querySelectorAll("#items tbody tr").forEach(function (row, index) {
      row.querySelector('input[type="number"]').value = index + 1;
    });
  }
  if (editable) {
    form.addEventListener("input", later);
    form.addEventListener("change", later);
    form.querySelectorAll("button.move").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () {
        const row = button.closest("tr");
        const other = button.dataset.move === "up" ? row.previousElementSibling
                                                   : row.nextElementSibling;
        if (!other) return;
        if (button.dataset.move === "up") other.before(row); else other.after(row);
        renumber();
        later();
        button.focus();
      });
    });
  }

  const progress = document.getElementById("progress");
  const url = progress && progress.dataset.live;
  function show(status) {
    const fields = Object.assign({}, status, {
      queued: status.pending + status.sending,
      eta: status.eta_seconds === null ? "unknown" : Math.round(status.eta_seconds) + " s",
    });
    progress.querySelectorAll("[data-field]").forEach(function (el) {
      const name = el.dataset.field;
      if (name === "bar") {
        el.max = status.total || 1;
        el.value = status.sent;
      } else if (name in fields) {
        el.textContent = fields[name];
      }
    });
    const badge = document.getElementById("issue-state");
    if (badge) badge.textContent = status.state;
  }
  async function poll() {
    try {
      const answer = await fetch(url, {headers: {"Accept": "application/json"}});
      if (answer.ok) {
        const status = await answer.json();
        show(status);
        if (status.state === "sent" || status.state === "cancelled") return;
      }
    } catch (e) { /* the server restarts: try again */ }
    setTimeout(poll, 2000);
  }
  if (url) setTimeout(poll, 1000);
})();
