// Shared by every page: API calls, safe DOM building, who is annotating.
// Metadata from the internet is untrusted: it is only ever inserted with textContent.
"use strict";

const Emo = (() => {
  const session = { annotator: null, tokensRequired: false, info: null };

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function localName() { return localStorage.getItem("emoforge.annotator") || ""; }

  async function api(path, options = {}) {
    const headers = { "X-Emoforge": "1" };
    const name = localName();
    if (name && !session.tokensRequired) headers["X-Annotator"] = name;
    const init = { method: options.method || "GET", headers, credentials: "same-origin" };
    if (options.body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(options.body);
    }
    const response = await fetch(path, init);
    const data = response.headers.get("content-type")?.includes("application/json") ? await response.json() : null;
    if (response.status === 401) openLogin();
    if (!response.ok) throw new Error((data && data.error) || `${response.status} ${response.statusText}`);
    return data;
  }

  function fmt(value, digits = 1) {
    return value === null || value === undefined || Number.isNaN(value) ? "–" : Number(value).toFixed(digits);
  }

  function openLogin() { document.querySelector(".login")?.classList.add("open"); }

  async function init(pageName) {
    for (const link of document.querySelectorAll("header nav a")) {
      if (link.dataset.page === pageName) link.classList.add("here");
    }
    const info = await api("/api/session");
    session.info = info;
    session.tokensRequired = info.tokens_required;
    session.annotator = info.annotator || (info.tokens_required ? null : localName() || null);
    const who = document.querySelector("header .who");
    if (who) renderWho(who);
    return info;
  }

  function renderWho(who) {
    who.replaceChildren();
    if (session.tokensRequired) {
      const token = el("input", { type: "password", placeholder: "annotator token", size: 22 });
      const box = el("span", { class: "login" + (session.annotator ? "" : " open") }, token,
        el("button", { onclick: async () => {
          const result = await api("/api/login", { method: "POST", body: { token: token.value } });
          session.annotator = result.annotator; location.reload();
        } }, "log in"));
      who.append(el("span", { class: "annotator-name" }, session.annotator ? `annotator: ${session.annotator}` : "not logged in"), box);
      if (session.annotator) who.append(el("button", { onclick: async () => {
        await api("/api/logout", { method: "POST", body: {} }); location.reload(); } }, "log out"));
      return;
    }
    const input = el("input", { id: "annotator", placeholder: "your name", size: 12, value: session.annotator || "" });
    input.addEventListener("change", () => {
      const value = input.value.trim();
      if (value && !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$/.test(value)) { input.classList.add("error"); return; }
      input.classList.remove("error");
      localStorage.setItem("emoforge.annotator", value);
      session.annotator = value || null;
      document.dispatchEvent(new CustomEvent("annotator"));
    });
    who.append(el("label", {}, "annotator ", input));
  }

  return { el, api, fmt, init, session };
})();
