// gstcapture's operator console: one page, no build step, no framework.
//
// The token lives in sessionStorage (this tab only) and travels in the
// Authorization header of every call; it is never put in a URL. Every
// string from the server is set as text (textContent, attributes), never
// parsed as HTML, and the page runs under a CSP with no inline script.
'use strict';

(() => {
  const KEY = 'gstcapture.token';
  const FILE_MSG = 'configured in the file: change it there';
  const STATES = ['streaming', 'starting', 'connecting', 'stalled', 'disconnected', 'unauthorized', 'error', 'stopped', 'disabled'];
  const FIELDS = ['id', 'url', 'codec', 'fps', 'width', 'height', 'format', 'decoder', 'delivery', 'transport', 'stall_timeout', 'password_env', 'enabled'];
  const FIELD_SET = new Set(FIELDS);
  const NUMERIC = new Set(['fps', 'width', 'height']);
  const CAMS_MS = 1000, SNAP_MS = 1000, SNAP_IDLE_MS = 5000, HISTORY_MS = 5000, FLEET_MS = 5000;
  // While a streaming camera's frames are overdue (a stall may be coming,
  // and a stall can turn back to streaming within a second on reconnect),
  // the cameras are polled every CAMS_FAST_MS instead.
  const CAMS_FAST_MS = 250;
  const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });
  const enc = encodeURIComponent;

  // ---- small DOM helpers ------------------------------------------------

  const $ = (sel, root = document) => root.querySelector(sel);

  // el makes an element; attrs.text is its text, attrs.class its class,
  // anything else an attribute (attribute values are never parsed as HTML).
  function el(tag, attrs, ...kids) {
    const n = document.createElement(tag);
    setAttrs(n, attrs);
    n.append(...kids.filter((k) => k != null));
    return n;
  }

  const SVGNS = 'http://www.w3.org/2000/svg';
  function sv(tag, attrs) {
    const n = document.createElementNS(SVGNS, tag);
    setAttrs(n, attrs);
    return n;
  }

  function setAttrs(n, attrs) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k === 'text') n.textContent = String(v);
      else if (k === 'class') n.setAttribute('class', v);
      else n.setAttribute(k, v === true ? '' : String(v));
    }
  }

  // setText changes a node's text only when it differs (no needless layout).
  function setText(n, t) {
    t = String(t);
    if (n.textContent !== t) n.textContent = t;
  }

  function show(n, on) {
    n.hidden = !on;
  }

  // ---- formatting ---------------------------------------------------------

  const pad = (n) => String(n).padStart(2, '0');

  function fmtTime(v) {
    const d = v instanceof Date ? v : new Date(v);
    if (isNaN(d)) return String(v || '');
    const hms = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
    const now = new Date();
    if (d.toDateString() === now.toDateString()) return hms;
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${hms}`;
  }

  function fmtAge(sec) {
    if (sec == null || !isFinite(sec)) return '';
    if (sec < 0) sec = 0;
    if (sec < 10) return `${sec.toFixed(1)} s`;
    if (sec < 90) return `${Math.round(sec)} s`;
    if (sec < 5400) return `${Math.round(sec / 60)} min`;
    if (sec < 172800) return `${(sec / 3600).toFixed(1)} h`;
    return `${Math.round(sec / 86400)} d`;
  }

  const since = (t) => {
    const ms = Date.parse(t);
    return isNaN(ms) ? null : (Date.now() - ms) / 1000;
  };

  const fmtNum = (n) => (n == null ? '—' : Number(n).toLocaleString('en-US'));
  const fmtFps = (n) => (Number(n) || 0).toFixed(1);

  // drops is the non-zero drop reasons, the largest first.
  function drops(m) {
    return Object.entries(m || {})
      .filter(([, n]) => n > 0)
      .sort((a, b) => b[1] - a[1] || collator.compare(a[0], b[0]));
  }

  const dropsText = (m) => {
    const d = drops(m);
    return d.length ? d.map(([r, n]) => `${r} ${fmtNum(n)}`).join(', ') : 'none';
  };

  const decoderText = (c) => [c.codec, c.decoder].filter(Boolean).join(' · ') || 'no decoder yet';

  function setBadge(b, state) {
    const st = state || 'unknown';
    if (b.dataset.state !== st) b.dataset.state = st;
    setText(b, st);
  }

  // ---- session and API --------------------------------------------------

  let token = null;
  let scope = '';
  let signedIn = false;
  let gen = 0; // bumped at each sign-in and sign-out: older answers are dropped

  class Stale extends Error {}
  class ApiError extends Error {
    constructor(status, message, data) {
      super(message);
      this.status = status;
      this.data = data;
    }
  }
  const isStale = (e) => e instanceof Stale;

  async function readJSON(res) {
    try {
      const t = await res.text();
      return t ? JSON.parse(t) : null;
    } catch (_) {
      return null;
    }
  }

  function errText(d, res) {
    if (d && typeof d.error === 'string' && d.error) return d.error;
    return `HTTP ${res.status}${res.statusText ? ' ' + res.statusText : ''}`;
  }

  function headers(t, extra) {
    const h = Object.assign({ Accept: 'application/json' }, extra);
    if (t) h.Authorization = 'Bearer ' + t;
    return h;
  }

  // call makes one same-origin API request with the token. A 401 signs the
  // page out with the server's message; an answer to an older session is
  // dropped (Stale).
  async function call(method, path, body, opt = {}) {
    const g = gen;
    const init = { method, headers: headers(token, opt.accept ? { Accept: opt.accept } : null), cache: 'no-store', credentials: 'same-origin', redirect: 'error' };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    if (opt.signal) init.signal = opt.signal;
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      if (g !== gen) throw new Stale();
      if (e && e.name === 'AbortError') throw new ApiError(0, 'the request timed out');
      throw new ApiError(0, 'cannot reach the service: ' + (e && e.message ? e.message : e));
    }
    if (g !== gen) throw new Stale();
    if (res.status === 401 && signedIn) {
      const d = await readJSON(res);
      if (g === gen) signOut(errText(d, res));
      throw new Stale();
    }
    return res;
  }

  async function getJSON(path) {
    const res = await call('GET', path);
    const d = await readJSON(res);
    if (!res.ok) throw new ApiError(res.status, errText(d, res), d);
    return d || {};
  }

  async function expect(res, ...ok) {
    if (ok.includes(res.status)) return readJSON(res);
    const d = await readJSON(res);
    throw new ApiError(res.status, errText(d, res), d);
  }

  // checkToken asks the server what t may do, without keeping it.
  async function checkToken(t) {
    let res;
    try {
      res = await fetch('/api/v1/session', { headers: headers(t), cache: 'no-store', credentials: 'same-origin', redirect: 'error' });
    } catch (e) {
      throw new Error('cannot reach the service: ' + (e && e.message ? e.message : e));
    }
    const d = await readJSON(res);
    if (res.status !== 200 || !d) throw new Error(errText(d, res));
    return d;
  }

  // ---- pollers ------------------------------------------------------------

  // poller runs fn now and every ms (a number, or a function giving one)
  // after it ends, never twice at once; run() brings the next round
  // forward. It stops at sign-out.
  function poller(fn, ms) {
    const g = gen;
    let timer = 0, busy = false, again = false;
    const p = {
      async run() {
        if (g !== gen) return;
        if (busy) {
          again = true;
          return;
        }
        clearTimeout(timer);
        busy = true;
        try {
          await fn();
        } catch (e) {
          if (!isStale(e)) console.warn('gstcapture console:', e);
        } finally {
          busy = false;
        }
        if (g !== gen) return;
        if (again) {
          again = false;
          p.run();
          return;
        }
        timer = setTimeout(p.run, typeof ms === 'function' ? ms() : ms);
      },
      stop() {
        clearTimeout(timer);
      },
    };
    return p;
  }

  let camsPoller = null, fleetPoller = null, historyPoller = null, snapTimer = 0;

  // ---- state -------------------------------------------------------------

  const cams = new Map(); // id → the newest Camera of /api/v1/cameras
  let camsPolledAt = 0; // when the newest successful poll began
  let camsLoaded = false;
  let camsFast = false; // a streaming camera's frames are overdue
  const fpsSeen = new Map(); // id → the newest non-zero fps
  let fleet = null, fleetErr = '';
  const owners = new Map(); // camera id → owner replica ("" = unowned)
  let route = { name: '', seq: 0, at: 0 };
  let routeSeq = 0;
  let lastSaved = { id: '', at: 0 };

  // ---- pictures -----------------------------------------------------------

  // A snap is one <img> that shows a camera's newest picture, fetched with
  // the token as a blob: one request at a time, about once a second.
  function newSnap(img, frame) {
    return { id: '', img, frame, url: '', pending: '', busy: false, next: 0, seq: 0, onScreen: true, dead: false, state: '' };
  }

  function resetSnap(s, id) {
    s.seq++;
    s.busy = false;
    s.next = 0;
    if (s.pending) URL.revokeObjectURL(s.pending);
    if (s.url) URL.revokeObjectURL(s.url);
    s.pending = s.url = '';
    s.img.removeAttribute('src');
    s.frame.classList.remove('has-pic');
    s.id = id;
    s.img.alt = id ? `${id} live picture` : '';
  }

  function dropSnap(s) {
    resetSnap(s, '');
    s.dead = true;
  }

  function wantSnap(s, now) {
    if (!s.id || s.busy || s.dead || now < s.next) return;
    s.busy = true;
    s.next = now + (s.state === 'disabled' || s.state === 'stopped' ? SNAP_IDLE_MS : SNAP_MS);
    fetchSnap(s);
  }

  async function fetchSnap(s) {
    const seq = s.seq;
    const ctl = new AbortController();
    const timeout = setTimeout(() => ctl.abort(), 10000);
    try {
      const res = await call('GET', `/api/v1/cameras/${enc(s.id)}/snapshot.jpg`, undefined, { signal: ctl.signal, accept: 'image/jpeg' });
      if (res.status !== 200) {
        if (res.status === 429) {
          const ra = parseFloat(res.headers.get('Retry-After'));
          s.next = Date.now() + (isFinite(ra) ? Math.min(Math.max(ra, 0.25), 10) * 1000 : SNAP_MS);
        }
        await res.arrayBuffer().catch(() => {});
        return; // keep the picture there is
      }
      const blob = await res.blob();
      if (s.seq !== seq || s.dead) return;
      await showBlob(s, blob, seq);
    } catch (_) {
      // a network error or a timeout: keep the picture, try next time
    } finally {
      clearTimeout(timeout);
      if (s.seq === seq) s.busy = false;
    }
  }

  // showBlob puts blob in the snap's <img> and, once it has loaded, frees
  // the picture it replaces.
  function showBlob(s, blob, seq) {
    return new Promise((resolve) => {
      const url = URL.createObjectURL(blob);
      const img = s.img, prev = s.url;
      let safety = 0;
      const done = (ok) => {
        clearTimeout(safety);
        img.removeEventListener('load', onLoad);
        img.removeEventListener('error', onError);
        if (s.seq !== seq || s.dead) {
          URL.revokeObjectURL(url); // resetSnap cleared the <img>
        } else if (ok) {
          s.url = url;
          s.pending = '';
          if (prev) URL.revokeObjectURL(prev);
          s.frame.classList.add('has-pic');
        } else {
          s.pending = '';
          if (prev) img.src = prev;
          else img.removeAttribute('src');
          URL.revokeObjectURL(url);
        }
        resolve();
      };
      const onLoad = () => done(true);
      const onError = () => done(false);
      img.addEventListener('load', onLoad);
      img.addEventListener('error', onError);
      safety = setTimeout(() => done(false), 10000);
      s.pending = url;
      img.src = url;
    });
  }

  function tickSnaps() {
    if (!signedIn || document.hidden) return;
    const now = Date.now();
    if (route.name === 'grid') {
      for (const c of cards.values()) if (c.snap.onScreen) wantSnap(c.snap, now);
    } else if (route.name === 'camera') {
      wantSnap(camSnap, now);
    }
  }

  // ---- the grid -----------------------------------------------------------

  const cards = new Map(); // id → card
  const cardOf = new WeakMap(); // article → card
  const io = 'IntersectionObserver' in window
    ? new IntersectionObserver((entries) => {
      for (const e of entries) {
        const c = cardOf.get(e.target);
        if (c) c.snap.onScreen = e.isIntersecting;
      }
      tickSnaps();
    }, { rootMargin: '200px 0px' })
    : null;

  function makeCard(id) {
    const art = el('article', { class: 'card' });
    art.dataset.camera = id;
    const img = el('img', { class: 'snap', alt: `${id} live picture`, decoding: 'async' });
    const frame = el('div', { class: 'frame' }, img, el('span', { class: 'nopic', text: 'no picture yet' }));
    const link = el('a', { class: 'open', href: '#/camera/' + enc(id), title: `open ${id}` }, frame, el('h2', { class: 'title', text: id }));
    const c = {
      id,
      el: art,
      badge: el('span', { class: 'badge' }),
      fps: el('span', { class: 'fps' }),
      age: el('span', { class: 'age' }),
      drops: el('div', { class: 'drops' }),
      reconnects: el('span', { class: 'reconnects' }),
      decoder: el('div', { class: 'decoder' }),
      owner: el('div', { class: 'owner', hidden: true }),
      error: el('div', { class: 'error', hidden: true }),
      snap: null,
    };
    c.snap = newSnap(img, frame);
    c.snap.id = id;
    art.append(
      link,
      el('div', { class: 'meta' },
        el('div', { class: 'row' }, c.badge, c.fps, c.age),
        el('div', { class: 'row' }, c.drops, c.reconnects),
        c.decoder, c.owner, c.error),
    );
    cardOf.set(art, c);
    if (io) io.observe(art);
    return c;
  }

  function removeCard(id) {
    const c = cards.get(id);
    if (!c) return;
    if (io) io.unobserve(c.el);
    dropSnap(c.snap);
    c.el.remove();
    cards.delete(id);
  }

  function updateCard(c, cam) {
    const st = cam.state || 'unknown';
    if (c.el.dataset.state !== st) c.el.dataset.state = st;
    c.snap.state = st;
    setBadge(c.badge, st);
    setText(c.fps, `${fmtFps(cam.fps)} fps`);
    const age = cam.last_frame_age_seconds;
    setText(c.age, age == null ? 'no frame yet' : `frame ${fmtAge(age)} ago`);
    setText(c.drops, 'drops: ' + dropsText(cam.frames_dropped));
    setText(c.reconnects, 'reconnects: ' + fmtNum(cam.reconnects || 0));
    setText(c.decoder, decoderText(cam));
    const err = cam.last_error || '';
    setText(c.error, err);
    c.error.title = err;
    show(c.error, !!err);
    updateOwner(c);
  }

  function updateOwner(c) {
    const on = !!(fleet && fleet.enabled);
    show(c.owner, on);
    if (on) setText(c.owner, 'owner ' + (owners.get(c.id) || 'unowned'));
  }

  function renderGrid() {
    const grid = $('#grid');
    const list = [...cams.values()].sort((a, b) => collator.compare(a.id, b.id));
    const ids = new Set(list.map((c) => c.id));
    for (const id of [...cards.keys()]) if (!ids.has(id)) removeCard(id);
    list.forEach((cam, i) => {
      let c = cards.get(cam.id);
      if (!c) {
        c = makeCard(cam.id);
        cards.set(cam.id, c);
      }
      updateCard(c, cam);
      if (grid.children[i] !== c.el) grid.insertBefore(c.el, grid.children[i] || null);
    });
    const counts = {};
    for (const c of list) counts[c.state] = (counts[c.state] || 0) + 1;
    const parts = [`${list.length} camera${list.length === 1 ? '' : 's'}`, `${counts.streaming || 0} streaming`];
    for (const st of STATES.slice(1)) if (counts[st]) parts.push(`${counts[st]} ${st}`);
    setText($('#summary'), camsLoaded ? parts.join(' · ') : 'loading…');
    show($('#grid-empty'), camsLoaded && list.length === 0);
  }

  async function pollCameras() {
    const started = Date.now();
    let d;
    try {
      d = await getJSON('/api/v1/cameras');
    } catch (e) {
      if (isStale(e)) throw e;
      const b = $('#grid-error');
      setText(b, 'cannot load the cameras: ' + e.message + ' (the cards show the last answer)');
      show(b, true);
      return;
    }
    show($('#grid-error'), false);
    cams.clear();
    for (const c of Array.isArray(d.cameras) ? d.cameras : []) if (c && typeof c.id === 'string') cams.set(c.id, c);
    camsFast = false;
    for (const c of cams.values()) {
      if (c.fps > 0) fpsSeen.set(c.id, c.fps);
      const age = c.last_frame_age_seconds, fps = fpsSeen.get(c.id) || 0;
      if (c.state === 'streaming' && fps >= 1 && age > Math.max(1.5, 3 / fps) && age < 60) camsFast = true;
    }
    for (const id of fpsSeen.keys()) if (!cams.has(id)) fpsSeen.delete(id);
    camsPolledAt = started;
    camsLoaded = true;
    renderGrid();
    if (route.name === 'camera') renderCamera();
  }

  // ---- the camera page ----------------------------------------------------

  const camSnap = newSnap($('#cam-snap'), $('#cam-snap').parentElement);
  let pipelineFor = ''; // the camera whose pipeline is shown
  let actBusy = false;

  function enterCamera(id) {
    resetSnap(camSnap, id);
    pipelineFor = '';
    setStatus('');
    $('#pipeline').replaceChildren(el('p', { class: 'muted', text: 'loading…' }));
    $('#transitions').replaceChildren();
    setText($('#cam-title'), id);
    document.querySelectorAll('#camera-view svg.chart').forEach((s) => drawChart(s, chartSpec(s.dataset.series, null)));
    renderCamera();
    historyPoller.run();
    camsPoller.run();
  }

  function renderCamera() {
    const id = route.id;
    const cam = cams.get(id);
    if (!cam) {
      const grace = lastSaved.id === id && Date.now() - lastSaved.at < 10000 ? 3000 : 0;
      const unknown = camsLoaded && camsPolledAt > route.at + grace;
      show($('#camera-unknown'), unknown);
      show($('#camera-body'), !unknown);
      show($('#cam-actions'), false);
      if (unknown) {
        const owner = fleet && fleet.enabled ? owners.get(id) : '';
        setText($('#unknown-id'), id + (owner ? ` (held by replica ${owner}: its console shows it)` : ''));
      } else {
        setBadge($('#cam-badge'), 'loading');
      }
      return;
    }
    show($('#camera-unknown'), false);
    show($('#camera-body'), true);
    camSnap.state = cam.state;
    $('#camera-view').dataset.state = cam.state || 'unknown';
    setBadge($('#cam-badge'), cam.state);
    setText($('#cam-source'), cam.source === 'file' ? 'from the configuration file' : cam.source === 'api' ? 'from the camera API' : '');
    const fileCam = cam.source === 'file';
    show($('#cam-actions'), true);
    $('#btn-restart').disabled = actBusy;
    for (const b of ['#btn-edit', '#btn-disable', '#btn-delete']) {
      const n = $(b);
      n.disabled = fileCam || actBusy;
      if (fileCam) n.title = FILE_MSG;
      else n.removeAttribute('title');
    }
    setText($('#btn-disable'), cam.enabled === false ? 'Enable' : 'Disable');
    const err = cam.last_error || '';
    setText($('#cam-error'), err ? 'last error: ' + err : '');
    show($('#cam-error'), !!err);

    const st = since(cam.state_since);
    const rows = [
      ['state', `${cam.state || 'unknown'}${st == null ? '' : ` for ${fmtAge(st)} (since ${fmtTime(cam.state_since)})`}`],
      ['fps', fmtFps(cam.fps)],
      ['last frame', cam.last_frame_age_seconds == null ? 'none yet' : `${fmtAge(cam.last_frame_age_seconds)} ago`],
      ['captured', fmtNum(cam.frames_captured)],
      ['published', fmtNum(cam.frames_published)],
    ];
    const d = drops(cam.frames_dropped);
    if (!d.length) rows.push(['dropped', 'none']);
    else {
      rows.push(['dropped', fmtNum(d.reduce((n, [, v]) => n + v, 0)) + ' in all']);
      for (const [r, n] of d) rows.push([r, fmtNum(n), 'sub']);
    }
    rows.push(
      ['reconnects', fmtNum(cam.reconnects || 0)],
      ['codec · decoder', decoderText(cam)],
      ['delivery', cam.delivery || '—'],
      ['source', cam.source || '—'],
      ['enabled', cam.enabled === false ? 'no' : 'yes'],
    );
    setRows($('#counters'), rows);
  }

  // setRows fills a table body in place: rows are [label, value, class].
  function setRows(tbody, rows) {
    rows.forEach(([k, v, cls], i) => {
      let tr = tbody.children[i];
      if (!tr) {
        tr = el('tr', null, el('th', { scope: 'row' }), el('td'));
        tbody.append(tr);
      }
      if ((tr.className || '') !== (cls || '')) tr.className = cls || '';
      setText(tr.children[0], k);
      setText(tr.children[1], v);
    });
    while (tbody.children.length > rows.length) tbody.lastElementChild.remove();
  }

  async function pollHistory() {
    if (route.name !== 'camera') return;
    const id = route.id, seq = route.seq;
    try {
      const h = await getJSON(`/api/v1/cameras/${enc(id)}/history`);
      if (route.seq !== seq) return;
      document.querySelectorAll('#camera-view svg.chart').forEach((s) => drawChart(s, chartSpec(s.dataset.series, h)));
      renderTransitions(h.states);
    } catch (e) {
      if (isStale(e)) throw e;
      if (route.seq === seq && !$('#transitions').children.length) {
        $('#transitions').replaceChildren(el('li', { class: 'muted', text: 'no history: ' + e.message }));
      }
    }
    if (pipelineFor !== id && route.seq === seq) await loadPipeline(id, seq);
  }

  async function loadPipeline(id, seq) {
    const box = $('#pipeline');
    try {
      const p = await getJSON(`/api/v1/cameras/${enc(id)}/pipeline`);
      if (route.seq !== seq) return;
      const items = [];
      for (const pl of Array.isArray(p.pipelines) ? p.pipelines : []) {
        const fig = el('figure', { class: 'pipe' });
        if (pl.codec) fig.append(el('figcaption', { text: pl.codec }));
        fig.append(el('pre', { text: String(pl.launch || '').replace(/ ! /g, '\n  ! ') }));
        items.push(fig);
      }
      box.replaceChildren(...(items.length ? items : [el('p', { class: 'muted', text: 'no pipeline' })]));
      pipelineFor = id;
    } catch (e) {
      if (isStale(e)) throw e;
      if (route.seq === seq) box.replaceChildren(el('p', { class: 'muted', text: 'no pipeline yet: ' + e.message }));
    }
  }

  function renderTransitions(states) {
    const list = (Array.isArray(states) ? states : []).slice().reverse();
    const items = list.map((s) => {
      const t = new Date(s.at);
      return el('li', null,
        el('time', { datetime: isNaN(t) ? null : t.toISOString(), text: fmtTime(s.at) }),
        el('span', { class: 'fromto' },
          stateWord(s.from), document.createTextNode(' → '), stateWord(s.to)),
        s.reason ? el('span', { class: 'reason', text: s.reason }) : null);
    });
    if (!items.length) items.push(el('li', { class: 'muted', text: 'no state changes yet' }));
    $('#transitions').replaceChildren(...items);
  }

  function stateWord(st) {
    const n = el('span', { class: 'st', text: st || '—' });
    n.dataset.state = st || 'unknown';
    return n;
  }

  // ---- charts -------------------------------------------------------------

  function chartSpec(series, h) {
    const pts = h && Array.isArray(h.points) ? h.points : [];
    const spec = {
      interval: (h && h.interval_seconds) || 5,
      window: (h && h.window_seconds) || 600,
      points: [],
    };
    const val = {
      fps: (p) => (typeof p.fps === 'number' ? p.fps : null),
      latency: (p) => (typeof p.latency_p99_seconds === 'number' ? p.latency_p99_seconds * 1000 : null),
      drops: (p) => (typeof p.dropped === 'number' ? p.dropped : null),
    }[series];
    for (const p of pts) {
      const t = Date.parse(p.t);
      if (!isNaN(t)) spec.points.push({ t, v: val(p) });
    }
    if (series === 'fps') Object.assign(spec, { title: 'fps', unit: ' fps', kind: 'line', fmt: (v) => v.toFixed(1) });
    if (series === 'latency') Object.assign(spec, { title: 'latency p99', unit: ' ms', kind: 'line', fmt: (v) => (v < 10 ? v.toFixed(1) : v.toFixed(0)) });
    if (series === 'drops') Object.assign(spec, { title: 'dropped / interval', unit: '', kind: 'bar', fmt: (v) => fmtNum(Math.round(v)) });
    return spec;
  }

  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
    return 10 * p;
  }

  // drawChart draws a small line or bar chart of the last window seconds:
  // null values and holes in time are gaps.
  function drawChart(svgEl, spec) {
    const L = 36, R = 294, T = 24, B = 98;
    const pts = spec.points;
    const end = pts.length ? pts[pts.length - 1].t : Date.now();
    const start = end - spec.window * 1000;
    const shown = pts.filter((p) => p.t >= start);
    const vals = shown.filter((p) => p.v != null).map((p) => p.v);
    const max = niceMax(Math.max(0, ...vals));
    const x = (t) => L + ((t - start) / (end - start)) * (R - L);
    const y = (v) => B - (Math.min(v, max) / max) * (B - T);
    const text = (attrs, s) => {
      const n = sv('text', attrs);
      n.textContent = s;
      return n;
    };
    const last = shown.length ? shown[shown.length - 1].v : null;
    const parts = [
      text({ x: 4, y: 13, class: 'ctitle' }, spec.title),
      text({ x: R, y: 13, class: 'clast', 'text-anchor': 'end' }, last == null ? (shown.length ? 'last: —' : 'no data yet') : `last ${spec.fmt(last)}${spec.unit}`),
      sv('line', { x1: L, y1: T, x2: R, y2: T, class: 'gridline' }),
      sv('line', { x1: L, y1: (T + B) / 2, x2: R, y2: (T + B) / 2, class: 'gridline' }),
      sv('line', { x1: L, y1: B, x2: R, y2: B, class: 'axis' }),
      sv('line', { x1: L, y1: T, x2: L, y2: B, class: 'axis' }),
      text({ x: L - 4, y: T + 4, class: 'tick', 'text-anchor': 'end' }, spec.fmt(max)),
      text({ x: L - 4, y: B + 3, class: 'tick', 'text-anchor': 'end' }, '0'),
      text({ x: L, y: B + 14, class: 'tick' }, `−${Math.round(spec.window / 60)} min`),
      text({ x: R, y: B + 14, class: 'tick', 'text-anchor': 'end' }, 'now'),
    ];
    if (spec.kind === 'bar') {
      const bw = Math.max(1.2, ((R - L) * spec.interval) / spec.window - 0.6);
      for (const p of shown) {
        if (!(p.v > 0)) continue;
        const top = y(p.v);
        parts.push(sv('rect', { x: Math.max(L, x(p.t) - bw).toFixed(1), y: top.toFixed(1), width: bw.toFixed(1), height: Math.max(0.8, B - top).toFixed(1), class: 'bar' }));
      }
    } else {
      const gap = spec.interval * 2.5 * 1000;
      let seg = [];
      const flush = () => {
        if (seg.length === 1) parts.push(sv('circle', { cx: seg[0][0], cy: seg[0][1], r: 1.8, class: 'dot' }));
        else if (seg.length > 1) parts.push(sv('polyline', { points: seg.map((p) => p.join(',')).join(' '), class: 'line' }));
        seg = [];
      };
      let prevT = null;
      for (const p of shown) {
        if (p.v == null || (prevT != null && p.t - prevT > gap)) flush();
        if (p.v != null) seg.push([x(p.t).toFixed(1), y(p.v).toFixed(1)]);
        prevT = p.t;
      }
      flush();
    }
    svgEl.replaceChildren(...parts);
  }

  // ---- camera actions -----------------------------------------------------

  function setStatus(msg, kind) {
    const n = $('#action-status');
    setText(n, msg || '');
    n.className = 'status' + (kind ? ' ' + kind : '');
    show(n, !!msg);
  }

  // refreshSoon brings the camera's state and history forward after an action.
  function refreshSoon() {
    camsPoller.run();
    setTimeout(() => historyPoller.run(), 700);
  }

  async function act(what, fn) {
    if (actBusy || route.name !== 'camera') return;
    const seq = route.seq;
    actBusy = true;
    renderCamera();
    setStatus(what + '…', 'busy');
    try {
      const msg = await fn(route.id);
      if (route.seq === seq && msg) setStatus(msg, 'ok');
    } catch (e) {
      if (!isStale(e) && route.seq === seq) setStatus(`${what}: ${e.message}`, 'err');
    } finally {
      actBusy = false;
      if (route.name === 'camera') renderCamera();
    }
  }

  const restart = () => act('restart', async (id) => {
    await expect(await call('POST', `/api/v1/cameras/${enc(id)}/restart`), 202, 200);
    refreshSoon();
    return `restart of ${id} requested: its pipeline is being rebuilt`;
  });

  const toggle = () => act('change enabled', async (id) => {
    const cam = cams.get(id);
    const enable = !!cam && cam.enabled === false;
    const d = await getJSON(`/api/v1/cameras/${enc(id)}/entry`);
    const entry = Object.assign({}, d.entry || {});
    entry.enabled = enable;
    await expect(await call('PUT', `/api/v1/cameras/${enc(id)}`, entry), 200, 201);
    refreshSoon();
    return enable ? `${id} enabled: it is being captured again` : `${id} disabled: it is no longer captured`;
  });

  const remove = async () => {
    if (route.name !== 'camera' || actBusy) return;
    const id = route.id;
    const yes = await confirmBox(`Delete camera ${id}? Its entry is removed from the camera API and its capture stops.`, 'Delete');
    if (!yes || route.name !== 'camera' || route.id !== id) return;
    await act('delete', async () => {
      await expect(await call('DELETE', `/api/v1/cameras/${enc(id)}`), 204, 200);
      cams.delete(id);
      removeCard(id);
      location.hash = '#/';
      camsPoller.run();
      return '';
    });
  };

  // ---- the confirmation dialog -------------------------------------------

  let confirmDone = null;
  function confirmBox(msg, yesText) {
    if (confirmDone) confirmDone(false);
    setText($('#confirm-msg'), msg);
    setText($('#confirm-yes'), yesText);
    show($('#confirm'), true);
    $('#confirm-no').focus();
    return new Promise((resolve) => {
      confirmDone = (v) => {
        confirmDone = null;
        show($('#confirm'), false);
        resolve(v);
      };
    });
  }
  const closeConfirm = (v) => confirmDone && confirmDone(v);

  // ---- the add / edit form ------------------------------------------------

  const form = $('#camera-form');
  const ctl = (name) => form.querySelector(`[name="${name}"]`);
  let formMode = 'add', formId = '', formBase = {}, formSeq = 0, formBusy = false;

  function clearProblems() {
    form.querySelectorAll('.problem').forEach((p) => (p.textContent = ''));
    form.querySelectorAll('.has-problem').forEach((f) => f.classList.remove('has-problem'));
    const fe = $('#form-error');
    fe.replaceChildren();
    show(fe, false);
  }

  function formError(msg, extra) {
    const fe = $('#form-error');
    fe.replaceChildren(el('p', { text: msg }));
    if (extra && extra.length) fe.append(el('ul', null, ...extra.map((t) => el('li', { text: t }))));
    show(fe, true);
  }

  function markProblem(name, msg) {
    const span = form.querySelector(`.problem[data-for="${name}"]`);
    span.textContent = span.textContent ? `${span.textContent}; ${msg}` : msg;
    const wrap = span.closest('.field');
    if (wrap) wrap.classList.add('has-problem');
  }

  function openForm(mode, id) {
    const seq = ++formSeq;
    formMode = mode;
    formId = id || '';
    formBase = {};
    form.reset();
    form.querySelectorAll('option[data-extra]').forEach((o) => o.remove());
    clearProblems();
    const idIn = ctl('id');
    idIn.readOnly = mode === 'edit';
    idIn.value = formId;
    setText($('#form-title'), mode === 'edit' ? `Edit camera ${formId}` : 'Add camera');
    $('#form-cancel').setAttribute('href', mode === 'edit' ? '#/camera/' + enc(formId) : '#/');
    show($('#form-keep'), false);
    const submit = $('#form-submit');
    setText(submit, mode === 'edit' ? 'Save' : 'Add camera');
    submit.disabled = mode === 'edit';
    if (mode !== 'edit') {
      idIn.focus();
      return;
    }
    getJSON(`/api/v1/cameras/${enc(formId)}/entry`).then((d) => {
      if (seq !== formSeq) return;
      formBase = d.entry && typeof d.entry === 'object' ? d.entry : {};
      fillForm(formBase);
      const kept = Object.keys(formBase).filter((k) => !FIELD_SET.has(k));
      if (kept.length) {
        setText($('#form-keep'), 'Also kept as stored (not shown here): ' + kept.join(', '));
        show($('#form-keep'), true);
      }
      submit.disabled = false;
    }).catch((e) => {
      if (!isStale(e) && seq === formSeq) formError(e.message);
    });
  }

  function fillForm(entry) {
    for (const name of FIELDS) {
      if (name === 'id') continue;
      const c = ctl(name);
      const v = entry[name];
      if (c.type === 'checkbox') {
        c.checked = v !== false;
        continue;
      }
      const s = v == null ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
      if (c.tagName === 'SELECT' && s && ![...c.options].some((o) => o.value === s)) {
        c.append(el('option', { value: s, text: s, 'data-extra': true }));
      }
      c.value = s;
    }
  }

  async function submitForm(ev) {
    ev.preventDefault();
    if (formBusy) return;
    clearProblems();
    const id = formMode === 'edit' ? formId : ctl('id').value.trim();
    if (!id) {
      markProblem('id', 'required: the camera needs an id');
      ctl('id').focus();
      return;
    }
    const body = Object.assign({}, formBase);
    for (const name of FIELDS) {
      const c = ctl(name);
      if (name === 'id') {
        body.id = id;
      } else if (c.type === 'checkbox') {
        body.enabled = c.checked;
      } else {
        const raw = c.value.trim();
        if (raw === '') delete body[name];
        else if (NUMERIC.has(name) && isFinite(Number(raw))) body[name] = Number(raw);
        else body[name] = raw;
      }
    }
    const seq = formSeq;
    formBusy = true;
    $('#form-submit').disabled = true;
    try {
      const res = await call('PUT', `/api/v1/cameras/${enc(id)}`, body);
      const d = await readJSON(res);
      if (seq !== formSeq) return;
      if (res.status === 200 || res.status === 201) {
        lastSaved = { id, at: Date.now() };
        location.hash = '#/camera/' + enc(id);
        camsPoller.run();
        return;
      }
      if (res.status === 422 && d && Array.isArray(d.problems) && d.problems.length) {
        const general = [];
        let first = null;
        for (const p of d.problems) {
          const path = String(p.path || '');
          const msg = String(p.message || '');
          const name = FIELD_SET.has(path) ? path : path.split(/[.[]/)[0];
          if (FIELD_SET.has(name)) {
            markProblem(name, msg);
            first = first || name;
          } else general.push(path ? `${path}: ${msg}` : msg);
        }
        formError(errText(d, res), general);
        if (first) ctl(first).focus();
        return;
      }
      formError(errText(d, res));
    } catch (e) {
      if (!isStale(e)) formError(e.message);
    } finally {
      formBusy = false;
      if (seq === formSeq) $('#form-submit').disabled = false;
    }
  }

  // ---- the fleet ----------------------------------------------------------

  async function pollFleet() {
    try {
      fleet = await getJSON('/api/v1/fleet');
      fleetErr = '';
    } catch (e) {
      if (isStale(e)) throw e;
      fleetErr = e.message;
    }
    owners.clear();
    if (fleet && fleet.enabled) for (const c of fleet.cameras || []) owners.set(c.id, c.owner || '');
    for (const c of cards.values()) updateOwner(c);
    renderFleet();
  }

  function camLink(id, title) {
    return el('a', { class: 'camlink', href: '#/camera/' + enc(id), text: id, title });
  }

  function renderFleet() {
    const box = $('#fleet');
    const sum = $('#fleet-summary');
    const out = [];
    if (fleetErr) out.push(el('p', { class: 'banner', text: 'cannot load the fleet: ' + fleetErr }));
    if (!fleet) {
      if (!fleetErr) out.push(el('p', { class: 'muted', text: 'loading…' }));
      setText(sum, '');
      box.replaceChildren(...out);
      return;
    }
    if (!fleet.enabled) {
      out.push(el('p', { class: 'empty', text: 'This replica is not part of a fleet (fleet.enabled: false).' }));
      setText(sum, '');
      box.replaceChildren(...out);
      return;
    }
    const replicas = (fleet.replicas || []).slice().sort((a, b) => collator.compare(a.id, b.id));
    const fcams = (fleet.cameras || []).slice().sort((a, b) => collator.compare(a.id, b.id));
    const live = new Set(replicas.map((r) => r.id));
    const lease = (c) => `epoch ${c.epoch}, lease ${fmtAge(c.lease_ttl_seconds)} left`;
    setText(sum, [`this replica: ${fleet.replica_id}`, `${replicas.length} replica${replicas.length === 1 ? '' : 's'}`,
      `${fcams.length} camera${fcams.length === 1 ? '' : 's'}`, `lease ${fleet.lease_seconds} s`].join(' · '));

    const table = el('div', { class: 'rtable' }, el('div', { class: 'rrow rhead', 'aria-hidden': 'true' },
      el('span', { text: 'replica' }), el('span', { text: 'heartbeat' }), el('span', { text: 'max_cameras' }), el('span', { text: 'cameras (by lease)' })));
    out.push(table);
    for (const r of replicas) {
      const mine = fcams.filter((c) => c.owner === r.id);
      const age = since(r.last_heartbeat);
      const row = el('div', { class: 'rrow replica' + (r.self ? ' self' : '') },
        el('span', { class: 'r-id' }, el('strong', { text: r.id }), r.self ? el('span', { class: 'tag', text: 'this replica' }) : null),
        el('span', { class: 'r-beat', text: age == null ? '—' : `${fmtAge(age)} ago` }),
        el('span', { class: 'r-max', text: r.max_cameras > 0 ? String(r.max_cameras) : 'no limit' }),
        el('span', { class: 'r-cams' },
          el('span', { class: 'count', text: `${mine.length}` }),
          ...(mine.length ? mine.map((c) => camLink(c.id, lease(c))) : [el('span', { class: 'muted', text: 'none' })])));
      row.dataset.replica = r.id;
      table.append(row);
    }
    const unowned = fcams.filter((c) => !c.owner);
    out.push(el('div', { class: 'fleet-extra' }, el('h2', { text: `Unowned cameras (${unowned.length})` }),
      el('p', { class: 'camlist' }, ...(unowned.length ? unowned.map((c) => camLink(c.id, 'no replica holds its lease')) : [el('span', { class: 'muted', text: 'none: every camera has an owner' })]))));
    const orphans = fcams.filter((c) => c.owner && !live.has(c.owner));
    if (orphans.length) {
      out.push(el('div', { class: 'fleet-extra' }, el('h2', { text: 'Held by a replica with no heartbeat' }),
        el('p', { class: 'camlist' }, ...orphans.map((c) => camLink(c.id, `held by ${c.owner}, ${lease(c)}`)))));
    }
    box.replaceChildren(...out);
  }

  // ---- routing ------------------------------------------------------------

  const VIEWS = { grid: '#grid-view', camera: '#camera-view', add: '#form-view', edit: '#form-view', fleet: '#fleet-view' };

  function dec(s) {
    try {
      return decodeURIComponent(s);
    } catch (_) {
      return s;
    }
  }

  function parseHash() {
    const h = location.hash || '#/';
    let m;
    if ((m = /^#\/camera\/(.+)$/.exec(h))) return { name: 'camera', id: dec(m[1]) };
    if ((m = /^#\/edit\/(.+)$/.exec(h))) return { name: 'edit', id: dec(m[1]) };
    if (h === '#/add') return { name: 'add' };
    if (h === '#/fleet') return { name: 'fleet' };
    return { name: 'grid' };
  }

  function onRoute() {
    if (!signedIn) return;
    const r = parseHash();
    if ((r.name === 'add' || r.name === 'edit') && scope !== 'admin') {
      location.replace('#/');
      return;
    }
    const prev = route;
    route = Object.assign(r, { seq: ++routeSeq, at: Date.now() });
    closeConfirm(false);
    for (const sel of new Set(Object.values(VIEWS))) show($(sel), sel === VIEWS[r.name]);
    const navOf = { grid: '#nav-grid', camera: '#nav-grid', fleet: '#nav-fleet', add: '#nav-add' };
    for (const n of ['#nav-grid', '#nav-fleet', '#nav-add']) {
      if (navOf[r.name] === n) $(n).setAttribute('aria-current', 'page');
      else $(n).removeAttribute('aria-current');
    }
    if (r.name !== 'camera' && prev.name === 'camera') resetSnap(camSnap, '');
    if (r.name !== 'add' && r.name !== 'edit') formSeq++;
    let title = 'cameras';
    if (r.name === 'grid') renderGrid();
    else if (r.name === 'camera') {
      enterCamera(r.id);
      title = r.id;
    } else if (r.name === 'add' || r.name === 'edit') {
      openForm(r.name, r.id);
      title = r.name === 'add' ? 'add camera' : 'edit ' + r.id;
    } else if (r.name === 'fleet') {
      renderFleet();
      fleetPoller.run();
      title = 'fleet';
    }
    document.title = `${title} · gstcapture console`;
    if (prev.name && prev.name !== r.name) window.scrollTo(0, 0);
    tickSnaps();
  }

  // ---- sign-in and sign-out -----------------------------------------------

  function showLogin(msg) {
    show($('#app'), false);
    show($('#login'), true);
    const e = $('#login-error');
    setText(e, msg || '');
    show(e, !!msg);
    $('#token').focus();
  }

  function start(t, s) {
    gen++;
    token = t;
    scope = s.scope === 'admin' ? 'admin' : 'read';
    signedIn = true;
    document.body.dataset.scope = scope;
    setText($('#scope'), s.auth === false ? `${scope} · auth off` : scope);
    $('#scope').title = s.auth === false ? 'http.auth.mode: none: every caller is admin' : `this token's scope: ${scope}`;
    show($('#login'), false);
    show($('#login-error'), false);
    show($('#app'), true);
    camsLoaded = false;
    camsPolledAt = 0;
    fleet = null;
    fleetErr = '';
    route = { name: '', seq: 0, at: 0 };
    camsPoller = poller(pollCameras, () => (camsFast ? CAMS_FAST_MS : CAMS_MS));
    fleetPoller = poller(pollFleet, FLEET_MS);
    historyPoller = poller(pollHistory, HISTORY_MS);
    clearInterval(snapTimer);
    snapTimer = setInterval(tickSnaps, 250);
    onRoute();
    camsPoller.run();
    fleetPoller.run();
  }

  function signOut(msg) {
    gen++;
    signedIn = false;
    token = null;
    scope = '';
    sessionStorage.clear();
    delete document.body.dataset.scope;
    for (const p of [camsPoller, fleetPoller, historyPoller]) if (p) p.stop();
    clearInterval(snapTimer);
    closeConfirm(false);
    for (const id of [...cards.keys()]) removeCard(id);
    resetSnap(camSnap, '');
    cams.clear();
    fpsSeen.clear();
    owners.clear();
    fleet = null;
    route = { name: '', seq: ++routeSeq, at: 0 };
    formSeq++;
    actBusy = false;
    formBusy = false;
    showLogin(msg);
  }

  async function onLogin(ev) {
    ev.preventDefault();
    const btn = $('#login-submit');
    if (btn.disabled) return;
    const t = $('#token').value.trim();
    btn.disabled = true;
    show($('#login-error'), false);
    try {
      const s = await checkToken(t);
      sessionStorage.setItem(KEY, t);
      $('#token').value = '';
      start(t, s);
    } catch (e) {
      sessionStorage.removeItem(KEY);
      showLogin(e.message);
    } finally {
      btn.disabled = false;
    }
  }

  // ---- wiring -------------------------------------------------------------

  function init() {
    $('#login').addEventListener('submit', onLogin);
    $('#signout').addEventListener('click', () => signOut(''));
    window.addEventListener('hashchange', onRoute);
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden) tickSnaps();
    });
    $('#btn-restart').addEventListener('click', restart);
    $('#btn-edit').addEventListener('click', () => {
      if (route.name === 'camera') location.hash = '#/edit/' + enc(route.id);
    });
    $('#btn-disable').addEventListener('click', toggle);
    $('#btn-delete').addEventListener('click', remove);
    $('#confirm-yes').addEventListener('click', () => closeConfirm(true));
    $('#confirm-no').addEventListener('click', () => closeConfirm(false));
    $('#confirm').addEventListener('click', (e) => {
      if (e.target === e.currentTarget) closeConfirm(false);
    });
    document.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && confirmDone) closeConfirm(false);
    });
    form.addEventListener('submit', submitForm);

    const stored = sessionStorage.getItem(KEY);
    if (stored === null) {
      showLogin('');
      return;
    }
    show($('#login'), false);
    checkToken(stored).then((s) => start(stored, s)).catch((e) => {
      sessionStorage.removeItem(KEY);
      showLogin(e.message);
    });
  }

  init();
})();
