// Vigil dashboard script: sign-in, live updates over the event stream
// (GET /api/v1/events), local times, and the forms that call the API.
// No inline script anywhere (the pages' CSP forbids it); no dependencies.
"use strict";

(function () {
  const csrf = () => (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  // api calls the JSON API with the session cookie and the CSRF header.
  async function api(method, path, body) {
    const opts = { method, headers: { "X-CSRF-Token": csrf() }, credentials: "same-origin" };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    const res = await fetch(path, opts);
    let data = null;
    const text = await res.text();
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = { raw: text }; }
    if (!res.ok) {
      const msg = data && data.error ? data.error.message : res.status + " " + res.statusText;
      const e = new Error(msg);
      e.data = data;
      throw e;
    }
    return data;
  }

  // Times: every <time datetime> is shown in the viewer's time zone;
  // those marked data-ago also say how long ago.
  function ago(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return s + " s ago";
    const m = Math.round(s / 60);
    if (m < 60) return m + " min ago";
    const h = Math.round(m / 60);
    if (h < 48) return h + " h ago";
    return Math.round(h / 24) + " d ago";
  }
  // when writes a time without ambiguity in the viewer's time zone:
  // "7 Dec 10:05" (24-hour clock, month in letters), with the year when it
  // is not this year's.
  const months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  function when(d) {
    const pad = (n) => String(n).padStart(2, "0");
    let s = d.getDate() + " " + months[d.getMonth()];
    if (d.getFullYear() !== new Date().getFullYear()) s += " " + d.getFullYear();
    return s + " " + pad(d.getHours()) + ":" + pad(d.getMinutes());
  }
  const isoInText = /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})/;
  const isoInTextAll = new RegExp(isoInText.source, "g");
  function localTimes(root) {
    (root || document).querySelectorAll("time[datetime]").forEach((el) => {
      const d = new Date(el.getAttribute("datetime"));
      if (isNaN(d)) return;
      const local = when(d);
      if (el.hasAttribute("data-ago")) {
        el.textContent = local + " (" + ago(Date.now() - d.getTime()) + ")";
      } else {
        el.textContent = local;
      }
      el.title = d.toString();
    });
    // Times inside alert texts (written by the rules engine in UTC, ISO
    // 8601) are shown like every other time.
    (root || document).querySelectorAll(".message, .events li, li.alert strong").forEach((el) => {
      for (const n of el.childNodes) {
        if (n.nodeType !== Node.TEXT_NODE || !isoInText.test(n.data)) continue;
        n.data = n.data.replace(isoInTextAll, (m) => { const d = new Date(m); return isNaN(d) ? m : when(d); });
      }
    });
    // Chart time ticks: hours, or dates, in the viewer's time zone.
    (root || document).querySelectorAll("tspan[data-tick]").forEach((el) => {
      const d = new Date(el.dataset.tick);
      if (isNaN(d)) return;
      const full = when(d);
      el.textContent = el.dataset.day === "true" ? full.replace(/ \d{2}:\d{2}$/, "") : full.slice(full.lastIndexOf(" ") + 1);
    });
  }

  // show puts a vital as the server renders it (ev.vitals: the value in
  // people's units, its NEWS2 band as a class and in words) into el's
  // .value and .unit; the band is never computed here.
  function show(el, v) {
    const val = el.querySelector(".value");
    val.textContent = v.text;
    val.className = (val.classList.contains("score") ? "value score" : "value") + (v.class ? " " + v.class : "");
    val.title = v.title || "";
    const unit = el.querySelector(".unit");
    if (unit) { unit.textContent = v.unit; unit.title = "UCUM: " + v.ucum; }
    const words = el.querySelector(".band-text, .sr-only");
    if (words) words.textContent = v.title ? (words.classList.contains("sr-only") ? " (" + v.title + ")" : v.title) : "";
  }

  function vitalsOf(ev) {
    const out = {};
    for (const v of ev.vitals || []) out[v.key] = v;
    return out;
  }

  function mark(el) {
    el.classList.add("updated");
    el.dataset.updatedAt = String(Date.now());
    setTimeout(() => el.classList.remove("updated"), 1500);
  }

  // stream opens the event stream and hands events to the handlers.
  function stream(handlers) {
    const live = document.getElementById("live");
    const es = new EventSource("/api/v1/events");
    es.onopen = () => { if (live) live.textContent = "● live"; };
    es.onerror = () => { if (live) live.textContent = "○ reconnecting…"; };
    for (const [type, fn] of Object.entries(handlers)) {
      es.addEventListener(type, (e) => { try { fn(JSON.parse(e.data)); } catch (err) { console.error(err); } });
    }
    return es;
  }

  // coalesce runs fn at most once per ms milliseconds however often it is
  // asked (alert events may come in bursts; one reload of the rows serves all).
  function coalesce(fn, ms) {
    let timer = null;
    return () => {
      if (timer) return;
      timer = setTimeout(() => { timer = null; fn(); }, ms);
    };
  }

  // refresh replaces the content of target with the page's fragment.
  async function refresh(target) {
    const url = new URL(location.href);
    url.searchParams.set("fragment", "1");
    const res = await fetch(url, { credentials: "same-origin" });
    if (!res.ok) return;
    target.innerHTML = await res.text();
    localTimes(target);
    wire(target);
  }

  // Worklist: readings update their row in place; rows are re-ordered by
  // risk; alert changes reload the rows (alerts are rare).
  function worklist() {
    const body = document.getElementById("worklist-rows");
    const sort = () => {
      const rows = Array.from(body.querySelectorAll("tr.row"));
      rows.sort((a, b) =>
        (+b.dataset.rank - +a.dataset.rank) ||
        (+(b.dataset.unread || 0) - +(a.dataset.unread || 0)) ||
        (+b.dataset.news2 - +a.dataset.news2) ||
        ((a.dataset.last || "") < (b.dataset.last || "") ? -1 : (a.dataset.last || "") > (b.dataset.last || "") ? 1 : 0) ||
        a.dataset.name.localeCompare(b.dataset.name));
      rows.forEach((r) => body.appendChild(r));
    };
    stream({
      reading: (ev) => {
        const row = body.querySelector('tr[data-patient="' + CSS.escape(ev.patient_id) + '"]');
        if (!row) return;
        const vs = vitalsOf(ev);
        for (const [key, v] of Object.entries(vs)) {
          if (key === "news2") {
            const cell = row.querySelector("td.news2");
            cell.innerHTML = '<span class="value score"></span> <span class="sr-only"></span>';
            show(cell, v);
            row.dataset.news2 = String(v.value);
            if (v.incomplete) {
              const f = document.createElement("span");
              f.className = "flag incomplete"; f.textContent = "incomplete"; f.title = "incomplete: at least this score";
              cell.append(" ", f);
            }
            mark(cell);
            continue;
          }
          let el = row.querySelector('.vital[data-vital="' + key + '"]');
          if (!el) {
            el = document.createElement("span");
            el.className = "vital"; el.dataset.vital = key;
            el.innerHTML = '<span class="label"></span> <span class="value"></span> <abbr class="unit"></abbr><span class="sr-only"></span>';
            el.querySelector(".label").textContent = v.label;
            row.querySelector("td.vitals").appendChild(el);
          }
          show(el, v);
          mark(el);
          if (!row.dataset.last || v.time > row.dataset.last) {
            row.dataset.last = v.time;
            row.querySelector("td.last").innerHTML = '<time data-ago></time>';
            row.querySelector("td.last time").setAttribute("datetime", v.time);
            localTimes(row);
          }
        }
        sort();
      },
      alert: coalesce(() => refresh(body), 500),
      "message.created": coalesce(() => refresh(body), 500),
    });
  }

  // Patient page: readings update the tiles; alert changes reload the timeline.
  function patient() {
    const head = document.querySelector(".patient-head");
    const id = head.dataset.patient;
    const tiles = document.getElementById("tiles");
    stream({
      reading: (ev) => {
        if (ev.patient_id !== id) return;
        for (const [key, v] of Object.entries(vitalsOf(ev))) {
          let t = tiles.querySelector('.tile[data-vital="' + key + '"]');
          if (!t) {
            const empty = tiles.querySelector(".tile.empty");
            if (empty) empty.remove();
            t = document.createElement("li");
            t.className = "tile"; t.dataset.vital = key;
            t.innerHTML = '<span class="label"></span> <span class="value"></span> <abbr class="unit"></abbr> <span class="band-text"></span><time data-ago></time>';
            t.querySelector(".label").textContent = v.label;
            tiles.appendChild(t);
          }
          show(t, v);
          t.querySelector("time").setAttribute("datetime", v.time);
          localTimes(t);
          mark(t);
        }
      },
      "message.created": (ev) => {
        const h = document.getElementById("messages-h");
        if (ev.patient_id !== id || !h || h.querySelector(".badge")) return;
        const b = document.createElement("a");
        b.className = "badge unread"; b.href = location.pathname + "#messages"; b.textContent = "new message: reload";
        b.addEventListener("click", () => location.reload());
        h.append(" ", b);
      },
      alert: async (ev) => {
        if (ev.patient_id !== id) return;
        const res = await fetch(location.href, { credentials: "same-origin" });
        if (!res.ok) return;
        const doc = new DOMParser().parseFromString(await res.text(), "text/html");
        const fresh = doc.querySelector(".timeline");
        const cur = document.querySelector(".timeline");
        if (fresh && cur) { cur.replaceWith(fresh); localTimes(fresh); }
      },
    });
  }

  function alerts() {
    const box = document.getElementById("inbox");
    stream({ alert: coalesce(() => refresh(box), 500), "message.created": coalesce(() => refresh(box), 500) });
  }

  // wire attaches the handlers of forms and buttons under root.
  function wire(root) {
    root.querySelectorAll("form.alert-actions").forEach((f) => {
      f.addEventListener("submit", async (e) => {
        e.preventDefault();
        const action = e.submitter ? e.submitter.value : "ack";
        const note = f.elements.note.value.trim();
        const err = f.querySelector(".form-error");
        err.textContent = "";
        if (action === "resolve" && !note) { err.textContent = "Resolving needs a note."; f.elements.note.focus(); return; }
        const body = { note };
        if (action === "snooze") body.minutes = parseInt(f.elements.minutes.value, 10);
        try {
          await api("POST", "/api/v1/alerts/" + encodeURIComponent(f.dataset.alert) + "/" + action, body);
          const box = document.getElementById("inbox");
          if (box) await refresh(box);
        } catch (x) { err.textContent = x.message; }
      });
    });
  }

  function observation() {
    const f = document.getElementById("observation-form");
    if (!f) return;
    const kind = f.elements.kind, level = f.elements.acvpu, value = f.elements.value;
    const toggle = () => {
      const acvpu = kind.value.endsWith("|acvpu");
      level.disabled = !acvpu; value.disabled = acvpu;
      level.parentNode.querySelector('label[for="obs-acvpu"]').hidden = !acvpu; level.hidden = !acvpu;
      f.querySelector('label[for="obs-value"]').hidden = acvpu; value.hidden = acvpu;
    };
    kind.addEventListener("change", toggle); toggle();
    f.addEventListener("submit", async (e) => {
      e.preventDefault();
      const [code, unit, special] = kind.value.split("|");
      const v = special === "acvpu" ? parseInt(level.value, 10) : parseFloat(value.value);
      const err = f.querySelector(".form-error");
      err.textContent = "";
      if (isNaN(v)) { err.textContent = "Enter a value."; value.focus(); return; }
      try {
        await api("POST", "/api/v1/patients/" + encodeURIComponent(f.dataset.patient) + "/observations",
          { readings: [{ code, value: v, unit, time: new Date().toISOString() }] });
        err.textContent = "Recorded.";
        value.value = "";
      } catch (x) { err.textContent = x.message; }
    });
  }

  // monitoringTime: the patient page's timer (start, stop) and manual
  // time entries, through the API; the page is shown again after each.
  function monitoringTime() {
    const sec = document.getElementById("monitoring-time");
    if (!sec) return;
    const base = "/api/v1/patients/" + encodeURIComponent(sec.dataset.patient) + "/time-entries";
    const err = document.getElementById("time-error");
    const call = async (path, body) => {
      err.textContent = "";
      try { await api("POST", path, body); location.reload(); } catch (x) { err.textContent = x.message; }
    };
    const start = document.getElementById("timer-form");
    if (start) start.addEventListener("submit", (e) => { e.preventDefault(); call(base, { kind: start.elements.kind.value, timer: true }); });
    const stop = document.getElementById("timer-stop");
    if (stop) stop.addEventListener("click", () => call(base + "/" + encodeURIComponent(stop.dataset.entry) + "/stop"));
    const manual = document.getElementById("time-form");
    if (manual) manual.addEventListener("submit", (e) => {
      e.preventDefault();
      const at = new Date(manual.elements.start.value);
      const min = parseInt(manual.elements.minutes.value, 10);
      if (isNaN(at.getTime()) || isNaN(min)) { err.textContent = "Enter the minutes and when the time began."; return; }
      call(base, { kind: manual.elements.kind.value, minutes: min, start: at.toISOString() });
    });
  }

  // consents: the patient's own view grants and withdraws consents
  // through the API, then shows the page again.
  function consents() {
    const table = document.getElementById("consents");
    const f = document.getElementById("consent-form");
    if (!table || !f) return;
    const err = f.querySelector(".form-error");
    const set = async (purpose, grantee, status) => {
      err.textContent = "";
      try {
        await api("PUT", "/api/v1/patients/" + encodeURIComponent(table.dataset.patient) + "/consents", { purpose, grantee, status });
        location.reload();
      } catch (x) { err.textContent = x.message; }
    };
    table.querySelectorAll("button.consent-set").forEach((b) => {
      b.addEventListener("click", () => set(b.dataset.purpose, b.dataset.grantee, b.dataset.status));
    });
    f.addEventListener("submit", (e) => {
      e.preventDefault();
      const purpose = e.submitter ? e.submitter.value : "sharing";
      set(purpose, purpose === "sharing" ? f.elements.grantee.value : "", "active");
    });
  }

  // messages: the patient page's threads. Opening one reads it through
  // the API (audited, marks it read); replies and new threads are posted
  // there too. A new message of this patient reloads the list.
  function messages() {
    const sec = document.getElementById("messages");
    if (!sec) return;
    const base = "/api/v1/patients/" + encodeURIComponent(sec.dataset.patient) + "/threads";
    const open = async (li) => {
      const list = li.querySelector("ol.messages");
      const data = await api("GET", base + "/" + encodeURIComponent(li.dataset.thread));
      list.textContent = "";
      for (const m of data.messages) {
        const item = document.createElement("li");
        item.className = "message from-" + m.author_role;
        const head = document.createElement("p");
        head.className = "meta";
        const t = document.createElement("time");
        t.setAttribute("datetime", m.sent); t.dataset.ago = "";
        head.append(m.author_role === "patient" ? "Patient" : "Care team", " · ", t);
        const body = document.createElement("p");
        body.className = "body"; body.textContent = m.body;
        item.append(head, body);
        list.appendChild(item);
      }
      list.hidden = false;
      li.querySelector("form.reply").hidden = false;
      const badge = li.querySelector(".badge.unread");
      if (badge) badge.remove();
      localTimes(li);
    };
    sec.querySelectorAll("li.thread").forEach((li) => {
      li.querySelector("button.thread-open").addEventListener("click", () => open(li).catch(console.error));
      const f = li.querySelector("form.reply");
      f.addEventListener("submit", async (e) => {
        e.preventDefault();
        const err = f.querySelector(".form-error");
        err.textContent = "";
        try {
          await api("POST", base + "/" + encodeURIComponent(li.dataset.thread) + "/messages", { body: f.elements.body.value });
          f.reset();
          await open(li);
        } catch (x) { err.textContent = x.message; }
      });
    });
    const nf = document.getElementById("thread-form");
    nf.addEventListener("submit", async (e) => {
      e.preventDefault();
      const err = nf.querySelector(".form-error");
      err.textContent = "";
      try {
        await api("POST", base, { topic: nf.elements.topic.value, body: nf.elements.body.value });
        location.reload();
      } catch (x) { err.textContent = x.message; }
    });
  }

  // televisits: Join asks the API for the link (audited) and opens it.
  function televisits() {
    const sec = document.getElementById("televisits");
    if (!sec) return;
    sec.querySelectorAll("button.join").forEach((b) => {
      b.addEventListener("click", async () => {
        const err = b.parentElement.querySelector(".form-error");
        err.textContent = "";
        try {
          const data = await api("GET", "/api/v1/patients/" + encodeURIComponent(sec.dataset.patient) + "/appointments/" + encodeURIComponent(b.dataset.appointment) + "/join");
          window.open(data.url, "_blank", "noopener");
        } catch (x) { err.textContent = x.message; }
      });
    });
  }

  function admin() {
    const result = document.getElementById("admin-result");
    document.querySelectorAll("form.api-form").forEach((f) => {
      f.addEventListener("submit", async (e) => {
        e.preventDefault();
        let path = f.dataset.path;
        const body = {};
        for (const el of f.elements) {
          if (!el.name || el.value === "") continue;
          if (path.includes("{" + el.name + "}")) path = path.replace("{" + el.name + "}", encodeURIComponent(el.value));
          else body[el.name] = el.value;
        }
        try {
          const out = await api(f.dataset.method, path, f.dataset.method === "PUT" ? undefined : body);
          if (f.dataset.show === "token" && out && out.token) {
            document.getElementById("token-value").textContent = out.token;
            document.getElementById("token-once").hidden = false;
            document.getElementById("token-done").focus();
            return;
          }
          location.reload();
        } catch (x) { result.textContent = "Failed: " + x.message; result.focus(); }
      });
    });
    const done = document.getElementById("token-done");
    if (done) done.addEventListener("click", () => { document.getElementById("token-value").textContent = ""; location.reload(); });
    document.querySelectorAll("button.api-button").forEach((b) => {
      b.addEventListener("click", async () => {
        if (b.dataset.confirm && !confirm(b.dataset.confirm)) return;
        try {
          const out = await api(b.dataset.method, b.dataset.path);
          if (b.dataset.report) {
            result.textContent = out.error ? "Replayed: still refused – " + out.error.message : "Replayed: " + out.accepted + " reading(s) accepted.";
            return;
          }
          location.reload();
        } catch (x) { result.textContent = "Failed: " + x.message; }
      });
    });
  }

  // The quarantine console: replay the items shown through a template,
  // dry run or for real, and list what became of each.
  function quarantine() {
    admin();
    const f = document.getElementById("replay-form");
    if (!f) return;
    const result = document.getElementById("admin-result");
    const report = document.getElementById("replay-report");
    f.addEventListener("submit", async (e) => {
      e.preventDefault();
      const dry = e.submitter && e.submitter.value === "1";
      const ids = JSON.parse(f.dataset.ids || "[]");
      const name = f.elements.template.value;
      if (!name || ids.length === 0) return;
      report.textContent = "";
      try {
        const out = await api("POST", "/api/v1/mappings/" + encodeURIComponent(name) + "/replay", { ids, dry_run: dry });
        let stored = 0, refused = 0;
        for (const it of out.items) {
          const li = document.createElement("li");
          const what = it.error ? "not replayed: " + it.error
            : (it.already ? "already replayed through this version: " : "") + it.accepted + " stored, " + it.rejected.length + " refused" +
              (it.rejected.length ? " (" + it.rejected[0].reason + ")" : "");
          li.textContent = it.item_id + ": " + what;
          report.appendChild(li);
          stored += it.accepted; refused += it.rejected.length;
        }
        result.textContent = (dry ? "Dry run through " : "Replayed through ") + out.template + " version " + out.version + ": " +
          stored + " reading(s) " + (dry ? "would be stored" : "stored") + ", " + refused + " refused.";
        result.focus();
      } catch (x) { result.textContent = "Failed: " + x.message; result.focus(); }
    });
  }

  function signin() {
    const f = document.getElementById("signin-form");
    f.addEventListener("submit", async (e) => {
      e.preventDefault();
      const err = document.getElementById("signin-error");
      err.textContent = "";
      try {
        await api("POST", "/api/v1/auth/session", { username: f.elements.username.value, password: f.elements.password.value, code: f.elements.code.value });
        location.assign(f.dataset.next || "/");
      } catch (x) {
        err.textContent = x.message;
        const enr = x.data && x.data.totp_enrolment;
        if (enr) {
          document.getElementById("signin-enrol-uri").textContent = enr.otpauth_uri;
          document.getElementById("signin-enrol-codes").textContent = enr.recovery_codes.join("\n");
          document.getElementById("signin-enrol").hidden = false;
        }
      }
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    localTimes(document);
    setInterval(() => localTimes(document), 30000);
    const out = document.getElementById("signout");
    if (out) out.addEventListener("click", async () => {
      // Then the provider's logout, if the session came from one (else the sign-in page).
      try { await api("DELETE", "/api/v1/auth/session"); } finally { location.assign("/auth/oidc/logout"); }
    });
    const page = document.body.dataset.page;
    wire(document);
    if (page === "signin") signin();
    if (page === "worklist") worklist();
    if (page === "patient") { patient(); observation(); consents(); monitoringTime(); messages(); televisits(); }
    if (page === "report") { const b = document.getElementById("print-report"); if (b) b.addEventListener("click", () => window.print()); }
    if (page === "alerts") alerts();
    if (page === "admin") admin();
    if (page === "quarantine") quarantine();
  });
})();
