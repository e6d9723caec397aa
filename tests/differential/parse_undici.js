// What the WHATWG fetch Request built into Node (undici) hands to an application, as in
// Next.js route handlers, Remix, Hono or Deno-style code, for each request stored under the
// directory given (case/headers.json and case/body, as for parse.js): Request.formData()
// ("undici": every entry's name and string value, files' names and bytes) and Request.json()
// ("undici-json": every string, keys too). Prints one JSON object:
// { case: { parser: [base64 items] } }.
'use strict';
const fs = require('fs');
const path = require('path');

function strings(v, into) {
  if (typeof v === 'string') into.push(Buffer.from(v, 'utf8'));
  else if (Array.isArray(v)) v.forEach((x) => strings(x, into));
  else if (v && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) {
      into.push(Buffer.from(k, 'utf8'));
      strings(x, into);
    }
  }
}

function request(headers, body) {
  const h = {};
  if (headers['content-type'] !== undefined) h['content-type'] = headers['content-type'];
  return new Request('http://x/', { method: 'POST', headers: h, body });
}

async function withFormData(headers, body) {
  const items = [];
  for (const [name, value] of await request(headers, body).formData()) {
    items.push(Buffer.from(name, 'utf8'));
    if (typeof value === 'string') {
      items.push(Buffer.from(value, 'utf8'));
    } else {
      items.push(Buffer.from(value.name, 'utf8'));
      items.push(Buffer.from(await value.arrayBuffer()));
    }
  }
  return items;
}

async function withJson(headers, body) {
  const items = [];
  strings(await request(headers, body).json(), items);
  return items;
}

async function main() {
  const root = process.argv[2];
  const out = {};
  for (const name of fs.readdirSync(root).sort()) {
    const dir = path.join(root, name);
    const headers = JSON.parse(fs.readFileSync(path.join(dir, 'headers.json')));
    const body = fs.readFileSync(path.join(dir, 'body'));
    const result = {};
    for (const [parser, f] of [
      ['undici', withFormData],
      ['undici-json', withJson],
    ]) {
      let items = [];
      try {
        items = await f(headers, body);
      } catch (e) {}
      result[parser] = items.map((b) => b.toString('base64'));
    }
    out[name] = result;
  }
  process.stdout.write(JSON.stringify(out));
}

main();
