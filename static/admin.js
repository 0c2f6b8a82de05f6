// The wxauth status page: asks for the admin token once (kept in sessionStorage, this tab only),
// polls /admin/api/status and draws it. Every value from the server goes in through textContent,
// never innerHTML: user agents and IPs in the recent-logins list are whatever clients sent.
'use strict';

(function () {
  const TOKEN_KEY = 'wxauth.adminToken';
  const STATUS_URL = 'api/status'; // relative: the page lives at /admin/
  const REFRESH_MS = 5000;
  const FETCH_TIMEOUT_MS = 8000;

  const $ = (id) => document.getElementById(id);
  let timer = null;
  let busy = false;
  let lastData = null;

  // ---- token and views ----

  function token() {
    return sessionStorage.getItem(TOKEN_KEY);
  }

  function stopPolling() {
    if (timer !== null) {
      clearInterval(timer);
      timer = null;
    }
  }

  function startPolling() {
    if (timer === null) {
      timer = setInterval(load, REFRESH_MS);
    }
  }

  function showSignin(message) {
    stopPolling();
    lastData = null;
    $('connection').hidden = true;
    $('dashboard').hidden = true;
    $('refresh').hidden = true;
    $('forget').hidden = true;
    $('signin').hidden = false;
    setBadge('unknown', 'signed out');
    $('updated').textContent = '';
    const err = $('signin-error');
    err.textContent = message || '';
    err.hidden = !message;
    const input = $('token');
    input.value = '';
    input.focus();
  }

  function showDashboard() {
    $('signin').hidden = true;
    $('dashboard').hidden = false;
    $('refresh').hidden = false;
    $('forget').hidden = false;
    startPolling();
  }

  // Also on the first load: the banner stands outside the dashboard, which stays hidden until
  // an answer arrives, and the polling that retries starts here as well.
  function connectionProblem(message) {
    const banner = $('connection');
    banner.textContent = message;
    banner.hidden = false;
    $('signin').hidden = true;
    $('refresh').hidden = false;
    $('forget').hidden = false;
    setBadge('unknown', 'no answer');
    startPolling();
  }

  function setBadge(state, text) {
    const badge = $('overall');
    badge.dataset.state = state;
    badge.textContent = text;
    document.title = 'wxauth: ' + text;
  }

  // ---- fetching ----

  async function load() {
    const t = token();
    if (!t) {
      showSignin('');
      return;
    }
    if (busy) return;
    busy = true;
    const abort = new AbortController();
    const timeout = setTimeout(() => abort.abort(), FETCH_TIMEOUT_MS);
    let res;
    try {
      res = await fetch(STATUS_URL, {
        headers: { Authorization: 'Bearer ' + t },
        cache: 'no-store',
        signal: abort.signal,
      });
    } catch (e) {
      busy = false;
      clearTimeout(timeout);
      connectionProblem(e.name === 'AbortError'
        ? 'The server did not answer within 8 s; retrying every 5 s.'
        : 'Cannot reach the server; retrying every 5 s.');
      return;
    }
    clearTimeout(timeout);
    busy = false;

    if (res.status === 401 || res.status === 403 || res.status === 404) {
      sessionStorage.removeItem(TOKEN_KEY);
      const why = {
        401: 'The server asks for an admin token (HTTP 401).',
        403: 'Wrong admin token: the server refused it (HTTP 403). Check ADMIN_TOKEN and enter it again.',
        404: 'The admin API is off on this server (HTTP 404): set ADMIN_TOKEN and restart wxauth.',
      }[res.status];
      showSignin(why);
      return;
    }
    if (!res.ok) {
      connectionProblem('The status call failed with HTTP ' + res.status + '; retrying every 5 s.');
      return;
    }
    let data;
    try {
      data = await res.json();
    } catch (e) {
      connectionProblem('The server answered something that is not JSON; retrying every 5 s.');
      return;
    }
    $('connection').hidden = true;
    lastData = data;
    showDashboard();
    render(data);
  }

  // ---- formatting ----

  function duration(totalSecs) {
    const s = Math.max(0, Math.floor(totalSecs));
    if (s < 60) return s + ' s';
    const m = Math.floor(s / 60);
    if (m < 60) return m + ' min ' + (s % 60) + ' s';
    const h = Math.floor(m / 60);
    if (h < 24) return h + ' h ' + (m % 60) + ' min';
    return Math.floor(h / 24) + ' d ' + (h % 24) + ' h';
  }

  function ago(iso) {
    if (!iso) return '–';
    return duration((Date.now() - Date.parse(iso)) / 1000) + ' ago';
  }

  function localTime(iso) {
    const d = new Date(iso);
    const sameDay = d.toDateString() === new Date().toDateString();
    const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
    return sameDay ? time : d.toLocaleDateString() + ' ' + time;
  }

  function plural(n, word) {
    return n + ' ' + word + (n === 1 ? '' : 's');
  }

  function yesNo(value) {
    if (value === null || value === undefined) return 'unknown';
    return value ? 'yes' : 'no';
  }

  function num(value) {
    return value === null || value === undefined ? '–' : String(value);
  }

  function setField(name, text, tone) {
    for (const el of document.querySelectorAll('[data-field="' + name + '"]')) {
      el.textContent = text;
      el.classList.remove('good', 'bad', 'warn');
      if (tone) el.classList.add(tone);
    }
  }

  function cell(text, className) {
    const td = document.createElement('td');
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function fillPairs(tbody, pairs, emptyText) {
    tbody.replaceChildren();
    if (pairs.length === 0) {
      const tr = document.createElement('tr');
      tr.append(cell(emptyText, 'muted'));
      tbody.append(tr);
      return;
    }
    for (const [label, value] of pairs) {
      const tr = document.createElement('tr');
      tr.append(cell(label), cell(value, 'bad'));
      tbody.append(tr);
    }
  }

  // An app's row header: the name WECHAT_APPS_FILE gives it, with the appid under it, or the
  // appid alone. Through textContent, like every value from the server.
  function appHeader(app) {
    const th = document.createElement('th');
    th.scope = 'row';
    const id = document.createElement('span');
    id.className = app.name ? 'appid mono' : 'mono';
    id.textContent = app.appid;
    if (app.name) {
      const name = document.createElement('span');
      name.textContent = app.name;
      th.append(name);
    }
    th.append(id);
    return th;
  }

  // One row per configured app: its header, then `cellsOf(app)`; or one row saying why none.
  function fillApps(table, apps, cellsOf, emptyText) {
    const tbody = table.querySelector('tbody');
    if (!Array.isArray(apps) || apps.length === 0) {
      const td = cell(emptyText, 'none');
      td.colSpan = table.querySelectorAll('thead th').length;
      const tr = document.createElement('tr');
      tr.append(td);
      tbody.replaceChildren(tr);
      return;
    }
    tbody.replaceChildren(...apps.map((app) => {
      const tr = document.createElement('tr');
      tr.dataset.appid = app.appid;
      tr.append(appHeader(app), ...cellsOf(app));
      return tr;
    }));
  }

  // ---- rendering ----

  function render(d) {
    setBadge(d.status, d.status.toUpperCase());
    $('updated').textContent = 'updated ' + localTime(d.generated_at);

    const problems = $('problem-list');
    problems.replaceChildren(...d.problems.map((p) => {
      const li = document.createElement('li');
      li.textContent = p;
      return li;
    }));
    $('problems').hidden = d.problems.length === 0;

    setField('up', yesNo(d.up), d.up ? 'good' : 'bad');
    setField('ready', yesNo(d.ready), d.ready ? 'good' : 'bad');
    setField('version', d.version);
    setField('mode', d.mode === 'dev' ? 'dev (fake WeChat)' : d.mode, d.mode === 'dev' ? 'warn' : '');
    setField('uptime', duration(d.uptime_secs));
    setField('started', localTime(d.started_at));

    const db = d.database;
    setField('db-reachable', yesNo(db.reachable), db.reachable ? 'good' : 'bad');
    setField('db-migrations',
      db.migrations_applied === null ? 'unknown'
        : db.migrations_applied ? 'all applied' : 'pending: ' + db.pending_migrations.join(', '),
      db.migrations_applied ? 'good' : 'bad');
    setField('db-latency', db.latency_ms === null ? '–' : db.latency_ms.toFixed(1) + ' ms');
    setField('db-pool', db.pool.in_use + ' of ' + db.pool.max + ' (' + db.pool.idle + ' idle)');
    const meter = $('pool-meter');
    const share = db.pool.max > 0 ? db.pool.in_use / db.pool.max : 0;
    meter.style.width = Math.round(share * 100) + '%';
    meter.className = share >= 1 ? 'full' : share >= 0.75 ? 'high' : '';
    setField('db-pending', db.login_log_pending_writes + ' queued', db.login_log_pending_writes > 100 ? 'warn' : '');
    setField('db-error', db.error ? 'Error: ' + db.error : '');
    renderListener(d.listener);

    renderAdmission(d.admission);
    renderWeChat(d.wechat, d.errcodes || {}, new Set(d.user_side_errcodes || []));
    $('sessions-live').textContent = num(d.sessions.live);
    renderLogins(d.logins, d.errnos || {});
    // Older servers do not send it; a failed count is null.
    setField('accounts-merged', d.accounts_merged === undefined || d.accounts_merged === null
      ? 'unknown' : String(d.accounts_merged));
    // Older servers do not send `deletions`; a failed count is null.
    const del = d.deletions;
    setField('deletions-pending', del ? num(del.pending) : 'unknown');
    setField('deletions-completed', del ? num(del.completed) : 'unknown');
    renderPending(d.pending_review);
    // Older servers do not send `reminders`; a failed count is null.
    const rem = d.reminders;
    for (const k of ['sent', 'refused', 'failed', 'waiting']) {
      const text = !rem ? 'unknown' : !rem.enabled ? 'off' : rem.counts ? num(rem.counts[k]) : 'unknown';
      setField('reminders-' + k, text, k === 'failed' && rem && rem.counts && rem.counts.failed > 0 ? 'warn' : '');
    }
  }

  // Meetings WeChat's content check held back, each with approve and reject.
  function renderPending(pending) {
    const tbody = $('pending').querySelector('tbody');
    const empty = $('pending-empty');
    if (!Array.isArray(pending)) {
      tbody.replaceChildren();
      empty.textContent = pending === undefined ? 'Not reported by this server.' : 'Database unavailable.';
      empty.hidden = false;
      return;
    }
    tbody.replaceChildren(...pending.map((m) => {
      const tr = document.createElement('tr');
      const actions = document.createElement('td');
      for (const [decision, label] of [['approve', 'Approve'], ['reject', 'Reject']]) {
        const button = document.createElement('button');
        button.type = 'button';
        button.textContent = label;
        button.dataset.decision = decision;
        button.addEventListener('click', () => decide(m.id, decision, button));
        actions.append(button);
      }
      tr.append(
        cell(String(m.id)),
        cell(m.title),
        cell(m.content, 'ua'),
        cell(m.location),
        cell(localTime(m.start_time)),
        cell(m.publisher_nickname + ' (' + m.publisher_id + ')'),
        actions,
      );
      return tr;
    }));
    empty.textContent = 'No meeting is waiting for a review.';
    empty.hidden = pending.length > 0;
  }

  async function decide(id, decision, button) {
    const t = token();
    const error = $('pending-error');
    if (!t) return;
    button.disabled = true;
    let res;
    try {
      res = await fetch('meetings/' + encodeURIComponent(id) + '/' + decision, {
        method: 'POST',
        headers: { Authorization: 'Bearer ' + t },
        cache: 'no-store',
      });
    } catch (e) {
      res = null;
    }
    if (!res || !res.ok) {
      error.textContent = 'Could not ' + decision + ' meeting ' + id + (res ? ' (HTTP ' + res.status + ')' : '') + '.';
      error.hidden = false;
      button.disabled = false;
      return;
    }
    error.hidden = true;
    load();
  }

  // The NOTIFY listener that carries revocations from other instances. While it is not proven
  // alive every token check goes to the database: correct, but slower.
  function renderListener(l) {
    if (!l) {
      setField('db-listener', 'unknown');
      return;
    }
    const heard = l.last_heartbeat_ms_ago === null ? 'no heartbeat heard yet'
      : 'heartbeat ' + (l.last_heartbeat_ms_ago / 1000).toFixed(1) + ' s ago';
    const replaced = l.replacements > 0 ? ', ' + plural(l.replacements, 'connection') + ' replaced' : '';
    const text = {
      ok: 'ok',
      stale: 'stale: sessions checked in the database',
      down: 'down: sessions checked in the database',
    }[l.state] || l.state;
    setField('db-listener', text + ' (' + heard + replaced + ')', l.state === 'ok' ? 'good' : 'warn');
  }

  function renderAdmission(a) {
    const line = (s) => s.in_flight + ' of ' + s.limit + ' in progress, ' + s.queued + ' waiting';
    setField('adm-logins', line(a.logins), a.logins.queued > 0 ? 'warn' : '');
    setField('adm-reads', line(a.reads), a.reads.queued > 0 ? 'warn' : '');
    const refused = a.refused.login + a.refused.read + a.refused.wechat;
    setField('adm-refused',
      refused + ' (login ' + a.refused.login + ', read ' + a.refused.read + ', WeChat ' + a.refused.wechat + ')',
      refused > 0 ? 'warn' : '');
  }

  // From the server (older servers send neither): `errcodes`, what each errcode label means;
  // `userSide`, those about the user or the code, not WeChat's health: shown apart, never red.
  function renderWeChat(w, errcodes, userSide) {
    if (!w) {
      for (const f of ['wx-last', 'wx-outcome', 'wx-latency', 'wx-hour', 'wx-rate', 'wx-token-age']) setField(f, 'unknown');
      fillPairs($('wx-errors'), [], 'no answer from the WeChat client');
      fillApps($('wx-apps'), [], null, 'no answer from the WeChat client');
      return;
    }
    // Older servers send one app's numbers and no split.
    fillApps($('wx-apps'), w.by_app, (a) => {
      if (!a.answered) {
        const td = cell('no answer', 'warn');
        td.colSpan = 3;
        return [td];
      }
      return [
        cell(String(a.last_hour.calls)),
        cell(String(a.last_hour_faults), a.last_hour_faults > 0 ? 'bad' : ''),
        cell(String(a.last_hour_user_errors)),
      ];
    }, 'not reported by this server');
    if (w.last_call_at) {
      const ok = w.last_outcome === 'ok';
      const outcome = ok ? 'ok' : w.last_outcome + (errcodes[w.last_outcome] ? ' ' + errcodes[w.last_outcome] : '');
      setField('wx-last', ago(w.last_call_at));
      // A user's bad or used code is WeChat answering correctly: not red.
      setField('wx-outcome', outcome, ok ? 'good' : userSide.has(w.last_outcome) ? '' : 'bad');
    } else {
      setField('wx-last', 'no calls yet');
      setField('wx-outcome', '–');
    }
    setField('wx-latency', w.last_latency_ms === null ? '–' : w.last_latency_ms === 0 ? '< 1 ms' : w.last_latency_ms + ' ms');
    // Older servers send no split: all their errors count as faults.
    const faults = w.last_hour_faults === undefined ? w.last_hour.errors : w.last_hour_faults;
    const userErrors = w.last_hour_user_errors || 0;
    setField('wx-hour', plural(w.last_hour.calls, 'call') + ', ' + plural(faults, 'WeChat fault') +
      ', ' + plural(userErrors, 'bad user code'));
    const rate = w.last_hour_fault_rate === undefined ? w.last_hour.error_rate : w.last_hour_fault_rate;
    setField('wx-rate', rate === null ? '–' : (rate * 100).toFixed(1) + ' %',
      rate === null ? '' : rate >= 0.2 ? 'bad' : rate > 0 ? 'warn' : 'good');
    setField('wx-token-age', w.access_token_age_secs === null ? 'not used yet' : 'age ' + duration(w.access_token_age_secs));

    const codes = new Set([...Object.keys(w.last_hour.errors_by_errcode), ...Object.keys(w.errors_by_errcode)]);
    const pairs = [...codes].sort().map((code) => [
      code + (errcodes[code] ? ' ' + errcodes[code] : '') + (userSide.has(code) ? ' (user)' : ''),
      (w.last_hour.errors_by_errcode[code] || 0) + ' / ' + (w.errors_by_errcode[code] || 0),
    ]);
    fillPairs($('wx-errors'), pairs, 'no errors');
  }

  // `errnos`: each errno's label, from the server (older servers send none).
  function renderLogins(l, errnos) {
    const ids = ['logins-minute-ok', 'logins-minute-fail', 'logins-hour-ok', 'logins-hour-fail'];
    if (!l) {
      for (const id of ids) $(id).textContent = '–';
      fillApps($('login-apps'), [], null, 'database unavailable');
      fillPairs($('login-errnos'), [], 'database unavailable');
      $('recent').querySelector('tbody').replaceChildren();
      $('recent-empty').hidden = false;
      $('recent-empty').textContent = 'Database unavailable.';
      drawChart([]);
      return;
    }
    $('logins-minute-ok').textContent = l.last_minute.success;
    $('logins-minute-fail').textContent = l.last_minute.failure;
    $('logins-hour-ok').textContent = l.last_hour.success;
    $('logins-hour-fail').textContent = l.last_hour.failure;
    fillApps($('login-apps'), l.by_app, (a) => [
      cell(String(a.success), 'good'),
      cell(String(a.failure), a.failure > 0 ? 'bad' : ''),
    ], 'not reported by this server');
    const pairs = Object.entries(l.last_hour.failure_by_errno).map(([errno, n]) => [
      errno + (errnos[errno] ? ' ' + errnos[errno] : ''), String(n),
    ]);
    fillPairs($('login-errnos'), pairs, 'no failures');

    const tbody = $('recent').querySelector('tbody');
    tbody.replaceChildren(...l.recent.map((r) => {
      const tr = document.createElement('tr');
      const ok = r.errno === 0;
      const outcome = ok ? 'ok' : r.errno + ' ' + (errnos[r.errno] || '');
      const time = cell(localTime(r.time));
      time.title = r.time;
      const user = cell(r.user_id === null ? '–' : String(r.user_id));
      user.dataset.label = 'user';
      tr.append(
        time,
        cell(outcome, ok ? 'good' : 'bad'),
        user,
        cell(r.openid || '–', 'mono'),
        cell(r.ip || '–', 'mono'),
        cell(r.user_agent || '–', 'ua'),
      );
      return tr;
    }));
    $('recent-empty').textContent = 'No logins recorded yet.';
    $('recent-empty').hidden = l.recent.length > 0;
    drawChart(l.per_minute);
  }

  // ---- chart: stacked bars per minute, drawn on a canvas at the screen's pixel density ----

  function drawChart(perMinute) {
    const canvas = $('chart');
    const css = getComputedStyle(document.documentElement);
    const color = (name) => css.getPropertyValue(name).trim();
    const dpr = window.devicePixelRatio || 1;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    if (width === 0 || height === 0) return;
    canvas.width = Math.round(width * dpr);
    canvas.height = Math.round(height * dpr);
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    ctx.font = '11px system-ui, sans-serif';

    const left = 30;
    const bottom = 18;
    const top = 6;
    const plotW = width - left - 4;
    const plotH = height - bottom - top;
    const totals = perMinute.map((m) => m.success + m.failure);
    const peak = Math.max(0, ...totals);
    const yMax = peak <= 4 ? 4 : niceCeil(peak);

    ctx.strokeStyle = color('--line');
    ctx.fillStyle = color('--muted');
    ctx.lineWidth = 1;
    ctx.textBaseline = 'middle';
    ctx.textAlign = 'right';
    for (const v of [0, yMax / 2, yMax]) {
      const y = Math.round(top + plotH - (v / yMax) * plotH) + 0.5;
      ctx.beginPath();
      ctx.moveTo(left, y);
      ctx.lineTo(left + plotW, y);
      ctx.stroke();
      ctx.fillText(String(v), left - 5, y);
    }
    ctx.textBaseline = 'alphabetic';
    const n = perMinute.length || 60;
    const labelY = height - 4;
    ctx.textAlign = 'left';
    ctx.fillText('−' + n + ' min', left, labelY);
    ctx.textAlign = 'center';
    ctx.fillText('−' + n / 2 + ' min', left + plotW / 2, labelY);
    ctx.textAlign = 'right';
    ctx.fillText('now', left + plotW, labelY);

    const slot = plotW / n;
    const barW = Math.max(1, slot - (slot > 4 ? 2 : 1));
    perMinute.forEach((m, i) => {
      const x = left + i * slot + (slot - barW) / 2;
      const okH = (m.success / yMax) * plotH;
      const failH = (m.failure / yMax) * plotH;
      const base = top + plotH;
      ctx.fillStyle = color('--good');
      ctx.fillRect(x, base - okH, barW, okH);
      ctx.fillStyle = color('--bad');
      ctx.fillRect(x, base - okH - failH, barW, failH);
    });

    if (peak === 0) {
      ctx.fillStyle = color('--muted');
      ctx.textAlign = 'center';
      ctx.textBaseline = 'middle';
      ctx.fillText(perMinute.length ? 'no logins in the last hour' : 'no data', left + plotW / 2, top + plotH / 2);
    }
    const ok = perMinute.reduce((a, m) => a + m.success, 0);
    const failed = perMinute.reduce((a, m) => a + m.failure, 0);
    canvas.setAttribute('aria-label',
      'Logins per minute over the last hour: ' + ok + ' successful, ' + failed + ' failed in total');
  }

  function niceCeil(v) {
    const magnitude = Math.pow(10, Math.floor(Math.log10(v)));
    for (const step of [1, 2, 2.5, 5, 10]) {
      if (step * magnitude >= v) return step * magnitude;
    }
    return 10 * magnitude;
  }

  // ---- wiring ----

  // The dev-mode banner's link carries the token in the fragment (`/admin/#token=...`), which a
  // browser never sends to a server: taken into this tab's storage like a typed one, then
  // removed from the address bar and the history entry, so it is not shown, bookmarked or shared.
  function tokenFromFragment() {
    const match = /^#token=([^&]+)/.exec(location.hash);
    if (!match) return;
    history.replaceState(null, '', location.pathname + location.search);
    let value = '';
    try {
      value = decodeURIComponent(match[1]).trim();
    } catch (e) {
      return;
    }
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
  }

  document.addEventListener('DOMContentLoaded', () => {
    tokenFromFragment();
    $('token-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const value = $('token').value.trim();
      if (!value) return;
      sessionStorage.setItem(TOKEN_KEY, value);
      $('signin-error').hidden = true;
      load();
    });
    $('forget').addEventListener('click', () => {
      sessionStorage.removeItem(TOKEN_KEY);
      showSignin('');
    });
    $('refresh').addEventListener('click', load);
    let resizeTimer = null;
    window.addEventListener('resize', () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => {
        if (lastData && lastData.logins) drawChart(lastData.logins.per_minute);
      }, 100);
    });
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden && token()) load();
    });
    if (token()) {
      load();
    } else {
      showSignin('');
    }
  });
})();
