'use strict';
// Renders /openapi.json as a page: one card per operation with its parameters, request body,
// success data and errnos. Builds the DOM with text nodes only: nothing from the document is
// parsed as HTML (its Markdown, `code` and **bold**, becomes elements made here).

(function () {
  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') node.className = v;
      else node.setAttribute(k, v);
    }
    for (const child of children) {
      if (child == null) continue;
      node.append(typeof child === 'string' ? document.createTextNode(child) : child);
    }
    return node;
  }

  // The inline Markdown the descriptions use, `code` and **bold**, as elements. Only for prose:
  // bounds (a pattern's `*`) are shown as they are.
  function md(text) {
    const span = el('span', {});
    const pattern = /`([^`]+)`|\*\*([^*]+)\*\*/g;
    let at = 0;
    let m;
    while ((m = pattern.exec(text)) !== null) {
      if (m.index > at) span.append(document.createTextNode(text.slice(at, m.index)));
      if (m[1] !== undefined) span.append(el('code', {}, m[1]));
      else span.append(el('strong', {}, m[2]));
      at = pattern.lastIndex;
    }
    if (at < text.length) span.append(document.createTextNode(text.slice(at)));
    return span;
  }

  // A notes cell: the description (Markdown), then the bounds as plain text.
  function notes(description, limits) {
    const span = md(description);
    if (limits) span.append(document.createTextNode((description ? ' — ' : '') + limits));
    return span;
  }

  function resolve(doc, schema) {
    let seen = 0;
    while (schema && schema.$ref && seen++ < 20) {
      const name = schema.$ref.replace('#/components/schemas/', '');
      schema = (doc.components.schemas || {})[name];
    }
    return schema || {};
  }

  // A required field is never null in a request that passes: its `| null` (an Option in the
  // server's struct, so that a missing field is a 401 that names it) is not shown.
  function typeOf(doc, schema, required) {
    const s = resolve(doc, schema);
    if (schema && schema.$ref) {
      return schema.$ref.replace('#/components/schemas/', '');
    }
    const notNull = (t) => !(required && t === 'null');
    let t = Array.isArray(s.type) ? s.type.filter(notNull).join(' | ') : s.type || '';
    if (s.type === 'array' || (Array.isArray(s.type) && s.type.includes('array'))) {
      t = 'array of ' + typeOf(doc, s.items);
    }
    if (s.oneOf) {
      t = s.oneOf.map((x) => typeOf(doc, x)).filter(notNull).join(' | ');
    }
    return t;
  }

  function bounds(doc, schema) {
    const s = resolve(doc, schema);
    const parts = [];
    if (s.minLength != null) parts.push('min length ' + s.minLength);
    if (s.maxLength != null) parts.push('max length ' + s.maxLength);
    if (s.minimum != null) parts.push('≥ ' + s.minimum);
    if (s.maximum != null) parts.push('≤ ' + s.maximum);
    if (s.format) parts.push('format ' + s.format);
    if (s.pattern) parts.push('pattern ' + s.pattern);
    if (s.enum) parts.push('one of ' + s.enum.join(', '));
    if (s.default != null) parts.push('default ' + s.default);
    if (s.example != null) parts.push('e.g. ' + s.example);
    if (s.examples) parts.push('e.g. ' + s.examples.join(', '));
    return parts.join('; ');
  }

  // Rows for an object's properties, descending into nested objects (and arrays of objects).
  function fieldRows(doc, schema, depth, rows, seen) {
    let s = resolve(doc, schema);
    if (s.type === 'array' || (Array.isArray(s.type) && s.type.includes('array'))) {
      s = resolve(doc, s.items);
    }
    if (!s.properties || depth > 3) return rows;
    const key = JSON.stringify(schema);
    if (seen.has(key)) return rows;
    seen.add(key);
    const required = new Set(s.required || []);
    for (const [name, prop] of Object.entries(s.properties)) {
      const p = resolve(doc, prop);
      const description = notes(p.description || prop.description || '', bounds(doc, prop));
      rows.push(el('tr', {},
        el('td', { class: 'field indent' + depth }, el('code', {}, name)),
        el('td', {}, typeOf(doc, prop, required.has(name))),
        el('td', {}, required.has(name) ? 'yes' : 'no'),
        el('td', {}, description)));
      fieldRows(doc, prop, depth + 1, rows, seen);
    }
    seen.delete(key);
    return rows;
  }

  function fieldTable(doc, schema) {
    const rows = fieldRows(doc, schema, 0, [], new Set());
    if (rows.length === 0) {
      return el('p', {}, el('code', {}, typeOf(doc, schema) || 'null'));
    }
    return scroller(el('table', {},
      el('thead', {}, el('tr', {}, el('th', {}, 'field'), el('th', {}, 'type'),
        el('th', {}, 'required'), el('th', {}, 'notes'))),
      el('tbody', {}, ...rows)));
  }

  // A table too wide for a phone scrolls on its own instead of widening the page.
  function scroller(table) {
    return el('div', { class: 'scroll' }, table);
  }

  function renderOperation(doc, server, path, method, op) {
    const id = op.operationId || method + path;
    const card = el('section', { class: 'op', id: id });
    const secured = (op.security || doc.security || []).length > 0;
    card.append(el('h2', {},
      el('span', { class: 'method ' + method }, method),
      el('code', {}, server + path),
      secured ? el('span', { class: 'badge' }, 'token') : null));
    if (op.summary) card.append(el('p', {}, md(op.summary)));

    const params = op.parameters || [];
    if (params.length) {
      card.append(el('h3', {}, 'Query parameters'));
      card.append(scroller(el('table', {},
        el('thead', {}, el('tr', {}, el('th', {}, 'name'), el('th', {}, 'type'),
          el('th', {}, 'required'), el('th', {}, 'notes'))),
        el('tbody', {}, ...params.map((p) => el('tr', {},
          el('td', { class: 'field' }, el('code', {}, p.name)),
          el('td', {}, typeOf(doc, p.schema, p.required)),
          el('td', {}, p.required ? 'yes' : 'no'),
          el('td', {}, notes(p.description || '', bounds(doc, p.schema)))))))));
    }
    const body = op.requestBody && op.requestBody.content['application/json'];
    if (body) {
      card.append(el('h3', {}, 'JSON body'));
      card.append(fieldTable(doc, body.schema));
    }

    const answer = op.responses['200'].content['application/json'].schema;
    for (const variant of answer.oneOf || []) {
      if (variant.title === 'success') {
        card.append(el('h3', {}, 'data on success (errno 0)'));
        card.append(fieldTable(doc, variant.properties.data));
      }
    }
    const errors = (answer.oneOf || []).filter((v) => v.title !== 'success');
    if (errors.length) {
      card.append(el('h3', {}, 'Errors'));
      const rows = [];
      for (const variant of errors) {
        // The description holds one "errno errmsg" line per errno of the enum.
        const meanings = new Map((variant.properties.errno.description || '').split('\n')
          .map((line) => [line.split(' ')[0], line.slice(line.indexOf(' ') + 1)]));
        const data = variant.properties.data;
        const dataType = data.$ref ? fieldSummary(doc, data) : 'null';
        for (const errno of variant.properties.errno.enum || []) {
          rows.push(el('tr', {},
            el('td', { class: 'field' }, el('code', {}, String(errno))),
            el('td', {}, md(meanings.get(String(errno)) || '')),
            el('td', {}, el('code', {}, dataType))));
        }
      }
      card.append(scroller(el('table', { class: 'errnos' },
        el('thead', {}, el('tr', {}, el('th', {}, 'errno'), el('th', {}, 'errmsg'),
          el('th', {}, 'data'))),
        el('tbody', {}, ...rows))));
    }
    return card;
  }

  function fieldSummary(doc, schema) {
    const s = resolve(doc, schema);
    return '{' + Object.keys(s.properties || {}).join(', ') + '}';
  }

  function render(doc) {
    $('title').textContent = doc.info.title;
    $('version').textContent = 'v' + doc.info.version + ' · OpenAPI ' + doc.openapi;
    $('description').replaceChildren(md(doc.info.description || ''));
    const server = ((doc.servers || [])[0] || {}).url || '';
    $('server').textContent = server;
    const scheme = Object.values((doc.components || {}).securitySchemes || {})[0];
    $('token-header').textContent = scheme ? scheme.name : '(none)';
    $('intro').hidden = false;
    const toc = $('toc');
    const ops = $('operations');
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(item)) {
        const card = renderOperation(doc, server === '/' ? '' : server, path, method, op);
        ops.append(card);
        toc.append(el('a', { href: '#' + card.id }, method.toUpperCase() + ' ' + path));
      }
    }
    $('status').textContent = Object.keys(doc.paths).length + ' endpoints';
  }

  fetch('openapi.json', { credentials: 'omit' })
    .then((r) => {
      if (!r.ok) throw new Error('HTTP ' + r.status);
      return r.json();
    })
    .then(render)
    .catch((e) => {
      $('status').textContent = 'Could not load openapi.json: ' + e.message;
    });
})();
