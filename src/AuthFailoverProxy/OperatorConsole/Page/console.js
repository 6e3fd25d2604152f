// AuthFailoverProxy's operator console. No build step, nothing fetched from elsewhere: this file, the page and its
// style are served by the proxy itself. Everything shown comes from the management API and is written with
// textContent, never as HTML (provider messages are not ours to trust). The token is kept in this tab's
// sessionStorage only and sent as a bearer token; the live view reads the event stream with fetch, which can carry it.
'use strict';

(() => {
  const TOKEN_KEY = 'afp-console-token';
  const REFRESH_MS = 5000;
  const $ = (id) => document.getElementById(id);

  let token = sessionStorage.getItem(TOKEN_KEY) || '';
  let status = null;
  let refreshTimer = 0;
  let streamAbort = null;
  let streamRetry = 0;
  let liveRange = true; // the timeline's end is "now": events arriving are added to it
  const checks = new Map(); // "pool/key" -> the check result shown when the key was added here

  // ---------------------------------------------------------------- helpers

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === 'class') node.className = value;
      else if (name === 'text') node.textContent = value;
      else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? '' : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const number = new Intl.NumberFormat();
  const fmt = (n) => number.format(n || 0);

  function when(iso) {
    if (!iso) return '';
    const at = new Date(iso);
    const seconds = Math.round((Date.now() - at.getTime()) / 1000);
    const ago = seconds < 0 ? 'in ' + span(-seconds) : span(seconds) + ' ago';
    return `${ago} (${at.toLocaleString()})`;
  }

  function span(seconds) {
    if (seconds < 60) return `${seconds} s`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
    if (seconds < 172800) return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
    return `${Math.floor(seconds / 86400)} days`;
  }

  function say(text, isError) {
    const box = $('message');
    box.replaceChildren(text ? el('p', { class: isError ? 'error' : '', text }) : '');
  }

  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (token) headers.Authorization = 'Bearer ' + token;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let response;
    try {
      response = await fetch(path, { method, headers, cache: 'no-store', body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (error) {
      return { ok: false, status: 0, data: { error: 'the proxy could not be reached (' + error.message + ')' } };
    }
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = { error: text }; }
    return { ok: response.ok, status: response.status, data };
  }

  const errorOf = (result) => (result.data && (result.data.error || result.data.message)) || `the proxy answered ${result.status}`;

  // ---------------------------------------------------------------- status

  async function refresh() {
    const result = await api('GET', '../status');
    if (result.status === 401) {
      setOverall('locked', 'token needed');
      say('This proxy shows its state only with a token: enter the management token or an admin token above.', true);
      return;
    }
    if (!result.ok) {
      say('Could not read /status: ' + errorOf(result), true);
      return;
    }
    status = result.data;
    render();
  }

  function scheduleRefresh(delay) {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refresh, delay);
  }

  function setOverall(state, text) {
    const badge = $('overall');
    badge.dataset.status = state;
    badge.textContent = text || state;
  }

  function render() {
    setOverall(status.status);
    document.title = `${status.status} · AuthFailoverProxy`;
    $('replica').textContent = 'replica: ' + status.replica;
    const store = status.store || {};
    $('store').textContent = store.kind === 'redis'
      ? `store: Redis ${store.connected ? 'connected: key states are the deployment\u2019s' : 'unreachable (' + (store.problem || 'unreachable') + '): this replica\u2019s view'}`
      : 'store: in memory (this replica only)';
    $('updated').textContent = 'updated ' + new Date(status.time).toLocaleTimeString();
    renderPools();
    renderUsage();
    renderAlerts();
    const pools = $('add-pool');
    const chosen = pools.value;
    pools.replaceChildren(...status.pools.map((p) => el('option', { value: p.name, text: p.name })));
    if (chosen) pools.value = chosen;
  }

  function usageOf(pool, key) {
    const keys = (status.usage && status.usage.lastHour && status.usage.lastHour.keys) || [];
    return keys.find((k) => k.pool === pool && k.key === key);
  }

  function renderPools() {
    $('pools').replaceChildren(...status.pools.map((pool) => {
      const live = pool.keys.filter((k) => k.state !== 'pending').length;
      const safe = pool.safeMode;
      return el('article', { class: 'pool', 'data-pool': pool.name },
        el('header', {},
          el('h3', { text: pool.name }),
          el('span', { class: 'badge', 'data-state': pool.circuit, title: 'circuit breaker', text: 'circuit ' + pool.circuit }),
          el('span', { class: 'badge', 'data-state': pool.usableKeys === 0 ? 'dead' : pool.usableKeys < live ? 'cooling' : 'usable', text: `${pool.usableKeys} of ${live} keys usable` }),
          safe ? el('span', { class: 'badge', 'data-state': safe.active ? 'cooling' : 'closed', text: safe.active ? `safe mode: '${safe.fallback}' serves since ${new Date(safe.since).toLocaleTimeString()}` : `safe mode ready ('${safe.fallback}')` }) : null,
          el('p', { class: 'quiet', text: `${pool.kind} \u2192 ${pool.upstream} (agents: ${pool.pathPrefix}${pool.default ? ' and /' : ''})` })),
        el('div', { class: 'keys' }, pool.keys.map((key) => renderKey(pool, key))));
    }));
  }

  function renderKey(pool, key) {
    const id = pool.name + '/' + key.name;
    const spent = usageOf(pool.name, key.name);
    const error = key.lastError;
    const check = checks.get(id);
    const why = [];
    if (error && key.state !== 'usable' && key.state !== 'pending') {
      why.push(el('p', { class: 'why' }, `${error.status} ${error.type || ''}: `, el('q', { text: error.message || '(no message)' }),
        error.requestId ? el('span', { class: 'quiet' }, ' request id ', el('code', { text: error.requestId })) : null));
    }
    if (key.suspicion) {
      why.push(el('p', { class: 'why' }, 'Suspect since ' + new Date(key.suspicion.since).toLocaleTimeString() + ': ',
        el('q', { text: key.suspicion.failure.message || String(key.suspicion.failure.status) }), key.suspicion.checking ? ' (being checked)' : ''));
    }
    for (const scope of key.scopes || []) {
      why.push(el('p', { class: 'why' }, el('span', { class: 'badge', 'data-state': 'scoped', text: 'out for ' + scope.scope }),
        ` until ${new Date(scope.until).toLocaleTimeString()}: `, el('q', { text: scope.failure.message || String(scope.failure.status) })));
    }
    if (check && key.state === 'pending') {
      why.push(el('p', { class: 'why', 'data-check': check.outcome }, `Check when added: ${check.outcome}. ${check.detail}`));
    }
    const state = key.state;
    return el('div', { class: 'key', 'data-key': id, 'data-state': state },
      el('div', { class: 'line' },
        el('span', { class: 'name', text: key.name }),
        el('span', { class: 'badge', 'data-state': state, text: state }),
        el('span', { class: 'fp', text: key.fingerprint }),
        el('span', { class: 'quiet', text: (state === 'cooling' && key.until ? 'until ' + new Date(key.until).toLocaleTimeString() + ', ' : '') + 'since ' + when(key.since) })),
      why,
      key.remediation ? el('p', { class: 'remedy' }, el('strong', { text: 'To fix: ' }), key.remediation) : null,
      el('div', { class: 'facts' },
        el('span', { text: `priority ${key.priority}` }),
        el('span', { text: `${key.format}, sent as ${key.scheme}` }),
        el('span', { class: 'hide-narrow', text: 'from ' + key.source }),
        el('span', { text: spent ? `last hour: ${fmt(spent.requests)} answers, ${fmt(spent.inputTokens + spent.outputTokens)} tokens${spent.cost != null ? ', ' + spent.cost.toFixed(2) + ' ' + status.usage.currency : ''}` : 'last hour: no answers' })),
      el('div', { class: 'actions' }, actionsFor(pool, key)));
  }

  function actionsFor(pool, key) {
    const buttons = [];
    const button = (label, action, cls) => el('button', { type: 'button', class: cls, 'data-action': action, onclick: () => change(action, pool, key) }, label);
    if (key.state === 'pending') buttons.push(button('Confirm', 'confirm', 'primary'));
    else if (key.state === 'disabled') buttons.push(button('Enable', 'enable', 'primary'));
    else buttons.push(button('Disable', 'disable'));
    if (key.addedAtRuntime) buttons.push(button('Remove', 'remove', 'danger'));
    return buttons;
  }

  // ---------------------------------------------------------------- changes

  function isLastUsable(pool, key) {
    return key.state === 'usable' && pool.usableKeys <= 1;
  }

  function describe(action, pool, key) {
    const who = `'${key.name}' (${key.fingerprint}) of pool '${pool.name}'`;
    const last = isLastUsable(pool, key) && (action === 'disable' || action === 'remove')
      ? `This is pool '${pool.name}'\u2019s last usable key: agents will be refused with 503 "no usable key"` +
        (pool.safeMode ? ` unless its fallback '${pool.safeMode.fallback}' can serve` : '') + ' until another key is usable.'
      : null;
    switch (action) {
      case 'disable': return { title: 'Disable ' + key.name + '?', text: `Takes ${who} out of service until an operator enables it. Requests go to the pool\u2019s other keys. Recorded with your token\u2019s name.`, ok: last ? 'Disable anyway' : 'Disable', last };
      case 'enable': return { title: 'Enable ' + key.name + '?', text: `Puts ${who} back in service. A key that had failed is checked first; one the provider still rejects stays disabled.`, ok: 'Enable' };
      case 'confirm': return { title: 'Confirm ' + key.name + '?', text: `Puts the pending key ${who} in service, after checking it once more; one the provider rejects stays pending.`, ok: 'Confirm' };
      default: return { title: 'Remove ' + key.name + '?', text: `Removes ${who} from every replica and deletes its sealed secret from the shared store. It cannot be undone: to bring it back, add it again.`, ok: last ? 'Remove anyway' : 'Remove', last };
    }
  }

  function ask(what) {
    const dialog = $('confirm');
    $('confirm-title').textContent = what.title;
    $('confirm-text').textContent = what.text;
    const warning = $('confirm-warning');
    warning.hidden = !what.last;
    warning.textContent = what.last || '';
    $('confirm-ok').textContent = what.ok;
    dialog.returnValue = '';
    return new Promise((resolve) => {
      dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
      dialog.showModal();
      $('confirm-cancel').focus();
    });
  }

  async function change(action, pool, key) {
    const what = describe(action, pool, key);
    if (!(await ask(what))) return;
    const base = `../admin/pools/${encodeURIComponent(pool.name)}/keys/${encodeURIComponent(key.name)}`;
    const send = (force) => api(action === 'remove' ? 'DELETE' : 'POST', (action === 'remove' ? base : `${base}/${action}`) + (force ? '?force=true' : ''));
    let result = await send(!!what.last);
    if (result.status === 409 && !what.last && /force=true/.test(errorOf(result))) {
      // The proxy refused for a reason it can name (the check rejected the key, the last usable key): ask again with it.
      const again = { title: what.title, text: errorOf(result).replace(/ ?Repeat with \?force=true[^.]*\./, ''), ok: what.ok + ' anyway', last: 'The proxy advises against this.' };
      if (!(await ask(again))) { say('Nothing changed.'); return; }
      result = await send(true);
    }
    if (result.status === 401 || result.status === 403) {
      say('Not done: ' + errorOf(result) + ' Changes need an admin token.', true);
    } else if (!result.ok) {
      say('Not done: ' + errorOf(result), true);
    } else {
      say(result.data.message || 'Done.');
    }
    await refresh();
  }

  async function add(event) {
    event.preventDefault();
    const form = event.target;
    const pool = $('add-pool').value;
    const body = { name: $('add-name').value.trim(), secret: $('add-secret').value.trim() };
    const priority = $('add-priority').value;
    if (priority !== '') body.priority = Number(priority);
    // The secret leaves the page with this request and is never kept in it.
    form.reset();
    $('add-pool').value = pool;
    const result = await api('POST', `../admin/pools/${encodeURIComponent(pool)}/keys`, body);
    body.secret = '';
    const box = $('add-result');
    if (!result.ok) {
      box.replaceChildren(el('p', { class: 'warning', text: 'Not added: ' + errorOf(result) }));
      return;
    }
    const added = result.data;
    checks.set(added.pool + '/' + added.key.name, added.check);
    box.replaceChildren(
      el('p', {}, `'${added.key.name}' (${added.key.fingerprint}) is pending in pool '${added.pool}'. `,
        el('strong', { 'data-check': added.check.outcome, text: `Check: ${added.check.outcome}.` }), ' ' + added.check.detail),
      ...(added.warnings || []).map((w) => el('p', { class: 'quiet', text: w })),
      el('p', { class: 'quiet', text: 'It carries no traffic until you confirm it (the Confirm button on its row).' }));
    await refresh();
  }

  // ---------------------------------------------------------------- usage and alerts

  function renderUsage() {
    const usage = status.usage;
    if (!usage) { $('usage').replaceChildren(el('p', { class: 'quiet', text: 'No usage figures.' })); return; }
    const hour = usage.lastHour;
    const money = (f) => (f.cost != null ? f.cost.toFixed(2) : '');
    const head = (first) => el('tr', {}, el('th', { text: first }), el('th', { class: 'n', text: 'answers' }), el('th', { class: 'n', text: 'input' }),
      el('th', { class: 'n', text: 'output' }), usage.currency ? el('th', { class: 'n', text: usage.currency }) : null);
    const row = (name, f) => el('tr', {}, el('td', { text: name }), el('td', { class: 'n', text: fmt(f.requests) }), el('td', { class: 'n', text: fmt(f.inputTokens) }),
      el('td', { class: 'n', text: fmt(f.outputTokens) }), usage.currency ? el('td', { class: 'n', text: money(f) }) : null);
    const table = (caption, first, rows) => el('table', {}, el('caption', { class: 'quiet', text: caption }), el('thead', {}, head(first)),
      el('tbody', {}, rows.length ? rows : el('tr', {}, el('td', { colspan: 5, class: 'quiet', text: 'nothing yet' }))));
    const budgets = (usage.budgets || []).map((b) => {
      const parts = [['requests/min', b.requestsPerMinute], ['tokens/min', b.tokensPerMinute], ['tokens/day', b.tokensPerDay]]
        .filter(([, w]) => w).map(([name, w]) => `${fmt(w.used)} of ${fmt(w.limit)} ${name}`);
      return el('li', {}, el('strong', { text: b.client }), ': ' + parts.join(', '));
    });
    $('usage').replaceChildren(...[
      el('p', { class: 'quiet', text: (usage.scope === 'deployment' ? 'The whole deployment, from Redis.' : 'This replica\u2019s figures. ') + (usage.note ? ' ' + usage.note : '') +
        ` Total: ${fmt(hour.total.requests)} answers, ${fmt(hour.total.inputTokens + hour.total.outputTokens)} tokens` + (usage.currency && hour.total.cost != null ? `, about ${money(hour.total)} ${usage.currency}.` : '.') }),
      el('div', { class: 'tables' },
        table('By key', 'key', hour.keys.map((f) => row(f.pool + '/' + f.key, f))),
        table('By client', 'client', hour.clients.map((f) => row(f.client, f)))),
      budgets.length ? el('div', {}, el('h3', { text: 'Budgets' }), el('ul', {}, budgets)) : null].filter(Boolean));
  }

  function renderAlerts() {
    const parts = [];
    const alerts = status.alerts;
    if (alerts && alerts.channels.length) {
      parts.push(el('table', {}, el('thead', {}, el('tr', {}, el('th', { text: 'channel' }), el('th', { text: 'state' }), el('th', { text: 'last delivery' }), el('th', { class: 'hide-narrow', text: 'sent / failed' }))),
        el('tbody', {}, alerts.channels.map((c) => el('tr', {},
          el('td', { text: `${c.name} (${c.type})` }),
          el('td', {}, el('span', { class: 'badge', 'data-state': c.state === 'ok' ? 'usable' : c.state, text: c.state }), c.lastError ? el('div', { class: 'quiet', text: c.lastError.message }) : null),
          el('td', { text: c.lastDelivery ? when(c.lastDelivery) : 'none yet' }),
          el('td', { class: 'hide-narrow', text: `${c.sent} / ${c.failed}` }))))));
      parts.push(el('p', { class: 'quiet', text: `${alerts.openIncidents} problem(s) open.` }));
    } else {
      parts.push(el('p', { class: 'warning', text: 'No alert channel is configured: nobody is told out of band when a key dies. See docs/alerts.md.' }));
    }
    const beat = status.heartbeat;
    parts.push(beat
      ? el('p', {}, el('strong', { text: 'Heartbeat: ' }), beat.pausedBecause ? 'paused: ' + beat.pausedBecause
        : beat.lastPing ? `last ping ${when(beat.lastPing)}, ${beat.lastOutcome}` + (beat.consecutiveFailures ? `, ${beat.consecutiveFailures} failing in a row` : '') : 'no ping yet')
      : el('p', { class: 'quiet', text: 'No heartbeat (dead man\u2019s switch) is configured.' }));
    $('alerts').replaceChildren(...parts);
  }

  // ---------------------------------------------------------------- timeline

  function toLocalInput(date) {
    const pad = (n) => String(n).padStart(2, '0');
    return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
  }

  function eventItem(e, fresh) {
    return el('li', { 'data-severity': e.severity, 'data-kind': e.kind, class: fresh ? 'new' : '' },
      el('time', { datetime: e.at, text: new Date(e.at).toLocaleString() }),
      el('span', { class: 'badge', 'data-state': e.severity === 'info' ? 'closed' : e.severity === 'warning' ? 'cooling' : 'dead', text: e.severity }), ' ',
      el('span', { text: e.message }),
      e.remediation ? el('p', { class: 'remedy' }, el('strong', { text: 'To fix: ' }), e.remediation) : null,
      e.actor ? el('p', { class: 'remedy', text: 'by ' + e.actor + ' on ' + e.replica }) : null);
  }

  async function loadTimeline() {
    const from = $('range-from').value;
    const to = $('range-to').value;
    const since = from ? new Date(from) : new Date(Date.now() - 24 * 3600 * 1000);
    const until = to ? new Date(to) : null;
    liveRange = !until || until.getTime() >= Date.now() - 1000;
    const query = new URLSearchParams({ since: since.toISOString(), limit: '1000' });
    if (until) query.set('until', until.toISOString());
    const result = await api('GET', '../admin/events?' + query);
    const list = $('timeline');
    if (!result.ok) {
      list.replaceChildren();
      $('range-note').textContent = result.status === 401 || result.status === 403
        ? 'The story of the night needs a token: enter the management token or an admin token above.'
        : 'Could not read the events: ' + errorOf(result);
      return;
    }
    const events = result.data.events.slice().reverse();
    list.replaceChildren(...events.map((e) => eventItem(e, false)));
    $('range-note').textContent = `${result.data.count} event(s) from ${since.toLocaleString()} to ${until ? until.toLocaleString() : 'now'}, newest first` +
      (result.data.truncated ? ' (more matched: narrow the range)' : '') + (liveRange ? '; new events appear as they happen.' : '.') +
      (result.data.unresolved && result.data.unresolved.length ? ` Still open: ${result.data.unresolved.map((u) => u.incident || u).join(', ')}.` : '');
  }

  // ---------------------------------------------------------------- live events

  function setLive(on, why) {
    const live = $('live');
    live.dataset.live = on ? 'on' : 'off';
    live.textContent = on ? 'live' : 'live: off' + (why ? ' (' + why + ')' : '');
  }

  async function stream() {
    if (streamAbort) streamAbort.abort();
    const abort = new AbortController();
    streamAbort = abort;
    let retry = true;
    try {
      const headers = { Accept: 'text/event-stream' };
      if (token) headers.Authorization = 'Bearer ' + token;
      const response = await fetch('../admin/events/stream', { headers, cache: 'no-store', signal: abort.signal });
      if (!response.ok) {
        retry = response.status !== 401 && response.status !== 403;
        setLive(false, retry ? 'the proxy answered ' + response.status : 'needs a token');
      } else {
        setLive(true);
        streamRetry = 0;
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let end;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            onBlock(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
          }
        }
        setLive(false, 'reconnecting');
      }
    } catch (error) {
      if (abort.signal.aborted) return;
      setLive(false, 'reconnecting');
    }
    if (retry && !abort.signal.aborted) {
      streamRetry = Math.min(streamRetry + 1, 5);
      setTimeout(stream, 1000 * streamRetry);
    }
  }

  function onBlock(block) {
    let kind = 'message';
    let data = '';
    for (const line of block.split('\n')) {
      if (line.startsWith('event:')) kind = line.slice(6).trim();
      else if (line.startsWith('data:')) data += line.slice(5).trimStart();
    }
    if (kind !== 'proxy-event' || !data) return;
    const e = JSON.parse(data);
    if (liveRange) $('timeline').prepend(eventItem(e, true));
    // A key that died turns red now, not at the next refresh.
    scheduleRefresh(100);
  }

  // ---------------------------------------------------------------- start

  // What the proxy asks of this page before it shows anything: fetched once, without a token.
  let access = { tokenRequired: true, adminApi: true };

  // Applies a token (or none). The field is cleared by whoever took a token from it, never here: the start calls this once
  // its first request answers, which may be while a token is being typed.
  function useToken(value) {
    token = value;
    if (token) sessionStorage.setItem(TOKEN_KEY, token); else sessionStorage.removeItem(TOKEN_KEY);
    $('token').placeholder = token ? 'a token is in use (this tab only)' : 'kept in this tab only';
    say('');
    if (streamAbort) streamAbort.abort();
    if (token) {
      refresh();
      loadTimeline();
      stream();
      return;
    }
    // Without a token, ask only for what needs none: every refused call would be an error in the browser's console.
    if (access.tokenRequired) {
      setOverall('locked', 'token needed');
      say('Enter the management token or an admin token above to see this proxy\u2019s state.');
    } else {
      refresh();
    }
    setLive(false, 'needs a token');
    $('timeline').replaceChildren();
    $('range-note').textContent = access.adminApi
      ? 'The story of the night and the live view need a token: the management token or an admin token.'
      : 'The events need a token, and this proxy has none configured: set Admin:Tokens (or AFP_ADMIN_TOKEN) or Management:Token.';
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('token-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const typed = $('token').value.trim();
      $('token').value = '';
      useToken(typed);
    });
    $('forget').addEventListener('click', () => { $('token').value = ''; useToken(''); });
    $('add-form').addEventListener('submit', add);
    $('range-form').addEventListener('submit', (event) => { event.preventDefault(); loadTimeline(); });
    for (const button of document.querySelectorAll('#range-form [data-hours]')) {
      button.addEventListener('click', () => {
        $('range-from').value = toLocalInput(new Date(Date.now() - Number(button.dataset.hours) * 3600 * 1000));
        $('range-to').value = '';
        loadTimeline();
      });
    }
    const poll = () => { if (!document.hidden && (token || !access.tokenRequired)) refresh(); };
    setInterval(poll, REFRESH_MS);
    document.addEventListener('visibilitychange', poll);
    api('GET', 'access').then((result) => {
      if (result.ok) access = result.data;
      useToken(token);
    });
  });
})();
