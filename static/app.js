// Parley's page behaviour that Datastar attributes do not express well:
// following a streaming answer, the phone drawer, the tab's title, menus,
// keyboard paths and the copy buttons. Every page works without it (links and
// plain forms); nothing here writes inside the message list except the copy
// buttons' own label, so the page still equals the server's HTML.
(() => {
  'use strict';

  const byId = (id) => document.getElementById(id);

  // follow keeps the newest message in view while the person is at the
  // bottom of the conversation, and offers "Jump to latest" once they have
  // scrolled up. Growth of the messages (a streaming answer, a catch-up after
  // a reconnect) and of the window (an on-screen keyboard) are seen by
  // ResizeObservers; only the person scrolling up stops the following.
  function follow() {
    const scroller = byId('scroller');
    const jump = byId('jump');
    if (!scroller || !jump) return;
    const content = scroller.firstElementChild;
    const slack = 48; // px from the bottom that still count as "at the bottom"
    let following = true;
    let lastTop = 0;

    const distance = () => scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight;
    const show = () => { jump.hidden = following || distance() <= slack; };
    const toBottom = () => {
      scroller.scrollTop = scroller.scrollHeight;
      lastTop = scroller.scrollTop;
    };
    const onGrow = () => {
      if (following) toBottom();
      show();
    };

    // Only the person scrolling changes whether the view follows: content
    // that shrinks (a catch-up replacing messages) also moves scrollTop, and
    // must neither start nor stop the following.
    let userAt = -Infinity;
    const byUser = () => { userAt = performance.now(); };
    for (const type of ['wheel', 'touchmove', 'pointerdown', 'keydown']) {
      scroller.addEventListener(type, byUser, { passive: true });
    }
    document.addEventListener('keydown', byUser, { passive: true });
    scroller.addEventListener('scroll', () => {
      const top = scroller.scrollTop;
      if (performance.now() - userAt < 1500) {
        if (distance() <= slack) following = true;
        else if (top < lastTop - 1) following = false;
      }
      lastTop = top;
      show();
    }, { passive: true });
    new ResizeObserver(onGrow).observe(content);
    new ResizeObserver(onGrow).observe(scroller);

    const resume = () => {
      following = true;
      toBottom();
      show();
    };
    jump.addEventListener('click', () => {
      resume();
      const text = byId('text');
      if (text) text.focus({ preventScroll: true });
    });
    // Sending a message means wanting to see its answer.
    document.addEventListener('submit', (e) => {
      if (e.target.getAttribute('id') === 'composer') resume();
    }, true);
    toBottom();
  }

  // drawer opens and closes the conversation list on a narrow screen: the
  // toggle, its close button, Escape, a tap on the backdrop, or choosing a
  // conversation. Focus goes into the drawer when it opens and back to the
  // toggle when it closes; the page behind it is inert meanwhile.
  function drawer() {
    const app = byId('app');
    const side = byId('sidebar');
    const toggle = document.querySelector('.nav-toggle');
    const close = byId('nav-close');
    const backdrop = byId('nav-backdrop');
    const page = document.querySelector('.page');
    if (!app || !side || !toggle || !close || !backdrop) return;

    const isOpen = () => app.classList.contains('nav-open');
    const set = (open, returnFocus) => {
      app.classList.toggle('nav-open', open);
      toggle.setAttribute('aria-expanded', String(open));
      if (page) page.inert = open;
      if (open) close.focus();
      else if (returnFocus) toggle.focus();
    };
    toggle.addEventListener('click', () => set(!isOpen(), true));
    close.addEventListener('click', () => set(false, true));
    backdrop.addEventListener('click', () => set(false, true));
    document.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && isOpen() && !e.defaultPrevented) {
        e.preventDefault();
        set(false, true);
      }
    });
    side.addEventListener('click', (e) => {
      if (isOpen() && e.target.closest('a')) set(false, false);
    });
    // Widening the window turns the drawer back into a sidebar.
    matchMedia('(max-width: 800px)').addEventListener('change', () => { if (isOpen()) set(false, false); });
  }

  // tabTitle makes the browser tab's title follow the conversation's title,
  // which frames patch in the header (an automatic title, a rename in any
  // tab, a deletion).
  function tabTitle() {
    const head = document.querySelector('.conv-head');
    if (!head || !byId('conv-title')) return;
    const sync = () => {
      const h = byId('conv-title');
      if (!h) return;
      const want = h.textContent.trim() + ' · Parley';
      if (document.title !== want) document.title = want;
    };
    new MutationObserver(sync).observe(head, { childList: true, subtree: true, characterData: true });
    sync();
  }

  // menus: the Options menu closes after an action, on Escape and on a click
  // elsewhere; when it opens, its rename field holds the current title
  // (another tab may have renamed the conversation meanwhile).
  function menus() {
    const openMenus = () => document.querySelectorAll('details.menu[open]');
    // On the click that opens it, not on its (later) toggle event, so that
    // typing right after the click is never overwritten.
    document.addEventListener('click', (e) => {
      const summary = e.target.closest('details.menu > summary');
      if (!summary || summary.parentElement.open) return;
      const h = byId('conv-title');
      const input = summary.parentElement.querySelector('input[name=title]');
      if (h && input) input.value = h.dataset.title || '';
      // The instructions in use: the conversation's own, or the default.
      const live = byId('instructions-live');
      const area = byId('instructions');
      if (live && area) area.value = live.classList.contains('custom') ? live.textContent : (area.dataset.default || '');
    }, true);
    // Delete asks for confirmation first; its menu goes with the page's
    // content once the conversation is gone.
    // The focus goes back to the menu's button, not to the page's body.
    document.addEventListener('submit', (e) => {
      const menu = e.target.closest('details.menu');
      if (!menu || e.target.matches('form[action$="/delete"]')) return;
      const had = menu.contains(document.activeElement);
      menu.open = false;
      if (had) menu.querySelector('summary').focus();
    }, true);
    // Escape closes an open menu and does nothing else (not also stop an
    // answer from the composer).
    document.addEventListener('keydown', (e) => {
      if (e.key !== 'Escape' || e.defaultPrevented) return;
      for (const menu of openMenus()) {
        menu.open = false;
        menu.querySelector('summary').focus();
        e.preventDefault();
      }
    });
    document.addEventListener('focusin', (e) => {
      for (const menu of openMenus()) {
        if (!menu.contains(e.target)) menu.open = false;
      }
    });
    document.addEventListener('click', (e) => {
      for (const menu of openMenus()) {
        if (!menu.contains(e.target)) menu.open = false;
      }
    });
  }

  // keys: the composer (or the search box of the page of all
  // conversations, or after "Older ›" its first entry, where the person
  // was reading) has focus when a page opens, except on touch screens,
  // where it would raise the on-screen keyboard over the page; Escape in the
  // composer stops the answer being written; Ctrl+K (Cmd+K on a Mac, where
  // Ctrl+K edits text) searches the conversations, as in ChatGPT.
  function keys() {
    const paged = new URLSearchParams(location.search).has('page');
    const text = byId('text') || (paged ? document.querySelector('.all-list a') : byId('q'));
    if (text && !matchMedia('(pointer: coarse)').matches) text.focus({ preventScroll: true });
    const mac = /Mac|iPhone|iPad/.test(navigator.platform);
    if (mac) for (const k of document.querySelectorAll('.shortcut')) k.textContent = '⌘K';
    // Text typed and not sent: the composer's, or an open editor's.
    const draft = () => [...document.querySelectorAll('#text, form.editor:not([hidden]) textarea')].some((t) => t.value.trim() !== '');
    document.addEventListener('keydown', (e) => {
      // By the key's place, not its letter: Caps Lock and other layouts.
      if (e.code !== 'KeyK' || !(mac ? e.metaKey : e.ctrlKey) || e.altKey || e.shiftKey || e.defaultPrevented) return;
      e.preventDefault();
      const q = byId('q');
      if (q) q.focus();
      else if (!draft() || confirm('Leave this page to search your conversations? What you typed has not been sent.')) location.assign('/conversations');
    });
    document.addEventListener('keydown', (e) => {
      if (e.key !== 'Escape' || e.defaultPrevented || e.target.id !== 'text') return;
      const stop = document.querySelector('#composer button.stop');
      if (stop && !stop.hidden) {
        e.preventDefault();
        stop.click();
      }
    });
  }

  // editors: opening a message's editor fills it with the message's text
  // (from its bubble: the page does not carry the text twice) and puts the
  // focus in it, at the end; closing it (Cancel, Escape, or a sent edit) puts it back on the
  // message's Edit button when it was in the editor.
  function editors() {
    document.addEventListener('click', (e) => {
      const open = e.target.closest('button.edit-open');
      if (!open) return;
      const form = byId('m-' + open.dataset.index + '-edit');
      const area = form && form.querySelector('textarea');
      const text = form && form.parentElement.querySelector('.bubble .text');
      if (!area || !text) return;
      area.value = text.textContent;
      requestAnimationFrame(() => {
        if (form.hidden) return;
        area.focus();
        area.setSelectionRange(area.value.length, area.value.length);
      });
    });
    new MutationObserver((changes) => {
      for (const c of changes) {
        const form = c.target;
        if (!form.hidden || !form.classList.contains('editor') || !form.contains(document.activeElement)) continue;
        form.parentElement.querySelector('button.edit-open')?.focus();
      }
    }).observe(document.body, { subtree: true, attributes: true, attributeFilter: ['hidden'] });
  }

  // keepFocus: when the control with the focus goes (Stop hides once the
  // answer ends, a message is drawn anew after a version switch, an edit or
  // a regeneration, a button is disabled while an answer is written), the
  // focus would fall to the page's body and a keyboard user would start
  // again from the top. It goes instead to the same control of the same
  // message when that is there, else to another of the message's controls,
  // else to a link to the same place (the sidebar's list is drawn anew when
  // it changes), else to the composer (not on a touch screen, where that
  // would raise the on-screen keyboard). Focus the person moved away
  // themselves (a click on the page's background) is left alone.
  function keepFocus() {
    let held = null;
    const usable = (el) => el && !el.disabled && !el.closest('[hidden]') && el.getClientRects().length > 0;
    const touch = matchMedia('(pointer: coarse)');
    document.addEventListener('focusin', (e) => {
      const el = e.target;
      held = { el, msg: el.closest('.msg')?.id, cls: el.classList[0], href: el.getAttribute('href') };
    });
    // Focus that left a control which is still there a moment later was
    // moved by the person: nothing to restore. (Chrome also sends focusout
    // while it removes a focused element, which is then still connected.)
    document.addEventListener('focusout', (e) => {
      if (!held || held.el !== e.target || e.relatedTarget) return;
      setTimeout(() => { if (held?.el === e.target && e.target.isConnected && usable(e.target)) held = null; }, 0);
    });
    const restore = () => {
      if (!held || document.activeElement !== document.body || usable(held.el) && held.el.isConnected) return;
      const msg = held.msg && byId(held.msg);
      const inMsg = msg ? [...msg.querySelectorAll('button, a[href], textarea')].filter(usable) : [];
      const link = held.href && [...document.querySelectorAll('a[href]')].find((a) => a.getAttribute('href') === held.href && usable(a));
      const target = inMsg.find((el) => held.cls && el.classList.contains(held.cls)) ||
        inMsg.find((el) => el.closest('.msg-tools, .versions')) || link ||
        (touch.matches ? null : [byId('text'), byId('q')].find(usable));
      held = null;
      target?.focus({ preventScroll: true });
    };
    // Also a frame later: a button that is disabled keeps the focus until
    // the browser's next rendering takes it away.
    new MutationObserver(() => { restore(); requestAnimationFrame(restore); }).observe(document.body,
      { subtree: true, childList: true, attributes: true, attributeFilter: ['hidden', 'disabled'] });
  }

  // localTimes shows the list's times in the reader's own time zone: the
  // server writes them in UTC, the only zone it knows.
  function localTimes() {
    const now = new Date();
    const day = (d) => d.toDateString();
    const yesterday = new Date(now.getFullYear(), now.getMonth(), now.getDate() - 1);
    for (const el of document.querySelectorAll('.all-list time[datetime]')) {
      const t = new Date(el.getAttribute('datetime'));
      if (isNaN(t)) continue;
      el.textContent = day(t) === day(now) ? t.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
        : day(t) === day(yesterday) ? 'Yesterday'
        : t.toLocaleDateString([], t.getFullYear() === now.getFullYear() ? { day: 'numeric', month: 'short' } : { day: 'numeric', month: 'short', year: 'numeric' });
      el.title = t.toLocaleString();
    }
  }

  // copy handles both copy buttons: a code block's (its code, from the page)
  // and an answer's (its Markdown source, fetched). The button says "Copied"
  // for a moment. Without a clipboard (plain HTTP from another host, or
  // permission refused) the code is selected for copying by hand, and an
  // answer's source opens in a new tab.
  function copy() {
    const flash = (b, label) => {
      const was = b.dataset.label || b.textContent;
      b.dataset.label = was;
      b.textContent = label;
      setTimeout(() => { b.textContent = was; delete b.dataset.label; }, 1500);
    };
    document.addEventListener('click', (e) => {
      const code = e.target.closest('.code button.copy');
      if (code) {
        const el = code.closest('.code').querySelector('code');
        Promise.resolve()
          .then(() => navigator.clipboard.writeText(el.textContent))
          .then(() => flash(code, 'Copied'), () => getSelection().selectAllChildren(el));
        return;
      }
      const answer = e.target.closest('button.copy-answer');
      if (!answer) return;
      const url = answer.dataset.source;
      const text = fetch(url, { credentials: 'same-origin' }).then((r) => {
        if (!r.ok) throw new Error('status ' + r.status);
        return r.text();
      });
      // A ClipboardItem takes the pending text, so that browsers which
      // require the click's activation (Safari) still allow the write.
      const write = typeof ClipboardItem === 'function' && navigator.clipboard && navigator.clipboard.write
        ? navigator.clipboard.write([new ClipboardItem({ 'text/plain': text.then((t) => new Blob([t], { type: 'text/plain' })) })])
        : text.then((t) => navigator.clipboard.writeText(t));
      Promise.resolve(write).then(() => flash(answer, 'Copied'), () => {
        text.then(() => window.open(url, '_blank', 'noopener'), () => flash(answer, 'Copy failed'));
      });
    });
  }

  const start = () => {
    follow();
    drawer();
    tabTitle();
    menus();
    keys();
    editors();
    keepFocus();
    localTimes();
    copy();
  };
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
