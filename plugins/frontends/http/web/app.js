/* tunebench participant app: one page, several views, driven by the JSON API of
 * docs/http-contract.md. Plain JS, no build step. Every request sends the
 * X-Tunebench header (the server's CSRF check) with same-origin credentials
 * (the HttpOnly session cookie). Live updates come from /api/events (SSE); when
 * the stream breaks the page polls every 2 s and retries the stream. Everything
 * shown is rebuilt from the server's state, so a reload or a server restart
 * loses nothing. Server strings are always set as text, never as HTML. */
'use strict';
(() => {
  const { $, h, api, fmtClock, fmtPct } = window.tb; // common.js
  const POLL_MS = 2000;
  const LOBBY_MS = 2000;
  const OTHER = '__other__';
  const BATCH_H = 150, EPOCH_H = 170; // chart heights: the run panel fits a 768-pixel-high screen

  const S = {
    study: null,
    me: null,
    runs: [],              // history, oldest first
    runsById: new Map(),
    liveId: '',            // the run queued or training
    shownId: '',           // the run the charts show
    curves: new Map(),     // run_id -> {bx, by, ex, el, evl, eva, bpe}
    charts: null,
    view: '',
    es: null, sseDelay: 1000, sseTimer: 0,
    pollTimer: 0, polling: false,
    lobbyTimer: 0,
    clock: { left: 0, at: 0 },
    secret: null,
    historyTimer: 0,
    curveBusy: new Set(),
    entering: false,
  };
  const wantActive = {
    get: () => sessionStorage.getItem('tb_want_active') === '1',
    set: (v) => { if (v) sessionStorage.setItem('tb_want_active', '1'); else sessionStorage.removeItem('tb_want_active'); },
  };

  /* ---- formatting ------------------------------------------------------------------------- */

  function fmtMinutes(s) {
    if (!isFinite(s)) return '–';
    const m = Math.round(s / 60);
    if (m >= 120 && m % 60 === 0) return `${m / 60} hours`;
    return m === 1 ? '1 minute' : `${m} minutes`;
  }
  const fmtLoss = (x) => (x === null || x === undefined || !isFinite(x)) ? '–' : (Math.abs(x) >= 100 ? x.toFixed(0) : x.toPrecision(4));
  const num = (x) => (x === null || x === undefined || !isFinite(x)) ? null : x;

  const STATUS_TEXT = {
    queued: 'queued', training: 'training', finished: 'finished', cancelled: 'cancelled',
    diverged: 'diverged', interrupted: 'interrupted', rejected: 'rejected',
  };
  const isLive = (r) => r && (r.status === 'queued' || r.status === 'training');

  /* ---- views ------------------------------------------------------------------------------ */

  function show(view) {
    if (S.view === view) return;
    S.view = view;
    for (const el of document.querySelectorAll('main > .view')) el.hidden = el.id !== `view-${view}`;
    const heading = document.querySelector(`#view-${view} h2`);
    // Move the keyboard focus to the new page (not on the first load).
    if (heading && document.body.dataset.ready) { heading.tabIndex = -1; heading.focus({ preventScroll: false }); }
    document.body.dataset.ready = '1';
    document.body.dataset.view = view;
    if (view === 'tune') { ensureCharts(); resizeCharts(); }
    updateLobbyTimer();
  }

  function setError(id, err) {
    const el = $(id);
    if (!el) return;
    if (!err) { el.hidden = true; el.textContent = ''; return; }
    el.textContent = typeof err === 'string' ? err : err.message;
    el.hidden = false;
  }

  function setConn(text) {
    S.offline = !!text;
    const el = $('conn');
    el.textContent = text || '';
    el.hidden = !text;
  }

  /* ---- boot ------------------------------------------------------------------------------- */

  async function boot() {
    wireForms();
    for (;;) {
      try {
        S.study = await api('GET', '/api/study');
        break;
      } catch (e) {
        $('loading-msg').textContent = `${e.message} Retrying…`;
        await sleep(2000);
      }
    }
    renderStudy();
    let me = null;
    try {
      me = await api('GET', '/api/me');
    } catch (e) {
      if (e.status !== 401 && e.status !== 404) { $('loading-msg').textContent = e.message; }
    }
    if (me) await loggedIn(me);
    else show('welcome');
    setInterval(tickClock, 250);
    window.addEventListener('resize', resizeCharts);
  }
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  function renderStudy() {
    const st = S.study;
    document.title = st.title ? `${st.title} — tuning study` : 'Tuning study';
    $('study-title').textContent = st.title || 'Tuning study';
    $('briefing').textContent = st.briefing || '';
    $('budget-text').textContent = fmtMinutes(st.budget_s);
    const sel = $('reg-education');
    for (const lvl of st.education_levels || [])
      sel.append(h('option', { value: lvl, text: EDUCATION_TEXT[lvl] || lvl.replace(/_/g, ' ') }));
    $('admitting-note').hidden = st.admitting !== false;
    $('register-btn').disabled = st.admitting === false;
    buildHpForm();
  }
  const EDUCATION_TEXT = {
    high_school: 'High school', bachelor: 'Bachelor', master_enrolled: 'Enrolled in a master',
    master: 'Master', doctorate: 'Doctorate',
  };

  async function loggedIn(me) {
    applyMe(me);
    startLive();
    await loadHistory();
    if (S.me && S.me.live_run) await showRun(S.me.live_run, true);
    else if (!S.shownId) {
      const last = [...S.runs].reverse().find((r) => r.run_id);
      if (last) await showRun(last.run_id, false);
    }
  }

  function loggedOut() {
    stopLive();
    S.me = null; S.runs = []; S.runsById.clear(); S.liveId = ''; S.shownId = ''; S.curves.clear();
    wantActive.set(false);
    try { sessionStorage.removeItem('tb_form'); } catch (e) { /* ignore */ }
    $('top-status').hidden = true;
    renderHistory();
    renderLive();
    show('welcome');
  }

  /* ---- registration, resume, consent, enter, pause --------------------------------------- */

  function wireForms() {
    $('register-form').addEventListener('submit', onRegister);
    $('resume-form').addEventListener('submit', onResume);
    $('secret-ok').addEventListener('change', () => { $('secret-continue').disabled = !$('secret-ok').checked; });
    $('secret-copy').addEventListener('click', async () => {
      try { await navigator.clipboard.writeText($('secret-value').textContent); $('secret-copy').textContent = 'Copied'; }
      catch (e) { selectText($('secret-value')); }
    });
    $('secret-continue').addEventListener('click', () => {
      S.secret = null;
      $('secret-value').textContent = '';
      S.view = 'leaving-secret'; // applyMe may switch views again
      enter();
    });
    $('start-btn').addEventListener('click', () => enter());
    $('logout-btn').addEventListener('click', logout);
    $('lobby-leave').addEventListener('click', pause);
    $('pause-btn').addEventListener('click', pause);
    $('hp-form').addEventListener('submit', onSubmit);
    $('hp-reset').addEventListener('click', () => clearHpForm());
    $('cancel-btn').addEventListener('click', onCancel);
    $('finish-open').addEventListener('click', () => openFinish(''));
    $('finish-cancel').addEventListener('click', () => $('finish-dialog').close());
    $('finish-confirm').addEventListener('click', onFinish);
    $('finish-run').addEventListener('change', () => { document.querySelector('input[name=final][value=pick]').checked = true; });
  }

  function selectText(el) {
    const r = document.createRange(); r.selectNodeContents(el);
    const sel = getSelection(); sel.removeAllRanges(); sel.addRange(r);
  }

  function clearFieldErrors(form) {
    for (const el of form.querySelectorAll('[aria-invalid=true]')) el.removeAttribute('aria-invalid');
    for (const el of form.querySelectorAll('.field-error')) el.remove();
  }
  function fieldError(form, name, message) {
    const input = form.querySelector(`[name="${CSS.escape(name)}"]`);
    if (!input) return false;
    input.setAttribute('aria-invalid', 'true');
    const wrap = input.closest('.field') || input.parentElement;
    const id = `err-${form.id}-${name}`;
    wrap.append(h('p', { class: 'field-error', id, text: message }));
    input.setAttribute('aria-describedby', id);
    input.focus();
    return true;
  }

  async function onRegister(ev) {
    ev.preventDefault();
    const f = ev.target;
    clearFieldErrors(f);
    setError('register-error', null);
    const edu = $('reg-education').value;
    const dl = $('reg-dl').value.trim();
    if (!edu) return fieldError(f, 'education', 'Please choose your highest education.');
    if (dl === '' || !(Number(dl) >= 0)) return fieldError(f, 'dl_months', 'Please give a number of months (0 if none).');
    if (!$('reg-consent').checked) return fieldError(f, 'consent', 'Please confirm that you agree to take part.');
    const body = { education: edu, dl_months: Number(dl) };
    const id = $('reg-id').value.trim();
    if (id) body.id = id;
    const prog = $('reg-prog').value.trim(), ml = $('reg-ml').value.trim();
    if (prog !== '') body.programming_months = Number(prog);
    if (ml !== '') body.ml_months = Number(ml);
    const lvl = f.querySelector('input[name=self_level]:checked');
    if (lvl && lvl.value) body.self_level = Number(lvl.value);
    $('register-btn').disabled = true;
    try {
      const reg = await api('POST', '/api/register', body);
      const me = await api('POST', '/api/consent');
      S.secret = reg.secret;
      $('secret-id').textContent = reg.id;
      $('secret-value').textContent = reg.secret;
      $('secret-ok').checked = false;
      $('secret-continue').disabled = true;
      applyMe(me, { stay: true });
      show('secret');
      startLive();
      loadHistory();
    } catch (e) {
      if (!(e.field && fieldError(f, e.field, e.message))) setError('register-error', e);
    } finally {
      $('register-btn').disabled = S.study.admitting === false;
    }
  }

  async function onResume(ev) {
    ev.preventDefault();
    const f = ev.target;
    clearFieldErrors(f);
    setError('resume-error', null);
    const id = $('resume-id').value.trim(), secret = $('resume-secret').value.trim();
    if (!id) return fieldError(f, 'id', 'Please enter your pseudonym.');
    if (!secret) return fieldError(f, 'secret', 'Please enter your secret.');
    $('resume-btn').disabled = true;
    try {
      const me = await api('POST', '/api/login', { id, secret });
      $('resume-secret').value = '';
      await loggedIn(me);
    } catch (e) {
      setError('resume-error', e.status === 401 || e.status === 404 ? 'This pseudonym and secret do not match. Check both and try again.' : e);
    } finally {
      $('resume-btn').disabled = false;
    }
  }

  async function enter() {
    setError('start-error', null);
    if (S.entering) return;
    S.entering = true;
    try {
      if (S.me && S.me.state === 'registered') await api('POST', '/api/consent');
      wantActive.set(true);
      const me = await api('POST', '/api/enter');
      applyMe(me);
    } catch (e) {
      if (S.view === 'tune') setError('tune-error', e);
      else setError('start-error', e);
      if (S.view !== 'tune' && S.view !== 'lobby') show('start');
    } finally {
      S.entering = false;
    }
  }

  async function pause() {
    setError('tune-error', null);
    // Cleared before asking: the stream may bring the paused state before the answer does, and with
    // wantActive still set applyMe would take it for a server restart and enter again.
    const wanted = wantActive.get();
    wantActive.set(false);
    try {
      applyMe(await api('POST', '/api/pause'));
    } catch (e) {
      wantActive.set(wanted);
      setError(S.view === 'lobby' ? 'lobby-error' : 'tune-error', e);
    }
  }

  async function logout() {
    try { await api('POST', '/api/logout'); } catch (e) { /* the cookie is cleared on our side anyway */ }
    loggedOut();
  }

  function updateLobbyTimer() {
    const inLobby = S.view === 'lobby';
    if (inLobby && !S.lobbyTimer) {
      // The study keeps a place in the lobby only while the page keeps asking.
      S.lobbyTimer = setInterval(async () => {
        if (S.me && S.me.state === 'lobby') {
          try { applyMe(await api('POST', '/api/enter')); setError('lobby-error', null); }
          catch (e) { setError('lobby-error', e); }
        }
      }, LOBBY_MS);
    } else if (!inLobby && S.lobbyTimer) {
      clearInterval(S.lobbyTimer);
      S.lobbyTimer = 0;
    }
  }

  /* ---- the participant's state ------------------------------------------------------------ */

  function applyMe(me, opt = {}) {
    if (!me || !me.id) return;
    const prev = S.me;
    S.me = me;
    S.clock.left = Number(me.left_s) || 0;
    S.clock.at = performance.now();
    $('top-status').hidden = false;
    $('top-id').textContent = me.id;
    $('clock-box').hidden = me.state === 'done'; // no time left to count once tuning has ended
    tickClock();

    // the live run
    const live = me.live_run || '';
    if (live !== S.liveId) {
      const ended = S.liveId;
      S.liveId = live;
      if (live) showRun(live, true);
      if (ended) refreshRun(ended);
      renderLiveButtons();
    }
    if (!prev || prev.submissions !== me.submissions || prev.best_run !== me.best_run || prev.final_run !== me.final_run)
      scheduleHistory();

    if (opt.stay || S.view === 'secret') return; // the secret stays until the participant goes on
    switch (me.state) {
      case 'registered':
      case 'consented':
      case 'paused':
        if (wantActive.get() && !S.entering && me.state !== 'registered') {
          // We were working when the clock stopped without a pause: the server restarted. Carry on.
          enter();
          return;
        }
        renderStart();
        show('start');
        break;
      case 'lobby':
        $('lobby-pos').textContent = me.lobby_position || '–';
        show('lobby');
        break;
      case 'active':
        show('tune');
        break;
      case 'done':
        wantActive.set(false);
        renderDone();
        show('done');
        break;
      default:
        renderStart();
        show('start');
    }
    if (S.view === 'tune') renderTuneBits();
  }

  function renderStart() {
    const me = S.me;
    const first = !me.submissions && me.used_s < 1;
    $('h-start').textContent = me.state === 'registered' ? 'Please confirm' : first ? 'Ready to start' : 'Paused';
    $('start-text').textContent = me.state === 'registered'
      ? 'You have registered but not yet agreed to take part. Press the button to agree and start.'
      : first ? 'Your clock starts when you press "Start tuning".'
        : 'Your clock is stopped. Press "Continue tuning" when you are ready.';
    $('start-btn').textContent = me.state === 'registered' ? 'I agree, start tuning' : first ? 'Start tuning' : 'Continue tuning';
    $('start-left').textContent = fmtClock(me.left_s);
  }

  function clockTicking() {
    const me = S.me;
    if (!me || me.state !== 'active' || S.offline) return false; // the server's clock stops when it is gone
    const live = S.liveId && S.runsById.get(S.liveId);
    return !(live && live.status === 'queued'); // queued time is given back
  }

  function tickClock() {
    const me = S.me;
    if (!me) return;
    const ticking = clockTicking();
    let left = S.clock.left;
    if (ticking) left -= (performance.now() - S.clock.at) / 1000;
    left = Math.max(0, left);
    $('clock').textContent = fmtClock(left);
    $('clock-box').classList.toggle('low', left < 300);
    const live = S.liveId && S.runsById.get(S.liveId);
    $('clock-state').textContent = me.state === 'done' ? '(finished)'
      : S.offline ? '(waiting for the server)'
      : ticking ? '(running)' : live && live.status === 'queued' && me.state === 'active' ? '(stopped while queued)' : '(stopped)';
    $('clock-box').setAttribute('aria-label', `Time left ${fmtClock(left)}, clock ${ticking ? 'running' : 'stopped'}`);
  }

  function renderTuneBits() {
    const me = S.me;
    if (!me) return;
    const best = me.best_run && S.runsById.get(me.best_run);
    $('best-text').textContent = best ? `Best so far: try #${best.number}, ${fmtPct(me.best_val_accuracy)} validation accuracy` : '';
    renderLiveButtons();
  }

  function renderLiveButtons() {
    const live = !!S.liveId;
    $('submit-btn').disabled = live;
    $('submit-hint').textContent = live ? 'You can submit the next configuration when this run ends, or after you cancel it.' : '';
    $('pause-btn').disabled = live;
    $('pause-btn').title = live ? 'Cancel the run or let it end before you take a break.' : '';
  }

  /* ---- the hyperparameter form ------------------------------------------------------------ */

  function buildHpForm() {
    const box = $('hp-fields');
    box.textContent = '';
    const hps = [...(S.study.hparams || [])].sort((a, b) => a.index - b.index);
    const comments = S.study.comments || [];
    let lastMandatory = null;
    for (const hp of hps) {
      if (hp.mandatory !== lastMandatory) {
        box.append(h('p', { class: 'hp-sep', text: hp.mandatory ? 'Required: choose a value' : 'Optional: empty keeps the preset' }));
        lastMandatory = hp.mandatory;
      }
      const id = `hp-${hp.name}`;
      const meta = [hp.allowed];
      if (hp.preset !== undefined && hp.preset !== null && hp.preset !== '') meta.push(`preset ${hp.preset}`);
      const readers = hp.readers || [];
      let input;
      if (hp.type === 'choice') {
        input = h('select', { id, name: hp.name, 'aria-describedby': `${id}-meta` },
          h('option', { value: '', text: hp.mandatory ? '— choose —' : `(preset: ${hp.preset})` }),
          (hp.choices || []).map((c) => h('option', { value: c, text: c })));
      } else {
        input = h('input', {
          id, name: hp.name, type: 'text', inputmode: hp.type === 'int' ? 'numeric' : 'decimal', autocomplete: 'off',
          spellcheck: 'false', 'aria-describedby': `${id}-meta`,
          placeholder: hp.mandatory ? (hp.type === 'int' ? 'a whole number' : 'a number') : `preset ${hp.preset}`,
        });
      }
      const csel = h('select', { id: `hpc-${hp.name}`, name: `comment:${hp.name}`, 'aria-label': `Why this value for ${hp.name}? (optional)` },
        h('option', { value: '', text: 'No comment' }),
        comments.map((c) => h('option', { value: c, text: c })),
        h('option', { value: OTHER, text: 'Other (write your own)…' }));
      const other = h('input', {
        id: `hpo-${hp.name}`, name: `other:${hp.name}`, type: 'text', maxlength: 250, hidden: true,
        'aria-label': `Your comment on ${hp.name}`, placeholder: 'Your comment',
      });
      csel.addEventListener('change', () => { other.hidden = csel.value !== OTHER; if (!other.hidden) other.focus(); });
      const row = h('div', { class: 'hp', id: `row-${hp.name}`, 'data-name': hp.name },
        h('div', { class: 'hp-name' },
          h('label', { for: id }, hp.name,
            h('span', { class: `badge ${hp.mandatory ? 'must' : 'optional'}`, text: hp.mandatory ? 'required' : 'optional' })),
          h('span', { class: 'hp-meta', id: `${id}-meta` }, meta.join(' · '),
            readers.length ? h('span', { class: 'readers' }, ` · used by ${readers.join(', ')}`) : null,
            h('span', { class: 'unused', id: `${id}-unused`, hidden: true }))),
        h('div', { class: 'hp-value' }, input),
        h('div', { class: 'hp-comment' }, csel, other));
      input.addEventListener('input', () => { clearHpError(hp.name); saveHpForm(); });
      csel.addEventListener('change', saveHpForm);
      other.addEventListener('input', saveHpForm);
      input.addEventListener('change', () => { clearHpError(hp.name); if (hp.name === 'optimizer') markReaders(); });
      box.append(row);
    }
    restoreHpForm();
    markReaders();
  }

  /* What the participant typed survives a reload (this tab only). */
  function saveHpForm() {
    const saved = {};
    for (const hp of S.study.hparams || [])
      saved[hp.name] = [$(`hp-${hp.name}`).value, $(`hpc-${hp.name}`).value, $(`hpo-${hp.name}`).value];
    try { sessionStorage.setItem('tb_form', JSON.stringify(saved)); } catch (e) { /* private mode */ }
  }
  function restoreHpForm() {
    let saved = null;
    try { saved = JSON.parse(sessionStorage.getItem('tb_form') || 'null'); } catch (e) { saved = null; }
    if (!saved) return;
    for (const hp of S.study.hparams || []) {
      const v = saved[hp.name];
      if (!Array.isArray(v)) continue;
      const input = $(`hp-${hp.name}`), csel = $(`hpc-${hp.name}`), other = $(`hpo-${hp.name}`);
      input.value = v[0] || '';
      if (input.tagName === 'SELECT' && input.value !== (v[0] || '')) input.value = '';
      csel.value = v[1] || '';
      if (csel.value !== (v[1] || '')) csel.value = '';
      other.value = v[2] || '';
      other.hidden = csel.value !== OTHER;
    }
  }

  /* Optional hyperparameters the chosen optimizer does not read get a note. */
  function markReaders() {
    const opt = $('hp-optimizer') ? $('hp-optimizer').value : '';
    for (const hp of S.study.hparams || []) {
      const note = $(`hp-${hp.name}-unused`);
      if (!note) continue;
      const readers = hp.readers || [];
      const unused = opt && readers.length && !readers.includes(opt);
      note.hidden = !unused;
      note.textContent = unused ? ` · ${opt} ignores it` : '';
      $(`row-${hp.name}`).classList.toggle('unused-row', !!unused);
    }
  }

  function clearHpError(name) {
    const row = $(`row-${name}`);
    if (!row) return;
    row.classList.remove('bad');
    const input = $(`hp-${name}`);
    input.removeAttribute('aria-invalid');
    input.setAttribute('aria-describedby', `hp-${name}-meta`);
    const err = row.querySelector('.field-error');
    if (err) err.remove();
  }

  function showHpError(name, message) {
    const row = $(`row-${name}`);
    if (!row) return false;
    clearHpError(name);
    row.classList.add('bad');
    const input = $(`hp-${name}`);
    input.setAttribute('aria-invalid', 'true');
    input.setAttribute('aria-describedby', `hp-${name}-err hp-${name}-meta`);
    row.append(h('p', { class: 'field-error', id: `hp-${name}-err`, text: message }));
    input.focus();
    row.scrollIntoView({ block: 'nearest' });
    return true;
  }

  function clearHpForm() {
    for (const hp of S.study.hparams || []) {
      $(`hp-${hp.name}`).value = '';
      $(`hpc-${hp.name}`).value = '';
      $(`hpo-${hp.name}`).value = '';
      $(`hpo-${hp.name}`).hidden = true;
      clearHpError(hp.name);
    }
    setError('submit-error', null);
    setError('submit-note', null);
    markReaders();
    saveHpForm();
  }

  /* Fills the form with a try's values (the ones the participant set) and comments. */
  function fillHpForm(run) {
    clearHpForm();
    const comments = S.study.comments || [];
    for (const hp of S.study.hparams || []) {
      const given = run.given ? run.given[hp.name] : true;
      const v = run.values ? run.values[hp.name] : undefined;
      if (given && v !== undefined && v !== null) $(`hp-${hp.name}`).value = String(v);
      const c = run.comments ? run.comments[hp.name] : '';
      if (c) {
        if (comments.includes(c)) $(`hpc-${hp.name}`).value = c;
        else { $(`hpc-${hp.name}`).value = OTHER; $(`hpo-${hp.name}`).value = c; $(`hpo-${hp.name}`).hidden = false; }
      }
    }
    markReaders();
    saveHpForm();
    const first = $('hp-fields').querySelector('input, select');
    if (first) first.focus();
  }

  async function onSubmit(ev) {
    ev.preventDefault();
    setError('submit-error', null);
    setError('submit-note', null);
    setError('tune-error', null);
    const values = {}, comments = {};
    for (const hp of S.study.hparams || []) {
      clearHpError(hp.name);
      const v = $(`hp-${hp.name}`).value.trim();
      if (v !== '') values[hp.name] = v;
      const c = $(`hpc-${hp.name}`).value;
      const text = c === OTHER ? $(`hpo-${hp.name}`).value.trim() : c;
      if (text) comments[hp.name] = text;
    }
    const btn = $('submit-btn');
    btn.disabled = true;
    try {
      const ans = await api('POST', '/api/runs', { values, comments });
      const run = ans && ans.run;
      if (ans && ans.note) { $('submit-note').textContent = `Note: ${ans.note}`; $('submit-note').hidden = false; }
      if (run && run.run_id) {
        storeRun(run);
        S.liveId = run.run_id;
        await showRun(run.run_id, true);
      }
      scheduleHistory(0);
      refreshMe();
    } catch (e) {
      if (e.status === 422 || (e.status === 400 && e.field)) {
        if (!(e.field && showHpError(e.field, e.message))) setError('submit-error', e);
        scheduleHistory(0);
      } else {
        setError('submit-error', e);
      }
    } finally {
      renderLiveButtons();
    }
  }

  async function onCancel() {
    const id = S.liveId || S.shownId;
    if (!id) return;
    $('cancel-btn').disabled = true;
    try {
      const run = await api('POST', `/api/runs/${encodeURIComponent(id)}/cancel`);
      if (run) applyRun(run);
      refreshMe();
    } catch (e) {
      setError('tune-error', e);
    } finally {
      $('cancel-btn').disabled = false;
    }
  }

  /* ---- runs and history ------------------------------------------------------------------- */

  function storeRun(run) {
    if (!run || !run.run_id) return;
    S.runsById.set(run.run_id, run);
    const i = S.runs.findIndex((r) => r.run_id === run.run_id);
    if (i >= 0) S.runs[i] = run;
  }

  async function loadHistory() {
    if (!S.me) return;
    try {
      const ans = await api('GET', '/api/runs');
      S.runs = (ans && ans.runs) || [];
      for (const r of S.runs) if (r.run_id) {
        const known = S.runsById.get(r.run_id);
        // keep a fresher live snapshot than the list's
        if (!(known && isLive(known) && isLive(r) && (known.epoch > r.epoch || (known.epoch === r.epoch && known.batch > r.batch))))
          S.runsById.set(r.run_id, r);
      }
      renderHistory();
      renderTuneBits();
      if (S.view === 'done') renderDone();
    } catch (e) {
      if (e.status === 401) loggedOut();
    }
  }
  function scheduleHistory(ms = 150) {
    clearTimeout(S.historyTimer);
    S.historyTimer = setTimeout(loadHistory, ms);
  }

  async function refreshRun(id) {
    try { applyRun(await api('GET', `/api/runs/${encodeURIComponent(id)}`)); } catch (e) { /* shown by the next update */ }
    scheduleHistory();
  }
  async function refreshMe() {
    try { applyMe(await api('GET', '/api/me')); } catch (e) { if (e.status === 401) loggedOut(); }
  }

  function applyRun(run) {
    if (!run || !run.run_id) return;
    const prev = S.runsById.get(run.run_id);
    storeRun(run);
    if (run.run_id === S.shownId) renderLive();
    updateHistoryRow(run);
    if (!prev || prev.status !== run.status) {
      scheduleHistory();
      if (!isLive(run) && run.run_id === S.liveId) refreshMe();
      if (prev && isLive(prev) && !isLive(run) && run.run_id === S.shownId) fetchCurve(run.run_id, true);
    }
    tickClock();
  }

  /* The progress cells of a live try's row, without rebuilding the table (focus stays put). */
  function updateHistoryRow(r) {
    const tr = document.querySelector(`#history-body tr[data-run="${CSS.escape(r.run_id)}"]`);
    if (!tr) return;
    tr.cells[2].textContent = fmtPct(r.val_accuracy);
    tr.cells[3].textContent = `${r.epoch ?? 0} of ${r.epochs ?? '?'}`;
    tr.cells[4].textContent = r.seconds ? fmtClock(r.seconds) : '–';
  }

  function renderHistory() {
    const body = $('history-body');
    const focused = document.activeElement && document.activeElement.dataset && document.activeElement.dataset.key;
    body.textContent = '';
    if (!S.runs.length) {
      body.append(h('tr', {}, h('td', { colspan: 7, class: 'muted', text: 'No tries yet. Your submitted configurations appear here.' })));
      return;
    }
    const bestId = S.me && S.me.best_run;
    const hps = [...(S.study.hparams || [])].sort((a, b) => a.index - b.index);
    for (const r of [...S.runs].reverse()) {
      const vals = [];
      for (const hp of hps) {
        if (r.given && !r.given[hp.name] && r.status !== 'rejected') continue;
        const v = r.values ? r.values[hp.name] : '';
        if (v === undefined || v === null || v === '') continue;
        const c = r.comments && r.comments[hp.name];
        vals.push(h('span', {}, `${hp.name} `, h('b', { text: v }), c ? h('span', { class: 'cm', text: ` “${c}”` }) : null));
      }
      const all = h('div', { class: 'all' });
      for (const hp of hps) {
        const v = r.values ? r.values[hp.name] : '';
        const preset = r.given && !r.given[hp.name];
        all.append(h('span', { text: hp.name }), h('span', {}, v === undefined ? '' : String(v), preset ? h('span', { class: 'muted', text: ' (preset)' }) : null));
      }
      const key = r.run_id || `n${r.number}`;
      const actions = h('div', { class: 'actions' });
      actions.append(h('button', { type: 'button', class: 'small', 'data-key': `use-${key}`, text: 'Use these values',
        'aria-label': `Copy the values of try ${r.number} into the form`, onclick: () => fillHpForm(r) }));
      if (r.run_id && r.status !== 'rejected')
        actions.append(h('button', { type: 'button', class: 'small', 'data-key': `show-${key}`, text: 'Show curves',
          'aria-label': `Show the curves of try ${r.number}`, onclick: () => showRun(r.run_id, false, true) }));
      if (r.status === 'finished' && S.me && S.me.state === 'active')
        actions.append(h('button', { type: 'button', class: 'small finish', 'data-key': `final-${key}`, text: 'Choose as final…',
          'aria-label': `Choose try ${r.number} as the final configuration`, onclick: () => openFinish(r.run_id) }));
      const isBest = bestId && r.run_id === bestId;
      const epochs = r.status === 'rejected' ? '–' : `${r.epoch ?? 0} of ${r.epochs ?? '?'}`;
      body.append(h('tr', { class: isBest ? 'best' : null, 'data-run': r.run_id || '' },
        h('td', { class: 'num', text: r.number }),
        h('td', {}, h('span', { class: `status st-${r.status}`, text: STATUS_TEXT[r.status] || r.status }),
          isBest ? h('div', { class: 'msg', text: 'your best' }) : null),
        h('td', { class: 'num', text: fmtPct(r.val_accuracy) }),
        h('td', { class: 'num', text: epochs }),
        h('td', { class: 'num', text: r.seconds ? fmtClock(r.seconds) : '–' }),
        h('td', {}, h('div', { class: 'vals' }, vals.length ? vals : h('span', { class: 'muted', text: 'only presets' })),
          r.message ? h('div', { class: 'msg', text: r.message }) : null,
          h('details', {}, h('summary', { text: 'All 15 values' }), all)),
        h('td', {}, actions)));
    }
    if (focused) {
      const el = body.querySelector(`[data-key="${CSS.escape(focused)}"]`);
      if (el) el.focus();
    }
  }

  /* ---- the live run panel and its charts -------------------------------------------------- */

  async function showRun(id, live, focus) {
    if (!id) return;
    const changed = S.shownId !== id;
    S.shownId = id;
    if (!S.curves.has(id)) S.curves.set(id, { bx: [], by: [], ex: [], el: [], evl: [], eva: [], bpe: 0 });
    if (changed) drawCharts();
    renderLive();
    if (!S.runsById.get(id) || live) {
      try { applyRun(await api('GET', `/api/runs/${encodeURIComponent(id)}`)); } catch (e) { /* next update */ }
    }
    await fetchCurve(id, true);
    if (focus) $('live').scrollIntoView({ block: 'nearest' });
  }

  function renderLive() {
    const run = S.shownId && S.runsById.get(S.shownId);
    const st = $('live-status');
    st.className = 'live-status';
    $('cancel-btn').hidden = !(run && isLive(run));
    if (!run) {
      $('h-live').textContent = 'Training';
      st.textContent = S.shownId ? 'Loading…' : 'No run yet. Submit a configuration to start training.';
      $('live-progress').hidden = true;
      return;
    }
    $('h-live').textContent = `Try #${run.number}`;
    const E = run.epochs || 0, B = run.batches_per_epoch || 0;
    const time = fmtClock(run.seconds || 0);
    if (run.status === 'queued') {
      st.classList.add('queued');
      st.textContent = run.queue_position
        ? `Queued: number ${run.queue_position} in line for a computer. Waiting time is not counted.`
        : 'Queued: it starts in a moment. Waiting time is not counted.';
      $('live-progress').hidden = true;
    } else if (run.status === 'training') {
      const ep = Math.min(E, (run.epoch || 0) + 1);
      st.textContent = `Training: epoch ${ep} of ${E}` + (B ? `, batch ${run.batch || 0} of ${B}` : '') + ` · ${time}` +
        (num(run.batch_loss) !== null ? ` · batch loss ${fmtLoss(run.batch_loss)}` : '');
      $('live-progress').hidden = false;
    } else {
      st.classList.add('ended');
      const acc = num(run.val_accuracy) !== null ? `, validation accuracy ${fmtPct(run.val_accuracy)}` : '';
      const what = {
        finished: `Finished after ${run.epoch} epoch${run.epoch === 1 ? '' : 's'}${acc} (${time}).`,
        cancelled: `Cancelled after ${run.epoch || 0} of ${E} epochs${acc} (${time}).`,
        diverged: `Diverged: the loss became infinite or not a number${run.epoch ? ` after ${run.epoch} epochs` : ''}. Try a smaller learning rate.`,
        interrupted: `Interrupted${run.message ? `: ${run.message}` : ''}. This time is not counted.`,
        rejected: `Rejected: ${run.message || ''}`,
      }[run.status] || run.status;
      st.textContent = what;
      $('live-progress').hidden = run.status === 'rejected';
    }
    const done = (run.epoch || 0) + (B ? (run.batch || 0) / B : 0);
    $('prog-epoch').max = Math.max(1, E);
    $('prog-epoch').value = Math.min(E, run.status === 'finished' ? E : done);
    $('prog-epoch-label').textContent = `Epochs done: ${run.epoch || 0} of ${E}`;
    $('prog-batch').max = Math.max(1, B);
    $('prog-batch').value = run.status === 'training' ? (run.batch || 0) : (run.status === 'finished' ? B : 0);
    $('prog-batch-label').textContent = `Batch ${run.batch || 0} of ${B}`;
    $('prog-batch').parentElement.hidden = !(run.status === 'training' && B);
  }

  /* Appends curve points newer than the ones held (by x), so repeated or overlapping answers are harmless. */
  function mergeCurve(c, data) {
    let gap = false;
    const b = data.batch || {}, e = data.epoch || {};
    if (data.batches_per_epoch) c.bpe = data.batches_per_epoch;
    const steps = b.step || [], loss = b.loss || [];
    for (let i = 0; i < steps.length; i++) {
      const last = c.bx.length ? c.bx[c.bx.length - 1] : 0;
      if (steps[i] > last) {
        if (i === 0 && steps[i] > last + 1 && !data.full) gap = true;
        c.bx.push(steps[i]); c.by.push(num(loss[i]));
      }
    }
    const ep = e.epoch || [];
    for (let i = 0; i < ep.length; i++) {
      const last = c.ex.length ? c.ex[c.ex.length - 1] : 0;
      if (ep[i] > last) {
        if (i === 0 && ep[i] > last + 1 && !data.full) gap = true;
        c.ex.push(ep[i]);
        c.el.push(num((e.loss || [])[i]));
        c.evl.push(num((e.val_loss || [])[i]));
        const a = num((e.val_accuracy || [])[i]);
        c.eva.push(a === null ? null : a * 100);
      }
    }
    return gap;
  }

  async function fetchCurve(id, all) {
    if (!id || S.curveBusy.has(id)) return;
    S.curveBusy.add(id);
    try {
      const c = S.curves.get(id) || { bx: [], by: [], ex: [], el: [], evl: [], eva: [], bpe: 0 };
      S.curves.set(id, c);
      for (let i = 0; i < (all ? 50 : 1); i++) {
        const nb = c.bx.length, ne = c.ex.length;
        const data = await api('GET', `/api/runs/${encodeURIComponent(id)}/curve?batch_from=${nb}&epoch_from=${ne}`);
        if (!data) break;
        data.full = true;
        mergeCurve(c, data);
        if (c.bx.length === nb && c.ex.length === ne) break;
        if (data.batch_total !== undefined && c.bx.length >= data.batch_total && c.ex.length >= (data.epoch_total || 0)) break;
      }
      if (id === S.shownId) drawCharts();
    } catch (e) {
      /* the next update retries */
    } finally {
      S.curveBusy.delete(id);
    }
  }

  function applyCurveEvent(data) {
    if (!data || !data.run_id) return;
    const c = S.curves.get(data.run_id);
    if (!c) return; // not a run shown here
    if (mergeCurve(c, data)) fetchCurve(data.run_id, true);
    if (data.run_id === S.shownId) scheduleDraw();
  }

  let drawPending = false;
  function scheduleDraw() {
    if (drawPending) return;
    drawPending = true;
    requestAnimationFrame(() => { drawPending = false; drawCharts(); });
  }

  function chartWidth(el) { return Math.max(260, Math.floor(el.clientWidth || el.parentElement.clientWidth || 500)); }

  function ensureCharts() {
    if (S.charts || typeof window.uPlot !== 'function') {
      if (typeof window.uPlot !== 'function') {
        for (const id of ['chart-batch', 'chart-epoch']) $(id).textContent = 'The charts could not be loaded; reload the page.';
      }
      return;
    }
    const runOf = () => S.shownId && S.runsById.get(S.shownId);
    const bEl = $('chart-batch'), eEl = $('chart-epoch');
    const axis = { stroke: '#3b4452', grid: { stroke: '#e4e7ec' }, ticks: { stroke: '#c9ced6' } };
    const batch = new uPlot({
      width: chartWidth(bEl), height: BATCH_H,
      scales: {
        // at least the first epoch's width, then growing with the curve
        x: { time: false, range: (u, mn, mx) => { const r = runOf(); const bpe = (r && r.batches_per_epoch) || 0; return [0, Math.max(mx || 1, bpe || 10)]; } },
        y: { range: (u, mn, mx) => [0, (mx === null || !isFinite(mx)) ? 1 : mx * 1.05] },
      },
      axes: [{ ...axis, label: 'batch', size: 36, labelSize: 16 }, { ...axis, size: 50 }],
      series: [{ label: 'batch' }, { label: 'batch loss', stroke: '#1f5fbf', width: 1.25, points: { show: false } }],
      legend: { show: false }, // one series: the caption names it
      cursor: { drag: { x: false, y: false } },
    }, [[], []], bEl);
    const epoch = new uPlot({
      width: chartWidth(eEl), height: EPOCH_H,
      scales: {
        // one epoch ahead of the last point (at most the run's epochs)
        x: { time: false, range: (u, mn, mx) => { const r = runOf(); const E = (r && r.epochs) || 2; return [1, Math.max(2, Math.min(E, (mx || 1) + 1))]; } },
        loss: { range: (u, mn, mx) => [0, (mx === null || !isFinite(mx)) ? 1 : mx * 1.1] },
        acc: { range: [0, 100] },
      },
      axes: [
        { ...axis, label: 'epoch', size: 36, labelSize: 16, incrs: [1, 2, 5, 10, 20, 50, 100] },
        { ...axis, scale: 'loss', size: 50 },
        { ...axis, scale: 'acc', side: 1, size: 52, grid: { show: false }, values: (u, v) => v.map((x) => `${x}%`) },
      ],
      series: [
        { label: 'epoch' },
        { label: 'training loss', scale: 'loss', stroke: '#1f5fbf', width: 2, points: { show: true, size: 6 } },
        { label: 'validation loss', scale: 'loss', stroke: '#b86e00', width: 2, dash: [6, 4], points: { show: true, size: 6 } },
        { label: 'validation accuracy %', scale: 'acc', stroke: '#1b6e3a', width: 2.5, points: { show: true, size: 7 } },
      ],
      legend: { show: true, live: false },
      cursor: { drag: { x: false, y: false } },
    }, [[], [], [], []], eEl);
    S.charts = { batch, epoch };
    drawCharts();
  }

  function resizeCharts() {
    if (!S.charts) return;
    S.charts.batch.setSize({ width: chartWidth($('chart-batch')), height: BATCH_H });
    S.charts.epoch.setSize({ width: chartWidth($('chart-epoch')), height: EPOCH_H });
  }

  function drawCharts() {
    if (!S.charts) return;
    const c = S.curves.get(S.shownId) || { bx: [], by: [], ex: [], el: [], evl: [], eva: [] };
    S.charts.batch.setData([c.bx.slice(), c.by.slice()]);
    S.charts.epoch.setData([c.ex.slice(), c.el.slice(), c.evl.slice(), c.eva.slice()]);
    $('chart-batch').dataset.points = c.bx.length;
    $('chart-epoch').dataset.points = c.ex.length;
  }

  /* ---- final choice and the closing page -------------------------------------------------- */

  function openFinish(runId) {
    setError('finish-error', null);
    const sel = $('finish-run');
    sel.textContent = '';
    const finished = S.runs.filter((r) => r.run_id && r.status === 'finished');
    for (const r of [...finished].reverse())
      sel.append(h('option', { value: r.run_id, text: `Try #${r.number}: ${fmtPct(r.val_accuracy)} validation accuracy` }));
    const pick = document.querySelector('input[name=final][value=pick]');
    pick.disabled = !finished.length;
    sel.disabled = !finished.length;
    if (!finished.length) sel.append(h('option', { value: '', text: 'no finished try yet' }));
    const best = S.me && S.me.best_run && S.runsById.get(S.me.best_run);
    $('finish-best-label').textContent = best
      ? `My best try by validation accuracy (now try #${best.number}, ${fmtPct(S.me.best_val_accuracy)})`
      : 'My best try by validation accuracy (none has finished yet: there would be no final configuration)';
    if (runId) { sel.value = runId; pick.checked = true; }
    else document.querySelector('input[name=final][value=""]').checked = true;
    $('finish-live-warn').hidden = !S.liveId;
    $('finish-dialog').showModal();
  }

  async function onFinish() {
    setError('finish-error', null);
    const pick = document.querySelector('input[name=final]:checked').value === 'pick';
    const body = {};
    if (pick) {
      if (!$('finish-run').value) return setError('finish-error', 'Choose a try from the list.');
      body.run_id = $('finish-run').value;
    }
    const btn = $('finish-confirm');
    btn.disabled = true;
    try {
      if (S.liveId) {
        // One live run at most: cancel it and wait until the study has ended it.
        await api('POST', `/api/runs/${encodeURIComponent(S.liveId)}/cancel`).catch(() => null);
        for (let i = 0; i < 40; i++) {
          const me = await api('GET', '/api/me');
          if (!me.live_run) break;
          await sleep(250);
        }
      }
      const me = await api('POST', '/api/finish', body);
      $('finish-dialog').close();
      wantActive.set(false);
      applyMe(me);
      scheduleHistory(0);
    } catch (e) {
      setError('finish-error', e);
    } finally {
      btn.disabled = false;
    }
  }

  function renderDone() {
    const me = S.me;
    if (!me) return;
    const fr = me.final_run && (S.runsById.get(me.final_run) || S.runs.find((r) => r.run_id === me.final_run));
    const which = fr ? `try #${fr.number}${num(fr.val_accuracy) !== null ? ` (${fmtPct(fr.val_accuracy)} validation accuracy)` : ''}` : 'your chosen try';
    $('done-reason').textContent = {
      chosen: `You finished tuning and chose ${which} as your final configuration.`,
      budget: `Your time is up. Your best try by validation accuracy, ${which}, is your final configuration.`,
      none: 'Your time is up. None of your tries finished, so there is no final configuration to evaluate.',
    }[me.final_reason] || (me.final_run ? `Your final configuration is ${which}.` : 'Your tuning has ended.');
    $('done-final').textContent = `You made ${me.submissions} submission${me.submissions === 1 ? '' : 's'}.`;
    const total = me.finals_total || 0, doneN = me.finals_done || 0;
    $('done-finals').max = Math.max(1, total);
    $('done-finals').value = doneN;
    $('done-finals-label').textContent = total ? `Final evaluations: ${doneN} of ${total} done` : 'Final evaluations: none';
    const all = total > 0 && doneN >= total;
    const showRes = S.study.show_result && num(me.final_mean) !== null;
    $('done-result').hidden = !showRes;
    if (showRes) {
      const sd = num(me.final_sd) !== null ? ` ± ${(me.final_sd * 100).toFixed(1)}` : '';
      $('done-result').textContent = doneN > 1
        ? `Test accuracy of your final configuration: ${fmtPct(me.final_mean)}${sd} (mean${sd ? ' ± standard deviation' : ''} over ${doneN} evaluations).`
        : `Test accuracy of your final configuration: ${fmtPct(me.final_mean)}.`;
    }
    $('done-wait').textContent = all || !total ? 'All done. You may close this page.' : 'The evaluations are running. You may close this page; they go on without it.';
  }

  /* ---- live updates: SSE with a polling fallback ------------------------------------------ */

  function startLive() {
    if (S.es || S.sseTimer) return;
    let es;
    try { es = new EventSource('/api/events'); } catch (e) { startPolling(); return; }
    S.es = es;
    es.addEventListener('open', () => {
      S.sseDelay = 1000;
      stopPolling();
      setConn('');
      // catch up on what happened while the stream was down
      refreshMe();
      if (S.shownId) fetchCurve(S.shownId, true);
      scheduleHistory();
    });
    es.addEventListener('me', (e) => { try { applyMe(JSON.parse(e.data)); } catch (x) { /* ignore a bad event */ } });
    es.addEventListener('run', (e) => { try { applyRun(JSON.parse(e.data)); } catch (x) { /* ignore */ } });
    es.addEventListener('curve', (e) => { try { applyCurveEvent(JSON.parse(e.data)); } catch (x) { /* ignore */ } });
    es.addEventListener('error', () => {
      es.close();
      if (S.es !== es) return;
      S.es = null;
      if (!S.me) return;
      startPolling();
      S.sseTimer = setTimeout(() => { S.sseTimer = 0; if (S.me) startLive(); }, S.sseDelay);
      S.sseDelay = Math.min(S.sseDelay * 2, 30000);
    });
  }

  function stopLive() {
    if (S.es) { S.es.close(); S.es = null; }
    clearTimeout(S.sseTimer); S.sseTimer = 0;
    stopPolling();
    setConn('');
  }

  function startPolling() {
    if (S.pollTimer) return;
    S.pollTimer = setInterval(poll, POLL_MS);
    poll();
  }
  function stopPolling() {
    clearInterval(S.pollTimer);
    S.pollTimer = 0;
  }

  async function poll() {
    if (S.polling || !S.me) return;
    S.polling = true;
    try {
      const me = await api('GET', '/api/me');
      setConn('');
      applyMe(me);
      const id = S.liveId || S.shownId;
      if (id) {
        const run = await api('GET', `/api/runs/${encodeURIComponent(id)}`);
        applyRun(run);
        if (isLive(run)) await fetchCurve(id, false);
      }
    } catch (e) {
      if (e.status === 401) loggedOut();
      else setConn('The connection to the study server is interrupted. The page keeps trying; nothing you did is lost.');
    } finally {
      S.polling = false;
    }
  }

  // expose a little state for the browser test and for debugging
  window.tunebench = { state: S };
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot);
  else boot();
})();
